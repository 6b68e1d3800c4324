"""The levy year and its letters: `notices` (Umlagebescheide and the instalment plan), `benehmen` (the
consultation letters) and `year init|stage|status|kreistag` (the stages as a chain of runs); the options they
share (dates, the template's limits)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..core.problems import ExitCode
from .common import (_ArgumentProblem, _missing_extra, _print_problems, _print_registered, _protected,
                     _refuse_overwrite, _register_option, _steps)


def _cmd_year_init(args: argparse.Namespace) -> int:
    from ..ops import year

    folder = year.init(args.directory, args.district, args.year)
    if args.json:
        print(json.dumps({"status": "ok", "folder": str(folder), "district": args.district, "year": args.year},
                         ensure_ascii=False, indent=2))
    else:
        print(f"Umlagejahr {args.district} {args.year} angelegt: {folder}")
    return ExitCode.OK


def _cmd_year_stage(args: argparse.Namespace) -> int:
    from ..ops import year
    from ..core.money import format_eur

    done = year.stage(args.directory, args.stage, args.input, args.rules, supersede=args.supersede,
                      register_dir=args.register)
    entry, allocation = done.entry, done.result.allocation
    for warning in done.result.warnings:
        print(f"  {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps({"status": "ok", **entry} | ({"register": done.result.registered} if done.result.registered
                                                       else {}), ensure_ascii=False, indent=2))
    else:
        total = sum(item.deficit for item in allocation.items)
        kind = "Echtlauf, im Register" if entry["mode"] == "final" else "Probelauf"
        print(f"Stufe {entry['seq']} {entry['stage']} ({kind}): verteilt {format_eur(total)}")
        print(f"Ergebnis-Arbeitsmappe: {Path(args.directory) / entry['output']['file']}")
        if done.result.registered:
            _print_registered(done.result.registered)
    return ExitCode.OK


def _cmd_year_status(args: argparse.Namespace) -> int:
    from ..ops import year

    found = year.status(args.directory, args.register)
    record, checks = found.record, found.checks
    problems = year.changed_problems(args.directory, found)
    # a register that cannot be read: reported as it is (like verify, exit 7), its final stages left unchecked
    unread = list(found.register_error.problems) if found.register_error is not None else []
    if args.json:
        print(json.dumps({"status": "ok" if not problems and not unread else "changed", "district": record["district"],
                          "year": record["year"], "stages": [{**c.entry, "findings": list(c.findings)} for c in checks],
                          "findings": list(found.findings), "problems": [p.as_dict() for p in [*problems, *unread]]},
                         ensure_ascii=False, indent=2))
    else:
        print(f"Umlagejahr {record['district']} {record['year']}: {len(checks)} Stufen")
        for check in checks:
            entry = check.entry
            mode = "Echtlauf" if entry["mode"] == "final" else "Probelauf"
            state = "OK" if check.ok else "VERÄNDERT: " + "; ".join(check.findings)
            reason = f" (Begründung: {entry['reason']})" if entry.get("reason") else ""
            print(f"  {entry['seq']:>2} {entry['stage']:<12} {entry['recorded_utc']} {mode:<9} "
                  f"Manifest {entry['manifest']['sha256'][:12]} ← {entry['prev_manifest_sha256'][:12]}  {state}{reason}")
        for finding in found.findings:
            print(f"  VERÄNDERT: {finding}")
    if not args.json:
        if problems:
            _print_problems(problems, year.YearChanged.title, False, ExitCode.VERIFY)
        if unread:
            _print_problems(unread, f"{found.register_error.title}: die Echtlauf-Stufen sind nicht gegen das Register "
                                    "geprüft", False, ExitCode.VERIFY)
    return ExitCode.VERIFY if problems or unread else ExitCode.OK


def _cmd_benehmen(args: argparse.Namespace) -> int:
    from ..ops.benehmen import write_benehmen

    if (missing := _missing_extra("notices")) is not None:
        print(missing, file=sys.stderr)
        return ExitCode.USAGE
    folder, lines, missing = write_benehmen(args.input, args.rules, args.previous, args.output,
                                            deadline=args.deadline, date=args.date, template=args.template,
                                            template_seconds=args.template_seconds,
                                            template_memory_mb=args.template_memory_mb, letterhead=args.letterhead)
    municipalities = list(dict.fromkeys(line.ags for line in lines))
    if args.json:
        print(json.dumps({"status": "ok", "folder": str(folder), "municipalities": municipalities,
                          "lines": [{"ags": l.ags, "levy": l.levy, "amount_cents": l.amount,
                                     "previous_cents": l.previous, "change_cents": l.change,
                                     "point_value_cents": l.point_value} for l in lines],
                          "missing_since_previous_year": list(missing)}, ensure_ascii=False, indent=2))
    else:
        print(f"Benehmen: {len(municipalities)} Schreiben und Benehmen.xlsx in {folder}")
        if missing:
            print("Hinweis: im Vorjahr, aber nicht mehr in der Eingabe (kein Schreiben): " + ", ".join(missing))
    return ExitCode.OK


def _cmd_year_kreistag(args: argparse.Namespace) -> int:
    from ..ops import statements, year

    log = args.statements or Path(args.directory) / statements.STATEMENTS_FILE
    _refuse_overwrite(args.output, [("Stellungnahmen", log), ("Stufenkette", Path(args.directory) / year.CHAIN_FILE),
                                    ("Umlagejahr", Path(args.directory) / year.YEAR_FILE)])
    year_status = year.status(args.directory, args.register)
    if year_status.register_error is not None:  # no head for the minutes from a damaged register (exit 8/9)
        raise year_status.register_error
    head = year_status.register.head
    found = statements.read_statements(log)
    with _protected(args.output, args.register):
        statements.write_kreistag_pack(args.output, year_status, found, head)
    checks = year_status.checks
    open_count = sum(1 for s in found if not s.decision)
    changed = year.changed_problems(args.directory, year_status)  # the pack shows them; the exit says them too
    if args.json:
        print(json.dumps({"status": "changed" if changed else "ok", "output": str(args.output), "stages": len(checks),
                          "statements": len(found), "open": open_count, "register_head": head,
                          "findings": [*(f for c in checks for f in c.findings), *year_status.findings],
                          "problems": [p.as_dict() for p in changed]}, ensure_ascii=False, indent=2))
    else:
        print(f"Kreistag: {len(checks)} Stufen, {len(found)} Stellungnahmen ({open_count} offen) in {args.output}")
        print(f"Kettenkopf des Registers (für das Protokoll): {head}")
        if changed:
            _print_problems(changed, year.YearChanged.title + " (in der Mappe vermerkt)", False, ExitCode.VERIFY)
    return ExitCode.VERIFY if changed else ExitCode.OK


def _date_argument(text: str):
    """A date option (`--date`, `--deadline`): JJJJ-MM-TT from 1900 to 2999 (`core.dates`), else exit 2 at once."""
    from ..core.dates import DateError, parse_date

    try:
        return parse_date(text, "Datum")
    except DateError as error:
        raise _ArgumentProblem(error.problems[0]) from None


def _cmd_notices(args: argparse.Namespace) -> int:
    from ..ops.notices import write_notices

    if (missing := _missing_extra("notices")) is not None:
        print(missing, file=sys.stderr)
        return ExitCode.USAGE

    written = write_notices(args.output_workbook, args.output, args.template, args.date, args.previous,
                            register_dir=args.register, template_seconds=args.template_seconds,
                            template_memory_mb=args.template_memory_mb, previous_year=args.previous_year,
                            settled_on=args.settled_on, addresses=args.addresses, only=args.ags,
                            letterhead=args.letterhead)
    if args.json:
        print(json.dumps({"status": "ok", "directory": str(written.directory), "notices": list(written.pdfs),
                          "instalments": written.rows, "without_notice": list(written.without_notice)},
                         ensure_ascii=False, indent=2))
        return ExitCode.OK
    kind = "Änderungsbescheide" if args.previous else "Bescheide"
    print(f"{len(written.pdfs)} {kind}, {written.rows} Abschläge: {written.directory}")
    if written.without_notice:
        print(f"Ohne Bescheid ({'keine Änderung' if args.previous else 'keine Umlage'}): "
              + ", ".join(written.without_notice))
    return ExitCode.OK


def _bounded_number(kind: type, low: int, high: int, unit: str):
    """An argparse type: a number of `kind` from `low` to `high`, else a German usage error (exit 2)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} liegt nicht zwischen {low} und {high} {unit}")
        return value
    return parse


def _add_template_limits(parser) -> None:
    """`--template-seconds` and `--template-memory-mb` of `notices` and `benehmen`."""
    from ..ops.typst_child import (TEMPLATE_MEMORY_MB, TEMPLATE_MEMORY_MB_RANGE, TEMPLATE_SECONDS,
                                  TEMPLATE_SECONDS_RANGE)

    parser.add_argument("--template-seconds", type=_bounded_number(float, *TEMPLATE_SECONDS_RANGE, "Sekunden"),
                        default=TEMPLATE_SECONDS, metavar="SEKUNDEN",
                        help=f"höchstens so viele Sekunden Übersetzungszeit je Dokument, sonst bricht die Vorlage "
                             f"ab (Vorgabe: {TEMPLATE_SECONDS})")
    parser.add_argument("--template-memory-mb", type=_bounded_number(int, *TEMPLATE_MEMORY_MB_RANGE, "MB"),
                        default=TEMPLATE_MEMORY_MB, metavar="MB",
                        help=f"höchstens so viel Arbeitsspeicher (MB) für die Übersetzung der Vorlage "
                             f"(Vorgabe: {TEMPLATE_MEMORY_MB})")


def _add_notices(commands) -> None:
    """`allocation notices`."""
    notices = commands.add_parser(
        "notices", help="Umlagebescheide (PDF) und Abschlagsplan aus einem geprüften Lauf schreiben",
        description="Prüft den Lauf wie allocation verify (sonst Exit 7) und schreibt je Gemeinde einen Bescheid "
                    "(PDF), Abschlaege.xlsx und Abschlaege.csv für die Kasse. Zahlungsplan und Texte stehen in der "
                    "Regeldatei des Laufs (instalments:, notices:).")
    notices.add_argument("output_workbook", metavar="ERGEBNIS.xlsx", help="Ergebnis-Arbeitsmappe (mit Manifest)")
    notices.add_argument("-o", "--output", required=True, type=Path, metavar="ORDNER", help="Ausgabe-Ordner")
    notices.add_argument("--template", type=Path, default=None, metavar="ORDNER",
                         help="eigene Vorlage (briefkopf.typ, unterschrift.typ, rechtsbehelf.typ, ...); fehlende "
                              "Dateien kommen aus der Standardvorlage")
    notices.add_argument("--date", type=_date_argument, default=None, metavar="JJJJ-MM-TT",
                         help="Datum der Bescheide (Vorgabe: heute)")
    _add_template_limits(notices)
    notices.add_argument("--previous", type=Path, default=None, metavar="FRUEHER.xlsx",
                         help="Änderungsbescheide gegenüber diesem früheren Lauf desselben Jahres")
    notices.add_argument("--previous-year", "--provisional-from", dest="previous_year", type=Path, default=None,
                         metavar="VORJAHR.xlsx",
                         help="Ergebnis des Vorjahres (mit Manifest): Vorjahressatz und -betrag stehen im Bescheid; wo "
                              "die Teilbeträge des Vorjahres vorläufig weiterliefen (Art. 19 Abs. 3 BayFAG), rechnet "
                              "der Bescheid sie zum nächsten Fälligkeitstermin ab")
    notices.add_argument("--addresses", type=Path, default=None, metavar="ANSCHRIFTEN.xlsx",
                         help="Anschriften der Empfänger: Blatt Anschriften mit AGS, Zeile 1, Zeile 2, ...")
    _letterhead_option(notices)
    notices.add_argument("--ags", action="append", default=None, metavar="AGS[,AGS...]",
                         help="nur für diese Mitglieder schreiben (z. B. eine Neufassung nach einem Widerspruch)")
    notices.add_argument("--first-notice", "--settled-on", dest="settled_on", type=_date_argument, default=None,
                         metavar="JJJJ-MM-TT",
                         help="Änderungsbescheid: Datum des ersten Bescheids, damit die bisherigen Abschläge die sind, "
                              "die er festsetzte (datiert nach Fälligkeitsterminen; hat er vorläufige Teilbeträge "
                              "abgerechnet, auch --previous-year wie damals)")
    _register_option(notices, "Register der Echtläufe, gegen das ein Echtlauf geprüft wird (Vorgabe wie bei "
                              "allocation verify)")
    notices.add_argument("--json", action="store_true", help="Ergebnis bzw. Fehlerliste als JSON ausgeben")
    notices.set_defaults(handler=_cmd_notices)


def _letterhead_option(parser: argparse.ArgumentParser) -> None:
    """`--letterhead`, the installation's letterhead for the letters of `notices` and `benehmen`."""
    parser.add_argument("--letterhead", type=Path, default=None, metavar="BRIEFKOPF.yaml",
                        help="Briefkopf der Installation (YAML: letterhead, issuer, payment wie unter notices: der "
                             "Regeldatei; was die Regeldatei selbst angibt, gilt vor ihm). Vorgabe: "
                             "$ALLOCATION_LETTERHEAD, sonst keiner")


def _add_benehmen(commands) -> None:
    """`allocation benehmen`."""
    benehmen = commands.add_parser(
        "benehmen", help="Benehmen (§ 55 KrO NRW): je Gemeinde ein Schreiben (PDF) und Benehmen.xlsx",
        description="Rechnet das geplante Jahr wie allocation run (ohne Register) und schreibt je Gemeinde die "
                    "geplanten Umlagen neben dem Vorjahr, die größten Anteile, die Frist und ein Formular für die "
                    "Stellungnahme.")
    benehmen.add_argument("input", type=Path, metavar="EINGABE.xlsx", help="Eingabe mit den geplanten Sätzen")
    benehmen.add_argument("--rules", required=True, type=Path, metavar="REGELN.yaml",
                          help="Regeldatei des geplanten Jahres (mit den Umlagen und dem Briefkopf)")
    benehmen.add_argument("--previous", required=True, type=Path, metavar="VORJAHR.xlsx",
                          help="Ergebnis-Arbeitsmappe des Vorjahres")
    benehmen.add_argument("-o", "--output", required=True, type=Path, metavar="ORDNER", help="neuer oder leerer Ordner")
    benehmen.add_argument("--deadline", type=_date_argument, default=None, metavar="JJJJ-MM-TT",
                          help="Frist für Stellungnahmen (Vorgabe: Datum + 6 Wochen)")
    benehmen.add_argument("--date", type=_date_argument, default=None, metavar="JJJJ-MM-TT",
                          help="Datum der Schreiben (Vorgabe: heute)")
    benehmen.add_argument("--template", type=Path, default=None, metavar="ORDNER",
                          help="eigene Vorlage (briefkopf.typ, benehmen.typ, ...), wie bei allocation notices")
    _letterhead_option(benehmen)
    _add_template_limits(benehmen)
    benehmen.add_argument("--json", action="store_true", help="Ergebnis bzw. Fehlerliste als JSON ausgeben")
    benehmen.set_defaults(handler=_cmd_benehmen)


def _add_year(commands) -> None:
    """`allocation year init|stage|status|kreistag`."""
    steps = _steps(commands, "year", "Umlagejahr: Stufen modell … abrechnung als verkettete Läufe",
                   "Ein Ordner je Kreis und Haushaltsjahr mit den Stufen modell, benehmen, entwurf, satzung, "
                   "aenderung-1, abrechnung (README: The levy year).")
    year_init = steps.add_parser("init", help="Umlagejahr-Ordner anlegen")
    year_init.add_argument("directory", type=Path, metavar="ORDNER")
    year_init.add_argument("--district", required=True, metavar="KREIS", help='z. B. "Kreis Wesel"')
    year_init.add_argument("--year", required=True, type=int, metavar="JJJJ", help="Haushaltsjahr")
    year_init.add_argument("--json", action="store_true", help="Ergebnis bzw. Fehlerliste als JSON ausgeben")
    year_init.set_defaults(handler=_cmd_year_init)
    year_stage = steps.add_parser("stage", help="eine Stufe rechnen und an die Kette anhängen",
                                  description="Rechnet die Stufe wie allocation run auf Kopien von Eingabe und "
                                              "Regeldatei im Stufenordner; satzung, aenderung-N und abrechnung sind "
                                              "Echtläufe im Register.")
    year_stage.add_argument("directory", type=Path, metavar="ORDNER")
    year_stage.add_argument("stage", metavar="STUFE",
                            help="modell, benehmen, entwurf, satzung, aenderung-1, aenderung-2, …, abrechnung")
    year_stage.add_argument("input", type=Path, metavar="EINGABE.xlsx")
    year_stage.add_argument("--rules", required=True, type=Path, metavar="REGELN.yaml",
                            help="Regeldatei, mit der die Stufe gerechnet wird (muss Kreis und Jahr abdecken)")
    year_stage.add_argument("--supersede", metavar="GRUND", default=None,
                            help="eine Stufe erneut rechnen, eine zweite rückwirkende Änderung zulassen oder einen "
                                 "registrierten Echtlauf ersetzen (Begründung wird vermerkt)")
    _register_option(year_stage, "Ordner des Registers der Echtläufe (Vorgabe wie bei allocation run)")
    year_stage.add_argument("--json", action="store_true", help="Ergebnis bzw. Fehlerliste als JSON ausgeben")
    year_stage.set_defaults(handler=_cmd_year_stage)
    year_status = steps.add_parser("status", help="Kette der Stufen zeigen und ihre SHA-256 prüfen (Exit 7 bei "
                                                  "Abweichung)")
    year_status.add_argument("directory", type=Path, metavar="ORDNER")
    _register_option(year_status, "Register der Echtläufe, gegen das die Echtlauf-Stufen geprüft werden (Vorgabe wie "
                                  "bei allocation run)")
    year_status.add_argument("--json", action="store_true", help="Ergebnis als JSON ausgeben")
    year_status.set_defaults(handler=_cmd_year_status)

    year_kreistag = steps.add_parser("kreistag", help="Kreistags-Mappe: Stufen und Stellungnahmen mit Beschlüssen",
                                     description="Liest ORDNER/Stellungnahmen.xlsx (oder --statements) und schreibt "
                                                 "die Stufen des Jahres und die Stellungnahmen in eine Arbeitsmappe.")
    year_kreistag.add_argument("directory", type=Path, metavar="ORDNER")
    year_kreistag.add_argument("-o", "--output", required=True, type=Path, metavar="KREISTAG.xlsx")
    year_kreistag.add_argument("--statements", type=Path, default=None, metavar="STELLUNGNAHMEN.xlsx",
                               help="Protokoll der Stellungnahmen (Vorgabe: ORDNER/Stellungnahmen.xlsx)")
    _register_option(year_kreistag, "Register der Echtläufe (Vorgabe wie bei allocation run); sein Kettenkopf steht in "
                                    "der Mappe")
    year_kreistag.add_argument("--json", action="store_true", help="Ergebnis bzw. Fehlerliste als JSON ausgeben")
    year_kreistag.set_defaults(handler=_cmd_year_kreistag)
