"""Running the vaurien binary: start_proxy, stop_proxy, start_server."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from . import _http
from .errors import StartError, VaurienError

_running = {}  # pid -> ProxyProcess


def find_binary(binary=None):
    """The vaurien binary: binary=, $VAURIEN_BIN, or the PATH."""
    path = binary or os.environ.get("VAURIEN_BIN") or shutil.which("vaurien")
    if not path or not os.access(path, os.X_OK):
        raise StartError("vaurien binary not found (pass binary=, set VAURIEN_BIN, "
                         "or put vaurien on the PATH)")
    return path


def _free_port(host):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host if host not in ("", "localhost") else "127.0.0.1", 0))
        return s.getsockname()[1]


def _hostport(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def _can_connect(host, port):
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


class ProxyProcess(int):
    """A running vaurien process. It is its pid (an int), as start_proxy()
    returned in the original, and knows its addresses and its log."""

    def __new__(cls, proc, **info):
        self = int.__new__(cls, proc.pid)
        self.proc = proc
        self.__dict__.update(info)
        return self

    @property
    def pid(self):
        return int(self)

    @property
    def address(self):
        return _hostport(self.proxy_host, self.proxy_port)

    def client(self):
        """A Client for this proxy's API (when started with http=True)."""
        from .client import Client
        return Client(self.http_host, self.http_port)

    def server(self):
        """A Server (Toxiproxy API) for this process's API."""
        from .client import Server
        return Server("http://" + _hostport(self.http_host, self.http_port))

    def events(self, **filters):
        """The fault journal of this process (its API), oldest first."""
        from .journal import fetch_events
        return fetch_events("http://" + _hostport(self.http_host, self.http_port),
                            **filters)

    def log(self, lines=200):
        """The last lines vaurien logged."""
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def running(self):
        return self.proc.poll() is None


def _wait_ready(proc, log_path, checks, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if all(check() for check in checks):
            return
        time.sleep(0.02)
    err = ""
    try:
        with open(log_path, errors="replace") as f:
            err = f.read()[-4000:]
    except OSError:
        pass
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        raise StartError("vaurien did not become ready within %gs" % timeout, err)
    raise StartError("vaurien exited with status %s" % proc.returncode, err)


def _api_up(base):
    def check():
        try:
            _http.request(base, "GET", "/version", timeout=1)
            return True
        except VaurienError:
            return False
    return check


def _start(cmd, log_output, checks, timeout):
    """Spawns cmd and waits until every check passes; returns (proc,
    log_path, tmpdir) or raises StartError with what the binary printed."""
    proc, log_path, stderr_path, tmpdir = _spawn(cmd, log_output)
    try:
        _wait_ready(proc, log_path, checks, timeout)
    except StartError as e:
        # what the binary printed on stderr tells why (a bad flag, a port in use)
        try:
            with open(stderr_path, errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise StartError(str(e).split("\n")[0], text or e.stderr) from None
    return proc, log_path, tmpdir


def _tls_ca_path():
    """Where a proxy writes the CA of the certificate it makes (--tls-ca-out)."""
    fd, path = tempfile.mkstemp(prefix="vaurien-ca-", suffix=".pem")
    os.close(fd)
    return path


def _spawn(cmd, log_output, env=None):
    """Starts cmd with its log and stderr in a file we can read."""
    tmpdir = tempfile.mkdtemp(prefix="vaurien-")
    stderr_path = os.path.join(tmpdir, "stderr.log")
    if log_output in (None, "-"):
        log_path = stderr_path
    else:
        log_path = log_output
        cmd += ["--log-output", log_output]
    err = open(stderr_path, "ab")
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, env=env, start_new_session=True)
    finally:
        err.close()
    return proc, log_path, stderr_path, tmpdir


def start_proxy(proxy_host="localhost", proxy_port=8000, backend_host="localhost",
                backend_port=8888, protocol="tcp", http=True, warmup=2,
                http_host="localhost", http_port=8080, options=None, log_level="info",
                log_output="-", port=None, behavior=None, seed=None, binary=None,
                timeout=10.0, backend=None, tls=False, backend_tls=False,
                backend_ca=None):
    """Starts `vaurien` as the original start_proxy() did, and returns its
    pid (a ProxyProcess) once the proxy and the API accept connections.

    port= is http_port (the original's slides used start_proxy(port=8080));
    a port of 0 picks a free one, reported as .proxy_port / .http_port;
    backend="host:port" sets both backend_host and backend_port; options is
    a list of extra flags or a {flag: value} dict; warmup is accepted and
    unused (readiness is checked, not slept). tls=True terminates TLS with
    a certificate made at start, whose CA is at handle.tls_ca (removed by
    stop_proxy); backend_tls=True speaks TLS to the backend, checked
    against backend_ca (a file) or the system's store. Raises StartError
    with what the binary printed when it does not start."""
    del warmup
    if port is not None:
        http_port = port
    if backend is not None:
        backend_host, backend_port = backend.rsplit(":", 1)
        backend_host = backend_host.strip("[]")
        backend_port = int(backend_port)
    exe = find_binary(binary)
    if proxy_port == 0:
        proxy_port = _free_port(proxy_host)
    if http and http_port == 0:
        http_port = _free_port(http_host)
    cmd = [exe, "--proxy", _hostport(proxy_host, proxy_port),
           "--backend", _hostport(backend_host, int(backend_port)),
           "--protocol", protocol, "--log-level", log_level]
    if behavior is not None:
        cmd += ["--behavior", behavior]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    tls_ca = _tls_ca_path() if tls else None
    if tls:
        cmd += ["--proxy-tls", "--tls-ca-out", tls_ca]
    if backend_tls:
        cmd += ["--backend-tls"] + (["--backend-ca", str(backend_ca)] if backend_ca else [])
    if http:
        cmd += ["--http", "--http-host", http_host, "--http-port", str(http_port)]
    if isinstance(options, dict):
        for k, v in options.items():
            flag = k if k.startswith("--") else "--" + k.replace("_", "-")
            cmd += [flag] if v is True else [flag, str(v)]
    elif options:
        cmd += [str(o) for o in options]
    connect_host = "127.0.0.1" if proxy_host in ("", "localhost", "0.0.0.0") else proxy_host
    api_host = "127.0.0.1" if http_host in ("", "localhost", "0.0.0.0") else http_host
    if http:
        checks = [_api_up("http://" + _hostport(api_host, http_port))]
    else:
        checks = [lambda: _can_connect(connect_host, proxy_port)]
    proc, log_path, tmpdir = _start(cmd, log_output, checks, timeout)
    handle = ProxyProcess(proc, proxy_host=connect_host, proxy_port=proxy_port,
                          http_host=api_host, http_port=http_port if http else None,
                          log_path=log_path, cmd=cmd, tmpdir=tmpdir, tls_ca=tls_ca)
    _running[handle.pid] = handle
    return handle


def start_server(host="127.0.0.1", port=0, config=None, seed=None, log_level="info",
                 log_output="-", binary=None, timeout=10.0, tls=False):
    """Starts `vaurien server` (the Toxiproxy API) and returns its handle;
    handle.server() is a Server client. Stop it with stop_proxy(). With
    tls=True every proxy terminates TLS, trusted through handle.tls_ca."""
    exe = find_binary(binary)
    if port == 0:
        port = _free_port(host)
    cmd = [exe, "server", "-host", host, "-port", str(port), "--log-level", log_level]
    if config is not None:
        cmd += ["-config", str(config)]
    if seed is not None:
        cmd += ["-seed", str(seed)]
    tls_ca = _tls_ca_path() if tls else None
    if tls:
        cmd += ["-proxy-tls", "-tls-ca-out", tls_ca]
    proc, log_path, tmpdir = _start(cmd, log_output,
                                    [_api_up("http://" + _hostport(host, port))], timeout)
    handle = ProxyProcess(proc, proxy_host=None, proxy_port=None, http_host=host,
                          http_port=port, log_path=log_path, cmd=cmd, tmpdir=tmpdir,
                          tls_ca=tls_ca)
    _running[handle.pid] = handle
    return handle


def stop_proxy(pid, grace=5.0):
    """Stops a process start_proxy() or start_server() started: SIGTERM,
    then SIGKILL after grace seconds; reaps it. Returns its exit status.
    An unknown pid raises ValueError('Not found'), as in the original."""
    handle = _running.pop(int(pid), None)
    if handle is None:
        raise ValueError("Not found")
    proc = handle.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if handle.log_path.startswith(handle.tmpdir):
        handle.final_log = handle.log()
    shutil.rmtree(handle.tmpdir, ignore_errors=True)
    if getattr(handle, "tls_ca", None):
        try:
            os.unlink(handle.tls_ca)
        except OSError:
            pass
    return proc.returncode
