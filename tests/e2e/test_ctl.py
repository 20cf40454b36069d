"""`vaurien ctl`: toxiproxy-cli's and vaurienctl's commands, round trips."""
import json
import os
import subprocess

from conftest import BIN, Api, free_port


def ctl(api_port, *args, env=None):
    e = dict(os.environ)
    e.pop("TOXIPROXY_URL", None)
    e.update(env or {})
    return subprocess.run([BIN, "ctl", "--host", "http://127.0.0.1:%d" % api_port] + list(args),
                          capture_output=True, text=True, timeout=20, env=e)


def test_toxiproxy_cli_commands_round_trip(api, backend):
    up = "127.0.0.1:%d" % backend.port
    r = ctl(api.port, "create", "-l", "127.0.0.1:0", "-u", up, "shop")
    assert r.returncode == 0 and r.stdout.startswith("Created new proxy shop listening on 127.0.0.1:")
    r = ctl(api.port, "list")
    assert r.returncode == 0 and "shop" in r.stdout and up in r.stdout and "enabled" in r.stdout
    r = ctl(api.port, "toxic", "add", "-t", "latency", "-a", "latency=120", "-a", "jitter=5",
            "--tox", "0.5", "-u", "shop")
    assert r.returncode == 0 and "latency_upstream" in r.stdout
    t = api.call("GET", "/proxies/shop/toxics/latency_upstream")[1]
    assert t["attributes"] == {"latency": 120, "jitter": 5} and t["toxicity"] == 0.5
    r = ctl(api.port, "toxic", "update", "-n", "latency_upstream", "-a", "latency=7", "shop")
    assert r.returncode == 0
    assert api.call("GET", "/proxies/shop/toxics/latency_upstream")[1]["attributes"]["latency"] == 7
    r = ctl(api.port, "--json", "inspect", "shop")
    assert r.returncode == 0 and json.loads(r.stdout)["toxics"][0]["name"] == "latency_upstream"
    r = ctl(api.port, "toxic", "remove", "-n", "latency_upstream", "shop")
    assert r.returncode == 0 and api.call("GET", "/proxies/shop")[1]["toxics"] == []
    r = ctl(api.port, "toggle", "shop")
    assert r.returncode == 0 and api.call("GET", "/proxies/shop")[1]["enabled"] is False
    r = ctl(api.port, "toggle", "shop")
    assert api.call("GET", "/proxies/shop")[1]["enabled"] is True
    r = ctl(api.port, "delete", "shop")
    assert r.returncode == 0 and api.call("GET", "/proxies/shop")[0] == 404


def test_exit_codes_mean_something(api):
    r = ctl(api.port, "inspect", "missing")
    assert r.returncode == 1 and "proxy not found" in r.stderr
    r = ctl(api.port, "toxic", "add", "missing")
    assert r.returncode == 2 and "-t TYPE" in r.stderr
    r = ctl(api.port, "frobnicate")
    assert r.returncode == 2
    r = subprocess.run([BIN, "ctl", "--host", "http://127.0.0.1:%d" % free_port(), "list"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 3 and "cannot reach" in r.stderr


def test_toxiproxy_url_from_the_environment(api):
    r = subprocess.run([BIN, "ctl", "list"], capture_output=True, text=True, timeout=20,
                       env=dict(os.environ, TOXIPROXY_URL="http://127.0.0.1:%d" % api.port))
    assert r.returncode == 0 and "(no proxies)" in r.stdout


def test_vaurienctl_commands(backend):
    port, proxy_port = free_port(), free_port()
    a = Api(["--proxy", "127.0.0.1:%d" % proxy_port, "--backend", "127.0.0.1:%d" % backend.port,
             "--http", "--http-host", "127.0.0.1", "--http-port", str(port)], port)
    try:
        r = ctl(port, "list-behaviors")
        assert r.returncode == 0 and r.stdout.split() == [
            "abort", "bad_cert", "bad_length", "blackout", "delay", "dummy",
            "empty_response", "error", "hang", "malformed_chunk",
            "no_close_notify", "random_then_close", "slow_body", "tls_alert",
            "tls_handshake_delay", "transient"]
        r = ctl(port, "set-behavior", "delay", "--sleep", "0.3", "--before", "false")
        assert r.returncode == 0
        assert ctl(port, "get-behavior").stdout.strip() == "delay"
        opts = a.call("GET", "/behavior")[1]["options"]["delay"]
        assert opts == {"sleep": 0.3, "before": False}
        r = ctl(port, "set-behavior", "nope")
        assert r.returncode == 1 and "the 'nope' behavior does not exist" in r.stderr
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def test_ctl_reads_by_length_and_chunks_not_to_eof():
    # an API that keeps its connection open after a chunked answer: a client
    # reading to EOF would wait for its timeout (10 s)
    import socket
    import threading
    import time
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    body = json.dumps({"kept": {"name": "kept", "listen": "127.0.0.1:1", "upstream": "x:1",
                                "enabled": True, "toxics": []}}).encode()
    conns = []

    def serve():
        for _ in range(2):
            c, _ = srv.accept()
            conns.append(c)
            data = b""
            while b"\r\n\r\n" not in data:
                data += c.recv(4096)
            if b"GET /proxies " in data:
                half = len(body) // 2
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n" +
                          b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, body[:half],
                                                                len(body) - half, body[half:]))
            else:
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        t0 = time.monotonic()
        r = ctl(port, "list")
        assert r.returncode == 0 and "kept" in r.stdout, (r.stdout, r.stderr)
        r = ctl(port, "--json", "inspect", "x")
        assert r.returncode == 0 and json.loads(r.stdout) == {}, (r.stdout, r.stderr)
        assert time.monotonic() - t0 < 5
    finally:
        for c in conns:
            c.close()
        srv.close()


def test_ctl_prints_numbers_as_the_api_wrote_them(api):
    api.call("POST", "/proxies", {"name": "n", "listen": "127.0.0.1:0", "upstream": "x:1"})
    r = ctl(api.port, "toxic", "add", "-t", "latency", "--tox", "0.3", "-a", "latency=5", "n")
    assert r.returncode == 0, r.stderr
    r = ctl(api.port, "--json", "inspect", "n")
    assert r.returncode == 0 and '"toxicity": 0.3\n' in r.stdout, r.stdout
    assert "0.2999" not in r.stdout
    assert json.loads(r.stdout)["toxics"][0]["toxicity"] == 0.3
