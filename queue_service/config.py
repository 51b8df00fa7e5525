"""Site configuration: a TOML file validated once, at start-up, into frozen dataclasses.

Every problem found is reported with the file, the dotted key and what is wrong, and all
problems are collected before failing so an operator fixes the file in one pass.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections.abc import Container, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, fields, replace
from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from queue_service.domain.site import (
    END_OF_DAY,
    PARITIES,
    WEEKDAYS,
    Agency,
    Booking,
    Break,
    ButtonConfig,
    Counter,
    DeviceConfig,
    EndOfDay,
    Online,
    SerialSettings,
    Service,
    Site,
    SpanEnd,
    before,
)
from queue_service.domain.vocab import (
    COUNTER_ROLES,
    MAX_ID,
    MAX_NUMBER,
    MAX_REASON,
    MAX_WORD,
    BookingEntry,
    DeviceKind,
    LatePolicy,
    Priority,
    PriorityPolicy,
    Role,
    SurveyMode,
)
from queue_service.errors import AntrianError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

E = TypeVar("E", bound=StrEnum)

_ID_RE = re.compile(rf"[a-z0-9][a-z0-9_-]{{0,{MAX_ID - 1}}}\Z")
_CODE_RE = re.compile(rf"[A-Z0-9][A-Z0-9_-]{{0,{MAX_WORD - 1}}}\Z")
_PREFIX_RE = re.compile(r"[A-Z]{1,2}\Z")
_HEX64_RE = re.compile(r"[0-9a-f]{64}\Z")
_HOST_PORT_RE = re.compile(r"(?P<host>[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})\Z")


class ConfigError(AntrianError, code="invalid_config"):
    """The configuration file is invalid; `problems` lists each one as 'file: key: problem'."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems), problems=problems)
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    role: Role
    sha256: str = field(repr=False)
    sites: tuple[str, ...] = ()  # empty: every site
    counters: tuple[str, ...] = ()  # COUNTER_ROLES: the counters it is bound to

    def allows_site(self, site_id: str) -> bool:
        return not self.sites or site_id in self.sites


@dataclass(frozen=True, slots=True)
class AppConfig:
    path: str
    sites: Mapping[str, Site]
    tokens: tuple[Token, ...]

    def token_by_hash(self) -> dict[str, Token]:
        return {t.sha256: t for t in self.tokens}


def hash_token(secret: str) -> str:
    """The form in which a bearer token is stored in configuration. A secret that is not
    valid UTF-8 (aiohttp hands such header bytes over as surrogates) hashes as it came,
    and so matches no configured token."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class _Reader:
    """Collects problems while reading typed values out of nested TOML tables."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path}: {key}: {message}")

    def get(
        self,
        table: Mapping[str, Any],
        key: str,
        where: str,
        kind: type | tuple[type, ...],
        *,
        required: bool = True,
        default: Any = None,
    ) -> Any:
        full = f"{where}.{key}" if where else key
        if key not in table:
            if required:
                self.problem(full, "is required")
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a TOML `true` is never a valid number here.
        if isinstance(value, bool) and bool not in kinds:
            self.problem(full, f"must be {_kind_name(kinds)}, got a boolean")
            return default
        if not isinstance(value, kinds):
            self.problem(full, f"must be {_kind_name(kinds)}, got {type(value).__name__}")
            return default
        return value

    def clock(self, value: Any, key: str, what: str = "a start") -> time | None:
        """A time of day "HH:MM" that begins something (`what`): 00:00 to 23:59."""
        if not isinstance(value, str) or not re.fullmatch(r"\d{2}:\d{2}", value):
            self.problem(key, f"must be a time written HH:MM, got {value!r}")
            return None
        if value == "24:00":
            self.problem(
                key,
                f"24:00 (the end of the day) cannot be {what}; it is accepted only as a "
                "closing time, a break's end or a cutoff",
            )
            return None
        try:
            return time.fromisoformat(value)
        except ValueError:
            self.problem(key, f"is not a valid time of day: {value!r}")
            return None

    def span_end(self, value: Any, key: str) -> SpanEnd | None:
        """A time of day "HH:MM" that ends something (exclusive): 00:00 to 23:59, or
        "24:00", the end of the day (END_OF_DAY)."""
        if value == "24:00":
            return END_OF_DAY
        if isinstance(value, str) and re.fullmatch(r"\d{2}:\d{2}", value):
            try:
                return time.fromisoformat(value)
            except ValueError:
                self.problem(
                    key, f"is not a valid time of day (00:00 to 23:59, or 24:00): {value!r}"
                )
                return None
        return self.clock(value, key)

    def strings(
        self, table: Mapping[str, Any], key: str, where: str, *, required: bool = True
    ) -> list[str]:
        """A list of strings; non-string items are reported and dropped."""
        items = self.get(table, key, where, list, required=required, default=[]) or []
        good = [item for item in items if isinstance(item, str)]
        if len(good) != len(items):
            self.problem(f"{where}.{key}", "must be a list of strings")
        return good

    def choice(self, value: str | None, choices: type[E], key: str) -> E | None:
        """`value` as a word of `choices`, or None: silently when it is empty (missing or of
        the wrong type, already reported), with a problem listing the words otherwise."""
        if not value:
            return None
        try:
            return choices(value)
        except ValueError:
            self.problem(key, f"must be one of {', '.join(choices)}")
            return None

    def tables(
        self,
        table: Mapping[str, Any],
        key: str,
        where: str,
        allowed: AbstractSet[str] | None,
        *,
        required: bool = True,
    ) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Each item of the list `key` that is a table, with its own key (`where.key[j]`);
        an item that is not a table is reported and skipped. Keys of an item not in
        `allowed` are reported (None: the item's own parser checks them)."""
        items = self.get(table, key, where, list, required=required, default=[]) or []
        for j, item in enumerate(items):
            at = f"{where}.{key}[{j}]" if where else f"{key}[{j}]"
            if not isinstance(item, dict):
                self.problem(at, "must be a table")
                continue
            if allowed is not None:
                self.unknown_keys(item, allowed, at)
            yield at, item

    def ident(self, table: Mapping[str, Any], where: str, seen: Container[str], what: str) -> str:
        """The table's `id`, reported when it is not a well-formed id or one of `seen` (the
        ids of its kind so far)."""
        value: str = self.get(table, "id", where, str, default="")
        if value and not _ID_RE.match(value):
            self.problem(
                f"{where}.id", f"must be lower-case letters, digits, '-' or '_' (max {MAX_ID})"
            )
        if value in seen:
            self.problem(f"{where}.id", f"duplicate {what} id {value!r}")
        return value

    def unknown_keys(self, table: Mapping[str, Any], allowed: AbstractSet[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                self.problem(f"{where}.{key}" if where else key, "is not a known setting")


def _keys(cls: type[DataclassInstance]) -> frozenset[str]:
    """The keys a table of `cls` may have: the dataclass's fields, named as in the file."""
    return frozenset(f.name for f in fields(cls))


# A device's table holds its serial settings as keys of their own.
_DEVICE_KEYS = _keys(DeviceConfig) - {"serial"} | _keys(SerialSettings)


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def load_config(path: str | Path) -> AppConfig:
    """Read and validate a configuration file; raise ConfigError listing every problem."""
    path_str = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path_str}: cannot read file: {exc.strerror}"]) from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path_str}: file is not UTF-8: {exc}"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path_str}: invalid TOML: {exc}"]) from exc
    return parse_config(data, path_str)


def parse_config(data: Mapping[str, Any], path: str = "<config>") -> AppConfig:
    r = _Reader(path)
    r.unknown_keys(data, {"sites", "tokens"}, "")
    sites: dict[str, Site] = {}
    raw_sites = r.get(data, "sites", "", list, default=[])
    if isinstance(raw_sites, list) and not raw_sites and "sites" in data:
        r.problem("sites", "must list at least one site")
    for i, raw_site in enumerate(raw_sites or []):
        where = f"sites[{i}]"
        if not isinstance(raw_site, dict):
            r.problem(where, "must be a table")
            continue
        site = _parse_site(r, raw_site, where)
        if site is not None:
            if site.id in sites:
                r.problem(f"{where}.id", f"duplicate site id {site.id!r}")
            sites[site.id] = site
    tokens = _parse_tokens(r, data, sites)
    _check_device_references(r, sites, tokens)
    if r.problems:
        raise ConfigError(r.problems)
    return AppConfig(path=path, sites=sites, tokens=tokens)


def _parse_site(r: _Reader, raw: Mapping[str, Any], where: str) -> Site | None:
    r.unknown_keys(raw, _keys(Site), where)
    site_id = r.get(raw, "id", where, str, default="")
    if site_id and not _ID_RE.match(site_id):
        r.problem(f"{where}.id", f"must be lower-case letters, digits, '-' or '_' (max {MAX_ID})")
    name = r.get(raw, "name", where, str, default="")
    tz_name = r.get(raw, "timezone", where, str, default="UTC")
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        r.problem(f"{where}.timezone", f"unknown time zone {tz_name!r} (e.g. 'Asia/Makassar')")
        tz = ZoneInfo("UTC")
    no_show = r.get(raw, "no_show_min_calls", where, int, required=False, default=2)
    if no_show is not None and not 1 <= no_show <= 10:
        r.problem(f"{where}.no_show_min_calls", "must be between 1 and 10")

    hours: dict[str, tuple[time, SpanEnd]] = {}
    raw_hours = r.get(raw, "hours", where, dict, default={})
    for day, span in (raw_hours or {}).items():
        key = f"{where}.hours.{day}"
        if day not in WEEKDAYS:
            r.problem(key, f"unknown day; use one of {', '.join(WEEKDAYS)}")
            continue
        if not (isinstance(span, list) and len(span) == 2):
            r.problem(key, 'must be ["HH:MM", "HH:MM"] (opening, closing)')
            continue
        start = r.clock(span[0], key, "an opening time")
        end = r.span_end(span[1], key)
        if start is not None and end is not None:
            if not before(start, end):
                r.problem(key, "opening time must be before closing time")
            hours[day] = (start, end)
    if raw_hours is not None and not hours and "hours" in raw:
        r.problem(f"{where}.hours", "the site must open on at least one day")

    breaks: list[Break] = []
    for key, raw_break in r.tables(raw, "breaks", where, _keys(Break), required=False):
        days = r.strings(raw_break, "days", key)
        for d in days:
            if d not in WEEKDAYS:
                r.problem(f"{key}.days", f"unknown day {d!r}")
        start = r.clock(
            r.get(raw_break, "start", key, str, default="00:00"), f"{key}.start", "a break's start"
        )
        end = r.span_end(r.get(raw_break, "end", key, str, default="00:00"), f"{key}.end")
        label = r.get(raw_break, "label", key, str, default="Istirahat")
        if start is not None and end is not None:
            if not before(start, end):
                r.problem(key, "break start must be before its end")
            breaks.append(Break(tuple(days), start, end, label))

    agencies: dict[str, Agency] = {}
    for key, raw_agency in r.tables(raw, "agencies", where, _keys(Agency)):
        aid = r.ident(raw_agency, key, agencies, "agency")
        agencies[aid] = Agency(aid, r.get(raw_agency, "name", key, str, default=""))

    services: dict[str, Service] = {}
    prefixes: dict[str, str] = {}
    for key, raw_service in r.tables(raw, "services", where, None):
        service = _parse_service(r, raw_service, key, agencies)
        if service is None:
            continue
        if service.code in services:
            r.problem(f"{key}.code", f"duplicate service code {service.code!r}")
        if service.prefix in prefixes:
            r.problem(
                f"{key}.prefix",
                f"prefix {service.prefix!r} is already used by service {prefixes[service.prefix]!r}"
                " (ticket numbers would clash)",
            )
        prefixes[service.prefix] = service.code
        services[service.code] = service
    if not services and "services" in raw:
        r.problem(f"{where}.services", "must list at least one service")

    counters: dict[str, Counter] = {}
    for key, raw_counter in r.tables(raw, "counters", where, _keys(Counter)):
        cid = r.ident(raw_counter, key, counters, "counter")
        served = r.strings(raw_counter, "services", key)
        if not served:
            r.problem(f"{key}.services", "a counter must serve at least one service")
        for code in served:
            if code not in services:
                r.problem(f"{key}.services", f"unknown service {code!r}")
        zone = r.get(raw_counter, "zone", key, str, required=False)
        uses_start = r.get(raw_counter, "uses_start", key, bool, required=False, default=True)
        counters[cid] = Counter(
            cid,
            r.get(raw_counter, "name", key, str, default=""),
            tuple(served),
            zone,
            bool(uses_start),
        )
    unserved = [code for code in services if not any(code in c.services for c in counters.values())]
    for code in unserved:
        r.problem(f"{where}.services", f"service {code!r} is served by no counter")
    services = _booking_capacities(r, services, counters, where)
    online = _parse_online(r, raw, where)

    public_url = r.get(raw, "public_url", where, str, required=False)
    if public_url is not None:
        public_url = public_url.rstrip("/")
        if not re.match(r"https?://[^\s/]+", public_url):
            r.problem(f"{where}.public_url", "must be an http:// or https:// URL")
    devices = _parse_devices(r, raw, where, services, counters)
    if public_url is None and any(d.kind == DeviceKind.PRINTER for d in devices):
        r.problem(
            f"{where}.public_url",
            "is required when the site has a printer (tickets print a QR code to the "
            'ticket status page), e.g. "http://antrian.mpp.local:8080"',
        )

    survey = r.get(raw, "survey", where, str, required=False, default=SurveyMode.SKM)
    survey = r.choice(survey, SurveyMode, f"{where}.survey") or SurveyMode.SKM

    return Site(
        id=site_id,
        name=name,
        timezone=tz,
        hours=hours,
        breaks=tuple(breaks),
        agencies=agencies,
        services=services,
        counters=counters,
        no_show_min_calls=no_show if isinstance(no_show, int) else 2,
        devices=tuple(devices),
        public_url=public_url,
        survey=survey,
        online=online,
    )


def _valid_url(url: str) -> str | None:
    """Why a device URL is not usable, or None when it is."""
    if url.startswith("/"):
        return None if len(url) > 1 else "is not a device path"
    for scheme in ("socket://", "rfc2217://"):
        if url.startswith(scheme):
            rest = url[len(scheme) :].split("?", 1)[0]
            match = _HOST_PORT_RE.match(rest)
            if match is None or not 1 <= int(match["port"]) <= 65535:
                return f"must be {scheme}HOST:PORT with a port 1..65535"
            return None
    return (
        "must be a device path (/dev/serial/by-id/...), socket://HOST:PORT or rfc2217://HOST:PORT"
    )


def _number(
    r: _Reader,
    table: Mapping[str, Any],
    key: str,
    where: str,
    default: float,
    low: float,
    high: float,
) -> float:
    value = r.get(table, key, where, (int, float), required=False, default=default)
    if value is None:
        return default
    if not low <= value <= high:
        r.problem(f"{where}.{key}", f"must be between {low:g} and {high:g}")
        return default
    return float(value)


def _int_keys(r: _Reader, table: Mapping[str, Any], where: str, high: int) -> dict[int, Any]:
    """A TOML table keyed by small integers ({ 1 = ..., 2 = ... })."""
    out: dict[int, Any] = {}
    for raw_key, value in table.items():
        if not (isinstance(raw_key, str) and raw_key.isdigit() and 0 <= int(raw_key) <= high):
            r.problem(f"{where}.{raw_key}", f"keys must be whole numbers 0..{high}")
            continue
        out[int(raw_key)] = value
    return out


# The numbered tables of a device: the kind that must have it (no other may), as the
# messages name that kind, what one entry is, and the highest number.
_NUMBERED = {
    "buttons": (DeviceKind.DISPENSER, "a dispenser", "button", 99),
    "addresses": (DeviceKind.KEYPAD, "a keypad bus", "address", 255),
}


def _numbered(
    r: _Reader, raw_device: Mapping[str, Any], key: str, kind: DeviceKind | None, name: str
) -> dict[int, Any]:
    """The device's numbered table `name` (`_NUMBERED`), by number; empty where it is
    absent, or reported (a device of another kind, no entry)."""
    owner, owner_name, item, high = _NUMBERED[name]
    table = r.get(raw_device, name, key, dict, required=kind == owner)
    if table is None:
        return {}
    if kind != owner:
        r.problem(f"{key}.{name}", f"only {owner_name} has {name}")
        return {}
    if not table:
        r.problem(f"{key}.{name}", f"{owner_name} needs at least one {item}")
    return _int_keys(r, table, f"{key}.{name}", high)


def _parse_devices(
    r: _Reader,
    raw: Mapping[str, Any],
    where: str,
    services: Mapping[str, Service],
    counters: Mapping[str, Counter],
) -> list[DeviceConfig]:
    devices: list[DeviceConfig] = []
    seen: set[str] = set()
    urls: set[str] = set()
    # Numbers kept apart: device prefixes, and (service, range) of every button.
    prefixes: dict[str, str] = {}
    ranges: list[tuple[str, int, int, str]] = []
    service_prefixes = {svc.prefix for svc in services.values()}
    for key, raw_device in r.tables(raw, "devices", where, _DEVICE_KEYS, required=False):
        did = r.ident(raw_device, key, seen, "device")
        seen.add(did)
        kind = r.choice(r.get(raw_device, "kind", key, str), DeviceKind, f"{key}.kind")
        url = r.get(raw_device, "url", key, str, default="")
        if url:
            why = _valid_url(url)
            if why is not None:
                r.problem(f"{key}.url", why)
            if url in urls:
                r.problem(f"{key}.url", "another device of this site already uses this port")
            urls.add(url)
        baud = r.get(raw_device, "baudrate", key, int, required=False, default=9600)
        if baud is not None and not 50 <= baud <= 4_000_000:
            r.problem(f"{key}.baudrate", "must be between 50 and 4000000")
        bytesize = r.get(raw_device, "bytesize", key, int, required=False, default=8)
        if bytesize not in (5, 6, 7, 8):
            r.problem(f"{key}.bytesize", "must be 5, 6, 7 or 8")
        parity = r.get(raw_device, "parity", key, str, required=False, default="N")
        if parity not in PARITIES:
            r.problem(f"{key}.parity", f"must be one of {', '.join(PARITIES)}")
        stopbits = r.get(raw_device, "stopbits", key, (int, float), required=False, default=1)
        if stopbits not in (1, 1.5, 2):
            r.problem(f"{key}.stopbits", "must be 1, 1.5 or 2")
        silence = _number(
            r,
            raw_device,
            "silence_timeout",
            key,
            10.0 if kind == DeviceKind.PRINTER else 30.0,
            0,
            3600,
        )
        backoff_initial = _number(r, raw_device, "backoff_initial", key, 1.0, 0.01, 600)
        backoff_max = _number(r, raw_device, "backoff_max", key, 60.0, 0.01, 3600)
        if backoff_max < backoff_initial:
            r.problem(f"{key}.backoff_max", "must not be less than backoff_initial")
        poll = _number(r, raw_device, "poll_interval", key, 2.0, 0.05, 600)
        if kind == DeviceKind.PRINTER and silence and silence <= poll:
            r.problem(f"{key}.silence_timeout", "must be longer than poll_interval (or 0)")

        buttons: dict[int, ButtonConfig] = {}
        for number, spec in _numbered(r, raw_device, key, kind, "buttons").items():
            bkey = f"{key}.buttons.{number}"
            button = _parse_button(r, spec, bkey, number, services)
            if button is None:
                continue
            buttons[number] = button
            if button.prefix is not None:
                if button.prefix in service_prefixes:
                    r.problem(
                        f"{bkey}.prefix",
                        f"{button.prefix!r} is a service prefix: device numbers would "
                        "clash with kiosk numbers",
                    )
                elif button.prefix in prefixes:
                    r.problem(
                        f"{bkey}.prefix",
                        f"{button.prefix!r} is already used by {prefixes[button.prefix]}",
                    )
                prefixes[button.prefix] = bkey
            elif button.range is not None:
                low, high = button.range
                for code, other_low, other_high, other in ranges:
                    if code == button.service and low <= other_high and other_low <= high:
                        r.problem(f"{bkey}.range", f"overlaps the range of {other}")
                ranges.append((button.service, low, high, bkey))

        addresses: dict[int, str] = {}
        for address, counter in _numbered(r, raw_device, key, kind, "addresses").items():
            if not isinstance(counter, str) or counter not in counters:
                r.problem(f"{key}.addresses.{address}", f"unknown counter {counter!r}")
                continue
            if counter in addresses.values():
                r.problem(f"{key}.addresses.{address}", f"counter {counter!r} has two keypads")
            addresses[address] = counter

        kiosk = r.get(raw_device, "kiosk", key, str, required=kind == DeviceKind.PRINTER)
        if kiosk is not None and kind != DeviceKind.PRINTER:
            r.problem(f"{key}.kiosk", "only a printer belongs to a kiosk")
        if kind is None:
            continue  # reported; nothing below reads a device of no kind
        devices.append(
            DeviceConfig(
                id=did,
                kind=kind,
                url=url,
                serial=SerialSettings(
                    baud or 9600, bytesize or 8, parity or "N", float(stopbits or 1)
                ),
                silence_timeout=silence,
                backoff_initial=backoff_initial,
                backoff_max=backoff_max,
                buttons=buttons,
                addresses=addresses,
                kiosk=kiosk,
                poll_interval=poll,
            )
        )
    kiosks = [d.kiosk for d in devices if d.kind == DeviceKind.PRINTER]
    for kiosk in {k for k in kiosks if kiosks.count(k) > 1}:
        r.problem(f"{where}.devices", f"kiosk {kiosk!r} has more than one printer")
    return devices


def _parse_button(
    r: _Reader, spec: Any, key: str, number: int, services: Mapping[str, Service]
) -> ButtonConfig | None:
    if not isinstance(spec, dict):
        r.problem(key, 'must be a table, e.g. { service = "KTP-EL", prefix = "X" }')
        return None
    r.unknown_keys(spec, _keys(ButtonConfig) - {"button"}, key)  # the button is its key
    code = r.get(spec, "service", key, str, default="")
    service = services.get(code)
    if code and service is None:
        r.problem(f"{key}.service", f"unknown service {code!r}")
    priority = r.choice(
        r.get(spec, "priority", key, str, required=False), Priority, f"{key}.priority"
    )
    prefix = r.get(spec, "prefix", key, str, required=False)
    raw_range = r.get(spec, "range", key, list, required=False)
    if (prefix is None) == (raw_range is None):
        r.problem(
            key,
            "give either `prefix` (the device's own letters) or `range` (a block of the "
            "service's numbers) so device numbers never clash with kiosk numbers",
        )
        return None
    if prefix is not None:
        if not _PREFIX_RE.match(prefix):
            r.problem(f"{key}.prefix", "must be one or two upper-case letters")
            return None
        return ButtonConfig(number, code, prefix=prefix, priority=priority)
    assert raw_range is not None
    if not (
        len(raw_range) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in raw_range)
        and 1 <= raw_range[0] <= raw_range[1] <= MAX_NUMBER
    ):
        r.problem(f"{key}.range", f"must be [first, last] with 1 <= first <= last <= {MAX_NUMBER}")
        return None
    low, high = raw_range
    if service is not None:
        if service.daily_quota is None:
            r.problem(
                f"{key}.range",
                f"service {code!r} has no daily_quota, so kiosk numbers may reach any "
                "range; give it a daily_quota below the range or use a prefix",
            )
        elif low <= service.daily_quota:
            r.problem(
                f"{key}.range",
                f"starts at {low}, within the kiosk numbers of {code!r} "
                f"(daily_quota {service.daily_quota}); start it above the quota",
            )
    return ButtonConfig(number, code, range=(low, high), priority=priority)


def _check_device_references(
    r: _Reader, sites: Mapping[str, Site], tokens: tuple[Token, ...]
) -> None:
    """A printer's kiosk must be a configured kiosk token valid for the site."""
    by_name = {t.name: t for t in tokens}
    for i, site in enumerate(sites.values()):
        for j, device in enumerate(site.devices):
            if device.kind != DeviceKind.PRINTER or device.kiosk is None:
                continue
            token = by_name.get(device.kiosk)
            key = f"sites[{i}].devices[{j}].kiosk"
            if token is None or token.role != Role.KIOSK:
                r.problem(key, f"no kiosk token is named {device.kiosk!r}")
            elif not token.allows_site(site.id):
                r.problem(key, f"kiosk token {device.kiosk!r} is not valid for this site")


def _parse_service(
    r: _Reader, raw: Mapping[str, Any], key: str, agencies: Mapping[str, Agency]
) -> Service | None:
    r.unknown_keys(raw, _keys(Service), key)
    code = r.get(raw, "code", key, str, default="")
    if code and not _CODE_RE.match(code):
        r.problem(f"{key}.code", f"must be upper-case letters, digits, '-' or '_' (max {MAX_WORD})")
    agency = r.get(raw, "agency", key, str, default="")
    if agency and agency not in agencies:
        r.problem(f"{key}.agency", f"unknown agency {agency!r}")
    prefix = r.get(raw, "prefix", key, str, default="")
    if prefix and not _PREFIX_RE.match(prefix):
        r.problem(f"{key}.prefix", "must be one or two upper-case letters")
    target = r.get(raw, "target_wait_minutes", key, int, default=0)
    if target is not None and not 1 <= target <= 24 * 60:
        r.problem(f"{key}.target_wait_minutes", "must be between 1 and 1440 minutes")
    quota = r.get(raw, "daily_quota", key, int, required=False)
    if quota is not None and not 1 <= quota <= MAX_NUMBER:
        r.problem(
            f"{key}.daily_quota",
            f"must be between 1 and {MAX_NUMBER} (numbers have {len(str(MAX_NUMBER))} digits)",
        )
    cutoff_raw = r.get(raw, "cutoff", key, str, required=False)
    cutoff_end = r.span_end(cutoff_raw, f"{key}.cutoff") if cutoff_raw is not None else None
    # A cutoff of 24:00 is the end of the day: the same as no cutoff.
    cutoff = None if isinstance(cutoff_end, EndOfDay) else cutoff_end
    policy = r.choice(
        r.get(raw, "priority_policy", key, str, required=False, default=PriorityPolicy.STRICT),
        PriorityPolicy,
        f"{key}.priority_policy",
    )
    interleave = r.get(raw, "priority_interleave", key, int, required=False, default=3)
    if interleave is not None and not 1 <= interleave <= 50:
        r.problem(f"{key}.priority_interleave", "must be between 1 and 50")
    dsm = r.get(raw, "default_service_minutes", key, (int, float), required=False, default=5.0)
    if dsm is not None and not 0 < dsm <= 240:
        r.problem(f"{key}.default_service_minutes", "must be more than 0 and at most 240")
    return Service(
        code=code,
        agency=agency,
        name_id=r.get(raw, "name_id", key, str, default=""),
        name_en=r.get(raw, "name_en", key, str, default=""),
        prefix=prefix,
        target_wait_minutes=target or 1,
        daily_quota=quota,
        cutoff=cutoff,
        priority_policy=policy or PriorityPolicy.STRICT,
        priority_interleave=interleave or 3,
        default_service_minutes=float(dsm or 5.0),
        booking=_parse_booking(r, raw, key),
    )


def _parse_booking(r: _Reader, raw: Mapping[str, Any], key: str) -> Booking | None:
    """The service's `booking` table (antrian online), or None when it has none. A missing
    `capacity` is 0 here: `_booking_capacities` derives it once the counters are known."""
    table = r.get(raw, "booking", key, dict, required=False)
    if table is None:
        return None
    where = f"{key}.booking"
    r.unknown_keys(table, _keys(Booking), where)
    d = Booking()

    def whole(name: str, default: int, low: int, high: int) -> int:
        value = r.get(table, name, where, int, required=False)
        if value is None:  # left out (or of the wrong type, already reported)
            return default
        if not low <= value <= high:
            r.problem(f"{where}.{name}", f"must be a whole number from {low} to {high}")
            return default
        return int(value)

    def flag(name: str, default: bool) -> bool:
        return bool(r.get(table, name, where, bool, required=False, default=default))

    def text(name: str) -> str:
        value = r.get(table, name, where, str, required=False, default="") or ""
        if len(value) > 4 * MAX_REASON:
            r.problem(f"{where}.{name}", f"must be at most {4 * MAX_REASON} characters")
        return str(value)

    slot = whole("slot_minutes", d.slot_minutes, 5, 240)
    entry = r.choice(
        r.get(table, "entry", where, str, required=False, default=d.entry),
        BookingEntry,
        f"{where}.entry",
    )
    late = r.choice(
        r.get(table, "late", where, str, required=False, default=d.late),
        LatePolicy,
        f"{where}.late",
    )
    return Booking(
        slot_minutes=slot,
        capacity=whole("capacity", 0, 1, MAX_NUMBER),
        walk_in_share=_number(r, table, "walk_in_share", where, d.walk_in_share, 0.1, 0.9),
        days_ahead=whole("days_ahead", d.days_ahead, 0, 90),
        cutoff_minutes=whole("cutoff_minutes", d.cutoff_minutes, 0, 7 * 24 * 60),
        entry=entry or d.entry,
        early_minutes=whole("early_minutes", d.early_minutes, 0, 240),
        late_minutes=whole("late_minutes", d.late_minutes, 0, 240),
        late=late or d.late,
        remote_join=flag("remote_join", d.remote_join),
        confirm_on_arrival=flag("confirm_on_arrival", d.confirm_on_arrival),
        requirements_id=text("requirements_id"),
        requirements_en=text("requirements_en"),
        near_ahead=whole("near_ahead", d.near_ahead, 0, 50),
        near_minutes=whole("near_minutes", d.near_minutes, 0, 240),
    )


def _booking_capacities(
    r: _Reader, services: Mapping[str, Service], counters: Mapping[str, Counter], where: str
) -> dict[str, Service]:
    """Each bookable service with its slot capacity checked against walk-ins' share.

    What a slot can serve is estimated as the counters serving the service (a counter
    shared by k services counted as 1/k) times the slot's minutes over the expected service
    time. At most (1 - walk_in_share) of that may be booked: a `capacity` above it is a
    problem, a missing one is derived as exactly that (at least one slot place must remain,
    or the service cannot be booked with so few counters)."""
    out = dict(services)
    for j, (code, svc) in enumerate(services.items()):
        b = svc.booking
        if b is None:
            continue
        share = sum(1 / len(c.services) for c in counters.values() if code in c.services)
        slot_capacity = share * b.slot_minutes / svc.default_service_minutes
        bookable = math.floor(slot_capacity * (1 - b.walk_in_share) + 1e-9)
        key = f"{where}.services[{j}].booking"
        if b.capacity == 0:
            if bookable < 1:
                r.problem(
                    f"{key}.capacity",
                    f"its counters serve about {slot_capacity:.1f} citizens a slot: too few to "
                    f"book any with walk_in_share {b.walk_in_share:g}; set a longer slot_minutes",
                )
            out[code] = replace(svc, booking=replace(b, capacity=max(bookable, 1)))
        elif b.capacity > bookable:
            r.problem(
                f"{key}.capacity",
                f"{b.capacity} a slot leaves walk-ins less than walk_in_share "
                f"{b.walk_in_share:g} of what its counters serve (about {slot_capacity:.1f} a "
                f"slot): at most {bookable}",
            )
    return out


def _parse_online(r: _Reader, raw: Mapping[str, Any], where: str) -> Online:
    table = r.get(raw, "online", where, dict, required=False)
    if table is None:
        return Online()
    key = f"{where}.online"
    r.unknown_keys(table, _keys(Online), key)
    d = Online()
    out = {}
    for name, default in (
        ("max_active_per_phone", d.max_active_per_phone),
        ("max_per_address_per_day", d.max_per_address_per_day),
    ):
        value = r.get(table, name, key, int, required=False, default=default)
        if value is not None and not 1 <= value <= 1000:
            r.problem(f"{key}.{name}", "must be a whole number from 1 to 1000")
            value = default
        out[name] = int(value if value is not None else default)
    return Online(**out)


def _parse_tokens(
    r: _Reader, data: Mapping[str, Any], sites: Mapping[str, Site]
) -> tuple[Token, ...]:
    tokens: list[Token] = []
    seen: set[str] = set()
    for key, raw in r.tables(data, "tokens", "", _keys(Token), required=False):
        name = r.get(raw, "name", key, str, default="")
        role = r.choice(r.get(raw, "role", key, str), Role, f"{key}.role")
        digest = r.get(raw, "sha256", key, str, default="")
        if digest and not _HEX64_RE.match(digest):
            r.problem(
                f"{key}.sha256",
                "must be the 64-character hex SHA-256 of the token "
                "(make one with `queue-service hash-token`)",
            )
        if digest in seen:
            r.problem(f"{key}.sha256", "the same token is configured twice")
        seen.add(digest)
        token_sites = r.strings(raw, "sites", key, required=False)
        for s in token_sites:
            if s not in sites:
                r.problem(f"{key}.sites", f"unknown site {s!r}")
        token_counters = r.strings(raw, "counters", key, required=False)
        if role in COUNTER_ROLES:
            if not token_counters:
                r.problem(f"{key}.counters", f"a {role} token must name the counters it may use")
            if not token_sites:
                # Counter ids repeat across halls: a token must say whose counters it means.
                r.problem(f"{key}.sites", f"a {role} token must name its site(s)")
            scope = [sites[s] for s in token_sites if s in sites] or list(sites.values())
            for c in token_counters:
                if not any(c in site.counters for site in scope):
                    r.problem(f"{key}.counters", f"unknown counter {c!r}")
        elif token_counters:
            r.problem(f"{key}.counters", "only counter and survey tokens are bound to counters")
        if role is not None:  # else reported; a printer naming it is told no kiosk has it
            tokens.append(Token(name, role, digest, tuple(token_sites), tuple(token_counters)))
    return tuple(tokens)
