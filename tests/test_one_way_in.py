"""One way in (issue 11): every command reaches a run through `pipeline.compute`, which checks that the rule file
covers the workbook's Kreis and Haushaltsjahr; outputs never overwrite what a command reads; one final run per
district and year per installation; the web page records no server paths.

Each test named `test_regression_*` failed on main before this change (the behaviour it pins was silently wrong).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.cli import main
from allocation.core import model
from allocation.core.problems import ExitCode
from conftest import FIXTURE, RULES


def _rules(tmp_path: Path, *, district: str = "Kreis Wesel", valid_from: int = 2022, valid_to: int = 2023,
           name: str = "regeln.yaml") -> Path:
    text = RULES.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^district: .*$", f"district: {district}", text, count=1)
    text = re.sub(r"(?m)^valid_from: .*$", f"valid_from: {valid_from}", text, count=1)
    text = re.sub(r"(?m)^valid_to: .*$", f"valid_to: {valid_to}", text, count=1)
    target = tmp_path / name
    target.write_text(text, encoding="utf-8")
    return target


def _input(tmp_path: Path, *, district: str | None = None, year: int | None = None,
           name: str = "eingabe.xlsx") -> Path:
    target = tmp_path / name
    if district is None and year is None:
        shutil.copyfile(FIXTURE, target)
        return target
    workbook = load_workbook(FIXTURE)
    sheet = workbook["Parameter"]
    for row in sheet.iter_rows(min_row=2):
        if row[0].value == "Kreis" and district is not None:
            row[1].value = district
        if row[0].value == "Haushaltsjahr" and year is not None:
            row[1].value = year
    workbook.save(target)
    return target


def _protocol(path: Path) -> dict:
    workbook = load_workbook(path, read_only=True)
    rows = {row[0]: row[1] for row in workbook["Protokoll"].iter_rows(values_only=True) if row and row[0]}
    workbook.close()
    return rows


def _problems(capsys) -> list[dict]:
    return json.loads(capsys.readouterr().out)["problems"]


# ------------------------------------------------------------------------------------------- districts


@pytest.mark.parametrize(("a", "b"), [
    ("Kreis Wesel", "kreis wesel"), ("Kreis Wesel", "KREIS   WESEL "), ("Kreis Wesel", "Wesel"),
    ("Kreis Wesel", "Landkreis Wesel"), ("Kreis Wesel", "Lkr. Wesel"), ("Kreis Wesel", "Kreis\u00a0Wesel"),
    ("Kreis Düren", "Kreis Du\u0308ren"),  # NFC: a composed and a decomposed ü
    ("Kreis Wesel", "kreis\twesel"),
])
def test_same_district_ignores_case_spaces_unicode_form_and_kreis_prefix(a, b):
    assert model.same_district(a, b) and model.same_district(b, a)


@pytest.mark.parametrize(("a", "b"), [
    ("Kreis Wesel", "Kreis Kleve"), ("Kreis Wesel", "Weselkreis"), ("Rhein-Kreis Neuss", "Neuss"),
    ("Kreis Wesel", "Kreis We sel"), ("Kreis", "Wesel"), ("Kreis Wesel", None),
])
def test_different_districts_stay_different(a, b):
    assert not model.same_district(a, b)


def test_normal_form_is_casefolded_nfc_with_one_blank_and_no_prefix():
    assert model.normalise_district("  Landkreis   Straße ") == "strasse"
    assert model.normalise_district("Kreis") == "kreis"  # a name that is only the prefix keeps it
    assert model.normalise_district("StädteRegion Aachen") == "städteregion aachen"


# ------------------------------------------------------------------------------------------- validity


def test_regression_other_districts_workbook_is_refused_naming_both(tmp_path, capsys):
    rules = _rules(tmp_path)
    source = _input(tmp_path, district="Kreis Kleve")
    before = source.read_bytes()
    code = main(["run", str(source), "--rules", str(rules), "-o", str(tmp_path / "out.xlsx"), "--json"])
    problems = _problems(capsys)
    assert code == ExitCode.RULES
    assert [p["code"] for p in problems] == ["rules-other-district"]
    text = json.dumps(problems, ensure_ascii=False)
    assert "Kreis Wesel" in text and "Kreis Kleve" in text
    assert problems[0]["location"]["file"] == str(rules)
    assert not (tmp_path / "out.xlsx").exists() and source.read_bytes() == before


def test_regression_year_outside_validity_is_refused(tmp_path, capsys):
    rules = _rules(tmp_path)  # 2022–2023
    source = _input(tmp_path, year=2031)
    code = main(["run", str(source), "--rules", str(rules), "-o", str(tmp_path / "out.xlsx"), "--json"])
    problems = _problems(capsys)
    assert code == ExitCode.RULES
    assert [p["code"] for p in problems] == ["rules-not-valid-for-year"]
    assert "2031" in problems[0]["found"] and "2022" in problems[0]["found"] and "2023" in problems[0]["found"]
    assert not (tmp_path / "out.xlsx").exists()


def test_regression_other_district_and_year_as_a_final_run_is_refused_and_not_registered(tmp_path,
                                                                                           isolated_register):
    rules = _rules(tmp_path)
    source = _input(tmp_path, district="Kreis Kleve", year=2031)
    code = main(["run", str(source), "--rules", str(rules), "-o", str(tmp_path / "out.xlsx"), "--mode", "final"])
    assert code == ExitCode.RULES
    assert not isolated_register.exists() or list(isolated_register.iterdir()) == []


@pytest.mark.parametrize("spelling", ["kreis wesel", "KREIS WESEL", "Landkreis Wesel", "Wesel", " Kreis  Wesel "])
def test_district_matches_case_insensitively_and_with_a_kreis_prefix(tmp_path, spelling):
    folder = tmp_path / "regeln"
    folder.mkdir()
    rules = _rules(folder)
    inputs = tmp_path / "eingaben"
    inputs.mkdir()
    source = _input(inputs, district=spelling)
    assert main(["run", str(source), "--rules", str(rules), "-o", str(tmp_path / "out.xlsx")]) == ExitCode.OK
    # choosing from a folder (batch, inbox, web page) uses the same comparison
    assert main(["batch", str(inputs), "--rules", str(folder), "-o", str(tmp_path / "batch"), "--jobs", "1"]) == 0


def test_ignore_validity_is_recorded_in_protokoll_and_manifest_and_warned(tmp_path, capsys):
    rules = _rules(tmp_path)
    source = _input(tmp_path, district="Kreis Kleve", year=2031)
    output = tmp_path / "modell.xlsx"
    reason = "Modellrechnung Kreis Kleve 2031 mit den Weseler Regeln"
    code = main(["run", str(source), "--rules", str(rules), "-o", str(output), "--ignore-validity", reason])
    err = capsys.readouterr().err
    assert code == ExitCode.OK
    assert "[rules-validity-ignored]" in err and "Kreis Kleve" in err and "2031" in err and reason in err
    assert _protocol(output)["Gültigkeit der Regeldatei übergangen (--ignore-validity)"] == reason
    manifest = json.loads(Path(str(output) + ".manifest.json").read_text(encoding="utf-8"))
    assert manifest["parameters"]["ignore_validity"] == reason
    assert main(["verify", str(output)]) == ExitCode.OK  # the replay applies the same override
    capsys.readouterr()
    code = main(["run", str(source), "--rules", str(rules), "-o", str(tmp_path / "modell-2.xlsx"), "--json",
                 "--ignore-validity", reason])
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert code == ExitCode.OK
    assert sorted(w["code"] for w in warnings if w["code"].startswith("rules-validity")) == [
        "rules-validity-ignored"] * 2  # district and year


def test_ignore_validity_is_refused_for_a_final_run_and_without_a_reason(tmp_path, capsys, isolated_register):
    rules = _rules(tmp_path)
    source = _input(tmp_path, district="Kreis Kleve")
    code = main(["run", str(source), "--rules", str(rules), "-o", str(tmp_path / "out.xlsx"), "--mode", "final",
                 "--ignore-validity", "Modell", "--json"])
    problems = _problems(capsys)
    assert code == ExitCode.REFUSED
    assert [p["code"] for p in problems] == ["rules-validity-override-refused"]
    assert problems[0]["location"]["file"] == "--ignore-validity"
    code = main(["run", str(source), "--rules", str(rules), "-o", str(tmp_path / "out.xlsx"),
                 "--ignore-validity", "  ", "--json"])
    assert code == ExitCode.REFUSED
    assert [p["code"] for p in _problems(capsys)] == ["rules-validity-override-empty"]
    assert not (tmp_path / "out.xlsx").exists()
    assert not isolated_register.exists() or list(isolated_register.iterdir()) == []


def test_run_accepts_a_rules_folder_and_records_the_chosen_file(tmp_path, capsys):
    folder = tmp_path / "regeln"
    folder.mkdir()
    _rules(folder, district="Kreis Kleve", name="kleve.yaml")
    chosen = _rules(folder, name="wesel.yaml")
    _rules(folder, valid_from=2024, valid_to=2025, name="wesel-2024.yaml")
    source = _input(tmp_path)
    output = tmp_path / "out.xlsx"
    assert main(["run", str(source), "--rules", str(folder), "-o", str(output)]) == ExitCode.OK
    manifest = json.loads(Path(str(output) + ".manifest.json").read_text(encoding="utf-8"))
    assert manifest["rules"][0]["path"] == str(chosen)
    assert main(["verify", str(output)]) == ExitCode.OK


def test_the_workbook_is_read_once_per_run(tmp_path, monkeypatch):
    from allocation.workbook import inputs
    from allocation.runs import pipeline

    reads = []
    for name in ("read_input", "read_input_rows"):  # the whole book, or its good rows and their problems
        original = getattr(inputs, name)
        monkeypatch.setattr(pipeline, name, lambda path, *shown, _original=original:
                            reads.append(Path(path).name) or _original(path, *shown))
    folder = tmp_path / "regeln"
    folder.mkdir()
    _rules(folder)
    pipeline.run(_input(tmp_path), folder, tmp_path / "out.xlsx")
    assert reads == ["eingabe.xlsx"]


# ------------------------------------------------------------------------------------ never overwritten


def test_regression_run_onto_its_own_input_is_refused_before_reading(tmp_path, capsys, monkeypatch):
    from allocation.runs import pipeline

    source = _input(tmp_path)
    before = source.read_bytes()
    for name in ("read_input", "read_input_rows"):
        monkeypatch.setattr(pipeline, name, lambda path, *shown: pytest.fail("the input was read"))
    code = main(["run", str(source), "--rules", str(RULES), "-o", str(source), "--json"])
    problems = _problems(capsys)
    assert code == ExitCode.REFUSED
    assert [p["code"] for p in problems] == ["output-is-input"]
    assert source.read_bytes() == before
    assert not Path(str(source) + ".manifest.json").exists()


def test_run_onto_its_input_by_another_name_is_refused(tmp_path, capsys):
    source = _input(tmp_path)
    before = source.read_bytes()
    (tmp_path / "sub").mkdir()
    os.link(source, tmp_path / "sub" / "hardlink.xlsx")  # another name, the same file
    (tmp_path / "symlink.xlsx").symlink_to(source)
    for target in (tmp_path / "sub" / ".." / "eingabe.xlsx", tmp_path / "sub" / "hardlink.xlsx",
                   tmp_path / "symlink.xlsx"):
        assert main(["run", str(source), "--rules", str(RULES), "-o", str(target), "--json"]) == ExitCode.REFUSED
        assert [p["code"] for p in _problems(capsys)] == ["output-is-input"]
    assert source.read_bytes() == before


def test_output_equal_to_the_rules_file_is_refused(tmp_path, capsys):
    rules = _rules(tmp_path)
    before = rules.read_bytes()
    code = main(["run", str(_input(tmp_path)), "--rules", str(rules), "-o", str(rules), "--json"])
    problems = _problems(capsys)
    assert code == ExitCode.REFUSED and [p["code"] for p in problems] == ["output-is-input"]
    assert "Regeldatei" in problems[0]["message"]
    assert rules.read_bytes() == before


def test_manifest_path_onto_an_input_is_refused(tmp_path, capsys):
    # -o X.xlsx writes X.xlsx.manifest.json: it must not replace a file read by the run either
    source = _input(tmp_path, name="eingabe.xlsx.manifest.json")
    before = source.read_bytes()
    code = main(["run", str(source), "--rules", str(RULES), "-o", str(tmp_path / "eingabe.xlsx"), "--json"])
    problems = _problems(capsys)
    assert code == ExitCode.REFUSED and [p["code"] for p in problems] == ["output-is-input"]
    assert "Manifest" in problems[0]["message"]
    assert source.read_bytes() == before and not (tmp_path / "eingabe.xlsx").exists()


def test_bases_from_workbook_is_never_overwritten(tmp_path, capsys):
    previous = _input(tmp_path, year=2021, name="vorjahr.xlsx")
    before = previous.read_bytes()
    code = main(["run", str(_input(tmp_path)), "--rules", str(RULES), "-o", str(previous), "--provisional",
                 "--bases-from", str(previous), "--json"])
    assert code == ExitCode.REFUSED and [p["code"] for p in _problems(capsys)] == ["output-is-input"]
    assert previous.read_bytes() == before


def test_output_inside_the_register_is_refused(tmp_path, capsys, isolated_register):
    isolated_register.mkdir(parents=True, exist_ok=True)
    code = main(["run", str(_input(tmp_path)), "--rules", str(RULES), "-o", str(isolated_register / "x.jsonl"),
                 "--json"])
    problems = _problems(capsys)  # the workbook and its manifest
    assert code == ExitCode.REFUSED and [p["code"] for p in problems] == ["output-in-register"] * 2
    assert list(isolated_register.iterdir()) == []


@pytest.mark.parametrize("command", [
    lambda t, src, rules: ["trueup", str(src), str(src), "--rules", str(rules), "-o", str(src)],
    lambda t, src, rules: ["trueup", str(src), str(src), "--rules", str(rules), "-o", str(rules)],
    lambda t, src, rules: ["compare", str(src), "--rules", str(rules), "--rules", str(rules), "-o", str(src)],
    lambda t, src, rules: ["compare", str(src), "--rules", str(rules), "--rules", str(rules), "-o", str(rules)],
    lambda t, src, rules: ["rulebook", str(rules), "-o", str(rules)],
    lambda t, src, rules: ["batch", str(t), "--rules", str(rules), "-o", str(t)],  # summary next to inputs
])
def test_every_writing_command_refuses_to_overwrite_what_it_reads(tmp_path, capsys, command):
    rules = _rules(tmp_path)
    source = _input(tmp_path, name="Zusammenfassung.xlsx")
    before = source.read_bytes(), rules.read_bytes()
    assert main(command(tmp_path, source, rules)) == ExitCode.REFUSED
    assert "[output-is-input]" in capsys.readouterr().err
    assert (source.read_bytes(), rules.read_bytes()) == before


def test_template_is_never_written_into_the_register(capsys, isolated_register):
    isolated_register.mkdir(parents=True, exist_ok=True)
    assert main(["template", str(isolated_register / "vorlage.xlsx")]) == ExitCode.REFUSED
    assert "[output-in-register]" in capsys.readouterr().err


# --------------------------------------------------------------------------- one final run per installation


def test_regression_second_final_run_in_another_output_folder_is_refused(tmp_path, capsys, isolated_register):
    source = _input(tmp_path)
    first, second = tmp_path / "a" / "echtlauf.xlsx", tmp_path / "b" / "echtlauf.xlsx"
    first.parent.mkdir()
    second.parent.mkdir()
    assert main(["run", str(source), "--rules", str(RULES), "-o", str(first), "--mode", "final"]) == ExitCode.OK
    # the district's file and the installation's chain (and the lock, a dot file)
    assert sorted(p.name for p in isolated_register.iterdir() if not p.name.startswith(".")) == [
        "_kette.jsonl", "wesel-2022.jsonl"]
    assert not (first.parent / "register").exists()
    capsys.readouterr()
    code = main(["run", str(source), "--rules", str(RULES), "-o", str(second), "--mode", "final", "--json"])
    assert code == ExitCode.REFUSED
    assert [p["code"] for p in _problems(capsys)] == ["register-final-exists"]
    assert not second.exists()
    # another spelling of the same district is the same register
    other = _input(tmp_path, district="Landkreis WESEL", name="anders.xlsx")
    code = main(["run", str(other), "--rules", str(RULES), "-o", str(second), "--mode", "final"])
    assert code == ExitCode.REFUSED
    assert main(["run", str(source), "--rules", str(RULES), "-o", str(second), "--mode", "final",
                 "--supersede", "Korrektur nach Beschluss"]) == ExitCode.OK
    lines = (isolated_register / "wesel-2022.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2]


def test_register_location_explicit_then_environment_then_user_data(monkeypatch, tmp_path):
    from allocation.runs.register import installation_register

    monkeypatch.setenv("ALLOCATION_REGISTER", str(tmp_path / "env"))
    assert installation_register(tmp_path / "explicit") == tmp_path / "explicit"
    assert installation_register() == tmp_path / "env"
    monkeypatch.delenv("ALLOCATION_REGISTER")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert installation_register() == tmp_path / "xdg" / "allocation" / "register"


def test_a_register_file_from_before_is_found_under_its_old_name(tmp_path):
    from allocation.runs.register import check_final, register_path

    # a register of an earlier version: no chain, the file named by the slug of the un-normalised name
    old = tmp_path / "kreis-wesel-2022.jsonl"
    line = json.dumps({"seq": 1, "recorded_utc": "2022-03-31T10:00:00Z", "district": "Kreis Wesel", "year": 2022,
                       "output": "x.xlsx", "supersedes": None, "reason": None, "prev_sha256": "0" * 64}, sort_keys=True)
    old.write_text(line + "\n", encoding="utf-8")
    assert register_path(tmp_path, "kreis  WESEL", 2022) == old
    assert [p.code for p in check_final(tmp_path, "Landkreis Wesel", 2022, None)] == ["register-final-exists"]


# ----------------------------------------------------------------------------------------- web page


def test_names_only_run_records_no_folder_anywhere(tmp_path):
    from allocation.runs.pipeline import run

    work = tmp_path / "server" / "jobs" / "token"
    work.mkdir(parents=True)
    source = _input(work)
    output = work / "eingabe-probelauf.xlsx"
    run(source, RULES, output, record_paths="names")
    text = Path(str(output) + ".manifest.json").read_text(encoding="utf-8")
    for folder in (str(tmp_path), str(RULES.parent), os.getcwd()):
        assert folder not in text
    assert "working_directory" not in json.loads(text)
    cells = [str(value) for value in _protocol(output).values()]
    assert not any(str(tmp_path) in value or str(RULES.parent) in value or os.getcwd() in value for value in cells)


def test_names_only_problems_carry_no_folder(tmp_path):
    from allocation.runs.pipeline import run
    from allocation.core.problems import RuleFileError

    rules = _rules(tmp_path, district="Kreis Kleve")
    with pytest.raises(RuleFileError) as refused:
        run(_input(tmp_path), rules, tmp_path / "out.xlsx", record_paths="names")
    assert [p.location.file for p in refused.value.problems] == ["regeln.yaml"]
