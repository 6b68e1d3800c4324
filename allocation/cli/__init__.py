"""Command line: a thin shell that parses arguments, calls the pipeline and maps errors to exit codes.

Exit codes (README, "Exit-Codes"): 0 ok, 1 internal error, 2 usage, 3 input workbook, 4 rule file,
5 rules do not decide the items, 6 failed control, 7 verify found differences, 8 refused (a final
run exists), 75 busy (another run holds the lock).

One module per group of commands, each with its handlers (`_cmd_*`) and its parsers (`_add_*`):
`compute` (run, rate, compare, trueup), `reference` (template, states), `audit` (check, explain, rulebook,
verify, register), `year` (notices, benehmen, year), `operations` (inbox, batch, serve); `common` holds what
they share: the German argparse, the problem printer, the overwrite guard, shared options.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Sequence

from .. import __version__
from ..core.problems import ExitCode, ProblemsError
from ..core.signals import Terminated, clean_stop, end_by_sigterm
from .audit import _add_check, _add_explain, _add_register, _add_rulebook, _add_verify
from .common import _german_argparse, _Parser, _print_problems
from .compute import _add_compare, _add_rate, _add_run, _add_trueup
from .operations import _add_batch, _add_inbox, _add_serve
from .reference import _add_states, _add_template
from .year import _add_benehmen, _add_notices, _add_year

__all__ = ["main", "build_parser", "HANDBOOK"]

# Each command's page of the handbook (docs/, README's command table); `--help` ends with it.
HANDBOOK = {
    "run": "controller/lauf.md", "inbox": "operations/inbox.md", "trueup": "controller/ergebnis.md",
    "template": "controller/eingabe.md", "batch": "operations/schedules.md", "compare": "controller/ergebnis.md",
    "rate": "controller/ergebnis.md", "check": "auditor/check.md", "states": "controller/laender.md",
    "explain": "auditor/explain.md", "rulebook": "auditor/rulebook.md", "verify": "auditor/verify.md",
    "notices": "controller/bescheide.md", "benehmen": "controller/umlagejahr.md", "year": "controller/umlagejahr.md",
    "register": "auditor/register.md", "serve": "operations/serve.md",
}


def _handbook(docs: Path, page: str) -> str:
    """The page in this checkout's `docs` when it is there (an editable install), else its path in the sources."""
    shown = docs / page if (docs / page).is_file() else f"docs/{page} (im Quellarchiv)"
    return f"Handbuch: {shown}"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="allocation",
        description="Verteilt die Defizite gemeinsamer Leistungen eines Kreises auf seine Gemeinden "
                    "nach prüfbaren Regeln (Kreisumlage, differenzierte Umlage, Direktabrechnung, Trägerkommune).")
    parser.add_argument("--version", action="version", version=f"allocation {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="BEFEHL")
    commands.required = True
    for add in (_add_run, _add_inbox, _add_trueup, _add_template, _add_batch, _add_compare, _add_rate, _add_check, _add_states,
                _add_explain, _add_rulebook, _add_verify, _add_notices, _add_benehmen, _add_year, _add_register,
                _add_serve):
        add(commands)  # one function per command (in its group's module), in the order `allocation --help` lists them
    docs = Path(__file__).resolve().parents[2] / "docs"
    parser.epilog = _handbook(docs, "README.md")
    for name, command in commands.choices.items():
        command.epilog = _handbook(docs, HANDBOOK[name])
        for step in (command._subparsers._group_actions[0].choices.values() if command._subparsers else ()):
            step.epilog = command.epilog  # year init|stage|…, register status
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        with _german_argparse():  # (a Ctrl-C while the parser is built is a Ctrl-C too: 130)
            parser = build_parser()
            args = parser.parse_args(argv)
        # SIGTERM (kill, systemd's stop or timeout) runs the clean-ups a Ctrl-C runs (temporary files and
        # folders, a final run's outputs without their entry), then ends the process by SIGTERM as before; batch
        # (its worker processes finish or die with it), inbox and serve (their own handlers: finish the file or
        # request, exit 0) keep what they had
        stop = contextlib.nullcontext() if args.command in ("batch", "inbox", "serve") else clean_stop()
        try:
            with stop:
                return args.handler(args)
        except ProblemsError as error:
            _print_problems(error.problems, error.title, getattr(args, "json", False), error.exit_code)
            return error.exit_code
    except KeyboardInterrupt:
        print("abgebrochen", file=sys.stderr)
        return 130
    except Terminated:  # SIGTERM, its clean-ups done (`core.signals`): the process ends by it, as it would have
        end_by_sigterm()
    except BrokenPipeError:  # the reader of the output went away (`allocation states BY | head`): not a bug
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141  # 128 + SIGPIPE, as a shell reports a command whose reader closed the pipe
    except Exception as error:  # an unexpected failure is a bug: say so, keep the traceback for the report
        import traceback

        traceback.print_exc()
        print(f"Interner Fehler: {error!r}. Bitte mit Eingabe und Regeldatei melden.", file=sys.stderr)
        return ExitCode.INTERNAL
