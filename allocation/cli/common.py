"""What the commands share: the parser (a usage error is a located German problem, exit 2; a single-value option
refuses a second value), argparse's help texts in German, the problem printer, the guard that no output replaces an
input or a registered run, and the options several commands have (`--register`, steps of a command)."""
from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from ..core.problems import ExitCode, Location, Problem, did_you_mean


# The optional extras of pyproject.toml: what each is for, the modules a command imports from it.
EXTRAS = {"notices": ("Bescheide und Benehmensschreiben (PDF) brauchen", ("typst",)),
          "web": ("Die Web-Oberfläche braucht", ("flask", "waitress", "flask_limiter"))}


def _missing_extra(extra: str) -> str | None:
    """None when the extra's packages import; else the German message that names the extra, the missing
    package and the line that adds it to the editable install of the checkout (no index serves `allocation`)."""
    what, modules = EXTRAS[extra]
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            return (f"{what} das Extra '{extra}' "
                    f"(Paket {module} fehlt). Lösung: im Quellordner des Checkouts "
                    f".venv/bin/pip install -e '.[{extra}]' ausführen (ergänzt die bestehende Installation; "
                    "README, Set-up)")
    return None


def _print_problems(problems: Sequence[Problem], title: str, as_json: bool, exit_code: int) -> None:
    if as_json:
        print(json.dumps({"status": "error", "exit_code": exit_code, "title": title,
                          "problems": [p.as_dict() for p in problems]}, ensure_ascii=False, indent=2))
        return
    errors = sum(1 for p in problems if p.severity == "error")
    print(f"{title} ({errors} Fehler):", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


class _ParseState:
    """What every parser of one command line shares: whether `--json` is among the arguments."""

    json = False


class _ArgumentProblem(argparse.ArgumentTypeError):
    """A type function's refusal as a whole problem (found, expected, fix); argparse names the option."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _UsageProblem(Exception):
    """Raised inside parsing (an Action) with a finished problem; the parser reports it and exits 2."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _StoreOnce(argparse._StoreAction):
    """Every option that takes one value (argparse's `store`): a second occurrence is refused instead of the last
    one silently winning (`--mode test --mode final`, `-o a -o b`). Options meant to repeat use other actions
    (`append`, `_ScenarioOption`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        seen = parser.seen_options
        if self.option_strings and self in seen:
            first_option, first = seen[self]
            names = "/".join(self.option_strings)
            raise _UsageProblem(Problem(
                "usage-repeated-option", Location(names), f"{names} ist zweimal angegeben: {_shown(first)} und "
                f"{_shown(values)}", found=f"{first_option} {_shown(first)} {option_string} {_shown(values)}",
                expected=f"{names} höchstens einmal", hint=f"nur den gemeinten Wert für {names} angeben"))
        seen[self] = (option_string, values)
        super().__call__(parser, namespace, values, option_string)


def _shown(value: object) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


_TYPE_NAMES = {"int": "eine ganze Zahl", "float": "eine Zahl"}


def _unquoted(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text


def _argument_problem(error: argparse.ArgumentError, prog: str) -> Problem:
    """argparse's refusal of one argument (its English message) as a located German problem."""
    option = error.argument_name or prog
    context = error.__context__
    if isinstance(context, _ArgumentProblem):  # our own type functions: the whole problem, at this option
        return replace(context.problem, location=Location(option))
    message = error.message
    if message == "expected one argument":
        return Problem("usage-bad-value", Location(option), f"{option} braucht einen Wert", expected=f"einen Wert nach "
                       f"{option}", hint=f"den Wert direkt nach {option} angeben ({prog} --help)")
    choice = re.fullmatch(r"invalid choice: (?P<value>.*) \(choose from (?P<choices>.*)\)", message)
    if choice:
        value, choices = _unquoted(choice["value"]), [_unquoted(c) for c in choice["choices"].split(", ")]
        return Problem("usage-bad-value", Location(option), f"{value!r} ist für {option} nicht vorgesehen"
                       f"{did_you_mean(value, choices)}", found=value, expected="einer von " + ", ".join(choices),
                       hint="einen der vorgesehenen Werte angeben")
    typed = re.fullmatch(r"invalid (?P<type>\w+) value: (?P<value>.*)", message)
    if typed:
        value, wanted = _unquoted(typed["value"]), _TYPE_NAMES.get(typed["type"], f"ein Wert ({typed['type']})")
        return Problem("usage-bad-value", Location(option), f"{value!r} ist kein gültiger Wert für {option}",
                       found=value, expected=wanted, hint=f"{wanted} angeben ({prog} --help)")
    return Problem("usage-bad-value", Location(option), message, hint=f"{prog} --help zeigt die Optionen")


def _message_problem(message: str, prog: str) -> Problem:
    """A message argparse passes to `error()` without an argument (missing or unknown arguments) as a problem."""
    missing = re.fullmatch(r"the following arguments are required: (.*)", message)
    if missing:
        return Problem("usage-missing-argument", Location(missing.group(1)),
                       f"{prog}: es fehlt, was der Befehl braucht: {missing.group(1)}", found=None,
                       expected=missing.group(1), hint=f"die fehlenden Angaben ergänzen ({prog} --help)")
    unknown = re.fullmatch(r"unrecognized arguments: (.*)", message)
    if unknown:
        return Problem("usage-unknown-argument", Location(prog), f"{prog} kennt diese Angaben nicht: {unknown.group(1)}",
                       found=unknown.group(1), expected="nur die Optionen des Befehls",
                       hint=f"die Schreibweise prüfen; {prog} --help zeigt alle Optionen")
    return Problem("usage-bad-value", Location(prog), message, hint=f"{prog} --help zeigt die Optionen")


class _Parser(argparse.ArgumentParser):
    """argparse for every command: a usage error is a located German problem (as JSON on stdout when `--json` is
    among the arguments, like every other error), exit 2; and every single-value option refuses a second value
    (`_StoreOnce` is the `store` action of every parser and subparser)."""

    def __init__(self, *args, state: _ParseState | None = None, **kwargs) -> None:
        kwargs["exit_on_error"] = False  # argparse's ArgumentErrors reach `parse_known_args` below
        super().__init__(*args, **kwargs)
        self.root = state is None
        self.state = state if state is not None else _ParseState()
        self.seen_options: dict = {}
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)

    def add_subparsers(self, **kwargs):
        kwargs.setdefault("parser_class", functools.partial(_Parser, state=self.state))
        return super().add_subparsers(**kwargs)

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        if self.root:
            self.state.json = "--json" in args
        self.seen_options = {}
        try:
            return super().parse_known_args(args, namespace)
        except argparse.ArgumentError as error:
            self._refuse(_argument_problem(error, self.prog))
        except _UsageProblem as usage:
            self._refuse(usage.problem)

    def error(self, message: str):
        self._refuse(_message_problem(message, self.prog))

    def _refuse(self, problem: Problem):
        if not self.state.json:
            self.print_usage(sys.stderr)
        _print_problems([problem], f"{self.prog}: Aufruf fehlerhaft", self.state.json, ExitCode.USAGE)
        raise SystemExit(ExitCode.USAGE)


def _print_registered(entry: dict) -> None:
    """A final run's register entry and the chain head, to be written into the minutes (README: an anchor)."""
    print(f"Echtlauf: im Register als Nr. {entry['seq']} in {entry['file']}, Kettenglied {entry['chain']}")
    print(f"Kettenkopf (für das Protokoll): {entry['head']}")


def _refuse_overwrite(output, protected, never_replace: bool = False) -> None:
    """Every writing command: its output is never a file it reads, nor in the register, nor a registered final
    run's output (exit 8); with `never_replace` never an existing file."""
    from ..runs.register import guard_outputs, installation_register

    guard_outputs([("Die Zieldatei", output)], protected, installation_register(), never_replace=never_replace)


def _protected(output, register=None):
    """The write of a command's output under the register's shared lock, checked once more there: no final run
    registers that name between the command's first check and its write (`register.protected`)."""
    from ..runs.register import installation_register, protected

    return protected([("Die Zieldatei", output)], installation_register(register))


def _finding_dict(finding) -> dict:
    return {"code": finding.code, "ags": finding.ags, "name": finding.name, "category": finding.category,
            "own_cost_cents": finding.own_cost, "levy_share_cents": finding.levy_share,
            "total_cents": finding.own_cost + finding.levy_share, "credit_cents": finding.credit,
            "message": finding.message}


def _register_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """`--register ORDNER`: the register of final runs a command uses (default: the installation's)."""
    parser.add_argument("--register", metavar="ORDNER", type=Path, default=None, help=help_text)


def _steps(commands, name: str, help_text: str, description: str):
    """A command with steps (`allocation year init|...`, `allocation register status`): its subparsers."""
    group = commands.add_parser(name, help=help_text, description=description)
    steps = group.add_subparsers(dest=f"{name}_command", metavar="SCHRITT")
    steps.required = True
    return steps


# argparse's own texts of its help (its `gettext` hook, `argparse._` and `argparse.ngettext`), in German while
# `allocation` parses and prints help; the command and option names stay as they are. Its error messages are not
# translated here: `_Parser` turns every one into a German problem (`usage-*`) by what argparse says.
ARGPARSE_GERMAN = {
    "usage: ": "Aufruf: ",
    "positional arguments": "Angaben",
    "options": "Optionen",
    "optional arguments": "Optionen",
    "show this help message and exit": "diese Hilfe zeigen und beenden",
    "show program's version number and exit": "die Version zeigen und beenden",
    "subcommands": "Befehle",
}


@contextlib.contextmanager
def _german_argparse():
    """argparse speaks German inside; its hooks are restored afterwards (other users of argparse, e.g. a test
    runner in the same process, keep theirs)."""
    saved = argparse._, argparse.ngettext
    argparse._ = lambda text: ARGPARSE_GERMAN.get(text, text)
    argparse.ngettext = lambda single, plural, n: ARGPARSE_GERMAN.get(single if n == 1 else plural,
                                                                     single if n == 1 else plural)
    try:
        yield
    finally:
        argparse._, argparse.ngettext = saved
