"""Runs an image's entrypoint as a container runtime would, inside a network
namespace of its own (run under `unshare --net` by test_container.py), so
that it binds 0.0.0.0 and the image's fixed ports (8474, 8666, ...) without
touching the machine's network: only this namespace's loopback exists.

argv[1] is a JSON object: {"runs": [{"argv": [...], "config": PATH or null,
"proxies": [...] (written as testcontainers-go does) or "config_text": TEXT,
"log": PATH}], "uid": N, "api_port": 8474, and for the full check of an
image "healthcheck": [...] and "proxy_ports": [8666, 8667], a proxy made
through the API on the last}. Prints a JSON report on stdout."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time


def echo_backend():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=pump, args=(c,), daemon=True).start()

    def pump(c):
        with c:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                c.sendall(data)
    threading.Thread(target=serve, daemon=True).start()
    return srv


def call(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"User-Agent": "testcontainers-like"})
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    return r.status, text


def echo_through(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"ping through the container")
        got = b""
        while len(got) < 26:
            chunk = s.recv(100)
            if not chunk:
                break
            got += chunk
        return got.decode(errors="replace")


def listeners(port):
    """The addresses listening on port, from /proc/net/tcp and tcp6."""
    found = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    addr, state = fields[1], fields[3]
                    host, p = addr.split(":")
                    if state == "0A" and int(p, 16) == port:
                        found.append(host)
        except OSError:
            pass
    return found


def as_user(uid, argv):
    return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups",
            "--inh-caps=-all", "--"] + argv


def run_one(spec, plan, backend_port):
    out = {"argv": spec["argv"]}
    if spec.get("config_text") is not None:  # a ConfigMap's, as it is
        with open(spec["config"], "w") as f:
            f.write(spec["config_text"])
        os.chmod(spec["config"], 0o644)
    elif spec.get("config"):
        proxies = [dict(p, upstream="127.0.0.1:%d" % backend_port) for p in spec["proxies"]]
        with open(spec["config"], "w") as f:
            json.dump(proxies, f, indent=4)  # as testcontainers-go renders it
        os.chmod(spec["config"], 0o644)
    log = open(spec["log"], "w")
    proc = subprocess.Popen(as_user(plan["uid"], spec["argv"]), stdout=log,
                            stderr=subprocess.STDOUT)
    api = plan["api_port"]
    deadline = time.monotonic() + 15
    version = None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            version = call(api, "GET", "/version")
            break
        except OSError:
            time.sleep(0.05)
    out["version"] = version
    out["api_listeners"] = listeners(api)
    if version is not None:
        out["proxies"] = call(api, "GET", "/proxies")
        out["metrics"] = call(api, "GET", "/metrics")[0]
    if version is not None and plan.get("healthcheck"):
        hc = subprocess.run(as_user(plan["uid"], plan["healthcheck"]),
                            capture_output=True, text=True, timeout=30)
        out["healthcheck"] = [hc.returncode, hc.stdout, hc.stderr]
        out["through_config"] = [echo_through(int(p["listen"].rsplit(":", 1)[1]))
                                 for p in spec["proxies"]]
        made = plan["proxy_ports"][-1]
        out["create"] = call(api, "POST", "/proxies", {
            "name": "made", "listen": "0.0.0.0:%d" % made,
            "upstream": "127.0.0.1:%d" % backend_port})
        out["through_created"] = echo_through(made)
        out["proxy_listeners"] = listeners(made)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    out["rc"] = proc.returncode
    log.close()
    with open(spec["log"]) as f:
        out["log"] = f.read()
    return out


def main():
    plan = json.loads(sys.argv[1])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    backend = echo_backend()
    report = [run_one(spec, plan, backend.getsockname()[1]) for spec in plan["runs"]]
    backend.close()
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
