#!/usr/bin/python3
"""TLS termination + origination (issue 14): nginx serving HTTPS, reached
directly, through HAProxy (`bind ... ssl`, `server ... ssl`, mode tcp,
nbthread 1) and through Vaurien (`--proxy-tls --backend-tls`, tcp), in
alternation in one run, with the same certificate everywhere. Prints
download throughput (curl, one 64 MiB file) and full handshakes per second
(`openssl s_time -new`, each one a handshake on both sides of a proxy), the
ratios to HAProxy, and the CPU each proxy used.

    bench/tls.py [--quick] [--reps N]
"""
import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import free_port, spawn, stop_all, wait_port  # noqa: E402
from run import TMP, VAURIEN, Target, measure  # noqa: E402


def certificate():
    cert, key = os.path.join(TMP, "tls.pem"), os.path.join(TMP, "tls.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    combined = os.path.join(TMP, "tls-combined.pem")
    with open(combined, "w") as f:
        f.write(open(cert).read() + open(key).read())
    return cert, key, combined


def nginx(cert, key):
    port = free_port()
    os.makedirs(os.path.join(TMP, "nginx-tls", "logs"), exist_ok=True)
    www = os.path.join(TMP, "www-tls")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "big"), "wb") as f:
        f.write(os.urandom(1 << 20) * 64)
    with open(os.path.join(www, "small"), "w") as f:
        f.write("ok")
    conf = os.path.join(TMP, "nginx-tls.conf")
    with open(conf, "w") as f:
        f.write("user root;\nworker_processes 1;\nerror_log %s/nginx-tls/error.log;\npid %s/nginx-tls/pid;\n"
                "events { worker_connections 4096; }\nhttp { access_log off;\n"
                "  server { listen 127.0.0.1:%d ssl; ssl_certificate %s; "
                "ssl_certificate_key %s; root %s; } }\n" % (TMP, TMP, port, cert, key, www))
    spawn(["nginx", "-c", conf, "-p", os.path.join(TMP, "nginx-tls"), "-g", "daemon off;"])
    wait_port(port)
    return port


def haproxy_tls(backend_port, combined, cert):
    port = free_port()
    cfg = os.path.join(TMP, "haproxy-tls.cfg")
    with open(cfg, "w") as f:
        f.write("global\n    nbthread 1\n    maxconn 4000\n"
                "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n"
                "    timeout server 60s\n"
                "listen tls\n    bind 127.0.0.1:%d ssl crt %s\n"
                "    server s 127.0.0.1:%d ssl verify required ca-file %s\n"
                % (port, combined, backend_port, cert))
    proc = spawn(["haproxy", "-f", cfg, "-db"])
    wait_port(port)
    return Target("haproxy", port, proc.pid)


def vaurien_tls(backend_port, cert, key):
    port = free_port()
    proc = spawn([VAURIEN, "--proxy", "127.0.0.1:%d" % port, "--backend",
                  "127.0.0.1:%d" % backend_port, "--protocol", "tcp", "--proxy-tls",
                  "--tls-cert", cert, "--tls-key", key, "--backend-tls", "--backend-ca", cert,
                  "--log-level", "error", "--timeout", "120"])
    wait_port(port)
    return Target("vaurien", port, proc.pid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int)
    a = ap.parse_args()
    reps = a.reps or (1 if a.quick else 3)
    secs = 2 if a.quick else 4
    cert, key, combined = certificate()
    backend = nginx(cert, key)
    targets = [Target("direct", backend), haproxy_tls(backend, combined, cert),
               vaurien_tls(backend, cert, key)]

    def download(t):
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download}",
                              "--cacert", cert, "https://127.0.0.1:%d/big" % t.port],
                             capture_output=True, text=True, timeout=120, check=True)
        return float(out.stdout) * 8 / 1e9

    def handshakes(t):
        out = subprocess.run(["openssl", "s_time", "-connect", "127.0.0.1:%d" % t.port,
                              "-new", "-time", str(secs), "-CAfile", cert, "-www", "/small"],
                             capture_output=True, text=True, timeout=secs + 60)
        m = re.search(r"(\d+) connections in ([\d.]+)s", out.stdout)
        return int(m.group(1)) / secs if m else 0.0

    try:
        for label, run, unit in (("download, 64 MiB over HTTPS (Gbit/s)", download, ""),
                                 ("full handshakes (connections/s)", handshakes, "/s")):
            res = measure(targets, run, reps)
            line = "  ".join("%s %.3g%s (CPU %.2f s)" % (n, v, unit, c)
                             for n, (v, c) in res.items())
            print("%-40s %s  vaurien/haproxy %.2f" % (
                label, line, res["vaurien"][0] / res["haproxy"][0]), flush=True)
    finally:
        stop_all()


if __name__ == "__main__":
    main()
