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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..runs.manifest import manifest_path, sha256_file
from ..core.model import InputBook, same_district
from ..core.problems import ExitCode, Location, Problem, ProblemsError

__all__ = ["YearError", "YearChanged", "STAGES", "FINAL_STAGES", "YEAR_FILE", "CHAIN_FILE", "init", "stage",
           "read_year", "read_chain", "status", "StageCheck", "StageRun", "stage_rank", "order_problems",
           "changed_problems"]

YEAR_FILE = "jahr.json"
CHAIN_FILE = "stufen.jsonl"
FORMAT = "allocation-year/1"
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
    folder = Path(directory)
    where = Location(str(folder))
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
    (folder / YEAR_FILE).write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (folder / CHAIN_FILE).touch()
    from .statements import STATEMENTS_FILE, write_empty_log

    write_empty_log(folder / STATEMENTS_FILE)
    return folder


def read_year(directory: str | Path) -> dict:
    path = Path(directory) / YEAR_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record.get("district"), str) or not isinstance(record.get("year"), int):
            raise ValueError("district or year missing")
        return record
    except (OSError, ValueError, AttributeError) as error:
        raise YearError([Problem("year-not-a-year-folder", Location(str(path)), "Der Ordner ist kein Umlagejahr",
                                 found=type(error).__name__, expected=f"{YEAR_FILE} mit Kreis und Haushaltsjahr",
                                 hint='zuerst allocation year init ORDNER --district "Kreis ..." --year JJJJ')]) from None


def _line_hash(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def read_chain(directory: str | Path) -> list[dict]:
    """The stages recorded so far, oldest first; YearChanged if a line is no JSON or the line chain is broken."""
    path = Path(directory) / CHAIN_FILE
    if not path.exists():
        return []
    entries, previous = [], GENESIS
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        where = Location(str(path), line=number)
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            entry = None
        if not isinstance(entry, dict) or entry.get("prev_sha256") != previous:
            raise YearChanged([Problem("year-chain-broken", where, "Die Stufenkette wurde nach dem Schreiben verändert",
                                       found=line[:80], expected=f"eine Zeile mit prev_sha256 {previous}",
                                       hint=f"{CHAIN_FILE} aus der Sicherung wiederherstellen; sie darf nie von Hand "
                                            "bearbeitet werden")])
        previous = _line_hash(line)
        entries.append(entry)
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
    """Run stage `name` of the year in `directory` (see the module) and append it to the chain."""
    from ..runs.pipeline import run

    folder = Path(directory)
    year = read_year(folder)
    chain = folder / CHAIN_FILE
    fd = os.open(chain, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        entries = read_chain(folder)
        problems = order_problems(folder, entries, name, supersede)
        if problems:
            raise YearError(problems)
        target = folder / f"{len(entries) + 1:02d}-{name}"
        if target.exists():
            raise YearError([Problem("year-stage-exists", Location(str(target)), "Der Stufenordner gibt es schon, "
                                     "ohne dass die Stufe in der Kette steht", found=str(target),
                                     expected="kein Ordner dieses Namens",
                                     hint="den Ordner prüfen (ein abgebrochener Lauf?) und beiseite legen")])
        target.mkdir()
        try:
            entry, result = _run_stage(folder, target, name, year, entries, Path(input_path), Path(rules_path),
                                       supersede, register_dir, run)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)  # nothing half-done stays; the number is free again
            raise
        line = json.dumps(entry, ensure_ascii=False, sort_keys=True)
        os.write(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)
        return StageRun(entry, result)
    finally:
        os.close(fd)


def _run_stage(folder: Path, target: Path, name: str, year: dict, entries: list[dict], input_path: Path,
               rules_path: Path, supersede: str | None, register_dir, run) -> tuple[dict, object]:
    if rules_path.is_dir():
        raise YearError([Problem("year-rules-folder", Location(str(rules_path)), "Eine Stufe braucht eine "
                                 "Regeldatei, keinen Regelordner", found=str(rules_path), expected="--rules REGELN.yaml",
                                 hint="die gültige Regeldatei angeben; sie wird in den Stufenordner kopiert")])
    own_input, own_rules = target / input_path.name, target / rules_path.name
    shutil.copyfile(input_path, own_input)
    shutil.copyfile(rules_path, own_rules)
    output = target / f"ergebnis-{name}.xlsx"
    final = _kind(name) in FINAL_STAGES
    reason = _register_reason(name, entries, supersede)
    result = run(own_input.resolve(), own_rules.resolve(), output.resolve(), mode="final" if final else "test",
                 register_dir=register_dir, supersede=reason if final else None,
                 register_extra={"year_folder": str(folder.resolve()), "stage": name} if final else None,
                 accept=_stage_of_book(year["district"], int(year["year"])))
    previous = entries[-1] if entries else None
    lines = (folder / CHAIN_FILE).read_text(encoding="utf-8").splitlines()
    entry = {
        "seq": len(entries) + 1, "stage": name, "folder": target.name,
        "recorded_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": "final" if final else "test", "reason": supersede, "register_reason": reason if final else None,
        "input": _file_record(own_input, folder), "rules": _file_record(own_rules, folder),
        "output": _file_record(output, folder), "manifest": _file_record(manifest_path(output), folder),
        "prev_manifest_sha256": previous["manifest"]["sha256"] if previous else GENESIS,
        "prev_sha256": _line_hash(lines[-1]) if lines else GENESIS,
    }
    return entry, result


# --- status -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StageCheck:
    entry: dict
    findings: tuple[str, ...]  # empty: every hash matches

    @property
    def ok(self) -> bool:
        return not self.findings


def status(directory: str | Path) -> tuple[dict, list[StageCheck]]:
    """The year and every stage with what no longer matches its record (files' SHA-256, the manifest chain)."""
    folder = Path(directory)
    year = read_year(folder)
    checks = []
    previous_manifest = GENESIS
    for entry in read_chain(folder):
        findings = []
        for kind, label in (("input", "Eingabe"), ("rules", "Regeldatei"), ("output", "Ergebnis"),
                            ("manifest", "Manifest")):
            path = folder / entry[kind]["file"]
            if not path.exists():
                findings.append(f"{label} {entry[kind]['file']} fehlt")
            elif sha256_file(path) != entry[kind]["sha256"]:
                findings.append(f"{label} {entry[kind]['file']} wurde verändert (SHA-256 weicht ab)")
        if entry.get("prev_manifest_sha256") != previous_manifest:
            findings.append("die Verkettung mit dem Manifest der vorigen Stufe stimmt nicht")
        previous_manifest = entry["manifest"]["sha256"]
        checks.append(StageCheck(entry, tuple(findings)))
    return year, checks


def changed_problems(directory: str | Path, checks: list[StageCheck]) -> list[Problem]:
    return [Problem("year-stage-changed", Location(str(Path(directory) / check.entry["folder"])),
                    f'Stufe {check.entry["seq"]} "{check.entry["stage"]}": ' + "; ".join(check.findings),
                    found="; ".join(check.findings), expected="die Dateien, wie sie die Stufe geschrieben hat",
                    hint="die Dateien aus der Sicherung wiederherstellen; eine Stufe wird nie nachträglich geändert")
            for check in checks if not check.ok]
