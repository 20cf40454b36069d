"""--protocol mysql: faults per command, real ERR packets, with mariadbd,
pymysql and the mariadb command-line client."""
import os
import shutil
import subprocess
import time

import pytest

pymysql = pytest.importorskip("pymysql")


def connect(port, **kw):
    return pymysql.connect(host="127.0.0.1", port=port, user="vaurien", password="secret",
                           database="vaurien", connect_timeout=5, read_timeout=30,
                           write_timeout=30, autocommit=None, **kw)


def test_dummy_is_invisible_to_pymysql(mariadb_server, vaurien):
    v = vaurien("--protocol", "mysql", backend_port=mariadb_server)
    c = connect(v.port, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS,
                max_allowed_packet=64 * 1024 * 1024)
    cur = c.cursor()
    cur.execute("CREATE TABLE IF NOT EXISTS t1 (id INT PRIMARY KEY, v VARCHAR(20), b LONGBLOB)")
    cur.execute("DELETE FROM t1")
    for i in range(50):
        cur.execute("INSERT INTO t1 (id, v) VALUES (%s, %s)", (i, "v%d" % i))
    c.commit()
    cur.execute("SELECT id, v FROM t1 ORDER BY id")
    assert cur.fetchall() == tuple((i, "v%d" % i) for i in range(50))
    cur.execute("SELECT 1; SELECT 2, 'two'; DO 0")
    assert cur.fetchall() == ((1,),)
    assert cur.nextset() and cur.fetchall() == ((2, "two"),)
    # a packet of more than 16 MiB each way
    big = os.urandom(17 * 1024 * 1024)
    cur.execute("UPDATE t1 SET b = %s WHERE id = 1", (big,))
    c.commit()
    cur.execute("SELECT b FROM t1 WHERE id = 1")
    assert cur.fetchone()[0] == big
    cur.execute("SELECT '' AS empty, NULL, 3")  # a row whose first byte is 0x00
    assert cur.fetchall() == (("", None, 3),)
    c.ping()
    c.select_db("mysql")
    c.close()


def test_mariadb_cli_through_dummy(mariadb_server, vaurien):
    cli = shutil.which("mariadb")
    if cli is None:
        pytest.skip("no mariadb client")
    v = vaurien("--protocol", "mysql", backend_port=mariadb_server)
    out = subprocess.run([cli, "--protocol=tcp", "-h", "127.0.0.1", "-P", str(v.port),
                          "-u", "vaurien", "-psecret", "--skip-ssl", "-N", "-e",
                          "SELECT 40 + 2; SHOW DATABASES LIKE 'vaurien'"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["42", "vaurien"]


def test_error_is_a_real_err_packet(mariadb_server, vaurien):
    v = vaurien("--protocol", "mysql", "--behavior", "100:error", backend_port=mariadb_server)
    c = connect(v.port)  # the handshake is never faulted (and sends no command)
    cur = c.cursor()
    with pytest.raises(pymysql.err.OperationalError) as e:
        cur.execute("SELECT 1")
    assert e.value.args == (1040, "Too many connections")
    with pytest.raises(pymysql.err.OperationalError):
        cur.execute("SELECT 2")  # still a working connection
    c.close()


def test_error_code_sqlstate_and_message(mariadb_server, vaurien):
    v = vaurien("--protocol", "mysql", "--behavior", "100:error",
                "--behavior-error-code", "1213", "--behavior-error-sqlstate", "40001",
                "--behavior-error-message", "Deadlock found when trying to get lock",
                backend_port=mariadb_server)
    c = connect(v.port)
    with pytest.raises(pymysql.err.OperationalError) as e:
        c.cursor().execute("UPDATE nothing SET x = 1")
    assert e.value.args == (1213, "Deadlock found when trying to get lock")
    c.close()


def run_mix(port, seed):
    from conftest import Vaurien
    v = Vaurien("--protocol", "mysql", "--behavior", "30:error", "--seed", str(seed),
                backend_port=port)
    try:
        c = connect(v.port)
        cur = c.cursor()
        out = []
        for i in range(100):
            try:
                cur.execute("SELECT %s, REPEAT('x', %s)", (i, i))
                assert cur.fetchall() == ((i, "x" * i),)  # its own result
                out.append("ok")
            except pymysql.err.OperationalError as e:
                assert e.args[0] == 1040
                out.append("error")
        c.close()
        return out
    finally:
        assert v.stop() == 0


def test_a_seeded_30_percent_mix_on_one_connection(mariadb_server):
    first = run_mix(mariadb_server, 31)
    assert first == run_mix(mariadb_server, 31)
    assert 15 <= first.count("error") <= 45


def test_delay_holds_each_command(mariadb_server, vaurien):
    v = vaurien("--protocol", "mysql", "--behavior", "100:delay",
                "--behavior-delay-sleep", "0.2", backend_port=mariadb_server)
    c = connect(v.port)
    cur = c.cursor()
    for i in range(3):
        t0 = time.monotonic()
        cur.execute("SELECT %s", (i,))
        assert cur.fetchone() == (i,)
        assert 0.2 <= time.monotonic() - t0 < 0.4
    c.close()


@pytest.mark.parametrize("mib", [20, 33])
def test_an_error_on_a_statement_of_16_mib_or_more_keeps_the_connection(mariadb_server,
                                                                        vaurien, mib):
    # a statement of 20 MiB goes as 2 packets (33 MiB: 3); the ERR packet
    # must follow the last one (sequence id 2, 3), or the client library
    # sees a wrong sequence number and drops the connection
    v = vaurien("--protocol", "mysql", "--behavior", "100:transient",
                "--behavior-transient-agitate", "1", "--behavior-transient-code", "1213",
                "--behavior-transient-sqlstate", "40001",
                "--behavior-transient-message", "Deadlock found when trying to get lock",
                backend_port=mariadb_server)
    c = connect(v.port, max_allowed_packet=64 * 1024 * 1024)
    cur = c.cursor()
    big = "SELECT LENGTH('" + "x" * (mib * 1024 * 1024) + "')"
    with pytest.raises(pymysql.err.OperationalError) as e:
        cur.execute(big)
    assert e.value.args == (1213, "Deadlock found when trying to get lock")
    cur.execute("SELECT 1")  # the same connection still works
    assert cur.fetchall() == ((1,),)
    cur.execute(big)  # transient: this one passes, to the server
    assert cur.fetchall() == ((mib * 1024 * 1024,),)
    c.close()
