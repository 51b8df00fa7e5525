"""Tests of the site configuration: the shipped example, the site clock, and error reports."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest

import queue_service.domain.site as site_module
from devices.framing import FrameError
from devices.link import LinkError
from devices.sim.hardware import KeypadBusy
from queue_service.config import AppConfig, ConfigError, hash_token, load_config
from queue_service.errors import AntrianError
from queue_service.reports.build import ReportRangeError
from queue_service.settings import SettingsError
from queue_service.store.db import EmbeddedPostgresError
from tests import halls

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "example-hall.toml"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def break_label(site: site_module.Site, text: str) -> str | None:
    """The label of the site's break at the UTC time `text`; None outside a break."""
    brk = site.current_break(utc(text))
    return None if brk is None else brk.label


@pytest.fixture(scope="module")
def example() -> AppConfig:
    return load_config(EXAMPLE)


# --- the shipped example ------------------------------------------------------------------


def test_example_loads_with_a_realistic_hall(example: AppConfig) -> None:
    site = example.sites["mpp-banjarmasin"]
    assert site.name == "Mal Pelayanan Publik Kota Banjarmasin"
    assert str(site.timezone) == "Asia/Makassar"
    assert len(site.agencies) >= 6
    assert len(site.services) >= 15
    assert len(site.counters) >= 20
    assert sum(1 for c in site.counters.values() if len(c.services) >= 2) >= 5
    assert any(len(c.services) >= 3 for c in site.counters.values())
    assert any(not c.uses_start for c in site.counters.values())
    assert all(c.zone for c in site.counters.values())


def test_example_services_are_plausible(example: AppConfig) -> None:
    site = example.sites["mpp-banjarmasin"]
    prefixes = [s.prefix for s in site.services.values()]
    assert len(set(prefixes)) == len(prefixes)
    assert all(len(p) == 1 for p in prefixes)
    assert {s.priority_policy for s in site.services.values()} == {"strict", "interleave", "fifo"}
    for service in site.services.values():
        assert service.name_id
        assert service.name_en
        assert 10 <= service.target_wait_minutes <= 30
        assert service.agency in site.agencies
    assert site.services["PASPOR"].daily_quota == 60
    assert site.services["KTP-EL"].daily_quota == 150
    assert site.services["KTP-EL"].cutoff == time(14, 0)
    assert any(s.daily_quota is None for s in site.services.values())
    # every agency offers something
    assert {s.agency for s in site.services.values()} == set(site.agencies)


def test_example_hours_and_breaks(example: AppConfig) -> None:
    site = example.sites["mpp-banjarmasin"]
    assert site.hours["mon"] == (time(8, 0), time(15, 0))
    assert site.hours["sat"] == (time(8, 0), time(12, 0))
    assert "sun" not in site.hours
    labels = {b.label: b for b in site.breaks}
    jumat = labels["Istirahat Salat Jumat"]
    assert jumat.days == ("fri",)
    assert (jumat.start, jumat.end) == (time(11, 30), time(13, 0))
    assert set(labels["Istirahat"].days) == {"mon", "tue", "wed", "thu"}


def test_example_second_site(example: AppConfig) -> None:
    assert list(example.sites) == ["mpp-banjarmasin", "mpp-banjarbaru"]
    small = example.sites["mpp-banjarbaru"]
    assert str(small.timezone) == "Asia/Makassar"
    assert (len(small.agencies), len(small.services), len(small.counters)) == (3, 4, 4)


def test_example_demo_tokens_match_their_documented_plaintext(example: AppConfig) -> None:
    by_hash = example.token_by_hash()
    assert len(by_hash) == len(example.tokens)  # no digest configured twice
    for plain, role in [
        ("demo-kiosk", "kiosk"),
        ("demo-manager", "manager"),
        ("demo-admin", "admin"),
    ]:
        token = by_hash[hash_token(plain)]
        assert token.role == role
        assert token.sites == ()
        assert token.allows_site("mpp-banjarbaru")

    big = example.sites["mpp-banjarmasin"]
    for counter_id in big.counters:
        token = by_hash[hash_token(f"demo-{counter_id}")]
        assert token.role == "counter"
        assert token.counters == (counter_id,)
        assert token.sites == ("mpp-banjarmasin",)
        assert not token.allows_site("mpp-banjarbaru")

    shared = by_hash[hash_token("demo-banjarbaru-counters")]
    assert shared.role == "counter"
    assert shared.sites == ("mpp-banjarbaru",)
    assert set(shared.counters) == set(example.sites["mpp-banjarbaru"].counters)

    # The plaintexts are documented in the file, next to a loud warning.
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "WARNING" in text
    for plain in (
        "demo-kiosk",
        "demo-manager",
        "demo-admin",
        "demo-banjarbaru-counters",
        "demo-loket-01",
    ):
        assert plain in text


def test_hash_token_is_sha256_hex_of_utf8() -> None:
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_token("abc") == abc


# --- the site clock -----------------------------------------------------------------------


def test_service_day_rolls_over_at_local_midnight(example: AppConfig) -> None:
    site = example.sites["mpp-banjarmasin"]
    # WITA is UTC+8: 15:59:59Z is 23:59:59 local on the 22nd, 16:00:00Z is the 23rd.
    assert site.service_day(utc("2026-11-22T15:59:59")) == date(2026, 11, 22)
    assert site.service_day(utc("2026-11-22T16:00:00")) == date(2026, 11, 23)
    # Early morning local time is still the same local day although UTC is the day before.
    assert site.service_day(utc("2026-11-22T23:30:00")) == date(2026, 11, 23)
    assert site.local(utc("2026-11-22T16:00:00")).isoformat() == "2026-11-23T00:00:00+08:00"


def test_friday_prayer_break(example: AppConfig) -> None:
    site = example.sites["mpp-banjarmasin"]
    # 2026-11-20 is a Friday; 04:00Z is 12:00 WITA.
    noon_friday = utc("2026-11-20T04:00:00")
    assert site.is_open(noon_friday)
    brk = site.current_break(noon_friday)
    assert brk is not None
    assert brk.label == "Istirahat Salat Jumat"
    # Start inclusive, end exclusive.
    assert break_label(site, "2026-11-20T03:30:00") == "Istirahat Salat Jumat"
    assert site.current_break(utc("2026-11-20T03:29:59")) is None
    assert site.current_break(utc("2026-11-20T05:00:00")) is None
    # Friday closes at 15:30 local, later than other weekdays.
    assert site.is_open(utc("2026-11-20T07:29:59"))
    assert not site.is_open(utc("2026-11-20T07:30:00"))


def test_weekday_lunch_break_and_closed_days(example: AppConfig) -> None:
    site = example.sites["mpp-banjarmasin"]
    # Thursday 2026-11-19, 12:30 WITA: lunch break, not the Friday one.
    assert break_label(site, "2026-11-19T04:30:00") == "Istirahat"
    # Thursday 11:45 WITA: open, no break (the Friday break does not apply).
    assert site.is_open(utc("2026-11-19T03:45:00"))
    assert site.current_break(utc("2026-11-19T03:45:00")) is None
    # Thursday 15:00 WITA: closed (closing time is exclusive); 07:59 not yet open.
    assert not site.is_open(utc("2026-11-19T07:00:00"))
    assert not site.is_open(utc("2026-11-18T23:59:00"))
    assert site.is_open(utc("2026-11-19T00:00:00"))
    # Saturday 10:00 WITA open, 12:00 closed; Sunday closed all day.
    assert site.is_open(utc("2026-11-21T02:00:00"))
    assert not site.is_open(utc("2026-11-21T04:00:00"))
    assert site.opening(utc("2026-11-22T02:00:00")) is None
    assert not site.is_open(utc("2026-11-22T02:00:00"))


# --- a hall open all day: "24:00" closes at the end of the local day ----------------------


def all_day_site(
    days: Sequence[str] = site_module.WEEKDAYS[:6],
    *,
    breaks: Sequence[Mapping[str, object]] = (),
    cutoff: str | None = None,
) -> site_module.Site:
    """Open "00:00"-"24:00" on `days` (default: every day but Sunday), WITA (UTC+8)."""
    return halls.Hall(
        name="Hall",
        hours=halls.every_day(days=days),
        breaks=breaks,
        services=(halls.service("Q", cutoff=cutoff, name_id="Layanan", name_en="Service"),),
        counters=(halls.counter("c00", name="Loket"),),
    ).site()


def wita(text: str) -> datetime:
    """A local WITA (UTC+8) time, as the UTC instant the site is asked about."""
    return datetime.fromisoformat(text + "+08:00").astimezone(UTC)


def test_24_00_is_accepted_as_a_closing_time_meaning_the_end_of_the_day(tmp_path: Path) -> None:
    site = all_day_site()
    end = site_module.END_OF_DAY
    assert site.hours["mon"] == (time(0, 0), end)
    assert "sun" not in site.hours
    # Not a datetime.time (which cannot hold 24:00), but ordered and written as one.
    assert not isinstance(end, time)
    assert time(23, 59, 59, 999999) < end and end > time(23, 59)
    assert f"{end:%H:%M}" == "24:00" and end.isoformat() == "24:00"
    # A closing of 24:00 after a later opening, in a file.
    text = VALID.replace('mon = ["08:00", "15:00"]', 'mon = ["08:00", "24:00"]')
    assert load_config(write(tmp_path, text)).sites["mpp-test"].hours["mon"] == (time(8, 0), end)


def test_an_all_day_hall_is_open_until_the_last_instant_of_the_day() -> None:
    site = all_day_site()
    # Monday 23 November 2026 (and Tuesday after it): open all day.
    assert site.is_open(wita("2026-11-23T00:00:00"))
    assert site.is_open(wita("2026-11-23T12:00:00"))
    assert site.is_open(wita("2026-11-23T23:59:30"))
    assert site.is_open(wita("2026-11-23T23:59:59.900000"))
    assert site.is_open(wita("2026-11-23T23:59:59.999999"))
    # The next day's 00:00 belongs to the next day: Tuesday is open too.
    assert site.is_open(wita("2026-11-24T00:00:00"))
    assert site.service_day(wita("2026-11-24T00:00:00")) == date(2026, 11, 24)


def test_an_all_day_hall_closes_at_midnight_only_when_the_next_day_is_closed() -> None:
    site = all_day_site()  # closed on Sunday
    # Saturday 28 November 2026: open to its last instant.
    assert site.is_open(wita("2026-11-28T23:59:30"))
    assert site.is_open(wita("2026-11-28T23:59:59.900000"))
    # Sunday: closed from 00:00, all day.
    assert not site.is_open(wita("2026-11-29T00:00:00"))
    assert not site.is_open(wita("2026-11-29T23:59:59.900000"))
    # Monday: open again from 00:00.
    assert site.is_open(wita("2026-11-30T00:00:00"))


def test_the_hall_stays_open_through_a_midnight_only_between_24_00_and_00_00(
    tmp_path: Path,
) -> None:
    site = all_day_site()  # Monday to Saturday
    assert site.continues_day_before("tue")
    assert site.continues_day_before("sat")
    assert not site.continues_day_before("mon")  # Sunday is closed: Monday opens
    assert not site.continues_day_before("sun")  # closed
    assert all_day_site(site_module.WEEKDAYS).continues_day_before("mon")
    text = VALID.replace(
        'mon = ["08:00", "15:00"]', 'mon = ["08:00", "24:00"]\ntue = ["00:00", "12:00"]'
    )
    late = load_config(write(tmp_path, text)).sites["mpp-test"]
    assert late.continues_day_before("tue")
    assert late.is_open(wita("2026-11-23T23:59:59.900000"))
    assert late.is_open(wita("2026-11-24T00:00:00"))
    assert not late.is_open(wita("2026-11-24T12:00:00"))


def test_a_break_may_end_at_24_00_and_a_cutoff_of_24_00_is_no_cutoff() -> None:
    site = all_day_site(
        breaks=({"days": ["mon"], "start": "23:00", "end": "24:00", "label": "Malam"},),
        cutoff="24:00",
    )
    (brk,) = site.breaks
    assert (brk.start, brk.end) == (time(23, 0), site_module.END_OF_DAY)
    assert f"{brk.end:%H:%M}" == "24:00"  # as the display shows its end
    assert site.current_break(wita("2026-11-23T22:59:59")) is None
    assert site.current_break(wita("2026-11-23T23:00:00")) is brk
    assert site.current_break(wita("2026-11-23T23:59:59.900000")) is brk
    assert site.current_break(wita("2026-11-24T00:00:00")) is None
    assert site.services["Q"].cutoff is None


# --- invalid files ------------------------------------------------------------------------

_TOKEN = hash_token("test-loket-01")

VALID = f"""\
[[sites]]
id = "mpp-test"
name = "MPP Test"
timezone = "Asia/Makassar"

[sites.hours]
mon = ["08:00", "15:00"]

[[sites.agencies]]
id = "disdukcapil"
name = "Disdukcapil"

[[sites.services]]
code = "KTP-EL"
agency = "disdukcapil"
name_id = "KTP-el"
name_en = "ID card"
prefix = "A"
target_wait_minutes = 20
daily_quota = 150
cutoff = "14:00"

[[sites.services]]
code = "KK"
agency = "disdukcapil"
name_id = "Kartu Keluarga"
name_en = "Family card"
prefix = "B"
target_wait_minutes = 15

[[sites.counters]]
id = "loket-01"
name = "Loket 1"
services = ["KTP-EL", "KK"]

[[tokens]]
name = "Loket 1"
role = "counter"
sha256 = "{_TOKEN}"
sites = ["mpp-test"]
counters = ["loket-01"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hall.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def test_a_bad_file_is_an_antrian_error_with_its_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, VALID.replace('id = "mpp-test"', 'id = "MPP"')))
    assert isinstance(info.value, AntrianError) and info.value.code == "invalid_config"
    assert info.value.details["problems"] == info.value.problems


@pytest.mark.parametrize(
    ("error", "code", "also"),
    [
        (SettingsError, "invalid_settings", ValueError),
        (EmbeddedPostgresError, "embedded_postgres", OSError),
        (ReportRangeError, "invalid_range", ValueError),
        (FrameError, "invalid_frame", ValueError),
        (LinkError, "device_link", Exception),
        (KeypadBusy, "keypad_busy", ValueError),
    ],
)
def test_errors_keep_their_kind_under_the_one_root(
    error: type[AntrianError], code: str, also: type[Exception]
) -> None:
    raised = error("why")
    assert isinstance(raised, AntrianError) and isinstance(raised, also)
    assert (raised.code, str(raised)) == (code, "why")


def test_minimal_valid_file_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    assert config.path == str(tmp_path / "hall.toml")
    assert list(config.sites["mpp-test"].services) == ["KTP-EL", "KK"]
    assert config.sites["mpp-test"].survey == "skm"  # the nine SKM elements by default


def test_a_site_may_ask_for_the_one_tap_survey(tmp_path: Path) -> None:
    text = VALID.replace(
        'timezone = "Asia/Makassar"', 'timezone = "Asia/Makassar"\nsurvey = "quick"'
    )
    assert load_config(write(tmp_path, text)).sites["mpp-test"].survey == "quick"


# (case id, text replaced in VALID, replacement, dotted key, expected words in the message)
INVALID = [
    (
        "unknown-timezone",
        'timezone = "Asia/Makassar"',
        'timezone = "Asia/Banjarmasin"',
        "sites[0].timezone",
        "unknown time zone 'Asia/Banjarmasin'",
    ),
    (
        "duplicate-prefix",
        'prefix = "B"',
        'prefix = "A"',
        "sites[0].services[1].prefix",
        "prefix 'A' is already used by service 'KTP-EL'",
    ),
    (
        "bad-prefix",
        'prefix = "B"',
        'prefix = "b1"',
        "sites[0].services[1].prefix",
        "upper-case letters",
    ),
    (
        "duplicate-service-code",
        'code = "KK"',
        'code = "KTP-EL"',
        "sites[0].services[1].code",
        "duplicate service code 'KTP-EL'",
    ),
    (
        "counter-serves-unknown-service",
        'services = ["KTP-EL", "KK"]',
        'services = ["KTP-EL", "KK", "PASPOR"]',
        "sites[0].counters[0].services",
        "unknown service 'PASPOR'",
    ),
    (
        "service-served-by-no-counter",
        'services = ["KTP-EL", "KK"]',
        'services = ["KTP-EL"]',
        "sites[0].services",
        "service 'KK' is served by no counter",
    ),
    (
        "counter-serves-nothing",
        'services = ["KTP-EL", "KK"]',
        "services = []",
        "sites[0].counters[0].services",
        "at least one service",
    ),
    (
        "unknown-agency",
        'agency = "disdukcapil"\nname_id = "Kartu',
        'agency = "dukcapil"\nname_id = "Kartu',
        "sites[0].services[1].agency",
        "unknown agency 'dukcapil'",
    ),
    (
        "bad-time-format-hours",
        'mon = ["08:00", "15:00"]',
        'mon = ["8:00", "15:00"]',
        "sites[0].hours.mon",
        "HH:MM",
    ),
    (
        "bad-time-format-cutoff",
        'cutoff = "14:00"',
        'cutoff = "14.00"',
        "sites[0].services[0].cutoff",
        "must be a time written HH:MM, got '14.00'",
    ),
    (
        "impossible-time",
        'cutoff = "14:00"',
        'cutoff = "25:00"',
        "sites[0].services[0].cutoff",
        "not a valid time of day",
    ),
    (
        "opening-at-24:00",
        'mon = ["08:00", "15:00"]',
        'mon = ["24:00", "24:00"]',
        "sites[0].hours.mon",
        "24:00 (the end of the day) cannot be an opening time",
    ),
    (
        "closing-at-24:01",
        'mon = ["08:00", "15:00"]',
        'mon = ["08:00", "24:01"]',
        "sites[0].hours.mon",
        "is not a valid time of day (00:00 to 23:59, or 24:00): '24:01'",
    ),
    (
        "closing-at-25:00",
        'mon = ["08:00", "15:00"]',
        'mon = ["08:00", "25:00"]',
        "sites[0].hours.mon",
        "is not a valid time of day (00:00 to 23:59, or 24:00): '25:00'",
    ),
    (
        "break-starting-at-24:00",
        "[sites.hours]\n",
        '[[sites.breaks]]\ndays = ["mon"]\nstart = "24:00"\nend = "24:00"\n\n[sites.hours]\n',
        "sites[0].breaks[0].start",
        "24:00 (the end of the day) cannot be a break's start",
    ),
    (
        "break-ending-at-24:30",
        "[sites.hours]\n",
        '[[sites.breaks]]\ndays = ["mon"]\nstart = "23:00"\nend = "24:30"\n\n[sites.hours]\n',
        "sites[0].breaks[0].end",
        "is not a valid time of day (00:00 to 23:59, or 24:00): '24:30'",
    ),
    (
        "cutoff-at-24:01",
        'cutoff = "14:00"',
        'cutoff = "24:01"',
        "sites[0].services[0].cutoff",
        "is not a valid time of day (00:00 to 23:59, or 24:00): '24:01'",
    ),
    (
        "closing-before-opening",
        'mon = ["08:00", "15:00"]',
        'mon = ["15:00", "08:00"]',
        "sites[0].hours.mon",
        "opening time must be before closing time",
    ),
    (
        "unknown-day",
        'mon = ["08:00", "15:00"]',
        'mon = ["08:00", "15:00"]\nsenin = ["09:00", "12:00"]',
        "sites[0].hours.senin",
        "unknown day",
    ),
    (
        "quota-too-high",
        "daily_quota = 150",
        "daily_quota = 1000",
        "sites[0].services[0].daily_quota",
        "between 1 and 999",
    ),
    (
        "quota-zero",
        "daily_quota = 150",
        "daily_quota = 0",
        "sites[0].services[0].daily_quota",
        "between 1 and 999",
    ),
    (
        "string-where-int",
        "target_wait_minutes = 15",
        'target_wait_minutes = "15"',
        "sites[0].services[1].target_wait_minutes",
        "must be an integer, got str",
    ),
    (
        "float-where-int",
        "target_wait_minutes = 15",
        "target_wait_minutes = 15.5",
        "sites[0].services[1].target_wait_minutes",
        "must be an integer, got float",
    ),
    (
        "boolean-where-int",
        "daily_quota = 150",
        "daily_quota = true",
        "sites[0].services[0].daily_quota",
        "must be an integer, got a boolean",
    ),
    (
        "missing-required-key",
        'name_en = "Family card"\n',
        "",
        "sites[0].services[1].name_en",
        "is required",
    ),
    (
        "unknown-key-typo",
        "daily_quota = 150",
        "daily_qouta = 150",
        "sites[0].services[0].daily_qouta",
        "is not a known setting",
    ),
    (
        "unknown-counter-key",
        'name = "Loket 1"\nservices',
        'name = "Loket 1"\nzona = "A"\nservices',
        "sites[0].counters[0].zona",
        "is not a known setting",
    ),
    (
        "unknown-top-level-key",
        "[[sites]]\n",
        "version = 2\n\n[[sites]]\n",
        "version",
        "is not a known setting",
    ),
    (
        "bad-priority-policy",
        "target_wait_minutes = 15",
        'target_wait_minutes = 15\npriority_policy = "vip"',
        "sites[0].services[1].priority_policy",
        "strict, interleave, fifo",
    ),
    (
        "counter-token-without-counters",
        'counters = ["loket-01"]\n',
        "",
        "tokens[0].counters",
        "a counter token must name the counters it may use",
    ),
    (
        "token-unknown-counter",
        'counters = ["loket-01"]',
        'counters = ["loket-99"]',
        "tokens[0].counters",
        "unknown counter 'loket-99'",
    ),
    (
        "token-unknown-site",
        'sites = ["mpp-test"]',
        'sites = ["mpp-x"]',
        "tokens[0].sites",
        "unknown site 'mpp-x'",
    ),
    (
        "counter-token-without-site",
        'sites = ["mpp-test"]\n',
        "",
        "tokens[0].sites",
        "a counter token must name its site(s)",
    ),
    (
        "survey-token-without-counters",
        'role = "counter"\nsha256 = "'
        + _TOKEN
        + '"\nsites = ["mpp-test"]\ncounters = ["loket-01"]\n',
        'role = "survey"\nsha256 = "' + _TOKEN + '"\nsites = ["mpp-test"]\n',
        "tokens[0].counters",
        "a survey token must name the counters it may use",
    ),
    (
        "kiosk-token-bound-to-counters",
        'role = "counter"',
        'role = "kiosk"',
        "tokens[0].counters",
        "only counter and survey tokens are bound to counters",
    ),
    (
        "token-unknown-role",
        'role = "counter"',
        'role = "operator"',
        "tokens[0].role",
        "must be one of kiosk, counter, survey, manager, admin",
    ),
    (
        "invalid-sha256-short",
        f'sha256 = "{_TOKEN}"',
        'sha256 = "abc123"',
        "tokens[0].sha256",
        "64-character hex SHA-256",
    ),
    (
        "invalid-sha256-not-hex",
        f'sha256 = "{_TOKEN}"',
        f'sha256 = "{"g" * 64}"',
        "tokens[0].sha256",
        "64-character hex SHA-256",
    ),
    (
        "priority-policy-unknown",
        "target_wait_minutes = 15",
        'target_wait_minutes = 15\npriority_policy = "vip-first"',
        "sites[0].services[1].priority_policy",
        "must be one of strict, interleave, fifo",
    ),
    (
        "survey-mode-unknown",
        'timezone = "Asia/Makassar"',
        'timezone = "Asia/Makassar"\nsurvey = "stars"',
        "sites[0].survey",
        "must be one of skm, quick",
    ),
    (
        "site-id-uppercase",
        'id = "mpp-test"',
        'id = "MPP Test"',
        "sites[0].id",
        "lower-case letters",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "key", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in INVALID],
)
def test_invalid_file_is_reported_with_file_key_and_problem(
    tmp_path: Path, old: str, new: str, key: str, message: str
) -> None:
    assert VALID.count(old) == 1, f"test case does not apply cleanly: {old!r}"
    path = write(tmp_path, VALID.replace(old, new))
    problems = problems_of(path)
    prefix = f"{path}: {key}: "
    matching = [p for p in problems if p.startswith(prefix)]
    assert matching, f"no problem for {key!r} in {problems}"
    assert any(message in p for p in matching), problems


def test_all_problems_are_reported_in_one_pass(tmp_path: Path) -> None:
    text = (
        VALID.replace('timezone = "Asia/Makassar"', 'timezone = "WITA"')
        .replace('prefix = "B"', 'prefix = "A"')
        .replace("daily_quota = 150", "daily_quota = 1500")
        .replace(f'sha256 = "{_TOKEN}"', 'sha256 = "x"')
    )
    path = write(tmp_path, text)
    problems = problems_of(path)
    keys = [p.removeprefix(f"{path}: ").split(": ", 1)[0] for p in problems]
    assert set(keys) >= {
        "sites[0].timezone",
        "sites[0].services[1].prefix",
        "sites[0].services[0].daily_quota",
        "tokens[0].sha256",
    }
    assert all(p.startswith(f"{path}: ") for p in problems)


def test_second_site_problems_name_its_index(tmp_path: Path) -> None:
    second = VALID.split("[[tokens]]")[0].replace('id = "mpp-test"', 'id = "mpp-two"')
    second = second.replace('timezone = "Asia/Makassar"', 'timezone = "Mars/Olympus"')
    path = write(tmp_path, VALID + "\n" + second)
    problems = problems_of(path)
    expected = "unknown time zone 'Mars/Olympus' (e.g. 'Asia/Makassar')"
    assert f"{path}: sites[1].timezone: {expected}" in problems
    assert not any("sites[0]" in p for p in problems)


def test_duplicate_site_id(tmp_path: Path) -> None:
    site = VALID.split("[[tokens]]")[0]
    path = write(tmp_path, VALID + "\n" + site)
    problems = problems_of(path)
    assert f"{path}: sites[1].id: duplicate site id 'mpp-test'" in problems


def test_invalid_toml_syntax(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace('name = "MPP Test"', "name = MPP Test"))
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: invalid TOML: ")
    assert re.search(r"line \d+", problems[0])


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "hall.toml"
    path.write_bytes(VALID.replace("MPP Test", "MPP T\xe9st").encode("latin-1"))
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: file is not UTF-8")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "does-not-exist.toml"
    problems = problems_of(path)
    assert problems == [f"{path}: cannot read file: No such file or directory"]


# --- antrian online -----------------------------------------------------------------------


def booking_hall(counters: int, **booking: object) -> halls.Hall:
    return halls.Hall(
        services=(halls.service("Q", default_service_minutes=10, booking=booking),),
        counters=tuple(halls.counter(f"c{i}") for i in range(counters)),
    )


def test_a_booking_capacity_left_out_is_what_walk_ins_leave() -> None:
    # 3 counters x 30 minutes / 10 minutes = 9 citizens a slot; half kept for walk-ins.
    site = booking_hall(3, slot_minutes=30, walk_in_share=0.5).site()
    policy = site.services["Q"].booking
    assert policy is not None and policy.capacity == 4


def test_a_booking_capacity_that_would_shut_walk_ins_out_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        booking_hall(3, slot_minutes=30, walk_in_share=0.5, capacity=5).config()
    assert "at most 4" in str(info.value)
    with pytest.raises(ConfigError) as info:
        booking_hall(1, slot_minutes=10, walk_in_share=0.9).config()
    assert "too few to book any" in str(info.value)


def test_booking_keys_are_checked() -> None:
    with pytest.raises(ConfigError) as info:
        booking_hall(3, entry="first", late="never", slot_minutes=2, colour="red").config()
    text = str(info.value)
    assert "booking.entry: must be one of at_slot, fifo, priority" in text
    assert "booking.late: must be one of walk_in, refuse" in text
    assert "booking.slot_minutes: must be a whole number from 5 to 240" in text
    assert "booking.colour: is not a known setting" in text
