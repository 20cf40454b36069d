"""--protocol grpc: http2 whose error is gRPC's (grpc-status, grpc-message),
with Debian's python3-grpcio as server and client. The calls of one test go
over one channel (one connection): a fault hits exactly the drawn calls and
the others succeed beside them."""
import pytest

grpc = pytest.importorskip("grpc")
from concurrent import futures  # noqa: E402

SERVICE = "vaurien.test.Echo"


@pytest.fixture
def grpc_backend():
    """A gRPC server on a free port with /vaurien.test.Echo/Say and /Fail
    (raw bytes, no protobuf): Say echoes its request; yields the port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers = {
        "Say": grpc.unary_unary_rpc_method_handler(lambda req, ctx: b"echo:" + req),
        "Fail": grpc.unary_unary_rpc_method_handler(lambda req, ctx: b"fail:" + req),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(grace=None)


def channel(v):
    return grpc.insecure_channel("127.0.0.1:%d" % v.port,
                                 options=[("grpc.enable_http_proxy", 0)])


def call(ch, method, payload):
    return ch.unary_unary("/%s/%s" % (SERVICE, method))(payload, timeout=5)


def test_calls_pass_through(vaurien, grpc_backend):
    v = vaurien("--protocol", "grpc", backend_port=grpc_backend)
    with channel(v) as ch:
        for i in range(20):
            assert call(ch, "Say", b"x%d" % i) == b"echo:x%d" % i
        big = bytes(range(256)) * 4096  # 1 MiB: flow control both ways
        assert call(ch, "Say", big) == b"echo:" + big


def test_error_is_unavailable_on_the_matched_method_only(vaurien, grpc_backend):
    v = vaurien("--protocol", "grpc", "--behavior", "100:error",
                "--behavior-error-match", "path=/%s/Fail" % SERVICE,
                backend_port=grpc_backend)
    with channel(v) as ch:
        for i in range(5):
            assert call(ch, "Say", b"a") == b"echo:a"
            with pytest.raises(grpc.RpcError) as e:
                call(ch, "Fail", b"b")
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
            assert e.value.details() == "vaurien: injected error"
    assert v.log_text().count("connected to the backend") == 1


def test_error_code_and_message_are_the_behaviors(vaurien, grpc_backend):
    v = vaurien("--protocol", "grpc", "--behavior", "100:error",
                "--behavior-error-code", "8",
                "--behavior-error-message", "quota: 100% used",
                backend_port=grpc_backend)
    with channel(v) as ch:
        with pytest.raises(grpc.RpcError) as e:
            call(ch, "Say", b"a")
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert e.value.details() == "quota: 100% used"


def test_bodies_of_answered_calls_do_not_eat_the_connections_window(vaurien, grpc_backend):
    """64 KiB is the connection's window: 40 failed calls of 100 kB each
    are acknowledged though never sent on, so the calls after them pass."""
    v = vaurien("--protocol", "grpc", "--behavior", "100:error",
                "--behavior-error-match", "path=/%s/Fail" % SERVICE,
                backend_port=grpc_backend)
    payload = b"p" * 100_000
    with channel(v) as ch:
        for _ in range(40):
            with pytest.raises(grpc.RpcError) as e:
                call(ch, "Fail", payload)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        for _ in range(10):
            assert call(ch, "Say", payload) == b"echo:" + payload
