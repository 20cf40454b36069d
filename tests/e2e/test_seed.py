"""--seed replays per connection (issue 12): each connection draws from
generators of its own, derived from the seed, the proxy's name and the
connection's ordinal on that proxy, so clients that open their connections
in a fixed order get the same faults on every run however their requests
interleave."""
import random
import socket
import time

from conftest import recv_exactly


def redis_get(s):
    s.sendall(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
    first = recv_exactly(s, 1)
    line = first
    while not line.endswith(b"\r\n"):
        line += recv_exactly(s, 1)
    if first == b"$" and line != b"$-1\r\n":
        recv_exactly(s, int(line[1:-2]) + 2)
    return "error" if first == b"-" else "ok"


def tcp_echo(s):
    """One byte out; the echo back, or garbage (an error's 1000 bytes)."""
    s.sendall(b"x")
    got = s.recv(1)
    if got == b"x":
        return "ok"
    s.settimeout(0.3)
    n = len(got)
    try:
        while n < 1000:
            d = s.recv(1000 - n)
            if not d:
                break
            n += len(d)
    except socket.timeout:
        pass
    s.settimeout(5)
    return "error%d" % n


def run(vaurien, backend_port, protocol, ask, order_seed, clients=8, per_client=60):
    v = vaurien("--protocol", protocol, "--behavior", "40:error,60:dummy", "--seed", "7",
                backend_port=backend_port)
    socks = []
    for _ in range(clients):  # opened in order: ordinals 1..8
        socks.append(v.connect())
        time.sleep(0.01)
    for s in socks:
        s.settimeout(5)
    seqs = [[] for _ in socks]
    turns = [i for i in range(clients) for _ in range(per_client)]
    random.Random(order_seed).shuffle(turns)  # a different interleaving each run
    for i in turns:
        seqs[i].append(ask(socks[i]))
    for s in socks:
        s.close()
    v.stop()
    return seqs


def test_eight_interleaved_redis_clients_replay_their_faults(vaurien, redis_server):
    runs = [run(vaurien, redis_server, "redis", redis_get, order_seed=n) for n in (1, 2, 3)]
    assert runs[0] == runs[1] == runs[2]
    flat = [x for seq in runs[0] for x in seq]
    assert 0.25 < flat.count("error") / len(flat) < 0.55  # the mix acted
    assert len({tuple(seq) for seq in runs[0]}) == 8  # each client its own draws


def test_tcp_errors_replay_and_their_bytes_shift_nothing(vaurien, backend):
    runs = [run(vaurien, backend.port, "tcp", tcp_echo, order_seed=n, per_client=30)
            for n in (4, 5, 6)]
    assert runs[0] == runs[1] == runs[2]
    assert any(x.startswith("error") for seq in runs[0] for x in seq)
