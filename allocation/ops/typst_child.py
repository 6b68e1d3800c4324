"""The child process that compiles notices with Typst, inside a memory limit, for `notices._compile_all`.

A template is a program (Typst has loops and recursion), written by the Kreis, not by us: it may loop for hours or
allocate without end. So it runs here, in a fresh interpreter started as a script (`python typst_child.py MEMORY
CPU PARENT`; no fork of the possibly multi-threaded caller, nothing of `allocation` imported), which first limits
itself and then compiles:

- address space (RLIMIT_AS) to MEMORY bytes: an allocation beyond it fails, and Typst (Rust) aborts;
- CPU seconds (RLIMIT_CPU) to CPU: only a backstop, the parent enforces the time per document;
- no core file (RLIMIT_CORE 0): an aborted compile must not leave a dump of the notices' data behind;
- killed when the parent dies (Linux `PR_SET_PDEATHSIG`), so no compile outlives the command.

The job comes as one JSON object on stdin: `main`, `root`, `fonts`, `data_file`, `inputs` and `documents`, a list
of [PDF path, data as JSON text]. Before each compile the data are written to `data_file`, which the template reads
(and also handed over as `sys.inputs.data` where `inputs` is true: a template of the Kreis's own that reads them
there; Typst's cache then holds nothing across documents). Each line on stdout is one JSON message:
`{"ready": true}` once the compiler is built, then `{"done": i}` per PDF written, or `{"error": text, "document":
i}` (Typst's message), `{"memory": i}` or `{"write": i, "reason": text}` and the end. The parent gives each step its
time budget and kills the child when one is exceeded. The limits' defaults live here, importable without Typst
(the command line shows them).
"""
from __future__ import annotations

import json
import os
import resource
import sys
import tempfile

__all__ = ["main", "TEMPLATE_SECONDS", "TEMPLATE_MEMORY_MB", "TEMPLATE_SECONDS_RANGE", "TEMPLATE_MEMORY_MB_RANGE",
           "CHILD_ENV"]

# A template is a program written by the Kreis (Typst has loops, recursion, strings and arrays without a size
# limit), so it is compiled in a child process with a time budget per document and a memory limit.
#
# Measured (typst 0.15.2, Python 3.11, Linux x86-64, 2 cores; the default template, the 13 Kreis Wesel notices and
# 300 notices in a row): the child peaks at 215–220 MB of address space (VmPeak: the interpreter 14 MB, the typst
# wheel 67 MB, its thread stacks and allocator arenas) and 75–77 MB resident (VmHWM; the compiler's cache levels
# off after ~50 documents); a notice takes 12–17 ms, the child's start (interpreter, typst, compiler) ~0.2 s.
# Since the data come in a file (Typst's cache now reuses what the notices share): 69 MB resident at most over 300
# notices of the benchmark's district (ru_maxrss), the same under a 256 MB limit, and about 7.5 ms per notice.
# RLIMIT_AS counts address space, not memory in use: Typst lays out with one rayon thread per core and glibc gives
# every thread its own 64 MB malloc arena, so the same compile reserved 1.14 GB with 16 threads and 1.26 GB with 64
# (still 85 MB resident) and would fail a 1 GB limit on a large server. The child therefore runs with two
# arenas (MALLOC_ARENA_MAX=2) and two rayon threads (RAYON_NUM_THREADS=2): 217 MB with 2 threads, 313 MB even with
# 64, and the same on every machine. The default limits, 30 s per document and 1 GB, are 2,000 times and about 4.5
# times what the default template needs, room for a Kreis's logo and fonts; a template beyond them is refused.
TEMPLATE_SECONDS = 30
TEMPLATE_MEMORY_MB = 1024
TEMPLATE_SECONDS_RANGE = (1, 3600)
TEMPLATE_MEMORY_MB_RANGE = (256, 65536)  # below 256 MB even the default template cannot start (217 MB measured)
# No network: a template may `#import "@preview/..."`, and Typst would download that package from the internet (a
# template must not make the Kreis's server fetch code, and the same PDF must come out on every machine). Typst's
# downloader follows the proxy variables (measured: with them it answers "Connection refused" at once instead of
# resolving packages.typst.org), so the child's proxy is a closed local port, and its package folders are empty
# folders of its own (no package cached by someone else is used): such an import is a located template error.
NO_NETWORK = {name: "http://127.0.0.1:9" for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                                                       "ALL_PROXY", "all_proxy")}
CHILD_ENV = {"MALLOC_ARENA_MAX": "2", "RAYON_NUM_THREADS": "2", "RUST_BACKTRACE": "0", "NO_PROXY": "", "no_proxy": "",
             **NO_NETWORK}


def _say(message: dict) -> None:
    sys.stdout.write(json.dumps(message, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _limit(memory: int, cpu: int, parent: int) -> None:
    """The limits, before anything else is read or imported."""
    for kind, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu), (resource.RLIMIT_CORE, 0)):
        soft, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, hard))
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # then RLIMIT_CPU ends an orphan
    if os.getppid() != parent:  # the parent died before the line above took effect
        sys.exit(1)


def main(argv: list[str]) -> int:
    memory, cpu, parent = (int(value) for value in argv)
    _limit(memory, cpu, parent)
    job = json.loads(sys.stdin.buffer.read())
    try:  # empty and removed with the work folder: no package is found or fetched
        packages = tempfile.mkdtemp(prefix=".pakete-", dir=job["root"])
    except OSError as error:  # disk full, read-only: the work folder's problem, not the template's
        _say({"write": -1, "reason": error.strerror or str(error), "errno": error.errno})
        return 4
    try:
        import typst

        # Only the fonts shipped in the typst wheel (and the template's own): the same PDF on every machine.
        compiler = typst.Compiler(job["main"], root=job["root"], font_paths=job["fonts"], ignore_system_fonts=True,
                                  package_path=packages, package_cache_path=packages)
    except MemoryError:
        _say({"memory": -1})
        return 3
    except RuntimeError as error:  # what typst documents (TypstError is one): the template's problem
        _say({"error": str(error), "document": -1})
        return 2
    _say({"ready": True})
    for index, (path, data) in enumerate(job["documents"]):
        try:  # in the work folder beside the output: a full disk is the output's problem, not the template's
            with open(job["data_file"], "w", encoding="utf-8") as handle:
                handle.write(data)
        except OSError as error:
            _say({"write": index, "reason": error.strerror or str(error), "errno": error.errno})
            return 4
        inputs = {"sys_inputs": {"data": data}} if job["inputs"] else {}
        try:
            # PDF/A-2b, the form public administration archives its records in (ISO 19005-2, level b)
            pdf = compiler.compile(format="pdf", pdf_standards="a-2b", **inputs)
        except MemoryError:
            _say({"memory": index})
            return 3
        except BaseException as error:  # noqa: BLE001 - narrowed below: pyo3's PanicException has no importable name
            if not (isinstance(error, RuntimeError) or type(error).__name__ == "PanicException"):
                raise  # a bug, not the template: the traceback goes to stderr, the parent reports exit 1
            _say({"error": str(error), "document": index,  # TypstError (a RuntimeError) or a Rust panic
                  "trace": [str(step) for step in getattr(error, "trace", None) or ()][:5]})
            return 2
        try:
            with open(path, "wb") as handle:
                handle.write(pdf)
        except OSError as error:  # disk full, read-only: the output's problem, not the template's
            _say({"write": index, "reason": error.strerror or str(error), "errno": error.errno})
            return 4
        _say({"done": index})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
