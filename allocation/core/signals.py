"""Signals around work that must not be cut in two, or must not leave its temporary files behind.

`held` keeps Ctrl-C and SIGTERM out of a few short steps (a register entry, files moving into place, a temporary
folder made or removed, the rules engine's work). `clean_stop` is put around each command by the command line
(`cli.main`, all but batch, inbox and serve), so that SIGTERM runs the clean-ups a Ctrl-C runs (every `finally`
and `except BaseException`) before the process ends by it, and a second stop never cuts a clean-up in two. Python runs signal handlers in the main thread only;
elsewhere (batch's workers, the web server's request threads) both do nothing, and a signal acts as it always did.
"""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(BaseException):
    """SIGTERM came inside `clean_stop`: raised so that the `finally` blocks inside run (a temporary
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
def clean_stop() -> Iterator[None]:
    """Around a command (`cli.main`): the first stop, SIGTERM (`kill`, systemd's stop or timeout) or Ctrl-C,
    raises `Terminated` or KeyboardInterrupt inside, so that the block's `finally` and `except BaseException`
    clean-ups run; every later SIGTERM or Ctrl-C only waits for them (a second stop never cuts a clean-up in
    two). A SIGTERM, first or later, then ends the process by SIGTERM as before (`end_by_sigterm`), also where
    its `Terminated` was swallowed (a `__del__`, a library's `except BaseException`) or replaced by another
    exception; a Ctrl-C alone leaves by its KeyboardInterrupt (exit 130), also where that was swallowed. Each
    signal is taken only where its handler is the default (SIGTERM: SIG_DFL; Ctrl-C: Python's own); a handler
    of the caller's own (inbox, serve) stays in force untouched. A signal that comes as the block is left acts
    as its default would."""
    if not _main_thread():
        yield
        return
    defaults = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}
    ours = [number for number, default in defaults.items() if signal.getsignal(number) == default]
    if not ours:
        yield
        return
    left, first, sigterm = False, None, False

    def stop(number: int, frame: object) -> None:
        nonlocal first, sigterm
        sigterm = sigterm or number == signal.SIGTERM
        if left:  # the block is done: nothing of it to clean up, the signal acts as its default would
            if number == signal.SIGTERM:
                end_by_sigterm()
            raise KeyboardInterrupt
        if first is not None:  # already stopping: the clean-up runs to its end
            return
        first = number
        raise Terminated if number == signal.SIGTERM else KeyboardInterrupt

    before = {number: signal.signal(number, stop) for number in ours}
    propagating = False
    try:
        yield
    except Terminated:
        pass  # ends below
    except BaseException:
        propagating = True
        raise
    finally:
        left = True
        for number, handler in before.items():
            signal.signal(number, handler)
        if sigterm:  # whatever became of the Terminated, or a SIGTERM during a Ctrl-C's clean-up: ends by it
            end_by_sigterm()
        if first == signal.SIGINT and not propagating:  # a Ctrl-C swallowed on the way: the command still stops
            raise KeyboardInterrupt
