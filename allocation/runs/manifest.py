"""The run manifest (`<output>.manifest.json`): what a run records so that `allocation verify` (ops/verify.py,
above the run it replays) can check and replay it.

A run records, next to its workbook and written atomically like it: the SHA-256 of the input workbook, of
the rule file and of the output workbook; tool, durable_rules and Python versions; the parameters; the
paths exactly as given plus the working directory; and the totals per municipality in cents. The same
data (except the output's own hash, which cannot be inside the file it describes) goes into `Protokoll`.

`verify` (allocation/ops/verify.py) checks the manifest, the hashes and a replay of the run.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
from pathlib import Path

from ..core import __version__
from ..core.filenames import sha256_file
from ..core.model import ROUTES, Allocation

__all__ = ["MANIFEST_SUFFIX", "FORMAT", "FORMATS", "SEAL", "STARTED_FORMAT", "seal_of", "sealed", "manifest_path", "protocol_rows", "build_manifest", "levy_manifest",
           "write_manifest", "sha256_file"]

MANIFEST_SUFFIX = ".manifest.json"
FORMAT = "allocation-manifest/2"  # /2: sealed (`seal`); /1 (before the seal) is still read
FORMATS = ("allocation-manifest/1", FORMAT)
SEAL = "seal"
STARTED_FORMAT = "%Y-%m-%d %H:%M:%S"  # `started_utc`, and the Protokoll's "Laufzeitpunkt (UTC)": the same text


def seal_of(record: dict) -> str:
    """The SHA-256 of a record's canonical JSON without its own `seal`: what a record the product writes and reads
    back (a manifest, a year folder's record, a chain line) carries, so that any change of its content, a flipped
    byte or an edited value, is found when it comes back. A checksum, not a signature: whoever rewrites a record
    deliberately can compute it again (README, "Security and limits": what the replay and the register add)."""
    body = {key: value for key, value in record.items() if key != SEAL}
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def sealed(record: dict) -> dict:
    """The record with its `seal` (last)."""
    return {**{key: value for key, value in record.items() if key != SEAL}, SEAL: seal_of(record)}


def manifest_path(output: str | Path) -> Path:
    return Path(str(output) + MANIFEST_SUFFIX)


def _totals(allocation: Allocation) -> dict[str, dict]:
    totals = allocation.totals()
    return {m.ags: {"name": m.name, **{route: totals[m.ags][route] for route in ROUTES},
                    "total": sum(totals[m.ags].values())}
            for m in sorted(allocation.book.municipalities, key=lambda m: m.ags)}


def protocol_rows(allocation: Allocation, input_path: str | Path, rules_path: str | Path,
                  output_path: str | Path, *, record_paths: str = "full") -> list[tuple[str, object]]:
    """Protokoll rows with the manifest's data (added after the pipeline's own rows).

    `record_paths="names"`: file names only and no working directory (the web page shows no server path)."""
    names = record_paths == "names"
    rows: list[tuple[str, object]] = [
        ("Arbeitsverzeichnis", "(nicht aufgezeichnet)" if names else os.getcwd()),
        ("Eingabe (Pfad wie angegeben)", Path(input_path).name if names else str(input_path)),
        ("Regeldatei (Pfad wie angegeben)", Path(rules_path).name if names else str(rules_path)),
        ("Hebesatz-Nachkommastellen", allocation.book.parameters.rate_decimals),
        ("Manifest", manifest_path(Path(output_path).name).name),
        ("SHA-256 Ergebnis", f"im Manifest {manifest_path(Path(output_path).name).name}"),
    ]
    for ags, total in _totals(allocation).items():
        rows.append((f"Summe {ags} {total['name']} (Cent)", total["total"]))
    return rows


def build_manifest(allocation: Allocation, input_path: str | Path, rules_path: str | Path, output_path: str | Path,
                   started: _dt.datetime, extra: dict | None = None, *, record_paths: str = "full") -> dict:
    """The manifest; `record_paths="names"` records file names only and no working directory."""
    from ..rulefiles.engine import durable_version

    book, rulebook = allocation.book, allocation.rulebook
    parameters = book.parameters
    if record_paths == "names":
        input_path, rules_path = Path(Path(input_path).name), Path(Path(rules_path).name)
        output_path = Path(output_path)  # hashed below; only its name is recorded
        absolute = lambda path: Path(path).name  # noqa: E731 - no folder of the server is recorded
        shown_output, directory = output_path.name, {}
    else:
        absolute = lambda path: str(Path(path).resolve())  # noqa: E731
        shown_output, directory = str(output_path), {"working_directory": os.getcwd()}
    return {
        "format": FORMAT,
        "tool": {"allocation": __version__, "durable_rules": durable_version(), "python": platform.python_version()},
        "started_utc": started.strftime(STARTED_FORMAT),
        **directory,
        "parameters": {"district": parameters.district, "year": parameters.year, "rounding": parameters.rounding,
                       "rate_decimals": parameters.rate_decimals, "hit_policy": rulebook.hit_policy,
                       **(extra or {})},
        "input": {"path": str(input_path), "absolute": absolute(input_path), "sha256": book.sha256},
        "rules": [{"path": str(rules_path), "absolute": absolute(rules_path), "sha256": rulebook.sha256,
                   "district": rulebook.district, "valid_from": rulebook.valid_from, "valid_to": rulebook.valid_to}],
        "output": {"path": shown_output, "file": Path(output_path).name, "sha256": sha256_file(output_path)},
        "totals_cents": _totals(allocation),
        "total_cents": sum(item.deficit for item in allocation.items),  # the deficits allocated
        "payable_cents": allocation.payable,  # what the members pay together (Uebersicht Summe)
    } | ({"levies": levy_manifest(allocation)} if allocation.levies else {})


def levy_manifest(allocation: Allocation) -> list[dict]:
    """The manifest's record of the levies: mode, rates (percent as text, exact), need, revenue, difference (cents)."""
    return [{"id": levy.levy.id, "name": levy.levy.name, "mode": levy.mode,
             "rates": {component or "*": str(rate) for component, rate in levy.rates.items()},
             "rate_sources": [str(source) for source in levy.rate_sources],
             "need_cents": levy.need, "revenue_cents": levy.revenue, "difference_cents": levy.difference}
            for levy in allocation.levies]


def write_manifest(output_path: str | Path, manifest: dict) -> Path:
    """Write `<output>.manifest.json` atomically (temp file, fsync, rename), sealed (`seal_of`)."""
    from ..workbook.report import write_atomically

    target = manifest_path(output_path)
    text = json.dumps(sealed(manifest), ensure_ascii=False, indent=2, sort_keys=False) + "\n"
    write_atomically(target, lambda temp: Path(temp).write_text(text, encoding="utf-8"))
    return target
