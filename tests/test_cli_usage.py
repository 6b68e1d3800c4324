"""The command line's own refusals: an option given twice, usage errors as JSON, dates out of range.

Every single-value option of every command (found by walking the parser, so a new option is covered without
touching this file) given twice is refused with exit 2 and a German problem naming the option and both
values; options meant to repeat still do. With `--json` among the arguments argparse's own errors are JSON on
stdout like every other error. Dates (`--date`, `--deadline`) outside 1900–2999 stop at once with exit 2, and
a typed date must fit the budget year (docs/operations/exit-codes.md, "Dates given on the command line").
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from allocation.cli import build_parser, main
from allocation.core.dates import LAST, DateError, deadline_problems
from allocation.core.instalments import Schedule, change_plan
from conftest import FIXTURE, RULES


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command words, parser) for every command and sub-step that takes options (`year init`, ...)."""
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield path, parser
    for action in subcommands:
        for name, sub in action.choices.items():
            yield from _commands(sub, (*path, name))


def _two_values(action: argparse.Action) -> tuple[str, str] | None:
    """Two different values the option accepts (its choices, or the first pair its type converts)."""
    if action.choices:
        choices = [str(c) for c in action.choices]
        return (choices[0], choices[1]) if len(choices) > 1 else None
    for pair in (("2022-03-15", "2022-04-01"), ("2", "4"), ("300", "400"), ("a" * 64, "b" * 64), ("a", "b")):
        try:
            if action.type is not None:
                [action.type(value) for value in pair]
        except (argparse.ArgumentTypeError, TypeError, ValueError):
            continue
        return pair
    return None


def _single_value_options():
    """(command words, action) for every option of every command that stores one value (argparse `store`)."""
    found = []
    for path, parser in _commands(build_parser()):
        for action in parser._actions:
            if action.option_strings and action.nargs is None and type(action).__name__ == "_StoreOnce":
                found.append((path, action))
    return found


SINGLE = _single_value_options()


def _json_refusal(argv: list[str], capsys) -> dict:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    out = capsys.readouterr().out
    answer = json.loads(out)
    assert answer["status"] == "error" and answer["exit_code"] == 2 and answer["title"]
    return answer


def test_the_walk_finds_the_single_value_options_users_know():
    names = {(" ".join(path), action.option_strings[-1]) for path, action in SINGLE}
    assert {("run", "--mode"), ("run", "--rules"), ("run", "--output"), ("notices", "--date"),
            ("benehmen", "--deadline"), ("benehmen", "--date"), ("inbox", "--interval"), ("rate", "--need"),
            ("year init", "--year"), ("year stage", "--rules"), ("serve", "--port"), ("batch", "--jobs")} <= names
    assert ("compare", "--rules") not in names and ("compare", "--label") not in names  # one per scenario
    assert len(SINGLE) >= 40
    # what is meant to repeat still does: compare's scenario options, nargs="+" positionals, flags
    args = build_parser().parse_args(["compare", "in.xlsx", "--rules", "a.yaml", "--label", "A", "--rules", "b.yaml",
                                      "--label", "B", "-o", "v.xlsx"])
    assert args.scenarios == [{"rules": "a.yaml", "label": "A"}, {"rules": "b.yaml", "label": "B"}]
    assert build_parser().parse_args(["check", "a.yaml", "b.yaml"]).rules == ["a.yaml", "b.yaml"]
    assert build_parser().parse_args(["run", "x.xlsx", "--rules", "r", "-o", "o", "--json", "--json"]).json


@pytest.mark.parametrize("path, action", SINGLE, ids=[f"{' '.join(p)} {a.option_strings[-1]}" for p, a in SINGLE])
def test_every_single_value_option_given_twice_is_refused(path, action, capsys):
    first, second = _two_values(action)
    option = action.option_strings[0]
    answer = _json_refusal([*path, option, first, action.option_strings[-1], second, "--json"], capsys)
    [problem] = answer["problems"]
    assert problem["code"] == "usage-repeated-option"
    assert problem["location"]["file"] == "/".join(action.option_strings)
    assert first in problem["message"] and second in problem["message"]
    assert "zweimal" in problem["message"]


def test_twice_without_json_is_a_german_message_on_stderr_and_nothing_runs(tmp_path, capsys):
    output = tmp_path / "a.xlsx"
    with pytest.raises(SystemExit) as stop:
        main(["run", str(FIXTURE), "--rules", str(RULES), "-o", str(output), "--output", str(tmp_path / "b.xlsx")])
    assert stop.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Fehler [usage-repeated-option] -o/--output: -o/--output ist zweimal angegeben" in captured.err
    assert str(output) in captured.err and str(tmp_path / "b.xlsx") in captured.err
    assert list(tmp_path.iterdir()) == []


def test_a_second_label_for_one_scenario_is_a_repeated_option(capsys):
    answer = _json_refusal(["compare", "in.xlsx", "--rules", "a.yaml", "--label", "A", "--label", "B", "-o", "v.xlsx",
                            "--json"], capsys)
    assert [p["code"] for p in answer["problems"]] == ["usage-repeated-option"]
    assert answer["problems"][0]["location"]["file"] == "--label"


@pytest.mark.parametrize("argv, code, where", [
    (["run", "--json"], "usage-missing-argument", "EINGABE.xlsx, --rules, -o/--output"),
    (["run", "x.xlsx", "--rules", "r", "-o", "o", "--mode", "fnal", "--json"], "usage-bad-value", "--mode"),
    (["rate", "--need", "abc", "--base", "1", "--json"], "usage-bad-value", "--need"),
    (["batch", "d", "--rules", "r", "-o", "o", "--jobs", "vier", "--json"], "usage-bad-value", "--jobs"),
    (["run", "x.xlsx", "--rules", "--json"], "usage-bad-value", "--rules"),
    (["run", "x.xlsx", "--rules", "r", "-o", "o", "--gibtsnicht", "--json"], "usage-unknown-argument", "allocation"),
    (["lauf", "--json"], "usage-bad-value", "BEFEHL"),
])
def test_usage_errors_are_json_with_json(argv, code, where, capsys):
    answer = _json_refusal(argv, capsys)
    [problem] = answer["problems"]
    assert problem["code"] == code and problem["location"]["file"] == where
    assert problem["message"] and problem["hint"]


def test_an_unknown_choice_suggests_the_one_meant(capsys):
    answer = _json_refusal(["run", "x.xlsx", "--rules", "r", "-o", "o", "--mode", "fnal", "--json"], capsys)
    problem = answer["problems"][0]
    assert "meinten Sie final?" in problem["message"]
    assert problem["found"] == "fnal" and problem["expected"] == "einer von test, final"


def test_usage_errors_without_json_go_to_stderr_in_german(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["run"])
    assert stop.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Aufruf: allocation run" in captured.err
    assert "Fehler [usage-missing-argument]" in captured.err and "es fehlt, was der Befehl braucht" in captured.err


# ------------------------------------------------------------------------------------------- dates

@pytest.mark.parametrize("argv", [
    ["notices", "ergebnis.xlsx", "-o", "bescheide", "--date", "9999-12-31"],
    ["benehmen", "in.xlsx", "--rules", "r.yaml", "--previous", "v.xlsx", "-o", "b", "--date", "9999-12-31"],
    ["benehmen", "in.xlsx", "--rules", "r.yaml", "--previous", "v.xlsx", "-o", "b", "--deadline", "9999-12-31"],
    ["benehmen", "in.xlsx", "--rules", "r.yaml", "--previous", "v.xlsx", "-o", "b", "--deadline", "1899-12-31"],
])
def test_a_date_outside_1900_to_2999_is_refused_at_once(argv, capsys):
    answer = _json_refusal([*argv, "--json"], capsys)
    [problem] = answer["problems"]
    option = argv[-2]
    assert problem["code"] == "usage-bad-date" and problem["location"]["file"] == option
    assert problem["found"] == argv[-1]
    assert problem["expected"] == "ein Datum von 1900-01-01 bis 2999-12-31"
    assert "Jahreszahl prüfen" in problem["hint"]


def test_a_malformed_date_names_the_option_and_the_format(capsys):
    answer = _json_refusal(["notices", "e.xlsx", "-o", "b", "--date", "15.03.2022", "--json"], capsys)
    problem = answer["problems"][0]
    assert (problem["code"], problem["location"]["file"], problem["found"]) == ("usage-bad-date", "--date", "15.03.2022")
    assert "JJJJ-MM-TT" in problem["expected"]


def test_the_last_dates_allowed_do_not_overflow_the_calendar():
    # a change notice dated 31.12.2999 puts a difference one month later: 31.01.3000 (Python's dates end in 9999)
    last = LAST
    assert last == dt.date(2999, 12, 31)
    plan = change_plan(120_000, 132_000, Schedule.monthly(15), 2999, last)
    assert plan.lines[-1].due == dt.date(3000, 1, 31) and plan.lines[-1].new == 12_000
    assert last + dt.timedelta(weeks=6) == dt.date(3000, 2, 11)  # the default deadline of a letter of that day


def _refused(argv: list[str], capsys) -> dict:
    """A refusal by the command itself (after parsing): exit 2 and the problems as JSON."""
    assert main([*argv, "--json"]) == 2
    answer = json.loads(capsys.readouterr().out)
    assert answer["status"] == "error" and answer["exit_code"] == 2
    return answer


def test_a_deadline_before_the_date_is_refused_before_anything_is_read(tmp_path, capsys):
    missing = [str(tmp_path / "fehlt.xlsx"), "--rules", str(tmp_path / "fehlt.yaml"), "--previous",
               str(tmp_path / "fehlt-vorjahr.xlsx"), "-o", str(tmp_path / "b")]
    answer = _refused(["benehmen", *missing, "--date", "2022-03-01", "--deadline", "2022-02-28"], capsys)
    [problem] = answer["problems"]
    assert problem["code"] == "usage-deadline-before-date" and problem["location"]["file"] == "--deadline"
    assert problem["found"] == "--deadline 2022-02-28, Datum der Schreiben --date 2022-03-01"
    assert problem["expected"] == "eine Frist nach dem 2022-03-01"
    same_day = _refused(["benehmen", *missing, "--date", "2022-03-01", "--deadline", "2022-03-01"], capsys)
    assert same_day["problems"][0]["code"] == "usage-deadline-before-date"  # no day left for a statement
    assert list(tmp_path.iterdir()) == []


def test_a_deadline_without_date_counts_from_today():
    today = dt.date.today()
    [problem] = deadline_problems(today, today - dt.timedelta(days=1), day_given=False)
    assert problem.code == "usage-deadline-before-date" and "ohne --date" in problem.found
    assert deadline_problems(today, today + dt.timedelta(days=1), day_given=False) == []


def test_a_deadline_more_than_a_year_after_the_date_is_a_typing_error():
    day = dt.date(2022, 3, 1)
    assert deadline_problems(day, dt.date(2023, 3, 2)) == []  # 366 days
    [problem] = deadline_problems(day, dt.date(2023, 3, 3))
    assert problem.code == "usage-bad-date" and problem.expected == "eine Frist bis zum 2023-03-02"


@pytest.fixture(scope="module")
def wesel_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("datum")
    rules = folder / "kreis-wesel.yaml"
    shutil.copyfile(RULES, rules)
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(folder / "ergebnis.xlsx")]) == 0
    from openpyxl import load_workbook  # and the budget year before, the previous year of a Benehmen

    workbook = load_workbook(FIXTURE)
    (row,) = [r for r in workbook["Parameter"].iter_rows() if r[0].value == "Haushaltsjahr"]
    row[1].value = 2021
    workbook.save(folder / "eingabe-2021.xlsx")
    assert main(["run", str(folder / "eingabe-2021.xlsx"), "--rules", str(rules), "-o", str(folder / "vorjahr.xlsx"),
                 "--ignore-validity", "Vorjahr für den Test"]) == 0
    return folder


@pytest.mark.parametrize("day, fits", [("2020-12-31", False), ("2021-01-01", True), ("2026-12-31", True),
                                       ("2027-01-01", False), ("2202-03-15", False)])
def test_a_notice_date_must_fit_the_budget_year(wesel_run, tmp_path, capsys, day, fits):
    pytest.importorskip("typst")
    # budget year 2022: from 1 January 2021 (the year before) to 31 December 2026 (the fourth year after)
    argv = ["notices", str(wesel_run / "ergebnis.xlsx"), "-o", str(tmp_path / "bescheide"), "--date", day]
    if fits and day.startswith("2026"):
        # within the range a date may have (a change notice years later), but a FIRST notice after its year is
        # refused by its own rule (issue 22: its instalments were all due)
        assert main(argv + ["--json"]) == 3
        assert json.loads(capsys.readouterr().out)["problems"][0]["code"] == "notices-after-year"
        return
    if fits:
        assert main(argv) == 0
        return
    answer = _refused(argv, capsys)
    [problem] = answer["problems"]
    assert problem["code"] == "usage-bad-date" and problem["location"]["file"] == "--date"
    assert problem["found"] == day and problem["expected"] == "ein Datum von 2021-01-01 bis 2026-12-31"
    assert "--date weglassen" in problem["hint"]
    assert not (tmp_path / "bescheide").exists()


def test_a_benehmen_date_must_fit_the_planned_budget_year(wesel_run, tmp_path):
    from allocation.ops.benehmen import write_benehmen

    # planned year 2022: letters from 1 January 2020 (a double budget) to 31 December 2022
    with pytest.raises(DateError) as refused:
        write_benehmen(FIXTURE, RULES, wesel_run / "vorjahr.xlsx", tmp_path / "benehmen",
                       date=dt.date(2023, 1, 1))
    [problem] = refused.value.problems
    assert problem.code == "usage-bad-date" and problem.expected == "ein Datum von 2020-01-01 bis 2022-12-31"
    assert refused.value.exit_code == 2
    assert not (tmp_path / "benehmen").exists()


@pytest.mark.parametrize("argv", [["states", "BY"], ["run", "fehlt.xlsx", "--rules", "fehlt.yaml", "-o", "x.xlsx",
                                                      "--json"]], ids=["output", "problems"])
def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path, argv):
    """`allocation ... | head`: the reader closes the pipe before the command writes. Both the normal output and
    the problem list end with 141 (128 + SIGPIPE, as a shell reports it), never with a traceback."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "allocation", *argv], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before anything is written
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 141, errors
    assert b"Traceback" not in errors
