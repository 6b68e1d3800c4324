"""The notices gate and what a notice must say (issue 24).

`notices` writes nothing unless `verify` confirms the run (README: exit 7, `notices-not-verified`): not when the
run's input has been moved away (verify finds no difference in any cell, only a missing file) and not when a
manifest field was forged and sealed again (only the manifest comparison finds it). Beside the gate: the quarterly
plan's due dates in the letter's text, a rule file's `notices.levies.<Umlage>.legal_basis` on the letter in place
of the levy's own, and Saarland change notices in whole euros (§ 25 KFAG, the SL state profile), each against
figures computed by hand in the comments.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from allocation.cli import main
from allocation.core.instalments import Schedule, change_plan
from allocation.core.problems import ExitCode
from allocation.rulefiles.rulebook import load_notice_settings
from allocation.runs.manifest import sealed
from workbooks import WESEL_RATES, WESEL_RULES, modified_copy

ALPEN = "05170004"
DATE = "2022-01-10"  # before the first due date of every plan below


def flat_text(pdf: Path) -> str:
    return re.sub(r"\s+", " ", "\n".join(page.extract_text() for page in PdfReader(pdf).pages))


def rules_variant(target: Path, *replacements: tuple[str, str]) -> Path:
    """A copy of the Kreis Wesel rule file with texts replaced (each must be there once)."""
    text = WESEL_RULES.read_text(encoding="utf-8")
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    target.write_text(text, encoding="utf-8")
    return target


def run(folder: Path, source: Path, rules: Path, name: str = "ergebnis.xlsx", *extra: str) -> Path:
    output = folder / name
    assert main(["run", str(source), "--rules", str(rules), "-o", str(output), "--register",
                 str(folder / "register"), *extra]) == 0
    return output


# ------------------------------------------------------------------------------------------------ the gate


def _input_moved(output: Path, source: Path) -> None:
    source.rename(source.with_name("woanders.xlsx"))


def _field_forged(output: Path, source: Path) -> None:
    manifest_file = Path(f"{output}.manifest.json")
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    manifest["totals_cents"][ALPEN]["total"] -= 100  # Alpen pays 1,00 € less, sealed again
    manifest_file.write_text(json.dumps(sealed(manifest), ensure_ascii=False), encoding="utf-8")


@pytest.mark.parametrize("damage, found", [(_input_moved, "nicht gefunden"),
                                           (_field_forged, "totals_cents.05170004.total")],
                         ids=["input-moved-away", "manifest-field-forged"])
def test_notices_refuse_a_run_verify_does_not_confirm_and_write_nothing(tmp_path, capsys, damage, found):
    pytest.importorskip("typst")
    source = tmp_path / "eingabe.xlsx"
    shutil.copyfile(WESEL_RATES, source)
    output = run(tmp_path, source, WESEL_RULES)
    damage(output, source)
    capsys.readouterr()
    target = tmp_path / "bescheide"
    assert main(["notices", str(output), "-o", str(target), "--date", DATE, "--register", str(tmp_path / "register"),
                 "--json"]) == ExitCode.VERIFY == 7
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert {p["code"] for p in problems} == {"notices-not-verified"}
    assert any(found in p["found"] for p in problems), problems
    assert problems[0]["location"]["file"] == f"{output}.manifest.json"
    assert not target.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".bescheide")]  # no temporary folder left


def test_a_workbook_replaced_between_verify_and_reading_is_refused(tmp_path, capsys, monkeypatch):
    """verify confirms the run, then (before `notices` reads it) the workbook and its manifest are swapped for
    another run's pair: the pair agrees with itself, so only the comparison with the manifest verify confirmed
    finds that the bytes read are not those verify confirmed: exit 7, nothing written."""
    pytest.importorskip("typst")
    from allocation.ops import notices

    output = run(tmp_path, WESEL_RATES, WESEL_RULES)
    (tmp_path / "anders").mkdir()  # another run under the same file name, as its manifest must name it
    other = run(tmp_path / "anders", modified_copy(WESEL_RATES, tmp_path / "anders.xlsx",
                                                    rates={"kreisumlage": 36.7}), WESEL_RULES)
    confirm = notices._verify

    def confirm_then_swap(path, register_dir=None):
        result = confirm(path, register_dir)
        assert result.identical
        shutil.copyfile(other, output)  # replaced after the check, with a manifest that matches it
        shutil.copyfile(f"{other}.manifest.json", f"{output}.manifest.json")
        return result

    monkeypatch.setattr(notices, "_verify", confirm_then_swap)
    capsys.readouterr()
    target = tmp_path / "bescheide"
    assert main(["notices", str(output), "-o", str(target), "--date", DATE, "--register", str(tmp_path / "register"),
                 "--json"]) == ExitCode.VERIFY
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "notices-not-verified" and "ersetzt" in problem["message"]
    assert not target.exists()


def test_a_change_notice_leaves_out_a_levy_a_member_pays_neither_before_nor_now(tmp_path):
    """Dinslaken has its own Jugendamt: no Jugendamtsumlage in either run (0,00 € in the fixture's Uebersicht).
    A higher Kreisumlage rate changes its Kreisumlage only, so its change notice lists that levy and not the
    Jugendamtsumlage (0 € before, 0 € now: no change to notify)."""
    pytest.importorskip("typst")
    dinslaken = "05170008"
    earlier = run(tmp_path, WESEL_RATES, WESEL_RULES, "frueher.xlsx")
    later = run(tmp_path, modified_copy(WESEL_RATES, tmp_path / "hoeher.xlsx", rates={"kreisumlage": 36.7}),
                WESEL_RULES, "ergebnis.xlsx")
    target = tmp_path / "aenderung"
    assert main(["notices", str(later), "-o", str(target), "--date", "2022-06-20", "--previous", str(earlier),
                 "--register", str(tmp_path / "register"), "--ags", dinslaken]) == 0
    with open(target / "Abschlaege.csv", encoding="utf-8-sig", newline="") as stream:
        levies = {row["Umlage"] for row in csv.DictReader(stream, delimiter=";")}
    assert levies == {"Kreisumlage"}
    text = flat_text(next(target.glob(f"{dinslaken}_*.pdf")))
    assert "Kreisumlage" in text and "Jugendamtsumlage" not in text


# ---------------------------------------------------------------------------- quarterly plan, legal basis

OWN_BASIS = "§ 56 Abs. 1 KrO NRW; Haushaltssatzung des Kreises Wesel 2022/2023"  # the rule file's `levies:`
NOTICE_BASIS = "§ 56 Abs. 1 und 3 KrO NRW; Haushaltssatzung 2022/2023, Bekanntmachung vom 31.03.2022"


@pytest.fixture(scope="module")
def quarterly_letter(tmp_path_factory) -> str:
    """Alpen's notice from a rule file with a quarterly plan (the default dates) and a legal basis of its own
    for the Kreisumlage's notices."""
    pytest.importorskip("typst")
    folder = tmp_path_factory.mktemp("quartal")
    rules = rules_variant(folder / "regeln.yaml",
                          ("instalments: {schedule: monthly, day: 15}", "instalments: {schedule: quarterly}"),
                          ("    Kreisumlage:\n      approval:",
                           f'    Kreisumlage:\n      legal_basis: "{NOTICE_BASIS}"\n      approval:'))
    output = run(folder, WESEL_RATES, rules)
    assert main(["notices", str(output), "-o", str(folder / "bescheide"), "--date", DATE, "--ags", ALPEN,
                 "--register", str(folder / "register")]) == 0
    return flat_text(folder / "bescheide" / "05170004_Alpen.pdf")


def test_a_quarterly_notice_names_its_four_due_dates(quarterly_letter):
    # `schedule: quarterly` without dates: 15 February, May, August and November
    assert "in Abschlägen vierteljährlich zum 15.02., 15.05., 15.08., 15.11. zu zahlen" in quarterly_letter
    # Alpen's Kreisumlage 9.829.906,19 € = 982.990.619 Cent / 4 = 245.747.654 Rest 3:
    # 2.457.476,55 € on 15.02., 15.05. and 15.08., 2.457.476,54 € on 15.11.
    for figure in ("15.02.2022", "15.05.2022", "15.08.2022", "15.11.2022", "2.457.476,55 €", "2.457.476,54 €"):
        assert figure in quarterly_letter, figure
    assert "15.03.2022" not in quarterly_letter  # no monthly date


def test_the_rule_files_notice_legal_basis_replaces_the_levys_own(quarterly_letter):
    assert f"Rechtsgrundlage: {NOTICE_BASIS}" in quarterly_letter
    assert OWN_BASIS not in quarterly_letter


# ------------------------------------------------------------------------------------------------ Saarland


def saarland_rules(target: Path) -> Path:
    """The Kreis Wesel rules under the Saarland's law, without a plan of their own: the state profile's applies."""
    return rules_variant(target, ("instalments: {schedule: monthly, day: 15}\n", ""), ("state: NW", "state: SL"))


def test_the_saarland_profile_gives_monthly_instalments_on_the_20th_in_whole_euros(tmp_path):
    settings = load_notice_settings(saarland_rules(tmp_path / "regeln.yaml"))
    assert settings.schedule == Schedule.monthly(20, "saarland")
    assert settings.schedule_basis == "§ 25 Abs. 1 und 2 KFAG"


def test_a_saarland_change_is_spread_in_whole_euros_by_hand():
    schedule = Schedule.monthly(20, "saarland")
    # old 9.829.906,19 €: rounded down to a full euro amount divisible by 12: 9.829.896 € = 12 × 819.158 €
    # new 9.965.678,38 €: 9.965.676 € = 12 × 830.473 €; difference 135.780 €
    # notice of 25.05.2022: January–May are due (20th of each month), June–December open (7 instalments)
    # 135.780 € / 7 = 19.397 € rest 1 € → June 19.398 €, July–December 19.397 € (in cents it would be
    # 19.397,15 € twice and 19.397,14 €: never on a Saarland notice)
    plan = change_plan(982_990_619, 996_567_838, schedule, 2022, dt.date(2022, 5, 25))
    assert (plan.old_amount, plan.new_amount) == (982_989_600, 996_567_600)
    assert [(line.number, line.due, line.old, line.new, line.already_due) for line in plan.lines] == \
        [(n, dt.date(2022, n, 20), 81_915_800, 81_915_800, True) for n in range(1, 6)] + \
        [(6, dt.date(2022, 6, 20), 81_915_800, 83_855_600, False)] + \
        [(n, dt.date(2022, n, 20), 81_915_800, 83_855_500, False) for n in range(7, 13)]
    assert sum(line.new for line in plan.lines) == 996_567_600


def test_a_saarland_reduction_is_spread_in_whole_euros_by_hand():
    # the change back: 9.965.676 € (12 × 830.473 €) to 9.829.896 €, −135.780 € on June–December:
    # −19.398 € in June, −19.397 € after → 811.075 € and 811.076 €; 5 × 830.473 + 811.075 + 6 × 811.076 = 9.829.896
    plan = change_plan(996_567_838, 982_990_619, Schedule.monthly(20, "saarland"), 2022, dt.date(2022, 5, 25))
    assert [(line.number, line.old, line.new) for line in plan.lines] == \
        [(n, 83_047_300, 83_047_300) for n in range(1, 6)] + [(6, 83_047_300, 81_107_500)] + \
        [(n, 83_047_300, 81_107_600) for n in range(7, 13)]


def test_saarland_change_notices_show_the_hand_computed_plan(tmp_path):
    pytest.importorskip("typst")
    rules = saarland_rules(tmp_path / "regeln.yaml")
    old = run(tmp_path, WESEL_RATES, rules, "ergebnis.xlsx")
    raised = modified_copy(WESEL_RATES, tmp_path / "aenderung.xlsx", rates={"kreisumlage": 36.7})
    new = run(tmp_path, raised, rules, "ergebnis-neu.xlsx")
    assert main(["notices", str(new), "-o", str(tmp_path / "aenderung"), "--date", "2022-05-25", "--previous",
                 str(old), "--ags", ALPEN, "--register", str(tmp_path / "register")]) == 0
    rows = list(load_workbook(tmp_path / "aenderung" / "Abschlaege.xlsx", read_only=True)["Abschlaege"]
                .iter_rows(values_only=True))
    lines = [dict(zip(rows[0], row)) for row in rows[1:]]
    assert {(r["AGS"], r["Umlage"]) for r in lines} == {(ALPEN, "Kreisumlage")}  # the Jugendamtsumlage is unchanged
    # the plan of test_a_saarland_change_is_spread_in_whole_euros_by_hand: 27.154.437 € × 36,20 % and × 36,70 %
    assert [(r["Nr"], r["Faellig"].date(), Decimal(str(r["Bisher"])), Decimal(str(r["Betrag"])),
             Decimal(str(r["Aenderung"])), r["Status"]) for r in lines] == \
        [(n, dt.date(2022, n, 20), 819_158, 819_158, 0, "bereits fällig") for n in range(1, 6)] + \
        [(6, dt.date(2022, 6, 20), 819_158, 838_556, 19_398, "offen")] + \
        [(n, dt.date(2022, n, 20), 819_158, 838_555, 19_397, "offen") for n in range(7, 13)]
    text = flat_text(tmp_path / "aenderung" / "05170004_Alpen_Aenderung.pdf")
    for figure in ("9.829.896,00 €", "9.965.676,00 €", "135.780,00 €", "838.556,00 €", "838.555,00 €", "20.06.2022",
                   "§ 25 Abs. 2 KFAG"):
        assert figure in text, figure
