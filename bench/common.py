"""Helpers the benchmark and the soak share: ports, processes, a threaded
echo backend, and what /proc says of a process."""
import os
import socket
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VAURIEN = os.environ.get("VAURIEN_BIN", os.path.join(ROOT, "build", "vaurien"))
PROCS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError("port %d did not open" % port)


def spawn(cmd, **kw):
    """Starts cmd quietly; stop_all() ends it."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    PROCS.append(p)
    return p


def stop_all():
    for p in PROCS:
        if p.poll() is None:
            p.terminate()
    for p in PROCS:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def echo_server():
    """A threaded echo backend on 127.0.0.1; returns its port."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(4096)

    def serve(c):
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        c.close()

    def accept():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return s.getsockname()[1]


def status_kb(pid, field):
    """A kB figure of /proc/PID/status: VmRSS (now), VmHWM (peak)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_kb(pid):
    return status_kb(pid, "VmRSS")


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks (0 once it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return 0


class ForeignLoad:
    """CPU that processes other than ours used while a measurement ran, in
    percent of one core: the machine's busy ticks (/proc/stat) minus those
    of our pids and of our waited-for children. On a shared machine this
    says which runs to distrust."""

    def __init__(self, pids):
        self.pids = [p for p in pids if p]

    @staticmethod
    def _machine():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v) - v[3] - v[4]  # all but idle and iowait

    def __enter__(self):
        import resource
        ch = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.t0 = time.monotonic()
        self.m0 = self._machine()
        self.own0 = sum(cpu_ticks(p) for p in self.pids)
        self.ch0 = ch.ru_utime + ch.ru_stime
        return self

    def __exit__(self, *exc):
        import resource
        hz = os.sysconf("SC_CLK_TCK")
        ch = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = max(1e-3, time.monotonic() - self.t0)
        machine = (self._machine() - self.m0) / hz
        own = (sum(cpu_ticks(p) for p in self.pids) - self.own0) / hz
        own += ch.ru_utime + ch.ru_stime - self.ch0
        self.percent = max(0.0, 100.0 * (machine - own) / wall)
        return False


def wait_quiet(limit=10.0, max_wait=10.0):
    """Waits (at most max_wait s) until the machine is under limit percent of
    one core busy over 0.5 s; returns the last reading."""
    hz = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + max_wait
    while True:
        m0, t0 = ForeignLoad._machine(), time.monotonic()
        time.sleep(0.5)
        busy = 100.0 * (ForeignLoad._machine() - m0) / hz / (time.monotonic() - t0)
        if busy <= limit or time.monotonic() >= deadline:
            return busy
