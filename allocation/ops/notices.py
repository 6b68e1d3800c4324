"""Levy notices (Umlagebescheide) and the instalment plan, from a verified result workbook.

`write_notices` is the whole of `allocation notices`: it refuses a result that `verify` does not confirm, reads
the levy lines of the workbook (`read_result`), takes the instalment plan and the notice texts from the run's
own rule file (`rulebook.load_notice_settings`), and writes one PDF per municipality (Typst, template in
`notice_templates/`), `Abschlaege.xlsx` and `Abschlaege.csv` for the treasury. Everything is rendered into a
temporary folder next to the target and moved into place only when complete. The template (the Kreis's own
Typst program) is copied without following links and compiled in a child process (`typst_child`) with a time
budget per document and a memory limit.

The workbook is read by header names, so that both layouts work: a result with a `Umlagen` sheet (one row per
levy × municipality: `Umlage`, `AGS`, `Gemeinde`, base components, `Bemessungsgrundlage`, `Satz`, `Betrag`,
proof) and an older one whose levies are the `Uebersicht` columns `Kreisumlage` and `Differenzierte Umlage`,
with the rates of `Hebesaetze` and the legal bases of `Entscheidungen`.
"""
from __future__ import annotations

import array
import bisect
import csv
import datetime as _dt
import errno
import hashlib
import io
import json
import os
import re
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import time
import unicodedata
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Mapping, TYPE_CHECKING, Iterable, Sequence

from ..core.signals import held
from ..core.filenames import (NAME_MAX, current_umask, cut_bytes, file_kind, folder_output_problems, move_into,
                              name_bytes, os_reason, read_regular, temporary_folder, what_is_at)
from ..core import states
from ..core.instalments import (ChangePlan, Instalment, change_plan, fixed_amount, plan, provisional_instalment,
                               settlement_plan)
from ..core.money import cents_from_decimal, cents_to_decimal, decimal_from_cell, de_number, de_percent, format_eur, percent_points
from ..core.problems import (ExitCode, InputError, LetterheadFileError, Location, Problem, OutputError, ProblemsError,
                             RuleFileError)
from ..rulefiles.rulebook import (MAX_FILE_BYTES, NoticeSettings, installation_letterhead_path,
                                  load_notice_settings)
from ..workbook.report import FORMULA_START
from .typst_child import (CHILD_ENV, TEMPLATE_MEMORY_MB, TEMPLATE_MEMORY_MB_RANGE, TEMPLATE_SECONDS,
                          TEMPLATE_SECONDS_RANGE)

if TYPE_CHECKING:
    from ..runs.readback import Earlier

__all__ = ["LevyShare", "Levy", "ResultBook", "NoticeSet", "read_result", "build_notices", "write_notices",
           "NotVerified", "Refused", "TemplateError", "require_schedule", "render", "check_template", "template_limits",
           "TEMPLATE_DIR", "TEMPLATE_SECONDS", "TEMPLATE_MEMORY_MB", "CSV_NAME", "XLSX_NAME", "pdf_name", "de_number", "de_percent",
           "SOLL_NAME", "SOLL_HEADER", "soll_lines", "readable", "read_addresses", "publish"]

TEMPLATE_DIR = Path(__file__).parent / "notice_templates" / "default"
MAIN_TEMPLATE = "bescheid.typ"
# Each letter's data, as JSON, in this file at the top of the compiled template (`json("/.brief-daten.json")`),
# written by the child before each compile. Not in `sys.inputs`: Typst keys its whole cache on the inputs, so data
# there make every letter a compile from scratch, while a file changes only what reads it, and the next letter
# reuses the layout of everything that is the same (benchmarks/README.md, "Notices"). A template's own file of
# this name is refused; a template of its own that still reads `sys.inputs.data` gets the data there too.
DATA_FILE = ".brief-daten.json"
XLSX_NAME = "Abschlaege.xlsx"
CSV_NAME = "Abschlaege.csv"
SOLL_NAME = "Sollstellung.csv"
# The Sollstellung file's columns: a contract with the finance system's import (README, "Sollstellung")
SOLL_HEADER = ("Kassenzeichen", "AGS", "Gemeinde", "Umlage", "Produkt", "Sachkonto", "Faellig", "Betrag", "Art",
               "Bescheiddatum", "Referenz")
LEGACY_LEVY_COLUMNS = ("Kreisumlage", "Differenzierte Umlage")


class NotVerified(ProblemsError):
    exit_code = ExitCode.VERIFY
    title = "Keine Bescheide: die Ergebnis-Arbeitsmappe lässt sich nicht bestätigen (allocation verify)"


class TemplateError(ProblemsError):
    exit_code = ExitCode.USAGE
    title = "Die Bescheid-Vorlage ist fehlerhaft"


class Refused(ProblemsError):
    exit_code = ExitCode.REFUSED
    title = "Keine Bescheide geschrieben"


# ------------------------------------------------------------------------------------------------ records


@dataclass(frozen=True, slots=True)
class LevyShare:
    """One levy for one municipality, as the result workbook states it."""

    levy: str
    ags: str
    name: str
    amount: int
    base: Decimal | None = None
    components: tuple[tuple[str, Decimal], ...] = ()
    rates: tuple[str, ...] = ()
    proof: str = ""


@dataclass(frozen=True, slots=True)
class Levy:
    name: str
    key: str
    total: int  # the yield: what the payers pay together
    legal_basis: str = ""
    statute: bool = False  # True: amounts are base × rate (Umlagen sheet); False: the need split exactly
    need: int | None = None  # the Umlagesoll (Umlagebedarf row of `Umlagen`); None for outputs without it
    base_total: Decimal | None = None  # the Bemessungsgrundlage of all payers (the `Summe` row)
    rate: str = ""  # the rate as the `Summe` row states it ("36,20 %" or "je Bestandteil: ...")


@dataclass(frozen=True, slots=True)
class ResultBook:
    path: Path
    district: str
    year: int
    run_mode: str
    provisional: bool
    provisional_basis: tuple[str, ...]
    municipalities: tuple[tuple[str, str], ...]
    levies: tuple[Levy, ...]
    shares: tuple[LevyShare, ...]
    sha256: str = ""  # of the workbook's bytes as read
    state: str = "NW"  # the run's state profile (Protokoll "Land (Rechtsprofil)"; NW for outputs without it)
    level: str = "Kreis"  # the Protokoll's Umlageverband (Kreis for outputs without it)

    def share(self, levy: str, ags: str) -> LevyShare | None:
        return next((s for s in self.shares if s.levy == levy and s.ags == ags), None)

    @property
    def draft(self) -> bool:
        return self.run_mode != "Echtlauf"


@dataclass(frozen=True, slots=True)
class NoticeSet:
    """What `write_notices` produced: file names per municipality, the instalment rows and who got none."""

    directory: Path
    pdfs: tuple[str, ...]
    rows: int
    without_notice: tuple[str, ...] = field(default_factory=tuple)


# ------------------------------------------------------------------------------------- German formatting


def de_date(day: _dt.date) -> str:
    return day.strftime("%d.%m.%Y")


def slug(text: str) -> str:
    """ASCII, lower case, words joined by '-': a levy's key in a Kassenzeichen, part of a safe file name."""
    text = text.replace("ß", "ss").replace("ä", "ae").replace("ö", "oe").replace("ü", "ue")
    text = text.replace("Ä", "Ae").replace("Ö", "Oe").replace("Ü", "Ue")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def pdf_name(ags: str, name: str, change: bool = False, *, kind: str = "") -> str:
    """`AGS_Name.pdf` (`_Aenderung` for a change notice, `kind` e.g. `_Benehmen` for other letters), at most
    NAME_MAX bytes: the name part is cut (at a character boundary), the AGS and the ending are kept, so names stay
    unique as the AGS are (the PDF is written under this name, never under a temporary one)."""
    head, tail = f"{ags}_", f"{'_Aenderung' if change else ''}{kind}.pdf"
    budget = NAME_MAX - len(name_bytes(head)) - len(name_bytes(tail))
    return head + (cut_bytes(slug(name), budget).rstrip("-") or "Gemeinde") + tail


# ------------------------------------------------------------------------------------- reading the result


def _norm(text: object) -> str:
    text = str(text or "").strip().casefold()
    for umlaut, plain in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        text = text.replace(umlaut, plain)
    return re.sub(r"[\s_]+", "", text)


class _Sheet:
    """A sheet's header and rows, found by (normalised) header names."""

    def __init__(self, file: str, title: str, rows: list[tuple]) -> None:
        self.file, self.title = file, title
        self.header = [str(v).strip() if v is not None else "" for v in rows[0]] if rows else []
        self.rows = [(number, row) for number, row in enumerate(rows[1:], start=2) if any(v is not None for v in row)]
        self.index = {_norm(h): i for i, h in enumerate(self.header) if h}

    def column(self, name: str) -> int | None:
        return self.index.get(_norm(name))

    def need(self, names: Iterable[str], problems: list[Problem]) -> bool:
        missing = [name for name in names if self.column(name) is None]
        for name in missing:
            problems.append(Problem("notices-missing-column", Location(self.file, self.title, 1),
                                    f'Spalte "{name}" fehlt im Blatt {self.title}', found=", ".join(self.header),
                                    expected=name, hint="eine unveränderte Ergebnis-Arbeitsmappe von allocation run angeben"))
        return not missing

    def value(self, row: tuple, name: str) -> object:
        index = self.column(name)
        return row[index] if index is not None and index < len(row) else None


def _sheets(source: "Earlier") -> dict[str, _Sheet]:
    from openpyxl import load_workbook

    workbook = load_workbook(source.stream(), read_only=True, data_only=True)
    path = source.path
    try:
        return {_norm(ws.title): _Sheet(path.name, ws.title, [tuple(r) for r in ws.iter_rows(values_only=True)])
                for ws in workbook.worksheets if ws.title in ("Uebersicht", "Umlagen", "Hebesaetze", "Entscheidungen",
                                                               "Protokoll")}
    finally:
        workbook.close()


def _cents(value: object, sheet: _Sheet, number: int, column: str, problems: list[Problem]) -> int:
    try:
        return cents_from_decimal(decimal_from_cell(0 if value is None else value))
    except ValueError:
        problems.append(Problem("notices-bad-value", Location(sheet.file, sheet.title, number, (sheet.column(column) or 0) + 1),
                                f'"{column}" ist kein Betrag in Euro', found=repr(value), expected="ein Betrag mit höchstens zwei Nachkommastellen",
                                hint="eine unveränderte Ergebnis-Arbeitsmappe von allocation run angeben"))
        return 0


def _decimal(value: object) -> Decimal | None:
    try:
        return None if value is None or value == "" else decimal_from_cell(value)
    except ValueError:
        return None


def _protocol(sheets: dict[str, _Sheet]) -> dict[str, object]:
    sheet = sheets.get("protokoll")
    return {str(row[0]).strip(): row[1] for _, row in sheet.rows if row and row[0] is not None and len(row) > 1} \
        if sheet else {}


def _municipality_rows(sheet: _Sheet) -> list[tuple[int, tuple]]:
    return [(number, row) for number, row in sheet.rows
            if states.MEMBER_KEY.fullmatch(str(sheet.value(row, "AGS") or ""))]  # a member's key of any level


def _legal_bases(sheets: dict[str, _Sheet]) -> dict[str, list[str]]:
    """Route label (Weg) -> the legal bases of its items, in item order, from `Entscheidungen`."""
    sheet = sheets.get("entscheidungen")
    bases: dict[str, list[str]] = {}
    if sheet is None:
        return bases
    for _, row in sheet.rows:
        route, basis = sheet.value(row, "Weg"), sheet.value(row, "Rechtsgrundlage")
        if route and basis and str(basis) not in bases.setdefault(str(route), []):
            bases[str(route)].append(str(basis))
    return bases


def _legacy_rates(sheets: dict[str, _Sheet]) -> tuple[dict[tuple[str, str], list[str]], dict[tuple[str, str], Decimal]]:
    """(route label, AGS) -> per levy item the derived rate of `Hebesaetze` (exact split, no statute rate), and
    the base the levy was measured on (Umlagegrundlagen, times the `extent` factor where a rule has one)."""
    sheet = sheets.get("hebesaetze")
    rates: dict[tuple[str, str], list[str]] = {}
    bases: dict[tuple[str, str], Decimal] = {}
    if sheet is None or sheet.column("Hebesatz exakt (%)") is None:
        return rates, bases
    for _, row in sheet.rows:
        ags = str(sheet.value(row, "AGS") or "")
        exact = _decimal(sheet.value(row, "Hebesatz exakt (%)"))
        if not states.MEMBER_KEY.fullmatch(ags) or exact is None:
            continue
        share = _decimal(sheet.value(row, "Betrag exakte Verteilung"))
        text = f"{sheet.value(row, 'ID')}: rechnerisch {de_percent(exact)}"
        if share is not None:
            text += f" (Anteil {de_number(share)} €)"
        rates.setdefault((str(sheet.value(row, "Weg")), ags), []).append(text)
        base = _decimal(sheet.value(row, "Bemessungsgrundlage"))
        if base is not None:
            bases.setdefault((str(sheet.value(row, "Weg")), ags), base)
    return rates, bases


def _legacy_levies(sheets: dict[str, _Sheet], problems: list[Problem]) -> tuple[list[Levy], list[LevyShare]]:
    sheet = sheets["uebersicht"]
    if not sheet.need(("AGS", "Gemeinde", "Umlagegrundlagen"), problems):
        return [], []
    legal, (rates, measured) = _legal_bases(sheets), _legacy_rates(sheets)
    levies, shares = [], []
    for column in LEGACY_LEVY_COLUMNS:
        if sheet.column(column) is None:
            continue
        lines = []
        for number, row in _municipality_rows(sheet):
            ags = str(sheet.value(row, "AGS"))
            amount = _cents(sheet.value(row, column), sheet, number, column, problems)
            grounds = _decimal(sheet.value(row, "Umlagegrundlagen"))
            base = measured.get((column, ags), grounds)
            rate_lines = tuple(rates.get((column, ags), ()))
            if not rate_lines and base:
                effective = percent_points(amount, cents_from_decimal(base), 4)
                rate_lines = (f"rechnerisch {de_percent(effective)}",) if effective is not None else ()
            # the Umlagegrundlagen are shown as a component only where the levy's base differs (extent factor)
            components = (("Umlagegrundlagen", grounds),) if grounds is not None and grounds != base else ()
            lines.append(LevyShare(column, ags, str(sheet.value(row, "Gemeinde") or ""), amount, base, components,
                                   rate_lines))
        if any(line.amount for line in lines):
            levies.append(Levy(column, slug(column).lower(), sum(line.amount for line in lines),
                               "; ".join(legal.get(column, ()))))
            shares += lines
    return levies, shares


def _first_column(sheet: _Sheet, *names: str) -> str | None:
    return next((name for name in names if sheet.column(name) is not None), None)


def _shown_components(components: list[tuple[str, Decimal]], base: Decimal | None) -> tuple[tuple[str, Decimal], ...]:
    """The base components worth a line: a weighted value equal to its raw value (weight 100 %) is left out, and
    a single component equal to the base itself too (it would only repeat the Bemessungsgrundlage)."""
    raw = dict(components)
    shown = [(label, value) for label, value in components
             if not (label.endswith(" gewichtet") and raw.get(label[:-len(" gewichtet")]) == value)]
    return () if len(shown) == 1 and shown[0][1] == base else tuple(shown)


def _statute_levies(sheets: dict[str, _Sheet], problems: list[Problem]) -> tuple[list[Levy], list[LevyShare]]:
    """Levies from a `Umlagen` sheet: components are the columns between `Gemeinde` and `Bemessungsgrundlage`,
    the rate is `Satz (%)` (a number, or a text such as "je Bestandteil: ..."), the proof `Nachweis`, and
    `Berechnung` says whether the levy is at a statutory rate or the exact split of its need."""
    sheet = sheets["umlagen"]
    rate_column = _first_column(sheet, "Satz (%)", "Satz")
    if not sheet.need(("Umlage", "AGS", "Gemeinde", "Bemessungsgrundlage", rate_column or "Satz (%)", "Betrag"),
                      problems):
        return [], []
    first, last, amount_at = sheet.column("Gemeinde") + 1, sheet.column("Bemessungsgrundlage"), sheet.column("Betrag")
    component_columns = [(i, sheet.header[i]) for i in range(first, last) if sheet.header[i]]
    proof_name = _first_column(sheet, "Nachweis", "Rechenweg")
    proof_at = sheet.column(proof_name) if proof_name else next(
        (i for i in range(amount_at + 1, len(sheet.header)) if sheet.header[i]), None)
    factor_name = _first_column(sheet, "Faktor (extent)", "Faktor")
    order: list[str] = []
    derived: set[str] = set()
    shares = []
    for number, row in _municipality_rows(sheet):
        levy = str(sheet.value(row, "Umlage") or "").strip()
        if levy not in order:
            order.append(levy)
        is_derived = str(sheet.value(row, "Berechnung") or "").strip().casefold().startswith("abgeleitet")
        if is_derived:
            derived.add(levy)
        amount = _cents(sheet.value(row, "Betrag"), sheet, number, "Betrag", problems)
        base = _decimal(sheet.value(row, "Bemessungsgrundlage"))
        components = _shown_components([(label, value) for i, label in component_columns
                                        if i < len(row) and (value := _decimal(row[i])) is not None], base)
        rate = sheet.value(row, rate_column)
        rate_decimal = _decimal(rate)
        rates = [de_percent(rate_decimal) if rate_decimal is not None else str(rate or "").strip()]
        if (is_derived or not rates[0]) and base and base == base.quantize(Decimal("0.01")):
            # a derived levy's amount is its share of the need, not base × the printed (rounded) rate: state the
            # rate that this amount is of the base, and the printed one beside it
            effective = percent_points(amount, cents_from_decimal(base), 4)
            if effective is not None:
                rates = [f"rechnerisch {de_percent(effective)}" + (f" (gerundet {rates[0]})" if rates[0] else "")]
        factor = _decimal(sheet.value(row, factor_name)) if factor_name else None
        if factor is not None:
            rates.append(f"Faktor (Mehr-/Minderbelastung) {de_number(factor, 0)}")
        proof = str(row[proof_at]) if proof_at is not None and proof_at < len(row) and row[proof_at] else ""
        shares.append(LevyShare(levy, str(sheet.value(row, "AGS")), str(sheet.value(row, "Gemeinde") or ""), amount,
                                base, components, tuple(r for r in rates if r), proof))
    totals: dict[str, tuple[int | None, Decimal | None, str]] = {}
    for number, row in sheet.rows:  # per levy: its `Summe` row (base of all, rate) and its Umlagebedarf row
        levy = str(sheet.value(row, "Umlage") or "").strip()
        label = str(sheet.value(row, "Gemeinde") or "")
        need, base_total, rate = totals.get(levy, (None, None, ""))
        if str(sheet.value(row, "AGS") or "") == "Summe":
            base_total = _decimal(sheet.value(row, "Bemessungsgrundlage"))
            value = sheet.value(row, rate_column)
            rate = de_percent(_decimal(value)) if _decimal(value) is not None else str(value or "").strip()
        elif label.startswith("Umlagebedarf"):
            amount = _decimal(sheet.value(row, "Betrag"))
            need = cents_from_decimal(amount) if amount is not None else None
        totals[levy] = (need, base_total, rate)
    levies = [Levy(name, slug(name).lower(), sum(s.amount for s in shares if s.levy == name),
                   statute=name not in derived, need=totals.get(name, (None,))[0],
                   base_total=totals.get(name, (None, None))[1], rate=totals.get(name, (None, None, ""))[2])
              for name in order]
    return levies, shares


def read_result(source: "str | Path | Earlier") -> ResultBook:
    """The levy lines, municipalities and run facts of a result workbook (as read and checked by
    `readback.read_output`, or a path: then its bounds alone are checked). Raises InputError."""
    from ..runs.readback import Earlier, output_bytes

    source = source if isinstance(source, Earlier) else output_bytes(source, "notices-unreadable")
    path = source.path
    sheets = _sheets(source)
    problems: list[Problem] = []
    for title in ("Uebersicht", "Protokoll"):
        if _norm(title) not in sheets:
            problems.append(Problem("notices-missing-sheet", Location(path.name, title), f"Blatt {title} fehlt",
                                    found=", ".join(s.title for s in sheets.values()), expected=title,
                                    hint="eine Ergebnis-Arbeitsmappe von allocation run angeben"))
    if problems:
        raise InputError(problems)
    levies, shares = (_statute_levies if "umlagen" in sheets else _legacy_levies)(sheets, problems)
    protocol = _protocol(sheets)
    year = protocol.get("Haushaltsjahr")
    if not levies and not problems:
        problems.append(Problem("notices-no-levy", Location(path.name, "Uebersicht"),
                                "die Ergebnis-Arbeitsmappe enthält keine Umlage (Kreisumlage oder differenzierte Umlage)",
                                found="keine Umlagebeträge", expected="ein Blatt Umlagen oder Umlage-Spalten in Uebersicht",
                                hint="Umlagebescheide gibt es nur für Umlagen; Direktabrechnungen werden anders abgerechnet"))
    if not isinstance(year, int) or isinstance(year, bool):
        problems.append(Problem("notices-missing-sheet", Location(path.name, "Protokoll"), "Haushaltsjahr fehlt im Protokoll",
                                found=repr(year), expected="Haushaltsjahr", hint="eine Ergebnis-Arbeitsmappe von allocation run angeben"))
    if problems:
        raise InputError(problems)
    label = next((key for key in protocol if str(key).startswith("Vorläufig (")), "")  # its norm names the state's law
    provisional = str(protocol.get(label, "nein")).strip().casefold() == "ja"
    # what a provisional run took from the previous year, without the file's name or folder (a letter names no file):
    # "Umlagegrundlagen des Vorjahres (SHA-256 3f5a…)"
    hashes = [str(value) for key, value in protocol.items() if _norm(key).startswith("sha-256vorjahres")]
    basis = tuple(str(key).removesuffix(" aus") + (f" (SHA-256 {hashes[i][:16]}…)" if i < len(hashes) else "")
                  for i, key in enumerate(key for key in protocol
                                          if "vorjahr" in _norm(key) and not _norm(key).startswith("sha-256")))
    overview = sheets["uebersicht"]
    municipalities = tuple((str(overview.value(r, "AGS")), str(overview.value(r, "Gemeinde") or ""))
                           for _, r in _municipality_rows(overview))
    state = str(protocol.get("Land (Rechtsprofil)", "") or "")[:2]
    return ResultBook(path, str(protocol.get("Kreis", "")), year, str(protocol.get("Laufart", "Probelauf")), provisional,
                      basis, municipalities, tuple(levies), tuple(shares), source.sha256,
                      state if state in states.STATES else states.DEFAULT_STATE,
                      str(protocol.get("Umlageverband") or states.DEFAULT_LEVEL))


# ---------------------------------------------------------------------------------------- the notices


@dataclass(frozen=True, slots=True)
class _Row:
    """One line of the instalment plan (Abschlaege.xlsx / .csv and the notice's table)."""

    ags: str
    name: str
    levy: str
    number: int
    due: _dt.date
    amount: int
    kassenzeichen: str
    kind: str
    old: int | None = None
    already_due: bool | None = None
    regular: int | None = None  # a settlement's line: the instalment of the final amount for this due date


def _legal_basis(levy: Levy, settings: NoticeSettings) -> tuple[str, str, str]:
    text = settings.text_for(levy.name, levy.key)
    basis = (text.legal_basis if text and text.legal_basis else "") or levy.legal_basis
    return basis, text.approval if text else "", text.reasons if text else ""


def _named(levy: Levy, rule_levies: dict[str, tuple[str, str, str]]) -> Levy:
    """The levy with the rule file's id (Kassenzeichen), name (notice) and legal basis, where `levies:` has them."""
    known = rule_levies.get(levy.name.casefold())
    if known is None:
        return levy
    levy_id, name, basis = known
    return replace(levy, name=name or levy.name, key=levy_id or levy.key, legal_basis=levy.legal_basis or basis)


def _rule_levies(rules_path: Path | None) -> dict[str, tuple[str, str, str]]:
    """The rule file's `levies:` by name and id (lower case): (id, name, legal basis), where the rule book has them."""
    if rules_path is None:
        return {}
    from ..rulefiles.rulebook import load_rulebook

    try:
        book, _ = load_rulebook(rules_path)
    except RuleFileError:
        return {}
    found: dict[str, tuple[str, str, str]] = {}
    for levy in getattr(book, "levies", ()) or ():
        entry = tuple(str(getattr(levy, attribute, "") or "") for attribute in ("id", "name", "legal_basis"))
        for name in entry[:2]:
            if name:
                found[name.casefold()] = entry
    return found


def _genitive(name: str) -> str:
    """"Differenzierte Umlage" -> "der Differenzierten Umlage"; "Kreisumlage" -> "der Kreisumlage"."""
    return "der " + re.sub(r"(\w+)e (Umlage)$", r"\1en \2", name)


def _subject(result: ResultBook, names: list[str], change: bool) -> str:
    parts = [_genitive(name) for name in names]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " und " + parts[-1]
    prefix = "Änderung der Festsetzung" if change else ("Vorläufige Festsetzung" if result.provisional else "Festsetzung")
    return f"{prefix} {listed} für das Haushaltsjahr {result.year}"


def _kassenzeichen(settings: NoticeSettings, year: int, ags: str, levy: Levy, number: int) -> str:
    return settings.kassenzeichen.format(jahr=year, ags=ags, umlage=levy.key, nr=number)


def _provisional_text(result: ResultBook) -> str:
    if not result.provisional:
        return ""
    text = (f"Dieser Bescheid ist vorläufig (§ 56 Abs. 1 KrO NRW): die Haushaltssatzung für {result.year} ist noch nicht "
            "in Kraft. Er wird durch den endgültigen Bescheid ersetzt; Unterschiede werden mit den dann folgenden "
            "Abschlägen ausgeglichen.")
    if result.provisional_basis:
        text += " Grundlage: " + "; ".join(result.provisional_basis) + "."
    else:
        text += " Grundlage: die Umlagegrundlagen des Haushaltsjahres nach dem Stand des Laufs."
    return text


# How letters spell the column names people write with umlauts (the workbook's columns are ASCII by convention);
# `notices.labels` in the rule file names any column its own way.
SPELLING = (("Schluessel", "Schlüssel"), ("Solidaritaet", "Solidarität"), ("Betraege", "Beträge"),
            ("Foerderung", "Förderung"), ("Traeger", "Träger"), ("Gebuehr", "Gebühr"), ("Zuschlaege", "Zuschläge"),
            ("Ertraege", "Erträge"), ("Aufwendungen", "Aufwendungen"))


def readable(column: str, labels: Mapping[str, str] | None = None) -> str:
    """`Schluesselzuweisungen gewichtet` -> `Schlüsselzuweisungen (gewichtet)`; `Schluesselzuweisungen_A` ->
    `Schlüsselzuweisungen A`; a label from the rule file wins."""
    weighted = column.endswith(" gewichtet")
    plain = column[:-len(" gewichtet")] if weighted else column
    labels = labels or {}
    text = labels.get(plain) or labels.get(_norm(plain))
    if not text:
        text = plain.replace("_", " ")
        for ascii_form, spelled in SPELLING:
            text = text.replace(ascii_form, spelled).replace(ascii_form.lower(), spelled.lower())
    return f"{text} (gewichtet)" if weighted else text


def _umlagesoll(levy: Levy) -> int:
    """The Umlagesoll a notice states: the need the levy finances (§ 17 Abs. 2 Nr. 1 FAGDV: "die Höhe des durch die
    sonstigen Einnahmen nicht gedeckten Bedarfs, der … umgelegt werden soll"); for a statutory levy without any need
    in its run (no cost item, no Umlagebedarf) what it raises at the rate, which is then what it levies."""
    if levy.need is None or (levy.statute and levy.need == 0):
        return levy.total
    return levy.need


def _levy_data(levy: Levy, share: LevyShare, old: LevyShare | None, change: ChangePlan | None, settings: NoticeSettings,
               schedule_amount: int, municipality_count: int, before: Levy | None = None,
               before_share: LevyShare | None = None) -> dict:
    """One levy of one notice. `before`, `before_share`: the same levy in the previous year's result, where given
    (`--previous-year`): last year's rate and amount, and whether the Umlagesoll rose (the reasons are shown only
    then, § 17 Abs. 2 Nr. 2 FAGDV: "falls das Umlagesoll gegenüber dem Vorjahr erhöht worden ist")."""
    basis, approval, reasons = _legal_basis(levy, settings)
    labels = {column: text for column, text in settings.labels} | {_norm(c): text for c, text in settings.labels}
    components = [[readable(label, labels), f"{de_number(value)} €"] for label, value in share.components]
    need = _umlagesoll(levy)
    rose = before is not None and need > _umlagesoll(before)
    data = {
        "name": levy.name, "total": format_eur(need), "payers": municipality_count,
        # a statutory levy raises base × rate, which differs from the need: both stand on the notice
        "yield": format_eur(levy.total) if levy.statute and levy.total != need else "",
        "base_total": f"{de_number(levy.base_total)} €" if levy.base_total is not None else "",
        "rate_total": levy.rate,
        "components": components,
        "base": f"{de_number(share.base)} €" if share.base is not None else "",
        "rates": list(share.rates), "amount": format_eur(share.amount), "proof": share.proof,
        "legal_basis": basis, "approval": approval, "reasons": reasons if rose else "",
        "statute": levy.statute,
        "fixed": format_eur(schedule_amount) if schedule_amount != share.amount else "",
        "rounding_off": format_eur(share.amount - schedule_amount) if schedule_amount != share.amount else "",
    }
    if before is not None:
        data["previous"] = {"rate": before.rate,
                            "amount": format_eur(before_share.amount) if before_share is not None else "",
                            "need": format_eur(_umlagesoll(before)),
                            "rose": rose}
    if change is not None:
        data["change"] = {"old": format_eur(change.old_amount), "new": format_eur(change.new_amount),
                          "difference": format_eur(change.difference), "due_before": format_eur(change.due_before),
                          "old_amount": format_eur(old.amount if old else 0)}
    return data


def _by_date(rows: list[_Row], names: list[str]) -> dict:
    """The instalments as one line per due date with a column per levy, and each levy's Kassenzeichen."""
    dates = sorted({(r.due, r.number) for r in rows})
    lines = []
    for due, number in dates:
        amounts = [sum(r.amount for r in rows if r.levy == name and (r.due, r.number) == (due, number)) for name in names]
        lines.append([str(number), de_date(due), *(format_eur(a) for a in amounts), format_eur(sum(amounts))])
    references = []
    for name in names:
        own = [r.kassenzeichen for r in rows if r.levy == name]
        references.append([name, own[0] if len(set(own)) == 1 else f"{own[0]} … {own[-1]} (je Abschlag)"])
    return {"levies": names, "rows": lines, "totals": [format_eur(sum(r.amount for r in rows if r.levy == name))
                                                       for name in names], "kassenzeichen": references}


def _old_share(previous: ResultBook, found: Levy, levy: Levy, ags: str) -> LevyShare | None:
    """The same levy in the earlier result, by its name in the workbook, its rule-file name or its id."""
    for name in (found.name, levy.name, levy.key):
        share = previous.share(name, ags)
        if share is not None:
            return share
    return None


def build_notices(result: ResultBook, settings: NoticeSettings, notice_date: _dt.date,
                  previous: ResultBook | None = None, rule_levies: dict[str, tuple[str, str, str]] | None = None,
                  trace: dict | None = None, previous_year: ResultBook | None = None,
                  settled_on: _dt.date | None = None, *, settle: bool | None = None,
                  addresses: Mapping[str, tuple[str, ...]] | None = None,
                  only: set[str] | None = None) -> list[tuple[str, dict, list[_Row]]]:
    """Per municipality with a levy (or, with `previous`, with a changed levy): (PDF name, template data, rows).

    `previous_year`: the previous year's result. Its rates and amounts stand on the notices as last year's; and
    where `settle` (the state's law lets last year's instalments run on, Art. 19 Abs. 3 BayFAG; default: whenever
    it is given, for callers before `settle` existed), the instalments due by the notice date are shown as paid at
    last year's last instalment, and the difference is settled at the next due date (`settlement_plan`). Without
    it, instalments due by the notice date of a first notice are due with the next instalment ("nachgeholt").
    With `previous` (a change notice), `settled_on` is the date of the first notice: the old instalments are the
    ones it set, not the plain plan. `addresses`: AGS -> postal address lines; `only`: the AGS to write."""
    schedule = settings.schedule
    assert schedule is not None
    settle = previous_year is not None if settle is None else settle
    rule_levies = rule_levies or {}
    notices = []
    change_mode = previous is not None
    head = settings.letterhead
    kind, basis = remedy_in_force(settings, result.state, result.year)
    remedy = {"kind": kind, "basis": basis}
    for ags, name in result.municipalities:
        if only is not None and ags not in only:
            continue
        levies_data, rows = [], []
        for found in result.levies:
            levy = _named(found, rule_levies)
            share = result.share(found.name, ags)
            old = _old_share(previous, found, levy, ags) if previous else None
            amount = share.amount if share else 0
            if change_mode:
                if (old.amount if old else 0) == amount:
                    continue
            elif not amount:
                continue
            share = share or LevyShare(found.name, ags, name, 0)
            payers = sum(1 for s in result.shares if s.levy == found.name and s.amount)
            last = _old_share(previous_year, found, levy, ags) if previous_year is not None else None
            last_levy = next((lv for lv in previous_year.levies if lv.name in (found.name, levy.name)), None) \
                if previous_year is not None else None
            if change_mode:
                old_plan = None
                if settled_on is not None:  # the instalments the first notice set, dated `settled_on`
                    paid = provisional_instalment(last.amount if last else 0, schedule, previous_year.year) \
                        if settle and previous_year is not None else 0
                    old_plan = tuple(Instalment(line.number, line.due, line.amount) for line in
                                     settlement_plan(old.amount if old else 0, schedule, result.year, settled_on, paid)
                                     if settle or line.kind != "vorläufig")  # nothing was set before, without settling
                change = change_plan(old.amount if old else 0, amount, schedule, result.year, notice_date,
                                     settings.change_policy, old_plan)
                for line in change.lines:
                    rows.append(_Row(ags, name, levy.name, line.number, line.due, line.new,
                                     _kassenzeichen(settings, result.year, ags, levy, line.number), "Änderungsbescheid",
                                     line.old, line.already_due))
            elif settle and previous_year is not None:
                change = None
                paid = provisional_instalment(last.amount if last else 0, schedule, previous_year.year)
                for line in settlement_plan(amount, schedule, result.year, notice_date, paid):
                    rows.append(_Row(ags, name, levy.name, line.number, line.due, line.amount,
                                     _kassenzeichen(settings, result.year, ags, levy, line.number),
                                     f"Erstbescheid ({line.kind})", regular=line.regular))
            else:
                change = None
                # due by the notice date and nothing paid: those instalments fall due with the next one
                for line in settlement_plan(amount, schedule, result.year, notice_date, 0):
                    if line.kind == "vorläufig":
                        continue
                    kind = {"Abrechnung": "nachgeholt", "Abrechnung nach Jahresende": "nachgeholt"}.get(line.kind, "")
                    rows.append(_Row(ags, name, levy.name, line.number, line.due, line.amount,
                                     _kassenzeichen(settings, result.year, ags, levy, line.number),
                                     f"Erstbescheid ({kind})" if kind else "Erstbescheid", regular=line.regular))
            levies_data.append(_levy_data(levy, share, old, change, settings, fixed_amount(amount, schedule), payers,
                                          last_levy, last))
        if not levies_data:
            continue
        names = [levy["name"] for levy in levies_data]
        role, office = states.addressee(result.level, ags)
        caught_up = [r for r in rows if r.kind == "Erstbescheid (nachgeholt)"]
        data = {
            "district": result.district, "issuer": settings.issuer, "municipality": name, "ags": ags,
            "addressee": role, "office": office, "payers_word": f"umlagepflichtige {states.level(result.level).counted}",
            "payers_all": "umlagepflichtigen Gemeinden" if result.level == states.DEFAULT_LEVEL
            else f"umlagepflichtigen {states.level(result.level).payers}",
            "recipient": list((addresses or {}).get(ags, ())),
            "letterhead": head.template_data(), "remedy": remedy,
            "file_reference": head.file_reference.format(jahr=result.year, ags=ags,
                                                         umlage=_named(result.levies[0], rule_levies).key)
            if head.file_reference else "",
            "date": de_date(notice_date), "date_parts": [notice_date.year, notice_date.month, notice_date.day],
            "year": result.year, "subject": _subject(result, names, change_mode),
            "change": change_mode, "draft": result.draft, "provisional": result.provisional,
            "provisional_text": _provisional_text(result), "levies": levies_data,
            "previous_year": previous_year.year if previous_year is not None else "",
            "schedule": schedule.describe() + (f" ({settings.schedule_basis})" if settings.schedule_basis else ""),
            "saarland": schedule.split == "saarland",
            "caught_up": {"due": de_date(caught_up[0].due), "notice": de_date(notice_date)} if caught_up else None,
            "instalments": [{"levy": r.levy, "nr": r.number, "due": de_date(r.due), "amount": format_eur(r.amount),
                             "kassenzeichen": r.kassenzeichen,
                             "old": format_eur(r.old) if r.old is not None else "",
                             "difference": format_eur(r.amount - r.old) if r.old is not None else "",
                             "status": ("bereits fällig" if r.already_due else "offen") if r.already_due is not None else ""}
                            for r in rows],
            "plan": _by_date(rows, names),
            "total": format_eur(sum(r.amount for r in rows)),
            "payment": settings.payment, "policy": settings.change_policy,
            "trace": {key: value for key, value in (trace or {}).items() if key in ("sha256", "run", "mode")},
        }
        if settle and previous_year is not None and not change_mode:
            fact = states.profile(result.state).fact("provisional", result.year)
            data["settlement"] = {
                "norm": fact.norm if fact is not None else "",
                "previous_year": previous_year.year,
                "rows": [{"levy": r.levy, "nr": r.number, "due": de_date(r.due), "regular": format_eur(r.regular or 0),
                          "amount": format_eur(r.amount), "kind": r.kind.removeprefix("Erstbescheid (").rstrip(")")}
                         for r in rows],
            }
        notices.append((pdf_name(ags, name, change_mode), data, rows))
    return notices


# ----------------------------------------------------------------------------------------------- output


def render(notices: list[tuple[str, dict, list[_Row]]], folder: Path, template: Path | None = None, *,
           main: str = MAIN_TEMPLATE, layer: Path | None = None, template_seconds: float = TEMPLATE_SECONDS,
           template_memory_mb: int = TEMPLATE_MEMORY_MB) -> None:
    """Compile each notice to `folder/<name>.pdf` (the default template, overlaid with `layer`'s files, e.g. the
    Benehmen letter, then with `template`'s); `main` is the file compiled, in a child process that gets
    `template_seconds` per document and `template_memory_mb` of memory (TemplateError when one is exceeded)."""
    _compile_all(notices, template, folder, main, layer, template_seconds, template_memory_mb)


# ------------------------------------------------------------------------------- the template, within bounds

# Time and memory of a compile: see typst_child (measured there).
# What a template folder may hold (--template DIR, and so the default and the Benehmen layer; fonts count):
TEMPLATE_FILE_BYTES = 50 * 2**20
TEMPLATE_TOTAL_BYTES = 200 * 2**20
TEMPLATE_ENTRIES = 1000  # files and folders
_CHILD = Path(__file__).with_name("typst_child.py")


def template_limits(seconds: float, memory_mb: int) -> None:
    """The time and memory limits of a compile are within their ranges, else TemplateError (exit 2)."""
    problems = []
    for option, value, (low, high), unit in (("--template-seconds", seconds, TEMPLATE_SECONDS_RANGE, "Sekunden"),
                                             ("--template-memory-mb", memory_mb, TEMPLATE_MEMORY_MB_RANGE, "MB")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            problems.append(Problem("notices-template-limit", Location(option), f"{option} liegt außerhalb des Bereichs",
                                    found=repr(value), expected=f"{low} bis {high} {unit}",
                                    hint=f"einen Wert von {low} bis {high} angeben oder die Option weglassen"))
    if problems:
        raise TemplateError(problems)


def check_template(template: Path | None, directory: Path, refused: type[ProblemsError], *,
                   layer: Path | None = None) -> None:
    """Before anything is read: the output folder `directory` is neither a template folder nor inside one
    (`refused`, exit 8: the notices would land in the template and the next copy would take them along), and
    the template folder exists and holds only what `_template_files` accepts (TemplateError, exit 2)."""
    if template is not None and not template.is_dir():
        there = os.path.lexists(template)
        raise TemplateError([Problem("notices-bad-template", Location(str(template)),
                                     "der Vorlagen-Ordner ist kein Ordner" if there else "der Vorlagen-Ordner fehlt",
                                     found=f"{template}: {what_is_at(template)}" if there
                                     else str(template), expected="ein Ordner mit .typ-Dateien",
                                     hint="den Ordner angeben, in den Sie die Standardvorlage kopiert haben")])
    output = directory.resolve()
    inside = [source for source in (TEMPLATE_DIR, layer, template)
              if source is not None and (output == source.resolve() or source.resolve() in output.parents)]
    if inside:
        raise refused([Problem("notices-output-in-template", Location(str(directory)),
                               "der Ausgabe-Ordner liegt im Vorlagen-Ordner", found=str(source),
                               expected="ein Ausgabe-Ordner außerhalb der Vorlage",
                               hint="mit -o einen Ordner außerhalb des Vorlagen-Ordners angeben") for source in inside])
    if template is not None:
        _template_files([template])


def _template_files(sources: list[Path]) -> list[tuple[Path, Path]]:
    """(template folder, path relative to it) of every file of `sources`, later sources overlaying
    earlier ones. Walked without following links and without opening anything: a symbolic link is refused (at the
    link; copying it would put whatever it points to, e.g. a file outside the folder, into the template's reach),
    and so is anything but folders and regular files (a FIFO would block the copy). Each folder holds at most
    TEMPLATE_ENTRIES files and folders, TEMPLATE_FILE_BYTES per file and TEMPLATE_TOTAL_BYTES in all.
    TemplateError with every problem."""
    problems: list[Problem] = []
    files: dict[Path, Path] = {}

    def problem(code: str, path: Path, message: str, found: str, expected: str, hint: str) -> None:
        problems.append(Problem(code, Location(str(path)), message, found=found, expected=expected, hint=hint))

    for source in sources:
        pending, entries, total = [source], 0, 0
        while pending and entries <= TEMPLATE_ENTRIES:
            folder = pending.pop()
            try:
                with os.scandir(folder) as listing:
                    found = sorted(listing, key=lambda entry: entry.name)
            except OSError as error:
                problem("notices-template-file", folder, "der Vorlagen-Ordner lässt sich nicht lesen",
                        error.strerror or str(error), "ein lesbarer Ordner", "die Rechte des Ordners prüfen")
                continue
            for entry in found:
                entries += 1
                if entries > TEMPLATE_ENTRIES:
                    problem("notices-template-too-large", source, "die Vorlage hat zu viele Dateien und Ordner",
                            f"mehr als {TEMPLATE_ENTRIES}", f"höchstens {TEMPLATE_ENTRIES} Dateien und Ordner",
                            "nur die Dateien der Vorlage (.typ, Logo, Schriften) in den Ordner legen")
                    break
                path = Path(entry.path)
                try:
                    mode = entry.stat(follow_symlinks=False)
                except OSError as error:
                    problem("notices-template-file", path, "eine Datei der Vorlage lässt sich nicht lesen",
                            error.strerror or str(error), "eine lesbare Datei", "die Rechte der Datei prüfen")
                    continue
                if path.relative_to(source) == Path(DATA_FILE):  # a file, a folder or anything else
                    problem("notices-template-file", path, "der Name ist für die Daten der Briefe vorbehalten",
                            DATA_FILE, "eine Vorlage ohne einen Eintrag dieses Namens",
                            "den Eintrag umbenennen: die Briefe lesen ihre Daten unter diesem Namen")
                elif stat.S_ISDIR(mode.st_mode):
                    pending.append(path)
                elif not stat.S_ISREG(mode.st_mode):
                    problem("notices-template-file", path, f"in der Vorlage liegt {file_kind(mode.st_mode)}",
                            file_kind(mode.st_mode), "nur gewöhnliche Dateien und Ordner",
                            "die Datei selbst statt einer Verknüpfung in den Vorlagen-Ordner kopieren"
                            if stat.S_ISLNK(mode.st_mode) else "den Eintrag aus dem Vorlagen-Ordner entfernen")
                elif mode.st_size > TEMPLATE_FILE_BYTES:
                    problem("notices-template-too-large", path, "eine Datei der Vorlage ist zu groß",
                            f"{mode.st_size:,} Bytes".replace(",", "."),
                            f"höchstens {TEMPLATE_FILE_BYTES // 2**20} MB je Datei",
                            "das Bild oder die Schrift verkleinern oder weglassen")
                else:
                    total += mode.st_size
                    files[path.relative_to(source)] = source
        if total > TEMPLATE_TOTAL_BYTES:
            problem("notices-template-too-large", source, "die Vorlage ist insgesamt zu groß",
                    f"{total:,} Bytes".replace(",", "."), f"höchstens {TEMPLATE_TOTAL_BYTES // 2**20} MB",
                    "Bilder und Schriften verkleinern oder weglassen")
    if problems:
        raise TemplateError(problems)
    return [(source, relative) for relative, source in files.items()]


def _open_below(source: Path, relative: Path) -> int:
    """A file descriptor of `source/relative`, opened folder by folder below `source` without following a link
    (a folder or the file swapped for one since the walk fails with ELOOP/ENOTDIR) and without blocking."""
    folder = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in relative.parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
        return os.open(relative.parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    finally:
        os.close(folder)


def _read_template_file(source: Path, relative: Path) -> bytes:
    """One file of a template folder, opened below `source` without following a link and without blocking, and
    checked again once open (it may have been swapped since the walk); at most its limit is read. OSError else."""
    with open(_open_below(source, relative), "rb") as handle:
        kind = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(kind):
            raise OSError(f"{file_kind(kind)} statt einer Datei")
        data = handle.read(TEMPLATE_FILE_BYTES + 1)
    if len(data) > TEMPLATE_FILE_BYTES:
        raise OSError(f"größer als {TEMPLATE_FILE_BYTES // 2**20} MB")
    return data


def _unreadable(path: Path, error: OSError) -> Problem:
    return Problem("notices-template-file", Location(str(path)), "eine Datei der Vorlage lässt sich nicht kopieren",
                   found=error.strerror or str(error), expected="eine gewöhnliche, lesbare Datei",
                   hint="die Datei prüfen (keine Verknüpfung) und den Befehl wiederholen")


def _is_code(relative: Path) -> bool:
    return relative.suffix.lower() == ".typ"


def _decoded(data: bytes) -> str | None:
    """A template file's text, or None for a picture or a font, used as such: a file Typst cannot read as text
    (not UTF-8), so not scanned as text. Whatever is UTF-8 may be included or read as text, a NUL byte in it or
    not, and is scanned."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _code(text: str, typst: bool = True) -> str:
    """A template file's text (`_decoded`) as the checks read it: a .typ file (`typst`) without its comments
    (`_without_comments`); any other file as it is, since `read()` prints what looks like a comment there."""
    return _without_comments(text) if typst else text


# a Typst string literal ("…", with backslash escapes), as a template names a file it includes, imports or reads
_LITERAL = re.compile(r'"((?:[^"\\\n]|\\.){1,255})"')
_READ = re.compile(r'\bread\(\s*' + _LITERAL.pattern)  # `read("…")`: the file's text, printed as it is


def _named_file(relative: Path, literal: str) -> Path:
    """The file a string literal in the template file `relative` names: relative to its own folder, or to the
    template's top with a leading "/"."""
    return Path(os.path.normpath(Path(literal[1:]) if literal.startswith("/") else relative.parent / literal))


def _referenced(relative: Path, data: bytes, names: Iterable[Path]) -> set[Path]:
    """The files among `names` that the template file `relative` (its bytes `data`) names in a string literal
    outside comments: `#include "zeichnung.txt"`, `read("/texte/gruss.txt")`, `image("logo.png")` (`_named_file`).
    A name built at run time is not seen."""
    text = _decoded(data)
    if text is None:
        return set()
    known = set(names)
    return {name for literal in _LITERAL.findall(_code(text, _is_code(relative)))
            if (name := _named_file(relative, literal)) in known}


def _template_texts(template: Path | None) -> dict[Path, bytes]:
    """The Kreis's .typ files and every file of its folder they name (`_referenced`, and so on: an included
    text, a read data file, a picture), path relative to the folder -> bytes, read once: the checks of a final
    notice, the Protokoll and the compile all take these bytes, so a file edited during the run is never
    compiled unchecked. Notes and copies the template does not name (a README, .git, a backup) are neither read
    nor checked. Empty without `--template`; TemplateError for a file that cannot be read."""
    if template is None:
        return {}
    names = {relative: source for source, relative in _template_files([template])}
    problems, texts = [], {}
    pending = sorted(relative for relative in names if _is_code(relative))
    while pending:
        relative = pending.pop()
        if relative in texts:
            continue
        try:
            texts[relative] = _read_template_file(names[relative], relative)
        except OSError as error:
            problems.append(_unreadable(names[relative] / relative, error))
            continue
        pending += sorted(_referenced(relative, texts[relative], names) - set(texts))
    if problems:
        raise TemplateError(problems)
    return texts


def _reads_inputs(data: bytes) -> bool:
    """Whether Typst code may read `sys.inputs`: the words `sys` and `inputs` anywhere in it (also `#let s = sys`
    … `s.inputs`, also in a comment: a false alarm costs only speed, a miss would break the template)."""
    return (all(re.search(word, data) is not None for word in (rb"\bsys\b", rb"\binputs\b"))
            and _decoded(data) is not None)


def _copy_template(sources: list[Path], work: Path, texts: Mapping[Path, bytes] | None = None) -> tuple[str, bool]:
    """The template folders overlaid into `work`, each file read by `_read_template_file`; the last folder's files
    that `texts` holds (`_template_texts`) are those bytes, and a .typ file of that folder or a file they name
    that is not among them (added during the run) is refused. Returns the SHA-256 of what was copied: per file in
    path order its relative path and its bytes' SHA-256 (the template the letters were compiled from, for the
    Protokoll); and whether a file compiled names `sys` and `inputs` (`_reads_inputs`: a template of its own from
    before DATA_FILE gets the data there as well)."""
    problems, copied, inputs = [], {}, {}
    files = dict((relative, source) for source, relative in _template_files(sources))
    if texts is not None:
        own = [relative for relative, source in files.items() if source == sources[-1]]
        named = set().union(*(_referenced(relative, data, own) for relative, data in texts.items()))
        for relative in sorted({relative for relative in own if _is_code(relative)} | named):
            if relative not in texts:
                problems.append(Problem("notices-template-file", Location(str(sources[-1] / relative)),
                                        "eine Datei der Vorlage kam während des Laufs hinzu", found=str(relative),
                                        expected="die Vorlage, wie sie zu Beginn des Laufs war",
                                        hint="die Vorlage nicht während des Laufs ändern und den Befehl wiederholen"))
        files.update((relative, sources[-1]) for relative in texts)  # the bytes checked, even if deleted meanwhile
    for relative, source in sorted(files.items()):
        try:
            data = texts[relative] if texts is not None and source == sources[-1] and relative in texts \
                else _read_template_file(source, relative)
        except OSError as error:
            problems.append(_unreadable(source / relative, error))
            continue
        copied[Path(relative).as_posix()] = hashlib.sha256(data).hexdigest()
        inputs[Path(relative).as_posix()] = (_is_code(relative) or relative in (texts or {})) and _reads_inputs(data)
        try:  # the work folder beside the output: a full disk is the output's problem, not the template's
            (work / relative).parent.mkdir(parents=True, exist_ok=True)
            (work / relative).write_bytes(data)
        except OSError as error:
            raise OutputError([Problem("output-unusable", Location(str(work.parent)),
                                       "Die Bescheide lassen sich nicht schreiben", found=os_reason(error),
                                       expected="genug Platz und Schreibrechte",
                                       hint="freien Platz und Rechte des Ausgabeordners prüfen")]) from None
    if problems:
        raise TemplateError(problems)
    return (hashlib.sha256("".join(f"{name}\0{digest}\n" for name, digest in sorted(copied.items()))
                           .encode("utf-8")).hexdigest(), any(inputs.values()))


def _no_break(value: object) -> object:
    """The letters' data with a no-break space before every "€" and "%" ("2.948,20 €", "36,20 %"), so that no
    line of a letter ends on an amount without its unit; the workbooks and CSV files keep the plain space."""
    if isinstance(value, str):
        return value.replace(" €", "\u00a0€").replace(" %", "\u00a0%")
    if isinstance(value, dict):
        return {key: _no_break(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_no_break(item) for item in value]
    return value


def _compile_all(notices: list[tuple[str, dict, list[_Row]]], template: Path | None, folder: Path,
                 main: str = MAIN_TEMPLATE, layer: Path | None = None, seconds: float = TEMPLATE_SECONDS,
                 memory_mb: int = TEMPLATE_MEMORY_MB, texts: Mapping[Path, bytes] | None = None) -> str:
    """Compile each notice into `folder` (the Kreis's files as `texts` holds them, where given); returns the
    SHA-256 of the template compiled (`_copy_template`)."""
    template_limits(seconds, memory_mb)
    folder = Path(os.path.abspath(folder))  # the child runs in the work folder: relative paths would miss
    work = folder / ".template"
    work.mkdir()
    try:
        digest, inputs = _copy_template([source for source in (TEMPLATE_DIR, layer, template) if source is not None],
                                        work, texts if template is not None else None)
        job = {"main": str(work / main), "root": str(work), "data_file": str(work / DATA_FILE), "inputs": inputs,
               "fonts": [str(work / "fonts")] if (work / "fonts").is_dir() else [],
               "documents": [[str(folder / name), json.dumps(_no_break(data), ensure_ascii=False)]
                             for name, data, _ in notices]}
        _compile_in_child(job, [name for name, _, _ in notices], template or layer or TEMPLATE_DIR, seconds, memory_mb)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return digest


def _compile_in_child(job: dict, names: list[str], template: Path, seconds: float, memory_mb: int) -> None:
    """Run `typst_child` on `job`: at most `seconds` for the child's start and for each document, at most
    `memory_mb` of address space. Kills the child (and its process group) when a budget is exceeded, and
    always waits for it: no compile outlives this function. TemplateError naming the document otherwise."""
    cpu = int(2 * seconds * (len(names) + 1)) + 10  # backstop only (two threads): the parent kills first
    process = subprocess.Popen([sys.executable, str(_CHILD), str(memory_mb * 2**20), str(cpu), str(os.getpid())],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=job["root"], env={**os.environ, **CHILD_ENV}, start_new_session=True)
    pending, lines, errors = json.dumps(job, ensure_ascii=False).encode("utf-8"), b"", b""
    messages: list[dict] = []
    timed_out = False
    selector = selectors.DefaultSelector()
    try:
        for stream, events in ((process.stdin, selectors.EVENT_WRITE), (process.stdout, selectors.EVENT_READ),
                               (process.stderr, selectors.EVENT_READ)):
            os.set_blocking(stream.fileno(), False)
            selector.register(stream, events)
        deadline = time.monotonic() + seconds
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in selector.select(remaining):
                stream = key.fileobj
                if stream is process.stdin:
                    try:
                        written = os.write(stream.fileno(), pending[:65536])
                    except BrokenPipeError:  # the child died; what it said tells why
                        written = len(pending)
                    pending = pending[written:]
                    if not pending:
                        selector.unregister(stream)
                        stream.close()
                    continue
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    selector.unregister(stream)
                elif stream is process.stdout:
                    lines += chunk
                    *complete, lines = lines.split(b"\n")
                    if complete:  # the child is ready or a document is done: the next one gets the whole budget
                        messages += _messages(complete)
                        deadline = time.monotonic() + seconds
                else:
                    errors = (errors + chunk)[-4096:]
    finally:
        selector.close()
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if not stream.closed:
                stream.close()
    _child_outcome(messages, names, template, seconds, memory_mb, timed_out, process.returncode,
                   errors.decode("utf-8", "replace"))


def _messages(lines: list[bytes]) -> list[dict]:
    """The child's JSON messages; a line that is none (nothing else should print there) is skipped."""
    found = []
    for line in lines:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict):
            found.append(message)
    return found


def _child_outcome(messages: list[dict], names: list[str], template: Path, seconds: float, memory_mb: int,
                   timed_out: bool, returncode: int, errors: str) -> None:
    """The child's messages as the result: every document done, or the located problem of the one that was not."""
    done = sum(1 for message in messages if "done" in message)
    if done == len(names) and returncode == 0:
        return
    at = f"{names[done]} (Dokument {done + 1} von {len(names)})" if done < len(names) else "nach dem letzten Dokument"
    if not any("ready" in message for message in messages):
        at = "beim Laden der Vorlage"
    where = Location(str(template))
    last = messages[-1] if messages else {}
    if "error" in last:  # Typst names no file or line here: the letter it failed on, and its call trace
        trace = "; ".join(str(step) for step in last.get("trace", ())[:5])
        problem = Problem("notices-bad-template", where, "die Bescheid-Vorlage lässt sich nicht übersetzen",
                          found=f"{at}: {last['error']}{f' ({trace})' if trace else ''}"[:500],
                          expected="eine gültige Typst-Vorlage", hint="die geänderte Datei der Vorlage prüfen")
    elif "write" in last:
        index = last["write"]
        raise OutputError([Problem("output-unusable",
                                   Location(str(names[index]) if 0 <= index < len(names) else "Arbeitsordner"),
                                   "Die Bescheide lassen sich nicht schreiben",
                                   found=os_reason(code=last.get("errno"), text=str(last.get("reason", ""))),
                                   expected="genug Platz und Schreibrechte", hint="freien Platz und Rechte prüfen")])
    elif returncode == 1 and "Traceback (most recent call last)" in errors:  # a bug in the child, not the template
        raise RuntimeError(f"typst_child ist mit einem Programmfehler beendet ({at}):\n{errors.strip()[-2000:]}")
    elif timed_out or returncode == -signal.SIGXCPU:
        problem = Problem("notices-template-limit", where, f"die Bescheid-Vorlage wurde nach {seconds:g} s abgebrochen",
                          found=f"{at}: nach {seconds:g} s nicht fertig", expected=f"höchstens {seconds:g} s je Dokument",
                          hint="die Vorlage auf Schleifen und Rekursion prüfen, die nicht enden; eine sehr große, "
                               "aber richtige Vorlage mit --template-seconds mehr Zeit geben")
    elif "memory" in last or "memory allocation of" in errors or "MemoryError" in errors:
        problem = Problem("notices-template-limit", where,
                          f"die Bescheid-Vorlage braucht mehr als {memory_mb} MB Arbeitsspeicher",
                          found=f"{at}: Speichergrenze erreicht", expected=f"höchstens {memory_mb} MB",
                          hint="die Vorlage auf Listen oder Texte prüfen, die ohne Ende wachsen; eine sehr große, aber "
                               "richtige Vorlage mit --template-memory-mb mehr Speicher geben")
    else:
        problem = Problem("notices-bad-template", where, "die Übersetzung der Bescheid-Vorlage ist abgebrochen",
                          found=f"{at}: Exit-Code {returncode}; {errors.strip()[-300:]}",
                          expected="eine gültige Typst-Vorlage", hint="die geänderte Datei der Vorlage prüfen")
    raise TemplateError([problem])


HEADER = ("AGS", "Gemeinde", "Umlage", "Nr", "Faellig", "Betrag", "Kassenzeichen", "Bescheid", "Bisher", "Aenderung",
          "Status")


def _write_xlsx(rows: list[_Row], target: Path, protocol: list[tuple[str, object]] = ()) -> None:
    """`Abschlaege` (plain header, due dates as DD.MM.YYYY and amounts in euros down the whole column, fixed
    widths, frozen header, filter) and `Protokoll` (where the plan came from, for the auditor)."""
    from ..workbook.report import EUR, write_book

    formats = {4: "DD.MM.YYYY", 5: EUR, 8: EUR, 9: EUR}  # 0-based columns: Faellig, Betrag, Bisher, Aenderung

    def build(book) -> None:
        sheet = book.add_sheet("Abschlaege")
        for c, text in enumerate(HEADER):
            book.put(sheet, 0, c, text)
        for n, r in enumerate(rows, start=1):
            values = (r.ags, r.name, r.levy, r.number, r.due, cents_to_decimal(r.amount), r.kassenzeichen, r.kind,
                      cents_to_decimal(r.old) if r.old is not None else None,
                      cents_to_decimal(r.amount - r.old) if r.old is not None else None,
                      ("bereits fällig" if r.already_due else "offen") if r.already_due is not None else None)
            for c, value in enumerate(values):
                book.put(sheet, n, c, value, formats.get(c), every=c in formats)
        _widths(sheet, (11, 24, 24, 5, 12, 16, 30, 18, 16, 16, 15))
        sheet.freeze_panes(1, 0)
        sheet.autofilter(0, 0, len(rows), len(HEADER) - 1)
        trail = book.add_sheet("Protokoll")
        for c, text in enumerate(("Angabe", "Wert")):
            book.put(trail, 0, c, text)
        for n, (key, value) in enumerate(protocol, start=1):
            book.put(trail, n, 0, key)
            book.put(trail, n, 1, value)
        _widths(trail, (28, 70))

    write_book(target, build)


def _widths(sheet, widths: Sequence[int]) -> None:
    for c, width in enumerate(widths):
        sheet.set_column_pixels(c, c, 7 * width)  # 7 px per character: the width itself in the file


def _csv_amount(cents: int | None) -> str:
    return "" if cents is None else str(cents_to_decimal(cents)).replace(".", ",")


def _csv_text(text: str) -> str:
    """A text field as the CSV carries it: text a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, tab,
    carriage return first; the workbooks' FORMULA_START) gets a leading apostrophe, as the workbooks store such
    text with a quote prefix. Only text: amounts and dates are written by `_csv_amount`/`de_date` and keep their
    sign (`-245,69`)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def soll_lines(rows: list[_Row], settings: NoticeSettings, notice_date: _dt.date, reference: str) -> list[tuple]:
    """The debit entries of the notices: one per member, levy and due date. A first notice debits each instalment
    (`Soll`); a change notice debits only what changes (`Korrektur`: new − old, for each instalment that changes),
    so the entries of the first notice and of every change add up to what is owed now."""
    lines = []
    for r in rows:
        texts = settings.text_for(r.levy)
        amount = r.amount if r.old is None else r.amount - r.old
        if r.old is not None and amount == 0:
            continue
        lines.append((r.kassenzeichen, r.ags, r.name, r.levy, texts.produkt if texts else "",
                      texts.sachkonto if texts else "", r.due, amount, "Soll" if r.old is None else "Korrektur",
                      notice_date, reference))
    return lines


def _write_soll(lines: list[tuple], target: Path) -> None:
    """`Sollstellung.csv`: the format of `Abschlaege.csv` (`;`, UTF-8 with BOM, CRLF, decimal comma, TT.MM.JJJJ,
    text neutralised against formula injection), one debit entry per line (`soll_lines`)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(SOLL_HEADER)
    for kassenzeichen, ags, name, levy, produkt, sachkonto, due, amount, kind, date, reference in lines:
        writer.writerow((_csv_text(kassenzeichen), _csv_text(ags), _csv_text(name), _csv_text(levy), _csv_text(produkt),
                         _csv_text(sachkonto), de_date(due), _csv_amount(amount), kind, de_date(date),
                         _csv_text(reference)))
    target.write_text(buffer.getvalue(), encoding="utf-8-sig", newline="")


def _write_csv(rows: list[_Row], target: Path) -> None:
    """`;`-separated, UTF-8 with BOM, CRLF, decimal comma without thousands separators, dates TT.MM.JJJJ; text
    fields neutralised against formula injection (`_csv_text`)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(HEADER)
    for r in rows:
        status = ("bereits fällig" if r.already_due else "offen") if r.already_due is not None else ""
        writer.writerow((_csv_text(r.ags), _csv_text(r.name), _csv_text(r.levy), r.number, de_date(r.due),
                         _csv_amount(r.amount), _csv_text(r.kassenzeichen), _csv_text(r.kind), _csv_amount(r.old),
                         _csv_amount(r.amount - r.old if r.old is not None else None), _csv_text(status)))
    target.write_text(buffer.getvalue(), encoding="utf-8-sig", newline="")


def publish(folder: Path, target: Path) -> None:
    """Move the finished files (of the notices, of the Benehmen letters) into `target`: the whole folder at once if
    `target` is new, else file by file, with Ctrl-C and SIGTERM held until all have moved. A new folder gets the
    mode any folder the user makes gets (mkdtemp made it 0700), like every other output."""
    with held(signal.SIGINT, signal.SIGTERM):
        if not target.exists():
            os.chmod(folder, 0o777 & ~current_umask())
            try:
                os.rename(folder, target)
                return
            except OSError as error:
                if error.errno != errno.EXDEV:  # a new folder on another file system: made there, filled file by file
                    raise
                target.mkdir(mode=0o777)
        for path in sorted(folder.iterdir()):
            move_into(path, target)
        folder.rmdir()


def _protected(paths: Iterable[Path | None]) -> set[Path]:
    found: set[Path] = set()
    for path in paths:
        if path is None:
            continue
        if path.is_dir():
            found |= {p.resolve() for p in path.rglob("*")}
        found.add(path.resolve())
    return found


def _verify(output: Path, register_dir: Path | None = None):
    """`allocation verify`; any changed file, register finding, replay error or differing cell or part refuses the
    notices (exit 7). Returns the verified manifest."""
    from ..runs.manifest import manifest_path
    from .verify import verify

    result = verify(output, register_dir)
    if not result.identical:
        where = Location(str(manifest_path(output)))
        found = [*(str(problem) for problem in result.problems), *result.file_problems,
                 *(f"Register: {finding}" for finding in result.register),
                 *([result.replay_error] if result.replay_error else []),
                 *(str(difference) for difference in result.field_differences),
                 *(str(difference) for difference in [*result.differences, *result.package][:50])]
        if len(result.differences) + len(result.package) > 50:
            found.append(f"… und {len(result.differences) + len(result.package) - 50} weitere Abweichungen")
        raise NotVerified([Problem("notices-not-verified", where, "allocation verify bestätigt den Lauf nicht",
                                   found=text, expected="identisch (Dateien unverändert, Nachrechnung gleich)",
                                   hint="den Lauf neu rechnen (allocation run) und dann die Bescheide schreiben")
                           for text in found])
    return result


def _in_force(earlier: "Earlier", register_dir: str | Path | None) -> None:
    """Notices of a final run only while it is in force: a later final run of the year superseded it
    (`notices-superseded`, naming the run in force); its notices would set what no longer holds."""
    from ..runs.register import in_force

    if not earlier.final:
        return
    current, this = in_force(earlier, register_dir)
    if current is not None and not this:
        raise InputError([Problem("notices-superseded", Location(str(earlier.path), "Protokoll"), "Dieser Echtlauf ist "
                                  f"nicht mehr in Kraft: in Kraft ist Nr. {current.get('seq')} vom "
                                  f"{current.get('recorded_utc')} ({current.get('output')})",
                                  found=f"SHA-256 {earlier.sha256}", expected=f"SHA-256 {current.get('output_sha256')}",
                                  hint=f"die Bescheide aus {current.get('output')} schreiben (mit --previous gegenüber "
                                       "diesem Lauf: Änderungsbescheide)")])


def _previous(path: Path, result: ResultBook, manifest: dict) -> ResultBook:
    """The earlier result of a change notice, through `readback.read_output`: unchanged since its run (its
    manifest's SHA-256, else `notices-previous-changed`, exit 7), the same Kreis and year and a run started before
    this one (`notices-previous-mismatch`, exit 3)."""
    from ..runs.readback import Relation, read_output

    earlier = read_output(path, "notices-unreadable", Relation(result.district, result.year, "earlier-run",
                                                    manifest["started_utc"], manifest["output"]["sha256"],
                                                    manifest.get("register"), "Die frühere Ergebnis-Arbeitsmappe"),
                          changed_code="notices-previous-changed", mismatch_code="notices-previous-mismatch",
                          missing_code="notices-previous-changed")
    previous = read_result(earlier)  # its Protokoll agrees with its manifest, on which the relation was checked
    current = {ags for ags, _ in result.municipalities}
    missing = [(ags, name) for ags, name in previous.municipalities
               if ags not in current and any(share.amount for share in previous.shares if share.ags == ags)]
    if missing:
        raise InputError([Problem("notices-municipality-missing", Location(path.name, "Uebersicht"),
                                  f"{name} ({ags}) zahlte im früheren Lauf eine Umlage und fehlt im neuen Lauf: ihr "
                                  "Abschlagsplan bliebe ohne Bescheid bestehen", found=f"{ags} {name}",
                                  expected="jede Gemeinde des früheren Laufs auch im neuen Lauf",
                                  hint="die Gemeinde im neuen Lauf führen (Betrag 0, wenn sie nichts mehr zahlt: dann "
                                       "hebt ihr Änderungsbescheid den Plan auf) oder ihren Bescheid gesondert aufheben")
                          for ags, name in missing])
    return previous


def _previous_year(path: Path | None, result: ResultBook, settings: NoticeSettings, notice_date: _dt.date,
                   change: bool, settled_on: _dt.date | None = None) -> tuple[ResultBook | None, bool]:
    """The previous year's result (`--previous-year`, also `--provisional-from`), read through
    `readback.read_output` (unchanged since its run; the same body, the previous year), and whether the notices
    settle last year's instalments with it.

    Its rates and amounts stand on the notices as last year's. Where the state's law lets last year's instalments
    run on and settles them at the next due date (`provisional` rule `previous_instalments` with `settlement:
    next_due_date`, verified: Art. 19 Abs. 3 BayFAG), a first notice dated on or after the first due date needs it
    (`notices-provisional-missing`), and a change notice needs the date of the first notice (`settled_on`) and,
    where that notice settled, this result too: the old instalments are the ones that notice set. `--settled-on`
    elsewhere is refused (`notices-provisional-rule`)."""
    from ..runs.readback import Relation, read_output

    law = states.profile(result.state)
    rule = law.applied("provisional", result.year)
    continues = rule is not None and rule["rule"] == "previous_instalments" and rule.get("settlement") == "next_due_date"
    fact = law.fact("provisional", result.year)
    norm = fact.cite() if fact is not None else f"Landesrecht {result.state}"
    assert settings.schedule is not None
    first_due = settings.schedule.due_dates(result.year)[0]
    where = Location(result.path.name, "Protokoll")

    def missing(message: str, found: str, hint: str) -> InputError:
        return InputError([Problem("notices-provisional-missing", where, f"{message} ({norm})", found=found,
                                   expected="die Angaben zu den vorläufigen Teilbeträgen", hint=hint)])

    def refused(message: str, found: str) -> InputError:
        return InputError([Problem("notices-provisional-rule", where, message, found=found,
                                   expected="ohne --first-notice", hint="--first-notice weglassen")])

    settle = False
    if settled_on is not None and not change:
        raise refused("--first-notice gilt nur für Änderungsbescheide (mit --previous)", de_date(settled_on))
    if settled_on is not None and settled_on > notice_date:
        raise refused(f"der erste Bescheid (--first-notice {de_date(settled_on)}) liegt nach diesem Änderungsbescheid "
                      f"({de_date(notice_date)})", de_date(settled_on))
    if not continues:
        pass  # a change notice's --first-notice: the instalments due by it fell due with the next one
    elif change:
        if settled_on is None:
            raise missing("ein Änderungsbescheid ändert, was der erste Bescheid festgesetzt hat; hat dieser vorläufige "
                          "Teilbeträge abgerechnet, sind es andere Raten als gleiche Teile", "kein --first-notice",
                          "--first-notice mit dem Datum des ersten Bescheids angeben (und, wenn er am oder nach dem "
                          "ersten Fälligkeitstag datiert war, --previous-year mit dem Ergebnis des Vorjahres)")
        settle = settled_on >= first_due
        if settle and path is None:
            raise missing(f"der erste Bescheid vom {de_date(settled_on)} lag am oder nach dem ersten Fälligkeitstag "
                          f"{de_date(first_due)} und rechnete die vorläufigen Teilbeträge ab", "kein --previous-year",
                          "--previous-year mit dem Ergebnis des Vorjahres angeben, wie beim ersten Bescheid")
    else:
        settle = not result.provisional and notice_date >= first_due
        if settle and path is None:
            raise missing(f"der Bescheid ist auf den {de_date(notice_date)} datiert, am oder nach dem ersten "
                          f"Fälligkeitstag {de_date(first_due)}; bis zur Festsetzung liefen die Teilbeträge des "
                          "Vorjahres vorläufig weiter", "kein --previous-year",
                          "--previous-year VORJAHR-ERGEBNIS.xlsx angeben: dann rechnet der Bescheid die vorläufigen "
                          "Zahlungen zum nächsten Fälligkeitstermin ab")
    if path is None:
        return None, False
    earlier = read_output(path, "notices-unreadable", Relation(result.district, result.year, "previous",
                                                               label="Die Ergebnis-Arbeitsmappe des Vorjahres"),
                          changed_code="notices-previous-changed", mismatch_code="notices-previous-mismatch",
                          missing_code="notices-previous-changed")
    return read_result(earlier), settle


def _refuse_after_year(result: ResultBook, notice_date: _dt.date, settlement: bool) -> None:
    """A first notice dated after its budget year sets instalments that were all due: refused, unless it settles
    (a change notice, or a first notice that settles provisional instalments)."""
    if notice_date.year > result.year and not settlement:
        raise InputError([Problem(
            "notices-after-year", Location(result.path.name, "Protokoll"),
            f"ein erster Bescheid vom {de_date(notice_date)} setzte Abschläge fest, die im Haushaltsjahr {result.year} "
            "schon alle fällig waren", found=de_date(notice_date), expected=f"ein Datum im Haushaltsjahr {result.year}",
            hint="den Bescheid mit seinem tatsächlichen Datum im Haushaltsjahr schreiben oder, wenn er einen früheren "
                 "Bescheid ändert, als Änderungsbescheid (--previous)")])


def _chosen(result: ResultBook, only: Sequence[str] | None) -> set[str] | None:
    """`--ags`: the members to write notices for (a re-issue after an objection); an unknown one is located."""
    if not only:
        return None
    known = {ags for ags, _ in result.municipalities}
    wanted = [ags.strip() for entry in only for ags in entry.split(",") if ags.strip()]
    if not wanted:
        raise InputError([Problem("notices-unknown-ags", Location("--ags"), "--ags nennt kein Mitglied", found="leer",
                                  expected="ein oder mehrere AGS, durch Komma getrennt",
                                  hint="die AGS angeben oder --ags weglassen (dann für alle)")])
    unknown = [ags for ags in wanted if ags not in known]
    if unknown:
        raise InputError([Problem("notices-unknown-ags", Location("--ags"), f"{ags} steht nicht in der Ergebnis-"
                                  "Arbeitsmappe", found=ags, expected="ein AGS aus dem Blatt Uebersicht",
                                  hint="den AGS prüfen (8 Ziffern, führende Null)") for ags in unknown])
    return set(wanted)


ADDRESS_SHEET = "Anschriften"
ADDRESS_LINES, ADDRESS_CHARS = 6, 80  # what fits the window of a DIN 5008 envelope (6 lines; a generous width)


class AddressError(ProblemsError):
    exit_code = ExitCode.INPUT
    title = "Die Anschriften lassen sich nicht verwenden"


def read_addresses(path: str | Path, result: ResultBook) -> dict[str, tuple[str, ...]]:
    """`--addresses ANSCHRIFTEN.xlsx`: sheet `Anschriften`, a column `AGS` and one column per address line
    (`Zeile 1`, `Zeile 2`, ...). Read within bounds (a regular file, at most the size of an input workbook);
    every unusable row is located (`notices-bad-address`, exit 3)."""
    import openpyxl

    from ..runs.readback import output_bytes

    path = Path(path)
    try:
        source = output_bytes(path, "notices-bad-address")
    except ProblemsError as error:
        raise AddressError(error.problems) from None
    name = path.name

    def problem(message: str, where: Location, found: str, expected: str, hint: str) -> Problem:
        return Problem("notices-bad-address", where, message, found=found, expected=expected, hint=hint)

    try:
        book = openpyxl.load_workbook(source.stream(), read_only=True, data_only=False)  # formulas as formulas
    except Exception as error:  # noqa: BLE001 - openpyxl raises many types for a file that is no workbook
        raise AddressError([problem("Die Anschriften lassen sich nicht lesen", Location(name), type(error).__name__,
                                    "eine .xlsx-Arbeitsmappe", "die Anschriften als Excel-Arbeitsmappe speichern")]) from None
    try:
        if ADDRESS_SHEET not in book.sheetnames:
            raise AddressError([problem(f"Blatt {ADDRESS_SHEET} fehlt", Location(name), ", ".join(book.sheetnames),
                                        ADDRESS_SHEET, f"ein Blatt {ADDRESS_SHEET} mit AGS, Zeile 1, Zeile 2, ... anlegen")])
        rows = list(book[ADDRESS_SHEET].iter_rows(values_only=True))
    finally:
        book.close()
    header = [str(cell).strip() if cell is not None else "" for cell in rows[0]] if rows else []
    keys = [i for i, text in enumerate(header) if _norm(text) == "ags"]
    numbered = sorted((int(match.group(1)), i) for i, text in enumerate(header)
                      if (match := re.fullmatch(r"zeile(\d+)", _norm(text))))
    lines = [i for _, i in numbered]  # in the order of their numbers, wherever the columns stand
    if not keys or not lines or len(lines) > ADDRESS_LINES:
        raise AddressError([problem("Die Spalten AGS und Zeile 1, Zeile 2, ... fehlen" if not keys or not lines
                                    else f"Mehr als {ADDRESS_LINES} Anschriftzeilen",
                                    Location(name, ADDRESS_SHEET, 1), ", ".join(header),
                                    f"AGS, Zeile 1 … Zeile {ADDRESS_LINES}", "die Überschriften in Zeile 1 eintragen")])
    known = {ags for ags, _ in result.municipalities}
    found: dict[str, tuple[str, ...]] = {}
    first: dict[str, int] = {}
    problems = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell not in (None, "") for cell in row):
            continue
        ags = str(row[keys[0]]).strip() if keys[0] < len(row) and row[keys[0]] is not None else ""
        where = Location(name, ADDRESS_SHEET, number, keys[0] + 1)
        bad = [(i, row[i]) for i in lines if i < len(row) and row[i] not in (None, "")
               and (not isinstance(row[i], str) or row[i].startswith("=") or row[i].startswith("#")
                    or len(row[i].strip()) > ADDRESS_CHARS)]
        for column, value in bad:  # a formula, an error, a number or a date would print what Excel does not show
            problems.append(problem("Die Anschriftzeile ist kein Text", Location(name, ADDRESS_SHEET, number, column + 1),
                                    repr(value)[:80], f"Text von höchstens {ADDRESS_CHARS} Zeichen (Zelle als Text "
                                    "formatiert, keine Formel)", "die Zeile als Text eintragen, z. B. die PLZ '46519"))
        if bad:
            continue
        text = tuple(str(row[i]).strip() for i in lines if i < len(row) and row[i] not in (None, "")
                     and str(row[i]).strip())
        if ags not in known:
            problems.append(problem(f"{ags or 'leer'} ist kein Mitglied dieses Laufs", where, ags or "leer",
                                    "ein AGS aus dem Blatt Uebersicht (als Text)", "den AGS korrigieren oder die Zeile löschen"))
        elif ags in first:
            problems.append(problem(f"Anschrift für {ags} doppelt", where, ags, "eine Zeile je AGS",
                                    f"eine löschen; die erste steht in Zeile {first[ags]}"))
        elif not text:
            problems.append(problem(f"Anschrift für {ags} ist leer", where, "leer", "mindestens eine Zeile",
                                    "die Anschrift in Zeile 1, Zeile 2, ... eintragen"))
        else:
            first[ags] = number
            found[ags] = text
    if problems:
        raise AddressError(problems)
    return found


# The texts templates copied from earlier versions show unconditionally (written with or without Typst's escapes,
# `\[…\]`); the current default shows `platzhalter(...)` only where the rule file lacks the text.
PLACEHOLDER_MARKERS = ("[Verwaltungsgericht und Anschrift in rechtsbehelf.typ eintragen]", "(Name, Amt)",
                       "PLATZHALTER:")
# the letterhead fields each default file shows, and where a final notice must have them
PLACEHOLDER_FIELDS = {
    "rechtsbehelf.typ": (("court_name", "das Verwaltungsgericht (court.name)"),
                         ("court_address", "seine Anschrift (court.address)")),
    "unterschrift.typ": (("signatory_name", "wer zeichnet (signatory.name)"),),
    "briefkopf.typ": (("authority", "die Behörde (authority)"), ("address", "ihre Anschrift (address)")),
}


# What prints differently from how it is written. Escapes: Typst's `\u{28}` in a .typ file; JSON's `\u0028` and
# YAML's `\x28` in a file the template reads; `\n`, `\r`, `\t` in both. A markup escape's backslash (`\[`) and a
# forced line break (`\` at a line's end) print nothing of a marker. Blanks, line ends, `~` and no-break spaces, in
# any mix and number, print as one blank (or a line break); a lone plain blank is left as it is (the common case,
# no Python call for it: a call per line end or escape, some 10 s for a 50 MB file of short lines, the largest a
# template file may be).
_BLANK = r"[\s~\u00a0]"
_RUN = rf"(?! (?!{_BLANK})){_BLANK}+"  # any run of blanks but a single plain space
_AS_PRINTED = {  # a token: an escape, backslashes or a run of blanks, with the blanks after it
    typst: re.compile(rf"(?:{escapes}|\\[nrt]|{_RUN}|\\+)(?P<tail>{_BLANK}*)")
    for typst, escapes in ((True, r"\\u\{(?P<typst>[0-9a-fA-F]{1,6})\}"),
                           (False, r"\\u(?P<json>[0-9a-fA-F]{4})|\\x(?P<yaml>[0-9a-fA-F]{2})"))}


def _placeholder_lines(code: str, typst: bool = True) -> list[tuple[int, str]]:
    """Where a placeholder marker prints from `code` (`_code`: a .typ file without comments, `typst`, or a file it
    reads, as it is): (line on which the marker begins, marker), read as printed (`_AS_PRINTED`): broken across
    lines, spaced twice, with a no-break space or written with escapes it counts as written plainly."""
    starts = array.array("q", [0])  # the offset in the printed text at which each line of `code` begins
    state = {"length": 0, "end": 0, "blank": False}  # printed so far; end of the last token; printed a blank last

    def blank(text: str) -> str:  # what prints of `text` after what printed before
        if text.isspace() or text == "~":
            text = "" if state["blank"] else " "
            state["blank"] = True
        elif text:
            state["blank"] = False
        return text

    def printed(match: re.Match) -> str:
        token, tail = match.group(0), match.group("tail")
        head, before = token[:len(token) - len(tail)], match.start() - state["end"]
        if before:  # plain text since the last token: ends in a blank only if a lone plain space ends it
            state["blank"] = code[match.start() - 1] == " "
        hexa = match.group("typst") if typst else match.group("json") or match.group("yaml")
        if hexa is not None:
            value = int(hexa, 16)
            text = chr(value) if value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else ""
        else:  # a backslash prints nothing of a marker; `\n`, `\r`, `\t` and blanks print a blank
            text = "" if head[0] == "\\" and head not in ("\\n", "\\r", "\\t") else " "
        text = blank(text) + (blank(" ") if tail else "")
        state["length"] += before + len(text)
        state["end"] = match.end()
        for _ in range(token.count("\n")):
            starts.append(state["length"])
        return text

    flat = _AS_PRINTED[typst].sub(printed, code)
    return sorted({(bisect.bisect_right(starts, found.start()), marker) for marker in PLACEHOLDER_MARKERS
                   for found in re.finditer(re.escape(marker), flat)})


def _placeholder_definition(lines: list[str]) -> set[int]:
    """The lines (numbered from 1) of the default's `#let platzhalter(…) = …` (briefkopf.typ), whose
    "[PLATZHALTER: …]" prints only where the rule file lacks a text (checked by field): from its first line to the
    line before the next one that starts at the left margin, however a formatter wrapped it. One pass."""
    defining, found = False, set()
    for number, line in enumerate(lines, start=1):
        if "let platzhalter(" in line:
            defining = True
        elif line[:1] not in ("", " ", "\t"):
            defining = False
        if defining:
            found.add(number)
    return found


# a comment's start: `//` (to the line's end) or `/*`, at a line's start or after a blank (not in "a//b", "https://")
_COMMENT = re.compile(r"(?<!\S)(?://|/\*)")
# a double quote or a backtick that no backslash escapes (an even number of backslashes before it escapes nothing)
_OPENER = re.compile(r'(?<!\\)(?:\\\\)*(["`])')
_LINE_END = re.compile("[\n\x0b\x0c\r\x85\u2028\u2029]")  # what Typst takes for a line's end


def _without_comments(text: str) -> str:
    """Typst source without its comments (`// …` to the line's end, `/* … */`), line numbers kept; what a comment
    says is never printed. One pass from left to right, so a `/*` inside a line comment starts nothing. A comment
    counts where it starts a line or follows a blank, and not inside a string (`"Tel. 200-0 // Fax 200-1"`, also
    one over several lines) or raw text (`` `…` ``, ```` ``` ```` blocks), so that neither hides text; a
    comment written straight after code, one after a stray `"` in markup (the rest of the file then counts as a
    string), an unclosed `/*` (Typst refuses it anyway) and the rest of a nested one are scanned: the scan errs
    towards refusing."""
    parts, at, search, counted = [], 0, 0, 0
    string = raw = False  # inside a string or raw text, at `counted`
    while match := _COMMENT.search(text, search):  # linear: every search and count starts where the last ended
        start = match.start()
        for found in _OPENER.finditer(text, counted, start):
            if found.group(1) == "`":
                raw = raw if string else not raw
            elif not raw:
                string = not string
        counted = start
        if string or raw:  # not a comment
            search = start + 1
            continue
        parts.append(text[at:start])
        if match.group(0) == "//":
            end = _LINE_END.search(text, start)
            at = search = counted = end.start() if end else len(text)
            continue
        end = text.find("*/", match.end())
        if end < 0:
            at = start
            break
        parts.append("\n" * text.count("\n", start, end))
        at = search = counted = end + 2
    return "".join(parts) + text[at:]


REMEDY_WORDS = {"klage": "Klage", "widerspruch": "Widerspruch", "wahl": "Widerspruch oder Klage nach Wahl"}


def remedy_in_force(settings: NoticeSettings, state: str, year: int) -> tuple[str, str]:
    """The remedy a notice names (klage, widerspruch, wahl) and what says so: the letterhead's `remedy` (the Kreis
    checked its state's law; in the rule file or the installation's letterhead file, `settings.remedy_source`), else
    the state profile's remedy fact where it is verified. Where neither says,
    ("", the profile's norm): the default template shows a placeholder and a final notice is refused, since a
    wrong Rechtsbehelfsbelehrung gives a year to sue instead of a month (§ 58 Abs. 2 VwGO, read 2026-12 at
    https://gesetzklar.de/vwgo/97124/58: "Ist die Belehrung unterblieben oder unrichtig erteilt, so ist die Einlegung
    des Rechtsbehelfs nur innerhalb eines Jahres … zulässig")."""
    if settings.letterhead.remedy:
        return settings.letterhead.remedy, settings.remedy_source or "notices.letterhead.remedy"
    law = states.profile(state)
    fact, value = law.fact("remedy", year), law.applied("remedy", year)
    if isinstance(value, dict):
        return str(value["kind"]), fact.norm
    return "", fact.cite() if fact is not None else ""


def _template_codes(template: Path | None, texts: Mapping[Path, bytes]) -> dict[Path, str]:
    """The Kreis's .typ files and the texts they name (`texts`, from `_template_texts`; pictures left out), by their
    path, in path order, with their text as the checks read it (`_code`: .typ files without comments, unless the
    template read()s them). Empty without `--template`."""
    if template is None:
        return {}
    decoded = {relative: text for relative, data in sorted(texts.items()) if (text := _decoded(data)) is not None}
    # a file the template read()s prints as it is, comments too, even a .typ file (comments or not: more is read)
    raw = {_named_file(relative, literal) for relative, text in decoded.items() for literal in _READ.findall(text)}
    return {template / relative: _code(text, _is_code(relative) and relative not in raw)
            for relative, text in decoded.items()}


def _remedy_style(code: str) -> str:
    """How the template in effect words the Rechtsbehelfsbelehrung, from the Kreis's `rechtsbehelf.typ` (`code`,
    "" where it has none): "default" (the default, or a file that reads `d.remedy`: the text follows the remedy in
    force), "klage" (a copy of an earlier default: it has the default's placeholder, neither `remedy` nor a
    Widerspruch, and always speaks of a Klage) or "own" (the Kreis's own text, which says what it says)."""
    if not code or "remedy" in code:
        return "default"
    return "klage" if "platzhalter(" in code and "widerspruch" not in code.casefold() else "own"


# the words a Rechtsbehelfsbelehrung of each remedy cannot do without (§ 58 Abs. 1 VwGO: it names the remedy)
REMEDY_NAMES = {"klage": ("Klage",), "widerspruch": ("Widerspruch",), "wahl": ("Widerspruch", "Klage")}


def _remedy_words_missing(codes: Iterable[str], remedy: str) -> list[str]:
    """The remedy's names that none of `codes` (the Kreis's .typ files and the files they name) has outside
    comments: a template whose own text names only a Klage cannot tell of a Widerspruch, whatever the rule file
    says."""
    code = "\n".join(codes).casefold()
    return [word for word in REMEDY_NAMES.get(remedy, ()) if word.casefold() not in code]


def _remedy_record(settings: NoticeSettings, state: str, year: int, template: Path | None,
                   texts: Mapping[Path, bytes]) -> str:
    """The Protokoll's row `Rechtsbehelf`: what the notices say and what said so (`texts`: the Kreis's files as
    compiled, `_template_texts`)."""
    own = texts.get(Path("rechtsbehelf.typ")) if template is not None else None
    text = _decoded(own) if own is not None else None
    style = _remedy_style(_code(text) if text is not None else "")
    if style == "own":
        return "eigener Text der Vorlage (rechtsbehelf.typ)"
    if style == "klage":
        return "Klage (rechtsbehelf.typ, Kopie einer früheren Standardvorlage)"
    kind, basis = remedy_in_force(settings, state, year)
    return f"{REMEDY_WORDS.get(kind, 'nicht angegeben (Platzhalter)')} ({basis or 'keine Angabe'})"


def _refuse_placeholders(settings: NoticeSettings, rules_path: Path, template: Path | None, state: str,
                         year: int, texts: Mapping[Path, bytes]) -> None:
    """A final notice (Echtlauf) goes out: no template placeholder may remain in its remedy, signature or
    address (a faulty Rechtsbehelfsbelehrung gives a year to sue instead of a month, § 58 Abs. 2 VwGO).

    Per file of the template in effect: the default file shows a placeholder where `notices.letterhead` lacks the
    text (`notices-placeholder`, exit 4, at the rule file); every .typ file of the Kreis's own template, and every
    file they name, that still holds a placeholder text outside a comment (with or without Typst's escapes) is
    refused at that line (exit 2). A letterhead text of blanks only counts as missing. `texts`: those files as
    they will be compiled (`_template_texts`)."""
    head = settings.letterhead
    remedy, basis = remedy_in_force(settings, state, year)
    codes = _template_codes(template, texts)
    text_file = template / "rechtsbehelf.typ" if template is not None else None
    style = _remedy_style(codes.get(text_file, ""))
    missing, in_template = [], []
    for file, fields in PLACEHOLDER_FIELDS.items():
        code = codes.get(template / file) if template is not None else None
        if code is None or "platzhalter(" in code:  # the default's fallbacks: the rule file must
            if file == "rechtsbehelf.typ" and not remedy:  # give the texts
                missing.append((f"der Rechtsbehelf (remedy), den das Landesprofil {state} nicht verifiziert hat "
                                f"({basis or 'keine Angabe'}; siehe allocation states {state})",
                                "remedy: klage, widerspruch oder wahl, nach dem Recht des Landes geprüft"))
            if file == "rechtsbehelf.typ" and remedy == "widerspruch":  # (an earlier default's copy is refused
                continue  # below) a Widerspruch goes to the authority (§ 70 Abs. 1 VwGO), the court is not named
            missing += [(what, what) for field, what in fields if not getattr(head, field)]
    if text_file in codes and remedy:
        lacking = _remedy_words_missing(codes.values(), remedy)  # (an earlier default's copy names no Widerspruch)
        if lacking:
            line = next((number for number, text in enumerate(codes[text_file].split("\n"), start=1)
                         if "Klage" in text or "platzhalter(" in text), 1)
            in_template.append(Problem(
                "notices-placeholder", Location(str(text_file), line=line),
                f"die eigene Rechtsbehelfsbelehrung passt nicht zum Rechtsbehelf {remedy} ({basis}): die Vorlage "
                f"nennt nirgends {' und '.join(lacking)}"
                + (" (eine Kopie einer früheren Standardvorlage, die über eine Klage belehrt)" if style == "klage" else ""),
                found="die Vorlage des Kreises", expected=f"eine Belehrung über: {REMEDY_WORDS[remedy]}",
                hint="rechtsbehelf.typ aus der Standardvorlage neu übernehmen (sie richtet den Text nach d.remedy) oder "
                     "den eigenen Text an den Rechtsbehelf anpassen (und einen Platzhalter entfernen)"))
    for own, code in codes.items():
        lines = code.split("\n")
        definition = _placeholder_definition(lines)
        for number, marker in _placeholder_lines(code, _is_code(own)):
            line = lines[number - 1]
            if marker == "PLATZHALTER:" and number in definition:
                continue
            shown = line.strip()[:120] if marker in line else f"{line.strip()[:80]} … (gedruckt: {marker})"
            in_template.append(Problem(
                "notices-placeholder", Location(str(own), line=number), "die Vorlage enthält noch einen Platzhalter",
                found=shown, expected="der eingetragene Text", hint="den Platzhalter in der Vorlage ersetzen (oder "
                "die Angabe unter notices.letterhead der Regeldatei machen und die Zeile der Standardvorlage "
                "übernehmen)"))
    if in_template:
        raise TemplateError(in_template)
    where = settings.letterhead_at or Location(str(rules_path), line=1, col=1)
    in_rules = where.file == str(rules_path)  # else the installation's letterhead file
    problems = [Problem("notices-placeholder", where,
                        f"ein Echtlauf-Bescheid ginge mit einem Platzhalter hinaus: es fehlt {what}",
                        found=f"keine Angabe unter {'notices.letterhead' if in_rules else 'letterhead'}",
                        expected=expected,
                        hint="die Angabe unter `notices.letterhead` der Regeldatei oder im Briefkopf der "
                             "Installation (--letterhead, ALLOCATION_LETTERHEAD) eintragen; nach einem Echtlauf "
                             "bleibt die Regeldatei, wie sie war (sonst ein neuer Lauf mit --supersede), der Briefkopf "
                             "der Installation nicht; ein Probelauf (Entwurf) darf Platzhalter behalten")
                for what, expected in missing]
    if problems:
        raise (RuleFileError if in_rules else LetterheadFileError)(problems)


def _refuse_missing_addresses(notices: list[tuple[str, dict, list["_Row"]]], addresses: Mapping[str, tuple[str, ...]],
                              source: str | Path) -> None:
    """With `--addresses`, a final notice without its addressee's address would show a placeholder: refused."""
    lacking = [data["ags"] for _, data, _ in notices if data["ags"] not in addresses]
    if lacking:
        raise AddressError([Problem("notices-placeholder", Location(Path(source).name, ADDRESS_SHEET),
                                  f"für {ags} fehlt die Anschrift", found="keine Zeile im Blatt Anschriften",
                                  expected="eine Anschrift je Bescheid", hint="die Anschrift ergänzen")
                          for ags in lacking])


def _trail(trace: dict, notice_date: _dt.date, template: Path | None, previous: ResultBook | None,
           provisional_from: ResultBook | None, remedy: str, letterhead: Path | None = None,
           template_sha256: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [
        ("Ergebnis-Arbeitsmappe", trace["output"]), ("SHA-256 Ergebnis", trace["sha256"]),
        ("Lauf (UTC)", trace["run"]), ("Laufart", trace["mode"]), ("Regeldatei", trace["rules"]),
        ("Geprüft (allocation verify)", "identisch"), ("Bescheiddatum", notice_date),
        ("Vorlage", str(template) if template else "Standardvorlage"),
        ("SHA-256 Vorlage (kompiliert)", template_sha256),
        ("Rechtsbehelf", remedy)]
    if letterhead is not None:  # the installation's letterhead file: not in the run's manifest, so named here
        rows += [("Briefkopf der Installation", letterhead.name),
                 ("SHA-256 Briefkopf", hashlib.sha256(read_regular(letterhead, MAX_FILE_BYTES)).hexdigest())]
    if previous is not None:
        rows += [("Früherer Lauf (Änderungsbescheide)", previous.path.name), ("SHA-256 früherer Lauf", previous.sha256)]
    if provisional_from is not None:
        rows += [("Vorjahr, dessen Teilbeträge vorläufig weiterliefen", provisional_from.path.name),
                 ("SHA-256 Vorjahr", provisional_from.sha256)]
    return rows


def require_schedule(settings: NoticeSettings, rules_path: Path) -> NoticeSettings:
    """Notices need the rule file's `instalments:`; without it there is no due date to state."""
    if settings.schedule is None:
        raise RuleFileError([Problem("rule-missing-key", Location(str(rules_path), line=1, col=1),
                                     "die Regeldatei des Laufs nennt keinen Zahlungsplan `instalments:`",
                                     found="kein instalments:", expected="instalments: {schedule: monthly, day: 15}",
                                     hint="den Zahlungsplan ergänzen und den Lauf neu rechnen")])
    return settings


def write_notices(output: str | Path, directory: str | Path, template: str | Path | None = None,
                  notice_date: _dt.date | None = None, previous: str | Path | None = None,
                  register_dir: str | Path | None = None, *, template_seconds: float = TEMPLATE_SECONDS,
                  template_memory_mb: int = TEMPLATE_MEMORY_MB,
                  provisional_from: str | Path | None = None, settled_on: _dt.date | None = None,
                  previous_year: str | Path | None = None, addresses: str | Path | None = None,
                  only: Sequence[str] | None = None, letterhead: str | Path | None = None) -> NoticeSet:
    """`allocation notices`: verify (a final run against `register_dir`, default the installation's register),
    read through `readback`, render into a temporary folder, then move into `directory`. The template is
    compiled within `template_seconds` per notice and `template_memory_mb` (see `render`)."""
    from ..runs.manifest import manifest_path
    from ..runs.readback import read_output
    from ..runs.register import guard_folder, installation_register, protected
    from .verify import existing_file as _existing

    output, directory = Path(output), Path(directory)
    template = Path(template) if template is not None else None
    previous = Path(previous) if previous is not None else None
    template_limits(template_seconds, template_memory_mb)
    check_template(template, directory, Refused)
    unusable = folder_output_problems(directory, "Die Bescheide")
    if unusable:
        raise OutputError(unusable)
    guard_folder(directory, register_dir)
    manifest = _verify(output, register_dir).recorded
    earlier = read_output(output, "notices-unreadable")  # the bytes parsed: those verify confirmed (same SHA-256), read once
    if earlier.sha256 != manifest["output"]["sha256"]:
        raise NotVerified([Problem("notices-not-verified", Location(str(output)), "die Ergebnis-Arbeitsmappe wurde "
                                   "während der Prüfung ersetzt", found=f"SHA-256 {earlier.sha256}",
                                   expected=f"SHA-256 {manifest['output']['sha256']}",
                                   hint="die Bescheide erneut schreiben, wenn niemand die Dateien ändert")])
    result = read_result(earlier)
    _in_force(earlier, register_dir)
    if notice_date is not None:  # a given date must fit the budget year (a typing error?); today always does
        from ..core.dates import NOTICE_YEARS, DateError, budget_year_problems

        wrong = budget_year_problems(notice_date, result.year, "--date", "Das Datum der Bescheide", NOTICE_YEARS)
        if wrong:
            raise DateError(wrong)
    rules_path = _existing(manifest["rules"][0], manifest_path(output).parent)
    settings = require_schedule(load_notice_settings(rules_path, letterhead), rules_path)
    if settings.schedule_basis and result.level != states.DEFAULT_LEVEL:
        # the plan the state's law fixes is the Kreisumlage's: another level's (e.g. Art. 22 BayFAG) is not read
        raise RuleFileError([Problem(
            "rule-missing-key", Location(str(rules_path), line=1, col=1),
            f"die Regeldatei nennt keinen Zahlungsplan `instalments:`; der Plan des Landes ({settings.schedule_basis}) "
            f"gilt für die Kreisumlage, nicht für die Umlage eines {result.level}s",
            found="kein instalments:", expected="instalments: {schedule: monthly, day: ...}",
            hint=f"den Zahlungsplan der Haushaltssatzung des {result.level}s als `instalments:` eintragen")])
    old = _previous(previous, result, manifest) if previous is not None else None
    if notice_date is None:  # undated: today; a draft of another year (a preview) is dated 1 January of its year
        today = _dt.date.today()
        notice_date = _dt.date(result.year, 1, 1) if result.draft and today.year != result.year else today
    last_year = previous_year if previous_year is not None else provisional_from  # --provisional-from: the alias
    paid_from, settle = _previous_year(Path(last_year) if last_year is not None else None, result, settings,
                                       notice_date, old is not None, settled_on)
    _refuse_after_year(result, notice_date, old is not None or settle)
    chosen = _chosen(result, only)
    if chosen is not None and directory.is_dir() and any(directory.iterdir()):
        raise Refused([Problem("notices-would-overwrite", Location(str(directory)), "eine Neufassung für einzelne "
                               "Mitglieder (--ags) ersetzte Abschlaege und Sollstellung aller", found=str(directory),
                               expected="ein neuer oder leerer Ordner", hint="mit -o einen eigenen Ordner angeben")])
    postal = read_addresses(addresses, result) if addresses is not None else {}
    texts = _template_texts(template)  # the Kreis's files, read once: checked, recorded and compiled as read
    if not result.draft:
        _refuse_placeholders(settings, rules_path, template, result.state, result.year, texts)
    trace = {"output": output.name, "sha256": manifest["output"]["sha256"], "run": manifest.get("started_utc", ""),
             "rules": Path(manifest["rules"][0]["path"]).name, "mode": result.run_mode}
    notices = build_notices(result, settings, notice_date, old, _rule_levies(rules_path), trace, paid_from, settled_on,
                            settle=settle, addresses=postal, only=chosen)
    if addresses is not None and not result.draft:
        _refuse_missing_addresses(notices, postal, addresses)
    targets = [directory / name for name, _, _ in notices] + [directory / XLSX_NAME, directory / CSV_NAME,
                                                               directory / SOLL_NAME]
    inputs = _protected([output, manifest_path(output), previous, previous and manifest_path(previous), template,
                         rules_path])
    clashes = [t for t in targets if t.resolve() in inputs]
    if clashes:
        raise Refused([Problem("notices-would-overwrite", Location(str(t)), "die Ausgabe würde eine Eingabe überschreiben",
                               found=str(t), expected="ein eigener Ausgabe-Ordner", hint="mit -o einen anderen Ordner angeben")
                       for t in clashes])
    directory.parent.mkdir(parents=True, exist_ok=True)
    # stopped (Ctrl-C; SIGTERM on the command line), the folder and the child go; once files move, all move
    with temporary_folder(directory.parent, f".{directory.name}.") as folder:
        compiled = _compile_all(notices, template, folder, seconds=template_seconds, memory_mb=template_memory_mb,
                                texts=texts)
        rows = [row for _, _, notice_rows in notices for row in notice_rows]
        _write_xlsx(rows, folder / XLSX_NAME, _trail(trace, notice_date, template, old, paid_from,
                                                     _remedy_record(settings, result.state, result.year, template,
                                                                    texts),
                                                     installation_letterhead_path(letterhead), compiled))
        _write_csv(rows, folder / CSV_NAME)
        reference = f"{trace['run']} {trace['sha256'][:16]}"  # the run: its time and the start of its workbook's hash
        _write_soll(soll_lines(rows, settings, notice_date, reference), folder / SOLL_NAME)
        # a registered final run's workbook (or one whose manifest says final) in the folder is never replaced:
        # checked where no final run registers one of these names meanwhile
        with protected([("Die Ausgabedatei", target) for target in targets], installation_register(register_dir)):
            publish(folder, directory)
    written = {ags for _, data, _ in notices for ags in [data["ags"]]}
    return NoticeSet(directory, tuple(name for name, _, _ in notices), sum(len(r) for _, _, r in notices),
                     tuple(f"{ags} {name}" for ags, name in result.municipalities
                           if ags not in written and (chosen is None or ags in chosen)))
