"""Precision faults (issue 16): matchers, triggers, windows, ttl and
schedules, against real servers and real clients."""
import http.client
import json
import os
import socket
import subprocess
import time

import pytest

from conftest import BIN, ROOT, Api, Vaurien, free_port, wait_until


def redis_client(port):
    redis = pytest.importorskip("redis")
    return redis, redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)


def outcomes(r, redis, commands):
    """Runs each (name, args) on one connection; 'error' or 'ok' each."""
    out = []
    for name, *args in commands:
        try:
            r.execute_command(name, *args)
            out.append("ok")
        except redis.exceptions.ResponseError as e:
            assert "injected" in str(e)
            out.append("error")
    return out


def api_proxy(*args, backend_port):
    """A proxy with its API; returns (api, proxy port)."""
    port, proxy_port = free_port(), free_port()
    a = Api(["--proxy", "127.0.0.1:%d" % proxy_port, "--backend",
             "127.0.0.1:%d" % backend_port, "--http", "--http-host", "127.0.0.1",
             "--http-port", str(port)] + list(args), port)
    return a, proxy_port


def test_only_set_on_redis_gets_errors_over_1000_mixed_commands(vaurien, redis_server):
    v = vaurien("--protocol", "redis", "--behavior", "100:error",
                "--behavior-error-match", "command=SET", backend_port=redis_server)
    redis, r = redis_client(v.port)
    kinds = ["SET", "GET", "INCR", "DEL", "EXISTS"]
    cmds = []
    for i in range(1000):
        k = kinds[i % len(kinds)]
        cmds.append((k, "k%d" % i, "v") if k == "SET" else (k, "k%d" % i))
    got = outcomes(r, redis, cmds)
    for (name, *_), o in zip(cmds, got):
        assert o == ("error" if name == "SET" else "ok"), (name, o)
    assert got.count("error") == 200
    # lower-case commands are the same commands
    assert outcomes(r, redis, [("set", "x", "1"), ("get", "x")]) == ["error", "ok"]


def test_key_glob_and_command_together(vaurien, redis_server):
    v = vaurien("--protocol", "redis", "--behavior", "100:error",
                "--behavior-error-match", "command=SET,key=user:*",
                backend_port=redis_server)
    redis, r = redis_client(v.port)
    got = outcomes(r, redis, [("SET", "user:1", "a"), ("SET", "order:1", "a"),
                              ("GET", "user:1"), ("SET", "user:22", "b"),
                              ("SET", "xuser:1", "c")])
    assert got == ["error", "ok", "ok", "error", "ok"]


def test_every_10_gives_exactly_requests_10_20_30(vaurien, redis_server):
    v = vaurien("--protocol", "redis", "--behavior", "100:error",
                "--behavior-error-every", "10", backend_port=redis_server)
    redis, r = redis_client(v.port)
    got = outcomes(r, redis, [("GET", "k")] * 35)
    assert [i + 1 for i, o in enumerate(got) if o == "error"] == [10, 20, 30]


def test_after_and_count_take_requests_6_7_8(vaurien, redis_server):
    v = vaurien("--protocol", "redis", "--behavior", "100:error",
                "--behavior-error-after", "5", "--behavior-error-count", "3",
                backend_port=redis_server)
    redis, r = redis_client(v.port)
    got = outcomes(r, redis, [("GET", "k")] * 20)
    assert [i + 1 for i, o in enumerate(got) if o == "error"] == [6, 7, 8]


def test_every_counts_only_matching_requests_across_connections(vaurien, redis_server):
    """every counts the matching requests of the proxy, whichever
    connection sends them: SETs 3 and 6 of 8, spread over two clients."""
    v = vaurien("--protocol", "redis", "--behavior", "100:error",
                "--behavior-error-match", "command=SET", "--behavior-error-every", "3",
                backend_port=redis_server)
    redis, r1 = redis_client(v.port)
    _, r2 = redis_client(v.port)
    got = []
    for i in range(8):
        r = r1 if i % 2 == 0 else r2
        got += outcomes(r, redis, [("GET", "k"), ("SET", "k", "v")])
    assert got[0::2] == ["ok"] * 8
    assert [i + 1 for i, o in enumerate(got[1::2]) if o == "error"] == [3, 6]


def test_only_post_api_is_delayed(http_server):
    port = http_server.server_address[1]
    a, pp = api_proxy("--protocol", "http", "--behavior", "100:delay",
                      "--behavior-delay-sleep", "0.4",
                      "--behavior-delay-match", "method=POST,path=/api/*",
                      backend_port=port)
    try:
        def timed(method, path):
            c = http.client.HTTPConnection("127.0.0.1", pp, timeout=10)
            t0 = time.monotonic()
            c.request(method, path, body=b"x" if method == "POST" else None)
            r = c.getresponse()
            body = r.read()
            c.close()
            assert r.status == 200, body
            return time.monotonic() - t0
        assert timed("POST", "/api/orders") >= 0.38
        assert timed("POST", "/api/a/b?c=d") >= 0.38
        assert timed("GET", "/api/orders") < 0.3
        assert timed("POST", "/other") < 0.3
        assert timed("PUT", "/api/orders") < 0.3
        # the API takes the matcher as an object; a header condition
        st, b, _ = a.call("PUT", "/behavior", {"name": "error", "status": "503",
                                               "match": {"header": {"X-Test": "1"}}})
        assert st == 200, b
        st, b, _ = a.call("GET", "/behavior")
        assert b["options"]["error"]["match"] == {"header": {"X-Test": "1"}}
        c = http.client.HTTPConnection("127.0.0.1", pp, timeout=10)
        for hdrs, want in (({"X-Test": "1"}, 503), ({}, 200), ({"x-test": "1"}, 503),
                           ({"X-Test": "2"}, 200)):
            c.request("GET", "/x", headers=hdrs)
            r = c.getresponse()
            r.read()
            assert r.status == want, (hdrs, r.status)
        c.close()
    finally:
        a.stop()


def test_client_matcher(vaurien, redis_server):
    v = vaurien("--protocol", "redis", "--behavior", "100:error",
                "--behavior-error-match", "client=127.0.0.0/8", backend_port=redis_server)
    redis, r = redis_client(v.port)
    assert outcomes(r, redis, [("GET", "k")]) == ["error"]
    v.stop()
    v = vaurien("--protocol", "redis", "--behavior", "100:error",
                "--behavior-error-match", "client=10.0.0.0/8", backend_port=redis_server)
    redis, r = redis_client(v.port)
    assert outcomes(r, redis, [("GET", "k")]) == ["ok"]


def test_mysql_table_and_statement_matchers(vaurien, mariadb_server):
    pymysql = pytest.importorskip("pymysql")
    v = vaurien("--protocol", "mysql", "--behavior", "100:error",
                "--behavior-error-match", "table=orders*", backend_port=mariadb_server)
    c = pymysql.connect(host="127.0.0.1", port=v.port, user="vaurien", password="secret",
                        database="vaurien", connect_timeout=5, read_timeout=5)
    cur = c.cursor()

    def q(sql):
        try:
            cur.execute(sql)
            cur.fetchall()
            return "ok"
        except pymysql.err.OperationalError as e:
            assert e.args[0] == 1040
            return "error"
    assert q("SELECT 1") == "ok"
    assert q("CREATE TABLE IF NOT EXISTS vaurien.orders_2026 (id INT)") == "error"
    assert q("CREATE TABLE IF NOT EXISTS vaurien.items (id INT)") == "ok"
    assert q("SELECT * FROM items") == "ok"
    assert q("select id from `vaurien`.`orders_2026` where id = 1") == "error"
    assert q("SELECT * FROM items JOIN orders_2026 ON 1") == "error"
    c.close()
    v.stop()
    v = vaurien("--protocol", "mysql", "--behavior", "100:error",
                "--behavior-error-match", "statement=UPDATE", backend_port=mariadb_server)
    c = pymysql.connect(host="127.0.0.1", port=v.port, user="vaurien", password="secret",
                        database="vaurien", connect_timeout=5, read_timeout=5)
    cur = c.cursor()
    assert q("SELECT * FROM items") == "ok"
    assert q("update items set id = 2 where id = 1") == "error"
    assert q("INSERT INTO items VALUES (1)") == "ok"
    c.close()


def test_smtp_verb_matcher(vaurien, smtp_server):
    import smtplib
    v = vaurien("--protocol", "smtp", "--behavior", "100:error",
                "--behavior-error-match", "verb=RCPT", backend_port=smtp_server.port)
    s = smtplib.SMTP("127.0.0.1", v.port, timeout=10)
    assert s.ehlo()[0] == 250
    assert s.mail("a@example.com")[0] == 250
    code, _ = s.rcpt("b@example.com")
    assert code == 451
    assert s.noop()[0] == 250
    s.quit()


def test_ttl_removes_a_toxic_and_a_behavior(redis_server):
    a, pp = api_proxy("--protocol", "redis", backend_port=redis_server)
    try:
        api_name = "redis"
        st, b, _ = a.call("GET", "/proxies")
        assert st == 200
        api_name = list(b)[0]
        st, b, _ = a.call("POST", "/proxies/%s/toxics" % api_name,
                          {"name": "brief", "type": "error", "attributes": {"ttl": 1.0}})
        assert st == 200, b
        assert b["attributes"]["ttl"] == 1.0
        redis, r = redis_client(pp)
        assert outcomes(r, redis, [("GET", "k")]) == ["error"]
        names = lambda: [t["name"] for t in a.call("GET", "/proxies/%s/toxics" % api_name)[1]]
        assert names() == ["brief"]
        assert wait_until(lambda: names() == [], timeout=5)
        assert outcomes(r, redis, [("GET", "k")]) == ["ok"]
        # a behavior of the mix
        st, b, _ = a.call("PUT", "/behavior", {"name": "error", "ttl": 0.5})
        assert st == 200, b
        assert a.call("GET", "/behavior")[1]["behavior"] == "error"
        assert outcomes(r, redis, [("GET", "k")]) == ["error"]
        assert wait_until(lambda: a.call("GET", "/behavior")[1]["behavior"] == "dummy",
                          timeout=5)
        assert outcomes(r, redis, [("GET", "k")]) == ["ok"]
    finally:
        a.stop()


def test_window_is_active_only_in_its_seconds(redis_server):
    a, pp = api_proxy("--protocol", "redis", backend_port=redis_server)
    try:
        st, b, _ = a.call("PUT", "/behavior", {"name": "error", "window": "0.6-1.6"})
        assert st == 200, b
        redis, r = redis_client(pp)
        t0 = time.monotonic()
        assert outcomes(r, redis, [("GET", "k")]) == ["ok"]
        while time.monotonic() - t0 < 0.8:
            time.sleep(0.05)
        assert outcomes(r, redis, [("GET", "k")]) == ["error"]
        while time.monotonic() - t0 < 1.9:
            time.sleep(0.05)
        assert outcomes(r, redis, [("GET", "k")]) == ["ok"]
    finally:
        a.stop()


def test_schedule_phases_in_order_with_their_counts(redis_server):
    a, pp = api_proxy("--protocol", "redis", backend_port=redis_server)
    try:
        sched = [{"for": "5 requests", "behavior": "dummy"},
                 {"for": "3 requests", "behavior": "error", "message": "ERR phase two"},
                 {"for": "0.5s", "behavior": "error", "message": "ERR phase three"},
                 {"behavior": "dummy"}]
        st, b, _ = a.call("PUT", "/behavior", {"schedule": sched})
        assert st == 200, b
        st, b, _ = a.call("GET", "/behavior")
        assert b["behavior"] == "schedule" and b["schedule"] == sched and b["phase"] == 1
        redis, r = redis_client(pp)

        def one():
            try:
                r.get("k")
                return "ok"
            except redis.exceptions.ResponseError as e:
                return str(e)
        got = [one() for _ in range(8)]
        assert got == ["ok"] * 5 + ["phase two"] * 3
        assert a.call("GET", "/behavior")[1]["phase"] == 3
        t0 = time.monotonic()
        third = []
        while time.monotonic() - t0 < 0.3:
            third.append(one())
        assert set(third) == {"phase three"}
        time.sleep(0.4)
        assert [one() for _ in range(5)] == ["ok"] * 5
        assert a.call("GET", "/behavior")[1]["phase"] == 4
        # as a behavior toxic
        st, b, _ = a.call("POST", "/proxies/%s/toxics" % list(a.call("GET", "/proxies")[1])[0],
                          {"name": "seq", "type": "dummy", "attributes": {"schedule": [
                              {"for": "2 requests", "behavior": "error"},
                              {"for": "1 request", "behavior": "dummy"},
                              {"for": "1 request", "behavior": "error"}]}})
        assert st == 200, b
        assert b["attributes"]["schedule"][0]["for"] == "2 requests"
        err = "injected error (vaurien)"
        assert [one() for _ in range(6)] == [err, err, "ok", err, "ok", "ok"]
    finally:
        a.stop()


@pytest.mark.parametrize("body,needle", [
    ({"name": "error", "match": {"method": "GET"}}, "'method' does not apply to protocol redis"),
    ({"name": "error", "match": {"colour": "red"}}, "unknown key 'colour'"),
    ({"name": "error", "match": {"command": 3}}, "match 'command' must be a string"),
    ({"name": "error", "match": "client=not-an-ip"}, "no address or CIDR"),
    ({"name": "error", "window": "30"}, "window: expected FROM-TO"),
    ({"name": "error", "window": "9-3"}, '"name": "window"'),
    ({"name": "error", "every": -1}, "every"),
    ({"name": "error", "ttl": "soon"}, "ttl"),
    ({"schedule": [{"for": "5 parsecs", "behavior": "error"}]}, "not '5 parsecs'"),
    ({"schedule": [{"behavior": "error"}, {"behavior": "dummy"}]}, "only the last phase"),
    ({"schedule": [{"for": "1s", "behavior": "nope"}]}, "'nope' behavior does not exist"),
    ({"schedule": []}, "1 to 32 phases"),
    ({"schedule": [{"for": "0x10 requests", "behavior": "error"}]}, "not '0x10 requests'"),
    ({"schedule": [{"for": "1s", "behavior": "error", "ttl": 1}]}, "ttl does not apply"),
    ({"name": "error", "schedule": [{"behavior": "error"}]}, "a schedule comes alone"),
    ({"schedule": [{"behavior": "error"}], "ttl": 0.5}, "a schedule comes alone"),
    ({"name": "error", "match": {"command=GET,key": "x"}}, "is not a key"),
    ({"name": "error", "match": {"header": {"A=B": "x"}}}, "is not a header name"),
    ({"name": "error", "match": "command="}, "'command' needs a value"),
])
def test_bad_targets_are_refused_and_change_nothing(redis_server, body, needle):
    a, pp = api_proxy("--protocol", "redis", "--behavior", "100:delay",
                      backend_port=redis_server)
    try:
        before = a.call("GET", "/behavior")[1]
        st, b, _ = a.call("PUT", "/behavior", body)
        assert st == 400 and needle in json.dumps(b), b
        assert a.call("GET", "/behavior")[1] == before
        name = list(a.call("GET", "/proxies")[1])[0]
        if "schedule" not in body and "window" not in needle and "name\"" not in needle:
            attrs = {k: v for k, v in body.items() if k != "name"}
            st, b, _ = a.call("POST", "/proxies/%s/toxics" % name,
                              {"type": "error", "attributes": attrs})
            assert st == 400 and needle in b["error"], b
            assert a.call("GET", "/proxies/%s/toxics" % name)[1] == []
    finally:
        a.stop()


def test_byte_toxic_matcher_knows_only_the_client(api, backend):
    port = free_port()
    st, b, _ = api.call("POST", "/proxies", {"name": "p", "listen": "127.0.0.1:%d" % port,
                                             "upstream": "127.0.0.1:%d" % backend.port})
    assert st == 201, b
    st, b, _ = api.call("POST", "/proxies/p/toxics", {"type": "latency", "attributes": {
        "latency": 10, "match": {"command": "GET"}}})
    assert st == 400 and "only client" in b["error"], b
    st, b, _ = api.call("POST", "/proxies/p/toxics", {"type": "latency", "attributes": {
        "latency": 300, "every": 2}})
    assert st == 200, b
    # every 2nd connection gets the latency
    times = []
    for _ in range(4):
        s = __import__("socket").create_connection(("127.0.0.1", port), timeout=5)
        t0 = time.monotonic()
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        times.append(time.monotonic() - t0)
        s.close()
    slow = [t >= 0.25 for t in times]
    assert slow == [False, True, False, True], times


@pytest.mark.parametrize("args,needle", [
    (["--protocol", "http", "--behavior-error-match", "command=SET"],
     "--behavior-error-match: 'command' does not apply to protocol http"),
    (["--behavior-delay-window", "5"], "--behavior-delay-window"),
    (["--behavior-error-every", "x"], "--behavior-error-every"),
    (["--behavior-error-match", "key"], "expected key=value"),
])
def test_bad_target_flags_exit_2_with_one_line(args, needle):
    p = subprocess.run([BIN, "--backend", "127.0.0.1:1"] + args, capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], p.stderr


def _replay_run(redis_server, *args, conns=3, per_conn=20):
    """Sequential connections (ordinals 1..conns), GETs on each: 'error',
    'delay' (held over 0.1 s) or 'ok' per request."""
    v = Vaurien("--protocol", "redis", *args, backend_port=redis_server)
    redis = pytest.importorskip("redis")
    got = []
    try:
        for _ in range(conns):
            r = redis.Redis(host="127.0.0.1", port=v.port, socket_timeout=5)
            for _ in range(per_conn):
                t0 = time.monotonic()
                try:
                    r.get("k")
                    got.append("delay" if time.monotonic() - t0 > 0.1 else "ok")
                except redis.exceptions.ResponseError:
                    got.append("error")
            r.close()
            time.sleep(0.05)
    finally:
        assert v.stop() == 0
    return got


def test_recorded_run_replayed_with_another_seed_gives_the_same_outcomes(redis_server, tmp_path):
    journal = str(tmp_path / "faults.jsonl")
    mix = ["--behavior", "25:error,15:delay", "--behavior-delay-sleep", "0.2"]
    first = _replay_run(redis_server, *mix, "--seed", "1", "--journal", journal)
    assert "error" in first and "delay" in first and "ok" in first
    lines = [json.loads(x) for x in open(journal)]
    faults = [e for e in lines if e["kind"] == "fault"]
    assert len(faults) == first.count("error") + first.count("delay")
    # another seed, no mix: the journal alone decides
    again = _replay_run(redis_server, "--seed", "2", "--replay", journal)
    assert again == first
    # while the seed alone would have drawn otherwise
    other = _replay_run(redis_server, *mix, "--seed", "2")
    assert other != first


def test_replay_through_the_api(api, redis_server):
    port = free_port()
    events = [{"kind": "fault", "proxy": "r", "conn": 1, "index": 3, "behavior": "error",
               "options": {"message": "ERR replayed"}},
              {"kind": "fault", "proxy": "r", "conn": 2, "index": 1, "behavior": "error"},
              {"kind": "open", "proxy": "r", "conn": 1},
              {"kind": "toxic", "proxy": "r", "conn": 1, "behavior": "latency"}]
    st, b, _ = api.call("POST", "/replay", raw="\n".join(json.dumps(e) for e in events) + "\n")
    assert (st, b) == (200, {"replaying": True, "faults": 2}), b
    st, b, _ = api.call("POST", "/proxies", {"name": "r", "listen": "127.0.0.1:%d" % port,
                                             "upstream": "127.0.0.1:%d" % redis_server,
                                             "protocol": "redis"})
    assert st == 201, b
    # the toxics and behaviors do not decide while a replay does
    st, b, _ = api.call("POST", "/proxies/r/toxics", {"type": "error"})
    assert st == 200
    redis = pytest.importorskip("redis")

    def run(n):
        r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        out = []
        for _ in range(n):
            try:
                r.get("k")
                out.append("ok")
            except redis.exceptions.ResponseError as e:
                out.append(str(e))
        r.close()
        return out
    assert run(4) == ["ok", "ok", "replayed", "ok"]
    assert run(2) == ["injected error (vaurien)", "ok"]
    assert api.call("GET", "/replay")[1] == {"replaying": True, "faults": 2}
    st, b, _ = api.call("DELETE", "/replay")
    assert (st, b) == (200, {"replaying": False, "faults": 0})
    assert run(1) == ["injected error (vaurien)"]  # the toxic decides again


@pytest.mark.parametrize("raw,needle", [
    ('{"kind": "fault", "proxy": "r", "conn": 1, "index": 1, "behavior": "nope"}',
     "'nope' behavior is not loaded"),
    ('{"kind": "fault", "proxy": "r", "index": 1, "behavior": "error"}', "needs proxy, conn"),
    ('{"kind": "fault"}\nnot json\n', "line 2"),
    ('{"kind": "open", "proxy": "r"}\n{"seq": 2}\n', "line 2 is not a journal event"),
    ('{"kind": "fault", "proxy": "r", "conn": 1, "index": 1, "behavior": "delay",'
     ' "options": {"sleep": "long"}}', "sleep"),
    ('[1, 2]', "event 1 is not a JSON object"),
])
def test_bad_replays_are_refused_and_change_nothing(api, raw, needle):
    st, b, _ = api.call("POST", "/replay", raw=raw)
    assert st == 400 and needle in b["error"], b
    assert api.call("GET", "/replay")[1] == {"replaying": False, "faults": 0}


def test_bad_replay_file_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "fault", "proxy": "vaurien", "conn": 1, "index": 1, '
                   '"behavior": "nope"}\n')
    for path, needle in ((str(bad), "'nope' behavior is not loaded"),
                         (str(tmp_path / "missing"), "No such file")):
        p = subprocess.run([BIN, "--backend", "127.0.0.1:1", "--replay", path],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 2
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "--replay" in lines[0] and needle in lines[0], p.stderr
    # vaurien server takes it too (after its log has started)
    p = subprocess.run([BIN, "server", "-host", "127.0.0.1", "-port", "0", "-replay", str(bad)],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "-replay: " in p.stderr and "'nope'" in p.stderr, p.stderr


def test_targets_from_the_ini_file(vaurien, redis_server, tmp_path):
    ini = tmp_path / "v.ini"
    ini.write_text("[vaurien]\nprotocol = redis\nbehavior = 100:error\n\n"
                   "[behavior:error]\nmatch = command=GET,key=a*\nevery = 2\n")
    v = vaurien("--config", str(ini), backend_port=redis_server)
    redis, r = redis_client(v.port)
    got = outcomes(r, redis, [("GET", "ab"), ("GET", "b"), ("GET", "ac"), ("SET", "ad", "1"),
                              ("GET", "ae"), ("GET", "af")])
    assert got == ["ok", "ok", "error", "ok", "ok", "error"]
    bad = tmp_path / "bad.ini"
    bad.write_text("[vaurien]\nprotocol = redis\n\n[behavior:error]\nmatch = path=/x\n")
    p = subprocess.run([BIN, "--backend", "127.0.0.1:1", "--config", str(bad)],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "'path' does not apply to protocol redis" in p.stderr


def test_connection_toxics_take_targets_too(api, backend):
    """refuse (decided at accept) counts connections like the byte toxics:
    every 2 refuses connections 2 and 4; a client matcher that does not
    take 127.0.0.1 refuses none."""
    from test_toxics_faults import refused
    port = free_port()
    st, b, _ = api.call("POST", "/proxies", {"name": "g", "listen": "127.0.0.1:%d" % port,
                                             "upstream": "127.0.0.1:%d" % backend.port})
    assert st == 201, b
    st, b, _ = api.call("POST", "/proxies/g/toxics", {"name": "r", "type": "refuse",
                                                      "attributes": {"every": 2}})
    assert st == 200 and b["attributes"]["every"] == 2, b
    assert [refused(port) for _ in range(4)] == [False, True, False, True]
    st, b, _ = api.call("POST", "/proxies/g/toxics/r", {"attributes": {
        "every": 0, "match": {"client": "10.0.0.0/8"}}})
    assert st == 200, b
    assert [refused(port) for _ in range(2)] == [False, False]


def test_a_replayed_delay_holds_what_was_drawn_then(redis_server, tmp_path):
    """A jittered delay replays as it was drawn, not drawn again: the
    replaying run's journal holds each request exactly as long."""
    j1, j2 = str(tmp_path / "one.jsonl"), str(tmp_path / "two.jsonl")
    mix = ["--behavior", "100:delay", "--behavior-delay-sleep", "0.15",
           "--behavior-delay-jitter", "0.12"]
    _replay_run(redis_server, *mix, "--seed", "3", "--journal", j1, conns=2, per_conn=4)
    _replay_run(redis_server, "--seed", "4", "--replay", j1, "--journal", j2, conns=2,
                per_conn=4)

    def held(path):
        return {(e["conn"], e["index"]): e["held_ms"] for e in map(json.loads, open(path))
                if e["kind"] == "fault"}
    first, again = held(j1), held(j2)
    assert len(first) == 8 and max(first.values()) - min(first.values()) > 20
    assert again == first


def test_a_ttl_on_dummy_expires_once(vaurien, backend):
    """dummy, put back in a mix its ttl emptied, must not expire again and
    again (it spun the loop and flooded the log)."""
    v = vaurien("--behavior-dummy-ttl", "0.2", backend_port=backend.port)
    time.sleep(1.0)
    assert v.log_text().count("removed itself (ttl)") == 1
    s = v.connect()
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    s.close()


def test_a_replay_decides_tcp_chunks_the_fast_path_would_not_see(backend, tmp_path):
    """A tcp proxy without behaviors runs on the zero-copy path; with a
    replay every chunk is decided, also on a connection already open when
    the replay was posted."""
    j = tmp_path / "j.jsonl"
    j.write_text(json.dumps({"kind": "fault", "proxy": "vaurien", "conn": 1, "index": 2,
                             "behavior": "error"}) + "\n")
    v = Vaurien("--protocol", "tcp", "--replay", str(j), backend_port=backend.port)
    try:
        s = v.connect()
        s.sendall(b"a")
        assert s.recv(10) == b"a"
        time.sleep(0.05)
        s.sendall(b"b")  # the second chunk: 1000 random bytes instead
        got = b""
        while len(got) < 1000:
            d = s.recv(2000)
            assert d
            got += d
        assert got != b"b" and len(got) == 1000
        s.close()
    finally:
        assert v.stop() == 0
    port, pp = free_port(), free_port()
    a = Api(["--proxy", "127.0.0.1:%d" % pp, "--backend", "127.0.0.1:%d" % backend.port,
             "--http", "--http-host", "127.0.0.1", "--http-port", str(port)], port)
    try:
        s = socket.create_connection(("127.0.0.1", pp), timeout=5)
        s.sendall(b"a")
        assert s.recv(10) == b"a"  # on the fast path now
        st, b, _ = a.call("POST", "/replay", raw=json.dumps(
            {"kind": "fault", "proxy": "vaurien", "conn": 1, "index": 1, "behavior": "blackout"}))
        assert st == 200, b
        s.sendall(b"b")  # the first chunk the proxy sees: blackout
        assert s.recv(10) == b""
        s.close()
    finally:
        a.stop()


def test_a_toxicity_change_keeps_the_target(api, backend):
    port = free_port()
    api.call("POST", "/proxies", {"name": "k", "listen": "127.0.0.1:%d" % port,
                                  "upstream": "127.0.0.1:%d" % backend.port})
    st, b, _ = api.call("POST", "/proxies/k/toxics", {"name": "l", "type": "latency",
                        "attributes": {"latency": 400, "match": {"client": "10.0.0.0/8"}}})
    assert st == 200, b
    s = socket.create_connection(("127.0.0.1", port), timeout=5)

    def rtt():
        t0 = time.monotonic()
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        return time.monotonic() - t0
    assert rtt() < 0.3
    st, b, _ = api.call("POST", "/proxies/k/toxics/l", {"toxicity": 0.9999})
    assert st == 200, b
    assert rtt() < 0.3 and rtt() < 0.3
    s.close()


@pytest.mark.parametrize("raw,needle", [
    ("", "no events"), ("\n\n", "no events"), ("{}", "not a journal event"),
    ("[]", "no events"),
    ('{"events": 5}', "not a list of events"),
])
def test_an_empty_replay_is_refused(api, raw, needle):
    st, b, _ = api.call("POST", "/replay", raw=raw)
    assert st == 400 and needle in b["error"], b
    assert api.call("GET", "/replay")[1] == {"replaying": False, "faults": 0}


def test_an_empty_replay_file_exits_2():
    p = subprocess.run([BIN, "--backend", "127.0.0.1:1", "--replay", "/dev/null"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "no events" in p.stderr


def test_a_replay_sends_the_http_status_drawn_then(http_server, tmp_path):
    port = http_server.server_address[1]
    j = str(tmp_path / "http.jsonl")

    def run(*args):
        v = Vaurien("--protocol", "http", *args, backend_port=port)
        try:
            c = http.client.HTTPConnection("127.0.0.1", v.port, timeout=10)
            out = []
            for i in range(30):
                c.request("GET", "/x%d" % i)
                r = c.getresponse()
                r.read()
                out.append(r.status)
                if r.getheader("Connection", "").lower() == "close":
                    c.close()
                    c = http.client.HTTPConnection("127.0.0.1", v.port, timeout=10)
            c.close()
        finally:
            assert v.stop() == 0
        return out
    first = run("--behavior", "60:error", "--seed", "1", "--journal", j)
    assert len(set(first) - {200}) >= 3  # statuses drawn from 500,501,502,503
    assert run("--seed", "999", "--replay", j) == first


def test_an_http_fault_replayed_on_another_protocol_is_dummy(api, redis_server):
    port = free_port()
    st, b, _ = api.call("POST", "/replay", raw=json.dumps(
        {"kind": "fault", "proxy": "r", "conn": 1, "index": 1, "behavior": "malformed_chunk"}))
    assert st == 200, b
    api.call("POST", "/proxies", {"name": "r", "listen": "127.0.0.1:%d" % port,
                                  "upstream": "127.0.0.1:%d" % redis_server,
                                  "protocol": "redis"})
    redis, r = redis_client(port)
    assert r.ping() is True


def test_schedule_phase_moves_on_with_time_and_a_toxic_schedule_is_removed_with_null(redis_server):
    a, pp = api_proxy("--protocol", "redis", backend_port=redis_server)
    try:
        st, b, _ = a.call("PUT", "/behavior", {"schedule": [
            {"for": "0.3s", "behavior": "error"}, {"for": "0.3s", "behavior": "dummy"}]})
        assert st == 200, b
        assert a.call("GET", "/behavior")[1]["phase"] == 1
        time.sleep(0.4)
        assert a.call("GET", "/behavior")[1]["phase"] == 2  # no request needed
        time.sleep(0.3)
        assert a.call("GET", "/behavior")[1]["phase"] is None  # all ended
        name = list(a.call("GET", "/proxies")[1])[0]
        st, b, _ = a.call("POST", "/proxies/%s/toxics" % name, {"name": "s", "type": "dummy",
                          "attributes": {"schedule": [{"behavior": "error"}]}})
        assert st == 200 and b["attributes"]["phase"] == 1, b
        redis, r = redis_client(pp)
        assert outcomes(r, redis, [("GET", "k")]) == ["error"]
        st, b, _ = a.call("POST", "/proxies/%s/toxics/s" % name,
                          {"attributes": {"schedule": None}})
        assert st == 200 and "schedule" not in b["attributes"], b
        assert outcomes(r, redis, [("GET", "k")]) == ["ok"]
    finally:
        a.stop()


def test_targets_and_schedules_in_toxics_of_the_server_config(redis_server, tmp_path):
    """vaurien server -config takes toxics with match and schedule."""
    port, pp = free_port(), free_port()
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps([{"name": "r", "listen": "127.0.0.1:%d" % pp,
                                "upstream": "127.0.0.1:%d" % redis_server, "protocol": "redis",
                                "toxics": [{"name": "sets", "type": "error",
                                            "attributes": {"match": {"command": "SET"}}},
                                           {"name": "seq", "type": "dummy", "attributes": {
                                               "schedule": [{"for": "1 request", "behavior": "dummy"},
                                                            {"behavior": "error"}]}}]}]))
    a = Api(["server", "-host", "127.0.0.1", "-port", str(port), "-config", str(cfg)], port)
    try:
        redis, r = redis_client(pp)
        # SET: the first toxic; GET: the schedule's first request passes
        assert outcomes(r, redis, [("SET", "k", "v"), ("GET", "k"), ("GET", "k")]) == \
            ["error", "ok", "error"]
    finally:
        a.stop()


def test_a_custom_behavior_takes_targets_and_its_own_option_wins(vaurien, redis_server):
    """readonly.lua declares `every` itself: its own option wins over the
    target's of the same name; match and after are the target's."""
    lua = os.path.join(ROOT, "examples", "lua", "redis_readonly.lua")
    v = vaurien("--protocol", "redis", "--behavior-file", "readonly=" + lua,
                "--behavior", "100:readonly", "--behavior-readonly-every", "1",
                "--behavior-readonly-prefix", "", "--behavior-readonly-match", "key=order:*",
                "--behavior-readonly-after", "1", backend_port=redis_server)
    redis, r = redis_client(v.port)
    got = []
    for key in ("order:1", "user:1", "order:2", "order:3", "user:2"):
        try:
            r.set(key, "v")
            got.append("ok")
        except redis.exceptions.ReadOnlyError:
            got.append("error")
    assert got == ["ok", "ok", "error", "error", "ok"]
