"""The Benehmen pack (§ 55 KrO NRW): what the Kreis sends its municipalities before it draws up the draft budget.

`write_benehmen` computes the planned year through `pipeline.compute` (the one way in; nothing is registered) and
writes, per municipality, a PDF with each levy's planned rate, the municipality's bases and amount, the previous
year's rate and amount (from the previous year's output workbook, its `Umlagen` sheet or else its `Uebersicht`
column), the change in € split into base effect and rate effect as `compare` splits it (`stages.decompose`), the
change of the rate in points (planned − previous), the value of one rate point (base × 1 %), the rules whose shares
drive the change (this year's and last year's share per rule, with legal basis) with a last row "übrige Positionen"
so that the rows add up to the change, the deadline for statements, the closing and the configured signatory, and a
statement form; and `Benehmen.xlsx` with every municipality side by side. The PDFs use the notices' Typst
engine and template mechanism (`notices.render`, the layer `notice_templates/benehmen/`). All rounding is
`money`'s; files are written into a temporary folder and moved into place when complete.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .compare import ResultSummary, read_result
from ..core.model import Allocation
from ..core.filenames import folder_output_problems, temporary_folder
from ..core.money import cents_to_decimal, format_eur, fraction_to_decimal, round_to_unit
from ..core.problems import ExitCode, Location, OutputError, Problem, ProblemsError
from ..calc.stages import Effects, decompose
from .typst_child import TEMPLATE_MEMORY_MB, TEMPLATE_SECONDS

if TYPE_CHECKING:
    from ..runs.readback import Earlier

__all__ = ["BenehmenLine", "Driver", "benehmen_lines", "drivers", "previous_shares", "write_benehmen", "LAYER", "WORKBOOK",
           "DEFAULT_WEEKS", "BenehmenRefused", "BenehmenPack"]

LAYER = Path(__file__).parent / "notice_templates" / "benehmen"
MAIN = "benehmen.typ"
WORKBOOK = "Benehmen.xlsx"
DEFAULT_WEEKS = 6  # statement period when no --deadline is given
DRIVERS = 5


class BenehmenRefused(ProblemsError):
    exit_code = ExitCode.REFUSED
    title = "Benehmen"


@dataclass(frozen=True, slots=True)
class BenehmenLine:
    """One levy of one municipality in the planned year, next to the previous year's amount."""

    levy: str
    ags: str
    name: str
    rate: Decimal | None  # planned rate (percent); None for rates per component
    rate_text: str
    base: Fraction  # cents, Bemessungsgrundlage × extent factor
    amount: int  # cents
    previous: int | None  # cents, the previous year's amount of the same levy; None if unknown
    previous_rate: Decimal | None = None  # the previous year's single rate (percent); None if unknown or per component
    previous_base: Fraction | None = None  # cents, the previous year's base × extent factor; None if unknown
    unit: int = 1  # rounding unit of the planned year (cents)

    @property
    def change(self) -> int | None:
        return None if self.previous is None else self.amount - self.previous

    @property
    def change_points(self) -> Decimal | None:
        """The change of the rate in points: planned rate − previous rate (both single rates), else None."""
        if self.rate is None or self.previous_rate is None:
            return None
        return self.rate - self.previous_rate

    @property
    def effects(self) -> "Effects | None":
        """The change split into base effect and rate effect, as `compare` splits it (`stages.decompose`)."""
        if None in (self.rate, self.previous_rate, self.previous_base, self.previous):
            return None
        return decompose(self.previous_base, self.previous_rate, self.previous, self.base, self.rate, self.amount,
                         self.unit)

    @property
    def point_value(self) -> int:
        """What one rate point costs this municipality: base × 1 %, rounded half up to the cent."""
        return round_to_unit(self.base / 100, 1)


@dataclass(frozen=True, slots=True)
class Driver:
    """One rule's share of what the municipality's levies finance, this year and the previous year.

    Grouped by rule, not by item: item ids carry the year (`KIM-2022`), the rule (`kim-kreisumlage`) stays."""

    rule: str
    legal_basis: str
    levy: str
    items: tuple[str, ...]  # this year's items (labels) under the rule
    amount: int  # cents, the municipality's share this year (Einzelnachweis, rounded)
    previous: int | None  # cents, its share of the same rule the previous year; None if unknown

    @property
    def change(self) -> int | None:
        return None if self.previous is None else self.amount - self.previous


def _previous(previous: ResultSummary, levy: str, ags: str) -> tuple[int | None, Decimal | None, Fraction | None]:
    """The previous year's amount, single rate and base of a levy for a municipality (None where unknown)."""
    for line in previous.levy_lines:
        if line.levy == levy and line.ags == ags:
            return line.amount, line.rate, line.base
    routes = previous.routes.get(ags)
    if routes is not None and levy in routes:
        return routes[levy], None, None
    return None, None, None


def benehmen_lines(allocation: Allocation, previous: ResultSummary) -> list[BenehmenLine]:
    """Per municipality (AGS order) and levy (rule file order): the planned figures and last year's amount."""
    names = {m.ags: m.name for m in allocation.book.municipalities}
    lines = []
    for levy in allocation.levies:
        single = levy.rates.get("")
        text = (f"{single} %" if single is not None else
                ", ".join(f"{c} {r} %" for c, r in levy.rates.items()) or "kein Satz")
        unit = allocation.book.parameters.unit
        for line in levy.lines:
            base = line.base * (line.factor if line.factor is not None else 1)
            amount, rate, before = _previous(previous, levy.levy.name, line.ags)
            lines.append(BenehmenLine(levy.levy.name, line.ags, names[line.ags], single, text, base, line.amount,
                                      amount, rate, before, unit))
    return sorted(lines, key=lambda line: line.ags)


def previous_shares(source: "str | Path | Earlier") -> dict[tuple[str, str], int]:
    """(AGS, rule) -> the municipality's rounded share (cents) in a previous output's `Einzelnachweis` sheets;
    {} if the workbook has none (then the drivers show no previous year). `source`: the workbook as read and
    checked by `readback.read_output` (or a path: then its bounds alone are checked)."""
    import openpyxl

    from ..core.money import cents_from_decimal, decimal_from_cell
    from ..runs.readback import Earlier, output_bytes

    source = source if isinstance(source, Earlier) else output_bytes(source, "benehmen-unreadable")
    shares: dict[tuple[str, str], int] = {}
    workbook = openpyxl.load_workbook(source.stream(), read_only=True, data_only=True)
    try:
        for name in workbook.sheetnames:
            if not name.startswith("Einzelnachweis"):
                continue
            rows = workbook[name].iter_rows(values_only=True)
            header = [str(h) if h is not None else "" for h in next(rows, ())]
            if not {"AGS", "Regel", "Betrag gerundet"} <= set(header):
                continue
            ags_at, rule_at, amount_at = header.index("AGS"), header.index("Regel"), header.index("Betrag gerundet")
            for row in rows:
                try:
                    cents = cents_from_decimal(decimal_from_cell(row[amount_at]))
                except (ValueError, IndexError):
                    continue  # not a line (none is written so); the driver then lacks that cent, never invents it
                key = (str(row[ags_at]), str(row[rule_at]))
                shares[key] = shares.get(key, 0) + cents
    finally:
        workbook.close()
    return shares


def drivers(allocation: Allocation, ags: str, previous: dict[tuple[str, str], int] | None = None,
            limit: int = DRIVERS) -> list[Driver]:
    """The rules whose shares change the municipality's levies most (by the size of the change against the previous
    year, or of this year's share where the previous year is unknown), then by rule id."""
    names = {levy.levy.id: levy.levy.name for levy in allocation.levies}
    grouped: dict[str, tuple[object, list[str], int]] = {}
    for item in allocation.items:
        levy = getattr(item.rule, "levy", None)
        if levy not in names:
            continue
        amount = sum(line.amount for line in item.lines if line.ags == ags)
        rule, labels, total = grouped.get(item.rule.id, (item.rule, [], 0))
        grouped[item.rule.id] = (rule, labels + [item.item.label], total + amount)
    found = []
    for rule_id, (rule, labels, amount) in grouped.items():
        before = previous.get((ags, rule_id)) if previous else None
        if previous and before is None and any(key[1] == rule_id for key in previous):
            before = 0  # the rule existed last year, the municipality had no share
        if amount or before:
            found.append(Driver(rule_id, rule.legal_basis, names[rule.levy], tuple(labels), amount, before))
    return sorted(found, key=lambda d: (-abs(d.change if d.change is not None else d.amount), d.rule))[:limit]


def _signed(cents: int | None) -> str:
    if cents is None:
        return "—"
    return ("+" if cents > 0 else "") + format_eur(cents)


def _points(value: Decimal | None) -> str:
    from ..core.money import de_number

    if value is None:
        return "—"
    return ("+" if value > 0 else "") + de_number(value, max(2, -value.normalize().as_tuple().exponent))


def _drivers_with_rest(allocation: Allocation, ags: str, shares: dict[tuple[str, str], int],
                       change: int | None) -> list[dict]:
    """The drivers of the letter and, where the change is known, a last row "übrige Positionen" with what the
    listed rules do not explain (other rules, and a levy at a statutory rate whose amount is base × rate, not the
    sum of the shares): the rows add up to the change shown."""
    found = drivers(allocation, ags, shares)
    rows = [{"rule": d.rule, "label": "; ".join(d.items), "legal_basis": d.legal_basis or "—", "levy": d.levy,
             "amount": format_eur(d.amount), "previous": format_eur(d.previous) if d.previous is not None else "—",
             "change": _signed(d.change)} for d in found]
    if change is not None and all(d.change is not None for d in found):
        rest = change - sum(d.change for d in found)
        rows.append({"rule": "übrige Positionen", "label": "weitere Regeln, Satz und Grundlagen (Rest zur Änderung)",
                     "legal_basis": "", "levy": "", "amount": "", "previous": "", "change": _signed(rest)})
    return rows


def _letter(allocation: Allocation, lines: list[BenehmenLine], ags: str, date: _dt.date, deadline: _dt.date,
            issuer: str, previous_year: int, shares: dict[tuple[str, str], int], letterhead: dict | None = None) -> dict:
    from ..core.money import de_percent
    from .notices import de_date

    parameters = allocation.book.parameters
    own = [line for line in lines if line.ags == ags]
    changes = [line.change for line in own]
    change = None if None in changes else sum(changes)
    return {
        "kind": "schreiben", "letterhead": letterhead or {},
        "district": parameters.district, "issuer": issuer or parameters.district, "municipality": own[0].name,
        "ags": ags, "year": str(parameters.year), "previous_year": str(previous_year), "date": de_date(date),
        "date_parts": [date.year, date.month, date.day],
        "deadline": de_date(deadline),
        "levies": [{"name": line.levy, "rate": de_percent(line.rate) if line.rate is not None else line.rate_text,
                    "previous_rate": de_percent(line.previous_rate) if line.previous_rate is not None else "—",
                    "base": format_eur(round_to_unit(line.base, 1)), "amount": format_eur(line.amount),
                    "previous": format_eur(line.previous) if line.previous is not None else "—",
                    "change": _signed(line.change), "points": _points(line.change_points),
                    "base_effect": _signed(line.effects.base_effect) if line.effects else "—",
                    "rate_effect": _signed(line.effects.rate_effect) if line.effects else "—",
                    "point_value": format_eur(line.point_value)} for line in own],
        "drivers": _drivers_with_rest(allocation, ags, shares, change),
        "change": _signed(change),
        "total": format_eur(sum(line.amount for line in own)),
        "trace": {"sha256": allocation.book.sha256},
    }


def _write_workbook(target: Path, allocation: Allocation, lines: list[BenehmenLine], deadline: _dt.date,
                    previous: ResultSummary, shares: dict[tuple[str, str], int], missing: tuple[str, ...] = ()) -> None:
    from ..workbook.report import write_book

    write_book(target, lambda book: _benehmen_sheets(book, allocation, lines, deadline, previous, shares, missing))


def _benehmen_sheets(book, allocation: Allocation, lines: list[BenehmenLine], deadline: _dt.date,
                     previous: ResultSummary, shares: dict[tuple[str, str], int], missing: tuple[str, ...] = ()) -> None:
    from ..workbook.report import EUR, POINTS, Sheet

    year, last = allocation.book.parameters.year, previous.year
    sheet = Sheet(book, "Benehmen", ["AGS", "Gemeinde", "Umlage", "Geplanter Satz (%)", "Bemessungsgrundlage",
                                     f"Betrag {year} (geplant)", f"Betrag {last}", "Änderung (€)",
                                     "Änderung (Hebesatz-Punkte)", "Wert eines Hebesatzpunktes (Grundlage × 1 %)",
                                     f"Satz {last} (%)", "Grundlagenwirkung (€)", "Satzwirkung (€)"],
                  [None, None, None, "0.0000", EUR, EUR, EUR, EUR, POINTS, EUR, "0.0000", EUR, EUR])
    for line in lines:
        effects = line.effects
        sheet.append([line.ags, line.name, line.levy, line.rate if line.rate is not None else line.rate_text,
                      fraction_to_decimal(line.base / 100, 2), cents_to_decimal(line.amount),
                      cents_to_decimal(line.previous) if line.previous is not None else "—",
                      cents_to_decimal(line.change) if line.change is not None else "—",
                      line.change_points if line.change_points is not None else "—",
                      cents_to_decimal(line.point_value),
                      line.previous_rate if line.previous_rate is not None else "—",
                      cents_to_decimal(effects.base_effect) if effects else "—",
                      cents_to_decimal(effects.rate_effect) if effects else "—"])
    sheet.finish()
    sheet = Sheet(book, "Treiber", ["AGS", "Gemeinde", "Rang", "Regel", "Kostenpositionen", "Umlage",
                                    "Rechtsgrundlage", f"Anteil {year}", f"Anteil {last}", "Änderung (€)"],
                  [None] * 7 + [EUR] * 3)
    for m in sorted(allocation.book.municipalities, key=lambda m: m.ags):
        for rank, d in enumerate(drivers(allocation, m.ags, shares), start=1):
            sheet.append([m.ags, m.name, rank, d.rule, "; ".join(d.items), d.levy, d.legal_basis,
                          cents_to_decimal(d.amount), cents_to_decimal(d.previous) if d.previous is not None else "—",
                          cents_to_decimal(d.change) if d.change is not None else "—"])
    sheet.finish()
    sheet = Sheet(book, "Protokoll", ["Angabe", "Wert"], [None, None])
    for row in (("Kreis", allocation.book.parameters.district), ("Haushaltsjahr", year),
                ("Eingabe-Arbeitsmappe", allocation.book.path), ("SHA-256 Eingabe", allocation.book.sha256),
                ("Regeldatei", allocation.rulebook.path), ("SHA-256 Regeldatei", allocation.rulebook.sha256),
                ("Vorjahres-Ergebnis", previous.path),
                ("Nicht mehr im Plan (im Vorjahr, fehlen in der Eingabe)", "; ".join(missing) or "keine"),
                ("Frist für Stellungnahmen", deadline.isoformat())):
        sheet.append(list(row))
    sheet.finish(autofilter=False)


def _refuse(directory: Path, inputs: list[Path]) -> None:
    problems = []
    if directory.exists() and any(directory.iterdir()):
        problems.append(Problem("benehmen-would-overwrite", Location(str(directory)),
                                "Der Ausgabe-Ordner ist nicht leer", found=", ".join(sorted(
                                    p.name for p in directory.iterdir())[:5]), expected="ein neuer oder leerer Ordner",
                                hint="einen neuen Ordner bei -o angeben"))
    resolved = directory.resolve()
    for path in inputs:
        if path.resolve() == resolved or resolved in path.resolve().parents:
            problems.append(Problem("benehmen-would-overwrite", Location(str(directory)),
                                    "Der Ausgabe-Ordner enthält eine Datei, die gelesen wird", found=str(path),
                                    expected="ein Ordner ohne Eingaben", hint="einen anderen Ordner bei -o angeben"))
    if problems:
        raise BenehmenRefused(problems)


class BenehmenPack(NamedTuple):
    """What `write_benehmen` wrote: the folder, the lines, and the municipalities of the previous year that the
    planned year no longer has (listed in Benehmen.xlsx and by the command, never dropped silently)."""

    folder: Path
    lines: list[BenehmenLine]
    missing: tuple[str, ...]


def write_benehmen(input_path: str | Path, rules_path: str | Path, previous_output: str | Path,
                   directory: str | Path, *, deadline: _dt.date | None = None, date: _dt.date | None = None,
                   template: str | Path | None = None, template_seconds: float = TEMPLATE_SECONDS,
                   template_memory_mb: int = TEMPLATE_MEMORY_MB, letterhead: str | Path | None = None) -> BenehmenPack:
    """The Benehmen pack into `directory` (new or empty): one PDF per municipality and `Benehmen.xlsx`. The
    previous year's output is read through `readback.read_output`: within bounds, matching its manifest (else exit
    7), and of the same district and the budget year before the planned one (`benehmen-previous-mismatch`). The
    letters are compiled within `template_seconds` per letter and `template_memory_mb` (as the notices)."""
    from .notices import check_template, pdf_name, publish, render, template_limits
    from ..runs.pipeline import compute
    from ..runs.readback import Relation, check_relation, read_output
    from ..runs.register import guard_folder

    from ..core.dates import BENEHMEN_YEARS, DateError, budget_year_problems, deadline_problems

    directory = Path(directory)
    template = Path(template) if template else None
    template_limits(template_seconds, template_memory_mb)
    check_template(template, directory, BenehmenRefused, layer=LAYER)
    given = date
    date = date or _dt.date.today()
    if deadline is not None and deadline_problems(date, deadline, given is not None):  # before anything is read
        raise DateError(deadline_problems(date, deadline, given is not None))
    unusable = folder_output_problems(directory, "Die Benehmensschreiben")
    if unusable:
        raise OutputError(unusable)
    _refuse(directory, [Path(input_path), Path(rules_path), Path(previous_output)])
    guard_folder(directory)
    earlier = read_output(previous_output, "benehmen-unreadable")
    previous = read_result(earlier)
    allocation, _controls, _warnings = compute(input_path, rules_path, offers_override=False)
    parameters = allocation.book.parameters
    check_relation(earlier, Relation(parameters.district, parameters.year, "previous",
                                     label="Die Ergebnis-Arbeitsmappe des Vorjahres"), "benehmen-previous-mismatch")
    if given is not None:  # a given date must fit the planned budget year (a typing error?); today always does
        wrong = budget_year_problems(given, allocation.book.parameters.year, "--date", "Das Datum der Schreiben",
                                     BENEHMEN_YEARS)
        if wrong:
            raise DateError(wrong)
    deadline = deadline or date + _dt.timedelta(weeks=DEFAULT_WEEKS)
    from ..rulefiles.notice_settings import NoticeSettings, with_installation
    from ..rulefiles.rulebook import load_installation_letterhead, rule_notice_settings

    installation = load_installation_letterhead(letterhead)  # a broken letterhead file stops here, located
    settings = None
    if not Path(rules_path).is_dir():
        try:
            settings = rule_notice_settings(rules_path)  # the installation's letterhead is merged once, below
        except ProblemsError:  # the run above read this rule file; its notice settings are optional here
            settings = None
    issuer, letterhead = "", {}
    if settings is not None or installation is not None:
        settings = with_installation(settings or NoticeSettings(None), installation)
        issuer, letterhead = settings.issuer, settings.letterhead.template_data()
    lines = benehmen_lines(allocation, previous)
    shares = previous_shares(earlier)
    planned = {m.ags for m in allocation.book.municipalities}
    missing = tuple(f"{ags} {name}" for ags, name in sorted(previous.names.items()) if ags not in planned)
    letters = [(pdf_name(ags, name, kind="_Benehmen"),
                _letter(allocation, lines, ags, date, deadline, issuer, previous.year, shares, letterhead), [])
               for ags, name in dict.fromkeys((line.ags, line.name) for line in lines)]
    directory.parent.mkdir(parents=True, exist_ok=True)
    # stopped (Ctrl-C; SIGTERM on the command line), the temporary folder goes; once the letters move, all move
    with temporary_folder(directory.parent, ".benehmen-") as temp:
        work = Path(temp) / "pack"
        work.mkdir()
        render(letters, work, template, main=MAIN, layer=LAYER, template_seconds=template_seconds,
               template_memory_mb=template_memory_mb)
        _write_workbook(work / WORKBOOK, allocation, lines, deadline, previous, shares, missing)
        publish(work, directory)  # also where the folder is a share mounted there
    return BenehmenPack(directory, lines, missing)
