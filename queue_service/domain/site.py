"""The hall's model: sites, their services (agencies' units) and counters, opening hours
and breaks, and the serial devices wired to them. Frozen dataclasses built once from the
configuration file (`queue_service/config.py` parses and validates it) and read by the
domain; nothing here reads files.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TypeAlias
from zoneinfo import ZoneInfo

from queue_service.domain.vocab import (
    BookingEntry,
    DeviceKind,
    LatePolicy,
    Priority,
    PriorityPolicy,
)

# The configuration's words (priority policies and kinds, roles, survey modes, device kinds)
# are the vocabulary's enums (domain/vocab.py).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PARITIES = ("N", "E", "O", "M", "S")


@dataclass(frozen=True, slots=True)
class Agency:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Booking:
    """A service's antrian online: its bookable slots and how booked citizens are served.

    Slots run from the day's opening in steps of `slot_minutes`, each ending by the closing
    (and the service's cutoff) and none overlapping a break. `capacity` is what one slot may
    hold in bookings; the rest of the counters' time stays for walk-ins (`walk_in_share`,
    checked by the configuration against the counters' expected capacity and the daily quota).
    """

    slot_minutes: int = 30
    capacity: int = 1  # bookings per slot (the parser derives it when the file leaves it out)
    walk_in_share: float = 0.5
    days_ahead: int = 14  # today and this many days after it may be booked
    cutoff_minutes: int = 60  # booking a slot closes this long before it starts
    entry: BookingEntry = BookingEntry.AT_SLOT
    early_minutes: int = 30  # check-in opens this long before the slot starts
    late_minutes: int = 15  # ... and closes this long after; then `missed`
    late: LatePolicy = LatePolicy.WALK_IN  # a check-in after the window
    remote_join: bool = False  # today's ticket may be taken from the phone
    confirm_on_arrival: bool = True  # ... and must then be confirmed at the kiosk
    requirements_id: str = ""  # what to bring (persyaratan), shown when booking
    requirements_en: str = ""
    near_ahead: int = 3  # "your turn is near": this many or fewer ahead ...
    near_minutes: int = 10  # ... or an estimate this short


@dataclass(frozen=True, slots=True)
class Online:
    """A site's limits on antrian online (anti-hoarding)."""

    max_active_per_phone: int = 2  # bookings not yet checked in, per phone number
    max_per_address_per_day: int = 6  # bookings and remote joins per client address per day


@dataclass(frozen=True, slots=True)
class Service:
    code: str
    agency: str
    name_id: str
    name_en: str
    prefix: str
    target_wait_minutes: int
    daily_quota: int | None = None
    cutoff: time | None = None  # "24:00" in the file is no cutoff: None
    priority_policy: PriorityPolicy = PriorityPolicy.STRICT
    # With policy "interleave": after this many priority calls in a row, one regular ticket.
    priority_interleave: int = 3
    # Average handle time assumed before today has any finished ticket (simple estimate).
    default_service_minutes: float = 5.0
    booking: Booking | None = None  # antrian online (None: walk-ins only)

    @property
    def target_wait_seconds(self) -> int:
        return self.target_wait_minutes * 60


@dataclass(frozen=True, slots=True)
class Counter:
    id: str
    name: str
    services: tuple[str, ...]
    zone: str | None = None
    # A counter that does not use "start" goes straight from called to serving on finish.
    uses_start: bool = True


@dataclass(frozen=True, slots=True)
class EndOfDay:
    """24:00, the end of the local day, which a `datetime.time` cannot hold: a closing time
    (or a break's end) of "24:00" in the file. Exclusive like every end: a span ending here
    includes 23:59:59.999999, and the next day's 00:00 belongs to the next day's hours.

    It orders after every `time` and formats as a time would, so `f"{end:%H:%M}"` and
    `end.isoformat()` both read "24:00". Use `END_OF_DAY` and `at_local` rather than
    `datetime.combine`, which needs a `time`.
    """

    def isoformat(self) -> str:
        return "24:00"

    def __str__(self) -> str:
        return "24:00"

    def __format__(self, spec: str) -> str:
        # strftime of midnight with the hour written 24: "%H:%M" -> "24:00".
        return format(time(0), spec.replace("%H", "24")) if spec else "24:00"

    # Ordered after every time of day (and equal to itself).
    def __lt__(self, other: object) -> bool:
        return False if isinstance(other, time | EndOfDay) else NotImplemented

    def __le__(self, other: object) -> bool:
        return isinstance(other, EndOfDay) if isinstance(other, time | EndOfDay) else NotImplemented

    def __gt__(self, other: object) -> bool:
        return isinstance(other, time) if isinstance(other, time | EndOfDay) else NotImplemented

    def __ge__(self, other: object) -> bool:
        return True if isinstance(other, time | EndOfDay) else NotImplemented


END_OF_DAY = EndOfDay()
# Where a span ends: a time of day, or 24:00 (the end of the day).
SpanEnd: TypeAlias = time | EndOfDay


def before(t: time, end: SpanEnd) -> bool:
    """`t` is before the exclusive `end` (every time of day is before 24:00)."""
    return isinstance(end, EndOfDay) or t < end


def at_local(day: date, clock: SpanEnd, timezone: ZoneInfo) -> datetime:
    """The instant `clock` on the local `day`: 24:00 is the next day's 00:00."""
    if isinstance(clock, EndOfDay):
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=timezone)
    return datetime.combine(day, clock, tzinfo=timezone)


@dataclass(frozen=True, slots=True)
class Break:
    days: tuple[str, ...]
    start: time
    end: SpanEnd  # END_OF_DAY for "24:00"
    label: str


@dataclass(frozen=True, slots=True)
class SerialSettings:
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1


@dataclass(frozen=True, slots=True)
class ButtonConfig:
    """A dispenser button: the service it issues for, and how its printed numbers are kept
    apart from kiosk numbers: its own letter `prefix`, or a `range` of the service's
    3-digit numbers above the service's daily quota."""

    button: int
    service: str
    prefix: str | None = None
    range: tuple[int, int] | None = None
    priority: Priority | None = None


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    id: str
    kind: DeviceKind
    url: str  # pyserial URL: /dev/serial/by-id/..., socket://host:port, rfc2217://host:port
    serial: SerialSettings = SerialSettings()
    # Close the link when nothing valid arrived for this long (0: never); dispensers and
    # keypads send heartbeats, printers are polled.
    silence_timeout: float = 30.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    buttons: Mapping[int, ButtonConfig] = field(default_factory=dict)  # dispenser
    addresses: Mapping[int, str] = field(default_factory=dict)  # keypad: address -> counter
    kiosk: str | None = None  # printer: name of the kiosk token it prints for
    poll_interval: float = 2.0  # printer: DLE EOT status poll period

    @property
    def is_network(self) -> bool:
        return self.url.startswith(("socket://", "rfc2217://"))


@functools.lru_cache(maxsize=256)
def _local(now: datetime, timezone: ZoneInfo) -> datetime:
    # One command asks for the local time of the same instant several times (opening
    # hours, cut-off, service day, breaks): a pure function of its arguments, remembered.
    return now.astimezone(timezone)


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    name: str
    timezone: ZoneInfo
    # Opening (inclusive) and closing (exclusive) per weekday; a closing of "24:00" is
    # END_OF_DAY, so ("00:00", END_OF_DAY) is open all day.
    hours: Mapping[str, tuple[time, SpanEnd]]
    breaks: tuple[Break, ...]
    agencies: Mapping[str, Agency]
    services: Mapping[str, Service]
    counters: Mapping[str, Counter]
    no_show_min_calls: int = 2
    devices: tuple[DeviceConfig, ...] = ()
    # Where citizens reach this service (printed QR codes link to the ticket status page).
    public_url: str | None = None
    # The satisfaction survey after service: "skm" (the nine SKM elements of PermenPANRB
    # 14/2017, each 1-4) or "quick" (a one-tap rating).
    survey: str = "skm"
    online: Online = field(default_factory=Online)

    def service_day(self, now: datetime) -> date:
        """The service day a UTC instant belongs to, in the site's own timezone."""
        return _local(now, self.timezone).date()

    def local(self, now: datetime) -> datetime:
        return _local(now, self.timezone)

    def opening(self, now: datetime) -> tuple[time, SpanEnd] | None:
        """Today's (local) opening and closing, or None on a closed day."""
        return self.hours.get(WEEKDAYS[self.local(now).weekday()])

    def is_open(self, now: datetime) -> bool:
        hours = self.opening(now)
        if hours is None:
            return False
        t = self.local(now).time()
        return hours[0] <= t and before(t, hours[1])

    def continues_day_before(self, weekday: str) -> bool:
        """The hall does not open on `weekday`, it stays open through the midnight before:
        that day's hours begin at 00:00 and the day before's end at 24:00."""
        hours = self.hours.get(weekday)
        if hours is None or hours[0] != time(0):
            return False
        before_hours = self.hours.get(WEEKDAYS[WEEKDAYS.index(weekday) - 1])
        return before_hours is not None and isinstance(before_hours[1], EndOfDay)

    def next_opening(self, now: datetime) -> datetime | None:
        """When the hall next opens after `now`, site-local (aware, in the site's zone), or
        None while it is open.

        A break is not a closing (tickets are issued through it; the pages show the break's
        label and end instead), so during a break this is None too. Looks at most 7 days
        ahead over the weekday hours: today's opening if it is still to come, else the
        opening of the first day after today that has hours (the same weekday a week on at
        the latest). A day that opens at 00:00 after a day closing at 24:00 does not open:
        the hall stays open through that midnight. That needs no rule of its own here:
        inside such a stretch the hall is open (None), and before it the stretch's own
        opening comes first. None also for a site with no hours at all."""
        if self.is_open(now):
            return None
        local = self.local(now)
        today = self.hours.get(WEEKDAYS[local.weekday()])
        if today is not None and local.time() < today[0]:
            opening = self._instant(local.date(), today[0])
            if opening.timestamp() <= now.timestamp():
                # Clocks set back: `now` is in the repeated hour, before the second showing
                # of the opening time, and the first is past (the hall was open then).
                wall = at_local(local.date(), today[0], self.timezone).replace(fold=1)
                opening = datetime.fromtimestamp(wall.timestamp(), self.timezone)
            return opening
        return self.next_day_opening(now)

    def next_day_opening(self, now: datetime, cutoff: time | None = None) -> datetime | None:
        """The opening of the first local day after `now`'s (within 7 days) that has hours
        beginning before `cutoff` (any hours when None), site-local; None if there is none.

        When a service refused for the rest of today (its cutoff passed, its daily quota
        used up: both restart with the service day) issues tickets again. Through a
        midnight the hall stays open across (24:00 then 00:00) that is the next day's 00:00,
        where the new service day begins."""
        day = self.local(now).date()
        for ahead in range(1, 8):
            later = day + timedelta(days=ahead)
            hours = self.hours.get(WEEKDAYS[later.weekday()])
            if hours is not None and (cutoff is None or hours[0] < cutoff):
                return self._instant(later, hours[0])
        return None

    def _instant(self, day: date, clock: time) -> datetime:
        """The first instant the site's clocks show `clock` on `day` or later, site-local:
        the first of a wall time shown twice (clocks set back), and where clocks jumped
        forward over it, the instant they jumped (the hall is open from then on)."""
        wall = at_local(day, clock, self.timezone)
        instant = datetime.fromtimestamp(wall.timestamp(), self.timezone)
        naive = wall.replace(tzinfo=None)
        if instant.replace(tzinfo=None) == naive:
            return instant
        # Skipped: `fold=1` reads the wall time with the offset from after the jump, which
        # lands before it; the jump lies between, on a whole second: bisect for it.
        lo = int(wall.replace(fold=1).timestamp())
        hi = int(instant.timestamp())
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if datetime.fromtimestamp(mid, self.timezone).replace(tzinfo=None) >= naive:
                hi = mid
            else:
                lo = mid
        return datetime.fromtimestamp(hi, self.timezone)

    def current_break(self, now: datetime) -> Break | None:
        local = self.local(now)
        day = WEEKDAYS[local.weekday()]
        t = local.time()
        for brk in self.breaks:
            if day in brk.days and brk.start <= t and before(t, brk.end):
                return brk
        return None
