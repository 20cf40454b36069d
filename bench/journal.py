#!/usr/bin/python3
"""The cost of the fault journal (issue 15): redis GETs through Vaurien with
100:error (every request is a fault, so every request writes an event),
with the journal off (--journal-size 0), on (the default ring of 10,000),
and on with --journal FILE (a JSON line written per event), in alternation
in one run, on bench/pipeline.c (50 connections). Prints the medians, the
ratios to "off" and Vaurien's CPU time per request.

    bench/journal.py [--quick] [--reps N] [--seconds S]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import free_port, spawn, stop_all, wait_port  # noqa: E402
from pipelining import CONNS, client, rate  # noqa: E402
from run import TMP, measure, vaurien  # noqa: E402

GET = "*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n"
ERR_LEN = len(b"-ERR injected error (vaurien)\r\n")


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
    journal_file = os.path.join(TMP, "journal.jsonl")
    off = vaurien(redis_port, "redis", ["--behavior", "100:error", "--journal-size", "0"])
    off.name = "off"
    ring = vaurien(redis_port, "redis", ["--behavior", "100:error"])
    ring.name = "ring"
    to_file = vaurien(redis_port, "redis", ["--behavior", "100:error", "--journal",
                                            journal_file])
    to_file.name = "file"
    targets = [off, ring, to_file]
    print("redis GET with 100:error, %d connections, k requests/s (median of %d x %.0f s)"
          % (CONNS, reps, seconds), flush=True)
    try:
        for depth in (1, 16):
            res = measure(targets, rate(exe, depth, seconds, GET, ERR_LEN), reps)
            cpu = {n: 1e6 * c / (v * 1000 * seconds) for n, (v, c) in res.items()}
            print("depth %-3d off %.0f  ring %.0f  file %.0f  ring/off %.2f  file/off %.2f  "
                  "CPU/request off %.2f us ring %.2f us file %.2f us"
                  % (depth, res["off"][0], res["ring"][0], res["file"][0],
                     res["ring"][0] / res["off"][0], res["file"][0] / res["off"][0],
                     cpu["off"], cpu["ring"], cpu["file"]), flush=True)
    finally:
        stop_all()
        if os.path.exists(journal_file):
            os.remove(journal_file)


if __name__ == "__main__":
    main()
