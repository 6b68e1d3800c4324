"""Signals around work that must not be cut in two, or must not leave its temporary files behind.

`held` keeps Ctrl-C and SIGTERM out of a few short steps (a register entry, files moving into place, a temporary
folder made or removed). `cleaned_up_on_sigterm` is put around each command by the command line (`cli.main`, all
but batch, inbox and serve), so that SIGTERM runs the clean-ups a Ctrl-C runs (every `finally` and
`except BaseException`) before the process ends by it. Python runs signal handlers in the main thread only;
elsewhere (batch's workers, the web server's request threads) both do nothing, and a signal acts as it always did.
"""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(BaseException):
    """SIGTERM came inside `cleaned_up_on_sigterm`: raised so that the `finally` blocks inside run (a temporary
    folder removed, a child process killed); the process then ends by SIGTERM as it would have. A BaseException,
    like KeyboardInterrupt, so that no `except Exception` takes it for an error of the work."""


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _pass_on(number: int, handler: object) -> None:
    """A signal that was held, now to the handler that was in force: called, raised (Ctrl-C) or acted on by the
    system (SIGTERM's default ends the process here); an ignored one stays ignored."""
    if callable(handler):
        handler(number, None)
    elif handler == signal.SIG_DFL:
        if number == signal.SIGINT:
            raise KeyboardInterrupt
        os.kill(os.getpid(), number)


@contextmanager
def held(*numbers: int) -> Iterator[None]:
    """The signals `numbers` that come inside are noted and passed on when the block is left (done or failed), so
    that the block is never cut in two: a register entry and its outputs, files moved into place together, a
    temporary folder made or removed. SIGTERM is passed on first (it ends the process; a Ctrl-C passed on first
    would raise and lose it), then the others in the order they came, each once."""
    if not _main_thread():
        yield
        return
    noted: list[int] = []
    before = {number: signal.signal(number, lambda number, frame: noted.append(number)) for number in numbers}
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)
        for number in sorted(dict.fromkeys(noted), key=lambda number: number != signal.SIGTERM):
            _pass_on(number, before[number])


def end_by_sigterm() -> None:
    """End the process by SIGTERM's default action, as it would have ended without a handler (exit status 143 in
    the shell; systemd sees the signal). For a `Terminated` that reaches the command line."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
    raise SystemExit(128 + signal.SIGTERM)  # (not reached: the default action ends the process first)


@contextmanager
def cleaned_up_on_sigterm() -> Iterator[None]:
    """Where SIGTERM would end the process at once (its default: `kill`, systemd's stop or timeout), it raises
    `Terminated` inside instead, so that the block's `finally` clean-ups run; then the process ends by SIGTERM,
    as before (`end_by_sigterm`), also where the `Terminated` was swallowed (a `__del__`, a library's `except
    BaseException`) or replaced by another exception (a Ctrl-C during the clean-up). A handler of the caller's own
    (inbox, serve) stays in force untouched; a second SIGTERM during the clean-up is not acted on twice; one that
    comes as the block is left ends the process (the command line ends by SIGTERM on a `Terminated` that reaches
    it, too)."""
    if not _main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    left = raised = False

    def terminate(number: int, frame: object) -> None:
        nonlocal raised
        if left:  # the block is done: nothing of it to clean up
            end_by_sigterm()
        if raised:  # already ending: the clean-up is not cut short again
            return
        raised = True
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    except Terminated:
        end_by_sigterm()
    finally:
        left = True
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if raised:  # whatever became of the Terminated (swallowed by a library, turned into an error, a Ctrl-C
            end_by_sigterm()  # during the clean-up): the process was asked to end and ends by SIGTERM
