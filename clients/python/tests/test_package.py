"""start_proxy / stop_proxy, Client, Server, and the pytest fixtures."""
import socket
import time

import pytest

import vaurien
from vaurien import APIError, Client, StartError, start_proxy, start_server, stop_proxy


def test_port_0_picks_free_ports_and_reports_them(backend):
    pid = start_proxy(proxy_host="127.0.0.1", proxy_port=0, http_host="127.0.0.1", http_port=0,
                      backend_host="127.0.0.1", backend_port=backend.port)
    try:
        assert isinstance(pid, int) and pid.proxy_port > 0 and pid.http_port > 0
        s = socket.create_connection(("127.0.0.1", pid.proxy_port), timeout=5)
        s.sendall(b"hi")
        assert s.recv(2) == b"hi"
        s.close()
        assert pid.client().get_behavior() == "dummy"
    finally:
        assert stop_proxy(pid) == 0
    with pytest.raises(ValueError, match="Not found"):
        stop_proxy(pid)
    with pytest.raises(ValueError):
        stop_proxy(12345678)


def test_a_start_failure_raises_with_what_the_binary_said():
    with pytest.raises(StartError) as e:
        start_proxy(proxy_port=0, http_port=0, backend="127.0.0.1:1",
                    options=["--behavior", "150:delay"])
    assert "100 or less" in str(e.value) and "100 or less" in e.value.stderr
    with pytest.raises(StartError) as e:
        start_proxy(proxy_port=0, http_port=0, backend="127.0.0.1:1", binary="/bin/false")
    assert "exited" in str(e.value)


def test_with_behavior_restores_name_and_options_also_on_exceptions(backend):
    pid = start_proxy(proxy_port=0, http_port=0, proxy_host="127.0.0.1", http_host="127.0.0.1",
                      backend="127.0.0.1:%d" % backend.port)
    try:
        c = pid.client()
        c.set_behavior("delay", sleep=0.05, before=False)
        with c.with_behavior("error", warmup=3):
            assert c.get_behavior() == "error"
            assert c.get_behavior_options()["error"]["warmup"] == 3
        assert c.get_behavior() == "delay"
        assert c.get_behavior_options()["delay"] == {"sleep": 0.05, "before": False}
        with pytest.raises(RuntimeError):
            with c.with_behavior("hang"):
                raise RuntimeError("boom")
        assert c.get_behavior() == "delay"
        assert c.get_behavior_options()["delay"] == {"sleep": 0.05, "before": False}
    finally:
        stop_proxy(pid)


def test_a_behavior_set_through_the_client_reaches_redis_py(redis_server):
    redis = pytest.importorskip("redis")
    pid = start_proxy(proxy_port=0, http_port=0, proxy_host="127.0.0.1", http_host="127.0.0.1",
                      backend="127.0.0.1:%d" % redis_server, protocol="redis", seed=1)
    try:
        r = redis.Redis(host="127.0.0.1", port=pid.proxy_port, socket_timeout=5)
        r.set("k", "v")
        with pid.client().with_behavior("error", message="READONLY replica"):
            with pytest.raises(redis.exceptions.ResponseError):
                r.get("k")
        assert r.get("k") == b"v"
    finally:
        stop_proxy(pid)


def test_targets_and_schedules_through_the_client(redis_server):
    """match, every and a schedule as keyword arguments; the block's end
    restores what was there, targets included."""
    redis = pytest.importorskip("redis")
    pid = start_proxy(proxy_port=0, http_port=0, proxy_host="127.0.0.1", http_host="127.0.0.1",
                      backend="127.0.0.1:%d" % redis_server, protocol="redis")
    try:
        r = redis.Redis(host="127.0.0.1", port=pid.proxy_port, socket_timeout=5)
        c = pid.client()

        def outcomes(n, cmd="GET"):
            out = []
            for _ in range(n):
                try:
                    r.execute_command(cmd, "k", *(["v"] if cmd == "SET" else []))
                    out.append("ok")
                except redis.exceptions.ResponseError:
                    out.append("error")
            return out
        c.set_behavior("error", match={"command": "SET"})
        with c.with_behavior("error", every=2):
            assert outcomes(4) == ["ok", "error", "ok", "error"]
        assert c.get_behavior_options()["error"]["match"] == {"command": "SET"}
        assert outcomes(2) == ["ok", "ok"] and outcomes(1, "SET") == ["error"]
        with c.with_behavior(schedule=[{"for": "2 requests", "behavior": "dummy"},
                                       {"behavior": "error"}]):
            assert c.get_behavior() == "schedule"
            assert outcomes(4) == ["ok", "ok", "error", "error"]
        assert c.get_behavior() == "error" and outcomes(1) == ["ok"]
        with pytest.raises(ValueError):
            c.set_behavior()
    finally:
        stop_proxy(pid)


def test_events_and_assert_faults_name_the_faulted_requests(redis_server):
    redis = pytest.importorskip("redis")
    from vaurien import assert_faults
    pid = start_proxy(proxy_port=0, http_port=0, proxy_host="127.0.0.1", http_host="127.0.0.1",
                      backend="127.0.0.1:%d" % redis_server, protocol="redis")
    try:
        r = redis.Redis(host="127.0.0.1", port=pid.proxy_port, socket_timeout=5)
        r.set("a", "1")
        client = pid.client()
        with client.with_behavior("error"):
            for key in ("user:1", "user:2"):
                with pytest.raises(redis.exceptions.ResponseError):
                    r.get(key)
        r.get("a")
        got = assert_faults(client, behavior="error", count=2, at=[2, 3])
        assert [e["request"] for e in got] == ["GET user:1", "GET user:2"]
        assert_faults(pid, request="GET user:*", count=2)
        with pytest.raises(AssertionError, match="expected 1 faults of error, the journal "
                                                 "has 2"):
            assert_faults(client, behavior="error", count=1)
        with pytest.raises(AssertionError, match=r"at requests \[1\]"):
            assert_faults(client, behavior="error", at=[1])
        assert [e["kind"] for e in client.events()][:1] == ["open"]
        client.clear_events()
        assert client.events() == []
    finally:
        stop_proxy(pid)


FAIL_EVERY_2ND = """
return { options = { { name = "every", type = "int", default = 2 } },
  request = function(req, opts, conn)
    conn.n = (conn.n or 0) + 1
    if conn.n % opts.every == 0 then return vaurien.error{ message = "ERR lua" } end
  end }
"""


def test_a_lua_behavior_loaded_through_both_clients(redis_server):
    redis = pytest.importorskip("redis")
    pid = start_proxy(proxy_host="127.0.0.1", proxy_port=0, http_host="127.0.0.1", http_port=0,
                      backend="127.0.0.1:%d" % redis_server, protocol="redis")
    try:
        c = pid.client()
        info = c.load_behavior("second", FAIL_EVERY_2ND)
        assert info["options"][0]["name"] == "every"
        assert "second" in c.list_behaviors()
        with pytest.raises(ValueError, match="expected"):
            c.load_behavior("broken", "return {")
        with c.with_behavior("second", every=3):
            r = redis.Redis(port=pid.proxy_port, socket_timeout=5)
            results = []
            for _ in range(6):
                try:
                    results.append(r.ping())
                except redis.exceptions.ResponseError as e:
                    results.append(str(e))
            assert results == [True, True, "lua", True, True, "lua"]
    finally:
        stop_proxy(pid)
    handle = start_server()
    try:
        srv = handle.server()
        assert srv.load_behavior("second", FAIL_EVERY_2ND)["name"] == "second"
        with pytest.raises(APIError) as e:
            srv.load_behavior("delay", FAIL_EVERY_2ND)
        assert e.value.status == 409
        p = srv.create_proxy("r", upstream="127.0.0.1:%d" % redis_server, protocol="redis")
        with p.toxic("second", every=2):
            r = redis.Redis(host=p.host, port=p.port, socket_timeout=5)
            assert r.ping()
            with pytest.raises(redis.exceptions.ResponseError, match="lua"):
                r.ping()
    finally:
        assert stop_proxy(handle) == 0


def test_tls_proxies_expose_the_ca_to_trust(redis_server):
    import os
    import ssl
    redis = pytest.importorskip("redis")
    pid = start_proxy(proxy_host="127.0.0.1", proxy_port=0, http=False, protocol="redis",
                      backend="127.0.0.1:%d" % redis_server, tls=True)
    try:
        r = redis.Redis(host="127.0.0.1", port=pid.proxy_port, ssl=True,
                        ssl_ca_certs=pid.tls_ca, socket_timeout=5)
        assert r.ping()
        with pytest.raises(redis.exceptions.ConnectionError):
            redis.Redis(host="127.0.0.1", port=pid.proxy_port, ssl=True,
                        socket_timeout=5).ping()          # not trusted without it
    finally:
        stop_proxy(pid)
    assert not os.path.exists(pid.tls_ca)
    handle = start_server(tls=True)
    try:
        p = handle.server().create_proxy("r", upstream="127.0.0.1:%d" % redis_server,
                                         protocol="redis")
        ctx = ssl.create_default_context(cafile=handle.tls_ca)
        with ctx.wrap_socket(socket.create_connection((p.host, p.port), timeout=5),
                             server_hostname=p.host) as s:
            s.sendall(b"PING\r\n")
            assert s.recv(7) == b"+PONG\r\n"
    finally:
        assert stop_proxy(handle) == 0


def test_the_toxiproxy_side(backend):
    handle = start_server()
    try:
        srv = handle.server()
        assert srv.version() == "2.12.0"
        p = srv.create_proxy("echo", upstream="127.0.0.1:%d" % backend.port)
        assert p.port > 0 and srv.proxies()["echo"].listen == p.listen
        with p.toxic("latency", latency=150) as t:
            assert t.name == "latency_downstream"
            s = socket.create_connection((p.host, p.port), timeout=5)
            t0 = time.monotonic()
            s.sendall(b"x")
            assert s.recv(1) == b"x"
            assert time.monotonic() - t0 >= 0.15
            s.close()
            t.update(latency=10)
            assert p.toxics()[0].attributes["latency"] == 10
        assert p.toxics() == []
        with p.disabled():
            assert srv.get_proxy("echo").enabled is False
        assert p.refresh().enabled is True
        with pytest.raises(APIError) as e:
            srv.create_proxy("echo", upstream="127.0.0.1:1")
        assert e.value.status == 409 and e.value.message == "proxy already exists"
        p.add_toxic("noop")
        srv.reset()
        assert p.toxics() == []
        p.delete()
        assert srv.proxies() == {}
    finally:
        assert stop_proxy(handle) == 0


def test_fixtures_in_a_test_module_run_by_pytest(pytester, backend, redis_server):
    pytester.makepyfile(test_sample="""
        import socket
        import pytest
        import redis

        def test_proxy_fixture(vaurien_proxy):
            proxy = vaurien_proxy("127.0.0.1:%(echo)d")
            s = socket.create_connection(("127.0.0.1", proxy.proxy_port), timeout=5)
            s.sendall(b"ping")
            assert s.recv(4) == b"ping"

        @pytest.mark.vaurien("error", message="LOADING wait")
        def test_marker(vaurien_proxy):
            proxy = vaurien_proxy("127.0.0.1:%(redis)d", protocol="redis")
            r = redis.Redis(port=proxy.proxy_port, socket_timeout=5)
            with pytest.raises(redis.exceptions.BusyLoadingError):
                r.get("x")

        def test_server_fixture(vaurien_server):
            p = vaurien_server.create_proxy("r", upstream="127.0.0.1:%(redis)d", protocol="redis")
            with p.toxic("error"):
                with pytest.raises(redis.exceptions.ResponseError):
                    redis.Redis(port=p.port, socket_timeout=5).get("x")

        def test_failure_shows_the_log_and_the_faults(vaurien_proxy):
            proxy = vaurien_proxy("127.0.0.1:%(redis)d", protocol="redis", behavior="100:error")
            r = redis.Redis(port=proxy.proxy_port, socket_timeout=5)
            for key in ("first", "second"):
                with pytest.raises(redis.exceptions.ResponseError):
                    r.get(key)
            assert False, "deliberate"
        """ % {"echo": backend.port, "redis": redis_server})
    result = pytester.runpytest_subprocess("-p", "vaurien.pytest_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*vaurien faults (pid *): 2*",
                                 "*req 1 'GET first': error -> answered: -ERR*",
                                 "*req 2 'GET second': error*",
                                 "*vaurien log (pid *)*", "*listening on*"])


def test_the_package_installs_with_its_pytest_entry_point(tmp_path):
    import os
    import subprocess
    import sys
    import shutil
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pkg = tmp_path / "src"
    # a copy, so that the build leaves nothing in the source tree
    shutil.copytree(src, pkg, ignore=shutil.ignore_patterns("tests", "__pycache__", "*.egg-info",
                                                           "build"))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation",
                        "--no-deps", "--no-index", "--target", str(tmp_path / "site"), str(pkg)],
                       capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    entry = (tmp_path / "site" / "vaurien-2.0.0.dist-info" / "entry_points.txt").read_text()
    assert "[pytest11]" in entry and "vaurien = vaurien.pytest_plugin" in entry
