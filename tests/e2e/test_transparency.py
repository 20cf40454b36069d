"""Framers as transparent as a wire (issue 11): what a real server does is
what the client sees, through the proxy as directly."""
import socket
import time

import pytest

from conftest import SANITIZED, HoldBackend, rss_kb, wait_until


def write_until_closed_then_read(port, rounds):
    """A client writes a protocol error and then more, until the server's
    close makes a write fail; then it reads. Returns how many rounds lost
    the server's error reply."""
    payload = b"*abc\r\n" + b"x" * 65536
    lost = 0
    for _ in range(rounds):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            for _ in range(400):  # at most 26 MB: the server closes long before
                s.sendall(payload)
        except OSError:
            pass
        got = b""
        deadline = time.monotonic() + 5
        try:
            while time.monotonic() < deadline:
                d = s.recv(65536)
                if not d:
                    break
                got += d
        except OSError:
            pass
        s.close()
        if b"-ERR Protocol error" not in got:
            lost += 1
    return lost


@pytest.mark.parametrize("protocol", ["redis", "tcp"])
def test_the_servers_last_reply_before_its_reset_is_not_lost(vaurien, redis_server, protocol):
    # redis answers `*abc` with -ERR Protocol error and closes with our
    # bytes unread: its kernel resets. Direct, the client reads the error.
    assert write_until_closed_then_read(redis_server, 20) == 0, "direct"
    v = vaurien("--protocol", protocol, "--log-level", "info", backend_port=redis_server)
    assert write_until_closed_then_read(v.port, 200) == 0


@pytest.fixture(scope="module")
def tls_cert(tmp_path_factory):
    """A self-signed certificate for localhost / 127.0.0.1 (openssl)."""
    import subprocess
    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def tls_echo(tls_cert):
    """A TLS server on 127.0.0.1 that echoes one line per connection."""
    import ssl
    import threading
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*tls_cert)
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(16)

    def serve():
        while True:
            try:
                c, _ = lst.accept()
            except OSError:
                return
            try:
                c.settimeout(5)
                with ctx.wrap_socket(c, server_side=True) as t:
                    line = b""
                    while not line.endswith(b"\n"):
                        d = t.recv(4096)
                        if not d:
                            break
                        line += d
                    t.sendall(b"echo: " + line)
            except OSError:
                pass
    threading.Thread(target=serve, daemon=True).start()
    yield lst.getsockname()[1]
    lst.close()


# (mysql negotiates TLS inside its protocol: a mysql client's first packet
# may begin with the same bytes, so it is not looked for there)
@pytest.mark.parametrize("protocol", ["redis", "memcache", "smtp", "http"])
def test_a_tls_client_through_a_framed_protocol_completes_its_handshake(
        vaurien, tls_echo, tls_cert, protocol):
    import ssl
    v = vaurien("--protocol", protocol, "--log-level", "info", backend_port=tls_echo)
    ctx = ssl.create_default_context(cafile=tls_cert[0])
    with socket.create_connection(("127.0.0.1", v.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            t.sendall(b"PING over TLS\n")
            got = b""
            while not got.endswith(b"\n"):
                d = t.recv(4096)
                if not d:
                    break
                got += d
    assert got == b"echo: PING over TLS\n"
    assert "the client speaks TLS" in v.log_text()


@pytest.mark.skipif(SANITIZED, reason="RSS means nothing under ASan")
@pytest.mark.parametrize("protocol", ["tcp", "redis", "memcache", "http"])
def test_an_idle_framed_connection_costs_no_more_than_a_tcp_one(vaurien, nofile, protocol):
    """3000 idle connections: at most 4 KB each (the framer's state and
    queues are made when the first bytes come)."""
    n = 3000
    if nofile < 2 * n + 500:
        pytest.skip("the descriptor hard limit (%d) is too low" % nofile)
    b = HoldBackend()
    clients = []
    try:
        v = vaurien("--protocol", protocol, "--log-level", "info", backend_port=b.port)
        start = rss_kb(v.proc.pid)
        clients = [socket.create_connection(("127.0.0.1", v.port), timeout=10) for _ in range(n)]
        assert wait_until(lambda: b.open >= n, timeout=30), "%d of %d reached the backend" % (
            b.open, n)
        time.sleep(0.5)
        per = (rss_kb(v.proc.pid) - start) * 1024 / n
    finally:
        for c in clients:
            c.close()
        b.close()
    assert per <= 4096, "%.0f bytes per idle %s connection" % (per, protocol)
