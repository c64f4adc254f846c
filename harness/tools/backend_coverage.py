"""Backend coverage: which lines and branches of each backend's builders no corpus case reaches.

``python -m harness coverage`` runs the corpus on the chosen architectures (each case
translated, assembled and run, as ``harness run`` does) under coverage.py, measuring
``arches/``, and reports per backend:

* *builder lines*: the statements of the functions that translation executes,
  found in the source: every ``build_*`` method of the backend's modules and every
  function or method those call by name, transitively (helpers such as
  ``move_immediate`` or ``load_immediate``); the runtime hooks the runner calls
  (``set_return_address``, ``helper_arguments``, ...) are not builders;
* *builder branches*: the branch arcs inside those functions that no case takes;
* *guards*, set apart from the builder lines: a ``raise`` (with the ``except`` line
  that leads only to one) and a ``return None`` (a builder refusing a form, which the
  driver turns into UnsupportedInstruction). They emit no code: they stop on an
  instruction the driver never hands over (it passes only forms ``isa.describe``
  admits) or on a backend's own mistake (a label keystone misplaced, a delay slot
  holding a branch), so no valid program can reach them (unit tests such as
  tests/test_driver.py provoke some). Those no case reaches are listed, not hidden;
  one that a case does reach (a builder's ``return None`` meaning "no short form,
  take the general one") counts as a reached builder line.

Each missed line is listed with its source text, so the corpus case it needs can be
written. The shared translation driver (``arches/driver.py``, ``arches/direct.py``)
is reported as ``driver``. Workers (``-n``) each measure their share of the cases;
their data is combined.
"""
from __future__ import annotations

import ast
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ARCHES = ROOT / "arches"
SHARED = ("driver.py", "direct.py", "base.py", "__init__.py")


def backend_files(arch: str) -> list[Path]:
    """The source files of ``arch``'s backend (a module or a package); mips64el shares mips64's."""
    module = {"mips64el": "mips64"}.get(arch, arch)
    package = ARCHES / module
    if package.is_dir():
        return sorted(package.glob("*.py"))
    return [ARCHES / f"{module}.py"]


def driver_files() -> list[Path]:
    return [ARCHES / "driver.py", ARCHES / "direct.py"]


def builder_lines(files: list[Path]) -> dict[Path, dict[int, str]]:
    """Per file, line -> the name of the builder function it belongs to (see the module docstring)."""
    functions: dict[str, list[tuple[Path, ast.AST]]] = {}
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.setdefault(node.name, []).append((path, node))
    roots = [name for name in functions if name.startswith("build_") or name in ("translate", "assemble", "link")]
    chosen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in chosen or name not in functions:
            continue
        chosen.add(name)
        for _, node in functions[name]:
            for call in ast.walk(node):
                if isinstance(call, ast.Call):
                    callee = call.func
                    called = callee.attr if isinstance(callee, ast.Attribute) else \
                        callee.id if isinstance(callee, ast.Name) else None
                    if called in functions and called not in chosen:
                        pending.append(called)
    lines: dict[Path, dict[int, str]] = {}
    for name in chosen:
        for path, node in functions[name]:
            body_start = node.body[0].lineno if not _is_docstring(node.body[0]) or len(node.body) == 1 \
                else node.body[1].lineno
            for line in range(body_start, (node.end_lineno or body_start) + 1):
                lines.setdefault(path, {})[line] = name
    return lines


def guard_lines(files: list[Path]) -> dict[Path, set[int]]:
    """Per file, the lines of guard statements (see the module docstring): ``raise``,
    ``return None``, and an ``except`` line whose handler only raises."""
    guards: dict[Path, set[int]] = {}
    for path in files:
        found = guards.setdefault(path, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if _is_guard(node):
                found.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
            elif isinstance(node, ast.ExceptHandler) and all(_is_guard(statement) for statement in node.body):
                found.add(node.lineno)
    return guards


def _is_guard(node: ast.AST) -> bool:
    return isinstance(node, ast.Raise) or (isinstance(node, ast.Return) and isinstance(node.value, ast.Constant)
                                           and node.value.value is None)


def _is_docstring(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) \
        and isinstance(statement.value.value, str)


@dataclass
class BackendCoverage:
    name: str
    lines: int = 0
    missed: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line, source)
    branches: int = 0
    missed_branches: list[tuple[str, int, int]] = field(default_factory=list)  # (file, from line, to line)
    guards: list[tuple[str, int, str]] = field(default_factory=list)  # unreached guards: (file, line, source)

    @property
    def line_percent(self) -> float:
        return 100.0 * (self.lines - len(self.missed)) / self.lines if self.lines else 100.0

    @property
    def branch_percent(self) -> float:
        return 100.0 * (self.branches - len(self.missed_branches)) / self.branches if self.branches else 100.0


def _measure_job(job: tuple[str, list[str], str]) -> str:
    """One worker: run its cases on one architecture under coverage; the data file it wrote."""
    import coverage

    from harness.running.conformance import run_item

    arch, paths, directory = job
    data_file = os.path.join(directory, f".coverage.{arch}.{os.getpid()}.{abs(hash(tuple(paths))) % 10**8}")
    measure = coverage.Coverage(data_file=data_file, branch=True, source=[str(ARCHES)], config_file=False)
    measure.start()
    try:
        for path in paths:
            run_item(path, arch)
    finally:
        measure.stop()
        measure.save()
    return data_file


def measure(arch_names: list[str], case_paths: list[str], workers: int = 1) -> dict[str, Any]:
    """Run every case on every architecture under coverage; coverage.py's JSON report of ``arches/``."""
    import multiprocessing

    import coverage

    with tempfile.TemporaryDirectory() as directory:
        share = max(1, len(case_paths) // max(1, workers))
        jobs = [(arch, case_paths[start:start + share], directory) for arch in arch_names
                for start in range(0, len(case_paths), share)]
        if workers <= 1:
            for job in jobs:
                _measure_job(job)
        else:
            with multiprocessing.get_context("fork").Pool(workers, maxtasksperchild=1) as pool:
                list(pool.imap_unordered(_measure_job, jobs))
        combined = coverage.Coverage(data_file=os.path.join(directory, ".coverage"), branch=True,
                                     source=[str(ARCHES)], config_file=False)
        combined.combine([directory], keep=True)
        report_path = os.path.join(directory, "report.json")
        combined.json_report(outfile=report_path, show_contexts=False)
        return json.loads(Path(report_path).read_text())


def summarize(report: dict[str, Any], arch_names: list[str]) -> list[BackendCoverage]:
    """Builder lines and branches per backend (and the shared driver) from coverage.py's JSON."""
    files = {str(Path(name).resolve()): data for name, data in report["files"].items()}
    groups: list[tuple[str, list[Path]]] = [("driver", driver_files())]
    seen: set[tuple[Path, ...]] = set()
    for arch in arch_names:
        paths = backend_files(arch)
        if tuple(paths) not in seen:
            seen.add(tuple(paths))
            groups.append((arch if arch != "mips64el" or "mips64" not in arch_names else "mips64", paths))
    result = []
    for name, paths in groups:
        entry = BackendCoverage(name)
        wanted, guards = builder_lines(paths), guard_lines(paths)
        for path in paths:
            data = files.get(str(path.resolve()))
            builders = wanted.get(path, {})
            source = path.read_text().splitlines()
            statements = set(data["executed_lines"]) | set(data["missing_lines"]) if data else set()
            missing = set(data["missing_lines"]) if data else set(statements)
            relative = str(path.relative_to(ROOT))
            in_builders = sorted(line for line in builders if line in statements)
            set_apart = [line for line in in_builders if line in guards[path] and line in missing]
            entry.guards += [(relative, line, source[line - 1].strip()) for line in set_apart]
            relevant = [line for line in in_builders if line not in set_apart]
            entry.lines += len(relevant)
            entry.missed += [(relative, line, source[line - 1].strip()) for line in relevant if line in missing]
            if data:
                executed = [tuple(arc) for arc in data.get("executed_branches", []) if arc[0] in builders]
                missed = [tuple(arc) for arc in data.get("missing_branches", []) if arc[0] in builders]
                entry.branches += len(executed) + len(missed)
                entry.missed_branches += [(relative, start, end) for start, end in missed]
        result.append(entry)
    return result


def table(entries: list[BackendCoverage], verbose: bool = True) -> str:
    lines = [f"{'backend':<10}{'builder lines':>15}{'reached':>9}{'branches':>10}{'taken':>8}{'guards':>8}"]
    for entry in entries:
        lines.append(f"{entry.name:<10}{entry.lines:>15}{entry.line_percent:>8.1f}%{entry.branches:>10}"
                     f"{entry.branch_percent:>7.1f}%{len(entry.guards):>8}")
    lines.append("(guards: raise / return None lines no case reaches, set apart from the builder lines: they "
                 "emit no code; driver: the shared arches/driver.py and direct.py, reported, not a backend)")
    if verbose:
        for entry in entries:
            if entry.guards:
                lines += ["", f"{entry.name}: guards no case reaches (set apart from the builder lines)"]
                lines += [f"  {path}:{line}: {text}" for path, line, text in entry.guards]
            if entry.missed or entry.missed_branches:
                lines.append("")
                if entry.missed:
                    lines.append(f"{entry.name}: builder lines no case reaches")
                    lines += [f"  {path}:{line}: {text}" for path, line, text in entry.missed]
                if entry.missed_branches:
                    lines.append(f"{entry.name}: builder branches no case takes (line -> line; negative: exit)")
                    lines += [f"  {path}:{start} -> {end}" for path, start, end in entry.missed_branches]
    return "\n".join(lines)


def main(arch_names: list[str], case_paths: list[str], workers: int, args: Any) -> int:
    """``harness coverage``: measure, print the table (and the missed lines), write JSON; 1 if a
    backend's builder line is missed (the shared driver is reported but not a backend)."""
    from dataclasses import asdict

    entries = summarize(measure(arch_names, case_paths, workers), arch_names)
    print(table(entries, verbose=not args.quiet))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(entry) | {"line_percent": entry.line_percent,
                                                                "branch_percent": entry.branch_percent}
                                               for entry in entries], indent=1) + "\n")
        print(f"figures written to {args.json}")
    return 1 if any(entry.missed for entry in entries if entry.name != "driver") else 0
