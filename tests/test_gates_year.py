"""`year status` finds every change of a stage, and the order of stages holds at its edges (issue 24).

A year folder of Kreis Wesel 2022 with two stages (`modell`, `entwurf`) of the small corpus input, copied fresh
for each test. Each of the four files a stage line records (input copy, rule file copy, output, manifest) is
changed in turn; then the chain of manifests is broken: a line's `prev_manifest_sha256` edited and sealed again,
and stage 1 rewritten together with its line and the chain linked again, so that only stage 2's link to the
manifest before it can tell. Every one must be `year-stage-changed` (README: exit 7), located at the stage folder
and naming the file or the link. Order: going back exactly one stage, `abrechnung` and `aenderung-1` without
`satzung` are `year-stage-order` (exit 8).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from allocation.cli import main
from allocation.core.filenames import sha256_file
from allocation.ops.year import order_problems
from allocation.runs.manifest import sealed
from allocation.runs.readback import line_hash
from workbooks import SMALL_INPUT, SMALL_RULES, year_with_stage

CHAIN = "stufen.jsonl"
CHANGED_LINK = "die Verkettung mit dem Manifest der vorigen Stufe stimmt nicht"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    folder = year_with_stage(tmp_path_factory.mktemp("jahr") / "jahr", "modell")
    assert main(["year", "stage", str(folder), "entwurf", str(SMALL_INPUT), "--rules", str(SMALL_RULES)]) == 0
    return folder


@pytest.fixture
def folder(pristine, tmp_path) -> Path:
    copy = tmp_path / "jahr"
    shutil.copytree(pristine, copy)
    return copy


def status(folder: Path, capsys) -> tuple[int, list[dict]]:
    capsys.readouterr()
    code = main(["year", "status", str(folder), "--json"])
    return code, json.loads(capsys.readouterr().out)["problems"]


def chain_lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / CHAIN).read_text(encoding="utf-8").splitlines()]


def write_chain(folder: Path, entries: list[dict]) -> None:
    """The chain written as `year stage` writes it: each line sorted, sealed and linked to the one before."""
    lines, previous = [], "0" * 64
    for entry in entries:
        line = json.dumps(sealed(entry | {"prev_sha256": previous}), ensure_ascii=False, sort_keys=True)
        lines.append(line)
        previous = line_hash(line)
    (folder / CHAIN).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def resealed_manifest(path: Path, change) -> None:
    manifest = json.loads(path.read_text(encoding="utf-8"))
    change(manifest)
    path.write_text(json.dumps(sealed(manifest), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def test_the_untouched_copy_is_in_order(folder, capsys):
    assert status(folder, capsys) == (0, [])


# the four files of stage 1 (`01-modell`) as the chain records them, and how each is changed
FILES = {
    "Eingabe": "01-modell/gueltig.xlsx",
    "Regeldatei": "01-modell/regeln.yaml",
    "Ergebnis": "01-modell/ergebnis-modell.xlsx",
    "Manifest": "01-modell/ergebnis-modell.xlsx.manifest.json",
}


@pytest.mark.parametrize("label", list(FILES))
def test_a_changed_file_of_a_stage_is_year_stage_changed(folder, capsys, label):
    path = folder / FILES[label]
    if label == "Manifest":  # a manifest edited and sealed again: it still reads as a manifest
        resealed_manifest(path, lambda manifest: manifest.update(payable_cents=manifest["payable_cents"] + 1))
    elif label == "Regeldatei":
        path.write_text(path.read_text(encoding="utf-8") + "# ergänzt\n", encoding="utf-8")
    else:
        path.write_bytes(path.read_bytes() + b"\0")
    code, problems = status(folder, capsys)
    assert code == 7
    assert [(p["code"], p["location"]["file"]) for p in problems] == [("year-stage-changed", str(folder / "01-modell"))]
    assert problems[0]["found"] == f"{label} {FILES[label]} wurde verändert (SHA-256 weicht ab)"
    assert problems[0]["message"].startswith('Stufe 1 "modell": ')


def test_a_stage_line_linked_to_another_manifest_is_year_stage_changed(folder, capsys):
    first, second = chain_lines(folder)
    write_chain(folder, [first, second | {"prev_manifest_sha256": "ab" * 32}])
    code, problems = status(folder, capsys)
    assert code == 7
    assert [(p["code"], p["location"]["file"], p["found"]) for p in problems] == [
        ("year-stage-changed", str(folder / "02-entwurf"), CHANGED_LINK)]


def test_a_stage_rewritten_with_its_line_is_found_by_the_next_stages_link(folder, capsys):
    # stage 1's manifest changed and sealed again, its hash written into line 1, line 1 sealed and line 2 linked to
    # it again: every file hash and every line link fits; only stage 2's prev_manifest_sha256 remembers
    manifest = folder / FILES["Manifest"]
    resealed_manifest(manifest, lambda record: record.update(payable_cents=record["payable_cents"] + 1))
    first, second = chain_lines(folder)
    first["manifest"] = first["manifest"] | {"sha256": sha256_file(manifest)}
    write_chain(folder, [first, second])
    code, problems = status(folder, capsys)
    assert code == 7
    assert [(p["code"], p["location"]["file"], p["found"]) for p in problems] == [
        ("year-stage-changed", str(folder / "02-entwurf"), CHANGED_LINK)]


def test_a_stage_manifest_of_another_district_is_year_stage_changed(folder, capsys):
    # the last stage's manifest rewritten for Kreis Kleve, its hash written into its line: the hashes fit, the
    # district does not
    manifest = folder / "02-entwurf" / "ergebnis-entwurf.xlsx.manifest.json"
    resealed_manifest(manifest, lambda record: record["parameters"].update(district="Kreis Kleve"))
    first, second = chain_lines(folder)
    write_chain(folder, [first, second | {"manifest": second["manifest"] | {"sha256": sha256_file(manifest)}}])
    code, problems = status(folder, capsys)
    assert code == 7
    assert [(p["code"], p["location"]["file"], p["found"]) for p in problems] == [
        ("year-stage-changed", str(folder / "02-entwurf"),
         "die Stufe gehört zu Kreis Kleve 2022, das Umlagejahr (jahr.json) zu Kreis Wesel 2022")]


# ----------------------------------------------------------------------------------------------- order


def _codes(done: list[str], name: str) -> list[tuple[str, str]]:
    return [(p.code, p.message) for p in order_problems(Path("jahr"), [{"stage": s} for s in done], name, None)]


def test_going_back_exactly_one_stage_is_refused():
    assert _codes(["modell", "entwurf"], "benehmen") == [
        ("year-stage-order", 'Die Stufe "benehmen" liegt vor der zuletzt gerechneten Stufe "entwurf"')]
    assert _codes(["satzung"], "entwurf") == [
        ("year-stage-order", 'Die Stufe "entwurf" liegt vor der zuletzt gerechneten Stufe "satzung"')]
    # the same stage again is no step back (it needs a reason, like every repetition)
    assert [code for code, _ in _codes(["entwurf"], "entwurf")] == ["year-stage-repeated"]
    assert _codes(["modell", "entwurf"], "satzung") == []  # forward, skipping nothing


def test_settlement_and_change_need_the_statute():
    assert _codes(["modell", "entwurf"], "abrechnung") == [
        ("year-stage-order", 'Die Stufe "abrechnung" setzt die Stufe "satzung" voraus')]
    assert _codes(["entwurf"], "aenderung-1") == [
        ("year-stage-order", 'Die Stufe "aenderung-1" setzt die Stufe "satzung" voraus')]
    assert _codes(["entwurf", "satzung"], "abrechnung") == []
    assert _codes(["satzung", "aenderung-1"], "abrechnung") == []


def test_the_command_refuses_a_step_back_and_writes_nothing(folder, capsys):
    before = (folder / CHAIN).read_bytes()
    capsys.readouterr()
    assert main(["year", "stage", str(folder), "benehmen", str(SMALL_INPUT), "--rules", str(SMALL_RULES),
                 "--json"]) == 8
    assert [p["code"] for p in json.loads(capsys.readouterr().out)["problems"]] == ["year-stage-order"]
    assert (folder / CHAIN).read_bytes() == before
    assert not (folder / "03-benehmen").exists()


def test_the_command_refuses_a_settlement_without_statute(folder, capsys):
    capsys.readouterr()
    assert main(["year", "stage", str(folder), "abrechnung", str(SMALL_INPUT), "--rules", str(SMALL_RULES),
                 "--json"]) == 8
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [(p["code"], p["expected"]) for p in problems] == [("year-stage-order", "satzung")]
    assert not (folder / "03-abrechnung").exists()


# ------------------------------------------------------------------------------- jahr.json and the register


def test_a_jahr_json_written_again_for_the_same_district_and_year_breaks_the_chain(folder, capsys):
    """jahr.json replaced by another one of the same district and year (a new `created_utc`, sealed again): the
    stage lines are bound to the old file's SHA-256, so the chain no longer belongs to it (exit 7)."""
    record = json.loads((folder / "jahr.json").read_text(encoding="utf-8"))
    record["created_utc"] = "2030-01-01T00:00:00Z"
    (folder / "jahr.json").write_text(json.dumps(sealed(record), ensure_ascii=False, indent=2), encoding="utf-8")
    code, problems = status(folder, capsys)
    assert code == 7
    assert [p["code"] for p in problems] == ["year-chain-broken"]
    assert "jahr.json wurde verändert" in problems[0]["message"] + str(problems[0]["found"])


def test_status_looks_up_a_final_stage_in_the_register(tmp_path, capsys):
    """A final stage must be in the register `status` is given: against a register that holds another final run
    of Kreis Wesel 2022 but not this stage's, the stage is reported (exit 7)."""
    register, other = tmp_path / "register", tmp_path / "anderes-register"
    folder = tmp_path / "jahr"
    assert main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", "2022"]) == 0
    assert main(["year", "stage", str(folder), "satzung", str(SMALL_INPUT), "--rules", str(SMALL_RULES), "--register",
                 str(register)]) == 0
    assert main(["run", str(SMALL_INPUT), "--rules", str(SMALL_RULES), "-o", str(tmp_path / "e.xlsx"), "--mode",
                 "final", "--register", str(other)]) == 0
    capsys.readouterr()
    assert main(["year", "status", str(folder), "--register", str(register), "--json"]) == 0
    capsys.readouterr()
    assert main(["year", "status", str(folder), "--register", str(other), "--json"]) == 7
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert any("Eintrag Nr. 1" in p["message"] + str(p["found"]) for p in problems), problems


def test_a_stage_line_that_names_another_stages_folder_breaks_the_chain(folder, capsys):
    """Stage 2's line rewritten to name stage 1's folder and files (sealed and chained again): a line's folder is
    `NN-stage` of its own number and stage, so the chain is broken at that line (exit 7)."""
    first, second = chain_lines(folder)
    moved = {key: value for key, value in second.items() if key not in ("seal", "prev_sha256")}
    moved["folder"] = first["folder"]
    for kind in ("input", "rules", "output", "manifest"):
        moved[kind] = first[kind]
    write_chain(folder, [first, moved])
    code, problems = status(folder, capsys)
    assert code == 7 and [p["code"] for p in problems] == ["year-chain-broken"]
    assert "Ordner '01-modell' statt 02-entwurf" in problems[0]["message"] + str(problems[0]["found"])


def test_a_stage_refuses_a_rules_folder_and_a_blank_reason(tmp_path, capsys):
    folder = year_with_stage(tmp_path / "jahr", "modell")
    capsys.readouterr()
    assert main(["year", "stage", str(folder), "entwurf", str(SMALL_INPUT), "--rules", str(SMALL_RULES.parent),
                 "--json"]) == 8
    assert [p["code"] for p in json.loads(capsys.readouterr().out)["problems"]] == ["year-rules-folder"]
    assert main(["year", "stage", str(folder), "modell", str(SMALL_INPUT), "--rules", str(SMALL_RULES), "--supersede",
                 "   ", "--json"]) == 8
    assert [p["code"] for p in json.loads(capsys.readouterr().out)["problems"]] == ["year-empty-reason"]
    assert [entry["stage"] for entry in chain_lines(folder)] == ["modell"]


def test_status_names_a_final_stage_the_register_holds_but_the_chain_lacks(tmp_path, capsys):
    register = tmp_path / "register"
    folder = tmp_path / "jahr"
    assert main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", "2022"]) == 0
    assert main(["year", "stage", str(folder), "satzung", str(SMALL_INPUT), "--rules", str(SMALL_RULES), "--register",
                 str(register)]) == 0
    (folder / CHAIN).write_text("", encoding="utf-8")  # the chain emptied: the register still holds the stage
    capsys.readouterr()
    assert main(["year", "status", str(folder), "--register", str(register), "--json"]) == 7
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert any("Das Register hält den Echtlauf der Stufe satzung" in p["message"] + str(p["found"])
               for p in problems), problems


@pytest.mark.parametrize("year, accepted", [(1900, True), (2999, True), (1899, False), (3000, False)])
def test_year_init_takes_budget_years_1900_to_2999(tmp_path, capsys, year, accepted):
    folder = tmp_path / "jahr"
    code = main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", str(year), "--json"])
    if accepted:
        assert code == 0 and (folder / "jahr.json").is_file()
    else:
        assert code == 8
        assert [p["code"] for p in json.loads(capsys.readouterr().out)["problems"]] == ["year-bad-parameter"]
        assert not folder.exists()


def test_year_init_refuses_a_folder_that_holds_files(tmp_path, capsys):
    folder = tmp_path / "jahr"
    folder.mkdir()
    (folder / "notiz.txt").write_text("schon da", encoding="utf-8")
    capsys.readouterr()
    assert main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", "2022", "--json"]) == 8
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "year-exists" and problem["found"] == "notiz.txt"
    assert sorted(p.name for p in folder.iterdir()) == ["notiz.txt"]


def test_a_stage_line_with_another_number_breaks_the_chain(folder, capsys):
    first, second = chain_lines(folder)
    renumbered = {key: value for key, value in second.items() if key not in ("seal", "prev_sha256")} | {"seq": 3}
    write_chain(folder, [first, renumbered])
    code, problems = status(folder, capsys)
    assert code == 7 and [p["code"] for p in problems] == ["year-chain-broken"]
    assert "seq 3 statt 2" in problems[0]["message"] + str(problems[0]["found"])
