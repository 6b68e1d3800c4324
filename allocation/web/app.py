"""The upload page (Flask): log in, drop an input workbook, see its problems or its allocation, download results.

One more edge of the yearly run, like the inbox: `pipeline.run` reads the workbook, picks the district's rule
file from the server's rules folder, does a test run (Probelauf) and writes workbook and manifest with file
names only (no server path), and on problems `error_report.write_marked_copy`
writes the same marked input copy as the inbox. A final run stays a deliberate command-line act.

Who may do what: a user belongs to districts (server config); a result belongs to the district of its input
and is found only by a random token; anyone else gets 404. POST forms carry a per-session CSRF token.
Uploads and results live under `work_dir/jobs/<token>/` (never a served folder) and are removed after
`keep_minutes`. Everything from a workbook reaches the page through Jinja's autoescaping.

Sessions are server-side (`sessions.SessionStore`: the signed cookie carries only a random id, log-out
deletes it). Failed log-ins are limited per user and per address with flask-limiter (stepped back-off:
N per 15 minutes, 2N per hour, 4N per day); per user only password attempts that name a user, and the embedded
default's right token is never limited (a stranger's wrong tokens must not lock out the holder of the link). Pages and JSON answers never show a server path: paths under
the work and rules folders are cut to their file name (`_scrub`). `server_options` holds waitress's limits.

`create_app` is a list of named steps: `_Site` holds what the routes share (configuration, folders, session
store, limiter, upload slots) with the helpers they use; `_register_hooks`, `_register_login`,
`_register_upload` and `_register_results` add the routes by concern.
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
from dataclasses import dataclass, replace
from pathlib import Path

from flask import Flask, Request, abort, g, jsonify, redirect, render_template, request, send_file, session, url_for
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..core.filenames import safe_stem
from ..core.model import same_district
from ..core.money import format_eur
from ..core.problems import InputError, Location, Problem, ProblemsError, RuleFileError, column_letter
from ..runs.readback import plain_name, read_json_object
from .chart import bars, summary
from .config import LOCAL_USER, ServeConfig, User, check_password
from .sessions import SessionStore

__all__ = ["create_app", "sweep", "server_options", "JOB_TOKEN"]

log = logging.getLogger("allocation.web")
JOB_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")
MULTIPART_ALLOWANCE = 64 * 1024  # form fields and boundaries around the workbook
UPLOAD_STEM_BYTES = 100  # an upload's stem on disk; + `-probelauf.xlsx.manifest.json` stays far below 255 bytes
HEADER_LIMIT = 64 * 1024  # request line and headers (waitress)
_RUN_LOCK = threading.Lock()  # one run at a time per process: runs are CPU-bound and share the rules engine
DOWNLOADS = {"arbeitsmappe": ("output", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
             "manifest": ("manifest", "application/json"),
             "markiert": ("marked", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")}


def _safe_stem(name: str) -> str:
    return safe_stem(name, UPLOAD_STEM_BYTES)  # cut by bytes: 80 CJK characters are 240 bytes


def _scrub(value, roots: tuple[str, ...]):
    """`value` (job dict, list, text) with every path under a server folder cut to its last part."""
    if isinstance(value, dict):
        return {key: _scrub(item, roots) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, roots) for item in value]
    if isinstance(value, str) and any(root in value for root in roots):
        for root in roots:
            value = re.sub(re.escape(root) + r"(?:/[^\s'\"<>,;:()]*)?",
                           lambda match: Path(match.group(0)).name or "…", value)
    return value


def _server_roots(config: ServeConfig) -> tuple[str, ...]:
    roots = {str(p) for folder in (config.work_dir, config.rules_dir) for p in (folder, folder.resolve())}
    return tuple(sorted((r for r in roots if len(Path(r).parts) > 1), key=len, reverse=True))


def server_options(config: ServeConfig) -> dict:
    """waitress's limits: it buffers each request (headers and body) before a worker thread sees it, so a slow
    or stalled client holds a connection, never a thread; a connection silent for `request_timeout` is closed."""
    return {"threads": config.threads, "connection_limit": config.connection_limit,
            "channel_timeout": config.request_timeout,
            "cleanup_interval": max(1, min(30, config.request_timeout // 2)),
            "max_request_header_size": HEADER_LIMIT,
            "max_request_body_size": config.max_upload_bytes + 1024 * 1024,  # above Flask's: its 413 page is German
            "ident": "allocation"}


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
    if (config.work_dir / "sessions").is_dir():
        SessionStore(config.work_dir / "sessions", config.session_seconds).sweep(now)
    for parent in (config.work_dir / "jobs", config.work_dir / "tmp"):
        if not parent.is_dir():
            continue
        for entry in parent.iterdir():
            record = read_json_object(entry / "job.json")  # our own record, read back within bounds
            created = record.get("created") if record is not None else None
            if not isinstance(created, (int, float)) or isinstance(created, bool):
                try:
                    created = entry.lstat().st_mtime
                except OSError:
                    continue
            if now - created > config.keep_seconds:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                removed += parent.name == "jobs"
    return removed


def create_app(config: ServeConfig) -> Flask:
    """The WSGI app for one configuration (`allocation serve` runs it with waitress)."""
    app, spool = _flask_app(config)
    site = _Site(config, config.work_dir / "jobs", spool, SessionStore(config.work_dir / "sessions",
                                                                         config.session_seconds),
                 _server_roots(config), _login_limiter(app, config),
                 # uploads in progress (waiting for or doing a run) may hold all worker threads but one
                 threading.BoundedSemaphore(max(1, config.threads - 1)))
    _configure_templates(app, config)
    _register_hooks(app, site)
    _register_login(app, site)
    _register_upload(app, site)
    _register_results(app, site)
    return app


def _flask_app(config: ServeConfig) -> tuple[Flask, Path]:
    """The Flask app with its private folders, upload spooling, proxy handling and cookie settings."""
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
    if config.proxy_hops:  # the client's address for the log-in limit comes from the proxy's X-Forwarded-For
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.proxy_hops, x_proto=config.proxy_hops)
    app.config.update(SECRET_KEY=config.secret_key, MAX_CONTENT_LENGTH=config.max_upload_bytes + MULTIPART_ALLOWANCE,
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=config.cookie_secure, SESSION_COOKIE_NAME="allocation_session",
                      PERMANENT_SESSION_LIFETIME=config.session_seconds)
    return app, spool


def _configure_templates(app: Flask, config: ServeConfig) -> None:
    app.jinja_env.autoescape = True  # also for the SVG partial: nothing from a workbook is trusted
    app.jinja_env.filters["eur"] = format_eur
    app.jinja_env.filters["number"] = _german_number
    app.jinja_env.globals["notices_available"] = _notices_available()
    app.extensions["allocation_config"] = config


@dataclass(frozen=True, slots=True)
class _Site:
    """What the routes of one app share: its configuration and private folders, the session store, the log-in
    limiter and the upload slots; with the helpers every route uses (who is asking, CSRF, loading a job)."""
    config: ServeConfig
    jobs: Path
    spool: Path
    sessions: SessionStore
    roots: tuple[str, ...]  # server folders cut from everything shown (`_scrub`)
    limiter: object  # flask_limiter.Limiter, imported lazily
    uploads: threading.BoundedSemaphore

    def current_user(self) -> User | None:
        if self.config.auth_mode == "header":
            name = request.headers.get(self.config.user_header, "").strip()
        else:
            name = self.sessions.user(session.get("sid")) or ""
        return self.config.users.get(name) if name else None

    def start_session(self, name: str) -> None:
        session.clear()  # a fresh id and CSRF token: nothing from before the log-in carries over
        session["sid"] = self.sessions.create(name)
        session.permanent = True
        log.info(json.dumps({"event": "web-login", "user": name}, ensure_ascii=False))

    @staticmethod
    def csrf_token() -> str:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        return session["csrf"]

    @staticmethod
    def check_csrf() -> None:
        sent = request.form.get("csrf_token", "") or request.headers.get("X-CSRF-Token", "")
        if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
            abort(400, description="Das Formular ist abgelaufen oder stammt nicht von dieser Seite (CSRF-Schutz). "
                                   "Bitte die Seite neu laden und erneut senden.")

    @staticmethod
    def wants_json() -> bool:
        return request.headers.get("X-Requested-With") == "fetch" or request.accept_mimetypes.best == "application/json"

    @staticmethod
    def format_size(size: int) -> str:
        return f"{_german_number(f'{size / 1048576:.1f}'.rstrip('0').rstrip('.'))} MB"

    def district_rules(self, user: User) -> dict:
        """The user's districts' rule files (name, validity); other districts' files are never listed."""
        from ..rulefiles.selection import load_folder

        try:
            books = load_folder(self.config.rules_dir)
        except RuleFileError:
            return {"error": "Die Regeldateien auf dem Server sind fehlerhaft. Bitte wenden Sie sich an die IT.",
                    "files": []}
        return {"error": None, "files": [{"name": Path(b.path).name, "district": b.district, "valid_from": b.valid_from,
                                          "valid_to": b.valid_to} for b in books if user.may_see(b.district)]}

    def load_job(self, token: str) -> dict:
        if not JOB_TOKEN.match(token):
            abort(404)
        path = self.jobs / token / "job.json"
        job = read_json_object(path)  # our own record, read back within bounds (runs.readback)
        if job is None or not isinstance(job.get("created"), (int, float)) or isinstance(job["created"], bool):
            abort(404)
        # the files it names are sent or read: plain names of the job's own folder, never a path from the record
        if any(job.get(key) is not None and not plain_name(job[key]) for key, _ in DOWNLOADS.values()):
            abort(404)
        if time.time() - job["created"] > self.config.keep_seconds:
            shutil.rmtree(self.jobs / token, ignore_errors=True)
            abort(404)
        user: User = g.user
        visible = user.may_see(job["district"]) if job.get("district") else job.get("user") == user.name
        if not visible:  # another district's result: as if it did not exist
            log.warning(json.dumps({"event": "web-refused", "user": user.name, "token": token[:6]}, ensure_ascii=False))
            abort(404)
        return job

    def process(self, input_path: Path, job_dir: Path, stem: str, user: User) -> dict:
        """A Probelauf through `pipeline.run` (reads the workbook once, chooses the district's rule file, records
        file names only); problems become the page's problem table."""
        from ..runs.pipeline import RuleSelectionError, run

        job: dict = {"status": "error", "district": None, "year": None}
        error: ProblemsError | None = None
        with _RUN_LOCK:
            try:
                output = job_dir / f"{stem}-probelauf.xlsx"
                try:
                    result = run(input_path, self.config.rules_dir, output, mode="test", record_paths="names",
                                 accept=_district_gate(job, user))
                except RuleSelectionError as failed:
                    self.selection_failed(failed, job["district"], user)
                return _job_done(job, result, output, job_dir)
            except ProblemsError as caught:
                error = caught
                problems = list(caught.problems)
            except Exception as caught:  # noqa: BLE001 - a bug must not become a blank page; log it for the IT
                log.exception("internal error while processing an upload")
                problems = [Problem("internal-error", Location(input_path.name), "interner Fehler bei der Verarbeitung der Datei",
                                    found=type(caught).__name__, expected="kein interner Fehler",
                                    hint="bitte diese Datei an die IT senden, damit der Fehler behoben werden kann")]
            _job_failed(job, error, problems, input_path, job_dir, stem)
        return job

    def selection_failed(self, error: RuleFileError, district: str, user: User) -> None:
        """Raise the rules folder's problem without another district's rule files or server paths."""
        if all(p.code in ("rules-no-match", "rules-ambiguous") for p in error.problems):
            own = ", ".join(f"{f['name']} ({f['valid_from']}" + (f"–{f['valid_to']})" if f['valid_to'] != f['valid_from']
                                                                 else ")")
                            for f in self.district_rules(user)["files"] if same_district(f["district"], district))
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


def _district_gate(job: dict, user: User):
    """`pipeline.run`'s `accept`: before any rule file is chosen, may this account run this district?"""
    def accept(book) -> None:
        parameters = book.parameters
        job["year"] = parameters.year
        if not user.may_see(parameters.district):
            raise InputError([Problem(
                "web-district-not-allowed", parameters.source, "Dieses Konto darf diesen Kreis nicht rechnen",
                found=parameters.district, expected=" oder ".join(user.districts),
                hint="Kreis im Blatt Parameter prüfen oder die IT bitten, Ihnen den Kreis freizugeben")])
        job["district"] = parameters.district

    return accept


def _job_done(job: dict, result, output: Path, job_dir: Path) -> dict:
    """`job` for a Probelauf that went through: its files, summary, findings and warnings."""
    from ..runs.manifest import manifest_path

    job["rules"] = Path(result.allocation.rulebook.path).name
    # the manifest names files only: a copy of the rule file beside it lets `verify` (and the
    # notices, which refuse an unverified run) find it without any server path
    shutil.copyfile(result.allocation.rulebook.path, job_dir / job["rules"])
    allocation = result.allocation
    job.update(status="ok", output=output.name,
               manifest=manifest_path(output).name if manifest_path(output).is_file() else None,
               summary=summary(allocation),
               findings=[{"code": f.code, "ags": f.ags, "name": f.name, "category": f.category,
                          "own_cost": f.own_cost, "levy_share": f.levy_share, "credit": f.credit,
                          "message": f.message} for f in allocation.findings],
               warnings=[_problem_row(p) for p in result.warnings],
               items=len(allocation.items),
               total=allocation.deficits, payable=allocation.payable)
    return job


def _job_failed(job: dict, error: ProblemsError | None, problems: list[Problem], input_path: Path, job_dir: Path,
                stem: str) -> None:
    """`job` for a Probelauf that did not go through: no half-written results, the problems and a marked copy."""
    from ..workbook.error_report import write_marked_copy

    for leftover in job_dir.glob("*-probelauf.xlsx*"):
        leftover.unlink()
    marked = job_dir / f"{stem}-markiert.xlsx"
    job.update(title=error.title if error else "Die Datei konnte nicht verarbeitet werden",
               problems=[_problem_row(p) for p in problems],
               marked=marked.name if write_marked_copy(input_path, problems, marked) else None)


# ---------------------------------------------------------------------- who is asking, headers, errors

def _register_hooks(app: Flask, site: _Site) -> None:
    config = site.config

    @app.context_processor
    def _globals() -> dict:
        return {"csrf_token": site.csrf_token, "user": g.get("user"), "auth_mode": config.auth_mode,
                "max_upload_bytes": config.max_upload_bytes, "max_upload_mb": _german_number(
                    f"{config.max_upload_bytes / 1048576:.1f}".rstrip("0").rstrip("."))}

    @app.before_request
    def _load_user():
        g.user = site.current_user()
        if request.endpoint in ("login", "static") or g.user is not None:
            return None
        if config.auth_mode == "header":
            abort(403, description="Ihr Benutzerkonto ist für diese Seite nicht freigeschaltet.")
        if site.wants_json() or request.method != "GET":
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
        return _error_page(site, error)


def _error_page(site: _Site, error: HTTPException):
    messages = {
        404: "Nicht gefunden. Ergebnisse sind nur für Ihren Kreis sichtbar und werden nach einiger Zeit gelöscht.",
        413: f"Die Datei ist zu groß. Erlaubt sind höchstens {site.format_size(site.config.max_upload_bytes)}.",
        429: "Zu viele fehlgeschlagene Anmeldeversuche. Bitte warten Sie einige Minuten (nach weiteren "
             "Fehlversuchen bis zu einem Tag) oder wenden Sie sich an die IT.",
    }
    message = _scrub(messages.get(error.code) or error.description or error.name, site.roots)
    if error.code == 429:
        log.warning(json.dumps({"event": "web-login-limited", "address": request.remote_addr,
                                "user": request.form.get("benutzer", "")[:80]}, ensure_ascii=False))
    if site.wants_json():
        return jsonify({"error": message}), error.code
    return render_template("error.html", code=error.code, message=message), error.code


# ---------------------------------------------------------------------- log-in and log-out

def _register_login(app: Flask, site: _Site) -> None:
    config, limiter = site.config, site.limiter

    # Per user: only a password attempt that names a user counts and is checked (a token link names nobody, and
    # failures without a name must not lock the page for everyone). Per address: every failure counts, but the
    # right token always logs in: it is a 32-byte secret, and the embedded default's users all share 127.0.0.1.
    @app.route("/anmelden", methods=["GET", "POST"])
    @limiter.limit(_steps(config.login_failures_per_user), key_func=_user_key, deduct_when=_failed, per_method=False,
                   exempt_when=lambda: not _names_a_user(config))
    @limiter.limit(_steps(config.login_failures_per_address), key_func=lambda: request.remote_addr or "-",
                   deduct_when=_failed, per_method=False, exempt_when=lambda: _right_token(config))
    def login():
        if config.auth_mode == "header":
            return redirect(url_for("index"))
        if config.auth_mode == "token":
            return _token_login(site)
        error = None
        if request.method == "POST":
            site.check_csrf()
            name = request.form.get("benutzer", "").strip()
            user = config.users.get(name)
            if check_password(user.password_hash if user else None, request.form.get("passwort", "")):
                site.start_session(name)
                return redirect(url_for("index"))
            error = "Benutzername oder Passwort ist falsch."
            log.warning(json.dumps({"event": "web-login-failed", "user": name[:80], "address": request.remote_addr},
                                   ensure_ascii=False))
        return render_template("login.html", error=error), 401 if error else 200

    @app.post("/abmelden")
    def logout():
        site.check_csrf()
        site.sessions.revoke(session.get("sid"))  # the id is worthless from now on, even in a saved cookie
        session.clear()
        return redirect(url_for("login"))


def _token_login(site: _Site):
    """The embedded default: `/anmelden?token=...` (printed at start) opens a session, then drops the token."""
    if not request.args.get("token", ""):
        return render_template("login.html", error=None)
    if _right_token(site.config):
        site.start_session(LOCAL_USER)
        return redirect(url_for("index"), code=303)
    log.warning(json.dumps({"event": "web-login-failed", "user": "token", "address": request.remote_addr}))
    return render_template("login.html", error="Der Anmelde-Link ist ungültig. Bitte die Adresse verwenden, "
                                               "die `allocation serve` beim Start ausgegeben hat."), 401


# ---------------------------------------------------------------------- the upload page

def _register_upload(app: Flask, site: _Site) -> None:
    @app.get("/")
    def index():
        return render_template("upload.html", rules=site.district_rules(g.user))

    @app.post("/hochladen")
    def upload():
        upload_file = request.files.get("arbeitsmappe")  # over MAX_CONTENT_LENGTH: 413 before any byte is kept
        site.check_csrf()
        if upload_file is None or not upload_file.filename:
            abort(400, description="Bitte eine Eingabe-Arbeitsmappe (.xlsx) auswählen.")
        if not upload_file.filename.lower().endswith(".xlsx"):
            abort(400, description=f"Nur Excel-Arbeitsmappen im Format .xlsx werden angenommen "
                                   f"(gefunden: {Path(upload_file.filename).suffix or 'ohne Endung'}).")
        if not site.uploads.acquire(blocking=False):  # keep a worker thread free for everybody else's pages
            log.warning(json.dumps({"event": "web-busy", "user": g.user.name}, ensure_ascii=False))
            abort(503, description="Der Server rechnet gerade andere Dateien. Bitte laden Sie Ihre Datei in einer "
                                   "Minute erneut hoch.")
        try:
            return _store_and_run(site, upload_file)
        finally:
            site.uploads.release()


def _store_and_run(site: _Site, upload_file):
    config = site.config
    sweep(config)
    token = secrets.token_urlsafe(24)
    job_dir = site.jobs / token
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
    job = site.process(input_path, job_dir, stem, g.user)
    job.update(token=token, user=g.user.name, created=time.time(), filename=f"{stem}.xlsx", size=size)
    (job_dir / "job.json").write_text(json.dumps(job, ensure_ascii=False, indent=1), encoding="utf-8")
    log.info(json.dumps({"event": "web-upload", "user": g.user.name, "token": token[:6], "status": job["status"],
                         "district": job.get("district"), "problems": len(job.get("problems", []))},
                        ensure_ascii=False))
    target_url = url_for("result", token=token)
    if site.wants_json():
        return jsonify(_scrub({"status": job["status"], "redirect": target_url}, site.roots))
    return redirect(target_url, code=303)


# ---------------------------------------------------------------------- results and downloads

def _register_results(app: Flask, site: _Site) -> None:
    @app.get("/ergebnis/<token>")
    def result(token: str):
        job = site.load_job(token)
        chart = None
        if job["status"] == "ok":
            chart_bars, zero = bars(job["summary"])
            chart = {"bars": chart_bars, "zero": zero, "height": len(chart_bars) * 28 + 40}
        return render_template("result.html", job=_scrub(job, site.roots), chart=chart, token=token,
                               expires=time.strftime("%d.%m.%Y %H:%M",
                                                     time.localtime(job["created"] + site.config.keep_seconds)))

    @app.get("/ergebnis/<token>/<kind>")
    def download(token: str, kind: str):
        job = site.load_job(token)
        if kind not in DOWNLOADS or not job.get(DOWNLOADS[kind][0]):
            abort(404)
        name = job[DOWNLOADS[kind][0]]
        return send_file(site.jobs / token / name, mimetype=DOWNLOADS[kind][1], as_attachment=True,
                         download_name=name, max_age=0)

    @app.get("/ergebnis/<token>/bescheide.zip")
    def notices_zip(token: str):
        """The levy notices of this Probelauf (watermarked ENTWURF) and its instalment plan, as one zip."""
        return _notices_zip(site, token)


def _notices_zip(site: _Site, token: str):
    import io
    import zipfile

    from ..ops.notices import CSV_NAME, XLSX_NAME, write_notices

    job = site.load_job(token)
    if job["status"] != "ok" or not job.get("manifest") or not _notices_available():
        abort(404)
    folder = site.jobs / token / "bescheide"
    with _RUN_LOCK:
        try:
            written = write_notices(site.jobs / token / job["output"], folder)
        except ProblemsError as error:  # messages only: locations would show server paths
            abort(409, description=f"{error.title}: " + "; ".join(p.message for p in error.problems[:3]))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in (*written.pdfs, XLSX_NAME, CSV_NAME):
            archive.write(folder / name, name)
    buffer.seek(0)
    return send_file(buffer, mimetype="application/zip", as_attachment=True, max_age=0,
                     download_name=f"{Path(job['output']).stem}-bescheide.zip")


def _steps(failures: int) -> str:
    """The back-off: after `failures` failed log-ins wait up to 15 minutes, after twice as many an hour, ..."""
    return f"{failures} per 15 minutes;{2 * failures} per hour;{4 * failures} per day"


def _user_key() -> str:
    return "user:" + request.form.get("benutzer", "").strip().casefold()[:80]


def _names_a_user(config: ServeConfig) -> bool:
    """A password log-in attempt for a named user: the only request the per-user limit checks and counts."""
    return config.auth_mode == "password" and request.method == "POST" and bool(request.form.get("benutzer", "").strip())


def _right_token(config: ServeConfig) -> bool:
    """The embedded default's log-in link with its token (compared in constant time)."""
    sent = request.args.get("token", "")
    return bool(config.auth_mode == "token" and config.login_token and sent
                and hmac.compare_digest(sent.encode(), config.login_token.encode()))


def _failed(response) -> bool:
    return response.status_code == 401


def _login_limiter(app: Flask, config: ServeConfig):
    """flask-limiter, in process memory (one server process), counting only failed log-ins."""
    from flask_limiter import Limiter

    return Limiter(key_func=lambda: request.remote_addr or "-", app=app, storage_uri="memory://",
                   strategy="moving-window", headers_enabled=True)


def _notices_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("typst") is not None
