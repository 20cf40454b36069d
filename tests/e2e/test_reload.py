"""SIGHUP reloads (issue 12): `vaurien server -config FILE` applies the file
again with POST /populate's rules (unchanged proxies and their connections
untouched, the others replaced, added or removed); a proxy run from the
command line reopens --log-output and reads --config again. A bad file is
logged and changes nothing."""
import json
import os
import signal
import socket
import subprocess
import time

from conftest import BIN, Api, free_port, recv_exactly, wait_until


def write(path, proxies):
    path.write_text(json.dumps(proxies))


def test_sighup_reloads_the_server_config(tmp_path, backend):
    up = "127.0.0.1:%d" % backend.port
    pa, pb, pc = free_port(), free_port(), free_port()
    cfg = tmp_path / "c.json"
    write(cfg, [{"name": "A", "listen": "127.0.0.1:%d" % pa, "upstream": up},
                {"name": "B", "listen": "127.0.0.1:%d" % pb, "upstream": up}])
    port = free_port()
    a = Api(["server", "-host", "127.0.0.1", "-port", str(port), "-config", str(cfg)], port)
    try:
        held = socket.create_connection(("127.0.0.1", pa), timeout=5)
        held.sendall(b"1")
        assert recv_exactly(held, 1) == b"1"
        write(cfg, [{"name": "A", "listen": "127.0.0.1:%d" % pa, "upstream": up},
                    {"name": "C", "listen": "127.0.0.1:%d" % pc, "upstream": up}])
        a.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: sorted(a.call("GET", "/proxies")[1]) == ["A", "C"], timeout=5)
        held.sendall(b"2")  # A was unchanged: its connection was not touched
        assert recv_exactly(held, 1) == b"2"
        with socket.create_connection(("127.0.0.1", pc), timeout=5) as c:
            c.sendall(b"c")
            assert recv_exactly(c, 1) == b"c"
        cfg.write_text("[{not json")
        a.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "nothing changed" in open(a.log).read(), timeout=5)
        assert sorted(a.call("GET", "/proxies")[1]) == ["A", "C"]
        held.sendall(b"3")
        assert recv_exactly(held, 1) == b"3"
        assert a.proc.poll() is None  # SIGHUP no longer kills it (rc 129)
        held.close()
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def test_sighup_reopens_the_log_and_reloads_the_ini(tmp_path, redis_server):
    import redis
    ini = tmp_path / "v.ini"
    log = tmp_path / "v.log"
    proxy = free_port()
    ini.write_text("[vaurien]\nproxy = 127.0.0.1:%d\nbackend = 127.0.0.1:%d\nprotocol = redis\n"
                   "behavior = 100:dummy\n" % (proxy, redis_server))
    p = subprocess.Popen([BIN, "--config", str(ini), "--log-output", str(log)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: os.path.exists(log) and "proxying" in log.read_text(), timeout=5)
        r = redis.Redis(host="127.0.0.1", port=proxy, socket_timeout=5)
        assert r.ping()
        os.rename(log, str(log) + ".1")  # logrotate
        ini.write_text(ini.read_text().replace("100:dummy", "100:error"))
        p.send_signal(signal.SIGHUP)
        assert wait_until(lambda: os.path.exists(log) and "reloaded" in log.read_text(), timeout=5)
        try:
            r.ping()
            raise AssertionError("the reloaded mix did not apply")
        except redis.exceptions.ResponseError as e:
            assert "injected" in str(e)
        ini.write_text("[vaurien]\nbehavior = 100:nosuchbehavior\n")
        p.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "nothing changed" in log.read_text(), timeout=5)
        try:
            r.ping()
            raise AssertionError("the bad file changed the mix")
        except redis.exceptions.ResponseError:
            pass
        assert p.poll() is None
        assert "received SIGHUP" not in open(str(log) + ".1").read()
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)
        p.stderr.close()
    assert p.returncode == 0
