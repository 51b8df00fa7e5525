"""The shipped Prometheus and Alertmanager configuration: valid, rules unit-tested, every
alert complete (severity, summary, description, a runbook section that exists) and
covered by a promtool test where it fires and one where it must not."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.tools import require_tool

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "prometheus"
RULE_FILES = sorted(PROMETHEUS_DIR.glob("rules/*.yml"))
RULE_TEST_FILES = sorted(PROMETHEUS_DIR.glob("tests/*.yml"))
ALERTS = PROMETHEUS_DIR / "rules" / "alerts.yml"
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
