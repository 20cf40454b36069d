"""--protocol http: faults per request, real HTTP error responses, with
Python's http.server as the backend and http.client and curl as clients."""
import http.client
import shutil
import socket
import subprocess
import time

import pytest

from conftest import recv_exactly, recv_until_eof


def conn(v, timeout=5):
    return http.client.HTTPConnection("127.0.0.1", v.port, timeout=timeout)


def get(c, path, method="GET", body=None, headers=None):
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    return r.status, r.read(), r


def test_dummy_is_invisible_to_http_client(http_server, vaurien):
    v = vaurien("--protocol", "http", backend_port=http_server.server_port)
    c = conn(v)
    for i in range(50):  # one keep-alive connection
        assert get(c, "/n/%d" % i)[:2] == (200, b"path=/n/%d" % i)
    assert get(c, "/x", "POST", body=b"payload")[:2] == (200, b"got 7 bytes: payload")
    status, body, r = get(c, "/head", "HEAD")
    assert (status, body, r.getheader("Content-Length")) == (200, b"", "10")
    assert get(c, "/204")[:2] == (204, b"")
    assert get(c, "/304")[:2] == (304, b"")
    assert get(c, "/chunked")[:2] == (200, b"hello chunked world")
    big = bytes(range(256)) * 8192  # 2 MiB body
    assert get(c, "/big", "PUT", body=big)[:2] == (200, b"got %d bytes: %s" % (len(big), big[:32]))
    assert get(c, "/after")[:2] == (200, b"path=/after")


def test_pipelined_requests_and_http_1_0(http_server, vaurien):
    v = vaurien("--protocol", "http", backend_port=http_server.server_port)
    s = v.connect()
    s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = recv_until_eof(s)
    s.close()
    assert [data.find(b"path=/" + p) >= 0 for p in (b"a", b"b", b"c")] == [True] * 3
    assert data.find(b"path=/a") < data.find(b"path=/b") < data.find(b"path=/c")
    s = v.connect()
    s.sendall(b"GET /old HTTP/1.0\r\n\r\n")
    data = recv_until_eof(s)
    assert data.startswith(b"HTTP/1.") and data.endswith(b"path=/old")


def test_error_is_a_real_http_response_on_a_kept_connection(http_server, vaurien):
    v = vaurien("--protocol", "http", "--behavior", "100:error", backend_port=http_server.server_port)
    c = conn(v)
    seen = set()
    for i in range(20):
        status, body, r = get(c, "/e%d" % i)
        assert status in (500, 501, 502, 503)
        assert body == r.reason.encode()  # the reason phrase, nothing added
        assert r.getheader("Connection") is None
        seen.add(status)
    assert len(seen) >= 3
    assert http_server.hits == []  # the backend never saw them


def test_error_status_and_message_options(http_server, vaurien):
    v = vaurien("--protocol", "http", "--behavior", "100:error",
                "--behavior-error-status", "429", "--behavior-error-message", "slow down",
                backend_port=http_server.server_port)
    c = conn(v)
    assert get(c, "/")[:2] == (429, b"slow down")
    status, body, r = get(c, "/", "HEAD")
    assert (status, body, r.getheader("Content-Length")) == (429, b"", "9")


@pytest.mark.parametrize("message", ["", "slow down", "line one\nline two\n", "  x  "])
def test_the_error_body_is_exactly_the_message(http_server, vaurien, message):
    # raw bytes: the body is the message as given (the reason phrase when
    # none), Content-Length says its size, nothing follows it
    args = ["--protocol", "http", "--behavior", "100:error", "--behavior-error-status", "503"]
    if message:
        args += ["--behavior-error-message", message]
    v = vaurien(*args, backend_port=http_server.server_port)
    s = v.connect()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = recv_until_eof(s)
    head, _, body = data.partition(b"\r\n\r\n")
    want = message.encode() or b"Service Unavailable"
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"\r\nContent-Length: %d\r\n" % len(want) in head + b"\r\n"
    assert body == want


def run_mix(port, seed):
    from conftest import Vaurien
    v = Vaurien("--protocol", "http", "--behavior", "30:error", "--seed", str(seed),
                backend_port=port)
    try:
        c = conn(v)
        out = []
        for i in range(100):
            status, body, _ = get(c, "/r/%d" % i)
            if status == 200:
                assert body == b"path=/r/%d" % i  # its own reply, never another's
                out.append("ok")
            else:
                assert status >= 500
                out.append("error")
        return out
    finally:
        assert v.stop() == 0


def test_a_seeded_30_percent_mix_on_one_keep_alive_connection(http_server):
    first = run_mix(http_server.server_port, 5)
    assert first == run_mix(http_server.server_port, 5)
    assert 15 <= first.count("error") <= 45
    assert len(http_server.hits) == 2 * first.count("ok")


def test_pipelined_errors_keep_the_order(http_server, vaurien):
    v = vaurien("--protocol", "http", "--behavior", "50:error", "--seed", "3",
                backend_port=http_server.server_port)
    s = v.connect()
    reqs = b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(30))
    s.sendall(reqs + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = recv_until_eof(s, timeout=10)
    s.close()
    # parse the 31 responses in order
    responses = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int([h.split(b":")[1] for h in head.split(b"\r\n")
                      if h.lower().startswith(b"content-length")][0])
        responses.append((head.split(b" ")[1], rest[:length]))
        data = rest[length:]
    assert len(responses) == 31
    for i, (status, body) in enumerate(responses[:30]):
        if status == b"200":
            assert body == b"path=/p%d" % i
    assert 5 <= sum(st != b"200" for st, _ in responses) <= 26


def test_delay_holds_each_request(http_server, vaurien):
    v = vaurien("--protocol", "http", "--behavior", "100:delay",
                "--behavior-delay-sleep", "0.2", backend_port=http_server.server_port)
    c = conn(v)
    for i in range(3):
        t0 = time.monotonic()
        assert get(c, "/d%d" % i)[0] == 200
        assert 0.2 <= time.monotonic() - t0 < 0.4


def test_connection_close_request_gets_an_error_then_close(http_server, vaurien):
    v = vaurien("--protocol", "http", "--behavior", "100:error", backend_port=http_server.server_port)
    s = v.connect()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = recv_until_eof(s)
    assert b"\r\nConnection: close\r\n" in data
    assert data.split(b" ")[1] in (b"500", b"501", b"502", b"503")


def test_curl_expect_100_continue(http_server, vaurien):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("no curl")
    v = vaurien("--protocol", "http", backend_port=http_server.server_port)
    out = subprocess.run([curl, "-sS", "-H", "Expect: 100-continue", "--data-binary", "x" * 5000,
                          "http://127.0.0.1:%d/up" % v.port], capture_output=True, timeout=10)
    assert out.stdout == b"got 5000 bytes: " + b"x" * 32
    v2 = vaurien("--protocol", "http", "--behavior", "100:error", "--behavior-error-status", "503",
                 backend_port=http_server.server_port)
    t0 = time.monotonic()
    out = subprocess.run([curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                          "-H", "Expect: 100-continue", "--data-binary", "x" * 5000,
                          "http://127.0.0.1:%d/up" % v2.port], capture_output=True, timeout=10)
    assert out.stdout == b"503"
    assert time.monotonic() - t0 < 0.9  # answered at once, not after curl's 1 s wait


def test_upgrade_turns_into_a_tunnel(http_server, vaurien):
    v = vaurien("--protocol", "http", backend_port=http_server.server_port)
    s = v.connect()
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1000)
    assert head.startswith(b"HTTP/1.1 101")
    for msg in (b"not http at all\x00\x01", b"GET / HTTP/1.1 but inside the tunnel"):
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            got += s.recv(1000)
        assert got == msg
    s.close()
    assert "upgraded" in v.log_text()


def test_overwrite_host_header(http_server, vaurien):
    port = http_server.server_port
    v = vaurien("--protocol", "http", "--protocol-http-overwrite-host-header", "true",
                backend_port=port)
    c = conn(v)
    assert get(c, "/host", headers={"Host": "public.example"})[:2] == (200, b"127.0.0.1:%d" % port)
    v2 = vaurien("--protocol", "http", backend_port=port)
    assert get(conn(v2), "/host", headers={"Host": "public.example"})[1] == b"public.example"


def test_overwrite_host_header_in_every_pipelined_request(http_server, vaurien):
    # requests that pass are moved to the backend together, after framing
    # all of them: the Host of each, not only the first, is rewritten, and
    # nothing around the rewritten heads moves
    port = http_server.server_port
    v = vaurien("--protocol", "http", "--protocol-http-overwrite-host-header", "true",
                backend_port=port)
    s = v.connect()
    burst = b"".join(b"GET /host HTTP/1.1\r\nHost: public%d.example\r\nX-N: %d\r\n\r\n"
                     b"GET /n/%d HTTP/1.1\r\nHost: h\r\n\r\n" % (i, i, i) for i in range(20))
    s.sendall(burst)
    r = Responses(s)
    for i in range(20):
        assert r.response() == (200, b"127.0.0.1:%d" % port)
        assert r.response() == (200, b"path=/n/%d" % i)
    s.close()


def test_not_http_degrades_to_pass_through(http_server, vaurien):
    v = vaurien("--protocol", "http", "--behavior", "100:error", backend_port=http_server.server_port)
    s = v.connect()
    s.sendall(b"\x00\x01\x02 this is not http\r\n\r\n")  # (TLS: test_transparency)
    data = recv_until_eof(s)
    assert b"400" in data  # the server's own answer to garbage
    assert "malformed http request" in v.log_text()


H2C_UPGRADE = (b"GET /h2 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")


class Responses:
    """Reads the responses (each with a Content-Length) that come on socket
    s, one at a time: response() returns (status, body)."""

    def __init__(self, s, timeout=3):
        s.settimeout(timeout)
        self.s = s
        self.buf = b""

    def _more(self):
        d = self.s.recv(65536)
        assert d, "closed after %r" % self.buf
        self.buf += d

    def response(self):
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lengths = [int(h.split(b":")[1]) for h in head.split(b"\r\n")
                   if h.lower().startswith(b"content-length")]
        assert head.startswith(b"HTTP/1.1 ") and lengths, "not a response: %r" % head
        while len(rest) < lengths[0]:
            self._more()
            rest = self.buf.partition(b"\r\n\r\n")[2]
        self.buf = rest[lengths[0]:]
        return int(head.split(b" ")[1]), rest[:lengths[0]]


@pytest.mark.parametrize("pipelined", [False, True])
def test_an_upgrade_request_that_gets_an_error_stays_http(http_server, vaurien, pipelined):
    # transient: the first request (the Upgrade) gets the error, then all pass
    v = vaurien("--protocol", "http", "--behavior", "100:transient",
                "--behavior-transient-status", "503", backend_port=http_server.server_port)
    s = v.connect()
    r = Responses(s)
    nxt = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
    if pipelined:
        s.sendall(H2C_UPGRADE + nxt)
        assert r.response() == (503, b"Service Unavailable")
    else:
        s.sendall(H2C_UPGRADE)
        assert r.response() == (503, b"Service Unavailable")
        s.sendall(nxt)
    assert r.response() == (200, b"path=/next")
    s.sendall(b"GET /last HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.response() == (200, b"path=/last")
    s.close()
    assert http_server.hits == ["/next", "/last"]  # the Upgrade was never sent


def test_an_upgrade_the_backend_declines_stays_http(http_server, vaurien):
    # the Upgrade passes and gets the backend's 200; the next request draws
    # an error, the one after passes: framing goes on as before
    v = vaurien("--protocol", "http", "--behavior", "100:transient",
                "--behavior-transient-warmup", "1", "--behavior-transient-status", "503",
                backend_port=http_server.server_port)
    s = v.connect()
    r = Responses(s)
    s.sendall(H2C_UPGRADE)
    assert r.response() == (200, b"path=/h2")
    s.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.response() == (503, b"Service Unavailable")
    s.sendall(b"GET /last HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.response() == (200, b"path=/last")
    s.close()
    assert http_server.hits == ["/h2", "/last"]
    assert "upgraded" not in v.log_text()


def test_a_request_pipelined_behind_a_declined_upgrade_is_answered(http_server, vaurien):
    # the framer holds the GET while the upgrade is pending; the backend's
    # 200 (no 101) must let it through without the client sending more
    v = vaurien("--protocol", "http", backend_port=http_server.server_port)
    s = v.connect()
    r = Responses(s)
    s.sendall(H2C_UPGRADE + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.response() == (200, b"path=/h2")
    assert r.response() == (200, b"path=/next")
    s.close()


def test_curl_http2_upgrade_after_an_error_on_a_reused_connection(http_server, vaurien):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("no curl")
    v = vaurien("--protocol", "http", "--behavior", "100:transient",
                "--behavior-transient-status", "503", backend_port=http_server.server_port)
    url = "http://127.0.0.1:%d" % v.port
    # curl --http2 asks for h2c on each request (Upgrade: h2c) and reuses
    # the connection after the 503
    out = subprocess.run([curl, "-sS", "--http2", "-m", "5", "-w", "%{http_code} %{num_connects}\\n",
                          "-o", "/dev/null", url + "/a", "-o", "/dev/null", url + "/b"],
                         capture_output=True, timeout=15)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(b"\n")[:2] == [b"503 1", b"200 0"]
    assert http_server.hits == ["/b"]


CONNECT = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"


def test_connect_turns_into_a_tunnel(http_server, vaurien):
    v = vaurien("--protocol", "http", backend_port=http_server.server_port)
    s = v.connect()
    s.sendall(CONNECT)
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1000)
    assert head.startswith(b"HTTP/1.1 200")
    msg = b"\x16\x03\x01 not http"
    s.sendall(msg)
    assert recv_exactly(s, len(msg)) == msg
    s.close()
    assert "upgraded" in v.log_text()


def test_a_connect_that_gets_an_error_stays_http(http_server, vaurien):
    # the CONNECT is answered by the proxy and never sent: no tunnel opens
    # behind the client's back, and the client goes on in HTTP
    v = vaurien("--protocol", "http", "--behavior", "100:transient",
                "--behavior-transient-status", "503", backend_port=http_server.server_port)
    s = v.connect()
    r = Responses(s)
    s.sendall(CONNECT)
    assert r.response() == (503, b"Service Unavailable")
    s.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.response() == (200, b"path=/next")
    s.close()
    assert http_server.hits == ["/next"]


def test_a_head_deadline_answers_408_after_the_replies_due(http_server, vaurien):
    v = vaurien("--protocol", "http", "--protocol-http-head-timeout", "0.5",
                backend_port=http_server.server_port)
    s = v.connect()
    # one whole request, then a slow-loris head: a byte every 0.1 s
    s.sendall(b"GET /n/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /n/2 HTTP/1.1\r\n")
    t0 = time.monotonic()
    s.settimeout(0.1)
    got = b""
    slow = b"X-Slow: 1\r\n" * 100
    for i in range(len(slow)):
        if time.monotonic() - t0 > 5:
            break
        try:
            s.send(slow[i:i + 1])
        except OSError:
            break
        try:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        except socket.timeout:
            pass
    elapsed = time.monotonic() - t0
    s.close()
    first, _, rest = got.partition(b"path=/n/1")
    assert first.startswith(b"HTTP/1.1 200"), got
    assert rest.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), got
    assert b"Connection: close\r\n" in rest
    assert 0.4 < elapsed < 3, elapsed
    assert "no whole request head" in v.log_text()


def test_without_a_head_deadline_a_slow_head_is_waited_for(http_server, vaurien):
    v = vaurien("--protocol", "http", backend_port=http_server.server_port)
    s = v.connect()
    head = b"GET /n/3 HTTP/1.1\r\nHost: x\r\n\r\n"
    for i in range(len(head)):  # about 2 s in all
        s.sendall(head[i:i + 1])
        time.sleep(0.06)
    s.settimeout(5)
    assert s.recv(65536).startswith(b"HTTP/1.1 200")
    s.close()


def test_the_host_rewrite_touches_heads_only_when_a_body_comes_in_parts(http_server, vaurien):
    # a body in two reads, holding a Host line of its own, then a pipelined
    # request: the body passes untouched, the next head is rewritten
    port = http_server.server_port
    v = vaurien("--protocol", "http", "--protocol-http-overwrite-host-header", "true",
                backend_port=port)
    body = b"line1\nHost: keep-me\nline3\n"
    s = v.connect()
    s.sendall(b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body[:3]))
    time.sleep(0.2)
    s.sendall(body[3:] + b"GET /host HTTP/1.1\r\nHost: h\r\n\r\n")
    r = Responses(s)
    assert r.response() == (200, b"got %d bytes: %s" % (len(body), body))
    assert r.response() == (200, b"127.0.0.1:%d" % port)
    s.close()
    assert "malformed" not in v.log_text()
