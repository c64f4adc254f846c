"""Time bounds for every phase of a case, so that no case can hold up a run.

Two bounds, both wall-clock (measured on a loaded 2-core machine, the slowest
phase of any corpus case takes 0.4 s, so they leave a wide margin):

- ``RUN_SECONDS``: one run of a program, i.e. one event on the interpreter (in one
  byte order) or on one target. It ends as a ``limit`` outcome, as an exhausted
  instruction budget does: whichever comes first, the budget or the clock.
- ``PHASE_SECONDS``: any phase of one (case, target) item as a whole: parse,
  validate, interpret (all events in one byte order), translate (with assembly),
  emulate (all events). A phase that overruns ends the item with a reason naming
  the phase.

So an item takes at most a few phases' worth of time (in practice under
``2 * PHASE_SECONDS``) whatever its ``-- budget`` or its events. Both bounds grow
with the program's length (:func:`scaled`): every phase costs time in proportion
to it, and a program of 1,000,000 instructions (the kernel's limit) is loaded,
translated and run in tens of seconds per target on a loaded machine.

The interpreter and the emulator check the clock themselves (they return a
``limit`` outcome); :func:`time_bound` is the backstop for code that cannot, such
as the validator or a backend's translator: it interrupts Python code with
:class:`PhaseTimeout` through ``SIGALRM``, as pytest-timeout's signal method does.
Signals reach only the main thread, so elsewhere it bounds nothing (and says so
through :func:`hard_bounds_available`).
"""
from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import Iterator

RUN_SECONDS = 5.0  # one event on the interpreter or on one target
PHASE_SECONDS = 60.0  # one phase of one (case, target) item: all its events together (translating a
# 2 MiB far-branch program takes 3 s on MIPS alone, and several times that on a loaded machine)
SLOTS_PER_BOUND = 25_000  # longer programs get one bound per this many slots: a phase costs up to 30 us of
# CPU per slot (riscv64 translate; one event emulated: 10 us, x86_32), times 5 on a shared machine (load 10
# on 2 cores), so 1,000,000 slots need 150 s per phase, 50 s per event, and get 40 min and 200 s
GRACE_SECONDS = 2.0  # the backstop fires this long after a bound its code checks itself
REPEAT_SECONDS = 0.5  # the backstop fires again until the phase ends (a callback may swallow one)


class PhaseTimeout(Exception):
    """A phase ran past its time bound; str() is the one-line reason."""

    def __init__(self, phase: str, seconds: float) -> None:
        super().__init__(f"time limit: {phase} took longer than {seconds:g} s")
        self.phase = phase
        self.seconds = seconds


def scaled(seconds: float, slots: int) -> float:
    """The bound ``seconds`` for a program of ``slots`` slots: ``seconds`` per SLOTS_PER_BOUND slots, at least once."""
    return seconds * max(1.0, slots / SLOTS_PER_BOUND)


def hard_bounds_available() -> bool:
    """True where :func:`time_bound` can interrupt code (the main thread, with SIGALRM)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


_active = threading.local()


@contextmanager
def time_bound(phase: str, seconds: float) -> Iterator[None]:
    """Raise :class:`PhaseTimeout` in the block if it runs longer than ``seconds``.

    Bounds do not nest: inside another bound this one only narrows nothing and the
    outer one stays in force. An interval timer set by someone else (e.g.
    pytest-timeout) is put back, minus the time spent here, when the block ends.
    """
    if not hard_bounds_available() or getattr(_active, "phase", None) is not None:
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise PhaseTimeout(phase, seconds)

    started = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds, REPEAT_SECONDS)
    _active.phase = phase
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _active.phase = None
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay:
            left = max(0.001, previous_delay - (time.monotonic() - started))
            signal.setitimer(signal.ITIMER_REAL, left, previous_interval)
