"""One (case, target) run from file to verdict: case -> oracle -> backend -> emulator -> compare.

Everything the pytest plugin, the CLI and the benchmarks run goes through
:func:`run_item`, which never raises for bad input or a broken backend: every
problem becomes a :class:`Result` with status ``error`` (or ``unsupported``).
"""
from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any

from harness import layout
from harness.cases.corpus import Case, CorpusError, load_case
from harness.running.coverage import program_forms
from harness.oracle.interpreter import Interpreter
from harness.oracle.outcome import ERROR_KINDS, FAULT, LIMIT, RETURNED, Outcome, first_difference
from harness.isa import Program
from harness.oracle.maps import MapError, MapSet, describe_snapshot, resolve_map_loads
from harness.oracle.validator import ValidationError, ValidatorConfig, validate

INTERP = "interp"
PASS, FAIL, ERROR, SKIP, UNSUPPORTED = "pass", "fail", "error", "skip", "unsupported"
# A recorded known failure of an external JIT that fails (known) or now passes (stale:
# the record is out of date, which fails the run so it gets removed).
KNOWN, STALE = "known", "stale"
STATUSES = (PASS, FAIL, ERROR, SKIP, UNSUPPORTED, KNOWN, STALE)


def all_targets() -> list[str]:
    """Every target name: the interpreter, then the registered architectures."""
    import arches

    return [INTERP] + arches.names()


def target_order(targets: set[str]) -> list[str]:
    """interp first, then the registry's order, external JITs next, then anything else alphabetically."""
    import arches

    try:
        registry = arches.names() + arches.external_names()
    except ValueError:  # an unreadable external description: order the built-in targets only
        registry = arches.names()
    return sorted(targets, key=lambda name: (name != INTERP, registry.index(name)
                                             if name in registry else len(registry), name))


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
    code_size: int | None = None  # native bytes of instructions (data such as a helper table not counted)
    bpf_insns: int | None = None  # eBPF slots in the program
    bpf_executed: int | None = None  # eBPF instructions the interpreter executed
    native_executed: int | None = None  # native instructions executed (-1: not counted)
    first_difference: dict[str, Any] | None = None
    worker: str = ""  # the pytest-xdist worker that ran it ("main" without xdist)
    peak_rss_kb: int = 0  # that process's peak resident memory when it finished the item
    forms: list[list[int]] = field(default_factory=list)  # [opcode, variant] of each instruction form used

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)  # every field is already plain JSON data (asdict is much slower)


@dataclass
class LoadedCase:
    """A case file as every target's run starts from it: parsed, validated, map loads resolved."""

    case: Case | None
    error: str = ""  # parse error (CorpusError text)
    rejection: str = ""  # validator message
    parse_seconds: float = 0.0
    validate_seconds: float = 0.0
    runnable: Program | None = None  # the program as loaded: map loads resolved to handles


@lru_cache(maxsize=4096)
def load_checked(path: str) -> LoadedCase:
    """The case at ``path`` parsed and validated (never raises; cached per process, see clear_caches)."""
    started = time.perf_counter()
    try:
        case = load_case(path)
    except CorpusError as error:
        return LoadedCase(None, error=str(error))
    parsed = time.perf_counter()
    rejection = ""
    runnable = None
    try:
        validate(case.program, ValidatorConfig(map_count=len(case.maps)))
        runnable = resolve_map_loads(case.program, MapSet(case.maps, "little") if case.maps else None)
    except (ValidationError, MapError) as error:
        rejection = f"{path}: {error}"
    return LoadedCase(case, rejection=rejection, parse_seconds=parsed - started,
                   validate_seconds=time.perf_counter() - parsed, runnable=runnable)


@lru_cache(maxsize=4096)
def _forms_cached(path: str) -> tuple[tuple[int, int], ...]:
    loaded = load_checked(path)
    return tuple(sorted(program_forms(loaded.case.program))) if loaded.case is not None else ()


def _forms(path: str) -> list[list[int]]:
    return [list(key) for key in _forms_cached(path)]


def _load_timed(path: str) -> tuple[LoadedCase, dict[str, float]]:
    """The loaded case, and the parse/validate time if this call did the work (not cached)."""
    misses = load_checked.cache_info().misses
    loaded = load_checked(path)
    if load_checked.cache_info().misses == misses:
        return loaded, {}
    return loaded, {"parse": loaded.parse_seconds, "validate": loaded.validate_seconds}


def _oracle_timed(path: str, byte_order: str, timings: dict[str, float], phase: str) -> tuple[Outcome, ...]:
    """The interpreter's outcomes; records ``phase`` only when they were computed now."""
    misses = oracle.cache_info().misses
    outcomes, seconds = oracle(path, byte_order)
    if oracle.cache_info().misses != misses:
        timings[phase] = seconds
    return outcomes


def new_maps(case: Case, byte_order: str) -> MapSet | None:
    """Fresh, empty maps for one run of a case on one target (None without maps)."""
    return MapSet(case.maps, byte_order) if case.maps else None


@lru_cache(maxsize=4096)
def oracle(path: str, byte_order: str) -> tuple[tuple[Outcome, ...], float]:
    """The interpreter's outcome of every event of a runnable case (maps persist between
    them) and the seconds it took; cached per process, see clear_caches."""
    loaded = load_checked(path)
    assert loaded.case is not None and loaded.runnable is not None
    started = time.perf_counter()
    maps = new_maps(loaded.case, byte_order)
    machine = Interpreter(loaded.runnable, byte_order)  # built once: a program may hold 24,000 slots
    outcomes = tuple(machine.run(memory, loaded.case.budget, maps) for memory in loaded.case.inputs)
    return outcomes, time.perf_counter() - started


def clear_caches() -> None:
    """Forget every loaded case and oracle outcome (the benchmark measures cold runs)."""
    load_checked.cache_clear()
    oracle.cache_clear()
    _forms_cached.cache_clear()


def load(path: str) -> Case:
    """The parsed case (raises CorpusError), shared with the per-process cache."""
    loaded = load_checked(path)
    if loaded.case is None:
        raise CorpusError(path, None, loaded.error)
    return loaded.case


# -- error KIND -> the Outcome kind it demands (a rejection never produces an Outcome).
_KIND_OUTCOMES = {"fault": FAULT, "limit": LIMIT}


def _declared(case: Case, byte_order: str) -> str:
    if case.expect_error:
        return ("error" + (f" {case.error_kind}" if case.error_kind else "")
                + (f" ({case.error_text.splitlines()[0]})" if case.error_text else ""))
    values = case.expected_results(byte_order)
    if all(value is None for value in values):
        return "unspecified"
    if len(values) == 1:
        return f"return r0={values[0]:#x}"
    return "returns r0=" + ", ".join("?" if value is None else f"{value:#x}" for value in values)


def _meets_declaration(case: Case, byte_order: str, outcomes: tuple[Outcome, ...]) -> bool:
    if case.expect_error:
        wanted = _KIND_OUTCOMES.get(case.error_kind or "")
        if case.error_kind == "reject":
            return False  # the program ran: the validator accepted it
        return any(outcome.kind in ERROR_KINDS and (wanted is None or outcome.kind == wanted)
                   for outcome in outcomes)
    for value, outcome in zip(case.expected_results(byte_order), outcomes):
        if value is None:
            if outcome.kind != RETURNED and byte_order != "big":
                return False
        elif outcome.kind != RETURNED or outcome.r0 != value:
            return False
    return True


def summarize_outcomes(outcomes: tuple[Outcome, ...]) -> str:
    """One line for all the events of a run (plus the final maps, when there are maps)."""
    if len(outcomes) == 1:
        text = outcomes[0].summary()
    elif all(outcome.kind == RETURNED for outcome in outcomes):
        text = "returns r0=" + ", ".join(f"{outcome.r0:#x}" for outcome in outcomes)
    else:
        text = "; ".join(f"event {number}: {outcome.summary()}"
                         for number, outcome in enumerate(outcomes, start=1))
    if outcomes and outcomes[-1].maps:
        text += f"; maps {describe_snapshot(outcomes[-1].maps)}"
    return text


def run_item(path: str, target: str, backend: Any = None) -> Result:
    """Run one case on one target; never raises.

    ``backend`` replaces the registered backend of ``target`` (mutation testing
    and the broken-backend tests pass a modified copy).
    """
    try:
        result = _run_interp(path) if target == INTERP else _run_native(path, target, backend)
        result.forms = _forms(path)  # for coverage, without parsing the case again elsewhere
        return _known_failure(result, path, backend) if target != INTERP else result
    except Exception as error:  # a harness or backend bug must not end the run
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        return Result(path, target, ERROR, detail=f"internal error: {detail}\n"
                      + traceback.format_exc(limit=6))


def _known_failure(result: Result, path: str, backend: Any) -> Result:
    """A failing cell the target's known-failure file records is ``known``; a passing one is ``stale``."""
    import arches

    if result.status not in (PASS, FAIL):
        return result
    reason = (backend or arches.get(result.target)).known_failure(path)
    if reason is None:
        return result
    if result.status == FAIL:
        result.status = KNOWN
        result.detail = f"known failure of {result.target}: {reason}\n{result.detail}"
    else:
        result.status = STALE
        result.detail = (f"recorded as a known failure of {result.target}, but it passes now: remove its "
                         f"entry from the known-failure file; it said: {reason}")
    return result


def _run_interp(path: str) -> Result:
    loaded, timings = _load_timed(path)
    if loaded.case is None:
        return Result(path, INTERP, ERROR, detail=loaded.error)
    case = loaded.case
    result = Result(path, INTERP, PASS, timings=timings, bpf_insns=len(case.program))
    if loaded.rejection:
        result.expected = _declared(case, "little")
        result.actual = f"rejected: {loaded.rejection.split(': ', 1)[1]}"
        result.detail = loaded.rejection
        if not case.expect_error:  # the case itself is wrong, whatever any JIT does
            result.status = ERROR
            result.detail = (f"invalid case: it declares {result.expected}, but the validator rejects "
                             f"the program ({loaded.rejection})")
        elif case.error_kind not in (None, "reject"):
            result.status = FAIL
            result.detail = f"the case declares -- error {case.error_kind}, but the validator rejects " \
                            f"the program ({loaded.rejection})"
        return result
    little = _oracle_timed(path, "little", timings, "interpret")
    result.bpf_executed = sum(outcome.insns_executed for outcome in little)
    result.expected = _declared(case, "little")
    result.actual = summarize_outcomes(little)
    if not _meets_declaration(case, "little", little):
        result.status = FAIL
        result.detail = f"little-endian: expected {result.expected}, got {result.actual}"
        return result
    if _declared(case, "big") != "unspecified":  # -- result binds both byte orders unless -- result-be
        big = _oracle_timed(path, "big", timings, "interpret_be")
        if not _meets_declaration(case, "big", big):
            result.status = FAIL
            result.expected += f"; big-endian {_declared(case, 'big')}"
            result.actual += f"; big-endian {summarize_outcomes(big)}"
            result.detail = f"big-endian: expected {_declared(case, 'big')}, got {summarize_outcomes(big)}" \
                            + _needs_result_be(case)
    return result


def _needs_result_be(case: Case) -> str:
    """The hint for a big-endian disagreement with a value declared for both byte orders."""
    if case.expect_error or case.declares_big_endian:
        return ""
    return ("; the case needs -- result-be: its -- result binds both byte orders, and the "
            "big-endian interpreter disagrees with it")


def _run_native(path: str, target: str, backend: Any = None) -> Result:
    import arches
    from arches.base import BackendFailure, JitCrashed, RejectedProgram, UnsupportedInstruction
    from harness.running.emulator import discard_engine, engine_for

    loaded, timings = _load_timed(path)
    if loaded.case is None:
        return Result(path, target, ERROR, detail=loaded.error)
    case = loaded.case
    result = Result(path, target, PASS, timings=timings, bpf_insns=len(case.program))
    if loaded.rejection:  # never a JIT failure: the interp item says whether the case meant it
        result.status = SKIP
        result.expected = _declared(case, "little")
        result.actual = "rejected before JIT"
        result.detail = f"nothing to run: the validator rejects the program ({loaded.rejection})"
        if not case.expect_error:
            result.detail = f"not run: invalid case, it declares {result.expected} but the validator " \
                            f"rejects the program ({loaded.rejection})"
        return result
    try:
        backend = backend or arches.get(target)
    except BackendFailure as error:  # an external target that cannot run here says why
        result.status = ERROR
        result.detail = str(error)
        return result
    order = backend.byte_order
    expected = _oracle_timed(path, order, timings, "interpret")
    result.bpf_executed = sum(outcome.insns_executed for outcome in expected)
    result.expected = summarize_outcomes(expected)
    assert loaded.runnable is not None
    try:
        native, from_cache = backend.compile_cached(loaded.runnable)
    except UnsupportedInstruction as error:
        result.status = UNSUPPORTED
        result.detail = str(error)
        return result
    except JitCrashed as error:  # the JIT under test crashed on a valid program: its failure
        result.status = FAIL
        result.actual = "the JIT crashed"
        result.detail = f"{target} crashed translating the program: {error}"
        return result
    except RejectedProgram as error:  # the JIT's own refusal: not an error of the harness
        result.status = SKIP
        result.actual = "rejected by the JIT"
        result.detail = f"{target} rejects the program: {error}"
        return result
    except BackendFailure as error:
        result.status = ERROR
        result.detail = str(error)
        return result
    if not from_cache:  # translated now, not taken from this process's cache
        timings["translate"] = native.translate_seconds
        timings["assemble"] = native.assemble_seconds
    result.code_size = len(native.code) - native.data_size  # instructions only
    started = time.perf_counter()
    engine = engine_for(backend)
    timings["setup"] = time.perf_counter() - started
    started = time.perf_counter()
    maps = new_maps(case, order)
    try:
        actual = tuple(engine.run(native, memory, case.budget, maps=maps) for memory in case.inputs)
    except Exception:
        discard_engine(backend)
        raise
    timings["emulate"] = time.perf_counter() - started
    started = time.perf_counter()
    executed = [outcome.insns_executed for outcome in actual]
    result.native_executed = -1 if -1 in executed else sum(executed)
    result.actual = summarize_outcomes(actual)
    problems = []
    for number, (want, got) in enumerate(zip(expected, actual), start=1):
        difference = first_difference(want, got, base_mem=layout.MEM_BASE, base_stack=layout.STACK_BASE)
        if difference is not None:
            result.first_difference = asdict(difference)
            where = f" at {difference.offset:#x}" if difference.offset is not None else ""
            event = f"event {number}: " if len(expected) > 1 else ""
            problems.append(f"{event}differs from the {order}-endian interpreter in {difference.what}"
                            f"{where}: expected {difference.expected}, got {difference.actual}")
            if difference.what == "r0":  # also say where memory or stack first differs, if they do
                same_r0 = replace(got, r0=want.r0)
                further = first_difference(want, same_r0, base_mem=layout.MEM_BASE, base_stack=layout.STACK_BASE)
                if further is not None:
                    problems.append(f"first differing {further.what} byte at {further.offset:#x}: "
                                    f"expected {further.expected}, got {further.actual}")
            break
    if not _meets_declaration(case, order, actual):
        hint = _needs_result_be(case) if order == "big" and not _meets_declaration(case, order, expected) else ""
        problems.append(f"the case declares {_declared(case, order)}, got {result.actual}{hint}")
    if problems:
        result.status = FAIL
        result.detail = "; ".join(problems)
    timings["compare"] = time.perf_counter() - started
    return result
