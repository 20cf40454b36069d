#!/usr/bin/python3
"""Writes the seed corpus of fuzz_h2relay (tests/fuzz/corpus/h2relay/):
conversations made with python3-h2, in the harness's chunk format (see
fuzz_h2relay.c). Run from the repository's root."""
import os

import h2.config
import h2.connection

OUT = "tests/fuzz/corpus/h2relay"


def chunks(direction, data):
    """data in chunks of at most 64 bytes (header bit 7: from the
    backend)."""
    out = b""
    for i in range(0, len(data), 64):
        part = data[i:i + 64]
        out += bytes([(0x80 if direction == "back" else 0) | (len(part) - 1)]) + part
    return out


def conversation(name, client_steps, server_steps, mix=None):
    """client_steps(c) and server_steps(s, seen events) drive an h2 client
    and server; the bytes each sends become chunks, client first."""
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    s = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    c.initiate_connection()
    s.initiate_connection()
    client_steps(c)
    up = c.data_to_send()
    ev = s.receive_data(up)
    server_steps(s, ev)
    down = s.data_to_send()
    body = chunks("client", up) + chunks("back", down)
    if mix is not None:
        body += mix
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(b"\x00" + body)


def get(c, sid=1, path="/"):
    c.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"),
                         (":authority", "x")], end_stream=True)


def reply(s, ev, body=b"hello"):
    for e in ev:
        if type(e).__name__ == "RequestReceived":
            s.send_headers(e.stream_id, [(":status", "200")])
            s.send_data(e.stream_id, body, end_stream=True)


os.makedirs(OUT, exist_ok=True)
conversation("get", get, reply)
conversation("three", lambda c: [get(c, i) for i in (1, 3, 5)], reply)
conversation("post", lambda c: (c.send_headers(1, [(":method", "POST"), (":path", "/up"),
                                                   (":scheme", "http"), (":authority", "x")]),
                                c.send_data(1, b"x" * 300, end_stream=True)),
             lambda s, ev: reply(s, ev, b"y" * 300))
conversation("trailers", lambda c: (c.send_headers(1, [(":method", "POST"), (":path", "/t"),
                                                       (":scheme", "http"), (":authority", "x")]),
                                    c.send_data(1, b"abc"),
                                    c.send_headers(1, [("x-t", "1")], end_stream=True)),
             lambda s, ev: [(s.send_headers(e.stream_id, [(":status", "200")]),
                             s.send_data(e.stream_id, b"ok"),
                             s.send_headers(e.stream_id, [("grpc-status", "0")], end_stream=True))
                            for e in ev if type(e).__name__ == "RequestReceived"])
conversation("reset", lambda c: (get(c), c.reset_stream(1)), lambda s, ev: None)
conversation("goaway", lambda c: [get(c, i) for i in (1, 3)],
             lambda s, ev: s.close_connection(last_stream_id=1))
conversation("ping_window", lambda c: (c.ping(b"12345678"), c.increment_flow_control_window(1000),
                                       get(c)), reply)
with open(os.path.join(OUT, "upgrade"), "wb") as f:
    f.write(b"\x02" + chunks("client", b"GET /u HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, "
                             b"HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"))
with open(os.path.join(OUT, "http1"), "wb") as f:
    f.write(b"\x00" + chunks("client", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
with open(os.path.join(OUT, "backend_http1"), "wb") as f:
    f.write(b"\x01" + chunks("back", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"))
