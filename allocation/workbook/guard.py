"""Files a command must never overwrite: the one check every writing command makes before it reads anything.

No output (result workbook, manifest, marked copy, settlement, rule book, comparison, template, summary) may
be a file the command reads (input workbook, rule file, `--bases-from` workbook) or lie in the register of
final runs. Paths are compared resolved (symbolic links, `..`, relative to the working directory) and, where
both files exist, with `os.path.samefile` (hard links, case-insensitive file systems). A refusal is exit 8.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..core.filenames import output_problems
from ..core.problems import ExitCode, Location, OutputError, Problem, ProblemsError

__all__ = ["RefusedError", "refuse_overwrite", "rule_files"]

Labelled = tuple[str, "str | os.PathLike[str]"]


class RefusedError(ProblemsError):
    exit_code = ExitCode.REFUSED
    title = "Abgelehnt: der Lauf würde eine Datei überschreiben oder ist so nicht erlaubt"


def rule_files(rules: str | os.PathLike[str]) -> list[Labelled]:
    """A rule file, or every rule file of a rules folder, labelled for `refuse_overwrite`."""
    path = Path(rules)
    files = sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
    return [("Regeldatei", file) for file in files]


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def refuse_overwrite(outputs: Iterable[Labelled], protected: Iterable[Labelled],
                     register_dir: str | os.PathLike[str] | None = None) -> None:
    """Raise OutputError (exit 9) if an output location cannot take a file (a folder, a file as folder, a name
    too long, a read-only folder); then RefusedError (all collisions at once) if an output is a protected file
    or in the register."""
    outputs = list(outputs)
    unusable: list[Problem] = []
    for kind, output in outputs:  # one problem per folder: a manifest beside the workbook fails alike
        found = output_problems(output, kind)
        if found and not any(Path(p.location.file).parent == Path(output).parent for p in unusable):
            unusable += found
    if unusable:
        raise OutputError(unusable)
    protected = [(kind, Path(path)) for kind, path in protected if path is not None]
    problems: list[Problem] = []
    for kind, output in outputs:
        output = Path(output)
        for what, source in protected:
            if _same(output, source):
                problems.append(Problem(
                    "output-is-input", Location(str(output)),
                    f"{kind} würde die {what} {source.name} überschreiben", found=str(output),
                    expected=f"eine andere Datei als die {what}",
                    hint="einen anderen Namen bei -o wählen; gelesene Dateien werden nie verändert"))
        if register_dir is not None and _inside(output, Path(register_dir)):
            problems.append(Problem(
                "output-in-register", Location(str(output)),
                f"{kind} läge im Register der Echtläufe", found=str(output),
                expected=f"ein Ort außerhalb von {register_dir}",
                hint="einen anderen Ordner bei -o wählen; in das Register schreibt nur allocation selbst"))
    if problems:
        raise RefusedError(problems)
