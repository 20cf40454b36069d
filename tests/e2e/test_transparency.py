"""Framers as transparent as a wire (issue 11): what a real server does is
what the client sees, through the proxy as directly."""
import socket
import time

import pytest


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
