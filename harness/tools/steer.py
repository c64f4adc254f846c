"""Steer the fuzzer's weights by backend coverage: more of the pieces that reach what the corpus misses.

``harness fuzz --steer`` first measures, with coverage.py, the branch arcs of the
backends' builders (:func:`harness.tools.backend_coverage.builder_lines`) that
translating the corpus takes. Then, for every kind of piece the generator makes
(:data:`harness.tools.generate.DEFAULT_WEIGHTS`), it translates a few programs in
which that piece is ten times as likely, on every chosen target, and counts the
builder arcs they take that the corpus does not. A piece's weight is multiplied by
one plus that count (at most eight times), so the fuzzing run that follows aims at
the builder branches not yet hit. Only translation is measured (builders run at
translation time), which keeps the measurement to seconds.
"""
from __future__ import annotations

from typing import Any

from harness.tools.backend_coverage import ARCHES, backend_files, builder_lines
from harness.tools.generate import DEFAULT_WEIGHTS, generate

SAMPLES = 16  # programs translated per piece kind
BOOST = 10  # how much likelier the measured piece is in its sample programs
BASELINE_SLOT_LIMIT = 400  # corpus programs longer than this (the far-branch cases) are not translated


def _translate_all(targets: list[str], programs: list[Any]) -> None:
    import arches

    for target in targets:
        backend = arches.get(target)
        for program in programs:
            try:
                backend.translate(program)
            except Exception:  # noqa: BLE001 - unsupported forms and the like: nothing to measure
                continue


def _builder_arcs(data: Any, wanted: dict[Any, dict[int, str]]) -> set[tuple[str, int, int]]:
    arcs = set()
    for path, lines in wanted.items():
        for start, end in data.arcs(str(path)) or ():
            if start in lines:
                arcs.add((str(path), start, end))
    return arcs


def steer(targets: list[str], seed: int = 0, corpus: str = "corpus") -> tuple[dict[str, int], str]:
    """(weights, a note saying what was measured and how the weights moved)."""
    import coverage

    from harness.cases.corpus import find_case_files
    from harness.oracle.maps import MapSet, resolve_map_loads
    from harness.running.conformance import load_checked

    files = sorted({path for target in targets for path in backend_files(target)})
    wanted = builder_lines(files)
    baseline_programs = []
    for path in find_case_files([corpus]):
        loaded = load_checked(str(path))
        if loaded.runnable is not None and len(loaded.runnable.insns) <= BASELINE_SLOT_LIMIT:
            baseline_programs.append(loaded.runnable)
    measure = coverage.Coverage(data_file=None, branch=True, source=[str(ARCHES)], config_file=False)
    measure.start()
    try:
        measure.switch_context("corpus")
        _translate_all(targets, baseline_programs)
        for kind in DEFAULT_WEIGHTS:
            measure.switch_context(kind)
            weights = dict(DEFAULT_WEIGHTS)
            weights[kind] = weights[kind] * BOOST if kind != "far_jump" else 32
            programs = []
            for number in range(SAMPLES):
                generated = generate(seed + 7919 * number, weights=weights)
                maps = MapSet(list(generated.maps), "little") if generated.maps else None
                programs.append(resolve_map_loads(generated.program, maps) if maps else generated.program)
            _translate_all(targets, programs)
    finally:
        measure.stop()
    data = measure.get_data()
    data.set_query_contexts(["corpus"])
    baseline = _builder_arcs(data, wanted)
    result = dict(DEFAULT_WEIGHTS)
    gains: dict[str, int] = {}
    reached: set[tuple[str, int, int]] = set()
    for kind in DEFAULT_WEIGHTS:
        data.set_query_contexts([kind])
        new = _builder_arcs(data, wanted) - baseline
        reached |= new
        gains[kind] = len(new)
        result[kind] = DEFAULT_WEIGHTS[kind] * min(8, 1 + len(new))
    moved = ", ".join(f"{kind} x{result[kind] // DEFAULT_WEIGHTS[kind]}" for kind in result
                      if result[kind] != DEFAULT_WEIGHTS[kind]) or "none"
    where = sorted({f"{path.rsplit('/', 1)[-1]}:{start}" for path, start, _ in reached})
    note = (f"steer: {len(baseline)} builder branch arcs taken by the corpus ({len(baseline_programs)} programs "
            f"translated), {len(reached)} more taken by generated programs; weights raised: {moved}"
            + (f"; new arcs at {', '.join(where[:12])}{' ...' if len(where) > 12 else ''}" if where else ""))
    return result, note
