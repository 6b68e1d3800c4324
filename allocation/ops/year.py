"""The levy year folder: the stages of one district's budget year as numbered, hash-chained snapshots.

A year folder (`allocation year init DIR --district "Kreis Wesel" --year 2022`) holds `jahr.json` (district,
year), the append-only chain `stufen.jsonl`, the statements log `Stellungnahmen.xlsx` (`statements.py`) and one
folder per stage, `NN-<stage>/`, numbered in the order
the stages were run. Each stage is a run through `pipeline.run` on copies of its input workbook and rule
file kept in the stage folder, with the output `ergebnis-<stage>.xlsx` and its manifest beside them.

Stages, in their order in the year: `modell` (GFG Modellrechnung), `benehmen` (§ 55 KrO NRW), `entwurf`
(draft budget), `satzung` (budget statute), `aenderung-1`, `aenderung-2`, ... (retroactive change of the rate,
§ 56 KrO NRW), `abrechnung` (settlement). `satzung`, every `aenderung-N` and `abrechnung` are final runs
(Echtläufe) recorded in the installation's register; each later final stage supersedes the one before in the
register with a reason. A stage never goes back in this order, a stage name runs once, and a second
retroactive change (`aenderung-2` and later) is refused: each needs `--supersede REASON`, which is recorded.

Each line of `stufen.jsonl` records the SHA-256 of the stage's input copy, rule file copy, output and manifest,
the SHA-256 of the previous stage's manifest (`prev_manifest_sha256`) and the SHA-256 of the previous line
(`prev_sha256`), so a changed file or an edited line is found by `status`. Lines are only ever appended,
under an exclusive `flock`.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple

from ..core.filenames import FileRefused, file_kind, folder_output_problems, read_regular, sha256_file
from ..core.signals import held
from ..runs.manifest import SEAL, manifest_path, seal_of, sealed
from ..core.model import InputBook, same_district
from ..core.problems import ExitCode, Location, OutputError, Problem, ProblemsError

if TYPE_CHECKING:
    from ..runs.readback import RegisterView

__all__ = ["YearError", "YearChanged", "STAGES", "FINAL_STAGES", "YEAR_FILE", "CHAIN_FILE", "init", "stage",
           "read_year", "read_chain", "status", "StageCheck", "StageRun", "stage_rank", "order_problems",
           "changed_problems", "YearStatus"]

YEAR_FILE = "jahr.json"
CHAIN_FILE = "stufen.jsonl"
FORMAT = "allocation-year/2"  # /2: jahr.json and every stage line sealed (`manifest.seal_of`); /1 is still read
FORMATS = ("allocation-year/1", FORMAT)
GENESIS = "0" * 64
STAGES = ("modell", "benehmen", "entwurf", "satzung", "aenderung-N", "abrechnung")
FINAL_STAGES = ("satzung", "aenderung-N", "abrechnung")
_CHANGE = re.compile(r"aenderung-([1-9][0-9]{0,2})")
STAGE_LABELS = {"modell": "GFG-Modellrechnung", "benehmen": "Benehmen (§ 55 KrO NRW)", "entwurf": "Haushaltsentwurf",
                "satzung": "Haushaltssatzung", "aenderung-N": "rückwirkende Änderung (§ 56 KrO NRW)",
                "abrechnung": "Abrechnung"}


class YearError(ProblemsError):
    """A year folder refuses a command (exit 8)."""

    exit_code = ExitCode.REFUSED
    title = "Umlagejahr"


class YearChanged(ProblemsError):
    """A stage of the year folder no longer matches its record (exit 7)."""

    exit_code = ExitCode.VERIFY
    title = "Umlagejahr: Stufen verändert"


def _kind(stage: str) -> str | None:
    """The stage's kind (an entry of STAGES), None for an unknown name."""
    if stage in STAGES and stage != "aenderung-N":
        return stage
    return "aenderung-N" if _CHANGE.fullmatch(stage) else None


def stage_rank(stage: str) -> int:
    return STAGES.index(_kind(stage))


def _change_number(stage: str) -> int | None:
    match = _CHANGE.fullmatch(stage)
    return int(match.group(1)) if match else None


# --- the folder ---------------------------------------------------------------------------------------------


def init(directory: str | Path, district: str, year: int) -> Path:
    """Create the year folder's layout. Refused if the folder already is a year folder or is not empty."""
    from ..runs.register import guard_folder

    folder = Path(directory)
    where = Location(str(folder))
    unusable = folder_output_problems(folder, "Die Dateien des Umlagejahrs")  # a file, FIFO or dangling link there
    if unusable:
        raise OutputError(unusable)
    guard_folder(folder)  # never inside the register; a damaged register stops it like every command that writes
    if (folder / YEAR_FILE).exists():
        raise YearError([Problem("year-exists", where, "Der Ordner ist bereits ein Umlagejahr",
                                 found=str(folder / YEAR_FILE), expected="ein neuer oder leerer Ordner",
                                 hint="einen anderen Ordner angeben; ein Umlagejahr wird nie neu angelegt")])
    if folder.exists() and any(folder.iterdir()):
        raise YearError([Problem("year-exists", where, "Der Ordner ist nicht leer",
                                 found=", ".join(sorted(p.name for p in folder.iterdir())[:5]),
                                 expected="ein neuer oder leerer Ordner", hint="einen neuen Ordner angeben")])
    if not district.strip():
        raise YearError([Problem("year-bad-parameter", Location("--district"), "Der Kreis fehlt", found='""',
                                 expected='z. B. --district "Kreis Wesel"', hint="den Namen des Kreises angeben")])
    if not 1900 <= year <= 2999:
        raise YearError([Problem("year-bad-parameter", Location("--year"), "Das Haushaltsjahr ist ungültig",
                                 found=str(year), expected="ein Jahr wie 2022", hint="das Haushaltsjahr angeben")])
    folder.mkdir(parents=True, exist_ok=True)
    record = {"format": FORMAT, "district": district, "year": year,
              "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    (folder / YEAR_FILE).write_text(json.dumps(sealed(record), ensure_ascii=False, indent=2) + "\n",
                                    encoding="utf-8")
    (folder / CHAIN_FILE).touch()
    from .statements import STATEMENTS_FILE, write_empty_log

    write_empty_log(folder / STATEMENTS_FILE)
    return folder


def read_year(directory: str | Path) -> dict:
    """`jahr.json`, read back through `readback` (a regular file, no link, within its bound, JSON of the shape
    `init` writes: district, year 1900–2999); the record gets `_sha256`, the hash of its bytes, which every stage
    line binds. YearError (`year-not-a-year-folder`) otherwise."""
    from ..runs.readback import JsonRefused, read_json_record

    path = Path(directory) / YEAR_FILE
    try:
        record, data = read_json_record(path)
        if not (isinstance(record, dict) and isinstance(record.get("district"), str) and record["district"].strip()
                and isinstance(record.get("year"), int) and not isinstance(record["year"], bool)
                and 1900 <= record["year"] <= 2999 and record.get("format") in FORMATS):
            raise ValueError("Format, Kreis oder Haushaltsjahr fehlen oder sind ungültig")
    except (OSError, ValueError, JsonRefused) as error:
        found = (f"{error.strerror}: {error.found}" if isinstance(error, FileRefused) else
                 error.message if isinstance(error, JsonRefused) else getattr(error, "strerror", None) or str(error))
        raise YearError([Problem("year-not-a-year-folder", Location(str(path)), "Der Ordner ist kein Umlagejahr",
                                 found=str(found), expected=f"{YEAR_FILE} mit Kreis und Haushaltsjahr",
                                 hint='zuerst allocation year init ORDNER --district "Kreis ..." --year JJJJ')]) from None
    if (record["format"] == FORMAT or SEAL in record) and record.get(SEAL) != seal_of(record):
        raise YearChanged([_broken(Location(str(path)), f"{YEAR_FILE} wurde verändert: sein Siegel passt nicht zu "
                                   "seinem Inhalt", f"Siegel {record.get(SEAL)}", f"Siegel {seal_of(record)}")])
    return {**record, "_sha256": hashlib.sha256(data).hexdigest()}


_FILE_KINDS = (("input", "Eingabe"), ("rules", "Regeldatei"), ("output", "Ergebnis"), ("manifest", "Manifest"))


def _broken(where: Location, message: str, found: str, expected: str) -> Problem:
    return Problem("year-chain-broken", where, message, found=found, expected=expected,
                   hint=f"{CHAIN_FILE} aus der Sicherung wiederherstellen; sie darf nie von Hand bearbeitet werden")


def _line_problem(entry: dict, number: int, year: dict) -> str | None:
    """What is wrong with a stage line beyond its chain link: its shape (a number, a stage, its folder `NN-stage`,
    each file a plain name inside that folder with a SHA-256) and its binding to `jahr.json` (lines written since
    the binding exist carry its hash, district and year). Paths in a line are never used before this passed."""
    from ..runs.readback import plain_name

    stage, folder = entry.get("stage"), entry.get("folder")
    if entry.get("seq") != number:
        return f"seq {entry.get('seq')!r} statt {number}"
    if not isinstance(stage, str) or _kind(stage) is None:
        return f"unbekannte Stufe {stage!r}"
    if folder != f"{number:02d}-{stage}":
        return f"Ordner {folder!r} statt {number:02d}-{stage}"
    if entry.get("mode") != ("final" if _kind(stage) in FINAL_STAGES else "test"):
        return f"Laufart {entry.get('mode')!r} passt nicht zur Stufe {stage}"
    for kind, _ in _FILE_KINDS:
        record = entry.get(kind)
        file = record.get("file") if isinstance(record, dict) else None
        parts = file.split("/") if isinstance(file, str) else []
        if not (len(parts) == 2 and parts[0] == folder and plain_name(parts[1])
                and isinstance(record.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", record["sha256"])):
            return f"{kind}: {file!r} ist keine Datei des Stufenordners {folder}"
    if not (isinstance(entry.get("prev_manifest_sha256"), str)
            and re.fullmatch(r"[0-9a-f]{64}", entry["prev_manifest_sha256"])):
        return "prev_manifest_sha256 fehlt"
    if year.get("format") == FORMAT and SEAL not in entry:  # every line of a sealed year folder carries its seal
        return "das Siegel der Zeile fehlt"
    if ("year_sha256" in entry or SEAL in entry) and entry.get(SEAL) != seal_of(entry):
        return f"das Siegel der Zeile passt nicht zu ihrem Inhalt (Siegel {entry.get(SEAL)!r})"
    if "year_sha256" in entry and (entry["year_sha256"] != year["_sha256"] or entry.get("year") != year["year"]
                                   or entry.get("district") != year["district"]):
        return (f"an ein anderes {YEAR_FILE} gebunden ({entry.get('district')} {entry.get('year')}); jetzt "
                f"{year['district']} {year['year']}: {YEAR_FILE} wurde verändert")
    return None


def read_chain(directory: str | Path, year: dict | None = None) -> list[dict]:
    """The stages recorded so far, oldest first, read back through `readback.read_json_lines` (a regular file
    within its bound, every line complete, a JSON object, chained by `prev_sha256`) and checked line by line
    (`_line_problem`, against `year`, default `read_year`). YearChanged (`year-chain-broken`) names the line."""
    from ..runs.readback import ChainBroken, read_json_lines

    folder = Path(directory)
    year = year or read_year(folder)
    path = folder / CHAIN_FILE
    try:
        if path.exists() and not path.is_symlink() and path.is_file() and path.stat().st_size == 0:
            return []  # `init` leaves the chain empty until the first stage; an emptied chain leaves orphans
        lines = read_json_lines(path, _broken)
    except ChainBroken as stop:
        raise YearChanged([stop.problem]) from None
    entries = []
    for line in lines:
        wrong = _line_problem(line.entry, line.number, year)
        if wrong is not None:
            raise YearChanged([_broken(Location(str(path), line=line.number), "Die Zeile der Stufenkette ist "
                                       f"verändert: {wrong}", line.text[:120], "eine Zeile, wie `year stage` sie "
                                       "schreibt")])
        entries.append(line.entry)
    return entries


# --- running a stage ----------------------------------------------------------------------------------------


def _refusal(code: str, directory: Path, message: str, found: str, expected: str, hint: str) -> Problem:
    return Problem(code, Location(str(directory / CHAIN_FILE)), message, found=found, expected=expected, hint=hint)


def order_problems(directory: Path, entries: list[dict], name: str, supersede: str | None) -> list[Problem]:
    """Why `name` may not run now in the year (order, repetition, a second change); [] if it may."""
    kind = _kind(name)
    if kind is None:
        return [_refusal("year-unknown-stage", directory, f'"{name}" ist keine Stufe des Umlagejahres', name,
                         "modell, benehmen, entwurf, satzung, aenderung-1, aenderung-2, …, abrechnung",
                         "eine der Stufen angeben")]
    from ..runs.register import MAX_REASON

    if supersede is not None and len(supersede) > MAX_REASON:
        return [_refusal("year-reason-too-long", directory, "Die Begründung ist zu lang für die Stufenkette",
                         f"{len(supersede):,} Zeichen".replace(",", "."),
                         f"höchstens {MAX_REASON:,} Zeichen".replace(",", "."),
                         "kurz begründen und auf den Beschluss verweisen (Datum, Drucksache)")]
    if supersede is not None and not supersede.strip():
        return [_refusal("year-empty-reason", directory, "--supersede braucht eine Begründung", '""',
                         'z. B. --supersede "zweite Änderung, Kreistagsbeschluss vom 12.09."',
                         "angeben, warum die Stufe (erneut) gerechnet wird")]
    done = [entry["stage"] for entry in entries]
    problems = []
    if done and stage_rank(done[-1]) > stage_rank(name):
        problems.append(_refusal("year-stage-order", directory, f'Die Stufe "{name}" liegt vor der zuletzt '
                                 f'gerechneten Stufe "{done[-1]}"', name, f"eine Stufe ab {done[-1]}",
                                 "Stufen in der Reihenfolge modell, benehmen, entwurf, satzung, aenderung-N, "
                                 "abrechnung rechnen; Stufen dürfen ausgelassen werden"))
    number = _change_number(name)
    needed = "satzung" if number == 1 or name == "abrechnung" else f"aenderung-{number - 1}" if number else None
    if needed is not None and needed not in done:
        problems.append(_refusal("year-stage-order", directory, f'Die Stufe "{name}" setzt die Stufe "{needed}" '
                                 "voraus", ", ".join(done) or "keine Stufe", needed, f'zuerst "{needed}" rechnen'))
    if name in done and supersede is None:
        problems.append(_refusal("year-stage-repeated", directory, f'Die Stufe "{name}" ist bereits gerechnet',
                                 name, "jede Stufe einmal", 'mit --supersede "Grund" erneut rechnen (beide bleiben '
                                 "im Umlagejahr)"))
    if number is not None and number >= 2 and supersede is None:
        problems.append(_refusal("year-second-change", directory, f"Eine {number}. rückwirkende Änderung des "
                                 "Hebesatzes für dasselbe Jahr ist nur mit Begründung zulässig", name,
                                 "höchstens eine rückwirkende Änderung (§ 56 KrO NRW)",
                                 'mit --supersede "Grund" rechnen, z. B. Beschluss des Kreistags und Genehmigung'))
    return problems


def _stage_of_book(district: str, year: int) -> Callable[[InputBook], None]:
    """`pipeline.run`'s accept: the input belongs to the year folder's district and year."""
    def accept(book: InputBook) -> None:
        problems = []
        parameters = book.parameters
        if not same_district(parameters.district, district):
            problems.append(Problem("year-other-district", parameters.source, "Die Eingabe-Arbeitsmappe gehört zu "
                                    "einem anderen Kreis als das Umlagejahr", found=parameters.district,
                                    expected=district, hint="die Eingabe dieses Kreises angeben"))
        if parameters.year != year:
            problems.append(Problem("year-other-year", parameters.source, "Die Eingabe-Arbeitsmappe gehört zu "
                                    "einem anderen Haushaltsjahr als das Umlagejahr", found=str(parameters.year),
                                    expected=str(year), hint="die Eingabe dieses Haushaltsjahres angeben"))
        if problems:
            raise YearError(problems)
    return accept


def _register_reason(name: str, entries: list[dict], supersede: str | None) -> str | None:
    """The register's supersede reason: the user's, else for a final stage after another final stage its own."""
    if supersede is not None:
        return supersede
    earlier_final = any(_kind(entry["stage"]) in FINAL_STAGES for entry in entries)
    if not earlier_final or _kind(name) not in FINAL_STAGES:
        return None
    if name == "abrechnung":
        return "Umlagejahr: Stufe abrechnung (Abrechnung ersetzt die Haushaltssatzung als gültigen Echtlauf)"
    return f"Umlagejahr: Stufe {name} (rückwirkende Änderung des Hebesatzes, § 56 KrO NRW)"


def _file_record(path: Path, folder: Path) -> dict:
    return {"file": str(path.relative_to(folder)), "sha256": sha256_file(path)}


@dataclass(frozen=True, slots=True)
class StageRun:
    entry: dict
    result: object  # pipeline.RunResult


def stage(directory: str | Path, name: str, input_path: str | Path, rules_path: str | Path, *,
          supersede: str | None = None, register_dir: str | Path | None = None) -> StageRun:
    """Run stage `name` of the year in `directory` (see the module) and append it to the chain. Refused (exit 7,
    nothing written) if `status` finds anything broken: a changed byte in a stage file, a changed, deleted or
    reordered line, an orphan stage folder, or a final stage the register does not hold."""
    from ..runs.pipeline import run

    folder = Path(directory)
    year = read_year(folder)
    chain = folder / CHAIN_FILE
    try:
        fd = os.open(chain, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_NONBLOCK", 0), 0o644)
    except OSError as error:
        raise YearChanged([_broken(Location(str(chain)), "Die Stufenkette lässt sich nicht öffnen",
                                   error.strerror or str(error), "eine gewöhnliche Datei")]) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        now = status(folder, register_dir)
        if now.register_error is not None:  # a damaged register stops a stage as it stops every run (exit 8/9)
            raise now.register_error
        broken = changed_problems(folder, now)
        if broken:
            raise YearChanged(broken)
        entries = [check.entry for check in now.checks]
        problems = order_problems(folder, entries, name, supersede)
        if problems:
            raise YearError(problems)
        target = folder / f"{len(entries) + 1:02d}-{name}"
        if os.path.lexists(target):
            raise YearError([Problem("year-stage-exists", Location(str(target)), "Der Stufenordner gibt es schon, "
                                     "ohne dass die Stufe in der Kette steht", found=str(target),
                                     expected="kein Ordner dieses Namens",
                                     hint="den Ordner prüfen (ein abgebrochener Lauf?) und beiseite legen")])
        target.mkdir()
        written = False
        try:
            entry, result = _run_stage(folder, target, name, year, entries, Path(input_path), Path(rules_path),
                                       supersede, register_dir, run)
            with held(signal.SIGINT, signal.SIGTERM):
                _append(fd, entry)
                written = True
        except BaseException:
            if written:  # the chain holds the stage: it stays, whatever stopped it after
                raise
            if not _registered(folder, name, target / f"ergebnis-{name}.xlsx", register_dir):
                shutil.rmtree(target, ignore_errors=True)  # nothing half-done stays; the number is free again
                raise
            # the register holds the stage's final run: the stage stays and the chain gets its line, then the
            # stop (Ctrl-C, SIGTERM) or the error acts
            with held(signal.SIGINT, signal.SIGTERM):
                _append(fd, _stage_entry(folder, target, name, year, entries, Path(input_path).name,
                                         Path(rules_path).name, supersede))
            raise
        return StageRun(entry, result)
    finally:
        os.close(fd)


def _registered(folder: Path, name: str, output: Path, register_dir) -> bool:
    """Whether the register holds stage `name` of this year folder with this workbook (its SHA-256): the one
    fact that decides whether a stopped or failed final stage stays. A register that cannot be read: whether the
    workbook and its manifest are still there (a final run removes both while it is not registered)."""
    from ..runs.readback import read_register
    from ..runs.register import installation_register

    if _kind(name) not in FINAL_STAGES or not output.exists():
        return False
    digest, mine = sha256_file(output), str(folder.resolve())
    try:
        register = read_register(installation_register(register_dir))
    except ProblemsError:
        return manifest_path(output).exists()
    return any(line.entry.get("year_folder") == mine and line.entry.get("stage") == name
               and line.entry.get("output_sha256") == digest for lines in register.files.values() for line in lines)


def _append(fd: int, entry: dict) -> None:
    """The stage's line at the end of the chain, on disk before this returns."""
    os.write(fd, (json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
    os.fsync(fd)


def _copy_in(source: Path, target: Path, limit: int, what: str) -> None:
    """A copy of a file the stage keeps: read only as a regular file within its bound (a FIFO or /dev/zero is
    refused before a byte is read), written as a new file."""

    try:
        data = read_regular(source, limit)
    except OSError as error:
        raise YearError([Problem("year-bad-parameter", Location(str(source)), f"{what} lässt sich nicht lesen",
                                 found=f"{getattr(error, 'strerror', None) or error}: {getattr(error, 'found', source)}",
                                 expected=f"eine gewöhnliche Datei von höchstens {limit:,} Bytes".replace(",", "."),
                                 hint="den Pfad prüfen")]) from None
    with open(target, "xb") as handle:
        handle.write(data)


def _run_stage(folder: Path, target: Path, name: str, year: dict, entries: list[dict], input_path: Path,
               rules_path: Path, supersede: str | None, register_dir, run) -> tuple[dict, object]:
    from ..rulefiles.rulebook import MAX_FILE_BYTES as MAX_RULES_BYTES
    from ..workbook.safety import MAX_FILE_BYTES as MAX_INPUT_BYTES

    if rules_path.is_dir():
        raise YearError([Problem("year-rules-folder", Location(str(rules_path)), "Eine Stufe braucht eine "
                                 "Regeldatei, keinen Regelordner", found=str(rules_path), expected="--rules REGELN.yaml",
                                 hint="die gültige Regeldatei angeben; sie wird in den Stufenordner kopiert")])
    if input_path.name == rules_path.name:
        raise YearError([Problem("year-bad-parameter", Location(str(rules_path)), "Eingabe-Arbeitsmappe und Regeldatei "
                                 "haben denselben Dateinamen; beide werden unter ihrem Namen in den Stufenordner "
                                 "kopiert", found=rules_path.name, expected="zwei verschiedene Dateinamen",
                                 hint="eine der beiden Dateien umbenennen, z. B. die Regeldatei in regeln.yaml")])
    own_input, own_rules = target / input_path.name, target / rules_path.name
    _copy_in(input_path, own_input, MAX_INPUT_BYTES, "Die Eingabe-Arbeitsmappe")
    _copy_in(rules_path, own_rules, MAX_RULES_BYTES + 1, "Die Regeldatei")  # one beyond: the run names the limit
    output = target / f"ergebnis-{name}.xlsx"
    final = _kind(name) in FINAL_STAGES
    reason = _register_reason(name, entries, supersede)
    result = run(own_input.resolve(), own_rules.resolve(), output.resolve(), mode="final" if final else "test",
                 register_dir=register_dir, supersede=reason if final else None,
                 register_extra={"year_folder": str(folder.resolve()), "stage": name} if final else None,
                 accept=_stage_of_book(year["district"], int(year["year"])))
    return _stage_entry(folder, target, name, year, entries, input_path.name, rules_path.name, supersede), result


def _stage_entry(folder: Path, target: Path, name: str, year: dict, entries: list[dict], input_name: str,
                 rules_name: str, supersede: str | None) -> dict:
    """The stage's sealed chain line, from the files in its folder (the run's copies of input and rule file, its
    workbook and manifest)."""
    from ..runs.readback import read_json_lines

    own_input, own_rules = target / input_name, target / rules_name
    output = target / f"ergebnis-{name}.xlsx"
    final = _kind(name) in FINAL_STAGES
    reason = _register_reason(name, entries, supersede)
    previous = entries[-1] if entries else None
    lines = read_json_lines(folder / CHAIN_FILE, _broken) if entries else []  # checked by `status` under the lock
    entry = {
        "seq": len(entries) + 1, "stage": name, "folder": target.name,
        "recorded_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": "final" if final else "test", "reason": supersede, "register_reason": reason if final else None,
        "input": _file_record(own_input, folder), "rules": _file_record(own_rules, folder),
        "output": _file_record(output, folder), "manifest": _file_record(manifest_path(output), folder),
        "prev_manifest_sha256": previous["manifest"]["sha256"] if previous else GENESIS,
        # the year folder's own record: an edited district or year in jahr.json breaks every line bound to it
        "district": year["district"], "year": year["year"], "year_sha256": year["_sha256"],
        "prev_sha256": lines[-1].sha256 if lines else GENESIS,
    }
    return sealed(entry)


# --- status -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StageCheck:
    entry: dict
    findings: tuple[str, ...]  # empty: every hash matches

    @property
    def ok(self) -> bool:
        return not self.findings


class YearStatus(NamedTuple):
    """The year folder as `status` found it: the record, each stage with its findings, and what belongs to no
    stage (an orphan stage folder, a link or FIFO in the folder, a final stage of this folder that the register
    holds but the chain lacks); the register as read for that, or why it could not be read (its own located
    error: `register-corrupt` at file and line, `register-unusable`)."""

    record: dict
    checks: list[StageCheck]
    findings: tuple[str, ...] = ()
    register: "RegisterView | None" = None
    register_error: ProblemsError | None = None


_STAGE_FOLDER = re.compile(r"[0-9]{2,}-.+")


def status(directory: str | Path, register_dir: str | Path | None = None) -> YearStatus:
    """The year and every stage with what no longer matches its record: each file's SHA-256 (read only as regular
    files inside the stage folder), the chain of manifests, the stage manifest's district and year against
    `jahr.json`, and a final stage's entry in the register (`register_dir`, default the installation's); then
    the folder: orphan stage folders (a line deleted, or the chain emptied) and final runs the register records
    for this folder that the chain lacks. A chain that cannot be read is YearChanged (`year-chain-broken`)."""
    from ..runs.readback import load_manifest, read_register
    from ..runs.register import installation_register
    from .verify import register_findings

    folder = Path(directory)
    year = read_year(folder)
    entries = read_chain(folder, year)
    try:
        register, register_error = read_register(installation_register(register_dir)), None
    except ProblemsError as error:  # RegisterCorrupt, RegisterBusy, RegisterUnusable: reported as they are
        register, register_error = None, error
    checks = []
    previous_manifest = GENESIS
    for entry in entries:
        findings = []
        for kind, label in _FILE_KINDS:
            path = folder / entry[kind]["file"]
            try:
                digest = sha256_file(path, follow=False)
            except FileNotFoundError:
                findings.append(f"{label} {entry[kind]['file']} fehlt")
                continue
            except OSError as error:
                findings.append(f"{label} {entry[kind]['file']}: {getattr(error, 'strerror', None) or error}")
                continue
            if digest != entry[kind]["sha256"]:
                findings.append(f"{label} {entry[kind]['file']} wurde verändert (SHA-256 weicht ab)")
        if entry.get("prev_manifest_sha256") != previous_manifest:
            findings.append("die Verkettung mit dem Manifest der vorigen Stufe stimmt nicht")
        previous_manifest = entry["manifest"]["sha256"]
        if not findings:
            manifest, _ = load_manifest(folder / entry["manifest"]["file"])
            if manifest is None:
                findings.append(f"Manifest {entry['manifest']['file']} lässt sich nicht lesen")
            else:
                parameters = manifest["parameters"]
                if not same_district(parameters["district"], year["district"]) or parameters["year"] != year["year"]:
                    findings.append(f"die Stufe gehört zu {parameters['district']} {parameters['year']}, das Umlagejahr "
                                    f"({YEAR_FILE}) zu {year['district']} {year['year']}")
                if entry["mode"] == "final" and register is not None:  # else `register_error` says why not
                    findings += register_findings(manifest, manifest["output"]["sha256"], register)
        checks.append(StageCheck(entry, tuple(findings)))
    return YearStatus(year, checks, tuple(_folder_findings(folder, entries, register)), register, register_error)


def _folder_findings(folder: Path, entries: list[dict], register) -> list[str]:
    """What lies in the year folder outside the chain, and final stages of this folder the chain lacks."""
    recorded = {entry["folder"] for entry in entries}
    findings = []
    for entry in entries:  # a stage folder holds its four files, nothing else
        own = {entry[kind]["file"].split("/", 1)[1] for kind, _ in _FILE_KINDS}
        try:
            extra = sorted(name for name in os.listdir(folder / entry["folder"]) if name not in own)
        except OSError:
            continue  # a missing folder: its files are reported missing
        if extra:
            findings.append(f"im Stufenordner {entry['folder']} liegt, was die Stufe nicht geschrieben hat: "
                            + ", ".join(extra[:5]))
    with os.scandir(folder) as listing:
        for item in sorted(listing, key=lambda item: item.name):
            mode = item.stat(follow_symlinks=False).st_mode
            if item.is_symlink() or not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                findings.append(f"{item.name} ist {file_kind(mode)}: im Umlagejahr liegen nur Dateien und Ordner")
            elif stat.S_ISDIR(mode) and _STAGE_FOLDER.fullmatch(item.name) and item.name not in recorded:
                findings.append(f"Stufenordner {item.name} steht nicht in der Kette (verwaist: Zeile gelöscht, Kette "
                                "geleert oder ein abgebrochener Lauf)")
    if register is not None:
        mine = str(folder.resolve())
        names = {entry["stage"] for entry in entries}
        for lines in register.files.values():
            for line in lines:
                if line.entry.get("year_folder") == mine and line.entry.get("stage") not in names:
                    findings.append(f"Das Register hält den Echtlauf der Stufe {line.entry.get('stage')} dieses "
                                    f"Umlagejahres (Nr. {line.entry.get('seq')} vom {line.entry.get('recorded_utc')}), "
                                    "die Kette nicht (Zeile gelöscht?)")
    return findings


def changed_problems(directory: str | Path, year_status: YearStatus) -> list[Problem]:
    folder = Path(directory)
    problems = [Problem("year-stage-changed", Location(str(folder / check.entry["folder"])),
                        f'Stufe {check.entry["seq"]} "{check.entry["stage"]}": ' + "; ".join(check.findings),
                        found="; ".join(check.findings), expected="die Dateien, wie sie die Stufe geschrieben hat",
                        hint="die Dateien aus der Sicherung wiederherstellen; eine Stufe wird nie nachträglich geändert")
                for check in year_status.checks if not check.ok]
    problems += [Problem("year-stage-changed", Location(str(folder)), finding, found=finding,
                         expected="nur die Stufen der Kette, wie `year stage` sie schreibt",
                         hint="den Ordner mit der Sicherung vergleichen; nichts von Hand hinzufügen oder entfernen")
                 for finding in year_status.findings]
    return problems
