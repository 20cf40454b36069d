"""The dashboard (issue 15): GET /ui, one page built into the binary that
uses the API like any client, driven in Debian's headless Chromium by
playwright-core (tests/ui/dashboard.mjs); and the browser guard that lets
only that page's own requests through."""
import os
import shutil
import subprocess

import pytest

from conftest import Api, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UI = os.path.join(ROOT, "tests", "ui")
ARTIFACTS = os.path.join(ROOT, "build", "test-artifacts")


def need_browser():
    missing = [what for what, ok in (
        ("chromium", os.path.exists("/usr/bin/chromium")),
        ("node", shutil.which("node") is not None),
        ("playwright-core (npm ci in tests/ui)",
         os.path.isdir(os.path.join(UI, "node_modules", "playwright-core"))))
        if not ok]
    if missing:
        if os.environ.get("CI"):
            pytest.fail("the browser test needs " + ", ".join(missing))
        pytest.skip("needs " + ", ".join(missing))


@pytest.fixture
def server():
    port = free_port()
    a = Api(["server", "-host", "127.0.0.1", "-port", str(port)], port)
    yield a
    rc, err = a.stop()
    assert rc == 0, err


def test_the_page_is_self_contained(server):
    st, text, r = server.call("GET", "/ui", headers={"User-Agent": "Mozilla/5.0"})
    headers = r.headers
    assert st == 200 and "<title>Vaurien</title>" in text
    assert headers["Content-Type"].startswith("text/html")
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "http://" not in text and "https://" not in text        # no CDN


def test_browsers_reach_the_api_only_from_the_page(server):
    base = "http://127.0.0.1:%d" % server.port
    moz = {"User-Agent": "Mozilla/5.0"}
    assert server.call("GET", "/proxies", headers=moz)[0] == 403
    assert server.call("GET", "/proxies", headers=dict(moz, **{"Sec-Fetch-Site": "cross-site"}))[0] == 403
    same = dict(moz, **{"Sec-Fetch-Site": "same-origin"})
    assert server.call("GET", "/proxies", headers=same)[0] == 200
    body = {"name": "x", "upstream": "127.0.0.1:1", "listen": "127.0.0.1:0"}
    # a change needs the page's Origin, and it must be the API's own
    assert server.call("POST", "/proxies", body, headers=same)[0] == 403
    assert server.call("POST", "/proxies", body, headers=dict(
        same, Origin="http://evil.example:%d" % server.port))[0] == 403
    st, b, _ = server.call("POST", "/proxies", body, headers=dict(same, Origin=base))
    assert st == 201, b


def test_the_dashboard_in_a_real_browser(server, redis_server):
    need_browser()
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "dashboard.png")
    if os.path.exists(shot):
        os.remove(shot)
    p = subprocess.run(["node", os.path.join(UI, "dashboard.mjs"),
                        "http://127.0.0.1:%d" % server.port, str(redis_server), shot],
                       capture_output=True, text=True, timeout=150, cwd=UI)
    assert p.returncode == 0, p.stdout + p.stderr
    assert '"type":"latency"' in p.stdout and os.path.getsize(shot) > 10000
    # what the page did is what the API holds
    st, proxies, _ = server.call("GET", "/proxies")
    assert proxies["cache"]["protocol"] == "redis" and proxies["cache"]["toxics"] == []
    st, events, _ = server.call("GET", "/events?proxy=cache&kind=toxic")
    assert events["events"] and all(e["behavior"] == "latency" and e["held_ms"] >= 39
                                    for e in events["events"])
