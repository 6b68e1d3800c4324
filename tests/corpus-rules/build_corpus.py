"""Writes the hostile rule files of this folder (README.md indexes them). Run: python tests/corpus-rules/build_corpus.py

Deterministic: the same files every time, so that a diff shows any change. The rule file larger than the
size limit is not stored (tests/test_hostile_rules.py writes one into a temporary folder).
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
WESEL = HERE.parent.parent / "rules" / "kreis-wesel.yaml"
HEAD = "district: Testkreis\nvalid_from: 2022\nvalid_to: 2023\nhit_policy: {policy}\nrules:\n"


def rule(rule_id: str, when: str, priority: int | None = None, levy: bool = False) -> str:
    text = (f"  - id: {rule_id}\n    legal_basis: \"§ 56 Abs. 1 KrO NRW\"\n    when: {when}\n"
            "    route: district_levy\n" + ("    levy: kreisumlage\n" if levy else ""))
    return text + (f"    priority: {priority}\n" if priority is not None else "")


def alias_bomb() -> str:
    # "billion laughs": nine levels of ten aliases each expand to 10^9 list items once composed
    lines = ["district: Testkreis", "valid_from: 2022", "valid_to: 2023", 'a0: &a0 ["lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\nrules: *a9\n"


def anchor_reuse() -> str:
    # the harmless-looking use: one `when` written once and reused by a second rule
    return (HEAD.format(policy="priority") + rule("kim", "&kim {Kategorie: KIM, Traeger: Kreis}", 2)
            + rule("kim-zwei", "*kim", 1))


def deep_yaml(levels: int = 500) -> str:
    # PyYAML's composer recursed once per level and raised RecursionError at about 450 levels
    return HEAD.format(policy="unique") + rule("tief", "{not: " * levels + "{Kategorie: KIM}" + "}" * levels)


def deep_condition(levels: int = 33) -> str:
    # within the YAML limit, one level beyond the condition limit of 32
    when = "{all: [" * levels + "{Kategorie: KIM}" + "]}" * levels
    return HEAD.format(policy="unique") + rule("tief", when)


def many_groups() -> str:
    # 15 in-lists inside one all: 16 and/or groups, one more than durable_rules accepts (error 113)
    when = "{all: [" + ", ".join(f"{{Spalte{i}: {{in: [a, b]}}}}" for i in range(15)) + "]}"
    return HEAD.format(policy="unique") + rule("gruppen", when)


def many_alternatives() -> str:
    # an any of 48 comparisons that one item can meet at once: durable_rules' matching stack holds 64
    # entries, the engine keeps a margin and accepts 47 (engine.MAX_WEIGHT)
    when = "{any: [" + ", ".join(f"{{Kategorie: {{ne: K{i}}}}}" for i in range(48)) + "]}"
    return HEAD.format(policy="unique") + rule("alternativen", when)


def priority_rules(count: int) -> str:
    # Kreis Wesel's six rules under hit_policy: priority, plus rules for categories of their own. 500 is the most
    # a rule file may hold (rulebook.MAX_RULES, so that `check` answers within 5 s); at 1,000 one durable_rules
    # ruleset of them hung while being created (more than 512 successors of a node), which the engine now splits.
    text = WESEL.read_text(encoding="utf-8").replace("hit_policy: unique", "hit_policy: priority")
    text = text.replace("domains:\n  Kategorie: [KIM, Jugendhilfe, OEPNV, Beratung, Kultur]\n", "")
    head, rest = text.split("\nlevies:", 1)  # the extra rules go at the end of `rules:`, before `levies:`
    extra = "".join(rule(f"sonder-{i:03d}", f"{{Kategorie: Sonder{i:03d}, Traeger: Kreis}}", i, levy=True)
                    for i in range(count - 6))
    return head.rstrip("\n") + "\n\n" + extra + "\nlevies:" + rest


def main() -> None:
    files = {
        "alias-bombe.yaml": alias_bomb(),
        "anker-wiederverwendet.yaml": anchor_reuse(),
        "tiefe-500-ebenen.yaml": deep_yaml(),
        "bedingung-33-ebenen.yaml": deep_condition(),
        "zu-viele-gruppen.yaml": many_groups(),
        "zu-viele-alternativen.yaml": many_alternatives(),
        "prioritaet-500-regeln.yaml": priority_rules(500),
        "prioritaet-501-regeln.yaml": priority_rules(501),
    }
    for name, text in files.items():
        (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
