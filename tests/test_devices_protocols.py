"""The pure device protocols: framing, dispenser and keypad frames, ESC/POS status and ticket
bytes, backoff, device configuration; with Hypothesis fuzzing of every parser."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import dispenser, escpos, keypad
from devices.escpos import PrintableTicket, StatusReplyParser, decode_status
from devices.framing import (
    ETX,
    MAX_DATA,
    MAX_FRAME,
    STX,
    Frame,
    FrameParser,
    crc16_modbus,
    encode,
)
from devices.supervisor import _issue_device_ticket, backoff_delay
from queue_service.config import ConfigError, parse_config
from queue_service.domain.site import ButtonConfig, Service
from queue_service.domain.state import SiteState
from queue_service.domain.vocab import DeviceKind, Priority, Role
from tests.halls import Bearer, Hall, counter, service

# -- framing -------------------------------------------------------------------------------


def test_frame_bytes_are_as_documented() -> None:
    # docs/devices.md: address 1, T, data "1;Q501;101"; CRC-16/MODBUS check value 0x4B37
    # for "123456789" is the standard test vector.
    assert crc16_modbus(b"123456789") == 0x4B37
    body = b"01T0A1;Q501;101"
    assert encode(1, "T", "1;Q501;101") == b"\x02" + body + b"%04X\x03" % crc16_modbus(body)


def test_parser_finds_frames_split_byte_by_byte_and_glued() -> None:
    frames = [encode(1, "T", f"1;Q{n:03d};{n}") for n in range(1, 4)]
    parser = FrameParser()
    found: list[Frame] = []
    for byte in b"".join(frames):
        found += parser.feed(bytes([byte]))
    assert [f.data for f in found] == ["1;Q001;1", "1;Q002;2", "1;Q003;3"]
    assert parser.feed(b"".join(frames)) == found  # all three glued in one read
    assert parser.stats.good_frames == 6 and parser.stats.discarded_bytes == 0


def test_parser_counts_garbage_corrupt_oversized_and_resyncs_on_start_byte() -> None:
    parser = FrameParser()
    good = encode(2, "H")
    corrupt = bytearray(encode(2, "K", "N"))
    corrupt[-3] = ord("0") if corrupt[-3] != ord("0") else ord("1")  # a CRC digit changed
    cut_short = encode(2, "K", "R")[:6]  # a new STX arrives before its end
    oversized = bytes([STX]) + b"A" * (MAX_FRAME + 5) + bytes([ETX])
    stream = b"xx" + bytes(corrupt) + cut_short + oversized + b"\x03" + good
    assert parser.feed(stream) == [Frame(2, "H", "")]
    s = parser.stats
    assert (s.good_frames, s.bad_frames) == (1, 3)
    assert s.discarded_bytes == len(stream) - len(good)
    assert parser.buffered == 0


def test_parser_reset_drops_a_partial_frame_as_bad() -> None:
    parser = FrameParser()
    assert parser.feed(encode(1, "H")[:5]) == []
    parser.reset()
    assert (parser.stats.bad_frames, parser.stats.discarded_bytes, parser.buffered) == (1, 5, 0)
    assert parser.feed(encode(1, "H")) == [Frame(1, "H", "")]


frame_values = st.builds(
    Frame,
    address=st.integers(0, 255),
    command=st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    data=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=MAX_DATA),
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in [*points, len(data)]:
        out.append(data[last:p])
        last = p
    return out


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=30))
def test_fuzz_arbitrary_bytes_never_crash_or_overflow(data: bytes, cuts: list[int]) -> None:
    parser = FrameParser()
    for chunk in chunked(data, cuts):
        for frame in parser.feed(chunk):
            # Anything emitted is a real frame that was on the line.
            assert encode(frame.address, frame.command, frame.data) in data
        assert parser.buffered <= MAX_FRAME
    s = parser.stats
    assert s.discarded_bytes + parser.buffered <= len(data)


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(frame_values, max_size=8),
    noise=st.lists(st.binary(max_size=40), min_size=9, max_size=9),
    cuts=st.lists(st.integers(0, 1000), max_size=40),
)
def test_fuzz_valid_frames_embedded_in_noise_are_all_found(
    frames: list[Frame], noise: list[bytes], cuts: list[int]
) -> None:
    stream = noise[0] + b"".join(
        encode(f.address, f.command, f.data) + n for f, n in zip(frames, noise[1:], strict=False)
    )
    parser = FrameParser()
    found = [f for chunk in chunked(stream, cuts) for f in parser.feed(chunk)]
    assert found == frames


@settings(max_examples=300, deadline=None)
@given(frame=frame_values, at=st.integers(0, 200), value=st.integers(0, 255), how=st.integers(0, 2))
def test_fuzz_a_corrupted_frame_never_yields_an_event(
    frame: Frame, at: int, value: int, how: int
) -> None:
    good = encode(frame.address, frame.command, frame.data)
    at %= len(good)
    raw = bytearray(good)
    if how == 0:  # one byte changed
        if raw[at] == value:
            value ^= 0x55
        raw[at] = value
    elif how == 1:  # one byte lost
        del raw[at]
    else:  # one byte inserted inside the frame (before STX or after ETX it is noise)
        at = 1 + at % (len(good) - 1)
        if at == 1 and value == STX:
            value = 0x41  # STX + STX + frame is noise before a frame, not a corruption
        raw.insert(at, value)
    parser = FrameParser()
    assert parser.feed(bytes(raw)) == []
    # ... and the next good frame is found all the same.
    assert parser.feed(good) == [frame]


# -- dispenser and keypad frames --------------------------------------------------------

SERVICE = Service("Q", "a", "Layanan", "Service", "Q", 15, daily_quota=400)


def test_dispenser_ticket_frame_decodes_and_numbers_are_checked_against_the_button() -> None:
    ticket = dispenser.decode_ticket(Frame(1, "T", "2;X014;77"))
    assert ticket == dispenser.DispenserTicket(1, 2, "X014", 77)
    prefix, block = ButtonConfig(2, "R", prefix="X"), ButtonConfig(1, "Q", range=(501, 999))
    assert dispenser.number_allowed(prefix, SERVICE, "X014")
    assert not dispenser.number_allowed(prefix, SERVICE, "Q014")
    assert dispenser.number_allowed(block, SERVICE, "Q501")
    assert not dispenser.number_allowed(block, SERVICE, "Q500")  # a kiosk number
    assert not dispenser.number_allowed(block, SERVICE, "X501")
    for bad in ("2;X014", "2;x014;1", ";X014;1", "2;X014;1;", "123;X1;1"):
        assert dispenser.decode_ticket(Frame(1, "T", bad)) is None
    assert dispenser.decode_ticket(Frame(1, "K", "2;X014;77")) is None


def test_scan_frame_carries_a_code_of_4_to_16_letters_or_digits_and_its_seq() -> None:
    assert dispenser.decode_scan(Frame(1, "C", "K7Q2MX;78")) == dispenser.DispenserScan(
        1, "K7Q2MX", 78
    )
    assert dispenser.decode_scan(Frame(1, "C", "k7q2;9999999999")) == dispenser.DispenserScan(
        1, "k7q2", 9999999999
    )
    assert dispenser.decode_scan(Frame(1, "C", "A" * 16 + ";1")) is not None
    # Unreadable codes: refused under their seq when it can be read, else not answered.
    for bad, seq in (
        ("K7Q;5", 5),  # too short
        ("A" * 17 + ";6", 6),  # too long
        ("K7-Q2M;7", 7),  # not a letter or digit
        (";8", 8),
        ("K7Q2MX;1;9", 9),
        ("K7 Q2MX;10", 10),
        ("K7Q2MX", None),  # no seq
        ("K7Q2MX;", None),
        ("K7Q2MX;12345678901", None),  # an 11-digit seq
        ("K7Q2MX;-1", None),
    ):
        assert dispenser.decode_scan(Frame(1, "C", bad)) is None, bad
        assert dispenser.scan_seq(Frame(1, "C", bad)) == seq, bad
    # Only `C` frames are scans; the dispenser's `T` is not read as one.
    assert dispenser.decode_scan(Frame(1, "T", "K7Q2MX;78")) is None
    assert dispenser.scan_seq(Frame(1, "T", "K7Q;78")) is None
    assert dispenser.decode_ticket(Frame(1, "C", "1;Q501;78")) is None


@settings(max_examples=300, deadline=None)
@given(
    code=st.text(alphabet="K7Q2MXkq-; ~", max_size=20),
    seq=st.text(alphabet="0123456789;-", max_size=12),
)
def test_fuzz_scan_frames_are_read_or_refused_never_misread(code: str, seq: str) -> None:
    frame = Frame(1, "C", f"{code};{seq}")
    scan = dispenser.decode_scan(frame)
    readable = 4 <= len(code) <= 16 and code.isalnum()
    well_formed = readable and seq.isdigit() and len(seq) <= 10
    assert (scan is not None) == well_formed
    if scan is not None:
        assert (scan.code, scan.seq) == (code, int(seq))
    if seq.isdigit() and len(seq) <= 10:
        assert dispenser.scan_seq(frame) == int(seq)


def test_check_in_answers_and_refusal_codes_are_framed() -> None:
    assert FrameParser().feed(dispenser.checked_in(3, 78, "Q012")) == [Frame(3, "K", "78;Q012")]
    codes = {
        "site_closed": "04",
        "quota_reached": "06",
        "idempotency_key_reused": "07",
        "booking_not_found": "08",
        "too_early": "09",
        "too_late": "10",
        "already_checked_in": "11",
        "booking_cancelled": "12",
        "unreadable_code": "13",
        "database_unavailable": "14",
        "invalid_transition": "99",
    }
    for reason, code in codes.items():
        assert FrameParser().feed(dispenser.nak(3, 78, reason)) == [Frame(3, "N", f"78;{code}")]
    assert len(set(dispenser.NAK_CODES.values())) == len(dispenser.NAK_CODES)


def test_replies_to_dispensers_and_keypads_are_framed() -> None:
    assert FrameParser().feed(dispenser.ack(3, 77, "X014")) == [Frame(3, "A", "77;X014")]
    assert FrameParser().feed(dispenser.nak(3, 77, "quota_reached")) == [Frame(3, "N", "77;06")]
    assert FrameParser().feed(keypad.display(7, "N", 12, "Q001")) == [Frame(7, "D", "N;12;Q001")]
    assert FrameParser().feed(keypad.display(7, "O", 0, None)) == [Frame(7, "D", "O;0;")]
    assert FrameParser().feed(keypad.error(7, "N", 12, "queue_empty")) == [Frame(7, "E", "N;12;01")]
    assert FrameParser().feed(keypad.error(7, "N", 12, "whatever")) == [Frame(7, "E", "N;12;99")]


def test_key_frame_carries_key_and_sequence_number_and_anything_else_is_malformed() -> None:
    assert keypad.decode_key(Frame(4, "C", "N;9999")) == keypad.KeyPress(4, "N", 9999)
    assert keypad.decode_key(Frame(4, "C", "Z;0")) == keypad.KeyPress(4, "Z", 0)  # E08 later
    for bad in ("N", "N;", ";1", "N;12345", "n;1", "N;1;", "NN;1", "N;-1", "N; 1"):
        assert keypad.decode_key(Frame(4, "C", bad)) is None, bad
    for other in ("K", "T", "D", "H"):
        assert keypad.decode_key(Frame(4, other, "N;1")) is None
    # A keypad without sequence numbers (`K`, the earlier protocol) is told so, not ignored.
    assert keypad.is_key_frame(Frame(4, "K", "N")) and keypad.is_key_frame(Frame(4, "C", ""))
    assert not keypad.is_key_frame(Frame(4, "H", ""))
    assert FrameParser().feed(keypad.malformed(Frame(4, "K", "N"))) == [Frame(4, "E", "N;;09")]
    assert FrameParser().feed(keypad.malformed(Frame(4, "C", "~x"))) == [Frame(4, "E", ";;09")]
    assert FrameParser().feed(keypad.malformed(Frame(4, "C", ""))) == [Frame(4, "E", ";;09")]
    assert keypad.next_seq(41) == 42 and keypad.next_seq(9999) == 0


def test_press_memory_answers_a_resent_press_alike_and_a_new_or_other_press_not() -> None:
    memory = keypad.PressMemory()
    first = keypad.KeyPress(1, "N", 9999)
    assert memory.repeat(first) is None  # nothing remembered: a service just started
    answer = keypad.display(1, "N", 9999, "Q001")
    memory.remember(first, answer)
    assert memory.repeat(keypad.KeyPress(1, "N", 9999)) == answer  # re-sent
    assert memory.repeat(keypad.KeyPress(1, "N", 0)) is None  # wrapped: a new press
    assert memory.repeat(keypad.KeyPress(1, "R", 9999)) is None  # another key: new
    assert memory.repeat(keypad.KeyPress(2, "N", 9999)) is None  # another keypad
    second = keypad.KeyPress(1, "N", 0)
    memory.remember(second, keypad.error(1, "N", 0, "counter_busy"))
    assert memory.repeat(first) is None  # only the last press is remembered
    assert memory.repeat(second) == keypad.error(1, "N", 0, "counter_busy")
    assert len(memory) == 1


@settings(max_examples=300, deadline=None)
@given(frame=frame_values)
def test_fuzz_payload_decoders_never_crash(frame: Frame) -> None:
    ticket = dispenser.decode_ticket(frame)
    if ticket is not None:
        assert frame.command == "T" and ticket.number in frame.data
    scan = dispenser.decode_scan(frame)
    if scan is not None:
        assert frame.command == "C" and frame.data == f"{scan.code};{scan.seq}"
        assert 4 <= len(scan.code) <= 16 and scan.code.isalnum() and scan.code.isascii()
    seq = dispenser.scan_seq(frame)
    if scan is not None:
        assert seq == scan.seq
    if seq is not None:
        assert FrameParser().feed(dispenser.nak(frame.address, seq, "unreadable_code"))
    press = keypad.decode_key(frame)
    if press is not None:
        assert frame.command == "C" and frame.data[:2] == f"{press.key};"
        assert int(frame.data[2:]) == press.seq
        assert 0 <= press.seq < keypad.SEQ_MODULUS
    if keypad.is_key_frame(frame) and press is None:
        assert FrameParser().feed(keypad.malformed(frame))[0].data.endswith(";;09")


# -- ESC/POS status ------------------------------------------------------------------------

FIXED = 0b0001_0010

# (n, bit or mask, flag) for every status bit docs/devices.md names.
STATUS_BITS = [
    (1, 0x08, "offline"),
    (2, 0x04, "cover_open"),
    (2, 0x20, "paper_end_stop"),
    (2, 0x40, "error_occurred"),
    (3, 0x08, "autocutter_error"),
    (3, 0x20, "unrecoverable_error"),
    (3, 0x40, "auto_recoverable_error"),
    (4, 0x0C, "paper_near_end"),
    (4, 0x60, "paper_end"),
]
FLAGS = [name for _, _, name in STATUS_BITS]


@pytest.mark.parametrize(("n", "mask", "flag"), STATUS_BITS)
def test_each_status_bit_decodes_to_its_flag_alone(n: int, mask: int, flag: str) -> None:
    status = decode_status({n: FIXED | mask})
    assert [name for name in FLAGS if getattr(status, name)] == [flag]
    assert status.replies == frozenset({n})
    assert not any(getattr(decode_status({n: FIXED}), name) for name in FLAGS)


def test_status_problems_and_the_fixed_pattern() -> None:
    assert decode_status({4: FIXED | 0x60, 2: FIXED | 0x20}).problems() == ["paper_end"]
    assert decode_status({4: FIXED | 0x0C}).problems() == []  # near end still prints
    assert decode_status({1: FIXED | 0x08}).problems() == ["offline"]
    assert decode_status({3: FIXED | 0x08}).error
    everything = decode_status({1: 0x1E, 2: 0x76, 3: 0x7A, 4: 0x7E})
    assert everything.complete and everything.problems() == ["paper_end", "cover_open", "error"]
    for bad in (0x00, 0xFF, 0x12 | 0x80, 0x12 & ~0x10, 0x12 | 0x01, 0x10):
        assert not escpos.is_status_byte(bad)
        assert decode_status({4: bad}).replies == frozenset()
    assert escpos.status_request(4) == b"\x10\x04\x04"
    with pytest.raises(ValueError, match=r"1\.\.4"):
        escpos.status_request(5)


def test_a_flag_no_received_reply_decides_is_unknown_on_the_board_and_nan_on_metrics() -> None:
    """docs/devices.md, "Unknown printer status": a flag is known only from the reply that
    decides it (or from any reply that sets it); the others are None, shown as NaN."""
    from devices import metric_families as device_metrics
    from devices.supervisor import DeviceHealth

    only_online = decode_status({1: FIXED})  # a printer that answers DLE EOT 1 alone
    assert only_online.flags() == {
        "paper_near_end": None,
        "paper_end": None,
        "cover_open": None,
        "offline": False,
        "error": None,
    }
    assert only_online.problems() == [] and only_online.summary == "unknown"
    assert only_online.unknown() == ["paper_end", "cover_open", "error", "paper_near_end"]
    # DLE EOT 2 says printing stopped for paper: paper end is known (1) without the sensor.
    stopped = decode_status({2: FIXED | 0x20})
    assert stopped.flag("paper_end") is True and stopped.flag("paper_near_end") is None
    assert stopped.flag("cover_open") is False and stopped.summary == "problem"
    everything = decode_status({1: FIXED, 2: FIXED, 3: FIXED, 4: FIXED | 0x0C})
    assert everything.unknown() == [] and everything.summary == "ok"
    assert everything.flag("paper_near_end") is True

    text = device_metrics.render(
        [
            DeviceHealth(
                "hall", "p1", DeviceKind.PRINTER, printer=only_online, connected=True, alive=True
            )
        ]
    )
    values = {
        line.split("{")[0]: line.rsplit(" ", 1)[1]
        for line in text.splitlines()
        if line.startswith("qms_printer_")
    }
    assert values == {
        "qms_printer_paper_near_end": "NaN",
        "qms_printer_paper_end": "NaN",
        "qms_printer_cover_open": "NaN",
        "qms_printer_offline": "0",
        "qms_printer_error": "NaN",
    }


pattern_bytes = st.sampled_from([v for v in range(256) if escpos.is_status_byte(v)])
noise_bytes = st.lists(
    st.sampled_from([v for v in range(256) if not escpos.is_status_byte(v)]), max_size=8
).map(bytes)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), expected=st.integers(0, 10))
def test_fuzz_status_parser_emits_only_pattern_bytes(data: bytes, expected: int) -> None:
    parser = StatusReplyParser()
    for _ in range(expected):
        parser.expect()
    out = parser.feed(data)
    assert len(out) <= expected and all(escpos.is_status_byte(v) for v in out)
    assert parser.good_frames + parser.discarded_bytes == len(data)


@settings(max_examples=300, deadline=None)
@given(replies=st.lists(st.tuples(noise_bytes, pattern_bytes), max_size=10))
def test_fuzz_status_replies_in_noise_are_all_found(replies: list[tuple[bytes, int]]) -> None:
    parser = StatusReplyParser()
    found = []
    for noise, reply in replies:
        parser.expect()
        found += parser.feed(noise + bytes([reply]))
    assert found == [reply for _, reply in replies]


@settings(max_examples=200, deadline=None)
@given(replies=st.dictionaries(st.integers(-5, 10), st.integers(-5, 300)))
def test_fuzz_decode_status_never_crashes(replies: dict[int, int]) -> None:
    status = decode_status(replies)
    assert status.replies <= frozenset(escpos.STATUS_KINDS)


# -- the ticket -----------------------------------------------------------------------------


def test_ticket_bytes_hold_everything_the_citizen_needs() -> None:
    wita = ZoneInfo("Asia/Makassar")
    ticket = PrintableTicket(
        hall="Mal Pelayanan Publik Kota Banjarmasin",
        agency="Dinas Kependudukan dan Pencatatan Sipil",
        service="Perekaman KTP-el",
        number="A012",
        issued_at=datetime(2026, 11, 23, 9, 5, tzinfo=wita),
        people_ahead=4,
        estimated_wait_seconds=610.0,
        status_url="http://antrian.local/ui/status.html#abc_DEF-123",
        priority="lansia",
        estimated_wait_range=(420.0, 890.0),
    )
    data = escpos.ticket_bytes(ticket)
    assert data.startswith(b"\x1b@")  # ESC @ initialise
    assert b"\x1d!\x55\x1bE\x01A012\n" in data  # GS ! 6x6, bold, the number
    assert b"Senin, 23 November 2026  09:05 WITA" in data
    assert b"Antrian di depan Anda: 4 orang" in data
    assert b"Perkiraan tunggu: sekitar 11 menit (7-15 menit)" in data
    assert b"PRIORITAS LANSIA" in data
    url = b"http://antrian.local/ui/status.html#abc_DEF-123"
    store = bytes([0x1D, 0x28, 0x6B, len(url) + 3, 0, 0x31, 0x50, 0x30]) + url
    assert b"\x1d(k\x04\x001A2\x00" in data and store in data  # QR model 2, stored URL
    assert b"\x1d(k\x03\x001Q0" in data  # ... printed
    assert data.endswith(b"\x1dVB\x00")  # feed and cut
    assert escpos.wait_text(None) == "belum dapat diperkirakan"
    assert escpos.wait_text(7200) == "sekitar 2 jam 0 menit"
    assert escpos.wait_text(7200, (5000.0, 9000.0)) == "sekitar 2 jam 0 menit"  # no range
    assert escpos.wait_text(610.0) == "sekitar 11 menit"


@pytest.mark.parametrize(
    ("priority", "printed"),
    [
        ("lansia", b"PRIORITAS LANSIA\n"),
        ("disabilitas", b"PRIORITAS DISABILITAS\n"),
        ("ibu_hamil", b"PRIORITAS IBU HAMIL\n"),
    ],
)
def test_each_priority_group_is_printed_by_name(priority: str, printed: bytes) -> None:
    ticket = PrintableTicket(
        hall="MPP",
        agency="Dukcapil",
        service="KTP-el",
        number="A001",
        issued_at=datetime(2026, 11, 23, 9, 5, tzinfo=ZoneInfo("Asia/Makassar")),
        people_ahead=0,
        estimated_wait_seconds=None,
        status_url="http://antrian.local/ui/status.html#t",
        priority=priority,
    )
    assert printed in escpos.ticket_bytes(ticket)


def test_backoff_doubles_to_its_ceiling_with_jitter() -> None:
    assert [backoff_delay(n, 1.0, 60.0, 1.0) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_delay(3, 1.0, 60.0, 0.0) == 4.0  # half of the ceiling at least
    assert backoff_delay(10_000, 0.5, 30.0, 0.5) == 22.5


# -- configuration ---------------------------------------------------------------------------


def config_with(devices: list[dict[str, Any]], **site: Any) -> dict[str, Any]:
    """A hall with services Q (a daily quota) and R, counter c1 and kiosk "Kiosk 1", its
    `devices` and `site` fields, as the configuration file reads."""
    return Hall(
        name="Hall",
        hours={"mon": ("08:00", "15:00")},
        agencies=({"id": "a", "name": "A"},),
        services=(
            service("Q", name_id="Q", name_en="Q", daily_quota=300),
            service("R", name_id="R", name_en="R"),
        ),
        counters=(counter("c1", "Q", "R", name="1"),),
        devices=devices,
        site_fields=site,
        tokens=(Bearer("k", Role.KIOSK, name="Kiosk 1"),),
    ).raw()


def test_device_configuration_is_read() -> None:
    config = parse_config(
        config_with(
            [
                {
                    "id": "d",
                    "kind": "dispenser",
                    "url": "rfc2217://10.0.0.5:4001",
                    "baudrate": 19200,
                    "parity": "E",
                    "buttons": {
                        "1": {"service": "Q", "range": [501, 999]},
                        "2": {"service": "R", "prefix": "X", "priority": "lansia"},
                    },
                },
                {
                    "id": "k",
                    "kind": "keypad",
                    "url": "/dev/serial/by-id/usb-FTDI-if00",
                    "addresses": {"1": "c1"},
                },
                {
                    "id": "p",
                    "kind": "printer",
                    "url": "socket://printer.local:9100",
                    "kiosk": "Kiosk 1",
                },
            ],
            public_url="http://antrian.local:8080/",
        )
    )
    site = config.sites["hall"]
    assert site.public_url == "http://antrian.local:8080"
    d, k, p = site.devices
    assert d.serial.baudrate == 19200 and d.serial.parity == "E" and d.is_network
    assert d.buttons[1] == ButtonConfig(1, "Q", range=(501, 999))
    assert d.buttons[2] == ButtonConfig(2, "R", prefix="X", priority=Priority.LANSIA)
    assert k.addresses == {1: "c1"} and not k.is_network
    assert p.kiosk == "Kiosk 1" and p.silence_timeout == 10.0


def test_a_priority_button_issues_a_priority_ticket_from_the_dispenser() -> None:
    button = {"service": "R", "prefix": "X", "priority": "lansia"}
    device = {"id": "d", "kind": "dispenser", "url": "/dev/x", "buttons": {"2": button}}
    site = parse_config(config_with([device])).sites["hall"]
    monday_9am = datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("Asia/Makassar"))
    state = SiteState(site, site.service_day(monday_9am))
    events = _issue_device_ticket(
        state, monday_9am, button=site.devices[0].buttons[2], number="X001"
    )
    for event in events:
        state.apply(event)
    (ticket,) = state.tickets.values()
    assert (ticket.number, ticket.priority, ticket.source) == ("X001", "lansia", "dispenser")


@pytest.mark.parametrize(
    ("device", "problem"),
    [
        (
            {"id": "d", "kind": "scanner", "url": "/dev/x"},
            "kind: must be one of dispenser, keypad, printer",
        ),
        (
            {
                "id": "d",
                "kind": "dispenser",
                "url": "/dev/x",
                "buttons": {"1": {"service": "Q", "prefix": "X", "priority": "vip"}},
            },
            "priority: must be one of lansia, disabilitas, ibu_hamil",
        ),
        (
            {"id": "d", "kind": "keypad", "url": "COM3", "addresses": {"1": "c1"}},
            "url: must be a device path",
        ),
        (
            {"id": "d", "kind": "keypad", "url": "socket://h:99999", "addresses": {"1": "c1"}},
            "port 1..65535",
        ),
        (
            {"id": "d", "kind": "keypad", "url": "/dev/x", "addresses": {"1": "c9"}},
            "unknown counter 'c9'",
        ),
        (
            {"id": "d", "kind": "dispenser", "url": "/dev/x", "buttons": {"1": {"service": "Q"}}},
            "give either `prefix`",
        ),
        (
            {
                "id": "d",
                "kind": "dispenser",
                "url": "/dev/x",
                "buttons": {"1": {"service": "Q", "prefix": "R"}},
            },
            "is a service prefix",
        ),
        (
            {
                "id": "d",
                "kind": "dispenser",
                "url": "/dev/x",
                "buttons": {"1": {"service": "Q", "range": [100, 999]}},
            },
            "within the kiosk numbers",
        ),
        (
            {
                "id": "d",
                "kind": "dispenser",
                "url": "/dev/x",
                "buttons": {"1": {"service": "R", "range": [500, 999]}},
            },
            "has no daily_quota",
        ),
        (
            {
                "id": "d",
                "kind": "dispenser",
                "url": "/dev/x",
                "buttons": {"1": {"service": "NOPE", "prefix": "X"}},
            },
            "unknown service 'NOPE'",
        ),
        (
            {"id": "d", "kind": "printer", "url": "/dev/x", "kiosk": "Kiosk 9"},
            "no kiosk token is named 'Kiosk 9'",
        ),
        ({"id": "d", "kind": "printer", "url": "/dev/x"}, "kiosk: is required"),
        (
            {"id": "d", "kind": "keypad", "url": "/dev/x", "addresses": {"1": "c1"}, "baud": 9600},
            "baud: is not a known setting",
        ),
    ],
)
def test_device_configuration_problems_name_file_key_and_problem(
    device: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config_with([device], public_url="http://x"), "hall.toml")
    assert any(
        p.startswith("hall.toml: sites[0].devices[0]") and problem in p for p in info.value.problems
    ), info.value.problems


def on_port_d1(device_id: str, q_range: list[int], x_service: str) -> dict[str, Any]:
    """A dispenser on /dev/d1: button 1 numbers Q in `q_range`, button 2 gives `x_service`
    tickets with prefix X."""
    return {
        "id": device_id,
        "kind": "dispenser",
        "url": "/dev/d1",
        "buttons": {
            "1": {"service": "Q", "range": q_range},
            "2": {"service": x_service, "prefix": "X"},
        },
    }


def test_a_printer_needs_the_public_url_and_clashing_numbers_are_refused() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            config_with(
                [
                    {"id": "p", "kind": "printer", "url": "/dev/p", "kiosk": "Kiosk 1"},
                    on_port_d1("d1", [400, 600], "R"),
                    on_port_d1("d2", [600, 700], "Q"),
                ]
            ),
            "hall.toml",
        )
    text = "\n".join(info.value.problems)
    assert "sites[0].public_url: is required when the site has a printer" in text
    assert "devices[2].url: another device of this site already uses this port" in text
    assert "devices[2].buttons.1.range: overlaps the range of" in text
    assert "devices[2].buttons.2.prefix: 'X' is already used by" in text
