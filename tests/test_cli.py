"""The command line: `run`'s banner once it listens; settings that cannot be used stop it
with one line and status 2, before anything starts; `hash-token` refuses a token no client
could send. Real processes throughout."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from queue_service.config import hash_token
from queue_service.settings import Settings, SettingsError
from tests.conftest import EXAMPLE, ROOT
from tests.test_startup import Process

# A server that is not there: the service waits for it (and the tests never reach it).
NOWHERE = "postgresql://antrian:s3cretpw@127.0.0.1:1/antrian"


def queue_service(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and "ANTRIAN_" not in k}
    return subprocess.run(
        [sys.executable, "-m", "queue_service", *args],
        env={**base, **(env or {})},
        cwd=ROOT,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )


async def banner_of(process: Process) -> list[str]:
    await process.start()
    for _ in range(100):
        text = process.stdout_path.read_text()
        if "Ctrl-C stops it." in text:
            return text.splitlines()
        await asyncio.sleep(0.05)
    raise AssertionError(f"no whole banner: {process.stdout_path.read_text()!r}")


async def test_run_prints_a_banner_with_the_pages_database_config_and_log_but_no_password(
    tmp_path: Path,
) -> None:
    process = Process(tmp_path, {"DATABASE_URL": NOWHERE, "ANTRIAN_LOG_LEVEL": "warning"})
    try:
        lines = await banner_of(process)
        port = int(re.search(r":(\d+)/$", lines[0]).group(1))  # type: ignore[union-attr]
        assert port > 0  # --port 0: the port it got, not the one asked for
        url = f"http://127.0.0.1:{port}"
        config = (tmp_path / "hall.toml").resolve()
        assert lines == [
            f"Antrian is listening on {url}/",
            f"  pages     {url}/ui/",
            f"  ready     {url}/readyz (503 with the reason until the database is up)",
            "  database  postgresql://antrian@127.0.0.1:1/antrian (DATABASE_URL)",
            f"  config    {config} (1 site(s), 1 services, 1 counters)",
            "  log       stderr, level WARNING (ANTRIAN_LOG_LEVEL)",
            "Ctrl-C stops it.",
        ]
        assert process.stop() == 0
    finally:
        process.kill()
    assert "s3cretpw" not in process.stdout_path.read_text() + process.stderr
    assert "Running on" not in process.stdout_path.read_text()  # aiohttp's own line is gone


async def test_the_banner_of_the_embedded_database_names_its_directory_and_its_log(
    tmp_path: Path,
) -> None:
    data_dir = (tmp_path / "pgdata").resolve()
    process = Process(tmp_path, {"ANTRIAN_DATA_DIR": str(data_dir)})
    try:
        lines = await banner_of(process)
        assert f"  database  embedded PostgreSQL in {data_dir} (its log: {data_dir}.log)" in lines
        assert process.stop() == 0
    finally:
        process.kill()
        if (data_dir / "PG_VERSION").exists():
            from queue_service.store.db import EmbeddedPostgres

            leftover = EmbeddedPostgres(data_dir)
            leftover.start()
            leftover.stop()


SETTINGS_REFUSED = [
    ({"ANTRIAN_LOG_LEVEL": "LOUD"}, (), "ANTRIAN_LOG_LEVEL='LOUD': give one of DEBUG, INFO"),
    ({"ANTRIAN_PORT": "70000"}, (), "ANTRIAN_PORT='70000': give a port number from 0 to 65535"),
    ({"ANTRIAN_PORT": "http"}, (), "ANTRIAN_PORT='http': give a port number"),
    ({}, ("--port", "-1"), "--port='-1': give a port number from 0 to 65535"),
    ({"ANTRIAN_HOST": "my host"}, (), "ANTRIAN_HOST='my host': give an address or host name"),
    ({"ANTRIAN_IDLE_SECONDS": "0"}, (), "ANTRIAN_IDLE_SECONDS='0': give a whole number above 0"),
    ({"ANTRIAN_RATE_LIMITS": "maybe"}, (), "ANTRIAN_RATE_LIMITS='maybe': give on or off"),
    (
        {"ANTRIAN_RATE_ISSUE_PER_KIOSK": "nan/10"},
        (),
        "ANTRIAN_RATE_ISSUE_PER_KIOSK='nan/10': give tokens per second and the burst",
    ),
    ({"ANTRIAN_METRICS_TOKEN": " scrape"}, (), "ANTRIAN_METRICS_TOKEN: the token starts or ends"),
    ({"ANTRIAN_PAGES_DIR": "/no/such/pages"}, (), "ANTRIAN_PAGES_DIR='/no/such/pages': no such"),
    (
        {"DATABASE_URL": "mysql://antrian:s3cretpw@db/antrian"},
        (),
        "DATABASE_URL: give a PostgreSQL URL, postgresql://user:password@host:port/database "
        "(got mysql://)",
    ),
    (
        {"DATABASE_URL": "postgresql://antrian:s3cretpw@db:99999/antrian"},
        (),
        "DATABASE_URL='postgresql://antrian@db:99999/antrian': the port '99999' is not a port",
    ),
]


@pytest.mark.parametrize(("env", "args", "expected"), SETTINGS_REFUSED)
def test_a_setting_that_cannot_be_used_stops_the_service_with_one_line_and_status_2(
    tmp_path: Path, env: dict[str, str], args: tuple[str, ...], expected: str
) -> None:
    base = {"DATABASE_URL": NOWHERE, "ANTRIAN_DATA_DIR": str(tmp_path / "pg"), "ANTRIAN_PORT": "0"}
    result = queue_service("run", "--config", str(EXAMPLE), *args, env={**base, **env})
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"the service did not start: {expected}"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
    assert result.stdout == ""  # it never listened: no banner
    assert "s3cretpw" not in result.stderr


def test_a_data_directory_that_is_a_file_stops_the_service_with_one_line(tmp_path: Path) -> None:
    a_file = tmp_path / "pgdata"
    a_file.write_text("not a directory")
    result = queue_service("run", "--config", str(EXAMPLE), env={"ANTRIAN_DATA_DIR": str(a_file)})
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"the service did not start: ANTRIAN_DATA_DIR={str(a_file)!r}: not a directory\n"
    )


def test_a_port_in_use_stops_the_service_before_it_touches_the_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = queue_service(
            "run", "--config", str(EXAMPLE), "--port", str(port),
            env={"ANTRIAN_DATA_DIR": str(data_dir)},
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.splitlines()
    assert line.endswith(
        f"ERROR queue_service: the service did not start: cannot listen on 127.0.0.1 port "
        f"{port}: Address already in use"
    )
    assert not data_dir.exists()  # no embedded PostgreSQL was started (nor adopted)


@pytest.mark.parametrize(
    ("given", "stdin", "problem"),
    [
        ("", None, "the token is empty"),
        ("   ", None, "the token is empty"),
        (" demo-admin", None, "the token starts or ends with a space"),
        ("demo\tadmin", None, "the token holds a control character"),
        (None, "", "the token is empty"),  # asked for, and stdin closed at once
    ],
)
def test_hash_token_refuses_a_token_no_client_could_send_and_hashes_a_real_one(
    given: str | None, stdin: str | None, problem: str
) -> None:
    result = queue_service("hash-token", *([given] if given is not None else []), stdin=stdin)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    [line] = result.stderr.splitlines()[-1:]  # getpass's prompt and warning come first
    assert line.startswith(f"hash-token: {problem}"), result.stderr
    assert "Traceback" not in result.stderr
    good = queue_service("hash-token", "demo-admin")
    assert (good.returncode, good.stdout) == (0, hash_token("demo-admin") + "\n")


def test_settings_from_an_environment_mapping_check_every_value() -> None:
    env = {
        "ANTRIAN_HOST": " 0.0.0.0 ",
        "ANTRIAN_PORT": "0",
        "ANTRIAN_LOG_LEVEL": "warn",
        "ANTRIAN_DATA_DIR": "",  # blank: the default
        "DATABASE_URL": "postgresql://u:p@db/antrian",
    }
    settings = Settings.from_env("hall.toml", env=env)
    assert settings.host == "0.0.0.0"  # noqa: S104
    assert (settings.port, settings.log_level) == (0, "WARNING")
    assert settings.data_dir == Path("var/pgdata")
    assert settings.database_url == "postgresql://u:p@db/antrian"
    assert Settings.from_env("hall.toml", env=env, port=9000, host="::1").port == 9000
    with pytest.raises(SettingsError, match="--port='65536'"):
        Settings.from_env("hall.toml", env=env, port=65536)
    assert Settings.from_env("hall.toml", env={}).log_level == "INFO"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://antrian:pw@db:5432/antrian", "postgresql://antrian@db:5432/antrian"),
        ("postgres://antrian@db/antrian", "postgres://antrian@db/antrian"),
        ("postgresql://:pw@db/antrian", "postgresql://db/antrian"),
        (
            "postgresql:///antrian?host=/run/pg&password=pw&sslmode=require",
            "postgresql:///antrian?host=/run/pg&sslmode=require",
        ),
        ("postgresql://u:pw@h1:5432,h2:5433/d", "postgresql://u@h1:5432,h2:5433/d"),
    ],
)
def test_a_database_url_is_described_without_its_password(url: str, shown: str) -> None:
    from queue_service.settings import describe_database_url

    assert describe_database_url(url) == shown
