"""The command line: ``ebpf-jit-harness`` (or ``python -m harness``) ``run|report|show|new|list|...``.

``run`` drives the same pytest plugin a plain ``pytest`` uses, so the CLI, CI and
an IDE all see the same items, results and JSON. Exit status everywhere, pytest's
where pytest has one: 0 success, 1 a case failed (or a report compared worse than
its baseline), 2 bad usage or unreadable input, 5 no case ran, 130 interrupted by
Ctrl-C (SIGINT) and 143 by SIGTERM, with what finished written and marked as
incomplete. Usage errors are one line on stderr. A reader that stops reading
(``ebpf-jit-harness list | head``) ends the output, not the command: no traceback,
and a run still finishes and writes its results.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

DEFAULT_CORPUS = "corpus"
# pytest's exit status -> ours: its usage error (4) is our 2, like every other usage error here;
# the rest keep pytest's meaning (1 failed, 2 interrupted or a collection error, 3 internal, 5 no tests)
PYTEST_STATUS = {0: 0, 1: 1, 4: 2}
TB_STYLES = ("auto", "long", "short", "line", "native", "no")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (``--help`` has the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _program_name() -> str:
    """How the user started us: the console script's name, or ``python -m harness``."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "python -m harness" if name in ("", "__main__.py", "-c") else name


def worker_count_option(text: str) -> str:
    """``-n``: ``auto`` or a whole number of workers, 0 or more (checked before anything runs)."""
    if text == "auto":
        return text
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of workers or 'auto', got {text!r}") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"expected 0 (run in this process), a positive number or 'auto', "
                                         f"got {count}")
    return str(count)


class ClosedPipeGuard:
    """Standard output that turns a reader closing the pipe (``| head``) into silence.

    The first write that meets a closed pipe points the file descriptor at /dev/null,
    so nothing later (pytest's summary, the interpreter's final flush) raises either.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.closed = False

    def _silence(self) -> None:
        self.closed = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def write(self, text: str) -> int:
        if not self.closed:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self.closed:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._silence()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _targets(text: str, command: str) -> list[str] | None:
    """The chosen targets, or None after printing why the choice is bad (unknown, or an
    external JIT that is unavailable here); notes on configured external JITs left out go to stderr."""
    from harness.running.targets import TargetError, select

    try:
        chosen = select(text)
    except TargetError as error:
        print(f"harness {command}: {error}", file=sys.stderr)
        return None
    for note in chosen.notes:
        print(f"harness {command}: not run: {note}", file=sys.stderr)
    return chosen.targets


def _run(args: argparse.Namespace) -> int:
    from harness.running.output import FolderBusy, FolderLock, file_target_problem, folder_target_problem

    paths = args.paths or [DEFAULT_CORPUS]
    # a node id names a file and one target: corpus/x.data::arm64
    missing = [path for path in paths if not Path(path.split("::", 1)[0]).exists()]
    if missing:
        print(f"harness run: no such file or directory (or a broken link): {', '.join(missing)}",
              file=sys.stderr)
        return 2
    if _targets(args.arch, "run") is None:
        return 2
    # Where the results go is checked before any case runs, not found out after the last one.
    problems = ([f"--json: {file_target_problem(args.json)}"] if args.json and file_target_problem(args.json)
                else []) + ([f"--report: {folder_target_problem(args.report)}"]
                            if args.report and folder_target_problem(args.report) else [])
    if problems:
        print("\n".join(f"harness run: {problem}" for problem in problems), file=sys.stderr)
        return 2
    lock = FolderLock(args.report) if args.report else None
    try:
        if lock is not None:
            lock.acquire()  # two runs writing one report folder would mix their files
    except FolderBusy as error:
        print(f"harness run: --report: {error}", file=sys.stderr)
        return 2
    try:
        return _run_locked(args, paths)
    finally:
        if lock is not None:
            lock.release()


def _run_locked(args: argparse.Namespace, paths: list[str]) -> int:
    import pytest

    from harness.running.plugin import interrupting_signal

    # --assert=plain: corpus items use no assert statements, and rewriting costs 1.5 s per process.
    # The plugin is named as its entry point names it, so an installed package does not load it twice.
    pytest_args = [*paths, "-p", "harness.running.plugin", "--targets", args.arch, "--assert=plain",
                   "-o", "python_files=", "--rootdir", str(Path.cwd())]
    json_path = args.json or (str(Path(args.report) / "results.json") if args.report else None)
    if json_path:
        pytest_args += ["--harness-json", json_path]
    if not args.verbose:
        pytest_args += ["--harness-progress", "auto"]
    if args.allow_unsupported:
        pytest_args.append("--allow-unsupported")
    if args.helpers:
        pytest_args += ["--helpers", args.helpers]
    if args.empty_memory:
        pytest_args += ["--empty-memory", args.empty_memory]
    if args.results:
        pytest_args += ["--results", args.results]
    if args.workers != "0":  # as in pytest-xdist: 0 runs in this process, N >= 1 starts N workers
        # load, not loadfile: pytest-xdist 3.8's loadfile scheduler hangs when a worker dies and is
        # replaced (pytest-xdist #1323, #1378); load re-runs a lost worker's queue elsewhere and
        # sends items in consecutive batches, so a case's six items still mostly share a worker.
        pytest_args += ["-n", args.workers, "--dist", "load"]
    if args.verbose:
        pytest_args.append("-v")
    else:  # no per-item output: pytest's header, file names and percentages have nothing to say here
        pytest_args += ["--no-header", "-o", "verbosity_test_cases=-1", "-o", "console_output_style=classic"]
    if args.exitfirst:
        pytest_args.append("-x")
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    pytest_args += _pytest_options(args)
    code = pytest.main(pytest_args)
    status = PYTEST_STATUS.get(int(code), int(code))
    received = interrupting_signal()
    if received is not None:
        status = 128 + received  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
    if args.report and json_path and Path(json_path).exists():
        written = _write_reports(json_path, args.report, None)
        if written and not status:
            status = written
    return status


def _pytest_options(args: argparse.Namespace) -> list[str]:
    """The pytest options ``run`` passes through: the named ones, then everything after ``--``."""
    options = ["--lf"] if args.last_failed else []
    options += ["--ff"] if args.failed_first else []
    for flag, value in (("--tb", args.tb), ("--durations", args.durations), ("-r", args.report_chars),
                        ("--junitxml", args.junitxml), ("--maxfail", args.maxfail)):
        if value is not None:
            options.append(f"{flag}={value}" if flag.startswith("--") else f"{flag}{value}")
    return options + list(args.pytest_args or [])


def _write_reports(results: str, out: str, baseline: str | None) -> int:
    from harness.reporting.model import ReportError
    from harness.reporting.report import write_reports

    try:
        written = write_reports(results, out, baseline)
    except ReportError as error:
        print(f"harness report: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"harness report: cannot write into {out}: {error.strerror or error}", file=sys.stderr)
        return 2
    print(f"report: {written.html}\nsummary: {written.markdown}\njunit: {written.junit}")
    if written.data.stopped:
        print(f"INCOMPLETE RUN: {written.data.stopped}; {written.data.not_run} item(s) have no result")
    changes = written.data.changes
    if changes is not None:
        from harness.reporting.report import change_counts

        print(f"against {baseline}: {change_counts(changes)}")
        for change in changes:
            if change.kind in ("broken", "fixed"):
                print(f"  {change.kind:<7} {change.case} [{change.target}] {change.old} -> {change.new}")
        if any(change.kind == "broken" for change in changes):
            return 1  # compared worse than the baseline: CI can fail on it
    return 0


def _report(args: argparse.Namespace) -> int:
    from harness.running.output import FolderBusy, FolderLock, folder_target_problem

    problem = folder_target_problem(args.out)
    if problem:
        print(f"harness report: --out: {problem}", file=sys.stderr)
        return 2
    try:
        with FolderLock(args.out):
            return _write_reports(args.results, args.out, args.baseline)
    except FolderBusy as error:
        print(f"harness report: --out: {error}", file=sys.stderr)
        return 2


def _show(args: argparse.Namespace) -> int:
    from harness.reporting.listing import show

    if not Path(args.case).is_file():
        print(f"harness show: no such case file: {args.case}", file=sys.stderr)
        return 2
    targets = _targets(args.arch, "show")
    if targets is None:
        return 2
    shown = show(args.case, targets)
    if shown.error:
        print(f"harness show: {shown.error}", file=sys.stderr)
        return 2
    print(shown.text)
    return 1 if shown.failing else 0


def _new(args: argparse.Namespace) -> int:
    from harness.cases.casetools import new_case

    try:
        path = new_case(args.path, args.description or "")
    except FileExistsError as error:
        print(f"harness new: {error}; pick another name", file=sys.stderr)
        return 2
    print(f"created {path}: write the program, then replace TODO under -- result by the value you\n"
          f"reasoned by hand (until then the case is an error on every target), and run\n"
          f"  ebpf-jit-harness run {path}")
    return 0


def _import_test_bpf(args: argparse.Namespace) -> int:
    from harness.tools.test_bpf import KernelTestImportError, import_test_bpf

    try:
        result = import_test_bpf(Path(args.source), Path(args.out))
    except KernelTestImportError as error:
        print(f"harness import-test-bpf: {error}", file=sys.stderr)
        return 2
    print(result.summary())
    print(f"run them: python -m harness run {args.out}   (huge/: programs over 65,536 instructions, minutes per target each)")
    return 0


def _list(args: argparse.Namespace) -> int:
    from harness.reporting.listing import corpus_listing

    paths = args.paths or [DEFAULT_CORPUS]
    missing = [path for path in paths if not Path(path).exists()]
    if missing:
        print(f"harness list: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    targets = _targets(args.arch, "list")
    if targets is None:
        return 2
    print(corpus_listing(paths, targets, verbose=args.verbose))
    return 0


def _fuzz(args: argparse.Namespace) -> int:
    from harness.tools.fuzz import fuzz

    targets = _targets(args.arch, "fuzz")
    if targets is None:
        return 2
    targets = [target for target in targets if target != "interp"]
    if not targets:
        print("harness fuzz: choose at least one architecture", file=sys.stderr)
        return 2
    if args.far < 0:
        print(f"harness fuzz: --far {args.far}: a number of slots, 0 or more", file=sys.stderr)
        return 2
    if args.count is None and args.seconds is None:
        args.seconds = 10.0
    workers = _worker_count(args.workers)
    interactive = sys.stderr.isatty()

    def progress(stats) -> None:
        if interactive:
            rate = stats.programs / stats.seconds if stats.seconds else 0.0
            print(f"\r{stats.programs} programs, {rate:,.0f}/s, {len(stats.mismatches)} mismatch(es), "
                  f"{stats.seconds:5.1f}s", end="", file=sys.stderr, flush=True)

    weights = None
    if args.steer:
        from harness.tools.steer import steer

        weights, note = steer(targets, args.seed)
        print(note)
    stats = fuzz(targets, seed=args.seed, count=args.count, seconds=args.seconds, workers=workers,
                 size=args.size, progress=progress, weights=weights, far=args.far)
    if interactive:
        print(file=sys.stderr)
    rate = stats.programs / stats.seconds if stats.seconds else 0.0
    print(f"fuzz: {stats.programs} programs x {len(targets)} targets in {stats.seconds:.1f} s "
          f"({rate:,.1f} programs/s, {stats.runs / stats.seconds if stats.seconds else 0:,.1f} runs/s), "
          f"seeds {args.seed}..{args.seed + stats.programs - 1}, {workers} worker(s)")
    for target, count in sorted(stats.unsupported.items()):
        print(f"  {target}: {count} program(s) used an instruction the backend reports unsupported")
    for target, count in sorted(stats.rejected.items()):
        print(f"  {target}: {count} program(s) rejected by the JIT itself (not run)")
    print(f"mismatches: {stats.raw_mismatches} in {len(stats.mismatches)} signature(s)")
    from harness.tools.fuzz import difference_text, write_finding

    for mismatch in stats.mismatches:
        path, written = write_finding(mismatch, Path(args.out))
        print(f"  {' | '.join(mismatch.signature)}: seed {mismatch.seed}, {mismatch.original_size} -> "
              f"{len(mismatch.program.insns)} slots; {difference_text(mismatch.expected, mismatch.actual)[1]}\n"
              f"    {'written to' if written else 'already on file:'} {path}")
    return 1 if stats.mismatches else 0


def _mutate(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from harness.cases.corpus import find_case_files
    from harness.tools.mutate import EXPLAINED, run_catalogue, score_table

    targets = _targets(args.arch, "mutate")
    if targets is None:
        return 2
    named = {name.strip() for name in args.arch.split(",")}
    external = [target for target in targets if target in _external_names()]
    if named & set(external):
        print(f"harness mutate: {', '.join(sorted(named & set(external)))}: an external JIT's code cannot be "
              f"mutated (mutation testing rewrites the output of backends built on arches/driver.py)",
              file=sys.stderr)
        return 2
    targets = [target for target in targets if target not in external]  # 'default' may add them
    arches_chosen = [target for target in targets if target != "interp"]
    paths = args.paths or [DEFAULT_CORPUS]
    missing = [path for path in paths if not Path(path).exists()]
    if missing or not arches_chosen:
        print(f"harness mutate: {'no such path: ' + ', '.join(missing) if missing else 'choose an architecture'}",
              file=sys.stderr)
        return 2
    cases = [str(path) for path in find_case_files(paths)]
    done = [0]
    interactive = sys.stderr.isatty()

    def progress(result) -> None:
        done[0] += 1
        if interactive:
            print(f"\r{done[0]} mutants run", end="", file=sys.stderr, flush=True)

    if not args.ebpf:
        from harness.tools.native_mutate import main as native_main

        return native_main(arches_chosen, cases, args, _worker_count(args.workers), progress)
    results = run_catalogue(arches_chosen, cases, _worker_count(args.workers), progress)
    if interactive:
        print(file=sys.stderr)
    print(score_table(results, verbose=args.verbose))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n")
        print(f"results written to {args.json}")
    return 0 if all(r.killed or (r.mutant, r.arch) in EXPLAINED for r in results) else 1


def _coverage(args: argparse.Namespace) -> int:
    from harness.cases.corpus import find_case_files
    from harness.tools.backend_coverage import main as coverage_main

    targets = _targets(args.arch, "coverage")
    paths = args.paths or [DEFAULT_CORPUS]
    missing = [path for path in paths if not Path(path).exists()]
    if targets is None or missing:
        if missing:
            print(f"harness coverage: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    external = set(_external_names())
    named = {name.strip() for name in args.arch.split(",")} & external
    if named:
        print(f"harness coverage: {', '.join(sorted(named))}: an external JIT is not Python code under arches/ "
              f"(coverage measures the backends built on arches/driver.py)", file=sys.stderr)
        return 2
    cases = [str(path) for path in find_case_files(paths)]
    return coverage_main([t for t in targets if t != "interp" and t not in external], cases,
                         _worker_count(args.workers), args)


def _bench(args: argparse.Namespace) -> int:
    if args.huge:
        return _bench_long(args)
    from harness.tools.bench import main as bench_main

    figures = bench_main(args.out or "bench/out/bench.json", quick=args.quick, scale_only=args.scale,
                         sample=args.sample)
    return 0 if all(figures["targets_met"].values()) else 1


def _bench_long(args: argparse.Namespace) -> int:
    import json

    from harness.oracle.validator import MAX_SLOTS
    from harness.tools import bench_long

    targets = _targets(args.arch, "bench")
    if targets is None:
        return 2
    try:
        sizes = tuple(int(size.replace("_", "").replace(",", "")) for size in args.sizes.split())
    except ValueError:
        sizes = ()
    if not sizes or any(not 16 <= size <= MAX_SLOTS for size in sizes):
        print(f"harness bench: --sizes takes space-separated slot counts from 16 to {MAX_SLOTS} "
              f"(got {args.sizes!r})", file=sys.stderr)
        return 2
    if args.repeat is not None and args.repeat < 1:
        print("harness bench: --repeat takes a count of 1 or more", file=sys.stderr)
        return 2
    figures = bench_long.main(targets, sizes, args.repeat)
    out = Path(args.out or "bench/out/bench-huge.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1) + "\n")
    linear = all(figures["linear"].values())
    print(f"{'every item passed' if figures['all_passed'] else 'NOT every item passed'}; "
          f"{'cost grows linearly' if linear else 'cost does NOT grow linearly'} everywhere; figures written to {out}")
    return 0 if figures["all_passed"] and linear else 1


def _external_names() -> list[str]:
    import arches

    return arches.external_names()


def _worker_count(text: str) -> int:
    import os

    return (os.cpu_count() or 1) if text == "auto" else max(1, int(text))


def build_parser() -> argparse.ArgumentParser:
    import arches  # the registry only: backends load lazily
    from harness.about import version_line

    parser = _Parser(
        prog=_program_name(),
        description="eBPF JIT conformance harness: run corpus cases on the reference "
                    "interpreter and on JIT backends emulated under Unicorn.")
    parser.add_argument("--version", action="version", version=version_line(),
                        help="print the versions of the harness, Unicorn, keystone and capstone")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)
    run = commands.add_parser(
        "run", help="run corpus cases on targets and compare with the interpreter",
        description="Run corpus cases (default: corpus/) on the chosen targets. Every "
                    "(case, target) gets one result; a run of a program stops after 5 s and any "
                    "phase of a case after 15 s (a 'limit'). Exit status: 0 when every case "
                    "passes, 1 on any fail or error, 2 on bad usage, 5 when no case ran, 130 on "
                    "Ctrl-C (143 on SIGTERM): what finished is written and marked incomplete.",
        epilog="Any other pytest option goes after '--': everything after it is passed to pytest "
               "unchanged, e.g. 'run corpus/alu32 -- --color=no --collect-only'.")
    run.add_argument("paths", nargs="*", metavar="PATH",
                     help=".data files or directories (default: corpus/), or one case on one target: "
                          "corpus/x.data::arm64")
    run.add_argument("--arch", default="default", metavar="NAME[,NAME]|all|default",
                     help="targets: 'default' (the built-in targets plus every configured external "
                          "JIT, e.g. uBPF's when UBPF_SRC is set), 'all' (the built-in targets), or a "
                          f"comma list of interp, architecture names ({', '.join(arches.names())}) and "
                          "external JIT names (e.g. ubpf-x86_64, ubpf-arm64)")
    run.add_argument("-n", dest="workers", default="auto", metavar="N|auto", type=worker_count_option,
                     help="worker processes (pytest-xdist): 0 runs in this process, N starts N workers; "
                          "default auto (one per core)")
    run.add_argument("--json", metavar="FILE", help="write results and summary as JSON")
    run.add_argument("--report", metavar="DIR",
                     help="also write report.html, summary.md and junit.xml (and results.json "
                          "unless --json is given) into the folder DIR; one run at a time may "
                          "write into a folder")
    run.add_argument("--allow-unsupported", action="store_true",
                     help="exit 0 even when a backend reports unsupported instructions")
    run.add_argument("--helpers", choices=("harness", "ubpf"), default=None,
                     help="helper numbering for cases whose folder has no harness.toml saying: "
                          "'harness' (default: test helpers 100-104) or 'ubpf' (uBPF's 0-5; use it "
                          "for bpf_conformance's tests)")
    run.add_argument("--empty-memory", choices=("mapped", "null"), default=None,
                     help="r1 for a case without -- mem whose folder has no harness.toml saying: "
                          "'mapped' (default: 64 KiB of zeros) or 'null' (r1 = 0, as uBPF's runners)")
    run.add_argument("--results", choices=("both-orders", "little-endian"), default=None,
                     help="what -- result speaks for where no harness.toml says: 'both-orders' (default) "
                          "or 'little-endian' (bpf_conformance's and uBPF's values; big-endian targets are "
                          "then held to the big-endian interpreter)")
    run.add_argument("-k", dest="keyword", metavar="EXPR",
                     help="only cases whose name matches this pytest -k expression")
    run.add_argument("-x", dest="exitfirst", action="store_true", help="stop at the first failure")
    run.add_argument("-v", dest="verbose", action="store_true",
                     help="one line per item (default: a progress bar on a terminal)")
    passed = run.add_argument_group("pytest options passed through (see pytest --help)")
    passed.add_argument("--lf", "--last-failed", dest="last_failed", action="store_true",
                        help="run only the items that failed in the last run from this directory "
                             "(pytest's cache, .pytest_cache/)")
    passed.add_argument("--ff", "--failed-first", dest="failed_first", action="store_true",
                        help="run the items that failed last time first, then the rest")
    passed.add_argument("--tb", choices=TB_STYLES, metavar="STYLE",
                        help=f"how failures are printed: {', '.join(TB_STYLES)}")
    passed.add_argument("--durations", type=int, metavar="N", help="list the N slowest items (0: all)")
    passed.add_argument("-r", dest="report_chars", metavar="CHARS",
                        help="short summary of items by outcome, e.g. fE (default), a (all but passed), A")
    passed.add_argument("--junitxml", metavar="FILE", help="pytest's own JUnit XML, one test case per item")
    passed.add_argument("--maxfail", type=int, metavar="N", help="stop after N failures")
    run.set_defaults(handler=_run, pytest_args=[])

    report = commands.add_parser(
        "report", help="write HTML, Markdown and JUnit reports from a results JSON",
        description="Write report.html (matrix, per-cell details, charts), summary.md and "
                    "junit.xml from the JSON that 'run --json' wrote.")
    report.add_argument("results", metavar="RESULTS.json")
    report.add_argument("--out", default="reports", metavar="DIR", help="output folder (default: reports/)")
    report.add_argument("--baseline", metavar="OLD.json",
                        help="an earlier results file: list every cell whose status changed")
    report.set_defaults(handler=_report)

    show_parser = commands.add_parser(
        "show", help="one case: eBPF and native disassembly, and its outcome on each target")
    show_parser.add_argument("case", metavar="CASE", help="a .data file")
    show_parser.add_argument("--arch", default="default", metavar="NAME[,NAME]|all|default",
                             help="targets to run and disassemble for (default: the built-in targets "
                                  "and the configured external JITs)")
    show_parser.set_defaults(handler=_show)

    new = commands.add_parser("new", help="scaffold a new corpus case with every section explained")
    new.add_argument("path", metavar="PATH", help="where to create it, e.g. corpus/alu64/my_case.data")
    new.add_argument("--description", metavar="TEXT", help="the case's description line")
    new.set_defaults(handler=_new)

    importer = commands.add_parser(
        "import-test-bpf", help="convert the Linux kernel's lib/test_bpf.c into corpus cases",
        description="Extract lib/test_bpf.c from a kernel source tree or a linux-source tarball "
                    "(e.g. /usr/src/linux-source-6.1.tar.xz), compile its test table with the "
                    "system C compiler against the harness's shim of kernel macros, and write one "
                    "case per test into DIR (classic/, ebpf/, long/, huge/) with manifest.json "
                    "listing what was converted and what was skipped and why. The cases derive "
                    "from GPL-2.0 source: do not commit them. Exit status 2 when the source cannot "
                    "be read or the table does not compile.")
    importer.add_argument("source", metavar="LINUX_SRC_OR_TARBALL")
    importer.add_argument("--out", required=True, metavar="DIR", help="where the cases go")
    importer.set_defaults(handler=_import_test_bpf)

    list_parser = commands.add_parser(
        "list", help="cases per folder, targets, and opcode coverage per target")
    list_parser.add_argument("paths", nargs="*", metavar="PATH", help="default: corpus/")
    list_parser.add_argument("--arch", default="default", metavar="NAME[,NAME]|all|default")
    list_parser.add_argument("-v", dest="verbose", action="store_true", help="name every case")
    list_parser.set_defaults(handler=_list)

    fuzz_parser = commands.add_parser(
        "fuzz", help="differential fuzzing: generated programs on the interpreter and the targets",
        description="Run generated valid programs on the interpreter and each target; group the mismatches "
                    "by signature (target, first difference, instruction forms), shrink one per signature "
                    "to a minimal .data case under --out. Exit 1 when a mismatch is found.")
    fuzz_parser.add_argument("--arch", default="all", metavar="NAME[,NAME]|all|default",
                             help="architectures to fuzz (default: all, the built-in targets; name "
                                  "external JITs such as ubpf-arm64 to fuzz them)")
    budget = fuzz_parser.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=float, metavar="N", help="run for N seconds (default 10)")
    budget.add_argument("--count", type=int, metavar="N", help="run N programs")
    fuzz_parser.add_argument("--seed", type=int, default=0, metavar="S",
                             help="first seed (programs use S, S+1, ...; default 0)")
    fuzz_parser.add_argument("-n", dest="workers", default="1", metavar="N|auto", type=worker_count_option,
                             help="worker processes")
    fuzz_parser.add_argument("--size", type=int, default=24, metavar="N",
                             help="body instructions per program (default 24)")
    fuzz_parser.add_argument("--far", type=int, default=0, metavar="N",
                             help="make every program large: N slots of never-run helper calls and "
                                  "atomics between its halves, crossed by branches, with helper calls "
                                  "and exits past them (30000: more than 1 MiB of arm64 code, 60000: "
                                  "2 MiB; about 1 s per program and target; default 0)")
    fuzz_parser.add_argument("--out", default="findings", metavar="DIR",
                             help="where shrunk mismatches are written, one per signature, numbered after "
                                  "the files already there (default findings/)")
    fuzz_parser.add_argument("--steer", action="store_true",
                             help="first weigh the generator's pieces by the backend builder branches "
                                  "their programs reach that the corpus does not (coverage.py)")
    fuzz_parser.set_defaults(handler=_fuzz)

    mutate = commands.add_parser(
        "mutate", help="mutation score: does the corpus catch bugs injected into each backend's native code?",
        description="Native-level mutation (default): sample --count mutants per architecture from the "
                    "native code each backend emits for each instruction form (drop, swap, condition, "
                    "immediate, register, width, extension), run the corpus cases that use the form until "
                    "one fails (killed), and report killed / survived / equivalent / stillborn per "
                    "architecture, with the native listing of every survivor and the evidence for every "
                    "equivalent mutant. --ebpf runs the eBPF-level catalogue of real JIT bugs instead. "
                    "Exit 1 when a mutant survives (native) or survives without an explanation (--ebpf).")
    mutate.add_argument("--ebpf", action="store_true",
                        help="the eBPF-level catalogue (bugs injected by rewriting the eBPF program)")
    mutate.add_argument("--count", type=int, default=250, metavar="N",
                        help="native mutants sampled per architecture (default 250)")
    mutate.add_argument("--seed", type=int, default=0, metavar="S", help="sampling seed (default 0)")
    mutate.add_argument("--no-probe", dest="probe", action="store_false",
                        help="skip the equivalence probes of survivors (faster, survivors stay unjudged)")
    mutate.add_argument("--fuzz", type=float, default=0.0, metavar="SECONDS",
                        help="also fuzz each survivor's mutated backend for SECONDS: does the fuzzer kill it?")
    mutate.add_argument("paths", nargs="*", metavar="PATH", help="corpus files or folders (default: corpus/)")
    mutate.add_argument("--arch", default="all", metavar="NAME[,NAME]|all")
    mutate.add_argument("-n", dest="workers", default="auto", metavar="N|auto", type=worker_count_option,
                        help="worker processes")
    mutate.add_argument("--json", metavar="FILE", help="write every mutant's result as JSON")
    mutate.add_argument("-v", dest="verbose", action="store_true",
                        help="list every mutant and architecture with the case that killed it")
    mutate.set_defaults(handler=_mutate)

    coverage_parser = commands.add_parser(
        "coverage", help="backend coverage: builder lines and branches of arches/ that no corpus case reaches",
        description="Run the corpus on each architecture under coverage.py (measuring arches/) and report, "
                    "per backend, the builder lines and branches no case reaches, each with its source. "
                    "Exit 1 when a builder line is not reached.")
    coverage_parser.add_argument("paths", nargs="*", metavar="PATH", help="corpus files or folders (default: corpus/)")
    coverage_parser.add_argument("--arch", default="all", metavar="NAME[,NAME]|all")
    coverage_parser.add_argument("-n", dest="workers", default="auto", metavar="N|auto", help="worker processes")
    coverage_parser.add_argument("--json", metavar="FILE", help="write the per-backend figures as JSON")
    coverage_parser.add_argument("-q", dest="quiet", action="store_true", help="the table only, no missed lines")
    coverage_parser.set_defaults(handler=_coverage)

    bench = commands.add_parser(
        "bench", help="benchmark: phases, floor, scaling, memory; checks the speed targets",
        description="Run the full corpus with -n 1 and -n 2, time every phase, compare with a bare "
                    "keystone+Unicorn floor, scale the corpus 1x-8x, and print the figures (also as "
                    "JSON). Exit 1 when a speed target is missed. Takes a few minutes.")
    bench.add_argument("--out", metavar="FILE",
                       help="where the JSON goes (default bench/out/bench.json, with --huge bench-huge.json)")
    bench.add_argument("--quick", action="store_true", help="skip the scaling runs")
    bench.add_argument("--scale", action="store_true",
                       help="only the scale figures: the full corpus with -n 1 and -n 2, the harness's fixed "
                            "cost, and the scaling runs (no phases, floor, interpreter or validator)")
    bench.add_argument("--sample", type=int, default=None, metavar="N",
                       help="scaling runs on N of the hand-written cases, spread over their folders "
                            "(default: all of them)")
    bench.add_argument("--huge", action="store_true",
                       help="instead: long generated programs (--sizes) on every target, cost per phase and "
                            "per slot, and whether each phase grows linearly; 20-40 minutes with the default sizes")
    bench.add_argument("--sizes", default="10000 100000 1000000", metavar="'N N ...'",
                       help="with --huge: program sizes in slots (default: '10000 100000 1000000')")
    bench.add_argument("--arch", default="default", metavar="NAME[,NAME]|all|default",
                       help="with --huge: the targets (default: the built-in ones)")
    bench.add_argument("--repeat", type=int, metavar="N",
                       help="with --huge: runs per size, the median shown (default 3, once from 300,000 slots)")
    bench.set_defaults(handler=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    passed: list[str] = []
    if "--" in argv:  # run: what follows '--' is pytest's
        split = argv.index("--")
        head = parser.parse_known_args(argv[:split])[0] if argv[:split] else None
        if head is not None and head.command == "run":
            argv, passed = argv[:split], argv[split + 1:]
    args = parser.parse_args(argv)
    if passed:
        args.pytest_args = passed
    guard = ClosedPipeGuard(sys.stdout)
    sys.stdout = guard
    try:
        return args.handler(args)
    except KeyboardInterrupt:  # outside a run (e.g. while reports are written): no traceback
        print("harness: interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout = guard._stream
        guard.flush()
        if guard.closed:  # the interpreter's last flush must not meet the closed pipe either
            guard._silence()
