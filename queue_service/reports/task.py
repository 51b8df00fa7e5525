"""IKM gauges for /metrics, and keeping the report rollups warm, in one background task.

`/metrics` renders synchronously from memory, so the IKM (a SQL aggregate over the
surveys of a rolling window) is computed by a task every few minutes and the rendered
text kept. Labels: `site`, `service` only (at most sites x services series per family).
The same task rolls up the closed days of the last week for every site once an hour, so a
manager's report never waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta

import asyncpg

from queue_service.config import AppConfig
from queue_service.domain import ikm
from queue_service.domain.clock import Clock
from queue_service.exposition import escape, fmt, header
from queue_service.reports.build import site_dims
from queue_service.store import reports as store
from queue_service.store.protocol import StoreUnavailable

log = logging.getLogger(__name__)

WINDOW_DAYS = 30
REFRESH_SECONDS = 300.0
ROLLUP_EVERY_SECONDS = 3600.0
ROLLUP_DAYS = 7


def render(rows: list[dict[str, object]], window_days: int) -> str:
    """The IKM families from `store.ikm_sums` rows (a site row has service None)."""
    score_site: list[str] = []
    resp_site: list[str] = []
    score_svc: list[str] = []
    resp_svc: list[str] = []
    for row in sorted(rows, key=lambda r: (str(r["site_id"]), str(r["service"] or ""))):
        n = int(row["respondents"] or 0)  # type: ignore[call-overload]
        sums = [float(row[f"u{i}"] or 0) for i in range(1, ikm.ELEMENTS + 1)]  # type: ignore[arg-type]
        result = ikm.from_sums(sums, n)
        site = escape(str(row["site_id"]))
        if row["service"] is None:
            resp_site.append(f'qms_site_ikm_respondents{{site="{site}"}} {n}\n')
            if result is not None:
                score_site.append(f'qms_site_ikm_score{{site="{site}"}} {fmt(result.index)}\n')
        else:
            labels = f'site="{site}",service="{escape(str(row["service"]))}"'
            resp_svc.append(f"qms_ikm_respondents{{{labels}}} {n}\n")
            if result is not None:
                score_svc.append(f"qms_ikm_score{{{labels}}} {fmt(result.index)}\n")
    window = f"over the last {window_days} service days"
    return "".join(
        [
            header("qms_ikm_score", "gauge", f"IKM (SKM, 25..100) per service {window}."),
            *score_svc,
            header("qms_ikm_respondents", "gauge", f"Complete SKM surveys per service {window}."),
            *resp_svc,
            header("qms_site_ikm_score", "gauge", f"IKM (SKM, 25..100) per site {window}."),
            *score_site,
            header("qms_site_ikm_respondents", "gauge", f"Complete SKM surveys per site {window}."),
            *resp_site,
            header(
                "qms_ikm_refresh_timestamp_seconds",
                "gauge",
                "Unix time the IKM gauges were last computed (0: not yet).",
            ),
        ]
    )


class ReportsTask:
    """Refreshes the IKM gauges and rolls up recent days; a MetricSource for /metrics."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        config: AppConfig,
        clock: Clock,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        window_days: int = WINDOW_DAYS,
    ) -> None:
        self.pool = pool
        self.config = config
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self.window_days = window_days
        self._text = render([], window_days)
        self._refreshed = 0.0
        self._last_rollup = -ROLLUP_EVERY_SECONDS
        self._task: asyncio.Task[None] | None = None

    def render_metrics(self, now: float) -> str:
        return self._text + f"qms_ikm_refresh_timestamp_seconds {fmt(self._refreshed)}\n"

    async def refresh(self) -> None:
        now = self.clock.now()
        # The window is counted in service days of the earliest zone in use; a day more
        # or less at the edge is within the gauge's meaning.
        since = min(s.service_day(now) for s in self.config.sites.values()) - timedelta(
            days=self.window_days - 1
        )
        rows = await store.ikm_sums(self.pool, since)
        self._text = render(rows, self.window_days)
        self._refreshed = time.time()

    async def rollup_recent(self) -> None:
        now = self.clock.now()
        for site in self.config.sites.values():
            today = site.service_day(now)
            await store.ensure_rollup(
                self.pool,
                site.id,
                today - timedelta(days=ROLLUP_DAYS),
                today,
                today,
                now,
                site_dims(site),
            )

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
                if time.monotonic() - self._last_rollup >= ROLLUP_EVERY_SECONDS:
                    self._last_rollup = time.monotonic()
                    await self.rollup_recent()
            except StoreUnavailable as exc:
                log.warning("IKM gauges not refreshed: database unavailable (%s)", exc)
            except Exception:
                log.exception("IKM gauges not refreshed")
            await asyncio.sleep(self.refresh_seconds)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="reports-task")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
