"""--protocol memcache: faults per command, real SERVER_ERROR replies, with
memcached and pymemcache."""
import time

import pytest

from conftest import recv_exactly

pymemcache = pytest.importorskip("pymemcache")
from pymemcache.client.base import Client  # noqa: E402
from pymemcache.exceptions import MemcacheServerError  # noqa: E402


def client(port):
    return Client(("127.0.0.1", port), timeout=5, connect_timeout=5, default_noreply=False)


def test_dummy_is_invisible_to_pymemcache(memcached_server, vaurien):
    v = vaurien("--protocol", "memcache", backend_port=memcached_server)
    c = client(v.port)
    for i in range(100):
        assert c.set("k%d" % i, b"value %d" % i) is True
    assert c.get_many(["k%d" % i for i in range(100)]) == {
        "k%d" % i: b"value %d" % i for i in range(100)}
    big = bytes(range(256)) * 4000
    c.set("big", big)
    assert c.get("big") == big
    value, cas = c.gets("k1")
    assert c.cas("k1", b"new", cas) is True
    assert c.cas("k1", b"newer", cas) is False
    assert c.add("k1", b"x") is False
    assert c.append("k1", b"+") is True and c.prepend("k1", b"-") is True
    assert c.get("k1") == b"-new+"
    c.set("n", b"10")
    assert c.incr("n", 5) == 15 and c.decr("n", 3) == 12
    assert c.touch("n", 100) is True
    assert c.delete("n") is True and c.get("n") is None
    c.set("quiet", b"1", noreply=True)
    assert c.get("quiet") == b"1"
    assert b"pid" in c.stats()


def test_meta_commands_and_quiet_groups_through_dummy(memcached_server, vaurien):
    v = vaurien("--protocol", "memcache", backend_port=memcached_server)
    s = v.connect()
    s.sendall(b"ms mk 3 T0\r\nabc\r\nmg mk v\r\nmg missing v q\r\nmg mk v q\r\nmn\r\nmd mk\r\nmg mk v\r\n")
    expect = b"HD\r\nVA 3\r\nabc\r\nVA 3\r\nabc\r\nMN\r\nHD\r\nEN\r\n"
    assert recv_exactly(s, len(expect)) == expect
    s.close()


def test_error_is_a_server_error(memcached_server, vaurien):
    v = vaurien("--protocol", "memcache", "--behavior", "100:error",
                "--behavior-error-message", "out of memory storing object",
                backend_port=memcached_server)
    c = client(v.port)
    with pytest.raises(MemcacheServerError) as e:
        c.set("x", b"1")
    assert "out of memory storing object" in str(e.value)
    with pytest.raises(MemcacheServerError):
        c.get_many(["a", "b"])
    assert client(memcached_server).get("x") is None  # never stored


def test_noreply_writes_are_lost_silently_on_error(memcached_server, vaurien):
    v = vaurien("--protocol", "memcache", "--behavior", "100:error", backend_port=memcached_server)
    s = v.connect()
    s.sendall(b"set lost 0 0 1 noreply\r\nx\r\nmn\r\n")
    assert recv_exactly(s, 36).startswith(b"SERVER_ERROR")  # the mn's answer only
    s.close()
    assert client(memcached_server).get("lost") is None


def run_mix(port, seed):
    from conftest import Vaurien
    v = Vaurien("--protocol", "memcache", "--behavior", "30:error", "--seed", str(seed),
                backend_port=port)
    try:
        c = client(v.port)
        client(port).set("base", b"b")
        out = []
        for i in range(100):
            try:
                got = c.get_many(["base", "nothere%d" % i])
                assert got == {"base": b"b"}
                out.append("ok")
            except MemcacheServerError:
                out.append("error")
        return out
    finally:
        assert v.stop() == 0


def test_a_seeded_30_percent_mix_on_one_connection(memcached_server):
    first = run_mix(memcached_server, 9)
    assert first == run_mix(memcached_server, 9)
    assert 15 <= first.count("error") <= 45


def test_delay_holds_each_command(memcached_server, vaurien):
    v = vaurien("--protocol", "memcache", "--behavior", "100:delay",
                "--behavior-delay-sleep", "0.2", backend_port=memcached_server)
    c = client(v.port)
    for _ in range(3):
        t0 = time.monotonic()
        c.set("d", b"1")
        assert 0.2 <= time.monotonic() - t0 < 0.4


INJECTED = b"SERVER_ERROR injected error (vaurien)\r\n"


@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize("command, answer", [
    (b"stats reset", b"RESET\r\n"),
    (b"stats detail on", b"OK\r\n"),
    (b"stats detail off", b"OK\r\n"),
])
def test_an_error_after_a_one_line_stats_reply_is_answered(memcached_server, vaurien,
                                                           command, answer, pipelined):
    # transient with warmup 1: the stats command passes, the next request
    # gets the error, the ones after pass
    v = vaurien("--protocol", "memcache", "--behavior", "100:transient",
                "--behavior-transient-warmup", "1", backend_port=memcached_server)
    s = v.connect()
    if pipelined:
        s.sendall(command + b"\r\nget k\r\n")
        assert recv_exactly(s, len(answer + INJECTED), timeout=3) == answer + INJECTED
    else:
        s.sendall(command + b"\r\n")
        assert recv_exactly(s, len(answer)) == answer
        s.sendall(b"get k\r\n")
        assert recv_exactly(s, len(INJECTED), timeout=3) == INJECTED
    s.sendall(b"version\r\n")
    assert recv_exactly(s, 8) == b"VERSION "
    s.close()


def test_a_metadump_is_one_reply(memcached_server, vaurien):
    c = client(memcached_server)
    for k in ("a", "b", "c"):
        c.set(k, b"1")
    v = vaurien("--protocol", "memcache", "--behavior", "100:transient",
                "--behavior-transient-warmup", "1", backend_port=memcached_server)
    s = v.connect()
    s.sendall(b"lru_crawler metadump all\r\nget k\r\n")  # get k: the error
    data = b""
    s.settimeout(3)
    while INJECTED not in data or b"END\r\n" not in data:
        d = s.recv(65536)
        assert d, data
        data += d
    dump, _, rest = data.partition(b"END\r\n")
    assert rest == INJECTED  # after the whole dump, not inside it
    assert sorted(line.split(b" ")[0] for line in dump.splitlines()) == [
        b"key=a", b"key=b", b"key=c"]
    s.close()
