"""The toxics beyond Toxiproxy's first set: packet_loss, corrupt,
slow_open, refuse, limit_time, reset_after and bandwidth_total, each
measured through a `vaurien server` proxy as a client sees it; packet_loss
and corrupt replayed with the same seed."""
import socket
import threading
import time

import pytest

from conftest import Api, Backend, free_port, recv_exactly, recv_until_eof, wait_until
from test_toxics import proxy, toxic


def events(api, behavior):
    st, body, _ = api.call("GET", "/events?kind=toxic&behavior=" + behavior)
    assert st == 200, body
    return body["events"]


def seeded_server(seed):
    port = free_port()
    return Api(["server", "-host", "127.0.0.1", "-port", str(port), "-seed", str(seed)], port)


def echo_exchange(port, chunks, pause=0.0):
    """Sends chunks one by one through an echo backend and returns all the
    client read back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    for c in chunks:
        s.sendall(c)
        if pause:
            time.sleep(pause)
    s.shutdown(socket.SHUT_WR)
    got = recv_until_eof(s, timeout=10)
    s.close()
    return got


# --- packet_loss -----------------------------------------------------------

def lossy_run(seed, n=40):
    """One connection's n chunks of 40 bytes through an upstream
    packet_loss; each chunk is sent once the previous one was either
    received by the backend or journaled as dropped, so each is one read
    and one decision. Returns (what the backend got, the drop pattern)."""
    backend = Backend("sink")
    a = seeded_server(seed)
    try:
        port = proxy(a, backend.port)
        toxic(a, type="packet_loss", stream="upstream",
              attributes={"loss_rate": 0.5, "correlation": 0.3})
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        pattern = []
        for i in range(n):
            msg = (b"<%02d>" % i) * 10
            dropped_before = len(events(a, "packet_loss"))
            got_before = len(backend.total_received())
            s.sendall(msg)
            assert wait_until(lambda: len(backend.total_received()) > got_before
                              or len(events(a, "packet_loss")) > dropped_before, timeout=5)
            pattern.append(len(backend.total_received()) == got_before)
        s.close()
        got = backend.total_received()
        for e in events(a, "packet_loss"):
            assert e["outcome"] == "chunk dropped" and e["bytes"] == 40, e
        return got, pattern
    finally:
        rc, err = a.stop()
        backend.close()
        assert rc == 0, err


def test_packet_loss_drops_whole_chunks_and_the_seed_replays_them():
    got1, pattern1 = lossy_run(7)
    got2, pattern2 = lossy_run(7)
    got3, pattern3 = lossy_run(8)
    assert got1 == got2 and pattern1 == pattern2
    assert pattern1 != pattern3
    # whole chunks, in order, each either there or not
    assert len(got1) == 40 * pattern1.count(False)
    kept = [i for i, lost in enumerate(pattern1) if not lost]
    assert got1 == b"".join((b"<%02d>" % i) * 10 for i in kept)
    assert 8 <= pattern1.count(True) <= 32, pattern1


def test_packet_loss_0_passes_everything_and_1_drops_everything(api, backend):
    port = proxy(api, backend.port)
    t = toxic(api, type="packet_loss", attributes={"loss_rate": 0})
    assert t["attributes"] == {"loss_rate": 0, "correlation": 0}
    assert echo_exchange(port, [b"abc"] * 5, pause=0.02) == b"abc" * 5
    st, _, _ = api.call("POST", "/proxies/t/toxics/packet_loss_downstream",
                        {"attributes": {"loss_rate": 1}})
    assert st == 200
    assert echo_exchange(port, [b"abc"] * 5, pause=0.02) == b""


# --- corrupt ---------------------------------------------------------------

DATA = bytes(range(256)) * 800  # 204,800 bytes


def corrupt_run(seed, rate, stream="downstream"):
    backend = Backend("echo")
    a = seeded_server(seed)
    try:
        port = proxy(a, backend.port)
        toxic(a, type="corrupt", stream=stream, attributes={"rate": rate})
        # in pieces of varied sizes: where the flips fall depends on the
        # stream's bytes, not on how they were read
        pieces = [DATA[i:i + 7000] for i in range(0, len(DATA), 7000)]
        return echo_exchange(port, pieces), events(a, "corrupt")
    finally:
        rc, err = a.stop()
        backend.close()
        assert rc == 0, err


def flipped_bits(a, b):
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b))


def test_corrupt_flips_bits_at_its_rate_and_the_seed_replays_them():
    got1, ev1 = corrupt_run(11, 0.001)
    got2, _ = corrupt_run(11, 0.001)
    got3, _ = corrupt_run(12, 0.001)
    assert len(got1) == len(got2) == len(got3) == len(DATA)
    assert got1 == got2
    assert got1 != got3
    flips = flipped_bits(got1, DATA)
    expect = len(DATA) * 8 * 0.001  # about 1638
    assert 0.8 * expect <= flips <= 1.2 * expect, flips
    assert ev1 and all(e["outcome"].endswith("bits flipped") for e in ev1)
    assert sum(int(e["outcome"].split()[0]) for e in ev1) == flips


def test_corrupt_at_rate_0_is_intact():
    got, ev = corrupt_run(11, 0)
    assert got == DATA
    assert ev == []


def test_corrupt_at_rate_1_inverts_every_byte(api, backend):
    port = proxy(api, backend.port)
    toxic(api, type="corrupt", stream="upstream", attributes={"rate": 1})
    assert echo_exchange(port, [b"\x00\xff\x0f"]) == b"\xff\x00\xf0"


# --- slow_open, refuse, limit_time, reset_after ----------------------------

def test_slow_open_delays_the_backend_and_the_first_byte(api):
    backend = Backend("echo")
    try:
        port = proxy(api, backend.port)
        toxic(api, type="slow_open", attributes={"delay": 400})
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"hello")
        assert recv_exactly(s, 5) == b"hello"
        took = time.monotonic() - t0
        assert 0.38 <= took < 0.9, took
        assert backend.first_byte_at[0] - t0 >= 0.38
        # once open, no further delay
        t1 = time.monotonic()
        s.sendall(b"again")
        assert recv_exactly(s, 5) == b"again"
        assert time.monotonic() - t1 < 0.2
        s.close()
        assert [e["held_ms"] for e in events(api, "slow_open")] == [400]
    finally:
        backend.close()


def refused(port):
    """Whether a new connection is reset before any byte comes back: at
    the connect already (the reset can beat the client's check), or at
    its first read or write."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except ConnectionResetError:
        return True
    try:
        for _ in range(20):
            s.sendall(b"x")
            if not s.recv(10):
                return False
            time.sleep(0.05)
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        s.close()
    return False


def test_refuse_closes_new_connections_while_open_ones_relay(api, backend):
    port = proxy(api, backend.port)
    before = socket.create_connection(("127.0.0.1", port), timeout=5)
    before.sendall(b"1")
    assert recv_exactly(before, 1) == b"1"
    toxic(api, type="refuse")
    for _ in range(3):
        assert refused(port)
        before.sendall(b"still")
        assert recv_exactly(before, 5) == b"still"
    assert len(events(api, "refuse")) == 3
    assert api.call("DELETE", "/proxies/t/toxics/refuse_downstream")[0] == 204
    assert echo_exchange(port, [b"back"]) == b"back"
    before.close()


def test_limit_time_closes_after_its_time(api, backend):
    port = proxy(api, backend.port)
    old = socket.create_connection(("127.0.0.1", port), timeout=5)
    old.sendall(b"o")
    assert recv_exactly(old, 1) == b"o"
    time.sleep(0.3)
    toxic(api, type="limit_time", attributes={"time": 500})
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"relayed meanwhile")
    assert recv_exactly(s, 17) == b"relayed meanwhile"
    assert recv_until_eof(s, timeout=3) == b""
    assert 0.45 <= time.monotonic() - t0 < 0.9
    s.close()
    # a connection open before the toxic: its time counts from the toxic
    assert recv_until_eof(old, timeout=3) == b""
    assert 0.45 <= time.monotonic() - t0 < 0.9
    old.close()
    assert len(events(api, "limit_time")) == 2


def test_limit_time_lengthened_mid_connection_counts_from_its_start(api, backend):
    port = proxy(api, backend.port)
    toxic(api, type="limit_time", attributes={"time": 300})
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"a")
    assert recv_exactly(s, 1) == b"a"
    st, _, _ = api.call("POST", "/proxies/t/toxics/limit_time_downstream",
                        {"attributes": {"time": 700}})
    assert st == 200
    assert recv_until_eof(s, timeout=3) == b""
    assert 0.65 <= time.monotonic() - t0 < 1.2
    s.close()


def test_reset_after_resets_once_n_bytes_arrived(api):
    src = Backend("source", size=100_000)
    try:
        port = proxy(api, src.port)
        toxic(api, type="reset_after", attributes={"bytes": 5000})
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        got = bytearray()
        with pytest.raises(ConnectionResetError):
            for _ in range(1000):
                d = s.recv(65536)
                if not d:
                    raise AssertionError("closed without a reset after %d" % len(got))
                got += d
        s.close()
        assert len(got) == 5000
        ev = events(api, "reset_after")
        assert len(ev) == 1 and ev[0]["outcome"].endswith("then reset")
    finally:
        src.close()


# --- bandwidth_total -------------------------------------------------------

def timed_downloads(port, n, size):
    """n clients download at once; returns each one's (bytes, seconds)."""
    out = [None] * n

    def one(i):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        t0 = time.monotonic()
        got = len(recv_until_eof(s, timeout=15))
        out[i] = (got, time.monotonic() - t0)
        s.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    return out


def test_bandwidth_total_is_shared_by_every_connection(api):
    size = 300_000
    src = Backend("source", size=size)
    try:
        port = proxy(api, src.port)
        toxic(api, type="bandwidth_total", attributes={"rate": 500})  # 500 KB/s
        [(got, one)] = timed_downloads(port, 1, size)
        assert got == size
        assert 0.45 <= one <= 0.9, one
        both = timed_downloads(port, 2, size)
        assert [g for g, _ in both] == [size, size]
        slowest = max(t for _, t in both)
        assert 0.95 <= slowest <= 1.7, both
        assert slowest >= 1.5 * one, (one, both)
        # the per-connection bandwidth is unchanged: two at once take
        # as long as one
        api.call("DELETE", "/proxies/t/toxics/bandwidth_total_downstream")
        toxic(api, type="bandwidth", attributes={"rate": 500})
        both = timed_downloads(port, 2, size)
        assert [g for g, _ in both] == [size, size]
        assert max(t for _, t in both) <= 0.9, both
    finally:
        src.close()


# --- the API: bounds, listing, changes while data flows ---------------------

@pytest.mark.parametrize("kind,attrs", [
    ("packet_loss", {"loss_rate": 1.5}),
    ("packet_loss", {"loss_rate": -0.1}),
    ("packet_loss", {"correlation": 2}),
    ("packet_loss", {"loss_rate": "half"}),
    ("corrupt", {"rate": 1.01}),
    ("corrupt", {"rate": -1}),
    ("slow_open", {"delay": -5}),
    ("slow_open", {"delay": 1.5}),
    ("limit_time", {"time": -1}),
    ("reset_after", {"bytes": -1}),
    ("bandwidth_total", {"rate": -1}),
])
def test_bad_attributes_get_400_and_change_nothing(api, backend, kind, attrs):
    proxy(api, backend.port)
    st, body, _ = api.call("POST", "/proxies/t/toxics", {"type": kind, "attributes": attrs})
    assert st == 400 and "error" in body, body
    assert api.call("GET", "/proxies/t/toxics")[1] == []
    toxic(api, type=kind)
    st, body, _ = api.call("POST", "/proxies/t/toxics/%s_downstream" % kind,
                           {"attributes": attrs})
    assert st == 400 and "error" in body, body


def test_the_new_toxics_are_listed_with_their_attributes(api, backend):
    proxy(api, backend.port)
    want = {
        "packet_loss": {"loss_rate": 0.1, "correlation": 0},
        "corrupt": {"rate": 0.0001},
        "slow_open": {"delay": 0},
        "refuse": {},
        "limit_time": {"time": 60000},
        "reset_after": {"bytes": 0},
        "bandwidth_total": {"rate": 0},
    }
    for kind in want:
        attrs = {"time": 60000} if kind == "limit_time" else None
        body = {"type": kind, "stream": "upstream", "toxicity": 0.5}
        if attrs:
            body["attributes"] = attrs
        toxic(api, **body)
    listed = api.call("GET", "/proxies/t/toxics")[1]
    assert {t["type"]: t["attributes"] for t in listed} == want
    assert all(t["stream"] == "upstream" and t["toxicity"] == 0.5 for t in listed)


def test_a_stream_survives_the_new_toxics_changed_while_it_flows(api, backend):
    from test_toxics import stream_while
    port = proxy(api, backend.port)
    # each leaves the bytes whole: they act, are changed and removed
    kinds = [("bandwidth_total", {"rate": 2000}), ("bandwidth_total", {"rate": 0}),
             ("corrupt", {"rate": 0}), ("packet_loss", {"loss_rate": 0}),
             ("limit_time", {"time": 60000}), ("reset_after", {"bytes": 10 ** 9}),
             ("slow_open", {"delay": 10}), ("refuse", {})]

    def step(i):
        kind, attrs = kinds[i % len(kinds)]
        stream = "upstream" if i % 2 else "downstream"
        t = toxic(api, type=kind, name="x%d" % i, stream=stream, attributes=attrs)
        time.sleep(0.002)
        if kind == "bandwidth_total":
            st, _, _ = api.call("POST", "/proxies/t/toxics/x%d" % i,
                                {"attributes": {"rate": 3000}})
            assert st == 200
        assert api.call("DELETE", "/proxies/t/toxics/%s" % t["name"])[0] == 204
    assert stream_while(port, 32768, 0.001, step) > 10
