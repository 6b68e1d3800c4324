"""Notices and Benehmen letters against hostile names, templates and umasks (issue: custom templates, CSV
injection, long names, folder modes).

The expected values are written out by hand next to each test: the neutralised CSV cells, the byte lengths of
the cut file names, the modes 0o755/0o750 of a folder made under umask 022/027.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
from openpyxl import Workbook, load_workbook

from allocation.cli import main

from allocation.core.instalments import Schedule
from allocation.ops import notices
from allocation.ops.benehmen import write_benehmen
from allocation.ops.notices import (Levy, LevyShare, ResultBook, TemplateError, _write_csv, build_notices, pdf_name,
                                    read_result)
from allocation.rulefiles.rulebook import NoticeSettings, load_notice_settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"
DATE = "2022-03-15"


def result_workbook(path: Path, municipalities: list[tuple[str, str, float]]) -> Path:
    """A result workbook of one statutory levy (sheet `Umlagen`), one row per (AGS, name, amount)."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Uebersicht"
    sheet.append(["AGS", "Gemeinde", "Umlagegrundlagen", "Kreisumlage", "Summe"])
    levies = workbook.create_sheet("Umlagen")
    levies.append(["Umlage", "AGS", "Gemeinde", "Umlagegrundlagen", "Bemessungsgrundlage", "Satz (%)", "Betrag",
                   "Nachweis", "Berechnung"])
    for ags, name, amount in municipalities:
        sheet.append([ags, name, amount * 2, amount, amount])
        levies.append(["Kreisumlage", ags, name, amount * 2, amount * 2, 50, amount, "Grundlage × 50 %",
                       "Hebesatz der Haushaltssatzung"])
    protocol = workbook.create_sheet("Protokoll")
    for row in (("Angabe", "Wert"), ("Kreis", "Landkreis Muster"), ("Haushaltsjahr", 2013), ("Laufart", "Echtlauf")):
        protocol.append(row)
    workbook.save(path)
    return path


def csv_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline=""), delimiter=";"))


# ------------------------------------------------------------------------------------- CSV formula injection


def result_book(municipalities: list[tuple[str, str, int]]) -> ResultBook:
    """A result of one statutory levy, built directly (a workbook cell could not hold a lone carriage return)."""
    shares = tuple(LevyShare("Kreisumlage", ags, name, cents) for ags, name, cents in municipalities)
    return ResultBook(Path("r.xlsx"), "Landkreis Muster", 2013, "Echtlauf", False, (),
                      tuple((ags, name) for ags, name, _ in municipalities),
                      (Levy("Kreisumlage", "kreisumlage", sum(s.amount for s in shares), statute=True),), shares)


def test_csv_neutralises_a_hostile_gemeinde_name_and_kassenzeichen(tmp_path):
    hostile_names = ['=HYPERLINK("http://x.example/?"&A1;"Klick")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
                     "\tTab", "\rCR", "Musterstadt"]
    result = result_book([(f"1307600{n}", name, 120_000) for n, name in enumerate(hostile_names, start=1)])
    hostile = NoticeSettings(Schedule.quarterly(), kassenzeichen="=1+{nr}-{ags}")
    notices = build_notices(result, hostile, dt.date(2013, 2, 1))
    _write_csv([row for _, _, rows in notices for row in rows], tmp_path / "Abschlaege.csv")
    rows = csv_rows(tmp_path / "Abschlaege.csv")
    names = [row[1] for row in rows[1::4]]  # four instalments per municipality
    assert names == ['\'=HYPERLINK("http://x.example/?"&A1;"Klick")', "'+cmd|' /C calc'!A0", "'-2+3", "'@SUM(A1)",
                     "'\tTab", "'\rCR", "Musterstadt"]
    # 1.200,00 € quarterly: 300,00 € each; the Kassenzeichen "=1+1-13076001" gets the apostrophe
    assert rows[1] == ["13076001", names[0], "Kreisumlage", "1", "15.02.2013", "300,00", "'=1+1-13076001",
                       "Erstbescheid", "", "", ""]
    assert all(row[6].startswith("'=1+") for row in rows[1:])


def test_csv_neutralises_a_hostile_levy_name(tmp_path):
    result = result_book([("13076001", "Musterstadt", 120_000)])
    result = ResultBook(result.path, result.district, result.year, result.run_mode, False, (), result.municipalities,
                        (Levy("@Umlage", "umlage", 120_000),), (LevyShare("@Umlage", "13076001", "Musterstadt", 120_000),))
    notices = build_notices(result, NoticeSettings(Schedule.quarterly()), dt.date(2013, 2, 1))
    _write_csv(notices[0][2], tmp_path / "Abschlaege.csv")
    assert [row[2] for row in csv_rows(tmp_path / "Abschlaege.csv")[1:]] == ["'@Umlage"] * 4


def test_csv_keeps_the_sign_of_negative_amounts(tmp_path):
    """A change notice lowering the levy: `Aenderung` is negative and stays a number (-300,00), not text."""
    old = read_result(result_workbook(tmp_path / "alt.xlsx", [("13076001", "Musterstadt", 1200.00)]))
    new = read_result(result_workbook(tmp_path / "neu.xlsx", [("13076001", "Musterstadt", 0.00)]))
    settings = NoticeSettings(Schedule.quarterly(), change_policy="spread")
    notices = build_notices(new, settings, dt.date(2013, 1, 10), previous=old)
    _write_csv([row for _, _, rows in notices for row in rows], tmp_path / "Abschlaege.csv")
    rows = csv_rows(tmp_path / "Abschlaege.csv")
    # 10.01.: nothing due yet, the four instalments of 300,00 € drop to 0,00 € each
    assert [row[5] for row in rows[1:]] == ["0,00"] * 4
    assert [row[8:] for row in rows[1:]] == [["300,00", "-300,00", "offen"]] * 4


def test_a_kassenzeichen_pattern_beginning_with_equals_passes_the_rule_file_check(tmp_path):
    """The pattern is the rule file's: nothing there stops `=`, so the CSV has to."""
    path = tmp_path / "r.yaml"
    path.write_text(RULES.read_text(encoding="utf-8").replace('kassenzeichen: "KU-{jahr}-{ags}-{umlage}"',
                                                              'kassenzeichen: "=KU-{jahr}-{ags}-{umlage}"'),
                    encoding="utf-8")
    assert load_notice_settings(path).kassenzeichen == "=KU-{jahr}-{ags}-{umlage}"


# ------------------------------------------------------------------------------------ long names, cut by bytes

LONG_300 = "Ä" * 150  # 300 bytes in UTF-8; its ASCII slug "AeAe…" is 300 characters
LONG_240 = "Ü" * 120  # 240 bytes; slug "UeUe…", 240 characters


@pytest.fixture(scope="module")
def long_names(tmp_path_factory):
    """The Wesel fixture with Alpen renamed to a 300-byte and Dinslaken to a 240-byte name: run, notices, Benehmen."""
    folder = tmp_path_factory.mktemp("lang")
    workbook = load_workbook(FIXTURE)
    for row in workbook["Gemeinden"].iter_rows(min_row=2):
        row[1].value = {"05170004": LONG_300, "05170008": LONG_240}.get(row[0].value, row[1].value)
    workbook.save(folder / "lang.xlsx")
    rules = folder / "kreis-wesel.yaml"
    shutil.copyfile(RULES, rules)
    assert main(["run", str(folder / "lang.xlsx"), "--rules", str(rules), "-o", str(folder / "ergebnis.xlsx")]) == 0
    assert main(["notices", str(folder / "ergebnis.xlsx"), "-o", str(folder / "bescheide"), "--date", DATE]) == 0
    _previous_year(folder / "lang.xlsx", rules, folder / "vorjahr.xlsx")
    assert main(["benehmen", str(folder / "lang.xlsx"), "--rules", str(rules), "--previous",
                 str(folder / "vorjahr.xlsx"), "-o", str(folder / "benehmen"), "--date", "2022-01-17"]) == 0
    return folder


def test_pdf_names_fit_255_bytes_with_the_ags_and_the_ending_kept():
    # "05170004_" (9 bytes) + name + ".pdf" (4): 242 bytes left for the name → 121 × "Ae"
    assert pdf_name("05170004", LONG_300) == "05170004_" + "Ae" * 121 + ".pdf"
    # the 240-byte name fits whole: 9 + 240 + 4 = 253 bytes
    assert pdf_name("05170004", LONG_240) == "05170004_" + "Ue" * 120 + ".pdf"
    # "_Aenderung.pdf" (14 bytes): 232 left → 116 × "Ue" (the old name was 263 bytes)
    assert pdf_name("05170004", LONG_240, change=True) == "05170004_" + "Ue" * 116 + "_Aenderung.pdf"
    # "_Benehmen.pdf" (13 bytes): 233 left → 116 × "Ue" and one "U"
    assert pdf_name("05170004", LONG_240, kind="_Benehmen") == "05170004_" + "Ue" * 116 + "U_Benehmen.pdf"
    for name in (LONG_300, LONG_240):
        for change in (False, True):
            assert len(pdf_name("05170004", name, change).encode()) <= 255
    # a cut never ends in the word separator, and short names are as before
    assert pdf_name("05170004", "A" * 241 + " Süd") == "05170004_" + "A" * 241 + ".pdf"
    assert pdf_name("05170004", "Voerde (Niederrhein)", kind="_Benehmen") == "05170004_Voerde-Niederrhein_Benehmen.pdf"


def test_cut_names_stay_unique_by_their_ags():
    """Two municipalities whose names differ only after the cut: the AGS in front keeps the files apart."""
    first, second = pdf_name("05170004", LONG_300 + " Nord"), pdf_name("05170008", LONG_300 + " Süd")
    assert first != second and first[9:] == second[9:]


def test_notices_for_300_and_240_byte_names(long_names):
    names = sorted(p.name for p in (long_names / "bescheide").glob("*.pdf"))
    assert len(names) == 13
    assert "05170004_" + "Ae" * 121 + ".pdf" in names and "05170008_" + "Ue" * 120 + ".pdf" in names
    rows = csv_rows(long_names / "bescheide" / "Abschlaege.csv")
    assert {row[1] for row in rows[1:] if row[0] in ("05170004", "05170008")} == {LONG_300, LONG_240}


def test_benehmen_letters_for_300_and_240_byte_names(long_names):
    names = sorted(p.name for p in (long_names / "benehmen").glob("*.pdf"))
    assert len(names) == 13
    # "_Benehmen.pdf": 233 bytes for the name → 116 × "Ae" and one "A"; 116 × "Ue" and one "U"
    assert "05170004_" + "Ae" * 116 + "A_Benehmen.pdf" in names
    assert "05170008_" + "Ue" * 116 + "U_Benehmen.pdf" in names


# ------------------------------------------------------------------------------------------- folder modes


@pytest.fixture(scope="module")
def wesel(tmp_path_factory):
    """One Probelauf of the Wesel fixture (for notices with other umasks and templates)."""
    folder = tmp_path_factory.mktemp("wesel")
    rules = folder / "kreis-wesel.yaml"
    shutil.copyfile(RULES, rules)
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(folder / "ergebnis.xlsx")]) == 0
    _previous_year(FIXTURE, rules, folder / "vorjahr.xlsx")
    return folder


def _previous_year(source: Path, rules: Path, output: Path) -> Path:
    """A Probelauf of `source` as the budget year before (2021): what `benehmen --previous` needs."""
    workbook = load_workbook(source)
    (row,) = [r for r in workbook["Parameter"].iter_rows() if r[0].value == "Haushaltsjahr"]
    row[1].value = 2021
    earlier = output.with_name(f"{output.stem}-eingabe.xlsx")
    workbook.save(earlier)
    assert main(["run", str(earlier), "--rules", str(rules), "-o", str(output),
                 "--ignore-validity", "Vorjahr für den Test"]) == 0
    return output


@pytest.fixture
def umask():
    """Set the process's umask for one test; the old one comes back afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def modes(folder: Path) -> tuple[int, set[int]]:
    return stat.S_IMODE(folder.stat().st_mode), {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


@pytest.mark.parametrize(("mask", "folder_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_notices_folder_and_files_follow_the_umask(wesel, tmp_path, umask, mask, folder_mode, file_mode):
    umask(mask)
    assert main(["notices", str(wesel / "ergebnis.xlsx"), "-o", str(tmp_path / "neu" / "bescheide"),
                 "--date", DATE]) == 0
    assert modes(tmp_path / "neu" / "bescheide") == (folder_mode, {file_mode})
    assert stat.S_IMODE((tmp_path / "neu").stat().st_mode) == folder_mode


@pytest.mark.parametrize(("mask", "folder_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_benehmen_folder_and_files_follow_the_umask(wesel, tmp_path, umask, mask, folder_mode, file_mode):
    umask(mask)
    assert main(["benehmen", str(FIXTURE), "--rules", str(wesel / "kreis-wesel.yaml"), "--previous",
                 str(wesel / "vorjahr.xlsx"), "-o", str(tmp_path / "neu" / "benehmen"), "--date", "2022-01-17"]) == 0
    assert modes(tmp_path / "neu" / "benehmen") == (folder_mode, {file_mode})


# ------------------------------------------------------------------------------- templates within bounds

LOOP = """#for i in range(1000000) { for j in range(1000000) { } }
#let briefkopf(d) = []
#let anschrift(d) = []
"""
GROWING_ARRAY = """#let a = ()
#for i in range(1000000000000) { a.push(i) }
#let briefkopf(d) = []
#let anschrift(d) = []
"""
GROWING_STRING = """#let s = "x"
#for i in range(100) { s = s + s }
#let briefkopf(d) = [#s]
#let anschrift(d) = []
"""
LIMITS = ["--template-seconds", "5", "--template-memory-mb", "300"]


def template_with(folder: Path, text: str) -> Path:
    """A template folder whose letterhead (used by the notices and the Benehmen letters) is `text`."""
    folder.mkdir()
    (folder / "briefkopf.typ").write_text(text, encoding="utf-8")
    return folder


def children_of(pid: int) -> list[int]:
    """Compile children started for process `pid` (typst_child gets its parent's id), running or not reaped."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(arg.endswith(b"typst_child.py") for arg in argv) and str(pid).encode() in argv:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize(("text", "said"), [
    (LOOP, "nach 5 s abgebrochen"),
    (GROWING_ARRAY, "braucht mehr als 300 MB Arbeitsspeicher"),
    (GROWING_STRING, "braucht mehr als 300 MB Arbeitsspeicher")], ids=["loop", "growing-array", "growing-string"])
def test_a_template_without_end_stops_at_its_limit_and_writes_nothing(wesel, tmp_path, text, said):
    template = template_with(tmp_path / "vorlage", text)
    process = subprocess.Popen([sys.executable, "-m", "allocation", "notices", str(wesel / "ergebnis.xlsx"), "-o",
                                str(tmp_path / "out"), "--date", DATE, "--template", str(template), *LIMITS],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = process.communicate(timeout=120)  # only proves that it stops
    assert process.returncode == 2, err
    assert "[notices-template-limit]" in err and said in err
    assert f"{template}: die Bescheid-Vorlage" in err  # located at the template folder
    assert "05170004_Alpen.pdf (Dokument 1 von 13)" in err
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vorlage"]  # no temporary folder left
    assert children_of(process.pid) == []


def test_benehmen_letters_stop_at_the_time_limit_too(wesel, tmp_path):
    template = template_with(tmp_path / "vorlage", LOOP)
    with pytest.raises(TemplateError) as error:
        write_benehmen(FIXTURE, wesel / "kreis-wesel.yaml", wesel / "vorjahr.xlsx", tmp_path / "out",
                       template=template, template_seconds=5, template_memory_mb=300)
    [problem] = error.value.problems
    assert problem.code == "notices-template-limit" and problem.location.file == str(template)
    assert problem.found == "05170004_Alpen_Benehmen.pdf (Dokument 1 von 13): nach 5 s nicht fertig"
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vorlage"]
    assert children_of(os.getpid()) == []


def test_benehmen_letters_stop_at_the_memory_limit(wesel, tmp_path):
    template = template_with(tmp_path / "vorlage", GROWING_ARRAY)
    with pytest.raises(TemplateError) as error:
        write_benehmen(FIXTURE, wesel / "kreis-wesel.yaml", wesel / "vorjahr.xlsx", tmp_path / "out",
                       template=template, template_seconds=5, template_memory_mb=300)
    assert [(p.code, p.message) for p in error.value.problems] == [
        ("notices-template-limit", "die Bescheid-Vorlage braucht mehr als 300 MB Arbeitsspeicher")]
    assert not (tmp_path / "out").exists()
    assert children_of(os.getpid()) == []


def test_the_default_template_compiles_within_the_lowered_limits(wesel, tmp_path):
    """The limits of the tests above stop the hostile templates, not the ordinary one."""
    assert main(["notices", str(wesel / "ergebnis.xlsx"), "-o", str(tmp_path / "out"), "--date", DATE, *LIMITS]) == 0
    assert len(list((tmp_path / "out").glob("*.pdf"))) == 13


def test_killing_the_command_kills_its_compile(wesel, tmp_path):
    """The command dies (SIGKILL, no clean-up of its own): the compile of a looping template ends with it."""
    template = template_with(tmp_path / "vorlage", LOOP)
    process = subprocess.Popen([sys.executable, "-m", "allocation", "notices", str(wesel / "ergebnis.xlsx"), "-o",
                                str(tmp_path / "out"), "--date", DATE, "--template", str(template)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):  # wait (up to 60 s) until the compile runs
            if children_of(process.pid):
                break
            time.sleep(0.1)
        child = children_of(process.pid)
        assert child, "no compile started"
    finally:
        process.kill()
        process.wait()
    for _ in range(100):  # the kernel ends the orphan (PR_SET_PDEATHSIG); up to 10 s only proves it ended
        if not children_of(process.pid):
            break
        time.sleep(0.1)
    assert children_of(process.pid) == []


def test_each_document_gets_the_whole_time_budget(tmp_path, monkeypatch):
    """Ten documents of 0.3 s each with 2 s per document: 3 s in all pass (a budget for all would not)."""
    fake = tmp_path / "child.py"
    fake.write_text("import json, sys, time\n"
                    "job = json.loads(sys.stdin.read())\n"
                    "print(json.dumps({'ready': True}), flush=True)\n"
                    "for i, (path, data) in enumerate(job['documents']):\n"
                    "    time.sleep(0.3)\n"
                    "    open(path, 'wb').write(data.encode())\n"
                    "    print(json.dumps({'done': i}), flush=True)\n", encoding="utf-8")
    monkeypatch.setattr(notices, "_CHILD", fake)
    documents = [(f"{n:08d}_Gemeinde.pdf", {"n": n}, []) for n in range(10)]
    notices.render(documents, tmp_path, template_seconds=2)
    assert sorted(p.name for p in tmp_path.glob("*.pdf")) == [name for name, _, _ in documents]


@pytest.mark.parametrize("seconds, memory", [(0, 1024), (3601, 1024), (30, 255), (30, 65537)])
def test_limits_outside_their_range_are_usage_errors(wesel, tmp_path, seconds, memory):
    with pytest.raises(SystemExit) as stop:
        main(["notices", str(wesel / "ergebnis.xlsx"), "-o", str(tmp_path / "out"), "--template-seconds", str(seconds),
              "--template-memory-mb", str(memory)])
    assert stop.value.code == 2
    with pytest.raises(TemplateError) as error:
        notices.write_notices(wesel / "ergebnis.xlsx", tmp_path / "out", template_seconds=seconds,
                              template_memory_mb=memory)
    assert {p.code for p in error.value.problems} == {"notices-template-limit"}
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------- the template folder, copied safely


def refused(capsys, argv: list[str], code: int) -> list[dict]:
    """Run the command with --json; its exit code must be `code`; the problems it reports."""
    assert main([*argv, "--json"]) == code
    return json.loads(capsys.readouterr().out)["problems"]


def notices_argv(wesel: Path, out: Path, template: Path) -> list[str]:
    return ["notices", str(wesel / "ergebnis.xlsx"), "-o", str(out), "--date", DATE, "--template", str(template)]


def test_a_symbolic_link_in_the_template_is_refused_at_the_link(wesel, tmp_path, capsys):
    """A link to a file outside (here a secret) would put it into the template's reach: #read("geheim.txt")."""
    secret = tmp_path / "geheim.txt"
    secret.write_text("Passwort", encoding="utf-8")
    template = tmp_path / "vorlage"
    (template / "bilder").mkdir(parents=True)
    (template / "geheim.txt").symlink_to(secret)
    (template / "bilder" / "etc").symlink_to("/etc")
    problems = refused(capsys, notices_argv(wesel, tmp_path / "out", template), 2)
    assert sorted((p["code"], p["location"]["file"], p["found"]) for p in problems) == [
        ("notices-template-file", str(template / "bilder" / "etc"), "eine symbolische Verknüpfung"),
        ("notices-template-file", str(template / "geheim.txt"), "eine symbolische Verknüpfung")]
    assert not (tmp_path / "out").exists()


def test_a_fifo_in_the_template_is_refused_without_opening_it(wesel, tmp_path, capsys):
    template = tmp_path / "vorlage"
    template.mkdir()
    os.mkfifo(template / "rechtsbehelf.typ")  # opening it for reading would wait for a writer for ever
    problems = refused(capsys, notices_argv(wesel, tmp_path / "out", template), 2)
    assert [(p["code"], p["location"]["file"], p["found"]) for p in problems] == [
        ("notices-template-file", str(template / "rechtsbehelf.typ"), "eine benannte Pipe (FIFO)")]


def test_a_socket_in_the_template_is_refused(wesel, tmp_path, capsys):
    template = tmp_path / "vorlage"
    template.mkdir()
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(template / "s"))
        problems = refused(capsys, notices_argv(wesel, tmp_path / "out", template), 2)
    finally:
        server.close()
    assert [(p["code"], p["found"]) for p in problems] == [("notices-template-file", "ein Socket")]


def sparse(path: Path, size: int) -> None:
    """A file of `size` bytes that takes no disk space (nothing of it is read: the size alone refuses it)."""
    with open(path, "wb") as handle:
        handle.truncate(size)


def test_template_size_bounds(wesel, tmp_path, capsys):
    template = tmp_path / "vorlage"
    (template / "fonts").mkdir(parents=True)
    sparse(template / "fonts" / "gross.otf", 50 * 2**20 + 1)  # one byte over 50 MB
    problems = refused(capsys, notices_argv(wesel, tmp_path / "out", template), 2)
    assert [(p["code"], p["location"]["file"], p["found"]) for p in problems] == [
        ("notices-template-too-large", str(template / "fonts" / "gross.otf"), "52.428.801 Bytes")]
    (template / "fonts" / "gross.otf").unlink()
    for n in range(5):  # 5 × 45 MB = 225 MB (235.929.600 bytes) and the default's few KB: over 200 MB in all
        sparse(template / "fonts" / f"schrift-{n}.otf", 45 * 2**20)
    problems = refused(capsys, notices_argv(wesel, tmp_path / "out", template), 2)
    assert [p["code"] for p in problems] == ["notices-template-too-large"]
    assert problems[0]["message"] == "die Vorlage ist insgesamt zu groß"
    assert not (tmp_path / "out").exists()


def test_template_with_more_than_1000_entries_is_refused(wesel, tmp_path, capsys):
    template = tmp_path / "vorlage"
    template.mkdir()
    for n in range(1001):
        (template / f"{n:04d}.typ").touch()
    problems = refused(capsys, notices_argv(wesel, tmp_path / "out", template), 2)
    assert [(p["code"], p["found"]) for p in problems] == [("notices-template-too-large", "mehr als 1000")]


def test_template_with_1000_entries_is_accepted(wesel, tmp_path):
    template = tmp_path / "vorlage"
    (template / "teile").mkdir(parents=True)
    for n in range(999):  # 999 files and their folder
        (template / "teile" / f"{n:04d}.typ").touch()
    assert main(notices_argv(wesel, tmp_path / "out", template)) == 0


@pytest.mark.parametrize("inside", [".", "bescheide", "a/b"])
def test_notices_into_the_template_folder_are_refused_before_anything_is_read(wesel, tmp_path, capsys, inside):
    template = tmp_path / "vorlage"
    template.mkdir()
    (template / "rechtsbehelf.typ").write_text("#let rechtsbehelf(d) = []\n", encoding="utf-8")
    out = template / inside
    missing = tmp_path / "fehlt.xlsx"  # not even the result workbook is looked at
    problems = refused(capsys, ["notices", str(missing), "-o", str(out), "--template", str(template)], 8)
    assert [(p["code"], p["location"]["file"]) for p in problems] == [("notices-output-in-template", str(out))]
    assert sorted(p.name for p in template.iterdir()) == ["rechtsbehelf.typ"]


def test_benehmen_into_the_template_folder_is_refused(wesel, tmp_path, capsys):
    template = tmp_path / "vorlage"
    template.mkdir()
    problems = refused(capsys, ["benehmen", str(FIXTURE), "--rules", str(wesel / "kreis-wesel.yaml"), "--previous",
                                str(wesel / "vorjahr.xlsx"), "-o", str(template / "benehmen"), "--template",
                                str(template)], 8)
    assert [p["code"] for p in problems] == ["notices-output-in-template"]
    assert list(template.iterdir()) == []


def test_benehmen_refuses_a_symbolic_link_in_its_template(wesel, tmp_path, capsys):
    template = tmp_path / "vorlage"
    template.mkdir()
    (template / "benehmen.typ").symlink_to(ROOT / "allocation" / "ops" / "notice_templates" / "benehmen" / "benehmen.typ")
    problems = refused(capsys, ["benehmen", str(FIXTURE), "--rules", str(wesel / "kreis-wesel.yaml"), "--previous",
                                str(wesel / "vorjahr.xlsx"), "-o", str(tmp_path / "out"), "--template",
                                str(template)], 2)
    assert [(p["code"], p["location"]["file"]) for p in problems] == [
        ("notices-template-file", str(template / "benehmen.typ"))]
    assert not (tmp_path / "out").exists()


def test_a_missing_benehmen_template_is_a_located_problem(wesel, tmp_path, capsys):
    problems = refused(capsys, ["benehmen", str(FIXTURE), "--rules", str(wesel / "kreis-wesel.yaml"), "--previous",
                                str(wesel / "vorjahr.xlsx"), "-o", str(tmp_path / "out"), "--template",
                                str(tmp_path / "fehlt")], 2)
    assert [(p["code"], p["location"]["file"]) for p in problems] == [("notices-bad-template", str(tmp_path / "fehlt"))]
    assert problems[0]["message"].endswith("der Vorlagen-Ordner fehlt")


def test_a_template_that_is_a_file_is_named_as_what_it_is(wesel, tmp_path, capsys):
    template = tmp_path / "vorlage.typ"
    template.write_text("#let briefkopf(d) = []\n", encoding="utf-8")
    problems = refused(capsys, notices_argv(wesel, tmp_path / "out", template), 2)
    assert [(p["code"], p["found"]) for p in problems] == [
        ("notices-bad-template", f"{template}: eine gewöhnliche Datei")]
    assert "kein Ordner" in problems[0]["message"] and not (tmp_path / "out").exists()


def test_a_file_swapped_for_a_link_after_the_check_is_not_followed(tmp_path):
    """Between the walk and the copy a file becomes a link: the copy opens without following it."""
    template = tmp_path / "vorlage"
    template.mkdir()
    (template / "logo.png").write_bytes(b"png")
    (template / "bilder").mkdir()
    (template / "bilder" / "siegel.png").write_bytes(b"png")
    files = notices._template_files([template])
    (template / "logo.png").unlink()
    (template / "logo.png").symlink_to("/etc/hostname")
    (template / "bilder").rename(template / "alt")
    (template / "bilder").symlink_to(template / "alt")  # a folder swapped for a link to one with the same file
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(TemplateError) as error:
        with mock.patch.object(notices, "_template_files", return_value=files):
            notices._copy_template([template], work)
    assert sorted((p.code, p.location.file) for p in error.value.problems) == [
        ("notices-template-file", str(template / "bilder" / "siegel.png")),
        ("notices-template-file", str(template / "logo.png"))]
    assert list(work.rglob("*.png")) == []


def test_a_template_that_imports_a_package_fetches_nothing_and_is_a_located_error(wesel, tmp_path, capsys):
    # Typst downloads `@preview` packages from the internet; the compiling child has no network (a closed proxy)
    # and empty package folders, so the import fails at once, located, and nothing is written
    template = tmp_path / "vorlage"
    template.mkdir()
    (template / "rechtsbehelf.typ").write_text('#import "@preview/example:0.1.0": *\n', encoding="utf-8")
    problems = refused(capsys, ["notices", str(wesel / "ergebnis.xlsx"), "-o", str(tmp_path / "out"), "--template",
                                str(template), "--date", DATE], 2)
    assert [p["code"] for p in problems] == ["notices-bad-template"]
    assert "Connection refused" in problems[0]["found"]  # the closed proxy: no name was even looked up
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ a folder output where no folder can be

def _no_folder(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """(the path given with -o or as ORDNER, the entry a refusal names) for each kind of place no folder can be."""
    other = tmp_path / "fremde-datei.txt"
    other.write_text("bleibt\n", encoding="utf-8")
    place = tmp_path / "ziel"
    if kind == "file":
        place.write_text("bleibt\n", encoding="utf-8")
    elif kind == "fifo":
        os.mkfifo(place)
    elif kind == "dangling link":
        place.symlink_to(tmp_path / "nirgends")
    elif kind == "link to a file":
        place.symlink_to(other)
    else:  # a folder below a file
        place.write_text("bleibt\n", encoding="utf-8")
        return place / "unter", place
    return place, place


FOLDER_COMMANDS = {
    "notices": lambda wesel, out: ["notices", str(wesel / "ergebnis.xlsx"), "-o", str(out), "--date", DATE],
    "benehmen": lambda wesel, out: ["benehmen", str(FIXTURE), "--rules", str(wesel / "kreis-wesel.yaml"), "--previous",
                                    str(wesel / "vorjahr.xlsx"), "-o", str(out), "--date", "2022-01-17"],
    "year init": lambda wesel, out: ["year", "init", str(out), "--district", "Kreis Wesel", "--year", "2022"],
}
# what a refusal says is there (lstat: a link is named as one, wherever it leads)
THERE = {"file": "eine gewöhnliche Datei", "fifo": "eine benannte Pipe (FIFO)",
         "dangling link": "eine symbolische Verknüpfung", "link to a file": "eine symbolische Verknüpfung",
         "below a file": "eine gewöhnliche Datei"}


@pytest.mark.parametrize("kind", list(THERE))
@pytest.mark.parametrize("command", list(FOLDER_COMMANDS))
def test_a_folder_output_where_no_folder_can_be_is_refused_and_nothing_changes(wesel, tmp_path, capsys, command,
                                                                                kind):
    """notices, benehmen and year init write a folder of files: a file, a FIFO, a link (to a file or to nothing)
    under that name, or a file where a folder of its path belongs, was a traceback (exit 1) after the letters
    were rendered. Now exit 9 before anything is read, named with what is there."""
    given, named = _no_folder(tmp_path, kind)
    before = sorted(p.name for p in tmp_path.iterdir())
    [problem] = refused(capsys, FOLDER_COMMANDS[command](wesel, given), 9)
    assert problem["code"] == "output-unusable" and problem["location"]["file"] == str(given)
    assert f"{named} ist {THERE[kind]}, kein Ordner" in problem["message"] if kind == "below a file" else \
        f"unter diesem Namen liegt {THERE[kind]}, kein Ordner" in problem["message"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "fremde-datei.txt").read_text(encoding="utf-8") == "bleibt\n"
    assert not (tmp_path / "nirgends").exists()
