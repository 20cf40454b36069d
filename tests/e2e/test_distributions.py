"""Shaped delays (issue 16, "Distributions"): the latency toxic's and the
delay behavior's `distribution`, `jitter`, `correlation` and `sigma`, seen
from a client's round trips; and bad values refused where they come in."""
import socket
import statistics
import subprocess
import time

import pytest

from conftest import BIN, Api, free_port, recv_exactly


def proxy(api, backend_port, name="t"):
    body = {"name": name, "listen": "127.0.0.1:0",
            "upstream": "127.0.0.1:%d" % backend_port}
    st, p, _ = api.call("POST", "/proxies", body)
    assert st == 201, p
    return int(p["listen"].rsplit(":", 1)[1])


def round_trips(port, n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    times = []
    for i in range(n):
        msg = (b"%d" % i).ljust(10, b".")
        t0 = time.monotonic()
        s.sendall(msg)
        assert recv_exactly(s, 10, timeout=10) == msg
        times.append(time.monotonic() - t0)
    s.close()
    return times


def test_a_normal_latency_spreads_round_trips_more_than_no_jitter(api, backend):
    port = proxy(api, backend.port)
    st, t, _ = api.call("POST", "/proxies/t/toxics",
                        {"type": "latency", "attributes": {"latency": 50, "jitter": 0}})
    assert st == 200, t
    assert t["attributes"] == {"latency": 50, "jitter": 0}, "Toxiproxy's view as before"
    flat = round_trips(port, 50)
    st, t, _ = api.call("POST", "/proxies/t/toxics/latency_downstream",
                        {"attributes": {"jitter": 30, "distribution": "normal"}})
    assert st == 200, t
    assert t["attributes"] == {"latency": 50, "jitter": 30, "distribution": "normal"}
    normal = round_trips(port, 50)
    sd_flat, sd_normal = statistics.pstdev(flat), statistics.pstdev(normal)
    # a normal of 30 ms clamped at 0 has a standard deviation of about 27 ms
    assert sd_normal > 0.015 and sd_normal > sd_flat + 0.008, (sd_flat, sd_normal)
    assert 0.030 < statistics.mean(normal) < 0.090, normal
    assert min(flat) >= 0.050, flat


def test_a_latencys_extra_attributes_show_only_when_set(api, backend):
    proxy(api, backend.port)
    st, t, _ = api.call("POST", "/proxies/t/toxics",
                        {"type": "latency", "attributes": {
                            "latency": 100, "jitter": 20, "distribution": "lognormal",
                            "sigma": 0.25, "correlation": 0.5}})
    assert st == 200, t
    assert t["attributes"] == {"latency": 100, "jitter": 20, "distribution": "lognormal",
                               "correlation": 0.5, "sigma": 0.25}
    st, t, _ = api.call("POST", "/proxies/t/toxics/latency_downstream",
                        {"attributes": {"distribution": "uniform", "sigma": 0,
                                        "correlation": 0}})
    assert st == 200 and t["attributes"] == {"latency": 100, "jitter": 20}, t


@pytest.mark.parametrize("attrs,says", [
    ({"distribution": "gauss"}, "option 'distribution' takes uniform, normal, pareto, "
                                "paretonormal or lognormal, not 'gauss'"),
    ({"distribution": "Normal"}, "not 'Normal'"),
    ({"distribution": 3}, "not '3'"),
    ({"correlation": 90}, "option 'correlation': 90 is out of range (0 to 1)"),
    ({"correlation": -0.1}, "out of range (0 to 1)"),
    ({"sigma": "wide"}, "attribute 'sigma' must be a number"),
])
def test_a_bad_distribution_is_a_400_naming_it(api, backend, attrs, says):
    proxy(api, backend.port)
    st, b, _ = api.call("POST", "/proxies/t/toxics",
                        {"type": "latency", "attributes": dict(latency=10, **attrs)})
    assert st == 400 and says in b["error"], b
    assert api.call("GET", "/proxies/t/toxics")[1] == []
    st, t, _ = api.call("POST", "/proxies/t/toxics", {"type": "latency",
                                                      "attributes": {"latency": 10}})
    assert st == 200
    st, b, _ = api.call("POST", "/proxies/t/toxics/latency_downstream",
                        {"attributes": attrs})
    assert st == 400 and says in b["error"], b
    st, t, _ = api.call("GET", "/proxies/t/toxics/latency_downstream")
    assert t["attributes"] == {"latency": 10, "jitter": 0}, "a refused update changes nothing"


def test_the_delay_behavior_takes_a_distribution_on_the_command_line(vaurien, backend):
    v = vaurien("--behavior", "100:delay", "--behavior-delay-sleep", "0.1",
                "--behavior-delay-distribution", "normal",
                "--behavior-delay-jitter", "0.05", backend_port=backend.port)
    times = round_trips(v.port, 40)
    assert statistics.pstdev(times) > 0.025, times
    assert 0.07 < statistics.mean(times) < 0.16, times
    flat = vaurien("--behavior", "100:delay", "--behavior-delay-sleep", "0.1",
                   backend_port=backend.port)
    times = round_trips(flat.port, 10)
    assert min(times) >= 0.1 and statistics.median(times) < 0.12, times


@pytest.mark.parametrize("args,says", [
    (["--behavior-delay-distribution", "gauss"], "not 'gauss'"),
    (["--behavior-delay-correlation", "25"], "out of range (0 to 1)"),
    (["--behavior-delay-jitter", "-1"], "out of range"),
])
def test_a_bad_delay_distribution_flag_exits_2_with_one_line(args, says):
    p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=10)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("vaurien: error: ") and says in lines[0], lines


def test_the_delay_behavior_takes_a_distribution_through_the_api(backend):
    port, proxy_port = free_port(), free_port()
    a = Api(["--proxy", "127.0.0.1:%d" % proxy_port, "--backend", "127.0.0.1:%d" % backend.port,
             "--http", "--http-host", "127.0.0.1", "--http-port", str(port)], port)
    try:
        st, b, _ = a.call("PUT", "/behavior", {"name": "delay", "sleep": 0.05})
        assert st == 200, b
        assert a.call("GET", "/behavior")[1]["options"]["delay"] == {
            "sleep": 0.05, "before": True}, "the original's view as before"
        st, b, _ = a.call("PUT", "/behavior", {"name": "delay", "sleep": 0.05,
                                               "jitter": 0.02, "distribution": "pareto",
                                               "correlation": 0.25})
        assert st == 200, b
        assert a.call("GET", "/behavior")[1]["options"]["delay"] == {
            "sleep": 0.05, "before": True, "jitter": 0.02, "distribution": "pareto",
            "correlation": 0.25}
        times = round_trips(proxy_port, 20)
        # netem's pareto: at least sleep - 2/3 jitter, at most sleep + 4 jitter
        assert min(times) >= 0.05 - 0.014 and statistics.pstdev(times) > 0.003, times
        st, b, _ = a.call("PUT", "/behavior", {"name": "delay", "distribution": "gauss"})
        assert st == 400 and "not 'gauss'" in str(b), b
        assert a.call("GET", "/behavior")[1]["options"]["delay"]["distribution"] == "pareto"
    finally:
        rc, err = a.stop()
    assert rc == 0, err
