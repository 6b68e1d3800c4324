"""Rules meet data (issue 11, "Data that silently changes who pays"): every column a rule names is bound to the
workbook's header, every cell a condition compares holds a value of the compared type, and `domains:` is enforced
on the data of both sheets. Each example test runs through the CLI on a workbook built here; the properties at
the end run the binding stage on in-memory books."""
from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocation.calc.allocate import allocate, decide
from allocation.cli import main
from allocation.core.problems import ExitCode, InputError
from allocation.rulefiles.rulebook import bind, parse_rulebook
from strategies import make_book
from workbooks import read_sheet, write_input, write_rules

# Three municipalities; A and C have no youth office of their own (Jugendamt_Kreis 1) and pay the levy.
A, B, C = "05999001", "05999002", "05999003"
BASES = {A: 1000, B: 3000, C: 2000}
YOUTH_ITEM = [["JA", "Kreisjugendamt", "Jugendhilfe", 300, 0, 0, 0, None]]
YOUTH_RULE = """\
  - id: jugendamtsumlage
    legal_basis: "§ 56 Abs. 5 KrO NRW"
    when: {Kategorie: Jugendhilfe}
    route: differentiated_levy
    payers: {Jugendamt_Kreis: 1}
"""


def municipalities(flags) -> list[list]:
    return [[ags, f"Gemeinde {ags[-1]}", BASES[ags], flag] for ags, flag in zip((A, B, C), flags)]


def run(tmp_path: Path, input_path: Path, rules_path: Path, capsys) -> tuple[int, list[dict], Path]:
    output = tmp_path / "ergebnis.xlsx"
    code = main(["run", str(input_path), "--rules", str(rules_path), "-o", str(output), "--json"])
    printed = capsys.readouterr().out
    problems = json.loads(printed).get("problems", []) if code else []
    if code:
        assert not output.exists(), "a refused run writes no workbook"
    return code, problems, output


def with_code(problems: list[dict], code: str) -> list[dict]:
    return [p for p in problems if p["code"] == code]


def shares(output: Path, item_id: str) -> dict[str, Decimal]:
    return {row["AGS"]: Decimal(str(row["Betrag gerundet"])) for row in read_sheet(output, "Einzelnachweis")
            if row["ID"] == item_id}


# ------------------------------------------------------------------ compared cells: blank and wrong type


def test_blank_and_ja_in_the_payers_flag_are_refused_at_their_cells_and_no_levy_is_computed(tmp_path, capsys):
    # Before: B (blank) and C ("ja") silently dropped out of the payers; A alone paid all 300 €.
    input_path = write_input(tmp_path / "eingabe.xlsx", municipalities([1, None, "ja"]), YOUTH_ITEM,
                             municipality_extra=["Jugendamt_Kreis"])
    code, problems, output = run(tmp_path, input_path, write_rules(tmp_path / "regeln.yaml", YOUTH_RULE), capsys)
    assert code == ExitCode.INPUT
    (empty,) = with_code(problems, "input-empty-cell")
    assert empty["location"]["cell"] == "Gemeinden!D3"
    assert "jugendamtsumlage" in empty["message"]
    (text,) = with_code(problems, "input-not-a-number")
    assert text["location"]["cell"] == "Gemeinden!D4"
    assert text["found"] == '"ja"' and "1 (ja) oder 0 (nein)" in text["hint"]
    assert len(problems) == 2
    assert not output.exists()


def test_blank_in_a_column_that_when_compares_is_refused(tmp_path, capsys):
    rules = write_rules(tmp_path / "regeln.yaml", """\
  - id: nord
    legal_basis: x
    when: {Bereich: Nord}
    route: district_levy
  - id: sued
    legal_basis: x
    when: {Bereich: {ne: Nord}}
    route: district_levy
""")
    items = [["X", "a", "KIM", 100, 0, 0, 0, None, "Nord"], ["Y", "b", "KIM", 100, 0, 0, 0, None, None]]
    input_path = write_input(tmp_path / "eingabe.xlsx", municipalities([0, 0, 0]), items,
                             municipality_extra=["Flag"], item_extra=["Bereich"])
    code, problems, _ = run(tmp_path, input_path, rules, capsys)
    # Before: the blank counted as "not Nord" and Y went silently to rule sued.
    assert code == ExitCode.INPUT
    (problem,) = problems
    assert problem["code"] == "input-empty-cell"
    assert problem["location"]["cell"] == "Kostenpositionen!I3"


def test_blank_traeger_means_the_kreis_and_is_no_error(tmp_path, capsys):
    rules = write_rules(tmp_path / "regeln.yaml", """\
  - id: kreis
    legal_basis: x
    when: {Traeger: Kreis}
    route: district_levy
""")
    input_path = write_input(tmp_path / "eingabe.xlsx", municipalities([0, 0, 0]),
                             [["X", "a", "KIM", 600, 0, 0, 0, None]], municipality_extra=["Flag"])
    code, _, output = run(tmp_path, input_path, rules, capsys)
    assert code == 0
    # 600 € by bases 1000 : 3000 : 2000
    assert shares(output, "X") == {A: Decimal("100.00"), B: Decimal("300.00"), C: Decimal("200.00")}


def test_number_in_a_column_compared_only_with_text_is_refused(tmp_path, capsys):
    # A code typed as a number loses its leading zero and can never equal the rule's text "0815".
    rules = write_rules(tmp_path / "regeln.yaml", """\
  - id: projekt
    legal_basis: x
    when: {Projekt: "0815"}
    route: district_levy
  - id: rest
    legal_basis: x
    when: {}
    route: district_levy
    priority: -1
""", hit_policy="priority")
    items = [["X", "a", "KIM", 100, 0, 0, 0, None, "0815"], ["Y", "b", "KIM", 100, 0, 0, 0, None, 815]]
    input_path = write_input(tmp_path / "eingabe.xlsx", municipalities([0, 0, 0]), items,
                             municipality_extra=["Flag"], item_extra=["Projekt"])
    code, problems, _ = run(tmp_path, input_path, rules, capsys)
    assert code == ExitCode.INPUT
    (problem,) = problems
    assert problem["code"] == "input-not-text"
    assert problem["location"]["cell"] == "Kostenpositionen!I3"
    assert problem["found"] == "815"


def test_column_compared_with_text_and_numbers_takes_either_but_not_blank(tmp_path, capsys):
    rules = write_rules(tmp_path / "regeln.yaml", """\
  - id: gemischt
    legal_basis: x
    when: {Stufe: {in: [1, "hoch"]}}
    route: district_levy
  - id: rest
    legal_basis: x
    when: {not: {Stufe: {in: [1, "hoch"]}}}
    route: district_levy
""")
    items = [["X", "a", "KIM", 100, 0, 0, 0, None, 1], ["Y", "b", "KIM", 100, 0, 0, 0, None, "hoch"],
             ["Z", "c", "KIM", 100, 0, 0, 0, None, "mittel"], ["W", "d", "KIM", 100, 0, 0, 0, None, None]]
    input_path = write_input(tmp_path / "eingabe.xlsx", municipalities([0, 0, 0]), items,
                             municipality_extra=["Flag"], item_extra=["Stufe"])
    code, problems, _ = run(tmp_path, input_path, rules, capsys)
    assert code == ExitCode.INPUT
    assert [(p["code"], p["location"]["cell"]) for p in problems] == [("input-empty-cell", "Kostenpositionen!I5")]


# ------------------------------------------------------------------------------ column names bind


def test_header_with_a_space_binds_to_the_rules_underscore_spelling_and_splits_the_same(tmp_path, capsys):
    rules = write_rules(tmp_path / "regeln.yaml", YOUTH_RULE.replace("{Kategorie:", "{KATEGORIE:"))
    results = {}
    for header in ("Jugendamt_Kreis", "Jugendamt Kreis", "jugendamt-kreis"):
        folder = tmp_path / header.replace(" ", "+")
        folder.mkdir()
        input_path = write_input(folder / "eingabe.xlsx", municipalities([1, 0, 1]), YOUTH_ITEM,
                                 municipality_extra=[header])
        code, problems, output = run(folder, input_path, rules, capsys)
        assert code == 0, problems
        results[header] = shares(output, "JA")
        (decision,) = read_sheet(output, "Entscheidungen")
        # the decision trace names the column as the workbook spells it
        assert decision["Begründung (Bedingung mit Werten)"] == "Kategorie = „Jugendhilfe“ [Wert: „Jugendhilfe“]"
    # by hand: 300 € over the payers' bases A 1000 and C 2000: 100 € and 200 €; B has its own youth office
    expected = {A: Decimal("100.00"), B: Decimal("0.00"), C: Decimal("200.00")}
    assert results == {header: expected for header in results}


def test_key_and_extent_columns_bind_ignoring_case_and_spaces(tmp_path, capsys):
    rules = write_rules(tmp_path / "regeln.yaml", """\
  - id: bus
    legal_basis: x
    when: {Kategorie: OEPNV}
    route: direct_billing
    key: {Linien_Minuten: 50, wagen_km: 50}
  - id: mehr
    legal_basis: x
    when: {Kategorie: Mehr}
    route: differentiated_levy
    payers: {}
    extent: Mehr_Belastung
""")
    rows = [[A, "a", 1000, 1, 0, 1], [B, "b", 3000, 1, 1, 0], [C, "c", 2000, 0, 1, 2]]
    items = [["BUS", "Bus", "OEPNV", 1000, 0, 0, 0, None], ["M", "Mehr", "Mehr", 500, 0, 0, 0, None]]
    input_path = write_input(tmp_path / "eingabe.xlsx", rows, items,
                             municipality_extra=["Linienminuten", "Wagen km", "Mehrbelastung"])
    code, problems, output = run(tmp_path, input_path, rules, capsys)
    assert code == 0, problems
    # 1000 €: 50 % by Linienminuten (1:1:0 of 2) + 50 % by Wagen km (0:1:1 of 2) → A 250, B 500, C 250
    assert shares(output, "BUS") == {A: Decimal("250.00"), B: Decimal("500.00"), C: Decimal("250.00")}
    # 500 € by base × factor: A 1000×1, B 3000×0, C 2000×2 → 1000 : 0 : 4000 → 100 €, 0 €, 400 €
    assert shares(output, "M") == {A: Decimal("100.00"), B: Decimal("0.00"), C: Decimal("400.00")}
    keys = {row["ID"]: row["Schlüssel"] for row in read_sheet(output, "Entscheidungen")}
    assert keys == {"BUS": "50 % Linienminuten + 50 % Wagen km", "M": "Umlagegrundlagen × Mehrbelastung"}


def test_two_headers_that_normalise_alike_are_one_column_twice(tmp_path, capsys):
    # Before: the rule read the exact spelling and the other column was silently ignored.
    rows = [[A, "a", 1000, 1, 0], [B, "b", 3000, 0, 1], [C, "c", 2000, 1, 1]]
    input_path = write_input(tmp_path / "eingabe.xlsx", rows, YOUTH_ITEM,
                             municipality_extra=["Jugendamt_Kreis", "jugendamt kreis"])
    code, problems, _ = run(tmp_path, input_path, write_rules(tmp_path / "regeln.yaml", YOUTH_RULE), capsys)
    assert code == ExitCode.INPUT
    (problem,) = problems
    assert problem["code"] == "input-duplicate-column"
    assert problem["location"]["cell"] == "Gemeinden!E1"
    assert "Jugendamt_Kreis" in problem["message"]


def test_a_rule_column_the_workbook_lacks_is_a_rule_error_with_a_suggestion(tmp_path, capsys):
    rules = write_rules(tmp_path / "regeln.yaml", YOUTH_RULE.replace("Jugendamt_Kreis: 1", "Jugendamt_Kries: 1"))
    input_path = write_input(tmp_path / "eingabe.xlsx", municipalities([1, 0, 1]), YOUTH_ITEM,
                             municipality_extra=["Jugendamt Kreis"])
    code, problems, _ = run(tmp_path, input_path, rules, capsys)
    assert code == ExitCode.RULES
    (problem,) = problems
    assert problem["code"] == "rule-unknown-column"
    assert "meinten Sie Jugendamt Kreis" in problem["message"]
    line = 1 + rules.read_text("utf-8").splitlines().index("    payers: {Jugendamt_Kries: 1}")
    assert problem["location"]["line"] == line


def test_an_unknown_rule_column_stops_the_run_as_a_rule_error_and_lists_the_duplicate_header_too(tmp_path, capsys):
    rules = write_rules(tmp_path / "regeln.yaml", YOUTH_RULE.replace("Jugendamt_Kreis: 1", "Jugendamt: 1"))
    rows = [[A, "a", 1000, 1, 0], [B, "b", 3000, 0, 1], [C, "c", 2000, 1, 1]]
    input_path = write_input(tmp_path / "eingabe.xlsx", rows, YOUTH_ITEM,
                             municipality_extra=["Jugendamt_Kreis", "JUGENDAMT KREIS"])
    code, problems, _ = run(tmp_path, input_path, rules, capsys)
    assert code == ExitCode.RULES
    assert sorted(p["code"] for p in problems) == ["input-duplicate-column", "rule-unknown-column"]


# ----------------------------------------------------------------------------------------- domains


def domain_rules(tmp_path: Path, domains: str, rules: str = YOUTH_RULE) -> Path:
    path = write_rules(tmp_path / "regeln.yaml", rules)
    text = path.read_text("utf-8").replace("rules:\n", f"domains:\n{domains}rules:\n", 1)
    path.write_text(text, encoding="utf-8")
    return path


def test_domain_of_a_gemeinden_column_is_enforced_on_every_row(tmp_path, capsys):
    rules = domain_rules(tmp_path, "  Jugendamt_Kreis: [0, 1]\n  Typ: [Stadt, Gemeinde]\n")
    rows = [[A, "a", 1000, 1, "Stadt"], [B, "b", 3000, 2, "Gemeinde"], [C, "c", 2000, 1, "Dorf"]]
    input_path = write_input(tmp_path / "eingabe.xlsx", rows, YOUTH_ITEM,
                             municipality_extra=["Jugendamt Kreis", "Typ"])
    code, problems, _ = run(tmp_path, input_path, rules, capsys)
    # Before: the domain was ignored and B (flag 2) silently paid nothing.
    assert code == ExitCode.INPUT
    found = {p["location"]["cell"]: p for p in problems}
    assert set(found) == {"Gemeinden!D3", "Gemeinden!E4"}
    assert {p["code"] for p in problems} == {"input-value-not-in-domain"}
    assert found["Gemeinden!D3"]["found"] == "2" and found["Gemeinden!D3"]["expected"] == "einer der Werte 0, 1"
    assert found["Gemeinden!E4"]["expected"] == 'einer der Werte "Stadt", "Gemeinde"'


def test_domain_of_an_item_column_is_enforced_even_where_a_catch_all_rule_would_decide(tmp_path, capsys):
    rules = domain_rules(tmp_path, "  Kategorie: [KIM, Kultur]\n", """\
  - id: kultur
    legal_basis: x
    when: {Kategorie: Kultur}
    route: district_levy
    priority: 1
  - id: rest
    legal_basis: x
    when: {Kategorie: KIM}
    route: district_levy
""")
    rules.write_text(rules.read_text("utf-8").replace("hit_policy: unique", "hit_policy: priority"), "utf-8")
    items = [["X", "a", "Kultur", 100, 0, 0, 0, None], ["Y", "b", "Kulture", 100, 0, 0, 0, None]]
    input_path = write_input(tmp_path / "eingabe.xlsx", municipalities([0, 0, 0]), items,
                             municipality_extra=["Flag"])
    code, problems, _ = run(tmp_path, input_path, rules, capsys)
    assert code == ExitCode.INPUT
    (problem,) = problems
    assert problem["code"] == "input-value-not-in-domain"
    assert problem["location"]["cell"] == "Kostenpositionen!C3"
    assert "meinten Sie Kultur" in problem["message"]


def test_all_data_problems_of_both_sheets_come_in_one_report(tmp_path, capsys):
    rules = domain_rules(tmp_path, "  Kategorie: [Jugendhilfe]\n")
    items = YOUTH_ITEM + [["Z", "z", "Jugend", 1, 0, 0, 0, None]]
    input_path = write_input(tmp_path / "eingabe.xlsx", municipalities([1, None, "ja"]), items,
                             municipality_extra=["Jugendamt_Kreis"])
    code, problems, _ = run(tmp_path, input_path, rules, capsys)
    assert code == ExitCode.INPUT
    assert sorted(p["location"]["cell"] for p in problems) == ["Gemeinden!D3", "Gemeinden!D4", "Kostenpositionen!C3"]


def test_a_domain_column_the_workbook_lacks_is_a_rule_error(tmp_path, capsys):
    rules = domain_rules(tmp_path, "  Traegerart: [Kreis, Gemeinde]\n")
    input_path = write_input(tmp_path / "eingabe.xlsx", municipalities([1, 0, 1]), YOUTH_ITEM,
                             municipality_extra=["Jugendamt_Kreis"])
    code, problems, _ = run(tmp_path, input_path, rules, capsys)
    assert code == ExitCode.RULES
    (problem,) = problems
    assert problem["code"] == "rule-unknown-column"
    assert problem["location"]["line"] == 1 + rules.read_text("utf-8").splitlines().index(
        "  Traegerart: [Kreis, Gemeinde]")


# ------------------------------------------------------------------- allocation check and domains


def check(paths: list[Path], capsys) -> tuple[int, list[dict]]:
    code = main(["check", *map(str, paths), "--json"])
    return code, json.loads(capsys.readouterr().out)["problems"]


def test_check_leaves_gemeinden_domains_out_of_the_item_gap_check(tmp_path, capsys):
    # Before: a domain on the payers column was searched as if it were an item column: a spurious gap warning.
    rules = domain_rules(tmp_path, "  Jugendamt_Kreis: [0, 1]\n")
    code, problems = check([rules], capsys)
    assert code == 0
    assert not [p for p in problems if p["code"].startswith("rule-gap")]


def test_check_finds_a_payers_constant_outside_its_domain(tmp_path, capsys):
    rules = domain_rules(tmp_path, "  Jugendamt_Kreis: [0, 1]\n",
                         YOUTH_RULE.replace("Jugendamt_Kreis: 1", "Jugendamt_Kreis: 2"))
    code, problems = check([rules], capsys)
    assert code == ExitCode.RULES
    (problem,) = with_code(problems, "rule-value-not-in-domain")
    assert problem["found"] == "2"


def test_check_matches_column_spellings_as_a_run_does(tmp_path, capsys):
    # `kategorie` in the rule and `Kategorie` under domains are one column: Kultur is a gap.
    rules = domain_rules(tmp_path, "  Kategorie: [KIM, Kultur]\n", """\
  - id: kim
    legal_basis: x
    when: {kategorie: KIM}
    route: district_levy
""")
    code, problems = check([rules], capsys)
    assert code == ExitCode.RULES
    (gap,) = with_code(problems, "rule-gap")
    assert "Kultur" in gap["message"]


# ------------------------------------------------------------------------------------- properties

YOUTH_RULEBOOK = "district: T\nvalid_from: 2000\nvalid_to: 2100\nrules:\n" + YOUTH_RULE
FLAG_CELLS = st.sampled_from([Decimal(0), Decimal(1), "", "ja", "1", "x", "nein"])


def youth_book(flags, bases, header="Jugendamt_Kreis", cost=100_000):
    municipalities = [(f"0599{i:04d}", base, {header: flag}) for i, (flag, base) in enumerate(zip(flags, bases))]
    return make_book(municipalities, [("JA", {"Kategorie": "Jugendhilfe"}, cost, 0)], 1, (header,))


@given(st.lists(FLAG_CELLS, min_size=1, max_size=12))
def test_every_payers_flag_that_is_not_a_number_is_refused_never_dropped(flags):
    rulebook, _ = parse_rulebook(YOUTH_RULEBOOK, "regeln.yaml")
    book = youth_book(flags, [100] * len(flags))
    bad_rows = {row for row, flag in enumerate(flags, start=2) if not isinstance(flag, Decimal)}
    if not bad_rows:
        assert bind(rulebook, book).rules[0].payers.column == "Jugendamt_Kreis"
        return
    with pytest.raises(InputError) as caught:
        bind(rulebook, book)
    assert {p.location.row for p in caught.value.problems} == bad_rows
    assert {p.location.sheet for p in caught.value.problems} == {"Gemeinden"}
    assert all(p.code == ("input-empty-cell" if flags[p.location.row - 2] == "" else "input-not-a-number")
               for p in caught.value.problems)


def spellings():
    """`Jugendamt_Kreis` as a controller might type it: any case, a space, hyphen, nothing or several
    underscores between the words."""
    letters = st.tuples(*[st.sampled_from([c.lower(), c.upper()]) for c in "JugendamtKreis"])
    joins = st.sampled_from(["_", " ", "-", "", "__", " _ "])
    return st.builds(lambda cs, join: "".join(cs[:9]) + join + "".join(cs[9:]), letters, joins)


@given(spellings(), st.lists(st.tuples(st.sampled_from([0, 1]), st.integers(1, 10**9)), min_size=1, max_size=10),
       st.integers(1, 10**8))
def test_the_split_does_not_depend_on_how_the_header_is_spelled(header, rows, cost):
    flags = [Decimal(flag) for flag, _ in rows]
    bases = [base for _, base in rows]
    if not any(flags):
        flags[0] = Decimal(1)
    rulebook, _ = parse_rulebook(YOUTH_RULEBOOK, "regeln.yaml")
    book = youth_book(flags, bases, header, cost)
    bound = bind(rulebook, book)
    assert bound.rules[0].payers.column == header
    (item,) = allocate(bound, book, decide(bound, book)).items
    amounts = {line.ags: line.amount for line in item.lines}
    # oracle: only flagged municipalities pay, each within one cent of cost × base ÷ payers' bases
    paying = {m.ags: Fraction(m.base) for m, flag in zip(book.municipalities, flags) if flag == 1}
    total = sum(paying.values())
    assert sum(amounts.values()) == cost
    for ags, amount in amounts.items():
        exact = Fraction(cost) * paying[ags] / total if ags in paying else Fraction(0)
        assert abs(amount - exact) < 1
