#!/usr/bin/python3
"""The cost of targets (issue 16): redis GETs through Vaurien with
100:error, without a target and with a matcher that every GET matches
(command=GET,key=k*: each request's parts are parsed and matched, the
outcome is the same), and with every=1 (a counted trigger), in alternation
in one run, on bench/pipeline.c (50 connections). Prints the medians, the
ratios to "plain" and Vaurien's CPU time per request.

    bench/targets.py [--quick] [--reps N] [--seconds S]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import free_port, spawn, stop_all, wait_port  # noqa: E402
from journal import ERR_LEN, GET  # noqa: E402
from pipelining import CONNS, client, rate  # noqa: E402
from run import TMP, measure, vaurien  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--seconds", type=float)
    a = ap.parse_args()
    reps = a.reps or (1 if a.quick else 5)
    seconds = a.seconds or (1 if a.quick else 3)
    exe = client()
    redis_port = free_port()
    spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--dir", TMP])
    wait_port(redis_port)
    base = ["--behavior", "100:error", "--journal-size", "0"]
    plain = vaurien(redis_port, "redis", base)
    plain.name = "plain"
    match = vaurien(redis_port, "redis", base + ["--behavior-error-match", "command=GET,key=k*"])
    match.name = "match"
    every = vaurien(redis_port, "redis", base + ["--behavior-error-every", "1"])
    every.name = "every"
    print("redis GET with 100:error, %d connections, k requests/s (median of %d x %.0f s)"
          % (CONNS, reps, seconds), flush=True)
    try:
        for depth in (1, 16):
            res = measure([plain, match, every], rate(exe, depth, seconds, GET, ERR_LEN), reps)
            cpu = {n: 1e6 * c / (v * 1000 * seconds) for n, (v, c) in res.items()}
            print("depth %-3d plain %.0f  match %.0f  every %.0f  match/plain %.2f  "
                  "every/plain %.2f  CPU/request plain %.2f us match %.2f us every %.2f us"
                  % (depth, res["plain"][0], res["match"][0], res["every"][0],
                     res["match"][0] / res["plain"][0], res["every"][0] / res["plain"][0],
                     cpu["plain"], cpu["match"], cpu["every"]), flush=True)
    finally:
        stop_all()


if __name__ == "__main__":
    main()
