"""State profiles: what each Flächenland's law says about a levy (Umlage), as cited facts.

A profile per state ships as package data (`state_profiles/XX.yaml`). It holds versions, each valid for a span
of budget years, and each version holds facts. A fact names its norm, the source it was read from (a URL), the
words read there, and a status: `verified` (the decisive words were read in the source) or `unverified` (a belief
with its reason). **Only verified facts are applied** (`Profile.applied`); an unverified fact is shown by
`allocation states` and never becomes a default or a check.

The facts a version may hold are `FACTS`; the machine-readable part of each is its `value`, checked here. The
levels that levy (Umlageverband) and the words each uses are `LEVELS`. Nothing here reads user input: the
profiles are the package's own files, loaded once and checked strictly, so a broken profile fails the tests.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import yaml

__all__ = ["STATES", "STATE_NAMES", "DEFAULT_STATE", "FACTS", "LEVELS", "DEFAULT_LEVEL", "PROVISIONAL_RULES", "SETTLEMENT_TEXTS",
           "Fact", "Profile", "ProfileVersion", "Level", "profile", "profiles", "ProfileBroken", "spread_ratio",
           "provisional_norm", "provisional_rule", "level", "NW_PROVISIONAL_NORM", "addressee",
           "MEMBER_KEY"]

# The 13 Flächenländer (issue 21); the codes of ISO 3166-2:DE without the "DE-".
STATE_NAMES = {
    "BW": "Baden-Württemberg", "BY": "Bayern", "BB": "Brandenburg", "HE": "Hessen", "MV": "Mecklenburg-Vorpommern",
    "NI": "Niedersachsen", "NW": "Nordrhein-Westfalen", "RP": "Rheinland-Pfalz", "SL": "Saarland", "SN": "Sachsen",
    "ST": "Sachsen-Anhalt", "SH": "Schleswig-Holstein", "TH": "Thüringen",
}
STATES = tuple(STATE_NAMES)
DEFAULT_STATE = "NW"  # rule files without `state:` (README, migration note)

FACTS = {
    "legal_basis": "Rechtsgrundlage der Umlage",
    "levy_base": "Umlagegrundlagen (Bestandteile, Gewichte, Jahr)",
    "rate_uniform": "ein einheitlicher Umlagesatz",
    "rate_spread": "Spreizung der Umlagesätze je Bestandteil",
    "key_allocation_cap": "Satz auf Schlüsselzuweisungen höchstens der niedrigste Steuerkraft-Satz",
    "approval": "Genehmigung",
    "instalments": "Fälligkeit und Teilbeträge",
    "provisional": "vor Inkrafttreten der Haushaltssatzung (vorläufige Erhebung)",
    "in_year_change": "Änderung im Laufe des Jahres",
    "interest": "Zinsen bei verspäteter Zahlung",
    "consultation": "Beteiligung der Umlagepflichtigen vor der Festsetzung",
    "notice_contents": "Inhalt des Umlagebescheids",
    "remedy": "Rechtsbehelf",
    "special_levies": "besondere Umlagen",
    "levels": "weitere umlageerhebende Ebenen",
}

# How the provisional period works (the `provisional` fact's `rule`):
PROVISIONAL_RULES = {
    "previous_rate_new_bases": "Umlagesatz des Vorjahres auf die Umlagegrundlagen des Jahres",
    "previous_instalments": "Teilbeträge des Vorjahres laufen weiter",
    "last_published_rates": "zuletzt bekannt gemachte Umlagesätze auf die Umlagegrundlagen des Jahres",
}
SETTLEMENTS = ("next_due_date", "remaining_instalments")
SETTLEMENT_TEXTS = {"next_due_date": "Abrechnung zum nächsten Fälligkeitstermin",
                    "remaining_instalments": "Abrechnung über die restlichen Teilbeträge"}
REMEDIES = ("widerspruch", "klage", "wahl")
CONSULTATIONS = ("benehmen", "anhoerung", "beteiligung")


@dataclass(frozen=True, slots=True)
class Level:
    """A level that levies: its levy's name, who pays it, and the keys its payers carry."""

    name: str
    levy: str  # the levy's name in letters and workbooks
    payer: str  # one payer, as a letter addresses it
    payers: str  # the payers together, after an article ("die kreisangehörigen Gemeinden")
    counted: str  # the payers after a number ("13 umlagepflichtige Gemeinden")
    keys: tuple[str, ...]  # "ags" (8-digit Gemeinde), "kreis" (5-digit Kreisschlüssel or a kreisfreie Stadt's AGS),
    # "regional" (12-digit Regionalschlüssel)


# Keys (README, "Umlageverband"): the Amtlicher Gemeindeschlüssel has 8 digits (2 Land, 1 Regierungsbezirk,
# 2 Kreis, 3 Gemeinde), the Kreisschlüssel its first 5, the Regionalschlüssel 12 (2 Land, 1 RB, 2 Kreis,
# 4 Gemeindeverband, 3 Gemeinde). A kreisfreie Stadt's AGS ends in 000.
LEVELS = {
    "Kreis": Level("Kreis", "Kreisumlage", "kreisangehörige Gemeinde", "kreisangehörigen Gemeinden", "Gemeinden",
                   ("ags",)),
    "Bezirk": Level("Bezirk", "Bezirksumlage", "Mitglied (Landkreis oder kreisfreie Stadt)",
                    "Landkreise und kreisfreien Städte", "Mitglieder (Landkreise und kreisfreie Städte)", ("kreis",)),
    "Landschaftsverband": Level("Landschaftsverband", "Landschaftsumlage", "Mitglied (Kreis oder kreisfreie Stadt)",
                                "Kreise und kreisfreien Städte", "Mitglieder (Kreise und kreisfreie Städte)",
                                ("kreis",)),
    "Amt": Level("Amt", "Amtsumlage", "amtsangehörige Gemeinde", "amtsangehörigen Gemeinden",
                 "amtsangehörige Gemeinden", ("ags", "regional")),
    "Verbandsgemeinde": Level("Verbandsgemeinde", "Verbandsgemeindeumlage", "Ortsgemeinde", "Ortsgemeinden",
                              "Ortsgemeinden", ("ags", "regional")),
    "Samtgemeinde": Level("Samtgemeinde", "Samtgemeindeumlage", "Mitgliedsgemeinde", "Mitgliedsgemeinden",
                          "Mitgliedsgemeinden", ("ags", "regional")),
    "Verwaltungsgemeinschaft": Level("Verwaltungsgemeinschaft", "Verwaltungsgemeinschaftsumlage", "Mitgliedsgemeinde",
                                     "Mitgliedsgemeinden", "Mitgliedsgemeinden", ("ags", "regional")),
    "Zweckverband": Level("Zweckverband", "Verbandsumlage", "Verbandsmitglied", "Verbandsmitglieder",
                          "Verbandsmitglieder", ("ags", "kreis", "regional")),
}
DEFAULT_LEVEL = "Kreis"
MEMBER_KEY = re.compile(r"[0-9]{5}|[0-9]{8}|[0-9]{12}")  # a member's key of any level, ASCII digits (fullmatch)

_URL = re.compile(r"https?://\S+")
_DAY = re.compile(r"(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")


class ProfileBroken(ValueError):
    """A shipped profile does not follow the format (a defect of the package, caught by the tests)."""


@dataclass(frozen=True, slots=True)
class Fact:
    name: str
    status: str  # "verified" | "unverified"
    norm: str
    source: str  # where it was read (URL)
    quote: str  # the words read there (verified facts)
    value: object = None
    note: str = ""
    read: str = ""  # when it was read (YYYY-MM)

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    def cite(self) -> str:
        """"Art. 19 Abs. 3 BayFAG" or "Art. 19 Abs. 3 BayFAG (nicht verifiziert)"."""
        return self.norm if self.verified else f"{self.norm} (nicht verifiziert)"


@dataclass(frozen=True, slots=True)
class ProfileVersion:
    valid_from: int
    valid_to: int | None
    facts: Mapping[str, Fact]

    def covers(self, year: int) -> bool:
        return self.valid_from <= year and (self.valid_to is None or year <= self.valid_to)


@dataclass(frozen=True, slots=True)
class Profile:
    state: str
    name: str
    versions: tuple[ProfileVersion, ...]
    path: str = field(default="", compare=False)

    def version(self, year: int | None = None) -> ProfileVersion:
        """The version for a budget year (the newest without a year); the nearest one outside all spans."""
        if year is None:
            return self.versions[-1]
        for version in self.versions:
            if version.covers(year):
                return version
        return min(self.versions, key=lambda v: abs(v.valid_from - year))

    def fact(self, name: str, year: int | None = None) -> Fact | None:
        return self.version(year).facts.get(name)

    def applied(self, name: str, year: int | None = None) -> object:
        """A fact's value if it is verified, else None: an unverified fact is never applied."""
        fact = self.fact(name, year)
        return fact.value if fact is not None and fact.verified else None

    def covers(self, year: int) -> bool:
        return any(version.covers(year) for version in self.versions)


def _broken(path: Path, message: str) -> ProfileBroken:
    return ProfileBroken(f"{path.name}: {message}")


def _check_value(path: Path, name: str, value: object) -> None:
    """The machine-readable part of a fact (those the product applies) has the shape the code expects."""
    def need(condition: bool, what: str) -> None:
        if not condition:
            raise _broken(path, f"{name}.value: {what}, gefunden {value!r}")

    if name == "levy_base":
        need(isinstance(value, dict) and isinstance(value.get("components"), dict) and value["components"],
             "components: {Spalte: Gewicht in %}")
        for column, weight in value["components"].items():
            need(isinstance(column, str) and isinstance(weight, (int, float, str)) and not isinstance(weight, bool)
                 and 0 < Decimal(str(weight)) <= 100, "Gewichte über 0 bis 100")
        # amounts the law subtracts (a Finanzausgleichsumlage): a levy `base:` cannot subtract yet, so where the
        # law does, the template asks for the Umlagegrundlagen themselves and `check` says so
        need(isinstance(value.get("deductions", []), list)
             and all(isinstance(d, str) and d for d in value.get("deductions", [])), "deductions: [Spalte, ...]")
    elif name == "rate_uniform" or name == "key_allocation_cap":
        need(value is True or value is False, "true oder false")
    elif name == "rate_spread":
        need(isinstance(value, dict) and isinstance(value.get("max_over_lowest"), str)
             and re.fullmatch(r"[0-9]+/[0-9]+", value["max_over_lowest"]) is not None
             and value.get("binding") in ("muss", "soll"), "{max_over_lowest: '1/3', binding: muss|soll}")
    elif name == "instalments":
        need(isinstance(value, dict) and value.get("schedule") in ("monthly", "quarterly"), "schedule: monthly|quarterly")
        if value["schedule"] == "monthly":
            need(isinstance(value.get("day"), int) and 1 <= value["day"] <= 31, "day: 1..31")
        else:
            need(isinstance(value.get("days"), list) and len(value["days"]) == 4
                 and all(isinstance(d, str) and _DAY.fullmatch(d) for d in value["days"]), "days: vier 'MM-TT'")
        need(value.get("split", "equal") in ("equal", "saarland"), "split: equal|saarland")
    elif name == "provisional":
        need(isinstance(value, dict) and value.get("rule") in PROVISIONAL_RULES
             and value.get("settlement") in SETTLEMENTS + (None,),  # no settlement: the law read says none
             f"rule: {', '.join(PROVISIONAL_RULES)}; settlement (nur wenn gelesen): {', '.join(SETTLEMENTS)}")
    elif name == "remedy":
        need(isinstance(value, dict) and value.get("kind") in REMEDIES, f"kind: {', '.join(REMEDIES)}")
    elif name == "consultation":
        need(isinstance(value, dict) and value.get("kind") in CONSULTATIONS, f"kind: {', '.join(CONSULTATIONS)}")
    elif name == "levels":
        need(isinstance(value, dict) and all(level in LEVELS for level in value), f"Ebenen aus {', '.join(LEVELS)}")
    elif name == "in_year_change":
        need(isinstance(value, dict), "ein Eintrag mit times, increase_before, retroactive")
        if "increase_before" in value:
            need(isinstance(value["increase_before"], str) and _DAY.fullmatch(value["increase_before"]) is not None,
                 "increase_before: 'MM-TT'")


def _fact(path: Path, name: str, raw: object) -> Fact:
    if name not in FACTS:
        raise _broken(path, f"unbekannte Angabe {name!r}")
    if not isinstance(raw, dict):
        raise _broken(path, f"{name}: ein Eintrag mit status, norm, source erwartet")
    unknown = set(raw) - {"status", "norm", "source", "quote", "value", "note", "read"}
    if unknown:
        raise _broken(path, f"{name}: unbekannte Schlüssel {sorted(unknown)}")
    status, norm, source, quote = (raw.get(key) for key in ("status", "norm", "source", "quote"))
    if status not in ("verified", "unverified"):
        raise _broken(path, f"{name}: status muss verified oder unverified sein")
    if not isinstance(norm, str) or not norm.strip():
        raise _broken(path, f"{name}: norm fehlt")
    if status == "verified":
        if not isinstance(source, str) or not _URL.search(source):
            raise _broken(path, f"{name}: eine verifizierte Angabe nennt ihre Quelle (URL)")
        if not isinstance(quote, str) or len(quote.strip()) < 10:
            raise _broken(path, f"{name}: eine verifizierte Angabe zitiert den gelesenen Wortlaut")
    elif not isinstance(raw.get("note"), str) or not raw["note"].strip():
        raise _broken(path, f"{name}: eine nicht verifizierte Angabe sagt in note, warum")
    if "value" in raw:
        _check_value(path, name, raw["value"])
    return Fact(name, status, norm.strip(), str(source or "").strip(), str(quote or "").strip(), raw.get("value"),
                str(raw.get("note") or "").strip(), str(raw.get("read") or ""))


def _load(path: Path) -> Profile:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or set(data) - {"state", "name", "versions"}:
        raise _broken(path, "oberste Schlüssel: state, name, versions")
    state = data.get("state")
    if state not in STATES or path.stem != state:
        raise _broken(path, f"state {state!r} passt nicht zum Dateinamen")
    versions = []
    for raw in data.get("versions") or ():
        start, end = raw.get("valid_from"), raw.get("valid_to")
        if not isinstance(start, int) or not (end is None or isinstance(end, int) and end >= start):
            raise _broken(path, "valid_from/valid_to müssen Jahre sein (valid_to leer = offen)")
        facts = {name: _fact(path, name, value) for name, value in (raw.get("facts") or {}).items()}
        versions.append(ProfileVersion(start, end, facts))
    if not versions:
        raise _broken(path, "keine Version")
    versions.sort(key=lambda v: v.valid_from)
    for earlier, later in zip(versions, versions[1:]):
        if earlier.valid_to is None or earlier.valid_to >= later.valid_from:
            raise _broken(path, "Versionen überlappen")
    return Profile(state, str(data.get("name") or STATE_NAMES[state]), tuple(versions), str(path))


_FOLDER = Path(__file__).resolve().parent / "state_profiles"


@lru_cache(maxsize=None)
def profile(state: str) -> Profile:
    """The profile of a state (a code of STATES)."""
    if state not in STATES:
        raise KeyError(state)
    return _load(_FOLDER / f"{state}.yaml")


def profiles() -> tuple[Profile, ...]:
    return tuple(profile(state) for state in STATES)


def spread_ratio(fact_value: Mapping[str, object]) -> Fraction:
    """`max_over_lowest: "1/3"` -> 4/3: the highest rate may be at most this multiple of the lowest."""
    return 1 + Fraction(str(fact_value["max_over_lowest"]))


NW_PROVISIONAL_NORM = "§ 56 Abs. 1 KrO NRW"  # the Protokoll label NW outputs carry (read back by `notices`)


def provisional_norm(state: str) -> str:
    """The norm of the provisional period, as the Protokoll's `Vorläufig (…)` label names it."""
    if state == DEFAULT_STATE:
        return NW_PROVISIONAL_NORM
    fact = profile(state).fact("provisional")
    return fact.norm if fact is not None and fact.verified else f"Landesrecht {state}, nicht verifiziert"


def provisional_rule(state: str) -> str:
    """The provisional rule's text (PROVISIONAL_RULES), or that it is not verified."""
    value = profile(state).applied("provisional")
    if not value:
        return "die Regel des Landes ist nicht verifiziert"
    settlement = SETTLEMENT_TEXTS.get(value.get("settlement"), "")
    return PROVISIONAL_RULES[value["rule"]] + (f"; {settlement}" if settlement else "")


def level(name: str) -> Level:
    return LEVELS.get(name, LEVELS[DEFAULT_LEVEL])


def addressee(level_name: str, key: str) -> tuple[str, str]:
    """Who a letter to a member is addressed to, and the office: a Landkreis (5-digit key) its Landrat, a kreisfreie
    Stadt (AGS ending in 000, as member of a Bezirk or Landschaftsverband) its Oberbürgermeister, an Ortsgemeinde
    of a Verbandsgemeinde its Ortsbürgermeister, every other Gemeinde its Bürgermeister."""
    if len(key) == 5:
        return "Der Landrat / Die Landrätin", "Kreiskämmerei"
    if level_name in ("Bezirk", "Landschaftsverband") and key.endswith("000"):
        return "Der Oberbürgermeister / Die Oberbürgermeisterin", "Kämmerei"
    if level_name == "Verbandsgemeinde":
        return "Der Ortsbürgermeister / Die Ortsbürgermeisterin", "über die Verbandsgemeindeverwaltung"
    return "Der Bürgermeister / Die Bürgermeisterin", "Kämmerei"
