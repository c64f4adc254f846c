"""Native-level mutation testing: bugs injected into the code a backend emits, one form at a time.

``python -m harness mutate`` (the default; ``--ebpf`` runs the eBPF-level catalogue
of :mod:`harness.tools.mutate`). For each architecture:

1. The corpus is translated once with a recording ``rewrite`` hook (the driver's,
   ``JitBackend.translate(program, rewrite)``): the chunks each builder emits for
   each instruction form, as the corpus uses them.
2. Every mutation site of those chunks (:mod:`harness.tools.native_ops`: drop, swap,
   condition, immediate, register, width, extension) goes into a pool; ``--count``
   mutants per architecture are sampled from it with ``--seed``, round-robin over
   the operators so that each is represented.
3. A mutant is the site applied, through the rewrite hook, to the chunk of every
   instruction of its form. It runs against the corpus cases that use the form
   (the per-case form lists of ``harness.running.coverage``), shortest first,
   until one fails: *killed*. A mutant whose code no case can assemble or encode
   is *stillborn* (counted apart: the JIT's own build would report it); one whose
   machine code is identical to the original in every case is *equivalent*
   (identical code). A mutant that runs and is never caught is a *survivor*;
   :mod:`harness.tools.equivalence` then runs the original and the mutated code of
   the form side by side on a battery of inputs: a difference is a witness (the
   corpus needs a case), agreement on all of them classes it *equivalent* with that
   evidence shown per mutant.

The score per architecture is killed / (killed + survivors not shown equivalent).
"""
from __future__ import annotations

import copy
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from harness import isa
from harness.isa import Insn, Program
from harness.running.coverage import form_name, program_forms
from harness.tools import native_ops
from harness.tools.native_ops import Site

STILLBORN_ERRORS = (ValueError, KeyError)  # encoders' range and table errors; AssemblyError added at run time
TEMPLATE_SLOT_LIMIT = 3000  # programs longer than this (far-branch cases) are not read for templates
TEMPLATES_PER_FORM = 8  # distinct chunk shapes read per form


@dataclass(frozen=True)
class NativeMutant:
    arch: str
    form: tuple[int, int]
    site: Site

    @property
    def ident(self) -> str:
        return f"{self.arch}:{form_name(self.form)}:{self.site.describe()}"


@dataclass
class MutantOutcome:
    """What became of one native mutant."""

    ident: str
    arch: str
    form: str
    operator: str
    verdict: str  # killed, survived, equivalent, stillborn
    killed_by: str = ""
    cases_run: int = 0
    cases_using_form: int = 0
    stillborn_cases: int = 0
    identical_cases: int = 0
    evidence: str = ""  # why equivalent, or the witness that shows it is not
    listing: list[str] = field(default_factory=list)  # original vs mutated native code of one instance


@dataclass
class CorpusIndex:
    """The runnable corpus cases: path -> (program, forms), shortest program first."""

    cases: list[tuple[str, Program, set[tuple[int, int]]]]

    @classmethod
    def load(cls, paths: list[str]) -> "CorpusIndex":
        from harness.running.conformance import load_checked

        cases = []
        for path in paths:
            loaded = load_checked(path)
            if loaded.runnable is not None:
                cases.append((path, loaded.runnable, program_forms(loaded.runnable)))
        cases.sort(key=lambda item: (len(item[1].insns), item[0]))
        return cls(cases)

    def using(self, form: tuple[int, int]) -> list[tuple[str, Program]]:
        return [(path, program) for path, program, forms in self.cases if form in forms]


# --- the pool -----------------------------------------------------------------------------------

def templates(arch: str, index: CorpusIndex) -> dict[tuple[int, int], list[list[Any]]]:
    """Per form, up to TEMPLATES_PER_FORM chunks of distinct shape as the backend emits them."""
    import arches

    backend = arches.get(arch)
    found: dict[tuple[int, int], dict[tuple, list[Any]]] = {}

    def record(slot: int, insn: Insn, chunk: list[Any]) -> list[Any]:
        key = isa.opcode_key(insn)
        shapes = found.setdefault(key, {})
        if len(shapes) < TEMPLATES_PER_FORM:
            items = native_ops.flatten(chunk)
            shape = tuple("label" if native_ops.is_label(item) else native_ops.mnemonic_of(item) for item in items)
            shapes.setdefault(shape, items)
        return chunk

    for _, program, _ in index.cases:
        if len(program.insns) <= TEMPLATE_SLOT_LIMIT:
            try:
                backend.translate(program, record)
            except Exception:  # an unsupported form has no template; the corpus run reports it
                continue
    return {key: list(shapes.values()) for key, shapes in found.items()}


def pool(arch: str, index: CorpusIndex, seed: int) -> list[NativeMutant]:
    """Every mutation site of every form's templates, deduplicated, in a stable order."""
    rng = random.Random(f"{seed}:{arch}")
    mutants: dict[tuple, NativeMutant] = {}
    for form, chunks in sorted(templates(arch, index).items()):
        for chunk in chunks:
            for site in native_ops.sites(chunk, arch, rng):
                # one register replacement per operand, whatever register the draw chose
                key = (form, site.operator, site.mnemonic, site.occurrence,
                       site.detail[:1] if site.operator == "register" else site.detail)
                mutants.setdefault(key, NativeMutant(arch, form, site))
    return list(mutants.values())


def sample(candidates: list[NativeMutant], count: int, seed: int) -> list[NativeMutant]:
    """``count`` mutants, round-robin over the operators, random within each (seeded)."""
    rng = random.Random(seed)
    by_operator: dict[str, list[NativeMutant]] = {}
    for mutant in candidates:
        by_operator.setdefault(mutant.site.operator, []).append(mutant)
    for group in by_operator.values():
        rng.shuffle(group)
    chosen: list[NativeMutant] = []
    order = [name for name in native_ops.OPERATORS if name in by_operator]
    while len(chosen) < count and any(by_operator.values()):
        for name in order:
            if by_operator[name] and len(chosen) < count:
                chosen.append(by_operator[name].pop())
    return chosen


# --- running one mutant ------------------------------------------------------------------------------

def rewrite_for(mutant: NativeMutant) -> Callable[[int, Insn, list[Any]], list[Any]]:
    def rewrite(slot: int, insn: Insn, chunk: list[Any]) -> list[Any]:
        if isa.opcode_key(insn) != mutant.form:
            return chunk
        return native_ops.apply(chunk, mutant.site, mutant.arch)
    return rewrite


class MutatedBackend:
    """Builds the copy of a backend whose translation carries the mutant (own cache, same engine)."""

    def __init__(self, backend: Any, mutant: NativeMutant) -> None:
        self.original = backend
        self.clone = copy.copy(backend)
        self.clone.clear_cache()
        hook = rewrite_for(mutant)
        translate = backend.translate
        memo: dict[bytes, Any] = {}

        def mutated_translate(program: Program, rewrite: Any = None) -> Any:
            key = program.encode()
            if key not in memo:
                memo.clear()
                memo[key] = translate(program, hook)
            return memo[key]

        self.clone.translate = mutated_translate


def stillborn_errors() -> tuple[type[BaseException], ...]:
    from arches.base import AssemblyError

    return (AssemblyError, *STILLBORN_ERRORS)


def run_mutant(mutant: NativeMutant, index: CorpusIndex, probe: bool = True) -> MutantOutcome:
    """Run the cases that use the mutant's form until one fails (see the module docstring)."""
    import arches
    from harness.running.conformance import ERROR, FAIL, run_item

    backend = arches.get(mutant.arch)
    mutated = MutatedBackend(backend, mutant)
    cases = index.using(mutant.form)
    outcome = MutantOutcome(mutant.ident, mutant.arch, form_name(mutant.form), mutant.site.operator, "survived",
                            cases_using_form=len(cases))
    errors = stillborn_errors()
    ran: list[tuple[str, Program]] = []
    for path, program in cases:
        try:
            native = mutated.clone.translate(program)
        except errors:
            outcome.stillborn_cases += 1
            continue
        if native.code == backend.compile(program).code:
            outcome.identical_cases += 1
            continue
        if not outcome.listing:
            outcome.listing = instance_listing(backend, mutant, program)
        outcome.cases_run += 1
        ran.append((path, program))
        result = run_item(path, mutant.arch, backend=mutated.clone)
        if result.status in (FAIL, ERROR):
            outcome.verdict, outcome.killed_by = "killed", path
            return outcome
    if not ran:
        if outcome.stillborn_cases:
            outcome.verdict = "stillborn"
            outcome.evidence = f"no case's code assembles or encodes ({outcome.stillborn_cases} tried)"
        else:
            outcome.verdict = "equivalent"
            outcome.evidence = (f"identical machine code in all {outcome.identical_cases} cases using the form"
                                if outcome.identical_cases else "no corpus case uses the form")
        return outcome
    if probe:
        from harness.tools.equivalence import check

        verdict = check(mutant, [program for _, program in ran], mutated.clone)
        outcome.evidence = verdict.evidence
        if verdict.equivalent:
            outcome.verdict = "equivalent"
    return outcome


def instance_listing(backend: Any, mutant: NativeMutant, program: Program) -> list[str]:
    """The first instance of the form in ``program``: its eBPF text, original and mutated native code."""
    from harness.cases.asm import disassemble_text

    captured: list[tuple[Insn, list[Any]]] = []

    def capture(slot: int, insn: Insn, chunk: list[Any]) -> list[Any]:
        if not captured and isa.opcode_key(insn) == mutant.form:
            captured.append((insn, native_ops.flatten(chunk)))
        return chunk

    backend.translate(program, capture)
    if not captured:
        return []
    insn, chunk = captured[0]
    mutated = native_ops.apply(chunk, mutant.site, mutant.arch)
    text = lambda items: [getattr(item, "text", item) if not isinstance(item, str) else item  # noqa: E731
                          for item in items]
    ebpf = disassemble_text(Program((insn,) + ((Insn(0),) if insn.opcode == isa.LDDW else ()))).splitlines()[0]
    return [f"eBPF: {ebpf}", "original:", *[f"    {line}" for line in text(chunk)],
            "mutated:", *[f"    {line}" for line in text(mutated)]]


# --- running the sample --------------------------------------------------------------------------------

_INDEXES: dict[tuple[str, ...], CorpusIndex] = {}


def _index(paths: tuple[str, ...]) -> CorpusIndex:
    if paths not in _INDEXES:
        _INDEXES[paths] = CorpusIndex.load(list(paths))
    return _INDEXES[paths]


def warm(arches: list[str], index: CorpusIndex) -> None:
    """Translate every case unmutated and interpret it once, here, before the children fork from us:
    each child then finds the original code and the oracle's outcomes in its inherited caches."""
    import arches as registry
    from harness.running.conformance import oracle

    for arch in arches:
        backend = registry.get(arch)
        for path, program, _ in index.cases:
            oracle(path, backend.byte_order)
            try:
                backend.compile(program)
            except Exception:  # unsupported or broken: the corpus run reports it, the mutants skip it
                continue


def run_sample(arches: list[str], paths: list[str], count: int = 250, seed: int = 0, workers: int = 1,
               probe: bool = True, progress: Callable[[MutantOutcome], None] | None = None
               ) -> list[MutantOutcome]:
    """Sample ``count`` mutants per architecture and run each in a forked child (``workers`` at a time).

    A mutant whose code crashes the emulator process counts as killed: the test run would fail.
    """
    from harness.tools.isolated import run_isolated

    index = _index(tuple(paths))
    mutants = [mutant for arch in arches for mutant in sample(pool(arch, index, seed), count, seed)]
    warm(arches, index)

    def crashed(mutant: NativeMutant, how: str) -> MutantOutcome:
        return MutantOutcome(mutant.ident, mutant.arch, form_name(mutant.form), mutant.site.operator, "killed",
                             killed_by=f"(the test process: {how})")

    results: list[MutantOutcome] = []
    for result in run_isolated(mutants, lambda mutant: run_mutant(mutant, index, probe), workers, crashed):
        results.append(result)
        if progress:
            progress(result)
    order = {mutant.ident: number for number, mutant in enumerate(mutants)}
    return sorted(results, key=lambda result: order[result.ident])


VERDICTS = ("killed", "survived", "equivalent", "stillborn")


def score_table(results: list[MutantOutcome], verbose: bool = False) -> str:
    """Counts and score per architecture, then every survivor and every equivalent mutant with its evidence."""
    lines = []
    if verbose:
        for result in results:
            how = f"by {result.killed_by}" if result.verdict == "killed" else result.evidence
            lines.append(f"{result.ident}: {result.verdict} {how}")
        lines.append("")
    lines.append(f"{'arch':<10}{'mutants':>8}{'killed':>8}{'survived':>9}{'equiv':>7}{'stillborn':>10}{'score':>9}")
    arch_names = list(dict.fromkeys(result.arch for result in results))
    for arch in arch_names + ["all"]:
        mine = [r for r in results if arch == "all" or r.arch == arch]
        counts = {verdict: sum(r.verdict == verdict for r in mine) for verdict in VERDICTS}
        judged = counts["killed"] + counts["survived"]
        score = f"{100 * counts['killed'] / judged:.1f}%" if judged else "-"
        lines.append(f"{arch:<10}{len(mine):>8}{counts['killed']:>8}{counts['survived']:>9}"
                     f"{counts['equivalent']:>7}{counts['stillborn']:>10}{score:>9}")
    for verdict, title in (("survived", "survivors (each needs a corpus case)"),
                           ("equivalent", "equivalent mutants (and why)")):
        chosen = [r for r in results if r.verdict == verdict]
        if chosen:
            lines += ["", f"{title}:"]
            for result in chosen:
                lines.append(f"  {result.ident}")
                lines.append(f"      {result.evidence}")
                if verdict == "survived":
                    lines += [f"      {line}" for line in result.listing]
    return "\n".join(lines)


def to_json(results: list[MutantOutcome]) -> list[dict[str, Any]]:
    return [asdict(result) for result in results]


def fuzz_mutant(mutant: NativeMutant, seconds: float, seed: int = 0, workers: int = 1) -> str:
    """Does the fuzzer find the mutant in ``seconds``? One line: found (seed, what differs) or not."""
    import arches as registry
    from harness.tools.fuzz import difference_text, fuzz_backend

    mutated = MutatedBackend(registry.get(mutant.arch), mutant)
    stats = fuzz_backend(mutant.arch, mutated.clone, seconds, seed, workers)
    if not stats.mismatches:
        return f"not found in {stats.programs} programs"
    first = min(stats.mismatches, key=lambda m: m.seed)
    return (f"FOUND by seed {first.seed} after {first.seed - seed + 1} of {stats.programs} programs: "
            f"{difference_text(first.expected, first.actual)[1]}")


def main(arches: list[str], paths: list[str], args: Any, workers: int,
         progress: Callable[[MutantOutcome], None] | None = None) -> int:
    """``harness mutate`` without --ebpf: run, print the table, write JSON; 1 when a mutant survives."""
    import json
    import sys
    from pathlib import Path

    results = run_sample(arches, paths, args.count, args.seed, workers, args.probe, progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(score_table(results, verbose=args.verbose))
    if args.fuzz:
        survivors = [r for r in results if r.verdict == "survived"]
        print(f"\nfuzzing each of {len(survivors)} survivor(s) for {args.fuzz:g} s:")
        mutants = {m.ident: m for arch in arches for m in sample(pool(arch, _index(tuple(paths)), args.seed),
                                                                   args.count, args.seed)}
        for result in survivors:
            print(f"  {result.ident}: {fuzz_mutant(mutants[result.ident], args.fuzz, args.seed, workers)}")
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(results), indent=1) + "\n")
        print(f"results written to {args.json}")
    return 1 if any(r.verdict == "survived" for r in results) else 0
