"""The zero-copy path and its hand-over to the normal path."""
import hashlib
import os
import socket
import struct
import threading
import time

import pytest

from conftest import Api, Backend, free_port, recv_exactly, recv_until_eof, wait_until


def stream_through(port, data, during):
    """Sends data through port to an echo backend while during() runs;
    returns what came back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    got = bytearray()

    def reader():
        while len(got) < len(data):
            d = s.recv(1 << 20)
            if not d:
                break
            got.extend(d)

    r = threading.Thread(target=reader)
    r.start()

    def writer():
        for i in range(0, len(data), 65536):
            s.sendall(data[i:i + 65536])
            time.sleep(0.001)

    w = threading.Thread(target=writer)
    w.start()
    during()
    w.join(60)
    r.join(60)
    s.close()
    return bytes(got)


@pytest.fixture
def http_proxy(backend):
    port, proxy_port = free_port(), free_port()
    a = Api(["--proxy", "127.0.0.1:%d" % proxy_port, "--backend", "127.0.0.1:%d" % backend.port,
             "--http", "--http-host", "127.0.0.1", "--http-port", str(port)], port)
    a.proxy_port = proxy_port
    yield a
    rc, err = a.stop()
    assert rc == 0, err


def log_of(api):
    with open(api.log) as f:
        return f.read()


def test_a_behavior_switched_on_and_off_mid_stream_loses_nothing(http_proxy):
    data = os.urandom(24 * 1024 * 1024)

    def toggle():
        for _ in range(3):
            time.sleep(0.15)
            http_proxy.call("PUT", "/behavior", {"name": "delay", "sleep": 0.002})
            time.sleep(0.15)
            http_proxy.call("PUT", "/behavior", {"name": "dummy"})

    got = stream_through(http_proxy.proxy_port, data, toggle)
    assert len(got) == len(data)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    log = log_of(http_proxy)
    assert "on the fast path" in log and "left the fast path" in log
    assert log.count("on the fast path") >= 2  # it went back onto it


def test_a_toxic_added_and_removed_mid_stream_loses_nothing(api, backend):
    st, p, _ = api.call("POST", "/proxies", {"name": "f", "listen": "127.0.0.1:0",
                                             "upstream": "127.0.0.1:%d" % backend.port})
    port = int(p["listen"].rsplit(":", 1)[1])
    data = os.urandom(16 * 1024 * 1024)

    def toggle():
        for i in range(4):
            time.sleep(0.1)
            api.call("POST", "/proxies/f/toxics", {"type": "latency", "name": "l",
                                                   "stream": "upstream" if i % 2 else "downstream",
                                                   "attributes": {"latency": 3}})
            time.sleep(0.1)
            api.call("DELETE", "/proxies/f/toxics/l")

    got = stream_through(port, data, toggle)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_half_close_on_the_fast_path(backend, vaurien):
    v = vaurien(backend_port=backend.port)
    s = v.connect()
    payload = os.urandom(3 * 1024 * 1024)
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    assert recv_until_eof(s, timeout=10) == payload
    s.close()
    assert "on the fast path" in v.log_text()


class Resetter:
    """A backend that resets each connection once it has read something."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.recv(100)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()


def test_a_backend_reset_reaches_the_client_on_the_fast_path(vaurien):
    b = Resetter()
    try:
        v = vaurien(backend_port=b.port)
        s = v.connect()
        s.sendall(b"reset me")
        with pytest.raises(ConnectionResetError):
            for _ in range(20):
                if not s.recv(100):
                    break
                time.sleep(0.05)
        s.close()
        assert "on the fast path" in v.log_text()
    finally:
        b.sock.close()


def test_a_client_reset_reaches_the_backend(vaurien):
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    try:
        v = vaurien(backend_port=lst.getsockname()[1])
        s = v.connect()
        s.sendall(b"hello")
        conn, _ = lst.accept()
        conn.settimeout(5)
        assert conn.recv(5) == b"hello"
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        with pytest.raises(ConnectionResetError):
            for _ in range(20):
                if not conn.recv(100):
                    break
                time.sleep(0.05)
        conn.close()
    finally:
        lst.close()
