"""The Containerfile (issue 18). No registry is reachable here, so the image
is not built: its file system is, with the paths the Containerfile names
(read from it, so the two cannot drift apart), and its entrypoint runs from
there as the container would — as its non-root user, with Testcontainers'
arguments, in a network namespace of its own so that it binds 0.0.0.0 and
the image's fixed ports without touching the machine's network."""
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile

import pytest

from conftest import BIN, ROOT, SANITIZED

CONTAINERFILE = os.path.join(ROOT, "Containerfile")
TESTCONTAINERS_CONFIG = "/tmp/tc-toxiproxy.json"  # testcontainers-go's path


def parse(text):
    """The Containerfile's stages: [{"from", "as", "lines": [(KEYWORD, rest)]}],
    continuation lines joined, comments dropped."""
    stages, logical, cur = [], [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not cur and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        logical.append(cur + line)
        cur = ""
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            words = rest.split()
            stages.append({"from": words[0],
                           "as": words[2] if len(words) > 2 and words[1].upper() == "AS"
                           else None, "lines": []})
        else:
            stages[-1]["lines"].append((keyword, rest))
    return stages


def lines(stage, keyword):
    return [rest for k, rest in stage["lines"] if k == keyword]


def exec_form(text):
    """["a", "b"] of an ENTRYPOINT, CMD or HEALTHCHECK ... CMD [...]"""
    return json.loads(text[text.index("["):])


class Image:
    """What the Containerfile says, in the terms the layout test uses."""

    def __init__(self):
        with open(CONTAINERFILE) as f:
            self.stages = parse(f.read())
        self.build, self.final = self.stages[0], self.stages[-1]
        run = " && ".join(lines(self.build, "RUN"))
        m = re.search(r"make install DESTDIR=(\S+) PREFIX=(\S+)", run)
        self.destdir, self.prefix = m.group(1), m.group(2)
        self.build_run = run
        copies = [shlex.split(c) for c in lines(self.final, "COPY")]
        self.copies = [(c[0].split("=", 1)[1], c[1], c[2]) for c in copies
                       if c[0].startswith("--from=")]
        self.entrypoint = exec_form(lines(self.final, "ENTRYPOINT")[-1])
        self.cmd = exec_form(lines(self.final, "CMD")[-1]) if lines(self.final, "CMD") else []
        self.healthcheck = exec_form(lines(self.final, "HEALTHCHECK")[-1])
        self.user = lines(self.final, "USER")[-1]
        self.expose = " ".join(lines(self.final, "EXPOSE")).split()
        final_run = " ".join(lines(self.final, "RUN"))
        self.final_run = final_run
        install = re.search(r"apt-get install ([^&]*)", final_run).group(1).split()
        self.runtime_packages = [w for w in install if not w.startswith("-")]
        uid = re.search(r"useradd .*--uid (\d+)", final_run)
        self.uid = int(uid.group(1)) if uid else None


@pytest.fixture(scope="module")
def image():
    return Image()


def built_binary_path(img):
    """Where `make install DESTDIR=... PREFIX=...` puts the binary: the
    install target's contract, $(DESTDIR)$(PREFIX)/bin/vaurien."""
    return img.destdir.rstrip("/") + img.prefix + "/bin/vaurien"


def install_into(destdir, prefix):
    """The build stage's `make install DESTDIR=... PREFIX=...`, for the
    binary under test: once the build declares install() rules, cmake
    --install of the binary's own build tree (what make install runs,
    without building again); until then, the binary copied to the same
    place."""
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        has_install = re.search(r"^\s*install\s*\(", f.read(), re.M) is not None
    if has_install:
        subprocess.run(["cmake", "--install", os.path.dirname(BIN), "--prefix", prefix],
                       env=dict(os.environ, DESTDIR=destdir), check=True,
                       capture_output=True)
    else:
        os.makedirs(destdir + prefix + "/bin", exist_ok=True)
        shutil.copy2(BIN, destdir + prefix + "/bin/vaurien")


def test_the_containerfile_says_what_the_layout_test_runs(image):
    img = image
    assert [s["from"] for s in img.stages] == ["debian:bookworm-slim"] * 2
    assert img.build["as"] == "build"
    # the build stage: the build list of install-deps, make build, make install
    assert ("ENV", "VAURIEN_DEPS=build") in img.build["lines"]
    assert "./scripts/install-deps" in img.build_run
    assert "make build" in img.build_run
    assert (img.destdir, img.prefix) == ("/out", "/usr")
    # the final stage takes /out whole, so the binary is at PREFIX/bin
    assert img.copies == [("build", img.destdir + "/", "/")]
    binary = img.prefix + "/bin/vaurien"
    assert built_binary_path(img) == img.destdir + binary
    assert img.entrypoint == [binary, "server", "-host=0.0.0.0"]
    assert img.cmd == []
    assert img.healthcheck[0] == binary
    assert img.healthcheck[1:] == ["ctl", "--host", "http://127.0.0.1:8474", "--timeout",
                                   "3", "version"]
    assert "8474" in img.expose and "8666-8697" in img.expose
    # numeric (Kubernetes' runAsNonRoot can check only a number), the
    # user made in the final stage, not root
    assert img.uid is not None and img.uid != 0
    assert img.user == "%d:%d" % (img.uid, img.uid)
    assert re.search(r"useradd .*--user-group .* vaurien\b", img.final_run)


def test_the_image_installs_every_library_the_binary_links(image):
    out = subprocess.run(["ldd", BIN], capture_output=True, text=True, check=True).stdout
    packages = set()
    for line in out.splitlines():
        m = re.search(r"=> (/\S+)", line)
        if not m or "asan" in m.group(1) or "ubsan" in m.group(1):
            continue
        path = os.path.realpath(m.group(1))
        candidates = [path, m.group(1), re.sub(r"^/usr/lib/", "/lib/", path)]
        for p in candidates:
            r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
            if r.returncode == 0:
                packages.add(r.stdout.split(":")[0])
                break
        else:
            raise AssertionError("no package owns %s" % path)
    packages -= {"libc6", "libgcc-s1", "libstdc++6"}  # in every Debian image
    assert packages, out
    missing = sorted(packages - set(image.runtime_packages))
    assert missing == [], "the final stage does not install %s" % missing


def can_unshare():
    try:
        r = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True,
                           timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None if r.returncode == 0 else r.stderr.strip()


def run_in_netns(plan):
    """container_run.py's report on plan, run in a network namespace of its
    own."""
    env = dict(os.environ)
    if SANITIZED:  # LeakSanitizer cannot stop the world as another user
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    r = subprocess.run(["unshare", "--net", "/usr/bin/python3",
                        os.path.join(ROOT, "tests", "e2e", "container_run.py"),
                        json.dumps(plan)], capture_output=True, text=True, timeout=120,
                       env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_the_image_layout_serves_testcontainers(image):
    why = can_unshare()
    if why is not None or shutil.which("setpriv") is None:
        pytest.skip("needs a network namespace (unshare --net) and setpriv to run the "
                    "entrypoint on 0.0.0.0 without touching the machine's network: %s"
                    % (why or "no setpriv"))
    img = image
    work = tempfile.mkdtemp(prefix="vaurien-image-")
    try:
        os.chmod(work, 0o755)
        # the build stage's make install, then the final stage's COPY /out/ /
        install_into(work + img.destdir, img.prefix)
        rootfs = work + "/rootfs"
        shutil.copytree(work + img.destdir, rootfs, symlinks=True)
        for d, _, _ in os.walk(work):
            os.chmod(d, 0o755)

        def in_root(argv):
            return [rootfs + argv[0]] + argv[1:]
        config = work + TESTCONTAINERS_CONFIG.replace("/tmp", "")
        proxies = [{"name": "redis", "listen": "0.0.0.0:8666", "enabled": True}]
        plan = {
            "uid": img.uid,
            "api_port": 8474,
            "proxy_ports": [8666, 8667],
            "healthcheck": in_root(img.healthcheck),
            "runs": [
                # testcontainers-go: Cmd -host=0.0.0.0 -config=FILE
                {"argv": in_root(img.entrypoint) + img.cmd +
                 ["-host=0.0.0.0", "-config=" + config],
                 "config": config, "proxies": proxies, "log": work + "/run1.log"},
                # Testcontainers for Java: the image's own command
                {"argv": in_root(img.entrypoint) + img.cmd, "config": None,
                 "proxies": [], "log": work + "/run2.log"},
            ],
        }
        tc, java = run_in_netns(plan)
        for run in (tc, java):
            assert run["version"] == [200, '{"version": "2.12.0"}\n'], run["log"]
            assert run["api_listeners"] in (["00000000"], ["00000000000000000000000000000000"]), \
                run  # 0.0.0.0 (or [::]) inside the container
            assert run["healthcheck"][0] == 0 and run["healthcheck"][1].strip() == "2.12.0", run
            assert run["create"][0] == 201, run
            assert run["through_created"] == "ping through the container"
            assert run["rc"] == 0, run["log"]
            assert "the control API listens on 0.0.0.0" in run["log"]
        assert list(json.loads(tc["proxies"][1])) == ["redis"]
        assert tc["through_config"] == ["ping through the container"]
        assert json.loads(java["proxies"][1]) == {}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_every_toxiproxy_server_flag_is_taken(tmp_path, backend):
    """toxiproxy-server 2.12's flags, as Go's flag package reads them: -x and
    --x, -x=V and -x V, booleans alone or =true/=false/=1/=t ..., -seed an
    int64 (negative too)."""
    from conftest import Api, free_port
    cfg = tmp_path / "config.json"
    pa = free_port()
    cfg.write_text(json.dumps([{"name": "db", "listen": "127.0.0.1:%d" % pa,
                                "upstream": "127.0.0.1:%d" % backend.port}]))
    port = free_port()
    a = Api(["server", "-host=127.0.0.1", "--port", str(port), "-config=" + str(cfg),
             "-seed=-7", "-proxy-metrics", "--runtime-metrics=t"], port)
    try:
        assert a.call("GET", "/version")[1] == {"version": "2.12.0"}
        assert list(a.call("GET", "/proxies")[1]) == ["db"]
        metrics = a.call("GET", "/metrics")[1]
        assert "toxiproxy_proxy_received_bytes_total" in metrics  # -proxy-metrics
        assert "process_resident_memory_bytes" in metrics  # -runtime-metrics
        assert "seed 18446744073709551609 " in open(a.log).read()  # -7 as 64 bits
    finally:
        rc, err = a.stop()
    assert rc == 0, err
    r = subprocess.run([BIN, "server", "-version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "Toxiproxy API 2.12.0" in r.stdout
    for bad, message in [(["-proxy-metrics=yes"], "-proxy-metrics: expected true or false"),
                         (["-seed=-x"], "-seed: expected a 64-bit integer, got '-x'"),
                         (["-port=99999"], "-port: expected 0-65535, got '99999'"),
                         (["-frobnicate"], "vaurien: error: unknown flag '-frobnicate'")]:
        r = subprocess.run([BIN, "server"] + bad, capture_output=True, text=True, timeout=10)
        assert r.returncode == 2, (bad, r.stderr)
        assert len(r.stderr.splitlines()) == 1 and message in r.stderr, r.stderr
