"""--protocol redis: faults per command, real -ERR replies, with redis-server,
redis-py, redis-cli and redis-benchmark."""
import os
import shutil
import subprocess
import time

import pytest

from conftest import recv_exactly

redis = pytest.importorskip("redis")


def client(port, **kw):
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, **kw)


def test_dummy_is_invisible_to_redis_py(redis_server, vaurien):
    v = vaurien("--protocol", "redis", backend_port=redis_server)
    r = client(v.port)
    for i in range(200):
        r.set("k%d" % i, "v%d" % i)
    assert r.mget(["k%d" % i for i in range(200)]) == [b"v%d" % i for i in range(200)]
    big = os.urandom(5 * 1024 * 1024)
    r.set("big", big)
    assert r.get("big") == big
    p = r.pipeline(transaction=True)
    p.incr("n").incr("n").get("n")
    assert p.execute() == [1, 2, b"2"]
    r.hset("h", mapping={"a": 1, "b": 2})
    assert r.hgetall("h") == {b"a": b"1", b"b": b"2"}
    assert r.execute_command("PING") is True


def test_redis_cli_inline_and_resp3_through_dummy(redis_server, vaurien):
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli is not installed")
    v = vaurien("--protocol", "redis", backend_port=redis_server)
    out = subprocess.run([cli, "-p", str(v.port), "SET", "greeting", "hi there"],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout.strip() == "OK"
    out = subprocess.run([cli, "-3", "-p", str(v.port)], input="HSET m f 1\nHGETALL m\n",
                         capture_output=True, text=True, timeout=10)
    assert "1#" not in out.stdout and "f" in out.stdout and "1" in out.stdout
    out = subprocess.run([cli, "-p", str(v.port), "GET", "greeting"],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout.strip() == "hi there"


def test_redis_benchmark_completes_through_dummy(redis_server, vaurien):
    bench = shutil.which("redis-benchmark")
    if bench is None:
        pytest.skip("redis-benchmark is not installed")
    v = vaurien("--protocol", "redis", backend_port=redis_server)
    out = subprocess.run([bench, "-p", str(v.port), "-t", "set,get,lpush,lpop,mset",
                          "-n", "5000", "-c", "10", "-P", "4", "-q"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("requests per second") == 5, out.stdout
    assert "ERR" not in out.stdout + out.stderr


def test_error_is_a_real_err_reply(redis_server, vaurien):
    v = vaurien("--protocol", "redis", "--behavior", "100:error", backend_port=redis_server)
    r = client(v.port)
    with pytest.raises(redis.exceptions.ResponseError) as e:
        r.set("never", "stored")
    assert "injected error" in str(e.value)
    # the connection stays usable and the server never saw the command
    with pytest.raises(redis.exceptions.ResponseError):
        r.get("never")
    assert client(redis_server).get("never") is None


def test_error_message_simulates_other_server_errors(redis_server, vaurien):
    v = vaurien("--protocol", "redis", "--behavior", "100:error",
                "--behavior-error-message", "READONLY You can't write against a read only replica.",
                backend_port=redis_server)
    r = client(v.port)
    with pytest.raises(redis.exceptions.ReadOnlyError):
        r.set("x", 1)


def run_mix(port, seed, n=100):
    from conftest import Vaurien
    v = Vaurien("--protocol", "redis", "--behavior", "30:error", "--seed", str(seed),
                backend_port=port)
    try:
        r = client(v.port)
        outcome = []
        for i in range(n):
            try:
                got = r.echo("message-%d" % i)
                assert got == b"message-%d" % i, (i, got)  # never someone else's
                outcome.append("ok")
            except redis.exceptions.ResponseError as e:
                assert "injected" in str(e)
                outcome.append("error")
        return outcome
    finally:
        assert v.stop() == 0


def test_a_seeded_30_percent_mix_on_one_connection(redis_server):
    first = run_mix(redis_server, 77)
    assert first == run_mix(redis_server, 77)
    assert 15 <= first.count("error") <= 45, first.count("error")


def test_pipelined_errors_keep_every_other_reply_in_place(redis_server, vaurien):
    v = vaurien("--protocol", "redis", "--behavior", "30:error", "--seed", "8",
                backend_port=redis_server)
    r = client(v.port)
    p = r.pipeline(transaction=False)
    for i in range(300):
        p.echo("e%d" % i)
    results = p.execute(raise_on_error=False)
    errors = 0
    for i, got in enumerate(results):
        if isinstance(got, redis.exceptions.ResponseError):
            errors += 1
        else:
            assert got == b"e%d" % i
    assert 50 <= errors <= 130


def test_delay_holds_each_command(redis_server, vaurien):
    v = vaurien("--protocol", "redis", "--behavior", "100:delay",
                "--behavior-delay-sleep", "0.2", backend_port=redis_server)
    r = client(v.port)
    r.ping()
    for _ in range(3):
        t0 = time.monotonic()
        r.set("d", "1")
        assert 0.2 <= time.monotonic() - t0 < 0.4


def test_exec_error_after_the_transaction_ran(redis_server, vaurien):
    # Only EXEC can fail inside MULTI; the server did run the transaction.
    v = vaurien("--protocol", "redis", "--behavior", "100:error", backend_port=redis_server)
    r = client(v.port)
    conn = r.connection_pool.get_connection("MULTI")
    try:
        conn.send_command("MULTI")
        assert conn.read_response() == b"OK"
        conn.send_command("INCR", "tx")
        assert conn.read_response() == b"QUEUED"
        conn.send_command("EXEC")
        with pytest.raises(redis.exceptions.ResponseError):
            conn.read_response()
    finally:
        r.connection_pool.release(conn)
    assert client(redis_server).get("tx") == b"1"


def test_pubsub_passes_through(redis_server, vaurien):
    v = vaurien("--protocol", "redis", "--behavior", "50:error", "--seed", "2",
                backend_port=redis_server)
    r = client(v.port)
    ps = r.pubsub()
    ps.subscribe("news")
    assert ps.get_message(timeout=2)["type"] == "subscribe"
    direct = client(redis_server)
    for i in range(20):
        direct.publish("news", "item-%d" % i)
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 20 and time.monotonic() < deadline:
        m = ps.get_message(timeout=1)
        if m and m["type"] == "message":
            got.append(m["data"])
    assert got == [b"item-%d" % i for i in range(20)]
    ps.close()


def test_hang_and_blackout_per_command(redis_server, vaurien):
    v = vaurien("--protocol", "redis", "--behavior", "100:hang", backend_port=redis_server)
    r = redis.Redis(host="127.0.0.1", port=v.port, socket_timeout=1)
    with pytest.raises(redis.exceptions.TimeoutError):
        r.get("x")
    v2 = vaurien("--protocol", "redis", "--behavior", "100:blackout", backend_port=redis_server)
    r2 = redis.Redis(host="127.0.0.1", port=v2.port, socket_timeout=2)
    with pytest.raises(redis.exceptions.ConnectionError):
        r2.get("x")


def test_malformed_client_bytes_pass_through_without_harm(redis_server, vaurien):
    import socket
    v = vaurien("--protocol", "redis", "--behavior", "50:error", backend_port=redis_server)
    s = v.connect()
    s.sendall(b"*2\r\n+not a bulk\r\n")
    s.settimeout(2)
    reply = s.recv(1000)
    assert reply.startswith(b"-ERR Protocol error")  # the server's own answer
    s.close()
    assert "malformed redis request" in v.log_text()
    # other connections are unaffected
    r = redis.Redis(host="127.0.0.1", port=v.port, socket_timeout=5)
    ok = 0
    for i in range(20):
        try:
            ok += r.echo("x%d" % i) == b"x%d" % i
        except redis.exceptions.ResponseError:
            pass
    assert ok > 0


def _line(s, timeout=1.0):
    """The first line the socket brings within timeout (b"" if none), and
    whether the connection was closed after it."""
    import socket
    s.settimeout(timeout)
    buf = b""
    try:
        while b"\r\n" not in buf:
            d = s.recv(1000)
            if not d:
                return buf, True
            buf += d
        s.settimeout(0.5)
        closed = s.recv(1000) == b""
    except socket.timeout:
        return buf, False
    except ConnectionResetError:
        return buf, True
    return buf, closed


@pytest.mark.parametrize("header,error", [
    (b"*3000000000\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*2\r\n$3000000000\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
])
def test_a_header_the_server_refuses_gets_its_error_at_once(redis_server, vaurien, header,
                                                            error):
    # direct, redis answers these at once and closes; the proxy must not
    # hold them waiting for a command name that never comes
    v = vaurien("--protocol", "redis", backend_port=redis_server)
    s = v.connect()
    t0 = time.monotonic()
    s.sendall(header)
    line, closed = _line(s, timeout=1.0)
    assert line == error, "after %.2f s" % (time.monotonic() - t0)
    assert closed
    s.close()


def test_an_array_header_alone_reaches_a_server_that_wants_a_password(redis_server, vaurien):
    # a server that requires a password refuses "*11" (more than 10
    # arguments) from a client not yet authenticated, as soon as it reads
    # the header: a framer cannot know that, so it must send the header on
    client(redis_server).config_set("requirepass", "secret")
    v = vaurien("--protocol", "redis", backend_port=redis_server)
    s = v.connect()
    s.sendall(b"*11\r\n")
    line, closed = _line(s, timeout=1.0)
    assert line == b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    assert closed
    s.close()


@pytest.mark.parametrize("behavior", ["100:dummy", "100:error"])
def test_a_command_whose_header_comes_alone_gets_the_servers_answer(redis_server, vaurien,
                                                                   behavior):
    # the header went to the server before the proxy could tell what the
    # command is: it passes whatever the draw says, and the commands after
    # it are framed (and faulted) as usual
    v = vaurien("--protocol", "redis", "--behavior", behavior, backend_port=redis_server)
    s = v.connect()
    s.sendall(b"*2\r\n")
    time.sleep(0.5)
    s.sendall(b"$4\r\nECHO\r\n$2\r\nhi\r\n")
    assert recv_exactly(s, 8, timeout=2) == b"$2\r\nhi\r\n"
    s.sendall(b"*1\r\n$4\r\nPING\r\n")
    want = b"-ERR injected error (vaurien)\r\n" if behavior == "100:error" else b"+PONG\r\n"
    assert recv_exactly(s, len(want), timeout=2) == want
    s.close()
