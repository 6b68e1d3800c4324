"""Allocation -> output workbook (German sheets), written atomically. The only module that writes xlsx.

Sheets: `Uebersicht` (per municipality, with a stacked bar chart), `Einzelnachweis` (item × municipality,
with the calculation proof), `Entscheidungen` (the decision trace), `Kontrollen`, `Protokoll`.
Amounts stay exact decimals until the write call, which stores them as xlsx numbers (`#,##0.00 €` formats)
and refuses one of more than 15 significant digits (`CellNotExact`, an internal error: sums are checked before a
run writes, `calc.bounds`, and shown quotients are rounded to 15 digits, `money.cell_digits`).
Text that Excel could read as a formula (`= + - @`) is stored as plain text with a quote prefix. The workbook
is saved to a temporary file in the target folder, flushed to disk and renamed, so no half-written workbook
can exist.

The output workbook (`write_workbook`) is streamed with xlsxwriter in `constant_memory` mode: rows go to disk
in order, so memory stays flat however long `Einzelnachweis` gets. Column widths, frozen header, auto-filter
and the chart are set when a sheet is finished (xlsxwriter keeps them outside the row stream), so no sheet is
built in memory first. Every other workbook we write (comparisons, true-up, statements, Benehmen, Abschlaege,
the batch summary, the template) uses the same writer: `write_book(path, build)` opens a `Book`, `build` adds
`Sheet`s (or writes cells with `Book.put`), and the book is saved atomically. openpyxl stays for reading
workbooks and for marking up a copy of an input (error report).
"""
from __future__ import annotations

import datetime as _dt
import errno
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from ..rulefiles import conditions
from ..calc.controls import Control
from ..calc import levies as levies_stage
from ..core.problems import column_letter
from ..core import states
from ..core.model import (LEVY_ROUTES, ROUTE_LABELS, ROUTES, Allocation, AllocationLine, ItemAllocation, LevyLine, LevyPart,
                    LevyResult, Municipality)
from ..core.filenames import write_atomically  # re-exported for the other writers
from ..core.money import CELL_CONTEXT, CELL_DIGITS, cell_digits, cents_to_decimal, de_number, fraction_to_decimal, percent_points, ratio_to_decimal

__all__ = ["write_workbook", "write_book", "Book", "Sheet", "fit_cell", "CELL_TEXT_MAX", "write_atomically", "proof", "levy_proof", "SHEET_NAMES",
           "safe_text", "put_value", "CellNotExact",
           "PROVISIONAL_NOTE", "provisional_note", "Table", "uebersicht_table", "einzelnachweis_table", "entscheidungen_table"]

# `Umlagen` is written only when the rule file has `levies:` (after Hebesaetze, so existing sheets keep their place)
SHEET_NAMES = ("Uebersicht", "Einzelnachweis", "Entscheidungen", "Kontrollen", "Protokoll", "Hinweise", "Hebesaetze",
               "Umlagen")
EUR = '#,##0.00 "€"'
# Rows per sheet including the header (Excel's limit). An Einzelnachweis with more lines continues on
# sheets Einzelnachweis_2, Einzelnachweis_3, ..., each with the header row. Tests lower it to check that.
MAX_ROWS = 1_048_576
POINTS = "0.0000"
SHARE = "0.0000000000"
EXACT = "#,##0.000000"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def put_value(cell, value: object) -> None:
    """Set an openpyxl cell (error report: a marked copy of an input); text Excel could read as a formula is
    stored as plain text with a quote prefix."""
    if isinstance(value, str):
        text, protect = safe_text(value)
        cell.value = text
        if protect:
            cell.data_type = "s"
            cell.quotePrefix = True
    else:
        cell.value = value


def safe_text(value: str) -> tuple[str, bool]:
    """Text and whether it must be protected from being read as a formula."""
    return value, value.startswith(FORMULA_START)


def _de(value: Decimal) -> str:
    """German number text: 1.234.567,891 (all given decimals kept)."""
    return de_number(value, 0)


# A weighted composite key, per column: (column, weight in percent, column total over the item's payers).
KeyParts = tuple[tuple[str, Decimal, Fraction], ...]


def _is_composite(item: ItemAllocation) -> bool:
    """Whether the item is billed by a weighted composite key (two or more usage columns)."""
    key = item.rule.key
    return item.rule.route == "direct_billing" and key is not None and not key.is_item_key and len(key.weights) >= 2


def key_parts(item: ItemAllocation, municipalities: Mapping[str, Municipality]) -> KeyParts | None:
    """The columns of a weighted composite key with their totals over the payers, or None for any other key.

    A payer whose key is 0 holds 0 in every column (weights are positive), so the payers with a positive key
    give each column's total exactly as the split normalised it."""
    if not _is_composite(item):
        return None
    key = item.rule.key
    payers = [municipalities[line.ags] for line in item.lines if line.key > 0]
    return tuple((column, weight, sum((_column_value(m, column) for m in payers), Fraction(0)))
                 for column, weight in key.weights.items())


def _column_value(municipality: Municipality, column: str) -> Fraction:
    value = municipality.attrs.get(column, 0)
    return Fraction(value) if isinstance(value, (int, Decimal)) else Fraction(0)


def proof(item: ItemAllocation, line: AllocationLine, name: str, unit: int,
          municipalities: Mapping[str, Municipality] | None = None) -> str:
    """The calculation proof of one line, in words a reader can recompute. With `municipalities`, a weighted
    composite key shows each column (weight × value ÷ column total) instead of its combined key."""
    parts = key_parts(item, municipalities) if municipalities is not None else None
    return _proof(item, line, name, unit, fraction_to_decimal(line.key, 6), fraction_to_decimal(item.key_total, 6),
                  fraction_to_decimal(line.exact / 100, 6),
                  _parts_text(parts, municipalities[line.ags]) if parts else None)


def _parts_text(parts: KeyParts, municipality: Municipality) -> str:
    """`70 % × 41.200 ÷ 377.600 (Linienminuten) + 30 % × ...` for one municipality."""
    return _PartsText(parts)(municipality, {})


class _PartsText:
    """`_parts_text` of one item for each of its municipalities: weights and column totals as text once per
    item, each municipality's column values once per run (`values`, shared by the items)."""

    __slots__ = ("pieces",)

    def __init__(self, parts: KeyParts) -> None:
        self.pieces = [(column, f"{_de(weight.normalize())} % × ", f" ÷ {_de(_exact_decimal(total))} ({column})")
                       for column, weight, total in parts]

    def __call__(self, municipality: Municipality, values: dict[tuple[str, str], str]) -> str:
        texts = []
        for column, before, after in self.pieces:
            value = values.get((municipality.ags, column))
            if value is None:
                value = values[municipality.ags, column] = _de(_exact_decimal(_column_value(municipality, column)))
            texts.append(before + value + after)
        return " + ".join(texts)


def _exact_decimal(value: Fraction) -> Decimal:
    """A column value or total (a sum of decimals from the input, so a terminating decimal) without rounding."""
    return fraction_to_decimal(value, 12).normalize() if value else Decimal(0)


def _proof(item: ItemAllocation, line: AllocationLine, name: str, unit: int, key: Decimal, total: Decimal,
           exact: Decimal, parts: str | None = None, item_texts: tuple[str, str] | None = None,
           key_text: str | None = None) -> str:
    """`proof` from the line's key, key total and exact amount as 6-place decimals, which the Einzelnachweis
    row has already computed (the exact Fraction arithmetic is most of a line's cost). `parts`: the columns
    of a composite key (`_parts_text`); the share then follows with 10 places, `≈` where it is rounded.
    `item_texts`: the key total and the deficit as German text (`_item_texts`), the same for all of an item's lines.
    `key_text`: the key as German text (`_de(key.normalize())`), where the caller has it already."""
    if line.key == 0:
        return NO_SHARE
    total_text, deficit_text = item_texts if item_texts is not None else _item_texts(item, total)
    sign = -1 if item.deficit < 0 else 1
    floor_amount = cents_to_decimal(line.amount - sign * line.extra_units * unit)
    unit_name = "Cent" if unit == 1 else "Euro"
    if parts is not None:
        share = fraction_to_decimal(line.share, 10)
        factor = f"{parts} {'=' if share == line.share else '≈'} {_de(share.normalize())}"
    else:
        factor = f"{key_text if key_text is not None else _de(key.normalize())} ÷ {total_text}"
    text = (f"{name}: {factor} × {deficit_text} € "
            f"= {_de(exact)} € → abgerundet {_de(floor_amount)} €")
    if line.rank is None:
        text += " (kein Rest)"
    elif line.extra_units:
        text += (f" + 1 {unit_name} aus dem Rest (Rang {line.rank} nach größtem Rest; bei gleichem Rest "
                 "entscheidet die kleinere AGS)")
    else:
        text += f" (Rest auf Rang {line.rank}: keine Resteinheit mehr übrig)"
    return f"{text} = {_de(cents_to_decimal(line.amount))} €"


NO_SHARE = "kein Anteil (Schlüsselwert 0 oder nicht zahlungspflichtig)"


def _item_texts(item: ItemAllocation, total: Decimal) -> tuple[str, str]:
    """The key total (6 places, as shown) and the deficit of an item as German text, for its lines' proofs."""
    return _de(total.normalize()), _de(cents_to_decimal(item.deficit))


def _euros(cents: Fraction) -> str:
    """German euro text of exact cents: two decimals, more only where the value has them (up to six)."""
    if cents.denominator == 1:
        return f"{_de(cents_to_decimal(int(cents)))} €"
    shown = fraction_to_decimal(cents / 100, 6).normalize()
    return f"{_de(shown if -shown.as_tuple().exponent >= 2 else shown.quantize(Decimal('0.01')))} €"


def _percent(rate: Decimal, decimals: int = 0) -> str:
    """German percent text with at least `decimals` places (a statute's 36,20 % stays 36,20 %)."""
    shown = rate if -rate.as_tuple().exponent >= decimals else rate.quantize(Decimal(1).scaleb(-decimals))
    return f"{_de(shown)} %"


def levy_proof(levy: LevyResult, line: LevyLine, unit: int, decimals: int = 2, given: str = "") -> str:
    """The proof of one levy line in words: "218.900,89 € × 43,67 % = 95.594,0187 € → 95.594,02 €". `given`: the
    Umlagebedarf given in the Parameter sheet, as "100,00 € (Parameter!B4)", where the levy has one."""
    amount = f"{_de(cents_to_decimal(line.amount))} €"
    if levy.mode != "statute":
        items = ", ".join(levy.items) or "keine"
        also = f" und des Umlagebedarfs {given}" if given else ""
        return (f"Anteil am Umlagebedarf (Summe der Anteile der Kostenpositionen {items}{also} nach "
                f"{levy.levy.describe_base()}) = {amount}")
    factor = f" × Faktor {_de(fraction_to_decimal(line.factor, 6).normalize())}" if line.factor is not None else ""
    exact = f"{_de(fraction_to_decimal(line.exact / 100, 4))} €"
    rounding = "Cent" if unit == 1 else "Euro"

    def weighted(part: LevyPart) -> str:
        return _euros(part.value) if part.weight == 100 else f"{_de(part.weight)} % × {_euros(part.value)}"

    if "" in levy.rates:
        terms = " + ".join(weighted(part) for part in line.parts)
        base = terms if len(line.parts) == 1 and line.parts[0].weight == 100 else f"{terms} = {_euros(line.base)}"
        text = f"{base} × {_percent(levy.rates[''], decimals)}{factor} = {exact}"
    else:
        terms = " + ".join(f"{weighted(part)} × {_percent(part.rate, decimals)}" for part in line.parts)
        text = f"({terms}){factor} = {exact}" if factor else f"{terms} = {exact}"
    return f"{text} → {amount}" + ("" if unit == 1 else f" (auf volle {rounding} gerundet)")


def _decimal(value: Fraction, places: int) -> Decimal:
    return fraction_to_decimal(value, places)


def _hundredths(cents: Fraction | int) -> Decimal:
    """Exact cents as euros with two places (half-up), like `_decimal(cents / 100, 2)`."""
    return ratio_to_decimal(cents.numerator, 100 * cents.denominator, 2)


_ZERO_6, _ZERO_10, _ZERO_CENTS = Decimal(0).scaleb(-6), Decimal(0).scaleb(-10), Decimal(0).scaleb(-2)


def _is_empty(line: AllocationLine) -> bool:
    """A line with nothing in it: key, share, exact amount and amount 0, no remainder unit and no rank."""
    # the integer tests first: most lines pay something and are decided by them alone
    return (line.amount == 0 and line.extra_units == 0 and line.rank is None and line.key == 0
            and line.share == 0)  # a share of 0 makes the exact amount 0


def _by_ags(line: AllocationLine) -> str:
    return line.ags


def _shown_width(value: object) -> int:
    return len(f"{value:,.2f}") + 3 if isinstance(value, Decimal) else len(str(value or ""))


# xlsxwriter options: nothing written is ever interpreted (these only act on the generic `write`, which we
# never call, but stay off so that a later `write` cannot turn "=..." into a formula or text into a link).
_STREAM_OPTIONS = {"constant_memory": True, "strings_to_formulas": False, "strings_to_numbers": False,
                   "strings_to_urls": False, "nan_inf_to_errors": False}
_CHART_CM_TO_PX = 96 / 2.54  # the chart's size in cm (as before), at Excel's 96 pixels per inch


# What openpyxl gave a date or time cell by itself (its TIME_FORMATS); the ported workbooks keep these formats.
_DATE_FORMATS = {_dt.datetime: "yyyy-mm-dd h:mm:ss", _dt.date: "yyyy-mm-dd", _dt.time: "h:mm:ss"}


class Book:
    """A workbook being written: an xlsxwriter workbook, its shared cell formats and the provisional note every
    sheet carries (if any). In constant_memory mode (the default) each sheet's rows must be written in order."""

    def __init__(self, path: str, provisional: str | None = None, scratch: str | None = None,
                 constant_memory: bool = True) -> None:
        import xlsxwriter

        # `scratch`: the folder of xlsxwriter's temporary row files (removed by the caller, also on failure)
        self.workbook = xlsxwriter.Workbook(path, {**_STREAM_OPTIONS, "constant_memory": constant_memory,
                                                   "tmpdir": scratch})
        self.provisional = provisional
        self._formats: dict[tuple, object] = {}

    def add_sheet(self, title: str):
        """A bare xlsxwriter worksheet, for books with their own layout (write cells with `put`)."""
        return self.workbook.add_worksheet(title)

    def put(self, ws, r: int, c: int, value: object, number_format: str | None = None, bold: bool = False,
            every: bool = False) -> None:
        """One typed cell (0-based row and column): text as text (formula-looking text with a quote prefix),
        numbers as numbers (a Decimal becomes a double only here), dates as dates, None as nothing (or a
        styled blank). `number_format` applies to ints and Decimals, as `Sheet` does; with `every` to any
        value, empty cells and dates included (a column formatted as a whole)."""
        shared = number_format if every else None
        if isinstance(value, str):
            if value:
                done = ws.write_string(r, c, fit_cell(value), self.format(shared, bold, value.startswith(FORMULA_START)))
            else:
                done = ws.write_blank(r, c, None, self.format(shared, bold))
        elif value is None:
            done = ws.write_blank(r, c, None, self.format(shared, bold))
        elif isinstance(value, bool):
            done = ws.write_boolean(r, c, value, self.format(shared, bold))
        elif isinstance(value, (int, Decimal)):
            if isinstance(value, Decimal):
                if CELL_CONTEXT.plus(value) != value or value.is_infinite():
                    _refuse_inexact(ws.name, r, c, value)
            elif not -_WHOLE_FITS < value < _WHOLE_FITS and CELL_CONTEXT.plus(Decimal(value)) != value:
                _refuse_inexact(ws.name, r, c, value)
            done = ws.write_number(r, c, float(value) if isinstance(value, Decimal) else value,
                                   self.format(number_format, bold))
        elif isinstance(value, float):
            done = ws.write_number(r, c, value, self.format(shared, bold))
        elif isinstance(value, (_dt.date, _dt.time)):
            done = ws.write_datetime(r, c, value, self.format(shared or _DATE_FORMATS[_date_kind(value)], bold))
        else:
            raise TypeError(f"{ws.name}: Zellwert {value!r} ({type(value).__name__}) ist kein Text, keine "
                            "Zahl, kein Datum und kein Wahrheitswert")
        if done:
            _refuse_silent_loss(ws.name, r, c, done)

    def format(self, number_format: str | None = None, bold: bool = False, quote: bool = False):
        """The shared format for a cell, or None for a plain one (xlsxwriter needs one object per style)."""
        if not (number_format or bold or quote):
            return None
        key = (number_format, bold, quote)
        if key not in self._formats:
            properties: dict[str, object] = {}
            if number_format:
                properties["num_format"] = number_format
            if bold:
                properties["bold"] = True
            if quote:
                properties["quote_prefix"] = True
            self._formats[key] = self.workbook.add_format(properties)
        return self._formats[key]

    def styled(self, name: str, properties: dict):
        if name not in self._formats:
            self._formats[name] = self.workbook.add_format(properties)
        return self._formats[name]

    def close(self) -> None:
        """Write the file. xlsxwriter reports a file it cannot write (a full disk) as its own FileCreateError:
        passed on as the OSError it wraps, so that the caller's located `output-unusable` (exit 9) names it."""
        from xlsxwriter.exceptions import FileCreateError

        try:
            self.workbook.close()
        except FileCreateError as error:
            cause = error.args[0] if error.args and isinstance(error.args[0], OSError) else None
            raise cause or OSError(errno.EIO, str(error)) from None


CELL_TEXT_MAX = 32_767  # UTF-16 code units an Excel cell holds; xlsxwriter cuts longer text without a word
_SURELY_FITS = CELL_TEXT_MAX // 2  # characters: at most two UTF-16 units each


def _units(text: str) -> int:
    """UTF-16 code units, as Excel counts a cell's length; a lone surrogate (an undecodable name) counts as one."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def fit_cell(text: str) -> str:
    """`text` as a cell can hold it: unchanged up to CELL_TEXT_MAX UTF-16 units, else cut and marked as cut
    (a long rule description, a condition explained with long values): never cut silently."""
    if len(text) <= _SURELY_FITS or _units(text) <= CELL_TEXT_MAX:
        return text
    length = f"{len(text):,}".replace(",", ".")
    marker = f" … [gekürzt: der Text hat {length} Zeichen, eine Excel-Zelle fasst 32.767]"
    keep = text[:CELL_TEXT_MAX - len(marker)]
    while _units(keep + marker) > CELL_TEXT_MAX:  # characters outside the BMP count twice
        keep = keep[:-(_units(keep + marker) - CELL_TEXT_MAX)]
    return keep + marker


def _refuse_silent_loss(sheet: str, r: int, c: int, code: int) -> None:
    """xlsxwriter answers a write it could not do with -1 and no exception (off the sheet, or a row before the
    last one in constant_memory mode): that must not pass unnoticed in a workbook an auditor relies on."""
    raise ValueError(f"{sheet}: Zelle in Zeile {r + 1}, Spalte {c + 1} nicht geschrieben (Code {code}: außerhalb "
                     "des Blatts, oder die Zeile ist schon abgeschlossen: Zeilen der Reihe nach schreiben)")


class CellNotExact(ValueError):
    """A number the writer was handed that a spreadsheet cell cannot hold exactly (an internal error: every sum is
    checked before the run writes, `calc.bounds`; shown quotients are rounded to 15 digits, `money.cell_digits`)."""


_WHOLE_FITS = 10 ** CELL_DIGITS  # an int below this in magnitude has at most 15 digits


def _refuse_inexact(sheet: str, r: int, c: int, value: object) -> None:
    """Never silently: a double would keep only about 15 digits of `value`, and Excel shows 15."""
    raise CellNotExact(f"{sheet}!{column_letter(c + 1)}{r + 1}: die Zahl {value} hat mehr als {CELL_DIGITS} gültige "
                       "Stellen (oder ist keine endliche Zahl); eine Tabellenzelle hält sie nicht genau. Interner "
                       "Fehler: jede Summe wird vor dem Schreiben geprüft (input-total-too-large)")


def _date_kind(value: object) -> type:
    return _dt.datetime if isinstance(value, _dt.datetime) else _dt.date if isinstance(value, _dt.date) else _dt.time


class Sheet:
    """A worksheet with a header row (bold on #DDEBF7, wrapped, top), typed writes, frozen header, auto-filter
    and column widths. Rows are written strictly in order (constant_memory)."""

    def __init__(self, book: Book, title: str, headers: Sequence[str], formats: Sequence[str | None]) -> None:
        self.book = book
        self.title = title
        self.ws = book.workbook.add_worksheet(title)
        self.formats = list(formats)
        self.widths = [len(h) + 2 for h in headers]
        header = book.styled("header", {"bold": True, "bg_color": "#DDEBF7", "pattern": 1, "text_wrap": True,
                                        "valign": "top"})
        for c, text in enumerate(headers):
            self.ws.write_string(0, c, text, header)
        if book.provisional:
            # One column right of the last header, so that the header row itself keeps its columns.
            note = book.styled("provisional", {"bold": True, "font_color": "#FFFFFF", "bg_color": "#C00000",
                                               "pattern": 1})
            self.ws.write_string(0, len(headers) + 1, book.provisional, note)
            self.ws.set_tab_color("#C00000")
            self.ws.set_header(f"&C&KC00000{book.provisional}")
            self.ws.set_footer(f"&C&KC00000{book.provisional}")
        self.row = 1  # rows written so far, header included
        # The cell formats of a row, looked up once per sheet: [normal row, bold row]
        self._plain = [None, book.format(bold=True)]
        self._quoted = [book.format(quote=True), book.format(bold=True, quote=True)]
        self._numbers = [[book.format(f, bold) for f in self.formats] for bold in (False, True)]
        # Per column: the longest shown value that is not a Decimal, and the largest and smallest Decimal
        columns = len(headers)
        self._longest, self._high, self._low = [0] * columns, [None] * columns, [None] * columns

    def append(self, values: Iterable[object], bold: bool = False) -> None:
        r = self.row
        self.row += 1
        ws = self.ws
        plain, numbers, count = self._plain[bold], self._numbers[bold], len(self._numbers[bold])
        longest, high, low = self._longest, self._high, self._low
        for c, value in enumerate(values):
            kind = type(value)
            if kind is str:
                if not value:
                    ws.write_blank(r, c, None, plain)
                    continue  # shown width 0: never widens a column
                if len(value) > _SURELY_FITS:  # rare: only then is the exact length worth measuring
                    value = fit_cell(value)
                # text that starts like a formula: plain text with a quote prefix (see safe_text)
                ws.write_string(r, c, value, self._quoted[bold] if value.startswith(FORMULA_START) else plain)
                if len(value) > longest[c]:
                    longest[c] = len(value)
            elif kind is Decimal:
                # The Decimal becomes a double only here, for the file: openpyxl stored it the same way
                # ("%.16g" of the value), so the cell text and what Excel reads are unchanged. Only a number of at
                # most 15 significant digits survives that exactly: one C call (rounding to 15 digits) checks it.
                if CELL_CONTEXT.plus(value) != value or value.is_infinite():
                    _refuse_inexact(self.title, r, c, value)
                ws.write_number(r, c, float(value), numbers[c] if c < count else plain)
                # Its shown width grows with its magnitude: the column's largest and smallest amounts decide it
                # (measured in `finish`), so no amount is formatted here.
                if high[c] is None:
                    high[c] = low[c] = value
                elif value > high[c]:
                    high[c] = value
                elif value < low[c]:
                    low[c] = value
            elif kind is int:
                if not -_WHOLE_FITS < value < _WHOLE_FITS and CELL_CONTEXT.plus(Decimal(value)) != value:
                    _refuse_inexact(self.title, r, c, value)
                ws.write_number(r, c, value, numbers[c] if c < count else plain)
                if len(str(value)) > longest[c]:
                    longest[c] = len(str(value))
            else:
                self._other(r, c, value, bold)

    def _other(self, r: int, c: int, value: object, bold: bool) -> None:
        """A cell that is not exactly a str, Decimal or int (rare: None, bool, float, a date, a str subclass):
        written by `Book.put` with the column's number format, as any other book's cells are."""
        self.book.put(self.ws, r, c, value, self.formats[c] if c < len(self.formats) else None, bold)
        self._longest[c] = max(self._longest[c], _shown_width(value))

    def finish(self, autofilter: bool = True) -> None:
        self.ws.freeze_panes(1, 0)
        if autofilter and self.row > 1:
            self.ws.autofilter(0, 0, self.row - 1, len(self.widths) - 1)
        for c, width in enumerate(self.widths):
            shown = max([self._longest[c], *(_shown_width(v) for v in (self._high[c], self._low[c]) if v is not None)])
            width = max(width, min(shown + 1, 80))  # text length, amounts as shown with two decimals, cap 80
            # set_column(width) would store width + 5 px padding; openpyxl stored the width itself. Seven
            # pixels per character (Calibri 11) give back exactly `width` in the file.
            self.ws.set_column_pixels(c, c, 7 * width)


def write_book(path: str | Path, build, provisional: str | None = None, constant_memory: bool = True) -> None:
    """Write a workbook atomically: `build(book)` adds its sheets to a fresh `Book`, which is then closed."""

    def save(temp: str) -> None:
        # constant_memory keeps each sheet's rows in a temporary file until close(); a run that fails half
        # way must not leave them behind, so they live in a folder of our own.
        with tempfile.TemporaryDirectory(prefix="allocation-xlsx-") as scratch:
            book = Book(temp, provisional, scratch, constant_memory)
            build(book)
            book.close()

    write_atomically(path, save)


def _overview_columns(allocation: Allocation) -> tuple[list[str], list[str], dict[str, dict[str, int]]]:
    """Uebersicht's amount columns: (keys, headers, AGS -> key -> cents). Without levies one column per route
    used; with levies one per levy (its `name`), then the other routes used (direct billing, host)."""
    used = [route for route in ROUTES if any(item.rule.route == route for item in allocation.items)] or list(ROUTES[:1])
    if not allocation.levies:
        return used, [ROUTE_LABELS[r] for r in used], allocation.totals()
    others = [route for route in used if route not in LEVY_ROUTES]
    totals, by_levy = allocation.totals(), allocation.levy_totals()
    values = {ags: {**by_levy[ags], **{route: totals[ags][route] for route in others}} for ags in totals}
    return ([levy.levy.id for levy in allocation.levies] + others,
            [levy.levy.name for levy in allocation.levies] + [ROUTE_LABELS[r] for r in others], values)


@dataclass(frozen=True, slots=True)
class Table:
    """A sheet's contents before writing: headers, number formats per column, the rows, and an optional bold
    totals row. The writer streams it; the Python API turns the same rows into DataFrames (one source)."""

    headers: list[str]
    formats: list[str | None]
    rows: Iterable[list[object]]
    totals: list[object] | None = None


def uebersicht_table(allocation: Allocation) -> Table:
    """Uebersicht: one row per municipality (AGS order): base, one amount per levy or route used, Summe and the
    Hebesatz-Punkte (with levies: levy amounts only, a host's own costs are no levy); then the totals row."""
    used, labels, totals = _overview_columns(allocation)
    levy_keys = {levy.levy.id for levy in allocation.levies}
    points_header = ("Hebesatz-Punkte (Umlagen ÷ Umlagegrundlagen × 100)" if levy_keys
                     else "Hebesatz-Punkte (Summe ÷ Umlagegrundlagen × 100)")
    headers = ["AGS", "Gemeinde", "Umlagegrundlagen", *labels, "Summe", points_header]

    def pointed(routes: dict[str, int]) -> int:
        return sum(routes[k] for k in levy_keys) if levy_keys else sum(routes.values())

    rows = []
    for m in sorted(allocation.book.municipalities, key=lambda m: m.ags):
        routes = totals[m.ags]
        points = percent_points(pointed(routes), m.base)
        rows.append([m.ags, m.name, cents_to_decimal(m.base), *[cents_to_decimal(routes[r]) for r in used],
                     cents_to_decimal(sum(routes.values())), points if points is not None else ""])
    base_total = sum(m.base for m in allocation.book.municipalities)
    grand = sum(sum(r.values()) for r in totals.values())
    column_totals = {r: sum(t[r] for t in totals.values()) for r in used}
    points = percent_points(pointed(column_totals), base_total)
    return Table(headers, [None, None, EUR, *[EUR] * len(used), EUR, POINTS], rows,
                 ["Summe", "", cents_to_decimal(base_total), *[cents_to_decimal(column_totals[r]) for r in used],
                  cents_to_decimal(grand), points if points is not None else ""])


def _uebersicht(book: Book, allocation: Allocation) -> None:
    table = uebersicht_table(allocation)
    sheet = Sheet(book, "Uebersicht", table.headers, table.formats)
    for row in table.rows:
        sheet.append(row)
    sheet.append(table.totals, bold=True)
    sheet.finish()
    count = len(allocation.book.municipalities)
    amounts = len(table.headers) - 5  # the levy / route columns between Umlagegrundlagen and Summe
    chart = book.workbook.add_chart({"type": "bar", "subtype": "stacked"})
    for column in range(3, 3 + amounts):  # one series per route: name from the header, one bar per municipality
        chart.add_series({"name": ["Uebersicht", 0, column], "categories": ["Uebersicht", 1, 1, count, 1],
                          "values": ["Uebersicht", 1, column, count, column], "overlap": 100})
    chart.set_title({"name": "Belastung je Gemeinde nach Finanzierungsweg"})
    chart.set_x_axis({"name": "€", "num_format": "#,##0"})  # in xlsxwriter's bar charts x is the value axis
    chart.set_size({"width": round(22 * _CHART_CM_TO_PX), "height": round(max(8, 0.6 * count + 3) * _CHART_CM_TO_PX)})
    sheet.ws.insert_chart(count + 4, 0, chart)  # cell A{count + 5}


_CELL_MEMO = 4096  # most distinct keys (and shares) whose cells one Einzelnachweis remembers: memory stays bounded
_EXACT_FITS = 10 ** (CELL_DIGITS - 6 + 2)  # cents: a line's exact amount (≤ its item's deficit) to 6 places fits


def _parts_text_of(item: ItemAllocation, by_ags: Mapping[str, Municipality],
                   memo: dict[tuple, "_PartsText | None"]) -> "_PartsText | None":
    """`_PartsText` of the item's composite key, or None for any other key: built once per key and payers
    (the column totals are sums of Fractions over every payer)."""
    if not _is_composite(item):
        return None
    memo_key = (id(item.rule.key), tuple(line.ags for line in item.lines if line.key > 0))
    if memo_key not in memo:
        memo[memo_key] = _PartsText(key_parts(item, by_ags))
    return memo[memo_key]


def einzelnachweis_table(allocation: Allocation) -> Table:
    """Einzelnachweis: one row per item × municipality with the calculation proof (rows built lazily)."""
    headers = ["ID", "AGS", "Gemeinde", "Regel", "Weg", "Schlüssel", "Schlüsselwert", "Schlüsselsumme",
               "Anteil (exakt)", "Betrag ungerundet", "Betrag gerundet", "Resteinheiten", "Rang (größter Rest)",
               "Nachweis"]
    formats = [None, None, None, None, None, None, "#,##0.######", "#,##0.######", SHARE, EXACT, EUR, "0", "0", None]
    names = {m.ags: m.name for m in allocation.book.municipalities}
    by_ags = {m.ags: m for m in allocation.book.municipalities}
    unit = allocation.book.parameters.unit

    def rows() -> Iterator[list[object]]:
        column_texts: dict[tuple[str, str], str] = {}  # (AGS, column) -> its value as text, for composite keys
        # Items that split over the same key (every item of the Kreisumlage) repeat each payer's key and
        # share: their cells and the key's text are computed once per value.
        keys: dict[tuple[int, int], tuple[Decimal, str, Decimal]] = {}
        shares: dict[tuple[int, int], Decimal] = {}
        texts_of_parts: dict[tuple, _PartsText | None] = {}  # items of one composite key share its texts
        for item in allocation.items:
            total = _decimal(item.key_total, 6)
            total_cell = cell_digits(total)  # a key total can have more than 15 digits: the cell shows 15
            big = not -_EXACT_FITS < item.deficit < _EXACT_FITS  # an exact amount to 6 places beyond 15 digits
            parts_text = _parts_text_of(item, by_ags, texts_of_parts)
            texts = _item_texts(item, total)
            head = (item.item.id, item.rule.id, ROUTE_LABELS[item.rule.route], item.key_label)
            for line in sorted(item.lines, key=_by_ags):
                name = names[line.ags]
                if _is_empty(line):  # a non-payer (or a key of 0): the same zero cells on every such line
                    yield [head[0], line.ags, name, head[1], head[2], head[3], _ZERO_6, total_cell, _ZERO_10,
                           _ZERO_6, _ZERO_CENTS, 0, "", NO_SHARE]
                    continue
                # exact ratios straight from numerator and denominator (no intermediate Fractions)
                ratio = (line.key.numerator, line.key.denominator)
                known = keys.get(ratio)
                if known is None:
                    if len(keys) >= _CELL_MEMO:
                        keys.clear()
                    key = _decimal(line.key, 6)
                    known = keys[ratio] = (key, _de(key.normalize()), cell_digits(key))
                ratio = (line.share.numerator, line.share.denominator)
                share = shares.get(ratio)
                if share is None:
                    if len(shares) >= _CELL_MEMO:
                        shares.clear()
                    share = shares[ratio] = _decimal(line.share, 10)
                numerator, denominator = line.exact_ratio
                exact = ratio_to_decimal(numerator, 100 * denominator, 6)
                yield [head[0], line.ags, name, head[1], head[2], head[3], known[2], total_cell, share,
                       cell_digits(exact) if big else exact, cents_to_decimal(line.amount), line.extra_units,
                       line.rank if line.rank is not None else "",
                       _proof(item, line, name, unit, known[0], total, exact,
                              parts_text(by_ags[line.ags], column_texts) if parts_text and line.key else None,
                              texts, known[1])]

    return Table(headers, formats, rows())


def _einzelnachweis(book: Book, allocation: Allocation) -> None:
    table = einzelnachweis_table(allocation)
    sheet = Sheet(book, "Einzelnachweis", table.headers, table.formats)
    part = 1
    for row in table.rows:
        if sheet.row >= MAX_ROWS:  # Excel's last row: continue on Einzelnachweis_2, _3, ... (same header)
            sheet.finish()
            part += 1
            sheet = Sheet(book, f"Einzelnachweis_{part}", table.headers, table.formats)
        sheet.append(row)
    sheet.finish()


def entscheidungen_table(allocation: Allocation, rules_label: str | None = None) -> Table:
    """Entscheidungen: one row per cost item, the decision trace (with `levies:` also the item's levy);
    `rules_label` replaces the rule file's path in `Regeldatei:Zeile`."""
    headers = ["ID", "Bezeichnung", "Kategorie", "Träger", "Eingabezeile", "Förderfähige Kosten", "Förderung",
               "Defizit (exakt)", "Defizit (gerundet)", "Regel", "Regeldatei:Zeile", "Weg", "Weg (Kennung)",
               "Kostenbestandteile", "Schlüssel", "Rechtsgrundlage", "Begründung (Bedingung mit Werten)",
               "Alle passenden Regeln", "Beschreibung der Regel"]
    formats = [None] * 5 + [EUR] * 4 + [None] * 10
    names = {levy.id: levy.name for levy in allocation.rulebook.levies}
    if names:  # with `levies:` each item names the levy that finances it (last column: the others keep their place)
        headers = [*headers, "Umlage"]
    rows = []
    for item in allocation.items:
        rule = item.rule
        levy = [f"{names[rule.levy]} ({rule.levy})" if rule.levy else ""] if names else []
        rows.append([item.item.id, item.item.label, item.item.category, item.item.host,
                     item.item.source.cell or "", cents_to_decimal(item.eligible), cents_to_decimal(item.item.funding),
                     cents_to_decimal(item.deficit_exact), cents_to_decimal(item.deficit), rule.id,
                     f"{rules_label or rule.source.file}:{rule.source.line}", ROUTE_LABELS[rule.route], rule.route,
                     ", ".join(rule.components), item.key_label, rule.legal_basis,
                     conditions.explain(rule.when, item.item.attrs), ", ".join(item.decision.matched),
                     rule.description, *levy])
    return Table(headers, formats, rows)


def _entscheidungen(book: Book, allocation: Allocation, rules_label: str | None = None) -> None:
    table = entscheidungen_table(allocation, rules_label)
    sheet = Sheet(book, "Entscheidungen", table.headers, table.formats)
    for row in table.rows:
        sheet.append(row)
    sheet.finish()


def kontrollen_table(controls: Sequence[Control]) -> Table:
    """Kontrollen: one row per control; money in euros, the share counts ("Anteile …") as counts."""
    rows = []
    for control in controls:
        show = cents_to_decimal if control_is_money(control) else (lambda v: v)
        rows.append([control.name, control.item_id or "", show(control.expected), show(control.actual),
                     show(control.difference), "OK" if control.ok else "FEHLER"])
    return Table(["Kontrolle", "ID", "Soll", "Ist", "Differenz", "Ergebnis"], [None, None, EUR, EUR, EUR, None], rows)


def control_is_money(control: Control) -> bool:
    return not control.name.startswith("Anteile")


def _kontrollen(book: Book, controls: Sequence[Control]) -> None:
    table = kontrollen_table(controls)
    sheet = Sheet(book, "Kontrollen", table.headers, table.formats)
    for row in table.rows:
        sheet.append(row)
    sheet.finish()


def _protokoll(book: Book, rows: Sequence[tuple[str, object]]) -> None:
    sheet = Sheet(book, "Protokoll", ["Angabe", "Wert"], [None, None])
    for key, value in rows:
        sheet.append([key, value])
    sheet.finish(autofilter=False)


FINDING_KINDS = {"double-burden": "Doppelbelastung", "host-credited": "Anrechnung (credit_hosts)"}


def _hinweise(book: Book, allocation: Allocation) -> None:
    """Findings (not errors): double burdens of host municipalities and host credits."""
    sheet = Sheet(book, "Hinweise", ["Art", "Kennung", "AGS", "Gemeinde", "Kategorie",
                                          "Eigene Kosten (Trägerkommune)", "Umlageanteil für die Leistung an andere",
                                          "Gesamt", "Angerechnet (credit_hosts)", "Hinweis"],
                   [None] * 5 + [EUR] * 4 + [None])
    for finding in allocation.findings:
        sheet.append([FINDING_KINDS.get(finding.code, finding.code), finding.code, finding.ags, finding.name,
                      finding.category, cents_to_decimal(finding.own_cost), cents_to_decimal(finding.levy_share),
                      cents_to_decimal(finding.own_cost + finding.levy_share), cents_to_decimal(finding.credit),
                      finding.message])
    if not allocation.findings:
        sheet.append(["keine Hinweise", "", "", "", "", "", "", "", "", "keine Doppelbelastung gefunden"])
    sheet.finish()


def _hebesaetze(book: Book, allocation: Allocation) -> None:
    """Levy rates: the printed rate per levy item and what it yields, next to the exact split. A rate that
    needs more decimals than declared shows them (and says so); one that no printable rate meets is marked
    "nicht aussagekräftig" and yields nothing (rates.py)."""
    from ..calc.rates import iter_levy_rates

    sheet = Sheet(book, "Hebesaetze", [
        "ID", "Regel", "Weg", "AGS", "Gemeinde", "Bemessungsgrundlage", "Hebesatz exakt (%)",
        "Hebesatz gedruckt (%)", "Betrag nach gedrucktem Hebesatz", "Betrag exakte Verteilung",
        "Differenz (Hebesatz − exakt)", "Nachkommastellen (gedruckt)", "Hinweis"],
        [None] * 5 + [EUR, "0.0000000000", "0.00####", EUR, EUR, EUR, "0", None])
    names = {m.ags: m.name for m in allocation.book.municipalities}

    def money(cents: int | None) -> Decimal | str:
        return "" if cents is None else cents_to_decimal(cents)

    for levy in iter_levy_rates(allocation):
        exact = cell_digits(_decimal(levy.rate_exact, 10))  # a rate on a tiny base can have more than 15 digits
        rate = cell_digits(levy.rate) if levy.rate is not None else ""  # 15 digits unless need ≫ base
        item, rule, route = levy.item_id, levy.rule_id, ROUTE_LABELS[levy.route]
        decimals, note = levy.decimals, levy.note
        for line in levy.lines:
            sheet.append([item, rule, route, line.ags, names[line.ags], _hundredths(line.base), exact, rate,
                          money(line.at_rate), cents_to_decimal(line.exact_split), money(line.difference), decimals,
                          note])
        sheet.append([item, rule, route, "Summe", "Bedarf (Defizit)", _hundredths(levy.base_total), exact, rate,
                      money(levy.total_at_rate), cents_to_decimal(levy.need), money(levy.difference), decimals,
                      note], bold=True)
    sheet.finish()


MODES = {"statute": "Hebesatz der Haushaltssatzung", "derived": "abgeleitet (kein Satz im Blatt Umlagesaetze)"}


def umlagen_table(allocation: Allocation) -> Table:
    """Umlagen as a table of its payer rows only (one per levy × payer; the Python API's `levies` frame)."""
    headers, formats, rows = _umlagen_rows(allocation)
    return Table(headers, formats, [row for row, total in rows if not total])


def _umlagen(book: Book, allocation: Allocation) -> None:
    headers, formats, rows = _umlagen_rows(allocation)
    sheet = Sheet(book, "Umlagen", headers, formats)
    for row, total in rows:
        sheet.append(row, bold=total)
    sheet.finish()


def _umlagen_rows(allocation: Allocation) -> tuple[list[str], list[str | None], Iterator[tuple[list[object], bool]]]:
    """Umlagen's headers, formats and rows (each with whether it is a total, set in bold): one row per levy ×
    payer with the base components (raw and weighted), Bemessungsgrundlage, Satz, Betrag and the proof in
    words; after each levy its total, its need and the surplus or shortfall."""
    components = list(dict.fromkeys(column for levy in allocation.levies for column in levy.levy.base))
    with_factor = any(levy.levy.extent for levy in allocation.levies)
    headers = ["Umlage", "AGS", "Gemeinde"]
    for column in components:
        headers += [column, f"{column} gewichtet"]
    headers += ["Bemessungsgrundlage", *(["Faktor (extent)"] if with_factor else []), "Satz (%)", "Betrag",
                "Nachweis", "Berechnung"]
    formats = [None] * 3 + [EUR] * (2 * len(components)) + [EUR] + (["0.######"] if with_factor else []) + \
        ["0.0000", EUR, None, None]
    return headers, formats, _umlagen_lines(allocation, components, with_factor)


def _umlagen_lines(allocation: Allocation, components: list[str], with_factor: bool
                   ) -> Iterator[tuple[list[object], bool]]:
    names = {m.ags: m.name for m in allocation.book.municipalities}
    unit, decimals = allocation.book.parameters.unit, allocation.book.parameters.rate_decimals
    blank_components = [""] * (2 * len(components))
    for levy in allocation.levies:
        entry = levies_stage.need_entry(allocation.rulebook, allocation.book, levy.levy.id)
        given = f"{_de(cents_to_decimal(entry.cents))} € ({entry.source.cell})" if entry is not None else ""
        single = levy.rates.get("")
        rate_cell = cell_digits(single) if single is not None else (
            "je Bestandteil: " + ", ".join(f"{c} {_percent(r, decimals)}" for c, r in levy.rates.items()) if levy.rates else "")
        for line in levy.lines:
            cells: list[object] = list(blank_components)
            for part in line.parts:
                index = 2 * components.index(part.column)
                cells[index] = _decimal(part.value / 100, 2)
                cells[index + 1] = _decimal(part.weighted / 100, 2)
            factor = [_decimal(line.factor, 6) if line.factor is not None else ""] if with_factor else []
            yield [levy.levy.name, line.ags, names[line.ags], *cells, _decimal(line.base / 100, 2), *factor,
                   rate_cell, cents_to_decimal(line.amount), levy_proof(levy, line, unit, decimals, given),
                   MODES[levy.mode]], False
        pad = [*blank_components, *([""] if with_factor else [])]
        revenue = "Aufkommen zum Satz" if levy.mode == "statute" else "Aufkommen (Verteilung des Bedarfs)"
        sums: list[object] = list(blank_components)
        for index, column in enumerate(components):
            parts = [part for line in levy.lines for part in line.parts if part.column == column]
            if parts:
                sums[2 * index] = _decimal(sum((p.value for p in parts), Fraction(0)) / 100, 2)
                sums[2 * index + 1] = _decimal(sum((p.weighted for p in parts), Fraction(0)) / 100, 2)
        yield [levy.levy.name, "Summe", revenue, *sums, _decimal(levy.base_total / 100, 2),
               *pad[len(blank_components):], rate_cell, cents_to_decimal(levy.revenue),
               f"Summe der {len(levy.lines)} Zeilen", MODES[levy.mode]], True
        yield [levy.levy.name, "", "Umlagebedarf (Summe der Defizite" + (" und Umlagebedarf)" if given else ")"),
               *pad, "", "", cents_to_decimal(levy.need),
               "Defizite von " + (", ".join(levy.items) or "keiner Kostenposition")
               + (f" + Umlagebedarf {given}" if given else ""), ""], True
        outcome = "Überschuss" if levy.difference > 0 else "Fehlbetrag" if levy.difference < 0 else "ausgeglichen"
        yield [levy.levy.name, "", f"Aufkommen − Bedarf ({outcome})", *pad, "", "",
               cents_to_decimal(levy.difference), f"{_de(cents_to_decimal(levy.revenue))} € − "
               f"{_de(cents_to_decimal(levy.need))} €", ""], True


PROVISIONAL_NOTE = ("VORLÄUFIG (§ 56 Abs. 1 KrO NRW): Haushaltssatzung noch nicht in Kraft, berechnet mit den "
                    "Hebesätzen und Umlagegrundlagen des Vorjahres")


def provisional_note(state: str) -> str:
    """The banner of a provisional run's sheets: NW's as before, another state's with its own norm and rule."""
    if state == states.DEFAULT_STATE:
        return PROVISIONAL_NOTE
    return (f"VORLÄUFIG ({states.provisional_norm(state)}): Haushaltssatzung noch nicht in Kraft; "
            f"{states.provisional_rule(state)}")


def write_workbook(path: str | Path, allocation: Allocation, controls: Sequence[Control],
                   protocol: Sequence[tuple[str, object]], provisional: str | None = None,
                   rules_label: str | None = None) -> None:
    """Stream the output workbook (sheets in SHEET_NAMES order) to `path`; `provisional` marks every sheet;
    `rules_label` shows the rule file under another name in `Regeldatei:Zeile` (a names-only run: no folder)."""

    def build(book: Book) -> None:
        _uebersicht(book, allocation)
        _einzelnachweis(book, allocation)
        _entscheidungen(book, allocation, rules_label)
        _kontrollen(book, controls)
        _protokoll(book, protocol)
        _hinweise(book, allocation)
        _hebesaetze(book, allocation)
        if allocation.levies:
            _umlagen(book, allocation)

    write_book(path, build, provisional)
