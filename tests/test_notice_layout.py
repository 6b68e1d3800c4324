"""The default notice template's tables on paper (issue 22): what a reader sees on each page, for the layouts the
Kreis Wesel data do not reach (found by the adversarial pass on the template's tables as lines of boxes).

The data are a real notice's (Alpen, Probelauf of the 2022 fixture) with its instalments or levies multiplied; the
template is compiled directly, as the notices' child compiles it, and each page's text is read back. Expected
texts are the synthetic values written here.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import pytest

typst = pytest.importorskip("typst", reason="notices need typst: pip install -e '.[test]'")
from pypdf import PdfReader  # noqa: E402

from allocation.cli import main  # noqa: E402
from allocation.ops.notices import DATA_FILE, _no_break, _rule_levies, build_notices, read_result  # noqa: E402
from allocation.rulefiles.rulebook import load_notice_settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "allocation" / "ops" / "notice_templates" / "default"
RULES = ROOT / "rules" / "kreis-wesel.yaml"
AMOUNT = "1.111.111,11 €"


@pytest.fixture(scope="module")
def alpen(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("layout")
    out = folder / "probe.xlsx"
    assert main(["run", str(ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"), "--rules", str(RULES),
                 "-o", str(out)]) == 0
    notices = build_notices(read_result(out), load_notice_settings(RULES), dt.date(2022, 1, 10),
                            rule_levies=_rule_levies(RULES))
    return next(data for _, data, _ in notices if data["ags"] == "05170004")


def pages(data: dict, folder: Path) -> list[str]:
    work = folder / "vorlage"  # as the child compiles: a copy of the template with the letter's data file in it
    shutil.copytree(TEMPLATE, work, dirs_exist_ok=True)
    (work / DATA_FILE).write_text(json.dumps(_no_break(data), ensure_ascii=False), encoding="utf-8")
    pdf = typst.Compiler(str(work / "bescheid.typ"), root=str(work)).compile(format="pdf")
    path = folder / "bescheid.pdf"
    path.write_bytes(pdf)
    return [re.sub(r"[ \t\u00a0]+", " ", page.extract_text()) for page in PdfReader(path).pages]


def lowest_amounts(data: dict, folder: Path, amount: str) -> list[float]:
    """Per page, the lowest baseline (points above the paper's bottom edge) of a text holding `amount`."""
    pages(data, folder)
    lowest = []
    for page in PdfReader(folder / "bescheid.pdf").pages:
        seen: list[float] = []
        page.extract_text(visitor_text=lambda text, cm, tm, font, size: seen.append(tm[5] * cm[3] + cm[5])
                          if amount in text else None)
        lowest.append(min(seen) if seen else float("inf"))
    return lowest


def change_rows(levies: list[str]) -> list[dict]:
    return [{"levy": levy, "nr": month, "due": f"15.{month:02d}.2022", "old": "198.699,65 €",
             "difference": "+1.234,56 €", "amount": "199.934,21 €", "status": "offen"}
            for levy in levies for month in range(1, 13)]


def test_a_change_table_over_pages_repeats_its_header_on_each(alpen, tmp_path):
    """Three levies changed: 36 rows, more than a page; every page that shows rows of the table shows its header,
    and all 36 rows are there."""
    levies = ["Kreisumlage", "Jugendamtsumlage", "Schulumlage"]
    text = pages(dict(alpen, change=True, instalments=change_rows(levies), policy="spread"), tmp_path)
    with_rows = [page for page in text if "199.934,21" in page]
    assert len(with_rows) >= 2
    for page in with_rows:
        assert "bisher" in page and "Änderung" in page and "Status" in page
    assert sum(page.count("199.934,21 €") for page in text) == 36


def test_a_levy_with_a_very_long_name_keeps_every_row_on_the_paper(alpen, tmp_path):
    """A levy named in 330 characters (its name wraps to many lines per row): the table breaks across pages with
    its header instead of one block running off the page; every row's amount is on some page."""
    name = "Mehrbelastung nach § 56 Abs. 4 KrO NRW für die Einrichtungen des Kreises " * 5
    data = dict(alpen, change=True, instalments=change_rows([name.strip()])[:8], policy="spread")
    text = pages(data, tmp_path)
    assert sum(page.count("199.934,21 €") for page in text) == 8
    for page in (page for page in text if "199.934,21" in page):
        assert "bisher" in page
    # on the paper: no row below the bottom margin (25 mm = 70.9 pt), where the footer stands and the page ends
    assert min(lowest_amounts(data, tmp_path, "199.934,21")) > 25 / 25.4 * 72


def test_seven_levies_stand_in_groups_of_four_and_no_amount_runs_into_the_next(alpen, tmp_path):
    names = ["Kreisumlage", "Mehrbelastungsumlage", "Jugendamtsumlage", "Schulumlage", "Rettungsdienstumlage",
             "ÖPNV-Umlage", "Sonderumlage"]
    # a row: 7 × 1,111,111.11 € = 7,777,777.77 €; a levy's year: 12 × 1,111,111.11 € = 13,333,333.32 €; all:
    # 12 × 7,777,777.77 € = 93,333,333.24 €
    rows = [[str(month), f"15.{month:02d}.2022"] + [AMOUNT] * 7 + ["7.777.777,77 €"] for month in range(1, 13)]
    plan = dict(alpen["plan"], levies=names, rows=rows, totals=["13.333.333,32 €"] * 7,
                kassenzeichen=[[name, "KU-1"] for name in names])
    text = "\n".join(pages(dict(alpen, plan=plan, total="93.333.333,24 €"), tmp_path))
    assert text.count(AMOUNT) == 7 * 12
    assert text.count("13.333.333,32 €") == 7 and text.count("7.777.777,77 €") == 12
    assert text.count("93.333.333,24 €") == 1
    assert not re.search(r"€\d", text)  # an amount overlapping the next one reads as one word
    assert text.count("Nr. Fällig") == 2  # two groups: four levies, then three and the sum


def test_a_levy_stays_on_one_page_with_its_heading(alpen, tmp_path):
    """Seven levy sections (each a heading and its figures): on every page, each Umlagesoll has its Umlagebetrag
    (no levy's figures split over a page break)."""
    levies = [dict(levy, name=f"Umlage {number}") for number in range(7) for levy in alpen["levies"][:1]]
    text = pages(dict(alpen, levies=levies), tmp_path)
    assert len(text) >= 2
    def count(pattern: str, page: str) -> int:
        return len(re.findall(pattern, page))

    for page in text:  # the figures' rows, not the explanation below them ("Der Umlagebetrag ist Ihr Anteil …")
        assert count(r"Umlagesoll \(", page) == count(r"Umlagebetrag [\d.,]+ €", page)
    assert sum(count(r"Umlagebetrag [\d.,]+ €", page) for page in text) == 7


def test_a_large_sum_keeps_its_euro_sign_and_one_payer_is_one(alpen, tmp_path):
    """A Landschaftsverband's sum (566,814,814.68 €) does not break before its "€" (read back as one piece with a
    no-break space); a levy with one payer says so in the singular."""
    levies = [dict(alpen["levies"][0], payers=1)]
    data = dict(alpen, levies=levies, change=True, instalments=change_rows(["Landschaftsumlage"])[:1],
                total="566.814.814,68 €", policy="spread")
    path = tmp_path / "raw"
    path.mkdir()
    pages(data, path)
    raw = "\n".join(page.extract_text() for page in PdfReader(path / "bescheid.pdf").pages)
    assert "566.814.814,68\u00a0€" in raw
    assert "Umlagesoll (1 umlagepflichtiges Mitglied)" in "\n".join(pages(data, tmp_path))
