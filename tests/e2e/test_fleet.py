"""`vaurien ctl` across a fleet (issue 18): several --host URLs or a --hosts
file, one command applied to all at once, one line per host, the exit
status saying whether any failed."""
import json
import socket
import subprocess
import time

import pytest

from conftest import BIN, Api, free_port


def run(*args, timeout=60):
    return subprocess.run([BIN, "ctl"] + list(args), capture_output=True, text=True,
                          timeout=timeout)


def url(port):
    return "http://127.0.0.1:%d" % port


@pytest.fixture
def two(backend):
    """Two proxies with the control API (vaurien --http), as two sidecars."""
    started = []
    for _ in range(2):
        port = free_port()
        started.append(Api(["--proxy", "127.0.0.1:%d" % free_port(),
                            "--backend", "127.0.0.1:%d" % backend.port,
                            "--http", "--http-host", "127.0.0.1",
                            "--http-port", str(port)], port))
    yield started
    for a in started:
        rc, err = a.stop()
        assert rc == 0, err


class BlackHole:
    """A listening socket that never accepts: the kernel completes the
    handshake and takes the request, nothing ever answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


@pytest.fixture
def holes():
    made = []

    def make(n):
        made.extend(BlackHole() for _ in range(n))
        return made[-n:]
    yield make
    for h in made:
        h.close()


def behavior(api):
    return api.call("GET", "/behavior")[1]


def test_set_behavior_changes_every_host(two):
    a, b = two
    r = run("--host", url(a.port), "--host", url(b.port),
            "set-behavior", "delay", "--sleep", "0.25")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    for line, api in zip(lines, two):
        assert line.split() == [url(api.port), "ok", "Behavior", "changed", "to", "delay"]
        got = behavior(api)
        assert got["behavior"] == "delay" and got["options"]["delay"]["sleep"] == 0.25
    assert r.stderr == ""
    # a command that reads: one line each
    r = run("--host", url(a.port), "--host", url(b.port), "get-behavior")
    assert r.returncode == 0
    assert [ln.split()[1:] for ln in r.stdout.splitlines()] == [["ok", "delay"]] * 2


def test_a_dead_host_fails_the_run_but_not_the_others(two):
    a, b = two
    dead = free_port()  # nothing listens there: refused
    r = run("--host", url(a.port), "--host", url(dead), "--host", url(b.port),
            "set-behavior", "error")
    assert r.returncode == 3, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert [ln.split()[:2] for ln in lines] == [
        [url(a.port), "ok"], [url(dead), "error"], [url(b.port), "ok"]]
    assert lines[1].endswith("cannot reach %s: could not connect" % url(dead))
    assert r.stderr.strip() == "vaurien ctl: 1 of 3 hosts failed"
    assert behavior(a)["behavior"] == "error" and behavior(b)["behavior"] == "error"


def test_a_refusal_is_exit_1_with_the_apis_message(two):
    a, b = two
    r = run("--host", url(a.port), "--host", url(b.port), "set-behavior", "nope")
    assert r.returncode == 1
    for line in r.stdout.splitlines():
        assert line.split()[1] == "error"
        assert "400: the 'nope' behavior does not exist" in line


def test_hosts_that_never_answer_cost_one_timeout_not_one_each(two, holes):
    a, b = two
    hs = holes(10)
    args = ["--timeout", "1", "--host", url(a.port)]
    for h in hs:
        args += ["--host", url(h.port)]
    args += ["--host", url(b.port), "set-behavior", "blackout"]
    t0 = time.monotonic()
    r = run(*args)
    took = time.monotonic() - t0
    assert r.returncode == 3
    assert 0.9 < took < 4, took  # in parallel: about 1 s, not 10
    lines = r.stdout.splitlines()
    assert len(lines) == 12
    assert lines[0].split()[1] == "ok" and lines[-1].split()[1] == "ok"
    for h, line in zip(hs, lines[1:-1]):
        assert line.split()[:2] == [url(h.port), "error"]
        assert line.endswith("cannot reach %s: timed out after 1 s" % url(h.port))
    assert behavior(a)["behavior"] == "blackout" and behavior(b)["behavior"] == "blackout"


def test_parallel_1_runs_them_one_after_another(holes):
    hs = holes(3)
    args = ["--timeout", "0.5", "--parallel", "1"]
    for h in hs:
        args += ["--host", url(h.port)]
    t0 = time.monotonic()
    r = run(*(args + ["version"]))
    took = time.monotonic() - t0
    assert r.returncode == 3
    assert took >= 1.4, took
    t0 = time.monotonic()
    r = run(*(args[:2] + args[4:] + ["version"]))  # default: at once
    assert r.returncode == 3 and time.monotonic() - t0 < 1.4


def test_a_hosts_file_with_comments(two, tmp_path):
    a, b = two
    f = tmp_path / "fleet.txt"
    f.write_text("# the staging sidecars\n\n%s   # first\n  %s\n" % (url(a.port), url(b.port)))
    r = run("--hosts", str(f), "version")
    assert r.returncode == 0, r.stderr
    assert [ln.split() for ln in r.stdout.splitlines()] == [
        [url(a.port), "ok", "2.12.0"], [url(b.port), "ok", "2.12.0"]]
    # saved by an editor that starts with a byte-order mark, CRLF lines
    f.write_bytes(b"\xef\xbb\xbf" + ("%s\r\n%s\r\n" % (url(a.port), url(b.port))).encode())
    r = run("--hosts", str(f), "version")
    assert r.returncode == 0, r.stderr
    assert [ln.split()[:2] for ln in r.stdout.splitlines()] == [
        [url(a.port), "ok"], [url(b.port), "ok"]]
    # a file of one host still reports per host
    f.write_text(url(a.port) + "\n")
    r = run("--hosts=" + str(f), "get-behavior")
    assert r.returncode == 0 and r.stdout.split() == [url(a.port), "ok", "dummy"]


def test_the_fleet_in_json(two):
    a, b = two
    dead = free_port()
    r = run("--json", "--host", url(a.port), "--host", url(dead), "get-behavior")
    assert r.returncode == 3
    got = json.loads(r.stdout)
    assert got[0] == {"host": url(a.port), "ok": True, "status": 200,
                      "answer": behavior(a)}
    assert got[1]["host"] == url(dead) and got[1]["ok"] is False
    assert got[1]["error"].startswith("cannot reach %s: " % url(dead))


def test_toxiproxy_commands_across_servers(backend):
    servers = []
    try:
        for _ in range(2):
            port = free_port()
            servers.append(Api(["server", "-host", "127.0.0.1", "-port", str(port)], port))
        hosts = []
        for s in servers:
            hosts += ["--host", url(s.port)]
        up = "127.0.0.1:%d" % backend.port
        r = run(*(hosts + ["create", "-l", "127.0.0.1:0", "-u", up, "db"]))
        assert r.returncode == 0, r.stderr
        for line in r.stdout.splitlines():
            assert " ok " in line and "Created new proxy db listening on 127.0.0.1:" in line
        r = run(*(hosts + ["toxic", "add", "-t", "latency", "-a", "latency=50", "db"]))
        assert r.returncode == 0, r.stderr
        for s in servers:
            t = s.call("GET", "/proxies/db/toxics/latency_downstream")[1]
            assert t["attributes"]["latency"] == 50
        r = run(*(hosts + ["toggle", "db"]))
        assert r.returncode == 0 and [ln.split()[1:] for ln in r.stdout.splitlines()] == [
            ["ok", "db", "disabled"]] * 2
        assert all(s.call("GET", "/proxies/db")[1]["enabled"] is False for s in servers)
        # each host's own state is read: hosts that disagreed still disagree
        assert run("--host", url(servers[0].port), "toggle", "db").returncode == 0
        r = run(*(hosts + ["toggle", "db"]))
        assert [ln.split()[-1] for ln in r.stdout.splitlines()] == ["disabled", "enabled"]
        r = run(*(hosts + ["toggle", "db"]))
        r = run(*(hosts + ["list"]))
        assert [ln.split()[1:] for ln in r.stdout.splitlines()] == [
            ["ok", "1", "proxies:", "db"]] * 2
        r = run(*(hosts + ["reset"]))
        assert r.returncode == 0
        assert all(s.call("GET", "/proxies/db")[1]["toxics"] == [] for s in servers)
    finally:
        for s in servers:
            rc, err = s.stop()
            assert rc == 0, err


class PathServer:
    """An HTTP server that answers /version under one path prefix (an API
    behind `kubectl proxy`, say) and 404 elsewhere, noting every path."""

    def __init__(self, prefix):
        import http.server
        import threading
        seen = self.paths = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.path)
                ok = self.path == prefix + "/version"
                body = b'{"version": "2.12.0"}' if ok else b'{"error": "not here"}'
                self.send_response(200 if ok else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_urls_path_prefixes_the_apis_paths():
    # as Toxiproxy's client does: kubectl proxy reaches a pod's port at
    # /api/v1/namespaces/NS/pods/POD:8474/proxy
    prefix = "/api/v1/namespaces/shop/pods/shop-1:8474/proxy"
    s = PathServer(prefix)
    try:
        r = run("--host", url(s.port) + prefix, "version")
        assert (r.returncode, r.stdout) == (0, "2.12.0\n"), r.stderr
        r = run("--host", url(s.port) + prefix + "/", "--host", url(s.port), "version")
        assert r.returncode == 1
        assert [ln.split()[1] for ln in r.stdout.splitlines()] == ["ok", "error"]
        assert s.paths == [prefix + "/version"] * 2 + ["/version"]
    finally:
        s.close()


def test_an_answer_over_the_cap_says_so():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)

    def serve():
        c, _ = s.accept()
        c.recv(4096)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1 << 30))
        c.close()
    import threading
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        r = run("--host", url(s.getsockname()[1]), "--timeout", "5", "version")
        assert r.returncode == 3
        assert r.stderr.strip() == "vaurien ctl: cannot reach %s: an answer over 16 MiB" % \
            url(s.getsockname()[1])
    finally:
        t.join(5)
        s.close()


@pytest.mark.parametrize("args, message", [
    (["--hosts", "/nonexistent/fleet.txt", "list"],
     "--hosts /nonexistent/fleet.txt: No such file or directory"),
    (["--host", "https://a:8474", "list"], "bad URL 'https://a:8474' (http://HOST:PORT)"),
    (["--host", "http://a:99999", "list"], "bad URL 'http://a:99999' (http://HOST:PORT)"),
    (["--host", "http://a:8474/x?y", "list"], "bad URL 'http://a:8474/x?y' (http://HOST:PORT)"),
    (["--timeout", "0", "list"], "--timeout: expected seconds (0 < S <= 86400), got '0'"),
    (["--parallel", "x", "list"], "--parallel: expected 1 to 10000, got 'x'"),
    (["--host"], "--host expects a value"),
    (["--frobnicate", "list"], "unknown flag '--frobnicate'"),
])
def test_bad_usage_exits_2_with_one_line(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "vaurien ctl: error: %s (see vaurien ctl --help)" % message], r.stderr
    assert r.stdout == ""


def test_an_empty_hosts_file_is_bad_usage(tmp_path):
    f = tmp_path / "fleet.txt"
    f.write_text("# nobody yet\n\n")
    r = run("--hosts", str(f), "list")
    assert r.returncode == 2 and "--hosts %s: no URL in it" % f in r.stderr
    f.write_text("http://a:1 http://b:2\n")
    r = run("--hosts", str(f), "list")
    assert r.returncode == 2 and "line 1: one URL a line" in r.stderr
