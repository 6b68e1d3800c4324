"""`allocation verify`: check a run's manifest and hashes, replay the run and compare everything it signs.

`verify` first checks the manifest itself (JSON, every key present with its type; a problem names the key
path), then the recorded hashes against the files on disk, recomputes the run from the recorded input and
rules (in the recorded working directory, so that paths shown in cells are the same), writes the replay to a
temporary folder and compares every cell of every sheet, value and number format, and each sheet's layout
(sheet order, column widths, frozen panes, auto-filter, tab colour, print header). It also rebuilds the
manifest from the recomputed run and compares it field by field; only the fields in `UNCOMPARED_FIELDS`
(time, places and the output's own hash, which is checked against the file instead) and the Protokoll row
`Laufzeitpunkt (UTC)` are left out. It lives above the run it replays (`runs.pipeline.replay`).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..core.model import ROUTES, Allocation
from ..core.problems import ExitCode, Location, Problem, column_letter
from ..runs.manifest import FORMAT, MANIFEST_SUFFIX, build_manifest, manifest_path, sha256_file

__all__ = ["VERIFY_FAILED", "IGNORED_ROWS", "UNCOMPARED_FIELDS", "verify", "VerifyResult", "CellDifference",
           "FieldDifference", "compare_workbooks", "compare_manifests", "load_manifest", "existing_file"]

VERIFY_FAILED = ExitCode.VERIFY  # exit code of `allocation verify` when anything differs
IGNORED_ROWS = ("Laufzeitpunkt (UTC)",)


# ---------------------------------------------------------------------------------------------- verify

# Fields that legitimately differ between the recorded and the recomputed manifest: when and where the run
# happened, and the output's own hash (an xlsx carries its write time; the recorded hash is checked against
# the file on disk instead). `[]` stands for every element of a list.
UNCOMPARED_FIELDS = ("started_utc", "working_directory", "input.absolute", "rules[].absolute", "bases_from.absolute",
                     "rates_from.absolute",
                     "output.path", "output.sha256", "tool.python")
# Versions: another allocation or durable_rules version is a difference (the run was not reproduced with
# the tools it names); another Python version is a note (money is integer and Fraction arithmetic).
NOTED_FIELDS = ("tool.python",)

_SHA = "sha256"
_FILE_ENTRY = {"path": str, "absolute": str, "sha256": _SHA}
_TOTALS = "totals"
# The manifest's shape: key -> type, nested dict, [element shape] for a non-empty list, or a marker.
MANIFEST_SHAPE: dict = {
    "format": str,
    "tool": {"allocation": str, "durable_rules": str, "python": str},
    "started_utc": str,
    "parameters": {"district": str, "year": int, "rounding": str, "rate_decimals": int, "hit_policy": str},
    "input": _FILE_ENTRY,
    "rules": [{**_FILE_ENTRY, "district": str, "valid_from": int, "valid_to": int}],
    "output": {"path": str, "file": str, "sha256": _SHA},
    "totals_cents": _TOTALS,
    "total_cents": int,
}
# working_directory: absent in a run that records file names only (the web page, `record_paths="names"`)
OPTIONAL_SHAPE: dict = {"working_directory": str, "bases_from": _FILE_ENTRY, "rates_from": _FILE_ENTRY}
_TYPE_NAMES = {str: "Text", int: "ganze Zahl", bool: "true/false", dict: "Objekt {…}", list: "Liste […]",
               _SHA: "SHA-256 (64 Hexadezimalziffern)", _TOTALS: "Objekt AGS → Summen in Cent"}


@dataclass(frozen=True, slots=True)
class CellDifference:
    """A cell (or a sheet's layout) of the recorded output that the replay does not reproduce."""

    sheet: str
    cell: str
    expected: object
    found: object
    aspect: str = "Wert"  # "Wert", "Zahlenformat" or "Layout"

    def __str__(self) -> str:
        what = "" if self.aspect == "Wert" else f" ({self.aspect})"
        return f"{self.sheet}!{self.cell}{what}: erwartet {self.expected!r}, gefunden {self.found!r}"


@dataclass(frozen=True, slots=True)
class FieldDifference:
    """A manifest field whose recorded value the recomputed run does not give."""

    key: str  # key path, e.g. totals_cents.05170044.total
    recorded: object
    recomputed: object

    def __str__(self) -> str:
        return f"Manifest {self.key}: nachgerechnet {self.recomputed!r}, im Manifest {self.recorded!r}"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    manifest: Path
    file_problems: tuple[str, ...] = ()
    differences: tuple[CellDifference, ...] = ()
    replay_error: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    problems: tuple[Problem, ...] = ()  # the manifest itself is malformed (located: file, key path)
    field_differences: tuple[FieldDifference, ...] = ()

    @property
    def identical(self) -> bool:
        return not (self.file_problems or self.differences or self.replay_error is not None or self.problems
                    or self.field_differences)

    def text(self) -> str:
        lines = [f"Manifest: {self.manifest}"]
        lines += [f"  {problem}" for problem in self.problems]
        lines += [f"  {note}" for note in self.notes]
        lines += [f"  Geändert: {problem}" for problem in self.file_problems]
        if self.replay_error:
            lines.append(f"  Nachrechnen nicht möglich: {self.replay_error}")
        lines += [f"  Abweichung {difference}" for difference in self.field_differences]
        lines += [f"  Abweichung {difference}" for difference in self.differences]
        if self.identical:
            lines.append("identisch: Eingabe und Regeln unverändert, Nachrechnung ergibt dieselben Zellen, Formate, "
                         "Blattlayouts und Manifest-Angaben (ohne Laufzeitpunkt).")
        elif self.problems:
            lines.append(f"NICHT geprüft: das Manifest ist fehlerhaft ({len(self.problems)} Problem(e)).")
        else:
            lines.append(f"NICHT identisch: {len(self.file_problems)} geänderte Datei(en), "
                         f"{len(self.field_differences)} abweichende Manifest-Angabe(n), "
                         f"{len(self.differences)} abweichende Zelle(n).")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"status": "identical" if self.identical else "malformed" if self.problems else "different",
                "manifest": str(self.manifest), "problems": [p.as_dict() for p in self.problems],
                "changed_files": list(self.file_problems), "replay_error": self.replay_error, "notes": list(self.notes),
                "manifest_differences": [{"key": d.key, "recorded": _jsonable(d.recorded),
                                          "recomputed": _jsonable(d.recomputed)} for d in self.field_differences],
                "differences": [{"sheet": d.sheet, "cell": d.cell, "aspect": d.aspect, "expected": _jsonable(d.expected),
                                 "found": _jsonable(d.found)} for d in self.differences]}


def _jsonable(value: object) -> object:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _locate(target: str | Path) -> Path:
    target = Path(target)
    return target if target.name.endswith(MANIFEST_SUFFIX) else manifest_path(target)


# ------------------------------------------------------------------------------------ manifest shape


def _manifest_problem(path: Path, code: str, message: str, found: str, expected: str, hint: str) -> Problem:
    return Problem(code, Location(str(path)), message, found=found, expected=expected, hint=hint)


def load_manifest(path: Path) -> tuple[dict | None, list[Problem]]:
    """The manifest as a dict, or the problems that make it unusable (each naming the key path)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        found = getattr(error, "strerror", None) or str(error)
        return None, [_manifest_problem(path, "manifest-unreadable", "Das Manifest lässt sich nicht lesen", found,
                                        "eine UTF-8-Textdatei OUTPUT.xlsx.manifest.json",
                                        "den Pfad prüfen; das Manifest liegt neben der Ergebnis-Arbeitsmappe")]
    try:
        manifest = json.loads(text)
    except ValueError as error:
        where = Location(str(path), line=getattr(error, "lineno", None), col=getattr(error, "colno", None))
        return None, [Problem("manifest-not-json", where, "Das Manifest ist kein gültiges JSON (abgeschnitten oder "
                              "von Hand bearbeitet?)", found=getattr(error, "msg", str(error)),
                              expected="das von `allocation run` geschriebene JSON",
                              hint="das Manifest aus der Sicherung wiederherstellen; ein Manifest wird nie von Hand "
                                   "bearbeitet")]
    problems: list[Problem] = []
    if not isinstance(manifest, dict):
        problems.append(_shape_problem(path, "", manifest, dict))
    else:
        _check_shape(path, manifest, MANIFEST_SHAPE, "", problems, required=True)
        _check_shape(path, manifest, OPTIONAL_SHAPE, "", problems, required=False)
        if not problems and manifest["format"] != FORMAT:
            problems.append(_manifest_problem(path, "manifest-bad-value", 'Manifest: Schlüssel "format" nennt ein '
                                              "unbekanntes Format", repr(manifest["format"]), FORMAT,
                                              "das Manifest mit der Version von allocation prüfen, die es geschrieben hat"))
    return (manifest if not problems else None), problems


def _shape_problem(path: Path, key: str, value: object, expected: object) -> Problem:
    return _manifest_problem(path, "manifest-bad-type", f'Manifest: Schlüssel "{key or "(oberste Ebene)"}" hat den '
                             "falschen Typ", f"{value!r}"[:80], _type_name(expected),
                             "das Manifest aus der Sicherung wiederherstellen; ein Manifest wird nie von Hand bearbeitet")


def _type_name(expected: object) -> str:
    if isinstance(expected, (dict, list)):
        return _TYPE_NAMES[type(expected)]
    return _TYPE_NAMES.get(expected, str(expected))


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _check_shape(path: Path, node: dict, shape: dict, prefix: str, problems: list[Problem], required: bool) -> None:
    for key, expected in shape.items():
        where = _join(prefix, key)
        if key not in node:
            if required:
                problems.append(_manifest_problem(path, "manifest-missing-key", f'Manifest: Schlüssel "{where}" fehlt',
                                                  "kein Eintrag", f'"{where}" ({_type_name(expected)})',
                                                  "das Manifest aus der Sicherung wiederherstellen; ein Manifest wird "
                                                  "nie von Hand bearbeitet"))
            continue
        _check_value(path, node[key], expected, where, problems)


def _check_value(path: Path, value: object, expected: object, where: str, problems: list[Problem]) -> None:
    if isinstance(expected, dict):
        if isinstance(value, dict):
            _check_shape(path, value, expected, where, problems, required=True)
        else:
            problems.append(_shape_problem(path, where, value, dict))
    elif isinstance(expected, list):
        if isinstance(value, list) and value:
            for index, element in enumerate(value):
                _check_value(path, element, expected[0], f"{where}[{index}]", problems)
        else:
            problems.append(_shape_problem(path, where, value, list))
    elif expected == _SHA:
        if not (isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)):
            problems.append(_shape_problem(path, where, value, _SHA))
    elif expected == _TOTALS:
        if not isinstance(value, dict):
            problems.append(_shape_problem(path, where, value, _TOTALS))
            return
        shape = {"name": str, **{route: int for route in ROUTES}, "total": int}
        for ags, totals in value.items():
            _check_value(path, totals, shape, _join(where, ags), problems)
    elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        problems.append(_shape_problem(path, where, value, expected))


# --------------------------------------------------------------------------------- manifest fields


def _flatten(node: object, prefix: str = "") -> dict[str, object]:
    """Key path -> leaf value; list elements as key[0], key[1], ..."""
    if isinstance(node, dict):
        flat: dict[str, object] = {}
        for key, value in node.items():
            flat.update(_flatten(value, _join(prefix, str(key))))
        return flat
    if isinstance(node, list):
        flat = {}
        for index, value in enumerate(node):
            flat.update(_flatten(value, f"{prefix}[{index}]"))
        return flat
    return {prefix: node}


def _generic(key: str) -> str:
    """rules[0].absolute -> rules[].absolute"""
    import re

    return re.sub(r"\[\d+\]", "[]", key)


_MISSING = object()  # a key that one of the two manifests lacks


def compare_manifests(recorded: dict, recomputed: dict) -> tuple[list[FieldDifference], list[str]]:
    """Field by field, except UNCOMPARED_FIELDS; returns the differences and notes (NOTED_FIELDS)."""
    want, have = _flatten(recorded), _flatten(recomputed)
    differences, notes = [], []
    for key in list(want) + [k for k in have if k not in want]:
        if want.get(key, _MISSING) == have.get(key, _MISSING):
            continue
        generic = _generic(key)
        if generic in NOTED_FIELDS:
            notes.append(f"Hinweis: nachgerechnet mit {key} {have.get(key)}, der Lauf nennt {want.get(key)}")
        elif generic not in UNCOMPARED_FIELDS:
            differences.append(FieldDifference(key, want.get(key, "(fehlt)"), have.get(key, "(fehlt)")))
    return differences, notes

def existing_file(entry: dict, base: Path) -> Path | None:
    for candidate in (Path(entry["absolute"]), base / entry["path"]):
        if candidate.exists():
            return candidate
    # A run of the inbox (DIR/ergebnis/<name>/) read a private copy of the input, which is gone; the input
    # itself lies in DIR/archiv/ under a name that carries its SHA-256.
    archive = base.parent.parent / "archiv"
    if archive.is_dir():
        return next(iter(sorted(archive.glob(f"*_{entry['sha256']}_*"))), None)
    return None


# ------------------------------------------------------------------------------------ cells and layout


def _cells(path: Path) -> dict[str, dict[str, tuple[object, str]]]:
    """Sheet -> cell -> (value, number format), streamed (read-only); empty cells are left out."""
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=False)
    try:
        sheets: dict[str, dict[str, tuple[object, str]]] = {}
        for sheet in workbook.worksheets:
            cells: dict[str, tuple[object, str]] = {}
            for row in sheet.iter_rows():
                ignored = bool(row) and row[0].value in IGNORED_ROWS and sheet.title == "Protokoll"
                for cell in row:
                    if cell.value is None or (ignored and getattr(cell, "column", 1) > 1):
                        continue
                    cells[cell.coordinate] = (cell.value, cell.number_format)
            sheets[sheet.title] = cells
        return sheets
    finally:
        workbook.close()


_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PACKAGE_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"


def _sheet_parts(archive) -> list[tuple[str, str, str]]:
    """(sheet name, zip part, visibility) in workbook order; visibility is the sheet's `state` (visible,
    hidden or veryHidden)."""
    from xml.etree import ElementTree

    rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    targets = {rel.get("Id"): rel.get("Target", "") for rel in rels.iter(f"{_PACKAGE_REL}Relationship")}
    book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    parts = []
    for sheet in book.iter(f"{_MAIN}sheet"):
        target = targets.get(sheet.get(f"{_REL}id"), "")
        parts.append((sheet.get("name", ""), target.lstrip("/") if target.startswith("/") else f"xl/{target}",
                      sheet.get("state", "visible")))
    return parts


def _hidden(element) -> bool:
    return element.get("hidden", "0").strip().lower() in ("1", "true")


def _layout_of(stream) -> dict[str, object]:
    """Column widths, hidden columns and rows, frozen pane, auto-filter, tab colour and print header of one
    sheet's XML, streamed (rows are dropped as they pass, so a long sheet costs no memory). A hidden row or
    column is a key of its own, so the layout of a sheet that hides nothing is unchanged."""
    from xml.etree import ElementTree

    layout: dict[str, object] = {"Fixierung": None, "Autofilter": None, "Registerfarbe": None, "Kopfzeile": None}
    row_number = 0
    for _, element in ElementTree.iterparse(stream, events=("end",)):
        tag = element.tag.removeprefix(_MAIN)
        if tag == "row":
            row_number = int(element.get("r", row_number + 1))  # `r` may be left out: then the next row
            if _hidden(element):
                layout[f"Zeile {row_number} ausgeblendet"] = True
            element.clear()
        elif tag == "col":
            width = round(float(element.get("width", "0")), 4)
            for column in range(int(element.get("min", "0")), int(element.get("max", "0")) + 1):
                if column <= 16384:
                    layout[f"Spaltenbreite {column_letter(column)}"] = width
                    if _hidden(element):
                        layout[f"Spalte {column_letter(column)} ausgeblendet"] = True
        elif tag == "pane":
            layout["Fixierung"] = (float(element.get("xSplit", "0")), float(element.get("ySplit", "0")),
                                   element.get("state"))
        elif tag == "autoFilter":
            layout["Autofilter"] = element.get("ref")
        elif tag == "tabColor":
            layout["Registerfarbe"] = element.get("rgb")
        elif tag == "oddHeader":
            layout["Kopfzeile"] = element.text
    return layout


def _layout(path: Path) -> dict[str, dict[str, object]]:
    """Sheet -> layout, in workbook order (the key order is the sheet order)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        result = {}
        for name, part, state in _sheet_parts(archive):
            with archive.open(part) as stream:
                result[name] = {"Sichtbarkeit": state, **_layout_of(stream)}
        return result


def compare_workbooks(expected: Path, found: Path) -> list[CellDifference]:
    """Every cell whose value or number format differs, every difference in sheet order and layout (except
    the ignored Protokoll rows). A recorded output that cannot be read is one difference, not a traceback."""
    from ..workbook.safety import DAMAGED_WORKBOOK

    want = _cells(expected)
    try:
        have = _cells(found)
        layout_b = _layout(found)
    except DAMAGED_WORKBOOK as error:
        return [CellDifference("(Arbeitsmappe)", "(Datei)", "lesbare Arbeitsmappe",
                               f"nicht lesbar: {type(error).__name__}: {error}"[:200], "Layout")]
    differences: list[CellDifference] = []
    if [s for s in want if s in have] != [s for s in have if s in want]:
        differences.append(CellDifference("(Arbeitsmappe)", "(Blattreihenfolge)", ", ".join(want), ", ".join(have),
                                          "Layout"))
    for sheet in list(want) + [s for s in have if s not in want]:
        if sheet not in have or sheet not in want:
            differences.append(CellDifference(sheet, "(Blatt)", "vorhanden" if sheet in want else "fehlt",
                                              "vorhanden" if sheet in have else "fehlt"))
            continue
        a, b = want[sheet], have[sheet]
        for coordinate in sorted(set(a) | set(b), key=_cell_order):
            (value_a, format_a), (value_b, format_b) = a.get(coordinate, (None, None)), b.get(coordinate, (None, None))
            if value_a != value_b:
                differences.append(CellDifference(sheet, coordinate, value_a, value_b))
            elif format_a != format_b:
                differences.append(CellDifference(sheet, coordinate, format_a, format_b, "Zahlenformat"))
    layout_a = _layout(expected)
    for sheet in layout_a:
        if sheet in layout_b:
            for aspect in list(layout_a[sheet]) + [k for k in layout_b[sheet] if k not in layout_a[sheet]]:
                if layout_a[sheet].get(aspect) != layout_b[sheet].get(aspect):
                    differences.append(CellDifference(sheet, f"({aspect})", layout_a[sheet].get(aspect),
                                                      layout_b[sheet].get(aspect), "Layout"))
    return differences


def _cell_order(coordinate: str) -> tuple[int, int, str]:
    from openpyxl.utils.cell import coordinate_from_string, column_index_from_string

    letters, row = coordinate_from_string(coordinate)
    return row, column_index_from_string(letters), coordinate


# ------------------------------------------------------------------------------------------ verify


def _recomputed_manifest(manifest: dict, replayed: Path, allocation: Allocation) -> dict:
    """The manifest the replayed run would write: built by `build_manifest` from the replay's allocation, with
    the recorded run mode and the other recorded extras, which the replay takes as given."""
    bases_from = manifest.get("bases_from")
    computed = ("district", "year", "rounding", "rate_decimals", "hit_policy")
    extra = {k: v for k, v in manifest["parameters"].items() if k not in computed}
    # the replayed workbook has the recorded file name; its path and hash are among UNCOMPARED_FIELDS
    rebuilt = build_manifest(allocation, manifest["input"]["path"], manifest["rules"][0]["path"], replayed,
                             _dt.datetime.now(_dt.timezone.utc), extra)
    rates_from = manifest.get("rates_from")
    return rebuilt | ({"bases_from": bases_from} if bases_from else {}) | ({"rates_from": rates_from} if rates_from else {})


def _file_problems(manifest: dict, base: Path, output: Path) -> list[str]:
    problems: list[str] = []
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
        found = existing_file(entry, base)
        if found is None:
            problems.append(f"{entry['path']}: {kind} nicht gefunden (auch nicht als {entry['absolute']})")
        elif sha256_file(found) != entry["sha256"]:
            problems.append(f"{found}: SHA-256 der {kind} weicht ab (erwartet {entry['sha256']}, gefunden "
                            f"{sha256_file(found)}): die Datei wurde nach dem Lauf verändert")
    return problems


def verify(target: str | Path) -> VerifyResult:
    """Check the manifest and the hashes, replay the run and compare every cell, format, layout and manifest field."""
    from ..runs.pipeline import replay
    from ..core.problems import ProblemsError

    path = _locate(target)
    manifest, malformed = load_manifest(path)
    if manifest is None:
        return VerifyResult(path, problems=tuple(malformed))
    base = path.parent
    output = base / manifest["output"]["file"]
    problems = _file_problems(manifest, base, output)
    tool = manifest["tool"]
    notes = [f"Lauf mit allocation {tool['allocation']}, durable_rules {tool['durable_rules']}, "
             f"Python {tool['python']} am {manifest['started_utc']} UTC"]
    if any("nicht gefunden" in p for p in problems) or not output.exists():
        return VerifyResult(path, tuple(problems), notes=tuple(notes))
    directory = Path(manifest.get("working_directory", base))  # a names-only run: paths are relative to the manifest
    if not directory.is_dir():
        directory = base
    differences: list[CellDifference] = []
    field_differences: list[FieldDifference] = []
    replay_error = None
    with tempfile.TemporaryDirectory(prefix="allocation-verify-") as temp:
        replayed = Path(temp) / manifest["output"]["file"]
        recorded_input = Path(manifest["input"]["path"])
        input_location = None
        found_input = existing_file(manifest["input"], base)
        if found_input is not None and found_input.name != recorded_input.name:
            # an archived input: replay it under its recorded file name, which the workbook shows
            input_location = Path(temp) / "eingabe" / recorded_input.name
            input_location.parent.mkdir()
            shutil.copyfile(found_input, input_location)
        try:
            with contextlib.chdir(directory):
                allocation = replay(manifest, replayed, input_location)
                recomputed = _recomputed_manifest(manifest, replayed, allocation)
        except ProblemsError as error:
            replay_error = "; ".join(str(p) for p in error.problems[:5])
        else:
            field_differences, version_notes = compare_manifests(manifest, recomputed)
            notes += version_notes
            differences = compare_workbooks(replayed, output)
    return VerifyResult(path, tuple(problems), tuple(differences), replay_error, tuple(notes),
                        field_differences=tuple(field_differences))
