"""National batch: the yearly run for every district input in a folder, one output workbook per district
plus one summary workbook.

Each input runs as one task (`run_one`) on any `concurrent.futures.Executor`: by default a local process
pool with one worker per core; a cluster executor (e.g. Dask's `distributed.Client().get_executor()`) can
be passed in. Each input goes through `pipeline.run`: from a rules folder the rule file valid for its Kreis
and Haushaltsjahr is chosen, and one `--rules` file is used only for inputs it covers (others exit 4). A failing district does not stop the others: its problems are listed in the
summary (sheet `Fehler`) and the batch's exit code is the most severe of the districts'.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["DistrictResult", "BatchResult", "output_for", "run_one", "run_batch", "write_summary", "inputs_in",
           "preload_for_fork"]

SUMMARY_NAME = "Zusammenfassung.xlsx"


@dataclass(frozen=True, slots=True)
class DistrictResult:
    input: str
    output: str | None
    district: str = ""
    year: int | None = None
    items: int = 0
    municipalities: int = 0
    total_cents: int = 0  # the deficits allocated
    exit_code: int = 0
    problems: tuple[str, ...] = field(default_factory=tuple)
    seconds: float = 0.0
    payable_cents: int = 0  # what the members pay together


@dataclass(frozen=True, slots=True)
class BatchResult:
    results: tuple[DistrictResult, ...]
    summary: Path

    @property
    def exit_code(self) -> int:
        return max((r.exit_code for r in self.results), default=0)


def inputs_in(folder: str | Path) -> list[Path]:
    """The input workbooks of a folder (no temporary or lock files), sorted by name."""
    return sorted(p for p in Path(folder).glob("*.xlsx") if not p.name.startswith((".", "~$")))


def output_for(input_path: str | Path, output_dir: str | Path) -> Path:
    """The result workbook of one input: `<name>-ergebnis.xlsx` in the output folder."""
    return Path(output_dir) / f"{Path(input_path).stem}-ergebnis.xlsx"


def _refuse_before_computing(inputs: list[Path], output_dir: Path, summary: Path, rules: Path) -> None:
    """Every output of the batch (summary, each result workbook and its manifest) against every input of the
    folder and the rule files, the register and its final runs, before any district is computed: with -o the
    input folder, `a.xlsx`'s result `a-ergebnis.xlsx` must not replace an input of that name (exit 8)."""
    from ..runs.manifest import manifest_path
    from ..runs.register import guard_outputs, installation_register
    from ..workbook.guard import rule_files

    outputs = [("Die Zusammenfassung", summary)]
    for path in inputs:
        output = output_for(path, output_dir)
        outputs += [(f"Die Ergebnis-Arbeitsmappe von {path.name}", output),
                    (f"Das Manifest von {path.name}", manifest_path(output))]
    guard_outputs(outputs, [("Eingabe-Arbeitsmappe", p) for p in inputs] + rule_files(rules), installation_register())


# What a district run imports (`pipeline.run` loads most of it on first use). No module here starts a thread
# when imported, so a forked worker inherits them safely.
_RUN_MODULES = ("allocation.runs.pipeline", "allocation.workbook.inputs", "allocation.workbook.report",
                "allocation.rulefiles.engine", "durable.engine", "python_calamine", "xlsxwriter", "yaml")


def preload_for_fork() -> bool:
    """Import what a district run needs before a process pool forks its workers, so that each worker
    inherits the modules instead of importing them again (about 0.17 s CPU per worker, measured in
    benchmarks/bench_batch.py). Only where workers are forked (elsewhere each worker imports on its own);
    returns whether it preloaded."""
    import importlib
    import multiprocessing

    if multiprocessing.get_start_method() != "fork":
        return False
    for name in _RUN_MODULES:
        importlib.import_module(name)
    return True


def run_one(input_path: str, rules: str, rules_is_folder: bool, output_dir: str) -> DistrictResult:
    """One district, in a worker: `pipeline.run` with the rule file or rules folder (it reads the workbook
    once and chooses or checks the rule file), and report (never raises for a district's problem).
    `rules_is_folder` is kept for callers of the old signature; the pipeline looks at `rules` itself."""
    from ..runs.pipeline import run
    from ..core.problems import ExitCode, ProblemsError

    started = time.perf_counter()
    path = Path(input_path)
    output = output_for(path, output_dir)
    try:
        result = run(path, rules, output, offers_override=False)  # batch has no --ignore-validity
        allocation = result.allocation
        return DistrictResult(str(path), str(output), allocation.book.parameters.district,
                              allocation.book.parameters.year, len(allocation.items),
                              len(allocation.book.municipalities), allocation.deficits,
                              ExitCode.OK, (), time.perf_counter() - started, allocation.payable)
    except ProblemsError as error:
        return DistrictResult(str(path), None, exit_code=error.exit_code,
                              problems=tuple(str(p) for p in error.problems), seconds=time.perf_counter() - started)
    except Exception as error:  # an internal error in one district is reported, the batch goes on
        return DistrictResult(str(path), None, exit_code=ExitCode.INTERNAL,
                              problems=(f"Interner Fehler: {error!r}",), seconds=time.perf_counter() - started)


def write_summary(path: Path, results: Sequence[DistrictResult]) -> None:
    """Sheets `Kreise` (one row per input) and `Fehler` (one row per problem), written atomically: plain
    header rows, no styles, rows streamed in order."""
    from ..core.money import cents_to_decimal
    from ..workbook.report import write_book

    def rows(book, title: str, lines) -> None:
        sheet = book.add_sheet(title)
        for r, line in enumerate(lines):
            for c, value in enumerate(line):
                book.put(sheet, r, c, value)

    def build(book) -> None:
        rows(book, "Kreise", [["Eingabe", "Kreis", "Haushaltsjahr", "Kostenpositionen", "Gemeinden",
                               "Summe verteilt (€)", "Ergebnis", "Exit-Code", "Sekunden", "Summe zu zahlen (€)"],
                              *([Path(r.input).name, r.district, r.year, r.items, r.municipalities,
                                 cents_to_decimal(r.total_cents), Path(r.output).name if r.output else "FEHLER",
                                 r.exit_code, round(r.seconds, 3), cents_to_decimal(r.payable_cents)]
                                for r in results)])
        rows(book, "Fehler", [["Eingabe", "Exit-Code", "Problem"],
                              *([Path(r.input).name, r.exit_code, problem] for r in results for problem in r.problems)])

    write_book(path, build)


def run_batch(input_dir: str | Path, output_dir: str | Path, rules: str | Path, *,
              executor: Executor | None = None, jobs: int | None = None,
              progress: Callable[[int, int, DistrictResult], None] | None = None) -> BatchResult:
    """Run every input of `input_dir`; `rules` is a rule file for all or a folder to select from.

    `executor`: any concurrent.futures.Executor (not shut down here); without one, a local process pool
    with `jobs` workers (default: all cores) is used. `progress(done, total, result)` is called as
    districts finish. Results are listed in input order, whatever order they finish in.
    """
    from concurrent.futures import ProcessPoolExecutor

    inputs = inputs_in(input_dir)
    output_dir = Path(output_dir)
    summary = output_dir / SUMMARY_NAME
    rules = Path(rules)
    _refuse_before_computing(inputs, output_dir, summary, rules)
    output_dir.mkdir(parents=True, exist_ok=True)
    own = executor is None
    if own:
        preload_for_fork()
        executor = ProcessPoolExecutor(max_workers=jobs or os.cpu_count() or 1)
    try:
        futures = {executor.submit(run_one, str(p), str(rules), rules.is_dir(), str(output_dir)): i
                   for i, p in enumerate(inputs)}
        results: list[DistrictResult | None] = [None] * len(inputs)
        for done, future in enumerate(as_completed(futures), start=1):
            result = future.result()
            results[futures[future]] = result
            if progress is not None:
                progress(done, len(inputs), result)
    finally:
        if own:
            executor.shutdown()
    final = tuple(r for r in results if r is not None)
    from ..runs.register import installation_register, protected

    with protected([("Die Zusammenfassung", summary)], installation_register()):  # no final run meanwhile
        write_summary(summary, final)
    return BatchResult(final, summary)
