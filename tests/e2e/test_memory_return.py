"""Freed memory goes back to the system: after many connections close, and
after many proxies are deleted, the proxy's RSS returns near its start.

What kept it before: libevent's 20-byte per-descriptor slots, allocated at
accept time between the connections' buffers and kept for the life of the
event base, left one live object in nearly every heap page, so malloc_trim
could return none of them (src/net/mem.h)."""
import socket
import time

import pytest

from conftest import SANITIZED, HoldBackend, rss_kb, wait_until

pytestmark = pytest.mark.skipif(SANITIZED, reason="RSS means nothing under ASan")

MB = 1024


def settled_rss(pid, bound_kb, timeout=5.0):
    """RSS once it is within bound_kb (trims run at most once a second),
    or the last value read at the timeout."""
    last = [rss_kb(pid)]

    def under():
        last[0] = rss_kb(pid)
        return last[0] <= bound_kb
    wait_until(under, timeout=timeout, step=0.1)
    return last[0]


N_CONNS = 5000


def test_rss_returns_after_5000_idle_connections_close(vaurien, nofile):
    if nofile < 2 * N_CONNS + 500:
        pytest.skip("the descriptor hard limit (%d) is below %d" % (nofile, 2 * N_CONNS + 500))
    be = HoldBackend()
    try:
        v = vaurien(backend_port=be.port)
        # one round trip first, so what is set up once is in the start figure
        s = v.connect()
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        s.close()
        assert wait_until(lambda: be.open == 0)
        time.sleep(1.2)  # the trim after it
        start = rss_kb(v.proc.pid)

        conns = [socket.create_connection(("127.0.0.1", v.port), timeout=10)
                 for _ in range(N_CONNS)]
        assert wait_until(lambda: be.open == N_CONNS, timeout=20), be.open
        for s in conns:  # a byte each way through every one
            s.sendall(b"y")
        for s in conns:
            assert s.recv(1) == b"y"
        held = rss_kb(v.proc.pid)
        # about 3.5 KB a connection: the test means something
        assert held - start > 8 * MB, (start, held)

        for s in conns:
            s.close()
        assert wait_until(lambda: be.open == 0, timeout=20), be.open
        end = settled_rss(v.proc.pid, start + 2 * MB)
        # before: 14.6 MB were kept (0.5 MB of it in use)
        assert end - start <= 2 * MB, "RSS %d kB at start, %d kB with %d open, %d kB after" % (
            start, held, N_CONNS, end)

        # and the proxy serves as before
        s = v.connect()
        s.sendall(b"z")
        assert s.recv(1) == b"z"
        s.close()
    finally:
        be.close()


N_PROXIES = 2000


def test_rss_returns_after_2000_proxies_are_deleted(api, nofile):
    pid = api.proc.pid
    upstream = "127.0.0.1:9"  # never connected to
    api.call("GET", "/version")
    time.sleep(0.2)
    start = rss_kb(pid)
    for i in range(N_PROXIES):
        st, body, _ = api.call("POST", "/proxies", {"name": "m%d" % i, "listen": "127.0.0.1:0",
                                                    "upstream": upstream})
        assert st == 201, body
    held = rss_kb(pid)
    # about 7 KB a proxy (its struct, its configuration snapshot)
    assert held - start > 8 * MB, (start, held)
    for i in range(N_PROXIES):
        st, body, _ = api.call("DELETE", "/proxies/m%d" % i)
        assert st == 204, body
    # What may stay: libevent's slot for each descriptor number the
    # listeners used (32 bytes each, packed), its descriptor table (8 bytes
    # each), and what the allocator keeps around them: under 0.2 MB for
    # 2000. 1 MB leaves room for the API's own buffers; before, 14.5 MB
    # stayed.
    end = settled_rss(pid, start + 1 * MB)
    assert end - start <= 1 * MB, "RSS %d kB at start, %d kB with %d proxies, %d kB after" % (
        start, held, N_PROXIES, end)
    st, body, _ = api.call("GET", "/proxies")
    assert st == 200 and body == {}
