"""Bad input and bad rules (issue 2): every problem located, all collected, distinct exit codes, no output."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.cli import main
from allocation.core.problems import ExitCode
from workbooks import write_input, write_rules

GOOD_MUNICIPALITIES = [["05999001", "A", 1000], ["05999002", "B", 3000]]
GOOD_ITEMS = [["X", "Test", "KIM", 100, 0, 0, 0, None]]
LEVY = """\
  - id: levy
    legal_basis: "§ 56 Abs. 1 KrO NRW"
    when: {Kategorie: KIM}
    route: district_levy
"""


def run_json(tmp_path: Path, input_path: Path, rules: Path, capsys) -> tuple[int, list[dict]]:
    output = tmp_path / "ergebnis.xlsx"
    before = hashlib.sha256(input_path.read_bytes()).hexdigest() if input_path.exists() else None
    code = main(["run", str(input_path), "--rules", str(rules), "-o", str(output), "--json"])
    printed = capsys.readouterr().out
    assert not output.exists(), "no output workbook may be written when a run fails"
    assert not list(tmp_path.glob(".ergebnis.xlsx.*")), "no temporary workbook may be left behind"
    if before is not None:
        assert hashlib.sha256(input_path.read_bytes()).hexdigest() == before, "the input must not change"
    problems = json.loads(printed)["problems"] if code else []
    return code, problems


def fail(tmp_path, capsys, municipalities=GOOD_MUNICIPALITIES, items=GOOD_ITEMS, rules=LEVY, **kwargs):
    input_path = write_input(tmp_path / "eingabe.xlsx", municipalities, items, **kwargs)
    rules_path = write_rules(tmp_path / "regeln.yaml", rules)
    return run_json(tmp_path, input_path, rules_path, capsys)


def line_of(path: Path, text: str) -> int:
    """1-based line of the first line containing `text` in a rule file (counted independently of the parser)."""
    return next(n for n, line in enumerate(path.read_text("utf-8").splitlines(), start=1) if text in line)


def only(problems: list[dict], code: str) -> dict:
    matching = [p for p in problems if p["code"] == code]
    assert matching, f"no {code} in {[p['code'] for p in problems]}"
    return matching[0]


def test_missing_sheet(tmp_path, capsys):
    code, problems = fail(tmp_path, capsys, sheets=("Parameter", "Gemeinden"))
    assert code == ExitCode.INPUT
    problem = only(problems, "input-missing-sheet")
    assert problem["location"]["sheet"] == "Kostenpositionen"
    assert problem["location"]["file"] == "eingabe.xlsx"


def test_missing_column(tmp_path, capsys):
    code, problems = fail(tmp_path, capsys, municipalities=[["05999001", "A"]],
                          municipality_header=["AGS", "Gemeinde"])
    assert code == ExitCode.INPUT
    problem = only(problems, "input-missing-column")
    assert problem["location"]["sheet"] == "Gemeinden" and problem["location"]["row"] == 1
    assert "Umlagegrundlagen" in problem["message"]


def test_duplicate_ags(tmp_path, capsys):
    code, problems = fail(tmp_path, capsys, municipalities=[["05999001", "A", 1], ["05999001", "B", 2]])
    assert code == ExitCode.INPUT
    assert only(problems, "input-duplicate-ags")["location"]["cell"] == "Gemeinden!A3"


@pytest.mark.parametrize("ags, found", [(5999001, "5999001"), ("0599900", '"0599900"'), ("0599900X", '"0599900X"')])
def test_malformed_ags(tmp_path, capsys, ags, found):
    code, problems = fail(tmp_path, capsys, municipalities=[[ags, "A", 1], ["05999002", "B", 2]])
    assert code == ExitCode.INPUT
    problem = only(problems, "input-bad-ags")
    assert problem["location"]["cell"] == "Gemeinden!A2"
    assert problem["found"] == found


def test_lost_leading_zero_suggests_the_fix(tmp_path, capsys):
    code, problems = fail(tmp_path, capsys, municipalities=[[5999001, "A", 1]])
    assert "05999001" in only(problems, "input-bad-ags")["hint"]


def test_text_in_number_cell_names_cell_and_suggests_the_number(tmp_path, capsys):
    items = [["X", "Test", "KIM", "12.000,5O", 0, 0, 0, None]]
    code, problems = fail(tmp_path, capsys, items=items)
    assert code == ExitCode.INPUT
    problem = only(problems, "input-not-a-number")
    assert problem["location"]["cell"] == "Kostenpositionen!D2"
    assert problem["found"] == '"12.000,5O"'
    assert "12000.50" in problem["hint"] and "O" in problem["hint"]


def test_negative_base(tmp_path, capsys):
    code, problems = fail(tmp_path, capsys, municipalities=[["05999001", "A", -5], ["05999002", "B", 2]])
    assert code == ExitCode.INPUT
    assert only(problems, "input-negative-base")["location"]["cell"] == "Gemeinden!C2"


def test_unknown_host(tmp_path, capsys):
    items = [["X", "Test", "KIM", 100, 0, 0, 0, "05999009"]]
    code, problems = fail(tmp_path, capsys, items=items)
    assert code == ExitCode.INPUT
    assert only(problems, "input-unknown-host")["location"]["cell"] == "Kostenpositionen!H2"


def test_all_input_problems_are_reported_in_one_run(tmp_path, capsys):
    municipalities = [["05999001", "A", -1], [5999002, "B", 2], ["05999001", "C", "viel"]]
    items = [["X", "Test", "KIM", "abc", 0, 0, 0, "05999009"]]
    code, problems = fail(tmp_path, capsys, municipalities=municipalities, items=items)
    assert code == ExitCode.INPUT
    assert {p["location"]["cell"] for p in problems} >= {
        "Gemeinden!C2", "Gemeinden!A3", "Gemeinden!A4", "Gemeinden!C4", "Kostenpositionen!D2"}


def test_item_that_no_rule_matches(tmp_path, capsys):
    items = [["X", "Test", "Sonstiges", 100, 0, 0, 0, None]]
    code, problems = fail(tmp_path, capsys, items=items)
    assert code == ExitCode.DECISION
    problem = only(problems, "decision-no-rule")
    assert problem["location"]["sheet"] == "Kostenpositionen" and problem["location"]["row"] == 2
    assert "Sonstiges" in problem["found"]


TWO_KIM_RULES = LEVY + """\
  - id: also-kim
    legal_basis: "x"
    when: {Kategorie: {in: [KIM, JA]}}
    route: district_levy
"""


def test_two_rules_that_can_match_one_item_stop_the_run_before_the_data(tmp_path, capsys):
    # Under `unique` the rule check finds the overlap before any workbook is read (exit 4), naming both rules.
    code, problems = fail(tmp_path, capsys, rules=TWO_KIM_RULES)
    assert code == ExitCode.RULES
    problem = only(problems, "rule-overlap")
    rules_path = tmp_path / "regeln.yaml"
    text = f"{problem['message']} {problem.get('found') or ''} {problem.get('hint') or ''}"
    assert "levy" in text and "also-kim" in text
    assert problem["location"]["line"] in (line_of(rules_path, "id: levy"), line_of(rules_path, "id: also-kim"))


def test_item_that_two_rules_match_under_unique_is_refused_by_decide(tmp_path):
    # The run-time guard behind the static check: decide() itself refuses an item two rules match.
    from allocation.calc.allocate import decide
    from allocation.workbook.inputs import read_input
    from allocation.core.problems import DecisionError
    from allocation.rulefiles.rulebook import load_rulebook

    rulebook, _ = load_rulebook(write_rules(tmp_path / "regeln.yaml", TWO_KIM_RULES))
    book = read_input(write_input(tmp_path / "eingabe.xlsx", GOOD_MUNICIPALITIES, GOOD_ITEMS))
    with pytest.raises(DecisionError) as caught:
        decide(rulebook, book)
    problem = caught.value.problems[0]
    assert problem.code == "decision-ambiguous"
    assert problem.location.sheet == "Kostenpositionen" and problem.location.row == 2
    rules_path = tmp_path / "regeln.yaml"
    assert f"regeln.yaml:{line_of(rules_path, 'id: levy')}" in problem.message
    assert f"regeln.yaml:{line_of(rules_path, 'id: also-kim')}" in problem.message


def test_unknown_column_named_in_a_rule(tmp_path, capsys):
    rules = """\
  - id: levy
    legal_basis: "x"
    when: {Kategroie: KIM}
    route: district_levy
"""
    code, problems = fail(tmp_path, capsys, rules=rules)
    assert code == ExitCode.RULES
    problem = only(problems, "rule-unknown-column")
    assert problem["location"]["line"] == line_of(tmp_path / "regeln.yaml", "Kategroie")
    assert problem["location"]["file"].endswith("regeln.yaml")
    assert "Kategorie" in problem["message"]  # did you mean


def test_weights_not_summing_to_100(tmp_path, capsys):
    rules = """\
  - id: bus
    legal_basis: "x"
    when: {}
    route: direct_billing
    key: {Linienminuten: 70, Wagenkm: 29.99}
"""
    code, problems = fail(tmp_path, capsys, rules=rules)
    assert code == ExitCode.RULES
    problem = only(problems, "rule-weights-sum")
    assert problem["location"]["line"] == line_of(tmp_path / "regeln.yaml", "key:")
    assert problem["found"] == "99.99"


def test_unknown_route_with_suggestion(tmp_path, capsys):
    rules = LEVY.replace("route: district_levy", "route: district_levi")
    code, problems = fail(tmp_path, capsys, rules=rules)
    assert code == ExitCode.RULES
    problem = only(problems, "rule-unknown-route")
    rules_path = tmp_path / "regeln.yaml"
    line = line_of(rules_path, "district_levi")
    assert problem["location"]["line"] == line
    assert problem["location"]["col"] == 1 + rules_path.read_text("utf-8").splitlines()[line - 1].index("district_levi")
    assert "district_levy" in problem["message"]


def test_rule_file_errors_are_reported_before_the_workbook_is_read(tmp_path, capsys):
    rules_path = write_rules(tmp_path / "regeln.yaml", LEVY.replace("district_levy", "nowhere"))
    code, problems = run_json(tmp_path, tmp_path / "does-not-exist.xlsx", rules_path, capsys)
    assert code == ExitCode.RULES
    assert [p["code"] for p in problems] == ["rule-unknown-route"]


def test_payer_set_that_selects_nobody(tmp_path, capsys):
    rules = """\
  - id: youth
    legal_basis: "§ 56 Abs. 5 KrO NRW"
    when: {}
    route: differentiated_levy
    payers: {Jugendamt_Kreis: 1}
"""
    municipalities = [["05999001", "A", 1000, 0], ["05999002", "B", 3000, 0]]
    code, problems = fail(tmp_path, capsys, municipalities=municipalities, rules=rules,
                          municipality_extra=["Jugendamt_Kreis"])
    assert code == ExitCode.DECISION
    assert only(problems, "decision-no-payers")["location"]["line"] == line_of(tmp_path / "regeln.yaml", "payers:")


def test_yaml_python_tag_is_refused(tmp_path, capsys):
    rules_path = tmp_path / "regeln.yaml"
    rules_path.write_text("district: !!python/object/apply:os.system ['echo pwned']\nvalid_from: 2020\n", "utf-8")
    input_path = write_input(tmp_path / "eingabe.xlsx", GOOD_MUNICIPALITIES, GOOD_ITEMS)
    code, problems = run_json(tmp_path, input_path, rules_path, capsys)
    assert code == ExitCode.RULES
    assert problems[0]["code"] == "rule-yaml" and problems[0]["location"]["line"] == 1


def test_not_an_xlsx(tmp_path, capsys):
    input_path = tmp_path / "eingabe.xlsx"
    input_path.write_text("AGS;Gemeinde\n05999001;A\n", "utf-8")
    code, problems = run_json(tmp_path, input_path, write_rules(tmp_path / "regeln.yaml", LEVY), capsys)
    assert code == ExitCode.INPUT
    assert problems[0]["code"] == "input-not-xlsx" and problems[0]["location"]["file"] == "eingabe.xlsx"


def test_human_readable_error_names_the_cell(tmp_path, capsys):
    input_path = write_input(tmp_path / "eingabe.xlsx", [["05999001", "A", "x"]], GOOD_ITEMS)
    code = main(["run", str(input_path), "--rules", str(write_rules(tmp_path / "r.yaml", LEVY)),
                 "-o", str(tmp_path / "o.xlsx")])
    assert code == ExitCode.INPUT
    err = capsys.readouterr().err
    assert "eingabe.xlsx › Gemeinden!C2" in err and "Lösung:" in err


def test_a_failed_save_leaves_no_half_written_workbook(tmp_path, monkeypatch, fixture_workbook, rules_file):
    import allocation.workbook.report as report

    def broken_close(self):  # the output workbook is streamed with xlsxwriter; close() writes the file
        Path(self.filename).write_bytes(b"PK\x03\x04 half")
        raise OSError("disk full")

    monkeypatch.setattr("xlsxwriter.Workbook.close", broken_close)
    output = tmp_path / "ergebnis.xlsx"
    code = main(["run", str(fixture_workbook), "--rules", str(rules_file), "-o", str(output)])
    # since issue 12 an operating-system refusal while writing is a located output problem (exit 9), not exit 1
    assert code == ExitCode.OUTPUT
    assert list(tmp_path.iterdir()) == []
    assert report  # module imported for the patch target


def test_existing_output_survives_a_failed_run(tmp_path, capsys):
    output = tmp_path / "ergebnis.xlsx"
    output.write_bytes(b"previous result")
    input_path = write_input(tmp_path / "eingabe.xlsx", [["05999001", "A", "x"]], GOOD_ITEMS)
    code = main(["run", str(input_path), "--rules", str(write_rules(tmp_path / "r.yaml", LEVY)), "-o", str(output)])
    assert code == ExitCode.INPUT
    assert output.read_bytes() == b"previous result"


def test_uncalculated_formula_is_an_error_but_a_cached_value_is_used(tmp_path, capsys):
    input_path = write_input(tmp_path / "eingabe.xlsx", GOOD_MUNICIPALITIES, [["X", "Test", "KIM", "=50+50", 0, 0, 0, None]])
    code, problems = run_json(tmp_path, input_path, write_rules(tmp_path / "r.yaml", LEVY), capsys)
    assert code == ExitCode.INPUT
    assert only(problems, "input-uncalculated-formula")["location"]["cell"] == "Kostenpositionen!D2"
    workbook = load_workbook(input_path)
    assert workbook["Kostenpositionen"]["D2"].value == "=50+50"


def test_composite_key_with_a_component_that_no_payer_uses_is_refused(tmp_path, capsys):
    # Wagenkm is 0 everywhere: 30 % of the key cannot be distributed, so the agreed 70/30 weights cannot hold.
    rules = """\
  - id: bus
    legal_basis: "x"
    when: {}
    route: direct_billing
    key: {Linienminuten: 70, Wagenkm: 30}
"""
    municipalities = [["05999001", "A", 1, 10, 0], ["05999002", "B", 1, 30, 0]]
    code, problems = fail(tmp_path, capsys, municipalities=municipalities, rules=rules,
                          municipality_extra=["Linienminuten", "Wagenkm"])
    assert code == ExitCode.DECISION
    problem = only(problems, "decision-zero-key")
    assert "Wagenkm" in problem["message"]
    assert problem["location"]["line"] == line_of(tmp_path / "regeln.yaml", "key:")


def test_a_condition_too_large_for_durable_rules_is_refused_with_its_line(tmp_path, capsys):
    # durable_rules hangs on an `in` list of 700 values (500 work): the rule file is refused instead.
    values = ", ".join(f'"K{n}"' for n in range(401))
    rules = f"""\
  - id: many
    legal_basis: "x"
    when: {{Kategorie: {{in: [{values}]}}}}
    route: district_levy
"""
    code, problems = fail(tmp_path, capsys, rules=rules)
    assert code == ExitCode.RULES
    problem = only(problems, "rule-too-large")
    assert problem["location"]["line"] == line_of(tmp_path / "regeln.yaml", "when:")
    assert problem["found"] == "401"


def test_a_condition_of_400_comparisons_still_runs(tmp_path, capsys):
    values = ", ".join(f'"K{n}"' for n in range(399))
    rules = f"""\
  - id: many
    legal_basis: "x"
    when: {{Kategorie: {{in: [KIM, {values}]}}}}
    route: district_levy
"""
    input_path = write_input(tmp_path / "eingabe.xlsx", GOOD_MUNICIPALITIES, GOOD_ITEMS)
    rules_path = write_rules(tmp_path / "regeln.yaml", rules)
    assert main(["run", str(input_path), "--rules", str(rules_path), "-o", str(tmp_path / "out.xlsx")]) == 0


# --------------------------------------------------- issue 11: behaviours no test protected before

HOST_RULES = """\
  - id: kultur-traeger
    legal_basis: "§ 2 GO NRW"
    when: {Kategorie: Kultur}
    route: host_bears
    priority: 10
  - id: umlage
    legal_basis: "§ 56 Abs. 1 KrO NRW"
    when: {}
    route: district_levy
    credit_hosts: true
"""


def test_host_bears_on_an_item_the_kreis_runs_is_decision_no_host(tmp_path, capsys):
    # Under priority the host_bears rule wins for a Kultur item with an empty Traeger (= the Kreis runs it).
    input_path = write_input(tmp_path / "eingabe.xlsx", GOOD_MUNICIPALITIES,
                             [["K", "Musikschule", "Kultur", 100, 0, 0, 0, None],
                              ["M", "Museum", "Kultur", 50, 0, 0, 0, "05999002"],
                              ["X", "Test", "KIM", 100, 0, 0, 0, None]])
    rules_path = tmp_path / "regeln.yaml"
    rules_path.write_text(write_rules(rules_path, HOST_RULES).read_text("utf-8").replace(
        "hit_policy: unique", "hit_policy: priority"), encoding="utf-8")
    code, problems = run_json(tmp_path, input_path, rules_path, capsys)
    assert code == ExitCode.DECISION
    (problem,) = problems
    assert problem["code"] == "decision-no-host"
    assert problem["location"]["cell"] == "Kostenpositionen!H2"
    assert f"regeln.yaml:{line_of(rules_path, 'id: kultur-traeger')}" in problem["message"]


def test_host_bears_example_run_by_the_kreis_is_a_located_example_failure_not_a_crash(tmp_path, capsys):
    # Before: allocate looked the Kreis up among the municipalities: KeyError, exit 1.
    rules_path = write_rules(tmp_path / "regeln.yaml", HOST_RULES.replace("priority: 10", "priority: 0")
                             .replace("when: {}", "when: {Kategorie: {ne: Kultur}}"))
    rules_path.write_text(rules_path.read_text("utf-8") + """\
examples:
  - item: {Kategorie: Kultur}
    rule: kultur-traeger
    deficit: 100
    municipalities:
      - {AGS: "05999001", Gemeinde: A}
    split: {"05999001": 100}
""", encoding="utf-8")
    code = main(["check", str(rules_path), "--json"])
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert code == ExitCode.RULES
    problem = only(problems, "rule-example-failed")
    assert "Träger ist der Kreis" in problem["message"]
    assert problem["location"]["line"] == line_of(rules_path, "split:")


@pytest.mark.parametrize("sheet, rules, cell", [
    ("Kostenpositionen", """\
  - id: levy
    legal_basis: x
    when: {Plaetze: {gt: 10}}
    route: district_levy
  - id: rest
    legal_basis: x
    when: {Plaetze: {le: 10}}
    route: district_levy
""", "Kostenpositionen!I2"),
    ("Gemeinden", LEVY.replace("when: {Kategorie: KIM}", "when: {Kategorie: KIM}\n    payers: {Einwohner: {ge: 5000}}")
     .replace("district_levy", "differentiated_levy"), "Gemeinden!D3"),
])
def test_text_in_a_column_compared_by_size_is_not_a_number_at_its_cell(tmp_path, capsys, sheet, rules, cell):
    # durable_rules would hold "viele" < 10 true; the run stops at the cell instead.
    code, problems = fail(tmp_path, capsys, rules=rules,
                          municipalities=[["05999001", "A", 1000, 6000], ["05999002", "B", 3000, "viele"]],
                          items=[["X", "Test", "KIM", 100, 0, 0, 0, None, "viele"]],
                          municipality_extra=["Einwohner"], item_extra=["Plaetze"])
    assert code == ExitCode.INPUT
    (problem,) = problems
    assert problem["code"] == "input-not-a-number"
    assert problem["location"]["cell"] == cell
    assert problem["found"] == '"viele"'


def test_keys_of_an_item_refused_for_its_own_errors_are_no_unknown_items(tmp_path, capsys):
    code, problems = fail(tmp_path, capsys,
                          items=[["X", "Test", "KIM", 100, 0, 0, 0, "05999009"], ["Y", "Test", "KIM", 5, 0, 0, 0, None]],
                          keys=[["X", "05999001", 3], ["Z", "05999001", 1]])
    assert code == ExitCode.INPUT
    assert only(problems, "input-unknown-host")["location"]["cell"] == "Kostenpositionen!H2"
    # X exists (refused for its unknown host): no follow-on; Z names no item at all: still reported
    (unknown,) = [p for p in problems if p["code"] == "input-unknown-item"]
    assert unknown["found"] == "Z" and unknown["location"]["cell"] == "Schluessel!A3"
    assert len(problems) == 2


def test_decide_itself_refuses_text_compared_by_size_once_per_cell(tmp_path):
    # The engine guard behind the run's data check: durable_rules would hold "viele" <= 10.
    from allocation.calc.allocate import decide
    from allocation.workbook.inputs import read_input
    from allocation.core.problems import InputError
    from allocation.rulefiles.rulebook import load_rulebook

    rulebook, _ = load_rulebook(write_rules(tmp_path / "regeln.yaml", """\
  - id: gross
    legal_basis: x
    when: {Plaetze: {gt: 10}}
    route: district_levy
  - id: klein
    legal_basis: x
    when: {Plaetze: {le: 10}}
    route: district_levy
"""))
    book = read_input(write_input(tmp_path / "eingabe.xlsx", GOOD_MUNICIPALITIES,
                                  [["X", "Test", "KIM", 100, 0, 0, 0, None, "viele"]], item_extra=["Plaetze"]))
    with pytest.raises(InputError) as caught:
        decide(rulebook, book)
    (problem,) = caught.value.problems
    assert problem.code == "input-not-a-number"
    assert problem.location.cell == "Kostenpositionen!I2"


def test_a_long_found_value_is_shortened_in_the_message_but_kept_whole_in_json():
    from allocation.core.problems import Location, Problem

    problem = Problem("input-uncalculated-formula", Location("e.xlsx", "Kostenpositionen", 2, 2), "Formel",
                      found="=" + "A" * 32_699, expected="ein Wert", hint="Wert eintragen")
    line = str(problem)
    assert "(gefunden: =" + "A" * 199 + " … (32.700 Zeichen));" in line and len(line) < 400
    assert problem.as_dict()["found"] == "=" + "A" * 32_699
