"""Stopped from outside: `kill`, systemd's stop or its timeout send SIGTERM. The process still ends by SIGTERM (the
same exit status as before, 143 in the shell), but the letters' temporary folder goes with it, and once the files
move into place they all move (issue 22, "never leave a half-written" output). `signals.held` and
`signals.clean_stop` do it; a handler of the caller's own (inbox, serve) stays in force.

Each case runs the command in its own process (SIGTERM's default action ends a process, pytest's too).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("typst", reason="notices need typst: pip install -e '.[test]'")

from allocation.cli import main  # noqa: E402
from allocation.core.signals import Terminated, clean_stop, held  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"
ALPEN = "05170004"


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lauf")
    output = folder / "probe.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(RULES), "-o", str(output)]) == 0
    return output


def command(*args: str, patch: str = "", temp: Path | None = None) -> subprocess.Popen:
    """`allocation` with `args` in a process of its own; `patch`: Python run before (to stop it at a chosen
    point); `temp`: its TMPDIR."""
    script = "import sys\n" + textwrap.dedent(patch) + "\nfrom allocation.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, **({"TMPDIR": str(temp)} if temp else {})})


def sigterm_at(module: str, function: str, *, then_call: bool = True, signals: tuple[str, ...] = ("SIGTERM",),
               when: str = "True", after: bool = False) -> str:
    """A `patch` for `command`: `signals` (SIGTERM) to the process itself as `module.function` is called (where the
    Python expression `when` on its `args` and `kwargs` holds); the function then runs (the signal is held or
    acted on, as the code in force decides) or, with `then_call=False`, not; `after`: the signals come just after
    it has run, before its caller has its result."""
    return f"""
        def _install():  # a scope of its own: patches can be joined
            import functools, importlib, os, signal
            *path, name = {function!r}.split(".")
            owner = functools.reduce(getattr, path, importlib.import_module({module!r}))
            first = getattr(owner, name)
            def stopped(*args, **kwargs):
                if not ({when}):
                    return first(*args, **kwargs)
                result = first(*args, **kwargs) if {after} else None
                for number in {signals!r}:
                    os.kill(os.getpid(), getattr(signal, number))
                return result if {after} else first(*args, **kwargs) if {then_call} else None
            setattr(owner, name, stopped)
        _install()
    """


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def test_sigterm_while_the_letters_compile_leaves_no_temporary_folder(probe, tmp_path):
    """SIGTERM while Typst compiles (a template that takes seconds): the process ends by SIGTERM, the temporary
    folder beside `-o` (with the compile's work folder and data file) is gone, `-o` was never made."""
    slow = tmp_path / "langsam"
    slow.mkdir()
    (slow / "bescheid.typ").write_text('#let d = json("/.brief-daten.json")\n#let n = 0\n'
                                       "#for a in range(6000) { for b in range(6000) { n += 1 } }\n#n\n",
                                       encoding="utf-8")
    out = tmp_path / "aus" / "bescheide"
    process = command("notices", str(probe), "-o", str(out), "--date", "2022-01-10", "--ags", ALPEN,
                      "--template", str(slow), "--template-seconds", "120")
    try:
        deadline = time.monotonic() + 120
        while not any((folder / ".template").is_dir() for folder in out.parent.glob(".bescheide.*")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # the child is compiling
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGTERM  # ended by the signal, as before
    assert leftovers(out.parent) == [] and not out.exists()


def test_sigterm_while_the_files_move_into_place_moves_them_all(probe, tmp_path):
    """SIGTERM as the first file moves into an existing `-o` (file by file there): it is held until every file has
    moved, then the process ends by SIGTERM; nothing stays in the temporary folder."""
    out = tmp_path / "bescheide"
    out.mkdir()
    process = command("notices", str(probe), "-o", str(out), "--date", "2022-01-10", "--ags", ALPEN,
                      patch=sigterm_at("allocation.ops.notices", "move_into"))
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGTERM
    # one notice and the three lists: Abschlaege.xlsx, Abschlaege.csv, Sollstellung.csv
    assert sorted(path.name for path in out.iterdir()) == sorted(
        [f"{ALPEN}_Alpen.pdf", "Abschlaege.csv", "Abschlaege.xlsx", "Sollstellung.csv"])
    assert leftovers(tmp_path) == []


def test_sigterm_while_the_benehmen_letters_are_written_leaves_no_temporary_folder(tmp_path):
    """The Benehmen letters' temporary folder goes too (SIGTERM once the letters are compiled, before their
    workbook is written): ended by SIGTERM, no `.benehmen-*` left, `-o` not made."""
    from test_letters_golden import RATES, edited

    last_year = tmp_path / "ergebnis-2022-saetze.xlsx"
    assert main(["run", str(RATES), "--rules", str(RULES), "-o", str(last_year)]) == 0
    planned = edited(RATES, tmp_path / "plan-2023.xlsx", year=2023, alpen_base=28_000_000, kreisumlage=36.7)
    out = tmp_path / "benehmen"
    process = command("benehmen", str(planned), "--rules", str(RULES), "--previous", str(last_year), "-o", str(out),
                      "--date", "2022-09-01", "--deadline", "2022-10-15",
                      patch=sigterm_at("allocation.ops.benehmen", "_write_workbook", then_call=False))
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGTERM
    assert [name for name in leftovers(tmp_path) if name.startswith(".benehmen-")] == [] and not out.exists()


def test_sigterm_during_a_final_runs_register_entry_ends_the_process_after_it(tmp_path):
    """SIGTERM as the register entry is being committed: the entry is completed first (the run is in force, its
    workbook and manifest stay, the entry names the workbook's SHA-256), then the process ends by SIGTERM."""
    import hashlib
    import json

    register, output = tmp_path / "register", tmp_path / "final.xlsx"
    process = command("run", str(FIXTURE), "--rules", str(RULES), "-o", str(output), "--mode", "final",
                      "--register", str(register), patch=sigterm_at("allocation.runs.register", "commit"))
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGTERM
    lines = (register / "wesel-2022.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["output_sha256"] == hashlib.sha256(output.read_bytes()).hexdigest()
    assert Path(f"{output}.manifest.json").exists()
    assert main(["register", "status", "--register", str(register)]) == 0


@pytest.mark.parametrize("case", ["made", "removed"])
def test_sigterm_while_the_temporary_folder_is_made_or_removed_leaves_nothing(probe, tmp_path, case):
    """SIGTERM just after the temporary folder is made (mkdtemp has made it, its caller not yet its name), and as it
    is removed after a template failed on a letter (rmtree with PDFs in it): both are held until the folder is
    known or gone, then the process ends by SIGTERM; nothing stays beside `-o`."""
    failing = tmp_path / "kaputt"
    failing.mkdir()
    (failing / "bescheid.typ").write_text('#let d = json("/.brief-daten.json")\n'
                                          '#if d.ags != "05170004" { panic("kaputt") }\nHallo\n', encoding="utf-8")
    made = "str(kwargs.get('prefix', args[0] if args else '')).startswith('.bescheide.')"
    folder = "os.path.basename(str(args[0])).startswith('.bescheide.')"  # the folder itself, not its .template
    patch, extra = {"made": (sigterm_at("tempfile", "mkdtemp", when=made, after=True), ()),
                    "removed": (sigterm_at("shutil", "rmtree", when=folder), ("--template", str(failing)))}[case]
    place = tmp_path / case
    place.mkdir()
    process = command("notices", str(probe), "-o", str(place / "bescheide"), "--date", "2022-01-10", *extra,
                      patch=patch)
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGTERM
    assert sorted(path.name for path in place.iterdir()) == []


def test_sigterm_before_a_final_runs_register_entry_takes_its_outputs_back(tmp_path):
    """SIGTERM as the register entry is prepared (the workbook written, no entry yet): the workbook and its
    manifest are taken back as on Ctrl-C, no entry is written, the process ends by SIGTERM, and the same run with
    the same `-o` then goes through."""
    register, output = tmp_path / "register", tmp_path / "final.xlsx"
    args = ("run", str(FIXTURE), "--rules", str(RULES), "-o", str(output), "--mode", "final", "--register",
            str(register))
    process = command(*args, patch=sigterm_at("allocation.runs.register", "prepare"))
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGTERM
    assert sorted(path.name for path in tmp_path.iterdir() if path.name != "register") == []
    journal = register / "wesel-2022.jsonl"
    assert not journal.exists() or journal.read_text(encoding="utf-8") == ""
    assert main(list(args)) == 0


def test_sigterm_after_ctrl_c_while_files_move_still_ends_by_sigterm(probe, tmp_path):
    """Ctrl-C and then SIGTERM while the files move into `-o`: both are held, all files move, and SIGTERM (the
    stronger) is passed on first: the process ends by it, not with Ctrl-C's 130."""
    out = tmp_path / "bescheide"
    out.mkdir()
    process = command("notices", str(probe), "-o", str(out), "--date", "2022-01-10", "--ags", ALPEN,
                      patch=sigterm_at("allocation.ops.notices", "move_into", signals=("SIGINT", "SIGTERM")))
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGTERM
    assert len(list(out.iterdir())) == 4 and leftovers(tmp_path) == []


def test_a_terminated_that_reaches_the_command_line_ends_the_process_by_sigterm(probe, tmp_path):
    """A `Terminated` that escapes its block (SIGTERM just as the block is left, after the block's own handler
    is gone: here the block is made a no-op so that the command raises it past it) is not an internal error with
    a traceback and exit 1: the command line ends the process by SIGTERM."""
    process = command("notices", str(probe), "-o", str(tmp_path / "b"), "--date", "2022-01-10", patch="""
        import contextlib
        import allocation.cli
        import allocation.ops.notices as target
        from allocation.core.signals import Terminated
        def stopped(*args, **kwargs):
            raise Terminated
        target.write_notices = stopped
        allocation.cli.clean_stop = contextlib.nullcontext
    """)
    _, errors = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGTERM and b"Traceback" not in errors


def test_sigterm_in_any_command_runs_the_clean_ups_ctrl_c_runs(probe, tmp_path):
    """Outside the letters too: SIGTERM while `verify` replays a run (its scratch folder in TMPDIR) or while `run`
    writes its workbook (a temporary file beside it): both are removed, as on Ctrl-C, and the process ends by
    SIGTERM."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process = command("verify", str(probe), temp=scratch, patch=sigterm_at("allocation.runs.pipeline", "replay"))
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGTERM and list(scratch.iterdir()) == []
    out = tmp_path / "aus"
    out.mkdir()
    process = command("run", str(FIXTURE), "--rules", str(RULES), "-o", str(out / "probe.xlsx"), temp=scratch,
                      patch=sigterm_at("os", "fsync"))
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGTERM
    assert list(out.iterdir()) == [] and list(scratch.iterdir()) == []


@pytest.mark.parametrize("stop, code", [("SIGTERM", -signal.SIGTERM), ("SIGINT", 130)])
def test_a_stop_after_a_final_stage_is_registered_keeps_the_stage_and_writes_its_chain_line(tmp_path, stop, code):
    """`year stage … satzung` (a final run) stopped while the stage's files are hashed, after the register holds
    the run: the stage folder stays, the chain gets its line, `year status` finds the year whole (exit 0), and
    the process ends by the stop (SIGTERM, or Ctrl-C's 130). Before, the folder was removed under a registered
    run: the register pointed at nothing and the year could not go on."""
    folder, register = tmp_path / "jahr", tmp_path / "register"
    assert main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", "2022"]) == 0
    process = command("year", "stage", str(folder), "satzung", str(FIXTURE), "--rules", str(RULES), "--register",
                      str(register), patch=sigterm_at("allocation.ops.year", "_file_record", signals=(stop,)))
    process.communicate(timeout=180)
    assert process.returncode == code
    stage = folder / "01-satzung"
    assert (stage / "ergebnis-satzung.xlsx").exists() and (stage / "ergebnis-satzung.xlsx.manifest.json").exists()
    assert len((folder / "stufen.jsonl").read_text(encoding="utf-8").splitlines()) == 1
    assert main(["year", "status", str(folder), "--register", str(register)]) == 0


def test_a_sigterm_whose_terminated_is_swallowed_still_ends_the_process(tmp_path):
    """Code that swallows every exception (durable_rules' action callback, a `__del__`) may catch the `Terminated`
    of a SIGTERM: the command does not carry on to exit 0 with SIGTERM ignored for good; it ends by SIGTERM when
    its block is left, and what it did stays consistent (here: the run went on and is registered, its
    workbook kept)."""
    register, output = tmp_path / "register", tmp_path / "final.xlsx"
    process = command("run", str(FIXTURE), "--rules", str(RULES), "-o", str(output), "--mode", "final",
                      "--register", str(register), patch="""
        import os, signal, time
        import allocation.runs.register as target
        first = target.prepare
        def swallowing(*args, **kwargs):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
            except BaseException:
                pass  # swallowed, as a library's `except BaseException` would
            return first(*args, **kwargs)
        target.prepare = swallowing
    """)
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGTERM
    assert output.exists() and main(["register", "status", "--register", str(register)]) == 0


def test_ctrl_c_during_sigterms_clean_up_still_ends_by_sigterm(tmp_path):
    """SIGTERM before a final run's register entry, then Ctrl-C while its outputs are taken back: the clean-up
    completes (nothing left) and the process ends by SIGTERM, not with Ctrl-C's 130."""
    output = tmp_path / "final.xlsx"
    process = command("run", str(FIXTURE), "--rules", str(RULES), "-o", str(output), "--mode", "final",
                      "--register", str(tmp_path / "register"),
                      patch=sigterm_at("allocation.runs.register", "prepare") + sigterm_at(
                          "pathlib", "Path.unlink", signals=("SIGINT",), when="args[0].name == 'final.xlsx'"))
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGTERM
    assert sorted(path.name for path in tmp_path.iterdir() if path.name != "register") == []


def test_ctrl_c_while_the_command_line_is_read_is_a_ctrl_c():
    """Ctrl-C in the first moments, while the command line's parser is built: exit 130 and "abgebrochen", not a
    traceback."""
    process = command("check", "--help", patch=sigterm_at("allocation.cli", "build_parser", signals=("SIGINT",)))
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 130 and b"Traceback" not in errors and b"abgebrochen" in errors


def year_stage(folder: Path, register: Path, stage: str, patch: str) -> int:
    """`year stage` of the Wesel fixture in its own process, stopped as `patch` says; its exit status."""
    process = command("year", "stage", str(folder), stage, str(FIXTURE), "--rules", str(RULES), "--register",
                      str(register), patch=patch)
    process.communicate(timeout=180)
    return process.returncode


@pytest.mark.parametrize("stop, code", [("SIGTERM", -signal.SIGTERM), ("SIGINT", 130)])
def test_a_stop_while_a_stage_writes_its_chain_line_keeps_the_stage(tmp_path, stop, code):
    """A test stage (`modell`, not registered) stopped as its chain line is written: the line is written, the
    stage stays with it, and the year is whole; before, the folder went and the line pointed at nothing."""
    folder, register = tmp_path / "jahr", tmp_path / "register"
    assert main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", "2022"]) == 0
    assert year_stage(folder, register, "modell", sigterm_at("allocation.ops.year", "_append", signals=(stop,))) == code
    assert (folder / "01-modell").is_dir()
    assert len((folder / "stufen.jsonl").read_text(encoding="utf-8").splitlines()) == 1
    assert main(["year", "status", str(folder), "--register", str(register)]) == 0


def test_a_second_stop_never_cuts_a_clean_up_in_two(tmp_path):
    """Two stops in a row never leave the year and the register disagreeing. Ctrl-C just after the register took
    a final stage, a second Ctrl-C as the stage decides whether it stays: the stage stays with its chain line.
    SIGTERM before the register took it, Ctrl-C as its workbook is removed: the workbook goes, the stage goes,
    and the same stage then runs."""
    kept, register = tmp_path / "behalten", tmp_path / "register"
    assert main(["year", "init", str(kept), "--district", "Kreis Wesel", "--year", "2022"]) == 0
    assert year_stage(kept, register, "satzung", sigterm_at("allocation.runs.register", "commit", after=True,
                                                            signals=("SIGINT",))
                      + sigterm_at("allocation.ops.year", "_registered", signals=("SIGINT",))) == 130
    assert len((kept / "stufen.jsonl").read_text(encoding="utf-8").splitlines()) == 1
    assert main(["year", "status", str(kept), "--register", str(register)]) == 0
    gone, other = tmp_path / "weg", tmp_path / "register-2"
    assert main(["year", "init", str(gone), "--district", "Kreis Wesel", "--year", "2022"]) == 0
    assert year_stage(gone, other, "satzung", sigterm_at("allocation.runs.register", "prepare")
                      + sigterm_at("pathlib", "Path.unlink", signals=("SIGINT",),
                                   when="args[0].name == 'ergebnis-satzung.xlsx'")) == -signal.SIGTERM
    assert not (gone / "01-satzung").exists()
    assert main(["year", "stage", str(gone), "satzung", str(FIXTURE), "--rules", str(RULES), "--register",
                 str(other)]) == 0


def test_a_handler_of_the_callers_own_stays_in_force():
    """inbox --watch and serve set their own SIGTERM handler (finish the file, leave cleanly): inside
    `clean_stop` it is called, not replaced, and nothing is raised."""
    called = []
    before = signal.signal(signal.SIGTERM, lambda number, frame: called.append(number))
    try:
        with clean_stop():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)  # the handler runs between two bytecodes
        assert called == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)


def test_held_passes_the_signal_on_after_the_block_to_the_handler_in_force():
    """Inside `held`, a signal is noted; when the block is left its handler runs once (Ctrl-C: KeyboardInterrupt
    after the block's last statement, not within it); an ignored signal stays ignored."""
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with held(signal.SIGINT):
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
            steps.append("done")
    assert steps == ["done"]
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with held(signal.SIGINT):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, before)


def test_terminated_is_not_an_error_of_the_work():
    """`Terminated` passes `except Exception` (like KeyboardInterrupt), so no error handler reports a stop as a
    failure of the template or the disk."""
    assert issubclass(Terminated, BaseException) and not issubclass(Terminated, Exception)
