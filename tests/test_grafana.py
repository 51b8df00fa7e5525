"""Tests of the provisioned Grafana: the data source, the dashboard provider and the four
dashboards (structure, variables, data source uid, and that every query only uses metrics of
the catalogue in docs/metrics.md and is valid PromQL).

`dashboard_queries()` is also the list of panel queries the live-Prometheus test evaluates.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DATASOURCE_FILE = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDER_FILE = GRAFANA / "provisioning" / "dashboards" / "antrian.yml"
CATALOGUE = ROOT / "docs" / "metrics.md"
COMPOSE = ROOT / "docker-compose.yml"

DATASOURCE_UID = "antrian-prometheus"
DASHBOARDS_IN_CONTAINER = "/var/lib/grafana/dashboards"

# uid -> template variables it must offer.
REQUIRED_VARIABLES = {
    "antrian-hall-overview": {"site", "service", "counter"},
    "antrian-service-detail": {"site", "service"},
    "antrian-counters": {"site", "service", "counter"},
    "antrian-devices": {"site", "device"},
}

# Grafana's built-in interval variables, replaced by fixed values for evaluation outside
# Grafana (`$__range_s` is the dashboard range in seconds, consistent with `$__range`).
BUILTIN_VALUES = {
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__rate_interval": "1m",
    "__interval": "1m",
    "__interval_ms": "60000",
}
GRAFANA_BUILTINS = set(BUILTIN_VALUES)

METRIC_RE = re.compile(r"\bqms_[a-z_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
VARIABLE_RE = re.compile(r"\$\{?(\w+)\}?")


# --- loading -----------------------------------------------------------------------------


@cache
def load_dashboards() -> dict[str, dict[str, Any]]:
    """uid -> dashboard, read from grafana/dashboards/*.json."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        assert board["uid"] not in out, f"{path.name}: uid {board['uid']} used twice"
        out[board["uid"]] = board
    return out


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that shows data, including those nested in collapsed rows."""
    out: list[dict[str, Any]] = []
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in board.get("templating", {}).get("list", [])}


def variable_query(var: dict[str, Any]) -> str:
    query = var.get("query", "")
    return query["query"] if isinstance(query, dict) else str(query)


@cache
def catalogue_metrics() -> frozenset[str]:
    """Metric names from the first column of the tables in docs/metrics.md."""
    names = re.findall(r"^\|\s*`(qms_[a-z_]+)`\s*\|", CATALOGUE.read_text(encoding="utf-8"), re.M)
    assert names, "no metric found in the catalogue"
    return frozenset(names)


def metric_names(expr: str) -> set[str]:
    """Metric families used in `expr` (histogram series mapped to their family)."""
    known = catalogue_metrics()
    out = set()
    for name in METRIC_RE.findall(expr):
        if name not in known:
            for suffix in HISTOGRAM_SUFFIXES:
                if name.endswith(suffix) and name.removesuffix(suffix) in known:
                    name = name.removesuffix(suffix)
                    break
        out.add(name)
    return out


def substitute(expr: str, board: dict[str, Any]) -> str:
    """`expr` as Prometheus would receive it with every variable set to "All" and the
    built-in intervals fixed: `$var` inside `=~"..."` becomes `.*`, interval variables take
    their current value, `$__range` 1h, `$__rate_interval` and `$__interval` 1m."""
    values = dict(BUILTIN_VALUES)
    for name, var in variables(board).items():
        if var.get("type") == "interval":
            values[name] = var["current"]["value"]

    def in_regex(match: re.Match[str]) -> str:
        return '=~"' + VARIABLE_RE.sub(".*", match.group(1)) + '"'

    expr = re.sub(r'=~"([^"]*)"', in_regex, expr)

    def fixed(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"no value for ${name} outside a =~ matcher in {expr!r}")
        return values[name]

    return VARIABLE_RE.sub(fixed, expr)


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL) for every panel target, variables substituted."""
    out = []
    for uid, board in load_dashboards().items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                out.append((uid, panel["title"], substitute(target["expr"], board)))
    return out


# --- a YAML subset, enough for the two provisioning files ----------------------------------
# PyYAML is not a dependency of the project; these files use block mappings, block lists of
# mappings, full-line comments and plain scalars only.


def _scalar(text: str) -> Any:
    if text[:1] in "\"'" and text[-1:] == text[:1]:
        return text[1:-1]
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "~"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _block(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[Any, int]:
    if lines[i][1].startswith("- "):
        items = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            content = lines[i][1][2:].strip()
            if not re.match(r"[\w.-]+:(\s|$)", content):
                items.append(_scalar(content))
                i += 1
                continue
            # "- key: value" opens a mapping whose keys sit two columns further in.
            lines[i] = (indent + 2, content)
            item, i = _block(lines, i, indent + 2)
            items.append(item)
        return items, i
    mapping: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
        key, colon, value = lines[i][1].partition(":")
        assert colon, f"not a mapping entry: {lines[i][1]!r}"
        value = value.strip()
        i += 1
        if value:
            mapping[key.strip()] = _scalar(value)
        elif i < len(lines) and (
            lines[i][0] > indent or (lines[i][0] == indent and lines[i][1].startswith("- "))
        ):
            mapping[key.strip()], i = _block(lines, i, lines[i][0])
        else:
            mapping[key.strip()] = None
    return mapping, i


def parse_simple_yaml(text: str) -> Any:
    lines = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped and not stripped.startswith("#"):
            assert "\t" not in raw[: len(raw) - len(raw.lstrip())], "tab indentation"
            lines.append((len(raw) - len(raw.lstrip(" ")), stripped))
    value, end = _block(lines, 0, lines[0][0])
    assert end == len(lines), f"unparsed line: {lines[end][1]!r}"
    return value


def load_yaml(path: Path) -> Any:
    return parse_simple_yaml(path.read_text(encoding="utf-8"))


# --- dashboards --------------------------------------------------------------------------


def test_the_four_dashboards_are_shipped_with_stable_uids_and_unique_titles() -> None:
    boards = load_dashboards()
    assert set(boards) == set(REQUIRED_VARIABLES)
    titles = [board["title"] for board in boards.values()]
    assert len(set(titles)) == len(titles)
    for board in boards.values():
        # Provisioned dashboards carry no database id; 36+ is Grafana 9.x/10/11 JSON.
        assert board.get("id") is None
        assert board["schemaVersion"] >= 36
        assert board["time"]["from"] and board["time"]["to"] == "now"


@pytest.mark.parametrize("uid", sorted(REQUIRED_VARIABLES))
def test_dashboard_has_multi_value_variables_from_the_catalogue(uid: str) -> None:
    board = load_dashboards()[uid]
    found = variables(board)
    assert REQUIRED_VARIABLES[uid] <= set(found)
    for name, var in found.items():
        if var["type"] != "query":
            continue
        assert var["datasource"]["uid"] == DATASOURCE_UID, name
        assert var["multi"] is True, name
        assert var["includeAll"] is True, name
        query = variable_query(var)
        assert query.startswith("label_values("), name
        assert metric_names(query) <= catalogue_metrics(), name
    assert variable_query(found["site"]) == "label_values(qms_site_info, site)"
    if "service" in found:
        assert variable_query(found["service"]) == (
            'label_values(qms_queue_waiting_tickets{site=~"$site"}, service)'
        )
    if "counter" in found:
        assert variable_query(found["counter"]) == (
            'label_values(qms_loket_open{site=~"$site"}, counter)'
        )


@pytest.mark.parametrize("uid", sorted(REQUIRED_VARIABLES))
def test_every_panel_queries_the_provisioned_datasource(uid: str) -> None:
    board = load_dashboards()[uid]
    ids = [panel["id"] for panel in panels(board)]
    assert len(set(ids)) == len(ids), "panel ids must be unique"
    for panel in panels(board):
        title = panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, title
        assert panel["targets"], f"{title}: no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert all(ref_ids), title
        assert len(set(ref_ids)) == len(ref_ids), f"{title}: duplicate refId"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID, title
            assert target["expr"].strip(), f"{title}: empty expr"


@pytest.mark.parametrize("uid", sorted(REQUIRED_VARIABLES))
def test_panel_titles_are_indonesian_with_english_in_parentheses(uid: str) -> None:
    for panel in panels(load_dashboards()[uid]):
        assert re.fullmatch(r"[^()]+ \([^()]+\)", panel["title"]), panel["title"]


@pytest.mark.parametrize("uid", sorted(REQUIRED_VARIABLES))
def test_panels_fit_the_grid_without_overlapping(uid: str) -> None:
    boxes = []
    for panel in panels(load_dashboards()[uid]):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        boxes.append((pos["x"], pos["y"], pos["x"] + pos["w"], pos["y"] + pos["h"], panel))
    for i, (x0, y0, x1, y1, a) in enumerate(boxes):
        for u0, v0, u1, v1, b in boxes[i + 1 :]:
            overlap = x0 < u1 and u0 < x1 and y0 < v1 and v0 < y1
            assert not overlap, f"{a['title']} overlaps {b['title']}"


def test_table_columns_refer_to_queries_of_their_panel() -> None:
    for board in load_dashboards().values():
        for panel in panels(board):
            if panel["type"] != "table":
                continue
            ref_ids = {target["refId"] for target in panel["targets"]}
            for override in panel["fieldConfig"]["overrides"]:
                name = override["matcher"]["options"]
                if name.startswith("Value #"):
                    assert name.removeprefix("Value #") in ref_ids, (panel["title"], name)


def test_every_metric_in_a_query_is_in_the_catalogue() -> None:
    used: set[str] = set()
    for uid, title, expr in dashboard_queries():
        names = metric_names(expr)
        assert names, f"{uid} / {title}: no qms_ metric in {expr!r}"
        unknown = names - catalogue_metrics()
        assert not unknown, f"{uid} / {title}: not in docs/metrics.md: {sorted(unknown)}"
        used |= names
    # The dashboards cover the floor manager's figures named in the issue.
    assert {
        "qms_queue_waiting_tickets",
        "qms_queue_oldest_wait_seconds",
        "qms_service_target_wait_seconds",
        "qms_tickets_called_within_target_total",
        "qms_queue_predicted_wait_seconds",
        "qms_loket_serving",
        "qms_loket_idle_while_queue_waits",
        "qms_ticket_wait_seconds",
        "qms_ticket_service_seconds",
        "qms_loket_served_total",
        "qms_loket_busy_seconds_total",
        "qms_loket_idle_while_queue_waits_seconds_total",
        "qms_queue_waiting_over_target_tickets",
        "qms_device_up",
        "qms_device_last_frame_timestamp_seconds",
        "qms_printer_paper_end",
        "qms_printer_paper_near_end",
    } <= used


@pytest.mark.parametrize("uid", sorted(REQUIRED_VARIABLES))
def test_every_variable_in_a_query_is_defined(uid: str) -> None:
    board = load_dashboards()[uid]
    defined = set(variables(board)) | GRAFANA_BUILTINS
    for panel in panels(board):
        for target in panel["targets"]:
            used = set(VARIABLE_RE.findall(target["expr"]))
            assert used <= defined, f"{panel['title']}: undefined {sorted(used - defined)}"


def test_dashboard_queries_substitute_every_variable() -> None:
    queries = dashboard_queries()
    total = sum(len(p["targets"]) for b in load_dashboards().values() for p in panels(b))
    assert len(queries) == total
    for uid, title, expr in queries:
        assert "$" not in expr, f"{uid} / {title}: {expr}"
    assert (
        substitute(
            'rate(x{site=~"$site", service=~"$service"}[$__rate_interval])',
            load_dashboards()["antrian-service-detail"],
        )
        == 'rate(x{site=~".*", service=~".*"}[1m])'
    )
    assert substitute("increase(x[$__range]) / $__range_s", {}) == "increase(x[1h]) / 3600"


def raw_queries() -> list[tuple[str, dict[str, Any], str]]:
    """(dashboard uid, panel, PromQL as written) for every panel target."""
    return [
        (uid, panel, target["expr"])
        for uid, board in load_dashboards().items()
        for panel in panels(board)
        for target in panel["targets"]
    ]


def test_no_panel_extrapolates_a_sampled_gauge_over_the_range() -> None:
    """Time in a state is the service's own counter, increase()d over the range; an average
    of a 0/1 gauge times the range (`avg_over_time(g[$__range]) * $__range_s`) assumes every
    moment of the range was scraped, and inflates the figure whenever it was not (1.66x
    over a day the service was scraped for 60% of)."""
    problems = []
    for uid, panel, expr in raw_queries():
        where = f"{uid} / {panel['title']}: {expr}"
        if re.search(r"\$\{?__range_(s|ms)\b", expr):
            problems.append(f"multiplies by the range: {where}")
        if re.search(r"avg_over_time\(.*\)\s*\*", expr, flags=re.S):
            problems.append(f"multiplies an average over time: {where}")
        if re.search(r"qms_loket_idle_while_queue_waits\{[^}]*\}\[", expr):
            problems.append(f"samples the idle gauge over a range (use the counter): {where}")
    assert not problems, "\n".join(problems)
    idle = [
        expr
        for _, _, expr in raw_queries()
        if "increase(qms_loket_idle_while_queue_waits_seconds_total{" in expr
    ]
    assert len(idle) >= 3, "idle per hour, over the range, and in the counter summary"


def test_within_standard_counts_the_tickets_still_waiting_past_their_target() -> None:
    """The board's headline: called within target / (called + tickets still waiting past
    the target). A queue nobody calls must not look on time (the call-time share ignores
    it until the late tickets are called)."""
    found = 0
    for uid, panel, expr in raw_queries():
        if "qms_tickets_called_within_target_total" not in expr:
            continue
        found += 1
        _, slash, denominator = expr.partition("\n/ ")
        assert slash, f"{uid} / {panel['title']}: not a ratio: {expr}"
        assert "qms_tickets_called_total" in denominator, (uid, panel["title"], expr)
        assert "qms_queue_waiting_over_target_tickets" in denominator, (
            f"{uid} / {panel['title']}: the tickets still waiting past their target are "
            f"missing from the denominator: {expr}"
        )
    assert found >= 5, "within standard: hall stat, table, bars; service stat and over time"


def test_hall_overview_counts_the_queues_in_breach() -> None:
    """Queues in breach: the oldest waiting ticket has waited longer than its target."""
    board = load_dashboards()["antrian-hall-overview"]
    [panel] = [p for p in panels(board) if p["title"].endswith("(Queues in breach)")]
    [target] = panel["targets"]
    expr = re.sub(r"\s+", " ", target["expr"])
    assert re.search(
        r"qms_queue_oldest_wait_seconds\{[^}]*\}\) > on \(site, service\) "
        r"max by \(site, service\) \(qms_service_target_wait_seconds",
        expr,
    ), expr
    assert expr.endswith("or vector(0)"), "0, not no data, when no queue is in breach"


def closed_outcomes() -> list[str]:
    """The outcomes docs/metrics.md lists for qms_tickets_closed_total."""
    row = re.search(r"^\| `qms_tickets_closed_total` \|.*$", CATALOGUE.read_text("utf-8"), re.M)
    assert row, "qms_tickets_closed_total not in the catalogue"
    meaning = row.group(0).split("|")[4]
    return re.findall(r"`([a-z_]+)`", meaning)


def test_outcome_panels_name_every_outcome_including_expired() -> None:
    outcomes = closed_outcomes()
    assert "expired" in outcomes, "tickets closed at the end of the service day"
    found = 0
    for uid, panel, expr in raw_queries():
        if "qms_tickets_closed_total" not in expr:
            continue
        found += 1
        # By outcome, so every outcome exported (expired included) is shown.
        assert re.search(r"by \([^)]*\boutcome\b", expr), (uid, panel["title"], expr)
        missing = [o for o in outcomes if not re.search(rf"\b{o}\b", panel["description"])]
        assert not missing, f"{uid} / {panel['title']}: description lacks {missing}"
    assert found, "no panel shows the closed outcomes"


@pytest.mark.prometheus
def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is not installed (apt-get install prometheus)")
        pytest.skip("promtool is not installed")
    rules = [
        {"record": f"grafana_query_{i}", "expr": expr}
        for i, (_, _, expr) in enumerate(dashboard_queries())
    ]
    # JSON is YAML: promtool reads this file as a rules file.
    path = tmp_path / "grafana-queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "grafana", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- provisioning ------------------------------------------------------------------------


def test_datasource_is_the_compose_prometheus_with_a_fixed_uid() -> None:
    config = load_yaml(DATASOURCE_FILE)
    assert config["apiVersion"] == 1
    [source] = config["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["access"] == "proxy"
    assert source["isDefault"] is True


def test_dashboard_provider_loads_the_mounted_folder() -> None:
    config = load_yaml(PROVIDER_FILE)
    assert config["apiVersion"] == 1
    [provider] = config["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "Antrian"
    assert provider["options"]["path"] == DASHBOARDS_IN_CONTAINER


def test_compose_mounts_dashboards_and_provisioning_where_grafana_reads_them() -> None:
    if not COMPOSE.exists():
        pytest.skip("docker-compose.yml not written yet")
    text = COMPOSE.read_text(encoding="utf-8")
    assert re.search(
        rf"\./grafana/dashboards/?:{re.escape(DASHBOARDS_IN_CONTAINER)}/?(:ro)?\b", text
    ), "docker-compose.yml must mount ./grafana/dashboards at " + DASHBOARDS_IN_CONTAINER
    assert re.search(r"\./grafana/provisioning/?:/etc/grafana/provisioning/?(:ro)?\b", text)


def test_simple_yaml_parser_reads_nested_mappings_and_lists() -> None:
    text = (
        "# comment\n"
        "apiVersion: 1\n"
        "items:\n"
        "  - name: a\n"
        "    flag: true\n"
        "    inner:\n"
        "      path: /x/y\n"
        "  - name: 'b'\n"
        "top:\n"
        "- 2\n"
    )
    assert parse_simple_yaml(text) == {
        "apiVersion": 1,
        "items": [{"name": "a", "flag": True, "inner": {"path": "/x/y"}}, {"name": "b"}],
        "top": [2],
    }


@pytest.mark.parametrize("path", [DATASOURCE_FILE, PROVIDER_FILE], ids=lambda p: p.name)
def test_simple_yaml_parser_agrees_with_pyyaml(path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    assert load_yaml(path) == yaml.safe_load(path.read_text(encoding="utf-8"))
