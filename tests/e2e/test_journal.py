"""See every fault (issue 15): the journal a test can assert on (GET
/events, the SSE stream, --journal FILE), statsd with the original's flags,
/metrics read by a real Prometheus parser, JSON logs."""
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import SANITIZED, Api, BIN, free_port, recv_exactly, wait_until


def proxy_api(backend_port, *flags):
    """A proxy with its API; returns the Api (its .proxy_port too)."""
    port, proxy_port = free_port(), free_port()
    a = Api(["--proxy", "127.0.0.1:%d" % proxy_port, "--backend", "127.0.0.1:%d" % backend_port,
             "--http", "--http-host", "127.0.0.1", "--http-port", str(port)] + list(flags), port)
    a.proxy_port = proxy_port
    return a


def events(api, **q):
    query = "&".join("%s=%s" % kv for kv in q.items())
    st, body, _ = api.call("GET", "/events" + ("?" + query if query else ""))
    assert st == 200, body
    return body


class SSE:
    """A reader of GET /events/stream on a thread: keeps every event."""

    def __init__(self, port, query=""):
        self.events = []
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        # HTTP/1.0: the events come unchunked (a browser's EventSource
        # reads the chunked HTTP/1.1 form)
        self.sock.sendall(("GET /events/stream%s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n\r\n"
                           % (query, port)).encode())
        self.head = b""
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        buf = b""
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return
                buf = (buf + d).replace(b"\r\n", b"\n")
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    for line in block.split(b"\n"):
                        if line.startswith(b"data: "):
                            self.events.append(json.loads(line[6:]))
                        elif line.startswith(b"HTTP/1."):
                            self.head = block
        except OSError:
            return

    def close(self):
        self.sock.close()
        self.thread.join(5)


def test_the_journal_lists_exactly_the_faults_the_client_saw(redis_server):
    """redis with --seed 7 and 20:error,10:delay: the journal's errors are
    exactly the SETs that got -ERR, its delays the slow ones with their
    hold time, and the SSE stream delivered the same events."""
    import redis
    a = proxy_api(redis_server, "--protocol", "redis", "--behavior", "20:error,10:delay",
                  "--behavior-delay-sleep", "0.05", "--seed", "7")
    try:
        sse = SSE(a.port, "?kind=fault")
        assert wait_until(lambda: b"text/event-stream" in sse.head, timeout=5)
        r = redis.Redis(port=a.proxy_port, socket_timeout=10)
        failed, slow = set(), set()
        for i in range(200):
            t0 = time.monotonic()
            try:
                r.set("k%d" % i, "v")
            except redis.exceptions.ResponseError as e:
                assert "injected" in str(e)
                failed.add("k%d" % i)
            if time.monotonic() - t0 >= 0.045:
                slow.add("k%d" % i)
        body = events(a, kind="fault")
        faults = body["events"]
        errors = {e["request"].split()[1] for e in faults if e["behavior"] == "error"}
        delays = [e for e in faults if e["behavior"] == "delay"]
        assert errors == failed and 20 <= len(failed) <= 60, (sorted(errors ^ failed))
        assert all(e["request"].startswith("SET k") or e["request"].startswith("set k")
                   for e in faults)
        assert all(e["outcome"].startswith("answered: -ERR") for e in faults
                   if e["behavior"] == "error")
        assert delays and all(e["held_ms"] == 50 for e in delays)
        assert {e["request"].split()[1] for e in delays} <= slow     # held as it says
        assert len(slow) <= len(delays) + 10                         # and only those
        # the request index is the command's place on its connection
        assert all(e["index"] == int(e["request"].split()[1][1:]) + 1 for e in faults)
        assert wait_until(lambda: len(sse.events) >= len(faults), timeout=10)
        assert [e["seq"] for e in sse.events] == [e["seq"] for e in faults], (
            [(e["seq"], e["kind"]) for e in sse.events], [e["seq"] for e in faults])
        assert sse.events == faults
        sse.close()
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def test_events_filters_pages_and_clearing(redis_server):
    a = proxy_api(redis_server, "--protocol", "redis", "--behavior", "50:error", "--seed", "3")
    try:
        with socket.create_connection(("127.0.0.1", a.proxy_port), timeout=5) as s:
            for i in range(40):
                s.sendall(b"PING\r\n")
                line = b""
                while not line.endswith(b"\r\n"):
                    line += s.recv(1)
        # the connection's close is the last event
        assert wait_until(lambda: events(a, kind="close")["events"] != [])
        body = events(a)
        kinds = [e["kind"] for e in body["events"]]
        assert kinds[0] == "open" and kinds.count("fault") > 5
        assert body["dropped"] == 0 and body["size"] == 10000
        assert all(e["behavior"] == "error" for e in events(a, behavior="error")["events"])
        assert events(a, proxy="other")["events"] == []
        # pages: limit, then since=next
        first = events(a, limit=3)
        rest = events(a, since=first["next"])
        assert [e["seq"] for e in first["events"] + rest["events"]] == \
            [e["seq"] for e in body["events"]]
        for bad in ("since=x", "limit=0", "limit=100001", "kind=nope", "what=1"):
            st, err, _ = a.call("GET", "/events?" + bad)
            assert st == 400 and "error" in err, (bad, err)
        assert a.call("DELETE", "/events")[0] == 204
        after = events(a)
        assert after["events"] == [] and after["last"] == body["last"]
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def test_the_journal_file_is_reopened_on_sighup(tmp_path, redis_server):
    path = tmp_path / "journal.jsonl"
    a = proxy_api(redis_server, "--protocol", "redis", "--behavior", "100:error",
                  "--journal", str(path))
    try:
        def pings(n):
            with socket.create_connection(("127.0.0.1", a.proxy_port), timeout=5) as s:
                for _ in range(n):
                    s.sendall(b"PING\r\n")
                    assert s.recv(100).startswith(b"-ERR")
        pings(3)
        assert wait_until(lambda: path.read_text().count('"kind":"fault"') == 3)
        os.rename(path, str(path) + ".1")                 # logrotate
        a.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "received SIGHUP" in open(a.log).read())
        pings(2)
        assert wait_until(lambda: path.exists() and path.read_text().count('"kind":"fault"') == 2)
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        assert all(x["proxy"] == "vaurien" for x in lines)
        assert open(str(path) + ".1").read().count('"kind":"fault"') == 3
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def test_the_ring_counts_what_it_dropped(redis_server):
    """--journal-size 1000 under 100,000 faults: 1,000 kept, the rest counted
    as dropped, in /events and in /metrics."""
    a = proxy_api(redis_server, "--protocol", "redis", "--behavior", "100:error",
                  "--journal-size", "1000")
    try:
        pings(a.proxy_port, 100000)
        # the connection's close is the last event
        assert wait_until(lambda: events(a, kind="close")["events"] != [])
        body = events(a, limit=10000)
        assert len(body["events"]) == 1000
        st, text, _ = a.call("GET", "/metrics")
        written = int(next(line.split()[1] for line in text.splitlines()
                           if line.startswith("vaurien_journal_events_total ")))
        dropped = int(next(line.split()[1] for line in text.splitlines()
                           if line.startswith("vaurien_journal_dropped_total ")))
        assert written == 100000 + 2 and dropped == written - 1000 == body["dropped"]
        assert body["events"][-1]["seq"] == written
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def test_a_stream_that_does_not_read_is_closed_and_costs_at_most_its_cap(redis_server):
    a = proxy_api(redis_server, "--protocol", "redis", "--behavior", "100:error")
    try:
        lazy = socket.create_connection(("127.0.0.1", a.port), timeout=5)
        lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        lazy.sendall(b"GET /events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        time.sleep(0.3)
        rss0 = rss(a.proc.pid)
        pings(a.proxy_port, 60000)
        assert wait_until(lambda: "event stream that does not read was closed"
                          in open(a.log).read(), timeout=10)
        assert SANITIZED or rss(a.proc.pid) - rss0 < 8 << 20   # (ASan keeps freed memory)
        assert a.call("GET", "/version")[0] == 200                  # the API goes on
        lazy.close()
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def pings(port, n, batch=1000):
    """n PINGs pipelined in batches on one connection; returns the -ERRs."""
    errors = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        for done in range(0, n, batch):
            k = min(batch, n - done)
            s.sendall(b"PING\r\n" * k)
            buf = b""
            while buf.count(b"\r\n") < k:
                d = s.recv(1 << 20)
                assert d, "closed"
                buf += d
            errors += buf.count(b"-ERR")
    return errors


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def statsd_listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    return s


def read_statsd(s, seconds):
    lines = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        assert len(d) <= 1432
        lines += d.decode().split("\n")
    return lines


def statsd_sum(lines, name):
    return sum(int(x.split(":")[1].split("|")[0]) for x in lines if x.split(":")[0] == name)


@pytest.mark.parametrize("way", ["flags", "ini"])
def test_statsd_counters_and_timers_with_the_documented_names(tmp_path, redis_server, way):
    sock = statsd_listener()
    port = sock.getsockname()[1]
    if way == "flags":
        flags = ["--statsd", "--statsd-host", "127.0.0.1", "--statsd-port", str(port),
                 "--statsd-prefix", "t"]
    else:
        ini = tmp_path / "v.ini"
        ini.write_text("[vaurien]\nprotocol = redis\n[statsd]\nenabled = true\n"
                       "host = 127.0.0.1\nport = %d\nprefix = t\nsample_rate = 1.0\n" % port)
        flags = ["--config", str(ini)]
    a = proxy_api(redis_server, "--protocol", "redis", "--behavior", "30:error", "--seed", "9",
                  *flags)
    try:
        errors = 0
        for c in range(3):
            with socket.create_connection(("127.0.0.1", a.proxy_port), timeout=5) as s:
                for i in range(20):
                    s.sendall(b"SET k v\r\n")
                    errors += s.recv(100).startswith(b"-ERR")
        lines = [x for x in read_statsd(sock, 2.5) if x]
        names = {x.split(":")[0] for x in lines}
        assert statsd_sum(lines, "t.vaurien.connections") == 3
        assert statsd_sum(lines, "t.vaurien.requests") == 60
        assert statsd_sum(lines, "t.vaurien.faults.error") == errors > 0
        assert statsd_sum(lines, "t.vaurien.bytes.up") == 60 * 9 - errors * 9
        assert statsd_sum(lines, "t.vaurien.bytes.down") > 0
        timers = [x for x in lines if x.endswith("|ms")]
        assert {x.split(":")[0] for x in timers} == {"t.vaurien.connect", "t.vaurien.request"}
        assert sum(x.startswith("t.vaurien.request:") for x in timers) == 60
        # names per proxy and behavior, never per connection
        assert names <= {"t.vaurien." + n for n in ("connections", "requests", "faults.error",
                                                     "bytes.up", "bytes.down", "connect",
                                                     "request")}
    finally:
        rc, err = a.stop()
        sock.close()
    assert rc == 0, err


def test_metrics_through_a_real_prometheus_parser(redis_server):
    from prometheus_client.parser import text_string_to_metric_families
    port = free_port()
    a = Api(["server", "-host", "127.0.0.1", "-port", str(port)], port)
    try:
        name = 'we"ird\\name'
        st, body, _ = a.call("POST", "/proxies", {
            "name": name, "listen": "127.0.0.1:0", "upstream": "127.0.0.1:%d" % redis_server,
            "protocol": "redis"})
        assert st == 201, body
        pport = int(body["listen"].rsplit(":", 1)[1])
        st, body, _ = a.call("POST", "/proxies/%s/toxics" % "we%22ird%5Cname", {
            "type": "error", "name": "errs", "toxicity": 0.5, "attributes": {}})
        assert st == 200, body
        errors = 0
        with socket.create_connection(("127.0.0.1", pport), timeout=5) as s:
            for i in range(50):
                s.sendall(b"PING\r\n")
                errors += s.recv(100).startswith(b"-ERR")
        st, text, _ = a.call("GET", "/metrics")
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        req = [x for x in fams["vaurien_requests"].samples if x.labels["proxy"] == name]
        assert req[0].value == 50 and req[0].labels["protocol"] == "redis"
        faults = [x for x in fams["vaurien_faults"].samples if x.labels["proxy"] == name]
        assert faults[0].labels["behavior"] == "error" and faults[0].value == errors > 0
        acted = fams["vaurien_toxic_acted"].samples
        assert acted[0].labels == {"proxy": name, "protocol": "redis", "toxic": "errs",
                                   "type": "error"} and acted[0].value == errors
        hist = fams["vaurien_request_duration_seconds"].samples
        count = [x for x in hist if x.name.endswith("_count")][0]
        inf = [x for x in hist if x.labels.get("le") == "+Inf"][0]
        assert count.value == inf.value == 50
        assert "vaurien_journal_dropped" in fams
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def test_json_logs_one_object_per_line(tmp_path, redis_server):
    log = tmp_path / "v.log"
    port = free_port()
    p = subprocess.Popen([BIN, "--proxy", "127.0.0.1:%d" % port, "--backend",
                          "127.0.0.1:%d" % redis_server, "--log-format", "json",
                          "--log-output", str(log), "--log-level", "debug"])
    try:
        assert wait_until(lambda: log.exists() and "listening on" in log.read_text())
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"PING\r\n")
            assert recv_exactly(s, 7) == b"+PONG\r\n"
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(lines) > 3
    assert all(set(x) == {"time", "time_ns", "pid", "level", "msg"} for x in lines)
    assert any(x["level"] == "DEBUG" and "accepted" in x["msg"] for x in lines)


@pytest.mark.parametrize("flags,word", [
    (["--journal", "/nonexistent/dir/j.jsonl"], "--journal"),
    (["--journal-size", "-1"], "--journal-size"),
    (["--statsd-port", "0"], "--statsd-port"),
    (["--statsd-sample-rate", "2"], "--statsd-sample-rate"),
    (["--statsd-prefix", "a b"], "--statsd-prefix"),
    (["--statsd-prefix", ""], "--statsd-prefix"),
    (["--log-format", "xml"], "--log-format"),
])
def test_bad_observability_flags_exit_2_with_one_line(flags, word):
    p = subprocess.run([BIN, "--proxy", "127.0.0.1:%d" % free_port()] + flags,
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and word in lines[0], p.stderr


def test_streams_that_close_replays_over_the_cap_and_the_stream_limit(redis_server):
    """Clients that leave mid-stream leave nothing behind (LeakSanitizer
    checks the exit in `make asan`); a replay bigger than half a stream's cap
    stops with a comment naming where, and live events follow; the 33rd
    stream gets 503."""
    a = proxy_api(redis_server, "--protocol", "redis", "--behavior", "100:error")
    try:
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
            s.sendall(b"GET /events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert b"text/event-stream" in s.recv(4096)
            s.close()
        pings(a.proxy_port, 2000)                          # ~1 MB of events
        s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        s.sendall(b"GET /events/stream HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                  b"Last-Event-ID: 0\r\n\r\n")
        buf = b""
        while b"replay stopped before" not in buf:
            d = s.recv(65536)
            assert d, buf[-300:]
            buf += d
        replay = buf.split(b"replay stopped before", 1)[0]
        first = [int(x.split()[1]) for x in replay.split(b"\n") if x.startswith(b"id: ")]
        assert first[0] == 1 and first == list(range(1, len(first) + 1))
        assert len(buf) < 200 << 10
        pings(a.proxy_port, 1)                             # a live event comes through
        while b"event: fault" not in buf.rsplit(b"replay stopped", 1)[1]:
            d = s.recv(65536)
            assert d
            buf += d
        extra = []
        for _ in range(32):
            c = socket.create_connection(("127.0.0.1", a.port), timeout=5)
            c.sendall(b"GET /events/stream HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            extra.append(c)
        heads = [c.recv(200) for c in extra]
        assert sum(h.startswith(b"HTTP/1.0 503") for h in heads) == 1, heads
        for c in extra:
            c.close()
        s.close()
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def test_a_long_custom_behavior_name_is_kept_whole_and_filtered(redis_server):
    name = "a_very_long_custom_behavior_name_of_63_bytes_for_the_journal_xy"
    assert len(name) == 63
    port = free_port()
    a = Api(["server", "-host", "127.0.0.1", "-port", str(port)], port)
    try:
        st, b, _ = a.call("POST", "/behaviors", {
            "name": name, "script": "return { request = function() "
                                     "return vaurien.error{ message = 'ERR long' } end }"})
        assert st == 201, b
        st, b, _ = a.call("POST", "/proxies", {"name": "r", "listen": "127.0.0.1:0",
                                               "upstream": "127.0.0.1:%d" % redis_server,
                                               "protocol": "redis"})
        pport = int(b["listen"].rsplit(":", 1)[1])
        st, b, _ = a.call("POST", "/proxies/r/toxics", {"type": name, "name": "t"})
        assert st == 200, b
        assert pings(pport, 3) == 3
        got = a.call("GET", "/events?behavior=" + name)[1]["events"]
        assert len(got) == 3 and all(e["behavior"] == name for e in got)
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def test_server_mode_takes_the_journal_and_statsd_flags(tmp_path, redis_server):
    path = tmp_path / "j.jsonl"
    sock = statsd_listener()
    port = free_port()
    a = Api(["server", "-host", "127.0.0.1", "-port", str(port), "-journal", str(path),
             "-journal-size", "100", "-statsd", "-statsd-host", "127.0.0.1",
             "-statsd-port", str(sock.getsockname()[1]), "-statsd-prefix", "s"], port)
    try:
        st, b, _ = a.call("POST", "/proxies", {"name": "r", "listen": "127.0.0.1:0",
                                               "upstream": "127.0.0.1:%d" % redis_server,
                                               "protocol": "redis",
                                               "toxics": [{"type": "error", "name": "e"}]})
        assert st == 201, b
        assert pings(int(b["listen"].rsplit(":", 1)[1]), 4) == 4
        assert events(a)["size"] == 100
        assert wait_until(lambda: path.read_text().count('"toxic":"e"') == 4)
        lines = read_statsd(sock, 2.5)
        assert statsd_sum(lines, "s.r.faults.error") == 4
    finally:
        rc, err = a.stop()
        sock.close()
    assert rc == 0, err
