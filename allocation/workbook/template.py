"""`allocation template`: an empty, documented input workbook in the contract's layout."""
from __future__ import annotations

from pathlib import Path

from .inputs import (ITEM_COLUMNS, KEY_COLUMNS, LEVY_RATE_COLUMNS, MUNICIPALITY_COLUMNS, OPTIONAL_LEVY_RATE_COLUMNS,
                     PARAMETERS)
from .report import write_atomically

__all__ = ["write_template", "COLUMN_HELP"]

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


def write_template(path: str | Path) -> None:
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Font

    workbook = Workbook()
    parameters = workbook.active
    parameters.title = "Parameter"
    parameters.append(["Parameter", "Wert", "Erläuterung"])
    defaults = {"Kreis": "", "Haushaltsjahr": None, "Rundung": "Cent", "Hebesatz_Nachkommastellen": 2}
    for key, help_text in PARAMETERS.items():
        parameters.append([key, defaults[key], help_text])
    for name, columns in (("Gemeinden", MUNICIPALITY_COLUMNS + ("Einwohner",)),
                          ("Kostenpositionen", ITEM_COLUMNS + ("Stellen",)),
                          ("Schluessel", KEY_COLUMNS),
                          ("Umlagesaetze", (LEVY_RATE_COLUMNS[0], *OPTIONAL_LEVY_RATE_COLUMNS, LEVY_RATE_COLUMNS[1]))):
        sheet = workbook.create_sheet(name)
        sheet.append(list(columns))
        for c, column in enumerate(columns, start=1):
            cell = sheet.cell(row=1, column=c)
            cell.font = Font(bold=True)
            cell.comment = Comment(COLUMN_HELP.get(column, "weitere Spalte, auf die Regeln prüfen können"),
                                   "allocation")
            letter = cell.column_letter
            sheet.column_dimensions[letter].width = max(14, len(column) + 4)
            if column in ("AGS", "Traeger", "ID", "Umlage", "Bestandteil"):
                for row in range(2, 1001):
                    sheet.cell(row=row, column=c).number_format = "@"
        sheet.freeze_panes = "A2"
    for cell in parameters[1]:
        cell.font = Font(bold=True)
    parameters.column_dimensions["A"].width = 28
    parameters.column_dimensions["C"].width = 60
    notes = workbook.create_sheet("Anleitung")
    notes.append(["Blatt / Spalte", "Bedeutung"])
    for column, help_text in COLUMN_HELP.items():
        notes.append([column, help_text])
    notes.append(["weitere Spalten", "Gemeinden und Kostenpositionen dürfen weitere Spalten haben (z. B. "
                                     "Einwohner, Jugendamt_Kreis 1/0, Linienminuten), auf die Regeln prüfen."])
    notes.column_dimensions["A"].width = 22
    notes.column_dimensions["B"].width = 100
    write_atomically(path, workbook.save)
