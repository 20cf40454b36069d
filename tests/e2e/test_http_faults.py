"""--protocol http's faults (WireMock's list): empty_response,
malformed_chunk, random_then_close, slow_body, bad_length, each seen by
curl (its exit code) and by requests (its exception) as the named failure;
slow_body's pace and order; the refusal on other protocols."""
import http.client
import http.server
import os
import socket
import socketserver
import subprocess
import tempfile
import threading
import time

import pytest
import requests
import urllib3

from conftest import BIN, Api, free_port, recv_until_eof

CURL = ["curl", "-sS", "--max-time", "10", "-o", "/dev/null"]


def body_of(n):
    return bytes((i * 7) % 251 for i in range(n))


class Handler(http.server.BaseHTTPRequestHandler):
    """/big/N answers N known bytes; anything else its path."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path.startswith("/big/"):
            body = body_of(int(self.path[5:]))
        else:
            body = b"path=" + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def origin():
    srv = Server(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_port
    srv.shutdown()
    srv.server_close()


def url(v, path="/x"):
    return "http://127.0.0.1:%d%s" % (v.port, path)


def curl(v, path="/x"):
    return subprocess.run(CURL + [url(v, path)], capture_output=True, text=True,
                          timeout=20)


def fault(name, vaurien, origin, *flags):
    return vaurien("--protocol", "http", "--behavior", "100:" + name, *flags,
                   backend_port=origin)


def test_empty_response_is_an_empty_reply(vaurien, origin):
    v = fault("empty_response", vaurien, origin)
    r = curl(v)
    assert r.returncode == 52 and "Empty reply from server" in r.stderr
    with pytest.raises(requests.ConnectionError) as e:
        requests.get(url(v), timeout=5)
    assert "RemoteDisconnected" in str(e.value)
    # the request was read whole first: a body does not make it a send error
    r = subprocess.run(CURL + ["--data-binary", "x" * 100000, url(v)],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 52, r.stderr


def test_malformed_chunk_breaks_the_chunked_body(vaurien, origin):
    v = fault("malformed_chunk", vaurien, origin)
    r = curl(v)
    assert r.returncode == 56 and "chunked-encoding" in r.stderr, r.stderr
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url(v), timeout=5)


def test_random_then_close_sends_seeded_garbage(vaurien, origin):
    v = fault("random_then_close", vaurien, origin, "--seed", "42")
    r = curl(v)
    assert r.returncode in (1, 8), r.stderr  # HTTP/0.9 refused, or weird reply
    with pytest.raises(requests.ConnectionError) as e:
        requests.get(url(v), timeout=5)
    assert "BadStatusLine" in str(e.value) or "LineTooLong" in str(e.value)
    seen = []
    for _ in range(2):  # the same seed: the same connection, the same bytes
        w = fault("random_then_close", vaurien, origin, "--seed", "7")
        s = w.connect()
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        seen.append(recv_until_eof(s))
        s.close()
    assert len(seen[0]) == 1000 and seen[0] == seen[1]
    assert not seen[0].startswith(b"HTTP/")


def test_bad_length_truncates_the_body(vaurien, origin):
    v = fault("bad_length", vaurien, origin)
    r = curl(v)
    assert r.returncode == 18 and "951 bytes remaining" in r.stderr, r.stderr
    # requests on urllib3 1.26 (Debian 12) does not enforce Content-Length:
    # it returns the short body; urllib3 2 raises ChunkedEncodingError
    try:
        got = requests.get(url(v), timeout=5)
        assert int(got.headers["Content-Length"]) == 1000 and len(got.content) == 49
    except requests.exceptions.ChunkedEncodingError as e:
        assert "IncompleteRead" in str(e)
    # what enforces it sees the lie
    with pytest.raises(urllib3.exceptions.ProtocolError) as e:
        urllib3.PoolManager().request("GET", url(v), enforce_content_length=True,
                                      retries=False, timeout=5)
    assert "IncompleteRead" in str(e.value)
    c = http.client.HTTPConnection("127.0.0.1", v.port, timeout=5)
    c.request("GET", "/")
    with pytest.raises(http.client.IncompleteRead):
        c.getresponse().read()


def test_slow_body_sends_the_head_at_once_and_the_body_at_its_rate(vaurien, origin):
    v = fault("slow_body", vaurien, origin, "--behavior-slow_body-rate", "5000")
    t0 = time.monotonic()
    r = requests.get(url(v, "/big/5000"), stream=True, timeout=10)
    head_at = time.monotonic() - t0
    body = r.raw.read()
    took = time.monotonic() - t0
    assert r.status_code == 200 and body == body_of(5000)
    assert head_at < 0.3 and 0.7 <= took < 5, (head_at, took)
    t0 = time.monotonic()
    c = curl(v, "/big/5000")
    assert c.returncode == 0 and 0.7 <= time.monotonic() - t0 < 5


def test_slow_body_keeps_keep_alive_and_pipelined_replies_in_order(vaurien, origin):
    v = fault("slow_body", vaurien, origin, "--behavior-slow_body-rate", "20000")
    with requests.Session() as sess:
        for path in ("/big/3000", "/a", "/big/2000", "/b"):
            r = sess.get(url(v, path), timeout=10)
            want = body_of(int(path[5:])) if path.startswith("/big/") else b"path=" + path.encode()
            assert r.content == want
    s = v.connect(timeout=10)
    paths = ["/big/4000", "/one", "/big/1500", "/two"]
    s.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (
        p.encode(), b"Connection: close\r\n" if i == len(paths) - 1 else b"")
        for i, p in enumerate(paths)))
    data = recv_until_eof(s, timeout=10)
    s.close()
    for p in paths:
        head, _, data = data.partition(b"\r\n\r\n")
        n = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")][0]
                .split(b":")[1])
        want = body_of(int(p[5:])) if p.startswith("/big/") else b"path=" + p.encode()
        assert data[:n] == want, p
        data = data[n:]
    assert data == b""


def test_a_mix_draws_empty_response_for_some_requests(vaurien, origin):
    v = vaurien("--protocol", "http", "--behavior", "50:empty_response", "--seed", "3",
                backend_port=origin)
    failed = 0
    for i in range(40):
        try:
            assert requests.get(url(v, "/m%d" % i), timeout=5).content == b"path=/m%d" % i
        except requests.ConnectionError:
            failed += 1
    assert 5 <= failed <= 35, failed


@pytest.mark.parametrize("flags", [
    ["--behavior", "100:empty_response"],
    ["--behavior", "10:slow_body", "--protocol", "redis"],
    ["--protocol", "tcp", "--behavior", "5:error,5:bad_length"],
])
def test_other_protocols_refuse_them_on_the_command_line(flags):
    r = subprocess.run([BIN, "--proxy", "127.0.0.1:0", "--backend", "127.0.0.1:1"] + flags,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "is a behavior of --protocol http" in lines[0], r.stderr


def test_the_config_file_sets_them_and_is_checked_too(tmp_path, vaurien, origin):
    ini = tmp_path / "v.ini"
    ini.write_text("[vaurien]\nprotocol = redis\nbehavior = 100:empty_response\n")
    r = subprocess.run([BIN, "--proxy", "127.0.0.1:0", "--config", str(ini)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "empty_response is a behavior of --protocol http" in r.stderr
    ini.write_text("[vaurien]\nprotocol = http\nbehavior = 100:slow_body\n\n"
                   "[behavior:slow_body]\nrate = 5000\n")
    v = vaurien("--config", str(ini), backend_port=origin)
    t0 = time.monotonic()
    assert requests.get(url(v, "/big/5000"), timeout=10).content == body_of(5000)
    assert 0.7 <= time.monotonic() - t0 < 5


def api_proxy(protocol, origin):
    port, proxy_port = free_port(), free_port()
    a = Api(["--proxy", "127.0.0.1:%d" % proxy_port, "--backend", "127.0.0.1:%d" % origin,
             "--protocol", protocol, "--http", "--http-host", "127.0.0.1",
             "--http-port", str(port)], port)
    a.proxy_port = proxy_port
    return a


def test_the_api_refuses_them_on_other_protocols(origin):
    a = api_proxy("tcp", origin)
    try:
        st, b, _ = a.call("PUT", "/behavior", {"name": "slow_body", "rate": 500})
        assert st == 400 and "is a behavior of --protocol http" in str(b)
        st, b, _ = a.call("PUT", "/behavior", {"name": "10:malformed_chunk,10:error"})
        assert st == 400 and "malformed_chunk" in str(b)
        st, b, _ = a.call("POST", "/proxies/vaurien/toxics", {"type": "random_then_close"})
        assert st == 400 and "is a behavior of --protocol http" in b["error"]
        st, b, _ = a.call("PUT", "/behavior", {"schedule": [
            {"for": "2 requests", "behavior": "dummy"}, {"behavior": "empty_response"}]})
        assert st == 400 and "empty_response is a behavior of --protocol http" in str(b)
        assert a.call("GET", "/behavior")[1]["behavior"] == "dummy"
        assert a.call("GET", "/proxies/vaurien/toxics")[1] == []
    finally:
        assert a.stop()[0] == 0


def test_the_api_sets_them_with_options_and_the_journal_says_what_they_did(origin):
    a = api_proxy("http", origin)
    base = "http://127.0.0.1:%d" % a.proxy_port
    try:
        st, b, _ = a.call("PUT", "/behavior", {"name": "slow_body", "rate": 5000})
        assert (st, b) == (200, {"status": "ok"})
        assert a.call("GET", "/behavior")[1]["options"]["slow_body"] == {"rate": 5000}
        t0 = time.monotonic()
        assert requests.get(base + "/big/5000", timeout=10).content == body_of(5000)
        assert 0.7 <= time.monotonic() - t0 < 5
        st, _, _ = a.call("PUT", "/behavior", {"name": "slow_body", "rate": 0})
        assert st == 400  # below its bound
        a.call("PUT", "/behavior", {"name": "dummy"})
        st, t, _ = a.call("POST", "/proxies/vaurien/toxics",
                          {"type": "slow_body", "attributes": {"rate": 10000}})
        assert st == 200 and t["attributes"] == {"rate": 10000}
        t0 = time.monotonic()
        assert requests.get(base + "/big/5000", timeout=10).content == body_of(5000)
        assert 0.3 <= time.monotonic() - t0 < 5
        assert a.call("DELETE", "/proxies/vaurien/toxics/slow_body_downstream")[0] == 204
        for name in ("empty_response", "malformed_chunk", "random_then_close", "bad_length"):
            a.call("PUT", "/behavior", {"name": name})
            try:  # bad_length: a short body (urllib3 1.26 does not check)
                requests.get(base + "/j", timeout=5).content
            except requests.RequestException:
                pass
        outcomes = {e["behavior"]: e["outcome"]
                    for e in a.call("GET", "/events?kind=fault")[1]["events"]}
        assert outcomes["slow_body"] == "reply body paced at 10000 bytes/s"
        assert outcomes["empty_response"] == "closed without a reply"
        assert outcomes["malformed_chunk"] == "answered: HTTP/1.1 200 OK, then closed"
        assert outcomes["random_then_close"] == "answered 1000 random bytes, then closed"
        assert outcomes["bad_length"] == "answered: HTTP/1.1 200 OK, then closed"
    finally:
        assert a.stop()[0] == 0
