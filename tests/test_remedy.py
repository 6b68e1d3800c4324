"""The Rechtsbehelfsbelehrung by the state's law (issue 22, "use the state profiles for the remedy"): a notice
names the remedy the Kreis states in `notices.letterhead.remedy` (klage, widerspruch, wahl), else the one its
state's profile has verified; where neither says, a final notice is refused (a wrong Rechtsbehelfsbelehrung gives a
year to sue instead of a month, § 58 Abs. 2 VwGO) and a draft shows a red placeholder in its place.

The expected texts are written here by hand: the wording of § 70 Abs. 1 VwGO (Widerspruch at the authority that
issued the notice) and § 81 VwGO (Klage at the court), and the sender of the Wesel rule file.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from openpyxl import load_workbook

pytest.importorskip("typst", reason="notices need typst: pip install -e '.[test]'")

from allocation.cli import main  # noqa: E402
from allocation.core import states  # noqa: E402
from allocation.ops.notices import remedy_in_force  # noqa: E402
from allocation.rulefiles.rulebook import Letterhead, NoticeSettings  # noqa: E402
from test_notices_letters import text_of  # noqa: E402  (whitespace, the no-break spaces too, read as one space)

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"
ALPEN = "05170004"
COURT = '    court: {name: "Verwaltungsgericht (Beispiel)", address: "Anschrift des Verwaltungsgerichts (Beispiel)"}\n'
SENDER = "Kreis Wesel, Kreishaus (Beispielanschrift), 46483 Wesel"


def rules_with(folder: Path, *, remedy: str | None = None, court: bool = True, state: str = "NW") -> Path:
    """The Wesel rule file with `remedy:` under its letterhead (or none), with or without the court, under a
    state."""
    text = RULES.read_text(encoding="utf-8")
    assert COURT in text and "\nstate: NW\n" in text and text.count("    remedy: klage\n") == 1
    text = text.replace("    remedy: klage\n", "")  # the shipped file's own choice
    text = text.replace(COURT, (COURT if court else "") + (f"    remedy: {remedy}\n" if remedy else ""))
    path = folder / "kreis-wesel.yaml"
    path.write_text(text.replace("\nstate: NW\n", f"\nstate: {state}\n"), encoding="utf-8")
    return path


def final_run(folder: Path, rules: Path) -> tuple[Path, Path]:
    register, final = folder / "register", folder / "final.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(final), "--mode", "final",
                 "--register", str(register)]) == 0
    return final, register


def notices(final: Path, register: Path, out: Path, *extra: str) -> int:
    return main(["notices", str(final), "-o", str(out), "--date", "2022-01-10", "--register", str(register),
                 "--ags", ALPEN, *extra])


def refused_at(folder: Path, capsys, own: Path) -> list[tuple[str, str, int]]:
    """A final run of the Wesel file (`remedy: klage`) whose notices with the template `own` are refused (exit 2,
    nothing written): its problems as (code, file, line)."""
    final, register = final_run(folder, rules_with(folder, remedy="klage"))
    capsys.readouterr()
    out = folder / "bescheide"
    assert notices(final, register, out, "--template", str(own), "--json") == 2
    assert not out.exists()
    return [(p["code"], p["location"]["file"], p["location"]["line"])
            for p in json.loads(capsys.readouterr().out)["problems"]]


def own_with(folder: Path, name: str, line: str, replacement: str) -> Path:
    """A Kreis's template folder `eigen` holding the default's file `name` with `line` (there once) replaced."""
    source = (ROOT / "allocation" / "ops" / "notice_templates" / "default" / name).read_text(encoding="utf-8")
    assert source.count(line) == 1
    own = folder / "eigen"
    own.mkdir()
    (own / name).write_text(source.replace(line, replacement), encoding="utf-8")
    return own


def trail(folder: Path) -> dict:
    """The notices' record (Abschlaege.xlsx, sheet Protokoll): label -> value."""
    book = load_workbook(folder / "Abschlaege.xlsx", read_only=True)
    return {row[0]: row[1] for row in book["Protokoll"].iter_rows(values_only=True) if row and row[0]}


def test_a_widerspruch_goes_to_the_authority_and_needs_no_court(tmp_path):
    final, register = final_run(tmp_path, rules_with(tmp_path, remedy="widerspruch", court=False))
    out = tmp_path / "bescheide"
    assert notices(final, register, out) == 0
    text = text_of(out / f"{ALPEN}_Alpen.pdf")
    assert ("Gegen diesen Bescheid kann innerhalb eines Monats nach seiner Bekanntgabe Widerspruch erhoben werden. "
            "Der Widerspruch ist schriftlich, in elektronischer Form nach § 3a Abs. 2 des "
            f"Verwaltungsverfahrensgesetzes oder zur Niederschrift zu erheben bei: {SENDER}.") in text
    assert "Klage" not in text and "Verwaltungsgericht" not in text and "PLATZHALTER" not in text
    assert trail(out)["Rechtsbehelf"] == "Widerspruch (notices.letterhead.remedy der Regeldatei)"


def test_a_choice_names_both_ways_and_needs_the_court(tmp_path, capsys):
    final, register = final_run(tmp_path, rules_with(tmp_path, remedy="Wahl", court=False))
    capsys.readouterr()
    assert notices(final, register, tmp_path / "ohne-gericht", "--json") == 4
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [p["code"] for p in problems] == ["notices-placeholder"] * 2
    assert any("court.name" in p["message"] for p in problems)
    assert not (tmp_path / "ohne-gericht").exists()

    folder = tmp_path / "mit-gericht"
    folder.mkdir()
    final, register = final_run(folder, rules_with(folder, remedy="wahl"))
    out = folder / "bescheide"
    assert notices(final, register, out) == 0
    text = text_of(out / f"{ALPEN}_Alpen.pdf")
    assert ("innerhalb eines Monats nach seiner Bekanntgabe entweder Widerspruch eingelegt oder unmittelbar Klage "
            "erhoben werden.") in text
    assert f"zur Niederschrift zu erheben bei: {SENDER}." in text
    assert ("elektronisch zu erheben bei: Verwaltungsgericht (Beispiel), Anschrift des Verwaltungsgerichts "
            "(Beispiel).") in text
    assert trail(out)["Rechtsbehelf"] == "Widerspruch oder Klage nach Wahl (notices.letterhead.remedy der Regeldatei)"


def test_an_unknown_remedy_is_a_rule_file_error_at_its_line(tmp_path, capsys):
    rules = rules_with(tmp_path, remedy="widersprch")
    line = next(number for number, text in enumerate(rules.read_text(encoding="utf-8").split("\n"), start=1)
                if "remedy:" in text)
    capsys.readouterr()
    assert main(["check", str(rules), "--json"]) != 0
    problems = [p for p in json.loads(capsys.readouterr().out)["problems"] if p["code"] == "rule-bad-notices"]
    assert len(problems) == 1 and problems[0]["location"]["line"] == line
    assert "meinten Sie widerspruch?" in problems[0]["message"] and problems[0]["found"] == "'widersprch'"


def test_an_unverified_state_remedy_is_refused_on_a_final_notice_and_a_placeholder_on_a_draft(tmp_path, capsys):
    """Schleswig-Holstein's profile has read no norm on the remedy: without `remedy:` a final notice is refused at
    the rule file, naming the profile; a draft shows the placeholder instead of any remedy text."""
    fact = states.profile("SH").fact("remedy", 2022)
    assert fact is not None and not fact.verified  # the premise: if SH is verified one day, take another state
    rules = rules_with(tmp_path, state="SH")
    final, register = final_run(tmp_path, rules)
    capsys.readouterr()
    assert notices(final, register, tmp_path / "endgueltig", "--json") == 4
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [p["code"] for p in problems] == ["notices-placeholder"]
    assert "Rechtsbehelf" in problems[0]["message"] and "allocation states SH" in problems[0]["message"]
    assert problems[0]["location"]["file"].endswith("kreis-wesel.yaml")
    assert problems[0]["location"]["line"] == rules.read_text(encoding="utf-8").split("\n").index("  letterhead:") + 1

    probe = tmp_path / "probe.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(probe)]) == 0
    out = tmp_path / "entwurf"
    assert main(["notices", str(probe), "-o", str(out), "--date", "2022-01-10", "--ags", ALPEN]) == 0
    text = text_of(out / f"{ALPEN}_Alpen.pdf")
    assert "PLATZHALTER: Rechtsbehelf nach dem Recht des Landes" in text
    assert "Klage erhoben" not in text and "Widerspruch erhoben" not in text

    # stated by the Kreis after checking its law: the final notice goes out with it
    folder = tmp_path / "angegeben"
    folder.mkdir()
    final, register = final_run(folder, rules_with(folder, state="SH", remedy="widerspruch"))
    assert notices(final, register, folder / "bescheide") == 0
    assert "Widerspruch erhoben werden" in text_of(folder / "bescheide" / f"{ALPEN}_Alpen.pdf")


def test_the_remedy_in_force_the_letterhead_first_then_a_verified_fact_only():
    """Every profile: an unverified remedy fact never decides; a verified one gives its kind and norm; the
    letterhead's own choice wins over both."""
    for code in states.STATES:
        law = states.profile(code)
        fact = law.fact("remedy", 2024)
        kind, basis = remedy_in_force(NoticeSettings(None), code, 2024)
        if fact is not None and fact.verified:
            assert (kind, basis) == (fact.value["kind"], fact.norm), code
        else:
            assert kind == "", code
        own = NoticeSettings(None, letterhead=Letterhead(remedy="wahl"), remedy_source="notices.letterhead.remedy der Regeldatei")
        assert remedy_in_force(own, code, 2024) == ("wahl", "notices.letterhead.remedy der Regeldatei")


def test_the_installations_letterhead_file_may_state_the_remedy(tmp_path):
    head = tmp_path / "briefkopf.yaml"
    head.write_text("letterhead:\n  remedy: widerspruch\n", encoding="utf-8")
    final, register = final_run(tmp_path, rules_with(tmp_path, state="SH", court=False))
    out = tmp_path / "bescheide"
    assert notices(final, register, out, "--letterhead", str(head)) == 0
    assert f"zur Niederschrift zu erheben bei: {SENDER}." in text_of(out / f"{ALPEN}_Alpen.pdf")


# ------------------------------------------------------------------------------ found by the adversarial pass


def own_text(folder: Path, text: str, name: str = "rechtsbehelf.typ") -> Path:
    template = folder / "vorlage"
    shutil.copytree(ROOT / "allocation" / "ops" / "notice_templates" / "default", template)
    (template / name).write_text(text, encoding="utf-8")
    return template


def old_template(folder: Path) -> Path:
    """A Kreis's template folder whose rechtsbehelf.typ is a copy of the default before the remedy by state (a
    Klage text with the court placeholder, no `d.remedy`)."""
    return own_text(folder, '#import "briefkopf.typ": platzhalter\n'
                    "#let rechtsbehelf(d) = {\n"
                    '  let court = d.at("letterhead", default: (:)).at("court", default: (:))\n'
                    '  let gericht = if court.at("name", default: "") != "" [#court.name, #court.address] else '
                    '[#platzhalter("Verwaltungsgericht und Anschrift")]\n'
                    "  [Gegen diesen Bescheid kann innerhalb eines Monats nach seiner Bekanntgabe Klage erhoben "
                    "werden. Die Klage ist beim #gericht zu erheben.]\n}\n")


def test_an_old_klage_template_with_a_widerspruch_is_refused_at_the_template(tmp_path, capsys):
    """The remedy says Widerspruch, the Kreis's copy of an earlier default speaks of a Klage (and would show the
    court placeholder, as the court is not needed for a Widerspruch): refused at that file, nothing written."""
    template = old_template(tmp_path)
    final, register = final_run(tmp_path, rules_with(tmp_path, remedy="widerspruch", court=False))
    capsys.readouterr()
    out = tmp_path / "bescheide"
    assert notices(final, register, out, "--template", str(template), "--json") == 2
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [p["code"] for p in problems] == ["notices-placeholder"]
    assert problems[0]["location"]["file"].endswith("rechtsbehelf.typ") and "widerspruch" in problems[0]["message"]
    assert not out.exists()


def test_an_old_klage_template_needs_the_remedy_klage_and_says_so_in_the_protokoll(tmp_path, capsys):
    template = old_template(tmp_path)
    final, register = final_run(tmp_path, rules_with(tmp_path))  # NW, no remedy: refused, as with the default
    capsys.readouterr()
    assert notices(final, register, tmp_path / "ohne", "--template", str(template)) == 4
    folder = tmp_path / "klage"
    folder.mkdir()
    final, register = final_run(folder, rules_with(folder, remedy="klage"))
    out = folder / "bescheide"
    assert notices(final, register, out, "--template", str(template)) == 0
    assert trail(out)["Rechtsbehelf"] == "Klage (rechtsbehelf.typ, Kopie einer früheren Standardvorlage)"


def test_the_protokoll_names_an_own_text_and_the_installations_file(tmp_path):
    """An own rechtsbehelf.typ with its own words (naming the remedy in force): the Protokoll says the template's
    text decides; a remedy from the installation's letterhead file is named as coming from that file."""
    template = old_template(tmp_path)
    (template / "rechtsbehelf.typ").write_text(
        "#let rechtsbehelf(d) = [Gegen diesen Bescheid kann innerhalb eines Monats nach seiner Bekanntgabe Klage "
        "beim Verwaltungsgericht Düsseldorf, Bastionstraße 39, 40213 Düsseldorf, erhoben werden.]\n", encoding="utf-8")
    final, register = final_run(tmp_path, rules_with(tmp_path, remedy="klage"))
    out = tmp_path / "eigen"
    assert notices(final, register, out, "--template", str(template)) == 0
    assert "Bastionstraße 39" in text_of(out / f"{ALPEN}_Alpen.pdf")
    assert trail(out)["Rechtsbehelf"] == "eigener Text der Vorlage (rechtsbehelf.typ)"

    head = tmp_path / "briefkopf.yaml"
    head.write_text("letterhead:\n  remedy: klage\n", encoding="utf-8")
    folder = tmp_path / "installation"
    folder.mkdir()
    final, register = final_run(folder, rules_with(folder))
    out = folder / "bescheide"
    assert notices(final, register, out, "--letterhead", str(head)) == 0
    assert trail(out)["Rechtsbehelf"] == "Klage (letterhead.remedy der Briefkopf-Datei briefkopf.yaml)"


def test_check_says_before_the_final_run_that_the_remedy_is_missing_or_differs(tmp_path, capsys):
    """Before the final run (after it the rule file can no longer change): a file for notices without a remedy
    the profile verified is a Hinweis at its letterhead; `remedy: klage` under a state whose profile read a
    Widerspruch (Hessen, by practice, unverified) is a Hinweis too; the written value is quoted as written."""
    def hints(rules: Path) -> dict:
        capsys.readouterr()
        main(["check", str(rules), "--json"])
        return {p["code"]: p for p in json.loads(capsys.readouterr().out)["problems"] if p["severity"] == "warning"}

    rules = rules_with(tmp_path)
    found = hints(rules)
    assert "rule-remedy-missing" in found and "--letterhead" in found["rule-remedy-missing"]["hint"]
    assert found["rule-remedy-missing"]["location"]["line"] == next(
        n for n, line in enumerate(rules.read_text(encoding="utf-8").split("\n"), start=1) if "letterhead:" in line)
    assert "rule-remedy-missing" not in hints(rules_with(tmp_path, remedy="klage"))
    he = states.profile("HE").fact("remedy", 2022)
    assert he is not None and he.value == {"kind": "widerspruch"}  # the premise of the next line
    capsys.readouterr()
    main(["check", str(rules_with(tmp_path, remedy="klage", state="HE")), "--json"])
    assert any(p["code"] == "rule-remedy-differs" and p["message"].startswith("remedy: klage")
               and "widerspruch" in p["message"] for p in json.loads(capsys.readouterr().out)["problems"])
    capsys.readouterr()
    main(["check", str(rules_with(tmp_path, remedy="Klagen")), "--json"])
    bad = [p for p in json.loads(capsys.readouterr().out)["problems"] if p["code"] == "rule-bad-notices"]
    assert bad and bad[0]["found"] == "'Klagen'"


# ---------------------------------------------------------------------- found by the second adversarial pass


KLAGE_ONLY = ("#let rechtsbehelf(d) = [Gegen diesen Bescheid kann innerhalb eines Monats nach seiner Bekanntgabe "
              "Klage beim Verwaltungsgericht Düsseldorf, Bastionstraße 39, 40213 Düsseldorf, erhoben werden.]\n")


@pytest.mark.parametrize("remedy", ["widerspruch", "wahl"])
def test_an_own_text_that_names_only_a_klage_is_refused_under_a_widerspruch(tmp_path, capsys, remedy):
    """The earliest default, its court typed in as its comment asked: no placeholder, no d.remedy, a Klage text.
    Under widerspruch (or wahl) its final notices would name the wrong remedy: refused at the file."""
    template = own_text(tmp_path, KLAGE_ONLY)
    final, register = final_run(tmp_path, rules_with(tmp_path, remedy=remedy))
    capsys.readouterr()
    out = tmp_path / "bescheide"
    assert notices(final, register, out, "--template", str(template), "--json") == 2
    problem = json.loads(capsys.readouterr().out)["problems"][0]
    assert problem["code"] == "notices-placeholder" and "Widerspruch" in problem["message"]
    assert problem["location"]["file"].endswith("rechtsbehelf.typ") and problem["location"]["line"] == 1
    assert not out.exists()


def test_a_template_that_reads_the_remedy_but_prints_a_klage_is_refused_under_a_widerspruch(tmp_path, capsys):
    template = own_text(tmp_path, KLAGE_ONLY.replace("#let rechtsbehelf(d) = [",
                                                     '#let rechtsbehelf(d) = [#let _r = d.at("remedy", default: none)'))
    final, register = final_run(tmp_path, rules_with(tmp_path, remedy="widerspruch", court=False))
    assert notices(final, register, tmp_path / "bescheide", "--template", str(template)) == 2


def test_an_own_widerspruch_text_with_a_leftover_placeholder_line_passes(tmp_path):
    """An earlier default adapted to a Widerspruch as its comment invited, its unused placeholder line left in:
    its text is the Kreis's own and names the Widerspruch, so it goes out (and the Protokoll says whose text)."""
    template = own_text(tmp_path, '#import "briefkopf.typ": platzhalter\n'
                        '#let rechtsbehelf(d) = {\n  let gericht = [#platzhalter("Verwaltungsgericht")]\n'
                        "  [Gegen diesen Bescheid kann innerhalb eines Monats nach seiner Bekanntgabe Widerspruch beim "
                        "Kreis Wesel, Kreishaus, 46483 Wesel, erhoben werden.]\n}\n")
    final, register = final_run(tmp_path, rules_with(tmp_path, remedy="widerspruch", court=False))
    out = tmp_path / "bescheide"
    assert notices(final, register, out, "--template", str(template)) == 0
    assert "Widerspruch beim Kreis Wesel" in text_of(out / f"{ALPEN}_Alpen.pdf")
    assert trail(out)["Rechtsbehelf"] == "eigener Text der Vorlage (rechtsbehelf.typ)"


def test_the_protokoll_names_the_installations_letterhead_file_and_its_hash(tmp_path):
    head = tmp_path / "briefkopf.yaml"
    head.write_bytes("letterhead:\n  remedy: klage\n".encode("utf-8"))
    final, register = final_run(tmp_path, rules_with(tmp_path))
    out = tmp_path / "bescheide"
    assert notices(final, register, out, "--letterhead", str(head)) == 0
    record = trail(out)
    assert record["Briefkopf der Installation"] == "briefkopf.yaml"
    assert record["SHA-256 Briefkopf"] == hashlib.sha256(b"letterhead:\n  remedy: klage\n").hexdigest()


def test_check_takes_the_installations_remedy_and_says_nothing_more_of_a_faulty_one(tmp_path, capsys, monkeypatch):
    def codes(rules: Path) -> list[str]:
        capsys.readouterr()
        main(["check", str(rules), "--json"])
        return [p["code"] for p in json.loads(capsys.readouterr().out)["problems"]]

    rules = rules_with(tmp_path)
    assert "rule-remedy-missing" in codes(rules)
    head = tmp_path / "briefkopf.yaml"
    head.write_text("letterhead:\n  remedy: klage\n", encoding="utf-8")
    monkeypatch.setenv("ALLOCATION_LETTERHEAD", str(head))
    assert "rule-remedy-missing" not in codes(rules)
    monkeypatch.delenv("ALLOCATION_LETTERHEAD")
    assert codes(rules_with(tmp_path, remedy="Widerspruchsverfahren")) == ["rule-bad-notices"]


def template_digest(*folders: Path) -> str:
    """The Protokoll's template hash computed here: the folders overlaid (later ones replace a file of the same
    relative path), then per file in path order "path NUL sha256 LF", hashed."""
    files: dict[str, bytes] = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                files[path.relative_to(folder).as_posix()] = path.read_bytes()
    listing = "".join(f"{name}\0{hashlib.sha256(data).hexdigest()}\n" for name, data in sorted(files.items()))
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def test_the_protokoll_records_the_hash_of_the_template_compiled(tmp_path):
    """Which text went out, for the auditor: the default template's hash, and with --template the hash of the
    default overlaid with the Kreis's files (here an own rechtsbehelf.typ)."""
    default = ROOT / "allocation" / "ops" / "notice_templates" / "default"
    final, register = final_run(tmp_path, rules_with(tmp_path, remedy="klage"))
    out = tmp_path / "standard"
    assert notices(final, register, out) == 0
    assert trail(out)["SHA-256 Vorlage (kompiliert)"] == template_digest(default)
    own = tmp_path / "eigen"
    own.mkdir()
    (own / "rechtsbehelf.typ").write_text(KLAGE_ONLY, encoding="utf-8")
    out = tmp_path / "mit-vorlage"
    assert notices(final, register, out, "--template", str(own)) == 0
    recorded = trail(out)["SHA-256 Vorlage (kompiliert)"]
    assert recorded == template_digest(default, own) and recorded != template_digest(default)


def test_a_template_file_edited_during_the_run_goes_out_as_it_was_checked(tmp_path, monkeypatch):
    """The Kreis's rechtsbehelf.typ is checked for a final notice; if it is edited after the check (here: while the
    notices are built, to a text with the court placeholder), the notice still carries the text checked, and the
    Protokoll's template hash is that of the text checked."""
    from allocation.ops import notices as module

    own = tmp_path / "eigen"
    own.mkdir()
    (own / "rechtsbehelf.typ").write_text(KLAGE_ONLY, encoding="utf-8")
    edited = ("#let rechtsbehelf(d) = [Die Klage ist beim [Verwaltungsgericht und Anschrift in rechtsbehelf.typ "
              "eintragen] zu erheben. Nachträglich geändert.]\n")
    final, register = final_run(tmp_path, rules_with(tmp_path, remedy="klage"))
    build = module.build_notices

    def meanwhile(*args, **kwargs):
        (own / "rechtsbehelf.typ").write_text(edited, encoding="utf-8")
        return build(*args, **kwargs)

    monkeypatch.setattr(module, "build_notices", meanwhile)
    out = tmp_path / "bescheide"
    assert notices(final, register, out, "--template", str(own)) == 0
    assert (own / "rechtsbehelf.typ").read_text(encoding="utf-8") == edited  # the premise: it was edited
    text = text_of(out / f"{ALPEN}_Alpen.pdf")
    assert "Klage beim Verwaltungsgericht Düsseldorf, Bastionstraße 39" in text
    assert "Nachträglich" not in text and "eintragen" not in text
    checked = tmp_path / "wie-geprueft"
    checked.mkdir()
    (checked / "rechtsbehelf.typ").write_text(KLAGE_ONLY, encoding="utf-8")
    default = ROOT / "allocation" / "ops" / "notice_templates" / "default"
    assert trail(out)["SHA-256 Vorlage (kompiliert)"] == template_digest(default, checked)


def test_a_template_file_added_during_the_run_is_refused(tmp_path, monkeypatch, capsys):
    """A .typ file that appears in the Kreis's folder after the check was never checked: refused at it, exit 2,
    nothing written."""
    from allocation.ops import notices as module

    own = tmp_path / "eigen"
    own.mkdir()
    (own / "rechtsbehelf.typ").write_text(KLAGE_ONLY, encoding="utf-8")
    final, register = final_run(tmp_path, rules_with(tmp_path, remedy="klage"))
    build = module.build_notices

    def meanwhile(*args, **kwargs):
        (own / "unterschrift.typ").write_text("#let unterschrift(d) = [(Name, Amt)]\n", encoding="utf-8")
        return build(*args, **kwargs)

    monkeypatch.setattr(module, "build_notices", meanwhile)
    capsys.readouterr()
    out = tmp_path / "bescheide"
    assert notices(final, register, out, "--template", str(own), "--json") == 2
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [(p["code"], p["location"]["file"]) for p in problems] == [("notices-template-file",
                                                                       str(own / "unterschrift.typ"))]
    assert not out.exists()


def test_a_placeholder_in_a_file_the_template_includes_is_refused_whatever_its_name(tmp_path, capsys):
    """Typst includes files of any name: the signatory's placeholder in `zeichnung.txt`, included by the Kreis's
    unterschrift.typ, is refused at that file and line like one written in the .typ file itself."""
    own = tmp_path / "eigen"
    own.mkdir()
    (own / "unterschrift.typ").write_text(
        '#let unterschrift(d) = [Mit freundlichen Grüßen \\ #include "zeichnung.txt"]\n', encoding="utf-8")
    (own / "zeichnung.txt").write_text("Im Auftrag\n(Name, Amt)\n", encoding="utf-8")
    assert refused_at(tmp_path, capsys, own) == [("notices-placeholder", str(own / "zeichnung.txt"), 2)]


@pytest.mark.parametrize("files, where", [
    # rewrapped: Typst prints the line end as a blank, the PDF shows "(Name, Amt)"; it begins on line 2
    ({"unterschrift.typ": "#let unterschrift(d) = [Mit freundlichen Grüßen \\\n  Im Auftrag (Name,\n  Amt)]\n"},
     ("unterschrift.typ", 2)),
    # written with JSON's escape for "(" in a file the template reads: json() prints "(Name, Amt)"
    ({"unterschrift.typ": '#let s = json("zeichnung.json")\n#let unterschrift(d) = [Im Auftrag \\ #s.name]\n',
      "zeichnung.json": '{\n  "name": "\\u0028Name,  Amt)"\n}\n'}, ("zeichnung.json", 2)),
    # Typst's own escape and a no-break blank (~) in markup
    ({"unterschrift.typ": "#let unterschrift(d) = [Im Auftrag \\ \\u{28}Name,~Amt)]\n"}, ("unterschrift.typ", 1)),
    # a no-break space as JSON writes it (Python's json.dumps does), and one as Typst's escape
    ({"unterschrift.typ": '#let s = json("z.json")\n#let unterschrift(d) = [#s.name]\n',
      "z.json": '{"name": "(Name,\\u00a0Amt)"}\n'}, ("z.json", 1)),
    ({"unterschrift.typ": "#let unterschrift(d) = [Im Auftrag \\ (Name,\\u{a0}Amt)]\n"}, ("unterschrift.typ", 1)),
    # a forced line break inside it (the PDF shows "(Name," and "Amt)" on two lines), and JSON's \n beside a blank
    ({"unterschrift.typ": "#let unterschrift(d) = [Im Auftrag \\ (Name, \\\nAmt)]\n"}, ("unterschrift.typ", 1)),
    ({"unterschrift.typ": '#let s = json("z.json")\n#let unterschrift(d) = [#s.name]\n',
      "z.json": '{"name": "(Name, \\nAmt)"}\n'}, ("z.json", 1)),
    # a NUL byte in a comment does not make a .typ file a picture; a "//" inside a string starts no comment
    ({"unterschrift.typ": "// \x00\n#let unterschrift(d) = [Im Auftrag \\ (Name, Amt)]\n"}, ("unterschrift.typ", 2)),
    ({"unterschrift.typ": '#let unterschrift(d) = [#text("a//b") (Name, Amt)]\n'}, ("unterschrift.typ", 1)),
    # ... also after a blank ("Tel. // Fax"), nor a "/*" in a string (it would hide the lines up to a later "*/")
    ({"unterschrift.typ": '#let unterschrift(d) = [#let k = "Tel. 0281 200-0 // Fax 200-1"; #k (Name, Amt)]\n'},
     ("unterschrift.typ", 1)),
    ({"unterschrift.typ": '#let k = "siehe /* unten"\n#let unterschrift(d) = [#k \\ (Name, Amt)]\n/* Ende */\n'},
     ("unterschrift.typ", 2)),
    # read() prints a file as it is: what would be a comment in Typst code prints there, also from a .typ file
    ({"unterschrift.typ": '#let unterschrift(d) = [Mit freundlichen Grüßen \\ #read("sig.txt")]\n',
      "sig.txt": "Im Auftrag /* (Name, Amt) */\n"}, ("sig.txt", 1)),
    ({"unterschrift.typ": '#let unterschrift(d) = [Mit freundlichen Grüßen \\ #raw(read("zusatz.typ"))]\n',
      "zusatz.typ": "// (Name, Amt)\n"}, ("zusatz.typ", 1)),
    # a comment start inside raw text, a string over two lines, a string with an escaped backslash before its end
    ({"unterschrift.typ": "#let unterschrift(d) = [Zeichnung: ` // (Name, Amt)`]\n"}, ("unterschrift.typ", 1)),
    ({"unterschrift.typ": '#let unterschrift(d) = [#"Im Auftrag\n // (Name, Amt)"]\n'}, ("unterschrift.typ", 2)),
    ({"unterschrift.typ": '#let unterschrift(d) = [#("C:\\\\" + " // (Name, Amt)")]\n'}, ("unterschrift.typ", 1)),
])
def test_a_placeholder_is_found_as_printed_not_only_as_written(tmp_path, capsys, files, where):
    """A placeholder broken across lines, spaced twice or written with an escape prints as the placeholder: refused
    at the line where it begins, like one written plainly."""
    own = tmp_path / "eigen"
    own.mkdir()
    for name, text in files.items():
        (own / name).write_text(text, encoding="utf-8")
    assert refused_at(tmp_path, capsys, own) == [("notices-placeholder", str(own / where[0]), where[1])]
    # what the check reads is what the letter would print: a draft (of a probe run) shows the placeholder
    probe = tmp_path / "probe.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(tmp_path / "kreis-wesel.yaml"), "-o", str(probe)]) == 0
    assert main(["notices", str(probe), "-o", str(tmp_path / "entwurf"), "--date", "2022-01-10", "--ags", ALPEN,
                 "--template", str(own)]) == 0
    assert "(Name, Amt)" in text_of(tmp_path / "entwurf" / f"{ALPEN}_Alpen.pdf")


def test_a_placeholder_after_the_platzhalter_definition_is_refused(tmp_path, capsys):
    """Only the definition's own lines are exempt: a "[PLATZHALTER: …]" written at the margin after it (here in the
    signature) is refused at its line."""
    own = tmp_path / "eigen"
    own.mkdir()
    (own / "unterschrift.typ").write_text(
        '#let platzhalter(was) = box(\n  text(fill: red)[\\[PLATZHALTER: #was\\]])\n'
        "#let unterschrift(d) = [Im Auftrag \\ \\[PLATZHALTER: Name\\]]\n", encoding="utf-8")
    assert refused_at(tmp_path, capsys, own) == [("notices-placeholder", str(own / "unterschrift.typ"), 3)]


def test_what_only_looks_like_a_placeholder_as_written_goes_out(tmp_path):
    """Not refused: JSON's escape in a .typ file (Typst prints "u0028Name, Amt)", not the placeholder), and the
    default briefkopf.typ with its `platzhalter` definition wrapped over lines, as a formatter writes it (its
    "[PLATZHALTER: …]" prints only where the rule file lacks a text, and the Wesel file has them all)."""
    own = own_with(tmp_path, "briefkopf.typ",
                   '#let platzhalter(was) = box(fill: rgb("#fde8e8"), inset: 1pt, text(fill: red)[\\[PLATZHALTER: #was\\]])\n',
                   '#let platzhalter(was) = box(\n  fill: rgb("#fde8e8"),\n  inset: 1pt,\n'
                   '  text(fill: red)[\\[PLATZHALTER: #was\\]],\n)\n')
    (own / "unterschrift.typ").write_text('#import "briefkopf.typ": platzhalter\n'
                                          "#let unterschrift(d) = [Im Auftrag \\ \\u0028Name, Amt)]\n"
                                          '#let pfad = "C:\\\\" // (Name, Amt): a real comment after a string\n',
                                          encoding="utf-8")
    final, register = final_run(tmp_path, rules_with(tmp_path, remedy="klage"))
    out = tmp_path / "bescheide"
    assert notices(final, register, out, "--template", str(own)) == 0
    text = text_of(out / f"{ALPEN}_Alpen.pdf")
    assert "u0028Name, Amt)" in text and "PLATZHALTER" not in text


def test_an_own_template_reading_inputs_by_another_name_still_gets_them(tmp_path):
    """An own bescheid.typ that reaches `sys.inputs` through a name of its own (`#let s = sys`) gets the data
    there too, and its notice is the default's (the Klage text of § 81 VwGO's form, the Kreis's court)."""
    own = own_with(tmp_path, "bescheid.typ", '#let d = json("/.brief-daten.json")\n',
                   "#let s = sys\n#let d = json(bytes(s.inputs.data))\n")
    final, register = final_run(tmp_path, rules_with(tmp_path, remedy="klage"))
    texts = {}
    for name, extra in (("standard", ()), ("eigen", ("--template", str(own)))):
        assert notices(final, register, tmp_path / f"aus-{name}", *extra) == 0
        texts[name] = text_of(tmp_path / f"aus-{name}" / f"{ALPEN}_Alpen.pdf")
    assert "Die Klage ist schriftlich" in texts["eigen"] and texts["eigen"] == texts["standard"]


def test_only_what_the_template_names_counts_for_the_remedy_and_for_placeholders(tmp_path, capsys):
    """The Kreis's folder holds notes the template never compiles: `NOTIZEN.md` speaks of a Widerspruch, a
    `.git` message of the placeholder "(Name, Amt)". Under `remedy: widerspruch` the own Klage text is still
    refused (the note does not make it right); under `remedy: klage` the notice goes out (the note's placeholder
    is printed nowhere)."""
    own = tmp_path / "eigen"
    own.mkdir()
    (own / "rechtsbehelf.typ").write_text(KLAGE_ONLY, encoding="utf-8")
    (own / "NOTIZEN.md").write_text("Widerspruch statt Klage? Mit dem Rechtsamt klären.\n", encoding="utf-8")
    (own / ".git").mkdir()
    (own / ".git" / "COMMIT_EDITMSG").write_text("Platzhalter (Name, Amt) ersetzt\n", encoding="utf-8")
    final, register = final_run(tmp_path, rules_with(tmp_path, remedy="widerspruch", court=False))
    capsys.readouterr()
    assert notices(final, register, tmp_path / "widerspruch", "--template", str(own), "--json") == 2
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [(p["code"], p["location"]["file"]) for p in problems] == [("notices-placeholder",
                                                                       str(own / "rechtsbehelf.typ"))]
    (tmp_path / "klage").mkdir()
    final, register = final_run(tmp_path / "klage", rules_with(tmp_path / "klage", remedy="klage"))
    out = tmp_path / "klage" / "bescheide"
    assert notices(final, register, out, "--template", str(own)) == 0
    assert "(Name, Amt)" not in text_of(out / f"{ALPEN}_Alpen.pdf")


def test_a_placeholder_in_an_included_file_named_like_a_picture_is_refused(tmp_path, capsys):
    """Typst includes a file by what it holds, not by its name: `sig.png` holding text with the placeholder."""
    own = tmp_path / "eigen"
    own.mkdir()
    (own / "unterschrift.typ").write_text('#let unterschrift(d) = [Mit freundlichen Grüßen \\ #include "sig.png"]\n',
                                         encoding="utf-8")
    (own / "sig.png").write_text("Im Auftrag\n(Name, Amt)\n", encoding="utf-8")
    final, register = final_run(tmp_path, rules_with(tmp_path, remedy="klage"))
    capsys.readouterr()
    assert notices(final, register, tmp_path / "bescheide", "--template", str(own), "--json") == 2
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [(p["code"], p["location"]["file"], p["location"]["line"]) for p in problems] == [
        ("notices-placeholder", str(own / "sig.png"), 2)]


def test_comments_are_taken_out_line_for_line_and_an_unclosed_one_stays():
    from allocation.ops.notices import _without_comments

    assert _without_comments("a /* b\nc */ d // e\nf") == "a \n d \nf"
    assert _without_comments("x /* offen\ny") == "x /* offen\ny"  # Typst refuses it; the scan keeps it
    assert _without_comments("https://example.org") == "https://example.org"  # a URL is no comment
    assert _without_comments("/*a" * 3) == "/*a" * 3


def test_check_says_before_the_notices_that_the_installations_letterhead_file_is_faulty(tmp_path, capsys,
                                                                                        monkeypatch):
    """$ALLOCATION_LETTERHEAD names a letterhead file with the court written twice (line 4): `notices` would refuse
    it, so `check` of a rule file for notices says so as a Hinweis at that line (and still passes)."""
    head = tmp_path / "briefkopf.yaml"
    head.write_text("letterhead:\n  remedy: klage\n  court: {name: A, address: B}\n  court: {name: C, address: D}\n",
                    encoding="utf-8")
    monkeypatch.setenv("ALLOCATION_LETTERHEAD", str(head))
    capsys.readouterr()
    assert main(["check", str(rules_with(tmp_path, remedy="klage")), "--json"]) == 0
    said = [p for p in json.loads(capsys.readouterr().out)["problems"] if p["code"] == "rule-letterhead-faulty"]
    assert [(p["severity"], p["location"]["file"], p["location"]["line"]) for p in said] == [
        ("warning", str(head), 4)]
