"""A real Prometheus (Debian's package) scrapes the running service during a scripted
scenario: every recording rule and dashboard query evaluates and returns data, every alert
expression evaluates and every metric it names exists, the alerts a scenario provokes
become active, `promtool check metrics` finds nothing wrong with the exposition, and
Prometheus scrapes it gzip-compressed and reads the right values."""

from __future__ import annotations

import asyncio
import gzip
import logging
import re
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from queue_service.domain.clock import ManualClock
from queue_service.web.app import create_app
from queue_service.web.keys import ENGINE, EXPOSITION
from tests.conftest import KIOSK, MANAGER, MONDAY_9AM, ROOT, SITE, counter_auth
from tests.service_process import free_port
from tests.test_grafana import dashboard_queries
from tests.tools import require_tool

pytestmark = pytest.mark.prometheus

RULE_FILES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))
# A metric name, not the middle of a recording rule's level:metric:operations name.
METRIC_RE = re.compile(r"(?<![:\w])(qms_[a-z_]+)(?![:\w])")


class Prometheus:
    """A Prometheus process scraping `target` (host:port) every second with the shipped
    rules, started at once; `ready()` waits until it scrapes the target, `stop()` ends it."""

    def __init__(self, binary: str, target: str, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        rules = ", ".join(f'"{p}"' for p in RULE_FILES)
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files: [{rules}]\n"
            "scrape_configs:\n  - job_name: antrian\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n"
        )
        self.log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def ready(self, session: aiohttp.ClientSession) -> None:
        """Wait until Prometheus answers and reports its target up."""
        for _ in range(150):
            try:
                async with session.get(f"{self.url}/-/ready") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("prometheus did not become ready")
        for _ in range(60):
            up = await self.query(session, 'up{job="antrian"}')
            if up and up[0]["value"][1] == "1":
                return
            await asyncio.sleep(0.5)
        raise AssertionError("prometheus never scraped the service")

    async def query(self, session: aiohttp.ClientSession, expr: str) -> list[Any]:
        async with session.get(f"{self.url}/api/v1/query", params={"query": expr}) as resp:
            body = await resp.json()
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@dataclass
class Served:
    """One /metrics answer as the server's access log saw it, after it was sent."""

    user_agent: str
    accept_encoding: str
    status: int
    content_encoding: str | None
    vary: str | None
    sent: int  # bytes written to the socket for the answer
    body: bytes


def metrics_log() -> tuple[list[Served], type[AbstractAccessLogger]]:
    """An access logger (aiohttp's hook, called once the response is written) that keeps
    every /metrics answer, and the list it keeps them in."""
    served: list[Served] = []

    class MetricsLog(AbstractAccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            if request.path != "/metrics":
                return
            body = response.body if isinstance(response, web.Response) else None
            served.append(
                Served(
                    user_agent=request.headers.get("User-Agent", ""),
                    accept_encoding=request.headers.get("Accept-Encoding", ""),
                    status=response.status,
                    content_encoding=response.headers.get("Content-Encoding"),
                    vary=response.headers.get("Vary"),
                    sent=response.body_length,
                    body=body if isinstance(body, bytes) else b"",
                )
            )

    return served, MetricsLog


@dataclass
class Scraped:
    """The service Prometheus scrapes: its test server, its clock, and every /metrics
    answer it sent."""

    server: TestServer
    clock: ManualClock
    served: list[Served]

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def prometheus(self, binary: str, workdir: Path) -> Prometheus:
        return Prometheus(binary, f"127.0.0.1:{self.server.port}", workdir)


@pytest.fixture
async def scraped(settings: Any, config: Any, aiohttp_server: Any) -> Scraped:
    clock = ManualClock(MONDAY_9AM)
    served, log_class = metrics_log()
    server: TestServer = await aiohttp_server(
        create_app(settings, config, clock),
        port=free_port(),
        access_log=logging.getLogger("tests.access"),
        access_log_class=log_class,
    )
    return Scraped(server, clock, served)


async def scenario(session: aiohttp.ClientSession, base: str, clock: ManualClock) -> None:
    """A morning with long waits, a queue no counter serves, and an idle counter."""
    site = f"{base}/api/v1/sites/{SITE}"

    async def post(path: str, headers: dict[str, str], **body: Any) -> None:
        async with session.post(f"{site}{path}", json=body, headers=headers) as resp:
            assert resp.status in (200, 201), await resp.text()

    for _ in range(12):
        await post("/tickets", KIOSK, service="KTP-EL")
    await post("/tickets", KIOSK, service="SKCK")  # no SKCK counter opens
    await post("/tickets", KIOSK, service="PASPOR")
    for n in (1, 2):
        await post(f"/counters/loket-0{n}/open", counter_auth(f"loket-0{n}"))
    await post("/counters/loket-07/open", counter_auth("loket-07"))  # idle, PASPOR waits
    clock.advance(minutes=15)
    # Calls spread over several scrapes, so rates over every window see them change:
    # the first within the 20-minute target, the later ones beyond it.
    for _ in range(5):
        for n in (1, 2):
            await post(f"/counters/loket-0{n}/call-next", counter_auth(f"loket-0{n}"))
            await post(f"/counters/loket-0{n}/start", counter_auth(f"loket-0{n}"))
            clock.advance(minutes=2)
            await post(f"/counters/loket-0{n}/finish", counter_auth(f"loket-0{n}"))
            await asyncio.sleep(0.6)
    # Oldest PASPOR wait is 40+ minutes against a 30-minute target.
    clock.advance(minutes=1)


def rule_expressions() -> list[tuple[str, str, str]]:
    """(kind, name, expr) of every rule in the shipped rule files."""
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                kind = "alert" if "alert" in rule else "record"
                out.append((kind, rule[kind], str(rule["expr"])))
    return out


async def test_prometheus_scrapes_and_every_query_works(scraped: Scraped) -> None:
    binary = require_tool("prometheus")
    with tempfile.TemporaryDirectory() as tmp:
        async with aiohttp.ClientSession() as session:
            prom = scraped.prometheus(binary, Path(tmp))
            try:
                await prom.ready(session)
                await scenario(session, scraped.base, scraped.clock)
                # More scrapes and rule evaluations of the scenario's end state.
                await asyncio.sleep(4)
                await check_everything(session, prom)
            finally:
                prom.stop()


async def check_everything(session: aiohttp.ClientSession, prom: Prometheus) -> None:
    problems = []
    present = {r["metric"]["__name__"] for r in await prom.query(session, '{__name__=~"qms_.+"}')}
    for kind, name, expr in rule_expressions():
        result = await prom.query(session, expr)
        for metric in set(METRIC_RE.findall(expr)):
            base = re.sub(r"_(bucket|sum|count)$", "", metric)
            if not ({metric, base, f"{base}_bucket"} & present):
                problems.append(f"{kind} {name}: metric {metric} is not exported")
        if kind == "record" and not result:
            problems.append(f"recording rule {name} returned no data")
    for uid, title, expr in dashboard_queries():
        if "qms_device_" in expr or "qms_printer_" in expr:
            # Device series exist only where devices are configured (devices issue).
            continue
        if not await prom.query(session, expr):
            problems.append(f"dashboard {uid} panel {title!r} returned no data: {expr}")
    assert not problems, "\n".join(problems)
    # The scenario provokes these alerts: they must be pending or firing.
    async with session.get(f"{prom.url}/api/v1/alerts") as resp:
        alerts = (await resp.json())["data"]["alerts"]
    active = {a["labels"]["alertname"] for a in alerts}
    expected = {
        n
        for k, n, _ in rule_expressions()
        if k == "alert"
        and re.search(r"OldestTicket|NoOpenCounter|WithoutOpenCounter|CounterIdle", n)
    }
    assert expected, "no queue alerts found in the rules"
    assert expected <= active, f"not active: {expected - active}"


async def test_promtool_check_metrics_finds_nothing(client: Any, clock: ManualClock) -> None:
    promtool = require_tool("promtool")
    await client.post(f"/api/v1/sites/{SITE}/tickets", json={"service": "KTP-EL"}, headers=KIOSK)
    clock.advance(timedelta(minutes=1).total_seconds())
    text = await (await client.get("/metrics", headers=MANAGER)).text()
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, output
    assert output.strip() == "", output


def sample_count(text: str) -> int:
    return sum(len(family.samples) for family in text_string_to_metric_families(text))


async def test_prometheus_scrapes_gzip_and_reads_the_right_values(scraped: Scraped) -> None:
    """Prometheus asks for gzip, gets it (the access log shows the compressed bytes it was
    sent), decompresses it, and stores every sample with the right value."""
    binary = require_tool("prometheus")
    site = f"{scraped.base}/api/v1/sites/{SITE}"
    server, served = scraped.server, scraped.served
    with tempfile.TemporaryDirectory() as tmp:
        async with aiohttp.ClientSession() as session:
            prom = scraped.prometheus(binary, Path(tmp))
            try:
                await prom.ready(session)
                for service in ("KTP-EL", "KTP-EL", "KTP-EL", "SKCK"):
                    async with session.post(
                        f"{site}/tickets", json={"service": service}, headers=KIOSK
                    ) as resp:
                        assert resp.status == 201, await resp.text()
                issued = f'qms_tickets_issued_total{{job="antrian",site="{SITE}",service="KTP-EL"}}'
                for _ in range(60):
                    result = await prom.query(session, issued)
                    if result and result[0]["value"][1] == "3":
                        break
                    await asyncio.sleep(0.5)
                else:
                    raise AssertionError(f"prometheus never saw the tickets: {result}")
                await asyncio.sleep(1.5)  # a scrape or two of the state that no longer changes

                async def value(expr: str) -> float:
                    result = await prom.query(session, expr)
                    assert len(result) == 1, (expr, result)
                    return float(result[0]["value"][1])

                target = server.app[ENGINE].config.sites[SITE].services["KTP-EL"]
                lbl = f'job="antrian",site="{SITE}"'
                assert await value(f'qms_tickets_issued_total{{{lbl},service="SKCK"}}') == 1
                assert await value(f'qms_queue_waiting_tickets{{{lbl},service="KTP-EL"}}') == 3
                assert await value(f'qms_queue_waiting_tickets{{{lbl},service="SKCK"}}') == 1
                assert (
                    await value(f'qms_service_target_wait_seconds{{{lbl},service="KTP-EL"}}')
                    == target.target_wait_seconds
                )
                committed = server.app[ENGINE].stats.events_committed
                assert await value('qms_events_committed_total{job="antrian"}') == committed
                samples_scraped = await value('scrape_samples_scraped{job="antrian"}')
            finally:
                prom.stop()

    by_prometheus = [s for s in served if s.user_agent.startswith("Prometheus/")]
    assert len(by_prometheus) >= 3, served
    for answer in by_prometheus:
        assert answer.accept_encoding == "gzip", answer.accept_encoding
        assert answer.status == 200
        assert answer.content_encoding == "gzip"
        assert answer.vary == "Accept-Encoding"
    # On the wire: the last answer's compressed body (plus the headers), a fraction of the
    # plain exposition; and it is the exposition Prometheus stored, sample for sample.
    last = by_prometheus[-1]
    text = gzip.decompress(last.body).decode()
    plain = await server.app[EXPOSITION].render()
    assert len(last.body) < last.sent < len(last.body) + 2048
    assert last.sent * 5 < len(plain), (last.sent, len(plain))
    assert sample_count(text) == samples_scraped == sample_count(plain.decode())
    assert f'qms_tickets_issued_total{{site="{SITE}",service="KTP-EL"}} 3\n' in text
