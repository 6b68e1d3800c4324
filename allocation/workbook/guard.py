"""Files a command must never overwrite: the one check every writing command makes before it reads anything.

No output (result workbook, manifest, marked copy, settlement, rule book, comparison, template, summary) may
be a file the command reads (input workbook, rule file, `--bases-from` workbook), lie in the register of
final runs, be (or be the manifest of) a final run's output that the register records, or be named like a
manifest (`*.manifest.json`) unless it is the manifest beside its own output. A command that never replaces a
file (`template`) also refuses an existing one. Paths are compared resolved (symbolic links, `..`, relative to
the working directory) and, where both files exist, with `os.path.samefile` (hard links, case-insensitive file
systems). A refusal is exit 8.
"""
from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..core.filenames import output_problems
from ..core.problems import ExitCode, Location, OutputError, Problem, ProblemsError

__all__ = ["RefusedError", "FinalOutput", "refuse_overwrite", "rule_files", "MANIFEST_SUFFIX"]

Labelled = tuple[str, "str | os.PathLike[str]"]

# the name runs/manifest.py gives a run's manifest (`<output>.manifest.json`); repeated here, one layer below
MANIFEST_SUFFIX = ".manifest.json"


@dataclass(frozen=True, slots=True)
class FinalOutput:
    """A final run's output as the register records it (`runs/register.final_outputs`): the path as given at
    the run, the SHA-256 of the workbook written, and what to call the run in a message."""
    path: str
    sha256: str
    label: str


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


def _sha256(path: Path) -> str | None:
    """The SHA-256 of a regular file at `path`, None if there is none (or it cannot be read)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return None
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None


def _final_run_at(output: Path, finals: list[FinalOutput]) -> FinalOutput | None:
    """The final run whose workbook is `output` (or whose manifest `output` is): by path, or, since the register
    keeps a path as it was given (relative to another working directory, say), by the SHA-256 of the file there."""
    workbook = Path(str(output)[: -len(MANIFEST_SUFFIX)]) if output.name.endswith(MANIFEST_SUFFIX) else output
    if not finals:
        return None
    for final in finals:
        if _same(workbook, Path(final.path)):
            return final
    digest = _sha256(workbook)
    return next((final for final in finals if digest is not None and final.sha256 == digest), None)


def _manifest_named(output: Path, outputs: list[Labelled]) -> bool:
    """`output` is named like a manifest without being the manifest beside another output of the same command."""
    if not output.name.endswith(MANIFEST_SUFFIX):
        return False
    return not any(str(output) == f"{other}{MANIFEST_SUFFIX}" for _, other in outputs)


def _collisions(kind: str, output: Path, outputs: list[Labelled],
                finals: list[FinalOutput], never_replace: bool) -> list[Problem]:
    """Why this output would destroy a file that must stay (besides the protected files and the register)."""
    problems: list[Problem] = []
    if _manifest_named(output, outputs):
        problems.append(Problem(
            "output-is-manifest", Location(str(output)),
            f"{kind} trüge den Namen eines Manifests und könnte das Manifest eines anderen Laufs ersetzen",
            found=output.name, expected=f"ein Name, der nicht auf {MANIFEST_SUFFIX} endet, z. B. ergebnis.xlsx",
            hint="einen anderen Namen bei -o wählen; Manifeste schreibt allocation selbst neben die Arbeitsmappe"))
    final = _final_run_at(output, finals)
    if final is not None:
        problems.append(Problem(
            "output-is-final-run", Location(str(output)),
            f"{kind} würde die Ausgabe des registrierten Echtlaufs ({final.label}) überschreiben",
            found=str(output), expected="ein Name, den kein Echtlauf im Register trägt",
            hint="einen neuen Namen bei -o wählen; die Arbeitsmappe und das Manifest eines Echtlaufs bleiben, "
                 "wie das Register sie nennt"))
    elif never_replace and os.path.lexists(output):
        problems.append(Problem(
            "output-exists", Location(str(output)), f"{kind} gibt es schon; sie wird nie ersetzt",
            found=str(output), expected="ein Name, unter dem noch keine Datei liegt",
            hint="einen neuen Dateinamen wählen (die vorhandene Datei bleibt unverändert)"))
    return problems


def refuse_overwrite(outputs: Iterable[Labelled], protected: Iterable[Labelled],
                     register_dir: str | os.PathLike[str] | None = None, *,
                     finals: Iterable[FinalOutput] = (), never_replace: bool = False, locations: bool = True) -> None:
    """Raise OutputError (exit 9) if an output location cannot take a file (a folder, a file as folder, a name
    too long, a read-only folder); then RefusedError (all collisions at once) if an output is a protected file,
    in the register, a final run's output in `finals` (or its manifest), named like a manifest, or, with
    `never_replace`, any existing file. `locations=False` leaves out the first check, for a writer that checks
    its own locations (the notices' PDFs, written without a manifest beside them)."""
    outputs = list(outputs)
    unusable: list[Problem] = []
    for kind, output in outputs if locations else ():  # one problem per folder: a manifest fails alike
        found = output_problems(output, kind)
        if found and not any(Path(p.location.file).parent == Path(output).parent for p in unusable):
            unusable += found
    if unusable:
        raise OutputError(unusable)
    protected = [(kind, Path(path)) for kind, path in protected if path is not None]
    finals = list(finals)
    problems: list[Problem] = []
    for kind, output in outputs:
        output = Path(output)
        problems += _collisions(kind, output, outputs, finals, never_replace)
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
