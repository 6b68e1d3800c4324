"""The run manifest (`<output>.manifest.json`) and `allocation verify`, which replays a run from it.

A run records, next to its workbook and written atomically like it: the SHA-256 of the input workbook, of
the rule file and of the output workbook; tool, durable_rules and Python versions; the parameters; the
paths exactly as given plus the working directory; and the totals per municipality in cents. The same
data (except the output's own hash, which cannot be inside the file it describes) goes into `Protokoll`.

`verify` checks the recorded hashes against the files on disk, recomputes the run from the recorded input
and rules (in the recorded working directory, so that paths shown in cells are the same), writes the
replay to a temporary folder and compares every cell of every sheet. The only cell it ignores is the
Protokoll row `Laufzeitpunkt (UTC)`.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .model import ROUTES, Allocation
from .problems import ExitCode

__all__ = ["MANIFEST_SUFFIX", "VERIFY_FAILED", "IGNORED_ROWS", "manifest_path", "protocol_rows", "build_manifest",
           "write_manifest", "verify", "VerifyResult", "sha256_file"]

MANIFEST_SUFFIX = ".manifest.json"
FORMAT = "allocation-manifest/1"
VERIFY_FAILED = ExitCode.VERIFY  # exit code of `allocation verify` when anything differs
IGNORED_ROWS = ("Laufzeitpunkt (UTC)",)


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def manifest_path(output: str | Path) -> Path:
    return Path(str(output) + MANIFEST_SUFFIX)


def _totals(allocation: Allocation) -> dict[str, dict]:
    totals = allocation.totals()
    return {m.ags: {"name": m.name, **{route: totals[m.ags][route] for route in ROUTES},
                    "total": sum(totals[m.ags].values())}
            for m in sorted(allocation.book.municipalities, key=lambda m: m.ags)}


def protocol_rows(allocation: Allocation, input_path: str | Path, rules_path: str | Path,
                  output_path: str | Path) -> list[tuple[str, object]]:
    """Protokoll rows with the manifest's data (added after the pipeline's own rows)."""
    rows: list[tuple[str, object]] = [
        ("Arbeitsverzeichnis", os.getcwd()),
        ("Eingabe (Pfad wie angegeben)", str(input_path)),
        ("Regeldatei (Pfad wie angegeben)", str(rules_path)),
        ("Hebesatz-Nachkommastellen", allocation.book.parameters.rate_decimals),
        ("Manifest", manifest_path(Path(output_path).name).name),
        ("SHA-256 Ergebnis", f"im Manifest {manifest_path(Path(output_path).name).name}"),
    ]
    for ags, total in _totals(allocation).items():
        rows.append((f"Summe {ags} {total['name']} (Cent)", total["total"]))
    return rows


def build_manifest(allocation: Allocation, input_path: str | Path, rules_path: str | Path, output_path: str | Path,
                   started: _dt.datetime, extra: dict | None = None) -> dict:
    from .engine import durable_version

    book, rulebook = allocation.book, allocation.rulebook
    parameters = book.parameters
    return {
        "format": FORMAT,
        "tool": {"allocation": __version__, "durable_rules": durable_version(), "python": platform.python_version()},
        "started_utc": started.strftime("%Y-%m-%d %H:%M:%S"),
        "working_directory": os.getcwd(),
        "parameters": {"district": parameters.district, "year": parameters.year, "rounding": parameters.rounding,
                       "rate_decimals": parameters.rate_decimals, "hit_policy": rulebook.hit_policy,
                       **(extra or {})},
        "input": {"path": str(input_path), "absolute": str(Path(input_path).resolve()), "sha256": book.sha256},
        "rules": [{"path": str(rules_path), "absolute": str(Path(rules_path).resolve()), "sha256": rulebook.sha256,
                   "district": rulebook.district, "valid_from": rulebook.valid_from, "valid_to": rulebook.valid_to}],
        "output": {"path": str(output_path), "file": Path(output_path).name, "sha256": sha256_file(output_path)},
        "totals_cents": _totals(allocation),
        "total_cents": sum(item.deficit for item in allocation.items),
    }


def write_manifest(output_path: str | Path, manifest: dict) -> Path:
    """Write `<output>.manifest.json` atomically (temp file, fsync, rename)."""
    from .report import write_atomically

    target = manifest_path(output_path)
    text = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=False) + "\n"
    write_atomically(target, lambda temp: Path(temp).write_text(text, encoding="utf-8"))
    return target


# ---------------------------------------------------------------------------------------------- verify


@dataclass(frozen=True, slots=True)
class CellDifference:
    sheet: str
    cell: str
    expected: object
    found: object

    def __str__(self) -> str:
        return f"{self.sheet}!{self.cell}: erwartet {self.expected!r}, gefunden {self.found!r}"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    manifest: Path
    file_problems: tuple[str, ...] = ()
    differences: tuple[CellDifference, ...] = ()
    replay_error: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def identical(self) -> bool:
        return not self.file_problems and not self.differences and self.replay_error is None

    def text(self) -> str:
        lines = [f"Manifest: {self.manifest}"]
        lines += [f"  {note}" for note in self.notes]
        lines += [f"  Geändert: {problem}" for problem in self.file_problems]
        if self.replay_error:
            lines.append(f"  Nachrechnen nicht möglich: {self.replay_error}")
        lines += [f"  Abweichung {difference}" for difference in self.differences]
        if self.identical:
            lines.append("identisch: Eingabe und Regeln unverändert, Nachrechnung ergibt dieselben Zellen "
                         "(ohne Laufzeitpunkt).")
        else:
            lines.append(f"NICHT identisch: {len(self.file_problems)} geänderte Datei(en), "
                         f"{len(self.differences)} abweichende Zelle(n).")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"status": "identical" if self.identical else "different", "manifest": str(self.manifest),
                "changed_files": list(self.file_problems), "replay_error": self.replay_error,
                "differences": [{"sheet": d.sheet, "cell": d.cell, "expected": _jsonable(d.expected),
                                 "found": _jsonable(d.found)} for d in self.differences]}


def _jsonable(value: object) -> object:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _locate(target: str | Path) -> Path:
    target = Path(target)
    return target if target.name.endswith(MANIFEST_SUFFIX) else manifest_path(target)


def _existing(entry: dict, base: Path) -> Path | None:
    for candidate in (Path(entry["absolute"]), base / entry["path"]):
        if candidate.exists():
            return candidate
    # A run of the inbox (DIR/ergebnis/<name>/) read a private copy of the input, which is gone; the input
    # itself lies in DIR/archiv/ under a name that carries its SHA-256.
    archive = base.parent.parent / "archiv"
    if archive.is_dir():
        return next(iter(sorted(archive.glob(f"*_{entry['sha256']}_*"))), None)
    return None


def _cells(path: Path) -> dict[str, dict[str, object]]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=False)
    try:
        sheets: dict[str, dict[str, object]] = {}
        for sheet in workbook.worksheets:
            cells: dict[str, object] = {}
            for row in sheet.iter_rows():
                ignored = bool(row) and row[0].value in IGNORED_ROWS and sheet.title == "Protokoll"
                for cell in row:
                    if cell.value is None or (ignored and getattr(cell, "column", 1) > 1):
                        continue
                    cells[cell.coordinate] = cell.value
            sheets[sheet.title] = cells
        return sheets
    finally:
        workbook.close()


def compare_workbooks(expected: Path, found: Path) -> list[CellDifference]:
    """Every cell whose value differs (sheet by sheet, cell by cell), except the ignored Protokoll rows."""
    want, have = _cells(expected), _cells(found)
    differences: list[CellDifference] = []
    for sheet in list(want) + [s for s in have if s not in want]:
        if sheet not in have or sheet not in want:
            differences.append(CellDifference(sheet, "(Blatt)", "vorhanden" if sheet in want else "fehlt",
                                              "vorhanden" if sheet in have else "fehlt"))
            continue
        a, b = want[sheet], have[sheet]
        for coordinate in sorted(set(a) | set(b), key=_cell_order):
            if a.get(coordinate) != b.get(coordinate):
                differences.append(CellDifference(sheet, coordinate, a.get(coordinate), b.get(coordinate)))
    return differences


def _cell_order(coordinate: str) -> tuple[int, int, str]:
    from openpyxl.utils.cell import coordinate_from_string, column_index_from_string

    letters, row = coordinate_from_string(coordinate)
    return row, column_index_from_string(letters), coordinate


def verify(target: str | Path) -> VerifyResult:
    """Check hashes, replay the run and compare every cell with the recorded output."""
    from .pipeline import replay
    from .problems import ProblemsError

    path = _locate(target)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return VerifyResult(path, (f"{path}: Manifest nicht lesbar ({error})",))
    base = path.parent
    problems: list[str] = []
    notes: list[str] = []
    output = base / manifest["output"]["file"]
    if not output.exists():
        problems.append(f"{output}: Ergebnis-Arbeitsmappe fehlt")
    elif sha256_file(output) != manifest["output"]["sha256"]:
        problems.append(f"{output}: SHA-256 der Ergebnis-Arbeitsmappe weicht vom Manifest ab (nach dem Lauf verändert)")
    entries = [("Eingabe", manifest["input"])] + [("Regeldatei", rules) for rules in manifest["rules"]]
    if manifest.get("bases_from"):
        entries.append(("Vorjahres-Arbeitsmappe", manifest["bases_from"]))
    if manifest.get("rates_from"):
        entries.append(("Vorjahres-Arbeitsmappe (Umlagesätze)", manifest["rates_from"]))
    for kind, entry in entries:
        found = _existing(entry, base)
        if found is None:
            problems.append(f"{entry['path']}: {kind} nicht gefunden (auch nicht als {entry['absolute']})")
        elif sha256_file(found) != entry["sha256"]:
            problems.append(f"{found}: SHA-256 der {kind} weicht ab (erwartet {entry['sha256']}, gefunden "
                            f"{sha256_file(found)}): die Datei wurde nach dem Lauf verändert")
    tool = manifest.get("tool", {})
    notes.append(f"Lauf mit allocation {tool.get('allocation')}, durable_rules {tool.get('durable_rules')}, "
                 f"Python {tool.get('python')} am {manifest.get('started_utc')} UTC")
    if any("nicht gefunden" in p for p in problems) or not output.exists():
        return VerifyResult(path, tuple(problems), notes=tuple(notes))
    directory = Path(manifest.get("working_directory", base))
    if not directory.is_dir():
        directory = base
    differences: list[CellDifference] = []
    replay_error = None
    with tempfile.TemporaryDirectory(prefix="allocation-verify-") as temp:
        replayed = Path(temp) / manifest["output"]["file"]
        recorded_input = Path(manifest["input"]["path"])
        input_location = None
        found_input = _existing(manifest["input"], base)
        if found_input is not None and found_input.name != recorded_input.name:
            # an archived input: replay it under its recorded file name, which the workbook shows
            input_location = Path(temp) / "eingabe" / recorded_input.name
            input_location.parent.mkdir()
            shutil.copyfile(found_input, input_location)
        try:
            with contextlib.chdir(directory):
                replay(manifest, replayed, input_location)
        except ProblemsError as error:
            replay_error = "; ".join(str(p) for p in error.problems[:5])
        else:
            differences = compare_workbooks(replayed, output)
    return VerifyResult(path, tuple(problems), tuple(differences), replay_error, tuple(notes))
