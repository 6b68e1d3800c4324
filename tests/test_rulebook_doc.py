"""The rule book: a golden file for the Kreis Wesel rules (reviewed by hand against rules/kreis-wesel.yaml),
HTML escaping of everything taken from a rule file, and the CLI choosing the format by suffix.

The golden files (`tests/golden/kreis-wesel-rulebook.*`) were written by the implementation: they pin change, not
correctness. What a rule sentence must say is asserted by hand in the other tests here."""
from __future__ import annotations

import itertools
from pathlib import Path

from allocation.cli import main
from allocation.rulefiles.rulebook import load_rulebook, parse_rulebook
from allocation.rulefiles.rulebook_doc import render_html, render_markdown, rule_sentence

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
        "Wenn Kategorie = „Jugendhilfe“ und Traeger = „Kreis“, zählt das Defizit (förderfähig: Personalkosten und "
        "Sachkosten; abzüglich Förderung) zum Umlagebedarf der Umlage „Jugendamtsumlage“ (jugendamtsumlage), "
        "erhoben auf die Gemeinden mit Jugendamt_Kreis = 1 nach Umlagegrundlagen.")


def test_sentence_of_a_differentiated_levy_rule_without_levies_is_unchanged():
    text = """district: K
valid_from: 2022
valid_to: 2022
rules:
  - {id: j, legal_basis: x, when: {Kategorie: Jugendhilfe}, route: differentiated_levy, payers: {Jugendamt_Kreis: 1}}
"""
    from allocation.rulefiles.rulebook import parse_rulebook

    rule = parse_rulebook(text, "k.yaml")[0].rule("j")
    assert rule_sentence(rule) == (
        "Wenn Kategorie = „Jugendhilfe“, wird das Defizit (förderfähig: Personalkosten, Sachkosten und "
        "Gemeinkosten; abzüglich Förderung) über eine differenzierte Umlage nur auf die Gemeinden, für die "
        "Jugendamt_Kreis = 1 gilt, nach ihren Umlagegrundlagen verteilt.")


def test_rule_book_includes_the_file_description():
    book = load_rulebook(RULES)[0]
    # rules/kreis-wesel.yaml, top-level `description: >` (folded into one line)
    text = ("Finanzierung der Defizite gemeinsamer Leistungen des Kreises Wesel. Der Kreistag hat das Defizit des "
            "Kommunalen Integrationsmanagements (KIM) über die allgemeine Kreisumlage refinanziert.")
    assert f"\n{text}\n" in render_markdown([book])
    assert f"<p>{text}</p>" in render_html([book])


# ------------------------------------------------------------------ every route × parameter combination

DEFICIT_ALL = "das Defizit (förderfähig: Personalkosten, Sachkosten und Gemeinkosten; abzüglich Förderung)"
WHEN = {"{}": "Für jede Kostenposition ", "{Kategorie: X}": "Wenn Kategorie = „X“, "}
COMPONENTS = {None: DEFICIT_ALL, "[Personalkosten, Sachkosten]":
              "das Defizit (förderfähig: Personalkosten und Sachkosten; abzüglich Förderung)"}
PAYERS_ACC = {None: "auf alle Gemeinden", "{}": "auf alle Gemeinden (payers: {} wählt jede Gemeinde)",
              "{Jugendamt_Kreis: 1}": "nur auf die Gemeinden, für die Jugendamt_Kreis = 1 gilt,",
              "{any: []}": "auf keine Gemeinde (die payers-Bedingung ist nie erfüllt)"}
PAYERS_DAT = {None: "mit allen Gemeinden", "{}": "mit allen Gemeinden (payers: {} wählt jede Gemeinde)",
              "{Verbund: 1}": "nur mit den Gemeinden, für die Verbund = 1 gilt,"}
KEYS = {"Einwohner": "nach der Spalte Einwohner des Blatts Gemeinden",
        "Schluessel": "nach den Schlüsselwerten der Kostenposition im Blatt Schluessel",
        "{Linienminuten: 70, Wagenkm: 30}": "nach einem gewichteten Schlüssel aus 70 % Linienminuten und 30 % Wagenkm "
                                            "(jede Spalte im Verhältnis zu ihrer Summe über die zahlenden Gemeinden)"}
CREDIT = "; Gemeinden, die dieselbe Leistung (Spalte Leistung, sonst Kategorie) selbst als Trägerkommune tragen, " \
         "zahlen nicht mit (credit_hosts)"
CREDIT_SERVICE = "; Gemeinden, die die Leistung „Musikschule“ selbst als Trägerkommune tragen, zahlen nicht mit " \
                 "(credit_hosts)"


def _combinations():
    """(rule YAML fields, expected sentence), the expected sentence assembled from hand-written parts."""
    for when, components, credit, service in itertools.product(WHEN, COMPONENTS, (False, True), (None, "Musikschule")):
        tail = (CREDIT_SERVICE if service else CREDIT) if credit else ""
        end = f". Die Leistung heißt „{service}“ (service)." if service else "."
        common = {"when": when, "components": components, "credit_hosts": "true" if credit else None, "service": service}
        yield ({**common, "route": "district_levy"},
               f"{WHEN[when]}wird {COMPONENTS[components]} über die allgemeine Kreisumlage auf alle Gemeinden nach "
               f"ihren Umlagegrundlagen verteilt{tail}{end}")
        for payers, extent in itertools.product([p for p in PAYERS_ACC if p], (None, "Faktor")):
            basis = "ihren Umlagegrundlagen" if extent is None else \
                "ihren mit dem Mehr-/Minderbelastungsfaktor der Spalte Faktor vervielfachten Umlagegrundlagen"
            yield ({**common, "route": "differentiated_levy", "payers": payers, "extent": extent},
                   f"{WHEN[when]}wird {COMPONENTS[components]} über eine differenzierte Umlage {PAYERS_ACC[payers]} "
                   f"nach {basis} verteilt{tail}{end}")
        if credit:
            continue  # credit_hosts is a levy parameter only
        for key, payers in itertools.product(KEYS, PAYERS_DAT):
            yield ({**common, "route": "direct_billing", "key": key, "payers": payers},
                   f"{WHEN[when]}wird {COMPONENTS[components]} {PAYERS_DAT[payers]} direkt {KEYS[key]} abgerechnet{end}")
        yield ({**common, "route": "host_bears"},
               f"{WHEN[when]}trägt die Trägerkommune (die Gemeinde in Spalte Traeger) {COMPONENTS[components]} "
               f"selbst{end}")


def test_every_route_and_parameter_combination_reads_as_a_german_sentence():
    cases = list(_combinations())
    # when × components × credit_hosts × service = 16; levy: 1 + 3 payers × 2 extents; billing: 3 keys × 3 payers + host
    assert len(cases) == 16 * (1 + 6) + 8 * (9 + 1)
    lines = []
    for index, (fields, _) in enumerate(cases):
        lines.append(f"  - id: r{index}\n    legal_basis: x")
        lines += [f"    {key}: {value}" for key, value in fields.items() if value is not None]
    book, _ = parse_rulebook("district: X\nvalid_from: 2022\nvalid_to: 2022\nhit_policy: priority\nrules:\n"
                             + "\n".join(lines) + "\n", "kombinationen.yaml")
    for rule, (fields, expected) in zip(book.rules, cases):
        sentence = rule_sentence(rule)
        assert sentence == expected, fields
        # the broken sentence: `payers: {}` (or any payers) must never leave "mit immer" or "mit nie"
        assert " immer" not in sentence and " nie " not in sentence.replace("nie erfüllt", "")
        assert ",," not in sentence and " ," not in sentence and "gilt nach" not in sentence



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
