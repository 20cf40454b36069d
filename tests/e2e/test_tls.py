"""TLS (issue 14): the proxy terminates TLS toward clients and originates it
toward the backend, with the protocol framed in between, so faults are the
protocol's own behind TLS. Real peers: aiosmtpd over implicit TLS,
`openssl s_server`, redis-server behind a terminating proxy, curl, Python's
smtplib and ssl."""
import contextlib
import os
import re
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import BIN, free_port, port_open, recv_exactly, wait_until


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 / localhost (a backend's),
    and its key."""
    d = tmp_path_factory.mktemp("certs")
    cert, key = str(d / "backend.pem"), str(d / "backend.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=30)
    return {"cert": cert, "key": key, "dir": str(d)}


def aiosmtpd_with_tls(certs, **tls):
    """An aiosmtpd keeping (inside TLS?, message) of what it receives;
    tls: ssl_context= (implicit TLS) or tls_context= (STARTTLS). Returns
    (handler with .port and .messages, controller)."""
    controller_mod = pytest.importorskip("aiosmtpd.controller")

    class Keep:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((session.ssl is not None, envelope.original_content))
            return "250 2.0.0 Message accepted"

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs["cert"], certs["key"])
    handler = Keep()
    handler.port = free_port()
    c = controller_mod.Controller(handler, hostname="127.0.0.1", port=handler.port,
                                  **{k: ctx for k in tls},
                                  **({"require_starttls": False} if "tls_context" in tls else {}))
    c.start()
    return handler, c


@pytest.fixture
def smtps_server(certs):
    """aiosmtpd speaking implicit TLS (SMTPS, as on port 465)."""
    handler, c = aiosmtpd_with_tls(certs, ssl_context=True)
    yield handler
    c.stop()


@contextlib.contextmanager
def s_server(certs, *extra):
    """`openssl s_server -www` on a free port with the backend certificate;
    yields the port."""
    port = free_port()
    srv = subprocess.Popen(["openssl", "s_server", "-accept", str(port), "-cert", certs["cert"],
                            "-key", certs["key"], *extra, "-www", "-quiet"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: port_open(port), timeout=10)
        yield port
    finally:
        srv.terminate()
        srv.wait(10)


def client_ctx(ca):
    return ssl.create_default_context(cafile=ca)


class RecordingSMTP(smtplib.SMTP_SSL):
    """SMTP_SSL that keeps the code of every reply it reads."""

    def getreply(self):
        code, msg = super().getreply()
        self.codes.append(code)
        return code, msg


def outcomes(port, ca, n, timeout=20):
    """Sends n messages through SMTP_SSL on one connection; returns, per
    message, "ok" or the SMTP code that refused it, and every reply code
    the client read."""
    out = []
    RecordingSMTP.codes = []
    s = RecordingSMTP("127.0.0.1", port, context=client_ctx(ca), timeout=timeout)
    try:
        for i in range(n):
            try:
                s.sendmail("a@example.test", ["b@example.test"],
                           "Subject: %d\r\n\r\nmessage %d\r\n" % (i, i))
                out.append("ok")
            except smtplib.SMTPResponseException as e:
                out.append(e.smtp_code)
                s.rset()
            except smtplib.SMTPRecipientsRefused as e:
                out.append(list(e.recipients.values())[0][0])
                s.rset()
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass
    return out, list(RecordingSMTP.codes)


def test_the_seed_example_smtp_over_implicit_tls(tmp_path, vaurien, certs, smtps_server):
    """The original's headline: --protocol smtp --behavior 5:error,10:delay
    in front of an SMTPS server, now with the faults inside TLS."""
    def run():
        ca = str(tmp_path / ("ca-%d.pem" % time.monotonic_ns()))
        v = vaurien("--protocol", "smtp", "--proxy-tls", "--tls-ca-out", ca,
                    "--backend-tls", "--backend-ca", certs["cert"],
                    "--behavior", "5:error,10:delay", "--behavior-delay-sleep", "0.02",
                    "--seed", "7", backend_port=smtps_server.port)
        t = time.monotonic()
        got, codes = outcomes(v.port, ca, 200)
        took = time.monotonic() - t
        return got, codes, took, v.log_text()

    got, codes, took, log = run()
    errors = len(re.findall(r"request: error", log))
    delays = len(re.findall(r"request: delay", log))
    refused = [x for x in got if x != "ok"]
    # every error the seeded draw made reached the client as a real 451
    # (smtplib reads the 451 of an RSET without raising: counted too)
    assert errors > 0 and codes.count(451) == errors, (errors, codes)
    assert set(refused) == {451}, got
    assert delays > 50 and took >= delays * 0.02
    assert 150 <= got.count("ok") < 200
    # a refused envelope never reached the server; an error on the message
    # itself comes after the server took it (README: smtp)
    assert got.count("ok") <= len(smtps_server.messages) <= got.count("ok") + len(refused)
    again, again_codes, _, _ = run()
    assert again == got and again_codes == codes         # --seed replays them


def test_https_through_the_http_framer(tmp_path, vaurien, certs):
    ca = str(tmp_path / "ca.pem")
    with s_server(certs) as port:
        v = vaurien("--protocol", "http", "--proxy-tls", "--tls-ca-out", ca,
                    "--backend-tls", "--backend-ca", certs["cert"],
                    "--behavior", "50:error", "--behavior-error-status", "503",
                    "--seed", "3", backend_port=port)
        codes = []
        for _ in range(12):
            p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                "--cacert", ca, "https://127.0.0.1:%d/" % v.port],
                               capture_output=True, text=True, timeout=20)
            codes.append(p.stdout)
        assert set(codes) == {"200", "503"}, codes
        # curl checked the certificate made for 127.0.0.1 against the CA written
        p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                            "https://127.0.0.1:%d/" % v.port], capture_output=True,
                           text=True, timeout=20)
        assert p.returncode == 60                   # untrusted without --cacert


def test_redis_py_over_tls_through_a_terminating_proxy(tmp_path, vaurien, redis_server):
    import redis
    ca = str(tmp_path / "ca.pem")
    v = vaurien("--protocol", "redis", "--proxy-tls", "--tls-ca-out", ca,
                "--behavior", "30:error", "--seed", "5", backend_port=redis_server)
    r = redis.Redis(host="127.0.0.1", port=v.port, ssl=True, ssl_ca_certs=ca,
                    socket_timeout=5)
    seen = []
    for i in range(40):
        try:
            r.set("k%d" % i, "v")
            seen.append("ok")
        except redis.exceptions.ResponseError as e:
            assert "injected" in str(e)
            seen.append("err")
    assert "ok" in seen and "err" in seen
    direct = redis.Redis(port=redis_server)
    assert all((direct.get("k%d" % i) == b"v") == (x == "ok") for i, x in enumerate(seen))


def test_a_backend_certificate_that_does_not_verify(tmp_path, vaurien, certs):
    with s_server(certs) as port:
        # the system store does not know the backend's self-signed certificate
        v = vaurien("--protocol", "http", "--backend-tls", backend_port=port)
        with v.connect() as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                assert s.recv(100) == b""                # closed, nothing sent
            except ConnectionResetError:
                pass                                     # closed with its request unread
        assert wait_until(lambda: "certificate verify failed" in v.log_text())
        lines = [x for x in v.log_text().splitlines() if "verify failed" in x]
        assert len(lines) == 1 and "self-signed certificate" in lines[0], lines
        assert "127.0.0.1:%d" % port in lines[0]
        # with the right CA it passes, and with --backend-tls-insecure too
        for flags in (["--backend-ca", certs["cert"]], ["--backend-tls-insecure"]):
            v = vaurien("--protocol", "http", "--backend-tls", *flags, backend_port=port)
            with v.connect() as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                assert recv_exactly(s, 12) == b"HTTP/1.0 200"


def test_bad_tls_files_exit_2_with_one_line(tmp_path):
    bad = tmp_path / "nope.pem"
    bad.write_text("not a certificate")
    for flags, says in ((["--proxy-tls", "--tls-cert", str(bad)], "--tls-cert"),
                        (["--backend-tls", "--backend-ca", str(bad)], "--backend-ca")):
        p = subprocess.run([BIN, "--proxy", "127.0.0.1:%d" % free_port()] + flags,
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 2 and says in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def tls_connect(port, ca, server_hostname="127.0.0.1", ragged=True):
    ctx = client_ctx(ca)
    if not ragged:  # Python 3.10+ ignores an EOF without close_notify by default
        ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=server_hostname,
                           suppress_ragged_eofs=ragged)


def test_tls_faults_seen_by_pythons_ssl(tmp_path, vaurien, redis_server):
    ca = str(tmp_path / "ca.pem")

    def proxy(*flags):
        return vaurien("--protocol", "redis", "--proxy-tls", "--tls-ca-out", ca,
                       *flags, backend_port=redis_server)

    v = proxy("--behavior", "100:tls_handshake_delay",
              "--behavior-tls-handshake-delay-delay", "400")
    t = time.monotonic()
    with tls_connect(v.port, ca) as s:
        assert time.monotonic() - t >= 0.38
        s.sendall(b"PING\r\n")                 # then requests pass
        assert recv_exactly(s, 7) == b"+PONG\r\n"

    v = proxy("--behavior", "100:tls_alert", "--behavior-tls-alert-alert", "112")
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        tls_connect(v.port, ca)
    v = proxy("--behavior", "100:tls_alert")
    with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
        tls_connect(v.port, ca)

    for kind, says in (("expired", "certificate has expired"),
                       ("wrong_name", "mismatch"),
                       ("self_signed", "self-signed certificate")):
        v = proxy("--behavior", "100:bad_cert", "--behavior-bad-cert-kind", kind)
        with pytest.raises(ssl.SSLCertVerificationError) as e:
            tls_connect(v.port, ca)
        assert says in e.value.verify_message, (kind, e.value.verify_message)

    v = proxy("--behavior", "100:no_close_notify")
    with tls_connect(v.port, ca, ragged=False) as s:
        s.sendall(b"QUIT\r\n")
        assert recv_exactly(s, 5) == b"+OK\r\n"
        with pytest.raises(ssl.SSLError, match="(?i)eof"):  # SSLEOFError or UNEXPECTED_EOF
            s.recv(100)
    v = proxy()                                  # with close_notify: a clean EOF
    with tls_connect(v.port, ca, ragged=False) as s:
        s.sendall(b"QUIT\r\n")
        assert recv_exactly(s, 5) == b"+OK\r\n"
        assert s.recv(100) == b""


def test_tls_faults_drawn_per_connection_and_as_toxics(tmp_path, vaurien, redis_server):
    ca = str(tmp_path / "ca.pem")

    def failures(port, n=30):
        out = []
        for _ in range(n):
            try:
                with tls_connect(port, ca) as s:
                    s.sendall(b"PING\r\n")
                    recv_exactly(s, 7)
                out.append(0)
            except ssl.SSLError:
                out.append(1)
        return out

    flags = ("--protocol", "redis", "--proxy-tls", "--tls-ca-out", ca,
             "--behavior", "40:tls_alert", "--seed", "4")
    a = failures(vaurien(*flags, backend_port=redis_server).port)
    b = failures(vaurien(*flags, backend_port=redis_server).port)
    assert a == b and 4 <= sum(a) <= 26          # seeded, per connection
    # a toxic on a `vaurien server` proxy with TLS
    from conftest import Api
    apiport = free_port()
    api = Api(["server", "-host", "127.0.0.1", "-port", str(apiport),
               "-tls-ca-out", ca], apiport)
    try:
        port = free_port()
        st, body, _ = api.call("POST", "/proxies", {
            "name": "t", "listen": "127.0.0.1:%d" % port,
            "upstream": "127.0.0.1:%d" % redis_server, "protocol": "redis",
            "proxy_tls": True})
        assert st == 201, body
        assert failures(port, 3) == [0, 0, 0]
        st, body, _ = api.call("POST", "/proxies/t/toxics",
                               {"type": "bad_cert", "attributes": {"kind": "expired"}})
        assert st == 200, body
        with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
            tls_connect(port, ca)
        st, body, _ = api.call("POST", "/proxies", {
            "name": "plain", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"})
        assert st == 201
        st, body, _ = api.call("POST", "/proxies/plain/toxics", {"type": "tls_alert"})
        assert st == 400 and "does not terminate TLS" in body["error"], body
        st, body, _ = api.call("POST", "/proxies", {
            "name": "u", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1",
            "proxy_tls": {"cert": "/nonexistent.pem"}})
        assert st == 400 and "nonexistent" in body["error"], body
        st, body, _ = api.call("POST", "/proxies", {
            "name": "w", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1",
            "backend_tls": {"colour": "x"}})
        assert st == 400 and "colour" in body["error"], body
    finally:
        rc, err = api.stop()
    assert rc == 0, err


def test_given_certificates_client_certificates_and_sni(tmp_path, vaurien, certs, redis_server):
    # --tls-cert/--tls-key: the client trusts that certificate itself
    v = vaurien("--protocol", "redis", "--proxy-tls", "--tls-cert", certs["cert"],
                "--tls-key", certs["key"], backend_port=redis_server)
    with tls_connect(v.port, certs["cert"]) as s:
        s.sendall(b"PING\r\n")
        assert recv_exactly(s, 7) == b"+PONG\r\n"
    # a backend that wants a client certificate and the name localhost
    with s_server(certs, "-Verify", "1", "-CAfile", certs["cert"], "-verify_return_error",
                  "-servername", "localhost", "-servername_fatal", "-cert2", certs["cert"],
                  "-key2", certs["key"]) as port:
        for flags, ok in ((["--backend-cert", certs["cert"], "--backend-key", certs["key"]], True),
                          ([], False)):
            v = vaurien("--protocol", "http", "--backend", "localhost:%d" % port,
                        "--backend-tls", "--backend-ca", certs["cert"], *flags)
            with v.connect() as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                try:
                    got = s.recv(12)
                except ConnectionResetError:
                    got = b""
            assert (got == b"HTTP/1.0 200") == ok, (flags, got, v.log_text()[-500:])
            if not ok:
                assert wait_until(lambda: "handshake failed" in v.log_text()
                                  or "TLS error" in v.log_text())


def test_server_wide_tls_and_one_ca_for_every_proxy(tmp_path, redis_server):
    from conftest import Api
    ca = str(tmp_path / "ca.pem")
    apiport = free_port()
    api = Api(["server", "-host", "127.0.0.1", "-port", str(apiport), "-proxy-tls",
               "-tls-ca-out", ca], apiport)
    try:
        ports = [free_port(), free_port(), free_port()]
        for name, port, extra in (("a", ports[0], {}), ("b", ports[1], {}),
                                  ("plain", ports[2], {"proxy_tls": False})):
            body = {"name": name, "listen": "127.0.0.1:%d" % port,
                    "upstream": "127.0.0.1:%d" % redis_server, "protocol": "redis"}
            body.update(extra)
            st, b, _ = api.call("POST", "/proxies", body)
            assert st == 201, b
        st, b, _ = api.call("POST", "/proxies", {
            "name": "out", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1",
            "proxy_tls": False, "backend_tls": {"insecure": True}})
        assert st == 201, b
        shown = api.call("GET", "/proxies")[1]
        assert shown["a"]["proxy_tls"] is True and shown["plain"]["proxy_tls"] is False
        assert "backend_tls" not in shown["a"]
        assert shown["out"]["backend_tls"] == {"insecure": True}
        for port in ports[:2]:                      # both trusted by the one CA
            with tls_connect(port, ca) as s:
                s.sendall(b"PING\r\n")
                assert recv_exactly(s, 7) == b"+PONG\r\n"
        with socket.create_connection(("127.0.0.1", ports[2]), timeout=5) as s:
            s.sendall(b"PING\r\n")
            assert recv_exactly(s, 7) == b"+PONG\r\n"
    finally:
        rc, err = api.stop()
    assert rc == 0, err


@pytest.fixture
def starttls_server(certs):
    """aiosmtpd in plain text offering STARTTLS."""
    handler, c = aiosmtpd_with_tls(certs, tls_context=True)
    yield handler
    c.stop()


class RecordingPlainSMTP(smtplib.SMTP):
    def getreply(self):
        code, msg = super().getreply()
        self.codes.append(code)
        return code, msg


def test_starttls_upgraded_on_both_sides_and_still_smtp(tmp_path, vaurien, certs,
                                                        starttls_server):
    def run():
        ca = str(tmp_path / ("ca-%d.pem" % time.monotonic_ns()))
        v = vaurien("--protocol", "smtp", "--starttls", "--tls-ca-out", ca,
                    "--backend-ca", certs["cert"],
                    "--behavior", "5:error,10:delay", "--behavior-delay-sleep", "0.02",
                    "--seed", "12", backend_port=starttls_server.port)
        RecordingPlainSMTP.codes = []
        s = RecordingPlainSMTP("127.0.0.1", v.port, timeout=20)
        s.ehlo()
        s.starttls(context=client_ctx(ca))      # the proxy's certificate, its CA
        s.ehlo()
        got = []
        for i in range(100):
            try:
                s.sendmail("a@example.test", ["b@example.test"], "Subject: %d\r\n\r\nm\r\n" % i)
                got.append("ok")
            except smtplib.SMTPResponseException as e:
                got.append(e.smtp_code)
                s.rset()
            except smtplib.SMTPRecipientsRefused:
                got.append(451)
                s.rset()
        s.quit()
        return got, list(RecordingPlainSMTP.codes), v.log_text()

    got, codes, log = run()
    assert "STARTTLS: both sides speak TLS" in log
    errors = len(re.findall(r"request: error", log))
    assert errors > 0 and codes.count(451) == errors, (errors, codes)
    assert 70 <= got.count("ok") < 100
    # the server saw the messages inside TLS
    assert starttls_server.messages and all(tls for tls, _ in starttls_server.messages)
    again, again_codes, _ = run()
    assert (again, again_codes) == (got, codes)


def test_starttls_without_certificates_is_passed_through(tmp_path, vaurien, starttls_server,
                                                         certs):
    v = vaurien("--protocol", "smtp", backend_port=starttls_server.port)
    s = smtplib.SMTP("127.0.0.1", v.port, timeout=20)
    s.starttls(context=client_ctx(certs["cert"]))   # the server's own certificate
    s.sendmail("a@example.test", ["b@example.test"], "Subject: x\r\n\r\nm\r\n")
    s.quit()
    assert wait_until(lambda: "passing through untouched" in v.log_text())
    assert "--starttls" in v.log_text()


def test_clients_that_never_finish_a_handshake_are_let_go(tmp_path, vaurien, redis_server):
    v = vaurien("--protocol", "redis", "--proxy-tls", "--timeout", "1",
                backend_port=redis_server)

    def fds():
        return len(os.listdir("/proc/%d/fd" % v.proc.pid))
    idle = fds()
    silent = [socket.create_connection(("127.0.0.1", v.port), timeout=5) for _ in range(20)]
    assert wait_until(lambda: fds() >= idle + 40, timeout=5)    # relays, sessions
    # the session's idle timeout, then at most 10 s for the relay
    assert wait_until(lambda: fds() <= idle + 1, timeout=20), (idle, fds())
    for s in silent:
        s.close()


def test_a_client_that_ends_with_a_fin_still_gets_its_reply(tmp_path, vaurien, backend):
    """TCP FIN without close_notify is a half-close: the echo comes back."""
    ca = str(tmp_path / "ca.pem")
    v = vaurien("--proxy-tls", "--tls-ca-out", ca, backend_port=backend.port)
    s = socket.create_connection(("127.0.0.1", v.port), timeout=15)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    o = client_ctx(ca).wrap_bio(inc, out, server_hostname="127.0.0.1")
    while True:
        try:
            o.do_handshake()
            break
        except ssl.SSLWantReadError:
            s.sendall(out.read())
            inc.write(s.recv(65536))
    data = os.urandom(100000)
    o.write(data)
    s.sendall(out.read())
    s.shutdown(socket.SHUT_WR)                 # FIN, no close_notify
    got = bytearray()
    while len(got) < len(data):
        d = s.recv(1 << 20)
        if not d:
            break
        inc.write(d)
        try:
            while True:
                x = o.read(1 << 20)
                if not x:
                    break
                got += x
        except ssl.SSLWantReadError:
            pass
    s.close()
    assert bytes(got) == data


def test_clients_that_leave_with_bytes_due_leave_nothing_behind(tmp_path, vaurien, backend):
    ca = str(tmp_path / "ca.pem")
    v = vaurien("--proxy-tls", "--tls-ca-out", ca, "--timeout", "2",
                backend_port=backend.port)
    idle = len(os.listdir("/proc/%d/fd" % v.proc.pid))
    for _ in range(30):
        with tls_connect(v.port, ca) as s:
            s.sendall(os.urandom(300000))      # echoed: due to a client that leaves
            s.recv(10)
    assert wait_until(lambda: len(os.listdir("/proc/%d/fd" % v.proc.pid)) <= idle + 1,
                      timeout=25), (idle, len(os.listdir("/proc/%d/fd" % v.proc.pid)))


def mysql_run(port, ca, n=60, ssl=True):
    """n statements through pymysql on one connection (TLS to the proxy
    trusting ca when ssl); returns per statement "ok" or the error number,
    and the connection's cipher as the server saw it."""
    import pymysql
    kw = {"ssl_ca": ca, "ssl_verify_cert": True} if ssl else {}
    c = pymysql.connect(host="127.0.0.1", port=port, user="vaurien", password="secret",
                        database="vaurien", connect_timeout=10, read_timeout=20, **kw)
    got = []
    try:
        with c.cursor() as cur:
            for i in range(n):
                try:
                    cur.execute("SELECT %s + 1", (i,))
                    assert cur.fetchone() == (i + 1,)
                    got.append("ok")
                except pymysql.err.OperationalError as e:
                    got.append(e.args[0])
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            cipher = cur.fetchone()[1]
    finally:
        c.close()
    return got, cipher


def test_mysql_ssl_request_upgraded_on_both_sides_and_still_mysql(tmp_path, vaurien,
                                                                  mariadb_server):
    """pymysql asks for TLS (an SSL request, its ClientHello right behind):
    with --starttls the proxy terminates it, speaks TLS to MariaDB, and keeps
    framing MySQL inside, so errors are ERR packets on the drawn statements
    and the same seed replays them."""
    from conftest import MARIADB

    def run():
        ca = str(tmp_path / ("ca-%d.pem" % time.monotonic_ns()))
        v = vaurien("--protocol", "mysql", "--starttls", "--tls-ca-out", ca,
                    "--backend-ca", MARIADB["cert"], "--behavior", "20:error",
                    "--seed", "21", backend_port=mariadb_server)
        got, cipher = mysql_run(v.port, ca)
        return got, cipher, v.log_text()

    got, cipher, log = run()
    assert "STARTTLS: both sides speak TLS" in log
    assert cipher, "MariaDB saw the statements inside TLS"
    assert 1040 in got and "ok" in got, got          # Too many connections
    assert got.count(1040) == len(re.findall(r"request: error", log)), got
    again, _, _ = run()
    assert again == got                               # --seed replays them


def test_mysql_ssl_request_without_starttls_is_passed_through(tmp_path, vaurien,
                                                              mariadb_server):
    from conftest import MARIADB
    v = vaurien("--protocol", "mysql", "--behavior", "100:error",
                backend_port=mariadb_server)
    got, cipher = mysql_run(v.port, MARIADB["cert"], n=5)
    assert got == ["ok"] * 5 and cipher          # TLS end to end, no faults inside
    assert wait_until(lambda: "--starttls" in v.log_text())


def alpn_of(port, ca, offer, timeout=10):
    ctx = client_ctx(ca)
    ctx.set_alpn_protocols(offer)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.selected_alpn_protocol()


def test_alpn_passes_the_clients_list_to_the_backend_and_its_pick_back(tmp_path, vaurien,
                                                                      certs):
    """The client's ALPN list goes to the backend; the backend's choice comes
    back to the client. The http framer reads only HTTP/1.x, so only those
    names pass through a --protocol http proxy."""
    ca = str(tmp_path / "ca.pem")
    with s_server(certs, "-alpn", "h2,foo,http/1.1") as port:
        tcp = vaurien("--proxy-tls", "--tls-ca-out", ca, "--backend-tls",
                      "--backend-ca", certs["cert"], backend_port=port)
        assert alpn_of(tcp.port, ca, ["bar", "foo"]) == "foo"
        assert alpn_of(tcp.port, ca, ["h2", "http/1.1"]) == "h2"
        assert alpn_of(tcp.port, ca, ["bar"]) is None   # the backend chose none
        assert alpn_of(tcp.port, ca, []) is None
        http = vaurien("--protocol", "http", "--proxy-tls", "--tls-ca-out", ca,
                       "--backend-tls", "--backend-ca", certs["cert"], backend_port=port)
        assert alpn_of(http.port, ca, ["h2", "http/1.1"]) == "http/1.1"
        assert alpn_of(http.port, ca, ["h2"]) is None
        # curl offers h2 and http/1.1, gets http/1.1 and speaks it (s_server
        # answers HTTP/1.0)
        p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w",
                            "%{http_code} %{http_version}", "--cacert", ca,
                            "https://127.0.0.1:%d/" % http.port],
                           capture_output=True, text=True, timeout=20)
        assert p.stdout in ("200 1", "200 1.1"), p.stdout
    # a backend that never finishes its handshake: the client's goes on
    # without ALPN after 10 s, and the log says why
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        v = vaurien("--proxy-tls", "--tls-ca-out", ca, "--backend-tls", "--backend-ca",
                    certs["cert"], backend_port=silent.getsockname()[1])
        t0 = time.monotonic()
        assert alpn_of(v.port, ca, ["foo"], timeout=30) is None
        assert 9 <= time.monotonic() - t0 < 30
        assert "ALPN not passed on" in v.log_text()


def test_mysql_client_hello_in_the_same_segment_as_the_ssl_request(tmp_path, vaurien,
                                                                  mariadb_server):
    """A client that sends its ClientHello in the same write as its SSL
    request: the proxy has read part of the handshake before it knew TLS was
    coming, and hands it to the TLS side."""
    from conftest import MARIADB
    ca = str(tmp_path / "ca.pem")
    v = vaurien("--protocol", "mysql", "--starttls", "--tls-ca-out", ca,
                "--backend-ca", MARIADB["cert"], backend_port=mariadb_server)
    with v.connect() as s:
        head = recv_exactly(s, 4)
        greeting = recv_exactly(s, int.from_bytes(head[:3], "little"))
        assert greeting[0] == 10                       # protocol 10
        caps = 0x200 | 0x800 | 0x8000 | 0x80000        # 4.1, SSL, secure, plugin auth
        body = caps.to_bytes(4, "little") + (1 << 24).to_bytes(4, "little") + b"\x21" + bytes(23)
        request = len(body).to_bytes(3, "little") + b"\x01" + body
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = client_ctx(ca).wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        s.sendall(request + outgoing.read())           # one write
        s.settimeout(10)
        for _ in range(20):
            data = s.recv(65536)
            assert data, "closed during the handshake"
            incoming.write(data)
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    s.sendall(outgoing.read())
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert wait_until(lambda: "STARTTLS: both sides speak TLS" in v.log_text())


def test_a_reload_that_changes_a_proxys_tls_replaces_it(tmp_path, redis_server):
    """SIGHUP applies -config again: a proxy whose proxy_tls changed is
    replaced (now speaking TLS); one whose TLS is unchanged keeps its
    connections."""
    import json
    import signal
    from conftest import Api
    ca = str(tmp_path / "ca.pem")
    pa, pb = free_port(), free_port()
    up = "127.0.0.1:%d" % redis_server
    cfg = tmp_path / "c.json"

    def write(b_tls):
        cfg.write_text(json.dumps([
            {"name": "a", "listen": "127.0.0.1:%d" % pa, "upstream": up, "protocol": "redis"},
            {"name": "b", "listen": "127.0.0.1:%d" % pb, "upstream": up, "protocol": "redis",
             **({"proxy_tls": True} if b_tls else {})}]))
    write(False)
    apiport = free_port()
    api = Api(["server", "-host", "127.0.0.1", "-port", str(apiport), "-tls-ca-out", ca,
               "-config", str(cfg)], apiport)
    try:
        held = socket.create_connection(("127.0.0.1", pa), timeout=5)
        held.sendall(b"PING\r\n")
        assert recv_exactly(held, 7) == b"+PONG\r\n"
        write(True)
        api.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: api.call("GET", "/proxies")[1]["b"].get("proxy_tls") is True,
                          timeout=5)
        with tls_connect(pb, ca) as s:             # b speaks TLS now
            s.sendall(b"PING\r\n")
            assert recv_exactly(s, 7) == b"+PONG\r\n"
        held.sendall(b"PING\r\n")                  # a was untouched
        assert recv_exactly(held, 7) == b"+PONG\r\n"
        write(True)
        api.proc.send_signal(signal.SIGHUP)        # the same again: b is kept
        held_b = tls_connect(pb, ca)
        held_b.sendall(b"PING\r\n")
        assert recv_exactly(held_b, 7) == b"+PONG\r\n"
        assert wait_until(lambda: open(api.log).read().count("SIGHUP: -config") == 2)
        held_b.sendall(b"PING\r\n")
        assert recv_exactly(held_b, 7) == b"+PONG\r\n"
        held_b.close()
        held.close()
    finally:
        rc, err = api.stop()
    assert rc == 0, err


def test_mysql_ssl_request_upgraded_behind_an_upstream_latency_toxic(tmp_path, mariadb_server):
    """The SSL request goes up through a toxic that holds it: the upgrade
    waits until it is written to the backend, then happens."""
    from conftest import MARIADB, Api
    ca = str(tmp_path / "ca.pem")
    port, pport = free_port(), free_port()
    a = Api(["--proxy", "127.0.0.1:%d" % pport, "--backend", "127.0.0.1:%d" % mariadb_server,
             "--protocol", "mysql", "--starttls", "--tls-ca-out", ca,
             "--backend-ca", MARIADB["cert"], "--timeout", "10",
             "--http", "--http-host", "127.0.0.1", "--http-port", str(port)], port)
    try:
        st, b, _ = a.call("POST", "/proxies/vaurien/toxics", {
            "type": "latency", "stream": "upstream", "attributes": {"latency": 100}})
        assert st == 200, b
        t0 = time.monotonic()
        got, cipher = mysql_run(pport, ca, n=3)
        assert got == ["ok"] * 3 and cipher
        assert time.monotonic() - t0 < 8
    finally:
        rc, err = a.stop()
    assert rc == 0, err


def test_a_greeting_waits_out_a_long_handshake_delay(tmp_path, vaurien):
    """A server-first backend greets and closes while the client's handshake
    is delayed past the relays' 10 s linger: the greeting still arrives."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def greet():
        c, _ = srv.accept()
        c.sendall(b"421 bye\r\n")
        c.close()
    import threading
    threading.Thread(target=greet, daemon=True).start()
    ca = str(tmp_path / "ca.pem")
    v = vaurien("--proxy-tls", "--tls-ca-out", ca, "--behavior", "100:tls_handshake_delay",
                "--behavior-tls-handshake-delay-delay", "10500",
                backend_port=srv.getsockname()[1])
    try:
        raw = socket.create_connection(("127.0.0.1", v.port), timeout=30)
        with client_ctx(ca).wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert recv_exactly(s, 9, timeout=30) == b"421 bye\r\n"
    finally:
        srv.close()


def test_populate_with_get_proxies_output_keeps_tls_proxies(tmp_path, certs, redis_server):
    """What GET /proxies shows of a proxy's TLS, fed back to POST /populate,
    is the same proxy: it and its connections stay."""
    from conftest import Api
    apiport = free_port()
    api = Api(["server", "-host", "127.0.0.1", "-port", str(apiport)], apiport)
    try:
        st, b, _ = api.call("POST", "/proxies", {
            "name": "t", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:%d" % redis_server,
            "protocol": "redis", "proxy_tls": {"cert": certs["cert"], "key": certs["key"]},
            "backend_tls": False})
        assert st == 201, b
        port = int(b["listen"].rsplit(":", 1)[1])
        held = tls_connect(port, certs["cert"])
        held.sendall(b"PING\r\n")
        assert recv_exactly(held, 7) == b"+PONG\r\n"
        shown = api.call("GET", "/proxies")[1]
        assert shown["t"]["proxy_tls"] == {"cert": certs["cert"], "key": certs["key"]}
        st, b, _ = api.call("POST", "/populate", list(shown.values()))
        assert st == 201, b
        held.sendall(b"PING\r\n")
        assert recv_exactly(held, 7) == b"+PONG\r\n"             # not replaced
        assert open(api.log).read().count("proxy t created") == 1
        held.close()
    finally:
        rc, err = api.stop()
    assert rc == 0, err


def test_a_reload_whose_tls_files_do_not_load_keeps_the_proxy(tmp_path, redis_server):
    import json
    import signal
    from conftest import Api
    ca = str(tmp_path / "ca.pem")
    pb = free_port()
    cfg = tmp_path / "c.json"

    def write(tls):
        cfg.write_text(json.dumps([{"name": "b", "listen": "127.0.0.1:%d" % pb,
                                    "upstream": "127.0.0.1:%d" % redis_server,
                                    "protocol": "redis", "proxy_tls": tls}]))
    write(True)
    apiport = free_port()
    api = Api(["server", "-host", "127.0.0.1", "-port", str(apiport), "-tls-ca-out", ca,
               "-config", str(cfg)], apiport)
    try:
        held = tls_connect(pb, ca)
        held.sendall(b"PING\r\n")
        assert recv_exactly(held, 7) == b"+PONG\r\n"
        write({"cert": "/nonexistent/cert.pem"})
        api.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "nonexistent" in open(api.log).read(), timeout=5)
        assert "b" in api.call("GET", "/proxies")[1]
        held.sendall(b"PING\r\n")
        assert recv_exactly(held, 7) == b"+PONG\r\n"             # untouched
        held.close()
    finally:
        rc, err = api.stop()
    assert rc == 0, err
