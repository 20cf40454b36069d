"""Exact under pressure (issue 10): order kept, nothing lost, memory
bounded and timing precise when toxics stack, change under load, or a
client pipelines without reading."""
import os
import socket
import threading
import time

import pytest

from conftest import SANITIZED, Backend, recv_exactly, recv_until_eof, rss_kb, wait_until
from test_toxics import proxy, toxic





def recv_n_by(s, n, deadline, idle=3.0):
    """Up to n bytes: reads until n arrived, EOF, the monotonic deadline, or
    `idle` seconds without a byte."""
    buf = bytearray()
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(min(left, idle))
        try:
            d = s.recv(min(65536, n - len(buf)))
        except OSError:  # a timeout, a reset, or the socket closed under us
            break
        if not d:
            break
        buf += d
    return bytes(buf)


# --- 1. splitting toxics lose bytes -----------------------------------------

class ThreadedServer:
    """A TCP server on 127.0.0.1 that hands each connection to
    self.serve(c) on a thread of its own."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def close(self):
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()


class BlockEcho(ThreadedServer):
    """An echo server that sends back each `block` bytes in one write, once
    all of them arrived (so the proxy reads the echo in one go)."""

    def __init__(self, block):
        self.block = block
        super().__init__()

    def serve(self, c):
        c.settimeout(30)
        buf = b""
        try:
            while True:
                d = c.recv(1 << 20)
                if not d:
                    return
                buf += d
                while len(buf) >= self.block:
                    c.sendall(buf[:self.block])
                    buf = buf[self.block:]
        except OSError:
            pass


def test_stacked_slicers_echo_64_kib_intact(api):
    """Two downstream slicers (100 bytes, then 10): 64 KiB make 6554
    slices, every one of them delivered, in order; twice over."""
    b = BlockEcho(65536)
    try:
        port = proxy(api, b.port)
        toxic(api, type="slicer", name="big", attributes={"average_size": 100,
                                                          "size_variation": 0, "delay": 0})
        toxic(api, type="slicer", name="small", attributes={"average_size": 10,
                                                            "size_variation": 0, "delay": 0})
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            for round in range(2):
                data = os.urandom(65536)
                s.sendall(data)
                got = recv_n_by(s, len(data), time.monotonic() + 20)
                n = len(got)
                assert n == len(data), "round %d: %d of %d bytes echoed" % (round, n, len(data))
                assert got == data, "round %d: bytes reordered or changed" % round
        finally:
            s.close()
    finally:
        b.close()


def test_stacked_slicers_deliver_a_1_mb_redis_reply_intact(api, redis_server):
    """The framed variant: a 1 MB bulk reply (read 64 KiB at a time) through
    two downstream slicers, then the next command's reply."""
    redis = pytest.importorskip("redis")
    value = os.urandom(1_000_000)
    redis.Redis(host="127.0.0.1", port=redis_server, socket_timeout=5).set("big", value)
    port = proxy(api, redis_server, protocol="redis")
    toxic(api, type="slicer", name="big", attributes={"average_size": 100,
                                                      "size_variation": 0, "delay": 0})
    toxic(api, type="slicer", name="small", attributes={"average_size": 10,
                                                        "size_variation": 0, "delay": 0})
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n*1\r\n$4\r\nPING\r\n")
        want = b"$%d\r\n" % len(value) + value + b"\r\n+PONG\r\n"
        got = recv_n_by(s, len(want), time.monotonic() + 20)
    finally:
        s.close()
    n = len(got)
    assert n == len(want), "%d of %d bytes of the replies arrived" % (n, len(want))
    assert got == want, "replies changed: %r..." % got[-40:]


# --- 2. queued errors never overtake earlier replies ------------------------

def resp(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


INJECTED = b"-ERR injected error (vaurien)\r\n"


def second_request_errs(vaurien, redis_port):
    """A redis proxy whose only faulty request is the second one it reads
    (transient: 1 passes, 1 errs, then all pass); key a holds A."""
    redis = pytest.importorskip("redis")
    redis.Redis(host="127.0.0.1", port=redis_port, socket_timeout=5).set("a", "A")
    redis.Redis(host="127.0.0.1", port=redis_port, socket_timeout=5).delete("b")
    return vaurien("--protocol", "redis", "--behavior", "100:transient",
                   "--behavior-transient-warmup", "1", "--behavior-transient-agitate", "1",
                   backend_port=redis_port)


def read_for(s, seconds, limit=1 << 20):
    """What arrives within `seconds` (or up to EOF), and whether EOF came."""
    deadline = time.monotonic() + seconds
    buf = bytearray()
    while len(buf) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(buf), False
        s.settimeout(left)
        try:
            d = s.recv(65536)
        except socket.timeout:
            return bytes(buf), False
        except ConnectionResetError:
            return bytes(buf), True
        if not d:
            return bytes(buf), True
        buf += d
    return bytes(buf), False


def test_redis_pipeline_get_set_error_subscribe_keeps_order(vaurien, redis_server):
    """SUBSCRIBE switches the connection to pass-through: the -ERR made up
    for SET must still come after GET's reply."""
    redis = pytest.importorskip("redis")
    v = second_request_errs(vaurien, redis_server)
    s = v.connect()
    try:
        s.sendall(resp(b"GET", b"a") + resp(b"SET", b"b", b"B") + resp(b"SUBSCRIBE", b"c"))
        want = (b"$1\r\nA\r\n" + INJECTED +
                b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n")
        got, _ = read_for(s, 1.5)
    finally:
        s.close()
    assert got == want, "replies out of request order: %r" % got
    # the SET that drew error never reached redis
    assert redis.Redis(host="127.0.0.1", port=redis_server).get("b") is None


def test_redis_errored_reply_keeps_order_when_the_connection_degrades(vaurien, redis_server):
    """A request the framer cannot read degrades the connection to
    pass-through: the queued -ERR still waits for GET's reply."""
    v = second_request_errs(vaurien, redis_server)
    s = v.connect()
    try:
        s.sendall(resp(b"GET", b"a") + resp(b"SET", b"b", b"B") + b"*abc\r\n")
        got, _ = read_for(s, 1.5)
    finally:
        s.close()
    # redis answers the malformed bytes with a protocol error and closes
    want = b"$1\r\nA\r\n" + INJECTED + b"-ERR Protocol error"
    assert got.startswith(want), "replies out of request order: %r" % got


@pytest.mark.parametrize("tail", [b"*2\r\n$3\r\nGE", b""], ids=["partial", "whole"])
def test_redis_errored_reply_keeps_order_when_the_client_half_closes(vaurien, redis_server, tail):
    """The client sends GET a, SET b (error) and maybe half a command, then
    shuts its write side: every reply arrives in request order before the
    EOF (the partial command passes untouched and gets redis's own answer
    or none)."""
    v = second_request_errs(vaurien, redis_server)
    s = v.connect()
    try:
        s.sendall(resp(b"GET", b"a") + resp(b"SET", b"b", b"B") + tail)
        s.shutdown(socket.SHUT_WR)
        got, eof = read_for(s, 5)
    finally:
        s.close()
    assert got == b"$1\r\nA\r\n" + INJECTED, "replies out of request order: %r" % got
    assert eof


# --- 3. a toxic change releases only what that toxic held -------------------

def test_a_noop_added_beside_bandwidth_0_keeps_holding(api, backend):
    port = proxy(api, backend.port)
    toxic(api, type="bandwidth", attributes={"rate": 0})
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(b"held until the bandwidth toxic goes")
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(100)
        toxic(api, type="noop", stream="upstream")
        early, _ = read_for(s, 1.0)
        assert early == b"", "an unrelated noop released %d held bytes" % len(early)
        assert api.call("DELETE", "/proxies/t/toxics/bandwidth_downstream")[0] == 204
        assert recv_exactly(s, 35) == b"held until the bandwidth toxic goes"
    finally:
        s.close()


def test_a_noop_added_does_not_shorten_a_running_latency_hold(api, backend):
    port = proxy(api, backend.port)
    toxic(api, type="latency", attributes={"latency": 1000})
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        t0 = time.monotonic()
        s.sendall(b"one second late")
        time.sleep(0.2)
        toxic(api, type="noop", stream="upstream")
        got = recv_exactly(s, 15, timeout=5)
        took = time.monotonic() - t0
    finally:
        s.close()
    assert got == b"one second late"
    assert took >= 0.95, "held %.3f s instead of 1 s" % took


# --- 4. re-posting a bandwidth toxic keeps its pacing -----------------------

@pytest.mark.parametrize("every", [0.5, 0.05])
def test_a_reposted_bandwidth_keeps_its_rate_within_10_percent(api, every):
    """The same attributes posted again and again: the bucket keeps its
    debt, so the rate stays 200 KB/s."""
    size = 600_000  # 3.0 s at 200 KB/s
    src = Backend("source", size=size)
    stop = threading.Event()
    posts = []

    def repost():
        while not stop.is_set():
            st, _, _ = api.call("POST", "/proxies/t/toxics/bandwidth_downstream",
                                {"attributes": {"rate": 200}})
            posts.append(st)
            stop.wait(every)

    try:
        port = proxy(api, src.port)
        toxic(api, type="bandwidth", attributes={"rate": 200})
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        t0 = time.monotonic()
        th = threading.Thread(target=repost)
        th.start()
        try:
            got = len(recv_until_eof(s, timeout=10))
            took = time.monotonic() - t0
        finally:
            stop.set()
            th.join(10)
            s.close()
    finally:
        src.close()
    assert got == size
    assert set(posts) == {200}, posts[:5]
    assert 2.7 <= took <= 3.3, "%d bytes in %.2f s: %.0f KB/s instead of 200 (%d posts)" % (
        size, took, size / took / 1000, len(posts))


# --- 5. a client that pipelines without reading is bounded ------------------

RSS_BOUND_KB = 5 * 1024  # growth over the start (the journal's ring, 5.9 MB
                         # by default, is there from the start)


def push_without_reading(s, blob, total, pid, seconds=30.0, blocked_for=2.0):
    """Sends `blob` over and over (up to `total` bytes) without reading,
    until total is sent, the socket took nothing for `blocked_for` seconds,
    or `seconds` passed. Returns (bytes sent, highest RSS of pid in kB)."""
    s.setblocking(False)
    view = memoryview(blob)
    sent = 0
    peak = rss_kb(pid)
    deadline = time.monotonic() + seconds
    last_progress = time.monotonic()
    next_sample = 0.0
    while sent < total and time.monotonic() < deadline:
        off = sent % len(blob)
        try:
            n = s.send(view[off:off + min(len(blob) - off, total - sent)])
        except BlockingIOError:
            n = 0
        now = time.monotonic()
        if n:
            sent += n
            last_progress = now
        elif now - last_progress > blocked_for:
            break
        else:
            time.sleep(0.005)
        if now >= next_sample:
            peak = max(peak, rss_kb(pid))
            next_sample = now + 0.05
            if peak > 4 * RSS_BOUND_KB:  # far beyond the bound: no need to go on
                break
    return sent, max(peak, rss_kb(pid))


def count_replies(s, reply, n, seconds=30.0):
    """Reads until n copies of `reply` arrived (or EOF, or `seconds`), and
    returns how many whole copies came and whether anything else did."""
    s.setblocking(True)
    want = len(reply) * n
    buf = recv_n_by(s, want, time.monotonic() + seconds, idle=5.0)
    whole = len(buf) // len(reply)
    return whole, buf == reply * whole and len(buf) % len(reply) == 0


def check_pipelined_replies(s, sent, request, reply):
    """Completes the last request (the push may have stopped inside one),
    then reads every reply: one `reply` per request, nothing lost."""
    rest = (len(request) - sent % len(request)) % len(request)
    n = (sent + rest) // len(request)
    result = []
    reader = threading.Thread(target=lambda: result.append(count_replies(s, reply, n)))
    reader.start()
    if rest:
        s.setblocking(True)
        s.settimeout(10)
        s.sendall(request[len(request) - rest:])
    reader.join(60)
    assert not reader.is_alive() and result, "the replies did not come"
    whole, clean = result[0]
    assert clean, "a reply other than %r" % reply
    assert whole == n, "%d replies to %d requests" % (whole, n)


def test_a_redis_client_pipelining_50_mb_without_reading_stays_bounded(vaurien, redis_server):
    v = vaurien("--protocol", "redis", backend_port=redis_server)
    start = rss_kb(v.proc.pid)
    ping = b"*1\r\n$4\r\nPING\r\n"
    s = v.connect()
    try:
        sent, peak = push_without_reading(s, ping * (1 << 16), 50_000_000, v.proc.pid)
        assert SANITIZED or peak - start < RSS_BOUND_KB, (
            "proxy RSS %d kB (%d kB at start) with %.1f MB of PINGs pipelined, not read"
            % (peak, start, sent / 1e6))
        check_pipelined_replies(s, sent, ping, b"+PONG\r\n")
    finally:
        s.close()


class BufferingHttpBackend(ThreadedServer):
    """An HTTP/1.1 server that never stops reading (like nginx or redis with
    a large output buffer): each connection's requests are counted by one
    thread and answered, with a fixed response, by another."""

    RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def serve(self, c):
        batches = []  # how many requests each read brought; None: EOF
        cond = threading.Condition()
        threading.Thread(target=self._write, args=(c, batches, cond), daemon=True).start()
        self._read(c, batches, cond)

    def _read(self, c, batches, cond):
        tail = b""
        while True:
            try:
                d = c.recv(1 << 20)
            except OSError:
                d = b""
            with cond:
                if not d:
                    batches.append(None)
                    cond.notify()
                    return
                tail += d
                n = tail.count(b"\r\n\r\n")
                if n:
                    tail = tail[tail.rindex(b"\r\n\r\n") + 4:]
                    batches.append(n)
                    cond.notify()

    def _write(self, c, batches, cond):
        while True:
            with cond:
                while not batches:
                    cond.wait()
                n = batches.pop(0)
            if n is None:
                return
            try:
                c.sendall(self.RESPONSE * n)
            except OSError:
                return


def test_an_http_client_pipelining_50_mb_without_reading_stays_bounded(vaurien):
    b = BufferingHttpBackend()
    try:
        v = vaurien("--protocol", "http", backend_port=b.port)
        start = rss_kb(v.proc.pid)
        req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        s = v.connect()
        try:
            sent, peak = push_without_reading(s, req * (1 << 15), 50_000_000, v.proc.pid)
            assert SANITIZED or peak - start < RSS_BOUND_KB, (
                "proxy RSS %d kB (%d kB at start) with %.1f MB of requests pipelined, not read"
                % (peak, start, sent / 1e6))
            check_pipelined_replies(s, sent, req, BufferingHttpBackend.RESPONSE)
        finally:
            s.close()
    finally:
        b.close()


# --- 6. slicer: bounded memory, exact pacing ---------------------------------

def test_slicer_memory_per_connection_stays_under_600_kb(api):
    """20 connections each receiving 5 MB through a slicer (64 bytes, 200 µs
    apart): a slicer holds a bounded number of slices, as every direction
    holds at most 256 KiB."""
    n = 20
    src = Backend("source", size=5_000_000)
    stop = threading.Event()
    got = [0] * n

    def drain(i, s):
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                d = s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not d:
                return
            got[i] += len(d)

    conns, readers = [], []
    try:
        port = proxy(api, src.port)
        toxic(api, type="slicer", attributes={"average_size": 64, "size_variation": 0,
                                              "delay": 200})
        start = rss_kb(api.proc.pid)
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            conns.append(s)
            readers.append(threading.Thread(target=drain, args=(i, s)))
            readers[-1].start()
        peak = start
        for _ in range(30):  # 3 s of the transfer
            time.sleep(0.1)
            peak = max(peak, rss_kb(api.proc.pid))
    finally:
        stop.set()
        for t in readers:
            t.join(5)
        for s in conns:
            s.close()
        src.close()
    assert sum(got) > 0
    per_conn = (peak - start) / n
    assert SANITIZED or per_conn < 600, (
        "%.0f kB per connection (RSS %d kB, %d kB at start, %.1f MB delivered)"
        % (per_conn, peak, start, sum(got) / 1e6))


def test_slicer_total_time_is_within_10_percent_of_nominal(api):
    """8000 one-byte slices 500 µs apart take 4.0 s, however many slices
    one read makes."""
    size, gap_us = 8000, 500
    nominal = (size - 1) * gap_us / 1e6
    src = Backend("source", size=size)
    try:
        port = proxy(api, src.port)
        toxic(api, type="slicer", attributes={"average_size": 1, "size_variation": 0,
                                              "delay": gap_us})
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            s.settimeout(10)
            first = s.recv(65536)
            t_first = time.monotonic()
            rest = recv_until_eof(s, timeout=10)
            took = time.monotonic() - t_first
        finally:
            s.close()
    finally:
        src.close()
    assert len(first) + len(rest) == size
    assert 0.9 * nominal <= took <= 1.1 * nominal, (
        "%d slices took %.2f s, nominal %.2f s" % (size, took, nominal))

# Memory given back after closes and deletes (item 10): test_memory_return.py


# --- found in review: closes inside a pump, corked answers, hang, abort, delay

def test_a_downstream_limit_data_on_a_framed_proxy_closes_cleanly(api, redis_server):
    port = proxy(api, redis_server, protocol="redis")
    for limit in (5, 0):
        toxic(api, name="cut", type="limit_data", stream="downstream",
              attributes={"bytes": limit})
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(resp(b"ECHO", b"hello"))
        got, eof = read_for(s, 3)
        s.close()
        assert got == b"$5\r\nhello\r\n"[:limit] and eof
        st, _, _ = api.call("DELETE", "/proxies/t/toxics/cut")
        assert st == 204
    st, _, _ = api.call("GET", "/version")
    assert st == 200, "the server survived"


def send_reading(s, data, enough, wait=30):
    """Sends data on s while a thread reads what comes back, until
    enough(bytes so far), the end, or 10 s of silence; closes s. Returns
    what was read."""
    got = bytearray()
    done = threading.Event()

    def reader():
        s.settimeout(10)
        try:
            while not enough(got):
                d = s.recv(1 << 20)
                if not d:
                    break
                got.extend(d)
        except OSError:
            pass
        done.set()
    threading.Thread(target=reader, daemon=True).start()
    s.sendall(data)
    assert done.wait(wait)
    s.close()
    return got


def test_a_pipelining_client_that_reads_gets_every_proxy_made_answer(vaurien, redis_server):
    """50,000 PINGs under 100:error, read as they come: every one answered
    by the proxy (the client is read again once its answers are written,
    also when one write takes them all)."""
    v = vaurien("--protocol", "redis", "--behavior", "100:error", "--log-level", "info",
                backend_port=redis_server)
    n = 50000
    got = send_reading(v.connect(), resp(b"PING") * n, lambda b: len(b) >= n * len(INJECTED))
    assert bytes(got) == INJECTED * n, "%d of %d answers" % (len(got) // len(INJECTED), n)


def test_answers_behind_delayed_replies_never_leave_the_client_paused(vaurien, redis_server):
    """3000 pipelined 3 KB ECHOs under delay-after, error and dummy: the
    client is paused while its answers wait behind held replies, and read
    again once a held reply's release writes them (it stalled for good at
    810 of 3000 before)."""
    v = vaurien("--protocol", "redis", "--behavior", "30:delay,30:error,40:dummy",
                "--behavior-delay-sleep", "0.01", "--behavior-delay-before", "false",
                "--seed", "11", backend_port=redis_server)
    n, payload = 3000, b"x" * 3000
    echo = b"$%d\r\n%s\r\n" % (len(payload), payload)
    got = send_reading(v.connect(), resp(b"ECHO", payload) * n,
                       lambda b: b.count(echo) + b.count(INJECTED) >= n, wait=40)
    echoes, errors = got.count(echo), got.count(INJECTED)
    assert echoes + errors == n, "%d of %d replies" % (echoes + errors, n)
    assert len(got) == echoes * len(echo) + errors * len(INJECTED)


def test_answers_behind_replies_a_removed_toxic_releases_are_read_again(api, redis_server):
    """Errors answered while a downstream latency holds the replies pause
    the client; removing the latency releases them at once, and that
    release must read the client again (no write callback says so)."""
    port = proxy(api, redis_server, protocol="redis")
    toxic(api, type="error", name="err", stream="upstream", toxicity=0.5)
    toxic(api, type="latency", name="slow", attributes={"latency": 60000})
    n, payload = 3000, b"x" * 3000
    echo = b"$%d\r\n%s\r\n" % (len(payload), payload)
    threading.Timer(1.0, lambda: api.call("DELETE", "/proxies/t/toxics/slow")).start()
    got = send_reading(socket.create_connection(("127.0.0.1", port), timeout=5),
                       resp(b"ECHO", payload) * n,
                       lambda b: b.count(echo) + b.count(INJECTED) >= n, wait=40)
    echoes, errors = got.count(echo), got.count(INJECTED)
    assert echoes + errors == n, "%d of %d replies" % (echoes + errors, n)
    assert errors > 0


def test_hang_still_answers_the_requests_before_it(vaurien, redis_server):
    # every request hangs: nothing comes back, and the connection stays
    v = vaurien("--protocol", "redis", "--behavior", "100:hang", "--log-level", "info",
                backend_port=redis_server)
    s = v.connect()
    s.sendall(resp(b"PING"))
    got, eof = read_for(s, 1)
    assert got == b"" and not eof, "the first request hangs"
    s.close()
    v2 = vaurien("--protocol", "redis", "--behavior", "50:hang", "--seed", "3",
                 "--log-level", "debug", backend_port=redis_server)
    s = v2.connect()
    s.sendall(b"".join(resp(b"ECHO", b"%02d" % i) for i in range(40)))
    got, eof = read_for(s, 1.5)
    s.close()
    log = v2.log_text()
    verdicts = [line.split("request: ")[1].split(" ")[0] for line in log.splitlines()
                if "request: " in line]
    first_hang = verdicts.index("hang")
    assert got == b"".join(b"$2\r\n%02d\r\n" % i for i in range(first_hang)), (
        first_hang, got[:200])
    assert not eof, "the connection stays open"


def test_abort_behind_a_delayed_request_lets_nothing_after_it_through(vaurien, redis_server):
    redis = pytest.importorskip("redis")
    r = redis.Redis(host="127.0.0.1", port=redis_server, socket_timeout=5)
    r.delete(*["k%02d" % i for i in range(60)])
    v = vaurien("--protocol", "redis", "--behavior", "30:delay,5:abort",
                "--behavior-delay-sleep", "0.2", "--seed", "1", "--log-level", "debug",
                backend_port=redis_server)
    s = v.connect()
    s.sendall(b"".join(resp(b"SET", b"k%02d" % i, b"v") for i in range(60)))
    read_for(s, 2)
    s.close()
    verdicts = [line.split("request: ")[1].split(" ")[0] for line in v.log_text().splitlines()
                if "request: " in line]
    cut = verdicts.index("abort")
    assert wait_until(lambda: r.exists("k%02d" % cut) == 1, timeout=3), "the aborted one is sent"
    time.sleep(0.3)
    sent = [i for i in range(60) if r.exists("k%02d" % i)]
    assert max(sent) == cut, "requests after the abort reached the backend: %s" % sent


def test_a_delay_applies_once_to_a_large_request(vaurien, redis_server):
    v = vaurien("--protocol", "redis", "--behavior", "100:delay",
                "--behavior-delay-sleep", "0.5", "--log-level", "info",
                backend_port=redis_server)
    s = v.connect(timeout=10)
    t0 = time.monotonic()
    s.sendall(resp(b"SET", b"big", b"x" * 3_000_000))
    assert recv_exactly(s, 5, timeout=10) == b"+OK\r\n"
    took = time.monotonic() - t0
    s.close()
    assert 0.5 <= took < 1.0, "a 3 MB request held %.2f s for a 0.5 s delay" % took


def test_what_the_backend_sent_goes_before_answers_when_its_reply_cannot_be_framed(vaurien):
    """A reply the framer cannot read: the backend's bytes still reach the
    client before the proxy's error for a later request."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)

    def serve():
        try:
            c, _ = lst.accept()
        except OSError:
            return
        c.settimeout(5)
        try:
            c.recv(65536)
            c.sendall(b"?bogus\r\n")
            time.sleep(0.2)
        except OSError:
            pass
        c.close()
    threading.Thread(target=serve, daemon=True).start()
    try:
        v = vaurien("--protocol", "redis", "--behavior", "100:transient",
                    "--behavior-transient-warmup", "1", "--behavior-transient-agitate", "1",
                    backend_port=lst.getsockname()[1])
        s = v.connect()
        s.sendall(resp(b"GET", b"a") + resp(b"SET", b"b", b"B"))
        got, _ = read_for(s, 3)
        s.close()
    finally:
        lst.close()
    assert got == b"?bogus\r\n" + INJECTED, got
