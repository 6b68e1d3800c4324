"""The yearly run as one function: rules -> input -> decide -> allocate -> controls -> workbook.

Stages are pure functions from values to values; this module wires them in the documented order (the
rule file is checked before any workbook is read) and builds the `Protokoll` rows. The CLI only parses
arguments, calls `run` and maps errors to exit codes.
"""
from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import dataclass, replace
from pathlib import Path

from . import __version__, levies
from .allocate import allocate, decide
from .analysis import check_for_run
from .controls import Control, run_controls
from .engine import durable_version
from .findings import double_burdens
from .inputs import read_input
from .model import Allocation, InputBook, Rulebook
from .problems import InputError, Location, Problem, RuleFileError
from .rulebook import check_columns, check_levy_columns

__all__ = ["RunResult", "compute", "run", "protocol_rows"]


@dataclass(frozen=True, slots=True)
class RunResult:
    allocation: Allocation
    controls: tuple[Control, ...]
    warnings: tuple[Problem, ...]
    output: Path | None


def previous_bases(book: InputBook, previous: InputBook) -> InputBook:
    """The input with each municipality's Umlagegrundlagen taken from the previous year's input.

    § 56 Abs. 1 KrO NRW: while the year's budget statute is not in force, the previous year's bases apply
    provisionally. Every municipality of the input must be in the previous year's `Gemeinden` sheet.
    """
    problems: list[Problem] = []
    if previous.parameters.district.casefold() != book.parameters.district.casefold():
        problems.append(Problem(
            "input-bases-other-district", previous.parameters.source,
            "die Vorjahres-Arbeitsmappe gehört zu einem anderen Kreis", found=previous.parameters.district,
            expected=book.parameters.district, hint="die Eingabe-Arbeitsmappe des Vorjahres desselben Kreises angeben"))
    if previous.parameters.year >= book.parameters.year:
        problems.append(Problem(
            "input-bases-not-previous", previous.parameters.source,
            "die Arbeitsmappe für --bases-from ist nicht aus einem früheren Haushaltsjahr",
            found=str(previous.parameters.year), expected=f"ein Jahr vor {book.parameters.year}",
            hint="die Eingabe-Arbeitsmappe des Vorjahres angeben"))
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


def compute(input_path: str | Path, rules_path: str | Path,
            bases_from: str | Path | None = None,
            rates_from: str | Path | None = None) -> tuple[Allocation, list[Control], list[Problem]]:
    """Everything but writing: returns the allocation, its controls and the warnings.

    `bases_from`: the previous year's input workbook, whose Umlagegrundlagen apply (provisional year).
    `rates_from`: the previous year's input workbook, whose Umlagesaetze apply (provisional year)."""
    rulebook, warnings = check_for_run(rules_path)  # `allocation check`: a failing check stops before any data
    book = read_input(input_path)
    if bases_from is not None:
        book = previous_bases(book, read_input(bases_from))
    if rates_from is not None:
        book = levies.previous_rates(book, read_input(rates_from))
    column_problems = check_columns(rulebook, book) + check_levy_columns(rulebook, book)
    if column_problems:
        raise RuleFileError(column_problems)
    rate_problems = levies.check_rates(rulebook, book.levy_rates)
    if rate_problems:
        raise InputError(rate_problems)
    decisions = decide(rulebook, book)
    allocation = levies.assess(allocate(rulebook, book, decisions))
    allocation = replace(allocation, findings=double_burdens(allocation))
    controls = run_controls(allocation)
    return allocation, controls, warnings


def protocol_rows(allocation: Allocation, rulebook: Rulebook, started: _dt.datetime) -> list[tuple[str, object]]:
    book = allocation.book
    total = sum(item.deficit for item in allocation.items)
    from .money import cents_to_decimal

    return [
        ("Werkzeug", f"allocation {__version__}"),
        ("durable_rules", durable_version()),
        ("Python", platform.python_version()),
        ("Kreis", book.parameters.district),
        ("Haushaltsjahr", book.parameters.year),
        ("Rundung", book.parameters.rounding),
        ("Eingabe-Arbeitsmappe", Path(book.path).name),
        ("SHA-256 Eingabe", book.sha256),
        ("Regeldatei", rulebook.path),
        ("SHA-256 Regeldatei", rulebook.sha256),
        ("Regeldatei gültig", f"{rulebook.valid_from}–{rulebook.valid_to}"),
        ("Trefferstrategie", rulebook.hit_policy),
        ("Kostenpositionen", len(allocation.items)),
        ("Gemeinden", len(book.municipalities)),
        ("Summe verteilt (€)", cents_to_decimal(total)),
        ("Laufzeitpunkt (UTC)", started.strftime("%Y-%m-%d %H:%M:%S")),
    ]


def workbook_rows(allocation: Allocation, started: _dt.datetime, mode: str, provisional: bool,
                  input_path: str | Path, rules_path: str | Path, output_path: str | Path,
                  bases_from: dict | None = None, rates_from: dict | None = None) -> list[tuple[str, object]]:
    """All Protokoll rows of a run: the pipeline's, the run mode, and the manifest's data."""
    from .manifest import protocol_rows as manifest_rows

    rows = protocol_rows(allocation, allocation.rulebook, started)
    rows += [("Laufart", "Echtlauf" if mode == "final" else "Probelauf"),
             ("Vorläufig (§ 56 Abs. 1 KrO NRW)", "ja" if provisional else "nein")]
    if bases_from is not None:
        rows += [("Umlagegrundlagen des Vorjahres aus", bases_from["path"]),
                 ("SHA-256 Vorjahres-Arbeitsmappe", bases_from["sha256"])]
    if rates_from is not None:
        rows += [("Umlagesätze des Vorjahres aus", rates_from["path"]),
                 ("SHA-256 Vorjahres-Arbeitsmappe (Umlagesätze)", rates_from["sha256"])]
    rows += levy_rows(allocation)
    return rows + manifest_rows(allocation, input_path, rules_path, output_path)


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


def levy_manifest(allocation: Allocation) -> list[dict]:
    """The manifest's record of the levies: mode, rates (percent as text, exact), need, revenue, difference (cents)."""
    return [{"id": levy.levy.id, "name": levy.levy.name, "mode": levy.mode,
             "rates": {component or "*": str(rate) for component, rate in levy.rates.items()},
             "rate_sources": [str(source) for source in levy.rate_sources],
             "need_cents": levy.need, "revenue_cents": levy.revenue, "difference_cents": levy.difference}
            for levy in allocation.levies]


def _file_record(path: str | Path | None) -> dict | None:
    import hashlib

    if path is None:
        return None
    return {"path": str(path), "absolute": str(Path(path).resolve()),
            "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}


def replay(manifest: dict, output_path: str | Path, input_location: str | Path | None = None) -> None:
    """Recompute a recorded run into `output_path` for `allocation verify` (no register, no manifest).

    `input_location` reads the input from elsewhere (an archived copy) while the workbook shows the
    recorded path, as the original run did."""
    from .report import PROVISIONAL_NOTE, write_workbook

    parameters = manifest["parameters"]
    mode, provisional = parameters.get("mode", "test"), bool(parameters.get("provisional", False))
    input_path, rules_path = manifest["input"]["path"], manifest["rules"][0]["path"]
    bases_from = manifest.get("bases_from")
    rates_from = manifest.get("rates_from")
    allocation, controls, _ = compute(input_location or input_path, rules_path,
                                      bases_from["path"] if bases_from else None,
                                      rates_from["path"] if rates_from else None)
    started = _dt.datetime.now(_dt.timezone.utc)  # only the ignored row Laufzeitpunkt shows it
    rows = workbook_rows(allocation, started, mode, provisional, input_path, rules_path, manifest["output"]["path"],
                         bases_from, rates_from)
    write_workbook(output_path, allocation, controls, rows, provisional=PROVISIONAL_NOTE if provisional else None)


def run(input_path: str | Path, rules_path: str | Path, output_path: str | Path, *, mode: str = "test",
        provisional: bool = False, register_dir: str | Path | None = None,
        supersede: str | None = None, register_extra: dict | None = None,
        bases_from: str | Path | None = None, rates_from: str | Path | None = None) -> RunResult:
    """The yearly run: compute, then write the workbook atomically.

    `mode="final"` (Echtlauf) needs `register_dir`: it is refused before any writing if a final run for the
    district and year is registered and no `supersede` reason is given, and it refuses to overwrite an
    existing output file; after the workbook is on disk the run is appended to the register.
    `provisional` marks every sheet as provisional (§ 56 Abs. 1 KrO NRW); `bases_from` (only with it) takes
    the Umlagegrundlagen from the previous year's input workbook; `rates_from` (only with it) its Umlagesaetze.
    """
    import hashlib

    from .manifest import build_manifest, write_manifest
    from .register import RegisterError, append_final, check_final
    from .report import PROVISIONAL_NOTE, write_workbook

    started = _dt.datetime.now(_dt.timezone.utc)
    if bases_from is not None and not provisional:
        raise ValueError("bases_from is only for a provisional run")
    if rates_from is not None and not provisional:
        raise ValueError("rates_from is only for a provisional run")
    allocation, controls, warnings = compute(input_path, rules_path, bases_from, rates_from)
    rates = _file_record(rates_from)
    bases = None
    if bases_from is not None:
        bases = {"path": str(bases_from), "absolute": str(Path(bases_from).resolve()),
                 "sha256": hashlib.sha256(Path(bases_from).read_bytes()).hexdigest()}
    parameters = allocation.book.parameters
    if mode == "final":
        if register_dir is None:
            raise ValueError("a final run needs a register folder")
        refused = check_final(register_dir, parameters.district, parameters.year, supersede)
        if Path(output_path).exists():
            refused.append(Problem("register-output-exists", Location(str(output_path)),
                                   "Ein Echtlauf überschreibt nie eine vorhandene Arbeitsmappe", found=str(output_path),
                                   expected="ein neuer Name für die Ergebnisdatei", hint="einen anderen Dateinamen bei -o wählen"))
        if refused:
            raise RegisterError(refused)
    rows = workbook_rows(allocation, started, mode, provisional, input_path, rules_path, output_path, bases, rates)
    write_workbook(output_path, allocation, controls, rows, provisional=PROVISIONAL_NOTE if provisional else None)
    manifest = build_manifest(allocation, input_path, rules_path, output_path, started,
                              {"mode": mode, "provisional": provisional})
    write_manifest(output_path, manifest | ({"bases_from": bases} if bases else {})
                   | ({"rates_from": rates} if rates else {})
                   | ({"levies": levy_manifest(allocation)} if allocation.levies else {}))
    if mode == "final":
        rulebook = allocation.rulebook
        append_final(register_dir, {
            "district": parameters.district, "year": parameters.year, "mode": "final",
            "provisional": provisional, "input": str(input_path), "input_sha256": allocation.book.sha256,
            "rules": str(rules_path), "rules_sha256": rulebook.sha256, "output": str(output_path),
            "output_sha256": hashlib.sha256(Path(output_path).read_bytes()).hexdigest(),
            "total_cents": sum(item.deficit for item in allocation.items), "tool": f"allocation {__version__}",
        } | (register_extra or {}), supersede)
    return RunResult(allocation, tuple(controls), tuple(warnings), Path(output_path))
