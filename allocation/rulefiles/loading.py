"""Rule files read: a file (a regular one, within MAX_FILE_BYTES, UTF-8) or its text -> located YAML
(`yamlloc.py`: no anchors or aliases, at most 100 nesting levels) -> `Rulebook` and its warnings, through the
schema of `validation.py` and `notice_settings.py`; every problem named with file:line:column, all of one file
raised together as a RuleFileError. Also the other readers of a rule file: the places of its `domains:` values
and its notice settings alone.
"""
from __future__ import annotations

import hashlib
import os
from decimal import Decimal
from pathlib import Path
from typing import Iterable

from ..core.filenames import open_regular, read_regular
from ..core.model import Example, Rule, Rulebook
from ..core.problems import LetterheadFileError, Location, Problem, RuleFileError, did_you_mean
from .notice_settings import (NoticeSettings, _installation_settings, _notice_settings, remedy_notes,
                              with_installation)
from .validation import (HIT_POLICIES, TOP_KEYS, _check_levy_rules, _compile, _example, _levies, _rate_limits,
                         _Reader, _rule, _state, _state_departures)
from .yamlloc import MAX_DEPTH as MAX_YAML_DEPTH
from .yamlloc import LocDict, LocList, YamlProblem, load

__all__ = ["MAX_FILE_BYTES", "parse_rulebook", "load_rulebook", "load_rulebooks", "domain_sources",
           "load_notice_settings", "installation_letterhead_path"]

# What `check` answers within 5 s on 2 cores (benchmarks/bench_hostile.py): PyYAML reads ~100 kB/s (pure Python,
# for line:column), and the static analysis compares rules pairwise (500 rules under `priority`: ~3 s; 1,000:
# ~8 s). The engine itself decides 10,000 rules (benchmarks/README.md, 1b); a district's file has a few dozen.
MAX_FILE_BYTES = 256 * 1024
MAX_RULES = 500


def _too_large_file(path: str, size: int | None) -> Problem:
    """`size` None: not a regular file (a device or pipe), only known to exceed the limit."""
    found = f"{size:,} Bytes" if size is not None else f"mehr als {MAX_FILE_BYTES:,} Bytes"
    return Problem("rule-file-too-large", Location(path), "Die Regeldatei ist zu groß",
                   found=found.replace(",", "."), expected=f"höchstens {MAX_FILE_BYTES:,} Bytes ({MAX_FILE_BYTES // 1024} KiB)".replace(",", "."),
                   hint="die Regeln auf mehrere Dateien mit getrennten Gültigkeitsjahren aufteilen oder gleichartige "
                        "Regeln über eine Kennzeichen-Spalte der Arbeitsmappe zusammenfassen")


def _yaml_problem(path: str, error: YamlProblem) -> Problem:
    where = Location(path, line=error.line, col=error.col)
    if error.code == "rule-yaml-alias":
        return Problem("rule-yaml-alias", where, f"YAML-Anker und -Verweise sind in Regeldateien nicht erlaubt: "
                       f"{error.message}", found=error.found, expected="jeden Wert ausgeschrieben",
                       hint="den Anker (&name) entfernen und jeden Verweis (*name) durch den ausgeschriebenen Wert "
                            "ersetzen")
    if error.code == "rule-too-deep":
        return Problem("rule-too-deep", where, f"Die Regeldatei ist zu tief geschachtelt: {error.message}",
                       found=error.found, expected=f"höchstens {MAX_YAML_DEPTH} Ebenen",
                       hint="die Bedingung flacher schreiben, z. B. not über eine Liste durch ne/any ersetzen")
    hint = "das Tag entfernen; Regeldateien enthalten nur einfache Daten" if "tag" in error.message else \
        "das Steuerzeichen entfernen (oft beim Kopieren aus anderen Programmen eingefügt)" \
        if error.message.startswith("Zeichen U+") else "Einrückung und Anführungszeichen an dieser Stelle prüfen"
    return Problem("rule-yaml", where, f"kein gültiges YAML: {error.message}", found=error.found,
                   expected="eine YAML-Zuordnung (Mapping)", hint=hint)


def _duplicates(reader: _Reader, path: str, duplicates: list[YamlProblem]) -> None:
    """A key written twice in one mapping (YAML would silently keep the last): an error at the second."""
    for duplicate in duplicates:
        reader.error("rule-duplicate-key", Location(path, line=duplicate.line, col=duplicate.col),
                     duplicate.message, found=duplicate.found, expected="jeder Schlüssel nur einmal",
                     hint="einen der beiden entfernen")


def parse_rulebook(text: str, path: str, sha256: str = "") -> tuple[Rulebook, list[Problem]]:
    """Parse and schema-check a rule file's text; returns it with its warnings. Raises RuleFileError."""
    reader = _Reader(path)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise RuleFileError([_too_large_file(path, size)])
    try:
        document, duplicates = load(text)
    except YamlProblem as error:
        raise RuleFileError([_yaml_problem(path, error)]) from None
    _duplicates(reader, path, duplicates)
    if not isinstance(document, LocDict):
        raise RuleFileError([Problem("rule-bad-type", Location(path, line=1, col=1),
                                     "Eine Regeldatei muss eine Zuordnung mit district, valid_from, valid_to, rules sein",
                                     found=type(document).__name__, expected="eine YAML-Zuordnung (Mapping)",
                                     hint="von rules/kreis-wesel.yaml ausgehen")])
    reader.unknown_keys(document, TOP_KEYS, "der Regeldatei")
    district = reader.text(document, "district")
    valid_from = reader.year(document, "valid_from")
    valid_to = reader.year(document, "valid_to")
    if valid_from and valid_to and valid_from > valid_to:
        reader.error("rule-bad-validity", reader.at(document, "valid_to", True), "valid_to liegt vor valid_from",
                     found=f"{valid_from}–{valid_to}", expected="valid_from ≤ valid_to", hint="die Jahre vertauschen")
    hit_policy = document.get("hit_policy", "unique")
    if hit_policy not in HIT_POLICIES:
        reader.error("rule-bad-hit-policy", reader.at(document, "hit_policy", True),
                     f'unbekannte hit_policy "{hit_policy}"{did_you_mean(str(hit_policy), HIT_POLICIES)}',
                     found=str(hit_policy), expected="unique oder priority", hint="unique oder priority verwenden")
    domains: dict[str, tuple] = {}
    raw_domains = document.get("domains") or {}
    if not isinstance(raw_domains, dict):
        reader.error("rule-bad-type", reader.at(document, "domains", True), '"domains" muss Spalten Listen zuordnen',
                     found=repr(raw_domains), expected="{Kategorie: [KIM, Jugendhilfe]}", hint="die Werte aufzählen")
    else:
        for column, values in raw_domains.items():
            if not isinstance(values, list) or not values:
                reader.error("rule-bad-type", reader.at(raw_domains, column, True),
                             f'Wertebereich von "{column}" muss eine nicht leere Liste sein', found=repr(values),
                             expected="[A, B, ...]", hint="jeden zulässigen Wert aufzählen")
                continue
            domains[str(column)] = tuple(Decimal(v) if isinstance(v, int) and not isinstance(v, bool) else v
                                         for v in values)
    rules: list[Rule] = []
    raw_rules = document.get("rules")
    if raw_rules is None and "levies" in document and "rules" not in document:
        raw_rules = []  # levies with statutory rates only: no cost item to decide, so no rule is needed
    elif not isinstance(raw_rules, list) or not raw_rules:
        reader.error("rule-missing-key", reader.at(document, "rules" if "rules" in document else None),
                     "Die Regeldatei enthält keine Regeln", found=repr(raw_rules), expected="eine Liste unter `rules:`",
                     hint="mindestens eine Regel ergänzen")
    elif len(raw_rules) > MAX_RULES:
        reader.error("rule-too-large", reader.at(document, "rules"),
                     f"Die Regeldatei hat {len(raw_rules)} Regeln; höchstens {MAX_RULES} sind möglich",
                     found=str(len(raw_rules)), expected=f"höchstens {MAX_RULES} Regeln je Datei",
                     hint="gleichartige Regeln über eine Kennzeichen-Spalte der Arbeitsmappe zusammenfassen oder die "
                          "Regeln auf Dateien mit getrennten Gültigkeitsjahren aufteilen")
    else:
        for index, node in enumerate(raw_rules):
            rule = _rule(reader, node, index, reader.at(raw_rules, index))
            if rule is not None:
                rules.append(rule)
    seen: dict[str, Rule] = {}
    for rule in rules:
        if rule.id and rule.id in seen:
            reader.error("rule-duplicate-id", rule.source, f'Regel-id "{rule.id}" wird doppelt verwendet',
                         found=rule.id, expected="eindeutige ids",
                         hint=f"eine umbenennen; die erste steht in Zeile {seen[rule.id].source.line}")
        seen.setdefault(rule.id, rule)
    examples: list[Example] = []
    raw_examples = document.get("examples") or []
    if isinstance(raw_examples, list):
        for index, node in enumerate(raw_examples):
            example = _example(reader, node, reader.at(raw_examples, index))
            if example is not None:
                examples.append(example)
    levies = _levies(reader, document)
    _check_levy_rules(reader, rules, levies, document)
    rate_limits = _rate_limits(reader, document)
    state, state_given = _state(reader, document)
    settings = _notice_settings(reader, document)
    if levies:  # a text for a levy the file does not have would silently not apply (a typo: Jugendamtumlage)
        names = {name.casefold() for levy in levies for name in (levy.id, levy.name)}
        notices = document.get("notices")
        for text in settings.levy_texts:
            if text.levy.casefold() not in names:
                where = reader.at(notices.get("levies"), text.levy) if isinstance(notices, LocDict) and isinstance(
                    notices.get("levies"), LocDict) else reader.at(document)
                reader.warning("rule-notices-unknown-levy", where,
                               f'notices.levies nennt "{text.levy}", aber `levies:` hat keine Umlage dieses Namens'
                               f"{did_you_mean(text.levy, tuple(levy.name for levy in levies))}", found=text.levy,
                               expected=", ".join(levy.name for levy in levies),
                               hint="den Namen oder die id der Umlage aus `levies:` schreiben")
    _state_departures(reader, document, state, valid_from, levies, rate_limits, settings.schedule)
    remedy_notes(reader, document, state, valid_from, settings,
                 _installation_or_none(reader) if "notices" in document or "instalments" in document else None)
    errors = [p for p in reader.problems if p.severity == "error"]
    if not errors:
        _compile(reader, rules)
        errors = [p for p in reader.problems if p.severity == "error"]
    if errors:
        raise RuleFileError(reader.problems)
    description = reader.text(document, "description", required=False).strip()
    return Rulebook(path, sha256, district, valid_from, valid_to, str(hit_policy), tuple(rules), domains,
                    tuple(examples), Location(path, line=1, col=1), description, tuple(levies), rate_limits, state,
                    state_given), [
        p for p in reader.problems if p.severity == "warning"]


def load_rulebook(path: str | Path) -> tuple[Rulebook, list[Problem]]:
    """Read a rule file; returns the rulebook and its warnings. Raises RuleFileError."""
    path = Path(path)
    try:  # a regular file only (a FIFO or /dev/zero is refused before a byte is read), one byte beyond the limit
        with open_regular(path) as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise RuleFileError([Problem("rule-file-unreadable", Location(str(path)), "Die Regeldatei lässt sich nicht lesen",
                                     found=error.strerror, expected="eine lesbare YAML-Datei",
                                     hint="den mit --rules angegebenen Pfad prüfen")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise RuleFileError([_too_large_file(str(path), path.stat().st_size if path.is_file() else None)])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise RuleFileError([Problem("rule-encoding", Location(str(path), line=line), "Die Regeldatei ist nicht UTF-8-kodiert",
                                     found=repr(data[error.start:error.start + 4]), expected="UTF-8-Text",
                                     hint="die Datei als UTF-8 speichern")]) from None
    return parse_rulebook(text, str(path), hashlib.sha256(data).hexdigest())


def load_rulebooks(paths: Iterable[str | Path]) -> list[Rulebook]:
    """Several rule files; every broken file's problems are collected into one RuleFileError."""
    books: list[Rulebook] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            books.append(load_rulebook(path)[0])
        except RuleFileError as error:
            problems.extend(error.problems)
    if problems:
        raise RuleFileError(problems)
    return books


def domain_sources(path: str | Path) -> dict[tuple[str, int], Location]:
    """(column, index) -> file:line:col of each value declared under `domains:` ({} if unreadable)."""
    try:
        document, _ = load(read_regular(path, MAX_FILE_BYTES).decode("utf-8"))
    except (OSError, UnicodeDecodeError, YamlProblem):
        return {}
    domains = document.get("domains") if isinstance(document, LocDict) else None
    if not isinstance(domains, LocDict):
        return {}
    return {(str(column), index): Location(str(path), line=values.pos(index)[0], col=values.pos(index)[1])
            for column, values in domains.items() if isinstance(values, LocList) for index in range(len(values))}


LETTERHEAD_ENV = "ALLOCATION_LETTERHEAD"


def load_notice_settings(path: str | Path, letterhead: str | Path | None = None) -> NoticeSettings:
    """The `instalments:` and `notices:` keys of a rule file, over the installation's letterhead file
    (`letterhead`, else $ALLOCATION_LETTERHEAD, else none). Raises RuleFileError (all problems located)."""
    return with_installation(rule_notice_settings(path), load_installation_letterhead(letterhead))


def rule_notice_settings(path: str | Path) -> NoticeSettings:
    """The rule file's own `instalments:` and `notices:` keys, without the installation's letterhead."""
    return _read_settings(path, "Die Regeldatei", _notice_settings, "den Pfad der Regeldatei prüfen")


def installation_letterhead_path(letterhead: str | Path | None = None) -> Path | None:
    """The installation's letterhead file in effect: `letterhead` (--letterhead), else $ALLOCATION_LETTERHEAD,
    else None."""
    chosen = letterhead if letterhead is not None and str(letterhead).strip() else os.environ.get(LETTERHEAD_ENV, "")
    return Path(chosen) if str(chosen).strip() else None


def _installation_or_none(reader: _Reader) -> NoticeSettings | None:
    """$ALLOCATION_LETTERHEAD's letterhead for `check`'s Hinweise, or None. Where that file is faulty, each of its
    faults is a Hinweis `rule-letterhead-faulty` at its place (`notices` and `benehmen` would refuse it)."""
    try:
        return load_installation_letterhead(None)
    except RuleFileError as error:
        for problem in error.problems:
            reader.warning("rule-letterhead-faulty", problem.location,
                           f"die Briefkopf-Datei der Installation ({LETTERHEAD_ENV}) hat einen Fehler: "
                           f"{problem.message} (Bescheide und Benehmen-Briefe würden abgelehnt)", found=problem.found,
                           expected=problem.expected, hint=problem.hint)
        return None


def load_installation_letterhead(letterhead: str | Path | None = None) -> NoticeSettings | None:
    """The installation's letterhead file (`issuer`, `payment`, `letterhead`): `letterhead`, else
    $ALLOCATION_LETTERHEAD, else None. Raises RuleFileError (all problems located)."""
    chosen = installation_letterhead_path(letterhead)
    if chosen is None:
        return None
    return _read_settings(chosen, "Die Briefkopf-Datei", _installation_settings,
                          f"den Pfad der Briefkopf-Datei prüfen (--letterhead oder {LETTERHEAD_ENV})",
                          LetterheadFileError)


def _read_settings(path: str | Path, what: str, parse, hint: str,
                   refused: type[RuleFileError] = RuleFileError) -> NoticeSettings:
    try:
        text = read_regular(path, MAX_FILE_BYTES).decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise refused([Problem("rule-file-unreadable", Location(str(path)), f"{what} lässt sich nicht lesen",
                               found=getattr(error, "strerror", None) or str(error),
                               expected="eine lesbare UTF-8-YAML-Datei von höchstens "
                                        f"{MAX_FILE_BYTES:,} Bytes".replace(",", "."),
                               hint=hint)]) from None
    reader = _Reader(str(path))
    try:
        document, duplicates = load(text)
    except YamlProblem as error:
        raise refused([Problem("rule-yaml", Location(str(path), line=error.line, col=error.col),
                               f"kein gültiges YAML: {error.message}", found=error.found,
                               expected="eine YAML-Zuordnung (Mapping)",
                               hint=f"{what[0].lower()}{what[1:]} prüfen")]) from None
    _duplicates(reader, str(path), duplicates)
    if not isinstance(document, LocDict):  # empty, a list, a bare text: nothing of what it should say is read
        reader.error("rule-bad-type", Location(str(path), line=1, col=1),
                     f"{what} muss eine Zuordnung sein", found="leer" if document is None else type(document).__name__,
                     expected="eine YAML-Zuordnung (Mapping)", hint=f"{what[0].lower()}{what[1:]} prüfen")
    settings = parse(reader, document if isinstance(document, LocDict) else LocDict())
    if any(p.severity == "error" for p in reader.problems):
        raise refused(reader.problems)
    return settings
