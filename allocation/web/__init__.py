"""The upload page behind `allocation serve`: controllers drop an input workbook and get the allocation back.

Map: `config` (TOML server config, users and districts, scrypt password hashes) · `app` (Flask app: log-in,
upload, result and downloads; calls inputs -> selection -> pipeline.run and error_report, like the inbox)
· `chart` (the Uebersicht as cents and a stacked bar layout for inline SVG) · `templates/`, `static/`.
Flask and waitress are the optional extra `web`; nothing here is imported on the CLI's start path.
"""
from __future__ import annotations

__all__ = ["create_app", "load_config", "hash_password"]


def __getattr__(name: str):  # import Flask only when the web app is really used
    if name == "create_app":
        from .app import create_app

        return create_app
    if name in ("load_config", "hash_password"):
        from . import config

        return getattr(config, name)
    raise AttributeError(name)
