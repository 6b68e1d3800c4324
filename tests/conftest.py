"""Shared test set-up: hypothesis profiles and paths to the shipped fixture.

Profiles: `default` (every CI run, fast) and `thorough` (`pytest --hypothesis-profile=thorough`, many
more examples). The example database lives outside the repository (see .gitignore) and is keyed by seed.

Stray state: the whole session (and every process it starts) uses one temporary folder of its own. At the end
no `allocation-*` folder may be left in it (the serve command's work folder, the writer's scratch rows, verify's
replay): a command that leaves one fails the session, naming it. A test that kills a command on purpose gives
it a temporary folder of the test's own.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"

settings.register_profile("default", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

SESSION_TEMP = Path(tempfile.mkdtemp(prefix="allocation-test-session-"))
os.environ["TMPDIR"] = str(SESSION_TEMP)  # child processes too
tempfile.tempdir = None  # recomputed from TMPDIR on next use
os.environ.pop("ALLOCATION_LETTERHEAD", None)  # an installation's letterhead must not reach the tests' letters


def pytest_sessionfinish(session, exitstatus):
    left = sorted(path.name for path in SESSION_TEMP.glob("allocation-*"))
    if left:
        print(f"\nStray state: the tests left {', '.join(left)} in {SESSION_TEMP}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        shutil.rmtree(SESSION_TEMP, ignore_errors=True)


@pytest.fixture(autouse=True)
def isolated_register(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own installation register: no test writes into the real per-user data folder."""
    folder = tmp_path_factory.mktemp("installation") / "register"
    monkeypatch.setenv("ALLOCATION_REGISTER", str(folder))
    return folder


@pytest.fixture
def fixture_workbook() -> Path:
    return FIXTURE


@pytest.fixture
def rules_file() -> Path:
    return RULES
