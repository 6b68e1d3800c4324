"""The server configuration of `allocation serve` (a TOML file) and password hashes.

    [server]
    rules_dir = "/etc/allocation/rules"        # rule files, chosen by Kreis and Haushaltsjahr as in the inbox
    work_dir = "/var/lib/allocation/web"       # uploads and results (random names), never served as files
    max_upload_mb = 20                         # larger uploads are refused
    keep_minutes = 120                         # uploads and results are removed after this time
    secret_key_file = "/etc/allocation/web-secret"   # signs session cookies; random per start if absent
    cookie_secure = true                       # cookies only over HTTPS
    session_hours = 8                          # a log-in ends after this time (and at once on log-out)
    login_failures_per_user = 5                # per 15 minutes; twice as many per hour, four times per day
    login_failures_per_address = 20            # the same steps per client address
    proxy_hops = 0                             # reverse proxies in front that set X-Forwarded-For
    request_timeout_seconds = 60               # a connection silent this long is closed (waitress)
    threads = 4                                # worker threads (waitress)
    connection_limit = 100                     # open connections at most (waitress)

    [auth]
    mode = "password"                          # or "header": trust a reverse proxy's user header
    header = "X-Remote-User"

    [users.mueller]
    password_hash = "scrypt:32768:8:1$..."     # from `allocation serve --hash-password`
    districts = ["Kreis Wesel"]

Passwords are stored as scrypt hashes (werkzeug.security, salted, constant-time check); a plain password in
the file is refused. Problems in the file are reported as `Problem` values with the file and key. Relative
folders and files are taken relative to the configuration file's folder and stored as absolute paths.

Without a configuration file, `default_config` is the newcomer's server: loopback only, one user who sees
every district of the rules folder and logs in with a random token (printed once, as Jupyter does), a
temporary work folder.
"""
from __future__ import annotations

import secrets
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..core.model import same_district
from ..core.problems import Location, Problem, ProblemsError

__all__ = ["User", "ServeConfig", "ServeConfigError", "load_config", "default_config", "hash_password",
           "check_password", "HASH_METHOD", "LOCAL_USER"]

HASH_METHOD = "scrypt:32768:8:1"  # n=2^15, r=8, p=1: the OWASP-recommended scrypt minimum
AUTH_MODES = ("password", "header")  # "token" only in the embedded default (default_config)
LOCAL_USER = "lokal"


class ServeConfigError(ProblemsError):
    exit_code = 2  # ExitCode.USAGE: the server was started with a wrong configuration
    title = "Die Server-Konfiguration enthält Fehler"


@dataclass(frozen=True, slots=True)
class User:
    name: str
    districts: tuple[str, ...]
    password_hash: str | None
    all_districts: bool = False  # the embedded default's token user: every district of the rules folder

    def may_see(self, district: str | None) -> bool:
        if district is None:
            return False
        return self.all_districts or any(same_district(district, own) for own in self.districts)

    @property
    def shown_districts(self) -> str:
        return "alle Kreise des Regelordners" if self.all_districts else ", ".join(self.districts)


@dataclass(frozen=True, slots=True)
class ServeConfig:
    rules_dir: Path
    work_dir: Path
    max_upload_bytes: int
    keep_seconds: int
    secret_key: str
    cookie_secure: bool
    auth_mode: str
    user_header: str
    users: dict[str, User]
    source: str = "<config>"
    session_seconds: int = 8 * 3600
    login_failures_per_user: int = 5
    login_failures_per_address: int = 20
    proxy_hops: int = 0
    request_timeout: int = 60
    threads: int = 4
    connection_limit: int = 100
    login_token: str | None = None  # auth_mode "token": the one log-in secret printed at start


def hash_password(password: str) -> str:
    """A salted scrypt hash in werkzeug's format (`scrypt:N:r:p$salt$hex`)."""
    from werkzeug.security import generate_password_hash

    return generate_password_hash(password, method=HASH_METHOD, salt_length=16)


def check_password(password_hash: str | None, password: str) -> bool:
    """Constant-time check; an unknown user is checked against a dummy hash so timing says nothing."""
    from werkzeug.security import check_password_hash

    return check_password_hash(password_hash or _DUMMY_HASH, password) and password_hash is not None


_DUMMY_HASH = "scrypt:32768:8:1$dummysaltdummysa$" + "0" * 128


def load_config(path: str | Path, **overrides) -> ServeConfig:
    """Read and check the TOML file; every problem at once. `overrides` replace [server] keys (tests)."""
    path = Path(path)
    data = _read_toml(path)
    server = {**data.get("server", {}), **overrides}
    base = path.resolve().parent  # relative entries mean "next to this file", whatever the current folder
    problems: list[Problem] = []
    rules_dir, work_dir = _server_folders(server, base, path, problems)
    numbers = _server_numbers(server, path, problems)
    secret = _secret(server, base, path, problems)
    mode, header = _auth(data.get("auth", {}), path, problems)
    users = _users(data.get("users") or {}, mode, path, problems)
    if problems:
        raise ServeConfigError(problems)
    return ServeConfig(rules_dir, work_dir, secret_key=secret, cookie_secure=bool(server.get("cookie_secure", False)),
                       auth_mode=mode, user_header=header, users=users, source=str(path), **numbers)


def _where(path: Path, key: str) -> Location:
    return Location(f"{path}: {key}")


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ServeConfigError([Problem("serve-config-unreadable", Location(str(path)), "Die Server-Konfiguration lässt sich nicht lesen",
                                        found=error.strerror, expected="eine lesbare TOML-Datei",
                                        hint="die Datei mit --config angeben (siehe deploy/serve.example.toml)")]) from None
    except tomllib.TOMLDecodeError as error:
        raise ServeConfigError([Problem("serve-config-syntax", Location(str(path)), "Die Server-Konfiguration ist kein gültiges TOML",
                                        found=str(error), expected="TOML wie in deploy/serve.example.toml",
                                        hint="die Syntax an der genannten Stelle korrigieren")]) from None


def _server_folders(server: dict, base: Path, path: Path, problems: list[Problem]) -> tuple[Path, Path]:
    """[server] rules_dir and work_dir, absolute; the work folder must not be a served one."""
    def folder(key: str) -> Path:
        value = server.get(key)
        if not isinstance(value, (str, Path)) or not str(value):
            problems.append(Problem("serve-config-missing", _where(path, f"server.{key}"), f"server.{key} fehlt",
                                    found=repr(value), expected="ein Ordnerpfad",
                                    hint=f"unter [server] {key} = \"/pfad\" ergänzen"))
            return Path(".")
        return (base / Path(value)).resolve()  # an absolute value stays itself (base is dropped)

    rules_dir, work_dir = folder("rules_dir"), folder("work_dir")
    if "rules_dir" in server and not rules_dir.is_dir():
        problems.append(Problem("serve-config-rules-dir", _where(path, "server.rules_dir"), "Der Regelordner existiert nicht",
                                found=str(rules_dir), expected="ein Ordner mit Regeldateien (*.yaml)",
                                hint="den Ordner anlegen oder rules_dir korrigieren"))
    static = (Path(__file__).parent / "static").resolve()
    if work_dir.resolve() == static or static in work_dir.resolve().parents or work_dir.resolve() in static.parents:
        problems.append(Problem("serve-config-work-dir", _where(path, "server.work_dir"), "Hochgeladene Dateien dürfen nicht in einem ausgelieferten Ordner liegen",
                                found=str(work_dir), expected="ein privater Ordner außerhalb des Pakets",
                                hint="z. B. /var/lib/allocation/web verwenden"))
    return rules_dir, work_dir


def _server_numbers(server: dict, path: Path, problems: list[Problem]) -> dict:
    """The [server] sizes, times and limits, as `ServeConfig` keywords."""
    def number(key: str, default: int) -> int:
        value = server.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            problems.append(Problem("serve-config-number", _where(path, f"server.{key}"), f"server.{key} ist keine positive Zahl",
                                    found=repr(value), expected="eine Zahl größer als 0", hint=f"z. B. {key} = {default}"))
            return default
        return value

    max_bytes = int(number("max_upload_mb", 20) * 1024 * 1024)
    if "max_upload_bytes" in server:  # exact limit (tests, or operators who think in bytes)
        max_bytes = int(number("max_upload_bytes", max_bytes))
    keep_seconds = int(number("keep_minutes", 120) * 60)
    limits = {key: int(number(key, default)) for key, default in (
        ("session_hours", 8), ("login_failures_per_user", 5), ("login_failures_per_address", 20),
        ("request_timeout_seconds", 60), ("threads", 4), ("connection_limit", 100))}
    hops = server.get("proxy_hops", 0)
    if isinstance(hops, bool) or not isinstance(hops, int) or not 0 <= hops <= 5:
        problems.append(Problem("serve-config-number", _where(path, "server.proxy_hops"), "server.proxy_hops ist ungültig",
                                found=repr(hops), expected="0 (kein Proxy) bis 5",
                                hint="die Zahl der Reverse-Proxys vor dem Server, meist 0 oder 1"))
        hops = 0
    return {"max_upload_bytes": max_bytes, "keep_seconds": keep_seconds,
            "session_seconds": limits["session_hours"] * 3600,
            "login_failures_per_user": limits["login_failures_per_user"],
            "login_failures_per_address": limits["login_failures_per_address"], "proxy_hops": hops,
            "request_timeout": limits["request_timeout_seconds"], "threads": limits["threads"],
            "connection_limit": limits["connection_limit"]}


def _secret(server: dict, base: Path, path: Path, problems: list[Problem]) -> str:
    """The cookie-signing key: secret_key, or the secret_key_file's content, or random per start."""
    secret = server.get("secret_key")
    if secret is None and server.get("secret_key_file"):
        secret_path = (base / Path(server["secret_key_file"])).resolve()
        try:
            secret = secret_path.read_text(encoding="utf-8").strip()
        except OSError as error:
            problems.append(Problem("serve-config-secret", _where(path, "server.secret_key_file"), "Die Datei mit dem geheimen Schlüssel lässt sich nicht lesen",
                                    found=f"{secret_path}: {error.strerror}",
                                    expected="eine lesbare Datei mit einem Zufallsschlüssel",
                                    hint="anlegen mit: python -c 'import secrets; print(secrets.token_hex(32))' > DATEI"))
    if secret is not None and len(str(secret)) < 32:
        problems.append(Problem("serve-config-secret", _where(path, "server.secret_key"), "Der geheime Schlüssel ist zu kurz",
                                found=f"{len(str(secret))} Zeichen", expected="mindestens 32 zufällige Zeichen",
                                hint="python -c 'import secrets; print(secrets.token_hex(32))'"))
    return str(secret) if secret else secrets.token_hex(32)  # sessions end when the server restarts


def _auth(auth: dict, path: Path, problems: list[Problem]) -> tuple[str, str]:
    """[auth] mode and the trusted user header."""
    mode = auth.get("mode", "password")
    if mode not in AUTH_MODES:
        problems.append(Problem("serve-config-auth", _where(path, "auth.mode"), "unbekannte Anmeldeart", found=repr(mode),
                                expected=" oder ".join(AUTH_MODES),
                                hint='mode = "password" (oder "header" hinter einem Proxy)'))
    return mode, str(auth.get("header", "X-Remote-User"))


def _users(entries: dict, mode: str, path: Path, problems: list[Problem]) -> dict[str, User]:
    """The [users.NAME] tables: each with its districts and (in password mode) a password hash."""
    users: dict[str, User] = {}
    for name, entry in entries.items():
        districts = entry.get("districts") if isinstance(entry, dict) else None
        if isinstance(districts, str):
            districts = [districts]
        if not districts or not all(isinstance(d, str) and d.strip() for d in districts):
            problems.append(Problem("serve-config-user", _where(path, f"users.{name}.districts"), "Benutzer ohne Kreis",
                                    found=repr(districts), expected='eine Liste von Kreisnamen, z. B. ["Kreis Wesel"]',
                                    hint="jeder Benutzer sieht nur die hier aufgeführten Kreise"))
            continue
        password_hash = entry.get("password_hash")
        if mode == "password" and not (isinstance(password_hash, str) and password_hash.startswith(("scrypt:", "pbkdf2:"))):
            problems.append(Problem("serve-config-password", _where(path, f"users.{name}.password_hash"),
                                    "kein Kennwort-Hash für diesen Benutzer", found="(Klartext oder fehlt)",
                                    expected="ein Hash von `allocation serve --hash-password`",
                                    hint="nie ein Kennwort im Klartext speichern; allocation serve --hash-password "
                                         "ausführen"))
            continue
        users[name] = User(name, tuple(d.strip() for d in districts), password_hash)
    if not users and not problems:
        problems.append(Problem("serve-config-user", _where(path, "users"), "keine Benutzer eingerichtet", found="keine",
                                expected="mindestens eine Tabelle [users.NAME]", hint="siehe deploy/serve.example.toml"))
    return users


def default_config(rules_dir: str | Path, work_dir: str | Path | None = None) -> ServeConfig:
    """The server without a configuration file: `rules_dir`, a fresh temporary work folder, a token log-in."""
    rules_dir = Path(rules_dir).resolve()
    if not rules_dir.is_dir():
        raise ServeConfigError([Problem(
            "serve-config-rules-dir", Location(str(rules_dir)), "Der Regelordner existiert nicht",
            found=str(rules_dir), expected="ein Ordner mit Regeldateien (*.yaml)",
            hint="im Ordner mit dem Unterordner rules/ starten, --rules ORDNER angeben oder --config SERVE.toml")])
    work = Path(work_dir).resolve() if work_dir else Path(tempfile.mkdtemp(prefix="allocation-serve-"))
    user = User(LOCAL_USER, (), None, all_districts=True)
    return ServeConfig(rules_dir, work, 20 * 1024 * 1024, 120 * 60, secrets.token_hex(32), False, "token",
                       "X-Remote-User", {LOCAL_USER: user}, "<eingebaute Vorgabe>",
                       login_token=secrets.token_urlsafe(32))
