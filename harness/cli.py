"""The command line: ``python -m harness run`` and friends.

``run`` drives the same pytest plugin a plain ``pytest`` uses, so the CLI, CI and
an IDE all see the same items, results and JSON.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_CORPUS = "corpus"


def _run(args: argparse.Namespace) -> int:
    import pytest

    paths = args.paths or [DEFAULT_CORPUS]
    missing = [path for path in paths if not Path(path).exists()]
    if missing:
        print(f"harness run: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    from harness.plugin import all_targets

    chosen = [name.strip() for name in args.arch.split(",") if name.strip()]
    unknown = [name for name in chosen if name != "all" and name not in all_targets()]
    if unknown or not chosen:
        print(f"harness run: unknown target(s) {', '.join(unknown) or '(none)'}; "
              f"known: all, {', '.join(all_targets())}", file=sys.stderr)
        return 2
    pytest_args = [*paths, "-p", "harness.plugin", "--targets", args.arch,
                   "-p", "no:cacheprovider", "-o", "python_files=", "--rootdir", str(Path.cwd())]
    if args.json:
        pytest_args += ["--harness-json", args.json]
    if args.allow_unsupported:
        pytest_args.append("--allow-unsupported")
    if args.workers not in ("0", "1"):
        pytest_args += ["-n", args.workers]
    pytest_args += ["-q"] if not args.verbose else ["-v"]
    if args.exitfirst:
        pytest_args.append("-x")
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    code = pytest.main(pytest_args)
    # pytest: 1 tests failed, 5 nothing collected, 4 usage error, 2/3 interrupted/internal
    return {0: 0, 1: 1, 5: 1, 4: 2}.get(int(code), int(code))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="eBPF JIT conformance harness: run corpus cases on the reference "
                    "interpreter and on JIT backends emulated under Unicorn.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", help="run corpus cases on targets and compare with the interpreter",
        description="Run corpus cases (default: corpus/) on the chosen targets. Exit "
                    "status: 0 when every case passes, 1 on any fail or error, 2 on "
                    "bad usage.")
    run.add_argument("paths", nargs="*", metavar="PATH",
                     help=".data files or directories (default: corpus/)")
    run.add_argument("--arch", default="all", metavar="NAME[,NAME]|all",
                     help="targets: 'all' (default), or a comma list of interp and "
                          "architecture names (x86_64, arm64, s390x, ppc64, sparc64)")
    run.add_argument("-n", dest="workers", default="auto", metavar="N|auto",
                     help="parallel worker processes (pytest-xdist); 0 runs in-process; "
                          "default auto (one per core)")
    run.add_argument("--json", metavar="FILE", help="write results and summary as JSON")
    run.add_argument("--allow-unsupported", action="store_true",
                     help="exit 0 even when a backend reports unsupported instructions")
    run.add_argument("-k", dest="keyword", metavar="EXPR",
                     help="only cases whose name matches this pytest -k expression")
    run.add_argument("-x", dest="exitfirst", action="store_true", help="stop at the first failure")
    run.add_argument("-v", dest="verbose", action="store_true", help="one line per item")
    run.set_defaults(handler=_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.handler(args)
