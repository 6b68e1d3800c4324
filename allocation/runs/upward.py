"""The levy upward: what a body pays the level above (a Kreis's Bezirksumlage or Landschaftsumlage) as its own
cost item, taken from that body's verified output workbook (`run --upward OBERE-EBENE.xlsx`).

The upper output is read back like every earlier output (`readback.read_output`: bounds, its manifest beside it,
the bytes' SHA-256, the same budget year). The body's own row is found by the Parameter `Gebietsschluessel` of the
input (its Kreisschlüssel, say) in the upper output's `Umlagen` sheet; each levy of that row becomes one cost item
`UMLAGE-<levy>` (Kategorie = the levy's name, the amount in Sachkosten, the Kreis as Traeger) whose source is that
cell of the upper workbook, so the decision trace leads to it. The rule file routes it like any item (e.g. a rule
`when: {Kategorie: Bezirksumlage}` to the Kreisumlage).
"""
from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

from openpyxl import load_workbook

from ..core.model import COMPONENTS, DISTRICT_HOST, CostItem, InputBook, normalise_district
from ..core.money import cents_from_decimal
from ..core.problems import InputError, Location, Problem
from .readback import Relation, read_output

__all__ = ["with_upward_items", "check_upward", "UPWARD_PREFIX"]

UPWARD_PREFIX = "UMLAGE-"
ITEM_COLUMNS = ("ID", "Bezeichnung", "Kategorie", *COMPONENTS, "Foerderung", "Traeger")


def _problem(code: str, where: Location, message: str, found: str, expected: str, hint: str) -> InputError:
    return InputError([Problem(code, where, message, found=found, expected=expected, hint=hint)])


def check_upward(upper: str | Path, mode: str, register_dir: str | Path | None) -> None:
    """What a run may build on: a final run only on the level above's final run in force (its register entry,
    `upward-not-final`, `upward-superseded`); a test run on any of its outputs but a superseded final run."""
    from .register import in_force

    earlier = read_output(upper, "upward-unreadable", None, mismatch_code="upward-mismatch")
    where = Location(earlier.path.name, "Protokoll")
    if not earlier.final:
        if mode == "final":
            raise _problem("upward-not-final", where, "ein Echtlauf baut nur auf dem Echtlauf der Ebene darüber auf; "
                           "diese Arbeitsmappe ist ein Probelauf", found=str(earlier.manifest["parameters"].get("mode")),
                           expected="final (Echtlauf der Ebene darüber)",
                           hint="das Ergebnis des Echtlaufs der Ebene darüber angeben oder als Probelauf rechnen")
        return
    current, this = in_force(earlier, register_dir)
    if current is None and mode == "final":
        raise _problem("upward-not-final", where, f"im Register ist für {earlier.district} {earlier.year} kein Echtlauf "
                       "verzeichnet", found="kein Eintrag", expected="der Echtlauf der Ebene darüber im Register",
                       hint="das Register angeben, in dem der Echtlauf der Ebene darüber verzeichnet ist (--register)")
    if current is not None and not this:
        raise _problem("upward-superseded", where, f"dieser Echtlauf der Ebene darüber ist nicht mehr in Kraft: in "
                       f"Kraft ist Nr. {current.get('seq')} vom {current.get('recorded_utc')} ({current.get('output')})",
                       found=f"SHA-256 {earlier.sha256}", expected=f"SHA-256 {current.get('output_sha256')}",
                       hint=f"{current.get('output')} angeben, den Echtlauf, der die früheren ersetzt hat")


def with_upward_items(book: InputBook, upper: str | Path) -> InputBook:
    """The input with one cost item per levy the body pays the level above (see the module)."""
    own = book.parameters.own_key
    name = Path(book.path).name
    if not own:
        raise _problem("input-missing-parameter", Location(name, "Parameter"),
                       'Parameter "Gebietsschluessel" fehlt: ohne ihn ist die eigene Zeile in der Umlage der Ebene '
                       "darüber nicht zu finden", found="kein Gebietsschluessel", expected="der eigene Schlüssel, "
                       "z. B. der 5-stellige Kreisschlüssel 09677", hint='eine Zeile "Gebietsschluessel" mit dem '
                       "Schlüssel als Text anlegen")
    earlier = read_output(upper, "upward-unreadable",
                          Relation(None, book.parameters.year, "same",
                                   label="Die Ergebnis-Arbeitsmappe der Ebene darüber"),
                          mismatch_code="upward-mismatch")
    upper_name = earlier.path.name
    if normalise_district(earlier.district) == normalise_district(book.parameters.district):
        raise _problem("upward-same-body", Location(upper_name, "Protokoll"), "die Ergebnis-Arbeitsmappe der Ebene "
                       f"darüber stammt von {earlier.district} selbst", found=earlier.district,
                       expected="das Ergebnis der Ebene, an die die Umlage gezahlt wird (z. B. des Bezirks)",
                       hint="das Ergebnis des Bezirks oder Landschaftsverbands angeben")
    workbook = load_workbook(earlier.stream(), read_only=True, data_only=True)
    try:
        if "Umlagen" not in workbook.sheetnames:
            raise _problem("upward-no-levy", Location(upper_name, "Umlagen"),
                           "die Ergebnis-Arbeitsmappe der Ebene darüber hat kein Blatt Umlagen",
                           found=", ".join(workbook.sheetnames), expected="ein Blatt Umlagen (Umlagen mit `levies:`)",
                           hint="das Ergebnis eines Laufs mit `levies:` in der Regeldatei angeben")
        rows = list(workbook["Umlagen"].iter_rows(values_only=True))
        body = next((row[1] for row in workbook["Protokoll"].iter_rows(values_only=True)
                     if row and row[0] == "Kreis"), "") if "Protokoll" in workbook.sheetnames else ""
    finally:
        workbook.close()
    header = [str(cell) if cell is not None else "" for cell in rows[0]] if rows else []
    if not {"Umlage", "AGS", "Betrag"} <= set(header):
        raise _problem("upward-no-levy", Location(upper_name, "Umlagen", 1), "das Blatt Umlagen hat nicht die Spalten "
                       "Umlage, AGS, Betrag", found=", ".join(header), expected="Umlage, AGS, Betrag",
                       hint="das unveränderte Ergebnis von `allocation run` angeben")
    levy_col, key_col, amount_col = (header.index(c) for c in ("Umlage", "AGS", "Betrag"))
    items = []
    for r, row in enumerate(rows[1:], start=2):
        if len(row) <= amount_col or str(row[key_col] or "") != own:
            continue
        levy = str(row[levy_col] or "")
        try:
            cents = cents_from_decimal(Decimal(str(row[amount_col])))
        except (InvalidOperation, ValueError):
            raise _problem("upward-no-levy", Location(upper_name, "Umlagen", r, amount_col + 1),
                           "der Betrag der eigenen Zeile ist kein Betrag", found=repr(row[amount_col]),
                           expected="ein Betrag in Euro", hint="das unveränderte Ergebnis angeben") from None
        key = re.sub(r"[^a-z0-9]+", "-", levy.casefold()).strip("-")
        label = f"{levy} an {body}" if body else levy
        attrs = {column: "" for column in book.item_columns} | {
            "ID": f"{UPWARD_PREFIX}{key}", "Bezeichnung": label, "Kategorie": levy,
            "Personalkosten": Decimal(0), "Sachkosten": Decimal(cents) / 100, "Gemeinkosten": Decimal(0),
            "Foerderung": Decimal(0), "Traeger": DISTRICT_HOST}
        items.append(CostItem(f"{UPWARD_PREFIX}{key}", label, levy,
                              {c: (cents if c == "Sachkosten" else 0) for c in COMPONENTS}, 0, DISTRICT_HOST, attrs,
                              Location(upper_name, "Umlagen", r, amount_col + 1), {}))
    if not items:
        raise _problem("upward-not-found", Location(upper_name, "Umlagen"),
                       f"der eigene Schlüssel {own} steht in keiner Zeile der Umlagen der Ebene darüber",
                       found=own, expected="eine Zeile mit diesem Schlüssel in der Spalte AGS",
                       hint="den Gebietsschluessel der Eingabe prüfen (der Kreisschlüssel, mit dem die Ebene darüber "
                            "den Kreis führt) oder das richtige Ergebnis angeben")
    taken = {item.id for item in book.items}
    clash = [item.id for item in items if item.id in taken]
    if clash:
        raise _problem("upward-id-taken", Location(name, "Kostenpositionen"), f"die Kostenposition {clash[0]} gibt es "
                       "schon; so heißt die Umlage an die Ebene darüber", found=clash[0],
                       expected=f"keine eigene ID, die mit {UPWARD_PREFIX} beginnt",
                       hint="die eigene Kostenposition umbenennen oder, wenn sie die Umlage selbst ist, löschen")
    columns = tuple(dict.fromkeys((*book.item_columns, *ITEM_COLUMNS)))
    return replace(book, items=tuple(book.items) + tuple(items), item_columns=columns)
