"""`allocation batch` output (issue 13): rich's bar and table with colour on a terminal, plain lines in logs and
cron (no carriage returns, no escape sequences), and rich is imported by that command only."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from allocation.ops import synth
from allocation.cli import main
from allocation.core.problems import ExitCode


@pytest.fixture(scope="module")
def country(tmp_path_factory) -> tuple[Path, Path]:
    inputs, rules = synth.write_country(tmp_path_factory.mktemp("country"), scale=0.01)  # 4 districts
    broken = tmp_path_factory.mktemp("broken")
    for path in inputs.glob("*.xlsx"):
        shutil.copy(path, broken / path.name)
    (broken / "aaa-kaputt.xlsx").write_bytes(b"kein Arbeitsmappen-Inhalt")
    return broken, rules


def test_without_a_terminal_progress_is_one_plain_line_per_input(country, tmp_path, capsys):
    inputs, rules = country
    code = main(["batch", str(inputs), "--rules", str(rules), "-o", str(tmp_path / "out"), "--jobs", "1",
                 "--progress"])
    captured = capsys.readouterr()
    assert code == ExitCode.INPUT
    lines = captured.err.splitlines()
    assert len(lines) == 5 and "\r" not in captured.err and "\x1b" not in captured.err
    assert sorted(re.sub(r"^\d/5 ", "", line) for line in lines) == sorted(
        ["aaa-kaputt.xlsx FEHLER (Exit-Code 3)"] + [f"{p.name} ok" for p in inputs.glob("kreis-*.xlsx")])
    assert [line.split(" ")[0] for line in lines] == [f"{n}/5" for n in range(1, 6)]
    assert "5 Eingaben, 1 mit Fehlern" in captured.out


def test_without_a_terminal_and_without_progress_nothing_is_drawn(country, tmp_path, capsys):
    inputs, rules = country
    main(["batch", str(inputs), "--rules", str(rules), "-o", str(tmp_path / "out"), "--jobs", "1"])
    assert capsys.readouterr().err == ""


def test_on_a_terminal_rich_draws_a_coloured_bar_and_a_table_of_failures(country, tmp_path, capsys, monkeypatch):
    inputs, rules = country
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich also asks the file; the capture is no real terminal
    code = main(["batch", str(inputs), "--rules", str(rules), "-o", str(tmp_path / "out"), "--jobs", "1"])
    err = capsys.readouterr().err
    assert code == ExitCode.INPUT
    assert "\x1b[" in err  # colour
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", err)
    assert "5/5" in plain and "Eingaben mit Fehlern" in plain and "aaa-kaputt.xlsx" in plain
    assert "[#" not in plain  # not the old hand-drawn bar


def test_rich_is_not_imported_at_cli_start():
    code = "import sys, allocation.cli; allocation.cli.build_parser(); print('rich' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
