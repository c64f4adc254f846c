"""Run jobs in forked children, one child per job, so a job that crashes the process is a result too.

A mutated backend can emit code that crashes Unicorn itself (a segmentation fault:
DESIGN.md's MIPS64 block limit is one such crash), and a ``multiprocessing.Pool``
whose worker dies never returns that job. Here each job runs in a fresh child
forked from the caller (inheriting everything the caller has loaded and cached),
sends its pickled result through a pipe and exits; a child that dies without a
result yields ``on_crash(job, how)`` instead.
"""
from __future__ import annotations

import os
import pickle
import select
import signal
from typing import Any, Callable, Iterable, Iterator


def run_isolated(jobs: Iterable[Any], function: Callable[[Any], Any], workers: int,
                 on_crash: Callable[[Any, str], Any]) -> Iterator[Any]:
    """``function(job)`` for every job, at most ``workers`` children at a time, results as they come."""
    pending = iter(jobs)
    running: dict[int, tuple[int, Any, bytearray]] = {}  # read end -> (pid, job, data so far)
    exhausted = False
    while running or not exhausted:
        while not exhausted and len(running) < max(1, workers):
            try:
                job = next(pending)
            except StopIteration:
                exhausted = True
                break
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: run, send, leave without running the parent's cleanup
                os.close(read_end)
                quiet = os.open(os.devnull, os.O_WRONLY)  # keystone prints its errors on fd 2
                os.dup2(quiet, 2)
                code = 0
                try:
                    payload = pickle.dumps(("ok", function(job)))
                except BaseException as error:  # noqa: BLE001 - reported to the parent
                    payload, code = pickle.dumps(("error", f"{type(error).__name__}: {error}")), 1
                with os.fdopen(write_end, "wb") as out:
                    out.write(payload)
                os._exit(code)
            os.close(write_end)
            running[read_end] = (pid, job, bytearray())
        if not running:
            break
        ready, _, _ = select.select(list(running), [], [])
        for read_end in ready:
            pid, job, data = running[read_end]
            chunk = os.read(read_end, 1 << 20)
            if chunk:
                data.extend(chunk)
                continue
            os.close(read_end)
            del running[read_end]
            _, status = os.waitpid(pid, 0)
            if data:
                kind, value = pickle.loads(bytes(data))
                yield value if kind == "ok" else on_crash(job, f"raised {value}")
            elif os.WIFSIGNALED(status):
                yield on_crash(job, f"killed by {signal.Signals(os.WTERMSIG(status)).name}")
            else:
                yield on_crash(job, f"exited with status {os.WEXITSTATUS(status)} and no result")
