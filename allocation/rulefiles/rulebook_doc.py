"""`allocation rulebook`: a readable rule book (HTML or Markdown) for the council and the auditors.

Each rule becomes a German sentence ("Wenn …, dann …") with its legal basis, route, key, eligible cost
components and priority; each file shows its district, validity years, hit policy, declared domains and its
worked examples. The text is built once as a neutral structure and rendered twice; HTML escapes every
piece of text from the rule file. Output is deterministic (no dates), so it can be a golden file.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Iterable, Sequence

from ..rulefiles import conditions
from ..core.model import ROUTE_LABELS, Example, Levy, Rule, Rulebook
from ..core.money import format_eur

__all__ = ["rule_sentence", "levy_sentence", "render_markdown", "render_html", "write_rulebook_doc"]

POLICY_TEXT = {
    "unique": "Jede Kostenposition muss genau eine Regel erfüllen (hit_policy: unique).",
    "priority": "Erfüllt eine Kostenposition mehrere Regeln, entscheidet die höchste Priorität, bei gleicher "
                "Priorität die frühere Regel (hit_policy: priority).",
}


def _and(words: Sequence[str]) -> str:
    """`A`, `A und B`, `A, B und C`."""
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " und " + words[-1]


def _components(rule: Rule) -> str:
    return _and(rule.components)


# The payers after a preposition: (all, payers: {}, none, "nur … die Gemeinden, für die X gilt,") per case.
_PAYER_PHRASES = {
    "auf": ("auf alle Gemeinden", "auf keine Gemeinde", "nur auf die Gemeinden"),
    "mit": ("mit allen Gemeinden", "mit keiner Gemeinde", "nur mit den Gemeinden"),
}


def _whom(rule: Rule, preposition: str) -> str:
    """The payers after "auf" (accusative) or "mit" (dative): every municipality, or those a `payers` condition
    selects (a relative clause closed by a comma, so the sentence goes on correctly)."""
    every, none, some = _PAYER_PHRASES[preposition]
    if rule.payers is None:
        return every
    selected = conditions.describe(rule.payers)
    if selected == "immer":
        return f"{every} (payers: {{}} wählt jede Gemeinde)"
    if selected == "nie":
        return f"{none} (die payers-Bedingung ist nie erfüllt)"
    return f"{some}, für die {selected} gilt,"


def _key(rule: Rule) -> str:
    """How direct billing shares, as an adverbial phrase ("nach ...")."""
    key = rule.key
    if key is None:
        return "nach einem Schlüssel, der fehlt"
    if key.is_item_key:
        return "nach den Schlüsselwerten der Kostenposition im Blatt Schluessel"
    if len(key.weights) == 1:
        return f"nach der Spalte {next(iter(key.weights))} des Blatts Gemeinden"
    parts = _and([f"{weight} % {column}" for column, weight in key.weights.items()])
    return (f"nach einem gewichteten Schlüssel aus {parts} (jede Spalte im Verhältnis zu ihrer Summe über die "
            "zahlenden Gemeinden)")


def _levy_whom(levy: Levy) -> str:
    payers = "alle Gemeinden" if levy.payers is None else f"die Gemeinden mit {conditions.describe(levy.payers)}"
    key = f"{levy.describe_base()} × {levy.extent}" if levy.extent else levy.describe_base()
    return f"{payers} nach {key}"


RATE_LIMIT_TEXT = {
    "bavaria": "Sätze je Bestandteil werden nach Art. 18 Abs. 3 BayFAG geprüft: der höchste Umlagesatz der "
               "Steuerkraftzahlen höchstens ein Drittel über dem niedrigsten (Satz 3), der Satz auf "
               "Schlüsselzuweisungen höchstens der niedrigste Satz der Steuerkraftzahlen (Satz 4).",
    "bavaria-approved": "Sätze je Bestandteil werden nach Art. 18 Abs. 3 Satz 4 BayFAG geprüft (Satz auf "
                        "Schlüsselzuweisungen höchstens der niedrigste Satz der Steuerkraftzahlen); eine Spreizung "
                        "über ein Drittel ist von der Aufsichtsbehörde genehmigt (Satz 3 Halbsatz 2).",
}


def levy_sentence(levy: Levy) -> str:
    """A levy of `levies:` as one German sentence."""
    return (f"Die Umlage „{levy.name}“ ({levy.id}) wird auf {_levy_whom(levy)} erhoben: mit dem Satz der "
            "Haushaltssatzung (Blatt Umlagesaetze der Eingabe) als Bemessungsgrundlage × Satz je Gemeinde, auf die "
            "Rundungseinheit gerundet; ohne Satz wird ihr Bedarf exakt verteilt und der Satz abgeleitet.")


def rule_sentence(rule: Rule, levy: Levy | None = None) -> str:
    """The rule as one German sentence, for every route and combination of its parameters (`levy`: the levy it
    names, in a file with `levies:`)."""
    when = conditions.describe(rule.when)
    condition = {"immer": "Für jede Kostenposition", "nie": "Für keine Kostenposition (die Bedingung ist nie "
                 "erfüllt)"}.get(when)
    condition = f"{condition} " if condition else f"Wenn {when}, "  # a "wenn" clause takes a comma, a phrase not
    deficit = f"das Defizit (förderfähig: {_components(rule)}; abzüglich Förderung)"
    if levy is not None:
        then = f"zählt {deficit} zum Umlagebedarf der Umlage „{levy.name}“ ({levy.id}), erhoben auf {_levy_whom(levy)}"
    elif rule.route == "district_levy":
        then = f"wird {deficit} über die allgemeine Kreisumlage auf alle Gemeinden nach ihren Umlagegrundlagen verteilt"
    elif rule.route == "differentiated_levy":
        basis = "ihren Umlagegrundlagen" if not rule.extent else (
            f"ihren mit dem Mehr-/Minderbelastungsfaktor der Spalte {rule.extent} vervielfachten Umlagegrundlagen")
        then = f"wird {deficit} über eine differenzierte Umlage {_whom(rule, 'auf')} nach {basis} verteilt"
    elif rule.route == "direct_billing":
        then = f"wird {deficit} {_whom(rule, 'mit')} direkt {_key(rule)} abgerechnet"
    else:
        then = f"trägt die Trägerkommune (die Gemeinde in Spalte Traeger) {deficit} selbst"
    if rule.credit_hosts:
        service = f"die Leistung „{rule.service}“" if rule.service else "dieselbe Leistung (Spalte Leistung, sonst Kategorie)"
        then += f"; Gemeinden, die {service} selbst als Trägerkommune tragen, zahlen nicht mit (credit_hosts)"
    text = f"{condition}{then}."
    if rule.service:
        text += f" Die Leistung heißt „{rule.service}“ (service)."
    return text


def _example_lines(example: Example, number: int) -> tuple[str, list[str], list[tuple[str, str]]]:
    title = f"Beispiel {number}" + (f": {example.description}" if example.description else "")
    item = ", ".join(f"{k} = {v}" for k, v in example.item.items()) or "(jede Kostenposition)"
    facts = [f"Kostenposition: {item}"]
    if example.rule:
        facts.append(f"erwartete Regel: {example.rule}")
    if example.route:
        facts.append(f"erwarteter Weg: {ROUTE_LABELS.get(example.route, example.route)} ({example.route})")
    split_rows: list[tuple[str, str]] = []
    if example.split is not None:
        split = example.split
        if split.deficit is not None:
            facts.append(f"Defizit: {format_eur(split.deficit)}")
        else:
            costs = ", ".join(f"{c} {format_eur(v)}" for c, v in split.components.items() if v)
            facts.append(f"Kosten: {costs}; Förderung {format_eur(split.funding)}")
        facts.append(f"Rundung: {split.rounding}")
        names = {m.ags: m.name for m in split.municipalities}
        split_rows = [(f"{ags} {names.get(ags, '')}".strip(), format_eur(cents))
                      for ags, cents in sorted(split.expected.items())]
    return title, facts, split_rows


def _sections(books: Sequence[Rulebook]) -> Iterable[tuple[str, object]]:
    """A neutral document: (kind, payload) pairs rendered by both formats."""
    yield "title", "Regelbuch: Finanzierung gemeinsamer Leistungen"
    for book in books:
        name = Path(book.path).name
        yield "h2", f"{book.district}, Haushaltsjahre {book.valid_from}–{book.valid_to} ({name})"
        if book.description:
            yield "p", book.description
        yield "p", POLICY_TEXT.get(book.hit_policy, book.hit_policy)
        for column, values in book.domains.items():
            yield "p", f"Zulässige Werte für {column}: " + ", ".join(str(v) for v in values) + "."
        if book.levies:
            yield "h3", "Umlagen der Haushaltssatzung"
            for levy in book.levies:
                yield "p", levy_sentence(levy)
                yield "list", [f"Rechtsgrundlage: {levy.legal_basis or '(keine angegeben)'}",
                               f"Bemessungsgrundlage: {levy.describe_base()}",
                               f"Regeln: {', '.join(r.id for r in book.rules if r.levy == levy.id) or '(keine)'}"]
            if book.rate_limits:
                yield "p", RATE_LIMIT_TEXT[book.rate_limits]
        for rule in book.rules:
            yield "h3", f"Regel {rule.id} ({name}:{rule.source.line})"
            if rule.description:
                yield "p", rule.description
            yield "p", rule_sentence(rule, book.levy(rule.levy) if rule.levy else None)
            facts = [f"Rechtsgrundlage: {rule.legal_basis or '(keine angegeben)'}",
                     f"Weg: {ROUTE_LABELS.get(rule.route, rule.route)} ({rule.route})",
                     f"Förderfähige Kostenbestandteile: {_components(rule)}",
                     f"Gültig: Haushaltsjahre {book.valid_from}–{book.valid_to}"]
            if rule.key is not None:
                facts.insert(2, f"Schlüssel: {rule.key.describe()}")
            if rule.service:
                facts.append(f"Leistung: {rule.service}")
            if rule.levy:
                facts.insert(2, f"Umlage: {book.levy(rule.levy).name} ({rule.levy})")
            if book.hit_policy == "priority":
                facts.append(f"Priorität: {rule.priority}")
            yield "list", facts
        if book.examples:
            yield "h3", "Beispiele (von `allocation check` mit durable_rules nachgerechnet)"
            for number, example in enumerate(book.examples, start=1):
                title, facts, split_rows = _example_lines(example, number)
                yield "h4", title
                yield "list", facts
                if split_rows:
                    yield "table", split_rows


def render_markdown(books: Sequence[Rulebook]) -> str:
    out: list[str] = []
    for kind, payload in _sections(books):
        if kind == "title":
            out += [f"# {payload}", ""]
        elif kind in ("h2", "h3", "h4"):
            out += [f"{'#' * int(kind[1])} {payload}", ""]
        elif kind == "p":
            out += [str(payload), ""]
        elif kind == "list":
            out += [f"- {line}" for line in payload] + [""]
        elif kind == "table":
            out += ["| Gemeinde | erwarteter Betrag |", "|---|---:|"]
            out += [f"| {_md_cell(a)} | {_md_cell(b)} |" for a, b in payload] + [""]
    return "\n".join(out).rstrip() + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_html(books: Sequence[Rulebook]) -> str:
    e = html.escape
    out = ['<!DOCTYPE html>', '<html lang="de">', "<head>", '<meta charset="utf-8">']
    body: list[str] = []
    for kind, payload in _sections(books):
        if kind == "title":
            out.append(f"<title>{e(str(payload))}</title>")
            body.append(f"<h1>{e(str(payload))}</h1>")
        elif kind in ("h2", "h3", "h4"):
            body.append(f"<{kind}>{e(str(payload))}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{e(str(payload))}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{e(line)}</li>" for line in payload) + "</ul>")
        elif kind == "table":
            rows = "".join(f"<tr><td>{e(a)}</td><td class=\"num\">{e(b)}</td></tr>" for a, b in payload)
            body.append(f"<table><tr><th>Gemeinde</th><th>erwarteter Betrag</th></tr>{rows}</table>")
    out += ["<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
            "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.2em .6em}"
            ".num{text-align:right}</style>", "</head>", "<body>", *body, "</body>", "</html>"]
    return "\n".join(out) + "\n"


def write_rulebook_doc(paths: Sequence[str | Path], output: str | Path, fmt: str | None = None) -> Path:
    """Load the rule files (schema errors stop) and write the rule book atomically."""
    from ..core.filenames import write_atomically
    from .rulebook import load_rulebooks

    books = load_rulebooks(paths)
    output = Path(output)
    fmt = fmt or ("md" if output.suffix.lower() in (".md", ".markdown") else "html")
    text = render_markdown(books) if fmt == "md" else render_html(books)
    write_atomically(output, lambda temp: Path(temp).write_text(text, encoding="utf-8"))
    return output
