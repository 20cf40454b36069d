"""Generic TCP proxying and the seed behaviors, through the real binary."""
import hashlib
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import BIN, Backend, free_port, recv_exactly, recv_until_eof, wait_until


def echo_once(v, payload, timeout=5):
    s = v.connect(timeout)
    try:
        s.sendall(payload)
        return recv_exactly(s, len(payload), timeout)
    finally:
        s.close()


def test_dummy_relays_10_mb_byte_identical_both_ways(backend, vaurien):
    v = vaurien("--behavior", "100:dummy", backend_port=backend.port)
    data = os.urandom(10 * 1024 * 1024)
    s = v.connect(timeout=30)
    got = bytearray()

    def reader():
        while len(got) < len(data):
            d = s.recv(1 << 20)
            if not d:
                break
            got.extend(d)

    t = threading.Thread(target=reader)
    t.start()
    s.sendall(data)
    t.join(60)
    s.close()
    assert len(got) == len(data)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert hashlib.sha256(backend.total_received()).digest() == hashlib.sha256(data).digest()


def test_half_close_still_delivers_the_reply(backend, vaurien):
    v = vaurien(backend_port=backend.port)
    s = v.connect()
    s.sendall(b"ping after which I shut my write side")
    s.shutdown(socket.SHUT_WR)
    assert recv_until_eof(s) == b"ping after which I shut my write side"
    s.close()


def test_backend_half_close_reaches_the_client():
    src = Backend("source", size=300000)
    try:
        v_proc = None
        from conftest import Vaurien
        v_proc = Vaurien(backend_port=src.port)
        s = v_proc.connect()
        got = recv_until_eof(s)  # the backend shut its write side
        assert len(got) == 300000
        s.sendall(b"still open the other way")
        s.shutdown(socket.SHUT_WR)
        assert wait_until(lambda: src.total_received() == b"still open the other way")
        s.close()
        assert v_proc.stop() == 0
    finally:
        src.close()


def test_concurrent_connections_keep_their_own_bytes(backend, vaurien):
    v = vaurien(backend_port=backend.port)
    errors = []

    def client(i):
        try:
            payload = (b"%04d-" % i) * 5000
            for _ in range(3):
                if echo_once(v, payload, timeout=20) != payload:
                    errors.append(i)
        except OSError as e:
            errors.append((i, e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


def test_blackout_closes_the_client_with_no_data(backend, vaurien):
    v = vaurien("--behavior", "100:blackout", backend_port=backend.port)
    s = v.connect()
    s.sendall(b"hello")
    assert recv_until_eof(s, timeout=3) == b""
    s.close()
    time.sleep(0.1)
    assert backend.total_received() == b""


def test_delay_of_200_ms_lands_between_200_and_400_ms(backend, vaurien):
    v = vaurien("--behavior", "100:delay", "--behavior-delay-sleep", "0.2",
                backend_port=backend.port)
    s = v.connect()
    for _ in range(3):
        t0 = time.monotonic()
        s.sendall(b"slow")
        assert recv_exactly(s, 4) == b"slow"
        elapsed = time.monotonic() - t0
        assert 0.2 <= elapsed < 0.4, elapsed
    s.close()


def test_delay_after_holds_the_reply_not_the_request(backend, vaurien):
    v = vaurien("--behavior", "100:delay", "--behavior-delay-sleep", "0.3",
                "--behavior-delay-before", "false", backend_port=backend.port)
    s = v.connect()
    t0 = time.monotonic()
    s.sendall(b"late reply")
    assert recv_exactly(s, 10) == b"late reply"
    elapsed = time.monotonic() - t0
    s.close()
    assert 0.3 <= elapsed < 0.5, elapsed
    # the backend had the request at once
    assert backend.first_byte_at[0] - t0 < 0.15


def test_hang_never_answers_and_keeps_the_connection_open(backend, vaurien):
    v = vaurien("--behavior", "100:hang", backend_port=backend.port)
    s = v.connect()
    s.sendall(b"anyone?")
    s.settimeout(1.0)
    with pytest.raises(socket.timeout):
        s.recv(100)
    # still open: more data is accepted and swallowed, no EOF, no reset
    s.sendall(b"still there?")
    with pytest.raises(socket.timeout):
        s.recv(100)
    s.close()
    assert backend.total_received() == b""


def test_hang_ends_at_the_idle_timeout(backend, vaurien):
    v = vaurien("--behavior", "100:hang", "--timeout", "1", backend_port=backend.port)
    s = v.connect()
    s.sendall(b"anyone?")
    t0 = time.monotonic()
    assert recv_until_eof(s, timeout=5) == b""
    assert 0.9 <= time.monotonic() - t0 < 2.5
    s.close()


def test_error_answers_garbage_and_the_backend_never_sees_the_request(backend, vaurien):
    v = vaurien("--behavior", "100:error", backend_port=backend.port)
    s = v.connect()
    s.sendall(b"GET me something")
    got = recv_exactly(s, 1000)
    assert len(got) == 1000
    assert got[:16] != b"GET me something"
    s.close()
    time.sleep(0.1)
    assert backend.total_received() == b""


def test_error_with_inject_corrupts_the_real_reply(backend, vaurien):
    v = vaurien("--behavior", "100:error", "--behavior-error-inject", "true",
                backend_port=backend.port)
    payload = b"0123456789" * 10
    s = v.connect()
    s.sendall(payload)
    got = recv_exactly(s, len(payload) + 100)
    s.close()
    assert len(got) == len(payload) + 100
    assert got != payload
    assert backend.total_received() == payload
    # the reply is there around the 100 injected bytes
    assert any(got[:i] + got[i + 100:] == payload for i in range(len(payload) + 1))


def test_error_warmup_lets_the_first_requests_through(backend, vaurien):
    v = vaurien("--behavior", "100:error", "--behavior-error-warmup", "2",
                backend_port=backend.port)
    assert echo_once(v, b"one") == b"one"
    assert echo_once(v, b"two") == b"two"
    s = v.connect()
    s.sendall(b"three")
    assert len(recv_exactly(s, 1000)) == 1000
    s.close()


def test_transient_errors_then_recovers(backend, vaurien):
    v = vaurien("--behavior", "100:transient", "--behavior-transient-agitate", "2",
                backend_port=backend.port)
    outcomes = []
    for i in range(4):
        s = v.connect()
        s.sendall(b"req%d" % i)
        got = recv_exactly(s, 4)
        outcomes.append(got == b"req%d" % i)
        s.close()
    assert outcomes == [False, False, True, True]


def test_abort_forwards_the_request_then_closes_without_a_reply(backend, vaurien):
    v = vaurien("--behavior", "100:abort", backend_port=backend.port)
    s = v.connect()
    s.sendall(b"doomed")
    assert recv_until_eof(s, timeout=3) == b""
    s.close()
    assert wait_until(lambda: backend.total_received() == b"doomed", timeout=2)


def outcome_sequence(seed, backend_port, n=200):
    from conftest import Vaurien
    v = Vaurien("--behavior", "50:error", "--seed", str(seed), backend_port=backend_port)
    seq = []
    try:
        for i in range(n):
            req = b"request-%04d\n" % i
            s = v.connect()
            s.sendall(req)
            got = recv_exactly(s, len(req))
            if got == req:
                seq.append("ok")
            else:
                rest = recv_exactly(s, 1000 - len(got))
                assert len(got) + len(rest) == 1000
                seq.append("error")
            s.close()
    finally:
        assert v.stop() == 0
    return seq


def test_a_seeded_mix_gives_the_same_faults_twice(backend):
    first = outcome_sequence(1234, backend.port)
    second = outcome_sequence(1234, backend.port)
    assert first == second
    errors = first.count("error")
    assert 70 <= errors <= 130, errors
    other = outcome_sequence(4321, backend.port)
    assert other != first


def test_the_seed_is_logged_when_none_is_given(backend, vaurien):
    v = vaurien(backend_port=backend.port)
    assert "replay with --seed" in v.log_text()


def test_backend_refusing_closes_the_client_promptly(vaurien):
    dead = free_port()
    v = vaurien("--timeout", "5", backend_port=dead)
    s = v.connect()
    t0 = time.monotonic()
    assert recv_until_eof(s, timeout=6) == b""
    assert time.monotonic() - t0 < 1.0
    s.close()
    assert wait_until(lambda: "cannot connect" in v.log_text(), timeout=2)


def test_backend_not_answering_closes_the_client_at_the_timeout(vaurien):
    # A listener that never accepts: once its backlog is full, further
    # connection attempts get no answer.
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    fillers = []
    for _ in range(8):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(lst.getsockname())
        fillers.append(f)
    try:
        v = vaurien("--timeout", "1", backend_port=lst.getsockname()[1])
        s = v.connect()
        t0 = time.monotonic()
        assert recv_until_eof(s, timeout=5) == b""
        elapsed = time.monotonic() - t0
        assert elapsed < 2.5, elapsed
        s.close()
    finally:
        for f in fillers:
            f.close()
        lst.close()


def test_idle_connections_close_after_the_timeout_unless_stay_connected(backend, vaurien):
    v = vaurien("--timeout", "1", backend_port=backend.port)
    s = v.connect()
    assert echo_once(v, b"x") == b"x"
    t0 = time.monotonic()
    assert recv_until_eof(s, timeout=5) == b""
    assert 0.9 <= time.monotonic() - t0 < 2.5
    s.close()

    v2 = vaurien("--timeout", "1", "--stay-connected", backend_port=backend.port)
    s = v2.connect()
    s.settimeout(2.0)
    with pytest.raises(socket.timeout):
        s.recv(10)
    s.sendall(b"alive")
    assert recv_exactly(s, 5) == b"alive"
    s.close()


def test_a_config_file_applies_behavior_options(backend, vaurien, tmp_path):
    ini = tmp_path / "vaurien.ini"
    ini.write_text("[vaurien]\nbehavior = 100:delay\n"
                   "[behavior:delay]\nsleep = 0.25\n")
    v = vaurien("--config", str(ini), backend_port=backend.port)
    t0 = time.monotonic()
    assert echo_once(v, b"configured") == b"configured"
    assert 0.25 <= time.monotonic() - t0 < 0.45


def test_ipv6_listen_and_relay(backend, vaurien):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        port = free_port(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    v = vaurien(backend_port=backend.port, port=port, host="::1")
    assert echo_once(v, b"over v6") == b"over v6"


def test_a_slow_reader_does_not_grow_memory(vaurien):
    src = Backend("source", size=64 * 1024 * 1024)
    try:
        v = vaurien(backend_port=src.port)
        s = v.connect()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.recv(1)
        time.sleep(1.0)  # the backend pushes as fast as it can; we read nothing

        def rss_kb():
            with open("/proc/%d/status" % v.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        rss = rss_kb()
        assert rss < 40 * 1024, "RSS %d kB with a stalled reader" % rss
        # and nothing is lost once the reader reads
        got = 1 + len(recv_until_eof(s, timeout=30))
        assert got == 64 * 1024 * 1024
        s.close()
    finally:
        src.close()


def test_sigterm_exits_0_with_connections_open(backend, vaurien):
    v = vaurien(backend_port=backend.port)
    conns = [v.connect() for _ in range(5)]
    for c in conns:
        c.sendall(b"hi")
    assert wait_until(lambda: len(backend.received) == 5)
    assert v.stop() == 0
    for c in conns:
        c.close()


@pytest.mark.parametrize("args,says", [
    (["--nope"], "--nope"),
    (["--proxy", "nohost"], "Expected HOST:PORT"),
    (["--backend", "[::1"], "Expected HOST:PORT"),
    (["--behavior", "abc"], "percentage:name"),
    (["--behavior", "150:delay"], "100 or less"),
    (["--behavior", "5:unknown"], "'unknown' is an unknown behavior"),
    (["--protocol", "gopher"], "gopher"),
    (["--behavior-delay-sleep", "soon"], "--behavior-delay-sleep"),
    (["--timeout"], "--timeout expects a value"),
])
def test_bad_flags_exit_2_with_one_line_naming_the_problem(args, says):
    p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=10)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert says in lines[0]
    assert lines[0].startswith("vaurien: error: ")


def test_help_version_and_lists_exit_0():
    p = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and "--behavior-delay-sleep" in p.stdout
    p = subprocess.run([BIN, "--version"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and p.stdout.startswith("vaurien ")
    p = subprocess.run([BIN, "--list-behaviors"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0
    for name in ["abort", "blackout", "delay", "dummy", "error", "hang", "transient"]:
        assert name + ":" in p.stdout
    assert "--behavior-transient-agitate" in p.stdout
    p = subprocess.run([BIN, "--list-protocols"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and "tcp:" in p.stdout and "redis:" in p.stdout
    assert "postgres:" in p.stdout


def test_a_port_already_in_use_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        p = subprocess.run([BIN, "--proxy", "127.0.0.1:%d" % port], capture_output=True,
                           text=True, timeout=10)
    assert p.returncode != 0
    assert "bind: address already in use" in p.stderr


def test_delays_never_reorder_a_stream(backend, vaurien):
    v = vaurien("--behavior", "30:delay", "--behavior-delay-sleep", "0.02",
                "--seed", "5", "--protocol-tcp-buffer", "100", backend_port=backend.port)
    s = v.connect(timeout=20)
    data = b"".join(b"%06d|" % i for i in range(20000))
    got = bytearray()

    def reader():
        while len(got) < len(data):
            d = s.recv(65536)
            if not d:
                break
            got.extend(d)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(0, len(data), 700):
        s.sendall(data[i:i + 700])
    t.join(60)
    s.close()
    assert bytes(got) == data
    assert "delay (request hold" in v.log_text()
