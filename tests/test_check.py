"""`allocation check`: schema, overlap, shadowing, gaps, validity across files and embedded examples.

Every expectation is reasoned by hand from the rule file in the test (each file's comment says why it
fails or passes). A passing twin accompanies each failing file.
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from allocation.calc import analysis
from allocation.rulefiles import conditions
from allocation.cli import main
from allocation.runs.pipeline import compute
from allocation.core.problems import RuleFileError

HERE = Path(__file__).resolve().parent
RULES = HERE / "rules"
WESEL = HERE.parent / "rules" / "kreis-wesel.yaml"


def codes(problems, severity=None):
    return sorted(p.code for p in problems if severity is None or p.severity == severity)


def check(*paths):
    return analysis.check_paths(paths)[1]


def write(tmp_path: Path, name: str, text: str) -> Path:
    """A rule file of NW (appended, so that lines stay where the test expects them)."""
    path = tmp_path / name
    if text.startswith("district:") and "\nstate:" not in text:
        text = text.rstrip("\n") + "\nstate: NW\n"
    path.write_text(text, encoding="utf-8")
    return path


HEAD = "district: Testkreis\nvalid_from: 2022\nvalid_to: 2022\nhit_policy: {policy}\nrules:\n"


def rules_file(tmp_path: Path, *whens: str, policy: str = "unique", extra: str = "") -> Path:
    body = "".join(f"  - id: r{i}\n    legal_basis: x\n    when: {when}\n    route: district_levy\n"
                   for i, when in enumerate(whens, start=1))
    return write(tmp_path, "r.yaml", HEAD.format(policy=policy) + body + extra)


# ------------------------------------------------------------------------------------------- Kreis Wesel


def test_kreis_wesel_rules_pass_the_check_without_any_problem():
    # Every declared Kategorie is covered for the Kreis as Traeger and for a host municipality; no overlaps.
    assert check(WESEL) == []


def test_without_the_kultur_rule_kreis_wesel_has_a_partial_gap(tmp_path):
    # Kultur is in the declared domain; without `kultur-kreisumlage` only `traegerkommune` (Traeger ≠ Kreis) can
    # take it, so a Kultur item run by the Kreis itself would match no rule.
    text = WESEL.read_text(encoding="utf-8")
    start = text.index("  - id: kultur-kreisumlage")
    end = text.index("  - id: traegerkommune")
    reduced = tmp_path / "kreis-wesel.yaml"
    reduced.write_text(text[:start] + text[end:], encoding="utf-8")
    problems = check(reduced)
    assert codes(problems) == ["rule-gap-partial"]
    assert problems[0].severity == "warning"
    assert "„Kultur“" in problems[0].found and "Traeger: „Kreis“" in problems[0].found


def test_kreis_wesel_rules_carry_examples_that_all_hold():
    books, problems = analysis.check_paths([WESEL])
    assert len(books[0].examples) >= 4
    assert [p for p in problems if p.code.startswith("rule-example")] == []


# ------------------------------------------------------------------------------------------------ schema


def test_schema_problems_are_reported_all_at_once_with_line_and_column(tmp_path):
    path = write(tmp_path, "bad.yaml", HEAD.format(policy="unique") + (
        "  - id: a\n"
        "    legal_bassis: x\n"          # line 7: typo
        "    when: {Kategorie: KIM}\n"
        "    route: district_lev\n"      # line 9: unknown route
        "  - id: a\n"                    # line 10: duplicate id
        "    when: {Stellen: {gtt: 1}}\n"  # line 11: unknown operator, no legal basis
        "    route: host_bears\n"))
    problems = check(path)
    found = {(p.code, p.location.line) for p in problems}
    assert ("rule-unknown-key", 7) in found
    assert ("rule-unknown-route", 9) in found
    assert ("rule-duplicate-id", 10) in found
    assert ("rule-unknown-operator", 11) in found
    unknown = next(p for p in problems if p.code == "rule-unknown-key")
    assert "legal_basis" in unknown.message and unknown.location.col == 5


# ----------------------------------------------------------------------------------------------- overlap


def test_overlap_under_unique_names_both_rules_and_a_concrete_item():
    problems = check(RULES / "overlap-unique.yaml")
    assert codes(problems) == ["rule-overlap"]
    # kim (line 7) holds for Kategorie KIM; gross (line 11) for Stellen > 2: a KIM item with 3 posts.
    assert problems[0].location.line == 11
    assert "kim (overlap-unique.yaml:7)" in problems[0].message
    assert problems[0].found == "Beispiel: {Kategorie: „KIM“, Stellen: 3}"


def test_rules_that_meet_exactly_at_a_boundary_do_not_overlap():
    # Stellen ≤ 2 and Stellen > 2 share no value; `not Kategorie = KIM` excludes both.
    assert check(RULES / "disjoint-unique.yaml") == []


def test_overlap_between_two_numeric_constants_is_found(tmp_path):
    # Stellen < 2 and Stellen > 1 both hold for 1.5 posts, a value no integer search would try.
    problems = check(rules_file(tmp_path, "{Stellen: {lt: 2}}", "{Stellen: {gt: 1}}"))
    assert codes(problems) == ["rule-overlap"]
    assert problems[0].found == "Beispiel: {Stellen: 1.5}"


def test_overlap_through_negation_of_a_list(tmp_path):
    # not (Kategorie in {A, B}) holds for C.
    problems = check(rules_file(tmp_path, "{not: {Kategorie: {in: [A, B]}}}", "{Kategorie: C}"))
    assert codes(problems) == ["rule-overlap"]
    assert problems[0].found == "Beispiel: {Kategorie: „C“}"


def test_text_one_and_number_one_do_not_overlap(tmp_path):
    # The condition language never equates the text "1" with the number 1.
    assert check(rules_file(tmp_path, '{Code: "1"}', "{Code: 1}")) == []


def test_contradictory_condition_is_reported_as_never_matching(tmp_path):
    problems = check(rules_file(tmp_path, "{all: [{Stellen: {gt: 5}}, {Stellen: {lt: 3}}]}", "{Stellen: 4}"))
    assert codes(problems) == ["rule-never-matches"]
    assert problems[0].severity == "error"  # dead rules mislead readers, like shadowed ones


# --------------------------------------------------------------------------------------------- shadowing


def test_shadowed_rule_under_priority_is_an_error_naming_the_rule_that_takes_its_items():
    problems = check(RULES / "shadowed-priority.yaml")
    assert codes(problems) == ["rule-shadowed"]
    assert problems[0].location.line == 12
    assert '"kim-kreis"' in problems[0].message and "kim (shadowed-priority.yaml:7)" in problems[0].message


def test_a_lower_priority_catch_all_is_not_shadowed_while_some_item_reaches_it(tmp_path):
    # r1 (priority 0, first) takes KIM; r2 ({} always) wins for every other Kategorie.
    assert check(rules_file(tmp_path, "{Kategorie: KIM}", "{}", policy="priority")) == []


def test_equal_priorities_are_ordered_by_position_in_the_file(tmp_path):
    # Same priority: the earlier rule {} takes every item, so the later r2 can never win.
    problems = check(rules_file(tmp_path, "{}", "{Kategorie: KIM}", policy="priority"))
    assert codes(problems) == ["rule-shadowed"]
    assert '"r2"' in problems[0].message


# -------------------------------------------------------------------------------------------------- gaps


def test_gaps_report_uncovered_values_and_uncovered_combinations():
    problems = check(RULES / "gaps.yaml")
    assert codes(problems) == ["rule-gap", "rule-gap-partial"]
    gap = next(p for p in problems if p.code == "rule-gap")
    partial = next(p for p in problems if p.code == "rule-gap-partial")
    assert gap.severity == "error" and '"Kultur"' in gap.message
    assert (gap.location.line, gap.location.col) == (7, 33)  # the value Kultur in the domains list
    # Jugendhilfe is covered only with Traeger = Kreis: any other Traeger is an uncovered item.
    assert partial.severity == "warning"
    assert partial.found == "Beispiel: {Kategorie: „Jugendhilfe“, Traeger: „anderer Wert“}"


def test_no_gap_when_every_domain_value_is_covered(tmp_path):
    path = rules_file(tmp_path, "{Kategorie: A}", "{Kategorie: {ne: A}}",
                      extra="domains:\n  Kategorie: [A, B]\n")
    assert check(path) == []


def test_a_rule_constant_outside_the_declared_domain_is_a_typo(tmp_path):
    path = rules_file(tmp_path, "{Kategorie: KMI}", "{Kategorie: {ne: KMI}}",
                      extra="domains:\n  Kategorie: [KIM, Kultur]\n")
    typo = [p for p in check(path) if p.code == "rule-value-not-in-domain"]
    assert len(typo) == 2 and "meinten Sie KIM?" in typo[0].message


# ----------------------------------------------------------------------------------------------- validity


def test_overlapping_years_of_one_district_are_reported_in_both_files():
    problems = check(RULES / "validity-2022-2023.yaml", RULES / "validity-2023-2024.yaml")
    assert codes(problems) == ["rules-validity-overlap"] * 2
    assert {Path(p.location.file).name for p in problems} == {"validity-2022-2023.yaml", "validity-2023-2024.yaml"}
    assert all("in 2023" in p.message for p in problems)


def test_a_missing_year_inside_the_covered_range_is_reported_in_the_files_on_both_sides():
    problems = check(RULES / "validity-2022-2023.yaml", RULES / "validity-2026-2027.yaml")
    assert codes(problems) == ["rules-validity-gap"] * 2
    assert all("2024–2025" in p.message for p in problems)


def test_consecutive_files_pass_and_other_districts_do_not_interfere():
    assert check(RULES / "validity-2020-2021.yaml", RULES / "validity-2022-2023.yaml", WESEL) == [
        p for p in check(WESEL)]


# ----------------------------------------------------------------------------------------------- examples


def test_failing_examples_are_reported_with_their_line():
    problems = check(RULES / "examples-failing.yaml")
    assert codes(problems) == ["rule-example-failed", "rule-example-split"]
    wrong_rule = next(p for p in problems if p.code == "rule-example-failed")
    wrong_split = next(p for p in problems if p.code == "rule-example-split")
    assert wrong_rule.location.line == 16  # Kultur goes to "rest", not to "kim"
    # 1000 € by bases 100 : 300 is 250 € and 750 €, not 500 € each (the third example, line 35, is right).
    assert wrong_split.location.line == 26
    assert wrong_split.found == "05170004: 250,00 €; 05170008: 750,00 €"


def test_an_example_split_must_list_every_municipality(tmp_path):
    path = rules_file(tmp_path, "{}", extra=(
        "examples:\n  - item: {}\n    rule: r1\n    deficit: 10\n"
        '    municipalities: [{AGS: "05170004", Umlagegrundlagen: 1}, {AGS: 5170008, Umlagegrundlagen: 1}]\n'
        '    split: {"05170004": 10}\n'))
    problems = check(path)
    assert "rule-bad-example" in codes(problems)
    assert any("8 Ziffern in Anführungszeichen" in p.message for p in problems)  # unquoted AGS read as a number


def test_example_with_costs_excludes_components_the_rule_does_not_allow(tmp_path):
    # components [Personalkosten]: 600 of 600 + 400 are eligible; bases 1 : 2 give 200 € and 400 €.
    text = HEAD.format(policy="unique") + (
        "  - id: r1\n    legal_basis: x\n    when: {}\n    route: district_levy\n    components: [Personalkosten]\n"
        "examples:\n  - item: {}\n    costs: {Personalkosten: 600, Sachkosten: 400}\n"
        '    municipalities: [{AGS: "05170004", Umlagegrundlagen: 1}, {AGS: "05170008", Umlagegrundlagen: 2}]\n'
        '    split: {"05170004": 200, "05170008": 400}\n')
    assert check(write(tmp_path, "c.yaml", text)) == []
    assert codes(check(write(tmp_path, "c.yaml", text.replace("200, ", "333.33, ")))) == ["rule-example-split"]


# ------------------------------------------------------------------------------------- completeness claim


def test_representatives_cover_every_class_of_a_column():
    # Constants 1 and 3 split the numbers into: <1, =1, (1,3), =3, >3; texts into: "a", any other text.
    cmps = [conditions.Cmp("x", "lt", Decimal(3), None), conditions.Cmp("x", "eq", Decimal(1), None),
            conditions.Cmp("x", "eq", "a", None)]
    values = analysis.representatives(cmps, numeric_only=False)
    assert values == ["a", "anderer Wert", Decimal(0), Decimal(1), Decimal(2), Decimal(3), Decimal(4)]
    assert analysis.representatives(cmps, numeric_only=True) == [Decimal(0), Decimal(1), Decimal(2), Decimal(3),
                                                                  Decimal(4)]


# ---------------------------------------------------------------------------------------------- CLI & run


def test_cli_check_exit_codes(capsys):
    assert main(["check", str(WESEL)]) == 0  # a warning alone does not fail
    assert main(["check", str(RULES / "overlap-unique.yaml"), str(WESEL)]) == 4
    err = capsys.readouterr().err
    assert "overlap-unique.yaml:11:5" in err and "rule-overlap" in err


def test_a_failing_check_stops_the_run_before_the_workbook_is_read(tmp_path):
    missing = tmp_path / "gibt-es-nicht.xlsx"  # reading it would raise InputError, not RuleFileError
    with pytest.raises(RuleFileError) as caught:
        compute(missing, RULES / "overlap-unique.yaml")
    assert codes(caught.value.problems) == ["rule-overlap"]


# ------------------------------------------------------------------------------------------- JSON Schema


def _schema_validator():
    import json

    import jsonschema

    schema = json.loads((HERE.parent / "schema" / "rules.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema), schema


def test_json_schema_accepts_the_kreis_wesel_rules():
    import yaml

    validator, _ = _schema_validator()
    assert list(validator.iter_errors(yaml.safe_load(WESEL.read_text(encoding="utf-8")))) == []


def test_json_schema_accepts_the_bavarian_levy_rules_and_rejects_a_bad_levy():
    import yaml

    validator, schema = _schema_validator()
    document = yaml.safe_load((HERE.parent / "rules" / "landkreis-altoetting.yaml").read_text(encoding="utf-8"))
    assert list(validator.iter_errors(document)) == []
    from allocation.rulefiles import rulebook

    assert set(schema["$defs"]["levy"]["properties"]) == set(rulebook.LEVY_KEYS)
    assert schema["properties"]["rate_limits"]["enum"] == list(rulebook.RATE_LIMITS)
    document["levies"][0]["base"] = {"Schluesselzuweisungen": 120}  # a weight above 100 %
    document["rate_limits"] = "bayern"
    messages = [error.message for error in validator.iter_errors(document)]
    assert len(messages) == 2


def test_json_schema_rejects_an_unknown_key_and_an_unknown_operator():
    import yaml

    validator, _ = _schema_validator()
    document = yaml.safe_load(WESEL.read_text(encoding="utf-8"))
    document["rules"][0]["legal_bassis"] = "typo"
    document["rules"][1]["when"] = {"Stellen": {"gtt": 1}}
    errors = list(validator.iter_errors(document))
    assert any("legal_bassis" in error.message for error in errors)
    assert any(list(error.absolute_path)[:3] == ["rules", 1, "when"] for error in errors)


def test_json_schema_lists_exactly_the_keys_the_reader_accepts():
    from allocation.rulefiles import rulebook

    _, schema = _schema_validator()
    assert set(schema["properties"]) == set(rulebook.TOP_KEYS)
    assert set(schema["$defs"]["rule"]["properties"]) == set(rulebook.RULE_KEYS)
    assert set(schema["$defs"]["example"]["properties"]) == set(rulebook.EXAMPLE_KEYS)
