"""What a district starts from: `template` (an empty, commented input workbook) and `states` (the state profiles
with norm, source and wording)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..core.problems import ExitCode
from ..core.states import STATES as STATE_CODES
from .common import _protected, _refuse_overwrite


def _cmd_template(args: argparse.Namespace) -> int:
    from ..workbook.template import write_template

    _refuse_overwrite(args.output, [], never_replace=True)  # a filled workbook or rule file is never replaced
    with _protected(args.output):
        write_template(args.output, args.state)
    print(f"Vorlage geschrieben: {args.output}")
    return ExitCode.OK


def _fact_value(value: object) -> str:
    if isinstance(value, bool):
        return "ja" if value else "nein"
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_fact_value(item)}" for key, item in value.items())
    if isinstance(value, list):
        return ", ".join(_fact_value(item) for item in value)
    return str(value)


def _cmd_states(args: argparse.Namespace) -> int:
    from ..core import states

    chosen = [states.profile(args.state)] if args.state else list(states.profiles())
    if args.json:
        print(json.dumps([{"state": p.state, "name": p.name, "versions": [
            {"valid_from": v.valid_from, "valid_to": v.valid_to, "facts": {
                name: {"status": f.status, "norm": f.norm, "source": f.source, "quote": f.quote, "value": f.value,
                       "note": f.note, "read": f.read} for name, f in v.facts.items()}}
            for v in p.versions]} for p in chosen], ensure_ascii=False, indent=2))
        return ExitCode.OK
    if args.state is None:
        print("Landesprofile (nur verifizierte Angaben werden angewandt; `allocation states XX` zeigt eines ganz):")
        for p in chosen:
            version = p.version()
            facts = version.facts.values()
            verified = sum(f.verified for f in facts)
            basis = version.facts.get("legal_basis")
            provisional = version.facts.get("provisional")
            span = f"ab {version.valid_from}" + (f" bis {version.valid_to}" if version.valid_to else "")
            print(f"  {p.state}  {p.name:<24} {span:<10} {verified:>2} verifiziert, {len(facts) - verified:>2} nicht "
                  f"verifiziert; {basis.cite() if basis else '-'}; vorläufig: "
                  f"{provisional.cite() if provisional else '-'}")
        return ExitCode.OK
    p = chosen[0]
    for version in p.versions:
        span = f"ab {version.valid_from}" + (f" bis {version.valid_to}" if version.valid_to else "")
        print(f"{p.state} {p.name}, Fassung {span} ({p.path and Path(p.path).name})")
        for name, label in states.FACTS.items():
            fact = version.facts.get(name)
            if fact is None:
                print(f"\n  {label}: keine Angabe")
                continue
            status = "verifiziert" if fact.verified else "NICHT VERIFIZIERT (wird nicht angewandt)"
            print(f"\n  {label}: {fact.norm} [{status}]")
            if fact.value is not None:
                print(f"    Wert: {_fact_value(fact.value)}")
            if fact.quote:
                print(f"    Wortlaut: „{fact.quote}“")
            if fact.source:
                print(f"    Quelle: {fact.source}" + (f" (gelesen {fact.read})" if fact.read else ""))
            if fact.note:
                print(f"    Anmerkung: {fact.note}")
    return ExitCode.OK


def _add_template(commands) -> None:
    """`allocation template`."""
    template = commands.add_parser("template", help="leere, kommentierte Eingabe-Vorlage schreiben",
                                   description="Schreibt eine leere Eingabe-Arbeitsmappe mit allen Blättern und "
                                               "Spalten und einer Anleitung.")
    template.add_argument("output", metavar="VORLAGE.xlsx", help="Zieldatei")
    template.add_argument("--state", type=str.upper, choices=STATE_CODES, metavar="LAND",
                          help="Spalten der Umlagegrundlagen und Anleitung nach dem Recht dieses Landes (z. B. BY; "
                               "`allocation states` listet sie)")
    template.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    template.set_defaults(handler=_cmd_template)


def _add_states(commands) -> None:
    """`allocation states`."""
    states = commands.add_parser("states", help="Landesprofile: Umlagerecht je Flächenland mit Normen und Quellen",
                                 description="Listet die Profile der 13 Flächenländer (Umlagegrundlagen, Satzregeln, "
                                             "Fälligkeit, vorläufige Erhebung, Bescheidinhalt, Rechtsbehelf, "
                                             "Beteiligung, besondere Umlagen, Ebenen) mit Norm, Quelle und Wortlaut. "
                                             "Nur verifizierte Angaben wendet das Werkzeug an.")
    states.add_argument("state", nargs="?", type=str.upper, choices=STATE_CODES, metavar="LAND",
                        help="Kürzel eines Landes, z. B. BY: das Profil ganz zeigen")
    states.add_argument("--json", action="store_true", help="Profile als JSON ausgeben")
    states.set_defaults(handler=_cmd_states)
