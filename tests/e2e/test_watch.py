"""`vaurien server -config FILE -watch` (issue 18): the file is reloaded when
it changes, with SIGHUP's rules (unchanged proxies and their connections
untouched, a bad file logged and ignored), including when Kubernetes swaps
the ConfigMap's `..data` symlink rather than writing the file."""
import json
import os
import socket
import subprocess
import time

from conftest import BIN, Api, free_port, recv_exactly, wait_until


class ConfigMapDir:
    """A folder laid out as the kubelet lays out a mounted ConfigMap:
    config.json -> ..data/config.json, ..data -> a timestamped folder; an
    update writes a new folder, points a new ..data_tmp symlink at it and
    renames that over ..data (atomic_writer.go), then deletes the old one."""

    def __init__(self, root, files):
        self.root = root
        self.n = 0
        self.current = None
        self._write_version(files)
        os.symlink(self.current, os.path.join(root, "..data"))
        for name in files:
            os.symlink(os.path.join("..data", name), os.path.join(root, name))

    def _write_version(self, files):
        self.n += 1
        name = "..2026_12_0%d_10_00_00.%06d" % (self.n, self.n)
        os.mkdir(os.path.join(self.root, name))
        for fname, text in files.items():
            with open(os.path.join(self.root, name, fname), "w") as f:
                f.write(text)
        old, self.current = self.current, name
        return old

    def update(self, files):
        old = self._write_version(files)
        tmp = os.path.join(self.root, "..data_tmp")
        os.symlink(self.current, tmp)
        os.rename(tmp, os.path.join(self.root, "..data"))
        for fname in os.listdir(os.path.join(self.root, old)):
            os.unlink(os.path.join(self.root, old, fname))
        os.rmdir(os.path.join(self.root, old))


def proxies(*entries):
    return json.dumps([{"name": n, "listen": "127.0.0.1:%d" % p, "upstream": u}
                       for n, p, u in entries])


def names(api):
    return sorted(api.call("GET", "/proxies")[1])


def echo(conn, data):
    conn.sendall(data)
    return recv_exactly(conn, len(data))


def test_a_configmap_swap_is_picked_up_within_a_second(tmp_path, backend):
    up = "127.0.0.1:%d" % backend.port
    pa, pb, pc = free_port(), free_port(), free_port()
    cm = ConfigMapDir(str(tmp_path), {"config.json": proxies(("A", pa, up), ("B", pb, up))})
    port = free_port()
    a = Api(["server", "-host", "127.0.0.1", "-port", str(port),
             "-config", str(tmp_path / "config.json"), "-watch"], port)
    try:
        assert names(a) == ["A", "B"]
        held = socket.create_connection(("127.0.0.1", pa), timeout=5)
        assert echo(held, b"1") == b"1"

        t0 = time.monotonic()
        cm.update({"config.json": proxies(("A", pa, up), ("C", pc, up))})
        assert wait_until(lambda: names(a) == ["A", "C"], timeout=3, step=0.02)
        took = time.monotonic() - t0
        assert took < 1.0, "the swap took %.3f s to apply" % took
        # A was unchanged: its connection was not touched
        assert echo(held, b"2") == b"2"
        with socket.create_connection(("127.0.0.1", pc), timeout=5) as c:
            assert echo(c, b"c") == b"c"

        # a bad file: logged, ignored, the old config still served
        cm.update({"config.json": "[{not json"})
        assert wait_until(lambda: "-watch: -config" in open(a.log).read()
                          and "nothing changed" in open(a.log).read(), timeout=3)
        assert names(a) == ["A", "C"]
        assert echo(held, b"3") == b"3"
        with socket.create_connection(("127.0.0.1", pc), timeout=5) as c:
            assert echo(c, b"c") == b"c"

        # a good one again: applied
        cm.update({"config.json": proxies(("A", pa, up))})
        assert wait_until(lambda: names(a) == ["A"], timeout=3, step=0.02)
        assert echo(held, b"4") == b"4"
        assert a.proc.poll() is None
        held.close()
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def test_a_file_written_in_place_is_reloaded_and_others_wake_nothing(tmp_path, backend):
    up = "127.0.0.1:%d" % backend.port
    pa, pb = free_port(), free_port()
    cfg = tmp_path / "config.json"
    cfg.write_text(proxies(("A", pa, up)))
    port = free_port()
    a = Api(["server", "--host", "127.0.0.1", "--port", str(port),
             "--config", str(cfg), "--watch"], port)
    try:
        # another file in the folder, and the same bytes written again:
        # nothing to reload
        (tmp_path / "notes.txt").write_text("x")
        cfg.write_text(proxies(("A", pa, up)))
        time.sleep(0.6)
        assert "-watch: " not in open(a.log).read().replace(
            "-watch: reloading -config", "")
        t0 = time.monotonic()
        with open(cfg, "w") as f:  # an editor that writes in place
            f.write(proxies(("A", pa, up), ("B", pb, up)))
        assert wait_until(lambda: names(a) == ["A", "B"], timeout=3, step=0.02)
        assert time.monotonic() - t0 < 1.0
        # an editor that saves by renaming a new file over the old one
        tmp = tmp_path / ".config.json.swp"
        tmp.write_text(proxies(("B", pb, up)))
        os.rename(tmp, cfg)
        assert wait_until(lambda: names(a) == ["B"], timeout=3, step=0.02)
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def test_a_proxy_renamed_on_the_same_address_is_applied(tmp_path, backend):
    # the old name's proxy holds the address: it goes before the new one
    # binds, or the new file never applies
    up = "127.0.0.1:%d" % backend.port
    pa, pb = free_port(), free_port()
    cm = ConfigMapDir(str(tmp_path), {"config.json": proxies(("redis", pa, up), ("B", pb, up))})
    port = free_port()
    a = Api(["server", "-host", "127.0.0.1", "-port", str(port),
             "-config", str(tmp_path / "config.json"), "-watch"], port)
    try:
        held = socket.create_connection(("127.0.0.1", pb), timeout=5)
        assert echo(held, b"1") == b"1"
        cm.update({"config.json": proxies(("redis-main", pa, up), ("B", pb, up))})
        assert wait_until(lambda: names(a) == ["B", "redis-main"], timeout=3, step=0.02), \
            open(a.log).read()
        with socket.create_connection(("127.0.0.1", pa), timeout=5) as c:
            assert echo(c, b"a") == b"a"
        assert echo(held, b"2") == b"2"  # B did not change
        # a bad file still changes nothing, the proxies it drops included
        cm.update({"config.json": json.dumps([{"name": "C", "listen": "127.0.0.1:0"}])})
        assert wait_until(lambda: "missing required field: upstream" in open(a.log).read(),
                          timeout=3)
        assert names(a) == ["B", "redis-main"]
        assert echo(held, b"3") == b"3"
        held.close()
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def test_a_script_the_config_names_is_watched_too(tmp_path, backend):
    # only mine.lua changes in the swap: config.json's bytes are the same
    up = "127.0.0.1:%d" % backend.port
    pa = free_port()
    script = 'return { request = function(req) return vaurien.answer("%s") end }'
    config = json.dumps({
        "behaviors": [{"name": "mine", "file": "mine.lua"}],
        "proxies": [{"name": "A", "listen": "127.0.0.1:%d" % pa, "upstream": up,
                     "toxics": [{"type": "mine", "stream": "upstream"}]}]})
    cm = ConfigMapDir(str(tmp_path), {"config.json": config, "mine.lua": script % "one"})
    port = free_port()
    a = Api(["server", "-host", "127.0.0.1", "-port", str(port),
             "-config", str(tmp_path / "config.json"), "-watch"], port)

    def answer():
        with socket.create_connection(("127.0.0.1", pa), timeout=5) as c:
            c.sendall(b"x")
            return recv_exactly(c, 3)
    try:
        assert answer() == b"one"
        cm.update({"config.json": config, "mine.lua": script % "two"})
        assert wait_until(lambda: answer() == b"two", timeout=3, step=0.05)
        assert "-watch: -config" in open(a.log).read()
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def test_watch_without_config_is_a_usage_error():
    r = subprocess.run([BIN, "server", "-watch"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "vaurien: error: -watch: reloads the -config FILE, and no -config was given"]
    r = subprocess.run([BIN, "server", "-watch=maybe"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2 and "-watch: expected true or false, got 'maybe'" in r.stderr
