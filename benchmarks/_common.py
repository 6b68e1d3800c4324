"""Shared helpers of the benchmarks: medians over repeats, a table printer, peak RSS."""
from __future__ import annotations

import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mb(children: bool = False) -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return usage.ru_maxrss / 1024  # kB on Linux


def table(headers: list[str], rows: list[list[object]]) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    print("| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    sys.stdout.flush()


# A small runner process starts the command: a child's peak RSS counts the memory of the process that forked
# it (Linux keeps the larger of the two at exec), so the child must not be forked from this large process.
_RUNNER = r"""
import json, os, signal, sys, time
kill_after, err, argv = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.setsid()
    fd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600); os.dup2(fd, 2)
    null = os.open(os.devnull, os.O_RDWR); os.dup2(null, 0); os.dup2(null, 1)
    os.execv(sys.executable, [sys.executable, "-m", "allocation", *argv])
killed, deadline = False, time.monotonic() + kill_after
while True:
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        break
    if time.monotonic() > deadline and not killed:
        os.killpg(pid, signal.SIGKILL); killed = True
    time.sleep(0.01)
print(json.dumps({"wall": time.perf_counter() - started, "cpu": usage.ru_utime + usage.ru_stime,
                  "rss": usage.ru_maxrss / 1024, "exit": "killed" if killed else os.waitstatus_to_exitcode(status)}))
"""


def run_cli_child(argv: list[str], kill_after: float, scratch: Path) -> dict:
    """Run the CLI in a child of a small runner: wall, CPU and peak RSS of that child, exit code, traceback."""
    import json
    import subprocess

    err = scratch / "stderr.txt"
    answer = subprocess.run([sys.executable, "-c", _RUNNER, str(kill_after), str(err), *argv], check=True,
                            capture_output=True, text=True).stdout
    result = json.loads(answer)
    result["traceback"] = "Traceback" in err.read_text(encoding="utf-8", errors="replace")
    return result
