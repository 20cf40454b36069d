"""--protocol smtp: faults per command, real 4xx/5xx replies, with aiosmtpd
as the server and smtplib as the client."""
import smtplib
import time

import pytest

from conftest import recv_exactly

MSG = (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\n"
       b"first line\r\n.a line that starts with a dot\r\n..two dots\r\nlast line\r\n")


def smtp(v, timeout=5):
    return smtplib.SMTP("127.0.0.1", v.port, timeout=timeout)


def test_dummy_is_invisible_to_smtplib(smtp_server, vaurien):
    v = vaurien("--protocol", "smtp", backend_port=smtp_server.port)
    s = smtp(v)
    for _ in range(3):
        s.sendmail("a@example.org", ["b@example.org"], MSG)
    big = MSG + b"x" * 998 + b"\r\n" + (b"y" * 70 + b"\r\n") * 20000
    s.sendmail("a@example.org", ["b@example.org", "c@example.org"], big)
    s.quit()
    assert len(smtp_server.messages) == 4
    assert smtp_server.messages[0].endswith(b"..two dots\r\nlast line\r\n") or \
        b".a line that starts with a dot" in smtp_server.messages[0]
    assert smtp_server.messages[3].count(b"y" * 70) == 20000


def test_error_is_a_451_with_enhanced_code(smtp_server, vaurien):
    v = vaurien("--protocol", "smtp", "--behavior", "100:error", backend_port=smtp_server.port)
    s = smtp(v)  # the greeting is the server's own
    code, msg = s.ehlo()
    assert code == 451 and msg.startswith(b"4.3.0")
    with pytest.raises(smtplib.SMTPSenderRefused):
        s.sendmail("a@example.org", ["b@example.org"], MSG)
    s.close()
    assert smtp_server.messages == []


def test_error_code_and_enhanced_code_options(smtp_server, vaurien):
    v = vaurien("--protocol", "smtp", "--behavior", "100:error", "--behavior-error-code", "554",
                "--behavior-error-enhanced", "5.7.1", "--behavior-error-message", "relay denied",
                backend_port=smtp_server.port)
    s = smtp(v)
    assert s.noop() == (554, b"5.7.1 relay denied")
    s.close()


def test_data_command_and_end_of_message_errors(smtp_server, vaurien):
    # warmup lets EHLO, MAIL, RCPT through; DATA then fails
    v = vaurien("--protocol", "smtp", "--behavior", "100:transient",
                "--behavior-transient-warmup", "3", backend_port=smtp_server.port)
    s = smtp(v)
    with pytest.raises(smtplib.SMTPDataError) as e:
        s.sendmail("a@example.org", ["b@example.org"], MSG)
    assert e.value.smtp_code == 451
    s.close()
    assert smtp_server.messages == []
    # warmup 4: DATA passes, the end of the message gets the error; the
    # server did take the message, the client is told it failed
    v = vaurien("--protocol", "smtp", "--behavior", "100:transient",
                "--behavior-transient-warmup", "4", backend_port=smtp_server.port)
    s = smtp(v)
    with pytest.raises(smtplib.SMTPDataError) as e:
        s.sendmail("a@example.org", ["b@example.org"], MSG)
    assert e.value.smtp_code == 451
    # the conversation goes on
    s.sendmail("a@example.org", ["b@example.org"], MSG)
    s.quit()
    assert len(smtp_server.messages) == 2


def run_mix(port, seed):
    from conftest import Vaurien
    v = Vaurien("--protocol", "smtp", "--behavior", "30:error", "--seed", str(seed),
                backend_port=port)
    try:
        s = smtplib.SMTP("127.0.0.1", v.port, timeout=5)
        out = []
        for i in range(100):
            code, msg = s.noop()
            assert code in (250, 451), (code, msg)
            out.append(code)
        s.close()
        return out
    finally:
        assert v.stop() == 0


def test_a_seeded_30_percent_mix_on_one_connection(smtp_server):
    first = run_mix(smtp_server.port, 21)
    assert first == run_mix(smtp_server.port, 21)
    assert 15 <= first.count(451) <= 45


def test_pipelined_commands_get_their_own_replies(smtp_server, vaurien):
    v = vaurien("--protocol", "smtp", "--behavior", "50:error", "--seed", "4",
                backend_port=smtp_server.port)
    s = v.connect()
    greeting = s.recv(1000)
    assert greeting.startswith(b"220")
    s.sendall(b"NOOP\r\n" * 40)
    data = b""
    deadline = time.monotonic() + 5
    while data.count(b"\r\n") < 40 and time.monotonic() < deadline:
        data += s.recv(10000)
    lines = data.split(b"\r\n")[:40]
    assert all(l.startswith(b"250 ") or l.startswith(b"451 4.3.0") for l in lines), lines
    assert 5 <= sum(l.startswith(b"451") for l in lines) <= 35
    s.close()


def test_delay_holds_each_command(smtp_server, vaurien):
    v = vaurien("--protocol", "smtp", "--behavior", "100:delay",
                "--behavior-delay-sleep", "0.2", backend_port=smtp_server.port)
    s = smtp(v)
    for _ in range(3):
        t0 = time.monotonic()
        assert s.noop()[0] == 250
        assert 0.2 <= time.monotonic() - t0 < 0.4
    s.close()
