"""Fixtures for end-to-end tests: the real vaurien binary, real sockets.

Every server a test needs is started here on 127.0.0.1 and stopped after
the test; every wait is bounded.
"""
import contextlib
import errno
import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("VAURIEN_BIN", os.path.join(ROOT, "build", "vaurien"))


# ASan keeps freed memory in quarantine: sizes mean nothing there
SANITIZED = bool(os.environ.get("VAURIEN_SANITIZED"))


def rss_kb(pid):
    """The resident set of process pid, in kB (0 once it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _port_range():
    """Ports below the kernel's ephemeral range: an outgoing connection
    never takes one of them as its source port, so a port found free here
    stays free until the process it was meant for binds it."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    low = max(low, 4096)
    return max(1024, low - 12000), low


_PORT_LOW, _PORT_HIGH = _port_range()
_port_next = _PORT_LOW + (os.getpid() * 7919) % (_PORT_HIGH - _PORT_LOW)


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A TCP port on host that nothing holds, not even in TIME_WAIT.

    Taken from below the ephemeral range and handed out in turn, so two
    calls never return the same port and no client socket can take it
    before the process it is meant for binds it (binding port 0 and
    closing lost that race in CI: "address already in use")."""
    global _port_next
    span = _PORT_HIGH - _PORT_LOW
    for _ in range(span):
        port = _port_next
        _port_next = _PORT_LOW + (_port_next + 1 - _PORT_LOW) % span
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        # A test may use the port on the other loopback address too.
        other = ("::1", socket.AF_INET6) if family == socket.AF_INET else ("127.0.0.1", socket.AF_INET)
        with socket.socket(other[1], socket.SOCK_STREAM) as s:
            try:
                s.bind((other[0], port))
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    continue
        return port
    raise RuntimeError("no free port in %d-%d" % (_PORT_LOW, _PORT_HIGH))


def port_open(port, host="127.0.0.1"):
    """Whether something accepts connections on host:port."""
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_until(pred, timeout=5.0, step=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


@contextlib.contextmanager
def server_process(cmd, port, name, timeout=5):
    """Runs cmd (a server) until the block ends; waits for it to listen on
    port first. name is for the failure message."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: port_open(port), timeout=timeout), \
            "%s did not start" % name
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Backend:
    """A threaded TCP server on 127.0.0.1. mode 'echo' sends back what it
    reads; 'source' sends `size` bytes then closes its write side. Every
    connection's received bytes and first-byte time are recorded."""

    def __init__(self, mode="echo", size=0):
        self.mode = mode
        self.size = size
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.received = []  # one bytearray per connection
        self.first_byte_at = []
        self.lock = threading.Lock()
        self.stopped = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                idx = len(self.received)
                self.received.append(bytearray())
                self.first_byte_at.append(None)
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c, idx), daemon=True).start()

    def _serve(self, c, idx):
        try:
            c.settimeout(30)  # the test may have closed it already
            if self.mode == "source":
                chunk = os.urandom(65536)
                left = self.size
                while left > 0:
                    n = min(left, len(chunk))
                    c.sendall(chunk[:n])
                    left -= n
                c.shutdown(socket.SHUT_WR)
            while True:
                d = c.recv(65536)
                if not d:
                    break
                with self.lock:
                    if self.first_byte_at[idx] is None:
                        self.first_byte_at[idx] = time.monotonic()
                    self.received[idx] += d
                if self.mode == "echo":
                    c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()

    def total_received(self):
        with self.lock:
            return b"".join(bytes(r) for r in self.received)

    def close(self):
        self.stopped = True
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass


class Vaurien:
    """The vaurien binary (bin, default the one under test) run as a
    subprocess on a free port."""

    def __init__(self, *args, backend_port=None, port=None, host="127.0.0.1",
                 expect_start=True, bin=None):
        self.port = port or free_port()
        self.host = host
        self.logdir = tempfile.mkdtemp(prefix="vaurien-e2e-")
        self.log = os.path.join(self.logdir, "vaurien.log")
        proxy = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        cmd = [bin or BIN, "--proxy", proxy, "--log-output", self.log, "--log-level", "debug"]
        if backend_port is not None:
            cmd += ["--backend", f"127.0.0.1:{backend_port}"]
        cmd += list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if expect_start and not wait_until(lambda: "listening on" in self.log_text()
                                           or self.proc.poll() is not None):
            raise RuntimeError("vaurien did not start: " + self.log_text())
        if expect_start and self.proc.poll() is not None:
            raise RuntimeError("vaurien exited: %s %s" % (self.proc.stderr.read(), self.log_text()))

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def connect(self, timeout=5):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((self.host, self.port))
        return s

    def stop(self):
        """SIGTERM, and the exit status (0 expected). Idempotent."""
        if getattr(self, "stderr_text", None) is not None:
            return self.proc.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("vaurien did not stop on SIGTERM")
        self.stderr_text = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        shutil.rmtree(self.logdir, ignore_errors=True)
        return self.proc.returncode


class HoldBackend:
    """An echo server on one thread (selectors), for thousands of idle
    connections; counts those open."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ, None)
        self.open = 0
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            for key, _ in self.sel.select(0.2):
                if key.data is None:
                    while True:
                        try:
                            c, _ = self.sock.accept()
                        except (BlockingIOError, OSError):
                            break
                        c.setblocking(False)
                        self.sel.register(c, selectors.EVENT_READ, 1)
                        self.open += 1
                    continue
                c = key.fileobj
                try:
                    d = c.recv(65536)
                except OSError:
                    d = b""
                if d:
                    c.send(d)
                else:
                    self.sel.unregister(c)
                    c.close()
                    self.open -= 1

    def close(self):
        self.stopped = True
        self.thread.join(5)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()


@pytest.fixture
def nofile():
    """Raises this process's descriptor limit to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def backend():
    b = Backend("echo")
    yield b
    b.close()


@pytest.fixture
def vaurien(request):
    """vaurien(*flags, backend_port=N) starts a proxy; all are stopped, and
    must exit 0 on SIGTERM, after the test."""
    started = []

    def start(*args, **kw):
        v = Vaurien(*args, **kw)
        started.append(v)
        return v

    yield start
    for v in started:
        log = v.log_text()
        rc = v.stop()
        assert rc == 0, "vaurien exited %s on SIGTERM; log:\n%s\nstderr:\n%s" % (
            rc, log[-3000:], v.stderr_text[-6000:])
        assert "AddressSanitizer" not in log and "runtime error" not in log


def recv_exactly(s, n, timeout=5):
    s.settimeout(timeout)
    buf = bytearray()
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            break
        buf += d
    return bytes(buf)


def recv_until_eof(s, timeout=5, limit=1 << 26):
    s.settimeout(timeout)
    buf = bytearray()
    while len(buf) < limit:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        buf += d
    return bytes(buf)


@pytest.fixture
def redis_server():
    """A redis-server of its own on a free port; yields the port."""
    redis = pytest.importorskip("redis")
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    d = tempfile.mkdtemp(prefix="vaurien-redis-")
    p = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", d],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)

    def up():
        try:
            return r.ping()
        except redis.exceptions.ConnectionError:
            return False
    assert wait_until(up, timeout=10), "redis-server did not start"
    yield port
    p.terminate()
    p.wait(10)
    shutil.rmtree(d, ignore_errors=True)






def _make_http_server():
    """Python's own http.server, HTTP/1.1 with keep-alive, answering with
    what tests need to check: the path, the Host header, the body."""
    import http.server
    import socketserver

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "TestHTTP/1.0"

        def log_message(self, *a):
            pass

        def _send(self, status, body=b"", headers=()):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            if status not in (204, 304):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and status not in (204, 304):
                self.wfile.write(body)

        def _echo_the_rest(self):
            # a tunnel (after 101 or CONNECT): what comes is echoed
            self.wfile.flush()
            while True:
                d = self.connection.recv(65536)
                if not d:
                    break
                self.connection.sendall(d)
            self.close_connection = True

        def do_GET(self):
            self.server.hits.append(self.path)
            if self.path == "/204":
                return self._send(204)
            if self.path == "/304":
                return self._send(304, headers=[("ETag", "x")])
            if self.path == "/host":
                return self._send(200, self.headers.get("Host", "").encode())
            if self.path == "/chunked":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for part in (b"hello ", b"chunked ", b"world"):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\nX-Trailer: 1\r\n\r\n")
                return
            if self.path == "/ws":
                self.send_response(101)
                self.send_header("Connection", "Upgrade")
                self.send_header("Upgrade", "echo")
                self.end_headers()
                return self._echo_the_rest()
            self._send(200, b"path=" + self.path.encode())

        do_HEAD = do_GET

        def do_CONNECT(self):
            # a forward proxy's tunnel: 200, then what comes is echoed
            self.server.hits.append("CONNECT " + self.path)
            self.send_response(200, "Connection established")
            self.end_headers()
            self._echo_the_rest()

        def do_POST(self):
            self.server.hits.append(self.path)
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            self._send(200, b"got %d bytes: %s" % (len(body), body[:32]))

        do_PUT = do_POST

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = Server(("127.0.0.1", 0), Handler)
    srv.hits = []
    return srv


@pytest.fixture
def http_server():
    srv = _make_http_server()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def memcached_server():
    """A memcached of its own on a free port; yields the port."""
    exe = shutil.which("memcached")
    if exe is None:
        pytest.skip("memcached is not installed")
    port = free_port()
    p = subprocess.Popen([exe, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64",
                          "-u", "root"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    assert wait_until(up, timeout=10), "memcached did not start"
    yield port
    p.terminate()
    p.wait(10)


@pytest.fixture
def smtp_server():
    """An aiosmtpd server on a free port that keeps what it receives;
    yields an object with .port and .messages (list of bytes)."""
    controller_mod = pytest.importorskip("aiosmtpd.controller")

    class Keep:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope.original_content)
            return "250 2.0.0 Message accepted"

    handler = Keep()
    port = free_port()
    c = controller_mod.Controller(handler, hostname="127.0.0.1", port=port)
    c.start()
    handler.port = port
    yield handler
    c.stop()


MARIADB = {}  # "cert": the server's TLS certificate (its own CA)


@pytest.fixture(scope="session")
def mariadb_server():
    """A mariadbd of its own (datadir in a temporary folder, free port), with
    a user vaurien/secret; started once for the session. Yields the port."""
    install = shutil.which("mariadb-install-db")
    server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    if install is None or not os.path.exists(server):
        pytest.skip("mariadb-server is not installed")
    d = tempfile.mkdtemp(prefix="vaurien-mariadb-")
    data = os.path.join(d, "data")
    init = os.path.join(d, "init.sql")
    with open(init, "w") as f:
        f.write("CREATE USER IF NOT EXISTS 'vaurien'@'%' IDENTIFIED BY 'secret';\n"
                "GRANT ALL ON *.* TO 'vaurien'@'%';\n"
                "CREATE DATABASE IF NOT EXISTS vaurien;\n")
    subprocess.run([install, "--no-defaults", "--datadir=" + data, "--user=root",
                    "--auth-root-authentication-method=normal", "--skip-test-db"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    # TLS for clients that ask (pymysql and the mariadb CLI here do not
    # unless told): a certificate for 127.0.0.1, its own CA
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=30)
    MARIADB["cert"] = cert
    port = free_port()
    p = subprocess.Popen([server, "--no-defaults", "--datadir=" + data, "--user=root",
                          "--ssl-cert=" + cert, "--ssl-key=" + key,
                          "--port=%d" % port, "--bind-address=127.0.0.1",
                          "--socket=" + os.path.join(d, "sock"), "--init-file=" + init,
                          "--max-allowed-packet=64M", "--skip-log-bin",
                          "--pid-file=" + os.path.join(d, "pid"),
                          "--log-error=" + os.path.join(d, "err.log")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pymysql = pytest.importorskip("pymysql")

    def up():
        try:
            pymysql.connect(host="127.0.0.1", port=port, user="vaurien", password="secret",
                            connect_timeout=1).close()
            return True
        except pymysql.err.MySQLError:
            return False
    try:
        assert wait_until(up, timeout=60, step=0.2), "mariadbd did not start"
        yield port
    finally:
        p.terminate()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


PG_BIN = "/usr/lib/postgresql/15/bin"
POSTGRES = {}


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL 15 server of its own (initdb into a temporary folder,
    free port, TLS with its own certificate), with a superuser
    vaurien/secret authenticated by SCRAM and a database vaurien; started
    once for the session, as the postgres user when run as root (the
    server refuses root). Yields the port."""
    initdb, server = os.path.join(PG_BIN, "initdb"), os.path.join(PG_BIN, "postgres")
    if not os.path.exists(initdb) or not os.path.exists(server):
        pytest.skip("postgresql 15 is not installed")
    psycopg2 = pytest.importorskip("psycopg2")
    d = tempfile.mkdtemp(prefix="vaurien-pg-")
    data = os.path.join(d, "data")
    pw = os.path.join(d, "pw")
    with open(pw, "w") as f:
        f.write("secret\n")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=30)
    os.chmod(key, 0o600)
    POSTGRES["cert"] = cert
    demote = None
    if os.geteuid() == 0:
        import pwd
        pg = pwd.getpwnam("postgres")
        for root, dirs, files in os.walk(d):
            for name in [root] + [os.path.join(root, x) for x in files]:
                os.chown(name, pg.pw_uid, pg.pw_gid)
        os.chmod(d, 0o755)

        def demote():
            os.setgid(pg.pw_gid)
            os.setuid(pg.pw_uid)
    subprocess.run([initdb, "-D", data, "-U", "vaurien", "--pwfile=" + pw,
                    "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=120, preexec_fn=demote, cwd=d)
    port = free_port()
    p = subprocess.Popen([server, "-D", data, "-p", str(port), "-k", d,
                          "-c", "listen_addresses=127.0.0.1", "-c", "ssl=on",
                          "-c", "ssl_cert_file=" + cert, "-c", "ssl_key_file=" + key,
                          "-c", "fsync=off", "-c", "max_connections=50",
                          "-c", "log_min_messages=warning"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         preexec_fn=demote, cwd=d)

    def up():
        try:
            psycopg2.connect(host="127.0.0.1", port=port, user="vaurien", password="secret",
                             dbname="postgres", connect_timeout=1).close()
            return True
        except psycopg2.OperationalError:
            return False
    try:
        assert wait_until(up, timeout=60, step=0.2), "postgres did not start"
        c = psycopg2.connect(host="127.0.0.1", port=port, user="vaurien", password="secret",
                             dbname="postgres")
        c.autocommit = True
        c.cursor().execute("CREATE DATABASE vaurien")
        c.close()
        yield port
    finally:
        p.send_signal(signal.SIGINT)  # fast shutdown: clients are cut
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


class Api:
    """A `vaurien server` (or a proxy with --http) and an HTTP client for
    its API; bin, default the binary under test, is the one run."""

    def __init__(self, args, port, bin=None):
        self.port = port
        self.logdir = tempfile.mkdtemp(prefix="vaurien-api-")
        self.log = os.path.join(self.logdir, "vaurien.log")
        self.proc = subprocess.Popen([bin or BIN] + args + ["--log-output", self.log,
                                                      "--log-level", "debug"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        assert wait_until(lambda: port_open(port) or self.proc.poll() is not None,
                          timeout=10), "API did not start"
        assert self.proc.poll() is None, self.proc.stderr.read()

    def call(self, method, path, body=None, raw=None, headers=None, timeout=10):
        """Returns (status, parsed JSON or text, headers)."""
        import http.client
        import json
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data, headers=headers or {})
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return r.status, parsed, r

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        shutil.rmtree(self.logdir, ignore_errors=True)
        return self.proc.returncode, err


@pytest.fixture
def api():
    """A `vaurien server` on a free port; must exit 0 on SIGTERM."""
    port = free_port()
    a = Api(["server", "-host", "127.0.0.1", "-port", str(port)], port)
    yield a
    rc, err = a.stop()
    assert rc == 0, "vaurien server exited %s: %s" % (rc, err[-4000:])


NETNS_SERVER = r"""
import http.client, json, socket, subprocess, sys, time
bin, port = sys.argv[1], int(sys.argv[2])
p = subprocess.Popen([bin, "server", "-host", sys.argv[3], "-port", str(port)],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
%s
finally:
    p.terminate()
    p.wait()
"""


def in_own_netns(tmp_path, api_host, body, port=18474):
    """Runs `vaurien server -host api_host -port port` and the Python code
    body (which sees port, and prints what the test checks) in a network
    namespace of its own, its loopback only: a wildcard address bound there
    reaches nothing beyond it. Returns what body printed; skips where
    namespaces cannot be made."""
    import textwrap
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip")
    path = tmp_path / "netns.py"
    path.write_text(NETNS_SERVER % textwrap.indent(textwrap.dedent(body), "    "))
    r = subprocess.run(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
                        "/usr/bin/python3", str(path), BIN, str(port), api_host],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0 and "Operation not permitted" in r.stderr:
        pytest.skip("no network namespaces here")
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def dnsmasq_server():
    """A dnsmasq of its own answering for example.test (A 10.1.2.3) on a free
    port, no upstream; yields the port (TCP and UDP)."""
    exe = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not os.path.exists(exe):
        pytest.skip("dnsmasq is not installed")
    pytest.importorskip("dns.message")
    port = free_port()
    p = subprocess.Popen([exe, "--no-daemon", "--port=%d" % port,
                          "--listen-address=127.0.0.1", "--bind-interfaces",
                          "--no-resolv", "--no-hosts", "--user=root",
                          "--pid-file=", "--address=/example.test/10.1.2.3"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: port_open(port), timeout=10), "dnsmasq did not start"
        yield port
    finally:
        p.terminate()
        p.wait(10)
