"""One test per bug (or per deliberate behaviour that must not be "fixed"), each with its minimal example.

Examples that could hang or crash the interpreter (durable_rules is C code) run in a child process with a
time limit, so a regression fails this test instead of stopping the whole suite.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from allocation.core.money import apportion

A, B, C = "05170004", "05170008", "05170012"


def test_alabama_paradox_larger_total_lowers_a_share():
    """Largest remainder is not monotone, and that is intended (it is the method published allocations
    reproduce). Keys 6 : 6 : 2 (key sum 14), by hand:
      10 cents: quotas 60/14, 60/14, 20/14 = 4 4/14, 4 4/14, 1 6/14 -> floors 4, 4, 1 (9), 1 cent left,
                largest remainder 6/14 -> C: shares 4, 4, 2
      11 cents: quotas 66/14, 66/14, 22/14 = 4 10/14, 4 10/14, 1 8/14 -> floors 4, 4, 1 (9), 2 cents left,
                largest remainders 10/14, 10/14 -> A, B: shares 5, 5, 1
    C pays less (1 instead of 2) although the total grew. Do not "fix" this by making shares monotone."""
    keys = {A: 6, B: 6, C: 2}
    assert {k: s.amount for k, s in apportion(10, keys).items()} == {A: 4, B: 4, C: 2}
    assert {k: s.amount for k, s in apportion(11, keys).items()} == {A: 5, B: 5, C: 1}
    # the same in whole euros (Rundung: Euro): 10 € -> 4, 4, 2 €; 11 € -> 5, 5, 1 €
    assert {k: s.amount for k, s in apportion(1000, keys, 100).items()} == {A: 400, B: 400, C: 200}
    assert {k: s.amount for k, s in apportion(1100, keys, 100).items()} == {A: 500, B: 500, C: 100}


def _run_child(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"child process did not finish within {timeout} s (durable_rules looping?)")


_MATCH = """
    from decimal import Decimal
    from allocation.rulefiles import engine
    from allocation.rulefiles.rulebook import parse_rulebook

    def rules(*whens):  # parsed in files of at most 400 rules (a rule file holds at most 500)
        named = {{}}
        for start in range(0, len(whens), 400):
            text = "district: T\\nvalid_from: 2000\\nvalid_to: 2100\\nrules:\\n" + "".join(
                f"  - id: r{{start + i}}\\n    legal_basis: x\\n    when: {{when}}\\n    route: district_levy\\n"
                for i, when in enumerate(whens[start:start + 400]))
            book, _ = parse_rulebook(text, "g.yaml")
            named.update({{rule.id: rule.when for rule in book.rules}})
        return named

    {body}
"""


def test_never_true_condition_does_not_loop_forever():
    """Found by test_prop_rules (minimal example `when: {any: []}`): an empty `any` (also `not: {}`) was
    compiled to `$nex: {_row: 1}`, which also matches durable_rules' own session-state object, so the
    rule fired on it forever and the run hung. Fixed in engine._compile: "never" is `$ex and $nex`."""
    result = _run_child(_MATCH.format(body="""
    records = [{"a": Decimal(1)}, {"a": "x"}]
    print(engine.match(rules('{"any": []}'), records))
    print(engine.match(rules('{"not": {}}', '{"any": [{"a": 1}, {"any": []}]}'), records))
    print(engine.match(rules('{"not": {"any": []}}'), records))
    """))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "[frozenset(), frozenset()]",
        "[frozenset({'r1'}), frozenset()]",
        "[frozenset({'r0'}), frozenset({'r0'})]",
    ]


def test_tiny_decimal_is_compared_not_crashing():
    """Found by test_prop_rules (minimal example: record Kategorie = 0.000001, rule `{Kategorie: 0}`).
    A workbook cell or rule constant such as 0.00005 must simply compare as a number. Numbers once reached
    durable_rules as doubles, printed by json as '5e-05', which its C parser rejects (error 204, or a
    segmentation fault from assert_facts); engine.py now passes order codes among the constants instead."""
    result = _run_child(_MATCH.format(body="""
    print(engine.match(rules('{"Stellen": {gt: 0}}'), [{"Stellen": Decimal("0.00005")}]))
    print(engine.match(rules('{"Stellen": 0}'), [{"Stellen": Decimal("0.000001")}, {"Stellen": Decimal(0)}]))
    print(engine.match(rules('{"Stellen": {lt: 0.00001}}'), [{"Stellen": Decimal("0.000001")}]))
    """))
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    assert result.stdout.splitlines() == [
        "[frozenset({'r0'})]",
        "[frozenset(), frozenset({'r0'})]",
        "[frozenset({'r0'})]",
    ]


def test_rules_on_one_column_beyond_512_do_not_hang_ruleset_creation():
    """Issue 12: a rule file of a few hundred rules passed `check`, then `run` hung inside durable_rules'
    ruleset creation: one node of its network (here: `K` equal to one of 1,000 constants) got more than 512
    successors. engine.py now compiles the rules as several rulesets within the measured limits."""
    result = _run_child(_MATCH.format(body="""
    named = rules(*[f"{{K: K{i}}}" for i in range(1000)], "{K: {ne: K999}}")
    print([sorted(hits) for hits in engine.match(named, [{"K": "K0"}, {"K": "K999"}, {"K": "x"}])])
    """))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == ["[['r0', 'r1000'], ['r999'], ['r1000']]"]


@pytest.mark.parametrize("argv, message", [
    (["--need", "1e999999999", "--base", "100"], "'1e999999999' ist zu groß"),
    (["--need", "100", "--base", "1e999999999"], "'1e999999999' ist zu groß"),
    (["--need", "1", "--base", "1e-999999999"], "zu viele Nachkommastellen"),
    (["--need=-1E-999999999", "--base", "1"], "zu viele Nachkommastellen"),
    (["--need", "1000000000000000", "--base", "1"], "ist zu groß"),
    (["--need", "1" * 5000, "--base", "1"], "zu lang"),
    (["--need", "1", "--base", "1", "--decimals", "9" * 5000], "keine Stellenzahl"),
    (["--need", "1", "--base", "1", "--decimals", "11"], "keine Stellenzahl"),
])
def test_rate_options_with_huge_exponents_are_refused_at_once(argv, message):
    """Issue 12: `rate --need 1e999999999` hung (exact arithmetic on a Fraction of 10^999999999 digits).
    Amount options are bounded before any arithmetic: exit 2 with a German message."""
    result = _run_child(f"""
        import sys
        from allocation.cli import main
        sys.exit(main({["rate", *argv]!r}))
    """, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_rate_options_at_their_limits_are_computed(capsys):
    """The largest amount (15 digits before, 6 after the decimal point) and 10 decimals still work:
    999999999999999.999999 / 1 x 100 = 99999999999999999.9999 -> half up to 2 places 100000000000000000.00."""
    from allocation.cli import main

    assert main(["rate", "--need", "999999999999999.999999", "--base", "1"]) == 0
    assert capsys.readouterr().out == "100000000000000000.00\n"
    assert main(["rate", "--need", "1", "--base", "3", "--decimals", "10"]) == 0
    assert capsys.readouterr().out == "33.3333333333\n"  # 100/3 = 33.333..., 10 places
    assert main(["rate", "--need", "0E+999999999", "--base", "1", "--json"]) == 0  # zero in any spelling is 0
    assert '"need": "0"' in capsys.readouterr().out
