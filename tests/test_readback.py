"""What the product wrote comes back through one checked reader (`runs.readback`): one regression test per defect
the hostile colleague of the issue found, each failing on the code before it.

- a forged manifest's `output.file` made `verify` and `notices` write their replay anywhere;
- a register cut short, edited, emptied or missing its last line let the next final run pass, and a test run then
  overwrote the final workbook;
- a year folder with a changed stage file, a deleted line or an edited district took new stages;
- `benehmen --previous` took another district's output, one of the same year or an edited one;
- `verify` passed a re-signed workbook with a row height of 0, a white font or a conditional format `;;;`.
Expected values are written here by hand (codes, exit codes, the hashes computed with hashlib from the files).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.cli import main
from allocation.core.problems import ExitCode
from allocation.runs.manifest import sealed
from workbooks import ROOT, SMALL_INPUT as INPUT, SMALL_RULES as RULES, WESEL_RATES as WESEL, WESEL_RULES
from workbooks import problem_codes as _codes, resigned_copy, run_cli as _run, year_with_stage

CORPUS = ROOT / "tests" / "corpus"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------- paths of a manifest never write


def _forge_output_file(output: Path, victim: Path) -> None:
    manifest_file = Path(f"{output}.manifest.json")
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    manifest["output"]["file"] = "../" * 30 + str(victim).lstrip("/")  # from any temporary folder to the victim
    manifest_file.write_text(json.dumps(sealed(manifest)), encoding="utf-8")  # sealed again, as a forger would


def test_regression_a_forged_output_file_never_makes_verify_write_there(tmp_path, capsys):
    output = tmp_path / "lauf" / "ergebnis.xlsx"
    assert _run(output) == 0
    victim = tmp_path / "fremd" / "wichtig.txt"
    victim.parent.mkdir()
    victim.write_text("bleibt, wie es ist", encoding="utf-8")
    _forge_output_file(output, victim)
    capsys.readouterr()
    assert main(["verify", str(output), "--json"]) == ExitCode.VERIFY
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "malformed"
    assert [(p["code"], p["message"]) for p in report["problems"]] == [
        ("manifest-bad-value", 'Manifest: Schlüssel "output.file" hat einen unzulässigen Wert')]
    assert victim.read_text(encoding="utf-8") == "bleibt, wie es ist"
    assert sorted(p.name for p in victim.parent.iterdir()) == ["wichtig.txt"]


def test_regression_a_forged_output_file_never_makes_notices_write_there(tmp_path, capsys):
    pytest.importorskip("typst")
    output = tmp_path / "lauf" / "ergebnis.xlsx"
    assert _run(output, source=WESEL, rules=WESEL_RULES) == 0
    victim = tmp_path / "fremd" / "wichtig.txt"
    victim.parent.mkdir()
    victim.write_text("bleibt", encoding="utf-8")
    _forge_output_file(output, victim)
    capsys.readouterr()
    assert main(["notices", str(output), "-o", str(tmp_path / "bescheide"), "--json"]) == ExitCode.VERIFY
    assert "notices-not-verified" in _codes(capsys)
    assert victim.read_text(encoding="utf-8") == "bleibt" and not (tmp_path / "bescheide").exists()


def test_the_replay_writes_only_into_its_private_folder_under_a_fixed_name(tmp_path, monkeypatch):
    from allocation.ops import verify as verify_module
    from allocation.runs import pipeline

    output = tmp_path / "ergebnis.xlsx"
    assert _run(output) == 0
    written = []
    original = pipeline.replay
    monkeypatch.setattr(pipeline, "replay",
                        lambda manifest, path, *rest: written.append(Path(path)) or original(manifest, path, *rest))
    assert verify_module.verify(output).identical
    assert [p.name for p in written] == ["nachrechnung.xlsx"]
    assert written[0].parent.name.startswith("allocation-verify-") and not written[0].exists()


def test_a_manifest_nested_without_end_is_a_located_problem_not_a_recursion_error(tmp_path, capsys):
    output = tmp_path / "ergebnis.xlsx"
    assert _run(output) == 0
    Path(f"{output}.manifest.json").write_text("[" * 100_000 + "]" * 100_000, encoding="ascii")
    capsys.readouterr()
    assert main(["verify", str(output), "--json"]) == ExitCode.VERIFY
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "manifest-too-large" and problem["location"]["line"] == 1
    assert problem["location"]["col"] == 33  # the 33rd bracket is the first beyond the 32 levels


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_a_fifo_as_manifest_never_blocks_verify(tmp_path):
    output = tmp_path / "ergebnis.xlsx"
    assert _run(output) == 0
    manifest = Path(f"{output}.manifest.json")
    manifest.unlink()
    os.mkfifo(manifest)
    done = subprocess.run([sys.executable, "-m", "allocation", "verify", str(output), "--json"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert done.returncode == ExitCode.VERIFY
    assert [p["code"] for p in json.loads(done.stdout)["problems"]] == ["manifest-unreadable"]


# ------------------------------------------------------------------------------------------- the register


@pytest.fixture
def final(tmp_path, isolated_register) -> Path:
    output = tmp_path / "echtlauf.xlsx"
    assert _run(output, "--mode", "final") == 0
    return output


def _register_file(register: Path) -> Path:
    (path,) = [p for p in register.glob("*-2022.jsonl")]
    return path


def _damage_cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-40])


def _damage_edit_last_line(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert '"reason": "Korrektur"' in lines[-1]
    lines[-1] = lines[-1].replace('"reason": "Korrektur"', '"reason": "Korrektue"')
    path.write_text("".join(lines), encoding="utf-8")


def _damage_empty(path: Path) -> None:
    path.write_bytes(b"")


def _damage_delete_last_line(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-1]), encoding="utf-8")


def _damage_remove(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize("damage", [_damage_cut, _damage_edit_last_line, _damage_empty, _damage_delete_last_line,
                                    _damage_remove], ids=["cut", "edited", "emptied", "last-line-deleted", "removed"])
def test_regression_a_damaged_register_stops_the_next_final_run_and_every_writing_command(
        final, isolated_register, tmp_path, capsys, damage):
    # the first final run wrote its line; the second final run (superseding it) is the one that must stop
    assert _run(tmp_path / "zweiter.xlsx", "--mode", "final", "--supersede", "Korrektur") == 0
    damage(_register_file(isolated_register))
    capsys.readouterr()
    third = tmp_path / "dritter.xlsx"
    assert _run(third, "--mode", "final", "--supersede", "noch einmal", "--json") == ExitCode.REFUSED
    assert _codes(capsys) == ["register-corrupt"]
    assert not third.exists() and not Path(f"{third}.manifest.json").exists()
    # a test run (any command that writes) stops too: which files the register protects is unknown now
    assert _run(tmp_path / "probe.xlsx", "--json") == ExitCode.REFUSED
    assert _codes(capsys) == ["register-corrupt"]


def test_regression_a_test_run_never_replaces_a_final_workbook_whatever_the_register_says(
        final, isolated_register, capsys):
    before = _sha(final)
    # the register is gone entirely (also its chain): only the manifest beside the workbook still says "final"
    shutil.rmtree(isolated_register)
    capsys.readouterr()
    assert _run(final, "--json") == ExitCode.REFUSED
    assert _codes(capsys) == ["output-is-final-run"]
    assert _sha(final) == before


def test_verify_reports_a_final_run_whose_register_entry_is_gone(final, isolated_register, tmp_path, capsys):
    second = tmp_path / "zweiter.xlsx"
    assert _run(second, "--mode", "final", "--supersede", "Korrektur") == 0
    assert main(["verify", str(second)]) == 0
    _damage_delete_last_line(_register_file(isolated_register))
    _damage_delete_last_line(isolated_register / "_kette.jsonl")  # consistently: the chain lost it too
    capsys.readouterr()
    assert main(["verify", str(second), "--json"]) == ExitCode.VERIFY
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "different" and len(report["register"]) == 1
    assert "Eintrag Nr. 2" in report["register"][0] and "fehlt im Register" in report["register"][0]
    assert main(["verify", str(final)]) == 0  # the first final run is still there


def test_register_unusable_place_is_exit_9_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    place = tmp_path / "register-als-datei"
    place.write_text("keine Registerdatei", encoding="utf-8")
    monkeypatch.setenv("ALLOCATION_REGISTER", str(place))
    for mode in ("test", "final"):
        output = tmp_path / f"{mode}.xlsx"
        assert _run(output, "--mode", mode, "--json") == ExitCode.OUTPUT
        assert _codes(capsys) == ["register-unusable"]
        assert not output.exists()
    assert place.read_text(encoding="utf-8") == "keine Registerdatei"
    assert main(["register", "status"]) == ExitCode.OUTPUT  # and says what is there instead of a folder
    assert f"{place} ist eine gewöhnliche Datei, kein Ordner" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_a_fifo_in_the_register_folder_is_register_corrupt(final, isolated_register, tmp_path, capsys):
    os.mkfifo(isolated_register / "wesel-2099.jsonl")
    capsys.readouterr()
    assert _run(tmp_path / "probe.xlsx", "--json") == ExitCode.REFUSED
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "register-corrupt" and problem["location"]["file"].endswith("wesel-2099.jsonl")


def test_several_final_runs_at_once_register_exactly_one_and_the_others_leave_nothing(tmp_path, isolated_register):
    outputs = [tmp_path / f"lauf-{n}" / "echtlauf.xlsx" for n in range(4)]
    for output in outputs:
        output.parent.mkdir()
    runs = [subprocess.Popen([sys.executable, "-m", "allocation", "run", str(INPUT), "--rules", str(RULES), "-o",
                              str(output), "--mode", "final", "--register", str(isolated_register)], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for output in outputs]
    codes = [run.wait(timeout=300) for run in runs]
    assert sorted(codes) == [0, ExitCode.REFUSED, ExitCode.REFUSED, ExitCode.REFUSED]
    for code, output in zip(codes, outputs):
        assert sorted(p.name for p in output.parent.iterdir()) == (
            ["echtlauf.xlsx", "echtlauf.xlsx.manifest.json"] if code == 0 else [])
    lines = _register_file(isolated_register).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1


def test_the_chain_head_is_printed_by_the_final_run_and_register_status(tmp_path, isolated_register, capsys):
    empty_head = "0" * 64  # what register status prints before any final run (the start of every chain)
    assert main(["register", "status"]) == 0
    assert f"Kettenkopf (für das Protokoll): {empty_head}" in capsys.readouterr().out
    assert _run(tmp_path / "a.xlsx", "--mode", "final") == 0
    printed = capsys.readouterr().out
    chain = (isolated_register / "_kette.jsonl").read_text(encoding="utf-8").splitlines()
    first_head = hashlib.sha256(chain[-1].encode("utf-8")).hexdigest()
    assert "Echtlauf" in printed and f"Kettenkopf (für das Protokoll): {first_head}" in printed
    assert _run(tmp_path / "b.xlsx", "--mode", "final", "--supersede", "Korrektur") == 0
    chain = (isolated_register / "_kette.jsonl").read_text(encoding="utf-8").splitlines()
    head = hashlib.sha256(chain[-1].encode("utf-8")).hexdigest()
    capsys.readouterr()
    assert main(["register", "status", "--json", "--expect-head", first_head]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["head"], status["chain_links"], status["expected_head_position"]) == (head, 2, 1)
    (district,) = status["files"]
    assert (district["runs"], district["in_force"]["seq"], district["in_force"]["reason"]) == (2, 2, "Korrektur")
    assert main(["register", "status", "--expect-head", "ab" * 32]) == ExitCode.VERIFY
    assert "[register-head-unknown]" in capsys.readouterr().err
    # the head noted from the empty register is no alarm after runs: it is where every chain starts
    assert main(["register", "status", "--json", "--expect-head", empty_head]) == 0
    assert json.loads(capsys.readouterr().out)["expected_head_position"] == 0


def test_a_register_of_an_earlier_version_is_adopted_into_the_chain(tmp_path, isolated_register):
    isolated_register.mkdir(parents=True)
    old = {"seq": 1, "recorded_utc": "2022-03-31T10:00:00Z", "district": "Kreis Wesel", "year": 2022,
           "output": "alt.xlsx", "output_sha256": "c" * 64, "supersedes": None, "reason": None, "prev_sha256": "0" * 64}
    line = json.dumps(old, sort_keys=True)
    (isolated_register / "wesel-2022.jsonl").write_text(line + "\n", encoding="utf-8")
    assert _run(tmp_path / "neu.xlsx", "--mode", "final", "--supersede", "neu gerechnet") == 0
    chain = [json.loads(x) for x in (isolated_register / "_kette.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(c["n"], c["seq"], c.get("adopted", False)) for c in chain] == [(1, 1, True), (2, 2, False)]
    assert chain[0]["sha256"] == hashlib.sha256(line.encode("utf-8")).hexdigest()


# -------------------------------------------------------------------------------------------- year folders


@pytest.fixture
def year_folder(tmp_path) -> Path:
    return year_with_stage(tmp_path / "jahr", "modell")


def _next_stage(folder: Path, capsys) -> int:
    capsys.readouterr()
    return main(["year", "stage", str(folder), "benehmen", str(INPUT), "--rules", str(RULES), "--json"])


def test_regression_a_changed_stage_file_stops_the_next_stage(year_folder, capsys):
    copy = year_folder / "01-modell" / "gueltig.xlsx"
    copy.write_bytes(copy.read_bytes() + b"\0")
    assert _next_stage(year_folder, capsys) == ExitCode.VERIFY
    assert _codes(capsys) == ["year-stage-changed"]
    assert not (year_folder / "02-benehmen").exists()


def test_regression_a_deleted_line_leaves_an_orphan_and_stops_the_next_stage(year_folder, capsys):
    (year_folder / "stufen.jsonl").write_text("", encoding="utf-8")  # the only line deleted
    assert main(["year", "status", str(year_folder)]) == ExitCode.VERIFY
    assert "Stufenordner 01-modell steht nicht in der Kette" in capsys.readouterr().out
    assert _next_stage(year_folder, capsys) == ExitCode.VERIFY
    assert _codes(capsys) == ["year-stage-changed"]


def test_regression_an_edited_district_in_the_year_record_stops_the_next_stage(year_folder, capsys):
    record = year_folder / "jahr.json"
    record.write_text(record.read_text(encoding="utf-8").replace("Kreis Wesel", "Kreis Kleve"), encoding="utf-8")
    assert _next_stage(year_folder, capsys) == ExitCode.VERIFY
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "year-chain-broken" and problem["location"]["file"] == str(record)  # its seal
    # sealed again, as a deliberate editor would: every stage line is bound to the record it was written under
    record.write_text(json.dumps(sealed(json.loads(record.read_text(encoding="utf-8")))), encoding="utf-8")
    assert _next_stage(year_folder, capsys) == ExitCode.VERIFY
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "year-chain-broken" and problem["location"]["line"] == 1
    assert "jahr.json wurde verändert" in problem["message"]


def test_a_stage_line_naming_a_file_outside_its_folder_is_never_read(year_folder, capsys):
    chain = year_folder / "stufen.jsonl"
    entry = json.loads(chain.read_text(encoding="utf-8"))
    entry["input"]["file"] = "../../../../etc/passwd"  # the line's own hash link still holds: it is the first
    chain.write_text(json.dumps(entry, sort_keys=True) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["year", "status", str(year_folder), "--json"]) == ExitCode.VERIFY
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "year-chain-broken" and "01-modell" in problem["message"]


# ----------------------------------------------------------------------------------- earlier outputs: relations


@pytest.fixture(scope="module")
def wesel_outputs(tmp_path_factory) -> dict[str, Path]:
    """Test runs of the Wesel fixture with rates: 2022 (this year), 2021 (the previous year), and 2022 as
    another district (a model run), each with its manifest."""
    from workbooks import modified_copy

    folder = tmp_path_factory.mktemp("wesel")
    previous = modified_copy(WESEL, folder / "2021.xlsx", year=2021)  # Kleve below: 2021 too, only the district differs
    outputs = {"2022": folder / "ergebnis-2022.xlsx", "2021": folder / "ergebnis-2021.xlsx",
               "kleve": folder / "kleve" / "ergebnis-2022.xlsx"}
    assert _run(outputs["2022"], source=WESEL, rules=WESEL_RULES) == 0
    assert _run(outputs["2021"], "--ignore-validity", "Vorjahr", source=previous, rules=WESEL_RULES) == 0
    other = load_workbook(previous)
    for row in other["Parameter"].iter_rows():
        if row[0].value == "Kreis":
            row[1].value = "Kreis Kleve"
    outputs["kleve"].parent.mkdir()
    other.save(folder / "kleve" / "eingabe.xlsx")
    assert _run(outputs["kleve"], "--ignore-validity", "Modell", source=folder / "kleve" / "eingabe.xlsx",
                rules=WESEL_RULES) == 0
    return outputs


@pytest.mark.parametrize("previous, code", [("kleve", "benehmen-previous-mismatch"),
                                            ("2022", "benehmen-previous-mismatch")])
def test_regression_benehmen_refuses_another_district_or_the_same_year(wesel_outputs, tmp_path, capsys, previous,
                                                                        code):
    pytest.importorskip("typst")
    capsys.readouterr()
    target = tmp_path / "benehmen"
    assert main(["benehmen", str(WESEL), "--rules", str(WESEL_RULES), "--previous", str(wesel_outputs[previous]),
                 "-o", str(target), "--json"]) == ExitCode.INPUT
    assert _codes(capsys) == [code]
    assert not target.exists() or not any(target.iterdir())


def test_regression_benehmen_refuses_an_edited_previous_output(wesel_outputs, tmp_path, capsys):
    pytest.importorskip("typst")
    edited = tmp_path / "ergebnis-2021.xlsx"
    shutil.copy(wesel_outputs["2021"], edited)
    shutil.copy(f"{wesel_outputs['2021']}.manifest.json", f"{edited}.manifest.json")
    edited.write_bytes(edited.read_bytes() + b"\0")
    capsys.readouterr()
    assert main(["benehmen", str(WESEL), "--rules", str(WESEL_RULES), "--previous", str(edited),
                 "-o", str(tmp_path / "benehmen"), "--json"]) == ExitCode.VERIFY
    assert _codes(capsys) == ["output-changed"]


def test_compare_refuses_outputs_of_two_districts(wesel_outputs, tmp_path, capsys):
    capsys.readouterr()
    assert main(["compare", str(wesel_outputs["2022"]), str(wesel_outputs["kleve"]), "-o", str(tmp_path / "v.xlsx"),
                 "--json"]) == ExitCode.INPUT
    assert _codes(capsys) == ["compare-other-district"]


def test_trueup_refuses_a_superseded_final_run_and_names_the_one_in_force(tmp_path, capsys):
    first, second = tmp_path / "erster.xlsx", tmp_path / "zweiter.xlsx"
    assert _run(first, "--mode", "final") == 0
    assert _run(second, "--mode", "final", "--supersede", "neue Zahlen") == 0
    capsys.readouterr()
    assert main(["trueup", str(first), str(INPUT), "--rules", str(RULES), "-o", str(tmp_path / "a.xlsx"),
                 "--json"]) == ExitCode.INPUT
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "trueup-superseded" and "Nr. 2" in problem["message"] and str(second) in problem["message"]
    assert main(["trueup", str(second), str(INPUT), "--rules", str(RULES), "-o", str(tmp_path / "a.xlsx")]) == 0


def test_a_change_notice_refuses_a_municipality_that_would_be_dropped_silently(wesel_outputs, tmp_path, capsys):
    pytest.importorskip("typst")
    fewer = load_workbook(WESEL)
    sheet = fewer["Gemeinden"]
    gone = [c.value for c in sheet[sheet.max_row]][:2]
    sheet.delete_rows(sheet.max_row)
    keys = fewer["Schluessel"]  # the municipality's usage keys go with it
    for number in [r[0].row for r in keys.iter_rows(min_row=2) if r[1].value == gone[0]][::-1]:
        keys.delete_rows(number)
    fewer.save(tmp_path / "ohne.xlsx")
    output = tmp_path / "ergebnis-ohne.xlsx"
    assert _run(output, source=tmp_path / "ohne.xlsx", rules=WESEL_RULES) == 0
    capsys.readouterr()
    assert main(["notices", str(output), "-o", str(tmp_path / "bescheide"), "--previous", str(wesel_outputs["2022"]),
                 "--json"]) == ExitCode.INPUT
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "notices-municipality-missing" and problem["found"] == f"{gone[0]} {gone[1]}"
    assert not (tmp_path / "bescheide").exists()


# --------------------------------------------------------------------- verify compares every part of the package


@pytest.fixture(scope="module")
def signed_run(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("signiert") / "ergebnis.xlsx"
    assert _run(output) == 0
    return output


@pytest.mark.parametrize("part, old, new, where", [
    ("xl/worksheets/sheet1.xml", '<row r="3">', '<row r="3" ht="0" customHeight="1">', "Zeile 3"),
    ("xl/styles.xml", '<color theme="1"/>', '<color rgb="FFFFFFFF"/>', "color"),
    ("xl/worksheets/sheet1.xml", "<pageMargins", '<conditionalFormatting sqref="A1:Z200"><cfRule type="expression" '
     'dxfId="0" priority="1"><formula>TRUE</formula></cfRule></conditionalFormatting><pageMargins', "formula"),
], ids=["row-height-0", "white-font", "conditional-format"])
def test_regression_verify_finds_a_change_that_leaves_every_value_alone(signed_run, tmp_path, part, old, new, where):
    from allocation.ops.verify import verify

    edited = resigned_copy(signed_run, tmp_path / "ergebnis.xlsx", part, old, new)
    result = verify(edited)
    assert not result.identical
    assert result.differences == () and result.file_problems == () and result.field_differences == ()
    (difference,) = [d for d in result.package if part in d.cell]
    assert difference.aspect == "Paket" and where in difference.cell + str(difference.found)


def test_notices_and_benehmen_never_write_into_the_register(wesel_outputs, isolated_register, tmp_path, capsys):
    pytest.importorskip("typst")
    isolated_register.mkdir(parents=True, exist_ok=True)
    capsys.readouterr()
    assert main(["notices", str(wesel_outputs["2022"]), "-o", str(isolated_register / "bescheide"),
                 "--json"]) == ExitCode.REFUSED
    assert _codes(capsys) == ["output-in-register"]
    assert main(["benehmen", str(WESEL), "--rules", str(WESEL_RULES), "--previous", str(wesel_outputs["2021"]),
                 "-o", str(isolated_register / "benehmen"), "--json"]) == ExitCode.REFUSED
    assert _codes(capsys) == ["output-in-register"]
    assert list(isolated_register.iterdir()) == []


def test_a_final_stage_and_a_final_inbox_run_print_the_chain_head(tmp_path, isolated_register, capsys):
    folder = tmp_path / "jahr"
    assert main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", "2022"]) == 0
    capsys.readouterr()
    assert main(["year", "stage", str(folder), "satzung", str(INPUT), "--rules", str(RULES)]) == 0
    chain = (isolated_register / "_kette.jsonl").read_text(encoding="utf-8").splitlines()
    head = hashlib.sha256(chain[-1].encode("utf-8")).hexdigest()
    assert f"Kettenkopf (für das Protokoll): {head}" in capsys.readouterr().out
    inbox = tmp_path / "inbox"
    (inbox / "eingang").mkdir(parents=True)
    shutil.copy(CORPUS / "gueltig.xlsx", inbox / "eingang" / "b.xlsx")
    rules = tmp_path / "regeln"
    rules.mkdir()
    shutil.copy(RULES, rules / "regeln.yaml")
    capsys.readouterr()
    # the same bytes as the stage's input: the inbox supersedes its final run, saying so (inbox.same_bytes_again)
    assert main(["inbox", str(inbox), "--rules-dir", str(rules), "--mode", "final"]) == 0
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"inbox-file"' in x]
    chain = (isolated_register / "_kette.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(chain) == 2 and line["chain_head"] == hashlib.sha256(chain[-1].encode("utf-8")).hexdigest()
    status = json.loads((inbox / "ergebnis" / "b" / "status.json").read_text(encoding="utf-8"))
    assert status["chain_head"] == line["chain_head"]


# ------------------------------------------------------------------ regressions found by the tampered-artefact corpus


def test_regression_a_lone_surrogate_escape_read_back_is_refused_not_a_traceback(final, isolated_register, tmp_path,
                                                                               capsys):
    """`"\\ud800"` is valid JSON but no character: printed (verify's notes, `register status`) or used as a path (the
    overwrite guard) it ended in a UnicodeEncodeError, exit 1. Read back, it is text that is no UTF-8."""
    manifest_file = Path(f"{final}.manifest.json")
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    manifest["tool"]["allocation"] = "0.1\ud800"
    manifest_file.write_text(json.dumps(sealed(manifest)), encoding="ascii")  # the escape, sealed again
    capsys.readouterr()
    assert main(["verify", str(final), "--json"]) == ExitCode.VERIFY
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "manifest-unreadable" and "tool.allocation" in problem["message"]
    # a register of an earlier version (no chain) whose only line names an output "\ud800.xlsx"
    for path in isolated_register.glob("*.jsonl"):
        path.unlink()
    line = json.dumps({"seq": 1, "recorded_utc": "2022-03-31T10:00:00Z", "district": "Kreis Wesel", "year": 2022,
                       "output": "\ud800.xlsx", "output_sha256": "c" * 64, "supersedes": None, "reason": None,
                       "prev_sha256": "0" * 64}, sort_keys=True)
    (isolated_register / "wesel-2022.jsonl").write_text(line + "\n", encoding="ascii")
    for argv in (["register", "status", "--json"], ["run", str(INPUT), "--rules", str(RULES), "-o",
                                                    str(tmp_path / "probe.xlsx"), "--json"]):
        assert main(argv) == ExitCode.REFUSED
        (problem,) = json.loads(capsys.readouterr().out)["problems"]
        assert problem["code"] == "register-corrupt" and problem["location"]["line"] == 1
    assert not (tmp_path / "probe.xlsx").exists()


def test_regression_a_register_line_without_time_district_or_year_is_register_corrupt(final, isolated_register, tmp_path,
                                                                                      capsys):
    """A register of an earlier version (no chain) is checked by its links alone: a line without `recorded_utc` passed,
    and the next final run ended in a KeyError (exit 1) naming the final run that exists; one without district or
    year was adopted into the chain. No version of the product wrote such a line: it is `register-corrupt`."""
    for path in isolated_register.glob("*.jsonl"):
        path.unlink()
    line = json.dumps({"seq": 1, "prev_sha256": "0" * 64, "district": "Kreis Wesel", "year": 2022}, sort_keys=True)
    (isolated_register / "wesel-2022.jsonl").write_text(line + "\n", encoding="utf-8")
    capsys.readouterr()
    output = tmp_path / "echt.xlsx"
    assert _run(output, "--mode", "final", "--json") == ExitCode.REFUSED
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "register-corrupt" and problem["location"]["line"] == 1
    assert "recorded_utc" in problem["message"] and not output.exists()
    assert not (isolated_register / "_kette.jsonl").exists()  # nothing adopted


def test_regression_year_status_json_names_the_problem_codes_of_a_changed_year(year_folder, capsys):
    """`year status --json` of a changed year exited 7 with `"status": "changed"` and the findings as text, but
    without the problems and their codes that `--json` promises (docs/operations/exit-codes.md)."""
    copy = year_folder / "01-modell" / "gueltig.xlsx"
    copy.write_bytes(copy.read_bytes() + b"\0")
    (year_folder / "09-abrechnung").mkdir()
    capsys.readouterr()
    assert main(["year", "status", str(year_folder), "--json"]) == ExitCode.VERIFY
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "changed"
    assert [(p["code"], Path(p["location"]["file"]).name) for p in report["problems"]] == [
        ("year-stage-changed", "01-modell"), ("year-stage-changed", year_folder.name)]
    assert "09-abrechnung" in report["problems"][1]["message"]
    (year_folder / "09-abrechnung").rmdir()
    copy.write_bytes(copy.read_bytes()[:-1])
    assert main(["year", "status", str(year_folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["problems"] == []


@pytest.mark.parametrize("previous, key, value", [("2022", "year", 2021), ("kleve", "district", "Kreis Wesel")])
def test_regression_benehmen_takes_the_year_and_district_of_the_previous_workbook_not_of_an_edited_manifest(
        wesel_outputs, tmp_path, capsys, previous, key, value):
    """The year relation was checked against the manifest alone: the planned year's own output (or another
    district's), its manifest edited to the previous year (to Kreis Wesel) and sealed again, gave Benehmen letters
    comparing 2022 with 2022. The workbook's Protokoll still says what it is: `output-changed`, exit 7."""
    pytest.importorskip("typst")
    copy = tmp_path / "vorjahr" / "ergebnis.xlsx"
    copy.parent.mkdir()
    shutil.copy(wesel_outputs[previous], copy)
    manifest = json.loads(Path(f"{wesel_outputs[previous]}.manifest.json").read_text(encoding="utf-8"))
    manifest["parameters"][key] = value
    manifest["output"]["file"] = manifest["output"]["path"] = copy.name
    Path(f"{copy}.manifest.json").write_text(json.dumps(sealed(manifest)), encoding="utf-8")
    capsys.readouterr()
    target = tmp_path / "benehmen"
    assert main(["benehmen", str(WESEL), "--rules", str(WESEL_RULES), "--previous", str(copy), "-o", str(target),
                 "--date", "2022-01-17", "--json"]) == ExitCode.VERIFY
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert (problem["code"], problem["location"]["sheet"]) == ("output-changed", "Protokoll")
    assert not target.exists()


def test_regression_compare_takes_the_district_of_the_workbook_not_of_an_edited_manifest(wesel_outputs, tmp_path,
                                                                                         capsys):
    """Kreis Kleve's output with its manifest edited to Kreis Wesel and sealed again was compared with Wesel's:
    exit 0 and only a warning, where two districts are `compare-other-district`, exit 3."""
    copy = tmp_path / "kleve.xlsx"
    shutil.copy(wesel_outputs["kleve"], copy)
    manifest = json.loads(Path(f"{wesel_outputs['kleve']}.manifest.json").read_text(encoding="utf-8"))
    manifest["parameters"]["district"] = "Kreis Wesel"
    manifest["output"]["file"] = manifest["output"]["path"] = copy.name
    Path(f"{copy}.manifest.json").write_text(json.dumps(sealed(manifest)), encoding="utf-8")
    capsys.readouterr()
    written = tmp_path / "vergleich.xlsx"
    assert main(["compare", str(wesel_outputs["2022"]), str(copy), "-o", str(written), "--json"]) == ExitCode.VERIFY
    assert _codes(capsys) == ["output-changed"]
    assert not written.exists()
