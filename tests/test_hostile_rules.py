"""Hostile rule files (issue 12, "Rule files"): each is refused with a located problem, or works, in bounded time.

The files live in tests/corpus-rules/ (README.md indexes them, build_corpus.py writes them). Expected
locations are read off the files by hand: line 8 is the `when:` line of the one rule under the 5-line
head, and the column is that of the offending token in it.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import event, example, given, note, settings
from hypothesis import strategies as st

from allocation.rulefiles import conditions
from allocation.rulefiles import engine
from allocation.calc.analysis import check_paths
from allocation.cli import main
from allocation.core.problems import RuleFileError
from allocation.rulefiles.rulebook import MAX_FILE_BYTES, load_rulebook, parse_rulebook
from strategies import scaled

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus-rules"
ROOT = HERE.parent
WESEL = ROOT / "rules" / "kreis-wesel.yaml"
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
HEAD = "district: Testkreis\nvalid_from: 2022\nvalid_to: 2023\nhit_policy: unique\nrules:\n"


def one_rule(when: str) -> str:
    return HEAD + f"  - id: r\n    legal_basis: x\n    when: {when}\n    route: district_levy\n"


def refused(text: str) -> list:
    with pytest.raises(RuleFileError) as failure:
        parse_rulebook(text, "regeln.yaml")
    return [p for p in failure.value.problems if p.severity == "error"]


# ------------------------------------------------------------------------------- anchors and aliases

def in_child(code: str, timeout: float = 60) -> list[str]:
    """Run code that hung the old code in a child process with a time limit (as tests/test_regressions.py
    does), so that a regression fails this test instead of stopping the suite. Returns stdout's lines."""
    try:
        result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                                timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"child process did not finish within {timeout} s")
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.splitlines()


def test_alias_bomb_is_refused_at_the_first_anchor():
    # old code: composing the file expands 10^9 list items and never returns
    assert in_child(f"""
        from allocation.calc.analysis import check_paths
        problems = check_paths([{str(CORPUS / "alias-bombe.yaml")!r}])[1]
        print([(p.code, p.location.line, p.location.col, p.found) for p in problems])
    """) == ["[('rule-yaml-alias', 4, 5, '&a0')]"]


def test_anchor_and_alias_reuse_is_refused_located():
    # old code: the alias was expanded and the file passed; rule files never need aliases (docs/auditor/rulebook.md)
    problems = refused(HEAD + "  - id: a\n    legal_basis: x\n    when: &w {Kategorie: KIM}\n    route: district_levy\n"
                       "  - id: b\n    legal_basis: x\n    when: *w\n    route: host_bears\n")
    assert [(p.code, p.location.line, p.location.col, p.found) for p in problems] == [
        ("rule-yaml-alias", 8, 11, "&w")]


def test_alias_without_anchor_is_refused_as_alias():
    problems = refused(one_rule("*nirgends"))
    assert [(p.code, p.location.line, p.location.col) for p in problems] == [("rule-yaml-alias", 8, 11)]


def test_control_character_is_a_located_yaml_problem():
    # found by test_damaged_rule_file_never_ends_in_a_traceback: PyYAML's reader raised outside the loader's
    # error handling (a traceback, exit 1)
    problems = refused(one_rule("{Kategorie: K\x07IM}"))
    assert [(p.code, p.location.line, p.location.col, p.found) for p in problems] == [("rule-yaml", 8, 24, "U+0007")]
    problems = refused("\x1f" + one_rule("{Kategorie: KIM}"))
    assert [(p.code, p.location.line, p.location.col, p.found) for p in problems] == [("rule-yaml", 1, 1, "U+001F")]


# ------------------------------------------------------------------------------------------ nesting

def test_yaml_nested_500_deep_is_refused_not_a_recursion_error():
    # old code: RecursionError in PyYAML's composer (an internal error with a traceback)
    problems = check_paths([CORPUS / "tiefe-500-ebenen.yaml"])[1]
    assert [p.code for p in problems] == ["rule-too-deep"]
    # top mapping, rules list and rule mapping are levels 1-3, so level 101 is the 98th "{not: " (6
    # characters each) after `    when: ` (10 characters): column 11 + 97 * 6
    assert (problems[0].location.line, problems[0].location.col) == (8, 11 + 97 * 6)


def test_yaml_nesting_limit_counts_mappings_and_lists():
    from allocation.rulefiles.yamlloc import MAX_DEPTH

    # top mapping (1), rules list (2), rule mapping (3), `when` (4): `extra` more levels below
    def nested(extra: int) -> str:
        return one_rule("[" * (extra - 1) + "{a: 1}" + "]" * (extra - 1))

    assert [p.code for p in refused(nested(MAX_DEPTH - 3 + 1))] == ["rule-too-deep"]
    assert "rule-too-deep" not in [p.code for p in refused(nested(MAX_DEPTH - 3))]  # refused as a bad condition


def test_condition_nested_33_deep_is_refused_32_is_accepted():
    problems = refused(Path(CORPUS / "bedingung-33-ebenen.yaml").read_text(encoding="utf-8"))
    assert [p.code for p in problems] == ["rule-too-deep"]
    # the 33rd `{all: [` opens at column 11 + 32 * 7 = 235; the problem names its first element
    assert (problems[0].location.line, problems[0].location.col) == (8, 11 + 32 * 7 + 7)
    depth = conditions.MAX_DEPTH
    rulebook, _ = parse_rulebook(one_rule("{all: [" * depth + "{Kategorie: KIM}" + "]}" * depth), "ok.yaml")
    assert engine.match({"r": rulebook.rules[0].when}, [{"Kategorie": "KIM"}, {"Kategorie": "X"}]) == [
        frozenset({"r"}), frozenset()]


def test_not_nested_33_deep_is_refused():
    assert [p.code for p in refused(one_rule("{not: " * 33 + "{K: 1}" + "}" * 33))] == ["rule-too-deep"]
    parse_rulebook(one_rule("{not: " * 32 + "{K: 1}" + "}" * 32), "ok.yaml")


# --------------------------------------------------------------------------------------- file size

def test_rule_file_over_the_size_limit_is_refused_before_parsing(tmp_path):
    path = tmp_path / "gross.yaml"
    padding = "# " + "x" * 98 + "\n"
    path.write_text(Path(WESEL).read_text(encoding="utf-8") + padding * (MAX_FILE_BYTES // 100 + 1),
                    encoding="utf-8")
    with pytest.raises(RuleFileError) as failure:
        load_rulebook(path)
    (problem,) = failure.value.problems
    assert problem.code == "rule-file-too-large" and problem.location.file == str(path)
    assert problem.found == f"{path.stat().st_size:,} Bytes".replace(",", ".")


def test_rule_file_at_the_size_limit_is_read(tmp_path):
    text = Path(WESEL).read_text(encoding="utf-8")
    padding = "#" * (MAX_FILE_BYTES - len(text.encode("utf-8")) - 1) + "\n"
    path = tmp_path / "genau.yaml"
    path.write_text(text + padding, encoding="utf-8")
    assert path.stat().st_size == MAX_FILE_BYTES
    assert len(load_rulebook(path)[0].rules) == 6


# ------------------------------------------------------------------------------------ engine limits

def test_sixteen_and_or_groups_are_refused_at_check():
    # old code: check passed, and run failed inside durable_rules (error 113, an internal error)
    problems = check_paths([CORPUS / "zu-viele-gruppen.yaml"])[1]
    assert [(p.code, p.location.line, p.location.col, p.found) for p in problems] == [
        ("rule-too-large", 8, 11, "16 Gruppen")]


def test_fifteen_and_or_groups_work():
    when = "{all: [" + ", ".join(f"{{S{i}: {{in: [a, b]}}}}" for i in range(14)) + "]}"
    rulebook, _ = parse_rulebook(one_rule(when), "ok.yaml")
    assert engine.combinators(rulebook.rules[0].when) == 15
    yes = {f"S{i}": "a" for i in range(14)}
    assert engine.match({"r": rulebook.rules[0].when}, [yes, {**yes, "S3": "c"}]) == [frozenset({"r"}), frozenset()]


def test_too_many_alternatives_at_once_are_refused_at_check():
    # old code: check passed, and run failed in durable_rules' matching (error 303) for an item that meets
    # all 48 alternatives
    problems = check_paths([CORPUS / "zu-viele-alternativen.yaml"])[1]
    assert [(p.code, p.location.line, p.location.col, p.found) for p in problems] == [
        ("rule-too-large", 8, 11, "47 Alternativen")]


def test_in_list_values_count_as_one_alternative():
    # 399 values of one column exclude each other: one item meets at most one of them
    when = "{any: [{Kategorie: {in: [" + ", ".join(f"K{i}" for i in range(399)) + "]}}, {Traeger: {ne: Kreis}}]}"
    rulebook, _ = parse_rulebook(one_rule(when), "ok.yaml")
    assert engine.weight(rulebook.rules[0].when) == 2
    assert engine.match({"r": rulebook.rules[0].when}, [{"Kategorie": "K399", "Traeger": "x"}]) == [frozenset({"r"})]


# ----------------------------------------------------------------------- 500 rules: check agrees with run

def test_500_priority_rules_decide_the_fixture_like_kreis_wesel():
    # the most rules a file may hold (MAX_RULES); at 1,000 the old code hung while durable_rules created the one
    # ruleset (check passed: it compiled nothing); the file's examples touch only the six Wesel rules
    lines = in_child(f"""
        from allocation.calc.allocate import decide
        from allocation.workbook.inputs import read_input
        from allocation.rulefiles.rulebook import load_rulebook
        big, _ = load_rulebook({str(CORPUS / "prioritaet-500-regeln.yaml")!r})
        wesel, _ = load_rulebook({str(WESEL)!r})
        book = read_input({str(FIXTURE)!r})
        print(len(big.rules), big.hit_policy)
        print([(d.item_id, d.rule_id) for d in decide(big, book)])
        print([(d.item_id, d.rule_id) for d in decide(wesel, book)])
    """)
    assert lines[0] == "500 priority"
    assert lines[1] == lines[2] and lines[1].count("(") == 5  # the fixture's five items, the same rules


def test_a_rule_file_of_more_than_500_rules_is_refused_at_check_and_run(tmp_path, capsys):
    # 1,000 rules took `check` ~8 s (pairwise analysis): beyond the 5 s budget, so the file limit is 500 rules
    rules = CORPUS / "prioritaet-501-regeln.yaml"
    for argv in (["check", "--json", str(rules)],
                 ["run", str(FIXTURE), "--rules", str(rules), "-o", str(tmp_path / "out.xlsx"), "--json"]):
        assert main(argv) == 4
        problems = json.loads(capsys.readouterr().out)["problems"]
        assert [(p["code"], p["found"]) for p in problems if p["severity"] == "error"] == [("rule-too-large", "501")]
    assert not (tmp_path / "out.xlsx").exists()


def test_500_priority_rules_check_and_run_agree(tmp_path, capsys):
    rules = CORPUS / "prioritaet-500-regeln.yaml"
    assert main(["check", "--json", str(rules)]) == 0
    capsys.readouterr()
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(tmp_path / "out.xlsx"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == 5


def test_check_refuses_what_durable_rules_cannot_create(monkeypatch):
    # a limit not known by name (simulated: durable_rules refuses every ruleset) fails at check, located at
    # the first rule of the refused ruleset, exactly as the run would fail
    import durable_rules_engine

    def refuse(*args, **kwargs):
        raise durable_rules_engine.error("Could not create ruleset, error code: 999")

    monkeypatch.setattr(durable_rules_engine, "create_ruleset", refuse)
    problems = check_paths([WESEL])[1]
    assert [(p.code, p.location.line) for p in problems if p.severity == "error"] == [("rule-too-large", 15)]


# ------------------------------------------------------------------------- fuzz: damaged rule files

DOCUMENTED_EXITS = {0, 2, 3, 4, 5, 8}  # docs/operations/exit-codes.md (1 = internal error is never acceptable)
_odd_text = st.one_of(
    st.sampled_from(["&a ", "*a", "&a [1, *a]", "!!python/object:os.system ", "{", "}", "[", "]", ": ", "- ", "#",
                     "'", '"', "|", ">", "%", "@", "`", "\t", "\\", "---", "...", "? ", "1e999999999", "-.inf",
                     "0x1F", "~", "null", "yes", "{not: " * 40, "[" * 120, "\u00a0", "\ufeff", "ä", "\x00"]),
    st.text(max_size=6))


@st.composite
def damaged(draw, text: str) -> str:
    """The rule file's text after 1-4 edits: delete, duplicate or swap lines, change indentation, insert text."""
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        edit = draw(st.sampled_from(["delete", "duplicate", "swap", "indent", "dedent", "insert", "anchor"]))
        if edit == "delete" and len(lines) > 1:
            del lines[i]
        elif edit == "duplicate":
            lines.insert(i, lines[i])
        elif edit == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif edit == "indent":
            lines[i] = " " * draw(st.integers(1, 4)) + lines[i]
        elif edit == "dedent":
            lines[i] = lines[i][draw(st.integers(1, 4)):]
        elif edit == "insert":
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(_odd_text) + lines[i][at:]
        elif ":" in lines[i]:  # anchor on a value, alias elsewhere
            key, _, value = lines[i].partition(":")
            lines[i] = f"{key}: &x{value}"
            j = draw(st.integers(0, len(lines) - 1))
            if ":" in lines[j] and j != i:
                lines[j] = lines[j].partition(":")[0] + ": *x"
    return "\n".join(lines)


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@scaled(1 / 6, 10)
@given(damaged(WESEL.read_text(encoding="utf-8")))
@example("\x1f" + WESEL.read_text(encoding="utf-8"))  # once a ReaderError traceback
def test_damaged_rule_file_never_ends_in_a_traceback(text):
    """check and run on a damaged copy of rules/kreis-wesel.yaml: a documented exit code, a problem code
    when failing, no traceback, no output file when failing, inputs unchanged."""
    fixture_before = hashlib.sha256(FIXTURE.read_bytes()).hexdigest()
    with tempfile.TemporaryDirectory() as folder:
        rules = Path(folder) / "regeln.yaml"
        rules.write_bytes(text.encode("utf-8", "surrogatepass"))
        rules_before = rules.read_bytes()
        output = Path(folder) / "ergebnis.xlsx"
        for argv in (["check", "--json", str(rules)],
                     ["run", str(FIXTURE), "--rules", str(rules), "-o", str(output), "--json"]):
            code, out, err = _cli(argv)
            note(f"{argv[0]}: exit {code}\n{out[-1500:]}\n{err[-1500:]}")
            assert code in DOCUMENTED_EXITS
            assert "Traceback" not in err and "Interner Fehler" not in err
            if code != 0:
                report = json.loads(out)
                assert report["problems"] and all(p["code"] for p in report["problems"])
                event(f"{argv[0]}: exit {code}, {report['problems'][0]['code']}")
                if argv[0] == "run":
                    assert not output.exists()
            else:
                event(f"{argv[0]}: exit 0")
        assert rules.read_bytes() == rules_before
    assert hashlib.sha256(FIXTURE.read_bytes()).hexdigest() == fixture_before


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_endless_rule_file_is_refused_before_a_byte_is_read():
    # the first code read /dev/zero until memory ran out, a later one up to the size limit; a rule file is read
    # only as a regular file, so a device is refused at once (the child's address space is capped at 1 GiB)
    assert in_child("""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from allocation.core.problems import RuleFileError
        from allocation.rulefiles.rulebook import load_rulebook
        try:
            load_rulebook("/dev/zero")
        except RuleFileError as error:
            print([(p.code, p.found) for p in error.problems])
    """) == ["[('rule-file-unreadable', 'keine gewöhnliche Datei')]"]


def test_a_rule_file_larger_than_the_limit_is_refused_after_one_byte_beyond_it(tmp_path):
    from allocation.rulefiles.rulebook import MAX_FILE_BYTES, load_rulebook

    big = tmp_path / "gross.yaml"
    big.write_text("#" * (MAX_FILE_BYTES + 10), encoding="ascii")
    with pytest.raises(RuleFileError) as error:
        load_rulebook(big)
    assert [p.code for p in error.value.problems] == ["rule-file-too-large"]


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no FIFOs")
def test_a_fifo_as_rule_file_never_blocks(tmp_path):
    # open() of a FIFO waits for a writer: the run would hang for ever; the rule file is opened without waiting
    import os

    fifo = tmp_path / "regeln.yaml"
    os.mkfifo(fifo)
    assert in_child(f"""
        from allocation.core.problems import RuleFileError
        from allocation.rulefiles.rulebook import load_notice_settings, load_rulebook
        for load in (load_rulebook, load_notice_settings):
            try:
                load({str(fifo)!r})
            except RuleFileError as error:
                print([(p.code, p.found) for p in error.problems])
    """, timeout=30) == ["[('rule-file-unreadable', 'keine gewöhnliche Datei')]"] * 2
