"""`allocation explain`: why a cost item went the way it did, and the proof for a municipality, in words.

Reads only the output workbook (sheets `Entscheidungen` and `Einzelnachweis`, by their headers) and never
recomputes: what it prints is what the run wrote, so an auditor can hold the text against the cells.
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.money import de_number
from ..core.problems import InputError, Location, Problem, did_you_mean
from ..runs.readback import EarlierRefused

if TYPE_CHECKING:
    from ..runs.readback import Earlier

__all__ = ["explain", "read_sheet"]


def read_sheet(source: "str | Path | Earlier", sheet: str) -> list[dict[str, object]]:
    """Rows of a sheet as header -> value (empty cells as ""), from an output workbook as read and checked by
    `readback.read_output` (or a path: then its bounds alone are checked, `explain-unreadable`)."""
    from openpyxl import load_workbook

    from ..runs.readback import Earlier, output_bytes
    from ..workbook.safety import DAMAGED_WORKBOOK

    source = source if isinstance(source, Earlier) else output_bytes(source, "explain-unreadable")
    path = source.path

    def unreadable(error: Exception, where: str | None = None) -> InputError:
        return EarlierRefused([Problem("explain-unreadable", Location(str(path), where),
                                       "Die Ergebnis-Arbeitsmappe lässt sich nicht lesen",
                                       found=type(error).__name__ + (f": {error}"[:200] if str(error) else ""),
                                       expected="eine Ergebnis-Arbeitsmappe von `allocation run`",
                                       hint="den Pfad von ERGEBNIS.xlsx angeben; ist die Datei beschädigt, den Lauf "
                                            "wiederholen oder die Sicherung nehmen")])

    try:  # from the bytes read: openpyxl judges by the content, not by the name's extension
        workbook = load_workbook(source.stream(), read_only=True, data_only=True)
    except Exception as error:  # noqa: BLE001 - openpyxl raises many types (InvalidFileException, KeyError, ...)
        raise unreadable(error) from None
    try:
        if sheet not in workbook.sheetnames:
            raise EarlierRefused([Problem("explain-missing-sheet", Location(str(path), sheet), f"Blatt {sheet} fehlt",
                                          found=", ".join(workbook.sheetnames), expected=sheet,
                                          hint="eine Ergebnis-Arbeitsmappe von `allocation run` angeben, nicht die "
                                               "Eingabe")])
        try:  # read-only sheets parse as they stream: a damaged part fails here, not at opening
            rows = list(workbook[sheet].iter_rows(values_only=True))
        except DAMAGED_WORKBOOK as error:
            raise unreadable(error, sheet) from None
    finally:
        workbook.close()
    if not rows:
        return []
    headers = [str(h) if h is not None else "" for h in rows[0]]
    return [{h: ("" if v is None else v) for h, v in zip(headers, row)} for row in rows[1:]]


def _eur(value: object) -> str:
    if isinstance(value, (int, float, Decimal)):
        return f"{de_number(Decimal(str(value)).quantize(Decimal('0.01')))} €"
    return str(value)


def _number(value: object) -> str:
    """A number of the workbook (a key value, a sum, a share) in German digits as the sheet holds it."""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        number = Decimal(str(value))
        return de_number(number.to_integral_value() if number == number.to_integral_value() else number, 0)
    return str(value)


def _is_composite(label: str) -> bool:
    """A weighted composite key's label reads `70 % Linienminuten + 30 % Wagenkm` (KeySpec.describe)."""
    return " % " in label and " + " in label
def _levy_lines(output: "Earlier", row: dict[str, object], ags: str | None) -> list[str]:
    """With `levies:` (Entscheidungen column Umlage): the item's levy and, with `ags`, that levy's line
    from the sheet Umlagen (what the municipality pays on the levy, in statute mode base × rate)."""
    levy = str(row.get("Umlage", "") or "")
    if not levy:
        return []
    name = levy.rsplit(" (", 1)[0]
    lines = ["", f"Umlage: {levy}. Das Defizit zählt zu ihrem Umlagebedarf; was jede Gemeinde auf die Umlage zahlt, "
                 "steht im Blatt Umlagen (mit Hebesatz: Bemessungsgrundlage × Satz)."]
    if ags is not None:
        line = next((r for r in read_sheet(output, "Umlagen") if r.get("Umlage") == name and str(r.get("AGS")) == ags),
                    None)
        if line is not None:
            lines.append(f"  {name} von {line.get('Gemeinde')} ({line.get('Berechnung')}): {line.get('Nachweis')}")
        else:
            lines.append(f"  AGS {ags} zahlt die {name} nicht.")
    return lines


def explain(output: str | Path, item_id: str, ags: str | None = None) -> str:
    """The decision of `item_id` and, with `ags`, the calculation proof for that municipality. The workbook is
    read once, through `readback.read_output`: it must match its manifest (else exit 7), so what is explained is
    what the run wrote."""
    from ..runs.readback import read_output

    output = read_output(output, "explain-unreadable")
    decisions = read_sheet(output, "Entscheidungen")
    row = next((r for r in decisions if str(r.get("ID")) == item_id), None)
    if row is None:
        ids = [str(r.get("ID")) for r in decisions]
        category = [str(r.get("ID")) for r in decisions if str(r.get("Kategorie", "")).casefold() == item_id.casefold()]
        raise EarlierRefused([Problem(
            "explain-unknown-item", Location(str(output.path), "Entscheidungen"),
            f'keine Kostenposition "{item_id}" im Ergebnis{did_you_mean(item_id, ids)}', found=item_id,
            expected=", ".join(ids) or "eine ID einer Kostenposition",
            hint=(f'"{item_id}" ist eine Kategorie: ihre Kostenpositionen sind {", ".join(category)}' if category
                  else "eine ID aus Spalte ID des Blatts Entscheidungen verwenden"))])
    lines = [
        f"Kostenposition {row['ID']}: {row.get('Bezeichnung', '')}",
        f"  Kategorie {row.get('Kategorie', '')}, Träger {row.get('Träger', '')} (Eingabe: {row.get('Eingabezeile', '')})",
        "",
        f"Warum dieser Weg: Regel „{row.get('Regel', '')}“ ({row.get('Regeldatei:Zeile', '')}) hat entschieden.",
        f"  Bedingung mit den Werten der Position: {row.get('Begründung (Bedingung mit Werten)', '')}",
        f"  Rechtsgrundlage: {row.get('Rechtsgrundlage', '') or '(keine angegeben)'}",
        f"  Beschreibung der Regel: {row.get('Beschreibung der Regel', '')}",
        f"  Alle passenden Regeln: {row.get('Alle passenden Regeln', '')}",
        f"  Weg: {row.get('Weg', '')} ({row.get('Weg (Kennung)', '')}), Schlüssel: {row.get('Schlüssel', '')}",
        "",
        "Defizit:",
        f"  förderfähige Kosten ({row.get('Kostenbestandteile', '')}) {_eur(row.get('Förderfähige Kosten'))}"
        f" − Förderung {_eur(row.get('Förderung'))} = {_eur(row.get('Defizit (exakt)'))}"
        f", gerundet {_eur(row.get('Defizit (gerundet)'))}",
    ]
    lines += _levy_lines(output, row, ags)
    proofs = [r for r in read_sheet(output, "Einzelnachweis") if str(r.get("ID")) == item_id]
    if ags is None:
        lines += ["", "Anteile je Gemeinde (Rechenweg mit --ags AGS):"]
        for proof in proofs:
            if proof.get("Betrag gerundet") not in ("", 0):
                lines.append(f"  {proof.get('AGS')} {proof.get('Gemeinde')}: {_eur(proof.get('Betrag gerundet'))}")
        return "\n".join(lines)
    proof = next((r for r in proofs if str(r.get("AGS")) == ags), None)
    if proof is None:
        known = [str(r.get("AGS")) for r in proofs]
        raise EarlierRefused([Problem(
            "explain-unknown-ags", Location(str(output.path), "Einzelnachweis"),
            f'keine Zeile für AGS "{ags}" und Kostenposition "{item_id}"{did_you_mean(ags, known)}', found=ags,
            expected=", ".join(known) or "ein AGS", hint="einen AGS aus dem Blatt Einzelnachweis verwenden (8 Ziffern)")])
    label = str(proof.get("Schlüssel", ""))
    if _is_composite(label):
        key_line = (f"  Schlüssel {label}: je Spalte Gewicht × Wert der Gemeinde ÷ Summe der Spalte über alle Zahler, "
                    f"die Teile addiert; Anteil {_number(proof.get('Anteil (exakt)'))}")
    else:
        key_line = (f"  Schlüsselwert {_number(proof.get('Schlüsselwert'))} von {_number(proof.get('Schlüsselsumme'))}"
                    f" ({label}), Anteil {_number(proof.get('Anteil (exakt)'))}")
    lines += [
        "",
        f"Rechenweg für {proof.get('Gemeinde')} (AGS {proof.get('AGS')}):",
        key_line,
        f"  {proof.get('Nachweis', '')}",
        "  Resteinheiten werden nach der Methode des größten Restes vergeben; bei gleichem Rest erhält die "
        "kleinere AGS die Einheit, nie die Zeilenreihenfolge.",
    ]
    return "\n".join(lines)
