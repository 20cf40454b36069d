"""The control API, as Toxiproxy 2.12 answers: every endpoint and error."""
import socket
import time

import pytest

from conftest import Api, Backend, free_port, recv_exactly, recv_until_eof, wait_until


def make(api, name="p", upstream=None, **extra):
    body = {"name": name, "listen": "127.0.0.1:0", "upstream": upstream or "127.0.0.1:1"}
    body.update(extra)
    status, proxy, _ = api.call("POST", "/proxies", body)
    assert status == 201, proxy
    return proxy


def port_of(proxy):
    return int(proxy["listen"].rsplit(":", 1)[1])


def test_version_and_request_id(api):
    status, body, r = api.call("GET", "/version")
    assert status == 200 and body == {"version": "2.12.0"}
    assert r.getheader("Content-Type") == "application/json;charset=utf-8"
    assert r.getheader("X-Toxiproxy-Request-Id")


def test_create_reports_the_bound_port_and_the_shape(api):
    assert api.call("GET", "/proxies")[1] == {}
    p = make(api, "redis", "127.0.0.1:6379")
    assert list(p) == ["name", "listen", "upstream", "enabled", "toxics", "protocol"]
    assert p["listen"].startswith("127.0.0.1:") and port_of(p) > 0
    assert p["upstream"] == "127.0.0.1:6379" and p["enabled"] is True and p["toxics"] == []
    assert p["protocol"] == "tcp"
    assert api.call("GET", "/proxies")[1] == {"redis": p}
    assert api.call("GET", "/proxies/redis")[1] == p


@pytest.mark.parametrize("body,status,msg", [
    ({"listen": "127.0.0.1:0", "upstream": "x:1"}, 400, "missing required field: name"),
    ({"name": "a", "listen": "127.0.0.1:0"}, 400, "missing required field: upstream"),
    ({"name": "a", "upstream": "nocolon"}, 400, "Expected HOST:PORT"),
    ({"name": "a", "upstream": "x:1", "protocol": "gopher"}, 400, "unknown protocol"),
])
def test_create_errors(api, body, status, msg):
    s, b, r = api.call("POST", "/proxies", body)
    assert s == status and b["status"] == status and msg in b["error"]
    assert r.getheader("Content-Type") == "text/plain; charset=utf-8"
    assert api.call("GET", "/proxies")[1] == {}


def test_bad_json_and_duplicates(api):
    s, b, _ = api.call("POST", "/proxies", raw="{not json")
    assert s == 400 and b["error"].startswith("bad request body")
    make(api, "dup")
    s, b, _ = api.call("POST", "/proxies", {"name": "dup", "upstream": "x:1"})
    assert (s, b) == (409, {"error": "proxy already exists", "status": 409})


def test_a_bind_failure_is_a_500_and_registers_nothing(api):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        s, b, _ = api.call("POST", "/proxies", {"name": "b", "listen": "127.0.0.1:%d" % port,
                                                 "upstream": "x:1"})
    assert s == 500
    assert b["error"] == "listen tcp 127.0.0.1:%d: bind: address already in use" % port
    assert api.call("GET", "/proxies/b")[0] == 404


def test_unknown_paths_methods_and_browsers(api):
    s, b, r = api.call("GET", "/nope")
    assert (s, b) == (404, "404 page not found\n")
    assert api.call("GET", "/proxies/")[0] == 404  # a trailing slash is another path
    s, b, r = api.call("PUT", "/proxies")
    assert s == 405 and b is None
    s, b, r = api.call("GET", "/proxies", headers={"User-Agent": "Mozilla/5.0 (X11)"})
    assert (s, b) == (403, "User agent not allowed\n")
    assert api.call("GET", "/proxies/nope")[1] == {"error": "proxy not found", "status": 404}


def test_disable_refuses_and_closes_then_enable_rebinds(api):
    b = Backend("echo")
    try:
        p = make(api, "e", "127.0.0.1:%d" % b.port)
        port = port_of(p)
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"x")
        assert recv_exactly(s, 1) == b"x"
        st, body, _ = api.call("PATCH", "/proxies/e", {"enabled": False})
        assert st == 200 and body["enabled"] is False
        assert recv_until_eof(s, timeout=2) == b""  # closed before the API answered
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
        st, body, _ = api.call("POST", "/proxies/e", {"enabled": True})
        assert body["enabled"] is True and port_of(body) == port
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"y")
        assert recv_exactly(s, 1) == b"y"
        s.close()
    finally:
        b.close()


def test_update_listen_and_upstream_then_delete(api):
    b = Backend("echo")
    try:
        make(api, "u", "127.0.0.1:1")
        new_port = free_port()
        st, body, _ = api.call("POST", "/proxies/u", {"listen": "127.0.0.1:%d" % new_port,
                                                      "upstream": "127.0.0.1:%d" % b.port,
                                                      "name": "ignored"})
        assert st == 200 and body["name"] == "u" and port_of(body) == new_port
        s = socket.create_connection(("127.0.0.1", new_port), timeout=5)
        s.sendall(b"z")
        assert recv_exactly(s, 1) == b"z"
        s.close()
        st, body, _ = api.call("DELETE", "/proxies/u")
        assert st == 204 and body is None
        assert api.call("GET", "/proxies/u")[0] == 404
    finally:
        b.close()


def test_toxic_creation_checks_and_defaults(api):
    make(api, "t")
    st, t, _ = api.call("POST", "/proxies/t/toxics", {"type": "latency"})
    assert st == 200
    assert t == {"attributes": {"latency": 0, "jitter": 0}, "name": "latency_downstream",
                 "type": "latency", "stream": "downstream", "toxicity": 1.0}
    st, t, _ = api.call("POST", "/proxies/t/toxics",
                        {"type": "latency", "stream": "UpStream", "toxicity": None,
                         "attributes": {"latency": 5, "unknown": 1}})
    assert st == 200 and t["name"] == "latency_UpStream" and t["stream"] == "UpStream"
    assert t["toxicity"] == 1.0 and t["attributes"] == {"latency": 5, "jitter": 0}
    cases = [
        ({"type": "latency", "stream": "sideways"}, 400,
         "stream was invalid, can be either upstream or downstream"),
        ({"type": "latency", "stream": ""}, 400,
         "stream was invalid, can be either upstream or downstream"),
        ({"type": "nope"}, 400, "invalid toxic type"),
        ({"type": "latency", "name": "latency_downstream", "stream": "upstream"}, 409,
         "toxic already exists"),
        ({"type": "latency", "name": "f", "attributes": {"latency": 1000.0}}, 400,
         "bad request body"),
        ({"type": "latency", "name": "g", "toxicity": 2}, 400, "bad request body"),
    ]
    for body, status, msg in cases:
        st, b, _ = api.call("POST", "/proxies/t/toxics", body)
        assert st == status and b["status"] == status and b["error"].startswith(msg), (body, b)
    st, b, _ = api.call("POST", "/proxies/t/toxics", raw="[")
    assert st == 400 and b["error"].startswith("bad request body")


def test_toxics_list_order_update_and_delete(api):
    make(api, "o")
    api.call("POST", "/proxies/o/toxics", {"type": "latency", "name": "d1"})
    api.call("POST", "/proxies/o/toxics", {"type": "bandwidth", "name": "u1", "stream": "upstream"})
    api.call("POST", "/proxies/o/toxics", {"type": "slicer", "name": "d2"})
    api.call("POST", "/proxies/o/toxics", {"type": "noop", "name": "u2", "stream": "upstream"})
    names = [t["name"] for t in api.call("GET", "/proxies/o/toxics")[1]]
    assert names == ["u1", "u2", "d1", "d2"]
    st, t, _ = api.call("PATCH", "/proxies/o/toxics/d2",
                        {"attributes": {"average_size": 10}, "toxicity": 0.5,
                         "type": "latency", "stream": "upstream", "name": "x"})
    assert st == 200 and t["name"] == "d2" and t["type"] == "slicer"
    assert t["attributes"] == {"average_size": 10, "size_variation": 0, "delay": 0}
    assert t["toxicity"] == 0.5
    st, t, _ = api.call("POST", "/proxies/o/toxics/d2", {"attributes": {"delay": 7}})
    assert t["attributes"] == {"average_size": 10, "size_variation": 0, "delay": 7}
    assert api.call("GET", "/proxies/o/toxics/d2")[1] == t
    assert api.call("DELETE", "/proxies/o/toxics/d2")[0] == 204
    assert api.call("GET", "/proxies/o/toxics/d2")[1] == {"error": "toxic not found",
                                                          "status": 404}
    assert len(api.call("GET", "/proxies/o")[1]["toxics"]) == 3


def test_populate_validates_first_then_creates_keeps_and_replaces(api):
    st, b, _ = api.call("POST", "/populate", [{"name": "a", "upstream": "x:1"},
                                              {"upstream": "x:2"}])
    assert st == 400 and b == {"error": "missing required field: name at proxy 2",
                               "status": 400, "proxies": None}
    assert api.call("GET", "/proxies")[1] == {}
    st, b, _ = api.call("POST", "/populate", [
        {"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"},
        {"name": "b", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:2", "protocol": "redis",
         "toxics": [{"type": "latency", "attributes": {"latency": 10}}]}])
    assert st == 201 and [p["name"] for p in b["proxies"]] == ["a", "b"]
    assert b["proxies"][1]["protocol"] == "redis"
    assert b["proxies"][1]["toxics"][0]["attributes"]["latency"] == 10
    api.call("POST", "/proxies/a/toxics", {"type": "noop"})
    # a is the same: left alone with its toxic; b changed: replaced
    st, b2, _ = api.call("POST", "/populate", [
        {"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"},
        {"name": "b", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:3"}])
    assert st == 201
    assert len(api.call("GET", "/proxies/a")[1]["toxics"]) == 1
    assert api.call("GET", "/proxies/b")[1]["upstream"] == "127.0.0.1:3"
    assert api.call("GET", "/proxies/b")[1]["toxics"] == []


def test_reset_enables_all_and_removes_every_toxic(api):
    make(api, "r1")
    make(api, "r2")
    api.call("POST", "/proxies/r1/toxics", {"type": "latency"})
    api.call("PATCH", "/proxies/r2", {"enabled": False})
    st, b, _ = api.call("POST", "/reset")
    assert st == 204 and b is None
    ps = api.call("GET", "/proxies")[1]
    assert all(p["enabled"] and p["toxics"] == [] for p in ps.values())
    assert len(ps) == 2


def test_metrics_count_connections(api):
    b = Backend("echo")
    try:
        p = make(api, "m", "127.0.0.1:%d" % b.port)
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", port_of(p)), timeout=5)
            s.sendall(b"x")
            recv_exactly(s, 1)
            s.close()
        st, text, r = api.call("GET", "/metrics")
        assert st == 200 and r.getheader("Content-Type").startswith("text/plain")
        assert 'vaurien_proxy_connections_total{proxy="m"} 3' in text
    finally:
        b.close()


def test_an_api_call_answers_fast_during_500_stuck_connections(api):
    b = Backend("echo")
    conns = []
    try:
        p = make(api, "stuck", "127.0.0.1:%d" % b.port)
        api.call("POST", "/proxies/stuck/toxics", {"type": "bandwidth", "attributes": {"rate": 0}})
        for i in range(500):
            s = socket.create_connection(("127.0.0.1", port_of(p)), timeout=5)
            s.sendall(b"held %d" % i)
            conns.append(s)
        assert wait_until(lambda: len(b.received) >= 500, timeout=10)
        t0 = time.monotonic()
        st, _, _ = api.call("GET", "/proxies/stuck")
        took = time.monotonic() - t0
        assert st == 200 and took < 0.1, took
        t0 = time.monotonic()
        assert api.call("DELETE", "/proxies/stuck/toxics/bandwidth_downstream")[0] == 204
        assert time.monotonic() - t0 < 0.1
        # what was held is delivered once the toxic is gone
        assert recv_exactly(conns[0], 6) == b"held 0"
    finally:
        for s in conns:
            s.close()
        b.close()


def test_vaurien_endpoints_in_http_mode(backend):
    port = free_port()
    proxy_port = free_port()
    a = Api(["--proxy", "127.0.0.1:%d" % proxy_port, "--backend", "127.0.0.1:%d" % backend.port,
             "--http", "--http-host", "127.0.0.1", "--http-port", str(port)], port)
    try:
        st, b, _ = a.call("GET", "/behavior")
        assert st == 200 and b["behavior"] == "dummy"
        assert a.call("GET", "/behaviors")[1] == {"behaviors": [
            "abort", "bad_cert", "bad_length", "blackout", "delay", "dummy",
            "empty_response", "error", "hang", "malformed_chunk",
            "no_close_notify", "random_then_close", "slow_body", "tls_alert",
            "tls_handshake_delay", "transient"]}
        # the original client sends no Content-Type
        st, b, _ = a.call("PUT", "/behavior", raw='{"name": "delay", "sleep": 0.2}')
        assert (st, b) == (200, {"status": "ok"})
        st, b, _ = a.call("GET", "/behavior")
        assert b["behavior"] == "delay" and b["options"]["delay"]["sleep"] == 0.2
        s = socket.create_connection(("127.0.0.1", proxy_port), timeout=5)
        t0 = time.monotonic()
        s.sendall(b"x")
        assert recv_exactly(s, 1) == b"x"
        assert 0.2 <= time.monotonic() - t0 < 0.4  # the option took effect
        s.close()
        errors = [
            ("[1, 2]", "", "the value is not a valid json object"),
            ("nope", "", "the value is not a valid json object"),
            ('{"sleep": 1}', "", 'the value should contain a "name" key'),
            ('{"name": "x"}', "name", "the 'x' behavior does not exist"),
        ]
        for raw, name, desc in errors:
            st, b, _ = a.call("PUT", "/behavior", raw=raw)
            assert st == 400 and b == {"status": "error", "errors": [
                {"location": "body", "name": name, "description": desc}]}, b
        st, b, _ = a.call("PUT", "/behavior", {"name": "5:error,10:delay"})
        assert st == 200 and a.call("GET", "/behavior")[1]["behavior"] == "5:error,10:delay"
        assert a.call("GET", "/backend")[1] == {"backend": "127.0.0.1:%d" % backend.port}
        st, b, _ = a.call("PUT", "/backend", {"backend": "127.0.0.1:1"})
        assert (st, b) == (200, {"status": "ok"})
        assert a.call("GET", "/backend")[1] == {"backend": "127.0.0.1:1"}
        # the Toxiproxy side sees the same proxy, named vaurien
        assert list(a.call("GET", "/proxies")[1]) == ["vaurien"]
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def test_server_config_file_with_protocol_and_toxics(tmp_path):
    cfg = tmp_path / "toxiproxy.json"
    cfg.write_text('[{"name": "cache", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:11211",'
                   ' "protocol": "memcache", "toxics": [{"type": "latency",'
                   ' "attributes": {"latency": 25}}]},'
                   ' {"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:3306",'
                   ' "enabled": false}]')
    port = free_port()
    a = Api(["server", "--host", "127.0.0.1", "--port", str(port), "-config", str(cfg),
             "-seed", "7", "-proxy-metrics"], port)
    try:
        ps = a.call("GET", "/proxies")[1]
        assert list(ps) == ["cache", "db"]
        assert ps["cache"]["protocol"] == "memcache"
        assert ps["cache"]["toxics"][0]["attributes"]["latency"] == 25
        assert ps["db"]["enabled"] is False and ps["db"]["listen"] == "127.0.0.1:0"
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def test_server_bad_config_and_flags_exit_2(tmp_path):
    import subprocess
    from conftest import BIN
    bad = tmp_path / "bad.json"
    bad.write_text('[{"upstream": "x:1"}]')
    r = subprocess.run([BIN, "server", "-port", "0", "-config", str(bad)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "missing required field: name at proxy 1" in r.stderr
    bad.write_text("{not json")
    r = subprocess.run([BIN, "server", "-port", "0", "-config", str(bad)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "-config" in r.stderr
    r = subprocess.run([BIN, "server", "-port", "http"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "-port" in r.stderr
    r = subprocess.run([BIN, "server", "-version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "2.12.0" in r.stdout
