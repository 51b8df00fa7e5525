"""Find the external programs some tests drive (promtool, amtool, prometheus, chromium).

`require_tool(name)` returns the program's path. When it is missing the test is skipped
on a developer machine, but fails in CI: `.ci/run` sets ANTRIAN_REQUIRE_TOOLS so that a
missing package can never turn a red suite into a quietly skipped one.
Call it inside a test or fixture (it uses pytest.skip / pytest.fail).
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_ENV = "ANTRIAN_REQUIRE_TOOLS"

# Debian package that provides each tool (what .ci/run installs).
PACKAGES: dict[str, str] = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
    "chromium": "chromium",
}

# Executable names tried in order: Chromium is `chromium` on Debian, `chromium-browser`
# on Ubuntu and older distributions; Chrome works as well for headless tests.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "chromium": (
        "chromium",
        "chromium-browser",
        "google-chrome-stable",
        "google-chrome",
    ),
}


def tools_required() -> bool:
    """True when a missing tool must fail the test (CI) rather than skip it."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def override_env(name: str) -> str:
    """Environment variable that points at an explicit executable, e.g. ANTRIAN_TOOL_CHROMIUM."""
    return "ANTRIAN_TOOL_" + name.upper().replace("-", "_")


def find_tool(name: str) -> str | None:
    """Path of the tool, or None. An explicit override that is not executable is an error."""
    override = os.environ.get(override_env(name))
    if override:
        path = shutil.which(override)
        if path is None:
            pytest.fail(
                f"{override_env(name)}={override!r} is not an executable file", pytrace=False
            )
        return path
    for candidate in CANDIDATES.get(name, (name,)):
        path = shutil.which(candidate)
        if path is not None:
            return path
    return None


def require_tool(name: str) -> str:
    """Path of `name`; skip the test when it is missing, or fail it when tools are required."""
    path = find_tool(name)
    if path is not None:
        return path
    looked_for = ", ".join(CANDIDATES.get(name, (name,)))
    package = PACKAGES.get(name, name)
    how = (
        f"install the Debian package '{package}' (apt-get install {package}) or set "
        f"{override_env(name)} to the executable"
    )
    if tools_required():
        pytest.fail(
            f"{name} not found on PATH (looked for: {looked_for}) and {REQUIRE_ENV} is set, "
            f"so this test fails instead of skipping: {how}",
            pytrace=False,
        )
    pytest.skip(f"{name} not found on PATH (looked for: {looked_for}): {how}")
