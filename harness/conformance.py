"""One (case, target) run from file to verdict: case -> oracle -> backend -> emulator -> compare.

Everything the pytest plugin, the CLI and the benchmarks run goes through
:func:`run_item`, which never raises for bad input or a broken backend: every
problem becomes a :class:`Result` with status ``error`` (or ``unsupported``).
"""
from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from harness import layout
from harness.corpus import Case, CorpusError, load_case
from harness.interpreter import interpret
from harness.outcome import ERROR_KINDS, RETURNED, Outcome, first_difference
from harness.validator import ValidationError, validate

INTERP = "interp"
PASS, FAIL, ERROR, SKIP, UNSUPPORTED = "pass", "fail", "error", "skip", "unsupported"
STATUSES = (PASS, FAIL, ERROR, SKIP, UNSUPPORTED)


def all_targets() -> list[str]:
    """Every target name: the interpreter, then the registered architectures."""
    import arches

    return [INTERP] + arches.names()


@dataclass
class Result:
    """The verdict of one case on one target, as written to the JSON results."""

    case: str
    target: str
    status: str
    expected: str = ""
    actual: str = ""
    detail: str = ""
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase
    code_size: int | None = None  # native bytes
    bpf_insns: int | None = None  # eBPF slots in the program
    bpf_executed: int | None = None  # eBPF instructions the interpreter executed
    native_executed: int | None = None  # native instructions executed (-1: not counted)
    first_difference: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Loaded:
    case: Case | None
    error: str = ""  # parse error (CorpusError text)
    rejection: str = ""  # validator message
    parse_seconds: float = 0.0
    validate_seconds: float = 0.0


@lru_cache(maxsize=4096)
def _load(path: str) -> _Loaded:
    started = time.perf_counter()
    try:
        case = load_case(path)
    except CorpusError as error:
        return _Loaded(None, error=str(error))
    parsed = time.perf_counter()
    rejection = ""
    try:
        validate(case.program)
    except ValidationError as error:
        rejection = f"{path}: {error}"
    return _Loaded(case, rejection=rejection, parse_seconds=parsed - started,
                   validate_seconds=time.perf_counter() - parsed)


@lru_cache(maxsize=4096)
def _oracle(path: str, byte_order: str) -> tuple[Outcome, float]:
    loaded = _load(path)
    assert loaded.case is not None
    started = time.perf_counter()
    outcome = interpret(loaded.case.program, loaded.case.memory, byte_order)
    return outcome, time.perf_counter() - started


def load(path: str) -> Case:
    """The parsed case (raises CorpusError), shared with the per-process cache."""
    loaded = _load(path)
    if loaded.case is None:
        raise CorpusError(path, None, loaded.error)
    return loaded.case


def _declared(case: Case, byte_order: str) -> str:
    if case.expect_error:
        return "error" + (f" ({case.error_text.splitlines()[0]})" if case.error_text else "")
    value = case.expected_result(byte_order)
    return "unspecified" if value is None else f"return r0={value:#x}"


def _meets_declaration(case: Case, byte_order: str, outcome: Outcome) -> bool:
    if case.expect_error:
        return outcome.kind in ERROR_KINDS
    value = case.expected_result(byte_order)
    if value is None:
        return outcome.kind == RETURNED or byte_order == "big"
    return outcome.kind == RETURNED and outcome.r0 == value


def run_item(path: str, target: str) -> Result:
    """Run one case on one target; never raises."""
    try:
        if target == INTERP:
            return _run_interp(path)
        return _run_native(path, target)
    except Exception as error:  # a harness or backend bug must not end the run
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        return Result(path, target, ERROR, detail=f"internal error: {detail}\n"
                      + traceback.format_exc(limit=6))


def _run_interp(path: str) -> Result:
    loaded = _load(path)
    if loaded.case is None:
        return Result(path, INTERP, ERROR, detail=loaded.error)
    case = loaded.case
    timings = {"parse": loaded.parse_seconds, "validate": loaded.validate_seconds}
    result = Result(path, INTERP, PASS, timings=timings, bpf_insns=len(case.program))
    if loaded.rejection:
        result.expected = _declared(case, "little")
        result.actual = f"rejected: {loaded.rejection.split(': ', 1)[1]}"
        result.status = PASS if case.expect_error else FAIL
        result.detail = loaded.rejection
        return result
    little, seconds = _oracle(path, "little")
    timings["interpret"] = seconds
    result.bpf_executed = little.insns_executed
    result.expected = _declared(case, "little")
    result.actual = little.summary()
    if not _meets_declaration(case, "little", little):
        result.status = FAIL
        result.detail = f"little-endian: expected {result.expected}, got {little.summary()}"
        return result
    if case.result_be is not None or case.expect_error:
        big, seconds = _oracle(path, "big")
        timings["interpret_be"] = seconds
        if not _meets_declaration(case, "big", big):
            result.status = FAIL
            result.expected += f"; big-endian {_declared(case, 'big')}"
            result.actual += f"; big-endian {big.summary()}"
            result.detail = f"big-endian: expected {_declared(case, 'big')}, got {big.summary()}"
    return result


def _run_native(path: str, target: str) -> Result:
    import arches
    from arches.base import UnsupportedInstruction
    from harness.emulator import discard_engine, engine_for

    loaded = _load(path)
    if loaded.case is None:
        return Result(path, target, ERROR, detail=loaded.error)
    case = loaded.case
    timings = {"parse": loaded.parse_seconds, "validate": loaded.validate_seconds}
    result = Result(path, target, PASS, timings=timings, bpf_insns=len(case.program))
    if loaded.rejection:
        result.status = SKIP if case.expect_error else FAIL
        result.expected = _declared(case, "little")
        result.actual = "rejected before JIT"
        result.detail = f"nothing to run: the validator rejects the program ({loaded.rejection})"
        return result
    backend = arches.get(target)
    order = backend.byte_order
    expected, seconds = _oracle(path, order)
    timings["interpret"] = seconds
    result.bpf_executed = expected.insns_executed
    result.expected = expected.summary()
    try:
        native = backend.compile(case.program)
    except UnsupportedInstruction as error:
        result.status = UNSUPPORTED
        result.detail = str(error)
        return result
    timings["translate"] = native.translate_seconds
    timings["assemble"] = native.assemble_seconds
    result.code_size = len(native.code)
    started = time.perf_counter()
    engine = engine_for(backend)
    timings["setup"] = time.perf_counter() - started
    started = time.perf_counter()
    try:
        actual = engine.run(native, case.memory)
    except Exception:
        discard_engine(backend)
        raise
    timings["emulate"] = time.perf_counter() - started
    started = time.perf_counter()
    result.native_executed = actual.insns_executed
    result.actual = actual.summary()
    difference = first_difference(expected, actual, base_mem=layout.MEM_BASE,
                                  base_stack=layout.STACK_BASE)
    problems = []
    if difference is not None:
        result.first_difference = asdict(difference)
        where = f" at {difference.offset:#x}" if difference.offset is not None else ""
        problems.append(f"differs from the {order}-endian interpreter in {difference.what}"
                        f"{where}: expected {difference.expected}, got {difference.actual}")
    if not _meets_declaration(case, order, actual):
        problems.append(f"the case declares {_declared(case, order)}, got {actual.summary()}")
    if problems:
        result.status = FAIL
        result.detail = "; ".join(problems)
    timings["compare"] = time.perf_counter() - started
    return result
