#!/usr/bin/python3
"""Pipelined request rates (issue 11): redis GET, memcache get and HTTP
GET, each direct, through HAProxy (mode tcp), through Vaurien as tcp and
through Vaurien framing the protocol, in alternation, one client for all
(bench/pipeline.c: CONNS connections, DEPTH requests in flight each).
Prints medians, the framed/tcp ratio, and the CPU time Vaurien spent per
request in each mode.

    bench/pipelining.py [--quick] [--reps N] [--seconds S]
"""
import argparse
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, free_port, spawn, stop_all, wait_port  # noqa: E402
from run import TMP, Target, haproxy, measure, vaurien  # noqa: E402

CONNS = 50

# what each protocol's backend is asked, and the exact length of its reply
REDIS_GET = ("*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n", len(b"$1\r\nv\r\n"))
MEMCACHE_GET = ("get k\\r\\n", len(b"VALUE k 0 1\r\nv\r\nEND\r\n"))


def client():
    exe = os.path.join(TMP, "pipeline")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(ROOT, "bench", "pipeline.c")],
                   check=True)
    return exe


def http_request_and_reply_len(port):
    """A GET of nginx's empty page and the length of its answer."""
    req = b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(req)
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        head, _, body = got.partition(b"\r\n\r\n")
        length = [int(h.split(b":")[1]) for h in head.split(b"\r\n")
                  if h.lower().startswith(b"content-length")][0]
        while len(body) < length:
            body += s.recv(4096)
    return req.decode().replace("\r\n", "\\r\\n"), len(head) + 4 + length


def rate(exe, depth, seconds, request, reply_len):
    def run(t):
        out = subprocess.run([exe, str(t.port), str(CONNS), str(depth), str(seconds), request,
                              str(reply_len)], capture_output=True, text=True,
                             timeout=seconds + 30)
        if out.returncode != 0:
            raise RuntimeError("%s: %s" % (t.name, out.stderr))
        return float(out.stdout) / 1000
    return run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--seconds", type=float)
    a = ap.parse_args()
    reps = a.reps or (1 if a.quick else 3)
    secs = a.seconds or (1.0 if a.quick else 3.0)
    exe = client()
    redis_port, mc_port, nginx_port = free_port(), free_port(), free_port()
    spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--dir", TMP])
    spawn(["memcached", "-l", "127.0.0.1", "-p", str(mc_port), "-U", "0", "-u", "root"])
    os.makedirs(os.path.join(TMP, "nginx-p", "logs"), exist_ok=True)
    os.makedirs(os.path.join(TMP, "www"), exist_ok=True)
    with open(os.path.join(TMP, "www", "k"), "w") as f:
        f.write("v")
    with open(os.path.join(TMP, "nginx-p.conf"), "w") as f:
        f.write("worker_processes 1;\nerror_log %s/nginx-p/error.log;\npid %s/nginx-p/pid;\n"
                "events { worker_connections 4096; }\nhttp { access_log off;\n"
                "  keepalive_requests 1000000000;\n"
                "  server { listen 127.0.0.1:%d; root %s/www; } }\n"
                % (TMP, TMP, nginx_port, TMP))
    spawn(["nginx", "-c", os.path.join(TMP, "nginx-p.conf"), "-p", os.path.join(TMP, "nginx-p"),
           "-g", "daemon off;"])
    for p in (redis_port, mc_port, nginx_port):
        wait_port(p)
    with socket.create_connection(("127.0.0.1", redis_port)) as s:
        s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")
        s.recv(100)
    with socket.create_connection(("127.0.0.1", mc_port)) as s:
        s.sendall(b"set k 0 0 1\r\nv\r\n")
        s.recv(100)
    hports, hpid = haproxy([redis_port, mc_port, nginx_port])
    http = http_request_and_reply_len(nginx_port)
    print("pipelined rates, k requests/s (median of %d x %.0f s, %d connections)"
          % (reps, secs, CONNS), flush=True)
    try:
        for name, port, proto, (request, reply_len) in (
                ("redis GET", redis_port, "redis", REDIS_GET),
                ("memcache get", mc_port, "memcache", MEMCACHE_GET),
                ("http GET", nginx_port, "http", http)):
            tcp = vaurien(port)
            tcp.name = "vaurien-tcp"
            framed = vaurien(port, proto)
            framed.name = "vaurien-" + proto
            targets = [Target("direct", port), Target("haproxy", hports[port], hpid),
                       tcp, framed]
            for depth in (1, 16):
                res = measure(targets, rate(exe, depth, secs, request, reply_len), reps)
                line = "  ".join("%s %.0f" % (n, v) for n, (v, _) in res.items())
                ratio = res[framed.name][0] / res["vaurien-tcp"][0]
                # the proxy's CPU per request: steadier than rates when
                # other work shares the cores
                us = {n: 1e6 * res[n][1] / (res[n][0] * 1000 * secs)
                      for n in ("vaurien-tcp", framed.name)}
                print("%-14s -P %-3d %s  framed/tcp %.2f  CPU/request tcp %.2f us "
                      "framed %.2f us" % (name, depth, line, ratio, us["vaurien-tcp"],
                                          us[framed.name]), flush=True)
    finally:
        stop_all()


if __name__ == "__main__":
    main()
