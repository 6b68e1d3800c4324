"""Stopped from outside: `kill`, systemd's stop or its timeout send SIGTERM. The process still ends by SIGTERM (the
same exit status as before, 143 in the shell), but the letters' temporary folder goes with it, and once the files
move into place they all move (issue 22, "never leave a half-written" output). `signals.held` and
`signals.cleaned_up_on_sigterm` do it; a handler of the caller's own (inbox, serve) stays in force.

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
from allocation.core.signals import Terminated, cleaned_up_on_sigterm, held  # noqa: E402

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


def command(*args: str, patch: str = "") -> subprocess.Popen:
    """`allocation` with `args` in a process of its own; `patch`: Python run before (to stop it at a chosen
    point)."""
    script = "import sys\n" + textwrap.dedent(patch) + "\nfrom allocation.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def sigterm_at(module: str, function: str, *, then_call: bool = True) -> str:
    """A `patch` for `command`: SIGTERM to the process itself as `allocation.<module>.<function>` is called; the
    function then runs (the signal is held or acted on, as the code in force decides) or, with `then_call=False`,
    not."""
    return f"""
        import os, signal
        import allocation.{module} as target
        first = target.{function}
        def stopped(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
            return first(*args, **kwargs) if {then_call} else None
        target.{function} = stopped
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
                      patch=sigterm_at("ops.notices", "move_into"))
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
                      patch=sigterm_at("ops.benehmen", "_write_workbook", then_call=False))
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
                      "--register", str(register), patch=sigterm_at("runs.register", "commit"))
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGTERM
    lines = (register / "wesel-2022.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["output_sha256"] == hashlib.sha256(output.read_bytes()).hexdigest()
    assert Path(f"{output}.manifest.json").exists()
    assert main(["register", "status", "--register", str(register)]) == 0


def test_a_handler_of_the_callers_own_stays_in_force():
    """inbox --watch and serve set their own SIGTERM handler (finish the file, leave cleanly): inside
    `cleaned_up_on_sigterm` it is called, not replaced, and nothing is raised."""
    called = []
    before = signal.signal(signal.SIGTERM, lambda number, frame: called.append(number))
    try:
        with cleaned_up_on_sigterm():
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
