"""Problems, error types and exit codes.

Every stage reports what is wrong as `Problem` values: a stable code an auditor can look up in the
README, a `Location` (file, sheet, cell or rule file:line:column), the value found, what was expected and
a fix. Stages collect problems and raise one `ProblemsError` subclass carrying all of them; the CLI maps
the subclass to an exit code. Nothing here does I/O.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable

__all__ = [
    "ExitCode",
    "Location",
    "Problem",
    "ProblemsError",
    "InputError",
    "RuleFileError",
    "LetterheadFileError",
    "DecisionError",
    "InvariantViolation",
    "OutputError",
    "column_letter",
    "did_you_mean",
]


class ExitCode:
    """Process exit codes; stable, documented in the README."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    INPUT = 3
    RULES = 4
    DECISION = 5
    INVARIANT = 6
    VERIFY = 7
    REFUSED = 8
    OUTPUT = 9
    BUSY = 75


def column_letter(index: int) -> str:
    """1-based column index to Excel letters (1 -> A, 27 -> AA)."""
    letters = ""
    while index > 0:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


@dataclass(frozen=True, slots=True)
class Location:
    """Where a value came from: a workbook cell or a place in a rule file."""

    file: str
    sheet: str | None = None
    row: int | None = None
    column: int | None = None
    line: int | None = None
    col: int | None = None

    @property
    def cell(self) -> str | None:
        if self.sheet is None:
            return None
        if self.row is None:
            return self.sheet
        if self.column is None:
            return f"{self.sheet}, Zeile {self.row}"
        return f"{self.sheet}!{column_letter(self.column)}{self.row}"

    def __str__(self) -> str:
        if self.sheet is not None:
            return f"{self.file} › {self.cell}"
        if self.line is not None:
            return f"{self.file}:{self.line}" + (f":{self.col}" if self.col else "")
        return self.file

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("file", "sheet", "row", "column", "line", "col")
                if getattr(self, k) is not None} | ({"cell": self.cell} if self.cell else {})


FOUND_SHOWN = 200  # characters of a found value a message line shows; problems.json keeps it whole


def _shortened(found: str) -> str:
    """A found value as a message line shows it: a 30,000-character cell would bury the message."""
    if len(found) <= FOUND_SHOWN:
        return found
    return f"{found[:FOUND_SHOWN]} … ({len(found):,} Zeichen)".replace(",", ".")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong, located, with the found value, the expectation and a fix."""

    code: str
    location: Location
    message: str
    hint: str = ""
    found: str | None = None
    expected: str | None = None
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        if self.found is not None:
            text += f" (gefunden: {_shortened(str(self.found))})"
        if self.expected:
            text += f"; erwartet: {self.expected}"
        if self.hint:
            text += f". Lösung: {self.hint}"
        prefix = "Warnung" if self.severity == "warning" else "Fehler"
        return f"{prefix} [{self.code}] {text}"

    def as_dict(self) -> dict:
        return {
            "code": self.code,
            "severity": self.severity,
            "location": self.location.as_dict(),
            "message": self.message,
            "found": self.found,
            "expected": self.expected,
            "hint": self.hint,
        }


@dataclass
class ProblemsError(Exception):
    """A stage found problems; all of them are carried, none is dropped."""

    problems: list[Problem] = field(default_factory=list)
    exit_code = ExitCode.INTERNAL
    title = "Probleme"

    def __post_init__(self) -> None:
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.title}:\n" + "\n".join(f"  {p}" for p in self.problems)


class InputError(ProblemsError):
    exit_code = ExitCode.INPUT
    title = "Die Eingabe-Arbeitsmappe enthält Fehler"


class RuleFileError(ProblemsError):
    exit_code = ExitCode.RULES
    title = "Die Regeldatei enthält Fehler"


class LetterheadFileError(RuleFileError):
    """The installation's letterhead file (`--letterhead`, $ALLOCATION_LETTERHEAD): a rule file's `notices:` keys
    in a file of their own, so the same exit code, with its own title."""
    title = "Die Briefkopf-Datei der Installation enthält Fehler"


class DecisionError(ProblemsError):
    exit_code = ExitCode.DECISION
    title = "Die Regeln entscheiden nicht jede Kostenposition eindeutig"


class OutputError(ProblemsError):
    exit_code = ExitCode.OUTPUT
    title = "Die Ausgabe lässt sich dort nicht schreiben"


class InvariantViolation(ProblemsError):
    exit_code = ExitCode.INVARIANT
    title = "Eine Kontrolle ist fehlgeschlagen (interner Fehler, bitte melden)"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (meinten Sie X?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    if not close:
        lowered = {str(c).lower(): str(c) for c in choices}
        if str(word).lower() in lowered:
            close = [lowered[str(word).lower()]]
    return f" (meinten Sie {close[0]}?)" if close else ""
