"""`allocation template`: an empty, documented input workbook in the contract's layout."""
from __future__ import annotations

from pathlib import Path

from ..core import states

from .inputs import (ITEM_COLUMNS, KEY_COLUMNS, LEVY_RATE_COLUMNS, MUNICIPALITY_COLUMNS, OPTIONAL_LEVY_RATE_COLUMNS,
                     PARAMETERS)
from .report import write_book

__all__ = ["write_template", "COLUMN_HELP", "state_columns"]

COLUMN_HELP = {
    "AGS": "Amtlicher Gemeindeschlüssel, 8 Ziffern als Text (führende Null behalten), z. B. 05170048",
    "Gemeinde": "Name der Gemeinde",
    "Umlagegrundlagen": "Umlagegrundlagen in Euro (Steuerkraftmesszahl + Schlüsselzuweisungen), ≥ 0",
    "ID": "eindeutige Kennung der Kostenposition (bzw. im Blatt Schluessel: die Kostenposition)",
    "Bezeichnung": "Bezeichnung der Leistung",
    "Kategorie": "Kategorie, auf die die Regeln prüfen (z. B. KIM, Jugendhilfe)",
    "Personalkosten": "Euro, leer = 0",
    "Sachkosten": "Euro, leer = 0",
    "Gemeinkosten": "Euro, leer = 0 (Gemeinkosten dürfen z. B. nicht in die Jugendamtsumlage)",
    "Foerderung": "Förderung/Erstattung in Euro, leer = 0 (Spaltenname auch „Förderung“)",
    "Traeger": "leer oder „Kreis“ = der Kreis erbringt die Leistung; sonst AGS der Trägerkommune",
    "Stellen": "optional: Stellen (Vollzeitäquivalente)",
    "Wert": "Schlüsselwert dieser Gemeinde für diese Kostenposition (z. B. Fallzahl), ≥ 0",
    "Umlagesaetze": "optionales Blatt: gesetzliche Umlagesätze je Umlage (und Bestandteil der Grundlage)",
    "Umlage": "Kennung der Umlage, wie in der Regeldatei unter levies",
    "Bestandteil": "optional: eine Spalte der Umlagegrundlage in Gemeinden; leer = die ganze Grundlage",
    "Satz": "Satz in Prozent, 0 bis 100, höchstens 4 Nachkommastellen (33,5 % als 33.5)",
}


TEXT_COLUMNS = ("AGS", "Traeger", "ID", "Umlage", "Bestandteil")  # formatted as text ("@") in rows 2..1000
# openpyxl's size of a comment box (108 pt × 59.25 pt), which the template had before, in pixels at 96 dpi
_COMMENT_SIZE = {"width": 144, "height": 79}


def write_template(path: str | Path, state: str | None = None) -> None:
    """Written with the one xlsxwriter writer; not in constant_memory mode (a small book whose header comments
    and text-formatted cells are simplest written column by column). `state`: the columns of that state's base
    (its profile's verified `levy_base`) and instructions citing that state's law."""
    write_book(path, lambda book: _template_sheets(book, state), constant_memory=False)


def state_columns(state: str) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    """The Gemeinden columns of a state's base (none if its base is not verified: then Umlagegrundlagen), and
    the instructions that cite the state's law (unverified facts are named as such, never as a rule)."""
    law = states.profile(state)
    base = law.applied("levy_base")
    # a base the law reduces by a deduction cannot be computed from columns yet: the Umlagegrundlagen are entered
    columns = tuple(base["components"]) if base and not base.get("deductions") else ()
    notes = [("Land", f"{state} ({law.name}): die Regeldatei nennt `state: {state}`; `allocation states {state}` "
                      "zeigt jede Angabe mit Norm und Quelle")]
    for name in ("legal_basis", "levy_base", "instalments", "provisional", "consultation", "remedy"):
        fact = law.fact(name)
        if fact is None:
            continue
        value = fact.value
        if name == "levy_base" and isinstance(value, dict):
            minus = "".join(f" − {d}" for d in value.get("deductions", []))
            text = " + ".join(c if w == 100 else f"{w} % {c}" for c, w in value["components"].items()) + minus + (
                ("; die Umlagegrundlagen nach Abzug in die Spalte Umlagegrundlagen eintragen (einen Abzug rechnet "
                 "das Werkzeug noch nicht)" if minus else
                 "; die Spalten in Gemeinden eintragen, die Umlagegrundlagen errechnet das Werkzeug")
                if fact.verified else "") + (f" ({value['year']})" if value.get("year") else "")
        elif name == "instalments" and isinstance(value, dict):
            text = (f"monatlich zum {value['day']}." if value["schedule"] == "monthly"
                    else "vierteljährlich zum " + ", ".join(value["days"]))
        elif name == "provisional" and isinstance(value, dict):
            text = states.PROVISIONAL_RULES[value["rule"]] + (
                f"; {states.SETTLEMENT_TEXTS[value['settlement']]}" if value.get("settlement") else "")
        elif isinstance(value, dict) and "kind" in value:
            text = str(value["kind"]) + (f", {value['timing']}" if value.get("timing") else "")
        else:
            text = fact.quote or fact.note
        notes.append((states.FACTS[name], f"{fact.cite()}: {text}"))
    if base and not base.get("deductions"):
        rule = "{" + ", ".join(f"{c}: {w}" for c, w in base["components"].items()) + "}"
        notes.append(("Regeldatei", f"state: {state}; levies: - id: kreisumlage, name: Kreisumlage, legal_basis: "
                                    f"\"{law.fact('legal_basis').norm if law.fact('legal_basis') else ''}\", base: {rule}"))
    return columns, notes


def _template_sheets(book, state: str | None = None) -> None:
    bold = book.format(bold=True)
    parameters = book.add_sheet("Parameter")
    defaults = {"Kreis": "", "Haushaltsjahr": None, "Rundung": "Cent", "Hebesatz_Nachkommastellen": 2,
                "Umlageverband": "Kreis", "Umlagebedarf": None, "Gebietsschluessel": None}
    components, state_notes = state_columns(state) if state else ((), [])
    municipality_columns = (MUNICIPALITY_COLUMNS[:2] + components if components else MUNICIPALITY_COLUMNS) \
        + ("Einwohner",)
    for c, text in enumerate(("Parameter", "Wert", "Erläuterung")):
        book.put(parameters, 0, c, text, bold=True)
    for r, (key, help_text) in enumerate(PARAMETERS.items(), start=1):
        for c, value in enumerate((key, defaults[key], help_text)):
            book.put(parameters, r, c, value)
    _width(parameters, 0, 28)
    _width(parameters, 2, 60)
    text = book.format("@")
    for name, columns in (("Gemeinden", municipality_columns),
                          ("Kostenpositionen", ITEM_COLUMNS + ("Stellen",)),
                          ("Schluessel", KEY_COLUMNS),
                          ("Umlagesaetze", (LEVY_RATE_COLUMNS[0], *OPTIONAL_LEVY_RATE_COLUMNS, LEVY_RATE_COLUMNS[1]))):
        sheet = book.add_sheet(name)
        for c, column in enumerate(columns):
            sheet.write_string(0, c, column, bold)
            sheet.write_comment(0, c, COLUMN_HELP.get(column, "weitere Spalte, auf die Regeln prüfen können"),
                                {"author": "allocation", **_COMMENT_SIZE})
            _width(sheet, c, max(14, len(column) + 4))
            if column in TEXT_COLUMNS:
                for row in range(1, 1000):
                    sheet.write_blank(row, c, None, text)
        sheet.freeze_panes(1, 0)
    notes = book.add_sheet("Anleitung")
    rows = [("Blatt / Spalte", "Bedeutung"), *COLUMN_HELP.items(), *state_notes,
            ("weitere Spalten", "Gemeinden und Kostenpositionen dürfen weitere Spalten haben (z. B. "
                                "Einwohner, Jugendamt_Kreis 1/0, Linienminuten), auf die Regeln prüfen.")]
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            book.put(notes, r, c, value)
    _width(notes, 0, 22)
    _width(notes, 1, 100)


def _width(sheet, column: int, width: int) -> None:
    sheet.set_column_pixels(column, column, 7 * width)  # 7 px per character: the width itself in the file
