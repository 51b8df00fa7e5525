"""The one way tests build a hall: a `Hall` (one site: hours, services, counters, devices,
and the bearer tokens of its configuration) gives the configuration as the service reads it,
parsed (`config()`, `site()`) or as a TOML file for a service process (`toml()`, `write()`).

Everything a test does not say is the smallest hall that opens: site "hall" in WITA
(Asia/Makassar), open "00:00"-"24:00" every day, agency "a", service Q (target 15 minutes)
at counter c1, no devices, no tokens. The helpers `service`, `counter`, `numbered_counters`,
`every_day` and `Bearer` write one entry each, with the same defaults everywhere.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from queue_service.config import AppConfig, hash_token, parse_config
from queue_service.domain.site import WEEKDAYS, Site
from queue_service.domain.vocab import Role

# A table of the configuration file as tomllib gives it (and parse_config takes it).
Table = dict[str, Any]


def every_day(
    opens: str = "00:00", closes: str = "24:00", days: Iterable[str] = WEEKDAYS
) -> dict[str, tuple[str, str]]:
    """Opening hours: the same span on each of `days` (default: every day of the week)."""
    return dict.fromkeys(days, (opens, closes))


def service(code: str = "Q", **fields: Any) -> Table:
    """A service of agency "a", its prefix its code, a target wait of 15 minutes; `fields`
    add to or override that (a field given as None is left out of the table)."""
    table: Table = {
        "code": code,
        "agency": "a",
        "name_id": f"Layanan {code}",
        "name_en": f"Service {code}",
        "prefix": code,
        "target_wait_minutes": 15,
        **fields,
    }
    return {k: v for k, v in table.items() if v is not None}


def counter(counter_id: str, *services: str, **fields: Any) -> Table:
    """A counter serving `services` (default: Q), named "Loket <id>" unless `fields` say."""
    return {
        "id": counter_id,
        "name": f"Loket {counter_id}",
        "services": list(services or ("Q",)),
        **fields,
    }


def numbered_counters(n: int, *services: str) -> tuple[Table, ...]:
    """`n` counters c00, c01, ... serving `services` (default: Q)."""
    return tuple(counter(f"c{i:02d}", *services, name=f"Loket {i}") for i in range(n))


@dataclass(frozen=True)
class Bearer:
    """A bearer token of the configuration: its secret (the configuration holds its hash),
    role, name (default: the role), and the sites and counters it is bound to."""

    secret: str
    role: Role
    name: str = ""
    sites: tuple[str, ...] = ()
    counters: tuple[str, ...] = ()

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header a client sends with this token."""
        return {"Authorization": f"Bearer {self.secret}"}

    def table(self) -> Table:
        table: Table = {
            "name": self.name or str(self.role),
            "role": self.role,
            "sha256": hash_token(self.secret),
        }
        if self.sites:
            table["sites"] = self.sites
        if self.counters:
            table["counters"] = self.counters
        return table


# The demo tokens of config/example-hall.toml, for halls driven like the example hall.
DEMO_KIOSK = Bearer("demo-kiosk", Role.KIOSK)
DEMO_MANAGER = Bearer("demo-manager", Role.MANAGER)
DEMO_ADMIN = Bearer("demo-admin", Role.ADMIN)


@dataclass(frozen=True)
class Hall:
    """One site, the tokens of its configuration file, and any `other_sites` the file holds
    (their own tokens and other sites are not used: name them all here)."""

    id: str = "hall"
    name: str = "Test hall"
    timezone: str = "Asia/Makassar"
    hours: Mapping[str, Sequence[str]] = field(default_factory=every_day)  # day: (opens, closes)
    breaks: Sequence[Mapping[str, Any]] = ()
    agencies: Sequence[Mapping[str, Any]] = ({"id": "a", "name": "Agency"},)
    services: Sequence[Mapping[str, Any]] = (service(),)
    counters: Sequence[Mapping[str, Any]] = (counter("c1"),)
    devices: Sequence[Mapping[str, Any]] = ()
    site_fields: Mapping[str, Any] = field(default_factory=dict)  # public_url, survey, ...
    tokens: Sequence[Bearer] = ()
    other_sites: Sequence[Hall] = ()

    def site_table(self) -> Table:
        """This site's [[sites]] table."""
        table: Table = {
            "id": self.id,
            "name": self.name,
            "timezone": self.timezone,
            "hours": self.hours,
            "agencies": self.agencies,
            "services": self.services,
            "counters": self.counters,
            **self.site_fields,
        }
        if self.breaks:
            table["breaks"] = self.breaks
        if self.devices:
            table["devices"] = self.devices
        return table

    def raw(self) -> Table:
        """The whole configuration as tomllib reads it from the file (lists, not tuples)."""
        data: Table = _plain({"sites": [h.site_table() for h in (self, *self.other_sites)]})
        if self.tokens:
            data["tokens"] = _plain([t.table() for t in self.tokens])
        return data

    def config(self) -> AppConfig:
        return parse_config(self.raw())

    def site(self) -> Site:
        return self.config().sites[self.id]

    def toml(self) -> str:
        """The configuration file's text."""
        data = self.raw()
        lines: list[str] = []
        for key, tables in data.items():
            for table in tables:
                lines += _table(key, table, array=True)
        text = "\n".join(lines) + "\n"
        assert tomllib.loads(text) == data, text  # the file says what the hall says
        return text

    def write(self, directory: Path, name: str = "hall.toml") -> Path:
        """Write the configuration file into `directory`; its path."""
        path = directory / name
        path.write_text(self.toml(), "utf-8")
        return path


def _plain(value: Any) -> Any:
    """`value` with every mapping a dict and every sequence (but a string) a list."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    """A TOML value written inline. JSON's string escapes are all TOML's too."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return json.dumps(value) if isinstance(value, str) else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def _is_array_of_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _table(path: str, table: Table, *, array: bool) -> list[str]:
    """A table under its header: its plain keys, then its tables and arrays of tables."""
    lines = [f"[[{path}]]" if array else f"[{path}]"]
    nested: list[str] = []
    for key, value in table.items():
        where = f"{path}.{_key(key)}"
        if isinstance(value, dict):
            nested += _table(where, value, array=False)
        elif _is_array_of_tables(value):
            for item in value:
                nested += _table(where, item, array=True)
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    return [*lines, *nested]
