"""One (case, target) run from file to verdict: case -> oracle -> backend -> emulator -> compare.

Everything the pytest plugin, the CLI and the benchmarks run goes through
:func:`run_item`, which never raises for bad input or a broken backend: every
problem, whatever its exception type, becomes a :class:`Result` with status
``error`` (or ``unsupported``) and a one-line reason naming the file. Every phase
runs within the time bounds of :mod:`harness.running.limits`.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any, Callable

from harness import layout
from harness.cases.config import RunDefaults
from harness.cases.corpus import Case, CorpusError, describe_exception, load_case
from harness.oracle.helpers import helper_set
from harness.running.coverage import program_forms
from harness.running.limits import GRACE_SECONDS, PHASE_SECONDS, RUN_SECONDS, PhaseTimeout, scaled, time_bound
from harness.running.memo import weighted_cache
from harness.oracle.interpreter import Interpreter
from harness.oracle.outcome import ERROR_KINDS, FAULT, LIMIT, RETURNED, Outcome, differing_words, first_difference
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
    error: str = ""  # why the case cannot be judged: a parse error, or validate overran or crashed
    rejection: str = ""  # validator message
    parse_seconds: float = 0.0
    validate_seconds: float = 0.0
    runnable: Program | None = None  # the program as loaded: map loads resolved to handles


def _phase_failure(path: str, phase: str, error: BaseException) -> str:
    """The one-line reason for an exception that ended ``phase`` (time limits included)."""
    if isinstance(error, PhaseTimeout):
        return f"{path}: {error}"
    return f"{path}: internal error in {phase}: {describe_exception(error)}"


# What "loading" a case refuses before the validator sees it (uBPF: ubpf_load twice).
RELOAD_REFUSAL = ("the program is loaded a second time into the same VM without unloading it "
                  "(-- reload), which uBPF refuses: a VM holds one program")


def _slots_held(loaded: LoadedCase) -> int:
    return len(loaded.case.program) if loaded.case is not None else 1


def load_checked(path: str, defaults: RunDefaults = RunDefaults()) -> LoadedCase:
    """The case at ``path`` parsed and validated (never raises; cached per process, see clear_caches).

    ``defaults`` are the run's settings for a case whose folder chooses none (harness.toml).
    """
    return _load_checked(path, defaults)


# Thousands of cases, but at most CACHED_SLOTS slots of programs (about 170 bytes each parsed):
# beyond that the least recently used are parsed again when asked for.
CACHED_SLOTS = 1_000_000


@weighted_cache(_slots_held, max_weight=CACHED_SLOTS, max_entries=4096)
def _load_checked(path: str, defaults: RunDefaults) -> LoadedCase:
    started = time.perf_counter()
    try:
        with time_bound("parse", PHASE_SECONDS):
            case = load_case(path, defaults)
    except CorpusError as error:
        return LoadedCase(None, error=str(error))
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # PhaseTimeout, or whatever else parsing met
        return LoadedCase(None, error=_phase_failure(path, "parse", error))
    parsed = time.perf_counter()
    rejection = error_text = ""
    runnable = None
    try:
        with time_bound("validate", scaled(PHASE_SECONDS, len(case.program))):
            if case.load_rejection:  # the classic BPF checks refused the filter
                raise ValidationError(None, case.load_rejection)
            if case.reload:
                raise ValidationError(None, RELOAD_REFUSAL)
            validate(case.program, ValidatorConfig(helpers=helper_set(case.helpers), map_count=len(case.maps)))
            runnable = resolve_map_loads(case.program, MapSet(case.maps, "little") if case.maps else None)
    except (ValidationError, MapError) as error:
        rejection = f"{path}: {error}"
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # e.g. RecursionError or a time limit: no verdict on the program
        error_text = _phase_failure(path, "validate", error)
    return LoadedCase(case, error=error_text, rejection=rejection, parse_seconds=parsed - started,
                   validate_seconds=time.perf_counter() - parsed, runnable=runnable)


@lru_cache(maxsize=4096)
def _forms_cached(path: str, defaults: RunDefaults) -> tuple[tuple[int, int], ...]:
    loaded = load_checked(path, defaults)
    return tuple(sorted(program_forms(loaded.case.program))) if loaded.case is not None else ()


def _forms(path: str, defaults: RunDefaults = RunDefaults()) -> list[list[int]]:
    return [list(key) for key in _forms_cached(path, defaults)]


def _load_timed(path: str, defaults: RunDefaults) -> tuple[LoadedCase, dict[str, float]]:
    """The loaded case, and the parse/validate time if this call did the work (not cached)."""
    misses = _load_checked.cache_info().misses
    loaded = load_checked(path, defaults)
    if _load_checked.cache_info().misses == misses:
        return loaded, {}
    return loaded, {"parse": loaded.parse_seconds, "validate": loaded.validate_seconds}


def _oracle_timed(path: str, byte_order: str, timings: dict[str, float], phase: str,
                  defaults: RunDefaults = RunDefaults()) -> tuple[Outcome, ...]:
    """The interpreter's outcomes; records ``phase`` only when they were computed now."""
    misses = oracle.cache_info().misses
    outcomes, seconds = oracle(path, byte_order, defaults)
    if oracle.cache_info().misses != misses:
        timings[phase] = seconds
    return outcomes


def new_maps(case: Case, byte_order: str) -> MapSet | None:
    """Fresh, empty maps for one run of a case on one target (None without maps)."""
    return MapSet(case.maps, byte_order) if case.maps else None


def run_events(run_one: Callable[[bytes, float], Outcome], inputs: list[bytes], phase: str,
               on_timeout: Callable[[], None] | None = None, slots: int = 0) -> tuple[Outcome, ...]:
    """One outcome per input, in order: ``run_one(input, seconds)`` runs one event.

    Each event has RUN_SECONDS (its own clock check, with a backstop a little later)
    and all of them together PHASE_SECONDS, both scaled to a program of ``slots``.
    After an event ends in ``limit`` the rest are not run: the state a limit leaves (maps included) differs by design between the
    interpreter and a target, whose budgets count different instructions, so later
    events could not be compared. Each of them is a ``limit`` outcome saying why.
    """
    phase_seconds, run_seconds = scaled(PHASE_SECONDS, slots), scaled(RUN_SECONDS, slots)
    deadline = time.perf_counter() + phase_seconds
    outcomes: list[Outcome] = []
    reason = ""
    for number, memory in enumerate(inputs, start=1):
        left = deadline - time.perf_counter()
        if left <= 0:
            reason = f"not run: {phase} of all events took longer than {phase_seconds:g} s"
            break
        seconds = min(run_seconds, left)
        try:
            with time_bound(f"{phase} of event {number}", seconds + GRACE_SECONDS):
                outcome = run_one(memory, seconds)
        except PhaseTimeout as error:
            if on_timeout is not None:
                on_timeout()
            outcome = Outcome(LIMIT, detail=str(error))
        if outcome.kind == LIMIT and "time limit" in outcome.detail and not outcome.detail.startswith(phase):
            outcome = replace(outcome, detail=f"{phase}: {outcome.detail}")
        outcomes.append(outcome)
        if outcome.kind == LIMIT and number < len(inputs):
            reason = f"not run: event {number} ended in limit"
            break
    outcomes += [Outcome(LIMIT, detail=reason)] * (len(inputs) - len(outcomes))
    return tuple(outcomes)


@lru_cache(maxsize=4096)
def oracle(path: str, byte_order: str, defaults: RunDefaults = RunDefaults()) -> tuple[tuple[Outcome, ...], float]:
    """The interpreter's outcome of every event of a runnable case (maps persist between
    them) and the seconds it took; cached per process, see clear_caches."""
    loaded = load_checked(path, defaults)
    assert loaded.case is not None and loaded.runnable is not None
    case, program = loaded.case, loaded.runnable
    started = time.perf_counter()
    maps = new_maps(case, byte_order)
    # built once: a program may hold 24,000 slots
    machine = Interpreter(program, byte_order, helper_set(case.helpers))

    def run_one(memory: bytes, seconds: float) -> Outcome:
        return machine.run(memory, case.budget, maps, seconds, case.entry_pointer)

    outcomes = run_events(run_one, case.inputs, "interpret", slots=len(program))
    return outcomes, time.perf_counter() - started


def clear_caches() -> None:
    """Forget every loaded case and oracle outcome (the benchmark measures cold runs)."""
    _load_checked.cache_clear()
    oracle.cache_clear()
    _forms_cached.cache_clear()


def load(path: str, defaults: RunDefaults = RunDefaults()) -> Case:
    """The parsed case (raises CorpusError), shared with the per-process cache."""
    loaded = load_checked(path, defaults)
    if loaded.case is None:
        raise CorpusError(path, None, loaded.error)
    return loaded.case


# -- error KIND -> the Outcome kind it demands (a rejection never produces an Outcome).
_KIND_OUTCOMES = {"fault": FAULT, "limit": LIMIT}


def _declared(case: Case, byte_order: str) -> str:
    if case.expect_error:
        if case.error_pattern is not None:
            return f"error matching /{case.error_pattern}/"
        return ("error" + (f" {case.error_kind}" if case.error_kind else "")
                + (f" ({case.error_text.splitlines()[0]})" if case.error_text else ""))
    values = case.expected_results(byte_order)
    if all(value is None for value in values):
        return "return (r0 unspecified)" if len(values) == 1 else "returns (r0 unspecified)"
    low = f" (low {case.result_bits} bits)" if case.result_bits != 64 else ""
    if len(values) == 1:
        return f"return r0={values[0]:#x}{low}"
    return "returns r0=" + _listed(["?" if value is None else f"{value:#x}" for value in values]) + low


def _error_message(outcome: Outcome) -> str:
    """The text an ``-- error pattern`` is matched against for a run that did not return."""
    return outcome.detail or outcome.summary()


def _declared_where(case: Case, byte_order: str) -> str:
    """``path:line`` of the section that declares the outcome (of the program if none does)."""
    line = case.declaration_line(byte_order) or max(1, case.program_line - 1)
    return f"{case.path}:{line}"


def _meets_declaration(case: Case, byte_order: str, outcomes: tuple[Outcome, ...],
                       check_pattern: bool = False) -> bool:
    """Whether the outcomes keep the case's promise in this byte order.

    A case without ``-- error`` promises that every event returns normally, on every
    target, even where it gives no r0 to check (the events before the last of a
    multi-event case, or a case that declares no result at all); ``-- result-bits``
    says how many low bits of r0 are checked. ``check_pattern`` also holds the
    interpreter's error message to ``-- error pattern`` (a JIT target's message comes
    from its emulator, so targets are held to the interpreter's kind of ending instead).
    """
    if case.expect_error:
        wanted = _KIND_OUTCOMES.get(case.error_kind or "")
        if case.error_kind == "reject":
            return False  # the program ran: the validator accepted it
        failed = [outcome for outcome in outcomes
                  if outcome.kind in ERROR_KINDS and (wanted is None or outcome.kind == wanted)]
        if check_pattern and case.error_pattern is not None:
            return any(re.search(case.error_pattern, _error_message(outcome)) for outcome in failed)
        return bool(failed)
    mask = case.result_mask
    for value, outcome in zip(case.expected_results(byte_order), outcomes):
        if outcome.kind != RETURNED or (value is not None and outcome.r0 & mask != value & mask):
            return False
    return True


MAX_LISTED = 16  # values or event groups shown in one summary line


def _listed(items: list[str]) -> str:
    if len(items) <= MAX_LISTED:
        return ", ".join(items)
    return ", ".join(items[:MAX_LISTED]) + f", ... ({len(items)} in all)"


def summarize_outcomes(outcomes: tuple[Outcome, ...]) -> str:
    """One line for all the events of a run (plus the final maps, when there are maps).

    Consecutive events with the same ending are grouped, and long lists are cut with
    a count, so the line stays short for a case with thousands of events.
    """
    if len(outcomes) == 1:
        text = outcomes[0].summary()
    elif all(outcome.kind == RETURNED for outcome in outcomes):
        text = "returns r0=" + _listed([f"{outcome.r0:#x}" for outcome in outcomes])
    else:
        groups: list[tuple[int, int, str]] = []  # first event, last event, summary
        for number, outcome in enumerate(outcomes, start=1):
            summary = outcome.summary()
            if groups and groups[-1][2] == summary:
                groups[-1] = (groups[-1][0], number, summary)
            else:
                groups.append((number, number, summary))
        parts = [f"event {first}: {summary}" if first == last else f"events {first}-{last}: {summary}"
                 for first, last, summary in groups]
        text = "; ".join(parts[:MAX_LISTED]) + (f"; ... ({len(parts) - MAX_LISTED} more groups of events)"
                                               if len(parts) > MAX_LISTED else "")
    if outcomes and outcomes[-1].maps:
        text += f"; maps {describe_snapshot(outcomes[-1].maps)}"
    return text


def run_item(path: str, target: str, backend: Any = None, defaults: RunDefaults = RunDefaults()) -> Result:
    """Run one case on one target; never raises.

    ``backend`` replaces the registered backend of ``target`` (mutation testing
    and the broken-backend tests pass a modified copy). ``defaults`` are the run's
    settings for cases whose folder chooses none (harness.toml: helpers, empty-memory, results).
    """
    phase = _Phase()
    try:
        result = (_run_interp(path, phase, defaults) if target == INTERP
                  else _run_native(path, target, phase, backend, defaults))
        phase.name = "coverage"
        result.forms = _forms(path, defaults)  # for coverage, without parsing the case again elsewhere
        return _known_failure(result, path, backend) if target != INTERP else result
    except KeyboardInterrupt:  # the user's Ctrl-C ends the run, not the item
        raise
    except BaseException as error:  # whatever a case or a backend does, it ends as this item's error
        return Result(path, target, ERROR, detail=_phase_failure(path, f"{phase.name} on {target}", error))


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


@dataclass
class _Phase:
    """The phase an item is in, for the message when something unexpected ends it."""

    name: str = "parse"


def _nothing_declared(result: Result, rejection: str) -> Result:
    """A case with no -- result or -- error whose program is refused: an assembler test
    (uBPF keeps such files; its runner and bpf_conformance's skip files without either)."""
    result.status = SKIP
    result.detail = f"nothing to check: no -- result or -- error, and the program is refused ({rejection})"
    return result


def _run_interp(path: str, phase: _Phase, defaults: RunDefaults = RunDefaults()) -> Result:
    loaded, timings = _load_timed(path, defaults)
    if loaded.case is None or loaded.error:
        return Result(path, INTERP, ERROR, detail=loaded.error)
    case = loaded.case
    result = Result(path, INTERP, PASS, timings=timings, bpf_insns=len(case.program))
    if loaded.rejection and not case.declares_something:
        return _nothing_declared(result, loaded.rejection)
    if loaded.rejection:
        result.expected = _declared(case, "little")
        why = loaded.rejection.split(': ', 1)[1]
        result.actual = f"rejected: {why}"
        result.detail = loaded.rejection
        if not case.expect_error:  # the case itself is wrong, whatever any JIT does
            result.status = ERROR
            result.detail = (f"{_declared_where(case, 'little')}: invalid case: it declares {result.expected}, "
                             f"but the validator rejects the program ({why})")
        elif case.error_kind not in (None, "reject"):
            result.status = FAIL
            result.detail = (f"{_declared_where(case, 'little')}: the case declares -- error {case.error_kind}, "
                             f"but the validator rejects the program ({why})")
        elif case.error_pattern is not None and not re.search(case.error_pattern, why):
            result.status = FAIL
            result.detail = (f"{_declared_where(case, 'little')}: the rejection does not match "
                             f"-- error pattern /{case.error_pattern}/: {why}")
        return result
    phase.name = "interpret"
    # The interpreter runs in the byte order the case is written for (both when it is not).
    first = "big" if case.byte_order == "big" else "little"
    outcomes = _oracle_timed(path, first, timings, "interpret", defaults)
    result.bpf_executed = sum(outcome.insns_executed for outcome in outcomes)
    result.expected = _declared(case, first)
    result.actual = summarize_outcomes(outcomes)
    if not _meets_declaration(case, first, outcomes, check_pattern=True):
        result.status = FAIL
        result.detail = (f"{_declared_where(case, first)}: {first}-endian: expected {result.expected}, "
                         f"got {result.actual}")
        return result
    # -- result binds both byte orders unless -- result-be (or results = "little-endian")
    if case.byte_order is None and (case.expect_error
                                    or any(value is not None for value in case.expected_results("big"))):
        phase.name = "interpret big-endian"
        big = _oracle_timed(path, "big", timings, "interpret_be", defaults)
        if not _meets_declaration(case, "big", big, check_pattern=True):
            result.status = FAIL
            result.expected += f"; big-endian {_declared(case, 'big')}"
            result.actual += f"; big-endian {summarize_outcomes(big)}"
            result.detail = (f"{_declared_where(case, 'big')}: big-endian: expected {_declared(case, 'big')}, "
                             f"got {summarize_outcomes(big)}" + _needs_result_be(case, big))
    return result


def _needs_result_be(case: Case, big: tuple[Outcome, ...]) -> str:
    """The hint for a big-endian disagreement with a value declared for both byte orders
    (only where the big-endian interpreter returned: a loop or a fault is no byte-order matter)."""
    if case.expect_error or case.declares_big_endian or any(outcome.kind != RETURNED for outcome in big):
        return ""
    return ("; the case needs -- result-be: its -- result binds both byte orders, and the "
            "big-endian interpreter disagrees with it")


WORDS_RECORDED = 16  # differing 8-byte words of memory and of stack kept in a result (the count is kept too)


def compare_outcomes(expected: tuple[Outcome, ...], actual: tuple[Outcome, ...],
                     order: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The first difference between the interpreter's and a target's outcomes, and its description.

    When r0 differs, the first difference in memory, stack or maps is named too. The
    returned record also lists, under ``words``, the first aligned 8-byte words of
    memory and stack that differ (so a value stored in a slot can be named whole).
    """
    for number, (want, got) in enumerate(zip(expected, actual), start=1):
        difference = first_difference(want, got, base_mem=layout.MEM_BASE, base_stack=layout.STACK_BASE)
        if difference is None:
            continue
        record = asdict(difference)
        if want.kind == RETURNED == got.kind:  # memory and stack compare only after a normal return
            record["words"], record["words_differing"] = [], {}
            for what, mine, theirs, base in (("memory", want.memory, got.memory, layout.MEM_BASE),
                                             ("stack", want.stack, got.stack, layout.STACK_BASE)):
                words = differing_words(mine, theirs, base, from_top=what == "stack")
                record["words"] += [{"what": what, "address": address, "expected": left, "actual": right}
                                    for address, left, right in words[:WORDS_RECORDED]]
                record["words_differing"][what] = len(words)
        event = f"event {number}: " if len(expected) > 1 else ""
        problems = [f"{event}differs from the {order}-endian interpreter in {difference.what}"
                    f"{_at(difference.offset)}: expected {difference.expected}, got {difference.actual}"]
        if difference.what == "r0":  # also say where memory, stack or maps first differ, if they do
            further = first_difference(want, replace(got, r0=want.r0), base_mem=layout.MEM_BASE,
                                       base_stack=layout.STACK_BASE)
            if further is not None:
                problems.append(f"first difference in {further.what}{_at(further.offset)}: "
                                f"expected {further.expected}, got {further.actual}")
        if len(expected) > 1:
            record["event"] = number
        return record, problems
    return None, []


def _at(offset: int | None) -> str:
    return f" at {offset:#x}" if offset is not None else ""


def _run_native(path: str, target: str, phase: _Phase, backend: Any = None,
                defaults: RunDefaults = RunDefaults()) -> Result:
    import arches
    from arches.base import BackendFailure, JitCrashed, RejectedProgram, UnsupportedInstruction
    from harness.running.emulator import discard_engine, engine_for

    loaded, timings = _load_timed(path, defaults)
    if loaded.case is None or loaded.error:
        return Result(path, target, ERROR, detail=loaded.error)
    case = loaded.case
    result = Result(path, target, PASS, timings=timings, bpf_insns=len(case.program))
    if loaded.rejection and not case.declares_something:
        return _nothing_declared(result, loaded.rejection)
    if loaded.rejection:  # never a JIT failure: the interp item says whether the case meant it
        result.status = SKIP
        result.expected = _declared(case, "little")
        result.actual = "rejected before JIT"
        result.detail = f"nothing to run: the validator rejects the program ({loaded.rejection})"
        if not case.expect_error:
            result.detail = f"not run: invalid case, it declares {result.expected} but the validator " \
                            f"rejects the program ({loaded.rejection})"
        return result
    if case.no_jit is not None:
        result.status = SKIP
        result.detail = f"interpreter only (-- no jit): {case.no_jit}"
        return result
    try:
        backend = backend or arches.get(target)
    except BackendFailure as error:  # an external target that cannot run here says why
        result.status = ERROR
        result.detail = str(error)
        return result
    order = backend.byte_order
    if not case.runs_on(order):
        result.status = SKIP
        result.detail = f"written for {case.byte_order}-endian targets only (-- byte-order {case.byte_order})"
        return result
    phase.name = "interpret"
    expected = _oracle_timed(path, order, timings, "interpret", defaults)
    result.bpf_executed = sum(outcome.insns_executed for outcome in expected)
    result.expected = summarize_outcomes(expected)
    assert loaded.runnable is not None
    phase.name = "translate"
    try:
        with time_bound("translate", scaled(PHASE_SECONDS, len(case.program))):
            native, from_cache = backend.compile_cached(loaded.runnable)
            if case.unload:  # loaded, unloaded, loaded again: a second translation must be the same
                again = backend.translate(loaded.runnable)
                if again.code != native.code:
                    result.status = FAIL
                    result.detail = (f"-- unload: compiling the program again gave different native code "
                                     f"({len(native.code)} then {len(again.code)} bytes)")
                    return result
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
    except PhaseTimeout as error:
        result.status = ERROR
        result.detail = f"{path}: {error} on {target}"
        return result
    if not from_cache:  # translated now, not taken from this process's cache
        timings["translate"] = native.translate_seconds
        timings["assemble"] = native.assemble_seconds
    result.code_size = len(native.code) - native.data_size  # instructions only
    phase.name = "engine set-up"
    started = time.perf_counter()
    engine = engine_for(backend)
    timings["setup"] = time.perf_counter() - started
    phase.name = "emulate"
    started = time.perf_counter()
    maps = new_maps(case, order)
    helpers = helper_set(case.helpers)

    def run_one(memory: bytes, seconds: float) -> Outcome:
        return engine.run(native, memory, case.budget, timeout=seconds, maps=maps, helpers=helpers,
                          entry_pointer=case.entry_pointer)

    try:
        actual = run_events(run_one, case.inputs, "emulate", on_timeout=lambda: discard_engine(backend),
                            slots=len(case.program))
    except BaseException:
        discard_engine(backend)  # a run that ended in an exception leaves the engine in doubt
        raise
    timings["emulate"] = time.perf_counter() - started
    phase.name = "compare"
    started = time.perf_counter()
    executed = [outcome.insns_executed for outcome in actual]
    result.native_executed = -1 if -1 in executed else sum(executed)
    result.actual = summarize_outcomes(actual)
    first, problems = compare_outcomes(expected, actual, order)
    result.first_difference = first
    if not _meets_declaration(case, order, actual):
        hint = _needs_result_be(case, expected) if order == "big" and not _meets_declaration(case, order, expected) \
            else ""
        problems.append(f"{_declared_where(case, order)}: the case declares {_declared(case, order)}, "
                        f"got {result.actual}{hint}")
    if problems:
        result.status = FAIL
        result.detail = "; ".join(problems)
    timings["compare"] = time.perf_counter() - started
    return result
