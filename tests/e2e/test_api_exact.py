"""The control API under hostile input, and Toxiproxy's wire text to the
byte (issue 12): names kept whole or refused, /metrics that no name can
forge, NUL bytes in paths, numbers in their shortest form."""
import http.client
import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import Api, Backend, free_port, in_own_netns, recv_exactly


def make(api, name, upstream="127.0.0.1:1", **extra):
    body = {"name": name, "listen": "127.0.0.1:0", "upstream": upstream}
    body.update(extra)
    return api.call("POST", "/proxies", body)


def raw_get(port, path):
    """The raw response to GET path (no client-side normalization)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk


def quoted(name):
    from urllib.parse import quote
    return quote(name, safe="")


@pytest.mark.parametrize("length", [127, 128, 200, 1024])
def test_a_long_proxy_name_is_kept_whole(api, length):
    name = "n" * (length - 2) + "é"  # ends in a 2-byte UTF-8 character
    assert len(name.encode()) == length
    s, p, _ = make(api, name)
    assert s == 201 and p["name"] == name
    s, b, _ = make(api, name)
    assert s == 409, b  # the same name again: the same proxy
    assert list(api.call("GET", "/proxies")[1]) == [name]
    assert api.call("GET", "/proxies/" + quoted(name))[1]["name"] == name
    s, t, _ = api.call("POST", "/proxies/%s/toxics" % quoted(name),
                       {"name": name, "type": "latency", "attributes": {"latency": 1}})
    assert s == 200 and t["name"] == name
    assert api.call("GET", "/proxies/%s/toxics/%s" % (quoted(name), quoted(name)))[1]["name"] == name
    assert api.call("DELETE", "/proxies/%s/toxics/%s" % (quoted(name), quoted(name)))[0] == 204
    assert api.call("DELETE", "/proxies/" + quoted(name))[0] == 204
    assert api.call("GET", "/proxies")[1] == {}


def test_a_name_too_long_or_holding_a_nul_is_refused(api):
    s, b, _ = make(api, "x" * 1025)
    assert s == 400 and "at most 1024 bytes" in b["error"], b
    s, b, _ = make(api, "a\u0000b")
    assert s == 400 and "NUL" in b["error"], b
    s, b, _ = api.call("POST", "/populate", [{"name": "ok", "upstream": "x:1"},
                                             {"name": "y" * 2000, "upstream": "x:1"}])
    assert s == 400 and "at proxy 2" in b["error"], b
    assert api.call("GET", "/proxies")[1] == {}  # checked before anything is made
    assert make(api, "p")[0] == 201
    s, b, _ = api.call("POST", "/proxies/p/toxics", {"name": "t" * 1025, "type": "latency"})
    assert s == 400 and "at most 1024 bytes" in b["error"], b
    assert api.call("GET", "/proxies/p/toxics")[1] == []


FORGER = 'x"} 1\nvaurien_proxy_refused_total{proxy="victim'


def test_metrics_escape_every_name_and_parse_back():
    port = free_port()
    api = Api(["server", "-host", "127.0.0.1", "-port", str(port), "-proxy-metrics",
               "-runtime-metrics"], port)
    backend = Backend("echo")
    try:
        names = [FORGER, 'back\\slash', 'quote"d', "new\nline", "plain", "ünï"]
        for n in names:
            s, p, _ = make(api, n, "127.0.0.1:%d" % backend.port)
            assert s == 201, p
        s, text, r = api.call("GET", "/metrics")
        assert s == 200
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        for fam in ("vaurien_proxy_connections", "vaurien_proxy_refused"):
            got = sorted(sm.labels["proxy"] for sm in fams[fam].samples)
            assert got == sorted(names), got  # one series per proxy, no forged one
        sent = [sm for sm in fams["toxiproxy_proxy_sent_bytes"].samples]
        assert sorted({sm.labels["proxy"] for sm in sent}) == sorted(names)
        assert {sm.labels["direction"] for sm in sent} == {"upstream", "downstream"}
        assert all(set(sm.labels) == {"direction", "listener", "proxy", "upstream"}
                   for sm in sent)
        for fam in ("process_cpu_seconds", "process_open_fds", "process_resident_memory_bytes",
                    "process_start_time_seconds", "process_virtual_memory_bytes",
                    "process_max_fds"):
            assert fam in fams, sorted(fams)
        assert fams["process_resident_memory_bytes"].samples[0].value > 1e5
        assert fams["process_open_fds"].samples[0].value >= 3
    finally:
        backend.close()
        assert api.stop()[0] == 0


def test_metrics_without_the_flags_have_no_toxiproxy_series(api):
    make(api, "p")
    text = api.call("GET", "/metrics")[1]
    assert "toxiproxy_proxy" not in text and "process_" not in text
    assert "vaurien_proxy_connections{" in text


def test_metrics_count_bytes_while_a_connection_stays_open(api):
    backend = Backend("echo")
    try:
        s, p, _ = make(api, "live", "127.0.0.1:%d" % backend.port)
        c = socket.create_connection(("127.0.0.1", int(p["listen"].rsplit(":", 1)[1])), timeout=5)
        c.sendall(b"x" * 1000)
        recv_exactly(c, 1000)
        text = api.call("GET", "/metrics")[1]
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        up = [sm.value for sm in fams["vaurien_proxy_upstream_bytes"].samples
              if sm.labels["proxy"] == "live"]
        down = [sm.value for sm in fams["vaurien_proxy_downstream_bytes"].samples
                if sm.labels["proxy"] == "live"]
        assert (up, down) == ([1000], [1000])  # counted before the close
        c.close()
    finally:
        backend.close()


def test_a_nul_in_the_path_is_a_400(api):
    data = raw_get(api.port, b"/version%00x")
    assert data.startswith(b"HTTP/1.1 400"), data[:200]
    assert b'"status":400' in data
    assert raw_get(api.port, b"/version").startswith(b"HTTP/1.1 200")
    make(api, "p")
    assert raw_get(api.port, b"/proxies/p%00").startswith(b"HTTP/1.1 400")


def test_version_text_to_the_byte(api):
    data = raw_get(api.port, b"/version")
    head, _, body = data.partition(b"\r\n\r\n")
    assert body == b'{"version": "2.12.0"}\n'
    assert b"\r\nContent-Type: application/json;charset=utf-8\r\n" in head


@pytest.mark.parametrize("value,text", [(0.3, b'"toxicity":0.3'), (0.2, b'"toxicity":0.2'),
                                        (1, b'"toxicity":1}'), (0.1 + 0.2, b'"toxicity":0.30000000000000004'),
                                        (1e-7, b'"toxicity":1e-07')])
def test_numbers_print_in_their_shortest_form(api, value, text):
    make(api, "p")
    s, t, _ = api.call("POST", "/proxies/p/toxics", {"name": "t", "type": "latency",
                                                     "toxicity": value})
    assert s == 200
    body = raw_get(api.port, b"/proxies/p/toxics/t").partition(b"\r\n\r\n")[2]
    assert text in body, body
    assert t["toxicity"] == value


def test_a_behavior_put_again_starts_its_counters_at_zero(redis_server):
    import redis
    port, proxy_port = free_port(), free_port()
    a = Api(["--proxy", "127.0.0.1:%d" % proxy_port, "--backend", "127.0.0.1:%d" % redis_server,
             "--protocol", "redis", "--http", "--http-host", "127.0.0.1", "--http-port", str(port)],
            port)
    try:
        def outcomes():
            r = redis.Redis(host="127.0.0.1", port=proxy_port, socket_timeout=5)
            got = []
            for _ in range(4):
                try:
                    r.ping()
                    got.append("ok")
                except redis.exceptions.ResponseError:
                    got.append("error")
            r.close()
            return got
        for _ in range(3):  # each PUT: a new configuration, counted from 0
            assert a.call("PUT", "/behavior", {"name": "error", "warmup": 2})[0] == 200
            assert outcomes() == ["ok", "ok", "error", "error"]
        for _ in range(2):
            assert a.call("PUT", "/behavior", {"name": "transient", "agitate": 1})[0] == 200
            assert outcomes() == ["error", "ok", "ok", "ok"]
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def test_the_ini_http_keys_start_the_api_where_they_say(tmp_path):
    port, proxy_port = free_port(), free_port()
    ini = tmp_path / "v.ini"
    ini.write_text("[vaurien]\nproxy = 127.0.0.1:%d\nbackend = 127.0.0.1:1\nhttp = true\n"
                   "http_host = 127.0.0.1\nhttp_port = %d\npool_max_size = 10\n"
                   % (proxy_port, port))
    a = Api(["--config", str(ini)], port)
    try:
        assert a.call("GET", "/behavior")[1]["behavior"] == "dummy"
    finally:
        rc, err = a.stop()
    assert rc == 0, err
    assert "[vaurien] pool_max_size is not supported by this build; ignored" in err
    assert "http" not in err.replace("pool_max_size", "")  # http keys act, unwarned


def taken_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, s.getsockname()[1]


def test_a_bind_failure_names_the_resolved_address(api):
    busy, port = taken_port()
    try:
        s, b, _ = api.call("POST", "/proxies", {"name": "b", "listen": "localhost:%d" % port,
                                                 "upstream": "x:1"})
        assert (s, b["error"]) == (500, "listen tcp 127.0.0.1:%d: bind: address already in use"
                                   % port), b
        # all or nothing: ::1 was not left bound
        if socket.has_ipv6:
            with socket.socket(socket.AF_INET6) as s6:
                s6.bind(("::1", port))
        # a wildcard is one dual-stack socket: it fails when 127.0.0.1:P is taken
        for listen in ("0.0.0.0:%d" % port, ":%d" % port):
            s, b, _ = api.call("POST", "/proxies", {"name": "w", "listen": listen,
                                                     "upstream": "x:1"})
            assert (s, b["error"]) == (500, "listen tcp %s: bind: address already in use"
                                       % listen), b
        assert api.call("GET", "/proxies")[1] == {}
    finally:
        busy.close()


WILDCARD = r"""
out = []
for listen in (":%d" % (port + 1), "0.0.0.0:%d" % (port + 2)):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("POST", "/proxies", json.dumps({"name": listen, "listen": listen,
                                              "upstream": "127.0.0.1:%d" % port}))
    r = c.getresponse()
    body = json.loads(r.read())
    reach = []
    for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(fam) as s:
            s.settimeout(2)
            reach.append(s.connect_ex((host, int(body["listen"].rsplit(":", 1)[1]))) == 0)
    out.append([r.status, body["listen"], reach])
print(json.dumps(out))
"""


def test_a_wildcard_listens_dual_stack_as_go_does(tmp_path):
    import json
    got = json.loads(in_own_netns(tmp_path, "127.0.0.1", WILDCARD))
    assert got == [[201, "[::]:18475", [True, True]], [201, "[::]:18476", [True, True]]], got


def test_a_slow_request_head_to_the_api_is_cut_at_its_deadline(api):
    # 20 clients send a byte every 2 s (evhttp's idle timeout alone would
    # never fire); each has 10 s for the whole request
    import select
    import time
    socks = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", api.port), timeout=5)
        s.sendall(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks.append(s)
    t0 = time.monotonic()
    closed = {}
    last_byte = t0
    while len(closed) < len(socks) and time.monotonic() - t0 < 16:
        if time.monotonic() - last_byte >= 2:
            last_byte = time.monotonic()
            for s in socks:
                if s not in closed:
                    try:
                        s.send(b"a")
                    except OSError:
                        closed[s] = time.monotonic() - t0
        r, _, _ = select.select([s for s in socks if s not in closed], [], [], 0.2)
        for s in r:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                closed[s] = time.monotonic() - t0
    # meanwhile the API answers others at once
    assert api.call("GET", "/version")[0] == 200
    assert len(closed) == len(socks), "%d of %d still open" % (len(socks) - len(closed), len(socks))
    assert all(8.5 < t < 13 for t in closed.values()), sorted(closed.values())
    for s in socks:
        s.close()


NO_IPV6 = r"""
with open("/proc/sys/net/ipv6/conf/lo/disable_ipv6", "w") as f:
    f.write("1")  # ::1 is gone, as in many containers; localhost still names it
c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
c.request("POST", "/proxies", json.dumps({"name": "l", "listen": "localhost:%d" % (port + 1),
                                          "upstream": "127.0.0.1:%d" % port}))
r = c.getresponse()
print(r.status, json.loads(r.read()).get("listen"))
with socket.create_connection(("127.0.0.1", port + 1), timeout=2):
    print("reachable")
"""


def test_a_name_binds_the_addresses_the_machine_has(tmp_path):
    got = in_own_netns(tmp_path, "127.0.0.1", NO_IPV6).split()
    assert got == ["201", "127.0.0.1:18475", "reachable"], got
