"""--protocol http2: h2c with prior knowledge, relayed stream by stream.

Real peers: nghttpd (Debian's nghttp2-server) as the h2c backend, nghttp
(nghttp2-client) and curl --http2-prior-knowledge as clients. nghttp opens
every URL it is given as a stream of one connection, so what one stream
gets and what the others get is seen on the same connection.
"""
import os
import re
import shutil
import subprocess

import pytest

from conftest import SANITIZED, free_port, wait_until, port_open, server_process

pytestmark = pytest.mark.skipif(
    not (shutil.which("nghttpd") and shutil.which("nghttp")),
    reason="needs nghttp2-server and nghttp2-client")

BIG = 300_000


@pytest.fixture
def h2_backend(tmp_path):
    """nghttpd without TLS on a free port, serving tmp_path/docs and echoing
    POST bodies; yields (port, docs dir)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.html").write_bytes(b"hello h2\n")
    (docs / "big.bin").write_bytes(os.urandom(BIG))
    port = free_port()
    with server_process(["nghttpd", "--no-tls", "--echo-upload", "-d", str(docs),
                         str(port)], port, "nghttpd"):
        yield port, docs


def url(v, path):
    return "http://127.0.0.1:%d%s" % (v.port, path)


def curl(*args, timeout=10):
    return subprocess.run(["curl", "-sS", "--http2-prior-knowledge",
                           "--max-time", str(timeout)] + list(args),
                          capture_output=True, timeout=timeout + 5)


def _secs(text):
    """nghttp's times: +885us, +503.16ms, +1.2s."""
    m = re.fullmatch(r"\+?([\d.]+)(us|ms|s)", text)
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]
    return float(m.group(1)) * scale


def nghttp(v, *paths, extra=(), timeout=10):
    """Gets paths as streams of one connection; returns {path: (status,
    size text, response end in seconds)} from nghttp's statistics."""
    r = subprocess.run(["nghttp", "-n", "-s", "-t", str(timeout)] + list(extra) +
                       [url(v, p) for p in paths],
                       capture_output=True, timeout=timeout + 5, text=True)
    out = {}
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) == 7 and f[0].isdigit():
            out[f[6]] = (int(f[4]), f[5], _secs(f[1]))
    assert len(out) == len(paths), "nghttp: %s %s" % (r.stdout, r.stderr)
    return out


def nghttp_done(v, *paths):
    """Gets paths as streams of one connection; returns {path: status} of
    the streams that completed (the others were reset or refused)."""
    r = subprocess.run(["nghttp", "-n", "-s", "-t", "5"] + [url(v, p) for p in paths],
                       capture_output=True, text=True, timeout=10)
    rows = [line.split() for line in r.stdout.splitlines()]
    return {f[6]: int(f[4]) for f in rows if len(f) == 7 and f[0].isdigit()}


def test_curl_gets_the_backends_bytes_intact(vaurien, h2_backend):
    port, docs = h2_backend
    v = vaurien("--protocol", "http2", backend_port=port)
    r = curl(url(v, "/index.html"), "-w", "%{http_code} %{http_version}")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello h2\n200 2"
    r = curl(url(v, "/big.bin"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == (docs / "big.bin").read_bytes()


def test_many_streams_of_one_connection_all_pass(vaurien, h2_backend):
    port, _ = h2_backend
    v = vaurien("--protocol", "http2", backend_port=port)
    got = nghttp(v, "/index.html", "/big.bin", "/missing")
    assert got["/index.html"][0] == 200
    assert got["/big.bin"][0] == 200
    assert got["/missing"][0] == 404  # the backend's own answer


def test_a_posted_body_reaches_the_backend_whole(vaurien, h2_backend, tmp_path):
    """1 MiB up, echoed back: the request body is relayed within flow
    control (the default window is 64 KiB) in both directions."""
    port, _ = h2_backend
    body = os.urandom(1 << 20)
    (tmp_path / "up.bin").write_bytes(body)
    v = vaurien("--protocol", "http2", backend_port=port)
    r = curl(url(v, "/echo"), "--data-binary", "@" + str(tmp_path / "up.bin"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == body


def test_error_answers_the_matched_stream_and_the_others_go_on(vaurien, h2_backend):
    port, _ = h2_backend
    v = vaurien("--protocol", "http2", "--behavior", "100:error",
                "--behavior-error-match", "path=/api/*",
                "--behavior-error-status", "502", backend_port=port)
    got = nghttp(v, "/index.html", "/api/users", "/big.bin")
    assert got["/api/users"][0] == 502
    assert got["/index.html"][0] == 200
    assert got["/big.bin"] == (200, "292K", got["/big.bin"][2])


def test_error_status_defaults_to_503(vaurien, h2_backend):
    port, _ = h2_backend
    v = vaurien("--protocol", "http2", "--behavior", "100:error",
                backend_port=port)
    r = curl(url(v, "/index.html"), "-w", "\n%{http_code}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(b"\n503")


def test_error_matches_the_method(vaurien, h2_backend, tmp_path):
    port, _ = h2_backend
    (tmp_path / "up.bin").write_bytes(b"x" * 100)
    v = vaurien("--protocol", "http2", "--behavior", "100:error",
                "--behavior-error-match", "method=POST", backend_port=port)
    r = curl(url(v, "/index.html"), "-w", "\n%{http_code}")
    assert r.stdout == b"hello h2\n\n200"
    r = curl(url(v, "/echo"), "--data-binary", "@" + str(tmp_path / "up.bin"),
             "-w", "\n%{http_code}")
    assert r.stdout.endswith(b"\n503")


def test_delay_holds_one_stream_only(vaurien, h2_backend):
    port, _ = h2_backend
    v = vaurien("--protocol", "http2", "--behavior", "100:delay",
                "--behavior-delay-sleep", "0.5",
                "--behavior-delay-match", "path=/big.bin", backend_port=port)
    got = nghttp(v, "/index.html", "/big.bin")
    assert got["/index.html"][0] == 200 and got["/big.bin"][0] == 200
    assert got["/index.html"][2] < 0.3
    assert 0.45 <= got["/big.bin"][2] < 2.0


def test_garbage_instead_of_the_preface_is_closed_without_a_reply(vaurien, h2_backend):
    port, _ = h2_backend
    v = vaurien("--protocol", "http2", backend_port=port)
    assert _http1(v, b"\x16\x03\x01garbage that is no request\r\n\r\n") == b""
    r = curl(url(v, "/index.html"))  # the proxy goes on serving
    assert r.stdout == b"hello h2\n"


def test_abort_resets_the_stream_and_the_others_go_on(vaurien, h2_backend):
    port, _ = h2_backend
    v = vaurien("--protocol", "http2", "--behavior", "100:abort",
                "--behavior-abort-match", "path=/big.bin", backend_port=port)
    r = curl(url(v, "/big.bin"), "-o", os.devnull)
    assert r.returncode == 92, r.stderr  # curl: HTTP/2 stream error
    assert b"INTERNAL_ERROR" in r.stderr
    assert nghttp_done(v, "/index.html", "/big.bin") == {"/index.html": 200}


def test_hang_never_answers_the_stream(vaurien, h2_backend):
    port, _ = h2_backend
    v = vaurien("--protocol", "http2", "--behavior", "100:hang",
                "--behavior-hang-match", "path=/big.bin", backend_port=port)
    r = curl(url(v, "/big.bin"), "-o", os.devnull, timeout=1)
    assert r.returncode == 28  # curl: timed out
    r = curl(url(v, "/index.html"))
    assert r.returncode == 0 and r.stdout == b"hello h2\n"


def test_blackout_refuses_the_stream_and_ends_the_connection(vaurien, h2_backend):
    port, _ = h2_backend
    v = vaurien("--protocol", "http2", "--behavior", "100:blackout",
                "--behavior-blackout-match", "path=/big.bin", backend_port=port)
    assert nghttp_done(v, "/index.html", "/big.bin") == {"/index.html": 200}
    assert wait_until(lambda: "closed (both sides finished)" in v.log_text(),
                      timeout=5), v.log_text()[-2000:]


def test_the_session_ends_when_the_client_is_done(vaurien, h2_backend):
    port, _ = h2_backend
    v = vaurien("--protocol", "http2", backend_port=port)
    nghttp(v, "/index.html", "/big.bin")
    assert wait_until(lambda: "closed (both sides finished)" in v.log_text(),
                      timeout=5), v.log_text()[-2000:]


@pytest.mark.parametrize("start", [b"PRI * HTTP", b"GET / HTTP/1.1\r\nHost: x\r\n"])
def test_a_client_that_leaves_before_its_preface_frees_both_sides(vaurien, h2_backend, start):
    """The backend (nghttpd keeps idle connections 30 s) must not hold the
    descriptors of clients that left mid-preface or mid-upgrade head."""
    import socket
    port, _ = h2_backend
    v = vaurien("--protocol", "http2", backend_port=port)
    fds = lambda: len(os.listdir("/proc/%d/fd" % v.proc.pid))
    idle = fds()
    for _ in range(20):
        c = socket.create_connection(("127.0.0.1", v.port), timeout=5)
        c.sendall(start)
        c.close()
    assert wait_until(lambda: fds() <= idle, timeout=5), (idle, fds())


@pytest.fixture
def h2_tls_backend(tmp_path):
    """nghttpd with TLS (a self-signed certificate made now); yields its
    port."""
    docs = tmp_path / "tlsdocs"
    docs.mkdir()
    (docs / "index.html").write_bytes(b"hello h2 over tls\n")
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1",
                    "-subj", "/CN=127.0.0.1"], check=True, capture_output=True,
                   timeout=30)
    port = free_port()
    with server_process(["nghttpd", "-d", str(docs), str(port), str(key), str(cert)],
                        port, "nghttpd"):
        yield port


def test_h2_over_tls_is_picked_by_alpn_when_the_proxy_terminates(vaurien, h2_backend):
    port, _ = h2_backend
    v = vaurien("--protocol", "http2", "--proxy-tls", backend_port=port)
    r = subprocess.run(["curl", "-sSk", "--http2", "--max-time", "10",
                        "https://127.0.0.1:%d/index.html" % v.port,
                        "-w", "\n%{http_version}"], capture_output=True, timeout=15)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello h2\n\n2"


def test_h2_over_tls_on_both_sides(vaurien, h2_tls_backend):
    v = vaurien("--protocol", "http2", "--proxy-tls", "--backend-tls",
                "--backend-tls-insecure", "--behavior", "100:error",
                "--behavior-error-match", "path=/api/*", backend_port=h2_tls_backend)
    base = "https://127.0.0.1:%d" % v.port
    r = subprocess.run(["curl", "-sSk", "--http2", "--max-time", "10",
                        base + "/index.html", "-w", "\n%{http_version}"],
                       capture_output=True, timeout=15)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello h2 over tls\n\n2"
    r = subprocess.run(["curl", "-sSk", "--http2", "--max-time", "10",
                        base + "/api/x", "-o", os.devnull, "-w", "%{http_code}"],
                       capture_output=True, timeout=15)
    assert r.stdout == b"503"
    assert "ALPN h2" in v.log_text()


def test_an_h2c_upgrade_becomes_stream_1(vaurien, h2_backend):
    port, docs = h2_backend
    v = vaurien("--protocol", "http2", backend_port=port)
    r = subprocess.run(["curl", "-sS", "--http2", "--max-time", "10",
                        url(v, "/big.bin")], capture_output=True, timeout=15)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (docs / "big.bin").read_bytes()
    got = nghttp(v, "/index.html", "/missing", extra=("-u",))
    assert got["/index.html"][0] == 200 and got["/missing"][0] == 404


def test_an_h2c_upgrade_gets_its_fault(vaurien, h2_backend):
    port, _ = h2_backend
    v = vaurien("--protocol", "http2", "--behavior", "100:error",
                "--behavior-error-status", "429", backend_port=port)
    r = subprocess.run(["curl", "-sS", "--http2", "--max-time", "10",
                        url(v, "/index.html"), "-o", os.devnull, "-w",
                        "%{http_code} %{http_version}"],
                       capture_output=True, timeout=15)
    assert r.stdout == b"429 2"


def test_the_journal_lists_the_faulted_stream(vaurien, h2_backend, tmp_path):
    import json
    port, _ = h2_backend
    journal = tmp_path / "j.jsonl"
    v = vaurien("--protocol", "http2", "--behavior", "100:error",
                "--behavior-error-match", "path=/api/*", "--journal", str(journal),
                backend_port=port)
    got = nghttp(v, "/index.html", "/api/x")
    assert got["/api/x"][0] == 503

    def faults():
        if not journal.exists():
            return []
        return [e for e in map(json.loads, journal.read_text().splitlines())
                if e["kind"] == "fault"]
    assert wait_until(lambda: len(faults()) == 1, timeout=5)
    e = faults()[0]
    assert e["request"] == "GET /api/x" and e["behavior"] == "error"
    assert e["code"] == 503 and e["outcome"].startswith("answered: 503")


def test_a_latency_toxic_delays_an_http2_connection(api, h2_backend):
    """Frames leave through the session's pipes: byte toxics act on them."""
    import time
    port, _ = h2_backend
    st, p, _ = api.call("POST", "/proxies", {
        "name": "h2", "listen": "127.0.0.1:0", "protocol": "http2",
        "upstream": "127.0.0.1:%d" % port})
    assert st == 201, p
    listen = int(p["listen"].rsplit(":", 1)[1])
    st, t, _ = api.call("POST", "/proxies/h2/toxics",
                        {"type": "latency", "attributes": {"latency": 300}})
    assert st == 200, t
    t0 = time.monotonic()
    r = curl("http://127.0.0.1:%d/index.html" % listen)
    took = time.monotonic() - t0
    assert r.returncode == 0 and r.stdout == b"hello h2\n", r.stderr
    assert 0.3 <= took < 3.0, took


# Adversarial peers, written with python3-h2 (hyper-h2): what the client
# sees, frame by frame, when the backend misbehaves or the client does not
# speak HTTP/2 as it should.

def recv_until(sock, done, timeout):
    """Yields what sock receives until done() or timeout seconds pass;
    yields None, last, when the peer closed."""
    import socket as _s
    import time
    end = time.monotonic() + timeout
    while not done() and time.monotonic() < end:
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            d = sock.recv(65536)
        except _s.timeout:
            return
        yield d or None
        if not d:
            return


def h2_events(sock, conn, until, timeout=5, ack=False):
    """Reads sock into conn until until(events) or the connection ends;
    returns every h2 event seen. ack: DATA is acknowledged (WINDOW_UPDATE),
    as by a client that reads its replies."""
    seen = []
    for d in recv_until(sock, lambda: until(seen), timeout):
        if d is None:
            seen.append("eof")
            break
        evs = conn.receive_data(d)
        for e in evs:
            if ack and type(e).__name__ == "DataReceived" and e.flow_controlled_length:
                conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        seen += evs
        out = conn.data_to_send()
        if out:
            try:
                sock.sendall(out)
            except OSError:
                pass
    return seen


def h2_client(v, *heads):
    """Opens a prior-knowledge connection to v and sends one bodiless GET
    per head (a list of extra (name, value) headers); returns (socket,
    h2 connection)."""
    import h2.config
    import h2.connection
    sock = v.connect()
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    for i, extra in enumerate(heads):
        conn.send_headers(1 + 2 * i, [(":method", "GET"), (":path", "/index.html"),
                                      (":scheme", "http"), (":authority", "x")] +
                          list(extra), end_stream=True)
    sock.sendall(conn.data_to_send())
    return sock, conn


class RawBackend:
    """A backend on a free port that runs serve(conn socket) for each
    connection, in a thread; holds what it accepted until closed."""

    def __init__(self, serve):
        import socket as _s
        import threading
        self.lsock = _s.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.serve = serve
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self.conns.append(c)
            try:
                self.serve(c)
            except OSError:
                pass

    def close(self):
        self.lsock.close()
        for c in self.conns:
            c.close()


def _kinds(events, kind):
    return [e for e in events if type(e).__name__ == kind]


def test_a_backend_that_breaks_http2_gets_the_clients_streams_reset(vaurien):
    """An HTTP/1 server on the backend port (it answers the preface with
    HTTP/1 and stays open): the client's stream is reset (or refused by
    the GOAWAY) and it gets a GOAWAY with INTERNAL_ERROR at once, not a
    stream that hangs."""
    def serve(c):
        c.recv(65536)
        c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        c.recv(65536)  # stays open
    b = RawBackend(serve)
    try:
        v = vaurien("--protocol", "http2", backend_port=b.port)
        sock, conn = h2_client(v, [])
        ev = h2_events(sock, conn, lambda e: _kinds(e, "ConnectionTerminated"))
        sock.close()
        resets = [(r.stream_id, r.error_code) for r in _kinds(ev, "StreamReset")]
        gone = _kinds(ev, "ConnectionTerminated")
        assert gone and gone[0].error_code == 2, ev
        # stream 1 is reset, or, when the backend broke before the proxy
        # read it, left out of the GOAWAY (never processed: retryable)
        assert resets == [(1, 2)] or (resets == [] and gone[0].last_stream_id == 0), ev
        assert not _kinds(ev, "ResponseReceived"), ev
        assert "the backend broke the protocol" in v.log_text()
    finally:
        b.close()


def h2_server_conn(c, want=2):
    """The backend's side of an h2 connection on socket c: reads the
    client's preface and its first want requests; returns (conn, request
    stream ids seen)."""
    import time
    import h2.config
    import h2.connection
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    c.sendall(conn.data_to_send())
    ids = []
    end = time.monotonic() + 5
    c.settimeout(0.5)
    while len(ids) < want and time.monotonic() < end:
        try:
            d = c.recv(65536)
        except OSError:
            continue
        if not d:
            break
        for e in conn.receive_data(d):
            if type(e).__name__ == "RequestReceived":
                ids.append(e.stream_id)
        c.sendall(conn.data_to_send())
    return conn, ids


def h2_server_conn_one(c):
    """h2_server_conn() that waits for one request only."""
    return h2_server_conn(c, want=1)


def h2_take(c, conn, d):
    """The backend's side takes bytes d and answers what h2 says to."""
    conn.receive_data(d)
    out = conn.data_to_send()
    if out:
        c.sendall(out)


def h2_server_drain(c, conn, timeout=5):
    """Keeps the backend's side of conn answering (SETTINGS acks, window
    updates) until the proxy closes or timeout passes."""
    import time
    end = time.monotonic() + timeout
    c.settimeout(0.2)
    while time.monotonic() < end:
        try:
            d = c.recv(65536)
        except OSError as e:
            if "timed out" in str(e):
                continue
            return
        if not d:
            return
        h2_take(c, conn, d)


def test_a_backend_that_closes_mid_reply_gets_the_cut_streams_reset(vaurien):
    """The backend sends one stream's head and half its body, leaves the
    other unanswered, and closes: both streams are reset toward the client
    (the part of the body already sent arrives first); neither ends as if
    it were whole."""
    def serve(c):
        conn, ids = h2_server_conn(c)
        assert len(ids) == 2
        conn.send_headers(ids[0], [(":status", "200"), ("content-length", "1000")])
        conn.send_data(ids[0], b"x" * 500)
        c.sendall(conn.data_to_send())
        import time
        time.sleep(0.3)
        c.close()
    b = RawBackend(serve)
    try:
        v = vaurien("--protocol", "http2", backend_port=b.port)
        sock, conn = h2_client(v, [], [])
        ev = h2_events(sock, conn, lambda e: len(_kinds(e, "StreamReset")) >= 2)
        sock.close()
        assert sorted((r.stream_id, r.error_code) for r in _kinds(ev, "StreamReset")) \
            == [(1, 2), (3, 2)], ev
        assert sum(len(d.data) for d in _kinds(ev, "DataReceived")) == 500, ev
        assert not _kinds(ev, "StreamEnded"), ev
    finally:
        b.close()


@pytest.mark.parametrize("protocol", ["http2", "grpc"])
def test_a_request_with_too_many_header_fields_gets_431(vaurien, h2_backend, protocol):
    """More than the proxy keeps of one head (128 fields): that stream is
    answered 431 as by a server whose limit it passed (gRPC: grpc-status
    8, RESOURCE_EXHAUSTED); another stream on the same connection
    passes."""
    port, _ = h2_backend
    v = vaurien("--protocol", protocol, backend_port=port)
    many = [("x-h%d" % i, "v") for i in range(200)]
    sock, conn = h2_client(v, many, [])
    ev = h2_events(sock, conn, lambda e: len(_kinds(e, "StreamEnded")) >= 2)
    sock.close()
    heads = {r.stream_id: dict(r.headers) for r in _kinds(ev, "ResponseReceived")}
    assert heads[3][b":status"] == b"200", ev
    if protocol == "grpc":
        assert (heads[1][b":status"], heads[1][b"grpc-status"]) == (b"200", b"8"), ev
    else:
        assert heads[1][b":status"] == b"431", ev
    assert sorted(heads) == [1, 3] and not _kinds(ev, "StreamReset"), ev


def test_abort_resets_with_the_chosen_code(vaurien, h2_backend):
    port, _ = h2_backend
    v = vaurien("--protocol", "http2", "--behavior", "100:abort",
                "--behavior-abort-code", "8", backend_port=port)
    sock, conn = h2_client(v, [])
    ev = h2_events(sock, conn, lambda e: _kinds(e, "StreamReset"))
    sock.close()
    assert [(r.stream_id, r.error_code) for r in _kinds(ev, "StreamReset")] == [(1, 8)], ev


def _http1(v, request):
    s = v.connect()
    s.sendall(request)
    s.settimeout(5)
    data = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    s.close()
    return data


@pytest.mark.parametrize("request_,status", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"505"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nHTTP2-Settings: \r\n"
     b"Content-Length: 3\r\n\r\nabc", b"505"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
     b"Upgrade: h2c\r\nHTTP2-Settings: a+b/\r\n\r\n", b"400"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20000 + b"\r\n\r\n", b"431"),
])
def test_an_http1_client_is_answered_in_http1(vaurien, h2_backend, request_, status):
    port, _ = h2_backend
    v = vaurien("--protocol", "http2", backend_port=port)
    data = _http1(v, request_)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + status + b" "), data
    assert b"Connection: close" in head
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    assert len(body) == length and body.startswith(b"vaurien: "), data
    r = curl(url(v, "/index.html"))  # the proxy goes on serving
    assert r.stdout == b"hello h2\n"


def test_a_held_stream_is_refused_when_the_backend_leaves_meanwhile(vaurien):
    """delay holds the stream 3 s; the backend closes after 0.3 s: the
    stream never reached it, so the client gets REFUSED_STREAM (safe to
    retry) at once, not after the delay."""
    import time

    def serve(c):
        import h2.config
        import h2.connection
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        c.sendall(conn.data_to_send())
        time.sleep(0.3)
        c.close()
    b = RawBackend(serve)
    try:
        v = vaurien("--protocol", "http2", "--behavior", "100:delay",
                    "--behavior-delay-sleep", "3", backend_port=b.port)
        t0 = time.monotonic()
        sock, conn = h2_client(v, [])
        ev = h2_events(sock, conn, lambda e: _kinds(e, "StreamReset"))
        took = time.monotonic() - t0
        sock.close()
        assert [(r.stream_id, r.error_code) for r in _kinds(ev, "StreamReset")] == [(1, 7)], ev
        assert took < 2.5, took
    finally:
        b.close()


@pytest.fixture
def nginx_h2c(tmp_path):
    """nginx serving HTTP/2 in clear text (prior knowledge) on a free port;
    yields the port."""
    if not shutil.which("nginx"):
        pytest.skip("needs nginx")
    root = tmp_path / "nginx"
    (root / "html").mkdir(parents=True)
    (root / "html" / "index.html").write_bytes(b"hello nginx\n")
    port = free_port()
    (root / "nginx.conf").write_text("""
daemon off;
master_process off;
worker_processes 1;
pid %(r)s/nginx.pid;
error_log %(r)s/error.log;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %(r)s/tmp;
    proxy_temp_path %(r)s/tmp;
    fastcgi_temp_path %(r)s/tmp;
    uwsgi_temp_path %(r)s/tmp;
    scgi_temp_path %(r)s/tmp;
    server {
        listen 127.0.0.1:%(p)d http2;
        root %(r)s/html;
    }
}
""" % {"r": root, "p": port})
    with server_process(["nginx", "-p", str(root), "-c", str(root / "nginx.conf")],
                        port, "nginx"):
        yield port


def h2load(v, n, *extra):
    """The requests h2load saw answered ("done": any status), and its
    status counts: {"2xx": n, ...}."""
    r = subprocess.run(["h2load", "-n", str(n)] + list(extra) +
                       ["http://127.0.0.1:%d/index.html" % v.port],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded",
                  r.stdout)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", r.stdout)
    assert m and codes, r.stdout + r.stderr
    return (int(m.group(3)), dict(zip(["2xx", "3xx", "4xx", "5xx"],
                                      map(int, codes.groups()))))


def test_h2load_through_the_proxy_to_nginx(vaurien, nginx_h2c):
    """h2load, 2 connections of 20 concurrent streams, against nginx's
    HTTP/2: every request succeeds, and with 10:error about a tenth of
    them are the proxy's 503 while the rest are nginx's 200."""
    v = vaurien("--protocol", "http2", backend_port=nginx_h2c)
    ok, codes = h2load(v, 2000, "-c", "2", "-m", "20")
    assert ok == 2000 and codes["2xx"] == 2000, codes
    v = vaurien("--protocol", "http2", "--behavior", "10:error", "--seed", "7",
                backend_port=nginx_h2c)
    ok, codes = h2load(v, 2000, "-c", "2", "-m", "20")
    assert ok == 2000 and codes["2xx"] + codes["5xx"] == 2000, codes
    assert 100 < codes["5xx"] < 300, codes


def test_a_client_that_leaves_with_a_hung_stream_frees_both_sides(vaurien):
    """hang never answers a stream; when its client closes, both sockets
    go at once (HTTP/2 has no half-close), not at the idle timeout, even
    with a backend that keeps its side open after the proxy's FIN."""
    import time

    def serve(c):
        import h2.config
        import h2.connection
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        c.sendall(conn.data_to_send())
        c.settimeout(0.2)
        end = time.monotonic() + 30
        while time.monotonic() < end:  # stays open after EOF, until closed
            try:
                if c.recv(65536) == b"":
                    time.sleep(0.2)
            except OSError as e:
                if "timed out" not in str(e):
                    return
    backends = []
    try:
        def serve_quietly(c):
            try:
                serve(c)
            except (OSError, ValueError):
                pass  # closed by the test's end
        b = RawBackend(lambda c: __import__("threading").Thread(
            target=serve_quietly, args=(c,), daemon=True).start())
        backends.append(b)
        v = vaurien("--protocol", "http2", "--behavior", "100:hang", "--timeout", "60",
                    backend_port=b.port)
        fds = lambda: len(os.listdir("/proc/%d/fd" % v.proc.pid))
        idle = fds()
        for _ in range(10):
            sock, conn = h2_client(v, [])
            h2_events(sock, conn, lambda e: _kinds(e, "SettingsAcknowledged"), timeout=2)
            sock.close()
        assert wait_until(lambda: fds() <= idle, timeout=5), (idle, fds())
    finally:
        for b in backends:
            b.close()


@pytest.mark.parametrize("before", ["true", "false"])
def test_delay_before_holds_the_request_and_after_holds_the_reply(vaurien, before):
    """delay 0.6 s: with before=true the backend gets the request that
    late; with before=false it gets it at once and the reply's head (and
    its body, gathered meanwhile) reaches the client that late. Either
    way the client waits the delay, and the body is whole."""
    import time
    seen = []

    def serve(c):
        conn, ids = h2_server_conn_one(c)
        seen.append(time.monotonic())
        conn.send_headers(ids[0], [(":status", "200")])
        for i in range(0, 50_000, 10_000):
            conn.send_data(ids[0], b"z" * 10_000, end_stream=i == 40_000)
        c.sendall(conn.data_to_send())
        h2_server_drain(c, conn)
    b = RawBackend(serve)
    try:
        v = vaurien("--protocol", "http2", "--behavior", "100:delay",
                    "--behavior-delay-sleep", "0.6", "--behavior-delay-before", before,
                    backend_port=b.port)
        t0 = time.monotonic()
        sock, conn = h2_client(v, [])
        ev = h2_events(sock, conn, lambda e: _kinds(e, "StreamEnded"), timeout=5)
        took = time.monotonic() - t0
        sock.close()
        got = b"".join(e.data for e in _kinds(ev, "DataReceived"))
        heads = _kinds(ev, "ResponseReceived")
        assert heads and got == b"z" * 50_000, ev
        assert 0.55 <= took < 3, took
        arrived = seen[0] - t0
        if before == "true":
            assert arrived >= 0.55, arrived
        else:
            assert arrived < 0.4, arrived
    finally:
        b.close()


def h2_send_flow(c, conn, sid, data, end=True, trailers=None, timeout=10):
    """The backend's side: sends data on stream sid within its flow
    control windows (reading the proxy's WINDOW_UPDATEs meanwhile), then
    trailers if given."""
    import socket as _s
    import time
    off = 0
    stop = time.monotonic() + timeout
    c.settimeout(0.1)
    while off < len(data) and time.monotonic() < stop:
        w = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
        if w > 0:
            chunk = data[off:off + w]
            off += len(chunk)
            conn.send_data(sid, chunk, end_stream=end and trailers is None and
                           off == len(data))
            c.sendall(conn.data_to_send())
            continue
        try:
            d = c.recv(65536)
        except _s.timeout:
            continue
        if not d:
            return
        h2_take(c, conn, d)
    if trailers is not None:
        conn.send_headers(sid, trailers, end_stream=True)
        c.sendall(conn.data_to_send())


@pytest.mark.parametrize("delay", ["0", "0.6"])
def test_a_reply_after_a_1xx_head_reaches_the_client_whole(vaurien, delay):
    """The backend sends 103, then 200, a body larger than the stream's
    window and trailers: the client gets all four, in order, the body
    intact, with or without a reply delay (nghttp2 calls the final head
    after a 1xx a HEADERS, not a RESPONSE: it once went missing)."""
    import time
    body = bytes(range(256)) * 1500

    def serve(c):
        conn, ids = h2_server_conn_one(c)
        conn.send_headers(ids[0], [(":status", "103"), ("link", "</a>")])
        conn.send_headers(ids[0], [(":status", "200")])
        c.sendall(conn.data_to_send())
        h2_send_flow(c, conn, ids[0], body, trailers=[("x-t", "1")])
        h2_server_drain(c, conn)
    b = RawBackend(serve)
    try:
        v = vaurien("--protocol", "http2", "--behavior", "100:delay",
                    "--behavior-delay-sleep", delay, "--behavior-delay-before", "false",
                    backend_port=b.port)
        t0 = time.monotonic()
        sock, conn = h2_client(v, [])
        ev = h2_events(sock, conn, lambda e: _kinds(e, "StreamEnded"), timeout=8,
                       ack=True)
        took = time.monotonic() - t0
        sock.close()
        order = [type(e).__name__ for e in ev
                 if type(e).__name__ in ("InformationalResponseReceived",
                                         "ResponseReceived", "TrailersReceived")]
        assert order == ["InformationalResponseReceived", "ResponseReceived",
                         "TrailersReceived"], ev
        assert b"".join(e.data for e in _kinds(ev, "DataReceived")) == body
        assert took >= float(delay) - 0.05, took
    finally:
        b.close()


def h2_frames_acking(sock, until, timeout=5):
    """Reads raw frames (hyperframe) from sock, acknowledging every DATA
    frame to its stream and the connection, until until(frames) or the
    connection ends; returns the frames, "eof" last if it ended. Unlike
    h2_events, it goes on reading after a GOAWAY (python-h2 refuses the
    frames of the streams a GOAWAY lets finish)."""
    from hyperframe.frame import Frame, DataFrame, WindowUpdateFrame
    frames, buf = [], b""
    for d in recv_until(sock, lambda: until(frames), timeout):
        if d is None:
            frames.append("eof")
            break
        buf += d
        while len(buf) >= 9:
            f, n = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + n:
                break
            f.parse_body(memoryview(buf[9:9 + n]))
            buf = buf[9 + n:]
            frames.append(f)
            if isinstance(f, DataFrame) and f.flow_controlled_length:
                for sid in (0, f.stream_id):
                    w = WindowUpdateFrame(sid)
                    w.window_increment = f.flow_controlled_length
                    try:
                        sock.sendall(w.serialize())
                    except OSError:
                        pass  # the peer closed: what it sent is read on
    return frames


@pytest.mark.parametrize("delay", ["0", "0.6"])
def test_a_whole_reply_reaches_the_client_after_its_backend_left(vaurien, delay):
    """The backend sends a whole reply larger than the client's window
    (64 KiB), then closes: what the proxy holds of it still goes to the
    client as the client opens its window, held by a reply delay or not,
    after the GOAWAY that says stream 1 goes on; then the connection
    ends. (The backend's end used to shut the client's side at once.)"""
    import time
    body = bytes(range(256)) * 600

    def serve(c):
        conn, ids = h2_server_conn_one(c)
        conn.send_headers(ids[0], [(":status", "200")])
        h2_send_flow(c, conn, ids[0], body)
        time.sleep(0.1)
        c.close()
    b = RawBackend(serve)
    try:
        v = vaurien("--protocol", "http2", "--behavior", "100:delay",
                    "--behavior-delay-sleep", delay, "--behavior-delay-before", "false",
                    backend_port=b.port)
        sock, conn = h2_client(v, [])
        time.sleep(0.4)  # the backend is gone before the client reads
        fr = h2_frames_acking(sock, lambda f: "eof" in f, timeout=5)
        sock.close()
        kinds = [type(f).__name__ for f in fr if f != "eof"]
        data = b"".join(f.data for f in fr if type(f).__name__ == "DataFrame")
        assert data == body, kinds
        assert "RstStreamFrame" not in kinds, kinds
        last = [f for f in fr if type(f).__name__ == "DataFrame"][-1]
        assert "END_STREAM" in last.flags, kinds
        goaway = [f for f in fr if type(f).__name__ == "GoAwayFrame"]
        assert goaway and goaway[0].last_stream_id == 1, kinds
        assert fr[-1] == "eof", kinds
    finally:
        b.close()


def test_a_held_reply_does_not_stall_the_other_streams(vaurien):
    """delay before=false holds /slow's reply 2 s while its 250 kB body
    comes from the backend (almost a stream's whole window); /fast's 40 kB
    reply, sent after it on the same connection, still arrives at once:
    one held stream cannot take the whole connection's window."""
    import time
    done = {}

    def serve(c):
        conn, ids = h2_server_conn(c, want=2)
        slow, fast = ids  # the proxy opens them in the client's order
        conn.send_headers(slow, [(":status", "200")])
        h2_send_flow(c, conn, slow, b"s" * 250_000)
        conn.send_headers(fast, [(":status", "200")])
        h2_send_flow(c, conn, fast, b"f" * 40_000)
        h2_server_drain(c, conn)
    b = RawBackend(serve)
    try:
        v = vaurien("--protocol", "http2", "--behavior", "100:delay",
                    "--behavior-delay-sleep", "2", "--behavior-delay-before", "false",
                    "--behavior-delay-match", "path=/slow", backend_port=b.port)
        import h2.config
        import h2.connection
        sock = v.connect()
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.increment_flow_control_window(1 << 24)
        for sid, path in ((1, "/slow"), (3, "/fast")):
            conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                    (":authority", "x")], end_stream=True)
        sock.sendall(conn.data_to_send())
        t0 = time.monotonic()
        got = {1: 0, 3: 0}

        def until(ev):
            for e in ev:
                if type(e).__name__ == "StreamEnded" and e.stream_id not in done:
                    done[e.stream_id] = time.monotonic() - t0
            return len(done) == 2
        ev = h2_events(sock, conn, until, timeout=8, ack=True)
        sock.close()
        for e in _kinds(ev, "DataReceived"):
            got[e.stream_id] += len(e.data)
        assert got == {1: 250_000, 3: 40_000}, (got, done)
        assert done[3] < 1.0, done
        assert done[1] >= 1.9, done
    finally:
        b.close()


@pytest.mark.skipif(SANITIZED, reason="RSS means nothing under ASan")
def test_a_client_that_never_reads_costs_a_bounded_amount(vaurien, h2_backend):
    """8 connections, each asking 20 x 300 kB (6 MB) with windows of 16 MB
    and never reading: the proxy holds at most its windows' worth per
    connection (1 MiB of the connection's window, 256 KiB of pipe), so
    its RSS grows by well under 3 MiB per connection."""
    import socket
    import time
    import h2.config
    import h2.connection
    import h2.settings
    from conftest import rss_kb
    port, _ = h2_backend
    v = vaurien("--protocol", "http2", backend_port=port)
    start = rss_kb(v.proc.pid)
    socks = []
    try:
        for _ in range(8):
            s = v.connect()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            conn.initiate_connection()
            conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: (1 << 24)})
            conn.increment_flow_control_window(1 << 24)
            for i in range(20):
                conn.send_headers(1 + 2 * i, [(":method", "GET"), (":path", "/big.bin"),
                                              (":scheme", "http"), (":authority", "x")],
                                  end_stream=True)
            s.sendall(conn.data_to_send())
            socks.append(s)
        time.sleep(2)
        grown = rss_kb(v.proc.pid) - start
    finally:
        for s in socks:
            s.close()
    assert grown < 8 * 3 * 1024, "%d kB for 8 connections" % grown
