"""The harness itself: a port free_port() hands out must stay free until
the process it is meant for binds it."""
import socket

from conftest import free_port


def ephemeral_range():
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = map(int, f.read().split())
    return low, high


def test_free_port_never_hands_out_a_port_a_client_socket_could_take():
    low, high = ephemeral_range()
    ports = [free_port() for _ in range(200)] + [free_port(socket.AF_INET6, "::1")]
    assert len(set(ports)) == len(ports), "a port was handed out twice"
    assert all(1024 <= p < low or p > high for p in ports), [
        p for p in ports if low <= p <= high]


def test_free_port_skips_a_port_in_use():
    taken = []
    try:
        for _ in range(3):
            s = socket.socket()
            s.bind(("127.0.0.1", free_port()))
            s.listen(1)
            taken.append(s)
        held = {s.getsockname()[1] for s in taken}
        assert not held & {free_port() for _ in range(50)}
    finally:
        for s in taken:
            s.close()
