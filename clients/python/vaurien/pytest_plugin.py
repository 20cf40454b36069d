"""pytest fixtures for Vaurien (registered through the pytest11 entry point,
or with `-p vaurien.pytest_plugin`).

    def test_cache_survives_errors(vaurien_proxy):
        proxy = vaurien_proxy("127.0.0.1:6379", protocol="redis")
        r = redis.Redis(port=proxy.proxy_port)
        with proxy.client().with_behavior("error"):
            ...

    @pytest.mark.vaurien("delay", sleep=0.2)
    def test_slow_backend(vaurien_proxy): ...   # every proxy of the test starts so

    def test_toxiproxy_style(vaurien_server):
        p = vaurien_server.create_proxy("db", upstream="127.0.0.1:5432")
        with p.toxic("latency", latency=100): ...

When a test fails, the report shows the faults each of its proxies
injected (the journal) and the last lines it logged.
"""
import pytest

from .journal import describe

from ._process import start_proxy, start_server, stop_proxy

_STARTED = "_vaurien_started"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "vaurien(behavior, **options): the behavior (a name or a mix such "
        "as '5:error,10:delay') and its options for every proxy vaurien_proxy starts "
        "in this test")


def _track(request, handle):
    getattr(request.node, _STARTED).append(handle)
    return handle


@pytest.fixture
def vaurien_proxy(request):
    """A factory: vaurien_proxy(backend, protocol="tcp", behavior=None,
    seed=None, **start_proxy_kwargs) starts a proxy (with its API) on free
    ports in front of backend ("host:port") and returns its handle
    (.proxy_port, .address, .client(), .log()). All are stopped after the
    test."""
    setattr(request.node, _STARTED, getattr(request.node, _STARTED, []))
    marker = request.node.get_closest_marker("vaurien")
    started = []

    def start(backend, protocol="tcp", behavior=None, **kwargs):
        kwargs.setdefault("proxy_host", "127.0.0.1")
        kwargs.setdefault("proxy_port", 0)
        kwargs.setdefault("http_host", "127.0.0.1")
        kwargs.setdefault("http_port", 0)
        handle = start_proxy(backend=backend, protocol=protocol, behavior=behavior,
                             **kwargs)
        started.append(handle)
        _track(request, handle)
        if marker is not None and behavior is None:
            options = dict(marker.kwargs)
            name = marker.args[0] if marker.args else options.pop("behavior")
            handle.client().set_behavior(name, **options)
        return handle

    yield start
    for handle in started:
        stop_proxy(handle)


@pytest.fixture
def vaurien_server(request):
    """A `vaurien server` on a free port, as a Server client (Toxiproxy's
    API); its proxies go away with it after the test."""
    setattr(request.node, _STARTED, getattr(request.node, _STARTED, []))
    handle = _track(request, start_server())
    server = handle.server()
    server.process = handle
    yield server
    stop_proxy(handle)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for handle in getattr(item, _STARTED, []):
            if handle.running():
                try:
                    faults = handle.events(kind="fault")
                except Exception as e:  # the report must not fail the run
                    faults = None
                    report.sections.append(("vaurien faults (pid %d)" % handle.pid,
                                            "cannot read the journal: %s" % e))
                if faults is not None:
                    report.sections.append((
                        "vaurien faults (pid %d): %d" % (handle.pid, len(faults)),
                        describe(faults[-50:]) or "(none)"))
            log = handle.log(lines=40) if handle.running() else getattr(handle, "final_log", "")
            if log:
                report.sections.append(("vaurien log (pid %d)" % handle.pid, log))
