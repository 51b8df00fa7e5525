"""The production stack (docker-compose.yml, Dockerfile, .dockerignore) checked as data.

No Docker engine runs on the test machines, so these tests read the files: the compose file
parses, every image is pinned, every service has a health check, every bind-mounted host
path exists in the repository, published ports do not clash, dependencies name real
services, and the Prometheus and Grafana files mounted into the stack agree with the paths
and service names the compose file gives them.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# A tag names a specific release when it starts with at least major.minor ("16.6-bookworm",
# "v2.55.1"); "latest", "16" or "stable" move under your feet.
VERSION_TAG = re.compile(r"^v?\d+\.\d+")
WILDCARD_IPS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104 - compared, not bound
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Compose interpolation with every variable unset: defaults apply, `$$` is a `$`.

    The checks must not depend on the environment of whoever runs the tests.
    """
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    if not isinstance(value, str):
        return value
    parts = value.split("$$")
    resolved = [
        VARIABLE.sub(lambda m: m["arg"] if m["op"] in (":-", "-") else "", part) for part in parts
    ]
    return "$".join(resolved)


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as file:
        return yaml.safe_load(file)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = interpolate(load_yaml(COMPOSE))
    assert isinstance(document, dict), "docker-compose.yml is not a mapping"
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose.get("services")
    assert isinstance(found, dict), "docker-compose.yml has no services mapping"
    assert found, "docker-compose.yml defines no services"
    assert all(isinstance(spec, dict) for spec in found.values())
    return found


def pin_problem(image: str) -> str | None:
    """Why `image` is not pinned to a specific version, or None when it is."""
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]  # a registry "host:port/" prefix is not a tag
    if ":" not in last:
        return f"{image}: no tag (means latest)"
    tag = last.split(":", 1)[1]
    if not VERSION_TAG.match(tag):
        return f"{image}: tag {tag!r} is not a specific version"
    return None


def mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    """A service's volumes in long syntax: type, source, target."""
    result = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            result.append({"type": entry.get("type", "volume"), **entry, "target": entry["target"]})
            continue
        fields = entry.split(":")
        if len(fields) == 1:
            result.append({"type": "volume", "source": None, "target": fields[0]})
            continue
        source, target = fields[0], fields[1]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        result.append({"type": kind, "source": source, "target": target})
    return result


def host_path(source: str) -> Path:
    return (COMPOSE.parent / Path(source).expanduser()).resolve()


def container_to_host(service: dict[str, Any], container_path: str) -> Path | None:
    """The host path behind `container_path` through the service's bind mounts, if any."""
    wanted = PurePosixPath(container_path)
    best: tuple[int, Path] | None = None
    for mount in mounts(service):
        if mount["type"] != "bind":
            continue
        target = PurePosixPath(mount["target"])
        if wanted == target or target in wanted.parents:
            rest = wanted.relative_to(target)
            depth = len(target.parts)
            if best is None or depth > best[0]:
                best = (depth, host_path(mount["source"]) / rest)
    return None if best is None else best[1]


def published_ports(service: dict[str, Any]) -> list[tuple[str, int, str]]:
    """(host ip, host port, protocol) of every port the service publishes on the host."""
    result: list[tuple[str, int, str]] = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            if entry.get("published") is None:
                continue
            ip, ports, protocol = (
                str(entry.get("host_ip", "")),
                str(entry["published"]),
                entry.get("protocol", "tcp"),
            )
        else:
            spec, _, protocol = str(entry).partition("/")
            protocol = protocol or "tcp"
            ip = ""
            if spec.startswith("["):  # [::1]:8080:8080
                ip, _, spec = spec[1:].partition("]:")
            fields = spec.split(":")
            if len(fields) == 1:
                continue  # container port only: Docker picks an ephemeral host port
            if len(fields) == 3:
                ip = fields[0]
            ports = fields[-2]
        low, _, high = ports.partition("-")
        result.extend((ip, port, protocol) for port in range(int(low), int(high or low) + 1))
    return result


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency name -> condition."""
    value = service.get("depends_on", {})
    if isinstance(value, list):
        return dict.fromkeys(value, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in value.items()}


def has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck")
    if not isinstance(check, dict) or check.get("disable"):
        return False
    test = check.get("test")
    return bool(test) and test not in (["NONE"], "NONE")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def container_ports(service: dict[str, Any]) -> set[int]:
    """Ports the service listens on inside its container (the targets of `ports:`)."""
    result = set()
    for entry in service.get("ports", []):
        target = entry["target"] if isinstance(entry, dict) else str(entry).split("/")[0]
        result.add(int(str(target).rsplit(":", 1)[-1].split("-")[0]))
    return result


def service_named_by(
    url: str, services: dict[str, Any], where: str, caller: str | None = None
) -> str | None:
    """A problem when `url`'s host is not a compose service.

    Inside a container, localhost is the container itself: fine only for a port the
    `caller` service itself listens on (Prometheus scraping itself).
    """
    parts = urlsplit(url if "//" in url else "//" + url)
    host = parts.hostname
    if host in ("localhost", "127.0.0.1", "::1"):
        if caller is not None and parts.port in container_ports(services[caller]):
            return None
        return f"{where}: {url!r} is the container itself, not another service"
    if host is None or "." in host or ":" in host:
        return None  # an external name or address is the operator's choice
    if host not in services:
        return f"{where}: {url!r} names {host!r}, not a service ({', '.join(services)})"
    return None


# -- the compose file ------------------------------------------------------------------------


def test_compose_file_uses_the_compose_spec_without_version_key() -> None:
    document = load_yaml(COMPOSE)
    assert isinstance(document, dict)
    assert "version" not in document, "the compose spec has no top-level `version:`"


def test_every_image_is_pinned_to_a_specific_version(services: dict[str, Any]) -> None:
    problems = []
    for name, spec in services.items():
        image = spec.get("image")
        if image is None:
            if "build" not in spec:
                problems.append(f"{name}: neither image nor build")
            continue
        if "build" in spec and ":" not in image.rsplit("/", 1)[-1]:
            continue  # the name given to a locally built image
        problem = pin_problem(image)
        if problem:
            problems.append(f"{name}: {problem}")
    assert not problems, "\n".join(problems)


def test_every_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    missing = [name for name, spec in services.items() if not has_healthcheck(spec)]
    assert not missing, f"services without a health check: {missing}"


def test_every_bind_mounted_host_path_exists_in_the_repository(
    services: dict[str, Any],
) -> None:
    problems = []
    for name, spec in services.items():
        for mount in mounts(spec):
            if mount["type"] != "bind":
                continue
            path = host_path(mount["source"])
            if not path.is_relative_to(ROOT):
                problems.append(f"{name}: {mount['source']} is outside the repository")
            elif not path.exists():
                problems.append(f"{name}: {mount['source']} does not exist")
    assert not problems, "\n".join(problems)


def test_named_volumes_and_configs_are_declared(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    volumes = compose.get("volumes") or {}
    configs = compose.get("configs") or {}
    problems = []
    for name, spec in services.items():
        for mount in mounts(spec):
            if mount["type"] == "volume" and mount["source"] and mount["source"] not in volumes:
                problems.append(f"{name}: volume {mount['source']!r} is not declared")
        for entry in spec.get("configs", []):
            source = entry if isinstance(entry, str) else entry["source"]
            if source not in configs:
                problems.append(f"{name}: config {source!r} is not declared")
    for name, spec in configs.items():
        if "file" in spec and not host_path(spec["file"]).exists():
            problems.append(f"config {name}: {spec['file']} does not exist")
    assert not problems, "\n".join(problems)


def test_data_of_postgres_prometheus_and_grafana_lives_in_named_volumes(
    services: dict[str, Any],
) -> None:
    data_dirs = {
        "postgres": "/var/lib/postgresql/data",
        "prometheus": "/prometheus",
        "grafana": "/var/lib/grafana",
    }
    for name, target in data_dirs.items():
        kinds = {m["target"]: m["type"] for m in mounts(services[name])}
        assert kinds.get(target) == "volume", f"{name}: {target} is not a named volume"


def test_published_host_ports_do_not_clash(services: dict[str, Any]) -> None:
    seen: dict[tuple[int, str], list[tuple[str, str]]] = {}
    problems = []
    for name, spec in services.items():
        for ip, port, protocol in published_ports(spec):
            for other_ip, other_name in seen.get((port, protocol), []):
                if ip == other_ip or ip in WILDCARD_IPS or other_ip in WILDCARD_IPS:
                    problems.append(f"{port}/{protocol}: {other_name} and {name}")
            seen.setdefault((port, protocol), []).append((ip, name))
    assert not problems, "\n".join(problems)


def test_published_ports_are_parsed() -> None:
    service = {
        "ports": [
            "8080:8080",
            "127.0.0.1:9090:9090",
            "[::1]:9093:9093/udp",
            "7000-7001:7000-7001",
            "5432",
            {"target": 80, "published": "8081", "host_ip": "10.0.0.1"},
        ]
    }
    assert published_ports(service) == [
        ("", 8080, "tcp"),
        ("127.0.0.1", 9090, "tcp"),
        ("::1", 9093, "udp"),
        ("", 7000, "tcp"),
        ("", 7001, "tcp"),
        ("10.0.0.1", 8081, "tcp"),
    ]


def test_depends_on_names_existing_services_and_healthy_waits_have_checks(
    services: dict[str, Any],
) -> None:
    problems = []
    for name, spec in services.items():
        for dependency, condition in depends_on(spec).items():
            if dependency not in services:
                problems.append(f"{name} depends on unknown service {dependency!r}")
            elif condition == "service_healthy" and not has_healthcheck(services[dependency]):
                problems.append(f"{name} waits for {dependency} to be healthy: no health check")
    assert not problems, "\n".join(problems)


def test_the_service_reaches_the_compose_postgres_and_waits_for_it(
    services: dict[str, Any],
) -> None:
    antrian = services["antrian"]
    url = urlsplit(antrian["environment"]["DATABASE_URL"])
    assert url.scheme in ("postgresql", "postgres")
    assert url.hostname == "postgres"
    database = services["postgres"]["environment"]
    assert url.username == database["POSTGRES_USER"]
    assert url.password == database["POSTGRES_PASSWORD"]
    assert url.path == "/" + database["POSTGRES_DB"]
    assert depends_on(antrian)["postgres"] == "service_healthy"
    assert antrian["environment"]["ANTRIAN_METRICS_TOKEN"], "the metrics token has no default"


def test_interpolation_uses_defaults_not_the_environment() -> None:
    assert interpolate("a ${X:-1} ${Y-2} ${Z} ${W:?no} $$HOME") == "a 1 2   $HOME"


# -- Dockerfile and build context ------------------------------------------------------------


def test_dockerfile_base_image_is_pinned() -> None:
    stages: set[str] = set()
    problems = []
    for keyword, arguments in dockerfile_instructions():
        if keyword != "FROM":
            continue
        words = [word for word in arguments.split() if not word.startswith("--")]
        image = words[0]
        if len(words) >= 3 and words[1].upper() == "AS":
            stages.add(words[2].lower())
        if image.lower() in stages or image == "scratch":
            continue
        problem = pin_problem(image)
        if problem:
            problems.append(problem)
    assert not problems, "\n".join(problems)


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    instructions = dockerfile_instructions()
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users, "no USER: the service would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert any(keyword == "HEALTHCHECK" for keyword, _ in instructions)


def test_dockerfile_copy_sources_exist_and_are_not_dockerignored() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    problems = []
    for keyword, arguments in dockerfile_instructions():
        if keyword not in ("COPY", "ADD") or "--from=" in arguments:
            continue
        words = [word for word in arguments.split() if not word.startswith("--")]
        for source in words[:-1]:
            clean = source.rstrip("/")
            if not (ROOT / clean).exists():
                problems.append(f"{keyword} {source}: does not exist")
            ignored = [
                p
                for p in patterns
                if not p.startswith("!")
                and (fnmatch.fnmatch(clean, p) or fnmatch.fnmatch(clean.split("/")[0], p))
            ]
            if ignored:
                problems.append(f"{keyword} {source}: excluded by .dockerignore {ignored}")
    assert not problems, "\n".join(problems)


# -- what the others mount into the stack ----------------------------------------------------


def test_grafana_dashboard_provider_reads_the_mounted_dashboards(
    services: dict[str, Any],
) -> None:
    grafana = services["grafana"]
    provisioning = container_to_host(grafana, "/etc/grafana/provisioning")
    assert provisioning is not None, "grafana: /etc/grafana/provisioning is not mounted"
    files = sorted((provisioning / "dashboards").glob("*.y*ml"))
    if not files:
        pytest.skip("grafana/provisioning/dashboards/*.yml not written yet")
    targets = {
        m["target"]
        for m in mounts(grafana)
        if m["type"] == "bind" and host_path(m["source"]) == ROOT / "grafana" / "dashboards"
    }
    assert targets, "grafana: ./grafana/dashboards is not mounted"
    problems = []
    for file in files:
        for provider in (load_yaml(file) or {}).get("providers", []):
            path = (provider.get("options") or {}).get("path", "")
            if not any(path.rstrip("/") == target.rstrip("/") for target in targets):
                problems.append(f"{file.name}: provider path {path!r} is not {sorted(targets)}")
    assert not problems, "\n".join(problems)


def test_grafana_datasources_name_compose_services(services: dict[str, Any]) -> None:
    provisioning = container_to_host(services["grafana"], "/etc/grafana/provisioning")
    assert provisioning is not None
    files = sorted((provisioning / "datasources").glob("*.y*ml"))
    if not files:
        pytest.skip("grafana/provisioning/datasources/*.yml not written yet")
    problems = []
    for file in files:
        for source in (load_yaml(file) or {}).get("datasources", []):
            if source.get("url"):
                problem = service_named_by(source["url"], services, f"{file.name}")
                if problem:
                    problems.append(problem)
    assert not problems, "\n".join(problems)


PROMETHEUS_CONFIG = PurePosixPath("/etc/prometheus/prometheus.yml")


@pytest.fixture(scope="module")
def prometheus_config(services: dict[str, Any]) -> dict[str, Any]:
    config_file = container_to_host(services["prometheus"], str(PROMETHEUS_CONFIG))
    assert config_file is not None, f"prometheus: {PROMETHEUS_CONFIG} is not mounted"
    if not config_file.exists():
        pytest.skip("prometheus/prometheus.yml not written yet")
    return load_yaml(config_file) or {}


def prometheus_jobs(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, job) of every scrape job and Alertmanager entry."""
    jobs = [(job.get("job_name", "?"), job) for job in config.get("scrape_configs", [])]
    alerting = (config.get("alerting") or {}).get("alertmanagers", [])
    return jobs + [("alertmanagers", entry) for entry in alerting]


def static_targets(job: dict[str, Any]) -> list[str]:
    return [t for static in job.get("static_configs", []) for t in static.get("targets", [])]


def test_prometheus_rule_files_are_mounted(
    services: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    problems = []
    for pattern in prometheus_config.get("rule_files", []):
        in_container = str(PROMETHEUS_CONFIG.parent / pattern)  # relative to the config file
        on_host = container_to_host(services["prometheus"], in_container)
        if on_host is None or not list(on_host.parent.glob(on_host.name)):
            problems.append(f"rule_files {pattern!r}: no mounted file matches {in_container}")
    assert not problems, "\n".join(problems)


def test_prometheus_targets_are_compose_services(
    services: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    problems = []
    for where, job in prometheus_jobs(prometheus_config):
        for target in static_targets(job):
            problem = service_named_by(target, services, where, caller="prometheus")
            if problem:
                problems.append(problem)
    assert not problems, "\n".join(problems)


def test_prometheus_sends_the_metrics_token_the_service_requires(
    services: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    prometheus = services["prometheus"]
    token = services["antrian"].get("environment", {}).get("ANTRIAN_METRICS_TOKEN")
    if not token:
        pytest.skip("the compose stack leaves /metrics open")
    in_configs = {c["target"] for c in prometheus.get("configs", []) if isinstance(c, dict)}
    problems = []
    for where, job in prometheus_jobs(prometheus_config):
        hosts = {urlsplit("//" + target).hostname for target in static_targets(job)}
        if "antrian" not in hosts:
            continue
        authorization = job.get("authorization") or {}
        credentials_file = authorization.get("credentials_file")
        if credentials_file is None:
            if not authorization.get("credentials"):
                problems.append(
                    f"{where}: antrian requires ANTRIAN_METRICS_TOKEN on /metrics, "
                    "the job sends no authorization (every scrape would be 401)"
                )
            continue
        path = str(PROMETHEUS_CONFIG.parent / credentials_file)
        on_host = container_to_host(prometheus, path)
        if path not in in_configs and (on_host is None or not on_host.exists()):
            problems.append(f"{where}: credentials_file {path} is not in the container")
    assert not problems, "\n".join(problems)


def test_alertmanager_config_is_mounted(services: dict[str, Any]) -> None:
    path = container_to_host(services["alertmanager"], "/etc/alertmanager/alertmanager.yml")
    assert path is not None, "alertmanager: its configuration is not mounted"
    assert path == ROOT / "prometheus" / "alertmanager.yml"
