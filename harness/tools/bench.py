"""``python -m harness bench``: where the time goes, against the floor, in one run.

Prints (and writes as JSON, so runs can be compared):

* the full corpus on every target through the real CLI in-process (``-n 0``), with
  one worker (``-n 1``) and two (``-n 2``): wall times, the speed-up, results and
  pytest items per second;
* where the CPU time of those runs goes: the case work itself (every case run on
  every target by :func:`~harness.running.conformance.run_item` in a bare loop, no
  pytest), the controller process (serial: pytest-xdist's scheduling and every report
  it receives) and the rest of the workers' time; the harness's fixed cost is all
  that is not case work, as a share of the run's CPU time;
* the median cost per (case, target) of each phase, in microseconds, from those
  results (parse, validate, interpret, translate, assemble, engine set-up,
  emulate, compare) plus the report writer's cost per cell;
* the floor: the same native programs assembled with keystone and run on one
  reused bare Unicorn engine per target (no harness), and harness / floor;
* scaling: the hand-written corpus repeated 1x, 2x, 4x and 8x, and run on 1 to all
  targets (external JITs included when configured), with the controller's share;
* peak resident memory per worker, and the interpreter's speed on a loop;
* the validator's cost per slot on hard shapes (joins, loops, wide and deep call
  graphs, a call fan) at 4,000 to 64,000 slots: linear means a flat line.

CPU times are the processes' own (``getrusage``), so they hold on a loaded machine
where wall times do not: on a shared 2-core machine, compare the speed-up with the
CPU figures before believing it.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness import layout

PHASES = ("parse", "validate", "interpret", "translate", "assemble", "setup", "emulate", "compare")
TARGETS = {"harness_vs_floor_max": 3.0, "full_run_n2_seconds": 30.0, "speedup_n2_min": 1.8,
           "fixed_cost_share_max": 0.10, "interpreter_insns_per_second_min": 1_000_000}
RUSAGE_ENV = "HARNESS_BENCH_RUSAGE"  # where a measured run writes its CPU figures


@dataclass
class RunFigures:
    """One ``python -m harness run``: wall time and CPU seconds of the controller and the workers."""

    wall: float
    controller_cpu: float  # the process pytest runs in (with -n 0 it does all the work)
    workers_cpu: float  # every worker process (pytest-xdist's), 0 with -n 0
    results: int  # (case, target) results in the JSON
    items: int  # pytest items reported (the controller's unit of work)

    @property
    def cpu(self) -> float:
        return self.controller_cpu + self.workers_cpu


def run_cli(paths: list[str], workers: str, json_path: str, arch: str = "all") -> RunFigures:
    """``python -m harness run`` in a fresh process, as a user runs it, with its CPU time measured."""
    figures_path = json_path + ".rusage"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness.tools.bench", "run", *paths, "--arch", arch, "-n", workers,
                    "--json", json_path], capture_output=True, text=True,
                   env={**os.environ, RUSAGE_ENV: figures_path})
    wall = time.perf_counter() - started
    cpu = json.loads(Path(figures_path).read_text())
    document = json.loads(Path(json_path).read_text()) if Path(json_path).exists() else {}
    results = len(document.get("results", []))
    return RunFigures(wall, cpu["self"], cpu["children"], results, cpu.get("items", results))


def _measured_main(argv: list[str]) -> int:
    """Run the CLI in this process, then write its own and its children's CPU seconds."""
    from harness import cli

    class ItemCounter:
        items = 0

        def pytest_runtest_logreport(self, report: Any) -> None:
            if report.when == "call" or (report.when == "setup" and not report.passed):
                ItemCounter.items += 1

    import pytest

    real_main = pytest.main
    pytest.main = lambda args, plugins=None: real_main(args, plugins=[*(plugins or []), ItemCounter()])
    try:
        status = cli.main(argv)
    finally:
        pytest.main = real_main
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        Path(os.environ[RUSAGE_ENV]).write_text(json.dumps({
            "self": own.ru_utime + own.ru_stime, "children": children.ru_utime + children.ru_stime,
            "items": ItemCounter.items}))
    return status


def case_work_cpu(paths: list[str], arch: str = "all") -> tuple[float, int]:
    """CPU seconds of the case work alone: a fresh process runs every case on every target
    through run_item, case by case as a worker does, with nothing of pytest around it."""
    completed = subprocess.run([sys.executable, "-m", "harness.tools.bench", "work", arch, *paths],
                               capture_output=True, text=True, check=True)
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    return figures["cpu"], figures["results"]


def _work_main(arch: str, paths: list[str]) -> int:
    from harness.cases.corpus import find_case_files
    from harness.running.conformance import run_item
    from harness.running.targets import select

    targets = select(arch).targets
    started = time.process_time()
    count = 0
    for path in find_case_files(paths):
        for target in targets:
            run_item(str(path), target)
            count += 1
    print(json.dumps({"cpu": time.process_time() - started, "results": count}))
    return 0


def phase_medians(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """target -> phase -> median microseconds (over the items that have the phase)."""
    table: dict[str, dict[str, list[float]]] = {}
    for item in results:
        for phase, seconds in (item.get("timings") or {}).items():
            table.setdefault(item["target"], {}).setdefault(phase, []).append(seconds * 1e6)
    return {target: {phase: statistics.median(values) for phase, values in phases.items()}
            for target, phases in table.items()}


def harness_cost(results: list[dict[str, Any]]) -> dict[str, float]:
    """Median total harness microseconds per (case, target) for each architecture."""
    totals: dict[str, list[float]] = {}
    for item in results:
        if item["target"] != "interp" and item["status"] == "pass":
            totals.setdefault(item["target"], []).append(sum(item["timings"].values()) * 1e6)
    return {target: statistics.median(values) for target, values in totals.items()}


class BareEngine:
    """The floor: one Unicorn engine, code loaded and run with nothing but what a run needs."""

    def __init__(self, backend: Any) -> None:
        import unicorn

        from harness.oracle.helpers import HELPERS, call_helper

        uc = unicorn.Uc(backend.uc_arch, backend.uc_mode)
        if backend.uc_cpu is not None:
            uc.ctl_set_cpu_model(backend.uc_cpu)
        backend.configure_engine(uc)
        for base, size in ((layout.CODE_BASE, layout.CODE_SIZE), (layout.STUB_BASE, layout.STUB_SIZE),
                           (layout.SENTINEL_BASE, layout.SENTINEL_SIZE),
                           (layout.NATIVE_STACK_BASE, layout.NATIVE_STACK_SIZE)):
            uc.mem_map(base, size)
        for region in layout.program_regions(0):
            uc.mem_map(region.base, region.size)
        uc.mem_write(layout.STUB_BASE, backend.helper_stub.ljust(layout.STUB_STRIDE, b"\0")
                     * (layout.STUB_SIZE // layout.STUB_STRIDE))
        uc.mem_write(layout.SENTINEL_BASE, backend.sentinel_fill * (layout.SENTINEL_SIZE // len(backend.sentinel_fill)))
        uc.hook_add(unicorn.UC_HOOK_CODE, lambda uc, *_: uc.emu_stop(), begin=layout.SENTINEL_BASE,
                    end=layout.SENTINEL_BASE + layout.SENTINEL_SIZE - 1)

        def stub(uc: Any, address: int, *_: Any) -> None:
            number = (address - layout.STUB_BASE) // layout.STUB_STRIDE
            if (address - layout.STUB_BASE) % layout.STUB_STRIDE == 0 and number in HELPERS:
                args = backend.helper_arguments(uc)
                backend.set_helper_result(uc, call_helper(number, None, args))  # type: ignore[arg-type]

        uc.hook_add(unicorn.UC_HOOK_BLOCK, stub, begin=layout.STUB_BASE, end=layout.STUB_BASE + layout.STUB_SIZE - 1)
        self.uc, self.backend = uc, backend
        order = backend.byte_order
        uc.mem_write(layout.CONTEXT_BASE, (0).to_bytes(8, order) + layout.MEM_BASE.to_bytes(8, order))

    def run(self, code: bytes, memory: bytes) -> int:
        uc, backend = self.uc, self.backend
        uc.mem_write(layout.CODE_BASE, code)
        uc.ctl_remove_cache(layout.CODE_BASE, layout.CODE_BASE + len(code))
        uc.mem_write(layout.MEM_BASE, memory)
        uc.mem_write(layout.PACKET_LEN_ADDR, len(memory).to_bytes(8, backend.byte_order))
        uc.reg_write(backend.stack_pointer, layout.NATIVE_STACK_TOP)
        backend.set_entry_arguments(uc, layout.MEM_BASE, len(memory))
        backend.set_return_address(uc, layout.SENTINEL_BASE)
        # the instruction budget as the runner passes it: on MIPS64 Unicorn's counting hook is also
        # what keeps a long straight-line block from crashing the process (harness/running/fidelity.py)
        count = layout.DEFAULT_INSN_BUDGET * layout.NATIVE_BUDGET_FACTOR if backend.supports_count else 0
        uc.emu_start(layout.CODE_BASE, 0, timeout=10_000_000, count=count)
        return backend.result(uc)


def floor_costs(paths: list[str]) -> dict[str, dict[str, float]]:
    """Per architecture, median microseconds to assemble (keystone) and run (bare Unicorn) each case.

    Cases with helper calls that touch memory, maps or several events are left out: the
    floor has no memory view for helpers. s390x and riscv64 have no keystone: their "assemble"
    is the backend's whole encoder (translation and encoding), which is what stands in for it.
    """
    import keystone

    import arches
    from harness.running.conformance import load_checked

    floors: dict[str, dict[str, float]] = {}
    for name in arches.names():
        backend = arches.get(name)
        engine = BareEngine(backend)
        assembler = keystone.Ks(backend.ks_arch, backend.ks_mode) if backend.ks_arch is not None else None
        assemble_times, run_times = [], []
        for path in paths:
            loaded = load_checked(path)
            case = loaded.case
            if loaded.runnable is None or case is None or case.maps or case.events or case.expect_error:
                continue
            if any(insn.opcode == 0x85 and insn.imm in (101, 103) for insn in loaded.runnable.insns):
                continue  # memfrob/strcmp need the harness's memory view
            native = backend.compile(loaded.runnable)
            started = time.perf_counter()
            if assembler is not None:
                code = bytes(assembler.asm(native.assembly, layout.CODE_BASE)[0])
            else:
                code = native.code
            assembled = time.perf_counter()
            engine.run(code, case.memory)
            finished = time.perf_counter()
            # s390x has no assembler: its own encoder (translate + encode) stands in for keystone
            encoder = native.translate_seconds + native.assemble_seconds
            assemble_times.append(((assembled - started) if assembler else encoder) * 1e6)
            run_times.append((finished - assembled) * 1e6)
        floors[name] = {"assemble": statistics.median(assemble_times), "run": statistics.median(run_times),
                        "total": statistics.median(a + r for a, r in zip(assemble_times, run_times)),
                        "cases": len(run_times)}
    return floors


def harness_costs_in_process(paths: list[str]) -> tuple[dict[str, float], float]:
    """Median microseconds per (case, target) through run_item, native caches cold.

    Work shared by a case's targets (parsing, validation, the interpreter in both byte
    orders) is measured once per case and its median divided among the architectures,
    as it is in a real run; the rest is each target's own translate, assemble, emulate
    and compare.
    """
    import arches
    from harness.running import conformance

    conformance.clear_caches()
    shared: list[float] = []
    for path in paths:
        started = time.perf_counter()
        loaded = conformance.load_checked(path)
        if loaded.runnable is not None:
            conformance.oracle(path, "little")
            conformance.oracle(path, "big")
        shared.append((time.perf_counter() - started) * 1e6)
    share = statistics.median(shared) / max(1, len(arches.names()))
    costs: dict[str, list[float]] = {}
    for name in arches.names():
        arches.get(name).clear_cache()
        for path in paths:
            started = time.perf_counter()
            result = conformance.run_item(path, name)
            if result.status == "pass":
                costs.setdefault(name, []).append((time.perf_counter() - started) * 1e6)
    return {name: statistics.median(values) + share for name, values in costs.items()}, share


def interpreter_speed() -> float:
    """eBPF instructions per second on a loop-heavy program (a 1M-instruction countdown)."""
    from harness.cases.asm import assemble
    from harness.oracle.interpreter import interpret

    program = assemble("mov %r0, 0\nmov %r1, 250000\nloop:\nadd %r0, %r1\nsub %r1, 1\njne %r1, 0, loop\nexit")
    started = time.perf_counter()
    outcome = interpret(program, b"", "little")
    return outcome.insns_executed / (time.perf_counter() - started)


def validator_shapes(size: int) -> dict[str, Any]:
    """Programs of about ``size`` slots whose control flow or call graph is hard on a validator."""
    from harness import isa
    from harness.isa import Insn, Program

    mov = lambda dst, imm: Insn(isa.ALU64 | isa.MOV | isa.K, dst, 0, 0, imm)  # noqa: E731
    exit_ = Insn(isa.JMP | isa.EXIT)

    def call(offset: int) -> Insn:
        return Insn(isa.JMP | isa.CALL, 0, isa.CALL_LOCAL, 0, offset)

    diamonds = [mov(0, 0)]
    for _ in range(size // 4):  # if (r2 == 0) r3 = 1; r0 += 1: a join every four slots
        diamonds += [Insn(isa.JMP | isa.JEQ | isa.K, 2, 0, 1, 0), mov(3, 1),
                     Insn(isa.ALU64 | isa.ADD | isa.K, 0, 0, 0, 1), Insn(isa.JMP | isa.JA, 0, 0, 0, 0)]
    loops = [mov(0, 0)]
    for _ in range(size // 2):  # a backward edge every two slots
        loops += [Insn(isa.ALU64 | isa.ADD | isa.K, 0, 0, 0, 1), Insn(isa.JMP | isa.JLT | isa.K, 0, 0, -2, 5)]
    functions = size // 3  # main calls every function once: a wide, shallow call graph
    wide = [call(functions + 1 + index) for index in range(functions)] + [mov(0, 0), exit_]
    wide += [item for _ in range(functions) for item in (mov(0, 1), exit_)]
    chain = [item for _ in range(size // 2) for item in (call(1), exit_)]  # each function calls the next
    chain += [mov(0, 0)]  # rejected at the ninth frame, after the whole chain has been walked
    fan = []  # f(i) calls f(i+1) and f(i+2): exponential for a validator without memoisation
    count = size // 4
    for index in range(count):
        here = len(fan)
        if index + 2 < count:
            fan += [call(4 * (index + 1) - here - 1), call(4 * (index + 2) - here - 2), mov(0, 0), exit_]
        else:
            fan += [mov(0, 0), mov(0, 0), mov(0, 0), exit_]
    return {"diamonds": Program(tuple(diamonds + [exit_])), "loops": Program(tuple(loops + [exit_])),
            "wide call graph": Program(tuple(wide)), "call chain": Program(tuple(chain + [exit_])),
            "call fan": Program(tuple(fan))}


def validator_scaling(sizes: tuple[int, ...] = (4000, 16000, 64000)) -> dict[str, dict[int, float]]:
    """Microseconds per slot to validate (accept or reject) each shape at each size."""
    from harness.oracle.validator import ValidationError, validate

    figures: dict[str, dict[int, float]] = {}
    for size in sizes:
        for name, program in validator_shapes(size).items():
            started = time.perf_counter()
            try:
                validate(program)
            except ValidationError:
                pass
            figures.setdefault(name, {})[size] = (time.perf_counter() - started) * 1e6 / len(program)
    return figures


def report_cost(results_path: str, cells: int) -> float:
    """Microseconds per cell to write all report artefacts (HTML with native listings included)."""
    from harness.reporting.report import write_reports

    out = tempfile.mkdtemp(prefix="bench-report-")
    started = time.perf_counter()
    write_reports(results_path, out)
    elapsed = time.perf_counter() - started
    shutil.rmtree(out, ignore_errors=True)
    return elapsed * 1e6 / max(1, cells)


def copied_corpus(hand_written: list[str], factor: int) -> Path:
    """A temporary folder holding ``factor`` copies of the cases (with the pcap files they read)."""
    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    for copy in range(factor):
        for path in hand_written:
            target = root / f"copy{copy}" / Path(path).relative_to("corpus")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
            for sibling in Path(path).parent.glob("*.pcap"):
                shutil.copy(sibling, target.parent / sibling.name)
    return root


def scaling(hand_written: list[str], factors: tuple[int, ...] = (1, 2, 4, 8)) -> dict[int, RunFigures]:
    """``run -n 2`` on the hand-written corpus copied ``factor`` times, on every built-in target."""
    figures = {}
    for factor in factors:
        root = copied_corpus(hand_written, factor)
        figures[factor] = run_cli([str(root)], "2", str(root / "results.json"))
        shutil.rmtree(root, ignore_errors=True)
    return figures


def target_counts() -> list[tuple[str, int]]:
    """(--arch value, number of targets): the interpreter alone, then more architectures, up to
    every target of ``default`` (external JITs included when configured) when it has more."""
    import arches
    from harness.running.targets import select

    built_in = ["interp"] + arches.names()
    counts = [count for count in (1, 2, 4, 8) if count < len(built_in)] + [len(built_in)]
    choices = [(",".join(built_in[:count]), count) for count in counts]
    default = select("default").targets
    if len(default) > len(built_in):
        choices.append((",".join(default), len(default)))
    return choices


def target_scaling(hand_written: list[str]) -> dict[int, RunFigures]:
    """``run -n 2`` on the hand-written corpus with 1 to all targets."""
    root = copied_corpus(hand_written, 1)
    figures = {count: run_cli([str(root)], "2", str(root / "results.json"), arch=arch)
               for arch, count in target_counts()}
    shutil.rmtree(root, ignore_errors=True)
    return figures


def _per_result_line(label: str, run: RunFigures) -> str:
    per = lambda seconds: seconds * 1e6 / max(1, run.results)  # noqa: E731
    return (f"  {label}: {run.wall:6.1f} s wall, {run.results:>6} results in {run.items:>5} items, CPU per "
            f"result: controller {per(run.controller_cpu):5.0f} us + workers {per(run.workers_cpu):6.0f} us, "
            f"controller share {run.controller_cpu / max(run.cpu, 1e-9):5.1%}")


def sampled(paths: list[str], size: int | None) -> list[str]:
    """``size`` of ``paths`` spread evenly over them (every folder represented), or all of them."""
    if not size or size >= len(paths):
        return paths
    return [paths[index * len(paths) // size] for index in range(size)]


def main(out_path: str = "bench/out/bench.json", quick: bool = False, scale_only: bool = False,
         sample: int | None = None) -> dict[str, Any]:
    """Every figure; ``scale_only``: only the scale goal's (issue #18): the full corpus with one and
    two workers, the case work alone, and the scaling series, on ``sample`` hand-written cases."""
    import arches
    from harness.cases.corpus import find_case_files

    figures: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                           "load_average": os.getloadavg()}}
    temp = Path(tempfile.mkdtemp(prefix="bench-"))
    targets = len(arches.names()) + 1  # the architectures and the interpreter
    print(f"full corpus, all {targets} targets, through python -m harness run "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs):")
    worker_counts = ("1", "2") if scale_only else ("0", "1", "2")
    runs = {workers: run_cli(["corpus"], workers, str(temp / f"n{workers}.json")) for workers in worker_counts}
    work_cpu, work_results = case_work_cpu(["corpus"])
    one, two = runs["1"], runs["2"]
    first = runs[worker_counts[0]]
    results = json.loads((temp / f"n{worker_counts[0]}.json").read_text())["results"]
    count = len(results)
    speedup = one.wall / two.wall
    fixed = {workers: max(0.0, run.cpu - work_cpu) for workers, run in runs.items()}
    fixed_share = {workers: fixed[workers] / run.cpu for workers, run in runs.items()}
    figures["full_run"] = {"results": count, "items": two.items, "wall_n0": runs["0"].wall if "0" in runs else None,
                           "wall_n1": one.wall, "wall_n2": two.wall, "speedup_n2": speedup,
                           "speedup_n2_over_in_process": first.wall / two.wall if "0" in runs else None,
                           "results_per_second_n2": count / two.wall, "items_per_second_n2": two.items / two.wall,
                           "runs": {workers: asdict(run) for workers, run in runs.items()},
                           "case_work_cpu": work_cpu, "fixed_cpu": fixed, "fixed_share": fixed_share}
    in_process = f"in-process (-n 0) {runs['0'].wall:.1f} s, " if "0" in runs else ""
    print(f"  {count} (case, target) results in {two.items} pytest items: {in_process}"
          f"one worker (-n 1) {one.wall:.1f} s, two workers (-n 2) {two.wall:.1f} s")
    over = f" (over in-process: {runs['0'].wall / two.wall:.2f}x)" if "0" in runs else ""
    print(f"  speed-up -n 2 over -n 1: {speedup:.2f}x{over}, "
          f"{count / two.wall:.0f} results/s and {two.items / two.wall:.0f} items/s with -n 2")
    print(f"  CPU seconds: the case work alone {work_cpu:.1f} ({work_results} run_item calls, no pytest)")
    for workers, run in runs.items():
        print(f"    -n {workers}: controller {run.controller_cpu:5.1f} + workers {run.workers_cpu:5.1f} = "
              f"{run.cpu:5.1f}; controller share {run.controller_cpu / run.cpu:5.1%}, fixed cost (all but the "
              f"case work) {fixed[workers]:4.1f} s = {fixed_share[workers]:5.1%} of the run, "
              f"{fixed[workers] * 1e6 / count:4.0f} us per result")
    if two.controller_cpu and one.workers_cpu:
        # -n 1: the worker is the bottleneck (the controller has the other core); -n 2: three processes
        # share two cores, and the controller is serial
        bound = one.workers_cpu / max(two.cpu / 2, two.controller_cpu)
        figures["full_run"]["speedup_cpu_bound"] = bound
        print(f"  the speed-up these CPU times allow on 2 idle cores: {bound:.2f}x "
              "(-n 1 does its worker's work while the controller has the other core)")
    two_results = json.loads((temp / "n2.json").read_text())["results"]
    peaks: dict[str, int] = {}
    for item in two_results:
        peaks[item.get("worker", "?")] = max(peaks.get(item.get("worker", "?"), 0), item.get("peak_rss_kb", 0))
    figures["peak_rss_mb_per_worker"] = {worker: kb / 1024 for worker, kb in sorted(peaks.items())}
    print("  peak memory per worker: " + ", ".join(f"{w} {kb / 1024:.0f} MiB" for w, kb in sorted(peaks.items())))
    paths = [str(p) for p in find_case_files(["corpus"])]
    checks = {"-n 2 at least 1.8x faster than -n 1": speedup >= TARGETS["speedup_n2_min"],
              "the harness's fixed cost under 10% of the -n 2 run's CPU time":
                  fixed_share["2"] < TARGETS["fixed_cost_share_max"]}
    if not scale_only:
        checks.update(_phases_floor_and_engine(figures, results, count, temp, paths, targets, two))
    if not quick:
        _scaling_series(figures, sampled([p for p in paths if "/families/" not in p], sample), targets)
    figures["targets_met"] = checks
    print("\ntargets:")
    for label, ok in checks.items():
        print(f"  [{'met' if ok else 'MISSED'}] {label}")
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    Path(out_path).write_text(json.dumps(figures, indent=1, default=str) + "\n")
    print(f"\nfigures written to {out_path}")
    shutil.rmtree(temp, ignore_errors=True)
    return figures


def _phases_floor_and_engine(figures: dict[str, Any], results: list[dict[str, Any]], count: int, temp: Path,
                             paths: list[str], targets: int, two: RunFigures) -> dict[str, bool]:
    """Phase medians, report cost, harness vs floor, interpreter and validator; their checks."""
    medians = phase_medians(results)
    figures["phase_median_us"] = medians
    cell_report = report_cost(str(temp / "n0.json"), count)
    figures["report_us_per_cell"] = cell_report
    print("\nmedian microseconds per case and target, by phase (in-process run):")
    print(f"  {'target':<9}" + "".join(f"{p:>10}" for p in PHASES))
    for target in ["interp"] + [t for t in medians if t != "interp"]:
        print(f"  {target:<9}" + "".join(f"{medians[target].get(p, 0):>10.0f}" if p in medians[target]
                                        else f"{'-':>10}" for p in PHASES))
    print(f"  report writing: {cell_report:.0f} us per cell (HTML with native listings, Markdown, JUnit)")

    floor = floor_costs(paths)
    harness, share = harness_costs_in_process(paths)
    figures["floor_us"] = floor
    figures["harness_us"] = harness
    figures["shared_us_per_item"] = share
    print("\nharness vs floor (keystone + bare Unicorn, one reused engine), median us per case and target")
    print(f"  (the harness figure includes {share:.0f} us: its share of parsing and interpreting the case):")
    ratios = {}
    for name, cost in floor.items():
        ratios[name] = harness[name] / cost["total"]
        print(f"  {name:<9} harness {harness[name]:>8.0f}   floor {cost['total']:>8.0f} "
              f"(assemble {cost['assemble']:.0f} + run {cost['run']:.0f}, {cost['cases']} cases)"
              f"   ratio {ratios[name]:.2f}")
    figures["harness_over_floor"] = ratios

    speed = interpreter_speed()
    figures["interpreter_insns_per_second"] = speed
    print(f"\ninterpreter: {speed / 1e6:.2f} M eBPF instructions/s on a loop")

    shapes = validator_scaling()
    figures["validator_us_per_slot"] = shapes
    print("\nvalidator, microseconds per slot (accept or reject) by program shape and size:")
    for name, by_size in shapes.items():
        print(f"  {name:<16}" + "".join(f"  {size:>6} slots {cost:6.1f}" for size, cost in by_size.items()))
    linear = all(by_size[max(by_size)] <= 2 * by_size[min(by_size)] + 1 for by_size in shapes.values())

    return {
        "harness within 3x of the floor on every target": all(r <= TARGETS["harness_vs_floor_max"] for r in ratios.values()),
        f"full corpus on {targets} targets under 30 s with -n 2": two.wall < TARGETS["full_run_n2_seconds"],
        "interpreter at least 1M instructions/s": speed >= TARGETS["interpreter_insns_per_second_min"],
        "validator linear: cost per slot at 16x the size within 2x (+1 us)": linear,
    }


def _scaling_series(figures: dict[str, Any], hand_written: list[str], targets: int) -> None:
    """The hand-written cases repeated 1x-8x on every target, then run on 1 to all targets."""
    scale = scaling(hand_written)
    figures["scaling"] = {factor: asdict(run) for factor, run in scale.items()}
    print(f"\nscaling with the corpus ({len(hand_written)} hand-written cases repeated, all {targets} "
          "targets, -n 2):")
    for factor, run in scale.items():
        print(_per_result_line(f"{factor}x", run) + f"; {run.wall / factor:5.2f} s per copy")
    by_targets = target_scaling(hand_written)
    figures["target_scaling"] = {count: asdict(run) for count, run in by_targets.items()}
    print(f"\nscaling with the number of targets ({len(hand_written)} hand-written cases, -n 2):")
    for count, run in by_targets.items():
        print(_per_result_line(f"{count:>2} target(s)", run))


if __name__ == "__main__":  # the measured pieces main() starts in fresh processes
    if sys.argv[1:2] == ["run"]:
        sys.exit(_measured_main(sys.argv[1:]))
    if sys.argv[1:2] == ["work"]:
        sys.exit(_work_main(sys.argv[2], sys.argv[3:]))
    sys.exit("usage: python -m harness.tools.bench run ARGS... | work ARCH PATHS...  (use python -m harness bench)")
