"""Command line: a thin shell that parses arguments, calls the pipeline and maps errors to exit codes.

Exit codes (README, "Exit-Codes"): 0 ok, 1 internal error, 2 usage, 3 input workbook, 4 rule file,
5 rules do not decide the items, 6 failed control, 75 busy (another run holds the lock).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .problems import ExitCode, Problem, ProblemsError

__all__ = ["main", "build_parser"]


def _print_problems(problems: Sequence[Problem], title: str, as_json: bool, exit_code: int) -> None:
    if as_json:
        print(json.dumps({"status": "error", "exit_code": exit_code, "title": title,
                          "problems": [p.as_dict() for p in problems]}, ensure_ascii=False, indent=2))
        return
    errors = sum(1 for p in problems if p.severity == "error")
    print(f"{title} ({errors} Fehler):", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def _cmd_run(args: argparse.Namespace) -> int:
    from .money import format_eur
    from .pipeline import run

    result = run(args.input, args.rules, args.output)
    allocation = result.allocation
    for warning in result.warnings:
        print(f"  {warning}", file=sys.stderr)
    total = sum(item.deficit for item in allocation.items)
    parameters = allocation.book.parameters
    summary = {
        "status": "ok",
        "district": parameters.district,
        "year": parameters.year,
        "items": len(allocation.items),
        "municipalities": len(allocation.book.municipalities),
        "total_cents": total,
        "output": str(result.output),
    }
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print(f"{parameters.district}, Haushaltsjahr {parameters.year}: {len(allocation.items)} Kostenpositionen, "
              f"{len(allocation.book.municipalities)} Gemeinden, verteilt {format_eur(total)}")
        print(f"Ergebnis-Arbeitsmappe: {result.output}")
    return ExitCode.OK


def _cmd_template(args: argparse.Namespace) -> int:
    from .template import write_template

    write_template(args.output)
    print(f"Vorlage geschrieben: {args.output}")
    return ExitCode.OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="allocation",
        description="Verteilt die Defizite gemeinsamer Leistungen eines Kreises auf seine Gemeinden "
                    "nach prüfbaren Regeln (Kreisumlage, differenzierte Umlage, Direktabrechnung, Trägerkommune).")
    parser.add_argument("--version", action="version", version=f"allocation {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="BEFEHL")
    commands.required = True

    run = commands.add_parser("run", help="Jahreslauf: Eingabe-Arbeitsmappe + Regeldatei -> Ergebnis-Arbeitsmappe",
                              description="Liest die Eingabe-Arbeitsmappe, entscheidet jede Kostenposition nach der "
                                          "Regeldatei und schreibt die Ergebnis-Arbeitsmappe.")
    run.add_argument("input", metavar="EINGABE.xlsx", help="Eingabe-Arbeitsmappe (wird nie verändert)")
    run.add_argument("--rules", required=True, metavar="REGELN.yaml", help="Regeldatei (YAML)")
    run.add_argument("-o", "--output", required=True, metavar="ERGEBNIS.xlsx", help="Ergebnis-Arbeitsmappe")
    run.add_argument("--json", action="store_true", help="Ergebnis bzw. Fehlerliste als JSON ausgeben")
    run.set_defaults(handler=_cmd_run)

    template = commands.add_parser("template", help="leere, kommentierte Eingabe-Vorlage schreiben",
                                   description="Schreibt eine leere Eingabe-Arbeitsmappe mit allen Blättern und "
                                               "Spalten und einer Anleitung.")
    template.add_argument("output", metavar="VORLAGE.xlsx", help="Zieldatei")
    template.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    template.set_defaults(handler=_cmd_template)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ProblemsError as error:
        _print_problems(error.problems, error.title, getattr(args, "json", False), error.exit_code)
        return error.exit_code
    except KeyboardInterrupt:
        print("abgebrochen", file=sys.stderr)
        return 130
    except Exception as error:  # an unexpected failure is a bug: say so, keep the traceback for the report
        import traceback

        traceback.print_exc()
        print(f"Interner Fehler: {error!r}. Bitte mit Eingabe und Regeldatei melden.", file=sys.stderr)
        return ExitCode.INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
