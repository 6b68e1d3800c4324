"""The rule book: a golden file for the Kreis Wesel rules (reviewed by hand against rules/kreis-wesel.yaml),
HTML escaping of everything taken from a rule file, and the CLI choosing the format by suffix."""
from __future__ import annotations

from pathlib import Path

from allocation.cli import main
from allocation.rulebook import load_rulebook, parse_rulebook
from allocation.rulebook_doc import render_html, render_markdown, rule_sentence

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules" / "kreis-wesel.yaml"
GOLDEN = Path(__file__).resolve().parent / "golden"


def test_markdown_rule_book_of_kreis_wesel_matches_the_golden_file():
    book = load_rulebook(RULES)[0]
    assert render_markdown([book]) == (GOLDEN / "kreis-wesel-rulebook.md").read_text(encoding="utf-8")


def test_html_rule_book_of_kreis_wesel_matches_the_golden_file():
    book = load_rulebook(RULES)[0]
    assert render_html([book]) == (GOLDEN / "kreis-wesel-rulebook.html").read_text(encoding="utf-8")


def test_youth_office_sentence_names_payers_and_excluded_overheads():
    # Since issue 14 the payers belong to the levy `jugendamtsumlage` that the rule names (intended change).
    book = load_rulebook(RULES)[0]
    rule = book.rule("jugendamtsumlage")
    assert rule_sentence(rule, book.levy(rule.levy)) == (
        "Wenn Kategorie = „Jugendhilfe“ und Traeger = „Kreis“, zählt das Defizit (förderfähig: Personalkosten, "
        "Sachkosten; abzüglich Förderung) zum Umlagebedarf der Umlage „Jugendamtsumlage“ (jugendamtsumlage), "
        "erhoben auf die Gemeinden mit Jugendamt_Kreis = 1 nach Umlagegrundlagen.")


def test_sentence_of_a_differentiated_levy_rule_without_levies_is_unchanged():
    text = """district: K
valid_from: 2022
valid_to: 2022
rules:
  - {id: j, legal_basis: x, when: {Kategorie: Jugendhilfe}, route: differentiated_levy, payers: {Jugendamt_Kreis: 1}}
"""
    from allocation.rulebook import parse_rulebook

    rule = parse_rulebook(text, "k.yaml")[0].rule("j")
    assert rule_sentence(rule) == (
        "Wenn Kategorie = „Jugendhilfe“, wird das Defizit (förderfähig: Personalkosten, Sachkosten, Gemeinkosten; "
        "abzüglich Förderung) über eine differenzierte Umlage nur auf die Gemeinden mit Jugendamt_Kreis = 1 nach "
        "Umlagegrundlagen verteilt.")


HOSTILE = """district: "Kreis <b>&</b>"
valid_from: 2024
valid_to: 2024
rules:
  - id: x
    description: "<script>alert('x')</script>"
    legal_basis: "§ 1 & \\"2\\""
    when: {Kategorie: "<i>KIM</i>"}
    route: district_levy
examples:
  - item: {Kategorie: "<i>KIM</i>"}
    description: "<img src=x onerror=alert(1)>"
"""


def test_html_escapes_every_text_from_the_rule_file():
    book, _ = parse_rulebook(HOSTILE, "feindlich.yaml")
    page = render_html([book])
    for raw in ("<script>", "<b>", "<i>", "<img"):
        assert raw not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "Kreis &lt;b&gt;&amp;&lt;/b&gt;" in page
    assert "§ 1 &amp; &quot;2&quot;" in page


def test_cli_writes_html_or_markdown_by_suffix(tmp_path, capsys):
    assert main(["rulebook", str(RULES), "-o", str(tmp_path / "regelbuch.html")]) == 0
    assert (tmp_path / "regelbuch.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert main(["rulebook", str(RULES), "-o", str(tmp_path / "regelbuch.md")]) == 0
    assert (tmp_path / "regelbuch.md").read_text(encoding="utf-8").startswith("# Regelbuch")
    assert main(["rulebook", str(RULES), "-o", str(tmp_path / "r.txt"), "--format", "md"]) == 0
    assert (tmp_path / "r.txt").read_text(encoding="utf-8").startswith("# Regelbuch")
