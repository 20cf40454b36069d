"""Each toxic's effect, measured through a `vaurien server` proxy, and
live changes that never lose or reorder a byte."""
import errno
import socket
import threading
import time

import pytest

from conftest import Backend, recv_exactly, recv_until_eof, wait_until


def proxy(api, backend_port, name="t", **extra):
    body = {"name": name, "listen": "127.0.0.1:0", "upstream": "127.0.0.1:%d" % backend_port}
    body.update(extra)
    st, p, _ = api.call("POST", "/proxies", body)
    assert st == 201, p
    return int(p["listen"].rsplit(":", 1)[1])


def toxic(api, **body):
    st, t, _ = api.call("POST", "/proxies/%s/toxics" % body.pop("proxy", "t"), body)
    assert st == 200, t
    return t


def rtt(port, n=5, size=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    times = []
    for i in range(n):
        msg = (b"%d" % i).ljust(size, b".")
        t0 = time.monotonic()
        s.sendall(msg)
        assert recv_exactly(s, size, timeout=10) == msg
        times.append(time.monotonic() - t0)
    s.close()
    return times


def within_20_ms(times, want):
    """Never early; the median within 20 ms; none held twice (on 2 shared
    cores a round trip now and then waits 20-50 ms for the scheduler, with
    or without a proxy in the way)."""
    times = sorted(times)
    assert times[0] >= want, times
    assert times[len(times) // 2] < want + 0.020, times
    assert times[-1] < want + 0.090, times


def test_latency_within_20_ms(api, backend):
    port = proxy(api, backend.port)
    toxic(api, type="latency", attributes={"latency": 100})
    within_20_ms(rtt(port, n=9), 0.100)
    toxic(api, type="latency", name="up", stream="upstream", attributes={"latency": 50})
    within_20_ms(rtt(port, n=9), 0.150)


def test_latency_jitter_stays_in_its_band(api, backend):
    port = proxy(api, backend.port)
    toxic(api, type="latency", attributes={"latency": 100, "jitter": 30})
    times = rtt(port, n=12)
    assert all(0.070 <= t < 0.150 for t in times), times
    assert max(times) - min(times) > 0.01


def test_bandwidth_within_10_percent(api):
    size = 1_500_000
    src = Backend("source", size=size)
    try:
        port = proxy(api, src.port)
        toxic(api, type="bandwidth", attributes={"rate": 1000})  # 1 MB/s
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        t0 = time.monotonic()
        got = len(recv_until_eof(s, timeout=10))
        took = time.monotonic() - t0
        s.close()
        assert got == size
        assert 1.35 <= took <= 1.65, took
    finally:
        src.close()


@pytest.mark.parametrize("kind", ["bandwidth", "bandwidth_total"])
def test_bandwidth_0_holds_everything_until_removed(api, backend, kind):
    port = proxy(api, backend.port)
    toxic(api, type=kind, attributes={"rate": 0})
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"wait for it")
    s.settimeout(0.5)
    with pytest.raises(socket.timeout):
        s.recv(100)
    assert api.call("DELETE", "/proxies/t/toxics/%s_downstream" % kind)[0] == 204
    assert recv_exactly(s, 11) == b"wait for it"
    s.close()


def test_slicer_splits_and_reassembles(api):
    data = bytes(range(256)) * 400
    src = Backend("source", size=0)
    src.mode = "echo"
    try:
        port = proxy(api, src.port)
        toxic(api, type="slicer", attributes={"average_size": 100, "size_variation": 50,
                                              "delay": 200})
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(data)
        got = bytearray()
        reads = 0
        while len(got) < len(data):
            d = s.recv(65536)
            assert d
            got += d
            reads += 1
        s.close()
        assert bytes(got) == data
        assert reads > 20  # it arrived in slices
    finally:
        src.close()


def test_limit_data_passes_exactly_n_bytes_then_closes(api):
    src = Backend("source", size=100_000)
    try:
        port = proxy(api, src.port)
        toxic(api, type="limit_data", attributes={"bytes": 1234})
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert len(recv_until_eof(s)) == 1234
        s.close()
    finally:
        src.close()


def test_reset_peer_resets_also_connections_opened_before(api, backend):
    port = proxy(api, backend.port)
    before = socket.create_connection(("127.0.0.1", port), timeout=5)
    before.sendall(b"a")
    assert recv_exactly(before, 1) == b"a"
    toxic(api, type="reset_peer", stream="upstream", attributes={"timeout": 0})
    for s in (before, socket.create_connection(("127.0.0.1", port), timeout=5)):
        s.sendall(b"trigger")
        with pytest.raises(ConnectionResetError):
            for _ in range(10):
                if not s.recv(100):
                    break
                time.sleep(0.05)
        s.close()


def test_timeout_closes_after_the_delay_and_0_never(api, backend):
    port = proxy(api, backend.port)
    toxic(api, type="timeout", attributes={"timeout": 300})
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    t0 = time.monotonic()
    s.sendall(b"dropped")
    assert recv_until_eof(s, timeout=3) == b""
    assert 0.28 <= time.monotonic() - t0 < 0.6
    s.close()
    api.call("DELETE", "/proxies/t/toxics/timeout_downstream")
    toxic(api, type="timeout", name="forever", attributes={"timeout": 0})
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"dropped")
    s.settimeout(0.6)
    with pytest.raises(socket.timeout):
        s.recv(10)
    # removing it closes the connections it held
    api.call("DELETE", "/proxies/t/toxics/forever")
    assert recv_until_eof(s, timeout=3) == b""
    s.close()


def test_slow_close_delays_the_close(api):
    src = Backend("source", size=10)
    try:
        port = proxy(api, src.port)
        toxic(api, type="slow_close", attributes={"delay": 400})
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert recv_exactly(s, 10) is not None
        t0 = time.monotonic()
        assert recv_until_eof(s, timeout=3) == b""
        assert 0.3 <= time.monotonic() - t0 < 0.8
        s.close()
    finally:
        src.close()


def test_toxicity_0_never_applies(api, backend):
    port = proxy(api, backend.port)
    toxic(api, type="latency", toxicity=0, attributes={"latency": 500})
    toxic(api, type="reset_peer", toxicity=0, stream="upstream")
    for t in rtt(port):
        assert t < 0.1


def test_behaviors_are_toxic_types_and_speak_the_protocol(api, redis_server):
    redis = pytest.importorskip("redis")
    port = proxy(api, redis_server, protocol="redis")
    toxic(api, type="error", attributes={"message": "LOADING please wait"})
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    with pytest.raises(redis.exceptions.BusyLoadingError):
        r.get("x")
    api.call("DELETE", "/proxies/t/toxics/error_downstream")
    assert r.ping() is True


def stream_while(port, n, pause, step):
    """Streams n 8-byte records through the echo proxy at port while
    step(i) changes the toxics (i = 0, 1, ...); returns how many steps
    ran once every record came back complete and in order."""
    data = b"".join(b"%08d" % i for i in range(n))
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    got = bytearray()
    done = threading.Event()

    def reader():
        while len(got) < len(data):
            d = s.recv(65536)
            if not d:
                break
            got.extend(d)
        done.set()

    def writer():
        for i in range(0, len(data), 4096):
            s.sendall(data[i:i + 4096])
            time.sleep(pause)

    threading.Thread(target=reader).start()
    w = threading.Thread(target=writer)
    w.start()
    i = 0
    while (w.is_alive() or not done.is_set()) and i <= 5000:
        step(i)
        i += 1
    w.join(30)
    assert done.wait(30)
    s.close()
    assert len(got) == len(data)
    assert bytes(got) == data  # complete and in order
    return i


def test_a_stream_survives_toxics_added_and_removed_in_a_tight_loop(api, backend):
    port = proxy(api, backend.port)
    kinds = [("latency", {"latency": 5, "jitter": 5}), ("slicer", {"average_size": 64, "delay": 10}),
             ("bandwidth", {"rate": 0}), ("bandwidth", {"rate": 5000}), ("noop", {})]

    def step(i):
        kind, attrs = kinds[i % len(kinds)]
        stream = "upstream" if i % 2 else "downstream"
        t = toxic(api, type=kind, name="x%d" % i, stream=stream, attributes=attrs)
        time.sleep(0.002)
        assert api.call("DELETE", "/proxies/t/toxics/%s" % t["name"])[0] == 204
    assert stream_while(port, 65536, 0.0005, step) > 10
