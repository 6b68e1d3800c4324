"""National batch: every district of a folder, on a passed-in process pool; one output per district, one
summary; a broken district is reported and does not stop the others.

Expected totals are computed here from the generator's figures by hand arithmetic (deficit = eligible cost
components − funding, in cents; the youth-office rule excludes Gemeinkosten), not by the pipeline.
"""
from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.ops import synth
from allocation.ops.batch import run_batch
from allocation.cli import main
from allocation.core.problems import ExitCode

SCALE = 0.01  # 4 districts × 2 municipalities × 4 items


def expected_total_cents(district) -> int:
    total = 0
    for _id, _label, category, staff, material, overhead, funding, host, _posts in district.items:
        eligible = staff + material + (overhead if not (category == "Jugendhilfe" and host == "Kreis") else 0)
        total += int((eligible - funding) * 100)
    return total


@pytest.fixture(scope="module")
def country_dir(tmp_path_factory) -> tuple[Path, Path]:
    return synth.write_country(tmp_path_factory.mktemp("country"), scale=SCALE)


def test_generator_is_deterministic_and_scaled():
    first, second = synth.country(SCALE), synth.country(SCALE)
    assert first == second
    assert len(first.districts) == 4
    assert all(len(d.municipalities) == 2 and len(d.items) == 4 for d in first.districts)
    assert synth.country(SCALE, seed=1) != first
    full_counts = synth._counts(1.0)
    assert full_counts == (400, 40, 400)


def test_batch_on_a_process_pool_selects_rules_per_district(country_dir, tmp_path):
    inputs, rules = country_dir
    seen = []
    with ProcessPoolExecutor(max_workers=2) as pool:
        result = run_batch(inputs, tmp_path / "out", rules, executor=pool,
                           progress=lambda done, total, r: seen.append((done, total)))
        assert pool.submit(int, "7").result() == 7  # the caller's executor is left running
    districts = synth.country(SCALE).districts
    assert result.exit_code == ExitCode.OK
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [r.district for r in result.results] == [d.name for d in districts]  # input order, not finish order
    for r, district in zip(result.results, districts):
        assert Path(r.output).is_file()
        assert r.total_cents == expected_total_cents(district)
        assert r.items == 4 and r.municipalities == 2
    summary = load_workbook(result.summary, read_only=True)
    rows = list(summary["Kreise"].iter_rows(values_only=True))
    assert rows[0][:3] == ("Eingabe", "Kreis", "Haushaltsjahr")
    assert [row[1] for row in rows[1:]] == [d.name for d in districts]
    assert [Decimal(str(row[5])) for row in rows[1:]] == [Decimal(expected_total_cents(d)) / 100 for d in districts]
    assert list(summary["Fehler"].iter_rows(values_only=True)) == [("Eingabe", "Exit-Code", "Problem")]


def test_broken_district_is_reported_and_the_others_run(country_dir, tmp_path):
    inputs, rules = country_dir
    folder = tmp_path / "in"
    folder.mkdir()
    for path in inputs.glob("*.xlsx"):
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "aaa-kaputt.xlsx").write_text("ID;Betrag\n", encoding="utf-8")
    with ProcessPoolExecutor(max_workers=2) as pool:
        result = run_batch(folder, tmp_path / "out", rules, executor=pool)
    assert result.exit_code == ExitCode.INPUT
    broken = result.results[0]
    assert broken.exit_code == ExitCode.INPUT and broken.output is None
    assert any("aaa-kaputt.xlsx" in problem for problem in broken.problems)
    assert all(r.exit_code == ExitCode.OK for r in result.results[1:])
    errors = list(load_workbook(result.summary, read_only=True)["Fehler"].iter_rows(values_only=True))[1:]
    assert errors and all(row[0] == "aaa-kaputt.xlsx" and row[1] == ExitCode.INPUT for row in errors)


def test_cli_batch_with_one_rule_file_runs_only_its_own_district(country_dir, tmp_path, capsys):
    inputs, rules = country_dir
    # --rules FILE serves every input, but like `allocation run --rules` it must cover each input's Kreis:
    # the other districts are refused (exit 4, both names), never computed with another district's rules
    code = main(["batch", str(inputs), "--rules", str(rules / "kreis-synthetika-001.yaml"),
                 "-o", str(tmp_path / "out"), "--jobs", "2", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == ExitCode.RULES
    assert [p.name for p in (tmp_path / "out").glob("*-ergebnis.xlsx")] == ["kreis-synthetika-001-ergebnis.xlsx"]
    assert (tmp_path / "out" / "Zusammenfassung.xlsx").is_file()
    refused = {Path(f["input"]).name: f["problems"] for f in report["failed"]}
    assert sorted(refused) == [f"kreis-synthetika-00{n}.xlsx" for n in (2, 3, 4)]
    for number in (2, 3, 4):
        [problem] = refused[f"kreis-synthetika-00{number}.xlsx"]
        assert "[rules-other-district]" in problem
        assert "Kreis Synthetika 001" in problem and f"Kreis Synthetika 00{number}" in problem


def test_cli_batch_without_a_rule_file_for_a_district_fails_with_rule_error(country_dir, tmp_path):
    inputs, rules = country_dir
    partial = tmp_path / "rules"
    partial.mkdir()
    (partial / "only-one.yaml").write_text((rules / "kreis-synthetika-002.yaml").read_text(encoding="utf-8"),
                                           encoding="utf-8")
    code = main(["batch", str(inputs), "--rules", str(partial), "-o", str(tmp_path / "out"), "--jobs", "1"])
    assert code == ExitCode.RULES
    assert [p.name for p in sorted((tmp_path / "out").glob("*-ergebnis.xlsx"))] == ["kreis-synthetika-002-ergebnis.xlsx"]


def test_einzelnachweis_beyond_the_row_limit_continues_on_numbered_sheets(tmp_path, monkeypatch,
                                                                          fixture_workbook, rules_file):
    from allocation.workbook import report
    from allocation.runs.pipeline import run

    whole = tmp_path / "whole.xlsx"
    run(fixture_workbook, rules_file, whole)
    monkeypatch.setattr(report, "MAX_ROWS", 21)  # header + 20 lines per sheet
    split = tmp_path / "split.xlsx"
    run(fixture_workbook, rules_file, split)
    # Kreis Wesel fixture: 5 cost items × 13 municipalities = 65 lines -> 20 + 20 + 20 + 5
    book = load_workbook(split, read_only=True)
    parts = ["Einzelnachweis", "Einzelnachweis_2", "Einzelnachweis_3", "Einzelnachweis_4"]
    names = book.sheetnames
    assert names[names.index("Einzelnachweis"):names.index("Einzelnachweis") + 4] == parts
    rows = [list(book[name].iter_rows(values_only=True)) for name in parts]
    assert [len(r) - 1 for r in rows] == [20, 20, 20, 5]
    reference = list(load_workbook(whole, read_only=True)["Einzelnachweis"].iter_rows(values_only=True))
    assert len(reference) == 66
    assert all(r[0] == reference[0] for r in rows)  # the same header on every part
    assert [line for r in rows for line in r[1:]] == reference[1:]
    assert "Einzelnachweis_2" not in load_workbook(whole, read_only=True).sheetnames


def test_synth_answers_help_instead_of_writing_a_country_named_help(tmp_path, monkeypatch, capsys):
    """`python -m allocation.ops.synth --help` once wrote 800 files into a folder named `--help`."""
    import pytest

    from allocation.ops import synth

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        synth.main(["--help"])
    assert stop.value.code == 0 and "ZIEL" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_a_forked_pool_inherits_what_a_district_run_imports():
    """run_batch imports the run's modules before its own pool forks; each must import without starting
    a thread (forking a process with threads is unsafe) and the list must name modules that exist."""
    import subprocess
    import sys
    code = ("import threading, sys, multiprocessing\n"
            "multiprocessing.set_start_method('fork')\n"
            "from allocation.ops.batch import preload_for_fork, _RUN_MODULES\n"
            "assert preload_for_fork() is True\n"
            "assert all(name in sys.modules for name in _RUN_MODULES), _RUN_MODULES\n"
            "assert threading.active_count() == 1, threading.enumerate()\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    spawn = ("import multiprocessing, sys\nmultiprocessing.set_start_method('spawn')\n"
             "from allocation.ops.batch import preload_for_fork\n"
             "assert preload_for_fork() is False\nassert 'allocation.runs.pipeline' not in sys.modules\nprint('ok')\n")
    done = subprocess.run([sys.executable, "-c", spawn], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_summary_workbook_layout_and_text_that_looks_like_a_formula(tmp_path):
    """Zusammenfassung.xlsx: sheets Kreise and Fehler with plain headers, numbers as numbers, and a file name or
    problem starting with = stays text (openpyxl's write-only mode stored such text as a formula)."""
    from decimal import Decimal

    from allocation.ops.batch import DistrictResult, write_summary

    results = [DistrictResult("/in/kreis-a.xlsx", "/out/kreis-a-ergebnis.xlsx", "Kreis A", 2022, 4, 2, 864919731,
                              0, (), 0.0814),
               DistrictResult("/in/=1+1.xlsx", None, exit_code=3, problems=("=HYPERLINK(\"x\") kaputt",))]
    path = tmp_path / "Zusammenfassung.xlsx"
    write_summary(path, results)
    book = load_workbook(path)
    assert book.sheetnames == ["Kreise", "Fehler"]
    districts, errors = book["Kreise"], book["Fehler"]
    assert [c.value for c in districts[1]] == ["Eingabe", "Kreis", "Haushaltsjahr", "Kostenpositionen", "Gemeinden",
                                               "Summe verteilt (€)", "Ergebnis", "Exit-Code", "Sekunden",
                                               "Summe zu zahlen (€)"]  # issue 23: the sum payable, at the end
    assert not districts["A1"].font.b
    assert [c.value for c in districts[2]][:9] == ["kreis-a.xlsx", "Kreis A", 2022, 4, 2, 8649197.31,
                                                   "kreis-a-ergebnis.xlsx", 0, 0.081]
    assert districts["F2"].data_type == "n" and Decimal(str(districts["F2"].value)) == Decimal("8649197.31")
    assert districts["A3"].value == "=1+1.xlsx" and districts["A3"].data_type == "s" and districts["G3"].value == "FEHLER"
    assert [c.value for c in errors[1]] == ["Eingabe", "Exit-Code", "Problem"]
    assert [c.value for c in errors[2]] == ["=1+1.xlsx", 3, "=HYPERLINK(\"x\") kaputt"]
    assert errors["C2"].data_type == "s" and errors["B2"].data_type == "n"
