"""One way back in: every file the product wrote earlier is read here, and checked like any input.

What comes back: run manifests (`<output>.manifest.json`), the register of final runs (one JSON-lines file per
district and year plus the installation's chain `_kette.jsonl`), the records of a year folder (`jahr.json`,
`stufen.jsonl`) and earlier output workbooks (`--previous`, `compare`, `trueup`, `explain`, `notices`,
`benehmen`). Such files travel: auditors check them after others have handed them over, so none is trusted
because we wrote it.

- **Bounds.** Only regular files are read (`filenames.read_regular`: a FIFO or a device is refused before a byte
  is read, nothing hangs), each kind with a size limit, JSON with a nesting limit, duplicate keys, NaN and text that
  is no Unicode (a lone surrogate escape such as `\\ud800`) refused.
  Breaking a limit is a located problem, never a `RecursionError` or a traceback.
- **Hashes.** An earlier output must match its own manifest (SHA-256 of the bytes read, which are the bytes the
  command then parses: no second read that a swap could change).
- **District and year.** An earlier output must be of the same district and in the year relation its command
  needs (`Relation`), and its manifest must name the district and year the workbook's own Protokoll shows.
- **Paths are never trusted.** A manifest's `output.file` must be the plain name of the workbook beside it; the
  register's and the year folder's file names must be plain names of their own folders. Nothing read here is
  ever used as a place to write.
- **The register** is read whole and checked whole (`read_register`): every district file's hash chain, and, once
  it exists, the installation's chain `_kette.jsonl`, which holds the hash of every district line in the order
  written. So a line cut short, edited, reordered or deleted, an emptied file and a FIFO or device in the folder
  are `register-corrupt`, naming the file and line. What no file register can detect (a rewrite of the whole
  chain, consistently) is anchored by the chain head every final run prints (README, "Security and limits").

Problems keep the codes users know (`manifest-*`, `register-corrupt`, `year-chain-broken`, `compare-unreadable`,
...); a command passes its own codes where it has them.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..core.filenames import FileRefused, file_kind, read_regular
from ..core.model import ROUTES, normalise_district, same_district
from ..core.problems import ExitCode, InputError, Location, OutputError, Problem, ProblemsError
from ..workbook.guard import FinalOutput
from .manifest import FORMAT, FORMATS, MANIFEST_SUFFIX, SEAL, STARTED_FORMAT, manifest_path, seal_of

__all__ = [
    "MAX_MANIFEST_BYTES", "MAX_JSON_DEPTH", "MAX_LINES_BYTES", "MAX_LINE_BYTES", "MAX_RECORD_BYTES", "MAX_OUTPUT_BYTES",
    "GENESIS", "INDEX_FILE", "LOCK_FILE", "REGISTER_FORMAT", "JsonRefused", "parse_json", "line_hash",
    "load_manifest", "flatten", "MANIFEST_SHAPE", "OPTIONAL_SHAPE", "plain_name",
    "EarlierChanged", "EarlierRefused", "Earlier", "Relation", "read_output", "output_bytes", "check_relation",
    "RegisterError", "RegisterCorrupt", "RegisterBusy", "RegisterUnusable", "RegisterLine", "RegisterView", "read_register",
    "JsonLine", "ChainBroken", "read_json_lines", "read_json_record", "read_json_object", "final_manifest_beside",
]

# ------------------------------------------------------------------------------------------------- bounds

MAX_MANIFEST_BYTES = 16 << 20  # a manifest: ~250 bytes per municipality; a national district of 2,000: 0.5 MB
MAX_JSON_DEPTH = 32  # a manifest nests 4 deep, a register or stage line 3; the json module recurses per level
MAX_LINES_BYTES = 16 << 20  # a register file or stufen.jsonl: ~1 KB per line
MAX_LINE_BYTES = 1 << 20  # one line of it
MAX_RECORD_BYTES = 64 << 10  # jahr.json: a few lines
MAX_OUTPUT_BYTES = 256 << 20  # an output workbook: the largest run (250,000 lines) writes about 35 MB
GENESIS = "0" * 64

INDEX_FILE = "_kette.jsonl"  # the installation's chain over every district file (never a district's slug: `_`)
LOCK_FILE = ".sperre"  # final runs hold an exclusive flock on it while they write and register
REGISTER_FORMAT = "allocation-register/2"  # lines written since the chain exists; older lines have no format
_SHA = re.compile(r"[0-9a-f]{64}")


def line_hash(line: str) -> str:
    """The SHA-256 of one JSON line as written (without its newline): the link of every hash chain."""
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def plain_name(value: object) -> bool:
    """A file name of one folder: no separator, not `.`/`..`, no NUL, at most 255 bytes. What is read back
    names files only so (never a path), so it cannot point outside its folder."""
    return (isinstance(value, str) and value not in ("", ".", "..") and "/" not in value and "\\" not in value
            and "\x00" not in value and len(value.encode("utf-8", "surrogatepass")) <= 255)


# ---------------------------------------------------------------------------------------------------- JSON


class JsonRefused(Exception):
    """JSON that is not read: not UTF-8 (or a lone surrogate escape), nested deeper than the limit, a syntax error,
    a duplicate key or NaN."""

    def __init__(self, message: str, found: str, line: int | None = None, col: int | None = None,
                 kind: str = "syntax") -> None:
        super().__init__(message)
        self.message, self.found, self.line, self.col = message, found, line, col
        self.kind = kind  # "encoding" (also a lone surrogate), "depth" or "syntax" (also a duplicate key or NaN)


# A string (escapes included) or a bracket: the depth scan counts brackets outside strings, in C-speed regex steps
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = next(key for key in keys if keys.count(key) > 1)
        raise JsonRefused("Ein Schlüssel steht zweimal im selben Objekt", repr(twice)[:80])
    return dict(pairs)


def _no_constant(name: str) -> object:
    raise JsonRefused("NaN und Infinity sind in JSON nicht erlaubt", name)


def parse_json(data: bytes, max_depth: int = MAX_JSON_DEPTH) -> object:
    """`data` as JSON: strict UTF-8, at most `max_depth` nested arrays/objects (checked before parsing, so a deep
    file never reaches the recursive parser), no duplicate key, no NaN/Infinity, no lone surrogate (`"\\ud800"`
    is valid JSON but no character: printing it or using it as a path fails). Raises JsonRefused."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise JsonRefused("Die Datei ist nicht UTF-8-kodiert", repr(data[error.start:error.start + 4]), line,
                          kind="encoding") from None
    depth = 0
    for token in _TOKENS.finditer(text):
        mark = token.group()
        if mark in "[{":
            depth += 1
            if depth > max_depth:
                line, col = _position(text, token.start())
                raise JsonRefused(f"Die Daten sind tiefer als {max_depth} Ebenen verschachtelt",
                                  f"mehr als {max_depth} Ebenen", line, col, kind="depth")
        elif mark in "]}":
            depth -= 1
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except JsonRefused as refused:
        raise refused from None
    except ValueError as error:
        raise JsonRefused("Kein gültiges JSON (abgeschnitten oder von Hand bearbeitet?)",
                          getattr(error, "msg", str(error)), getattr(error, "lineno", None),
                          getattr(error, "colno", None)) from None
    if _SURROGATE_ESCAPE.search(text):  # only then can a text hold one (a pair decodes to one character)
        lone = _lone_surrogate(value)
        if lone is not None:
            where, shown = lone
            raise JsonRefused(f"Der Text bei {where or '(oberste Ebene)'} enthält ein einzelnes Surrogat (\\ud800 "
                              "bis \\udfff): kein Unicode-Zeichen, also nicht als UTF-8 darstellbar", shown,
                              kind="encoding")
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(value: object) -> tuple[str, str] | None:
    """(key path, the text) of the first key or text of `value` holding a lone surrogate: JSON may write one as an
    escape (`"\\ud800"`), but it names no character, so it cannot be printed, written or used as a file name."""
    pending: list[tuple[str, object]] = [("", value)]
    while pending:
        where, node = pending.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return where, repr(node)[:80]
        elif isinstance(node, dict):
            for key, item in node.items():
                if _SURROGATE.search(key):
                    return where, repr(key)[:80]
                pending.append((f"{where}.{key}" if where else key, item))
        elif isinstance(node, list):
            pending.extend((f"{where}[{index}]", item) for index, item in enumerate(node))
    return None


def read_json_record(path: Path, limit: int = MAX_RECORD_BYTES, *, follow: bool = False) -> tuple[object, bytes]:
    """A small JSON file the product wrote (e.g. `jahr.json`): its value and its bytes. Raises FileRefused,
    OSError or JsonRefused."""
    data = read_regular(path, limit, follow=follow)
    return parse_json(data), data


def read_json_object(path: Path, limit: int = MAX_RECORD_BYTES) -> dict | None:
    """A small JSON object the product keeps for itself (a session, a web job, an inbox result's `status.json`),
    read like `read_json_record`; None where there is none that can be read (missing, no regular file, a link,
    beyond its bound, not a JSON object): such a store treats it as absent, never follows or trusts it."""
    try:
        record, _ = read_json_record(path, limit)
    except (OSError, JsonRefused):
        return None
    return record if isinstance(record, dict) else None


@dataclass(frozen=True, slots=True)
class JsonLine:
    """One line of a JSON-lines file the product appends to: its number, its text, its hash and its object."""

    number: int
    text: str
    sha256: str
    entry: dict


def read_json_lines(path: Path, problem: Callable[[Location, str, str, str], Problem],
                    expected_first: str = GENESIS) -> list[JsonLine]:
    """Every line of an append-only JSON-lines file, checked: a regular file (no link: it lies in a folder the
    product keeps) within MAX_LINES_BYTES, not empty, every line ended by a newline (else it was cut short), at
    most MAX_LINE_BYTES, a JSON object, and chained: each line's `prev_sha256` is the hash of the line before
    (`expected_first` for the first). `problem(where, message, found, expected)` builds the caller's problem
    (`register-corrupt`, `year-chain-broken`); the first one is raised as a ProblemsError by the caller.
    Returns [] if the file does not exist."""
    def stop(where: Location, message: str, found: str, expected: str) -> ChainBroken:
        return ChainBroken(problem(where, message, found, expected))

    try:
        data = read_regular(path, MAX_LINES_BYTES, follow=False)
    except FileNotFoundError:
        return []
    except FileRefused as refused:
        raise stop(Location(str(path)), f"Die Datei lässt sich nicht als Kette lesen: {refused.strerror}",
                   refused.found, f"eine gewöhnliche Datei von höchstens {_n(MAX_LINES_BYTES)} Bytes") from None
    except OSError as error:
        raise stop(Location(str(path)), "Die Datei lässt sich nicht lesen", error.strerror or str(error),
                   "eine lesbare Datei") from None
    if not data:
        raise stop(Location(str(path)), "Die Datei ist leer (geleert?)", "0 Bytes",
                   "mindestens eine Zeile: eine angelegte Kette ist nie leer")
    if not data.endswith(b"\n"):
        raise stop(Location(str(path), line=data.count(b"\n") + 1), "Die letzte Zeile ist abgeschnitten (kein "
                   "Zeilenende)", repr(data[-60:].decode("utf-8", "replace")), "jede Zeile endet mit einem Zeilenumbruch")
    lines: list[JsonLine] = []
    previous = expected_first
    for number, raw in enumerate(data[:-1].split(b"\n"), start=1):
        where = Location(str(path), line=number)
        if len(raw) > MAX_LINE_BYTES:
            raise stop(where, "Die Zeile ist zu lang", f"{_n(len(raw))} Bytes", f"höchstens {_n(MAX_LINE_BYTES)} Bytes")
        try:
            entry = parse_json(raw)
        except JsonRefused as refused:
            raise stop(where, f"Die Zeile ist kein gültiger Eintrag: {refused.message}", refused.found,
                       "ein JSON-Objekt je Zeile") from None
        if not isinstance(entry, dict):
            raise stop(where, "Die Zeile ist kein JSON-Objekt", repr(entry)[:80], "ein JSON-Objekt je Zeile")
        text = raw.decode("utf-8")
        if entry.get("prev_sha256") != previous:
            raise stop(where, "Die Kette ist unterbrochen: die Zeile passt nicht zur Zeile davor (bearbeitet, "
                       "gelöscht oder umgestellt)", str(entry.get("prev_sha256"))[:80], f"prev_sha256 {previous}")
        previous = line_hash(text)
        lines.append(JsonLine(number, text, previous, entry))
    return lines


class ChainBroken(Exception):
    """A chain (register file, stufen.jsonl) cannot be read: carries the located problem to the caller, who raises
    its own error type."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _n(number: int) -> str:
    return f"{number:,}".replace(",", ".")


# ------------------------------------------------------------------------------------------------ manifests

_SHA_TYPE = "sha256"
_FILE_ENTRY = {"path": str, "absolute": str, "sha256": _SHA_TYPE}
_TOTALS = "totals"
# The manifest's shape: key -> type, nested dict, [element shape] for a non-empty list, or a marker.
MANIFEST_SHAPE: dict = {
    "format": str,
    "tool": {"allocation": str, "durable_rules": str, "python": str},
    "started_utc": str,
    "parameters": {"district": str, "year": int, "rounding": str, "rate_decimals": int, "hit_policy": str},
    "input": _FILE_ENTRY,
    "rules": [{**_FILE_ENTRY, "district": str, "valid_from": int, "valid_to": int}],
    "output": {"path": str, "file": str, "sha256": _SHA_TYPE},
    "totals_cents": _TOTALS,
    "total_cents": int,
}
# working_directory: absent in a run that records file names only (the web page, `record_paths="names"`);
# register: a final run's entry in the register (since the installation's chain exists)
OPTIONAL_SHAPE: dict = {"working_directory": str, "bases_from": _FILE_ENTRY, "rates_from": _FILE_ENTRY,
                        "upward": _FILE_ENTRY, "payable_cents": int, SEAL: _SHA_TYPE,
                        "register": {"file": str, "seq": int, "sha256": _SHA_TYPE, "prev_sha256": _SHA_TYPE,
                                     "chain": int, "head": _SHA_TYPE}}
_TYPE_NAMES = {str: "Text", int: "ganze Zahl", bool: "true/false", dict: "Objekt {…}", list: "Liste […]",
               _SHA_TYPE: "SHA-256 (64 Hexadezimalziffern)", _TOTALS: "Objekt AGS → Summen in Cent"}
_RESTORE = "das Manifest aus der Sicherung wiederherstellen; ein Manifest wird nie von Hand bearbeitet"


def _manifest_problem(path: Path, code: str, message: str, found: str, expected: str, hint: str = _RESTORE,
                      line: int | None = None, col: int | None = None) -> Problem:
    return Problem(code, Location(str(path), line=line, col=col), message, found=found, expected=expected, hint=hint)


def load_manifest(path: str | Path) -> tuple[dict | None, list[Problem]]:
    """The manifest as a dict, or the problems that make it unusable (each naming the key path or line:column).

    Beyond its shape: a regular file within MAX_MANIFEST_BYTES and MAX_JSON_DEPTH; `output.file` the plain name
    of the workbook the manifest lies beside (`X.xlsx` for `X.xlsx.manifest.json`: a path there is never
    followed); `started_utc` a time as the run writes it; the year a four-digit year; every recorded path free of
    NUL characters; a `register` entry of a plain `.jsonl` name."""
    path = Path(path)
    try:
        data = read_regular(path, MAX_MANIFEST_BYTES)
    except FileRefused as refused:
        code = "manifest-too-large" if refused.strerror == "die Datei ist zu groß" else "manifest-unreadable"
        return None, [_manifest_problem(path, code, f"Das Manifest lässt sich nicht lesen: {refused.strerror}",
                                        refused.found, "eine gewöhnliche UTF-8-Textdatei OUTPUT.xlsx.manifest.json von "
                                        f"höchstens {_n(MAX_MANIFEST_BYTES)} Bytes",
                                        "den Pfad prüfen; das Manifest liegt neben der Ergebnis-Arbeitsmappe")]
    except OSError as error:
        return None, [_manifest_problem(path, "manifest-unreadable", "Das Manifest lässt sich nicht lesen",
                                        error.strerror or str(error), "eine UTF-8-Textdatei OUTPUT.xlsx.manifest.json",
                                        "den Pfad prüfen; das Manifest liegt neben der Ergebnis-Arbeitsmappe")]
    try:
        manifest = parse_json(data)
    except JsonRefused as refused:
        code = {"depth": "manifest-too-large", "encoding": "manifest-unreadable"}.get(refused.kind, "manifest-not-json")
        return None, [_manifest_problem(path, code, f"Das Manifest ist kein gültiges JSON: {refused.message}",
                                        refused.found, "das von `allocation run` geschriebene JSON",
                                        line=refused.line, col=refused.col)]
    problems: list[Problem] = []
    if not isinstance(manifest, dict):
        problems.append(_shape_problem(path, "", manifest, dict))
    else:
        _check_shape(path, manifest, MANIFEST_SHAPE, "", problems, required=True)
        _check_shape(path, manifest, OPTIONAL_SHAPE, "", problems, required=False)
        if not problems:
            problems += _value_problems(path, manifest)
    return (manifest if not problems else None), problems


def _value_problems(path: Path, manifest: dict) -> list[Problem]:
    """What the shape allows but a run never writes, and what a reader would otherwise trust."""
    problems = []

    def bad(key: str, found: object, expected: str) -> None:
        problems.append(_manifest_problem(path, "manifest-bad-value", f'Manifest: Schlüssel "{key}" hat einen '
                                          "unzulässigen Wert", repr(found)[:80], expected))

    if manifest["format"] not in FORMATS:
        problems.append(_manifest_problem(path, "manifest-bad-value", 'Manifest: Schlüssel "format" nennt ein '
                                          "unbekanntes Format", repr(manifest["format"]), " oder ".join(FORMATS),
                                          "das Manifest mit der Version von allocation prüfen, die es geschrieben hat"))
    elif manifest["format"] == FORMAT and SEAL not in manifest:
        problems.append(_manifest_problem(path, "manifest-missing-key", f'Manifest: Schlüssel "{SEAL}" fehlt',
                                          "kein Eintrag", f'"{SEAL}" (SHA-256 des Manifests, {FORMAT})'))
    elif manifest["format"] != FORMAT and SEAL in manifest:
        bad("format", manifest["format"], f"{FORMAT} (ein versiegeltes Manifest)")
    elif SEAL in manifest and manifest[SEAL] != seal_of(manifest):
        problems.append(_manifest_problem(path, "manifest-changed", "Das Manifest wurde nach dem Lauf verändert: sein "
                                          "Siegel passt nicht zu seinem Inhalt", f"Siegel {manifest[SEAL]}",
                                          f"Siegel {seal_of(manifest)} (SHA-256 des Inhalts)"))
    beside = path.name[: -len(MANIFEST_SUFFIX)] if path.name.endswith(MANIFEST_SUFFIX) else None
    shown = manifest["output"]["file"]
    if not plain_name(shown) or (beside is not None and shown != beside):
        bad("output.file", shown, f"der Dateiname der Arbeitsmappe neben dem Manifest ({beside or 'X.xlsx'}), "
                                  "ohne Ordner")
    try:
        _dt.datetime.strptime(manifest["started_utc"], STARTED_FORMAT)
    except ValueError:
        bad("started_utc", manifest["started_utc"], "ein Zeitpunkt wie 2022-03-15 09:30:00")
    if not 1000 <= manifest["parameters"]["year"] <= 9999:
        bad("parameters.year", manifest["parameters"]["year"], "ein Haushaltsjahr wie 2022")
    parameters = manifest["parameters"]
    mode = parameters.get("mode", "test")
    if mode not in ("test", "final"):
        bad("parameters.mode", mode, "test oder final")
    if not isinstance(parameters.get("provisional", False), bool):
        bad("parameters.provisional", parameters["provisional"], "true oder false")
    if not isinstance(parameters.get("ignore_validity", ""), str):
        bad("parameters.ignore_validity", parameters["ignore_validity"], "ein Text (die Begründung)")
    if "register" in manifest and mode != "final":
        bad("register", manifest["register"], "kein Registereintrag: nur ein Echtlauf steht im Register")
    for key, value in flatten(manifest).items():
        if isinstance(value, str) and "\x00" in value:
            bad(key, value, "ein Text ohne NUL-Zeichen")
    register = manifest.get("register")
    if register is not None and not (plain_name(register["file"]) and register["file"].endswith(".jsonl")):
        bad("register.file", register["file"], "der Name einer Registerdatei, z. B. wesel-2022.jsonl")
    return problems


def _shape_problem(path: Path, key: str, value: object, expected: object) -> Problem:
    return _manifest_problem(path, "manifest-bad-type", f'Manifest: Schlüssel "{key or "(oberste Ebene)"}" hat den '
                             "falschen Typ", f"{value!r}"[:80], _type_name(expected))


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
                                                  "kein Eintrag", f'"{where}" ({_type_name(expected)})'))
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
    elif expected == _SHA_TYPE:
        if not (isinstance(value, str) and _SHA.fullmatch(value)):
            problems.append(_shape_problem(path, where, value, _SHA_TYPE))
    elif expected == _TOTALS:
        if not isinstance(value, dict):
            problems.append(_shape_problem(path, where, value, _TOTALS))
            return
        shape = {"name": str, **{route: int for route in ROUTES}, "total": int}
        for ags, totals in value.items():
            _check_value(path, totals, shape, _join(where, ags), problems)
    elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        problems.append(_shape_problem(path, where, value, expected))


def flatten(node: object, prefix: str = "") -> dict[str, object]:
    """Key path -> leaf value; list elements as key[0], key[1], ...; an empty object or list is a leaf of its own
    (so an added `{}` or `[]` is a key like any other)."""
    if isinstance(node, (dict, list)) and not node and prefix:
        return {prefix: type(node)()}
    if isinstance(node, dict):
        flat: dict[str, object] = {}
        for key, value in node.items():
            flat.update(flatten(value, _join(prefix, str(key))))
        return flat
    if isinstance(node, list):
        flat = {}
        for index, value in enumerate(node):
            flat.update(flatten(value, f"{prefix}[{index}]"))
        return flat
    return {prefix: node}


def final_manifest_beside(output: str | Path) -> Problem | None:
    """Why no command may write `output`: the manifest beside it says the workbook is a final run's (whatever
    the register says), or a manifest lies there that cannot be read, so that nobody can tell. None if the name
    is free or holds a test run's output."""
    target = manifest_path(output)
    if not os.path.lexists(target):
        return None
    manifest, problems = load_manifest(target)
    if manifest is None:
        return Problem("output-manifest-unreadable", Location(str(output)), "Neben der Zieldatei liegt ein Manifest, "
                       "das sich nicht lesen lässt: ob die Arbeitsmappe ein Echtlauf ist, lässt sich nicht sagen",
                       found=str(problems[0]) if problems else str(target), expected="ein neuer Name oder ein "
                       "lesbares Manifest eines Probelaufs",
                       hint="einen neuen Namen bei -o wählen; Arbeitsmappe und Manifest bleiben, wie sie sind")
    if manifest["parameters"].get("mode") == "final":
        return Problem("output-is-final-run", Location(str(output)), "Die Zieldatei ist laut ihrem Manifest die "
                       f"Ergebnis-Arbeitsmappe eines Echtlaufs ({manifest['parameters']['district']} "
                       f"{manifest['parameters']['year']}, {manifest['started_utc']} UTC)", found=str(output),
                       expected="ein Name, den kein Echtlauf trägt",
                       hint="einen neuen Namen bei -o wählen; ein Echtlauf wird nie überschrieben")
    return None


# ------------------------------------------------------------------------------------------- earlier outputs


class EarlierChanged(ProblemsError):
    """An earlier output does not match its manifest, or its manifest is missing or unusable (exit 7)."""

    exit_code = ExitCode.VERIFY
    title = "Die frühere Ergebnis-Arbeitsmappe stimmt nicht mit ihrem Manifest überein"


class EarlierRefused(InputError):
    """An earlier output that cannot be read, or of another district or year than the command needs (exit 3; an
    InputError, so whoever catches those catches it, with a title that fits the file)."""

    title = "Die Ergebnis-Arbeitsmappe lässt sich dafür nicht verwenden"


@dataclass(frozen=True, slots=True)
class Relation:
    """What an earlier output must be for the command reading it: the district, and the budget year `year`
    itself (`"same"`), the one before (`"previous"`), or the same year and a run started before `started`
    (`"earlier-run"`, a change notice's previous run). `None` fields are not checked."""

    district: str | None = None
    year: int | None = None
    kind: str | None = None  # "same" | "previous" | "earlier-run"
    started: str | None = None  # the later run's started_utc, for "earlier-run"
    sha256: str | None = None  # the later run's workbook, for "earlier-run": the earlier one is another
    register: dict | None = None  # the later run's register entry, for "earlier-run": the earlier one's is before
    label: str = "die Ergebnis-Arbeitsmappe"  # how messages name the file


@dataclass(frozen=True, slots=True)
class Earlier:
    """An earlier output workbook as read and checked: its bytes (parse these, never the path again), their
    SHA-256 and the manifest it matches (None only for `output_bytes`, which checks bounds alone)."""

    path: Path
    data: bytes = field(repr=False)
    sha256: str
    manifest: dict | None

    def stream(self) -> io.BytesIO:
        return io.BytesIO(self.data)

    @property
    def district(self) -> str:
        return self.manifest["parameters"]["district"] if self.manifest else ""

    @property
    def year(self) -> int | None:
        return self.manifest["parameters"]["year"] if self.manifest else None

    @property
    def final(self) -> bool:
        return bool(self.manifest) and self.manifest["parameters"].get("mode") == "final"

    @property
    def started(self) -> str:
        return self.manifest["started_utc"] if self.manifest else ""


# Excel's rows per sheet: our own output continues Einzelnachweis on Einzelnachweis_2, ... beyond it
OUTPUT_MAX_ROWS = 1_048_576


def output_bytes(path: str | Path, unreadable_code: str) -> Earlier:
    """An output workbook's bytes within bounds: a regular file of at most MAX_OUTPUT_BYTES, a zip archive that
    passes the input safety checks (zip bombs, XML entities; Excel's row limit instead of the input's). Raises
    EarlierRefused with the command's `unreadable_code` (e.g. `compare-unreadable`). No manifest is checked: for
    readers of a workbook alone."""
    from ..workbook.safety import check_bytes

    path = Path(path)

    def unreadable(found: str) -> EarlierRefused:
        return EarlierRefused([Problem(unreadable_code, Location(str(path)),
                                       "Die Ergebnis-Arbeitsmappe lässt sich nicht lesen", found=found,
                                       expected="eine Ergebnis-Arbeitsmappe (.xlsx) von `allocation run`, eine "
                                                f"gewöhnliche Datei von höchstens {_n(MAX_OUTPUT_BYTES)} Bytes",
                                       hint="den Pfad prüfen; ist die Datei beschädigt, den Lauf wiederholen oder "
                                            "die Sicherung nehmen")])

    try:
        data = read_regular(path, MAX_OUTPUT_BYTES)
    except FileRefused as refused:
        raise unreadable(f"{refused.strerror}: {refused.found}") from None
    except OSError as error:
        raise unreadable(error.strerror or str(error)) from None
    if not data.startswith(b"PK"):
        raise unreadable("kein Zip-Archiv (eine .xlsx-Datei ist eines)")
    unsafe = check_bytes(data, path.name, structure=False, max_rows=OUTPUT_MAX_ROWS)
    if unsafe:  # "no workbook at all" is the command's unreadable code; a bound or a hostile part keeps the input
        # checks' own code (input-zip-bomb, input-xml-dtd, input-too-many-rows, ...): it says what is wrong
        raise EarlierRefused([replace(p, code=unreadable_code, location=Location(str(path)))
                              if p.code in ("input-not-xlsx", "input-empty-file") else p for p in unsafe])
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:  # a zip check_bytes could open
        names = archive.namelist()
    if "xl/workbook.xml" not in names:
        raise unreadable("ein Zip-Archiv ohne Arbeitsmappe (xl/workbook.xml fehlt)")
    if len(set(names)) != len(names):  # readers would disagree on which copy is the part: never written so
        raise unreadable("ein Teil steht zweimal im Archiv: " + ", ".join(sorted({n for n in names if names.count(n) > 1})))
    return Earlier(path, data, hashlib.sha256(data).hexdigest(), None)


def read_output(path: str | Path, unreadable_code: str, relation: Relation | None = None, *,
                changed_code: str = "output-changed", mismatch_code: str | None = None,
                missing_code: str = "output-no-manifest") -> Earlier:
    """An earlier output workbook, checked like an input (see the module): bounds (`output_bytes`), its manifest
    (`load_manifest`, beside it), the bytes' SHA-256 against the manifest, and `relation` (district and year).
    Raises EarlierRefused (exit 3: unreadable, no manifest beside it, another district or year) or EarlierChanged
    (exit 7: the bytes do not match the manifest, or the manifest is unusable). `mismatch_code` replaces the codes
    `output-other-district` and `output-wrong-year`, `missing_code` the code `output-no-manifest`, where a command
    has its own (a missing manifest given `changed_code` counts as a change, exit 7)."""
    earlier = output_bytes(path, unreadable_code)
    path = earlier.path
    beside = manifest_path(path)
    if not os.path.lexists(beside):
        label = relation.label if relation else "Die Arbeitsmappe"
        error = EarlierChanged if missing_code == changed_code else EarlierRefused
        raise error([Problem(missing_code, Location(str(path)), f"{label} hat kein Manifest: sie ist keine Ergebnis-"
                             "Arbeitsmappe von `allocation run`, wie der Lauf sie geschrieben hat, oder ihr Manifest "
                             "fehlt; ob sie unverändert ist, lässt sich nicht prüfen", found=f"kein {beside.name}",
                             expected=f"{beside.name} neben der Arbeitsmappe",
                             hint="die Ergebnis-Arbeitsmappe zusammen mit ihrem Manifest angeben, wie der Lauf sie "
                                  "geschrieben hat")])
    manifest, problems = load_manifest(beside)
    if manifest is None:
        raise EarlierChanged(problems)
    if manifest["output"]["sha256"] != earlier.sha256:
        raise EarlierChanged([Problem(changed_code, Location(str(path)), f"{relation.label if relation else 'Die Ergebnis-Arbeitsmappe'} "
                                      "stimmt nicht mit ihrem Manifest überein (nach dem Lauf verändert)",
                                      found=f"SHA-256 {earlier.sha256}",
                                      expected=f"SHA-256 {manifest['output']['sha256']} (Manifest)",
                                      hint="die unveränderte Arbeitsmappe des Laufs mit ihrem Manifest angeben")])
    earlier = Earlier(path, earlier.data, earlier.sha256, manifest)
    _agrees_with_protocol(earlier, unreadable_code, changed_code)
    if relation is not None:
        check_relation(earlier, relation, mismatch_code)
    return earlier


def _agrees_with_protocol(earlier: Earlier, unreadable_code: str, changed_code: str) -> None:
    """The district and year the relations are checked on come from the manifest; the workbook's own Protokoll
    (`Kreis`, `Haushaltsjahr`) must say the same, so that a manifest sealed again with another district or year
    (its hash fitting the workbook) does not pass for another year's or district's run."""
    from openpyxl import load_workbook

    from ..workbook.safety import DAMAGED_WORKBOOK

    found: dict[str, object] = {}
    try:
        workbook = load_workbook(earlier.stream(), read_only=True, data_only=True)
        try:
            if "Protokoll" in workbook.sheetnames:
                for row in workbook["Protokoll"].iter_rows(min_row=2, max_col=2, values_only=True):
                    if row and row[0] in ("Kreis", "Haushaltsjahr") and row[0] not in found:
                        found[row[0]] = row[1] if len(row) > 1 else None
        finally:
            workbook.close()
    except (*DAMAGED_WORKBOOK, ValueError, TypeError) as error:
        raise EarlierRefused([Problem(unreadable_code, Location(str(earlier.path), "Protokoll"),
                                      "Die Ergebnis-Arbeitsmappe lässt sich nicht lesen",
                                      found=f"{type(error).__name__}: {error}"[:200],
                                      expected="eine Ergebnis-Arbeitsmappe von `allocation run`",
                                      hint="den Lauf wiederholen oder die Sicherung nehmen")]) from None
    year = found.get("Haushaltsjahr")
    year = int(year) if isinstance(year, float) and year.is_integer() else year  # a whole number stored as a double
    if found.get("Kreis") != earlier.district or year != earlier.year:
        raise EarlierChanged([Problem(changed_code, Location(str(earlier.path), "Protokoll"),
                                      "Protokoll und Manifest der Ergebnis-Arbeitsmappe widersprechen sich (das Manifest "
                                      "wurde nach dem Lauf geändert und neu versiegelt?)",
                                      found=f"Protokoll: {found.get('Kreis')} {found.get('Haushaltsjahr')}",
                                      expected=f"{earlier.district} {earlier.year} (Manifest)",
                                      hint="die Arbeitsmappe mit dem Manifest angeben, das der Lauf geschrieben hat")])


def check_relation(earlier: Earlier, relation: Relation, mismatch_code: str | None = None) -> None:
    """EarlierRefused unless `earlier` (read by `read_output`) stands in `relation`: for a command that learns the
    district and year it needs only after reading the earlier file (e.g. from the input it then reads)."""
    problems = _relation_problems(earlier, relation, mismatch_code)
    if problems:
        raise EarlierRefused(problems)


def _earlier_run(earlier: Earlier, relation: Relation) -> bool:
    """Another workbook, started no later (times are recorded to the second), and, where both are final runs in
    the same register file, registered before."""
    if relation.sha256 is not None and earlier.sha256 == relation.sha256:
        return False
    if relation.started is not None and earlier.started > relation.started:
        return False
    mine, later = (earlier.manifest or {}).get("register"), relation.register
    return not (mine and later and mine["file"] == later["file"] and mine["seq"] >= later["seq"])


def _relation_problems(earlier: Earlier, relation: Relation, mismatch_code: str | None) -> list[Problem]:
    where = Location(str(earlier.path), "Protokoll")
    district, year = earlier.district, earlier.year
    problems = []
    if relation.district is not None and not same_district(district, relation.district):
        problems.append(Problem(mismatch_code or "output-other-district", where,
                                f"{relation.label} gehört zu einem anderen Kreis", found=district,
                                expected=relation.district, hint="die Ergebnis-Arbeitsmappe desselben Kreises angeben"))
    if relation.year is not None:
        wanted = {"previous": relation.year - 1}.get(relation.kind or "same", relation.year)
        if year != wanted:
            what = "des Vorjahres" if relation.kind == "previous" else "desselben Haushaltsjahres"
            problems.append(Problem(mismatch_code or "output-wrong-year", where,
                                    f"{relation.label} ist nicht die {what}", found=str(year), expected=str(wanted),
                                    hint=f"die Ergebnis-Arbeitsmappe {what} ({wanted}) angeben"))
        elif relation.kind == "earlier-run" and not _earlier_run(earlier, relation):
            problems.append(Problem(mismatch_code or "output-wrong-year", where,
                                    f"{relation.label} ist kein früherer Lauf", found=f"Lauf vom {earlier.started} UTC"
                                    + (" (dieselbe Arbeitsmappe)" if earlier.sha256 == relation.sha256 else ""),
                                    expected=f"ein anderer Lauf vom {relation.started} UTC oder früher",
                                    hint="den früheren Lauf desselben Jahres angeben, dessen Bescheide geändert werden"))
    return problems


# ----------------------------------------------------------------------------------------------- the register


class RegisterError(ProblemsError):
    """The register refuses a final run (exit 8)."""

    exit_code = ExitCode.REFUSED
    title = "Register der Echtläufe"


class RegisterCorrupt(RegisterError):
    """The register was changed after it was written; every final run and every check that protects files
    stops (exit 8)."""

    title = "Register der Echtläufe beschädigt"


class RegisterBusy(RegisterError):
    """The register's lock is held longer than a run waits (exit 75, like a busy inbox)."""

    exit_code = ExitCode.BUSY
    title = "Register der Echtläufe gesperrt"


class RegisterUnusable(OutputError):
    """The register's place is a file or cannot hold the register (exit 9)."""

    title = "Das Register der Echtläufe lässt sich dort nicht führen"


_RESTORE_REGISTER = ("das Register aus der Sicherung wiederherstellen und die Rechnungsprüfung informieren; es darf "
                     "nie von Hand bearbeitet werden")


def _corrupt(where: Location, message: str, found: str, expected: str) -> Problem:
    return Problem("register-corrupt", where, message, found=found, expected=expected, hint=_RESTORE_REGISTER)


@dataclass(frozen=True, slots=True)
class RegisterLine:
    """A line of a district's register file: the file, its line number (the entry's `seq`), hash and entry."""

    file: str
    number: int
    sha256: str
    entry: dict
    text: str = ""


@dataclass(frozen=True, slots=True)
class RegisterView:
    """The whole register as read and checked: each district file's lines, the installation's chain (empty in a
    register written before it existed: `legacy`) and the chain head (the hash of the chain's last line)."""

    folder: Path
    files: dict[str, tuple[RegisterLine, ...]]
    chain: tuple[JsonLine, ...]

    @property
    def legacy(self) -> bool:
        return not self.chain

    @property
    def head(self) -> str:
        return self.chain[-1].sha256 if self.chain else GENESIS

    def file_for(self, district: str, year: int) -> str | None:
        """The existing file of district and year: the first entry names the same district (`same_district`) and
        the year, so a file written under another spelling or an older slug is found too."""
        for name, lines in sorted(self.files.items()):
            first = lines[0].entry
            if first.get("year") == year and same_district(str(first.get("district", "")), district):
                return name
        return None

    def entries(self, district: str, year: int) -> list[dict]:
        name = self.file_for(district, year)
        return [line.entry for line in self.files.get(name, ())] if name else []

    def current(self, district: str, year: int) -> dict | None:
        """The final run in force: the last entry (each later one supersedes the one before)."""
        entries = self.entries(district, year)
        return entries[-1] if entries else None

    def has(self, file: str, seq: int, sha256: str) -> bool:
        lines = self.files.get(file, ())
        return 0 < seq <= len(lines) and lines[seq - 1].sha256 == sha256

    def finals(self) -> list[FinalOutput]:
        """Every final run's output (all districts and years, superseded ones too), for the overwrite guard."""
        return [FinalOutput(str(line.entry["output"]), str(line.entry.get("output_sha256", "")),
                            f"{line.entry.get('district', '')} {line.entry.get('year', '')}, Echtlauf Nr. "
                            f"{line.entry.get('seq', '?')} vom {line.entry.get('recorded_utc', '?')}")
                for name in sorted(self.files) for line in self.files[name] if line.entry.get("output")]


def _register_folder(folder: Path) -> list[os.DirEntry]:
    """The folder's entries; RegisterUnusable if the place is no folder."""
    try:
        status = os.stat(folder)
    except FileNotFoundError:
        return []
    except OSError as error:
        raise RegisterUnusable([_unusable(folder, error.strerror or str(error))]) from None
    if not stat.S_ISDIR(status.st_mode):
        raise RegisterUnusable([_unusable(folder, f"{folder} ist {file_kind(status.st_mode)}, kein Ordner")])
    try:
        with os.scandir(folder) as listing:
            return sorted(listing, key=lambda entry: entry.name)
    except OSError as error:
        raise RegisterUnusable([_unusable(folder, error.strerror or str(error))]) from None


def _unusable(folder: Path, found: str) -> Problem:
    return Problem("register-unusable", Location(str(folder)), "Das Register der Echtläufe lässt sich dort nicht "
                   "führen", found=found, expected="ein Ordner (oder ein Name für einen neuen), beschreibbar für alle, "
                   "die Echtläufe rechnen",
                   hint="ALLOCATION_REGISTER oder --register auf einen Ordner setzen (README: The register of final runs)")


def read_register(folder: str | Path | None) -> RegisterView:
    """The whole register folder, checked (see the module). RegisterCorrupt names the file and line of the
    first damage; RegisterUnusable (exit 9) if the place is a file. A folder that does not exist is empty."""
    folder = Path(folder) if folder is not None else None
    if folder is None:
        return RegisterView(Path("."), {}, ())
    files: dict[str, tuple[RegisterLine, ...]] = {}
    chain: list[JsonLine] = []
    try:
        for entry in _register_folder(folder):
            path = folder / entry.name
            mode = entry.stat(follow_symlinks=False).st_mode
            ours = entry.name == LOCK_FILE or entry.name.endswith(".jsonl")  # a name the register uses for a file
            if stat.S_ISDIR(mode) and not ours:
                continue  # a folder of the operator's (a backup, say) is not read
            if not stat.S_ISREG(mode):
                raise ChainBroken(_corrupt(Location(str(path)), "Im Register liegt etwas, das keine gewöhnliche Datei ist",
                                           f"{entry.name}: {file_kind(mode)}", "nur gewöhnliche Dateien"))
            if entry.name == INDEX_FILE:
                chain = read_json_lines(path, _corrupt)
            elif entry.name.endswith(".jsonl") and not entry.name.startswith("."):
                lines = read_json_lines(path, _corrupt)
                for line in lines:
                    if line.entry.get("seq") != line.number:
                        raise ChainBroken(_corrupt(Location(str(path), line=line.number), "Die laufende Nummer des "
                                                   "Eintrags passt nicht zu seiner Zeile", _json_shown(line.entry, "seq"),
                                                   f"seq {line.number}"))
                    missing = _entry_gaps(line.entry)
                    if missing:
                        raise ChainBroken(_corrupt(Location(str(path), line=line.number), "Der Eintrag ist "
                                                   f"unvollständig: {', '.join(missing)} fehlt oder hat den falschen Typ",
                                                   line.text[:120], "ein Eintrag, wie ein Echtlauf ihn schreibt (Kreis, "
                                                   "Haushaltsjahr, Zeitpunkt)"))
                files[entry.name] = tuple(RegisterLine(entry.name, line.number, line.sha256, line.entry, line.text)
                                          for line in lines)
        view = RegisterView(folder, files, tuple(chain))
        _check_chain(view)
    except ChainBroken as stop:
        raise RegisterCorrupt([stop.problem]) from None
    except OSError as error:
        raise RegisterUnusable([_unusable(folder, error.strerror or str(error))]) from None
    return view


def _json_shown(entry: dict, key: str) -> str:
    """A key's value as the register's JSON writes it (null, not Python's None), or that it is missing."""
    return f"{key}: {json.dumps(entry[key], ensure_ascii=False)}" if key in entry else f"kein {key}"


def _entry_gaps(entry: dict) -> list[str]:
    """The keys every entry of every version carries, and that the register's readers rely on, which `entry`
    lacks or holds with another type. A line of an earlier version (no chain, no seal) is checked only by its
    link, so this is what tells it from a line no final run wrote."""
    district, year = entry.get("district"), entry.get("year")
    return [key for key, ok in (("district", isinstance(district, str) and bool(district.strip())),
                                ("year", isinstance(year, int) and not isinstance(year, bool)),
                                ("recorded_utc", isinstance(entry.get("recorded_utc"), str))) if not ok]


def _check_chain(view: RegisterView) -> None:
    """The installation's chain holds every district line, in order, by hash; nothing more, nothing less."""
    folder = view.folder
    if view.legacy:
        marked = next(((name, line) for name, lines in view.files.items() for line in lines
                       if line.entry.get("format") == REGISTER_FORMAT), None)
        if marked is not None:
            name, line = marked
            raise ChainBroken(_corrupt(Location(str(folder / INDEX_FILE)), f"Die Kette {INDEX_FILE} fehlt, obwohl "
                                       "Einträge mit ihr geschrieben wurden", f"{name}:{line.number} ohne Kette",
                                       f"{INDEX_FILE} mit jedem Eintrag"))
        return
    expected: dict[str, list[tuple[int, JsonLine]]] = {}
    for link in view.chain:
        where = Location(str(folder / INDEX_FILE), line=link.number)
        entry = link.entry
        if entry.get("n") != link.number or not plain_name(entry.get("file")) or not isinstance(entry.get("seq"), int) \
                or not (isinstance(entry.get("sha256"), str) and _SHA.fullmatch(entry["sha256"])) \
                or entry.get(SEAL) != seal_of(entry):
            raise ChainBroken(_corrupt(where, "Der Eintrag der Kette ist unvollständig oder verändert", link.text[:120],
                                       "n (= Zeile), file, seq, sha256 und ein Siegel, das zum Inhalt passt"))
        expected.setdefault(entry["file"], []).append((link.number, link))
    for name in sorted(set(expected) | set(view.files)):
        lines = view.files.get(name, ())
        links = expected.get(name, [])
        for position, line in enumerate(lines):
            if position >= len(links):
                raise ChainBroken(_corrupt(Location(str(folder / name), line=line.number), "Der Eintrag fehlt in der Kette "
                                           f"{INDEX_FILE} (dort gelöscht, oder hier eingefügt)", line.text[:120],
                                           f"{len(links)} Einträge, wie die Kette sie nennt"))
            number, link = links[position]
            if link.entry["seq"] != line.number or link.entry["sha256"] != line.sha256:
                raise ChainBroken(_corrupt(Location(str(folder / name), line=line.number), "Der Eintrag stimmt nicht mit "
                                           f"der Kette überein ({INDEX_FILE}:{number}): bearbeitet oder umgestellt",
                                           f"SHA-256 {line.sha256}", f"SHA-256 {link.entry['sha256']}"))
        if len(links) > len(lines):
            number, link = links[len(lines)]
            raise ChainBroken(_corrupt(Location(str(folder / name), line=len(lines) + 1), f"Die Kette ({INDEX_FILE}:"
                                       f"{number}) nennt einen Eintrag Nr. {link.entry['seq']}, der in der Datei fehlt "
                                       "(gelöscht, oder die Datei geleert oder entfernt)",
                                       f"{len(lines)} Einträge in {name}", f"{len(links)} Einträge"))


def normalised_slug_name(district: str, year: int) -> str:
    """The file name a new district file gets: `<slug>-<year>.jsonl` of the normalised district name."""
    import unicodedata

    text = unicodedata.normalize("NFKD", normalise_district(district)).encode("ascii", "ignore").decode("ascii").lower()
    return f"{re.sub(r'[^a-z0-9]+', '-', text).strip('-') or 'kreis'}-{year}.jsonl"
