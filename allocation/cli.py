"""Command line: a thin shell that parses arguments, calls the pipeline and maps errors to exit codes.

Exit codes (README, "Exit-Codes"): 0 ok, 1 internal error, 2 usage, 3 input workbook, 4 rule file,
5 rules do not decide the items, 6 failed control, 7 verify found differences, 8 refused (a final
run exists), 75 busy (another run holds the lock).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import re
import sys
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Sequence

from . import __version__
from .core.problems import ExitCode, Location, Problem, ProblemsError, did_you_mean
from .core.states import STATES as STATE_CODES
from .core.states import level as _level


def level_word(name: str) -> str:
    """How the console counts the members: "Gemeinden" for a Kreis, the level's own word otherwise."""
    return "Gemeinden" if name == "Kreis" else _level(name).counted

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


def _cmd_run(args: argparse.Namespace) -> int:
    from .core.money import format_eur
    from .runs.pipeline import run

    if args.bases_from is not None and not args.provisional:
        print("allocation run: --bases-from gilt nur für einen vorläufigen Lauf; bitte auch --provisional angeben",
              file=sys.stderr)
        return ExitCode.USAGE
    if args.rates_from is not None and not args.provisional:
        print("allocation run: --rates-from gilt nur für einen vorläufigen Lauf; bitte auch --provisional angeben",
              file=sys.stderr)
        return ExitCode.USAGE
    result = run(args.input, args.rules, args.output, mode=args.mode, provisional=args.provisional,
                 register_dir=args.register, supersede=args.supersede, bases_from=args.bases_from,
                 rates_from=args.rates_from, ignore_validity=args.ignore_validity, upward=args.upward)
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
        "total_cents": total,  # the deficits allocated, as before (README, migration note)
        "deficits_cents": allocation.deficits,
        "payable_cents": allocation.payable,
        "levies": [{"levy": levy.levy.id, "yield_cents": levy.revenue, "need_cents": levy.need}
                   for levy in allocation.levies],
        "output": str(result.output),
        "findings": [_finding_dict(finding) for finding in allocation.findings],
        "warnings": [warning.as_dict() for warning in result.warnings],
    } | ({"mode": "final", "register": result.registered} if result.registered else {"mode": args.mode})
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print(f"{parameters.district}, Haushaltsjahr {parameters.year}: {len(allocation.items)} Kostenpositionen, "
              f"{len(allocation.book.municipalities)} {level_word(parameters.level)}; Defizite verteilt "
              f"{format_eur(total)}, zu zahlen insgesamt {format_eur(allocation.payable)}")
        for levy in allocation.levies:  # what the levies charge (statute mode: base × rate), next to their need
            print(f"{levy.levy.name}: Aufkommen {format_eur(levy.revenue)}, Bedarf {format_eur(levy.need)}")
        for finding in allocation.findings:
            print(f"Hinweis [{finding.code}] {finding.message}")
        print(f"Ergebnis-Arbeitsmappe: {result.output}")
        if result.registered:
            _print_registered(result.registered)
    return ExitCode.OK


def _print_registered(entry: dict) -> None:
    """A final run's register entry and the chain head, to be written into the minutes (README: an anchor)."""
    print(f"Echtlauf: im Register als Nr. {entry['seq']} in {entry['file']}, Kettenglied {entry['chain']}")
    print(f"Kettenkopf (für das Protokoll): {entry['head']}")


def _refuse_overwrite(output, protected, never_replace: bool = False) -> None:
    """Every writing command: its output is never a file it reads, nor in the register, nor a registered final
    run's output (exit 8); with `never_replace` never an existing file."""
    from .runs.register import guard_outputs, installation_register

    guard_outputs([("Die Zieldatei", output)], protected, installation_register(), never_replace=never_replace)


def _protected(output, register=None):
    """The write of a command's output under the register's shared lock, checked once more there: no final run
    registers that name between the command's first check and its write (`register.protected`)."""
    from .runs.register import installation_register, protected

    return protected([("Die Zieldatei", output)], installation_register(register))


def _finding_dict(finding) -> dict:
    return {"code": finding.code, "ags": finding.ags, "name": finding.name, "category": finding.category,
            "own_cost_cents": finding.own_cost, "levy_share_cents": finding.levy_share,
            "total_cents": finding.own_cost + finding.levy_share, "credit_cents": finding.credit,
            "message": finding.message}


def _cmd_rate(args: argparse.Namespace) -> int:
    from .core.money import ROUNDING_UNITS, rate_percent
    from .calc.rates import amount_at_rate

    rate = rate_percent(args.need, args.base, args.decimals)
    if args.json:
        unit = ROUNDING_UNITS[args.rounding]
        print(json.dumps({"status": "ok", "rate_percent": str(rate), "decimals": args.decimals,
                          "need": str(args.need), "base": str(args.base),
                          "amount_at_rate_cents": amount_at_rate(args.base * 100, rate, unit),
                          "rounding": args.rounding}, ensure_ascii=False, indent=2))
    else:
        print(rate)
    return ExitCode.OK


AMOUNT_DIGITS = 15  # euros below 10^15 (the rule files' number limit)
AMOUNT_PLACES = 6  # decimal places of an amount option


def _amount_argument(text: str) -> Decimal:
    """A euro amount option, bounded before any arithmetic: `1e999999999` would make the exact rate
    arithmetic (Fractions of 10^999999999) run for hours; it is refused at once (exit 2)."""
    if len(text) > 100:
        raise argparse.ArgumentTypeError(f"{text[:20]!r}… ist zu lang für einen Betrag (höchstens 100 Zeichen)")
    try:
        value = Decimal(text.strip().replace("_", ""))
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} ist kein Betrag; erwartet z. B. 23128101 oder 23128101.50") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{text!r} ist kein endlicher Betrag")
    if not value:
        return Decimal(0)  # 0E+999999999, -0.000: plain zero
    if value.adjusted() >= AMOUNT_DIGITS:  # adjusted(): the exponent of the first digit, no arithmetic
        raise argparse.ArgumentTypeError(
            f"{text!r} ist zu groß; erwartet: ein Betrag unter 10^{AMOUNT_DIGITS} € (höchstens {AMOUNT_DIGITS} Stellen "
            "vor dem Komma)")
    if value.as_tuple().exponent < -AMOUNT_PLACES:
        raise argparse.ArgumentTypeError(
            f"{text!r} hat zu viele Nachkommastellen; erwartet: höchstens {AMOUNT_PLACES}, z. B. 23128101.50")
    return value


def _decimals_argument(text: str) -> int:
    """Decimal places of a printed rate: 0 to 10 (a German message instead of argparse's "invalid choice")."""
    stripped = text.strip()
    if not (stripped.isascii() and stripped.isdigit() and len(stripped) <= 2 and int(stripped) <= 10):
        raise argparse.ArgumentTypeError(f"{text[:20]!r} ist keine Stellenzahl; erwartet eine ganze Zahl von 0 bis 10")
    return int(stripped)


def _positive_amount_argument(text: str) -> Decimal:
    value = _amount_argument(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: die Umlagegrundlagen müssen größer als 0 sein")
    return value


class _ScenarioOption(argparse.Action):
    """`--rules` opens a scenario; `--label` and `--input` after it belong to that scenario."""

    def __call__(self, parser, namespace, values, option_string=None):
        scenarios = list(getattr(namespace, "scenarios", None) or [])
        if self.dest == "rules":
            scenarios.append({"rules": values})
        elif not scenarios:
            parser.error(f"{option_string} gehört zu einem Szenario: zuerst --rules REGELN.yaml, dann {option_string}")
        elif self.dest in scenarios[-1]:
            raise _UsageProblem(Problem(
                "usage-repeated-option", Location(option_string), f"{option_string} zweimal für das Szenario mit "
                f"--rules {scenarios[-1]['rules']}", found=f"{scenarios[-1][self.dest]} und {values}",
                expected=f"{option_string} höchstens einmal je Szenario",
                hint=f"jedes Szenario mit --rules beginnen; {option_string} danach gilt für dieses Szenario"))
        else:
            scenarios[-1] = {**scenarios[-1], self.dest: values}
        namespace.scenarios = scenarios


def _usage(message: str, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"status": "error", "exit_code": ExitCode.USAGE, "title": message, "problems": []},
                         ensure_ascii=False, indent=2))
    else:
        print(f"allocation compare: {message}", file=sys.stderr)
    return ExitCode.USAGE


def _cmd_compare(args: argparse.Namespace) -> int:
    from .ops import compare
    from .core.money import format_eur

    scenarios = args.scenarios or []
    _refuse_overwrite(args.output, [("Arbeitsmappe", f) for f in args.files]
                      + [("Eingabe-Arbeitsmappe", s["input"]) for s in scenarios if s.get("input")]
                      + [("Regeldatei", s["rules"]) for s in scenarios])
    if not scenarios:
        if len(args.files) != 2:
            return _usage("ohne --rules werden genau zwei Ergebnis-Arbeitsmappen verglichen "
                          "(allocation compare ERGEBNIS_2022.xlsx ERGEBNIS_2023.xlsx -o vergleich.xlsx)", args.json)
        before, after = compare.read_pair(args.files[0], args.files[1])
        rows, warnings = compare.year_over_year(before, after)
        for warning in warnings:
            print(f"  {warning}", file=sys.stderr)
        with _protected(args.output):
            compare.write_year_comparison(args.output, before, after, rows)
        if args.json:
            print(json.dumps({"status": "ok", "mode": "years", "years": [before.year, after.year],
                              "municipalities": [{"ags": r.ags, "name": r.name, "before_cents": r.total_before,
                                                  "after_cents": r.total_after, "change_cents": r.change,
                                                  "change_percent": None if r.change_percent is None
                                                  else str(r.change_percent)} for r in rows],
                              "output": str(args.output)}, ensure_ascii=False, indent=2))
        else:
            print(f"Vergleich {before.year} → {after.year}: {len(rows)} Gemeinden")
            print(f"Vergleichs-Arbeitsmappe: {args.output}")
        return ExitCode.OK
    if len(args.files) > 1:
        return _usage("mit --rules höchstens eine Eingabe-Arbeitsmappe als Vorgabe angeben; "
                      "eigene Eingaben je Szenario mit --input nach dem --rules des Szenarios", args.json)
    if len(scenarios) < 2:
        return _usage("mindestens zwei Szenarien angeben (--rules A.yaml --rules B.yaml)", args.json)
    default_input = args.files[0] if args.files else None
    chosen = []
    for number, spec in enumerate(scenarios, start=1):
        source = spec.get("input") or default_input
        if source is None:
            return _usage(f"Szenario {number} (--rules {spec['rules']}) hat keine Eingabe-Arbeitsmappe: "
                          "EINGABE.xlsx angeben oder --input nach seinem --rules", args.json)
        label = spec.get("label") or f"{number}: {Path(spec['rules']).stem}" + (
            f" + {Path(spec['input']).stem}" if spec.get("input") else "")
        chosen.append(compare.Scenario(label, str(source), str(spec["rules"])))
    labels = [s.label for s in chosen]
    if len(set(labels)) != len(labels):
        return _usage(f"Szenario-Bezeichnungen müssen verschieden sein: {', '.join(labels)}", args.json)
    comparison = compare.compare_scenarios(compare.run_scenarios(chosen))
    with _protected(args.output):
        compare.write_scenario_comparison(args.output, comparison)
    if args.json:
        print(json.dumps({"status": "ok", "mode": "scenarios", "scenarios": [
            {"label": r.scenario.label, "input": r.scenario.input_path, "rules": r.scenario.rules_path,
             "findings": [_finding_dict(f) for f in r.allocation.findings]} for r in comparison.results],
            "municipalities": [{"ags": m.ags, "name": m.name, "totals_cents": list(m.totals),
                                "differences_cents": [m.difference(i) for i in range(len(m.totals))]}
                               for m in comparison.municipalities],
            "moved_items": [m.item_id for m in comparison.items if m.moved],
            "output": str(args.output)}, ensure_ascii=False, indent=2))
    else:
        for result in comparison.results:
            total = sum(item.deficit for item in result.allocation.items)
            print(f"Szenario {result.scenario.label}: verteilt {format_eur(total)}")
            for finding in result.allocation.findings:
                print(f"  Hinweis [{finding.code}] {finding.message}")
        moved = [m.item_id for m in comparison.items if m.moved]
        if moved:
            print(f"Weg verschoben: {', '.join(moved)}")
        print(f"Vergleichs-Arbeitsmappe: {args.output}")
    return ExitCode.OK


def _cmd_inbox(args: argparse.Namespace) -> int:
    from .ops.inbox import exit_code, process_inbox, watch_inbox
    from .ops.locking import Busy, DirectoryLock
    from .runs.register import guard_folder

    guard_folder(args.folder, args.register)  # before the lock file is made: never inside the register
    try:
        with DirectoryLock(args.folder):
            if args.watch:
                return watch_inbox(args.folder, args.rules_dir, args.mode, args.force, args.interval,
                                   register=args.register)
            return exit_code(process_inbox(args.folder, args.rules_dir, args.mode, args.force, register=args.register))
    except Busy as busy:
        print(json.dumps({"event": "inbox-busy", "message": str(busy)}, ensure_ascii=False), file=sys.stderr)
        return busy.exit_code


def _cmd_trueup(args: argparse.Namespace) -> int:
    from .core.money import format_eur
    from .ops.trueup import settle, write_settlement

    _refuse_overwrite(args.output, [("Echtlauf-Arbeitsmappe", args.final_output),
                                    ("Eingabe-Arbeitsmappe", args.actual_input), ("Regeldatei", args.rules)])
    settlement = settle(args.final_output, args.actual_input, args.rules, register_dir=args.register)
    with _protected(args.output):
        write_settlement(args.output, settlement)
    balance = sum(line.difference for line in settlement.lines)
    if args.json:
        print(json.dumps({"status": "ok", "district": settlement.district, "year": settlement.year,
                          "lines": [{"ags": l.ags, "name": l.name, "paid_cents": l.paid, "owed_cents": l.owed,
                                     "difference_cents": l.difference} for l in settlement.lines],
                          "difference_cents": balance, "output": str(args.output)}, ensure_ascii=False, indent=2))
    else:
        print(f"Spitzabrechnung {settlement.district} {settlement.year}: {len(settlement.lines)} Gemeinden, "
              f"Saldo (geschuldet − gezahlt) {format_eur(balance)}")
        print(f"Abrechnungs-Arbeitsmappe: {args.output}")
    return ExitCode.OK


def _cmd_batch(args: argparse.Namespace) -> int:
    from .ops.batch import run_batch

    terminal = sys.stderr.isatty()
    show = not args.json and terminal or args.progress
    if show and terminal:  # rich only here: a bar with colour on a terminal
        from rich.console import Console
        from rich.markup import escape
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        bar = Progress(TextColumn("Eingaben"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=console, transient=False)
        task = bar.add_task("batch", total=None)

        def progress(done: int, total: int, result) -> None:
            bar.update(task, completed=done, total=total)
            if result.exit_code:
                console.print(f"[bold red]FEHLER[/] {escape(Path(result.input).name)} (Exit-Code {result.exit_code})",
                              markup=True, highlight=False)

        with bar:
            result = run_batch(args.folder, args.output, args.rules, jobs=args.jobs, progress=progress)
    else:  # logs and cron: one plain line per finished input, no bar, no colour, no carriage returns

        def progress(done: int, total: int, result) -> None:
            if show:
                state = "ok" if result.exit_code == 0 else f"FEHLER (Exit-Code {result.exit_code})"
                print(f"{done}/{total} {Path(result.input).name} {state}", file=sys.stderr, flush=True)

        result = run_batch(args.folder, args.output, args.rules, jobs=args.jobs, progress=progress)
    failed = [r for r in result.results if r.exit_code]
    if args.json:
        print(json.dumps({"status": "ok" if not failed else "error", "exit_code": result.exit_code,
                          "summary": str(result.summary), "districts": len(result.results),
                          "failed": [{"input": r.input, "exit_code": r.exit_code, "problems": list(r.problems)}
                                     for r in failed]}, ensure_ascii=False, indent=2))
        return result.exit_code
    if failed and show and terminal:
        from rich.table import Table

        table = Table(title="Eingaben mit Fehlern", title_justify="left")
        for column in ("Eingabe", "Exit-Code", "erstes Problem"):
            table.add_column(column)
        for r in failed:
            table.add_row(Path(r.input).name, str(r.exit_code), r.problems[0] if r.problems else "")
        console.print(table)
    print(f"{len(result.results)} Eingaben, {len(failed)} mit Fehlern; Zusammenfassung: {result.summary}")
    return result.exit_code


def _cmd_template(args: argparse.Namespace) -> int:
    from .workbook.template import write_template

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
    from .core import states

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


def _cmd_check(args: argparse.Namespace) -> int:
    from .calc.analysis import check_paths

    books, problems = check_paths(args.rules)
    errors = [p for p in problems if p.severity == "error"]
    exit_code = ExitCode.RULES if errors or not books else ExitCode.OK
    if args.json:
        print(json.dumps({"status": "error" if exit_code else "ok", "exit_code": exit_code,
                          "files": [b.path for b in books], "problems": [p.as_dict() for p in problems]},
                         ensure_ascii=False, indent=2))
        return exit_code
    for problem in problems:
        print(f"  {problem}", file=sys.stderr if problem.severity == "error" else sys.stdout)
    warnings = len(problems) - len(errors)
    if exit_code:
        print(f"Prüfung fehlgeschlagen: {len(errors)} Fehler, {warnings} Warnungen in "
              f"{len(books)} lesbaren Regeldatei(en).", file=sys.stderr)
    else:
        examples = sum(len(b.examples) for b in books)
        print(f"Prüfung bestanden: {len(books)} Regeldatei(en), {sum(len(b.rules) for b in books)} Regeln, "
              f"{examples} Beispiele, {warnings} Warnungen.")
    return exit_code


def _cmd_explain(args: argparse.Namespace) -> int:
    from .ops.explain import explain

    print(explain(args.output, args.item, args.ags))
    return ExitCode.OK


def _cmd_rulebook(args: argparse.Namespace) -> int:
    from .rulefiles.rulebook_doc import write_rulebook_doc

    from .workbook.guard import rule_files

    _refuse_overwrite(args.output, [entry for rules in args.rules for entry in rule_files(rules)])
    with _protected(args.output):
        written = write_rulebook_doc(args.rules, args.output, args.format)
    print(f"Regelbuch geschrieben: {written}")
    return ExitCode.OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from .ops.verify import VERIFY_FAILED, verify

    result = verify(args.target, args.register)
    if args.json:
        print(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
    else:
        print(result.text(), file=sys.stdout if result.identical else sys.stderr)
    return ExitCode.OK if result.identical else VERIFY_FAILED


def _cmd_year_init(args: argparse.Namespace) -> int:
    from .ops import year

    folder = year.init(args.directory, args.district, args.year)
    if args.json:
        print(json.dumps({"status": "ok", "folder": str(folder), "district": args.district, "year": args.year},
                         ensure_ascii=False, indent=2))
    else:
        print(f"Umlagejahr {args.district} {args.year} angelegt: {folder}")
    return ExitCode.OK


def _cmd_year_stage(args: argparse.Namespace) -> int:
    from .ops import year
    from .core.money import format_eur

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
    from .ops import year

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
    from .ops.benehmen import write_benehmen

    folder, lines, missing = write_benehmen(args.input, args.rules, args.previous, args.output,
                                            deadline=args.deadline, date=args.date, template=args.template,
                                            template_seconds=args.template_seconds,
                                            template_memory_mb=args.template_memory_mb)
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
    from .ops import statements, year

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


def _cmd_register_status(args: argparse.Namespace) -> int:
    from .runs import register
    from .runs.readback import read_register

    folder = register.installation_register(args.register)
    view = read_register(folder)  # RegisterCorrupt (exit 8) / RegisterUnusable (exit 9) name file and line
    files = register.summary(view)
    position = register.head_position(view, args.expect_head) if args.expect_head else None
    problems = []
    if args.expect_head and position is None:
        problems.append(Problem("register-head-unknown", Location(str(folder / "_kette.jsonl")),
                                "Der notierte Kettenkopf kommt in der Kette des Registers nicht vor: die Kette wurde "
                                "seit der Notiz neu geschrieben (oder es ist ein anderes Register)",
                                found=args.expect_head, expected=f"ein Glied der Kette (Kopf jetzt {view.head})",
                                hint="die Rechnungsprüfung informieren und das Register mit der Sicherung vergleichen"))
    if args.json:
        print(json.dumps({"status": "ok" if not problems else "changed", "register": str(folder),
                          "head": view.head, "chain_links": len(view.chain), "chain": not view.legacy,
                          "expected_head_position": position, "files": files,
                          "problems": [p.as_dict() for p in problems]}, ensure_ascii=False, indent=2))
    else:
        print(f"Register der Echtläufe: {folder}")
        runs = sum(entry["runs"] for entry in files)
        print(f"Zustand: unversehrt ({len(files)} Kreis-Jahre, {runs} Echtläufe, Kette mit {len(view.chain)} "
              "Gliedern)" if not view.legacy or not files else
              f"Zustand: unversehrt ({len(files)} Kreis-Jahre, {runs} Echtläufe); die Kette beginnt mit dem nächsten "
              "Echtlauf (Register einer früheren Version)")
        print(f"Kettenkopf (für das Protokoll): {view.head}")
        for entry in files:
            force = entry["in_force"]
            print(f"  {entry['file']}: {entry['district']} {entry['year']}, {entry['runs']} Echtlauf/-läufe; in Kraft "
                  f"Nr. {force['seq']} vom {force['recorded_utc']} ({force['output']})"
                  + (f", Grund: {force['reason']}" if force["reason"] else ""))
        if position == 0:
            print("Der notierte Kettenkopf ist der Anfang jeder Kette (notiert, als das Register noch leer war): er "
                  "sichert nichts; erst der Kopf nach einem Echtlauf ist ein Anker.")
        elif position is not None:
            print(f"Der notierte Kettenkopf ist Glied Nr. {position} der Kette: bis dahin ist das Register unverändert.")
        if problems:
            _print_problems(problems, "Register der Echtläufe", False, ExitCode.VERIFY)
    return ExitCode.VERIFY if problems else ExitCode.OK


def _sha256_argument(text: str) -> str:
    """A SHA-256 as printed (64 hexadecimal digits), e.g. a chain head noted in the minutes."""
    value = text.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise argparse.ArgumentTypeError(f"{text[:80]!r} ist keine SHA-256: erwartet 64 Hexadezimalziffern, wie "
                                         "allocation sie als Kettenkopf ausgibt")
    return value


def _date_argument(text: str):
    """A date option (`--date`, `--deadline`): JJJJ-MM-TT from 1900 to 2999 (`core.dates`), else exit 2 at once."""
    from .core.dates import DateError, parse_date

    try:
        return parse_date(text, "Datum")
    except DateError as error:
        raise _ArgumentProblem(error.problems[0]) from None


def _cmd_notices(args: argparse.Namespace) -> int:
    from .ops.notices import write_notices

    try:
        import typst  # noqa: F401
    except ImportError:
        print("Die Bescheide brauchen das Paket typst: pip install 'allocation[notices]'", file=sys.stderr)
        return ExitCode.USAGE

    written = write_notices(args.output_workbook, args.output, args.template, args.date, args.previous,
                            register_dir=args.register, template_seconds=args.template_seconds,
                            template_memory_mb=args.template_memory_mb, previous_year=args.previous_year,
                            settled_on=args.settled_on, addresses=args.addresses, only=args.ags)
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


def _cmd_serve(args: argparse.Namespace) -> int:
    """The upload page (allocation/web). Flask and waitress are imported here only, never at CLI start."""
    try:
        import flask  # noqa: F401
        import waitress
    except ImportError as missing:
        print(f"Die Web-Oberfläche braucht zusätzliche Pakete ({missing.name} fehlt): "
              "pip install 'allocation[web]'", file=sys.stderr)
        return ExitCode.USAGE
    if args.hash_password:
        import getpass

        from .web.config import hash_password

        if sys.stdin.isatty():
            password = getpass.getpass("Neues Passwort: ")
            if getpass.getpass("Passwort wiederholen: ") != password:
                print("Die Passwörter stimmen nicht überein.", file=sys.stderr)
                return ExitCode.USAGE
        else:  # e.g. from a password manager: one line on standard input
            password = sys.stdin.readline().rstrip("\r\n")
        if len(password) < 12:
            print("Das Passwort ist zu kurz: mindestens 12 Zeichen.", file=sys.stderr)
            return ExitCode.USAGE
        print(hash_password(password))
        return ExitCode.OK
    import logging
    import threading
    import time

    from .web.app import create_app, server_options, sweep
    from .web.config import default_config, load_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")  # one line per upload/log-in
    config_path = args.config if args.config is not None else Path("serve.toml")
    embedded = args.config is None and not config_path.exists()
    if not embedded and args.rules is not None:
        print("allocation serve: --rules gilt nur ohne Konfiguration; mit serve.toml steht der Regelordner dort "
              "(server.rules_dir)", file=sys.stderr)
        return ExitCode.USAGE
    if embedded and args.host not in ("127.0.0.1", "localhost"):
        print("allocation serve: ohne Konfiguration hört der Server nur auf 127.0.0.1; für andere Adressen "
              "eine serve.toml mit Benutzern und Passwörtern anlegen (deploy/serve.example.toml)", file=sys.stderr)
        return ExitCode.USAGE
    config = default_config(args.rules or Path("rules")) if embedded else load_config(config_path)
    host = "127.0.0.1" if embedded else args.host
    app = create_app(config)

    def _sweep_forever() -> None:  # remove old uploads and results even when nobody uses the page
        while True:
            try:
                sweep(config)
            except FileNotFoundError:  # the work folder went (the server is ending, or someone removed it)
                pass
            time.sleep(60)

    threading.Thread(target=_sweep_forever, name="allocation-sweep", daemon=True).start()
    # the port actually bound (`--port 0`: one the system chooses) is the one the log-in link names
    server = waitress.create_server(app, host=host, port=args.port, **server_options(config))
    port = server.effective_port
    if embedded:
        import atexit
        import shutil
        import signal

        atexit.register(shutil.rmtree, config.work_dir, True)  # the temporary work folder goes with the server
        # systemd and `kill` stop with SIGTERM: end as on Ctrl-C, so that the work folder (uploads, results,
        # notices) is removed by the atexit above
        before = signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(0))
        print(f"allocation serve ohne Konfiguration: nur auf diesem Rechner erreichbar, Regeln aus {config.rules_dir}, "
              f"Arbeitsordner {config.work_dir} (wird beim Beenden gelöscht).\n"
              f"Zum Anmelden diese Adresse im Browser öffnen (gilt bis zum Neustart, alle Kreise des Regelordners):\n"
              f"    http://{host}:{port}/anmelden?token={config.login_token}", file=sys.stderr, flush=True)
    else:
        print(f"allocation serve: http://{host}:{port}/ (Regeln: {config.rules_dir}, "
              f"Anmeldung: {'Kopfzeile ' + config.user_header if config.auth_mode == 'header' else 'Passwort'})",
              file=sys.stderr, flush=True)
    try:
        server.run()
    finally:
        server.close()
        if embedded:
            signal.signal(signal.SIGTERM, before)
    return ExitCode.OK


def _register_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """`--register ORDNER`: the register of final runs a command uses (default: the installation's)."""
    parser.add_argument("--register", metavar="ORDNER", type=Path, default=None, help=help_text)


def _add_run(commands) -> None:
    """`allocation run`."""
    run = commands.add_parser("run", help="Jahreslauf: Eingabe-Arbeitsmappe + Regeldatei -> Ergebnis-Arbeitsmappe",
                              description="Liest die Eingabe-Arbeitsmappe, entscheidet jede Kostenposition nach der "
                                          "Regeldatei und schreibt die Ergebnis-Arbeitsmappe.")
    run.add_argument("input", metavar="EINGABE.xlsx", help="Eingabe-Arbeitsmappe (wird nie verändert)")
    run.add_argument("--rules", required=True, metavar="REGELN.yaml|REGELORDNER",
                     help="Regeldatei (YAML); sie muss Kreis und Haushaltsjahr der Eingabe abdecken. Oder ein Ordner, "
                          "aus dem die gültige Regeldatei gewählt wird")
    run.add_argument("-o", "--output", required=True, metavar="ERGEBNIS.xlsx", help="Ergebnis-Arbeitsmappe")
    run.add_argument("--json", action="store_true", help="Ergebnis bzw. Fehlerliste als JSON ausgeben")
    run.add_argument("--mode", choices=("test", "final"), default="test",
                     help="test = Probelauf (Vorgabe); final = Echtlauf, wird im Register der Echtläufe eingetragen")
    run.add_argument("--supersede", metavar="GRUND", default=None,
                     help="einen schon registrierten Echtlauf desselben Jahres ersetzen (beide bleiben im Register)")
    _register_option(run, "Ordner des Registers der Echtläufe (Vorgabe: $ALLOCATION_REGISTER, sonst das Register der "
                          "Installation im Benutzer-Datenordner)")
    run.add_argument("--ignore-validity", metavar="GRUND", default=None,
                     help="Modellrechnung: die Regeldatei auch für einen anderen Kreis oder ein Jahr außerhalb ihrer "
                          "Gültigkeit verwenden (mit Begründung; in Protokoll und Manifest vermerkt; nie mit --mode final)")
    run.add_argument("--provisional", action="store_true",
                     help="vorläufiger Lauf (§ 56 Abs. 1 KrO NRW): jedes Blatt wird als VORLÄUFIG gekennzeichnet")
    run.add_argument("--bases-from", metavar="VORJAHR.xlsx", default=None,
                     help="mit --provisional: Umlagegrundlagen aus der Eingabe-Arbeitsmappe des Vorjahres übernehmen")
    run.add_argument("--rates-from", metavar="VORJAHR.xlsx", default=None,
                     help="mit --provisional: Umlagesätze (Blatt Umlagesaetze) aus der Eingabe-Arbeitsmappe des "
                          "Vorjahres auf die Grundlagen dieses Jahres anwenden")
    run.add_argument("--upward", metavar="OBERE-EBENE.xlsx", default=None,
                     help="Ergebnis der Ebene darüber (z. B. Bezirk, Landschaftsverband) mit Manifest: die eigene "
                          "Umlage daran wird Kostenposition UMLAGE-<Umlage> (Parameter Gebietsschluessel nötig)")
    run.set_defaults(handler=_cmd_run)


def _add_inbox(commands) -> None:
    """`allocation inbox`."""
    inbox = commands.add_parser(
        "inbox", help="Eingangsordner abarbeiten: DIR/eingang -> DIR/ergebnis bzw. DIR/fehler, Eingaben nach DIR/archiv",
        description="Verarbeitet jede Arbeitsmappe in DIR/eingang/ genau einmal (für cron/systemd). Dateien, deren "
                    "Name mit . oder ~$ beginnt oder auf .tmp/.part endet, werden erst nach dem Umbenennen "
                    "verarbeitet. Exit-Code 0, wenn alles fehlerfrei war; sonst der höchste Fehlercode; 75, wenn "
                    "ein anderer Lauf den Ordner sperrt.")
    inbox.add_argument("folder", metavar="DIR", type=Path, help="Inbox-Ordner (Unterordner werden angelegt)")
    inbox.add_argument("--rules", "--rules-dir", dest="rules_dir", type=Path, default=Path("rules"), metavar="ORDNER",
                       help="Ordner der Regeldateien; gewählt wird nach Kreis und Haushaltsjahr (Vorgabe: rules; "
                            "--rules-dir wie bisher)")
    inbox.add_argument("--mode", choices=("test", "final"), default="test",
                       help="test = Probelauf (Vorgabe); final = Echtlauf, im Register der Installation eingetragen")
    _register_option(inbox, "Ordner des Registers der Echtläufe (Vorgabe: $ALLOCATION_REGISTER, sonst das Register der "
                            "Installation im Benutzer-Datenordner)")
    inbox.add_argument("--force", action="store_true", help="auch schon verarbeitete Dateien (gleiche SHA-256) erneut verarbeiten")
    inbox.add_argument("--watch", action="store_true", help="weiterlaufen und neue Dateien verarbeiten, sobald sie vollständig sind")
    inbox.add_argument("--interval", type=float, default=5.0, metavar="SEKUNDEN",
                       help="mit --watch: Abstand der Prüfungen; eine Datei wird genommen, wenn Größe und Zeitstempel "
                            "über ein Intervall gleich blieben (Vorgabe: 5)")
    inbox.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    inbox.set_defaults(handler=_cmd_inbox)


def _add_trueup(commands) -> None:
    """`allocation trueup`."""
    trueup = commands.add_parser(
        "trueup", help="Spitzabrechnung: Echtlauf (gezahlt) gegen Ist-Zahlen (geschuldet) je Gemeinde",
        description="Liest die Ergebnis-Arbeitsmappe eines Echtlaufs, rechnet mit den Ist-Zahlen neu und schreibt "
                    "je Gemeinde gezahlt, geschuldet und die Differenz in eine eigene Arbeitsmappe.")
    trueup.add_argument("final_output", metavar="ECHTLAUF.xlsx", type=Path, help="Ergebnis-Arbeitsmappe des Echtlaufs")
    trueup.add_argument("actual_input", metavar="IST.xlsx", type=Path, help="Eingabe-Arbeitsmappe mit den Ist-Zahlen")
    trueup.add_argument("--rules", required=True, type=Path, metavar="REGELN.yaml", help="Regeldatei (YAML)")
    trueup.add_argument("-o", "--output", required=True, type=Path, metavar="ABRECHNUNG.xlsx", help="Zieldatei")
    _register_option(trueup, "Register der Echtläufe, in dem der Echtlauf in Kraft steht (Vorgabe: "
                             "$ALLOCATION_REGISTER, sonst das Register der Installation)")
    trueup.add_argument("--json", action="store_true", help="Ergebnis bzw. Fehlerliste als JSON ausgeben")
    trueup.set_defaults(handler=_cmd_trueup)


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


def _add_batch(commands) -> None:
    """`allocation batch`."""
    batch = commands.add_parser("batch", help="alle Eingabe-Arbeitsmappen eines Ordners (z. B. alle Kreise) rechnen",
                                description="Rechnet jede Eingabe-Arbeitsmappe im ORDNER, schreibt je Eingabe eine "
                                            "Ergebnis-Arbeitsmappe und eine Zusammenfassung (Zusammenfassung.xlsx). "
                                            "--rules ist eine Regeldatei für alle Eingaben oder ein Ordner, aus dem "
                                            "je Kreis und Haushaltsjahr die gültige Regeldatei gewählt wird.")
    batch.add_argument("folder", metavar="ORDNER", help="Ordner mit Eingabe-Arbeitsmappen (*.xlsx)")
    batch.add_argument("--rules", required=True, metavar="REGELN.yaml|REGELORDNER",
                       help="Regeldatei für alle Eingaben, oder Ordner mit Regeldateien (Auswahl je Kreis und Jahr)")
    batch.add_argument("-o", "--output", required=True, metavar="ZIELORDNER", help="Ordner für die Ergebnisse")
    batch.add_argument("--jobs", type=int, default=None, metavar="N", help="parallele Prozesse (Standard: alle Kerne)")
    batch.add_argument("--progress", action="store_true",
                       help="Fortschritt auch ohne Terminal zeigen (dann eine schlichte Zeile je fertiger Eingabe)")
    batch.add_argument("--json", action="store_true", help="Ergebnis als JSON ausgeben")
    batch.set_defaults(handler=_cmd_batch)


def _add_compare(commands) -> None:
    """`allocation compare`."""
    compare = commands.add_parser(
        "compare", help="Szenarien nebeneinander (--rules je Szenario) oder zwei Haushaltsjahre vergleichen",
        description="Szenarien: allocation compare EINGABE.xlsx --rules A.yaml [--label X] [--input Y.xlsx] "
                    "--rules B.yaml ... -o vergleich.xlsx (jedes --rules beginnt ein Szenario; --label und --input "
                    "danach gehören zu ihm; das erste Szenario ist die Referenz). Jahresvergleich: allocation compare "
                    "ERGEBNIS_2022.xlsx ERGEBNIS_2023.xlsx -o vergleich.xlsx.")
    compare.add_argument("files", nargs="*", metavar="ARBEITSMAPPE.xlsx",
                         help="Eingabe-Arbeitsmappe (Szenarien) oder zwei Ergebnis-Arbeitsmappen (Jahresvergleich)")
    compare.add_argument("--rules", action=_ScenarioOption, metavar="REGELN.yaml",
                         help="Regeldatei eines Szenarios (beginnt ein neues Szenario; mehrfach)")
    compare.add_argument("--label", action=_ScenarioOption, metavar="TEXT", help="Bezeichnung des Szenarios")
    compare.add_argument("--input", action=_ScenarioOption, metavar="EINGABE.xlsx",
                         help="eigene Eingabe-Arbeitsmappe des Szenarios (sonst die allgemeine)")
    compare.add_argument("-o", "--output", required=True, metavar="VERGLEICH.xlsx", help="Vergleichs-Arbeitsmappe")
    compare.add_argument("--json", action="store_true", help="Ergebnis bzw. Fehlerliste als JSON ausgeben")
    compare.set_defaults(handler=_cmd_compare, scenarios=None)


def _add_rate(commands) -> None:
    """`allocation rate`."""
    rate = commands.add_parser("rate", help="Hebesatz aus Bedarf und Umlagegrundlagen berechnen",
                               description="Hebesatz = Bedarf ÷ Umlagegrundlagen × 100, kaufmännisch gerundet auf "
                                           "die angegebenen Nachkommastellen.")
    rate.add_argument("--need", required=True, type=_amount_argument, metavar="EURO", help="Bedarf (Umlagesoll), €")
    rate.add_argument("--base", required=True, type=_positive_amount_argument, metavar="EURO",
                      help="Summe der Umlagegrundlagen, €")
    rate.add_argument("--decimals", type=_decimals_argument, default=2, metavar="N",
                      help="Nachkommastellen des Hebesatzes, 0 bis 10 (Kreis Wesel 2, StädteRegion Aachen 4; "
                           "Vorgabe 2)")
    rate.add_argument("--rounding", choices=("Cent", "Euro"), default="Cent",
                      help="Rundungseinheit des Aufkommens in der JSON-Ausgabe (Vorgabe Cent)")
    rate.add_argument("--json", action="store_true", help="Hebesatz und Aufkommen als JSON ausgeben")
    rate.set_defaults(handler=_cmd_rate)


def _add_check(commands) -> None:
    """`allocation check`."""
    check = commands.add_parser("check", help="Regeldateien prüfen, ohne Eingabe-Arbeitsmappe",
                                description="Prüft Regeldateien (oder Ordner mit Regeldateien): Schema, Überschneidungen "
                                            "(unique), verdeckte Regeln (priority), Lücken (domains), Gültigkeitsjahre "
                                            "über Dateien hinweg und die eingebetteten Beispiele. Meldet alle Probleme "
                                            "auf einmal; Exit-Code 4 bei Fehlern, Warnungen allein scheitern nicht.")
    check.add_argument("rules", nargs="+", metavar="REGELN.yaml", help="Regeldateien oder Ordner")
    check.add_argument("--json", action="store_true", help="Problemliste als JSON ausgeben")
    check.set_defaults(handler=_cmd_check)


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


def _add_explain(commands) -> None:
    """`allocation explain`."""
    explain = commands.add_parser("explain", help="erklären, wie eine Kostenposition verteilt wurde",
                                  description="Liest eine Ergebnis-Arbeitsmappe (ohne neu zu rechnen) und erklärt "
                                              "Regel, Rechtsgrundlage, Bedingung mit Werten und den Rechenweg.")
    explain.add_argument("output", metavar="ERGEBNIS.xlsx", help="Ergebnis-Arbeitsmappe eines Laufs")
    explain.add_argument("--item", required=True, metavar="ID", help="ID der Kostenposition")
    explain.add_argument("--ags", metavar="AGS", help="Rechenweg für diese Gemeinde (AGS)")
    explain.set_defaults(handler=_cmd_explain)


def _add_rulebook(commands) -> None:
    """`allocation rulebook`."""
    book = commands.add_parser("rulebook", help="lesbares Regelbuch (HTML oder Markdown) schreiben",
                               description="Schreibt jede Regel als Satz mit Rechtsgrundlage, Weg, Schlüssel, "
                                           "Beispielen und Gültigkeitsjahren.")
    book.add_argument("rules", nargs="+", metavar="REGELN.yaml", help="Regeldateien")
    book.add_argument("-o", "--output", required=True, metavar="REGELBUCH.html", help="Zieldatei (.html oder .md)")
    book.add_argument("--format", choices=("html", "md"), help="Format (sonst nach Dateiendung)")
    book.set_defaults(handler=_cmd_rulebook)


def _add_verify(commands) -> None:
    """`allocation verify`."""
    verify = commands.add_parser("verify", help="Lauf aus dem Manifest nachrechnen und vergleichen",
                                 description="Prüft Manifest, SHA-256 der Eingabe und der Regeldateien und bei einem "
                                             "Echtlauf seinen Eintrag im Register, rechnet den Lauf neu und vergleicht "
                                             "jede Zelle, das Layout und jeden Teil der Arbeitsmappe.")
    verify.add_argument("target", metavar="ERGEBNIS.xlsx", help="Ergebnis-Arbeitsmappe oder ihr .manifest.json")
    _register_option(verify, "Register der Echtläufe, gegen das ein Echtlauf geprüft wird (Vorgabe: "
                             "$ALLOCATION_REGISTER, sonst das Register der Installation; für eine Prüfung auf einem "
                             "anderen Rechner: die Kopie des Registers)")
    verify.add_argument("--json", action="store_true", help="Ergebnis als JSON ausgeben")
    verify.set_defaults(handler=_cmd_verify)


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
    from .ops.typst_child import (TEMPLATE_MEMORY_MB, TEMPLATE_MEMORY_MB_RANGE, TEMPLATE_SECONDS,
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
    _add_template_limits(benehmen)
    benehmen.add_argument("--json", action="store_true", help="Ergebnis bzw. Fehlerliste als JSON ausgeben")
    benehmen.set_defaults(handler=_cmd_benehmen)


def _steps(commands, name: str, help_text: str, description: str):
    """A command with steps (`allocation year init|...`, `allocation register status`): its subparsers."""
    group = commands.add_parser(name, help=help_text, description=description)
    steps = group.add_subparsers(dest=f"{name}_command", metavar="SCHRITT")
    steps.required = True
    return steps


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


def _add_register(commands) -> None:
    """`allocation register status`."""
    steps = _steps(commands, "register", "Register der Echtläufe: Zustand und Kettenkopf",
                   "Prüft das Register der Echtläufe als Ganzes (jede Zeile, jede Datei, die Kette) und nennt den "
                   "Kettenkopf, der ins Protokoll gehört.")
    status = steps.add_parser("status", help="Register prüfen, Echtläufe in Kraft und Kettenkopf zeigen",
                              description="Exit 0: unversehrt; 8: beschädigt (register-corrupt, mit Datei und Zeile); "
                                          "9: kein Ordner; 7: der mit --expect-head notierte Kettenkopf fehlt in der "
                                          "Kette.")
    _register_option(status, "Ordner des Registers (Vorgabe: $ALLOCATION_REGISTER, sonst das Register der Installation)")
    status.add_argument("--expect-head", metavar="SHA256", default=None, type=_sha256_argument,
                        help="ein früher (z. B. im Kreistagsprotokoll) notierter Kettenkopf: prüft, dass er ein Glied "
                             "der Kette ist, das Register bis dahin also unverändert")
    status.add_argument("--json", action="store_true", help="Ergebnis bzw. Fehlerliste als JSON ausgeben")
    status.set_defaults(handler=_cmd_register_status)


def _add_serve(commands) -> None:
    """`allocation serve`."""
    serve = commands.add_parser("serve", help="Web-Oberfläche: Arbeitsmappe hochladen, Probelauf, Ergebnis herunterladen",
                                description="Startet die Upload-Seite für Controller (Probeläufe). Benutzer, Kreise, "
                                            "Regelordner und Grenzen stehen in der TOML-Konfiguration "
                                            "(Beispiel: deploy/serve.example.toml). Braucht pip install 'allocation[web]'.")
    serve.add_argument("--host", default="127.0.0.1", help="Adresse (Vorgabe 127.0.0.1; hinter einem Reverse-Proxy lassen)")
    serve.add_argument("--port", type=int, default=8080, help="Port (Vorgabe 8080)")
    serve.add_argument("--config", type=Path, default=None, metavar="SERVE.toml",
                       help="Server-Konfiguration (Vorgabe serve.toml; fehlt sie, startet eine eingebaute Vorgabe: "
                            "nur 127.0.0.1, Regeln aus ./rules, temporärer Arbeitsordner, Anmelde-Adresse mit Token)")
    serve.add_argument("--rules", type=Path, default=None, metavar="ORDNER",
                       help="ohne Konfiguration: Ordner der Regeldateien (Vorgabe ./rules)")
    serve.add_argument("--hash-password", action="store_true",
                       help="Passwort-Hash (scrypt) für die Konfiguration erzeugen: fragt das Passwort ab (oder liest "
                            "eine Zeile von der Standardeingabe) und gibt den Hash aus")
    serve.set_defaults(handler=_cmd_serve)


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
        add(commands)  # one function per command (below), in the order `allocation --help` lists them
    return parser


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


def main(argv: Sequence[str] | None = None) -> int:
    with _german_argparse():
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
    except BrokenPipeError:  # the reader of the output went away (`allocation states BY | head`): not a bug
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141  # 128 + SIGPIPE, as a shell reports a command whose reader closed the pipe
    except Exception as error:  # an unexpected failure is a bug: say so, keep the traceback for the report
        import traceback

        traceback.print_exc()
        print(f"Interner Fehler: {error!r}. Bitte mit Eingabe und Regeldatei melden.", file=sys.stderr)
        return ExitCode.INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
