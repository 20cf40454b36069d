"""Custom behaviors and protocols in Lua (issue 13): each example of
examples/lua against a real server, options through the command line, the
INI file and the API with bad values refused, scripts that fail or never
end, seeded replay, reload."""
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BIN, ROOT, Api, free_port, recv_exactly, wait_until

EX = os.path.join(ROOT, "examples", "lua")


def example(name):
    return os.path.join(EX, name)


def run_fails(*args):
    """Runs vaurien expecting it to refuse its arguments: (status, stderr)."""
    p = subprocess.run([BIN, "--proxy", "127.0.0.1:%d" % free_port()] + list(args),
                       capture_output=True, timeout=10)
    return p.returncode, p.stderr.decode()


# ---- the examples -------------------------------------------------------

def test_redis_readonly_on_every_10th_set_of_user_keys(vaurien, redis_server):
    import redis
    v = vaurien("--protocol", "redis", "--behavior-file",
                "readonly=" + example("redis_readonly.lua"),
                "--behavior", "100:readonly", backend_port=redis_server)
    r = redis.Redis(port=v.port, socket_timeout=5)
    direct = redis.Redis(port=redis_server, socket_timeout=5)
    failed, user_sets = [], 0
    for i in range(1, 61):
        r.set("other:%d" % i, "x")          # never counted
        assert r.get("other:%d" % i) == b"x"
        user_sets += 1
        try:
            r.set("user:%d" % i, "v")
        except redis.exceptions.ReadOnlyError as e:
            assert "read only replica" in str(e)
            failed.append(user_sets)
    assert failed == [10, 20, 30, 40, 50, 60]
    # a refused SET never reached the server
    assert direct.get("user:10") is None and direct.get("user:11") == b"v"


def test_http_slow_post_only_for_posts_under_api(vaurien, http_server):
    import http.client
    v = vaurien("--protocol", "http", "--behavior-file",
                "slowpost=" + example("http_slow_post.lua"),
                "--behavior", "100:slowpost",
                backend_port=http_server.server_address[1])
    c = http.client.HTTPConnection("127.0.0.1", v.port, timeout=10)

    def timed(method, path):
        t = time.monotonic()
        c.request(method, path, body=b"abc" if method == "POST" else None)
        r = c.getresponse()
        body = r.read()
        assert r.status == 200, body
        return time.monotonic() - t

    for _ in range(3):
        assert timed("POST", "/api/orders") >= 0.29
        assert timed("GET", "/api/orders") < 0.2
        assert timed("POST", "/other") < 0.2
    c.close()


def corrupted_replies(v, redis_port, n=300):
    """Sends n GETs of a 100-byte value as raw tcp, one at a time; returns
    the indexes of the replies that differ from the real one."""
    import redis
    redis.Redis(port=redis_port).set("k", "v" * 100)
    want = b"$100\r\n" + b"v" * 100 + b"\r\n"
    bad = []
    with v.connect() as s:
        for i in range(n):
            s.sendall(b"GET k\r\n")
            got = recv_exactly(s, len(want))
            if got != want:
                assert sum(a != b for a, b in zip(got, want)) == 1, got
                bad.append(i)
    return bad


def test_tcp_corrupt_flips_one_byte_seeded(vaurien, redis_server):
    args = ("--protocol", "tcp", "--behavior-file", "flip=" + example("tcp_corrupt.lua"),
            "--behavior", "100:flip", "--behavior-flip-rate", "0.05", "--seed", "11")
    first = corrupted_replies(vaurien(*args, backend_port=redis_server), redis_server)
    again = corrupted_replies(vaurien(*args, backend_port=redis_server), redis_server)
    assert 3 <= len(first) <= 40, first        # about 5 % of 300
    assert again == first                       # --seed replays them


def test_mysql_deadlock_on_updates_only(vaurien, mariadb_server):
    import pymysql

    def run():
        v = vaurien("--protocol", "mysql", "--behavior-file",
                    "deadlock=" + example("mysql_deadlock.lua"),
                    "--behavior", "100:deadlock", "--behavior-deadlock-rate", "0.1",
                    "--seed", "5", backend_port=mariadb_server)
        db = pymysql.connect(host="127.0.0.1", port=v.port, user="vaurien",
                             password="secret", database="vaurien", autocommit=True)
        cur = db.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS lua_dl (id INT PRIMARY KEY, n INT)")
        cur.execute("REPLACE INTO lua_dl VALUES (1, 0)")
        hit = []
        for i in range(150):
            try:
                cur.execute("UPDATE lua_dl SET n = n + 1 WHERE id = 1")
            except pymysql.err.OperationalError as e:
                assert e.args == (1213, "Deadlock found when trying to get lock; "
                                        "try restarting transaction")
                hit.append(i)
            cur.execute("SELECT n FROM lua_dl WHERE id = 1")  # never fails
            assert cur.fetchone()[0] == i + 1 - len(hit)       # refused: not run
        db.close()
        return hit

    first = run()
    assert 4 <= len(first) <= 35, first
    assert run() == first


def test_delay_then_error_waits_then_fails_without_reaching_the_backend(vaurien, redis_server):
    import redis
    v = vaurien("--protocol", "redis", "--behavior-file",
                "slowfail=" + example("delay_then_error.lua"),
                "--behavior", "100:slowfail", "--behavior-slowfail-sleep", "0.3",
                "--behavior-slowfail-message", "ERR slow then failed",
                backend_port=redis_server)
    r = redis.Redis(port=v.port, socket_timeout=5)
    for _ in range(2):
        t = time.monotonic()
        with pytest.raises(redis.exceptions.ResponseError, match="slow then failed"):
            r.incr("counter")
        assert 0.29 <= time.monotonic() - t < 2
    assert redis.Redis(port=redis_server).get("counter") is None


def test_inline_protocol_frames_redis_inline_commands(vaurien, redis_server):
    cmds = (b"SET a hello\r\nGET a\r\nRPUSH l 1 2 3\r\nLRANGE l 0 -1\r\n"
            b"PING\r\nGET nope\r\nDEL l\r\n") * 5

    def exchange(port, n_replies):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(cmds)
            data = b""
            deadline = time.monotonic() + 5
            while data.count(b"\r\n") < n_replies and time.monotonic() < deadline:
                data += s.recv(65536)
            return data

    # 35 replies; LRANGE's array is 7 lines
    direct = exchange(redis_server, 35 + 5 * 6)
    clean = vaurien("--protocol-file", "inline=" + example("inline.lua"),
                    "--protocol", "inline", backend_port=redis_server)
    assert exchange(clean.port, 35 + 5 * 6) == direct      # transparent
    faulty = vaurien("--protocol-file", "inline=" + example("inline.lua"),
                     "--protocol", "inline", "--behavior", "30:error", "--seed", "3",
                     backend_port=redis_server)
    got = exchange(faulty.port, 20)
    assert b"-ERR injected error (vaurien)\r\n" in got
    assert b"+PONG\r\n" in got or b"$5\r\nhello\r\n" in got
    assert "malformed" not in faulty.log_text()


def test_dns_protocol_answers_errors_as_dns(vaurien, dnsmasq_server):
    import dns.message
    import dns.query
    import dns.rcode
    v = vaurien("--protocol-file", "dns=" + example("dns.lua"), "--protocol", "dns",
                "--behavior", "50:error", "--behavior-error-code", "5", "--seed", "2",
                backend_port=dnsmasq_server)
    codes = []
    for i in range(20):
        q = dns.message.make_query("host%d.example.test" % i, "A")
        r = dns.query.tcp(q, "127.0.0.1", port=v.port, timeout=5)
        assert r.id == q.id and r.question == q.question
        if r.rcode() == dns.rcode.REFUSED:
            assert r.answer == []
        else:
            assert r.rcode() == dns.rcode.NOERROR
            assert str(r.answer[0][0]) == "10.1.2.3"
        codes.append(r.rcode())
    assert 3 <= codes.count(dns.rcode.REFUSED) <= 17
    # several queries on one connection: replies in order
    with v.connect() as s:
        qs = [dns.message.make_query("p%d.example.test" % i, "A") for i in range(10)]
        s.sendall(b"".join(len(w).to_bytes(2, "big") + w for w in (q.to_wire() for q in qs)))
        for q in qs:
            n = int.from_bytes(recv_exactly(s, 2), "big")
            assert dns.message.from_wire(recv_exactly(s, n)).id == q.id


# ---- options, loading, errors ------------------------------------------

COUNTER = """
return {
  help = "fails every Nth request",
  options = { { name = "every", type = "int", default = 10, min = 1, max = 1000,
                help = "one in this many" } },
  request = function(req, opts, conn)
    conn.n = (conn.n or 0) + 1
    if conn.n %% opts.every == 0 then return vaurien.error{ message = "ERR %s" } end
  end,
}
"""


def failing_indexes(port, n=12):
    import redis
    r = redis.Redis(port=port, socket_timeout=5)
    out = []
    for i in range(1, n + 1):
        try:
            r.ping()
        except redis.exceptions.ResponseError:
            out.append(i)
    return out


def test_options_from_the_command_line_and_bad_values(tmp_path, vaurien, redis_server):
    f = tmp_path / "every.lua"
    f.write_text(COUNTER % "cli")
    v = vaurien("--protocol", "redis", "--behavior-file", "every=%s" % f,
                "--behavior", "100:every", "--behavior-every-every", "4",
                backend_port=redis_server)
    assert failing_indexes(v.port) == [4, 8, 12]
    rc, err = run_fails("--behavior-file", "every=%s" % f, "--behavior-every-every", "0")
    assert rc == 2 and "--behavior-every-every" in err and "1" in err, err
    rc, err = run_fails("--behavior-file", "every=%s" % f, "--behavior-every-often", "3")
    assert rc == 2 and "--behavior-every-often" in err, err
    rc, err = run_fails("--behavior-file", "every=%s" % f, "--behavior-every-every", "x")
    assert rc == 2 and "'x'" in err, err
    rc, err = run_fails("--behavior-file", "every")
    assert rc == 2 and "NAME=PATH.lua" in err, err
    rc, err = run_fails("--behavior-file", "every=/nonexistent.lua")
    assert rc == 2 and "/nonexistent.lua" in err, err
    bad = tmp_path / "bad.lua"
    bad.write_text("return {")
    rc, err = run_fails("--behavior-file", "bad=%s" % bad)
    assert rc == 2 and "bad.lua" in err, err
    assert len(err.strip().splitlines()) == 1, err
    rc, err = run_fails("--behavior-file", "delay=%s" % f)
    assert rc == 2 and "built-in" in err, err
    out = subprocess.run([BIN, "--behavior-file", "every=%s" % f, "--list-behaviors"],
                         capture_output=True, timeout=10).stdout.decode()
    assert "every: fails every Nth request" in out
    assert "--behavior-every-every" in out and "one in this many (int, default 10)" in out


def test_options_from_the_ini_file(tmp_path, vaurien, redis_server):
    (tmp_path / "every.lua").write_text(COUNTER % "ini")
    ini = tmp_path / "v.ini"
    # the option comes before the script line: scripts load first
    ini.write_text("[vaurien]\nprotocol = redis\nbehavior = 100:every\n"
                   "[behavior:every]\nevery = 3\nscript = every.lua\n")
    v = vaurien("--config", str(ini), backend_port=redis_server)
    assert failing_indexes(v.port, 9) == [3, 6, 9]
    ini.write_text("[behavior:every]\nscript = every.lua\nevery = -1\n")
    rc, err = run_fails("--config", str(ini))
    assert rc == 2 and "every" in err and "line 3" in err, err
    # a protocol from the file, relative to its folder, with a behavior
    proto = tmp_path / "protos"
    proto.mkdir()
    (proto / "inline.lua").write_text(open(example("inline.lua")).read())
    ini.write_text("[vaurien]\nprotocol = inline\nbehavior = 100:every\n"
                   "[protocol:inline]\nscript = protos/inline.lua\n"
                   "[behavior:every]\nscript = every.lua\nevery = 2\n")
    v = vaurien("--config", str(ini), backend_port=redis_server)
    with v.connect() as s:
        s.sendall(b"PING\r\nPING\r\nPING\r\nPING\r\n")
        want = b"+PONG\r\n-ERR ini\r\n+PONG\r\n-ERR ini\r\n"
        assert recv_exactly(s, len(want)) == want
    ini.write_text("[behavior:mine]\ncallable = mymodule:MyBehavior\n")
    rc, err = run_fails("--config", str(ini))
    assert rc == 2 and "script = FILE.lua" in err, err


def test_behaviors_posted_to_the_api(api, redis_server):
    src = COUNTER % "api"
    st, body, _ = api.call("POST", "/behaviors", {"name": "every", "script": src})
    assert st == 201, body
    assert body["name"] == "every" and body["options"][0]["name"] == "every"
    assert body["options"][0]["type"] == "int" and body["options"][0]["default"] == "10"
    st, body, _ = api.call("GET", "/behaviors")
    assert "every" in body["behaviors"] and body["behaviors"] == sorted(body["behaviors"])
    port = free_port()
    st, body, _ = api.call("POST", "/proxies", {"name": "r", "listen": "127.0.0.1:%d" % port,
                                                "upstream": "127.0.0.1:%d" % redis_server,
                                                "protocol": "redis"})
    assert st == 201, body
    # a custom behavior as a toxic, with its option as an attribute
    st, body, _ = api.call("POST", "/proxies/r/toxics",
                           {"name": "e", "type": "every", "attributes": {"every": 5}})
    assert st == 200, body
    assert body["attributes"]["every"] == 5
    assert failing_indexes(port, 10) == [5, 10]
    st, body, _ = api.call("POST", "/proxies/r/toxics",
                           {"name": "f", "type": "every", "attributes": {"every": 0}})
    assert st == 400 and "every" in body["error"], body
    for bad, code, says in (({"name": "x", "script": "return {"}, 400, "expected"),
                            ({"name": "delay", "script": src}, 409, "built-in"),
                            ({"name": "x"}, 400, "script"),
                            ({"script": src}, 400, "name"),
                            ({"name": "x", "file": "/etc/passwd"}, 400, "unknown field"),
                            ({"name": "Bad Name", "script": src}, 400, "lower case")):
        st, body, _ = api.call("POST", "/behaviors", bad)
        assert st == code and says in body["error"], (bad, body)
    st, body, _ = api.call("POST", "/behaviors", raw="{nope")
    assert st == 400 and "error" in body


def test_the_server_config_loads_behaviors_and_protocols(tmp_path, redis_server):
    (tmp_path / "every.lua").write_text(COUNTER % "config")
    port = free_port()
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({
        "behaviors": [{"name": "every", "file": "every.lua"}],
        "protocols": [{"name": "inline", "file": example("inline.lua")}],
        "proxies": [{"name": "r", "listen": "127.0.0.1:%d" % port,
                     "upstream": "127.0.0.1:%d" % redis_server, "protocol": "redis"}]}))
    apiport = free_port()
    a = Api(["server", "-host", "127.0.0.1", "-port", str(apiport), "-config", str(cfg)],
            apiport)
    try:
        st, body, _ = a.call("GET", "/behaviors")
        assert "every" in body["behaviors"]
        st, body, _ = a.call("POST", "/proxies/r/toxics",
                             {"name": "e", "type": "every", "attributes": {"every": 2}})
        assert st == 200, body
        assert failing_indexes(port, 4) == [2, 4]
        p2 = free_port()
        st, body, _ = a.call("POST", "/proxies", {"name": "i", "listen": "127.0.0.1:%d" % p2,
                                                  "upstream": "127.0.0.1:%d" % redis_server,
                                                  "protocol": "inline"})
        assert st == 201, body
        with socket.create_connection(("127.0.0.1", p2), timeout=5) as s:
            s.sendall(b"PING\r\n")
            assert recv_exactly(s, 7) == b"+PONG\r\n"
    finally:
        rc, err = a.stop()
    assert rc == 0, err
    cfg.write_text(json.dumps({"behaviors": [{"name": "every", "script": "return {"}]}))
    p = subprocess.run([BIN, "server", "-port", str(free_port()), "-config", str(cfg)],
                       capture_output=True, timeout=10)
    assert p.returncode == 2 and b"behaviors 1" in p.stderr, p.stderr


def test_a_script_that_errors_or_never_ends_does_not_stall_others(tmp_path, vaurien, redis_server):
    import redis
    f = tmp_path / "bad.lua"
    f.write_text("""
return { request = function(req)
  if req.command == "GET" then while true do end end
  if req.command == "SET" then error("broken on purpose") end
end }""")
    v = vaurien("--protocol", "redis", "--behavior-file", "bad=%s" % f,
                "--behavior", "100:bad", backend_port=redis_server)
    stop = threading.Event()
    served = []

    def hammer():
        r = redis.Redis(port=v.port, socket_timeout=10)
        while not stop.is_set():
            r.set("a", "1")                       # the script errors: dummy
            served.append(r.get("a"))             # the script loops: stopped, dummy
    t = threading.Thread(target=hammer)
    t.start()
    try:
        r = redis.Redis(port=v.port, socket_timeout=5)
        worst = 0
        for _ in range(100):
            s = time.monotonic()
            assert r.ping()
            worst = max(worst, time.monotonic() - s)
        # one stopped call runs a million instructions (a few ms): a ping
        # waits for at most a couple of them
        assert worst < 0.25, worst
    finally:
        stop.set()
        t.join(10)
    assert served and all(x == b"1" for x in served)
    log = v.log_text()
    assert log.count("broken on purpose") == 1, log[-2000:]
    assert log.count("ran more than") == 1


SEEDED = """
return { request = function(req)
  if vaurien.random() < 0.3 then return vaurien.error{} end
  if math.random(10) == 1 then return vaurien.delay(1) end
end }
"""


def test_scripted_faults_replay_with_the_seed(tmp_path, vaurien, redis_server):
    f = tmp_path / "dice.lua"
    f.write_text(SEEDED)

    def run(seed):
        v = vaurien("--protocol", "redis", "--behavior-file", "dice=%s" % f,
                    "--behavior", "100:dice", "--seed", str(seed), backend_port=redis_server)
        return failing_indexes(v.port, 60)

    a, b, c = run(8), run(8), run(9)
    assert a == b and 5 <= len(a) <= 35
    assert a != c


def test_reload_keeps_the_old_script_when_the_new_one_fails(tmp_path, vaurien, redis_server):
    import redis
    f = tmp_path / "r.lua"
    f.write_text('return { request = function() return vaurien.error{message="ERR one"} end }')
    v = vaurien("--protocol", "redis", "--behavior-file", "r=%s" % f,
                "--behavior", "100:r", backend_port=redis_server)
    r = redis.Redis(port=v.port, socket_timeout=5)

    def says():
        try:
            r.ping()
            return "pass"
        except redis.exceptions.ResponseError as e:
            return str(e)
    assert says() == "one"
    f.write_text('return { request = function() return vaurien.error{message="ERR two"} end }')
    v.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: says() == "two", timeout=5)
    f.write_text("return { request = function() oops")
    v.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "nothing changed" in v.log_text(), timeout=5)
    line = [x for x in v.log_text().splitlines() if "nothing changed" in x][0]
    assert "r.lua" in line and "SIGHUP" in line, line
    assert says() == "two"          # the old script stays
    time.sleep(0.2)
    assert says() == "two"


def test_a_post_replaces_a_behavior_and_a_bad_one_keeps_it(api, redis_server):
    one = 'return { request = function() return vaurien.error{message="ERR one"} end }'
    two = 'return { request = function() return vaurien.error{message="ERR two"} end }'
    assert api.call("POST", "/behaviors", {"name": "r", "script": one})[0] == 201
    port = free_port()
    api.call("POST", "/proxies", {"name": "p", "listen": "127.0.0.1:%d" % port,
                                  "upstream": "127.0.0.1:%d" % redis_server,
                                  "protocol": "redis"})
    assert api.call("POST", "/proxies/p/toxics", {"type": "r"})[0] == 200
    import redis
    r = redis.Redis(port=port, socket_timeout=5)
    with pytest.raises(redis.exceptions.ResponseError, match="one"):
        r.ping()
    assert api.call("POST", "/behaviors", {"name": "r", "script": two})[0] == 200
    with pytest.raises(redis.exceptions.ResponseError, match="two"):
        r.ping()                     # the same connection, the next request
    st, body, _ = api.call("POST", "/behaviors", {"name": "r", "script": "return 1"})
    assert st == 400 and "table" in body["error"]
    with pytest.raises(redis.exceptions.ResponseError, match="two"):
        r.ping()


def test_a_script_cannot_grow_the_proxy_past_its_memory_cap(tmp_path, vaurien, redis_server):
    import redis
    from conftest import SANITIZED, rss_kb
    f = tmp_path / "hog.lua"
    f.write_text("""
local keep = {}
return { request = function(req, opts, conn, proxy)
  for i = 1, 2000 do keep[#keep + 1] = string.rep("x", 1000) .. #keep end
end }""")
    v = vaurien("--protocol", "redis", "--behavior-file", "hog=%s" % f,
                "--behavior", "100:hog", backend_port=redis_server)
    r = redis.Redis(port=v.port, socket_timeout=10)
    for _ in range(60):                  # 120 MB asked for in all
        assert r.ping()
    assert "not enough memory" in v.log_text()
    if not SANITIZED:
        assert rss_kb(v.proc.pid) < 120 * 1024


def test_a_reply_hook_replaces_a_reply_and_the_connection_goes_on(tmp_path, vaurien, redis_server):
    f = tmp_path / "rep.lua"
    f.write_text("""
return { reply = function(rep, req)
  if req.command == "GET" then return vaurien.replace("$5\\r\\nhello\\r\\n") end
  if req.command == "ECHO" and req.args[1] == "e" then return vaurien.error{ message = "ERR by reply" } end
end }""")
    v = vaurien("--protocol", "redis", "--behavior-file", "rep=%s" % f,
                "--behavior", "100:rep", backend_port=redis_server)
    with v.connect() as s:
        for _ in range(3):
            s.sendall(b"GET k\r\nPING\r\nECHO e\r\nPING\r\n")
            want = b"$5\r\nhello\r\n+PONG\r\n-ERR by reply\r\n+PONG\r\n"
            assert recv_exactly(s, len(want)) == want
        # pipelined: replies in request order, the replaced ones in their turn
        s.sendall(b"PING\r\nGET k\r\n" * 200)
        want = b"+PONG\r\n$5\r\nhello\r\n" * 200
        assert recv_exactly(s, len(want)) == want


def test_a_name_with_a_nul_byte_is_refused(api):
    st, body, _ = api.call("POST", "/behaviors", raw=json.dumps(
        {"name": "a\u0000b", "script": "return { request = function() end }"}))
    assert st == 400 and "NUL" in body["error"]
    assert "a" not in api.call("GET", "/behaviors")[1]["behaviors"]


def test_answer_close_reset_and_print_reach_the_client_and_the_log(tmp_path, vaurien, redis_server):
    f = tmp_path / "ends.lua"
    f.write_text("""
return { request = function(req)
  print("seen", req.command, req.index)
  if req.command == "QUIT" then return vaurien.answer("+BYE\\r\\n", { close = true }) end
  if req.command == "DEBUG" then return vaurien.reset() end
end }""")
    v = vaurien("--protocol", "redis", "--behavior-file", "ends=%s" % f,
                "--behavior", "100:ends", backend_port=redis_server)
    with v.connect() as s:
        s.sendall(b"PING\r\nQUIT\r\nPING\r\n")
        assert recv_exactly(s, 13) == b"+PONG\r\n+BYE\r\n"
        assert s.recv(100) == b""                       # closed after the answer
    with v.connect() as s:
        s.sendall(b"PING\r\n")
        assert recv_exactly(s, 7) == b"+PONG\r\n"
        s.sendall(b"DEBUG x\r\n")
        with pytest.raises(ConnectionResetError):
            for _ in range(100):
                if s.recv(100) == b"":
                    break
    assert wait_until(lambda: "script: seen QUIT 2" in v.log_text())
