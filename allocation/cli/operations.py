"""The operators' commands: `inbox` (dropped workbooks, for cron and systemd), `batch` (every input of a folder,
in parallel) and `serve` (the upload page)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..core.problems import ExitCode
from .common import _missing_extra, _register_option


def _cmd_inbox(args: argparse.Namespace) -> int:
    from ..ops.inbox import exit_code, process_inbox, watch_inbox
    from ..ops.locking import Busy, DirectoryLock
    from ..runs.register import guard_folder

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


def _cmd_batch(args: argparse.Namespace) -> int:
    from ..ops.batch import run_batch

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


def _cmd_serve(args: argparse.Namespace) -> int:
    """The upload page (allocation/web). Flask and waitress are imported here only, never at CLI start."""
    if (missing := _missing_extra("web")) is not None:
        print(missing, file=sys.stderr)
        return ExitCode.USAGE
    import waitress
    if args.hash_password:
        import getpass

        from ..web.config import hash_password

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

    from ..web.app import create_app, server_options, sweep
    from ..web.config import default_config, load_config

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


def _add_serve(commands) -> None:
    """`allocation serve`."""
    serve = commands.add_parser("serve", help="Web-Oberfläche: Arbeitsmappe hochladen, Probelauf, Ergebnis herunterladen",
                                description="Startet die Upload-Seite für Controller (Probeläufe). Benutzer, Kreise, "
                                            "Regelordner und Grenzen stehen in der TOML-Konfiguration "
                                            "(Beispiel: deploy/serve.example.toml). Braucht das Extra 'web': "
                                            ".venv/bin/pip install -e '.[web]' im Checkout.")
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
