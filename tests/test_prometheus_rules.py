"""The shipped Prometheus and Alertmanager configuration: valid, rules unit-tested, every
alert complete (severity, summary, description, a runbook section that exists) and
covered by a promtool test where it fires and one where it must not."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.tools import require_tool

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "prometheus"
RULE_FILES = sorted(PROMETHEUS_DIR.glob("rules/*.yml"))
RULE_TEST_FILES = sorted(PROMETHEUS_DIR.glob("tests/*.yml"))
ALERTS = PROMETHEUS_DIR / "rules" / "alerts.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTMANAGER_CONFIG = PROMETHEUS_DIR / "alertmanager.yml"
RESTART_TESTS = PROMETHEUS_DIR / "tests" / "restart.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
RUNBOOK_PREFIX = "https://github.com/antrian/antrian/blob/main/docs/runbooks.md#"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def rel(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(ROOT)) for path in paths]


# --- the tools ---------------------------------------------------------------------------


def test_prometheus_config_is_valid(tmp_path: Path) -> None:
    """Also checks that every rule file it names exists and parses.

    The file is written for the compose stack (mounted at /etc/prometheus, where compose
    also writes the metrics token): check a copy laid out the same way in tmp_path.
    """
    promtool = require_tool("promtool")
    shutil.copytree(ROOT / "prometheus" / "rules", tmp_path / "rules")
    (tmp_path / "antrian-metrics-token").write_text("test-token")
    config = (ROOT / "prometheus" / "prometheus.yml").read_text()
    assert "/etc/prometheus/antrian-metrics-token" in config
    copy = tmp_path / "prometheus.yml"
    copy.write_text(config.replace("/etc/prometheus/", f"{tmp_path}/"))
    assert_ok(run(promtool, "check", "config", str(copy)))


def test_rule_files_are_valid() -> None:
    assert RULE_FILES, "no rule files in prometheus/rules/"
    assert_ok(run(require_tool("promtool"), "check", "rules", *rel(RULE_FILES)))


def test_rule_unit_tests_pass() -> None:
    assert RULE_TEST_FILES, "no promtool rule tests in prometheus/tests/"
    assert_ok(run(require_tool("promtool"), "test", "rules", *rel(RULE_TEST_FILES)))


def test_alertmanager_config_is_valid() -> None:
    assert_ok(run(require_tool("amtool"), "check-config", "prometheus/alertmanager.yml"))


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=critical", "site=mpp-banjarmasin", "alertname=PrinterPaperEnd"], "pager,chat"),
        (["severity=warning", "site=mpp-banjarmasin", "alertname=DeviceOffline"], "chat"),
        (["severity=info", "site=mpp-banjarmasin", "alertname=DeviceLinkFlapping"], "null"),
    ],
)
def test_alertmanager_routes_by_severity(labels: list[str], receivers: str) -> None:
    assert_ok(
        run(
            require_tool("amtool"),
            "config",
            "routes",
            "test",
            "--config.file=prometheus/alertmanager.yml",
            f"--verify.receivers={receivers}",
            *labels,
        )
    )


# --- the rules' contents (no tool needed) ------------------------------------------------


def alert_blocks() -> list[tuple[str, str]]:
    """(alert name, its text up to the next rule) for every alerting rule."""
    text = ALERTS.read_text(encoding="utf-8")
    starts = list(re.finditer(r"^\s*- (?:alert|record): (\S+)", text, flags=re.M))
    blocks = []
    for match, following in zip(starts, [*starts[1:], None], strict=True):
        if "- alert:" in match.group(0):
            end = following.start() if following else len(text)
            blocks.append((match.group(1), text[match.start() : end]))
    return blocks


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_every_alert_has_severity_annotations_and_an_existing_runbook_section() -> None:
    anchors = {
        github_anchor(match.group(1))
        for match in re.finditer(r"^#+ (.+)$", RUNBOOKS.read_text(encoding="utf-8"), flags=re.M)
    }
    blocks = alert_blocks()
    assert blocks, "no alerts found"
    problems = []
    for name, block in blocks:
        severity = re.search(r"^\s+severity: (\S+)$", block, flags=re.M)
        if severity is None or severity.group(1) not in ("critical", "warning", "info"):
            problems.append(f"{name}: severity must be critical, warning or info")
        for annotation in ("summary", "description"):
            if not re.search(rf"^\s+{annotation}: ", block, flags=re.M):
                problems.append(f"{name}: no {annotation} annotation")
        runbook = re.search(r"^\s+runbook_url: (\S+)$", block, flags=re.M)
        if runbook is None or not runbook.group(1).startswith(RUNBOOK_PREFIX):
            problems.append(f"{name}: runbook_url must start with {RUNBOOK_PREFIX}")
        elif runbook.group(1).removeprefix(RUNBOOK_PREFIX) not in anchors:
            problems.append(f"{name}: {runbook.group(1)} has no section in docs/runbooks.md")
    assert not problems, "\n".join(problems)


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TEST_FILES:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"alertname: (\S+)\n\s+exp_alerts:(.*)$", text, flags=re.M):
            (quiet if match.group(2).strip() == "[]" else fires).add(match.group(1))
    names = {name for name, _ in alert_blocks()}
    problems = [f"{name}: no test where it fires" for name in sorted(names - fires)]
    problems += [f"{name}: no test where it must not fire" for name in sorted(names - quiet)]
    assert not problems, "\n".join(problems)


# --- restarts: keep_firing_for and the order of inhibiting alerts ------------------------

# A restart of the service during which /metrics does not answer for up to this long must
# neither resolve nor re-fire any alert, nor page (prometheus/rules/alerts.yml, "Restarts
# and gaps"; prometheus/tests/restart.yml).
RESTART_BOUND_SECONDS = 30

DURATION_RE = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: str | None) -> float:
    """A Prometheus duration ("1m30s", "90s") in seconds; 0 when absent."""
    if not duration:
        return 0.0
    parts = DURATION_RE.findall(duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * DURATION_UNITS[u] for n, u in parts)


def alerting_rules() -> list[tuple[str, int, dict[str, object]]]:
    """(group name, position in the group, rule) for every alerting rule."""
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [
        (group["name"], i, rule)
        for group in groups
        for i, rule in enumerate(group["rules"])
        if "alert" in rule
    ]


def reads_the_services_series(expr: str) -> bool:
    """The expression reads qms_ series (directly or through a recording rule)."""
    return bool(re.search(r"\bqms_|\b[a-z_]+:[a-z_:]+\b", expr))


def intervals() -> tuple[float, float]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))["global"]
    return seconds(config["scrape_interval"]), seconds(config["evaluation_interval"])


def test_alerts_hold_through_a_restart_and_the_exporter_alert_covers_longer_gaps() -> None:
    scrape, evaluation = intervals()
    # Scrapes failing within the bound, and the evaluations that then miss the series (one
    # more for the jitter between a scrape and the next evaluation): the span from the
    # first to the last of them is what keep_firing_for must bridge and what the exporter
    # alert's `for` must not reach.
    failed_scrapes = int(RESTART_BOUND_SECONDS // scrape) + 1
    missing_span = failed_scrapes * evaluation
    rules = {rule["alert"]: rule for _, _, rule in alerting_rules()}
    exporter_for = seconds(rules["AntrianExporterDown"].get("for"))  # type: ignore[arg-type]
    assert exporter_for > missing_span, "a restart within the bound would page"
    problems = []
    for _, _, rule in alerting_rules():
        name, expr = rule["alert"], str(rule["expr"])
        keep = seconds(rule.get("keep_firing_for"))  # type: ignore[arg-type]
        if not reads_the_services_series(expr):
            continue
        if keep <= missing_span:
            problems.append(
                f"{name}: keep_firing_for {keep:g}s does not bridge a {RESTART_BOUND_SECONDS}s "
                f"restart (series missing for {missing_span:g}s)"
            )
        # Rule groups are evaluated at different offsets within the interval: the exporter
        # alert fires up to one evaluation later than the others notice the gap.
        elif keep <= exporter_for + evaluation:
            problems.append(
                f"{name}: keep_firing_for {keep:g}s runs out before AntrianExporterDown fires "
                f"({exporter_for:g}s + one evaluation): a false resolved in a longer outage"
            )
    assert not problems, "\n".join(problems)


def test_every_alert_kept_through_a_restart_is_tested_across_one() -> None:
    text = RESTART_TESTS.read_text(encoding="utf-8")
    assert re.search(r"^\s+values: .*\bstale\b", text, flags=re.M), "no gap in restart.yml"
    kept = {str(rule["alert"]) for _, _, rule in alerting_rules() if rule.get("keep_firing_for")}
    missing = sorted(name for name in kept if f'"{name}"' not in text)
    assert not missing, f"not tested in {RESTART_TESTS.name}: {missing}"


MATCHER_RE = re.compile(r'^\s*(\w+)\s*(=~|!~|!=|=)\s*"(.*)"\s*$')


def matches(matchers: list[str], labels: dict[str, str]) -> bool:
    for matcher in matchers:
        found = MATCHER_RE.match(matcher)
        assert found, matcher
        name, op, value = found.groups()
        actual = labels.get(name, "")
        ok = {
            "=": actual == value,
            "!=": actual != value,
            "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None,
        }[op]
        if not ok:
            return False
    return True


# Inhibitions exempt from the order below, and why.
ORDER_EXEMPT = {
    # A printer's flags are NaN (unknown) while its link is down (devices/metrics.py), so
    # no printer alert can start while DeviceOffline's condition holds.
    "DeviceOffline",
}


def test_an_inhibiting_alert_fires_no_later_than_the_alerts_it_inhibits() -> None:
    """When an inhibitor and its target start at once (the end of a break, opening time, a
    gap longer than the restart bound), the target must not fire first: it would be
    notified, uninhibited, until the inhibitor fires. So the inhibitor's `for` is not
    longer, and with the same `for` it comes first in the same group (Prometheus sends it
    first). The job-wide inhibition (exporter down, absent, stale; equal: [job]) is covered
    by the keep_firing_for test above."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    rules = alerting_rules()

    def labels(rule: dict[str, object]) -> dict[str, str]:
        return {"alertname": str(rule["alert"]), **rule.get("labels", {})}  # type: ignore[dict-item]

    problems = []
    checked = 0
    for inhibit in config["inhibit_rules"]:
        if inhibit.get("equal") == ["job"]:
            continue
        for s_group, s_pos, source in rules:
            if source["alert"] in ORDER_EXEMPT or not matches(
                inhibit["source_matchers"], labels(source)
            ):
                continue
            for t_group, t_pos, target in rules:
                if target is source or not matches(inhibit["target_matchers"], labels(target)):
                    continue
                # Labels in `equal` that the rules set themselves must agree (the other ones,
                # site, service, device, come from the series and may).
                static = set(labels(source)) & set(labels(target)) & set(inhibit["equal"])
                if any(labels(source)[name] != labels(target)[name] for name in static):
                    continue
                checked += 1
                s_for = seconds(source.get("for"))  # type: ignore[arg-type]
                t_for = seconds(target.get("for"))  # type: ignore[arg-type]
                first = s_group == t_group and s_pos < t_pos
                if s_for > t_for or (s_for == t_for and not first):
                    problems.append(
                        f"{labels(target)} (for {t_for:g}s) can fire before its inhibitor "
                        f"{labels(source)} (for {s_for:g}s)"
                    )
    assert checked, "no inhibition between two alerting rules found"
    assert not problems, "\n".join(problems)
