#!/usr/bin/python3
"""Where a delayed unit's time goes: one bench/rtt.c run through a 100 ms
`delay` (plain vaurien) or `latency` toxic (vaurien server), traced
system-wide with perf (syscalls, hrtimers, the scheduler; needs root and
linux-perf), and the trace cut into pieces:

  unit lateness   the write of a held unit minus (the read of its bytes + 100 ms)
  per timer wake-up of the proxy, for the first unit it writes:
    armed late    when the timer was set to expire minus when the unit was due
    irq           the timer interrupt minus its expiry (the VM delivering it)
    wake          epoll_wait returning minus the interrupt (scheduling)
    to write      the first writev minus epoll_wait returning (libevent, the callback)
  preemptions     how often the proxy lost the CPU while runnable, and to whom

    bench/trace_timing.py [--mode delay|latency] [--stagger MS] [--per N] [--idle N]

Tracing costs a few microseconds per event: the pieces are larger than in an
untraced run, but their proportions hold.
"""
import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import VAURIEN, free_port, spawn, stop_all, wait_port  # noqa: E402
import run  # noqa: E402

EVENTS = ("timer:hrtimer_start,timer:hrtimer_expire_entry,sched:sched_switch,"
          "syscalls:sys_enter_writev,syscalls:sys_enter_readv,syscalls:sys_exit_readv,"
          "syscalls:sys_exit_epoll_wait,syscalls:sys_exit_accept4,syscalls:sys_exit_socket")
LINE = re.compile(r"\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+(\d+)\.(\d+):\s+(\S+?):\s+(.*)")


def q(v, f):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * f))] if v else float("nan")


def show(label, v):
    v = [x / 1000 for x in v]
    print("  %-40s n %5d  p50 %7.1f  p99 %7.1f  max %7.1f us" %
          (label, len(v), q(v, .5), q(v, .99), max(v) if v else float("nan")))


def analyse(script, pid, nominal_ns, keep):
    peer, last_read, pend, accepted = {}, {}, None, None
    units, timers = [], []       # (lateness, due, t); dicts per timer wake-up
    armed, cur = {}, None
    preempted = collections.Counter()
    for line in script.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        _, p, _, sec, frac, name, rest = m.groups()
        t = int(sec) * 10**9 + int(frac.ljust(9, "0"))
        if name == "sched:sched_switch" and ("prev_pid=%s " % pid) in rest and \
                "prev_state=R" in rest:
            preempted[re.search(r"next_comm=(.+?) next_pid", rest).group(1)] += 1
        if name == "timer:hrtimer_expire_entry" and "timerfd_tmrproc" in rest:
            h = re.search(r"hrtimer=(\S+)", rest).group(1)
            if h in armed:
                cur = {"exp": armed[h], "irq": int(re.search(r"now=(\d+)", rest).group(1))}
        if p != pid:
            continue
        if name == "timer:hrtimer_start" and "timerfd_tmrproc" in rest:
            armed[re.search(r"hrtimer=(\S+)", rest).group(1)] = \
                int(re.search(r"expires=(\d+)", rest).group(1))
        elif name == "syscalls:sys_exit_accept4":
            accepted = int(rest.split()[0], 16)
        elif name == "syscalls:sys_exit_socket" and accepted is not None and accepted < 2**31:
            fd = int(rest.split()[0], 16)
            peer[accepted], peer[fd], accepted = fd, accepted, None
        elif name == "syscalls:sys_enter_readv":
            pend = int(re.search(r"fd: (\S+),", rest).group(1), 16)
        elif name == "syscalls:sys_exit_readv":
            r = int(rest.split()[0], 16)
            if pend is not None and 0 < r < 2**31:
                last_read[pend] = t
            pend = None
        elif name == "syscalls:sys_exit_epoll_wait":
            if cur is not None and "wake" in cur:
                cur = None  # that wake-up wrote nothing (the unit was not due)
            elif cur is not None:
                cur["wake"] = t
        elif name == "syscalls:sys_enter_writev":
            fd = int(re.search(r"fd: (\S+),", rest).group(1), 16)
            src = peer.get(fd)
            if src in last_read and \
                    nominal_ns - 5 * 10**6 <= t - last_read[src] <= nominal_ns + 50 * 10**6:
                due = last_read.pop(src) + nominal_ns
                units.append((t - due, due, t))
                if cur is not None and "wake" in cur:
                    cur["write"], cur["due"] = t, due
                    timers.append(cur)
                    cur = None
    units = units[-keep:]
    t0 = units[0][2] if units else 0
    timers = [c for c in timers if c["write"] >= t0]
    print("a unit, from its read to its write (%d units):" % len(units))
    show("lateness: write - (read + nominal)", [u[0] for u in units])
    print("timer wake-ups of the proxy that wrote a unit (the first unit of each):")
    show("armed late: expiry - due", [c["exp"] - c["due"] for c in timers])
    show("irq: interrupt - expiry", [c["irq"] - c["exp"] for c in timers])
    show("wake: epoll_wait returns - interrupt", [c["wake"] - c["irq"] for c in timers])
    show("to write: first writev - epoll return", [c["write"] - c["wake"] for c in timers])
    show("total: first writev - due", [c["write"] - c["due"] for c in timers])
    print("the proxy preempted while runnable: %d times%s" % (
        sum(preempted.values()), ", by " + ", ".join("%s %d" % kv for kv in
                                                   preempted.most_common(4))
        if preempted else ""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("delay", "latency"), default="delay")
    ap.add_argument("--stagger", type=float, default=0, help="rtt -s: 0 is the burst")
    ap.add_argument("--per", type=int, default=20)
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--keep", default=None, help="also write perf script's text here")
    a = ap.parse_args()
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rtt = run.rtt_tool()
    echo_port = free_port()
    spawn([rtt, "-E", str(echo_port)])
    wait_port(echo_port)
    if a.mode == "delay":
        v = run.vaurien(echo_port, extra=["--behavior", "100:delay",
                                          "--behavior-delay-sleep", "0.1"])
        port, pid = v.port, v.pid
    else:
        api = free_port()
        srv = spawn([VAURIEN, "server", "--log-level", "error", "-host", "127.0.0.1",
                     "-port", str(api)])
        wait_port(api)
        port = run.api_proxy(api, "lat", echo_port, [{
            "name": "lat", "type": "latency", "stream": "downstream",
            "attributes": {"latency": 100, "jitter": 0}}])
        pid = srv.pid
    data = os.path.join(tempfile.mkdtemp(prefix="vaurien-trace-"), "perf.data")
    cmd = [rtt, "-i", str(a.idle), "-n", "100", str(port), str(a.conns), str(a.per),
           "PING\r\n", "6"]
    if a.stagger:
        cmd[1:1] = ["-s", str(a.stagger)]
    out = subprocess.run(["perf", "record", "-q", "-k", "CLOCK_MONOTONIC", "-a", "-o", data,
                          "-e", EVENTS, "--"] + cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("perf record failed: " + out.stderr.strip()[-300:])
    print("%s, %s, %d connections (+%d idle) x %d: %s" % (
        a.mode, "staggered %g ms" % a.stagger if a.stagger else "burst", a.conns, a.idle,
        a.per, out.stdout.strip()))
    script = subprocess.run(["perf", "script", "-i", data, "--ns", "-F",
                             "comm,pid,cpu,time,event,trace"],
                            capture_output=True, text=True).stdout
    if a.keep:
        with open(a.keep, "w") as f:
            f.write(script)
    print("proxy pid %d" % pid)
    analyse(script, str(pid), 100 * 10**6, a.conns * a.per)
    os.unlink(data)


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
        shutil.rmtree(run.TMP, ignore_errors=True)
