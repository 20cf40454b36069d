"""Real servers and real clients through the tcp proxy: redis-server with
redis-py, the built-in demo backend with http.client; and no descriptor is
left behind whatever the behaviors do."""
import http.client
import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import BIN, free_port, wait_until, port_open

redis = pytest.importorskip("redis")


def test_redis_works_through_dummy(redis_server, vaurien):
    v = vaurien(backend_port=redis_server)
    r = redis.Redis(host="127.0.0.1", port=v.port, socket_timeout=5)
    for i in range(100):
        r.set("key:%d" % i, b"value-%d" % i)
    assert [r.get("key:%d" % i) for i in range(100)] == [b"value-%d" % i for i in range(100)]
    big = os.urandom(3 * 1024 * 1024)
    r.set("big", big)
    assert r.get("big") == big
    pipe = r.pipeline(transaction=False)
    for i in range(500):
        pipe.incr("counter")
    assert pipe.execute()[-1] == 500


def test_redis_client_sees_a_failure_with_error(redis_server, vaurien):
    v = vaurien("--behavior", "100:error", "--seed", "3", backend_port=redis_server)
    r = redis.Redis(host="127.0.0.1", port=v.port, socket_timeout=2)
    with pytest.raises(redis.exceptions.RedisError):
        r.get("anything")


def test_redis_delay_is_seen_by_the_client(redis_server, vaurien):
    v = vaurien("--behavior", "100:delay", "--behavior-delay-sleep", "0.2",
                backend_port=redis_server)
    r = redis.Redis(host="127.0.0.1", port=v.port, socket_timeout=5)
    r.ping()  # the connection setup gets its own delay
    t0 = time.monotonic()
    r.set("k", "v")
    assert 0.2 <= time.monotonic() - t0 < 0.4


def test_demo_serves_through_the_proxy():
    port, bport = free_port(), free_port()
    p = subprocess.Popen([BIN, "demo", "--proxy", "127.0.0.1:%d" % port,
                          "--backend", "127.0.0.1:%d" % bport, "--behavior", "100:dummy"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: port_open(port), timeout=10)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for _ in range(3):  # keep-alive through the proxy
            c.request("GET", "/")
            resp = c.getresponse()
            assert resp.status == 200
            assert b"hello" in resp.read()
        c.close()
    finally:
        p.terminate()
        out, _ = p.communicate(timeout=10)
    assert p.returncode == 0
    assert "curl" in out


def test_no_descriptor_is_left_behind(backend, vaurien):
    v = vaurien("--behavior", "15:error,15:blackout,15:abort,15:delay,10:hang,5:transient",
                "--behavior-delay-sleep", "0.01", "--seed", "11", backend_port=backend.port)

    def nfds():
        return len(os.listdir("/proc/%d/fd" % v.proc.pid))
    baseline = nfds()

    def client(i):
        for j in range(10):
            try:
                s = v.connect(timeout=2)
                s.sendall(b"x" * (i + 1))
                try:
                    s.recv(2000)
                except OSError:
                    pass
                s.close()
            except OSError:
                pass
    threads = [threading.Thread(target=client, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert wait_until(lambda: nfds() == baseline, timeout=10), (nfds(), baseline)
