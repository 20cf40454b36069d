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
    (raw bytes, no protobuf): Say echoes its request; Count streams back
    n replies, Chat echoes each message of a stream; yields the port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers = {
        "Say": grpc.unary_unary_rpc_method_handler(lambda req, ctx: b"echo:" + req),
        "Fail": grpc.unary_unary_rpc_method_handler(lambda req, ctx: b"fail:" + req),
        # streaming: Count sends back n replies; Chat echoes each message
        "Count": grpc.unary_stream_rpc_method_handler(
            lambda req, ctx: (b"%d" % i for i in range(int(req)))),
        "Chat": grpc.stream_stream_rpc_method_handler(
            lambda reqs, ctx: (b"re:" + r for r in reqs)),
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


def test_streaming_calls_pass_through_whole_and_in_order(vaurien, grpc_backend):
    v = vaurien("--protocol", "grpc", backend_port=grpc_backend)
    with channel(v) as ch:
        count = ch.unary_stream("/%s/Count" % SERVICE)
        assert list(count(b"500", timeout=10)) == [b"%d" % i for i in range(500)]
        chat = ch.stream_stream("/%s/Chat" % SERVICE)
        msgs = [b"m%d" % i + b"x" * (i * 100) for i in range(200)]
        assert list(chat(iter(msgs), timeout=10)) == [b"re:" + m for m in msgs]


def test_a_streaming_call_that_draws_error_fails_and_the_next_passes(vaurien, grpc_backend):
    v = vaurien("--protocol", "grpc", "--behavior", "100:error",
                "--behavior-error-match", "path=/%s/Chat" % SERVICE,
                backend_port=grpc_backend)
    with channel(v) as ch:
        chat = ch.stream_stream("/%s/Chat" % SERVICE)
        with pytest.raises(grpc.RpcError) as e:
            list(chat(iter([b"a"] * 50), timeout=5))
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        count = ch.unary_stream("/%s/Count" % SERVICE)
        assert list(count(b"3", timeout=5)) == [b"0", b"1", b"2"]


def test_a_seeded_mix_fails_exactly_the_calls_the_journal_lists(vaurien, grpc_backend, tmp_path):
    """30:error over 60 calls of one channel: the calls that fail are
    exactly the ones the journal lists (by their order on the connection),
    and the same seed fails the same calls again."""
    import json
    from conftest import wait_until

    def run(journal):
        v = vaurien("--protocol", "grpc", "--behavior", "30:error", "--seed", "11",
                    "--journal", str(journal), backend_port=grpc_backend)
        failed = []
        with channel(v) as ch:
            for i in range(60):
                try:
                    assert call(ch, "Say", b"%d" % i) == b"echo:%d" % i
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.UNAVAILABLE
                    failed.append(i)

        def faults():
            if not journal.exists():
                return []
            return [e for e in map(json.loads, journal.read_text().splitlines())
                    if e["kind"] == "fault"]
        assert wait_until(lambda: len(faults()) == len(failed), timeout=5), \
            (failed, faults())
        assert all(f["behavior"] == "error" for f in faults())
        # one stream per call, odd ids in call order: the journal's
        # request index is the call's
        assert [f["index"] - 1 for f in faults()] == failed, (failed, faults())
        return failed

    first = run(tmp_path / "a.jsonl")
    assert 5 < len(first) < 35, first
    assert run(tmp_path / "b.jsonl") == first
