"""Hostile inputs against their budget: every category is answered within 5 s and 300 MB, never a traceback.

Each case builds the worst file of its category (workbooks up to the web page's upload limit, 20 MB by
default; rule files up to the documented size limit), runs the real command line in a child process and
reports wall time, CPU time and the child's peak RSS (from `os.wait4`), its exit code and whether stderr
holds a traceback. The baseline in the same run is `allocation run` on the Kreis Wesel fixture, so the
ratios say how much more a hostile file costs than an ordinary district. A case still running after
`--kill-after` seconds is killed and reported as over budget.

Run: python benchmarks/bench_hostile.py [--kill-after 60] [--only NAME]
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_cli_child, table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"
BUDGET_SECONDS = 5.0
BUDGET_MB = 300.0
UPLOAD_LIMIT = 20 * 1024 * 1024  # the web page's default max_upload_mb

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


# ------------------------------------------------------------------------------------------ workbooks


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _sheet_part(members: dict[str, bytes], sheet: str) -> str:
    """The zip member of a sheet by its name (workbook.xml + rels)."""
    import re

    workbook = members["xl/workbook.xml"].decode()
    rels = members["xl/_rels/workbook.xml.rels"].decode()
    rid = re.search(rf'<sheet [^>]*name="{sheet}"[^>]*r:id="([^"]+)"', workbook).group(1)
    target = re.search(rf'<Relationship [^>]*Id="{rid}"[^>]*Target="([^"]+)"', rels) or \
        re.search(rf'<Relationship [^>]*Target="([^"]+)"[^>]*Id="{rid}"', rels)
    path = target.group(1).lstrip("/")
    return path if path.startswith("xl/") else "xl/" + path


def _pack(members: dict[str, bytes], path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _edit_sheet(path: Path, sheet: str, edit) -> Path:
    members = _members(FIXTURE.read_bytes())
    part = _sheet_part(members, sheet)
    members[part] = edit(members[part].decode()).encode()
    return _pack(members, path)


def wide_dimension(path: Path) -> Path:
    """A sheet that declares itself 16,384 columns × 1,048,576 rows wide while holding the usual cells."""
    import re

    return _edit_sheet(path, "Gemeinden", lambda xml: re.sub(r'<dimension ref="[^"]*"/>',
                                                              '<dimension ref="A1:XFD1048576"/>', xml))


def cell_at_xfd(path: Path) -> Path:
    """A number cell at XFD (the last column Excel has) in every row of Gemeinden and in 90,000 further rows:
    a reader that pads rows to the used width would build 1.5 billion cells."""
    import re

    def edit(xml: str) -> str:
        xml = re.sub(r'<row r="(\d+)"([^>]*)>(.*?)</row>',
                     lambda m: f'<row r="{m.group(1)}"{m.group(2)}>{m.group(3)}<c r="XFD{m.group(1)}"><v>1</v></c></row>',
                     xml, flags=re.S)
        rows = "".join(f'<row r="{r}"><c r="XFD{r}"><v>1</v></c></row>' for r in range(100, 90_100))
        return xml.replace("</sheetData>", rows + "</sheetData>")

    return _edit_sheet(path, "Gemeinden", edit)


def stray_rows(path: Path) -> Path:
    """A stray cell far below the data (row 99,999) and a row element at 1,048,576."""
    return _edit_sheet(path, "Kostenpositionen", lambda xml: xml.replace(
        "</sheetData>", '<row r="99999"><c r="A99999" t="inlineStr"><is><t>x</t></is></c></row>'
                        '<row r="1048576"><c r="B1048576"><v>1</v></c></row></sheetData>'))


def many_rows(path: Path) -> Path:
    """100,000 empty-but-present row elements with one cell each below the data (up to the upload limit)."""
    rows = "".join(f'<row r="{r}"><c r="Z{r}"><v>0</v></c></row>' for r in range(40, 100_040))
    return _edit_sheet(path, "Kostenpositionen", lambda xml: xml.replace("</sheetData>", rows + "</sheetData>"))


def shared_strings(path: Path) -> Path:
    """A shared-string table of distinct strings filling the upload limit (compressed)."""
    members = _members(FIXTURE.read_bytes())
    import random

    rng = random.Random(7)
    strings = []
    size = 0
    while size < UPLOAD_LIMIT * 0.9:  # random text barely compresses
        text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(40))
        strings.append(f"<si><t>{text}</t></si>")
        size += 42
    existing = members.get("xl/sharedStrings.xml", b"").decode()
    if "<sst" in existing:
        head, _, rest = existing.partition("<si>")
        members["xl/sharedStrings.xml"] = (head + "".join(strings) + "<si>" + rest).encode() if rest else \
            existing.replace("</sst>", "".join(strings) + "</sst>").encode()
    else:
        members["xl/sharedStrings.xml"] = (f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{_MAIN}">'
                                           + "".join(strings) + "</sst>").encode()
    return _pack(members, path)


def huge_styles(path: Path) -> Path:
    """200,000 cell formats in styles.xml."""
    members = _members(FIXTURE.read_bytes())
    xml = members["xl/styles.xml"].decode()
    extra = '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>' * 200_000
    import re

    xml = re.sub(r'<cellXfs count="\d+">', '<cellXfs count="200001">', xml, count=1)
    xml = xml.replace("</cellXfs>", extra + "</cellXfs>", 1)
    members["xl/styles.xml"] = xml.encode()
    return _pack(members, path)


def odd_numbers(path: Path) -> Path:
    """NaN, INF, 1e308 and a 39-digit integer in number cells of Kostenpositionen."""
    import re

    values = iter(["NaN", "INF", "1e308", "123456789012345678901234567890123456789"])

    def edit(xml: str) -> str:
        def replace(match):
            value = next(values, None)
            return match.group(0) if value is None else f"{match.group(1)}<v>{value}</v>"
        return re.sub(r'(<c r="D[2-5]"[^>]*>)<v>[^<]*</v>', replace, xml)

    return _edit_sheet(path, "Kostenpositionen", edit)


# ------------------------------------------------------------------------------------------ rule files


def alias_bomb(path: Path) -> Path:
    """A billion-laughs rule file of about 500 bytes: each level refers to the previous one nine times."""
    lines = ["district: Kreis Wesel", "valid_from: 2022", "valid_to: 2023", "a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append("rules: *a9")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def deep_nesting(path: Path) -> Path:
    """A condition nested 5,000 levels deep (`not: {not: ...}`)."""
    condition = "{Kategorie: KIM}"
    for _ in range(5000):
        condition = "{not: " + condition + "}"
    path.write_text("district: Kreis Wesel\nvalid_from: 2022\nvalid_to: 2023\nrules:\n  - id: deep\n"
                    "    legal_basis: x\n    route: district_levy\n    when: " + condition + "\n", encoding="utf-8")
    return path


def many_priority_rules(path: Path, count: int = 10_000) -> Path:
    """`count` rules under `hit_policy: priority` (each on its own Stellen value), plus a catch-all."""
    parts = ["district: Kreis Wesel", "valid_from: 2022", "valid_to: 2023", "hit_policy: priority", "rules:",
             "  - {id: rest, legal_basis: x, route: district_levy, when: {}, priority: 0}"]
    for i in range(count):
        parts.append(f"  - {{id: r{i}, legal_basis: x, route: district_levy, when: {{Stellen: {i}}}, "
                     f"priority: {i + 1}}}")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ the runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-after", type=float, default=60.0)
    parser.add_argument("--only", default=None, help="run only the cases whose name contains this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        out = str(tmp / "out.xlsx")
        rules = str(RULES)
        fifo = tmp / "eingabe-fifo.xlsx"
        os.mkfifo(fifo)
        cases = [
            ("baseline: Kreis Wesel run", ["run", str(FIXTURE), "--rules", rules, "-o", out]),
            ("workbook: declared A1:XFD1048576", ["run", str(wide_dimension(tmp / "wide.xlsx")), "--rules", rules,
                                                  "-o", out]),
            ("workbook: cells at XFD in 90,000 rows", ["run", str(cell_at_xfd(tmp / "xfd.xlsx")), "--rules", rules, "-o", out]),
            ("workbook: stray rows 99,999 / 1,048,576", ["run", str(stray_rows(tmp / "stray.xlsx")), "--rules",
                                                         rules, "-o", out]),
            ("workbook: 100,000 sparse rows", ["run", str(many_rows(tmp / "rows.xlsx")), "--rules", rules,
                                               "-o", out]),
            ("workbook: 20 MB shared strings", ["run", str(shared_strings(tmp / "sst.xlsx")), "--rules", rules,
                                                "-o", out]),
            ("workbook: 200,000 cell formats", ["run", str(huge_styles(tmp / "styles.xlsx")), "--rules", rules,
                                                "-o", out]),
            ("workbook: NaN / INF / 1e308 / 39 digits", ["run", str(odd_numbers(tmp / "numbers.xlsx")), "--rules",
                                                         rules, "-o", out]),
            ("input: /dev/zero", ["run", "/dev/zero", "--rules", rules, "-o", out]),
            ("input: a FIFO nobody writes", ["run", str(fifo), "--rules", rules, "-o", out]),
            ("input: a directory", ["run", str(tmp), "--rules", rules, "-o", out]),
            ("output: a directory", ["run", str(FIXTURE), "--rules", rules, "-o", str(tmp)]),
            ("rules: YAML alias bomb", ["check", str(alias_bomb(tmp / "aliases.yaml"))]),
            ("rules: 5,000-deep nesting", ["check", str(deep_nesting(tmp / "deep.yaml"))]),
            ("rules: 500 priority rules, the most allowed (check)",
             ["check", str(many_priority_rules(tmp / "limit.yaml", 499))]),
            ("rules: 500 priority rules, the most allowed (run)", ["run", str(FIXTURE), "--rules",
                                                                   str(tmp / "limit.yaml"), "-o", out]),
            ("rules: 10,000 priority rules (check)", ["check", str(many_priority_rules(tmp / "many.yaml"))]),
            ("rules: 10,000 priority rules (run)", ["run", str(FIXTURE), "--rules", str(tmp / "many.yaml"),
                                                    "-o", out]),
            ("cli: rate --need 1e999999999", ["rate", "--need", "1e999999999", "--base", "1"]),
        ]
        rows = []
        baseline = None
        for name, argv in cases:
            if args.only and args.only not in name and not name.startswith("baseline"):
                continue
            result = run_cli_child(argv, args.kill_after, tmp)
            if baseline is None:
                baseline = result
            ok = (result["exit"] != "killed" and result["wall"] <= BUDGET_SECONDS and result["rss"] <= BUDGET_MB
                  and not result["traceback"] and result["exit"] not in (1,))
            rows.append([name, result["exit"], f"{result['wall']:.2f}", f"{result['cpu']:.2f}",
                         f"{result['rss']:.0f}", f"{result['wall'] / baseline['wall']:.1f}x",
                         "yes" if result["traceback"] else "no", "ok" if ok else "OVER BUDGET / FAILED"])
    table(["case", "exit", "wall s", "CPU s", "peak RSS MB", "wall / baseline", "traceback",
           f"budget {BUDGET_SECONDS:.0f} s, {BUDGET_MB:.0f} MB"], rows)


if __name__ == "__main__":
    main()
