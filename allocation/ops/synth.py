"""A deterministic synthetic country for benchmarks and batch tests: districts, their input workbooks and
rule files.

At scale 1.0: 400 districts × 40 municipalities × 400 cost items (mixed routes: district levy, youth-office
levy on a subset, direct billing by weighted columns or by per-item keys, host municipality). A scale
factor shrinks all three counts (at least 1 district, 2 municipalities, 4 items) so a quick run takes
seconds. Every figure comes from `random.Random(seed)` per district: the same seed and scale always give
the same bytes of data (workbook timestamps aside). Figures are ILLUSTRATIVE, not real districts.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

__all__ = ["Country", "country", "write_country", "RULES_TEMPLATE", "FULL"]

FULL = (400, 40, 400)  # districts, municipalities per district, items per district at scale 1.0
CATEGORIES = ("KIM", "Jugendhilfe", "OEPNV", "Beratung", "Kultur")

RULES_TEMPLATE = """\
# Synthetic district (allocation.synth): illustrative rules in the shape of the Kreis Wesel file.
district: {district}
valid_from: {year}
valid_to: {year}
hit_policy: unique
rules:
  - id: kim-kreisumlage
    legal_basis: "§ 56 Abs. 1 KrO NRW"
    when: {{Kategorie: KIM, Traeger: Kreis}}
    route: district_levy
  - id: jugendamtsumlage
    legal_basis: "§ 56 Abs. 5 KrO NRW"
    when: {{Kategorie: Jugendhilfe, Traeger: Kreis}}
    route: differentiated_levy
    payers: {{Jugendamt_Kreis: 1}}
    components: [Personalkosten, Sachkosten]
  - id: oepnv-mehrbelastung
    legal_basis: "§ 56 Abs. 4 KrO NRW"
    when: {{Kategorie: OEPNV, Traeger: Kreis}}
    route: direct_billing
    key: {{Linienminuten: 70, Wagenkm: 30}}
  - id: beratung-fallzahlen
    legal_basis: "§ 23 GkG NRW"
    when: {{Kategorie: Beratung, Traeger: Kreis}}
    route: direct_billing
    key: Schluessel
  - id: kultur-kreisumlage
    legal_basis: "§ 56 Abs. 1 KrO NRW"
    when: {{Kategorie: Kultur, Traeger: Kreis}}
    route: district_levy
  - id: traegerkommune
    legal_basis: "§ 2 GO NRW"
    when: {{Traeger: {{ne: Kreis}}}}
    route: host_bears
state: NW
"""


@dataclass(frozen=True, slots=True)
class District:
    name: str
    slug: str
    year: int
    municipalities: tuple[tuple, ...]  # AGS, name, base (Decimal euros), Einwohner, Jugendamt_Kreis, minutes, km
    items: tuple[tuple, ...]  # ID, label, category, staff, material, overhead, funding, host, posts
    keys: tuple[tuple, ...]  # item ID, AGS, cases


@dataclass(frozen=True, slots=True)
class Country:
    districts: tuple[District, ...]


def _counts(scale: float) -> tuple[int, int, int]:
    districts, municipalities, items = FULL
    return (max(1, round(districts * scale)), max(2, round(municipalities * scale)), max(4, round(items * scale)))


def _district(number: int, municipalities: int, items: int, seed: int, year: int) -> District:
    rng = random.Random(f"{seed}-{number}")
    state = 1 + number % 16
    ags_prefix = f"{state:02d}{number:03d}"[:5]
    towns = []
    for m in range(municipalities):
        ags = f"{ags_prefix}{m + 1:03d}"
        population = rng.randint(2_000, 250_000)
        base = Decimal(population * rng.randint(900, 1600)) + Decimal(rng.randint(0, 99)) / 100
        towns.append((ags, f"Gemeinde {number}-{m + 1}", base, population, rng.randint(0, 1),
                      rng.randint(1_000, 400_000), rng.randint(5_000, 800_000)))
    if not any(town[4] for town in towns):
        towns[0] = (*towns[0][:4], 1, *towns[0][5:])
    rows, keys = [], []
    for i in range(items):
        category = CATEGORIES[i % len(CATEGORIES)] if rng.random() < 0.8 else rng.choice(CATEGORIES)
        host = "Kreis" if rng.random() < 0.9 else rng.choice(towns)[0]
        staff = Decimal(rng.randint(0, 5_000_000_00)) / 100
        material = Decimal(rng.randint(0, 1_000_000_00)) / 100
        overhead = Decimal(rng.randint(0, 300_000_00)) / 100
        funding = (staff + material) * Decimal(rng.randint(0, 60)) / 100
        funding = funding.quantize(Decimal("0.01"), rounding="ROUND_DOWN")
        item_id = f"P{number:03d}-{i + 1:05d}"
        rows.append((item_id, f"Leistung {i + 1} ({category})", category, staff, material, overhead, funding,
                     host, rng.randint(0, 40)))
        if category == "Beratung" and host == "Kreis":
            for town in towns:
                keys.append((item_id, town[0], rng.randint(0, 500)))
    name = f"Kreis Synthetika {number:03d}"
    return District(name, f"kreis-synthetika-{number:03d}", year, tuple(towns), tuple(rows), tuple(keys))


def country(scale: float = 1.0, seed: int = 2022, year: int = 2022, districts: int | None = None) -> Country:
    """The synthetic country at `scale` (1.0 = 400 × 40 × 400); `districts` overrides the district count only."""
    count, municipalities, items = _counts(scale)
    districts = count if districts is None else districts
    return Country(tuple(_district(n + 1, municipalities, items, seed, year) for n in range(districts)))


def write_district(district: District, folder: Path) -> Path:
    """The district's input workbook (streamed, openpyxl write_only) in `folder`."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    parameters = workbook.create_sheet("Parameter")
    for row in (["Parameter", "Wert"], ["Kreis", district.name], ["Haushaltsjahr", district.year],
                ["Rundung", "Cent"], ["Hebesatz_Nachkommastellen", 2]):
        parameters.append(row)
    towns = workbook.create_sheet("Gemeinden")
    towns.append(["AGS", "Gemeinde", "Umlagegrundlagen", "Einwohner", "Jugendamt_Kreis", "Linienminuten", "Wagenkm"])
    for town in district.municipalities:
        towns.append(list(town))
    items = workbook.create_sheet("Kostenpositionen")
    items.append(["ID", "Bezeichnung", "Kategorie", "Personalkosten", "Sachkosten", "Gemeinkosten", "Foerderung",
                  "Traeger", "Stellen"])
    for row in district.items:
        items.append(list(row))
    keys = workbook.create_sheet("Schluessel")
    keys.append(["ID", "AGS", "Wert"])
    for row in district.keys:
        keys.append(list(row))
    path = folder / f"{district.slug}.xlsx"
    workbook.save(path)
    return path


def write_country(target: str | Path, scale: float = 1.0, seed: int = 2022, year: int = 2022,
                  districts: int | None = None) -> tuple[Path, Path]:
    """Write `target/inputs/*.xlsx` and `target/rules/*.yaml`; returns both folders."""
    target = Path(target)
    inputs, rules = target / "inputs", target / "rules"
    inputs.mkdir(parents=True, exist_ok=True)
    rules.mkdir(parents=True, exist_ok=True)
    for district in country(scale, seed, year, districts).districts:
        write_district(district, inputs)
        (rules / f"{district.slug}.yaml").write_text(RULES_TEMPLATE.format(district=district.name, year=year),
                                                      encoding="utf-8")
    return inputs, rules


def main(argv: list[str]) -> int:
    """`python -m allocation.ops.synth TARGET [SCALE]`: a synthetic country in TARGET (never a name like --help)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m allocation.ops.synth",
                                     description="Schreibt ein synthetisches Land (Eingaben und Regeldateien) nach ZIEL.")
    parser.add_argument("target", metavar="ZIEL", help="Zielordner")
    parser.add_argument("scale", nargs="?", type=float, default=1.0, help="Größe (1.0 = 400 Kreise × 40 × 400)")
    args = parser.parse_args(argv)
    print(*write_country(args.target, args.scale))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
