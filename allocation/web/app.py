"""The upload page (Flask): log in, drop an input workbook, see its problems or its allocation, download results.

One more edge of the yearly run, like the inbox: `inputs.read_input` gives Kreis and Haushaltsjahr,
`selection.select_rules` picks the district's rule file from the server's rules folder, `pipeline.run` does a
test run (Probelauf) and writes workbook and manifest, and on problems `error_report.write_marked_copy`
writes the same marked input copy as the inbox. A final run stays a deliberate command-line act.

Who may do what: a user belongs to districts (server config); a result belongs to the district of its input
and is found only by a random token; anyone else gets 404. POST forms carry a per-session CSRF token.
Uploads and results live under `work_dir/jobs/<token>/` (never a served folder) and are removed after
`keep_minutes`. Everything from a workbook reaches the page through Jinja's autoescaping.
"""
from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from flask import Flask, Request, abort, g, jsonify, redirect, render_template, request, send_file, session, url_for
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..money import format_eur
from ..problems import InputError, Location, Problem, ProblemsError, RuleFileError, column_letter
from .chart import bars, summary
from .config import ServeConfig, User, check_password

__all__ = ["create_app", "sweep", "JOB_TOKEN"]

log = logging.getLogger("allocation.web")
JOB_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")
MULTIPART_ALLOWANCE = 64 * 1024  # form fields and boundaries around the workbook
_RUN_LOCK = threading.Lock()  # one run at a time per process: runs are CPU-bound and share the rules engine
DOWNLOADS = {"arbeitsmappe": ("output", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
             "manifest": ("manifest", "application/json"),
             "markiert": ("marked", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")}


def _safe_stem(name: str) -> str:
    stem = Path(name.replace("\\", "/")).stem
    return re.sub(r"[^\w.\- ]+", "_", stem).strip(" .")[:80] or "eingabe"


def _german_number(text: str | None) -> str:
    if text is None:
        return "–"
    whole, _, fraction = text.partition(".")
    return f"{int(whole):,}".replace(",", ".") + ("," + fraction if fraction else "") if whole.lstrip("-").isdigit() \
        else text


def _problem_row(problem: Problem) -> dict:
    loc = problem.location
    if loc.sheet is not None:
        place = loc.sheet
        cell = (f"{column_letter(loc.column)}{loc.row}" if loc.column else f"Zeile {loc.row}") if loc.row else ""
    elif loc.line is not None:
        place, cell = Path(loc.file).name, f"Zeile {loc.line}" + (f", Spalte {loc.col}" if loc.col else "")
    else:
        place, cell = Path(loc.file).name, ""
    return {"code": problem.code, "severity": problem.severity, "sheet": place, "cell": cell,
            "message": problem.message, "found": problem.found, "expected": problem.expected, "hint": problem.hint}


def sweep(config: ServeConfig, now: float | None = None) -> int:
    """Remove uploads and results older than `keep_seconds`; returns how many job folders went."""
    now = time.time() if now is None else now
    removed = 0
    for parent in (config.work_dir / "jobs", config.work_dir / "tmp"):
        if not parent.is_dir():
            continue
        for entry in parent.iterdir():
            try:
                created = json.loads((entry / "job.json").read_text(encoding="utf-8"))["created"] \
                    if (entry / "job.json").is_file() else entry.stat().st_mtime
            except (OSError, ValueError, KeyError):
                created = entry.stat().st_mtime
            if now - created > config.keep_seconds:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                removed += parent.name == "jobs"
    return removed


def create_app(config: ServeConfig) -> Flask:
    """The WSGI app for one configuration (`allocation serve` runs it with waitress)."""
    package = Path(__file__).parent
    app = Flask("allocation.web", template_folder=str(package / "templates"), static_folder=str(package / "static"),
                static_url_path="/static")
    jobs, spool = config.work_dir / "jobs", config.work_dir / "tmp"
    for folder in (jobs, spool):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    class UploadRequest(Request):
        def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
            # werkzeug spools large uploads to a temp file: keep it in the private work folder, not /tmp
            return tempfile.TemporaryFile("wb+", dir=spool)

    app.request_class = UploadRequest
    app.config.update(SECRET_KEY=config.secret_key, MAX_CONTENT_LENGTH=config.max_upload_bytes + MULTIPART_ALLOWANCE,
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=config.cookie_secure, SESSION_COOKIE_NAME="allocation_session",
                      PERMANENT_SESSION_LIFETIME=8 * 3600)
    app.jinja_env.autoescape = True  # also for the SVG partial: nothing from a workbook is trusted
    app.jinja_env.filters["eur"] = format_eur
    app.jinja_env.filters["number"] = _german_number
    app.extensions["allocation_config"] = config

    # ------------------------------------------------------------------ who is asking

    def current_user() -> User | None:
        if config.auth_mode == "header":
            name = request.headers.get(config.user_header, "").strip()
        else:
            name = session.get("user", "")
        return config.users.get(name) if name else None

    def csrf_token() -> str:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        return session["csrf"]

    def check_csrf() -> None:
        sent = request.form.get("csrf_token", "") or request.headers.get("X-CSRF-Token", "")
        if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
            abort(400, description="Das Formular ist abgelaufen oder stammt nicht von dieser Seite (CSRF-Schutz). "
                                   "Bitte die Seite neu laden und erneut senden.")

    def wants_json() -> bool:
        return request.headers.get("X-Requested-With") == "fetch" or request.accept_mimetypes.best == "application/json"

    @app.context_processor
    def _globals() -> dict:
        return {"csrf_token": csrf_token, "user": g.get("user"), "auth_mode": config.auth_mode,
                "max_upload_bytes": config.max_upload_bytes, "max_upload_mb": _german_number(
                    f"{config.max_upload_bytes / 1048576:.1f}".rstrip("0").rstrip("."))}

    @app.before_request
    def _load_user():
        g.user = current_user()
        if request.endpoint in ("login", "static") or g.user is not None:
            return None
        if config.auth_mode == "header":
            abort(403, description="Ihr Benutzerkonto ist für diese Seite nicht freigeschaltet.")
        if wants_json() or request.method != "GET":
            return jsonify({"error": "Bitte melden Sie sich an."}), 401
        return redirect(url_for("login"))

    @app.after_request
    def _headers(response):
        response.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(HTTPException)
    def _error(error: HTTPException):
        messages = {
            404: "Nicht gefunden. Ergebnisse sind nur für Ihren Kreis sichtbar und werden nach einiger Zeit gelöscht.",
            413: f"Die Datei ist zu groß. Erlaubt sind höchstens {format_size(config.max_upload_bytes)}.",
        }
        message = messages.get(error.code) or error.description or error.name
        if wants_json():
            return jsonify({"error": message}), error.code
        return render_template("error.html", code=error.code, message=message), error.code

    def format_size(size: int) -> str:
        return f"{_german_number(f'{size / 1048576:.1f}'.rstrip('0').rstrip('.'))} MB"

    # ------------------------------------------------------------------ pages

    @app.route("/anmelden", methods=["GET", "POST"])
    def login():
        if config.auth_mode == "header":
            return redirect(url_for("index"))
        error = None
        if request.method == "POST":
            check_csrf()
            name = request.form.get("benutzer", "").strip()
            user = config.users.get(name)
            if check_password(user.password_hash if user else None, request.form.get("passwort", "")):
                session.clear()
                session["user"] = name
                session.permanent = True
                log.info(json.dumps({"event": "web-login", "user": name}, ensure_ascii=False))
                return redirect(url_for("index"))
            error = "Benutzername oder Passwort ist falsch."
            log.warning(json.dumps({"event": "web-login-failed", "user": name[:80]}, ensure_ascii=False))
        return render_template("login.html", error=error), 401 if error else 200

    @app.post("/abmelden")
    def logout():
        check_csrf()
        session.clear()
        return redirect(url_for("login"))

    @app.get("/")
    def index():
        return render_template("upload.html", rules=district_rules(g.user))

    def district_rules(user: User) -> dict:
        """The user's districts' rule files (name, validity); other districts' files are never listed."""
        from ..selection import load_folder

        try:
            books = load_folder(config.rules_dir)
        except RuleFileError:
            return {"error": "Die Regeldateien auf dem Server sind fehlerhaft. Bitte wenden Sie sich an die IT.",
                    "files": []}
        return {"error": None, "files": [{"name": Path(b.path).name, "district": b.district, "valid_from": b.valid_from,
                                          "valid_to": b.valid_to} for b in books if user.may_see(b.district)]}

    @app.post("/hochladen")
    def upload():
        upload_file = request.files.get("arbeitsmappe")  # over MAX_CONTENT_LENGTH: 413 before any byte is kept
        check_csrf()
        if upload_file is None or not upload_file.filename:
            abort(400, description="Bitte eine Eingabe-Arbeitsmappe (.xlsx) auswählen.")
        if not upload_file.filename.lower().endswith(".xlsx"):
            abort(400, description=f"Nur Excel-Arbeitsmappen im Format .xlsx werden angenommen "
                                   f"(gefunden: {Path(upload_file.filename).suffix or 'ohne Endung'}).")
        sweep(config)
        token = secrets.token_urlsafe(24)
        job_dir = jobs / token
        job_dir.mkdir(mode=0o700)
        stem = _safe_stem(upload_file.filename)
        input_path = job_dir / f"{stem}.xlsx"
        size = 0
        with open(input_path, "wb") as target:  # the streamed size counts too, not only Content-Length
            while chunk := upload_file.stream.read(1 << 16):
                size += len(chunk)
                if size > config.max_upload_bytes:
                    break
                target.write(chunk)
        if size > config.max_upload_bytes:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise RequestEntityTooLarge()
        job = process(input_path, job_dir, stem, g.user)
        job.update(token=token, user=g.user.name, created=time.time(), filename=f"{stem}.xlsx", size=size)
        (job_dir / "job.json").write_text(json.dumps(job, ensure_ascii=False, indent=1), encoding="utf-8")
        log.info(json.dumps({"event": "web-upload", "user": g.user.name, "token": token[:6], "status": job["status"],
                             "district": job.get("district"), "problems": len(job.get("problems", []))},
                            ensure_ascii=False))
        target_url = url_for("result", token=token)
        if wants_json():
            return jsonify({"status": job["status"], "redirect": target_url})
        return redirect(target_url, code=303)

    def process(input_path: Path, job_dir: Path, stem: str, user: User) -> dict:
        """Read, check, select rules and run a Probelauf; problems become the page's problem table."""
        from ..inputs import read_input
        from ..pipeline import run
        from ..selection import select_rules

        job: dict = {"status": "error", "district": None, "year": None}
        error: ProblemsError | None = None
        with _RUN_LOCK:
            try:
                book = read_input(input_path)
                parameters = book.parameters
                job["year"] = parameters.year
                if not user.may_see(parameters.district):
                    raise InputError([Problem(
                        "web-district-not-allowed", parameters.source, "Dieses Konto darf diesen Kreis nicht rechnen",
                        found=parameters.district, expected=" oder ".join(user.districts),
                        hint="Kreis im Blatt Parameter prüfen oder die IT bitten, Ihnen den Kreis freizugeben")])
                job["district"] = parameters.district
                rules = _select(select_rules, parameters.district, parameters.year, user)
                job["rules"] = rules.name
                output = job_dir / f"{stem}-probelauf.xlsx"
                result = run(input_path, rules, output, mode="test")
                from ..manifest import manifest_path

                allocation = result.allocation
                job.update(status="ok", output=output.name,
                           manifest=manifest_path(output).name if manifest_path(output).is_file() else None,
                           summary=summary(allocation),
                           findings=[{"code": f.code, "ags": f.ags, "name": f.name, "category": f.category,
                                      "own_cost": f.own_cost, "levy_share": f.levy_share, "credit": f.credit,
                                      "message": f.message} for f in allocation.findings],
                           warnings=[_problem_row(p) for p in result.warnings],
                           items=len(allocation.items),
                           total=sum(item.deficit for item in allocation.items))
                return job
            except ProblemsError as caught:
                error = caught
                problems = list(caught.problems)
            except Exception as caught:  # noqa: BLE001 - a bug must not become a blank page; log it for the IT
                log.exception("internal error while processing an upload")
                problems = [Problem("internal-error", Location(input_path.name), "interner Fehler bei der Verarbeitung der Datei",
                                    found=type(caught).__name__, expected="kein interner Fehler",
                                    hint="bitte diese Datei an die IT senden, damit der Fehler behoben werden kann")]
            for leftover in job_dir.glob("*-probelauf.xlsx*"):
                leftover.unlink()
            from ..error_report import write_marked_copy

            marked = job_dir / f"{stem}-markiert.xlsx"
            job.update(title=error.title if error else "Die Datei konnte nicht verarbeitet werden",
                       problems=[_problem_row(p) for p in problems],
                       marked=marked.name if write_marked_copy(input_path, problems, marked) else None)
        return job

    def _select(select_rules, district: str, year: int, user: User) -> Path:
        """select_rules, but a problem never shows another district's rule files or server paths."""
        try:
            return select_rules(config.rules_dir, district, year)
        except RuleFileError as error:
            if all(p.code in ("rules-no-match", "rules-ambiguous") for p in error.problems):
                own = ", ".join(f"{f['name']} ({f['valid_from']}–{f['valid_to']})"
                                for f in district_rules(user)["files"] if f["district"].casefold() == district.casefold())
                raise RuleFileError([replace(p, location=Location("Regelordner auf dem Server"),
                                             found=own or "keine Regeldatei für diesen Kreis")
                                     if p.code == "rules-no-match" else
                                     replace(p, location=Location("Regelordner auf dem Server"))
                                     for p in error.problems]) from None
            log.error("rule folder broken: %s", error)
            raise RuleFileError([Problem(
                "web-rules-unavailable", Location("Regelordner auf dem Server"), "Die Regeldateien auf dem Server lassen sich nicht laden",
                found=f"{len(error.problems)} Problem(e) im Regelordner", expected="gültige Regeldateien",
                hint="die IT muss `allocation check` für den Regelordner ausführen; Ihre Arbeitsmappe wurde nicht "
                     "verarbeitet")]) from None

    def load_job(token: str) -> dict:
        if not JOB_TOKEN.match(token):
            abort(404)
        path = jobs / token / "job.json"
        try:
            job = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            abort(404)
        if time.time() - job["created"] > config.keep_seconds:
            shutil.rmtree(jobs / token, ignore_errors=True)
            abort(404)
        user: User = g.user
        visible = user.may_see(job["district"]) if job.get("district") else job.get("user") == user.name
        if not visible:  # another district's result: as if it did not exist
            log.warning(json.dumps({"event": "web-refused", "user": user.name, "token": token[:6]}, ensure_ascii=False))
            abort(404)
        return job

    @app.get("/ergebnis/<token>")
    def result(token: str):
        job = load_job(token)
        chart = None
        if job["status"] == "ok":
            chart_bars, zero = bars(job["summary"])
            chart = {"bars": chart_bars, "zero": zero, "height": len(chart_bars) * 28 + 40}
        return render_template("result.html", job=job, chart=chart, token=token,
                               expires=time.strftime("%d.%m.%Y %H:%M",
                                                     time.localtime(job["created"] + config.keep_seconds)))

    @app.get("/ergebnis/<token>/<kind>")
    def download(token: str, kind: str):
        job = load_job(token)
        if kind not in DOWNLOADS or not job.get(DOWNLOADS[kind][0]):
            abort(404)
        name = job[DOWNLOADS[kind][0]]
        return send_file(jobs / token / name, mimetype=DOWNLOADS[kind][1], as_attachment=True, download_name=name,
                         max_age=0)

    app.jinja_env.globals["notices_available"] = _notices_available()

    @app.get("/ergebnis/<token>/bescheide.zip")
    def notices_zip(token: str):
        """The levy notices of this Probelauf (watermarked ENTWURF) and its instalment plan, as one zip."""
        import io
        import zipfile

        from ..notices import CSV_NAME, XLSX_NAME, write_notices

        job = load_job(token)
        if job["status"] != "ok" or not job.get("manifest") or not _notices_available():
            abort(404)
        folder = jobs / token / "bescheide"
        with _RUN_LOCK:
            try:
                written = write_notices(jobs / token / job["output"], folder)
            except ProblemsError as error:  # messages only: locations would show server paths
                abort(409, description=f"{error.title}: " + "; ".join(p.message for p in error.problems[:3]))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in (*written.pdfs, XLSX_NAME, CSV_NAME):
                archive.write(folder / name, name)
        buffer.seek(0)
        return send_file(buffer, mimetype="application/zip", as_attachment=True, max_age=0,
                         download_name=f"{Path(job['output']).stem}-bescheide.zip")

    return app


def _notices_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("typst") is not None
