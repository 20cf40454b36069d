#!/usr/bin/python3
"""HTTP/2 (issue 17): h2load (nghttp2-client) against nginx speaking h2c
with prior knowledge, directly, through HAProxy (nbthread 1, `mode http`,
`bind ... proto h2`, `server ... proto h2`) and through Vaurien
`--protocol http2` with `dummy`, with `5:error` (the proxy answers one
stream in twenty itself) and with `10:delay` of 1 ms (one stream in ten
held), in alternation in one run. Workloads: a 3-byte body with 10
connections of 10 streams each, the same with 2 connections of 100
streams, and a 64 KiB body with 10 x 10 (there a second HAProxy with
`tune.bufsize 65536` too: with its default 16 KiB buffers HAProxy moves
large h2 bodies slowly). Prints requests/s, latency p50 and p99 (from
h2load's per-request log), the proxy's CPU per request, the ratios
vaurien/haproxy and vaurien/direct, and each proxy's RSS at the end.

    bench/http2.py [--quick] [--reps N]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ForeignLoad, free_port, rss_kb, spawn, status_kb, stop_all, wait_port  # noqa: E402
from run import TMP, Target, cpu_seconds, vaurien  # noqa: E402

BIG = 64 << 10


def nginx():
    """nginx, one worker, h2c with prior knowledge: /s answers 3 bytes
    (`return`), /big is a 64 KiB file. Returns its port and its worker's pid."""
    port = free_port()
    prefix = os.path.join(TMP, "nginx-h2")
    www = os.path.join(TMP, "www-h2")
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "big"), "wb") as f:
        f.write(os.urandom(BIG))
    conf = os.path.join(TMP, "nginx-h2.conf")
    with open(conf, "w") as f:
        f.write("user root;\nworker_processes 1;\nerror_log %s/logs/error.log;\npid %s/logs/pid;\n"
                "events { worker_connections 4096; }\nhttp { access_log off;\n"
                "  keepalive_requests 1000000000; open_file_cache max=16;\n"
                "  server { listen 127.0.0.1:%d http2; root %s;\n"
                "    location = /s { return 200 'ok\\n'; } } }\n" % (prefix, prefix, port, www))
    proc = spawn(["nginx", "-c", conf, "-p", prefix, "-g", "daemon off;"])
    wait_port(port)
    with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
        worker = int(f.read().split()[0])
    return port, worker


def haproxy_h2(backend_port, name="haproxy", tune=""):
    """HAProxy in mode http with h2 on both sides (prior knowledge toward
    the backend, as Vaurien)."""
    port = free_port()
    cfg = os.path.join(TMP, "%s.cfg" % name)
    with open(cfg, "w") as f:
        f.write("global\n    nbthread 1\n    maxconn 4000\n%s"
                "defaults\n    mode http\n    timeout connect 5s\n    timeout client 60s\n"
                "    timeout server 60s\n"
                "frontend f\n    bind 127.0.0.1:%d proto h2\n    default_backend b\n"
                "backend b\n    server s 127.0.0.1:%d proto h2\n"
                % (tune, port, backend_port))
    proc = spawn(["haproxy", "-f", cfg, "-db"])
    wait_port(port)
    return Target(name, port, proc.pid)


def h2load(t, path, n, conns, streams):
    """One h2load run; returns its numbers: rate (requests done per
    second), p50 and p99 in ms (of every request, from --log-file), 5xx
    answers, and requests that failed or errored."""
    log = os.path.join(TMP, "h2load.log")
    if os.path.exists(log):
        os.unlink(log)  # h2load appends
    out = subprocess.run(["h2load", "-n", str(n), "-c", str(conns), "-m", str(streams),
                          "--log-file", log, "http://127.0.0.1:%d%s" % (t.port, path)],
                         capture_output=True, text=True, timeout=300)
    rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out.stdout)
    req = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, \d+ succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", out.stdout)
    codes = re.search(r"status codes: \d+ 2xx, \d+ 3xx, \d+ 4xx, (\d+) 5xx", out.stdout)
    if rate is None or req is None or int(req.group(2)) < n:
        raise RuntimeError("h2load through %s: %s %s" % (t.name, out.stdout, out.stderr))
    with open(log) as f:
        times = sorted(int(line.split("\t")[2]) for line in f
                       if line.split("\t")[1] != "-1")
    return {"rate": float(rate.group(1)),
            "p50": times[len(times) // 2] / 1000,
            "p99": times[min(len(times) - 1, int(len(times) * 0.99))] / 1000,
            "5xx": int(codes.group(1)) if codes else 0,
            "bad": int(req.group(3)) - (int(codes.group(1)) if codes else 0) +
            int(req.group(4)) + int(req.group(5))}


def measure(targets, run, reps, pids):
    """Runs run(target) reps times per target, alternating; returns {name:
    {metric: median}} with the proxy's CPU seconds ("cpu") and the CPU
    other processes used meanwhile ("other", % of a core, the largest)."""
    runs = {t.name: [] for t in targets}
    for _ in range(reps):
        for t in targets:
            before = cpu_seconds(t.pid) if t.pid else 0
            with ForeignLoad(pids) as load:
                r = run(t)
            r["cpu"] = cpu_seconds(t.pid) - before if t.pid else 0
            r["other"] = load.percent
            runs[t.name].append(r)
    return {n: {k: (max if k == "other" else statistics.median)(r[k] for r in rs)
                for k in rs[0]} for n, rs in runs.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int)
    a = ap.parse_args()
    reps = a.reps or (1 if a.quick else 3)
    small_n = 20000 if a.quick else 60000
    big_n = 3000 if a.quick else 8000
    try:
        backend, nginx_pid = nginx()
        direct = Target("direct", backend)
        hap = haproxy_h2(backend)
        hap64 = haproxy_h2(backend, "haproxy-buf64k", "    tune.bufsize 65536\n")
        v = vaurien(backend, "http2")
        err = vaurien(backend, "http2", ["--behavior", "5:error"])
        err.name = "vaurien-5:error"
        dly = vaurien(backend, "http2", ["--behavior", "10:delay",
                                         "--behavior-delay-sleep", "0.001"])
        dly.name = "vaurien-10:delay"
        proxies = [hap, hap64, v, err, dly]
        pids = [t.pid for t in proxies] + [nginx_pid]
        print("h2load through HTTP/2 proxies to nginx h2c, %d reps (medians), "
              "requests/s, latency p50/p99 ms, proxy CPU us/request" % reps, flush=True)
        for label, path, n, c, m, targets in (
                ("3 B body, -c 10 -m 10", "/s", small_n, 10, 10, [direct, hap, v, err, dly]),
                ("3 B body, -c 2 -m 100", "/s", small_n, 2, 100, [direct, hap, v, err, dly]),
                ("64 KiB body, -c 10 -m 10", "/big", big_n, 10, 10,
                 [direct, hap, hap64, v, err])):
            res = measure(targets, lambda t: h2load(t, path, n, c, m), reps, pids)
            print("%s, -n %d:" % (label, n), flush=True)
            for name, r in res.items():
                extra = ""
                if r["5xx"] or r["bad"]:
                    extra += "  5xx %d" % r["5xx"] + ("  failed %d" % r["bad"] if r["bad"] else "")
                print("  %-17s %8.0f req/s  p50 %6.2f  p99 %6.2f ms  CPU %5.1f us/req%s"
                      % (name, r["rate"], r["p50"], r["p99"], 1e6 * r["cpu"] / n
                         if r["cpu"] else 0, extra), flush=True)
            vr = res["vaurien"]
            line = "  vaurien/direct %.2f" % (vr["rate"] / res["direct"]["rate"])
            for h in (k for k in res if k.startswith("haproxy")):
                line += "  vaurien/%s %.2f (p99 %.2f, CPU/request %.2f)" % (
                    h, vr["rate"] / res[h]["rate"], vr["p99"] / res[h]["p99"],
                    vr["cpu"] / res[h]["cpu"])
            line += "  most other load %.0f %% of a core" % max(r["other"] for r in res.values())
            print(line, flush=True)
        print("RSS at the end (peak), kB: " + "  ".join(
            "%s %d (%d)" % (t.name, rss_kb(t.pid), status_kb(t.pid, "VmHWM")) for t in proxies),
            flush=True)
    finally:
        stop_all()
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
