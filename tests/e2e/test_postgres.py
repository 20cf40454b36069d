"""--protocol postgres: faults per query or extended-protocol group, real
ErrorResponses, with Debian's PostgreSQL 15, psycopg2, psql and a raw
extended-protocol client."""
import base64
import hashlib
import hmac
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import time

import pytest

from conftest import POSTGRES, wait_until

psycopg2 = pytest.importorskip("psycopg2")
import psycopg2.errors  # noqa: E402
import psycopg2.extensions  # noqa: E402


def connect(port, autocommit=False, **kw):
    c = psycopg2.connect(host="127.0.0.1", port=port, user="vaurien", password="secret",
                         dbname="vaurien", connect_timeout=5, **kw)
    c.autocommit = autocommit
    return c


def direct(postgres_server):
    return connect(postgres_server, autocommit=True)


def test_dummy_is_invisible_to_psycopg2(postgres_server, vaurien):
    v = vaurien("--protocol", "postgres", backend_port=postgres_server)
    c = connect(v.port)
    cur = c.cursor()
    cur.execute("DROP TABLE IF EXISTS t1")  # a NoticeResponse in the reply
    cur.execute("CREATE TABLE t1 (id INT PRIMARY KEY, v TEXT, b BYTEA)")
    for i in range(100):
        cur.execute("INSERT INTO t1 (id, v) VALUES (%s, %s)", (i, "v%d" % i))
    c.commit()
    cur.execute("SELECT id, v FROM t1 ORDER BY id")
    assert cur.fetchall() == [(i, "v%d" % i) for i in range(100)]
    # a rolled back transaction, a savepoint, a server error and after it
    cur.execute("UPDATE t1 SET v = 'gone' WHERE id < 10")
    c.rollback()
    cur.execute("SELECT count(*) FROM t1 WHERE v = 'gone'")
    assert cur.fetchone() == (0,)
    cur.execute("SAVEPOINT s1")
    cur.execute("DELETE FROM t1 WHERE id = 1")
    cur.execute("ROLLBACK TO SAVEPOINT s1")
    cur.execute("SELECT count(*) FROM t1")
    assert cur.fetchone() == (100,)
    c.commit()
    with pytest.raises(psycopg2.errors.DivisionByZero):
        cur.execute("SELECT 1 / 0")
    assert c.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INERROR
    c.rollback()
    # several statements in one Query, a ParameterStatus (SET), NULLs
    cur.execute("SET application_name = 'through-vaurien'; SELECT 2, NULL, ''")
    assert cur.fetchall() == [(2, None, "")]
    assert c.get_parameter_status("application_name") == "through-vaurien"
    # server-side prepared statements
    cur.execute("PREPARE byid (int) AS SELECT v FROM t1 WHERE id = $1")
    for i in (3, 5, 7):
        cur.execute("EXECUTE byid (%s)", (i,))
        assert cur.fetchone() == ("v%d" % i,)
    cur.execute("DEALLOCATE byid")
    # large rows, a few MB each way
    big = os.urandom(4 * 1024 * 1024)
    cur.execute("UPDATE t1 SET b = %s WHERE id = 1", (psycopg2.Binary(big),))
    c.commit()
    cur.execute("SELECT b FROM t1 WHERE id = 1")
    assert bytes(cur.fetchone()[0]) == big
    cur.execute("SELECT repeat('x', 3000000)")
    assert cur.fetchone()[0] == "x" * 3000000
    c.commit()
    c.close()


def test_copy_in_and_out(postgres_server, vaurien):
    import io
    v = vaurien("--protocol", "postgres", backend_port=postgres_server)
    c = connect(v.port)
    cur = c.cursor()
    cur.execute("DROP TABLE IF EXISTS copied; CREATE TABLE copied (id INT, v TEXT)")
    rows = "".join("%d\tvalue %d %s\n" % (i, i, "y" * (i % 300)) for i in range(20000))
    cur.copy_expert("COPY copied FROM STDIN", io.StringIO(rows))
    assert cur.rowcount == 20000
    c.commit()
    out = io.StringIO()
    cur.copy_expert("COPY (SELECT * FROM copied ORDER BY id) TO STDOUT", out)
    assert out.getvalue() == rows
    # a COPY the server refuses, then the connection goes on
    with pytest.raises(psycopg2.errors.InvalidTextRepresentation):
        cur.copy_expert("COPY copied FROM STDIN", io.StringIO("not a number\tx\n"))
    c.rollback()
    cur.execute("SELECT count(*) FROM copied")
    assert cur.fetchone() == (20000,)
    c.close()


def test_psql_through_the_proxy(postgres_server, vaurien):
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("no psql")
    v = vaurien("--protocol", "postgres", backend_port=postgres_server)
    env = dict(os.environ, PGPASSWORD="secret")
    # sslmode=prefer: the SSLRequest is answered N by the proxy, psql goes
    # on in plain text
    out = subprocess.run([psql, "-h", "127.0.0.1", "-p", str(v.port), "-U", "vaurien",
                          "-d", "vaurien", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                          "-c", "SELECT 40 + 2",
                          "-c", "PREPARE p (int) AS SELECT $1 * 2",
                          "-c", "EXECUTE p (21)",
                          "-c", "SELECT current_setting('ssl_library') IS NOT NULL"],
                         capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["42", "42", "t"]
    # sslmode=require: the proxy holds no TLS, the client refuses plain text
    out = subprocess.run([psql, "host=127.0.0.1 port=%d user=vaurien dbname=vaurien "
                          "sslmode=require" % v.port, "-X", "-c", "SELECT 1"],
                         capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode != 0
    assert "does not support SSL" in out.stderr
    assert "sorry" not in out.stderr


# A minimal client of the protocol, for the extended protocol (psycopg2
# and psql 15 send simple queries only).

def msg(t, body=b""):
    return t + struct.pack(">I", len(body) + 4) + body


def read_msg(s):
    head = b""
    while len(head) < 5:
        chunk = s.recv(5 - len(head))
        assert chunk, "the connection closed"
        head += chunk
    n = struct.unpack(">I", head[1:])[0] - 4
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        assert chunk, "the connection closed"
        body += chunk
    return head[:1], body


def read_to_ready(s):
    got = []
    while True:
        t, body = read_msg(s)
        got.append((t, body))
        if t == b"Z":
            return got


def raw_login(port, user="vaurien", password="secret", ask_tls=False):
    """Startup and SCRAM-SHA-256, by hand (first asking for GSSAPI
    encryption and TLS, which the proxy refuses, with ask_tls). Returns the
    socket, ready."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if ask_tls:
        for code in (80877104, 80877103):  # GSSENCRequest, SSLRequest
            s.sendall(struct.pack(">II", 8, code))
            assert s.recv(1) == b"N"
    params = b"user\0" + user.encode() + b"\0database\0vaurien\0\0"
    s.sendall(struct.pack(">II", len(params) + 8, 196608) + params)
    t, body = read_msg(s)
    assert t == b"R" and struct.unpack(">I", body[:4])[0] == 10, body
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = "n=,r=" + nonce
    first = ("n,," + first_bare).encode()
    s.sendall(msg(b"p", b"SCRAM-SHA-256\0" + struct.pack(">I", len(first)) + first))
    t, body = read_msg(s)
    assert t == b"R" and struct.unpack(">I", body[:4])[0] == 11
    server_first = body[4:].decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]),
                                 int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored = hashlib.sha256(client_key).digest()
    final_bare = "c=biws,r=" + attrs["r"]
    auth = ",".join([first_bare, server_first, final_bare]).encode()
    sig = hmac.new(stored, auth, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    s.sendall(msg(b"p", (final_bare + ",p=" + base64.b64encode(proof).decode()).encode()))
    got = read_to_ready(s)
    assert got[0][0] == b"R" and struct.unpack(">I", got[0][1][:4])[0] == 12
    assert (b"R", b"\0\0\0\0") in got
    return s


def extended(sql, params):
    """Parse, Bind (text parameters), Describe, Execute, Sync."""
    b = struct.pack(">HH", 0, len(params))
    for p in params:
        b += struct.pack(">I", len(p)) + p
    b += struct.pack(">H", 0)
    return (msg(b"P", b"\0" + sql.encode() + b"\0" + struct.pack(">H", 0)) +
            msg(b"B", b"\0\0" + b) + msg(b"D", b"P\0") +
            msg(b"E", b"\0" + struct.pack(">I", 0)) + msg(b"S"))


def rows_of(got):
    out = []
    for t, body in got:
        if t == b"D":
            n, at, row = struct.unpack(">H", body[:2])[0], 2, []
            for _ in range(n):
                ln = struct.unpack(">i", body[at:at + 4])[0]
                at += 4
                row.append(None if ln < 0 else body[at:at + ln].decode())
                at += max(ln, 0)
            out.append(tuple(row))
    return out


def error_fields(body):
    return {f[:1]: f[1:].decode() for f in body.split(b"\0") if f}


def test_the_extended_protocol_is_one_request_per_sync(postgres_server, vaurien):
    v = vaurien("--protocol", "postgres", "--behavior", "100:error",
                "--behavior-error-match", "statement=UPDATE", "--behavior-error-sqlstate",
                "40001", backend_port=postgres_server)
    s = raw_login(v.port, ask_tls=True)
    # three groups at once (pipelined): the middle one is answered by the
    # proxy, in its turn
    s.sendall(extended("SELECT $1::int + 1", [b"41"]) +
              extended("UPDATE nothing SET x = $1", [b"1"]) +
              extended("SELECT upper($1)", [b"abc"]))
    first = read_to_ready(s)
    assert rows_of(first) == [("42",)]
    assert [t for t, _ in first] == [b"1", b"2", b"T", b"D", b"C", b"Z"]
    second = read_to_ready(s)
    assert [t for t, _ in second] == [b"E", b"Z"]
    assert error_fields(second[0][1])[b"C"] == "40001"
    assert second[1][1] == b"I"
    third = read_to_ready(s)
    assert rows_of(third) == [("ABC",)]
    # a Flush in the middle: the server answers before the Sync
    s.sendall(msg(b"P", b"\0SELECT 7\0\0\0") + msg(b"H"))
    assert read_msg(s)[0] == b"1"
    s.sendall(msg(b"B", b"\0\0\0\0\0\0\0\0") + msg(b"E", b"\0\0\0\0\0") + msg(b"S"))
    assert rows_of(read_to_ready(s)) == [("7",)]
    # a group that draws an error while its client waits at a Flush: the
    # ErrorResponse comes at once, ReadyForQuery after the Sync, as from a
    # server (which discards the rest of the group)
    s.sendall(msg(b"P", b"\0UPDATE nothing SET x = 1\0\0\0") + msg(b"H"))
    t, body = read_msg(s)
    assert t == b"E" and error_fields(body)[b"C"] == "40001"
    s.settimeout(0.3)
    with pytest.raises(socket.timeout):
        s.recv(1)  # nothing more before the Sync
    s.settimeout(10)
    s.sendall(msg(b"B", b"\0\0\0\0\0\0\0\0") + msg(b"E", b"\0\0\0\0\0") + msg(b"S"))
    assert read_to_ready(s) == [(b"Z", b"I")]
    s.sendall(extended("SELECT $1::int * 3", [b"5"]))  # and the session goes on
    assert rows_of(read_to_ready(s)) == [("15",)]
    s.sendall(msg(b"X"))
    s.close()
    log = v.log_text()
    assert log.count("request: error") == 2


def test_error_is_serialization_failure_and_the_connection_goes_on(postgres_server,
                                                                  vaurien):
    v = vaurien("--protocol", "postgres", "--behavior", "100:error",
                "--behavior-error-sqlstate", "40001",
                "--behavior-error-message", "could not serialize access",
                "--behavior-error-match", "statement=UPDATE",
                backend_port=postgres_server)
    d = direct(postgres_server)
    d.cursor().execute("DROP TABLE IF EXISTS acct; CREATE TABLE acct (id INT, n INT);"
                       "INSERT INTO acct VALUES (1, 0)")
    c = connect(v.port)
    cur = c.cursor()
    cur.execute("SELECT n FROM acct WHERE id = 1")  # BEGIN, then the SELECT
    assert c.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
    with pytest.raises(psycopg2.errors.SerializationFailure) as e:
        cur.execute("UPDATE acct SET n = n + 1 WHERE id = 1")
    assert e.value.pgcode == "40001"
    assert "could not serialize access" in str(e.value)
    # the proxy said the transaction block failed, as a server would, and
    # refuses what a server refuses in a failed block
    assert c.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INERROR
    with pytest.raises(psycopg2.errors.InFailedSqlTransaction):
        cur.execute("SELECT 1")
    assert c.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INERROR
    c.rollback()
    assert c.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    cur.execute("SELECT n FROM acct WHERE id = 1")
    assert cur.fetchone() == (0,)
    c.commit()
    # outside a transaction block: idle after the error
    c.autocommit = True
    with pytest.raises(psycopg2.errors.SerializationFailure):
        cur.execute("UPDATE acct SET n = 5")
    assert c.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    c.close()
    d.close()


def test_a_commit_after_an_injected_error_rolls_back(postgres_server, vaurien):
    """The server never saw the failed statement, so its block is still
    open: the proxy turns the COMMIT into ABORT, and the server rolls back
    and answers ROLLBACK, as it does after a real error."""
    v = vaurien("--protocol", "postgres", "--behavior", "100:error",
                "--behavior-error-sqlstate", "40001",
                "--behavior-error-match", "statement=UPDATE",
                backend_port=postgres_server)
    d = direct(postgres_server)
    d.cursor().execute("DROP TABLE IF EXISTS ledger; CREATE TABLE ledger (n INT)")
    c = connect(v.port)
    cur = c.cursor()
    cur.execute("INSERT INTO ledger VALUES (1)")
    with pytest.raises(psycopg2.errors.SerializationFailure):
        cur.execute("UPDATE ledger SET n = 2")
    c.commit()  # an application that ignores the error
    dc = d.cursor()
    dc.execute("SELECT count(*) FROM ledger")
    assert dc.fetchone() == (0,)
    cur.execute("INSERT INTO ledger VALUES (3)")
    c.commit()
    dc.execute("SELECT n FROM ledger")
    assert dc.fetchall() == [(3,)]
    c.close()
    d.close()


def test_a_savepoint_rolls_back_past_an_injected_error(postgres_server, vaurien):
    v = vaurien("--protocol", "postgres", "--behavior", "100:error",
                "--behavior-error-sqlstate", "40001",
                "--behavior-error-match", "statement=UPDATE",
                backend_port=postgres_server)
    d = direct(postgres_server)
    d.cursor().execute("DROP TABLE IF EXISTS sp; CREATE TABLE sp (n INT)")
    c = connect(v.port)
    cur = c.cursor()
    cur.execute("INSERT INTO sp VALUES (1)")
    cur.execute("SAVEPOINT a")
    with pytest.raises(psycopg2.errors.SerializationFailure):
        cur.execute("UPDATE sp SET n = 2")
    with pytest.raises(psycopg2.errors.InFailedSqlTransaction):
        cur.execute("INSERT INTO sp VALUES (9)")
    cur.execute("ROLLBACK TO SAVEPOINT a")
    assert c.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
    cur.execute("INSERT INTO sp VALUES (3)")
    c.commit()
    dc = d.cursor()
    dc.execute("SELECT n FROM sp ORDER BY n")
    assert dc.fetchall() == [(1,), (3,)]
    c.close()
    d.close()


def test_default_error_is_53300_too_many_clients(postgres_server, vaurien):
    v = vaurien("--protocol", "postgres", "--behavior", "100:error",
                backend_port=postgres_server)
    c = connect(v.port, autocommit=True)  # the handshake is never faulted
    cur = c.cursor()
    for _ in range(3):
        with pytest.raises(psycopg2.OperationalError) as e:
            cur.execute("SELECT 1")
        assert e.value.pgcode == "53300"
        assert "sorry, too many clients already" in str(e.value)
        assert c.closed == 0  # still a working connection
    c.close()


def test_a_mix_errors_some_queries_and_keeps_their_order(postgres_server, vaurien):
    v = vaurien("--protocol", "postgres", "--behavior", "50:error", "--seed", "3",
                backend_port=postgres_server)
    c = connect(v.port, autocommit=True)
    cur = c.cursor()
    got = []
    for i in range(100):
        try:
            cur.execute("SELECT %s", (i,))
            assert cur.fetchone() == (i,)
            got.append("ok")
        except psycopg2.OperationalError as e:
            assert e.pgcode == "53300"
            got.append("error")
    assert 20 < got.count("error") < 80, got
    assert v.log_text().count("request: error") == got.count("error")
    c.close()


def test_table_and_statement_matchers(postgres_server, vaurien):
    v = vaurien("--protocol", "postgres", "--behavior", "100:error",
                "--behavior-error-match", "table=orders*", backend_port=postgres_server)
    c = connect(v.port, autocommit=True)
    cur = c.cursor()

    def q(sql):
        try:
            cur.execute(sql)
            return "ok"
        except psycopg2.OperationalError as e:
            assert e.pgcode == "53300"
            return "error"
    assert q("SELECT 1") == "ok"
    assert q("CREATE TABLE IF NOT EXISTS orders_2026 (id INT)") == "error"
    assert q("CREATE TABLE IF NOT EXISTS items (id INT)") == "ok"
    assert q("SELECT * FROM items") == "ok"
    assert q('select id from public."orders_2026" where id = 1') == "error"
    assert q("INSERT INTO orders_2026 VALUES (1)") == "error"
    c.close()
    v.stop()
    v = vaurien("--protocol", "postgres", "--behavior", "100:error",
                "--behavior-error-match", "statement=UPDATE", backend_port=postgres_server)
    c = connect(v.port, autocommit=True)
    cur = c.cursor()
    assert q("SELECT * FROM items") == "ok"
    assert q("update items set id = 2 where id = 1") == "error"
    assert q("INSERT INTO items VALUES (1)") == "ok"
    c.close()


def test_the_journal_shows_the_statement(postgres_server, vaurien, tmp_path):
    path = tmp_path / "journal.jsonl"
    v = vaurien("--protocol", "postgres", "--behavior", "100:error",
                "--behavior-error-match", "statement=DELETE", "--journal", str(path),
                backend_port=postgres_server)
    c = connect(v.port, autocommit=True)
    cur = c.cursor()
    with pytest.raises(psycopg2.OperationalError):
        cur.execute("DELETE FROM items WHERE id = 42")
    cur.execute("SELECT 1")
    c.close()
    assert wait_until(lambda: path.exists() and '"fault"' in path.read_text())
    faults = [json.loads(x) for x in path.read_text().splitlines()]
    faults = [f for f in faults if f.get("kind") == "fault"]
    assert len(faults) == 1
    assert faults[0]["behavior"] == "error"
    assert faults[0]["request"] == "DELETE FROM items WHERE id = 42"


def test_notifications_between_replies_reach_the_client(postgres_server, vaurien):
    v = vaurien("--protocol", "postgres", "--behavior", "100:delay",
                "--behavior-delay-sleep", "0.05", backend_port=postgres_server)
    c = connect(v.port, autocommit=True)
    c.cursor().execute("LISTEN news")
    d = direct(postgres_server)
    d.cursor().execute("NOTIFY news, 'hello'")
    deadline = time.monotonic() + 10
    while not c.notifies and time.monotonic() < deadline:
        select.select([c], [], [], 1)
        c.poll()
    assert [(n.channel, n.payload) for n in c.notifies] == [("news", "hello")]
    cur = c.cursor()
    cur.execute("SELECT 5")  # and the replies still match their requests
    assert cur.fetchone() == (5,)
    c.close()
    d.close()


def test_a_cancel_request_reaches_the_backend(postgres_server, vaurien):
    import threading
    v = vaurien("--protocol", "postgres", backend_port=postgres_server)
    c = connect(v.port, autocommit=True)
    cur = c.cursor()
    threading.Timer(0.5, c.cancel).start()  # a new connection, through the proxy
    t0 = time.monotonic()
    with pytest.raises(psycopg2.errors.QueryCanceled):
        cur.execute("SELECT pg_sleep(20)")
    assert time.monotonic() - t0 < 10
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    c.close()


def test_starttls_upgrades_both_sides_and_faults_go_on(postgres_server, vaurien, tmp_path):
    ca = str(tmp_path / "ca.pem")
    v = vaurien("--protocol", "postgres", "--starttls", "--tls-ca-out", ca,
                "--backend-ca", POSTGRES["cert"], "--behavior", "100:error",
                "--behavior-error-match", "statement=UPDATE",
                backend_port=postgres_server)
    # SCRAM's channel binding ties the login to the certificate the client
    # sees, the proxy's: the server (whose certificate differs) refuses it
    # through any proxy that terminates TLS, so it is off here
    with pytest.raises(psycopg2.OperationalError, match="channel binding"):
        connect(v.port, sslmode="verify-ca", sslrootcert=ca)
    c = connect(v.port, autocommit=True, sslmode="verify-ca", sslrootcert=ca,
                channel_binding="disable")
    cur = c.cursor()
    cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert cur.fetchone() == (True,)  # the server side is TLS too
    with pytest.raises(psycopg2.OperationalError) as e:
        cur.execute("UPDATE items SET id = 3")
    assert e.value.pgcode == "53300"
    cur.execute("SELECT 8")
    assert cur.fetchone() == (8,)
    c.close()
    assert "STARTTLS: both sides speak TLS" in v.log_text()


def test_a_replication_connection_is_passed_through(postgres_server, vaurien):
    v = vaurien("--protocol", "postgres", "--behavior", "100:error",
                backend_port=postgres_server)
    c = psycopg2.connect(host="127.0.0.1", port=v.port, user="vaurien", password="secret",
                         dbname="vaurien", connect_timeout=5, replication="database")
    c.autocommit = True
    cur = c.cursor()
    cur.execute("IDENTIFY_SYSTEM")  # no fault: passed through untouched
    assert len(cur.fetchone()) == 4
    c.close()


def test_pgbench_retries_injected_serialization_failures(postgres_server, vaurien):
    """pgbench's TPC-B-like transactions, simple and extended protocol: a
    40001 on 10 % of the UPDATEs is retried by pgbench (--max-tries) and
    no transaction fails."""
    import re
    pgbench = os.path.join("/usr/lib/postgresql/15/bin", "pgbench")
    if not os.path.exists(pgbench):
        pytest.skip("no pgbench")
    env = dict(os.environ, PGPASSWORD="secret")
    where = ["-h", "127.0.0.1", "-U", "vaurien", "vaurien"]
    r = subprocess.run([pgbench, "-i", "-s", "1", "-p", str(postgres_server)] + where,
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    for mode in ("simple", "extended"):
        v = vaurien("--protocol", "postgres", "--behavior", "10:error",
                    "--behavior-error-sqlstate", "40001", "--seed", "5",
                    "--behavior-error-match", "statement=UPDATE",
                    backend_port=postgres_server)
        r = subprocess.run([pgbench, "-M", mode, "-c", "2", "-T", "2", "--max-tries", "50",
                            "-p", str(v.port)] + where,
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        done = int(re.search(r"actually processed: (\d+)", r.stdout).group(1))
        retried = int(re.search(r"transactions retried: (\d+)", r.stdout).group(1))
        assert "number of failed transactions: 0 " in r.stdout
        assert done > 100 and retried > 0, r.stdout
        v.stop()


def query(sql):
    return msg(b"Q", sql.encode() + b"\0")


def fields_of(got):
    """What a reply says, in short: each message's type, an error's
    SQLSTATE and ReadyForQuery's status."""
    out = []
    for t, body in got:
        if t == b"E":
            out.append("E" + error_fields(body)[b"C"])
        elif t == b"Z":
            out.append("Z" + body.decode())
        else:
            out.append(t.decode())
    return out


def fail_a_block(s):
    """BEGIN, then an UPDATE that draws the injected 40001."""
    s.sendall(query("BEGIN"))
    assert fields_of(read_to_ready(s)) == ["C", "ZT"]
    s.sendall(query("UPDATE nothing SET x = 1"))
    assert fields_of(read_to_ready(s)) == ["E40001", "ZE"]


def test_a_block_the_proxy_failed_ends_as_a_server_s_would(postgres_server, vaurien):
    """Ways out of a failed block that real clients take: a ROLLBACK
    prepared under a name (pgjdbc binds "S_n" once a statement ran five
    times), requests pipelined behind the ROLLBACK or COMMIT, a Flush before
    the group; and a lone Sync in the block says failed, as a server's."""
    v = vaurien("--protocol", "postgres", "--behavior", "100:error",
                "--behavior-error-match", "statement=UPDATE*", "--behavior-error-sqlstate",
                "40001", backend_port=postgres_server)
    s = raw_login(v.port)
    s.sendall(msg(b"P", b"S_1\0COMMIT\0\0\0") + msg(b"P", b"S_2\0ROLLBACK\0\0\0") + msg(b"S"))
    assert fields_of(read_to_ready(s)) == ["1", "1", "ZI"]

    def bind(name):
        return (msg(b"B", b"\0" + name + b"\0\0\0\0\0\0\0") + msg(b"E", b"\0\0\0\0\0") +
                msg(b"S"))

    fail_a_block(s)
    s.sendall(msg(b"S"))  # a lone Sync: the server would say the block failed
    assert fields_of(read_to_ready(s)) == ["ZE"]
    s.sendall(bind(b"S_1"))  # a prepared COMMIT cannot become ABORT: refused
    assert fields_of(read_to_ready(s)) == ["E25P02", "ZE"]
    s.sendall(bind(b"S_2") + query("SELECT 1"))  # the prepared ROLLBACK ends it
    assert fields_of(read_to_ready(s)) == ["2", "C", "ZI"]
    assert rows_of(read_to_ready(s)) == [("1",)]
    for end in (query("ROLLBACK"), query("COMMIT"), msg(b"H") + extended("ROLLBACK", [])):
        fail_a_block(s)
        s.sendall(end + query("SELECT 2"))  # pipelined behind the block's end
        got = fields_of(read_to_ready(s))
        assert got[-2:] == ["C", "ZI"], got
        assert rows_of(read_to_ready(s)) == [("2",)]
    s.sendall(msg(b"C", b"SS_2\0") + msg(b"P", b"S_2\0SELECT 3\0\0\0") + msg(b"S"))
    assert fields_of(read_to_ready(s)) == ["3", "1", "ZI"]  # S_2 is no ROLLBACK now
    fail_a_block(s)
    s.sendall(bind(b"S_2"))
    assert fields_of(read_to_ready(s)) == ["E25P02", "ZE"]
    s.sendall(msg(b"X"))
    s.close()


def test_a_flush_before_a_group_is_not_its_head(postgres_server, vaurien):
    """libpq's pipeline mode may send a Flush with nothing before it: it
    asks for nothing, and the group after it is still matched by its
    statement."""
    v = vaurien("--protocol", "postgres", "--behavior", "100:error",
                "--behavior-error-match", "statement=UPDATE*", "--behavior-error-sqlstate",
                "40001", backend_port=postgres_server)
    s = raw_login(v.port)
    s.sendall(msg(b"H") + extended("UPDATE nothing SET x = 1", []))
    assert fields_of(read_to_ready(s)) == ["E40001", "ZI"]
    s.sendall(msg(b"H") + extended("SELECT 4", []))
    assert rows_of(read_to_ready(s)) == [("4",)]
    s.sendall(msg(b"X"))
    s.close()


@pytest.mark.parametrize("length", [2, 7, 65536])
def test_a_startup_length_the_server_refuses_is_passed_at_once(postgres_server, vaurien,
                                                               length):
    """A server closes at once on a startup packet length under 8 or over
    10000: the proxy does not wait for more bytes first."""
    v = vaurien("--protocol", "postgres", backend_port=postgres_server)
    s = socket.create_connection(("127.0.0.1", v.port), timeout=5)
    s.sendall(struct.pack(">I", length))
    t0 = time.monotonic()
    assert s.recv(100) == b""
    assert time.monotonic() - t0 < 3
    s.close()
    assert "malformed postgres request" in v.log_text()
