"""``python -m harness bench --huge``: the cost of long programs, per size, phase and target.

A generated program (harness/tools/long_program.py) of each size, from 10,000 slots
up to the validator's limit of 1,000,000, goes through :func:`run_item` on every
chosen target with every cache cold, as a run of the case would take it. Printed:

* the shared phases (parse, validate, the interpreter in each byte order: done once
  per case, whatever the number of targets) and each target's own phases
  (translate, assemble, engine set-up, emulate, compare), in seconds;
* the CPU time of each item (the shared row: the interpreter's item, which does the
  shared phases) per slot at every size: growth is linear when the figure at the
  largest size stays within 2x of the smallest's (the check this bench prints). CPU
  time, not wall time, as the machine may be shared; the phases' wall times per slot
  are printed beside it for information;
* the native code size per eBPF slot, and the process's peak memory.

Each size runs ``repeat`` times (the median is shown): by default three times up to
300,000 slots and once beyond, as a 1,000,000-slot program takes tens of seconds
per target. Wall times, so a loaded machine shows in them: run it on a quiet one.
"""
from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES = (10_000, 100_000, 1_000_000)
WARM_UP = 100  # slots of a first program on every target, not timed
SHARED = ("parse", "validate", "interpret", "interpret_be")
OWN = ("translate", "assemble", "setup", "emulate", "compare")
LINEAR_FACTOR = 2.0  # CPU per slot at the largest size within this factor of the smallest's
LINEAR_SLACK_US = 2.0  # ...plus this, for items too cheap to time well at small sizes


def default_repeat(size: int) -> int:
    return 3 if size <= 300_000 else 1


def measure(size: int, targets: list[str], repeat: int, folder: Path) -> dict[str, Any]:
    """Median seconds per phase: {"shared": {phase: s}, target: {phase: s, "code_bytes": n, "status": ...}}."""
    import arches
    from harness.running import conformance
    from harness.tools.long_program import write_case

    path = str(write_case(folder, size))
    samples: dict[str, dict[str, list[float]]] = {}
    verdicts: dict[str, dict[str, Any]] = {}
    architectures = [target for target in targets if target != conformance.INTERP]
    for _ in range(repeat):
        conformance.clear_caches()
        order = [conformance.INTERP] + architectures  # the interpreter item runs both byte orders
        for target in order:
            if target != conformance.INTERP:
                arches.get(target).clear_cache()  # cold (a translation this large is not cached anyway)
            started, cpu_started = time.perf_counter(), time.process_time()
            result = conformance.run_item(path, target)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            for phase, seconds in result.timings.items():
                row = "shared" if phase in SHARED else target
                samples.setdefault(row, {}).setdefault(phase, []).append(seconds)
            row = "shared" if target == conformance.INTERP else target
            samples.setdefault(row, {}).setdefault("item", []).append(wall)
            samples.setdefault(row, {}).setdefault("cpu", []).append(cpu)
            verdict = verdicts.setdefault(target, {"status": result.status, "detail": result.detail[:200]})
            if result.status != conformance.PASS:
                verdict.update(status=result.status, detail=result.detail[:200])
            if result.code_size is not None:
                verdict["code_bytes"] = result.code_size
    figures: dict[str, Any] = {}
    for row, phases in samples.items():
        figures[row] = {phase: statistics.median(values) for phase, values in phases.items()}
    for target, verdict in verdicts.items():
        figures.setdefault(target, {}).update(verdict)
    return figures


def is_linear(per_slot: dict[int, float]) -> bool:
    """Cost per slot at the largest size within LINEAR_FACTOR of the smallest's (+ slack)."""
    smallest, largest = per_slot[min(per_slot)], per_slot[max(per_slot)]
    return largest <= LINEAR_FACTOR * smallest + LINEAR_SLACK_US


def main(targets: list[str], sizes: tuple[int, ...] = SIZES, repeat: int | None = None) -> dict[str, Any]:
    """Measure and print; returns the figures (with a "linear" verdict per row and phase)."""
    from harness.running.conformance import INTERP

    architectures = [target for target in targets if target != INTERP]
    by_size: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-long-") as scratch:
        measure(WARM_UP, targets, 1, Path(scratch))  # imports, assemblers and engines made before timing
        for size in sizes:
            count = repeat or default_repeat(size)
            print(f"\n{size:,} slots, {count} run(s), median seconds per phase "
                  f"(shared: once per case; then each target's own):", flush=True)
            figures = measure(size, targets, count, Path(scratch))
            by_size[size] = figures
            _print_size(size, figures, architectures)
    linear: dict[str, bool] = {}
    per_slot_table: dict[str, dict[str, dict[int, float]]] = {}
    if len(sizes) > 1:
        print(f"\nmicroseconds per slot at {' / '.join(f'{size:,}' for size in sizes)} slots: CPU of the item "
              f"(linear: the largest size's within {LINEAR_FACTOR:g}x of the smallest's + {LINEAR_SLACK_US:g}), "
              "then each phase's wall time:")
        for row, phases in [("shared", SHARED)] + [(target, OWN) for target in architectures]:
            for phase in ("cpu",) + phases:
                per_slot = {size: by_size[size].get(row, {}).get(phase, 0.0) * 1e6 / size for size in sizes
                            if phase in by_size[size].get(row, {})}
                if len(per_slot) == len(sizes):
                    per_slot_table.setdefault(row, {})[phase] = per_slot
            cells = per_slot_table.get(row, {})
            if "cpu" not in cells:
                continue
            linear[row] = is_linear(cells["cpu"])
            print(f"  {row:<9}" + "  ".join(
                f"{phase} " + "/".join(f"{value:.1f}" for value in values.values())
                + ("" if phase != "cpu" or linear[row] else " NOT LINEAR") for phase, values in cells.items()))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory of this process: {peak_mb:.0f} MiB")
    passed = all(by_size[size].get(target, {}).get("status") == "pass" for size in sizes for target in targets)
    return {"sizes": {str(size): figures for size, figures in by_size.items()},
            "us_per_slot": {row: {phase: {str(k): v for k, v in values.items()} for phase, values in phases.items()}
                            for row, phases in per_slot_table.items()},
            "linear": linear, "all_passed": passed, "peak_rss_mb": peak_mb}


def _print_size(size: int, figures: dict[str, Any], architectures: list[str]) -> None:
    shared = figures.get("shared", {})
    print("  shared    " + "  ".join(f"{phase} {shared[phase]:.2f}" for phase in SHARED if phase in shared)
          + f"  (item {shared.get('item', 0):.2f}, CPU {shared.get('cpu', 0):.2f})")
    print(f"  {'target':<9}" + "".join(f"{phase:>10}" for phase in OWN) + f"{'item':>9}{'CPU':>9}{'bytes/slot':>12}"
          "  status")
    for target in architectures:
        row = figures.get(target, {})
        code = row.get("code_bytes")
        status = row.get("status", "?")
        note = "" if status == "pass" else f": {row.get('detail', '')}"
        print(f"  {target:<9}" + "".join(f"{row[phase]:>10.2f}" if phase in row else f"{'-':>10}" for phase in OWN)
              + f"{row.get('item', 0):>9.2f}{row.get('cpu', 0):>9.2f}" + (f"{code / size:>12.1f}" if code else f"{'-':>12}")
              + f"  {status}{note}", flush=True)
    interp = figures.get("interp", {})
    if interp.get("status") not in (None, "pass"):
        print(f"  interp: {interp['status']}: {interp.get('detail', '')}")
