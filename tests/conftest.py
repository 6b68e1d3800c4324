"""Shared test set-up: hypothesis profiles and paths to the shipped fixture.

Profiles: `default` (every CI run, fast) and `thorough` (`pytest --hypothesis-profile=thorough`, many
more examples). The example database lives outside the repository (see .gitignore) and is keyed by seed.
"""
from __future__ import annotations

import os
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
