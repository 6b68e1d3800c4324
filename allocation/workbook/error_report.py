"""Problems -> what the person who dropped a file reads: a German text report and a marked copy of the input.

`render_text(problems)` turns a list of `Problem` values into a plain-text report grouped by sheet, each
entry with its place, the value found, what was expected and how to fix it. `write_marked_copy(input_path,
problems, out_path)` writes an `.xlsx` copy of the input workbook in which every cell named by a problem is
filled red and carries a comment with the problem; problems on a whole row mark the row's first cell,
problems without a cell are listed on an added first sheet `Fehlerbericht`. The input file itself is only
read, never written. A file that fails the safety checks (`safety.py`: not a workbook, encrypted, zip bomb,
DTD, too many rows) is never opened; then no copy is written and the function returns False.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

from ..core.problems import Problem, column_letter

__all__ = ["render_text", "write_marked_copy", "REPORT_SHEET"]

REPORT_SHEET = "Fehlerbericht"
_FILL = "FFC7CE"      # Excel's "bad" red
_WARN_FILL = "FFEB9C"  # Excel's "neutral" yellow
_COMMENT_LIMIT = 30000  # Excel allows 32,767 characters per comment


def _place(problem: Problem) -> str:
    loc = problem.location
    if loc.sheet is not None:
        if loc.row is not None and loc.column is not None:
            return f"Blatt {loc.sheet}, Zelle {column_letter(loc.column)}{loc.row}"
        if loc.row is not None:
            return f"Blatt {loc.sheet}, Zeile {loc.row}"
        return f"Blatt {loc.sheet}"
    if loc.line is not None:
        return f"Zeile {loc.line}" + (f", Spalte {loc.col}" if loc.col else "")
    return "ganze Datei"


def _entry(number: int, problem: Problem) -> list[str]:
    kind = "Warnung" if problem.severity == "warning" else "Fehler"
    lines = [f"{number}. {kind} [{problem.code}] – {_place(problem)}", f"   Problem:  {problem.message}"]
    if problem.found is not None:
        lines.append(f"   Gefunden: {problem.found}")
    if problem.expected:
        lines.append(f"   Erwartet: {problem.expected}")
    if problem.hint:
        lines.append(f"   Lösung:   {problem.hint}")
    return lines


def render_text(problems: Sequence[Problem], title: str | None = None) -> str:
    """A German plain-text report of all problems, grouped by file and sheet, in a stable order."""
    errors = sum(1 for p in problems if p.severity != "warning")
    warnings = len(problems) - errors
    files = sorted({p.location.file for p in problems})
    head = title or "Fehlerbericht"
    lines = [head, "=" * len(head), ""]
    if files:
        lines.append("Datei: " + ", ".join(files))
    lines.append(f"{errors} Fehler, {warnings} Warnung(en). Die Datei wurde nicht verarbeitet; "
                 "bitte alle Punkte korrigieren und die Datei erneut ablegen." if errors else
                 f"{warnings} Warnung(en), keine Fehler.")
    lines.append("")
    groups: dict[tuple[str, str], list[Problem]] = defaultdict(list)
    for problem in problems:
        groups[(problem.location.file, problem.location.sheet or "")].append(problem)
    number = 0
    for (file, sheet) in sorted(groups):
        heading = f"Blatt {sheet}" if sheet else ("Datei " + file if len(files) > 1 else "Ganze Datei / Regeldatei")
        lines += [heading, "-" * len(heading)]
        group = sorted(groups[(file, sheet)], key=lambda p: (p.location.row or 0, p.location.column or 0,
                                                             p.location.line or 0, p.location.col or 0, p.code))
        for problem in group:
            number += 1
            lines += _entry(number, problem)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _comment_text(problems: Sequence[Problem]) -> str:
    parts = []
    for p in problems:
        text = f"[{p.code}] {p.message}"
        if p.found is not None:
            text += f"\nGefunden: {p.found}"
        if p.expected:
            text += f"\nErwartet: {p.expected}"
        if p.hint:
            text += f"\nLösung: {p.hint}"
        parts.append(text)
    joined = "\n\n".join(parts)
    return joined if len(joined) <= _COMMENT_LIMIT else joined[:_COMMENT_LIMIT - 1] + "…"


def write_marked_copy(input_path: str | Path, problems: Sequence[Problem], out_path: str | Path) -> bool:
    """Write a copy of the input with each bad cell highlighted and commented; False if it cannot be opened safely.

    The copy is written atomically (temporary file, fsync, rename). Sheets that were hidden are made visible
    in the copy so the marks can be seen. Text values are copied as they are; the copy is for reading only.
    """
    import io

    from openpyxl import load_workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Font, PatternFill

    from .report import put_value, write_atomically
    from .safety import check_bytes

    input_path = Path(input_path)
    try:
        data = input_path.read_bytes()
    except OSError:
        return False
    if any(p.severity != "warning" for p in check_bytes(data, input_path.name, structure=False)):
        return False
    try:
        workbook = load_workbook(io.BytesIO(data), data_only=False, keep_vba=False, keep_links=False)
    except Exception:  # noqa: BLE001 - any failure to open means: no marked copy, the text report still exists
        return False

    by_cell: dict[tuple[str, int, int], list[Problem]] = defaultdict(list)
    general: list[Problem] = []
    for problem in problems:
        loc = problem.location
        if loc.sheet is not None and loc.sheet in workbook.sheetnames and loc.row is not None:
            by_cell[(loc.sheet, loc.row, loc.column or 1)].append(problem)
        else:
            general.append(problem)

    for (sheet, row, column), cell_problems in sorted(by_cell.items()):
        ws = workbook[sheet]
        if ws.sheet_state != "visible":
            ws.sheet_state = "visible"
        cell = ws.cell(row=row, column=column)
        only_warnings = all(p.severity == "warning" for p in cell_problems)
        cell.fill = PatternFill("solid", fgColor=_WARN_FILL if only_warnings else _FILL)
        comment = Comment(_comment_text(cell_problems), "allocation")
        comment.width, comment.height = 360, 160
        cell.comment = comment

    sheet = workbook.create_sheet(REPORT_SHEET, 0)
    headers = ("Nr.", "Code", "Ort", "Problem", "Gefunden", "Erwartet", "Lösung")
    for c, header in enumerate(headers, start=1):
        cell = sheet.cell(row=1, column=c, value=header)
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
    ordered = general + [p for key in sorted(by_cell) for p in by_cell[key]]
    for r, problem in enumerate(ordered, start=2):
        values = (r - 1, problem.code, _place(problem), problem.message, problem.found or "",
                  problem.expected or "", problem.hint or "")
        for c, value in enumerate(values, start=1):
            cell = sheet.cell(row=r, column=c)
            put_value(cell, value)
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    for letter, width in zip("ABCDEFG", (5, 26, 30, 60, 30, 30, 50)):
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A2"
    for ws in workbook.worksheets:
        ws.sheet_view.tabSelected = ws.title == REPORT_SHEET
    workbook.active = 0
    write_atomically(out_path, workbook.save)
    return True
