"""The keys `instalments:` and `notices:` of a rule file: the instalment plan (or the state's own), the
Kassenzeichen, the letterhead and the texts per levy. They only matter to `allocation notices` and `benehmen`;
`parse_rulebook` checks them too, so that `check` and `run` report a bad schedule before any data is read.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, fields, replace
from pathlib import Path

from ..core import states as state_law
from ..core.instalments import CHANGE_POLICIES, QUARTERLY_DEFAULT, SCHEDULES, SPLITS, Schedule
from ..core.problems import Location, did_you_mean
from .validation import _Reader, state_law_schedule
from .yamlloc import LocDict, LocList

__all__ = ["NoticeSettings", "LevyNoticeText", "Letterhead", "KASSENZEICHEN_FIELDS"]

KASSENZEICHEN_FIELDS = ("jahr", "ags", "umlage", "nr")
DEFAULT_KASSENZEICHEN = "{jahr}-{ags}-{umlage}"
INSTALMENT_KEYS = ("schedule", "day", "dates", "split")
NOTICE_KEYS = ("issuer", "kassenzeichen", "payment", "change_policy", "levies", "letterhead", "labels")
LETTERHEAD_KEYS = ("authority", "address", "department", "contact", "file_reference", "signatory", "court", "remedy")
CONTACT_KEYS = ("name", "phone", "email")
SIGNATORY_KEYS = ("name", "title")
COURT_KEYS = ("name", "address")
FILE_REFERENCE_FIELDS = ("jahr", "ags", "umlage")
LEVY_TEXT_KEYS = ("legal_basis", "approval", "reasons", "produkt", "sachkonto")


@dataclass(frozen=True, slots=True)
class LevyNoticeText:
    """Texts for one levy on its notices, keyed in the rule file by the levy's name or id; `produkt` and `sachkonto`
    are its account assignment in the Sollstellung file for the finance system."""

    levy: str
    legal_basis: str = ""
    approval: str = ""
    reasons: str = ""
    produkt: str = ""
    sachkonto: str = ""


@dataclass(frozen=True, slots=True)
class Letterhead:
    """Who sends the notices and how to reach them, who signs, and where to sue (`notices.letterhead`); empty
    texts are not configured (a final notice that would show a placeholder for them is refused)."""

    authority: str = ""
    address: tuple[str, ...] = ()
    department: str = ""
    contact_name: str = ""
    contact_phone: str = ""
    contact_email: str = ""
    file_reference: str = ""  # pattern: {jahr}, {ags}, {umlage}
    signatory_name: str = ""
    signatory_title: str = ""
    court_name: str = ""
    court_address: str = ""
    # the remedy the Kreis has checked for its state (klage, widerspruch, wahl); empty: the state profile's verified
    # fact decides, and where it is not verified a final notice is refused (`notices.remedy_in_force`)
    remedy: str = ""

    def template_data(self) -> dict:
        """The letterhead as the letter templates read it (`d.letterhead`), for notices and Benehmen letters."""
        return {"authority": self.authority, "address": list(self.address), "department": self.department,
                "contact": {"name": self.contact_name, "phone": self.contact_phone, "email": self.contact_email},
                "signatory": {"name": self.signatory_name, "title": self.signatory_title},
                "court": {"name": self.court_name, "address": self.court_address}, "remedy": self.remedy}


@dataclass(frozen=True, slots=True)
class NoticeSettings:
    """What `allocation notices` takes from the rule file. `schedule` is None without `instalments:`."""

    schedule: Schedule | None
    kassenzeichen: str = DEFAULT_KASSENZEICHEN
    payment: str = ""
    issuer: str = ""
    change_policy: str = "spread"
    levy_texts: tuple[LevyNoticeText, ...] = ()
    source: Location | None = None
    schedule_basis: str = ""  # the norm of a plan taken from the state's profile (the file has no `instalments:`)
    letterhead: Letterhead = Letterhead()
    labels: tuple[tuple[str, str], ...] = ()  # column -> how a letter names it (`notices.labels`)
    remedy_source: str = ""  # where `letterhead.remedy` was given: the rule file or the installation's letterhead file
    # where a missing letterhead text is to be entered: the rule file's `notices.letterhead`, else its `notices:`;
    # with the installation's letterhead file, that file's `letterhead:` (the rule file of a final run cannot change);
    # None where the rule file has neither (the refusal then points at its first line)
    letterhead_at: Location | None = None

    def text_for(self, *names: str) -> LevyNoticeText | None:
        wanted = {name.casefold() for name in names if name}
        return next((text for text in self.levy_texts if text.levy.casefold() in wanted), None)


def _bad_instalments(reader: _Reader, where: Location, message: str, found: object, expected: str, hint: str) -> None:
    reader.error("rule-bad-instalments", where, message, found=repr(found), expected=expected, hint=hint)


def _month_day(reader: _Reader, node: LocList, index: int) -> tuple[int, int] | None:
    import calendar

    value = node[index]
    parts = value.split("-") if isinstance(value, str) else []
    try:
        month, day = (int(part) for part in parts)
        # a real day of a leap year: 02-29 is allowed (28 February in other years), 02-30 is not
        if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(2024, month)[1]):
            raise ValueError(value)
    except ValueError:
        _bad_instalments(reader, reader.at(node, index), "ein Fälligkeitstag muss Monat-Tag sein", value,
                         'z. B. "02-15" (in Anführungszeichen)', "Monat und Tag zweistellig mit Bindestrich schreiben")
        return None
    return month, day


def _schedule(reader: _Reader, node: object, where: Location) -> Schedule | None:
    if not isinstance(node, LocDict):
        _bad_instalments(reader, where, '"instalments" muss eine Zuordnung sein', node,
                         "{schedule: monthly, day: 15}", "den Zahlungsplan als Zuordnung schreiben")
        return None
    before = len(reader.problems)
    reader.unknown_keys(node, INSTALMENT_KEYS, "instalments")
    kind, split = node.get("schedule"), node.get("split", "equal")
    if kind not in SCHEDULES:
        _bad_instalments(reader, reader.at(node, "schedule", True),
                         f'unbekannter Zahlungsplan{did_you_mean(str(kind), SCHEDULES)}', kind, "monthly oder quarterly",
                         "`schedule: monthly` (mit `day`) oder `schedule: quarterly` (mit `dates`) schreiben")
    if split not in SPLITS:
        _bad_instalments(reader, reader.at(node, "split", True), f'unbekannte Aufteilung{did_you_mean(str(split), SPLITS)}',
                         split, "equal oder saarland", "`split: equal` (gleiche Teile) oder `split: saarland` schreiben")
    schedule = None
    if kind == "monthly":
        day = node.get("day")
        if "dates" in node:
            _bad_instalments(reader, reader.at(node, "dates"), '"dates" gilt nur für schedule: quarterly', "dates",
                             "day", "für monatliche Raten nur `day` angeben")
        if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 31:
            _bad_instalments(reader, reader.at(node, "day", True) if "day" in node else reader.at(node),
                             "ein monatlicher Zahlungsplan braucht einen Tag des Monats", day, "eine ganze Zahl von 1 bis 31",
                             "z. B. `day: 15` (NRW), `day: 20` (Sachsen-Anhalt), `day: 25` (Bayern)")
        else:
            schedule = Schedule.monthly(day, str(split))
    elif kind == "quarterly":
        raw = node.get("dates")
        days = QUARTERLY_DEFAULT
        if "day" in node:
            _bad_instalments(reader, reader.at(node, "day"), '"day" gilt nur für schedule: monthly', "day", "dates",
                             'für vierteljährliche Raten `dates: ["02-15", "05-15", "08-15", "11-15"]` angeben')
        if raw is not None:
            if not isinstance(raw, LocList) or len(raw) != 4:
                _bad_instalments(reader, reader.at(node, "dates", True), "ein vierteljährlicher Plan braucht vier Termine",
                                 raw, '["02-15", "05-15", "08-15", "11-15"]', "genau vier Termine aufzählen")
                raw = LocList()
            parsed = [_month_day(reader, raw, index) for index in range(len(raw))]
            if raw and all(parsed):
                days = tuple(parsed)
                if list(days) != sorted(set(days)):
                    _bad_instalments(reader, reader.at(node, "dates", True),
                                     "die Termine müssen im Jahr aufsteigend und verschieden sein", raw,
                                     "aufsteigende Termine", "die Termine nach Monat ordnen")
        schedule = Schedule.quarterly(days, str(split))
    if schedule is not None and split == "saarland" and 12 % len(schedule.days):
        _bad_instalments(reader, reader.at(node, "split", True), "saarland braucht eine Zahl von Raten, die 12 teilt",
                         split, "monatlich oder vierteljährlich", "den Zahlungsplan prüfen")
    return schedule if len(reader.problems) == before else None


def _kassenzeichen(reader: _Reader, node: LocDict) -> str:
    pattern = reader.text(node, "kassenzeichen", required=False) or DEFAULT_KASSENZEICHEN
    where = reader.at(node, "kassenzeichen", True)
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(pattern)
                  if name is not None]
        # only a zero-padded width (e.g. {nr:02d}): a spec like {ags:>1000000000} would build a huge text
        unknown = [name for name, spec, conversion in fields
                   if name not in KASSENZEICHEN_FIELDS or conversion or not re.fullmatch(r"(0?[1-9]?d?)?", spec or "")]
        if not unknown:
            pattern.format(jahr=2022, ags="05170004", umlage="kreisumlage", nr=1)
    except (ValueError, KeyError, IndexError) as error:
        unknown = [str(error)]
    if unknown:
        reader.error("rule-bad-notices", where, "das Kassenzeichen-Muster enthält einen unbekannten Platzhalter",
                     found=", ".join(unknown), expected="{jahr}, {ags}, {umlage}, {nr} (auch {nr:02d})",
                     hint='z. B. `kassenzeichen: "KU-{jahr}-{ags}-{umlage}"`')
    return pattern


def _levy_texts(reader: _Reader, node: LocDict) -> tuple[LevyNoticeText, ...]:
    raw = node.get("levies")
    if raw is None:
        return ()
    if not isinstance(raw, LocDict):
        reader.error("rule-bad-notices", reader.at(node, "levies", True), '"levies" muss Umlagen Texte zuordnen',
                     found=repr(raw), expected="{Kreisumlage: {legal_basis: ..., approval: ..., reasons: ...}}",
                     hint="je Umlage (Name oder id) die Texte angeben")
        return ()
    texts = []
    for levy, entry in raw.items():
        if not isinstance(entry, LocDict):
            reader.error("rule-bad-notices", reader.at(raw, levy, True), f'die Texte zu "{levy}" müssen eine Zuordnung sein',
                         found=repr(entry), expected="legal_basis, approval, reasons", hint="die Texte einrücken")
            continue
        reader.unknown_keys(entry, LEVY_TEXT_KEYS, f'notices.levies.{levy}')
        texts.append(LevyNoticeText(str(levy), *(reader.text(entry, key, required=False) for key in LEVY_TEXT_KEYS)))
    return tuple(texts)


def _pattern(reader: _Reader, node: LocDict, key: str, fields: tuple[str, ...], example: dict) -> str:
    """A text with {placeholders} from `fields` only (no format spec beyond a zero-padded width)."""
    pattern = reader.text(node, key, required=False)
    try:
        names = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(pattern)
                 if name is not None]
        unknown = [name for name, spec, conversion in names
                   if name not in fields or conversion or not re.fullmatch(r"(0?[1-9]?d?)?", spec or "")]
        if not unknown:
            pattern.format(**example)
    except (ValueError, KeyError, IndexError) as error:
        unknown = [str(error)]
    if unknown:
        reader.error("rule-bad-notices", reader.at(node, key, True), f"das Muster {key} enthält einen unbekannten "
                     "Platzhalter", found=", ".join(unknown), expected=", ".join("{" + f + "}" for f in fields),
                     hint='z. B. `file_reference: "20.1-{jahr}-{ags}"`')
        return ""
    return pattern


def _section(reader: _Reader, node: LocDict, key: str, keys: tuple[str, ...], what: str) -> LocDict:
    value = node.get(key, LocDict())
    if not isinstance(value, LocDict):
        reader.error("rule-bad-notices", reader.at(node, key, True), f'"{key}" muss eine Zuordnung sein',
                     found=repr(value), expected=", ".join(keys), hint=f"die Angaben zu {what} einrücken")
        return LocDict()
    reader.unknown_keys(value, keys, f"notices.letterhead.{key}" if what != "Briefkopf" else "notices.letterhead")
    return value


def _letterhead(reader: _Reader, node: LocDict) -> Letterhead:
    head = _section(reader, node, "letterhead", LETTERHEAD_KEYS, "Briefkopf")
    raw_address = head.get("address")
    if raw_address is None:
        address: tuple[str, ...] = ()
    elif isinstance(raw_address, LocList) and all(isinstance(line, str) for line in raw_address):
        address = tuple(str(line) for line in raw_address)
    elif isinstance(raw_address, str):
        address = tuple(line.strip() for line in raw_address.splitlines() if line.strip())
    else:
        reader.error("rule-bad-notices", reader.at(head, "address", True), '"address" muss Zeilen nennen',
                     found=repr(raw_address), expected='["Reeser Landstraße 31", "46483 Wesel"]',
                     hint="die Anschrift als Liste von Zeilen schreiben")
        address = ()
    contact = _section(reader, head, "contact", CONTACT_KEYS, "der Kontaktperson")
    signatory = _section(reader, head, "signatory", SIGNATORY_KEYS, "der Unterschrift")
    court = _section(reader, head, "court", COURT_KEYS, "dem Verwaltungsgericht")

    def text(node: LocDict, key: str) -> str:  # blank is not given: "   " must not pass for a court
        return " ".join(reader.text(node, key, required=False).split())

    address = tuple(line for line in (" ".join(line.split()) for line in address) if line)
    written = text(head, "remedy")
    remedy = written.casefold()
    if remedy and remedy not in state_law.REMEDIES:
        reader.error("rule-bad-notices", reader.at(head, "remedy", True), "unbekannter Rechtsbehelf"
                     f"{did_you_mean(remedy, state_law.REMEDIES)}", found=repr(written),
                     expected="klage, widerspruch oder wahl",
                     hint="klage: unmittelbar Klage; widerspruch: erst Widerspruch bei der Behörde; wahl: Widerspruch "
                          "oder Klage nach Wahl (so wie das Landesrecht es für diesen Bescheid vorsieht)")
        remedy = ""
    return Letterhead(
        text(head, "authority"), address, text(head, "department"),
        *(text(contact, key) for key in CONTACT_KEYS),
        _pattern(reader, head, "file_reference", FILE_REFERENCE_FIELDS,
                 {"jahr": 2022, "ags": "05170004", "umlage": "kreisumlage"}),
        *(text(signatory, key) for key in SIGNATORY_KEYS),
        *(text(court, key) for key in COURT_KEYS), remedy)


def _labels(reader: _Reader, node: LocDict) -> tuple[tuple[str, str], ...]:
    raw = node.get("labels")
    if raw is None:
        return ()
    if not isinstance(raw, LocDict) or not all(isinstance(v, str) and v.strip() for v in raw.values()):
        reader.error("rule-bad-notices", reader.at(node, "labels", True), '"labels" muss Spalten Texte zuordnen',
                     found=repr(raw), expected='{Schluesselzuweisungen: "Schlüsselzuweisungen"}',
                     hint="je Spalte den Text angeben, mit dem der Bescheid sie nennt")
        return ()
    return tuple((str(column), str(text).strip()) for column, text in raw.items())


def _notice_settings(reader: _Reader, document: LocDict) -> NoticeSettings:
    schedule = _schedule(reader, document["instalments"], reader.at(document, "instalments", True)) \
        if "instalments" in document else None
    basis = ""
    if "instalments" not in document:  # the state's own plan where its law fixes one (a verified fact only)
        state = document.get("state") if document.get("state") in state_law.STATES else state_law.DEFAULT_STATE
        year = document.get("valid_from") if isinstance(document.get("valid_from"), int) else None
        law = state_law.profile(str(state))
        value = law.applied("instalments", year)
        if value is not None:
            schedule, basis = state_law_schedule(value), law.fact("instalments", year).norm
    node = document.get("notices", LocDict())
    if not isinstance(node, LocDict):
        reader.error("rule-bad-notices", reader.at(document, "notices", True), '"notices" muss eine Zuordnung sein',
                     found=repr(node), expected="kassenzeichen, payment, issuer, change_policy, levies",
                     hint="die Bescheid-Einstellungen einrücken")
        node = LocDict()
    reader.unknown_keys(node, NOTICE_KEYS, "notices")
    policy = node.get("change_policy", "spread")
    if policy not in CHANGE_POLICIES:
        reader.error("rule-bad-notices", reader.at(node, "change_policy", True),
                     f"unbekannte change_policy{did_you_mean(str(policy), CHANGE_POLICIES)}", found=repr(policy),
                     expected="spread oder at_once",
                     hint="spread: Differenz auf die offenen Raten verteilen; at_once: mit der nächsten Rate")
    head = _letterhead(reader, node)
    return NoticeSettings(schedule, _kassenzeichen(reader, node), reader.text(node, "payment", required=False),
                          reader.text(node, "issuer", required=False), str(policy), _levy_texts(reader, node),
                          reader.at(document, "instalments") if "instalments" in document else Location(reader.file),
                          basis, head, _labels(reader, node),
                          "notices.letterhead.remedy der Regeldatei" if head.remedy else "",
                          reader.at(node, "letterhead") if "letterhead" in node
                          else reader.at(document, "notices") if "notices" in document else None)


def remedy_notes(reader: _Reader, document: LocDict, state: str, year: int, settings: NoticeSettings,
                 installation: NoticeSettings | None = None) -> None:
    """Hinweise before any notice is written (`check`, `run`): a file meant for notices (it has `notices:` or
    `instalments:`) that names no remedy, neither it nor the installation's letterhead file (`installation`, from
    $ALLOCATION_LETTERHEAD), where the state's profile has not verified one (its final notices would be refused,
    and after a final run the rule file can no longer change); a remedy other than the one the profile read
    (verified or not: a file copied from another state). A remedy written wrong is an error already."""
    if "notices" not in document and "instalments" not in document:
        return
    notices = document.get("notices")
    head = notices.get("letterhead") if isinstance(notices, LocDict) else None
    where = reader.at(head, "remedy", True) if isinstance(head, LocDict) and "remedy" in head else \
        reader.at(notices, "letterhead") if isinstance(notices, LocDict) and "letterhead" in notices else \
        reader.at(document, "notices" if "notices" in document else "instalments")
    law = state_law.profile(state)
    fact = law.fact("remedy", year)
    read = fact.value.get("kind") if fact is not None and isinstance(fact.value, dict) else None
    given = settings.letterhead.remedy or (installation.letterhead.remedy if installation is not None else "")
    raw = head.get("remedy") if isinstance(head, LocDict) else None
    if raw is not None and not given and (not isinstance(raw, str) or raw.strip()):
        return  # written, but not as klage, widerspruch or wahl: the error says so
    if not given and law.applied("remedy", year) is None:
        reader.warning("rule-remedy-missing", where,
                       f"kein Rechtsbehelf (notices.letterhead.remedy), und das Landesprofil {state} hat ihn nicht "
                       "verifiziert: endgültige Bescheide würden abgelehnt",
                       found="kein remedy:", expected="remedy: klage, widerspruch oder wahl",
                       hint=f"den Rechtsbehelf nach dem Recht des Landes prüfen (allocation states {state}) und vor "
                            "dem Echtlauf eintragen; nach einem Echtlauf ändert sich die Regeldatei nicht mehr, dann "
                            "remedy im Briefkopf der Installation angeben (--letterhead)")
    elif given and read and given != read:  # also against an unverified reading: a Hinweis, never a default
        reader.warning("rule-remedy-differs", where,
                       f"remedy: {given}, das Landesprofil {state} liest {read} ({fact.cite()})",
                       found=given, expected=str(read),
                       hint=f"prüfen, ob der Rechtsbehelf zum Recht des Landes passt (allocation states {state}); "
                            "eine aus einem anderen Land übernommene Regeldatei nennt oft den falschen")


# A letterhead file (`--letterhead`, $ALLOCATION_LETTERHEAD): what one installation's notices and letters share.
INSTALLATION_KEYS = ("issuer", "payment", "letterhead")


def _installation_settings(reader: _Reader, document: LocDict) -> NoticeSettings:
    """The installation's `issuer`, `payment` and `letterhead` (the keys of `notices:` in a rule file)."""
    reader.unknown_keys(document, INSTALLATION_KEYS, "Briefkopf-Datei")
    head = _letterhead(reader, document)
    return NoticeSettings(None, issuer=reader.text(document, "issuer", required=False),
                          payment=reader.text(document, "payment", required=False),
                          letterhead=head, source=Location(reader.file),
                          remedy_source=f"letterhead.remedy der Briefkopf-Datei {Path(reader.file).name}"
                          if head.remedy else "",
                          letterhead_at=reader.at(document, "letterhead") if "letterhead" in document
                          else Location(reader.file, line=1, col=1))


def with_installation(settings: NoticeSettings, installation: NoticeSettings | None) -> NoticeSettings:
    """The rule file's settings over the installation's: each letterhead field, the issuer and the payment text
    the rule file leaves empty comes from the installation's letterhead file."""
    if installation is None:
        return settings
    own, common = settings.letterhead, installation.letterhead
    head = Letterhead(**{f.name: getattr(own, f.name) or getattr(common, f.name) for f in fields(Letterhead)})
    return replace(settings, letterhead=head, issuer=settings.issuer or installation.issuer,
                   payment=settings.payment or installation.payment,
                   remedy_source=settings.remedy_source if own.remedy else installation.remedy_source,
                   letterhead_at=installation.letterhead_at)
