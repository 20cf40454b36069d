#!/usr/bin/python3
"""Vaurien's benchmark suite: each workload against a direct connection,
HAProxy (nbthread 1, mode tcp) and Vaurien, in alternation, with medians
and ratios, plus the CPU seconds each proxy used. Everything runs on
127.0.0.1 and is started and stopped here.

    bench/run.py [--quick] [--reps N] [--out FILE]
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (ROOT, VAURIEN, echo_server, free_port, rss_kb, spawn,  # noqa: E402
                    stop_all, wait_port)

TMP = tempfile.mkdtemp(prefix="vaurien-bench-")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Target:
    """A way to reach a backend: direct, through HAProxy, through Vaurien."""

    def __init__(self, name, port, pid=None):
        self.name, self.port, self.pid = name, port, pid


def haproxy(listens):
    """One HAProxy, nbthread 1, mode tcp, a listen section per backend;
    returns {backend port: haproxy port} and its pid."""
    ports = {b: free_port() for b in listens}
    cfg = os.path.join(TMP, "haproxy.cfg")
    with open(cfg, "w") as f:
        import resource
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        maxconn = max(1000, (min(hard, 65536) - 200) // 2)
        f.write("global\n    nbthread 1\n    maxconn %d\n"
                "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n"
                "    timeout server 60s\n    maxconn %d\n" % (maxconn, maxconn))
        for b, p in ports.items():
            f.write("listen l%d\n    bind 127.0.0.1:%d\n    server s 127.0.0.1:%d\n" % (b, p, b))
    proc = spawn(["haproxy", "-f", cfg, "-db"])
    for p in ports.values():
        wait_port(p)
    return ports, proc.pid


def vaurien(backend_port, protocol="tcp", extra=()):
    port = free_port()
    proc = spawn([VAURIEN, "--proxy", "127.0.0.1:%d" % port, "--backend",
                  "127.0.0.1:%d" % backend_port, "--protocol", protocol, "--log-level", "error",
                  "--timeout", "120"] + list(extra))
    wait_port(port)
    return Target("vaurien", port, proc.pid)


def measure(targets, run, reps):
    """Runs run(target) reps times per target, alternating; returns
    {name: (median, cpu seconds per run)}."""
    results = {t.name: [] for t in targets}
    cpu = {t.name: [] for t in targets}
    for _ in range(reps):
        for t in targets:
            before = cpu_seconds(t.pid) if t.pid else 0
            results[t.name].append(run(t))
            cpu[t.name].append((cpu_seconds(t.pid) - before) if t.pid else 0)
    return {n: (statistics.median(v), statistics.median(cpu[n])) for n, v in results.items()}


ROWS = []


def report(workload, unit, res, higher_is_better=True):
    direct = res.get("direct", (None,))[0]
    hap = res.get("haproxy", (None,))[0]
    for name, (value, cpu) in res.items():
        ROWS.append({
            "workload": workload, "target": name, "value": value, "unit": unit,
            "vs_direct": (value / direct) if direct else None,
            "vs_haproxy": (value / hap if higher_is_better else hap / value) if hap and value else None,
            "cpu_s": cpu,
        })
    line = "  ".join("%s %.4g%s" % (n, v, unit) for n, (v, _) in res.items())
    print("%-34s %s" % (workload, line), flush=True)


# ---- workloads ---------------------------------------------------------------

def bulk(targets, reps, seconds):
    def run(t):
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(t.port), "-t", str(seconds),
                              "-J"], capture_output=True, text=True, timeout=seconds + 30)
        return json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
    report("bulk, iperf3 1 stream (Gbit/s)", "", measure(targets, run, reps))


def redis_rate(targets, reps, n, label, keepalive=True):
    def run(t):
        cmd = ["redis-benchmark", "-p", str(t.port), "-t", "get,set", "-c", "50", "-P", "1",
               "-n", str(n), "-q"]
        if not keepalive:
            cmd[cmd.index("-t") + 1] = "get"
            cmd += ["-k", "0"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
        rates = [float(x) for x in re.findall(r"([\d.]+) requests per second", out)]
        return statistics.mean(rates) / 1000
    report(label, "k/s", measure(targets, run, reps))


def http_rate(targets, reps, seconds):
    def run(t):
        out = subprocess.run(["wrk", "-t1", "-c50", "-d%ds" % seconds,
                              "http://127.0.0.1:%d/" % t.port],
                             capture_output=True, text=True, timeout=seconds + 30).stdout
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)) / 1000
    report("http, wrk -c50 nginx (k req/s)", "k/s", measure(targets, run, reps))


def open_idle(port, n):
    conns = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"x")
        conns.append(s)
    for s in conns:
        s.recv(1)
    return conns


def idle_memory(targets, n):
    res = {}
    for t in targets:
        if t.pid is None:
            continue
        base = rss_kb(t.pid)
        conns = open_idle(t.port, n)
        time.sleep(0.5)
        held = rss_kb(t.pid)
        for s in conns:
            s.close()
        time.sleep(1.0)
        after = rss_kb(t.pid)
        res[t.name] = ((held - base) / n, 0)
        print("  %s: RSS %d kB -> %d kB with %d idle connections -> %d kB after they closed"
              % (t.name, base, held, n, after), flush=True)
    report("memory per idle connection (KB)", "", res, higher_is_better=False)


def rtt_tool():
    """bench/rtt.c, compiled once into the build folder."""
    out = os.path.join(os.path.dirname(VAURIEN), "bench-rtt")
    src = os.path.join(ROOT, "bench", "rtt.c")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        subprocess.run(["cc", "-O2", "-o", out, src], check=True)
    return out


def rtt(port, conns, per_conn):
    out = subprocess.run([rtt_tool(), str(port), str(conns), str(per_conn)],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    return {k: float(v) for k, v in zip(out.split()[::2], out.split()[1::2])}


def timing(redis_port, conns, per_conn):
    """Round trips of inline PINGs to redis-server (a fast C backend) through
    a 100 ms delay and a 100 ms latency toxic, measured by bench/rtt.c."""
    direct = rtt(redis_port, conns, per_conn)
    v = vaurien(redis_port, extra=["--behavior", "100:delay", "--behavior-delay-sleep", "0.1"])
    delay = rtt(v.port, conns, per_conn)
    print("  direct, %d connections: p50 %.2f ms, p99 %.2f ms" %
          (conns, direct["p50"], direct["p99"]), flush=True)
    print("  delay 100 ms: min %.2f ms, p50 %.2f ms, p99 %.2f ms, max %.2f ms" %
          (delay["min"], delay["p50"], delay["p99"], delay["max"]), flush=True)
    ROWS.append({"workload": "delay 100 ms, %d conns: p99 (ms)" % conns, "target": "vaurien",
                 "value": delay["p99"], "unit": "ms", "vs_direct": None, "vs_haproxy": None,
                 "cpu_s": 0, "min_ms": delay["min"], "direct_p99_ms": direct["p99"]})
    api_port = free_port()
    srv = spawn([VAURIEN, "server", "-host", "127.0.0.1", "-port", str(api_port),
                 "--log-level", "error"])
    wait_port(api_port)
    body = json.dumps({"name": "lat", "listen": "127.0.0.1:0",
                       "upstream": "127.0.0.1:%d" % redis_port,
                       "toxics": [{"type": "latency", "attributes": {"latency": 100}}]}).encode()
    with urllib.request.urlopen(urllib.request.Request(
            "http://127.0.0.1:%d/proxies" % api_port, data=body, method="POST")) as r:
        port = int(json.load(r)["listen"].rsplit(":", 1)[1])
    lat = rtt(port, conns, per_conn)
    srv.terminate()
    srv.wait()
    print("  latency toxic 100 ms: min %.2f ms, p50 %.2f ms, p99 %.2f ms, max %.2f ms" %
          (lat["min"], lat["p50"], lat["p99"], lat["max"]), flush=True)
    ROWS.append({"workload": "latency 100 ms, %d conns: p99 (ms)" % conns, "target": "vaurien",
                 "value": lat["p99"], "unit": "ms", "vs_direct": None, "vs_haproxy": None,
                 "cpu_s": 0, "min_ms": lat["min"]})


def api_latency(echo_port, iperf_port, n_conns, seconds):
    api_port = free_port()
    srv = spawn([VAURIEN, "server", "-host", "127.0.0.1", "-port", str(api_port),
                 "--log-level", "error"])
    wait_port(api_port)
    base = "http://127.0.0.1:%d" % api_port

    def call(method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(base + path, data=data, method=method)
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
        return (time.perf_counter() - t0) * 1000

    call("POST", "/proxies", {"name": "idle", "listen": "127.0.0.1:0",
                              "upstream": "127.0.0.1:%d" % echo_port})
    call("POST", "/proxies", {"name": "bulk", "listen": "127.0.0.1:0",
                              "upstream": "127.0.0.1:%d" % iperf_port})
    with urllib.request.urlopen(base + "/proxies") as r:
        ps = json.load(r)
    idle_port = int(ps["idle"]["listen"].rsplit(":", 1)[1])
    bulk_port = int(ps["bulk"]["listen"].rsplit(":", 1)[1])
    conns = open_idle(idle_port, n_conns)
    load = subprocess.Popen(["iperf3", "-c", "127.0.0.1", "-p", str(bulk_port), "-t",
                             str(seconds + 2)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    gets, toxics = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        gets.append(call("GET", "/proxies"))
        toxics.append(call("POST", "/proxies/idle/toxics", {"type": "latency", "name": "t"}) +
                      call("DELETE", "/proxies/idle/toxics/t"))
    load.wait()
    for s in conns:
        s.close()
    srv.send_signal(signal.SIGTERM)
    srv.wait()
    gets.sort()
    toxics.sort()
    g99, t99 = gets[int(len(gets) * 0.99) - 1], toxics[int(len(toxics) * 0.99) - 1]
    print("  %d idle connections + bulk traffic: GET /proxies p99 %.2f ms (%d calls), "
          "add+remove toxic p99 %.2f ms" % (n_conns, g99, len(gets), t99), flush=True)
    ROWS.append({"workload": "API p99 with %d conns + bulk (ms)" % n_conns, "target": "vaurien",
                 "value": g99, "unit": "ms", "vs_direct": None, "vs_haproxy": None, "cpu_s": 0,
                 "toxic_add_remove_p99_ms": t99})


def startup(reps):
    times = []
    for _ in range(reps):
        port = free_port()
        t0 = time.perf_counter()
        p = subprocess.Popen([VAURIEN, "--proxy", "127.0.0.1:%d" % port, "--backend",
                              "127.0.0.1:1", "--log-level", "error"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.0005)
        times.append((time.perf_counter() - t0) * 1000)
        p.send_signal(signal.SIGTERM)
        p.wait()
    med = statistics.median(times)
    print("  exec to accepting connections: median %.1f ms over %d runs" % (med, reps), flush=True)
    ROWS.append({"workload": "start-up (ms)", "target": "vaurien", "value": med, "unit": "ms",
                 "vs_direct": None, "vs_haproxy": None, "cpu_s": 0})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a short run (under 2 minutes)")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    a = ap.parse_args()
    quick = a.quick
    reps = a.reps or (1 if quick else 3)
    secs = 2 if quick else 5
    n_req = 20000 if quick else 100000
    idle_n = 1000 if quick else 5000

    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    iperf_port = free_port()
    spawn(["iperf3", "-s", "-p", str(iperf_port)])
    redis_port = free_port()
    spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--maxclients", "20000", "--dir", TMP])
    nginx_port = free_port()
    os.makedirs(os.path.join(TMP, "nginx", "logs"), exist_ok=True)
    with open(os.path.join(TMP, "nginx.conf"), "w") as f:
        f.write("worker_processes 1;\nerror_log %s/nginx/error.log;\npid %s/nginx/nginx.pid;\n"
                "events { worker_connections 4096; }\nhttp { access_log off;\n"
                "  server { listen 127.0.0.1:%d; location / { return 200 'hello\\n'; } } }\n"
                % (TMP, TMP, nginx_port))
    spawn(["nginx", "-c", os.path.join(TMP, "nginx.conf"), "-p", os.path.join(TMP, "nginx"),
           "-g", "daemon off;"])
    echo_port = echo_server()
    for p in (iperf_port, redis_port, nginx_port):
        wait_port(p)
    hports, hpid = haproxy([iperf_port, redis_port, nginx_port, echo_port])

    print("Vaurien benchmark: %s, %d cores, reps %d%s\n" %
          (time.strftime("%Y-%m-%d"), os.cpu_count(), reps, ", quick" if quick else ""), flush=True)

    def three(backend, protocol="tcp"):
        return [Target("direct", backend), Target("haproxy", hports[backend], hpid),
                vaurien(backend, protocol)]

    bulk(three(iperf_port), reps, secs)
    redis_rate(three(redis_port), reps, n_req, "redis GET/SET -c50 -P1, tcp (k/s)")
    redis_rate([Target("direct", redis_port), Target("haproxy", hports[redis_port], hpid),
                vaurien(redis_port, "redis")], reps, n_req, "redis GET/SET -c50 -P1, redis (k/s)")
    redis_rate(three(redis_port), reps, n_req // 4, "new connection per request, -k 0 (k/s)",
               keepalive=False)
    http_rate([Target("direct", nginx_port), Target("haproxy", hports[nginx_port], hpid),
               vaurien(nginx_port, "http")], reps, secs)
    idle_memory([Target("haproxy", hports[echo_port], hpid), vaurien(echo_port)], idle_n)
    timing(redis_port, 50, 20 if quick else 60)
    api_latency(echo_port, iperf_port, idle_n, secs)
    startup(10 if quick else 30)

    if a.out:
        with open(a.out, "w") as f:
            json.dump(ROWS, f, indent=1)
    print("\n%-40s %-9s %12s %10s %10s %8s" % ("workload", "target", "value", "÷direct",
                                              "÷haproxy", "cpu s"))
    for r in ROWS:
        print("%-40s %-9s %12.4g %10s %10s %8.2f" % (
            r["workload"][:40], r["target"], r["value"],
            "%.2f" % r["vs_direct"] if r["vs_direct"] else "",
            "%.2f" % r["vs_haproxy"] if r["vs_haproxy"] else "", r["cpu_s"]))


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
        shutil.rmtree(TMP, ignore_errors=True)
