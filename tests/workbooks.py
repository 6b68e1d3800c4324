"""Builds small input workbooks for tests with openpyxl, in the documented layout (independent of allocation/)."""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

from openpyxl import Workbook

MUNICIPALITY_HEADER = ["AGS", "Gemeinde", "Umlagegrundlagen"]
ITEM_HEADER = ["ID", "Bezeichnung", "Kategorie", "Personalkosten", "Sachkosten", "Gemeinkosten", "Foerderung",
               "Traeger"]


def write_input(path: Path, municipalities: Sequence[Sequence], items: Sequence[Sequence], *,
                municipality_extra: Sequence[str] = (), item_extra: Sequence[str] = (),
                keys: Iterable[Sequence] | None = None, district: str = "Testkreis", year: int = 2022,
                rounding: str = "Cent", parameters: Sequence[Sequence] | None = None,
                sheets: Sequence[str] = ("Parameter", "Gemeinden", "Kostenpositionen"),
                municipality_header: Sequence[str] | None = None, item_header: Sequence[str] | None = None) -> Path:
    workbook = Workbook()
    workbook.remove(workbook.active)
    if "Parameter" in sheets:
        sheet = workbook.create_sheet("Parameter")
        for row in parameters if parameters is not None else (
                ["Parameter", "Wert"], ["Kreis", district], ["Haushaltsjahr", year], ["Rundung", rounding]):
            sheet.append(list(row))
    if "Gemeinden" in sheets:
        sheet = workbook.create_sheet("Gemeinden")
        sheet.append(list(municipality_header or MUNICIPALITY_HEADER) + list(municipality_extra))
        for row in municipalities:
            sheet.append(list(row))
    if "Kostenpositionen" in sheets:
        sheet = workbook.create_sheet("Kostenpositionen")
        sheet.append(list(item_header or ITEM_HEADER) + list(item_extra))
        for row in items:
            sheet.append(list(row))
    if keys is not None:
        sheet = workbook.create_sheet("Schluessel")
        sheet.append(["ID", "AGS", "Wert"])
        for row in keys:
            sheet.append(list(row))
    workbook.save(path)
    return path


def write_rules(path: Path, rules_yaml: str, *, district: str = "Testkreis", hit_policy: str = "unique") -> Path:
    end = "" if rules_yaml.endswith("\n") else "\n"
    path.write_text(f"district: {district}\nvalid_from: 2020\nvalid_to: 2030\nhit_policy: {hit_policy}\n"
                    f"rules:\n{rules_yaml}{end}state: NW\n", encoding="utf-8")
    return path


def read_sheet(path: Path, name: str) -> list[dict]:
    """Rows of an output sheet as dicts keyed by header (values as openpyxl reads them)."""
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True)
    rows = list(workbook[name].iter_rows(values_only=True))
    workbook.close()
    header = rows[0]
    return [dict(zip(header, row)) for row in rows[1:]]


def modified_copy(source: Path, target: Path, *, rates: dict[str, float] | None = None,
                  bases: dict[str, int] | None = None, year: int | None = None, district: str | None = None,
                  rounding: str | None = None) -> Path:
    """A copy of an input workbook with other `Umlagesaetze` rates (levy id -> percent) and/or other
    `Umlagegrundlagen` (AGS -> euros) and/or another Haushaltsjahr, Kreis or Rundung, for the stages of a levy
    year and for inputs of another district."""
    from openpyxl import load_workbook

    workbook = load_workbook(source)
    for row in workbook["Umlagesaetze"].iter_rows(min_row=2) if rates else ():
        if row[0].value in rates:
            row[2].value = rates[row[0].value]
    header = [cell.value for cell in workbook["Gemeinden"][1]]
    base_column = header.index("Umlagegrundlagen")
    for row in workbook["Gemeinden"].iter_rows(min_row=2):
        if bases and row[0].value in bases:
            row[base_column].value = bases[row[0].value]
    changed = {"Haushaltsjahr": year, "Kreis": district, "Rundung": rounding}
    for row in workbook["Parameter"].iter_rows():
        if changed.get(row[0].value) is not None:
            row[1].value = changed[row[0].value]
    workbook.save(target)
    return target


def resigned_copy(source: Path, target: Path, part: str, old: str, new: str) -> Path:
    """A copy of an output workbook with one text replaced in one XML part and its manifest re-signed (the new
    file's SHA-256, the manifest sealed again), as a deliberate editor would leave it: only the replay finds it."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == part:
                text = data.decode("utf-8")
                assert old in text
                data = text.replace(old, new, 1).encode("utf-8")
            zout.writestr(info, data)
    from allocation.runs.manifest import sealed

    manifest = json.loads(Path(f"{source}.manifest.json").read_text(encoding="utf-8"))
    manifest["output"]["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
    Path(f"{target}.manifest.json").write_text(json.dumps(sealed(manifest), ensure_ascii=False), encoding="utf-8")
    return target


# The small corpus input and its rule file (a run takes ~0.3 s), and the Kreis Wesel fixture with rates (notices,
# Benehmen): the bases of the tests of files read back (test_readback*.py).
ROOT = Path(__file__).resolve().parent.parent
SMALL_INPUT, SMALL_RULES = ROOT / "tests" / "corpus" / "gueltig.xlsx", ROOT / "tests" / "corpus" / "regeln.yaml"
WESEL_RATES = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022-hebesaetze.xlsx"
WESEL_RULES = ROOT / "rules" / "kreis-wesel.yaml"


def run_cli(output: Path, *extra: str, source: Path = SMALL_INPUT, rules: Path = SMALL_RULES) -> int:
    """`allocation run SOURCE --rules RULES -o OUTPUT EXTRA...` through the command line's main; its exit code."""
    from allocation.cli import main

    return main(["run", str(source), "--rules", str(rules), "-o", str(output), *extra])


def problem_codes(capsys) -> list[str]:
    """The problem codes of the JSON a command printed (`--json`)."""
    return [p["code"] for p in json.loads(capsys.readouterr().out)["problems"]]


def year_with_stage(folder: Path, stage: str) -> Path:
    """A year folder of Kreis Wesel 2022 (`year init`) with one stage of the small corpus input run in it."""
    from allocation.cli import main

    assert main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", "2022"]) == 0
    assert main(["year", "stage", str(folder), stage, str(SMALL_INPUT), "--rules", str(SMALL_RULES)]) == 0
    return folder
