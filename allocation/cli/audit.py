"""The auditors' commands: `check` (rule files without data), `explain` (how an item went its way), `rulebook`
(the readable rule book), `verify` (a run recomputed and compared) and `register status` (the register of final
runs and its chain head)."""
from __future__ import annotations

import argparse
import json
import sys

from ..core.problems import ExitCode, Location, Problem
from .common import _print_problems, _protected, _refuse_overwrite, _register_option, _steps


def _cmd_check(args: argparse.Namespace) -> int:
    from ..calc.analysis import check_paths

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
    from ..ops.explain import explain

    print(explain(args.output, args.item, args.ags))
    return ExitCode.OK


def _cmd_rulebook(args: argparse.Namespace) -> int:
    from ..rulefiles.rulebook_doc import write_rulebook_doc

    from ..workbook.guard import rule_files

    _refuse_overwrite(args.output, [entry for rules in args.rules for entry in rule_files(rules)])
    with _protected(args.output):
        written = write_rulebook_doc(args.rules, args.output, args.format)
    print(f"Regelbuch geschrieben: {written}")
    return ExitCode.OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from ..ops.verify import VERIFY_FAILED, verify

    result = verify(args.target, args.register)
    if args.json:
        print(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
    else:
        print(result.text(), file=sys.stdout if result.identical else sys.stderr)
    return ExitCode.OK if result.identical else VERIFY_FAILED


def _cmd_register_status(args: argparse.Namespace) -> int:
    from ..runs import register
    from ..runs.readback import read_register

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
