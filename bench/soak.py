#!/usr/bin/python3
"""Soak: mixed protocols through several proxies of one `vaurien server`
while behaviors and toxics are toggled through the API, for a bounded time.
Then it checks: no crash, descriptors back to the baseline, RSS back near
it, every byte through the dummy/lossless proxy intact, exit 0 on SIGTERM.

    bench/soak.py [--seconds 600]       (CI runs --seconds 45)
Exits non-zero on any failed check.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import VAURIEN, echo_server, free_port, rss_kb, spawn, stop_all, wait_port  # noqa

TMP = tempfile.mkdtemp(prefix="vaurien-soak-")
FAILURES = []
STATS = {"tcp_bytes_verified": 0, "redis_ok": 0, "redis_err": 0, "memcache_ok": 0,
         "memcache_err": 0, "http_ok": 0, "http_err": 0, "api_changes": 0}
LOCK = threading.Lock()


def count(key, n=1):
    with LOCK:
        STATS[key] += n


def fail(msg):
    with LOCK:
        if len(FAILURES) < 20:
            FAILURES.append(msg)


class Api:
    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read()
                return r.status, json.loads(text) if text.strip() else None
        except urllib.error.HTTPError as e:
            return e.code, None


def proc_fds(pid):
    """Descriptors other than pipes (the fast path keeps a small pool of
    empty pipes for reuse; those are counted apart)."""
    n = pipes = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("pipe:"):
            pipes += 1
        else:
            n += 1
    return n if pipes <= 2 * 16 + 2 else n + pipes


def tcp_worker(port, stop):
    rng = random.Random(1)
    while not stop.is_set():
        data = rng.randbytes(rng.randint(1, 256 * 1024))
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=20)
            got = bytearray()

            def reader():
                while len(got) < len(data):
                    d = s.recv(65536)
                    if not d:
                        break
                    got.extend(d)

            t = threading.Thread(target=reader)
            t.start()
            s.sendall(data)
            t.join(30)
            s.close()
        except OSError as e:
            fail("tcp: %s" % e)
            continue
        if bytes(got) != data:
            fail("tcp: %d bytes sent, %d back, equal prefix %s" %
                 (len(data), len(got), bytes(got) == data[:len(got)]))
        else:
            count("tcp_bytes_verified", len(data))


def redis_worker(port, stop):
    import redis
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    i = 0
    while not stop.is_set():
        i += 1
        try:
            r.set("k%d" % (i % 100), "v%d" % i)
            got = r.get("k%d" % (i % 100))
            if got is not None and not got.startswith(b"v"):
                fail("redis: someone else's reply %r" % got)
            count("redis_ok")
        except redis.exceptions.RedisError:
            count("redis_err")
            r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)


def memcache_worker(port, stop):
    from pymemcache.client.base import Client
    from pymemcache.exceptions import MemcacheError
    c = Client(("127.0.0.1", port), timeout=5, connect_timeout=5, default_noreply=False)
    i = 0
    while not stop.is_set():
        i += 1
        try:
            c.set("m%d" % (i % 50), b"x%d" % i)
            got = c.get("m%d" % (i % 50))
            if got is not None and not got.startswith(b"x"):
                fail("memcache: someone else's reply %r" % got)
            count("memcache_ok")
        except (MemcacheError, OSError):
            count("memcache_err")
            c = Client(("127.0.0.1", port), timeout=5, connect_timeout=5,
                       default_noreply=False)


def http_worker(port, stop):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    while not stop.is_set():
        try:
            c.request("GET", "/")
            r = c.getresponse()
            body = r.read()
            if r.status == 200 and not body.startswith(b"hello"):
                fail("http: odd body %r" % body[:40])
            count("http_ok" if r.status == 200 else "http_err")
        except (OSError, http.client.HTTPException):
            count("http_err")
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)


def toggler(api, stop):
    rng = random.Random(2)
    lossless = [("latency", {"latency": 5, "jitter": 3}), ("slicer", {"average_size": 500,
                "delay": 50}), ("bandwidth", {"rate": 20000}), ("delay", {"sleep": 0.003}),
                ("noop", {})]
    lossy = [("error", {}), ("delay", {"sleep": 0.01}), ("abort", {}), ("blackout", {}),
             ("latency", {"latency": 10}), ("transient", {"agitate": 2})]
    while not stop.is_set():
        name = rng.choice(["tcp", "redis", "memcache", "http"])
        kind, attrs = rng.choice(lossless if name == "tcp" else lossy)
        stream = rng.choice(["upstream", "downstream"])
        tox = "t%d" % rng.randint(0, 3)
        st, _ = api.call("POST", "/proxies/%s/toxics" % name,
                         {"name": tox, "type": kind, "stream": stream,
                          "toxicity": rng.choice([0.2, 0.5, 1.0]), "attributes": attrs})
        if st == 409:
            api.call("DELETE", "/proxies/%s/toxics/%s" % (name, tox))
        count("api_changes")
        time.sleep(rng.uniform(0.05, 0.4))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=600)
    a = ap.parse_args()

    echo = echo_server()
    redis_port, mc_port, demo_port, api_port = free_port(), free_port(), free_port(), free_port()
    spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--dir", TMP])
    spawn(["memcached", "-l", "127.0.0.1", "-p", str(mc_port), "-U", "0", "-u", "root"])
    spawn([VAURIEN, "demo-backend", "--listen", "127.0.0.1:%d" % demo_port])
    log = os.path.join(TMP, "vaurien.log")
    v = spawn([VAURIEN, "server", "-host", "127.0.0.1", "-port", str(api_port),
               "-seed", "42", "--log-output", log, "--log-level", "warning"])
    for p in (redis_port, mc_port, demo_port, api_port):
        wait_port(p)
    api = Api(api_port)
    ports = {}
    for name, up, proto in [("tcp", echo, "tcp"), ("redis", redis_port, "redis"),
                            ("memcache", mc_port, "memcache"), ("http", demo_port, "http")]:
        st, p = api.call("POST", "/proxies", {"name": name, "listen": "127.0.0.1:0",
                                              "upstream": "127.0.0.1:%d" % up,
                                              "protocol": proto})
        assert st == 201, (name, st)
        ports[name] = int(p["listen"].rsplit(":", 1)[1])
    time.sleep(0.3)
    fd0, rss0 = proc_fds(v.pid), rss_kb(v.pid)
    stop = threading.Event()
    workers = [threading.Thread(target=tcp_worker, args=(ports["tcp"], stop)) for _ in range(3)]
    workers += [threading.Thread(target=redis_worker, args=(ports["redis"], stop)),
                threading.Thread(target=memcache_worker, args=(ports["memcache"], stop)),
                threading.Thread(target=http_worker, args=(ports["http"], stop)),
                threading.Thread(target=toggler, args=(api, stop))]
    for w in workers:
        w.start()
    peak = rss0
    deadline = time.monotonic() + a.seconds
    while time.monotonic() < deadline:
        time.sleep(1)
        if v.poll() is not None:
            fail("vaurien exited with %s during the soak" % v.returncode)
            break
        peak = max(peak, rss_kb(v.pid))
    stop.set()
    for w in workers:
        w.join(60)
    api.call("POST", "/reset")
    time.sleep(2.0)
    alive = v.poll() is None
    fd1 = proc_fds(v.pid) if alive else -1
    rss1 = rss_kb(v.pid) if alive else -1
    if not alive:
        fail("vaurien is not running at the end")
    if alive and fd1 != fd0:
        fail("descriptors: %d at the start, %d at the end" % (fd0, fd1))
    if alive and rss1 > rss0 + max(4096, rss0 // 2):
        fail("RSS: %d kB at the start, %d kB at the end" % (rss0, rss1))
    v.send_signal(signal.SIGTERM)
    try:
        rc = v.wait(15)
    except subprocess.TimeoutExpired:
        rc = "hung"
        v.kill()
    if rc != 0:
        fail("exit status on SIGTERM: %s" % rc)
    print("soak %ds: %s" % (a.seconds, ", ".join("%s %s" % kv for kv in STATS.items())))
    print("descriptors %d -> %d, RSS %d kB -> peak %d kB -> %d kB" % (fd0, fd1, rss0, peak, rss1))
    if FAILURES:
        print("FAILED:\n  " + "\n  ".join(FAILURES))
        with open(log) as f:
            print(f.read()[-3000:])
        return 1
    if STATS["tcp_bytes_verified"] == 0 or STATS["redis_ok"] == 0 or STATS["http_ok"] == 0:
        print("FAILED: no traffic got through")
        return 1
    print("soak passed")
    return 0


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        stop_all()
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(rc)
