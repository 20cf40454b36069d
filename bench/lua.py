#!/usr/bin/python3
"""The cost of a custom behavior (issue 13): redis GET/SET rates through
Vaurien framing redis with `dummy`, with a Lua behavior that passes every
request without looking at it, and with one that reads the command and key
of each (the parts are parsed on demand), next to direct and HAProxy, in
alternation in one run. Prints medians, the Lua/dummy ratios and Vaurien's
CPU time per request; and, steadier, the ns one call costs in process
(bench/lua_call.c).

    bench/lua.py [--quick] [--reps N] [-n REQUESTS]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, free_port, spawn, stop_all, wait_port  # noqa: E402
from run import TMP, Target, haproxy, measure, vaurien  # noqa: E402

PASS = "return { request = function(req) end }"
LOOK = """return { request = function(req, opts, conn)
  if req.command == "SET" and req.key == "never" then return vaurien.error{} end
end }"""


STATE = """return { request = function(req, opts, conn, proxy)
  conn.n = (conn.n or 0) + 1
end }"""


def call_cost():
    """ns per call of each script, in process (bench/lua_call.c)."""
    exe = os.path.join(TMP, "lua_call")
    build = os.path.join(ROOT, "build")
    subprocess.run(["cc", "-O2", "-D_GNU_SOURCE", "-I" + os.path.join(ROOT, "src"),
                    "-I/usr/include/lua5.4", os.path.join(ROOT, "bench", "lua_call.c"),
                    os.path.join(build, "libvaurien_core.a"), "-levent", "-llua5.4",
                    "-ljansson", "-linih", "-lhttp_parser", "-levent_openssl", "-lssl",
                    "-lcrypto", "-lnghttp2", "-lm", "-o", exe], check=True)
    out = []
    for name, src in (("pass", PASS), ("parts", LOOK), ("state", STATE)):
        ns = [float(subprocess.run([exe, src], capture_output=True, text=True,
                                   check=True).stdout.split()[0]) for _ in range(3)]
        out.append("%s %.0f" % (name, min(ns)))
    print("ns per call (in process, best of 3 x 1M): " + "  ".join(out), flush=True)


def script(name, text):
    path = os.path.join(TMP, name + ".lua")
    with open(path, "w") as f:
        f.write(text)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int)
    ap.add_argument("-n", type=int)
    a = ap.parse_args()
    reps = a.reps or (1 if a.quick else 5)
    n = a.n or (20000 if a.quick else 100000)
    call_cost()
    redis_port = free_port()
    spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--dir", TMP])
    wait_port(redis_port)
    hports, hpid = haproxy([redis_port])
    dummy = vaurien(redis_port, "redis")
    dummy.name = "dummy"
    lpass = vaurien(redis_port, "redis", ["--behavior-file", "pass=" + script("pass", PASS),
                                          "--behavior", "100:pass"])
    lpass.name = "lua-pass"
    llook = vaurien(redis_port, "redis", ["--behavior-file", "look=" + script("look", LOOK),
                                          "--behavior", "100:look"])
    llook.name = "lua-parts"
    targets = [Target("direct", redis_port), Target("haproxy", hports[redis_port], hpid),
               dummy, lpass, llook]
    print("redis-benchmark -t get,set -c 50, k requests/s (median of %d runs of %d)"
          % (reps, n), flush=True)
    try:
        for depth in (1, 16):
            def run(t):
                out = subprocess.run(["redis-benchmark", "-p", str(t.port), "-t", "get,set",
                                      "-c", "50", "-P", str(depth), "-n", str(n), "-q"],
                                     capture_output=True, text=True, timeout=600).stdout
                rates = [float(x) for x in re.findall(r"([\d.]+) requests per second", out)]
                return statistics.mean(rates) / 1000
            res = measure(targets, run, reps)
            line = "  ".join("%s %.0f" % (name, v) for name, (v, _) in res.items())
            us = {name: 1e6 * res[name][1] / (2 * n) for name in ("dummy", "lua-pass",
                                                                 "lua-parts")}
            print("-P %-3d %s  lua-pass/dummy %.2f  lua-parts/dummy %.2f  CPU/request "
                  "dummy %.2f us lua-pass %.2f us lua-parts %.2f us"
                  % (depth, line, res["lua-pass"][0] / res["dummy"][0],
                     res["lua-parts"][0] / res["dummy"][0], us["dummy"], us["lua-pass"],
                     us["lua-parts"]), flush=True)
    finally:
        stop_all()


if __name__ == "__main__":
    main()
