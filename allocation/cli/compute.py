"""The commands that compute: `run` (the yearly run), `rate` (a levy rate from need and base), `compare`
(scenarios side by side, or two years) and `trueup` (the settlement of a final run against the actual figures)."""
from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from ..core.problems import ExitCode, Location, Problem
from ..core.states import level as _level
from .common import _finding_dict, _print_registered, _protected, _refuse_overwrite, _register_option, _UsageProblem


def level_word(name: str) -> str:
    """How the console counts the members: "Gemeinden" for a Kreis, the level's own word otherwise."""
    return "Gemeinden" if name == "Kreis" else _level(name).counted


def _cmd_run(args: argparse.Namespace) -> int:
    from ..core.money import format_eur
    from ..runs.pipeline import run

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


def _cmd_rate(args: argparse.Namespace) -> int:
    from ..core.money import ROUNDING_UNITS, rate_percent
    from ..calc.rates import amount_at_rate

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
    from ..ops import compare
    from ..core.money import format_eur

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


def _cmd_trueup(args: argparse.Namespace) -> int:
    from ..core.money import format_eur
    from ..ops.trueup import settle, write_settlement

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
