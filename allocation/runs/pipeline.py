"""The yearly run as one function: rules -> input -> decide -> allocate -> controls -> workbook.

Stages are pure functions from values to values; this module wires them in the documented order (the
rule file is checked before any workbook is read) and builds the `Protokoll` rows. The CLI only parses
arguments, calls `run` and maps errors to exit codes.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import signal
from dataclasses import dataclass, replace
from pathlib import Path

from typing import Callable

from ..core import __version__
from ..core import states
from ..calc import levies
from ..calc.allocate import allocate, decide
from ..calc.analysis import check_for_run
from ..calc.bounds import total_problems
from ..calc.controls import Control, run_controls
from ..rulefiles.engine import durable_version
from ..calc.findings import double_burdens
from ..workbook.guard import RefusedError, rule_files
from ..workbook.inputs import read_input, read_input_rows
from ..core.model import Allocation, InputBook, Rulebook, previous_year_problems, same_district
from ..core.problems import InputError, Location, Problem, ProblemsError, RuleFileError
from ..core.signals import held
from ..rulefiles.rulebook import bind, check_levy_columns
from ..rulefiles.selection import select_rules
from .manifest import STARTED_FORMAT, manifest_path

__all__ = ["RunResult", "RuleSelectionError", "compute", "run", "protocol_rows", "validity_problems", "replay"]


@dataclass(frozen=True, slots=True)
class RunResult:
    allocation: Allocation
    controls: tuple[Control, ...]
    warnings: tuple[Problem, ...]
    output: Path | None
    registered: dict | None = None  # a final run's register entry as its manifest records it (with the chain head)


def previous_bases(book: InputBook, previous: InputBook) -> InputBook:
    """The input with each municipality's Umlagegrundlagen taken from the previous year's input.

    § 56 Abs. 1 KrO NRW: while the year's budget statute is not in force, the previous year's bases apply
    provisionally. Every municipality of the input must be in the previous year's `Gemeinden` sheet.
    """
    problems: list[Problem] = previous_year_problems(
        book, previous, "--bases-from", ("input-bases-other-district", "input-bases-not-previous"))
    earlier = {m.ags: m for m in previous.municipalities}
    municipalities = []
    for m in book.municipalities:
        before = earlier.get(m.ags)
        if before is None:
            problems.append(Problem(
                "input-bases-missing", m.cell("AGS"),
                f"{m.name} ({m.ags}) fehlt im Blatt Gemeinden der Vorjahres-Arbeitsmappe {Path(previous.path).name}",
                found=m.ags, expected="jede Gemeinde auch im Vorjahr",
                hint="die Umlagegrundlagen dieser Gemeinde im Vorjahr nachtragen oder ohne --bases-from rechnen"))
            continue
        attrs = dict(m.attrs)
        attrs["Umlagegrundlagen"] = before.attrs.get("Umlagegrundlagen", attrs.get("Umlagegrundlagen"))
        municipalities.append(replace(m, base=before.base, attrs=attrs))
    if problems:
        raise InputError(problems)
    return replace(book, municipalities=tuple(municipalities))


class RuleSelectionError(RuleFileError):
    """The rules folder has no (or more than one) rule file for the workbook, or cannot be loaded."""


def _refuse_override(ignore_validity: str | None, mode: str, folder: bool) -> None:
    """--ignore-validity needs a reason, an explicit rule file and a test run (before anything is read)."""
    if ignore_validity is None:
        return
    where = Location("--ignore-validity")
    if not ignore_validity.strip():
        raise RefusedError([Problem("rules-validity-override-empty", where, "--ignore-validity braucht eine Begründung",
                                    found='""', expected='z. B. --ignore-validity "Modellrechnung Kreis Kleve 2031"',
                                    hint="angeben, warum die Regeldatei außerhalb ihres Kreises oder Zeitraums gilt")])
    if mode == "final":
        raise RefusedError([Problem("rules-validity-override-refused", where,
                                    "Ein Echtlauf darf die Gültigkeit der Regeldatei nicht übergehen",
                                    found=f"--mode final --ignore-validity {ignore_validity!r}",
                                    expected="eine Regeldatei, die Kreis und Haushaltsjahr der Eingabe abdeckt",
                                    hint="die gültige Regeldatei angeben oder als Probelauf (--mode test) rechnen")])
    if folder:
        raise RefusedError([Problem("rules-validity-override-refused", where,
                                    "--ignore-validity gilt nur für eine ausdrücklich angegebene Regeldatei",
                                    found="ein Regelordner", expected="--rules REGELN.yaml",
                                    hint="die Regeldatei selbst angeben, deren Gültigkeit übergangen werden soll")])


def validity_problems(rulebook: Rulebook, book: InputBook, offers_override: bool = True) -> list[Problem]:
    """Why `rulebook` does not cover the workbook's Kreis and Haushaltsjahr; [] if it does. `offers_override`: the
    command has `--ignore-validity` (only then does the fix mention it)."""
    parameters = book.parameters
    model = '; für eine Modellrechnung --ignore-validity "Grund" (allocation run)' if offers_override else \
        "; eine Modellrechnung mit fremder Regeldatei rechnet `allocation run --ignore-validity`"
    problems = []
    if not same_district(rulebook.district, parameters.district):
        problems.append(Problem(
            "rules-other-district", rulebook.source,
            f"Die Regeldatei {Path(rulebook.path).name} gilt für {rulebook.district}, die Eingabe-Arbeitsmappe "
            f"{Path(book.path).name} ist für {parameters.district}",
            found=f"district: {rulebook.district} (Regeldatei); Kreis: {parameters.district} "
                  f"({parameters.source})",
            expected="derselbe Kreis in Regeldatei und Blatt Parameter",
            hint="die Regeldatei dieses Kreises angeben (oder einen Regelordner)" + model))
    if not rulebook.valid_from <= parameters.year <= rulebook.valid_to:
        problems.append(Problem(
            "rules-not-valid-for-year", rulebook.source,
            f"Die Regeldatei {Path(rulebook.path).name} gilt {rulebook.valid_from}–{rulebook.valid_to}, die "
            f"Eingabe-Arbeitsmappe {Path(book.path).name} ist für das Haushaltsjahr {parameters.year}",
            found=f"valid_from {rulebook.valid_from}, valid_to {rulebook.valid_to} (Regeldatei); Haushaltsjahr "
                  f"{parameters.year} ({parameters.source})",
            expected=f"eine Regeldatei, die {parameters.year} abdeckt",
            hint="die für dieses Haushaltsjahr gültige Regeldatei angeben (oder einen Regelordner)" + model))
    return problems


def _chosen(rules_dir: Path, book: InputBook) -> tuple[Rulebook, list[Problem]]:
    """The checked rule file of a rules folder for the read workbook's Kreis and Haushaltsjahr."""
    try:
        chosen = select_rules(rules_dir, book.parameters.district, book.parameters.year)
    except RuleFileError as error:
        raise RuleSelectionError(error.problems) from None
    return check_for_run(chosen)


def _covered(rulebook: Rulebook, book: InputBook, ignore_validity: str | None,
             offers_override: bool = True) -> list[Problem]:
    """Raise RuleFileError if the rule file does not cover the workbook; with an override, the warnings."""
    problems = validity_problems(rulebook, book, offers_override)
    if problems and ignore_validity is None:
        raise RuleFileError(problems)
    return [replace(p, code="rules-validity-ignored", severity="warning",
                    message=f"{p.message}; übergangen mit --ignore-validity: {ignore_validity}") for p in problems]


def _with_pending(error: ProblemsError, pending: list[Problem]) -> ProblemsError:
    """A later stage's error joined to the faulty rows' problems found on reading: all of a workbook's problems
    in one report. With such rows it stays an input error (exit 3), as when reading stopped first; a cell
    already named by reading is not named again (a cell that could not be read is also "empty" to the rules)."""
    if not pending:
        return error
    named = {p.location for p in pending}
    return InputError(pending + [p for p in error.problems if p.location not in named])

# Einzelnachweis lines (municipalities × cost items) a run computes at most: time and memory grow with them
# (~0.2 ms CPU and ~1 KB per line; 144,000 lines: ~25 s, 134 MB), so a workbook that passes every read limit
# cannot hold a run for minutes or gigabytes (60,000 × 40 rows ran 10 minutes at 1.4 GB). Far above real
# districts (Kreis Wesel: 13 × 5; a large Kreis: ~200 × 1,000).
MAX_LINES = 250_000


def _refuse_too_many_lines(book: InputBook) -> None:
    lines = len(book.municipalities) * len(book.items)
    if lines > MAX_LINES:
        raise InputError([Problem(
            "input-too-large", Location(Path(book.path).name, "Kostenpositionen"),
            f"{len(book.municipalities):,} Gemeinden × {len(book.items):,} Kostenpositionen ergeben {lines:,} Zeilen "
            "im Einzelnachweis".replace(",", "."), found=f"{lines:,} Zeilen".replace(",", "."),
            expected=f"höchstens {MAX_LINES:,} Zeilen (Gemeinden × Kostenpositionen)".replace(",", "."),
            hint="die Eingabe prüfen (doppelte oder leere Zeilen?) oder die Kostenpositionen auf mehrere Läufe "
                 "aufteilen")])


def compute(input_path: str | Path, rules_path: str | Path,
            bases_from: str | Path | None = None, rates_from: str | Path | None = None, *,
            ignore_validity: str | None = None, accept: Callable[[InputBook], None] | None = None,
            input_shown: str | None = None, upward: str | Path | None = None, offers_override: bool = True
            ) -> tuple[Allocation, list[Control], list[Problem]]:
    """The one way from an input workbook and a rule file or rules folder to a run: everything but writing.

    Returns the allocation, its controls and the warnings. The workbook is read once. A rule file is checked
    first (`allocation check`) and must cover the workbook's Kreis (`model.same_district`) and
    Haushaltsjahr, unless `ignore_validity` gives a reason (then each mismatch is a `rules-validity-ignored`
    warning). From a rules folder the one file valid for the workbook is chosen (`selection.select_rules`).
    `bases_from`: the previous year's input workbook, whose Umlagegrundlagen apply (provisional year).
    `rates_from`: the previous year's input workbook, whose Umlagesaetze apply (provisional year).
    `upward`: the level above's output workbook; what this body pays it becomes a cost item (`upward.py`).
    `accept(book)` is called with the read workbook before the rules are chosen; it may raise a
    ProblemsError to stop (the web page: may this user run this district?). `input_shown`: the file name the
    input is known by when it is read from a copy (`inputs.read_input`'s `shown`)."""
    rules_path = Path(rules_path)
    folder = rules_path.is_dir()
    _refuse_override(ignore_validity, "test", folder)
    rulebook = warnings = None
    if not folder:  # `allocation check`: a failing rule file stops before any data is read
        rulebook, warnings = check_for_run(rules_path)
    book, pending = read_input_rows(input_path, input_shown)  # faulty data rows: their problems, pending
    try:  # every check after reading; a faulty row's problems join the first stage's that fails
        if bases_from is not None:
            book = previous_bases(book, read_input(bases_from))
        if rates_from is not None:
            book = levies.previous_rates(book, read_input(rates_from))
        if upward is not None:
            from .upward import with_upward_items

            book = with_upward_items(book, upward)
        if accept is not None:
            accept(book)
        if folder:
            rulebook, warnings = _chosen(rules_path, book)
        else:
            warnings = list(warnings) + _covered(rulebook, book, ignore_validity, offers_override)
        rulebook = bind(rulebook, book)  # columns as the workbook names them; the cells they compare checked
        column_problems = check_levy_columns(rulebook, book)
        if column_problems:
            raise RuleFileError(column_problems)
        need_problems = levies.need_problems(rulebook, book)
        if need_problems:
            raise InputError(need_problems)
        book = levies.computed_bases(rulebook, book)  # no Umlagegrundlagen: the levy's components define it
        rate_problems = levies.check_rates(rulebook, book.levy_rates)
        if [p for p in rate_problems if p.severity == "error"]:
            raise InputError(rate_problems)
        warnings = list(warnings) + rate_problems  # a rate rule the law states as "soll": a Hinweis
    except ProblemsError as error:
        raise _with_pending(error, pending) from None
    if pending:
        raise InputError(pending)
    _refuse_too_many_lines(book)
    decisions = decide(rulebook, book)
    allocation = levies.assess(allocate(rulebook, book, decisions))
    allocation = replace(allocation, findings=double_burdens(allocation))
    controls = run_controls(allocation)
    too_large = total_problems(allocation, controls)  # sums beyond what a cell holds: refused before any write
    if too_large:
        raise InputError(too_large)
    return allocation, controls, list(warnings) + levies.yield_warnings(allocation)


def protocol_rows(allocation: Allocation, rulebook: Rulebook, started: _dt.datetime,
                  python: str | None = None) -> list[tuple[str, object]]:
    """The pipeline's Protokoll rows. `python`: the Python version to show (a replay shows the recorded one: another
    Python is a note of verify, not a difference, since every amount is integer and Fraction arithmetic)."""
    book = allocation.book
    total = sum(item.deficit for item in allocation.items)
    from ..core.money import cents_to_decimal

    return [
        ("Werkzeug", f"allocation {__version__}"),
        ("durable_rules", durable_version()),
        ("Python", python or platform.python_version()),
        ("Kreis", book.parameters.district),
        ("Haushaltsjahr", book.parameters.year),
        ("Rundung", book.parameters.rounding),
        ("Eingabe-Arbeitsmappe", Path(book.path).name),
        ("SHA-256 Eingabe", book.sha256),
        ("Regeldatei", rulebook.path),
        ("SHA-256 Regeldatei", rulebook.sha256),
        ("Regeldatei gültig", f"{rulebook.valid_from}–{rulebook.valid_to}"),
        ("Land (Rechtsprofil)", f"{rulebook.state} ({states.STATE_NAMES[rulebook.state]})"
                                + ("" if rulebook.state_given else ", angenommen: die Regeldatei nennt kein Land")),
        ("Umlageverband", book.parameters.level),
        ("Trefferstrategie", rulebook.hit_policy),
        ("Kostenpositionen", len(allocation.items)),
        ("Gemeinden", len(book.municipalities)),
        ("Summe verteilt (€)", cents_to_decimal(total)),  # the deficits allocated
        ("Summe zu zahlen (€)", cents_to_decimal(allocation.payable)),  # what the members pay together
        ("Laufzeitpunkt (UTC)", started.strftime(STARTED_FORMAT)),
    ]


def workbook_rows(allocation: Allocation, started: _dt.datetime, mode: str, provisional: bool,
                  input_path: str | Path, rules_path: str | Path, output_path: str | Path,
                  bases_from: dict | None = None, rates_from: dict | None = None, *,
                  ignore_validity: str | None = None, record_paths: str = "full",
                  python: str | None = None, upward: dict | None = None) -> list[tuple[str, object]]:
    """All Protokoll rows of a run: the pipeline's, the run mode, and the manifest's data."""
    from .manifest import protocol_rows as manifest_rows

    rows = protocol_rows(allocation, allocation.rulebook, started, python)
    if record_paths == "names":
        rows = [(label, Path(value).name if label == "Regeldatei" else value) for label, value in rows]
    rows += [("Laufart", "Echtlauf" if mode == "final" else "Probelauf"),
             (f"Vorläufig ({states.provisional_norm(allocation.rulebook.state)})", "ja" if provisional else "nein")]
    if ignore_validity is not None:
        rows.append(("Gültigkeit der Regeldatei übergangen (--ignore-validity)", ignore_validity))
    if bases_from is not None:
        rows += [("Umlagegrundlagen des Vorjahres aus", bases_from["path"]),
                 ("SHA-256 Vorjahres-Arbeitsmappe", bases_from["sha256"])]
    if upward is not None:
        rows += [("Umlage an die Ebene darüber aus", upward["path"]),
                 ("SHA-256 Ergebnis der Ebene darüber", upward["sha256"])]
    if rates_from is not None:
        rows += [("Umlagesätze des Vorjahres aus", rates_from["path"]),
                 ("SHA-256 Vorjahres-Arbeitsmappe (Umlagesätze)", rates_from["sha256"])]
    rows += levy_rows(allocation)
    return rows + manifest_rows(allocation, input_path, rules_path, output_path, record_paths=record_paths)


def levy_rows(allocation: Allocation) -> list[tuple[str, object]]:
    """Protokoll rows of the levies: each levy's mode and rates with their source cells."""
    rows: list[tuple[str, object]] = []
    for levy in allocation.levies:
        if levy.mode == "statute":
            rates = ", ".join(f"{component or 'ganze Grundlage'} {rate} %" for component, rate in levy.rates.items())
            sources = ", ".join(source.cell or str(source) for source in levy.rate_sources)
            rows.append((f"Umlage {levy.levy.id}", f"Hebesatz der Haushaltssatzung: {rates} (aus {sources})"))
        else:
            rate = levy.rates.get("")
            rows.append((f"Umlage {levy.levy.id}", "abgeleitet, kein Satz im Blatt Umlagesaetze"
                         + (f" (finanzierender Satz {rate} %)" if rate is not None else "")))
    return rows



def replay(manifest: dict, output_path: str | Path, input_location: str | Path | None = None) -> Allocation:
    """Recompute a recorded run into `output_path` for `allocation verify` (no register, no manifest); returns the
    recomputed allocation, from which verify rebuilds the manifest. `manifest` has passed `readback.load_manifest`.

    The replay is made at the recorded time (`started_utc`) and shows the recorded Python version (both in the
    Protokoll), so that it reproduces the workbook's every part. `input_location` reads the input from elsewhere
    (an archived copy under a fixed name) while the workbook shows the recorded file name, as the original run did.
    Nothing of the manifest chooses where anything is written."""
    from ..workbook.report import provisional_note, write_workbook

    parameters = manifest["parameters"]
    mode, provisional = parameters.get("mode", "test"), bool(parameters.get("provisional", False))
    ignore_validity = parameters.get("ignore_validity")
    input_path, rules_path = manifest["input"]["path"], manifest["rules"][0]["path"]
    bases_from = manifest.get("bases_from")
    rates_from = manifest.get("rates_from")
    upward = manifest.get("upward")
    allocation, controls, _ = compute(input_location or input_path, rules_path,
                                      bases_from["path"] if bases_from else None,
                                      rates_from["path"] if rates_from else None, ignore_validity=ignore_validity,
                                      input_shown=Path(input_path).name if input_location else None,
                                      upward=upward["path"] if upward else None)
    started = _dt.datetime.strptime(manifest["started_utc"], STARTED_FORMAT).replace(tzinfo=_dt.timezone.utc)
    names = "working_directory" not in manifest  # a names-only run (the web page) recorded no folder
    rows = workbook_rows(allocation, started, mode, provisional, input_path, rules_path, manifest["output"]["path"],
                         bases_from, rates_from, ignore_validity=ignore_validity,
                         record_paths="names" if names else "full", python=manifest["tool"]["python"], upward=upward)
    write_workbook(output_path, allocation, controls, rows, provisional=provisional_note(allocation.rulebook.state) if provisional else None,
                   rules_label=Path(rules_path).name if names else None)
    return allocation


def _names_only(problem: Problem) -> Problem:
    """The problem with its file named by file name only (no server folder)."""
    return replace(problem, location=replace(problem.location, file=Path(problem.location.file).name))


def guard_run(input_path: str | Path, rules_path: str | Path, output_path: str | Path,
              bases_from: str | Path | None, register_dir: str | Path | None,
              rates_from: str | Path | None = None, upward: str | Path | None = None) -> None:
    """Refuse (exit 8) before anything is read if the run would write over a file it reads, the register, a
    final run's workbook or manifest (by the register, or by the manifest beside the output), or another run's
    manifest (an output named `*.manifest.json`); a damaged register stops it (`register-corrupt`)."""
    from .register import guard_outputs

    guard_outputs([("Die Ergebnis-Arbeitsmappe", output_path), ("Das Manifest", manifest_path(output_path))],
                  [("Eingabe-Arbeitsmappe", input_path), *rule_files(rules_path),
                   ("Vorjahres-Arbeitsmappe", bases_from), ("Vorjahres-Arbeitsmappe (Umlagesätze)", rates_from),
                   ("Ergebnis der Ebene darüber", upward)],
                  register_dir)


def run(input_path: str | Path, rules_path: str | Path, output_path: str | Path, *, mode: str = "test",
        provisional: bool = False, register_dir: str | Path | None = None,
        supersede: str | Callable[[InputBook], str | None] | None = None, register_extra: dict | None = None,
        bases_from: str | Path | None = None, rates_from: str | Path | None = None,
        ignore_validity: str | None = None, record_paths: str = "full",
        accept: Callable[[InputBook], None] | None = None, upward: str | Path | None = None,
        offers_override: bool = True) -> RunResult:
    """The yearly run: `compute` (rule file or rules folder), then write the workbook and manifest atomically.

    Before anything is read, the run is refused (exit 8) if the output or its manifest is the input, a rule
    file or the `bases_from` workbook, or lies in the register (`guard.refuse_overwrite`).
    `mode="final"` (Echtlauf) uses the register `register_dir` (default: the installation's register,
    `register.installation_register`): it is refused before any writing if a final run for the district
    and year is registered and no `supersede` reason is given (a function of the read workbook may give
    it), and it refuses to overwrite an existing output file; after the workbook is on disk the run is
    appended to the register. `provisional` marks every sheet as provisional (§ 56 Abs. 1 KrO NRW);
    `bases_from` (only with it) takes the Umlagegrundlagen from the previous year's input workbook, `rates_from`
    (only with it) its Umlagesaetze. `ignore_validity` (a reason, never for a final run) runs a rule file outside its district or years; the
    Protokoll and the manifest record it. `record_paths="names"` records file names only, never a folder or
    the working directory, in Protokoll, manifest, warnings and problems (the web page); the default
    `"full"` records the paths as given, which `verify` needs. `upward`: the level above's output workbook, whose
    levy on this body becomes a cost item (`upward.py`); recorded like the previous year's workbooks.
    """
    if record_paths not in ("full", "names"):
        raise ValueError("record_paths is 'full' or 'names'")
    if mode not in ("test", "final"):  # the command line's choices; a script's "Final" must not run a Probelauf
        raise ValueError(f"mode is 'test' or 'final', not {mode!r}")
    if not isinstance(provisional, bool):
        raise ValueError(f"provisional is True or False, not {provisional!r}")
    if ignore_validity is not None and not isinstance(ignore_validity, str):
        raise ValueError(f"ignore_validity is a reason (text) or None, not {ignore_validity!r}")
    try:
        return _run(input_path, rules_path, output_path, mode=mode, provisional=provisional,
                    register_dir=register_dir, supersede=supersede, register_extra=register_extra,
                    bases_from=bases_from, rates_from=rates_from, ignore_validity=ignore_validity,
                    record_paths=record_paths, accept=accept, upward=upward, offers_override=offers_override)
    except ProblemsError as error:
        if record_paths == "names":
            raise type(error)([_names_only(p) for p in error.problems]) from None
        raise


def _run(input_path, rules_path, output_path, *, mode, provisional, register_dir, supersede, register_extra,
         bases_from, rates_from, ignore_validity, record_paths, accept, upward=None, offers_override=True) -> RunResult:

    from ..core.filenames import sha256_file
    from .manifest import build_manifest, write_manifest
    from .register import installation_register
    from ..workbook.report import provisional_note, write_workbook

    started = _dt.datetime.now(_dt.timezone.utc)
    if bases_from is not None and not provisional:
        raise ValueError("bases_from is only for a provisional run")
    if rates_from is not None and not provisional:
        raise ValueError("rates_from is only for a provisional run")
    register_dir = installation_register(register_dir)
    guard_run(input_path, rules_path, output_path, bases_from, register_dir, rates_from, upward)
    if upward is not None:
        from .upward import check_upward

        check_upward(upward, mode, register_dir)
    _refuse_override(ignore_validity, mode, Path(rules_path).is_dir())
    allocation, controls, warnings = compute(input_path, rules_path, bases_from, rates_from,
                                             ignore_validity=ignore_validity, accept=accept, upward=upward,
                                             offers_override=offers_override)
    rules_used = Path(allocation.rulebook.path) if Path(rules_path).is_dir() else rules_path
    names = record_paths == "names"
    shown = (lambda path: Path(path).name) if names else (lambda path: path)

    def record(path: str | Path | None) -> dict | None:  # a previous year's workbook the run read
        if path is None:
            return None
        return {"path": str(shown(path)), "absolute": str(Path(path).name if names else Path(path).resolve()),
                "sha256": sha256_file(path)}

    bases, rates, above = record(bases_from), record(rates_from), record(upward)
    parameters = allocation.book.parameters
    if callable(supersede):
        supersede = supersede(allocation.book)
    rows = workbook_rows(allocation, started, mode, provisional, shown(input_path), shown(rules_used),
                         shown(output_path), bases, rates, ignore_validity=ignore_validity,
                         record_paths=record_paths, upward=above)
    recorded = {"mode": mode, "provisional": provisional}
    if ignore_validity is not None:
        recorded["ignore_validity"] = ignore_validity

    def write_book() -> None:
        write_workbook(output_path, allocation, controls, rows, provisional=provisional_note(allocation.rulebook.state) if provisional else None,
                       rules_label=Path(rules_used).name if names else None)

    def write_record(register: dict | None = None) -> None:
        manifest = build_manifest(allocation, input_path, rules_used, output_path, started, recorded,
                                  record_paths=record_paths)
        write_manifest(output_path, manifest | ({"bases_from": bases} if bases else {})
                       | ({"rates_from": rates} if rates else {}) | ({"upward": above} if above else {})
                       | ({"register": register} if register else {}))

    registered = None
    if mode != "final":
        from .register import protected

        # checked again where no final run can register this name meanwhile; a workbook whose manifest cannot be
        # written (a full disk) is taken away again: never a workbook without its manifest
        with protected([("Die Ergebnis-Arbeitsmappe", output_path), ("Das Manifest", manifest_path(output_path))],
                       register_dir):
            write_book()
            try:
                write_record()
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    Path(output_path).unlink()
                raise
    else:
        registered = _write_final(write_book, write_record, allocation, register_dir, supersede, output_path, {
            "district": parameters.district, "year": parameters.year, "mode": "final",
            "provisional": provisional, "input": str(input_path), "input_sha256": allocation.book.sha256,
            "rules": str(rules_used), "rules_sha256": allocation.rulebook.sha256, "output": str(output_path),
            "total_cents": sum(item.deficit for item in allocation.items), "tool": f"allocation {__version__}",
        } | (register_extra or {}))
    if names:
        warnings = [_names_only(w) for w in warnings]
    return RunResult(allocation, tuple(controls), tuple(warnings), Path(output_path), registered)


def _commit_held(view, pending, done: dict) -> None:
    """`register.commit` with Ctrl-C and SIGTERM held back until it has returned and `done` says so: a
    KeyboardInterrupt comes either before the entry (taken back, and the outputs with it) or after it (both
    kept), never between the entry and the caller knowing of it; SIGTERM ends the process after the entry, not
    in the middle of its lines (`signals.held`)."""
    from .register import commit

    with held(signal.SIGINT, signal.SIGTERM):
        commit(view, pending)
        done["committed"] = True


def _write_final(write_book: Callable[[], None], write_record: Callable[[dict], None], allocation: Allocation,
                 register_dir: Path, supersede: str | None, output_path: str | Path, record: dict) -> dict:
    """A final run's writing, all under the register's lock: refused (nothing written) if a final run for the
    district and year is registered and no reason supersedes it, or if the output exists; else the workbook,
    the manifest carrying the prepared register entry, then the entry. If anything fails on the way, workbook
    and manifest are removed again: of final runs started at once exactly one is registered, and the others
    leave nothing behind. Returns the manifest's `register` record (with the chain head)."""
    from ..core.filenames import sha256_file
    from .register import RegisterError, check_final, final_lock, prepare

    parameters = allocation.book.parameters
    output_path = Path(output_path)
    with final_lock(register_dir) as view:
        refused = check_final(view, parameters.district, parameters.year, supersede)
        if os.path.lexists(output_path):
            refused.append(Problem("register-output-exists", Location(str(output_path)),
                                   "Ein Echtlauf überschreibt nie eine vorhandene Arbeitsmappe", found=str(output_path),
                                   expected="ein neuer Name für die Ergebnisdatei", hint="einen anderen Dateinamen bei -o wählen"))
        if refused:
            raise RegisterError(refused)
        done = {"committed": False}
        try:  # the output did not exist under the lock: whatever lies there now is this run's
            write_book()
            pending = prepare(view, record | {"output_sha256": sha256_file(output_path)}, supersede)
            write_record(pending.reference)
            _commit_held(view, pending, done)
        except BaseException:  # also Ctrl-C, and SIGTERM on the command line (`signals.clean_stop`)
            if not done["committed"]:  # once registered, the workbook stays (Ctrl-C after the commit: in force)
                with held(signal.SIGINT, signal.SIGTERM):
                    for path in (output_path, manifest_path(output_path)):
                        with contextlib.suppress(FileNotFoundError):
                            path.unlink()
            raise
        return pending.reference
