"""The mutation check (issue 24): does the suite notice when a check of the code is broken?

Each mutant below is one small semantic change to one module: a negated or widened condition, a boundary moved
by one (`<=` to `<`), a sheet or a loop skipped, a value compared with itself, a check dropped, a tolerance off
by one unit. The script applies one mutant at a time to a private copy of the tree, runs the tests that should
notice it, and counts the mutant as

- KILLED   the selection failed (a failing test, or an error while collecting the tests);
- TIMEOUT  the selection ran longer than its time-out; counted as killed (a mutant that makes a loop endless is
           noticed, if slowly);
- SURVIVED the selection passed: no test noticed the change;
- STALE    the anchor text no longer occurs exactly once in the module (the code moved on): the mutant was not
           run, and the check fails until the table is brought up to date;
- INVALID  the mutated module does not compile, or the replacement equals the anchor: not run, the check fails;
- ERROR    pytest could not run the selection as given (exit 4 or 5: a test file or -k expression the tests no
           longer have): the check fails.

It runs on demand, never in CI. A mutant runs only its module's tests (`SELECTIONS`, or the mutant's own), not
the whole suite: the suite takes minutes, and about a hundred mutants of it would take hours. Before the
mutants, each selection runs once on the unchanged copy (the baseline): a selection that fails there would
"kill" every mutant, so the check stops. The baseline's times set each selection's time-out (3 × its time +
60 s, unless `--timeout` is given).

    python benchmarks/mutation.py                          # every mutant, one at a time (about 1.5 hours)
    python benchmarks/mutation.py --list                   # the mutants and their selections; runs nothing
    python benchmarks/mutation.py --module allocation/ops/verify.py [--module ...]
    python benchmarks/mutation.py --only verify-skip-umlagen [--only ...]
    python benchmarks/mutation.py --jobs 2                 # two copies, two mutants at a time
    python benchmarks/mutation.py --report mutation.json   # also write every outcome as JSON

It needs the test dependencies (`pip install -e '.[test]'`) and nothing else; it runs the Python it is started
with. Output: one line per mutant as it finishes, then killed and survived per module, the survival rate per
module and overall, and the survivors with what each one changed. Exit status: 0 when every mutant ran and every
survivor is one argued equivalent (`EQUIVALENT`), 1 when another mutant survived, 2 when a mutant is STALE,
INVALID or ERROR or a baseline failed.

A new mutant is one line in `MUTANTS`: the module, an anchor (exact source text that occurs once in it), its
replacement, what the change means, and optionally its own test selection. Keep it a change of meaning that a
test ought to notice; a change that cannot alter any result (an equivalent mutant) belongs in `EQUIVALENT` with
the argument, or not in the table at all.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What a copy of the tree holds: everything the tests read (the package, the tests and their fixtures, the rule
# files, the schema, README and docs for the tests that check them, the benchmarks the suite starts).
COPIED = ("allocation", "tests", "rules", "fixtures", "schema", "docs", "deploy", "benchmarks", "README.md",
          "pyproject.toml")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")


@dataclass(frozen=True)
class Mutant:
    id: str
    module: str  # path from the repository root
    anchor: str  # exact source text, occurring once in the module
    replacement: str
    description: str
    tests: tuple[str, ...] = ()  # pytest arguments; empty: the module's selection in SELECTIONS


# ------------------------------------------------------------------------------------------------ selections

# The tests that should notice a change of each module: the files that exercise it directly or through the
# commands that use it, most specific first (`-x` stops at the first failure). The corpus of tampered artefacts
# runs without its FIFO and /dev/zero cases: they only prove that nothing hangs (each waits in a subprocess), no
# mutant here is about reading a file, and under load they are the suite's known flaky tests.
_NO_HANGS = ("-k", "not (tampered and (fifo or dev-zero))")
_TAMPERED = "tests/test_tampered_artefacts.py"
SELECTIONS: dict[str, tuple[str, ...]] = {
    "allocation/ops/verify.py": (
        "tests/test_gates_verify.py", "tests/test_gates_register.py",
        "tests/test_states.py::test_verify_checks_the_level_above_by_its_hash",
        "tests/test_readback.py", "tests/test_manifest.py", "tests/test_prop_tampering.py",
        "tests/test_readback_adversary.py", "tests/test_one_way_in.py", "tests/test_year.py", "tests/test_levies_run.py",
        "tests/test_state_fixtures.py", "tests/test_adversary_findings.py", "tests/test_provisional_bases.py",
        "tests/test_review_paths.py", "tests/test_newcomer.py", "tests/test_inbox.py",
        "tests/test_notices.py::test_refuses_when_verify_fails_and_writes_nothing", _TAMPERED, *_NO_HANGS),
    "allocation/ops/notices.py": (
        "tests/test_gates_notices.py", "tests/test_gates_districts.py",
        "tests/test_notices.py", "tests/test_notices_letters.py", "tests/test_settlement.py", "tests/test_states.py",
        "tests/test_letters_golden.py", "tests/test_readback.py", "tests/test_readback_adversary.py",
        "tests/test_year.py", "tests/test_review_paths.py", "tests/test_remedy.py", _TAMPERED, *_NO_HANGS),
    "allocation/calc/controls.py": (
        "tests/test_gates_controls.py",
        "tests/test_controls.py", "tests/test_levies.py", "tests/test_levies_run.py", "tests/test_run.py",
        "tests/test_regressions.py", "tests/test_stage_effects.py", "tests/test_state_fixtures.py",
        "tests/test_prop_end_to_end.py", "tests/test_errors.py", "tests/test_corpus.py"),
    "allocation/ops/year.py": (
        "tests/test_gates_year.py", "tests/test_gates_districts.py",
        "tests/test_year.py", "tests/test_readback_adversary.py", "tests/test_readback.py", "tests/test_one_way_in.py",
        "tests/test_prop_tampering.py", "tests/test_register.py", "tests/test_inbox.py", _TAMPERED, *_NO_HANGS),
    "allocation/runs/register.py": (
        "tests/test_gates_register.py",
        "tests/test_register.py", "tests/test_one_way_in.py", "tests/test_year.py", "tests/test_readback.py",
        "tests/test_readback_adversary.py", "tests/test_overwrite_guard.py", "tests/test_adversary_fixes.py",
        "tests/test_adversary_findings.py", "tests/test_crash_safety.py", "tests/test_trueup.py",
        "tests/test_prop_tampering.py", "tests/test_notices.py", _TAMPERED, *_NO_HANGS),
    "allocation/runs/pipeline.py": (
        "tests/test_api.py",
        "tests/test_gates_controls.py", "tests/test_gates_register.py",
        "tests/test_run.py", "tests/test_check.py", "tests/test_errors.py", "tests/test_one_way_in.py",
        "tests/test_register.py", "tests/test_overwrite_guard.py", "tests/test_output_locations.py",
        "tests/test_adversary_fixes.py", "tests/test_adversary_findings.py", "tests/test_crash_safety.py",
        "tests/test_manifest.py", "tests/test_readback.py", "tests/test_levies_run.py", "tests/test_provisional_bases.py",
        "tests/test_year.py", "tests/test_cell_bounds.py", "tests/test_web.py", _TAMPERED, *_NO_HANGS),
    "allocation/runs/readback.py": (
        "tests/test_gates_register.py", "tests/test_gates_verify.py", "tests/test_gates_year.py",
        "tests/test_readback.py", "tests/test_readback_adversary.py", "tests/test_register.py", "tests/test_year.py",
        "tests/test_one_way_in.py", "tests/test_trueup.py", "tests/test_compare.py", "tests/test_prop_tampering.py",
        "tests/test_manifest.py", "tests/test_notices.py", _TAMPERED, *_NO_HANGS),
    "allocation/calc/allocate.py": (
        "tests/test_engine.py", "tests/test_binding.py", "tests/test_errors.py", "tests/test_levies.py",
        "tests/test_prop_apportion.py", "tests/test_prop_credit_hosts_split.py", "tests/test_prop_rules.py",
        "tests/test_hostile_rules.py", "tests/test_run.py", "tests/test_regressions.py", "tests/test_corpus.py",
        "tests/test_findings.py", "tests/test_prop_end_to_end.py"),
    "allocation/calc/levies.py": (
        "tests/test_gates_controls.py",
        "tests/test_levies.py", "tests/test_levies_run.py", "tests/test_levy_binding.py", "tests/test_states.py",
        "tests/test_state_fixtures.py", "tests/test_regressions.py", "tests/test_prop_end_to_end.py"),
    "allocation/calc/stages.py": (
        "tests/test_gates_effects.py",
        "tests/test_stages.py", "tests/test_stage_effects.py", "tests/test_output_identity.py", "tests/test_one_way_in.py"),
    "allocation/calc/rates.py": (
        "tests/test_gates_rates.py",
        "tests/test_rates.py", "tests/test_regressions.py", "tests/test_run.py", "tests/test_report_stream.py",
        "tests/test_output_identity.py", "tests/test_prop_end_to_end.py"),
    "allocation/core/money.py": (
        "tests/test_money.py", "tests/test_prop_apportion.py", "tests/test_instalments.py", "tests/test_rates.py",
        "tests/test_reading.py", "tests/test_regressions.py", "tests/test_run.py", "tests/test_prop_end_to_end.py"),
    "allocation/core/instalments.py": (
        "tests/test_gates_notices.py",
        "tests/test_instalments.py", "tests/test_settlement.py", "tests/test_notice_settings.py", "tests/test_notices.py",
        "tests/test_notices_letters.py", "tests/test_letters_golden.py", "tests/test_states.py"),
    "allocation/ops/trueup.py": (
        "tests/test_gates_districts.py",
        "tests/test_trueup.py", "tests/test_trueup_row_limit.py", "tests/test_adversary_fixes.py",
        "tests/test_one_way_in.py", _TAMPERED, *_NO_HANGS),
}

# ------------------------------------------------------------------------------------------------ the mutants

def _m(module: str, id: str, anchor: str, replacement: str, description: str, *tests: str) -> Mutant:
    return Mutant(id, f"allocation/{module}.py", anchor, replacement, description, tuple(tests))


_SKIP_SHEET = '        if sheet == "{}":\n            continue\n        a, b = want[sheet], have[sheet]\n'

MUTANTS: tuple[Mutant, ...] = (
    # --- ops/verify.py: the replay and its comparisons ---------------------------------------------------------
    _m("ops/verify", "verify-skip-umlagen", "        a, b = want[sheet], have[sheet]\n", _SKIP_SHEET.format("Umlagen"),
       "the cell comparison skips the sheet Umlagen"),
    _m("ops/verify", "verify-skip-einzelnachweis", "        a, b = want[sheet], have[sheet]\n",
       _SKIP_SHEET.format("Einzelnachweis"), "the cell comparison skips the sheet Einzelnachweis"),
    _m("ops/verify", "verify-ignore-number-format", "            elif format_a != format_b:", "            elif False:",
       "a cell's number format is not compared"),
    _m("ops/verify", "verify-ignore-layout", "                if layout_a[sheet].get(aspect) != layout_b[sheet].get(aspect):",
       "                if False:", "no sheet layout (widths, hidden rows, panes, ...) is compared"),
    _m("ops/verify", "verify-sheet-order-self",
       "    if [s for s in want if s in have] != [s for s in have if s in want]:",
       "    if [s for s in want if s in have] != [s for s in want if s in have]:",
       "the sheet order is compared with itself"),
    _m("ops/verify", "verify-manifest-recorded-keys-only", "    for key in list(want) + [k for k in have if k not in want]:",
       "    for key in list(want):", "a manifest field only the recomputed manifest has (a deleted key) is ignored"),
    _m("ops/verify", "verify-manifest-self", "        if want.get(key, _MISSING) == have.get(key, _MISSING):",
       "        if want.get(key, _MISSING) == want.get(key, _MISSING):",
       "every manifest field is compared with itself"),
    _m("ops/verify", "verify-allocation-version-noted", 'NOTED_FIELDS = ("tool.python",)',
       'NOTED_FIELDS = ("tool.python", "tool.allocation")',
       "another allocation version is a note, not a difference"),
    _m("ops/verify", "verify-output-hash-self", '    if recorded.sha256 != manifest["output"]["sha256"]:',
       "    if recorded.sha256 != recorded.sha256:", "the workbook's SHA-256 is compared with itself"),
    _m("ops/verify", "verify-input-hash-self", '        elif digest != entry["sha256"]:', "        elif digest != digest:",
       "the SHA-256 of input and rule files is compared with itself"),
    _m("ops/verify", "verify-rule-files-unchecked",
       '    entries = [("Eingabe", manifest["input"])] + [("Regeldatei", rules) for rules in manifest["rules"]]',
       '    entries = [("Eingabe", manifest["input"])]', "the rule files' hashes are not checked"),
    _m("ops/verify", "verify-register-final-typo", '    if manifest["parameters"].get("mode") != "final":',
       '    if manifest["parameters"].get("mode") != "Final":', "no run is looked up in the register"),
    _m("ops/verify", "verify-register-head-dropped",
       '    if not (0 < reference["chain"] <= len(chain) and chain[reference["chain"] - 1].sha256 == reference["head"]):',
       '    if not (0 < reference["chain"] <= len(chain)):',
       "the chain head the manifest records is not compared (a rewritten chain passes)"),
    _m("ops/verify", "verify-register-other-workbook", '    if entry.get("output_sha256") != output_sha256:',
       '    if entry.get("output_sha256") != entry.get("output_sha256"):',
       "a register entry naming another workbook passes"),
    _m("ops/verify", "verify-register-older-manifest-any-entry",
       '        if not any(entry.get("output_sha256") == output_sha256 for entry in entries):',
       "        if not entries:", "an older manifest passes with any entry of its district and year"),
    _m("ops/verify", "verify-identical-ignores-package",
       "                    or self.field_differences or self.register or self.package)",
       "                    or self.field_differences or self.register)",
       "a differing part of the xlsx package does not make the run different"),
    _m("ops/verify", "verify-identical-ignores-register",
       "                    or self.field_differences or self.register or self.package)",
       "                    or self.field_differences or self.package)",
       "a register finding does not make the run different"),
    _m("ops/verify", "verify-package-part-self", "                if a != b:\n                    differences +=",
       "                if a != a:\n                    differences +=", "each package part is compared with itself"),
    _m("ops/verify", "verify-zip-comment-ignored", "    if comment:\n        issues.append",
       "    if False:\n        issues.append", "a comment appended to the zip archive is not reported"),

    # --- ops/notices.py: the gate before the notices, and what they say ----------------------------------------
    _m("ops/notices", "notices-gate-differences", "    if not result.identical:\n", "    if result.differences:\n",
       "notices are refused only for differing cells, not for whatever else verify finds (moved input, forged field)"),
    _m("ops/notices", "notices-gate-negated", "    if not result.identical:\n", "    if result.identical:\n",
       "notices are refused exactly when verify confirms the run"),
    _m("ops/notices", "notices-replaced-during-check",
       '    if earlier.sha256 != manifest["output"]["sha256"]:\n        raise NotVerified',
       "    if earlier.sha256 != earlier.sha256:\n        raise NotVerified",
       "a workbook replaced between verify and reading is not noticed"),
    _m("ops/notices", "notices-superseded-accepted", "    if current is not None and not this:",
       "    if current is None and not this:", "notices of a superseded final run are written"),
    _m("ops/notices", "notices-previous-any-year", 'Relation(result.district, result.year, "earlier-run",',
       'Relation(result.district, None, "earlier-run",', "--previous accepts a run of another year (and a later run)"),
    _m("ops/notices", "notices-previous-year-any-district", 'Relation(result.district, result.year, "previous",',
       'Relation(None, result.year, "previous",', "--previous-year accepts another district's result"),
    _m("ops/notices", "notices-one-missing-municipality-passes",
       '    if missing:\n        raise InputError([Problem("notices-municipality-missing"',
       '    if len(missing) > 1:\n        raise InputError([Problem("notices-municipality-missing"',
       "a single municipality missing from the new run is not refused"),
    _m("ops/notices", "notices-legal-basis-override-lost",
       '    basis = (text.legal_basis if text and text.legal_basis else "") or levy.legal_basis',
       '    basis = levy.legal_basis or (text.legal_basis if text and text.legal_basis else "")',
       "the rule file's notices.levies.X.legal_basis no longer overrides the workbook's"),
    _m("ops/notices", "notices-reasons-when-unchanged", "    rose = before is not None and need > _umlagesoll(before)",
       "    rose = before is not None and need >= _umlagesoll(before)",
       "the reasons for a higher Umlagesoll are printed when it stayed the same"),
    _m("ops/notices", "notices-umlagesoll-statute-zero", "    if levy.need is None or (levy.statute and levy.need == 0):",
       "    if levy.need is None:", "a statutory levy without need states an Umlagesoll of 0"),
    _m("ops/notices", "notices-first-notice-same-day-refused",
       "    if settled_on is not None and settled_on > notice_date:",
       "    if settled_on is not None and settled_on >= notice_date:",
       "a change notice dated the day of the first notice is refused"),
    _m("ops/notices", "notices-settle-from-day-after-first-due",
       "        settle = not result.provisional and notice_date >= first_due",
       "        settle = not result.provisional and notice_date > first_due",
       "a first notice dated on the first due date does not settle the provisional instalments"),
    _m("ops/notices", "notices-change-for-new-zero-share", "                if (old.amount if old else 0) == amount:",
       "                if old is not None and old.amount == amount:",
       "a municipality new in the run with amount 0 gets a change notice"),
    _m("ops/notices", "notices-after-year-one-year-late", "    if notice_date.year > result.year and not settlement:",
       "    if notice_date.year > result.year + 1 and not settlement:",
       "a first notice dated in the following year is accepted"),

    # --- calc/controls.py: the run's own checks -----------------------------------------------------------------
    _m("calc/controls", "controls-item-deficit-self",
       '        controls.append(Control("Defizit − verteilt = 0", item.item.id, item.deficit, allocated))',
       '        controls.append(Control("Defizit − verteilt = 0", item.item.id, allocated, allocated))',
       "an item's lines are compared with themselves, not with its deficit"),
    _m("calc/controls", "controls-one-unit-boundary",
       "            if abs(line.amount * denominator - numerator) >= unit * denominator:",
       "            if abs(line.amount * denominator - numerator) > unit * denominator:",
       "a line exactly one rounding unit from its exact quota passes"),
    _m("calc/controls", "controls-two-units",
       "            if abs(line.amount * denominator - numerator) >= unit * denominator:",
       "            if abs(line.amount * denominator - numerator) >= 2 * unit * denominator:",
       "a line up to two rounding units from its exact quota passes"),
    _m("calc/controls", "controls-statute-self", "                                        _recomputed(levy, line, unit), line.amount))",
       "                                        line.amount, line.amount))",
       "a statute line is compared with itself, not recomputed"),
    _m("calc/controls", "controls-statute-factor-ignored",
       "    return round_to_unit(exact * (line.factor if line.factor is not None else 1), unit)",
       "    return round_to_unit(exact, unit)", "the statute recompute ignores the extent factor"),
    _m("calc/controls", "controls-derived-need-self", "                                    levy.need, levy.revenue))",
       "                                    levy.revenue, levy.revenue))",
       "a derived levy's need is not compared with its lines"),
    _m("calc/controls", "controls-derived-lines-self",
       "                                    None, item_lines + (extra or 0), levy.revenue))",
       "                                    None, levy.revenue, levy.revenue))",
       "a derived levy's lines are not compared with the Einzelnachweis"),
    _m("calc/controls", "controls-levy-need-self", "need + (extra or 0), levy.need))",
       "levy.need, levy.need))",
       "a levy's need is not compared with the deficits assigned to it"),
    _m("calc/controls", "controls-overview-self", "                                revenue + others, per_municipality))",
       "                                per_municipality, per_municipality))",
       "the Uebersicht total is compared with itself (levy runs)"),
    _m("calc/controls", "controls-route-self", '        controls.append(Control(f"Summe Weg {route}", None, expected, actual))',
       '        controls.append(Control(f"Summe Weg {route}", None, actual, actual))',
       "each route's sum is compared with itself"),
    _m("calc/controls", "controls-grand-total-self",
       '    controls.append(Control("Summe Defizite = Summe Einzelnachweis", None, deficits, lines))',
       '    controls.append(Control("Summe Defizite = Summe Einzelnachweis", None, lines, lines))',
       "the sum of the Einzelnachweis is compared with itself"),
    _m("calc/controls", "controls-single-failure-passes", "    if problems:\n        raise InvariantViolation(problems)",
       "    if len(problems) > 1:\n        raise InvariantViolation(problems)",
       "a single failed control does not stop the run"),

    # --- ops/year.py: the year folder -------------------------------------------------------------------------
    _m("ops/year", "year-manifest-chain-self", '        if entry.get("prev_manifest_sha256") != previous_manifest:',
       '        if entry.get("prev_manifest_sha256") != entry.get("prev_manifest_sha256"):',
       "the chain of previous manifests is compared with itself"),
    _m("ops/year", "year-stage-input-unchecked", "        for kind, label in _FILE_KINDS:",
       "        for kind, label in _FILE_KINDS[1:]:", "a stage's input copy is not hashed"),
    _m("ops/year", "year-stage-manifest-unchecked", "        for kind, label in _FILE_KINDS:",
       "        for kind, label in _FILE_KINDS[:3]:", "a stage's manifest is not hashed"),
    _m("ops/year", "year-stage-hash-self", '            if digest != entry[kind]["sha256"]:',
       "            if digest != digest:", "every stage file's hash is compared with itself"),
    _m("ops/year", "year-status-other-district",
       '                if not same_district(parameters["district"], year["district"]) or parameters["year"] != year["year"]:',
       '                if parameters["year"] != year["year"]:',
       "status accepts a stage manifest of another district"),
    _m("ops/year", "year-stage-input-other-district", "        if not same_district(parameters.district, district):",
       "        if not same_district(parameters.district, parameters.district):",
       "a stage takes another district's input"),
    _m("ops/year", "year-stage-input-other-year", "        if parameters.year != year:",
       "        if parameters.year != parameters.year:", "a stage takes another year's input"),
    _m("ops/year", "year-back-one-stage", "    if done and stage_rank(done[-1]) > stage_rank(name):",
       "    if done and stage_rank(done[-1]) > stage_rank(name) + 1:", "going back exactly one stage is allowed"),
    _m("ops/year", "year-abrechnung-without-satzung",
       '    needed = "satzung" if number == 1 or name == "abrechnung" else',
       '    needed = "satzung" if number == 1 else', "abrechnung runs without satzung"),
    _m("ops/year", "year-second-change-boundary", "    if number is not None and number >= 2 and supersede is None:",
       "    if number is not None and number > 2 and supersede is None:",
       "a second retroactive change (aenderung-2) needs no reason"),
    _m("ops/year", "year-repeat-last-stage", "    if name in done and supersede is None:",
       "    if name in done[:-1] and supersede is None:", "the stage run last may run again without a reason"),
    _m("ops/year", "year-register-unchecked", '                if entry["mode"] == "final" and register is not None:',
       '                if entry["mode"] == "Final" and register is not None:',
       "status does not look up final stages in the register"),
    _m("ops/year", "year-orphan-folder-missed", '_STAGE_FOLDER = re.compile(r"[0-9]{2,}-.+")',
       '_STAGE_FOLDER = re.compile(r"[0-9]{3,}-.+")', "an orphan stage folder NN-stage is not reported"),
    _m("ops/year", "year-line-seal-self",
       '    if ("year_sha256" in entry or SEAL in entry) and entry.get(SEAL) != seal_of(entry):',
       '    if ("year_sha256" in entry or SEAL in entry) and entry.get(SEAL) != entry.get(SEAL):',
       "a stage line's seal is compared with itself"),
    _m("ops/year", "year-line-binding-self", '    if "year_sha256" in entry and (entry["year_sha256"] != year["_sha256"]',
       '    if "year_sha256" in entry and (entry["year_sha256"] != entry["year_sha256"]',
       "a stage line's binding to jahr.json (its hash) is compared with itself"),

    # --- runs/register.py: the register of final runs --------------------------------------------------------
    _m("runs/register", "register-final-exists-dropped", "    if last is not None and supersede is None:",
       "    if False:", "a second final run for the district and year needs no reason"),
    _m("runs/register", "register-nothing-to-supersede-dropped", "    if last is None and supersede is not None:",
       "    if False:", "--supersede without a final run to supersede is accepted"),
    _m("runs/register", "register-reason-length-boundary", "    if supersede is not None and len(supersede) > MAX_REASON:",
       "    if supersede is not None and len(supersede) >= MAX_REASON:", "a reason of exactly MAX_REASON characters is refused"),
    _m("runs/register", "register-blank-reason", "    if supersede is not None and not supersede.strip():",
       "    if supersede is not None and not supersede:", "a reason of blanks only is accepted"),
    _m("runs/register", "register-supersedes-off-by-one", '        "supersedes": lines[-1].entry["seq"] if lines else None,',
       '        "supersedes": len(lines) - 1 if lines else None,', "an entry names the run before the one it supersedes"),
    _m("runs/register", "register-legacy-not-adopted", "    if view.legacy:", "    if False:",
       "a register written before the chain is not adopted into the new chain"),
    _m("runs/register", "register-hard-link-accepted",
       "        if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1:",
       "        if not stat.S_ISREG(status.st_mode):", "a register file with a second hard link is appended to"),
    _m("runs/register", "register-undo-first-file-only", "            for appender in appenders:\n                appender.undo()",
       "            for appender in appenders[:1]:\n                appender.undo()",
       "a failed write takes back the district file's line but not the chain's"),
    _m("runs/register", "register-subfolder-accepted", "    if resolved.is_relative_to(register.resolve()):",
       "    if resolved == register.resolve():", "an output folder inside the register (below it) is accepted"),
    _m("runs/register", "register-superseded-in-force",
       '    return current, current is not None and current.get("output_sha256") == earlier.sha256',
       "    return current, current is not None", "every final run counts as the one in force"),
    _m("runs/register", "register-slug-collision-ignored", "    if name in view.files:\n", "    if False:\n",
       "two districts with the same slug share one register file"),
    _m("runs/register", "register-final-manifest-ignored", "    if problems:\n        raise RefusedError(problems)",
       "    if False:\n        raise RefusedError(problems)",
       "an output whose manifest says it is a final run's may be overwritten"),
    _m("runs/register", "register-lock-not-regular", "    if not stat.S_ISREG(mode):\n        os.close(descriptor)",
       "    if False:\n        os.close(descriptor)", "a lock file that is no regular file (a FIFO) is used",
       "tests/test_register.py", _TAMPERED, "-k", "register or lock"),

    # --- runs/pipeline.py: the run -------------------------------------------------------------------------------
    _m("runs/pipeline", "pipeline-output-exists-dropped", "        if os.path.lexists(output_path):\n",
       "        if False:\n", "a final run overwrites an existing workbook (register-output-exists)"),
    _m("runs/pipeline", "pipeline-output-dangling-link", "        if os.path.lexists(output_path):\n",
       "        if os.path.exists(output_path):\n", "a final run writes through a dangling link at the output"),
    _m("runs/pipeline", "pipeline-manifest-left-behind", "            for path in (output_path, manifest_path(output_path)):",
       "            for path in (output_path,):", "a failed final run leaves its manifest behind"),
    _m("runs/pipeline", "pipeline-workbook-left-behind",
       "                with contextlib.suppress(FileNotFoundError):\n                    Path(output_path).unlink()",
       "                with contextlib.suppress(FileNotFoundError):\n                    pass",
       "a test run whose manifest cannot be written leaves its workbook behind"),
    _m("runs/pipeline", "pipeline-validity-last-year", "    if not rulebook.valid_from <= parameters.year <= rulebook.valid_to:",
       "    if not rulebook.valid_from <= parameters.year < rulebook.valid_to:",
       "a rule file's last valid year is refused"),
    _m("runs/pipeline", "pipeline-validity-district-self", "    if not same_district(rulebook.district, parameters.district):",
       "    if not same_district(rulebook.district, rulebook.district):",
       "a rule file of another district is accepted"),
    _m("runs/pipeline", "pipeline-override-final", '    if mode == "final":\n        raise RefusedError',
       '    if mode == "Final":\n        raise RefusedError', "a final run may --ignore-validity"),
    _m("runs/pipeline", "pipeline-override-folder", "    if folder:\n        raise RefusedError",
       "    if False:\n        raise RefusedError", "--ignore-validity is accepted with a rules folder"),
    _m("runs/pipeline", "pipeline-max-lines-boundary", "    if lines > MAX_LINES:", "    if lines >= MAX_LINES:",
       "a workbook of exactly MAX_LINES lines is refused"),
    _m("runs/pipeline", "pipeline-accept-not-called", "        if accept is not None:\n            accept(book)",
       "        if accept is not None:\n            pass", "the caller's check of the read workbook (year folder, web page) is skipped"),
    _m("runs/pipeline", "pipeline-replay-without-override", '    ignore_validity = parameters.get("ignore_validity")',
       "    ignore_validity = None", "the replay of a run with --ignore-validity does not override"),
    _m("runs/pipeline", "pipeline-rate-errors-pass", '    if [p for p in rate_problems if p.severity == "error"]:',
       '    if [p for p in rate_problems if p.severity == "warning"]:', "wrong Umlagesaetze rows stop nothing"),

    # --- runs/readback.py: reading what the product wrote ------------------------------------------------------
    _m("runs/readback", "readback-bad-line-skipped", "        except JsonRefused as refused:\n            raise stop(",
       "        except JsonRefused as refused:\n            continue\n            raise stop(",
       "a register or chain line that is not JSON is skipped"),
    _m("runs/readback", "readback-other-district-self",
       "    if relation.district is not None and not same_district(district, relation.district):",
       "    if relation.district is not None and not same_district(district, district):",
       "an earlier output of another district is accepted"),
    _m("runs/readback", "readback-previous-same-year", '        wanted = {"previous": relation.year - 1}',
       '        wanted = {"previous": relation.year}', "the previous year's output must be of the same year"),
    _m("runs/readback", "readback-protocol-year-ignored",
       '    if found.get("Kreis") != earlier.district or year != earlier.year:',
       '    if found.get("Kreis") != earlier.district:',
       "a manifest sealed again with another year passes"),
    _m("runs/readback", "readback-earlier-same-second", "    if relation.started is not None and earlier.started > relation.started:",
       "    if relation.started is not None and earlier.started >= relation.started:",
       "an earlier run started in the same second is not earlier"),
    _m("runs/readback", "readback-register-has-no-hash",
       "        return 0 < seq <= len(lines) and lines[seq - 1].sha256 == sha256",
       "        return 0 < seq <= len(lines)", "a register entry is found by its number alone, not its hash"),
    _m("runs/readback", "readback-chain-extra-link", "        if len(links) > len(lines):",
       "        if len(links) > len(lines) + 1:", "one chain link without its district line passes"),
    _m("runs/readback", "readback-first-in-force", "        return entries[-1] if entries else None",
       "        return entries[0] if entries else None", "the first final run stays in force"),
    _m("runs/readback", "readback-entry-time-unchecked",
       '                                ("recorded_utc", isinstance(entry.get("recorded_utc"), str))) if not ok]',
       '                                ("recorded_utc", True)) if not ok]',
       "a register entry without recorded_utc passes"),

    # --- calc: deciding, splitting, levies, stage effects, printed rates ---------------------------------------
    _m("calc/allocate", "allocate-unique-takes-any", "        return next(iter(matched)) if len(matched) == 1 else None",
       "        return next(iter(matched))", "hit_policy unique takes any of several matching rules"),
    _m("calc/allocate", "allocate-priority-lowest", "    order = {rule.id: (-rule.priority, rule.index) for rule in rulebook.rules}",
       "    order = {rule.id: (rule.priority, rule.index) for rule in rulebook.rules}", "the lowest priority wins"),
    _m("calc/allocate", "allocate-priority-later-rule",
       "    order = {rule.id: (-rule.priority, rule.index) for rule in rulebook.rules}",
       "    order = {rule.id: (-rule.priority, -rule.index) for rule in rulebook.rules}",
       "of equal priorities the later rule wins"),
    _m("calc/allocate", "allocate-key-weights-percent", "            keys[ags] += Fraction(weight) / 100 * value / total",
       "            keys[ags] += Fraction(weight) * value / total", "a weighted key is not divided by 100"),
    _m("calc/allocate", "allocate-credit-hosts-dropped", "        if rule.credit_hosts and rule.route in LEVY_ROUTES:",
       "        if False:", "credit_hosts: true is ignored"),
    _m("calc/levies", "levies-factor-dropped", "    if factor is not None:\n        exact *= factor",
       "    if False:\n        exact *= factor", "a statute amount ignores the extent factor"),
    _m("calc/levies", "levies-given-need-dropped",
       "        need = sum(item.deficit for item in items) + needs.get(levy.id, 0)",
       "        need = sum(item.deficit for item in items)", "an Umlagebedarf given without cost item is left out of the need"),
    _m("calc/levies", "levies-yield-boundary", "        if abs(levy.difference) > tolerance:",
       "        if abs(levy.difference) >= tolerance:", "a yield exactly at the tolerance is a Hinweis"),
    _m("calc/levies", "levies-yield-one-payer-less",
       "        tolerance = max(levy.need * YIELD_TOLERANCE_PERCENT // 100, unit * len(levy.lines))",
       "        tolerance = max(levy.need * YIELD_TOLERANCE_PERCENT // 100, unit * (len(levy.lines) - 1))",
       "the yield tolerance allows one rounding unit fewer"),
    _m("calc/levies", "levies-rate-100-refused", "    if not Decimal(0) <= entry.rate <= Decimal(100):",
       "    if not Decimal(0) <= entry.rate < Decimal(100):", "a rate of exactly 100 % is refused"),
    _m("calc/levies", "levies-spread-boundary", "        if Fraction(highest) > Fraction(lowest) * ratio:",
       "        if Fraction(highest) >= Fraction(lowest) * ratio:", "a spread exactly at the state's limit is refused"),
    _m("calc/levies", "levies-cap-boundary", "            if is_key_allocation(column) and rate > lowest:",
       "            if is_key_allocation(column) and rate >= lowest:",
       "a rate on Schluesselzuweisungen equal to the lowest tax rate is refused"),
    _m("calc/stages", "stages-rate-effect-in-cents",
       "    rate_effect = round_to_unit(new_base * (new_rate - old_rate) / 100, unit)",
       "    rate_effect = round_to_unit(new_base * (new_rate - old_rate) / 100, 1)",
       "the rate effect is rounded to the cent under Euro rounding"),
    _m("calc/stages", "stages-offsetting-unchanged", "    if effects.change == 0 and effects.base_effect == 0:",
       "    if effects.change == 0:", '"bleibt unverändert" when two effects offset each other'),
    _m("calc/stages", "stages-same-base-to-base", "    if new_base == old_base:\n        return Effects(change, 0, change)",
       "    if new_base == old_base:\n        return Effects(change, change, 0)",
       "with unchanged bases the change is called a base effect"),
    _m("calc/rates", "rates-floor-one-payer-less", "    return max(abs(need) * TOLERANCE_SHARE, Fraction(payers * unit, 2))",
       "    return max(abs(need) * TOLERANCE_SHARE, Fraction((payers - 1) * unit, 2))",
       "the tolerance floor allows half a unit for one payer fewer"),
    _m("calc/rates", "rates-within-strict", "        if abs(sum(_amounts_at_rate(ratios, rate, unit)) - need) <= allowed:",
       "        if abs(sum(_amounts_at_rate(ratios, rate, unit)) - need) < allowed:",
       "a yield exactly at the tolerance is a miss"),
    _m("calc/rates", "rates-max-decimals-untried", "    for decimals in range(declared, max(declared, MAX_DECIMALS) + 1):",
       "    for decimals in range(declared, max(declared, MAX_DECIMALS)):", "a rate with MAX_DECIMALS decimals is never tried"),

    # --- core: money and instalments ------------------------------------------------------------------------------
    _m("core/money", "money-half-down", "    if 2 * rest >= denominator:", "    if 2 * rest > denominator:",
       "halves round towards zero"),
    _m("core/money", "money-half-even", "    if 2 * rest >= denominator:",
       "    if 2 * rest > denominator or (2 * rest == denominator and whole % 2):", "halves round to even (Python's round)"),
    _m("core/money", "money-ties-by-row-order", "key=lambda a: (-remainders[a], a))", "key=lambda a: -remainders[a])",
       "equal remainders go by row order, not by AGS"),
    _m("core/money", "money-round-down-away-from-zero", "    return sign * (abs(cents) // multiple * multiple)",
       "    return cents // multiple * multiple", "a negative amount is rounded down away from zero (Saarland)"),
    _m("core/instalments", "instalments-saarland-in-cents", '    return 100 if schedule.split == "saarland" else 1',
       "    return 1", "Saarland instalments and change notices are split in cents, not whole euros"),
    _m("core/instalments", "instalments-quarterly-text-month-first",
       'f"{day:02d}.{month:02d}." for month, day in self.days)', 'f"{month:02d}.{day:02d}." for month, day in self.days)',
       "the quarterly due dates are printed month first"),
    _m("core/instalments", "instalments-change-due-on-notice-date-open",
       "    open_lines = [i for i in old if i.due > notice_date]\n"
       "    lines = [ChangeLine(i.number, i.due, i.amount, i.amount, True) for i in old if i.due <= notice_date]",
       "    open_lines = [i for i in old if i.due >= notice_date]\n"
       "    lines = [ChangeLine(i.number, i.due, i.amount, i.amount, True) for i in old if i.due < notice_date]",
       "an instalment due on the notice date is still changed"),
    _m("core/instalments", "instalments-at-once-on-last", "        shares = [difference] + [0] * (len(open_lines) - 1)",
       "        shares = [0] * (len(open_lines) - 1) + [difference]", "at_once puts the difference on the last instalment"),
    _m("core/instalments", "instalments-december-same-year",
       "    return due_date(day.year + (day.month == 12), month, day.day)", "    return due_date(day.year, month, day.day)",
       "one month after a December date falls in January of the same year"),
    _m("core/instalments", "instalments-settlement-due-on-notice-date-open",
       "    paid = [i for i in regular if i.due <= notice_date]\n    open_ = [i for i in regular if i.due > notice_date]",
       "    paid = [i for i in regular if i.due < notice_date]\n    open_ = [i for i in regular if i.due >= notice_date]",
       "an instalment due on the notice date is settled, not paid provisionally"),
    _m("ops/trueup", "trueup-other-district",
       "    if not same_district(book.parameters.district, paid.district) or book.parameters.year != paid.year:",
       "    if book.parameters.year != paid.year:", "trueup takes another district's actuals"),

    # --- a second set, written after the first run's 25 survivors were pinned, from the code alone ---------------
    _m("ops/verify", "verify-hidden-row-ignored", '                layout[f"Zeile {row_number} ausgeblendet"] = True',
       "                pass", "a row hidden in the recorded workbook is not reported"),
    _m("ops/verify", "verify-layout-replayed-aspects-only",
       "            for aspect in list(layout_a[sheet]) + [k for k in layout_b[sheet] if k not in layout_a[sheet]]:",
       "            for aspect in list(layout_a[sheet]):", "a layout aspect only the recorded workbook has is ignored"),
    _m("ops/verify", "verify-upward-unchecked", '    if manifest.get("upward"):\n        entries.append(',
       '    if False:\n        entries.append(', "the level above's output is not checked by its hash"),
    _m("ops/verify", "verify-rates-from-unchecked", '    if manifest.get("rates_from"):\n        entries.append(',
       '    if False:\n        entries.append(', "the previous year's workbook of the rates is not checked by its hash"),
    _m("ops/notices", "notices-unknown-ags-passes", '    if unknown:\n        raise InputError([Problem("notices-unknown-ags"',
       '    if False:\n        raise InputError([Problem("notices-unknown-ags"', "--ags with an AGS not in the run passes"),
    _m("ops/notices", "notices-address-of-a-stranger",
       "        if ags not in known:\n            problems.append(problem(f\"{ags or 'leer'} ist kein Mitglied",
       "        if False:\n            problems.append(problem(f\"{ags or 'leer'} ist kein Mitglied",
       "an address for an AGS that is no member of the run is accepted"),
    _m("ops/notices", "notices-zero-correction-booked", "        if r.old is not None and amount == 0:\n            continue",
       "        if False:\n            continue", "Sollstellung.csv books a correction of 0,00 €"),
    _m("calc/controls", "controls-route-sums-unchecked", "    for control in controls:\n        if not control.ok:",
       "    for control in controls[:1]:\n        if not control.ok:", "only the first control can fail the run"),
    _m("ops/year", "year-line-mode-unchecked",
       '    if entry.get("mode") != ("final" if _kind(stage) in FINAL_STAGES else "test"):',
       "    if False:", "a stage line whose run mode does not fit its stage passes"),
    _m("ops/year", "year-line-folder-unchecked", '    if folder != f"{number:02d}-{stage}":', "    if False:",
       "a stage line that names another stage's folder passes"),
    _m("ops/year", "year-blank-reason", "    if supersede is not None and not supersede.strip():\n        return [_refusal(",
       "    if supersede is not None and not supersede:\n        return [_refusal(", "a stage reason of blanks only passes"),
    _m("ops/year", "year-rules-folder-accepted", "    if rules_path.is_dir():\n        raise YearError(",
       "    if False:\n        raise YearError(", "a stage takes a rules folder"),
    _m("ops/year", "year-register-stage-missing-in-chain",
       '                if line.entry.get("year_folder") == mine and line.entry.get("stage") not in names:',
       "                if False:", "a final stage the register holds but the chain lacks is not reported"),
    _m("runs/register", "register-folder-in-register-accepted",
       "    if resolved.is_relative_to(register.resolve()):\n        shown",
       "    if resolved == register.resolve():\n        shown", "notices may write into a folder below the register"),
    _m("runs/pipeline", "pipeline-blank-override-reason", "    if not ignore_validity.strip():",
       "    if not ignore_validity:", "--ignore-validity with a reason of blanks only passes"),
    # --- a third set, written after the second set's survivors were pinned, from the code alone -----------------
    _m("runs/readback", "readback-empty-chain-file-passes", "    if not data:\n        raise stop(",
       "    if False:\n        raise stop(", "an emptied chain or register file passes"),
    _m("runs/readback", "readback-cut-last-line-passes", '    if not data.endswith(b"\\n"):\n        raise stop(',
       '    if False:\n        raise stop(', "a last line cut short (no line end) passes"),
    _m("runs/readback", "readback-manifest-nul-passes", '        if isinstance(value, str) and "\\x00" in value:',
       '        if False:', "a manifest text with a NUL character passes"),
    _m("runs/readback", "readback-test-manifest-with-register", '    if "register" in manifest and mode != "final":',
       "    if False:", "a test run's manifest that carries a register entry passes"),
    _m("runs/readback", "readback-earlier-same-workbook", "    if relation.sha256 is not None and earlier.sha256 == relation.sha256:",
       "    if False:", "a change notice's --previous may be the very same workbook"),
    _m("runs/readback", "readback-later-register-line", '    return not (mine and later and mine["file"] == later["file"] and mine["seq"] >= later["seq"])',
       '    return not (mine and later and mine["file"] == later["file"] and mine["seq"] > later["seq"])',
       "an earlier run registered at the same line number passes"),
    _m("ops/verify", "verify-bases-from-unchecked", '    if manifest.get("bases_from"):\n        entries.append(',
       '    if False:\n        entries.append(', "the previous year's bases workbook is not checked by its hash"),
    _m("ops/verify", "verify-col-hidden-ignored",
       '                    if _hidden(element):\n                        layout[f"Spalte {column_letter(column)} ausgeblendet"] = True',
       "                    if False:\n                        pass", "a column hidden in the recorded workbook is not reported"),
    _m("ops/verify", "verify-filter-ignored", '            layout["Autofilter"] = element.get("ref")',
       "            pass", "an auto-filter changed in the recorded workbook is not reported"),
    _m("ops/notices", "notices-ags-blank-list-passes", "    if not wanted:\n        raise InputError(",
       "    if False:\n        raise InputError(", "--ags with only blanks and commas writes for nobody without a word"),
    _m("ops/notices", "notices-template-inside-output", "    if inside:", "    if False:",
       "the output folder may lie inside the template folder"),
    _m("ops/year", "year-init-nonempty-folder", "    if folder.exists() and any(folder.iterdir()):",
       "    if False:", "year init takes a folder that already holds files"),
    _m("ops/year", "year-init-year-bounds", "    if not 1900 <= year <= 2999:", "    if not 1900 <= year <= 9999:",
       "year init takes a year beyond 2999"),
    _m("ops/year", "year-line-seq-unchecked", '    if entry.get("seq") != number:', "    if False:",
       "a stage line with another number passes"),
    # --- set 4: the remedy by the state's law (issue 22), written with its code ----------------------------------
    _m("ops/notices", "notices-remedy-missing-passes", '            if file == "rechtsbehelf.typ" and not remedy:',
       "            if False:", "a final notice goes out without a remedy anyone checked"),
    _m("ops/notices", "notices-remedy-choice-without-court",
       '            if file == "rechtsbehelf.typ" and remedy == "widerspruch":',
       '            if file == "rechtsbehelf.typ" and remedy in ("widerspruch", "wahl"):',
       "a choice of Widerspruch or Klage goes out without the court"),
    _m("ops/notices", "notices-remedy-unverified-applied", '    fact, value = law.fact("remedy", year), law.applied("remedy", year)',
       '    fact = law.fact("remedy", year)\n    value = fact.value if fact is not None else None',
       "a state profile's unverified remedy decides the notice"),
    _m("ops/notices", "notices-remedy-profile-over-letterhead",
       "    if settings.letterhead.remedy:\n        return settings.letterhead.remedy,",
       "    if settings.letterhead.remedy and False:\n        return settings.letterhead.remedy,",
       "the Kreis's own remedy is ignored"),
    _m("ops/notices", "notices-remedy-trail-blank", "({basis or 'keine Angabe'})\"\n", "(keine Angabe)\"\n",
       "the Protokoll does not say what decided the remedy"),
    _m("rulefiles/notice_settings", "settings-remedy-any-word", "    if remedy and remedy not in state_law.REMEDIES:",
       "    if False:", "any word passes as a remedy", "tests/test_remedy.py", "tests/test_notice_settings.py"),
    _m("rulefiles/notice_settings", "settings-remedy-case-strict", "    remedy = written.casefold()",
       "    remedy = written", "a remedy written with a capital letter is refused",
       "tests/test_remedy.py", "tests/test_notice_settings.py"),
    _m("ops/notices", "notices-remedy-words-unchecked", "        lacking = _remedy_words_missing(codes.values(), remedy)",
       "        lacking = []", "an own text (or an earlier default's copy) that names only a Klage goes out under a "
       "Widerspruch"),
    _m("ops/notices", "notices-remedy-old-copy-is-own", '    return "klage" if "platzhalter(" in code and',
       '    return "own" if "platzhalter(" in code and', "the Protokoll calls an earlier default's copy an own text"),
    _m("ops/notices", "notices-trail-letterhead-unnamed", "    if letterhead is not None:  # the installation's",
       "    if False:  # the installation's", "the Protokoll does not name the installation's letterhead file"),
    _m("ops/notices", "notices-template-hash-blind",
       "        copied[Path(relative).as_posix()] = hashlib.sha256(data).hexdigest()",
       "        copied[Path(relative).as_posix()] = \"\"", "the Protokoll's template hash does not see the files' text"),
    _m("rulefiles/loading", "loading-remedy-installation-ignored",
       "                 _installation_or_none(reader) if \"notices\" in document or \"instalments\" in document else None)",
       "                 None)",
       "check warns of a missing remedy the installation's letterhead file gives", "tests/test_remedy.py"),
    _m("rulefiles/notice_settings", "settings-remedy-faulty-also-missing",
       "        return  # written, but not as klage, widerspruch or wahl: the error says so", "        pass",
       "a remedy written wrong is also reported as missing", "tests/test_remedy.py"),
    _m("ops/notices", "notices-remedy-own-text-recorded-as-remedy", '    if style == "own":\n        return "eigener',
       '    if False:\n        return "eigener', "the Protokoll names a remedy the Kreis's own text does not print"),
    _m("rulefiles/notice_settings", "settings-remedy-missing-silent",
       '    if not given and law.applied("remedy", year) is None:', "    if False:",
       "check says nothing of a remedy missing before the final run", "tests/test_remedy.py", "tests/test_states.py"),
    _m("rulefiles/notice_settings", "settings-remedy-differs-silent", "    elif given and read and given != read:",
       "    elif False:", "check says nothing of a remedy other than the profile's reading", "tests/test_remedy.py"),
    _m("runs/pipeline", "pipeline-api-mode-unchecked", '    if mode not in ("test", "final"):',
       '    if mode not in ("test", "final", "Final"):', "the Python API runs a Probelauf for mode=\"Final\""),
    # --- set 5: the letters' data in a file, the template read once, letterhead errors located (issue 22) -------
    _m("ops/typst_child", "child-data-first-only", "                handle.write(data)",
       '                handle.write(job["documents"][0][1])', "every letter of a run gets the first letter's data",
       "tests/test_notice_data.py"),
    _m("ops/typst_child", "child-inputs-dropped",
       '        inputs = {"sys_inputs": {"data": data}} if job["inputs"] else {}', "        inputs = {}", "a template of its own that reads sys.inputs.data gets nothing there",
       "tests/test_notice_data.py"),
    _m("ops/notices", "notices-inputs-unseen", "relative in (texts or {})) and _reads_inputs(data)",
       "relative in (texts or {})) and False", "a template that reads sys.inputs is not recognised",
       "tests/test_notice_data.py"),
    _m("ops/notices", "notices-data-name-free", "                if path.relative_to(source) == Path(DATA_FILE):",
       "                if False:", "a template's own file of the data file's name is overwritten and read as data",
       "tests/test_notice_data.py"),
    _m("ops/notices", "notices-template-reread",
       "            data = texts[relative] if texts is not None and source == sources[-1] and relative in texts \\",
       "            data = _read_template_file(source, relative) if True else texts[relative] if texts is not None "
       "and source == sources[-1] and relative in texts \\",
       "the compile reads the Kreis's files again instead of the bytes checked", "tests/test_remedy.py"),
    _m("ops/notices", "notices-template-added-unchecked",
       "            if relative not in texts:",
       "            if False:", "a .typ file added after the check is compiled unchecked", "tests/test_remedy.py"),
    _m("ops/notices", "notices-references-unfollowed",
       "        pending += sorted(_referenced(relative, texts[relative], names) - set(texts))",
       "        pending += []", "a placeholder in a file the template includes goes out", "tests/test_remedy.py"),
    _m("rulefiles/loading", "loading-letterhead-faults-unsaid", '            reader.warning("rule-letterhead-faulty",',
       '            if False: reader.warning("rule-letterhead-faulty",', "check says nothing of a faulty letterhead "
       "file that notices would refuse", "tests/test_remedy.py"),
    _m("ops/notices", "notices-placeholder-at-line-1",
       "    where = settings.letterhead_at or Location(str(rules_path), line=1, col=1)",
       "    where = Location(str(rules_path), line=1, col=1)",
       "a missing letterhead text is located at the rule file's first line", "tests/test_remedy.py",
       "tests/test_notices_letters.py"),
    _m("rulefiles/loading", "loading-letterhead-title-lost", "                          LetterheadFileError)",
       "                          RuleFileError)", "a fault in the installation's letterhead file is titled as the "
       "rule file's", "tests/test_notices_letters.py"),
    # --- set 6: placeholders as printed; SIGTERM's clean-ups ------------------------------------------------------
    _m("ops/notices", "notices-blanks-uncollapsed", '        if text.isspace() or text == "~":',
       "        if False:", "a blank written as an escape (JSON's \\u00a0) prints but is not read as one",
       "tests/test_remedy.py"),
    _m("ops/notices", "notices-escapes-undecoded", "        if hexa is not None:", "        if False:",
       "an escape (\\u{28}) is read as a backslash, not as what it prints", "tests/test_remedy.py"),
    _m("ops/notices", "notices-comment-anywhere", '_COMMENT = re.compile(r"(?<!\\S)(?://|/\\*)")',
       '_COMMENT = re.compile(r"(?://|/\\*)")', 'a "//" straight after text ("a//b") hides the rest of its line',
       "tests/test_remedy.py"),
    _m("ops/notices", "notices-nul-is-binary", '        return data.decode("utf-8")\n    except UnicodeDecodeError:',
       '        assert b"\\0" not in data[:8192]\n        return data.decode("utf-8")\n'
       '    except (UnicodeDecodeError, AssertionError):',
       "a NUL byte makes a .typ file a picture, never scanned", "tests/test_remedy.py"),
    _m("ops/notices", "notices-exempt-by-line",
       '            if marker == "PLATZHALTER:" and number in definition:',
       '            if "platzhalter(" in line:', "any marker on a line that calls platzhalter( is let through, and a "
       "wrapped definition refused", "tests/test_remedy.py"),
    _m("core/signals", "signals-held-noop",
       "    before = {number: signal.signal(number, lambda number, frame: noted.append(number)) for number in numbers}",
       "    before = {}", "nothing is held: a signal cuts a register entry or the files' move in two",
       "tests/test_stop_signals.py", "tests/test_gates_register.py"),
    _m("core/signals", "signals-held-order",
       "        for number in sorted(dict.fromkeys(noted), key=lambda number: number != signal.SIGTERM):",
       "        for number in dict.fromkeys(noted):", "a held Ctrl-C passed on before a held SIGTERM loses it",
       "tests/test_stop_signals.py"),
    _m("cli/__init__", "cli-sigterm-unwrapped",
       '    stop = contextlib.nullcontext() if args.command in ("batch", "inbox", "serve") else clean_stop()',
       "    stop = contextlib.nullcontext()", "SIGTERM ends a command at once, its temporary files left",
       "tests/test_stop_signals.py"),
    _m("cli/__init__", "cli-terminated-uncaught", "    except Terminated:  # SIGTERM",
       "    except ZeroDivisionError:  # SIGTERM", "a Terminated that escapes its block ends in a traceback, exit 1",
       "tests/test_stop_signals.py"),
    _m("runs/pipeline", "pipeline-commit-sigterm-unheld",
       "    with held(signal.SIGINT, signal.SIGTERM):\n        commit(view, pending)",
       "    with held(signal.SIGINT):\n        commit(view, pending)", "SIGTERM during a final run's register "
       "entry is not held: the entry may be cut in two, or the outputs removed after it", "tests/test_stop_signals.py"),
    _m("core/filenames", "filenames-temporary-folder-kept", "                shutil.rmtree(folder, ignore_errors=True)",
       "                pass", "the letters' temporary folder stays after a failure or a stop",
       "tests/test_stop_signals.py", "tests/test_notices_hostile.py"),
    _m("ops/notices", "notices-comment-in-string", "        if string or raw:  # not a comment",
       "        if False:", 'a "//" or "/*" inside a string or raw text hides text as a comment would',
       "tests/test_remedy.py"),
    _m("ops/notices", "notices-read-typ-stripped",
       "    return {template / relative: _code(text, _is_code(relative) and relative not in raw)",
       "    return {template / relative: _code(text, _is_code(relative))",
       "a .typ file the template read()s is checked without what prints from its comments", "tests/test_remedy.py"),
    _m("ops/notices", "notices-definition-anywhere", '        elif line[:1] not in ("", " ", "\\t"):',
       "        elif False:", "every line after the platzhalter definition counts as part of it",
       "tests/test_remedy.py"),
    _m("ops/notices", "notices-comments-everywhere", "    return _without_comments(text) if typst else text",
       "    return _without_comments(text)", "what looks like a comment in a file read() prints goes unchecked",
       "tests/test_remedy.py"),
    _m("core/signals", "signals-swallowed-terminated-forgotten", "        if sigterm:  # whatever became",
       "        if False:  # whatever became", "a swallowed Terminated lets the command carry on to exit 0",
       "tests/test_stop_signals.py"),
    _m("rulefiles/engine", "engine-stops-unheld", "    with _host_lock, held(signal.SIGINT, signal.SIGTERM):",
       "    with _host_lock:", "a Ctrl-C inside durable_rules is swallowed into a false EngineFailure",
       "tests/test_engine.py"),
    _m("ops/year", "year-registered-stage-removed",
       '            if not _registered(folder, name, target / f"ergebnis-{name}.xlsx", register_dir):',
       "            if True:", "a final stage stopped after its registration is removed under the registered run",
       "tests/test_stop_signals.py"),
)

# Survivors argued equivalent: mutant id -> why no test can tell the mutant from the code (README, "Mutation check").
EQUIVALENT: dict[str, str] = {}


# ------------------------------------------------------------------------------------------------ running


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # KILLED, TIMEOUT, SURVIVED, STALE, INVALID, ERROR
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Copy:
    """A private copy of the tree a worker mutates, one mutant at a time."""

    root: Path
    originals: dict[str, str] = field(default_factory=dict)


def selection(mutant: Mutant) -> tuple[str, ...]:
    return mutant.tests or SELECTIONS[mutant.module]


def mutated_source(mutant: Mutant, source: str) -> tuple[str | None, str, str]:
    """(mutated text or None, status if not runnable, why)."""
    count = source.count(mutant.anchor)
    if count != 1:
        return None, "STALE", f"anchor found {count} times (expected once)"
    if mutant.replacement == mutant.anchor:
        return None, "INVALID", "replacement equals the anchor"
    text = source.replace(mutant.anchor, mutant.replacement, 1)
    try:
        compile(text, mutant.module, "exec")
    except SyntaxError as error:
        return None, "INVALID", f"does not compile: {error.msg} (line {error.lineno})"
    return text, "", ""


def make_copy(base: Path, number: int) -> Copy:
    root = base / f"tree-{number}"
    root.mkdir()
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=IGNORED, symlinks=True)
        elif source.is_file():
            shutil.copy2(source, root / name)
    return Copy(root)


def environment(copy: Copy) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy.root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # no bytecode: a mutant and the restored module can have the same size and modification second, and a cached
    # .pyc of one would be taken for the other
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("HYPOTHESIS_PROFILE", None)  # the default profile, as in CI
    return env


def check_imports_copy(copy: Copy) -> None:
    """The copy's package is the one imported (not an installed one), also in subprocesses of the tests."""
    done = subprocess.run([sys.executable, "-c", "import allocation, sys; sys.stdout.write(allocation.__file__)"],
                          cwd=copy.root, env=environment(copy), capture_output=True, text=True, timeout=120)
    found = Path(done.stdout.strip()).resolve() if done.returncode == 0 else None
    if found is None or not found.is_relative_to(copy.root.resolve()):
        raise SystemExit(f"the copy's package is not the one imported: {done.stdout or done.stderr}")


def run_pytest(copy: Copy, arguments: tuple[str, ...], timeout: float) -> tuple[str, float, str]:
    """Run the selection in the copy: (KILLED | SURVIVED | TIMEOUT | ERROR, seconds, last lines of output)."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *arguments]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=copy.root, env=environment(copy), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the selection and every process it started
        process.communicate()
        return "TIMEOUT", time.monotonic() - started, f"longer than {timeout:.0f} s"
    finally:
        shutil.rmtree(copy.root / ".hypothesis", ignore_errors=True)  # no example carried to the next mutant
    seconds = time.monotonic() - started
    tail = " | ".join(line for line in output.strip().splitlines()[-3:])[-300:]
    if process.returncode == 0:
        return "SURVIVED", seconds, tail
    if process.returncode in (4, 5):  # usage error, no tests collected: the selection is wrong, not the mutant
        return "ERROR", seconds, f"pytest exit {process.returncode}: {tail}"
    return "KILLED", seconds, tail


def run_mutant(copy: Copy, mutant: Mutant, timeout: float) -> Outcome:
    path = copy.root / mutant.module
    original = copy.originals.setdefault(mutant.module, path.read_text(encoding="utf-8"))
    text, status, why = mutated_source(mutant, original)
    if text is None:
        return Outcome(mutant, status, 0.0, why)
    path.write_text(text, encoding="utf-8")
    try:
        status, seconds, tail = run_pytest(copy, selection(mutant), timeout)
    finally:
        path.write_text(original, encoding="utf-8")
    return Outcome(mutant, status, seconds, tail)


def baseline(copy: Copy, selections: list[tuple[str, ...]], timeout: float | None) -> dict[tuple[str, ...], float]:
    """Run every selection once on the unchanged copy; stop the check if one fails. Returns each one's time-out."""
    timeouts = {}
    for arguments in selections:
        status, seconds, tail = run_pytest(copy, arguments, timeout or 3600)
        shown = "passed" if status == "SURVIVED" else status
        print(f"baseline {shown:8} {seconds:6.0f} s  {' '.join(arguments)[:110]}", flush=True)
        if status != "SURVIVED":
            print(f"  the unchanged tree fails this selection ({tail}); fix it before counting mutants",
                  file=sys.stderr)
            raise SystemExit(2)
        timeouts[arguments] = timeout or 3 * seconds + 60
    return timeouts


# ------------------------------------------------------------------------------------------------ report


def write_report(path: Path, outcomes: list[Outcome]) -> None:
    path.write_text(json.dumps([{"id": o.mutant.id, "module": o.mutant.module, "status": o.status,
                                 "seconds": round(o.seconds, 1), "detail": o.detail,
                                 "description": o.mutant.description, "equivalent": EQUIVALENT.get(o.mutant.id)}
                                for o in outcomes], ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def summary(outcomes: list[Outcome]) -> int:
    modules = sorted({o.mutant.module for o in outcomes})
    print()
    print("| module | mutants | killed | of them time-out | survived | survival rate |")
    print("|---|---:|---:|---:|---:|---:|")
    ran_all = survived_all = killed_all = 0
    for module in modules:
        own = [o for o in outcomes if o.mutant.module == module]
        ran = [o for o in own if o.status in ("KILLED", "TIMEOUT", "SURVIVED")]
        killed = sum(o.status in ("KILLED", "TIMEOUT") for o in ran)
        timeouts = sum(o.status == "TIMEOUT" for o in ran)
        survived = sum(o.status == "SURVIVED" for o in ran)
        ran_all, survived_all, killed_all = ran_all + len(ran), survived_all + survived, killed_all + killed
        rate = f"{100 * survived / len(ran):.0f} %" if ran else "–"
        print(f"| {module} | {len(own)} | {killed} | {timeouts} | {survived} | {rate} |")
    rate = f"{100 * survived_all / ran_all:.1f} %" if ran_all else "–"
    print(f"| **all** | {len(outcomes)} | {killed_all} | {sum(o.status == 'TIMEOUT' for o in outcomes)} | "
          f"{survived_all} | **{rate}** |")
    survivors = [o for o in outcomes if o.status == "SURVIVED"]
    if survivors:
        print("\nSurvivors:")
        for o in survivors:
            mark = "  (argued equivalent)" if o.mutant.id in EQUIVALENT else ""
            print(f"- {o.mutant.id} ({o.mutant.module}): {o.mutant.description}{mark}")
    broken = [o for o in outcomes if o.status in ("STALE", "INVALID", "ERROR")]
    if broken:
        print("\nNOT RUN OR NOT COUNTED (the check fails until the table is fixed):", file=sys.stderr)
        for o in broken:
            print(f"- {o.status} {o.mutant.id} ({o.mutant.module}): {o.detail}", file=sys.stderr)
        return 2
    return 1 if any(o.mutant.id not in EQUIVALENT for o in survivors) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", action="append", default=[], help="only the mutants of this module (repeatable)")
    parser.add_argument("--only", action="append", default=[], metavar="ID", help="only this mutant (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and their selections, run nothing")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at a time, each in its own copy (default 1)")
    parser.add_argument("--timeout", type=float, help="seconds per selection (default: 3 × its baseline + 60)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the run of each selection on the unchanged tree (then the time-out is 1 hour)")
    parser.add_argument("--report", type=Path, help="write every outcome to this JSON file")
    args = parser.parse_args(argv)

    ids = [m.id for m in MUTANTS]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"mutant ids twice: {sorted({i for i in ids if ids.count(i) > 1})}")
    unknown = [i for i in args.only if i not in ids] + [m for m in args.module if m not in {x.module for x in MUTANTS}]
    if unknown:
        raise SystemExit(f"no such mutant or module: {', '.join(unknown)}")
    chosen = [m for m in MUTANTS if (not args.only or m.id in args.only) and (not args.module or m.module in args.module)]
    if args.list:  # also says which mutants are STALE or INVALID, without running anything
        broken = 0
        for m in chosen:
            _, status, why = mutated_source(m, (ROOT / m.module).read_text(encoding="utf-8"))
            broken += bool(status)
            print(f"{m.id:44} {m.module:32} {status + ': ' + why if status else m.description}")
            if m.tests:
                print(f"{'':44} tests: {' '.join(m.tests)}")
        print(f"{len(chosen)} mutants, {broken} not runnable; selections per module: SELECTIONS in {Path(__file__).name}")
        return 2 if broken else 0
    if args.jobs < 1:
        raise SystemExit("--jobs is at least 1")

    work = Path(tempfile.mkdtemp(prefix="allocation-mutation-"))
    try:
        copies: queue.Queue[Copy] = queue.Queue()
        for number in range(args.jobs):
            copies.put(make_copy(work, number))
        first = copies.queue[0]
        check_imports_copy(first)
        selections = list(dict.fromkeys(selection(m) for m in chosen))
        if args.no_baseline:
            timeouts = {s: args.timeout or 3600 for s in selections}
        else:
            timeouts = baseline(first, selections, args.timeout)
        print(f"{len(chosen)} mutants, {len(selections)} selections, {args.jobs} at a time", flush=True)
        lock = threading.Lock()
        outcomes: list[Outcome] = []

        def one(mutant: Mutant) -> Outcome:
            copy = copies.get()
            try:
                outcome = run_mutant(copy, mutant, timeouts[selection(mutant)])
            finally:
                copies.put(copy)
            with lock:
                outcomes.append(outcome)
                print(f"[{len(outcomes):3}/{len(chosen)}] {outcome.status:8} {outcome.seconds:6.0f} s  "
                      f"{mutant.id}", flush=True)
                if args.report:  # after every mutant: a run stopped half-way keeps what it found
                    write_report(args.report, outcomes)
            return outcome

        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(one, chosen))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    order = {m.id: i for i, m in enumerate(chosen)}
    outcomes.sort(key=lambda o: order[o.mutant.id])
    if args.report:
        write_report(args.report, outcomes)
    return summary(outcomes)


if __name__ == "__main__":
    sys.exit(main())
