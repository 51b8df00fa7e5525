"""One simulated hall day: citizens arriving, officers at counters, through a driver.

`HallDay` is a discrete-event loop on the simulated clock. Everything random is drawn from
one `random.Random(seed)` in an order that depends only on the seed and on what the
service answered, so the same seed against the same service behaviour gives the same day,
event for event. It acts only through a `Driver`: `offline.OfflineDriver` applies the pure
domain's commands with a manual clock; `http.HttpDriver` calls a running service's API.

What a day holds (rates from the `Profile`, capacity from the site's configuration):
arrivals per service as a time-varying Poisson process (morning peak, lunch dip, a
configured break such as the Friday prayer, an optional overload spell), a priority share,
lognormal service times per service times the officer's speed factor, counters opening
on a schedule, pausing for the breaks and for short absences, closing when their queues
are empty after hours (or early, by the profile), recalls of late citizens, no-shows
(citizens who never come, or whose patience ran out), cancellations, transfers to
another service and the outcomes of a finished visit.

Antrian online, under a profile that has it (`Profile.online`) and where a service takes
bookings or remote joins: a share of a bookable service's arrivals booked a slot that
morning instead (slots chosen mornings first, a full one passed over), then cancel, never
come (their booking is missed when its check-in window closes), or check in at the kiosk
early, on time or late (too early: told to come back when check-in opens; too late: a
walk-in ticket); a share of the others join the queue from home and come later, confirming
their ticket at the kiosk where the service asks for it (called before they are there,
they are recalled and marked no-show like anyone absent, and take a new ticket on
arrival). Everything drawn for it comes from a random generator of its own, so a profile
without it gives, seed for seed, the day it gave before.

A family of hall behaviour (`families.py`: bursts, a surge, another daily shape, heavier-
tailed service times, late openings, officers' own pauses, slow and fast officers) changes
the model of the day; its draws come from a random generator of its own too.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal, Protocol

from queue_service.domain.actions import CounterAction
from queue_service.domain.bookings import Slot, policy_of, slots_of
from queue_service.domain.online import slot_open
from queue_service.domain.site import WEEKDAYS, EndOfDay, Site, at_local
from queue_service.domain.vocab import Priority
from queue_service.simulate.families import Family
from queue_service.simulate.profiles import Profile

# The priority kinds a citizen may have.
_PRIORITIES = tuple(Priority)
# What a driver answers for a command that did not happen: the API's error code.
Refused = str
# A booking refused with these: the citizen tries their next choice of slot.
_NEXT_SLOT = frozenset({"slot_full", "booking_closed"})
# A check-in refused with these: the citizen waits and tries again when it may be done.
_COME_BACK = frozenset({"too_early", "site_closed"})


@dataclass(slots=True)
class Issued:
    number: str
    ticket_id: str | None
    code: str | None = None  # a remote join's code, to confirm at the kiosk on arrival
    due_at: datetime | None = None  # a booking's ticket: called ahead of walk-ins from then
    estimate: float | None = None  # the estimated wait the citizen was told (seconds)


@dataclass(slots=True)
class Booked:
    booking_id: str
    code: str  # what the kiosk takes at check-in


@dataclass(slots=True)
class Called:
    number: str
    ticket_id: str | None
    service: str


class Driver(Protocol):
    """Where a simulated day's commands go. Each method answers what happened, or the
    error code of a refusal (a driver never raises for a refusal)."""

    async def wait_until(self, at: datetime) -> None: ...

    async def issue(
        self, at: datetime, service: str, priority: Priority | None
    ) -> Issued | Refused: ...

    async def call_next(self, at: datetime, counter: str) -> Called | Refused: ...

    async def counter(
        self, at: datetime, counter: str, action: CounterAction, body: dict[str, str] | None = None
    ) -> Refused | None: ...

    async def cancel(self, at: datetime, number: str, ticket_id: str | None) -> Refused | None: ...

    async def book(self, at: datetime, service: str, day: date, slot: str) -> Booked | Refused:
        """Book the slot starting at `slot` ("HH:MM") of `service` on `day`."""
        ...

    async def cancel_booking(self, at: datetime, booking_id: str) -> Refused | None: ...

    async def check_in(self, at: datetime, code: str) -> Issued | Refused:
        """A booking's code at the kiosk: its ticket."""
        ...

    async def join(self, at: datetime, service: str) -> Issued | Refused:
        """Today's ticket taken from the phone (remote join)."""
        ...

    async def estimate(self, at: datetime, service: str) -> float | None:
        """The estimated wait the hall's public pages show for a ticket of `service` taken
        now (seconds; None when there is none)."""
        ...

    async def confirm(self, at: datetime, code: str) -> Refused | None:
        """A remote join's code at the kiosk, on arrival."""
        ...

    async def miss_bookings(self, at: datetime) -> int | None:
        """Bookings whose check-in window has closed marked missed: how many (None where
        the service does it on its own clock)."""
        ...


@dataclass(slots=True)
class Citizen:
    number: str
    ticket_id: str | None
    service: str
    issued_at: datetime
    leaves_at: datetime  # patience runs out: gone (no-show when called, or cancels)
    absent: bool  # never comes when called
    late: bool  # comes only after a recall
    work: float  # service seconds at an officer of speed 1.0
    transfer_to: str | None
    outcome: str
    cancels: bool
    gone: bool = False
    arrives_at: datetime | None = None  # a remote join: not in the hall before this
    code: str | None = None  # ... and the code it confirms its ticket with on arrival


Fate = Literal["comes", "absent", "cancels"]


@dataclass(slots=True)
class Booker:
    """A citizen who books a slot instead of walking in at `walk_in_at` (where booking
    fails, they walk in then after all)."""

    service: str
    walk_in_at: datetime
    fate: Fate
    offset: timedelta  # arrival - the slot's start, for one who comes
    cancel_after: float  # share of the time from booking to the slot, for one who cancels
    booking_id: str | None = None
    code: str | None = None
    slot: Slot | None = None


@dataclass(slots=True)
class Officer:
    id: str
    services: tuple[str, ...]
    speed: float
    uses_start: bool
    opens_at: datetime
    leaves_early_at: datetime | None
    phase: str = "closed"  # closed, idle, called, serving, paused, done
    gen: int = 0  # the current scheduled wake-up; older ones are stale
    woken: bool = False  # a wake-up is scheduled
    citizen: Citizen | None = None
    paused_for: set[str] = field(default_factory=set)  # breaks already taken
    next_short_pause: datetime | None = None
    # A family's officer behaviour: works through the configured breaks; pauses of its
    # own (key, start, end, reason); the next short meeting; minutes late back from a
    # configured break.
    skips_breaks: bool = False
    own_pauses: list[tuple[str, datetime, datetime, str]] = field(default_factory=list)
    next_meeting: datetime | None = None
    break_late: float = 0.0


@dataclass(slots=True)
class Summary:
    profile: str
    seed: int
    day: date
    actions: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    waiting_at_end: int = 0

    def count(self, key: str, n: int = 1) -> None:
        self.actions[key] = self.actions.get(key, 0) + n

    def refuse(self, code: str) -> None:
        self.refused[code] = self.refused.get(code, 0) + 1


Progress = Callable[[float], None]


class HallDay:
    """A day of `site` under `profile`, drawn from `seed`, on `day` (default: by seed), in
    the hall behaviour of `family` (default: the calibrated model's)."""

    def __init__(
        self,
        site: Site,
        profile: Profile,
        seed: int,
        day: date | None = None,
        family: Family | None = None,
    ) -> None:
        self.site = site
        self.profile = profile
        self.seed = seed
        self.family = family
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not secrets
        # Antrian online's own draws (see the module's docstring).
        self.online_rng = random.Random(f"{seed}/online")  # noqa: S311
        # A family's own draws.
        name = family.name if family is not None else ""
        self.family_rng = random.Random(f"{seed}/family/{name}")  # noqa: S311
        self._shape = family.shape if family is not None and family.shape else profile.shape
        # A family's surge, once planned: (service, from, to).
        self.surge: tuple[str, datetime, datetime] | None = None
        # Mondays to Fridays in turn by seed (a Friday has the prayer break).
        self.day = day or date(2026, 11, 23) + timedelta(days=seed % 5)
        self.summary = Summary(profile.name, seed, self.day)
        self.citizens: dict[str, Citizen] = {}
        self.officers: dict[str, Officer] = {}
        self._called: set[str] = set()  # numbers called in their current visit
        self._calls: dict[str, int] = {}  # calls of the current visit, by number
        self._heap: list[tuple[datetime, int, str, str, int]] = []
        self._order = 0
        self.bookers: list[Booker] = []
        self._taken: Counter[tuple[str, time]] = Counter()  # booked here, per service and slot
        self._miss_checks: set[datetime] = set()
        first = min(profile.first_arrival, profile.counters_open_from)
        if profile.booking_share > 0:
            first = min(first, profile.booking_window[0])
        self.start = self.at(first)
        self.end = self.at(profile.hard_close)

    # -- time ------------------------------------------------------------------------

    def at(self, t: time | EndOfDay) -> datetime:
        """`t` on the simulated day, local time (24:00: the next day's 00:00)."""
        return at_local(self.day, t, self.site.timezone)

    def _local(self, ts: datetime) -> time:
        return ts.astimezone(self.site.timezone).time()

    def _breaks_today(self) -> list[tuple[str, datetime, datetime]]:
        day = WEEKDAYS[self.day.weekday()]
        return [
            (b.label + b.start.isoformat(), self.at(b.start), self.at(b.end))
            for b in self.site.breaks
            if day in b.days
        ]

    def _push(self, at: datetime, kind: str, arg: str, gen: int = 0) -> None:
        self._order += 1
        heapq.heappush(self._heap, (at, self._order, kind, arg, gen))

    def _wake(self, o: Officer, at: datetime) -> None:
        o.gen += 1
        o.woken = True
        self._push(at, "counter", o.id, o.gen)

    def _secs(self, span: tuple[float, float]) -> timedelta:
        return timedelta(seconds=self.rng.uniform(*span))

    # -- the plan ----------------------------------------------------------------------

    def _intensity(self, t: time) -> float:
        pts = self._shape
        m = t.hour * 60 + t.minute + t.second / 60
        prev = pts[0]
        w = pts[0][1]
        for cur in pts:
            cm = cur[0].hour * 60 + cur[0].minute
            pm = prev[0].hour * 60 + prev[0].minute
            if m <= cm:
                w = prev[1] if cm == pm else prev[1] + (cur[1] - prev[1]) * (m - pm) / (cm - pm)
                break
            prev = cur
            w = cur[1]
        return w

    def _plan_officers(self) -> None:
        p, rng = self.profile, self.rng
        ids = list(self.site.counters)
        staffed = max(1, round(len(ids) * p.staffed))
        present = ids if staffed >= len(ids) else sorted(rng.sample(ids, staffed))
        early = set(rng.sample(present, round(len(present) * p.early_close_share)))
        for cid in present:
            cfg = self.site.counters[cid]
            opens = self.at(p.counters_open_from) + timedelta(seconds=rng.uniform(0, 1500))
            o = self.officers[cid] = Officer(
                cid,
                cfg.services,
                speed=rng.lognormvariate(0.0, p.officer_sigma),
                uses_start=cfg.uses_start,
                opens_at=opens,
                leaves_early_at=(
                    self.at(p.early_close) + timedelta(seconds=rng.uniform(0, 1800))
                    if cid in early
                    else None
                ),
            )
            if self.family is not None:
                self._family_officer(self.family, o)
            self._push(o.opens_at, "open", cid)

    def _family_officer(self, f: Family, o: Officer) -> None:
        """An officer as `f` has them: when the counter opens, back from a break, lunch,
        speed."""
        frng = self.family_rng
        if f.late_start is not None:
            on_time, late, back = f.late_start
            hours = self.site.opening(self.at(time(12, 0)))
            opening = self.at(hours[0] if hours is not None else self.profile.counters_open_from)
            minutes = frng.uniform(0.0, 5.0) if frng.random() < on_time else frng.uniform(*late)
            o.opens_at = opening + timedelta(minutes=minutes)
            o.break_late = frng.uniform(*back)
        if f.staggered_lunch is not None:
            share, earliest, latest, length = f.staggered_lunch
            if frng.random() < share:
                o.skips_breaks = True
                begin, end = self.at(earliest), self.at(latest)
                start = begin + (end - begin) * frng.random()
                lunch = timedelta(minutes=frng.uniform(*length))
                o.own_pauses.append(("lunch", start, start + lunch, "Makan siang"))
        if f.speeds is not None:
            o.speed *= frng.choice(f.speeds)

    def _plan_arrivals(self) -> None:
        """Thinning of a Poisson process whose rate follows the profile, per service."""
        p, rng = self.profile, self.rng
        cap = dict.fromkeys(self.site.services, 0.0)
        for o in self.officers.values():
            for s in o.services:
                cap[s] += 1.0 / len(o.services)
        for code, c in cap.items():  # a service nobody staffs still gets a trickle
            cap[code] = max(c, 0.25)
        begin, end = self.at(p.first_arrival), self.at(p.last_arrival)
        span = (end - begin).total_seconds()
        samples = [self._shape_at(begin + timedelta(seconds=x)) for x in range(0, int(span), 300)]
        mean_w = sum(samples) / len(samples)
        peak = max(samples) / mean_w
        cycle = {
            code: svc.default_service_minutes * 60 + sum(p.walk_seconds) / 2
            for code, svc in self.site.services.items()
        }
        # Arrivals per second at relative weight 1 for each service.
        base = {code: p.load * cap[code] / cycle[code] for code in cap}
        total = sum(base.values())
        codes = list(base)
        weights = [base[c] for c in codes]
        lam_max = total * peak
        bursts = self.family.bursts if self.family is not None else None
        if bursts is not None:
            lam_max /= bursts[0]  # groups, of `bursts[0]` citizens on average
        t = 0.0
        while True:
            t += rng.expovariate(lam_max)
            if t >= span:
                break
            at = begin + timedelta(seconds=t)
            if rng.random() * peak > self._shape_at(at) / mean_w:
                continue
            service = rng.choices(codes, weights)[0]
            self._plan_arrival(at, service)
            if bursts is not None:
                self._plan_group(bursts, at, service, codes, weights)
        if self.family is not None and self.family.surge is not None:
            serving = {
                c: cap[c] / (self.site.services[c].default_service_minutes * 60) for c in cap
            }
            self._plan_surge(self.family.surge, serving, base)

    def _plan_group(
        self,
        bursts: tuple[float, float, float],
        at: datetime,
        service: str,
        codes: list[str],
        weights: list[float],
    ) -> None:
        """The rest of a group whose first member arrived at `at` for `service`: geometric
        in size (of mean `bursts[0]`), arriving within `bursts[1]` seconds."""
        frng = self.family_rng
        size, spread, same = bursts
        while frng.random() < 1.0 - 1.0 / size:
            when = at + timedelta(seconds=frng.uniform(0.0, spread))
            other = service if frng.random() < same else frng.choices(codes, weights)[0]
            self._plan_arrival(when, other)

    def _plan_surge(
        self,
        surge: tuple[time, time, float, float],
        serving: dict[str, float],
        base: dict[str, float],
    ) -> None:
        """An hour (or `surge[2]` minutes) in which one staffed service gets, beyond its
        usual arrivals, `surge[3]` times what its counters serve per second."""
        frng = self.family_rng
        earliest, latest, minutes, factor = surge
        staffed = [c for c in base if any(c in o.services for o in self.officers.values())]
        code = frng.choices(staffed, [base[c] for c in staffed])[0]
        begin, end = self.at(earliest), self.at(latest)
        start = begin + (end - begin) * frng.random()
        rate = factor * serving[code]
        self.surge = (code, start, start + timedelta(minutes=minutes))
        t = 0.0
        while True:
            t += frng.expovariate(rate)
            if t >= minutes * 60:
                break
            self._plan_arrival(start + timedelta(seconds=t), code)

    def _shape_at(self, at: datetime) -> float:
        p = self.profile
        t = self._local(at)
        w = self._intensity(t)
        for _, start, end in self._breaks_today():
            if start <= at < end:
                w *= p.break_factor
        if p.overload is not None and p.overload[0] <= t < p.overload[1]:
            w *= p.overload[2]
        return w

    def _plan_arrival(self, at: datetime, service: str) -> None:
        """An arrival of `service` at `at`: a walk-in, or (antrian online) a booker or a
        remote join."""
        p = self.profile
        policy = self.site.services[service].booking
        if p.online and policy is not None:
            orng = self.online_rng
            if orng.random() < p.booking_share:
                self._plan_booker(at, service)
                return
            if policy.remote_join and orng.random() < p.remote_share:
                self._push(at, "join", service)
                return
        self._push(at, "arrive", service)

    def _plan_booker(self, at: datetime, service: str) -> None:
        p, orng = self.profile, self.online_rng
        r = orng.random()
        fate: Fate = "comes"
        if r < p.booking_cancel:
            fate = "cancels"
        elif r < p.booking_cancel + p.booking_absent:
            fate = "absent"
        r = orng.random()
        lo, hi = p.punctuality[-1][1:]
        for share, low, high in p.punctuality:
            if r < share:
                lo, hi = low, high
                break
            r -= share
        offset = timedelta(minutes=orng.uniform(lo, hi))
        self.bookers.append(Booker(service, at, fate, offset, cancel_after=orng.random()))
        begin, end = (self.at(t) for t in p.booking_window)
        made = begin + timedelta(seconds=orng.uniform(0.0, (end - begin).total_seconds()))
        self._push(made, "book", str(len(self.bookers) - 1))

    def _new_citizen(self, issued: Issued, service: str, at: datetime) -> Citizen:
        p, rng = self.profile, self.rng
        svc = self.site.services[service]
        work = min(4 * 3600.0, self._work(svc.default_service_minutes * 60))
        transfer_to = None
        if rng.random() < p.transfer:
            others = [s for s in self.site.services if s != service]
            same = [s for s in others if self.site.services[s].agency == svc.agency]
            transfer_to = rng.choice(same or others)
        r = rng.random()
        outcome = p.outcomes[-1][0]
        for name, share in p.outcomes:
            if r < share:
                outcome = name
                break
            r -= share
        return Citizen(
            issued.number,
            issued.ticket_id,
            service,
            at,
            leaves_at=at + timedelta(minutes=rng.expovariate(1.0 / p.patience_minutes)),
            absent=rng.random() < p.no_show,
            late=rng.random() < p.late,
            work=work,
            transfer_to=transfer_to,
            outcome=outcome,
            cancels=rng.random() < p.cancels_when_leaving,
        )

    def _work(self, mean: float) -> float:
        """A visit's service seconds at an officer of speed 1.0, for a service of `mean`
        seconds: lognormal, or the family's mixture with a long tail (the same mean)."""
        sigma = self.profile.service_sigma
        work = self.rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)
        tail = self.family.long_tail if self.family is not None else None
        if tail is None:
            return work
        share, times, long_sigma, short_sigma = tail
        frng = self.family_rng
        if frng.random() < share:
            m, s = mean * times, long_sigma
        else:
            m, s = mean * (1.0 - share * times) / (1.0 - share), short_sigma
        return frng.lognormvariate(math.log(m) - s * s / 2, s)

    # -- the loop ----------------------------------------------------------------------

    async def run(
        self, driver: Driver, progress: Progress | None = None, until: time | None = None
    ) -> Summary:
        """Play the day through `driver` (up to `until`, local time, when given)."""
        self._plan_officers()
        self._plan_arrivals()
        if until is not None:
            self.end = min(self.end, self.at(until))
        span = (self.end - self.start).total_seconds()
        handlers: dict[str, Callable[[Driver, datetime, str, int], Awaitable[None]]] = {
            "arrive": self._arrive,
            "open": self._open,
            "counter": self._counter,
            "leave": self._leave,
            "book": self._book,
            "unbook": self._unbook,
            "check_in": self._check_in,
            "join": self._join,
            "confirm": self._confirm,
            "due": self._due,
            "miss": self._miss,
        }
        last_progress = -1.0
        while self._heap:
            at, _, kind, arg, gen = heapq.heappop(self._heap)
            if at > self.end:
                break
            await driver.wait_until(at)
            await handlers[kind](driver, at, arg, gen)
            if progress is not None:
                done = (at - self.start).total_seconds() / span
                if done - last_progress >= 0.005:
                    progress(done)
                    last_progress = done
        if progress is not None:
            progress(1.0)
        self.summary.waiting_at_end = sum(
            1 for c in self.citizens.values() if c.number not in self._called and not c.gone
        )
        return self.summary

    async def _arrive(self, driver: Driver, at: datetime, service: str, _gen: int) -> None:
        p, rng = self.profile, self.rng
        priority = rng.choice(_PRIORITIES) if rng.random() < p.priority else None
        result = await driver.issue(at, service, priority)
        if isinstance(result, str):
            self.summary.refuse(result)
            return
        self._admit(result, service, at)

    def _admit(
        self, issued: Issued, service: str, at: datetime, arrives_at: datetime | None = None
    ) -> Citizen:
        """A ticket issued at `at`: its citizen joins the day."""
        self.summary.count("issued")
        citizen = self._new_citizen(issued, service, at)
        citizen.arrives_at, citizen.code = arrives_at, issued.code
        self.citizens[citizen.number] = citizen
        if citizen.cancels:
            self._push(citizen.leaves_at, "leave", citizen.number)
        self._notice(service, at)
        return citizen

    def _notice(self, service: str, at: datetime) -> None:
        """Idle officers of `service` notice a ticket to call."""
        for o in self.officers.values():
            if o.phase == "idle" and not o.woken and service in o.services:
                self._wake(o, at + self._secs(self.profile.reaction_seconds))

    # -- antrian online ------------------------------------------------------------------

    def _prefer(self, slots: list[Slot]) -> Slot:
        """A slot drawn mornings first (`Profile.slot_preference` per hour later)."""
        first = slots[0].starts_at
        weights = [
            self.profile.slot_preference ** ((s.starts_at - first).total_seconds() / 3600)
            for s in slots
        ]
        return self.online_rng.choices(slots, weights)[0]

    async def _book(self, driver: Driver, at: datetime, index: str, _gen: int) -> None:
        b = self.bookers[int(index)]
        svc = self.site.services[b.service]
        policy = policy_of(svc)
        slots = [
            s
            for s in slots_of(self.site, svc, self.day)
            if slot_open(svc, s, at) and self._taken[(b.service, s.start)] < policy.capacity
        ]
        booked: Booked | None = None
        while slots and booked is None:
            slot = self._prefer(slots)
            result = await driver.book(at, b.service, self.day, slot.label)
            if isinstance(result, Booked):
                booked, b.slot = result, slot
                continue
            self.summary.refuse(result)
            # Taken by others meanwhile, or closed: the next choice; else no booking.
            slots = [s for s in slots if s != slot] if result in _NEXT_SLOT else []
        if booked is None or b.slot is None:
            self._push(b.walk_in_at, "arrive", b.service)  # walks in after all
            return
        slot = b.slot
        self.summary.count("booked")
        self._taken[(b.service, slot.start)] += 1
        b.booking_id, b.code = booked.booking_id, booked.code
        if b.fate == "cancels":
            self._push(at + (slot.starts_at - at) * b.cancel_after, "unbook", index)
        elif b.fate == "comes":
            self._push(slot.starts_at + b.offset, "check_in", index)
        # Whoever has not checked in is missed when the window closes.
        check = slot.starts_at + timedelta(minutes=policy.late_minutes, seconds=1)
        if check not in self._miss_checks:
            self._miss_checks.add(check)
            self._push(check, "miss", "")

    async def _unbook(self, driver: Driver, at: datetime, index: str, _gen: int) -> None:
        b = self.bookers[int(index)]
        assert b.booking_id is not None
        result = await driver.cancel_booking(at, b.booking_id)
        if result is None:
            self.summary.count("booking_cancelled")
        else:
            self.summary.refuse(result)

    async def _check_in(self, driver: Driver, at: datetime, index: str, _gen: int) -> None:
        b = self.bookers[int(index)]
        assert b.code is not None
        assert b.slot is not None
        result = await driver.check_in(at, b.code)
        if isinstance(result, str):
            self.summary.refuse(result)
            if result in _COME_BACK:  # before the check-in window, or the hall, opens
                early = policy_of(self.site.services[b.service]).early_minutes
                again = (
                    b.slot.starts_at - timedelta(minutes=early)
                    if result == "too_early"
                    else self.site.next_opening(at)
                )
                if again is not None and at < again < self.end:
                    self._push(again + self._online_secs((0.0, 90.0)), "check_in", index)
                    return
                if result == "site_closed":
                    return  # closed for the rest of the day: home again
            # Missed already, or refused as late: a walk-in ticket.
            await self._arrive(driver, at, b.service, 0)
            return
        self.summary.count("checked_in")
        self._admit(result, b.service, at)
        if result.due_at is not None and result.due_at > at:
            self._push(result.due_at, "due", b.service)

    def _online_secs(self, span: tuple[float, float]) -> timedelta:
        return timedelta(seconds=self.online_rng.uniform(*span))

    async def _join(self, driver: Driver, at: datetime, service: str, _gen: int) -> None:
        """One who could join from home looks at the wait the hall's page shows: shorter
        than the trip and the margin, they just come and take a ticket at the kiosk."""
        p, orng = self.profile, self.online_rng
        travel = orng.uniform(*p.remote_travel_minutes) * 60
        margin = orng.uniform(*p.remote_margin_minutes) * 60
        shown = await driver.estimate(at, service)
        if shown is None or shown < travel + margin:
            self._push(at + timedelta(seconds=travel), "arrive", service)
            return
        result = await driver.join(at, service)
        if isinstance(result, str):
            self.summary.refuse(result)
            self._push(at + timedelta(seconds=travel), "arrive", service)  # to the kiosk
            return
        self.summary.count("joined")
        # Sets off to be there `margin` before the estimate says the turn comes.
        arrives = at + timedelta(seconds=max(travel, (result.estimate or 0.0) - margin))
        c = self._admit(result, service, at, arrives_at=arrives)
        if c.code is not None and not c.absent:
            self._push(arrives, "confirm", c.number)

    async def _confirm(self, driver: Driver, at: datetime, number: str, _gen: int) -> None:
        c = self.citizens[number]
        if c.leaves_at <= at:
            return  # gave up on the way (and cancelled from the phone, or not)
        if c.gone:  # marked a no-show before arriving: a new ticket
            await self._arrive(driver, at, c.service, 0)
            return
        if number in self._called:
            return  # called while on the way: straight to the counter
        assert c.code is not None
        result = await driver.confirm(at, c.code)
        if result is None:
            self.summary.count("confirmed")
        else:
            self.summary.refuse(result)

    async def _due(self, driver: Driver, at: datetime, service: str, _gen: int) -> None:
        self._notice(service, at)  # a booking's ticket is called from its slot on

    async def _miss(self, driver: Driver, at: datetime, _arg: str, _gen: int) -> None:
        missed = await driver.miss_bookings(at)
        if missed:
            self.summary.count("missed", missed)

    async def _leave(self, driver: Driver, at: datetime, number: str, _gen: int) -> None:
        c = self.citizens[number]
        if number in self._called or c.gone:
            return
        result = await driver.cancel(at, number, c.ticket_id)
        if result is None:
            c.gone = True
            self.summary.count("cancelled")
        else:
            self.summary.refuse(result)

    async def _open(self, driver: Driver, at: datetime, cid: str, _gen: int) -> None:
        o = self.officers[cid]
        if await self._act(driver, at, o, CounterAction.OPEN, "opened"):
            o.phase = "idle"
            o.next_short_pause = at + self._short_pause_gap()
            if self.family is not None and self.family.meetings is not None:
                rate = self.family.meetings[0]
                o.next_meeting = at + timedelta(hours=self.family_rng.expovariate(rate))
            self._wake(o, at + self._secs((1.0, 10.0)))

    def _short_pause_gap(self) -> timedelta:
        rate = self.profile.short_pause_per_hour
        return timedelta(hours=self.rng.expovariate(rate) if rate > 0 else 99.0)

    async def _act(
        self,
        driver: Driver,
        at: datetime,
        o: Officer,
        action: CounterAction,
        counted: str,
        body: dict[str, str] | None = None,
    ) -> bool:
        result = await driver.counter(at, o.id, action, body)
        if result is not None:
            self.summary.refuse(result)
            return False
        self.summary.count(counted)
        return True

    async def _counter(self, driver: Driver, at: datetime, cid: str, gen: int) -> None:
        o = self.officers[cid]
        if gen != o.gen:
            return  # superseded by a later wake-up
        o.woken = False
        if o.phase == "idle":
            await self._idle(driver, at, o)
        elif o.phase == "paused":
            if await self._act(driver, at, o, CounterAction.OPEN, "opened"):
                o.phase = "idle"
                self._wake(o, at + self._secs((1.0, 10.0)))
        elif o.phase == "called":
            await self._called_step(driver, at, o)
        elif o.phase == "serving":
            await self._serve_end(driver, at, o)

    async def _idle(self, driver: Driver, at: datetime, o: Officer) -> None:
        p, rng = self.profile, self.rng
        for key, start, end in [] if o.skips_breaks else self._breaks_today():
            if start <= at < end and key not in o.paused_for:
                o.paused_for.add(key)
                if await self._act(
                    driver, at, o, CounterAction.PAUSE, "paused", {"reason": "Istirahat"}
                ):
                    o.phase = "paused"
                    late = timedelta(minutes=o.break_late)
                    self._wake(o, end + self._secs((0.0, 300.0)) + late)
                return
        after_hours = self._local(at) >= p.close_after
        leaving = o.leaves_early_at is not None and at >= o.leaves_early_at
        if leaving or at >= self.end or (after_hours and not self._waiting_for(o)):
            if await self._act(driver, at, o, CounterAction.CLOSE, "closed"):
                o.phase = "done"
            return
        if await self._own_pause(driver, at, o):
            return
        if o.next_short_pause is not None and at >= o.next_short_pause:
            o.next_short_pause = at + self._short_pause_gap()
            if await self._act(
                driver, at, o, CounterAction.PAUSE, "paused", {"reason": "Keperluan sebentar"}
            ):
                o.phase = "paused"
                self._wake(o, at + timedelta(minutes=rng.uniform(5, 15)))
                return
        result = await driver.call_next(at, o.id)
        if isinstance(result, str):
            if result != "queue_empty":
                self.summary.refuse(result)
            # Nothing waiting: look again now and then (new tickets wake the officer).
            self._wake(o, at + timedelta(seconds=rng.uniform(90, 150)))
            return
        self.summary.count("called")
        self._called.add(result.number)
        c = self.citizens.get(result.number)
        if c is None:  # a ticket this simulator did not issue (another client's)
            c = self._new_citizen(Issued(result.number, result.ticket_id), result.service, at)
            self.citizens[c.number] = c
        c.service = result.service
        o.citizen, o.phase = c, "called"
        self._wake(o, at + self._secs(p.walk_seconds))

    async def _own_pause(self, driver: Driver, at: datetime, o: Officer) -> bool:
        """An officer's pause of their own (a family's: a lunch, a meeting), when its time
        has come: whether the officer paused (or tried to)."""
        for key, start, end, reason in o.own_pauses:
            if start <= at < end and key not in o.paused_for:
                o.paused_for.add(key)
                if await self._act(
                    driver, at, o, CounterAction.PAUSE, "paused", {"reason": reason}
                ):
                    o.phase = "paused"
                    self._wake(o, end)
                return True
        f = self.family
        if f is None or f.meetings is None or o.next_meeting is None or at < o.next_meeting:
            return False
        rate, length = f.meetings
        o.next_meeting = at + timedelta(hours=self.family_rng.expovariate(rate))
        if await self._act(driver, at, o, CounterAction.PAUSE, "paused", {"reason": "Rapat"}):
            o.phase = "paused"
            self._wake(o, at + timedelta(minutes=self.family_rng.uniform(*length)))
        return True

    def _waiting_for(self, o: Officer) -> bool:
        return any(
            c.service in o.services and c.number not in self._called and not c.gone
            for c in self.citizens.values()
        )

    async def _called_step(self, driver: Driver, at: datetime, o: Officer) -> None:
        c = o.citizen
        assert c is not None
        calls = self._calls.get(c.number, 1)
        away = (
            c.absent
            or (c.leaves_at <= at and not c.cancels)
            or (c.arrives_at is not None and at < c.arrives_at)
        )
        if away or (c.late and calls < 2):
            if away and calls >= self.site.no_show_min_calls:
                if await self._act(driver, at, o, CounterAction.NO_SHOW, "no_show"):
                    c.gone = True
                    o.citizen, o.phase = None, "idle"
                    self._wake(o, at + self._secs((5.0, 20.0)))
                return
            if await self._act(driver, at, o, CounterAction.RECALL, "recalled"):
                self._calls[c.number] = calls + 1
            self._wake(o, at + self._secs((30.0, 75.0)))
            return
        if o.uses_start:
            if not await self._act(driver, at, o, CounterAction.START, "started"):
                return
            begin = at
        else:
            begin = at  # walk and service run together without "start"
        o.phase = "serving"
        self._wake(o, begin + timedelta(seconds=c.work * o.speed))

    async def _serve_end(self, driver: Driver, at: datetime, o: Officer) -> None:
        c = o.citizen
        assert c is not None
        if c.transfer_to is not None:
            to = c.transfer_to
            if await self._act(
                driver, at, o, CounterAction.TRANSFER, "transferred", {"service": to}
            ):
                c.transfer_to = None
                self._called.discard(c.number)
                self._calls.pop(c.number, None)
                c.service = to
                c.work = self._work(self.site.services[to].default_service_minutes * 60)
                self._notice(to, at)
        elif not await self._act(
            driver, at, o, CounterAction.FINISH, "finished", {"outcome": c.outcome}
        ):
            return
        o.citizen, o.phase = None, "idle"
        self._wake(o, at + self._secs((3.0, 15.0)))
