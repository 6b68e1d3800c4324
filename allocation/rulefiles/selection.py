"""Choose the rule file for an input by its `Kreis` and `Haushaltsjahr` from a rules folder.

Each rule file states `district`, `valid_from` and `valid_to`; exactly one file in the folder must cover
the input's district and year (district names compared with `model.same_district`). No match or two
matches is a rule error naming the candidates. A helper of `pipeline.compute`, the one way to a run, which
hands it the already-read workbook's parameters; commands do not call it themselves.
"""
from __future__ import annotations

from pathlib import Path

from ..core.model import Rulebook, same_district
from ..core.problems import Location, Problem, RuleFileError
from .rulebook import load_rulebooks

__all__ = ["select_rules", "load_folder"]


def load_folder(rules_dir: str | Path) -> list[Rulebook]:
    """Every `*.yaml` / `*.yml` rule file in the folder, sorted by name. Raises RuleFileError for broken files."""
    return load_rulebooks(sorted(Path(rules_dir).glob("*.y*ml")))


def select_rules(rules_dir: str | Path, district: str, year: int) -> Path:
    """The one rule file in `rules_dir` valid for `district` in `year`."""
    books = load_folder(rules_dir)
    matching = [b for b in books if same_district(b.district, district) and b.valid_from <= year <= b.valid_to]
    where = Location(str(rules_dir))
    if not matching:
        known = ", ".join(f"{Path(b.path).name} ({b.district} {b.valid_from}–{b.valid_to})" for b in books) or "keine"
        raise RuleFileError([Problem("rules-no-match", where, f"keine Regeldatei für {district}, Haushaltsjahr {year}",
                                     found=known, expected=f"eine Datei mit district: {district}, gültig für {year}",
                                     hint="eine Regeldatei für diesen Kreis und dieses Jahr anlegen oder Kreis/"
                                          "Haushaltsjahr im Blatt Parameter der Eingabe korrigieren")])
    if len(matching) > 1:
        names = ", ".join(f"{Path(b.path).name} ({b.valid_from}–{b.valid_to})" for b in matching)
        raise RuleFileError([Problem("rules-ambiguous", where, f"mehrere Regeldateien für {district}, Haushaltsjahr {year}",
                                     found=names, expected="genau eine Datei je Kreis und Jahr",
                                     hint="die Gültigkeitszeiträume dieser Dateien überschneidungsfrei machen")])
    return Path(matching[0].path)
