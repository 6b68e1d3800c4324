"""Hypothesis strategies and small builders shared by the property tests (tests/test_prop_*.py).

Nothing here computes an expected value: oracles live in the tests that use them. This module only makes
inputs (AGS sets, keys, totals, condition trees, records, input workbooks) and renders them in the formats
the package reads (rule-file YAML, xlsx), so that every generated case goes through the real parsers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st

from allocation.core.model import COMPONENTS, DISTRICT_HOST, CostItem, InputBook, Municipality, Parameters
from allocation.core.problems import Location

__all__ = [
    "scaled",
    "ags_codes",
    "key_values",
    "apportion_cases",
    "ApportionCase",
    "Column",
    "schemas",
    "conditions_over",
    "records_over",
    "render_condition",
    "rulebook_text",
    "make_book",
    "InputSpec",
    "input_specs",
    "write_input_workbook",
    "E2E_RULES",
]


def scaled(fraction: float, minimum: int) -> settings:
    """Settings for an expensive test: a fraction of the active profile's examples, at least `minimum`.

    Evaluated when the test module is imported, i.e. after pytest loaded the profile
    (`--hypothesis-profile=thorough` raises it for these tests too).
    """
    return settings(max_examples=max(minimum, int(settings.default.max_examples * fraction)))


# ------------------------------------------------------------------------------------- apportionment

ags_codes = st.integers(min_value=0, max_value=99_999_999).map(lambda n: f"{n:08d}")

# Small integers make equal remainders (ties, decided by AGS) frequent; the other kinds cover large,
# decimal and rational keys as the pipeline produces them (bases in euros, weighted composite keys).
key_values = st.one_of(
    st.integers(min_value=0, max_value=12),
    st.integers(min_value=0, max_value=10**12),
    st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False),
    st.fractions(min_value=0, max_value=10**6, max_denominator=997),
)


@dataclass(frozen=True)
class ApportionCase:
    total: int  # cents, a multiple of unit
    keys: dict  # AGS -> key (int | Decimal | Fraction), key sum > 0
    unit: int  # 1 (Cent) or 100 (Euro)


@st.composite
def apportion_cases(draw, max_size: int = 14) -> ApportionCase:
    codes = draw(st.lists(ags_codes, min_size=1, max_size=max_size, unique=True))
    values = draw(st.lists(key_values, min_size=len(codes), max_size=len(codes)))
    if sum(Fraction(v) for v in values) == 0:
        values[draw(st.integers(0, len(values) - 1))] = draw(st.integers(1, 50))
    unit = draw(st.sampled_from([1, 100]))
    units = draw(st.one_of(st.integers(-40, 40), st.integers(-10**11, 10**11)))
    return ApportionCase(units * unit, dict(zip(codes, values)), unit)


# ------------------------------------------------------------------------------ conditions and records

# Values chosen for the corners where durable_rules compares loosely (see engine.py): numeric-looking
# text, the empty string, 0 / 1 / 1.0, negatives, decimals, and text that resembles the engine's encoding.
NUMBERS = [Decimal(v) for v in ("0", "1", "1.0", "-1", "0.5", "2.25", "-3.75", "10", "100", "0.1", "-0.1",
                                "999999999999999", "-999999999999999", "0.0001", "0.000015", "-0.000025")]
TEXTS = ["", "1", "01", "1.0", "0", "-1", "abc", "Kreis", "KIM", " 1", "1 ", "ä", 'a"b', "a\\b", "true",
         "null", "s:1", "s:", "number", "05170048", "1e3", "NaN"]
# No control characters: an xlsx cell cannot hold them, and neither can the C strings of durable_rules.
_free_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=4)


numbers = st.one_of(st.sampled_from(NUMBERS), st.integers(-5, 5).map(Decimal),
                    st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False, allow_infinity=False),
                    # tiny decimals (printed by Python in exponent form, e.g. 1E-9, 5E-05): once crashed
                    # durable_rules' JSON parser (tests/test_regressions.py)
                    st.builds(lambda sign, n: Decimal(sign * n).scaleb(-9),
                              st.sampled_from([1, -1]), st.integers(1, 999_999)),
                    )
# Values a record may hold but a rule constant may not (more than 15 significant digits or >= 10^15).
record_only_numbers = st.sampled_from([Decimal("1E+20"), Decimal("-1E+20"), Decimal("1000000000000000"),
                                       Decimal("0.30000000000000004"), Decimal("9007199254740993")])
texts = st.one_of(st.sampled_from(TEXTS), _free_text)

COLUMN_NAMES = ["Kategorie", "Traeger", "Stellen", "Zahl", "Wert", "Spalte 1", "Größe", "x", "eq", "in"]


@dataclass(frozen=True)
class Column:
    name: str
    numeric: bool  # every record holds a number here: ordered operators are allowed


@st.composite
def schemas(draw, max_columns: int = 4) -> tuple[Column, ...]:
    names = draw(st.lists(st.sampled_from(COLUMN_NAMES), min_size=1, max_size=max_columns, unique=True))
    return tuple(Column(name, draw(st.booleans())) for name in names)


def _constant_for(column: Column):
    # Any column may be compared for equality with text or numbers; text never equals a number.
    return st.one_of(numbers, texts) if not column.numeric else st.one_of(numbers, numbers, texts)


@st.composite
def _comparison(draw, schema: tuple[Column, ...]):
    column = draw(st.sampled_from(schema))
    ops = ["eq", "ne", "in"] + (["lt", "le", "gt", "ge"] if column.numeric else [])
    op = draw(st.sampled_from(ops))
    if op == "in":
        value = tuple(draw(st.lists(_constant_for(column), min_size=1, max_size=4)))
    elif op in ("lt", "le", "gt", "ge"):
        value = draw(numbers)
    else:
        value = draw(_constant_for(column))
    return ("cmp", column.name, op, value)


def conditions_over(schema: tuple[Column, ...], max_leaves: int = 8):
    """Condition trees as plain tuples: ("cmp", column, op, value) | ("all"|"any", [children]) | ("not", child)."""
    return st.recursive(
        _comparison(schema),
        lambda children: st.one_of(
            st.lists(children, max_size=3).map(lambda cs: ("all", cs)),
            st.lists(children, max_size=3).map(lambda cs: ("any", cs)),
            children.map(lambda c: ("not", c)),
        ),
        max_leaves=max_leaves,
    )


def records_over(schema: tuple[Column, ...], min_size: int = 20, max_size: int = 80):
    """Records (column -> str | Decimal); a text column may be missing (the engine reads it as "")."""
    fields = {}
    for column in schema:
        if column.numeric:
            fields[column.name] = st.one_of(numbers, record_only_numbers)
        else:
            fields[column.name] = st.one_of(texts, numbers, st.just(None))
    record = st.fixed_dictionaries(fields).map(lambda r: {k: v for k, v in r.items() if v is not None})
    return st.lists(record, min_size=min_size, max_size=max_size)


def _scalar(value) -> str:
    if isinstance(value, Decimal):
        return f"{value:f}"
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def render_condition(node, rnd) -> str:
    """A condition tree as YAML flow text, using the different spellings the rule language allows."""
    kind = node[0]
    if kind == "cmp":
        _, column, op, value = node
        key = _scalar(column)
        if op == "eq" and rnd.random() < 0.5:
            return "{" + f"{key}: {_scalar(value)}" + "}"
        operand = "[" + ", ".join(_scalar(v) for v in value) + "]" if op == "in" else _scalar(value)
        return "{" + f"{key}: {{{op}: {operand}}}" + "}"
    if kind == "not":
        return "{" + f'"not": {render_condition(node[1], rnd)}' + "}"
    children = node[1]
    if kind == "all" and children and all(c[0] == "cmp" for c in children) and rnd.random() < 0.5:
        columns = [c[1] for c in children]
        if len(set(columns)) == len(columns):
            # several columns in one mapping: an implicit "all"
            return "{" + ", ".join(render_condition(c, rnd)[1:-1] for c in children) + "}"
        ops = [c[2] for c in children]
        if len(set(columns)) == 1 and len(set(ops)) == len(ops):
            # several operators on one column: also an implicit "all"
            parts = []
            for c in children:
                operand = "[" + ", ".join(_scalar(v) for v in c[3]) + "]" if c[2] == "in" else _scalar(c[3])
                parts.append(f"{c[2]}: {operand}")
            return "{" + f"{_scalar(columns[0])}: {{{', '.join(parts)}}}" + "}"
    return "{" + f'"{kind}": [' + ", ".join(render_condition(c, rnd) for c in children) + "]}"


def rulebook_text(rules: list[tuple[str, object, int]], hit_policy: str, rnd) -> str:
    """A rule file with one district_levy rule per (id, condition tree, priority)."""
    lines = ["district: Testkreis", "valid_from: 2000", "valid_to: 2100", f"hit_policy: {hit_policy}", "state: NW",
             "rules:"]
    for rule_id, tree, priority in rules:
        lines += [f"  - id: {rule_id}",
                  '    legal_basis: "§ 56 Abs. 1 KrO NRW"',
                  f"    when: {render_condition(tree, rnd)}",
                  "    route: district_levy",
                  f"    priority: {priority}"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- in-memory input book

def make_book(municipalities: list[tuple[str, int, dict]], items: list[tuple[str, dict, int, int]],
              unit: int = 1, municipality_columns: tuple[str, ...] = (), item_columns: tuple[str, ...] = ()
              ) -> InputBook:
    """An InputBook without a workbook: municipalities (AGS, base cents, attrs), items (id, attrs,
    Personalkosten cents, Foerderung cents), for stage-level properties (decide, allocate)."""
    file = "generated.xlsx"
    parameters = Parameters("Testkreis", 2022, "Cent" if unit == 1 else "Euro", 2, Location(file, "Parameter"))
    m_records = tuple(
        Municipality(ags, f"Gemeinde {ags}", base, {"AGS": ags, **attrs}, Location(file, "Gemeinden", row), {})
        for row, (ags, base, attrs) in enumerate(municipalities, start=2))
    i_records = tuple(
        CostItem(item_id, item_id, str(attrs.get("Kategorie", "")),
                 {c: (cost if c == "Personalkosten" else 0) for c in COMPONENTS}, funding, DISTRICT_HOST,
                 {"ID": item_id, **attrs}, Location(file, "Kostenpositionen", row), {})
        for row, (item_id, attrs, cost, funding) in enumerate(items, start=2))
    return InputBook(file, "0" * 64, parameters, m_records, i_records, (),
                     ("AGS", "Gemeinde", "Umlagegrundlagen", *municipality_columns),
                     ("ID", "Bezeichnung", "Kategorie", *COMPONENTS, "Foerderung", "Traeger", *item_columns))


# ---------------------------------------------------------------------------------- input workbooks

E2E_RULES = """\
district: Testkreis
valid_from: 2000
valid_to: 2100
hit_policy: unique
state: NW
rules:
  - id: umlage
    legal_basis: "§ 56 Abs. 1 KrO NRW"
    when: {Kategorie: Umlage, Traeger: Kreis}
    route: district_levy
  - id: jugendamt
    legal_basis: "§ 56 Abs. 5 KrO NRW"
    when: {Kategorie: Jugend, Traeger: Kreis}
    route: differentiated_levy
    payers: {Jugendamt_Kreis: 1}
    components: [Personalkosten, Sachkosten]
  - id: bus
    legal_basis: "§ 56 Abs. 4 KrO NRW"
    when: {Kategorie: Bus, Traeger: Kreis}
    route: direct_billing
    key: {Linienminuten: 70, Wagenkm: 30}
  - id: beratung
    legal_basis: "§ 23 GkG NRW"
    when: {Kategorie: Beratung, Traeger: Kreis}
    route: direct_billing
    key: Schluessel
  - id: traeger
    legal_basis: "§ 2 GO NRW"
    when: {Traeger: {ne: Kreis}}
    route: host_bears
"""
E2E_COMPONENTS = {  # rule id -> eligible components (as E2E_RULES says)
    "umlage": COMPONENTS, "jugendamt": ("Personalkosten", "Sachkosten"), "bus": COMPONENTS,
    "beratung": COMPONENTS, "traeger": COMPONENTS,
}


@dataclass(frozen=True)
class InputSpec:
    rounding: str  # "Cent" | "Euro"
    decimals: int  # Hebesatz_Nachkommastellen
    # AGS, base (Decimal euros), Jugendamt_Kreis (0/1), Linienminuten, Wagenkm
    municipalities: tuple[tuple[str, Decimal, int, int, int], ...]
    # ID, Kategorie, (Personal, Sach, Gemein) Decimal euros, Foerderung Decimal euros, Traeger ("" | Kreis | AGS)
    items: tuple[tuple[str, str, tuple[Decimal, Decimal, Decimal], Decimal, str], ...]
    keys: tuple[tuple[str, str, int], ...] = field(default=())  # Schluessel: ID, AGS, Wert

    def rule_of(self, category: str, host: str) -> str:
        if host not in ("", DISTRICT_HOST):
            return "traeger"
        return {"Umlage": "umlage", "Jugend": "jugendamt", "Bus": "bus", "Beratung": "beratung"}[category]


_euros = st.decimals(min_value=0, max_value=10**7, places=2, allow_nan=False, allow_infinity=False)
_small_euros = st.decimals(min_value=0, max_value=50, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def input_specs(draw, max_municipalities: int = 8, max_items: int = 6) -> InputSpec:
    """Input workbooks whose items every rule of E2E_RULES can allocate (all keys have a positive sum)."""
    codes = draw(st.lists(ags_codes, min_size=1, max_size=max_municipalities, unique=True))
    rows = []
    for code in codes:
        base = draw(st.one_of(_euros, st.just(Decimal(0)), _small_euros))
        rows.append([code, base, draw(st.integers(0, 1)), draw(st.integers(0, 500)), draw(st.integers(0, 900))])
    # keep every key usable: one municipality with a positive base in the youth office's payer set and
    # positive usage figures
    anchor = draw(st.integers(0, len(rows) - 1))
    rows[anchor][1] = max(rows[anchor][1], Decimal("0.01"))
    rows[anchor][2] = 1
    rows[anchor][3] = max(rows[anchor][3], 1)
    rows[anchor][4] = max(rows[anchor][4], 1)
    municipalities = tuple(tuple(r) for r in rows)
    count = draw(st.integers(1, max_items))
    items = []
    keys = []
    for i in range(count):
        item_id = f"P-{i + 1}"
        category = draw(st.sampled_from(["Umlage", "Jugend", "Bus", "Beratung"]))
        host = draw(st.sampled_from(["", DISTRICT_HOST, DISTRICT_HOST, "host"]))
        if host == "host":
            host = draw(st.sampled_from(codes))
        costs = tuple(draw(st.one_of(_euros, _small_euros)) for _ in range(3))
        funding = draw(st.one_of(st.just(Decimal(0)), _euros, _small_euros))
        items.append((item_id, category, costs, funding, host))
        if category == "Beratung":
            chosen = draw(st.lists(st.sampled_from(codes), min_size=1, unique=True))
            values = [draw(st.integers(0, 400)) for _ in chosen]
            values[0] = max(values[0], 1)
            keys += [(item_id, code, value) for code, value in zip(chosen, values)]
    return InputSpec(draw(st.sampled_from(["Cent", "Euro"])), draw(st.sampled_from([2, 4])), municipalities,
                     tuple(items), tuple(keys))


def write_input_workbook(path: Path, spec: InputSpec) -> None:
    """The input workbook in the contract's layout (see allocation/workbook/inputs.py, allocation/workbook/template.py)."""
    from openpyxl import Workbook

    workbook = Workbook()
    parameters = workbook.active
    parameters.title = "Parameter"
    for row in (["Parameter", "Wert"], ["Kreis", "Testkreis"], ["Haushaltsjahr", 2022],
                ["Rundung", spec.rounding], ["Hebesatz_Nachkommastellen", spec.decimals]):
        parameters.append(row)
    municipalities = workbook.create_sheet("Gemeinden")
    municipalities.append(["AGS", "Gemeinde", "Umlagegrundlagen", "Jugendamt_Kreis", "Linienminuten", "Wagenkm"])
    for ags, base, youth, minutes, km in spec.municipalities:
        municipalities.append([ags, f"Gemeinde {ags}", base, youth, minutes, km])
    items = workbook.create_sheet("Kostenpositionen")
    items.append(["ID", "Bezeichnung", "Kategorie", *COMPONENTS, "Foerderung", "Traeger"])
    for item_id, category, costs, funding, host in spec.items:
        items.append([item_id, f"Leistung {item_id}", category, *costs, funding, host or None])
    if spec.keys:
        keys = workbook.create_sheet("Schluessel")
        keys.append(["ID", "AGS", "Wert"])
        for row in spec.keys:
            keys.append(list(row))
    for sheet, column in ((municipalities, 1), (items, 9)):
        for r in range(2, sheet.max_row + 1):
            sheet.cell(row=r, column=column).number_format = "@"
    workbook.save(path)
