"""How a run ended: the record the interpreter and every emulator produce alike."""
from __future__ import annotations

from dataclasses import dataclass, field

RETURNED = "return"  # the program executed exit in the main frame
FAULT = "fault"  # a load, store or helper touched unmapped memory, or the CPU trapped
LIMIT = "limit"  # the instruction budget or time bound ran out
REJECTED = "rejected"  # parser, assembler or validator refused the program
UNSUPPORTED = "unsupported"  # a backend has no translation for an instruction

NORMAL_KINDS = (RETURNED,)
ERROR_KINDS = (FAULT, LIMIT, REJECTED)
RECORDED_CALLS = 64  # helper calls recorded per run, in call order (a bound on cost for loops)


@dataclass(frozen=True)
class HelperCall:
    """One helper call of a run: what the interpreter did, or what a JIT's native code handed over.

    ``arguments`` are the ones the helper reads (r1.. in order, as u64). A JIT run also
    records the native return address, the eBPF instruction it maps back to (when the
    backend gives ``NativeCode.bpf_to_native``) and every way the call broke the native
    ABI or the target's description (harness/running/calls.py).
    """

    number: int  # 1 for the run's first helper call
    helper: int
    arguments: tuple[int, ...]
    instruction: int | None = None  # the eBPF slot of the call, when known
    native_return: int | None = None
    problems: tuple[tuple[str, str], ...] = ()  # (what the call had, what was required), e.g. ("x5 = 0x8", ...)

    def place(self, interpreted: "HelperCall | None" = None) -> str:
        """``helper call 2 (call 102 at instruction 7, returning to 0x100a4)``, with what is known."""
        where = []
        if self.instruction is not None:
            where.append(f"at instruction {self.instruction}")
        elif interpreted is not None and interpreted.instruction is not None:
            where.append(f"at instruction {interpreted.instruction} by the order of calls")
        if self.native_return is not None:
            where.append(f"returning to {self.native_return:#x}")
        return f"helper call {self.number} (call {self.helper}" + (f" {', '.join(where)})" if where else ")")


@dataclass(frozen=True)
class Outcome:
    """The observable end state of one run.

    ``memory`` and ``stack`` are the final bytes of the input-memory and stack
    regions, so a JIT that stores to the wrong place is caught even when r0 is right.
    """

    kind: str
    r0: int = 0
    memory: bytes = b""
    stack: bytes = b""
    detail: str = ""
    fault_address: int | None = None
    insns_executed: int = 0
    maps: tuple = ()  # MapSet.snapshot() after the run, for cases that declare maps
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    fault_access: str = ""  # a fault's direction: "read", "write", "fetch" ("" unknown or no access)
    fault_size: int = 0  # the faulting access's size in bytes (0 unknown)
    # JIT runs only: callee-saved registers (and the stack pointer) the code did not preserve,
    # each as "name = value (canary value)"; the interpreter has no native ABI to break.
    clobbered: tuple[str, ...] = ()
    # The run's first RECORDED_CALLS helper calls (and a later one that broke the ABI), in order;
    # compared by first_difference, not by ==.
    helper_calls: tuple[HelperCall, ...] = field(default=(), compare=False)

    def summary(self) -> str:
        """One line for reports: the kind and the value that matters for it."""
        if self.kind == RETURNED:
            broken = "".join(f", {entry.split(' = ')[0]} not preserved" for entry in self.clobbered)
            return f"return r0={self.r0:#x}{broken}"
        if self.kind == FAULT and self.fault_address is not None:
            return f"fault at {self.fault_address:#x}" + (f" ({self.detail})" if self.detail else "")
        return f"{self.kind}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class Difference:
    """The first way in which two outcomes differ, for a readable failure."""

    what: str  # "kind", "r0", "memory", "stack" or "maps"
    expected: str
    actual: str
    offset: int | None = None


def first_difference(expected: Outcome, actual: Outcome, *, base_mem: int = 0,
                     base_stack: int = 0) -> Difference | None:
    """None when ``actual`` matches ``expected``; otherwise the first mismatch.

    Faults match on where and how they happened (see :func:`fault_difference`); a
    limit matches on kind alone. Neither compares memory: a run that stops early
    leaves partial state that no two implementations need agree on.
    """
    calls = helper_call_difference(expected, actual)
    if calls is not None:
        return calls
    if expected.kind != actual.kind:
        return Difference("kind", expected.summary(), actual.summary())
    if actual.clobbered != expected.clobbered:
        return Difference("callee-saved registers", "as they were at entry (the C ABI)",
                          ", ".join(actual.clobbered))
    if expected.kind == FAULT:
        return fault_difference(expected, actual)
    if expected.kind != RETURNED:
        return None
    if expected.r0 != actual.r0:
        return Difference("r0", f"{expected.r0:#x}", f"{actual.r0:#x}")
    for what, left, right, base in (("memory", expected.memory, actual.memory, base_mem),
                                    ("stack", expected.stack, actual.stack, base_stack)):
        if left != right:
            offset = next((i for i, (a, b) in enumerate(zip(left, right)) if a != b),
                          min(len(left), len(right)))
            return Difference(what, left[offset:offset + 8].hex(" "),
                              right[offset:offset + 8].hex(" "), base + offset)
    if expected.maps != actual.maps:
        for (name, left), (_, right) in zip(expected.maps, actual.maps):
            if left != right:
                mine, theirs = dict(left), dict(right)
                key = next(k for k in sorted(mine.keys() | theirs.keys()) if mine.get(k) != theirs.get(k))
                return Difference("maps", f"{name}[{key}] = {mine.get(key, 'absent')}",
                                  f"{name}[{key}] = {theirs.get(key, 'absent')}")
        return Difference("maps", str(expected.maps), str(actual.maps))
    return None


def helper_call_difference(expected: Outcome, actual: Outcome) -> Difference | None:
    """The first helper call of ``actual`` that broke the ABI, or whose helper or arguments differ
    from the same call of ``expected`` (calls are matched in order; a run that stopped early
    compares the calls both made)."""
    interpreted = expected.helper_calls
    for got in actual.helper_calls:
        want = interpreted[got.number - 1] if got.number <= len(interpreted) else None
        if got.problems:
            return Difference(got.place(want), "; ".join(required for _, required in got.problems),
                              "; ".join(had for had, _ in got.problems))
        if want is None:
            continue
        if want.helper != got.helper:
            return Difference(got.place(want), f"call {want.helper}", f"call {got.helper}")
        for position, (left, right) in enumerate(zip(want.arguments, got.arguments), start=1):
            if left != right:
                return Difference(got.place(want), f"r{position} = {left:#x}", f"r{position} = {right:#x}")
    return None


WORD = 8  # bytes: a family case's result slot, and the unit differing memory is shown in


def differing_words(expected: bytes, actual: bytes, base: int, from_top: bool = False) -> list[tuple[int, str, str]]:
    """Every aligned 8-byte word that differs: (address, expected hex, actual hex), lowest
    address first, or highest first with ``from_top`` (a stack, whose first slots are at its top).

    Where :func:`first_difference` names the first differing byte, these are the whole
    words around every difference, so a value stored in a slot can be read back.
    """
    found: list[tuple[int, str, str]] = []
    chunk = 512  # compare chunks first: a 64 KiB stack usually differs in a few words only
    size = max(len(expected), len(actual))
    for start in range(0, size, chunk):
        if expected[start:start + chunk] == actual[start:start + chunk]:
            continue
        for offset in range(start, min(start + chunk, size), WORD):
            left, right = expected[offset:offset + WORD], actual[offset:offset + WORD]
            if left != right:
                found.append((base + offset, left.hex(" "), right.hex(" ")))
    return found[::-1] if from_top else found


def describe_access(outcome: Outcome) -> str:
    """``read of 4 byte(s) at 0x10``, or what is known of it."""
    if outcome.fault_address is None:
        return f"no faulting address ({outcome.detail})" if outcome.detail else "no faulting address"
    access = outcome.fault_access or "access"
    size = f" of {outcome.fault_size} byte(s)" if outcome.fault_size else ""
    return f"{access}{size} at {outcome.fault_address:#x}"


def fault_difference(expected: Outcome, actual: Outcome) -> Difference | None:
    """None when ``actual`` faulted the way ``expected`` did.

    The address must lie inside the bytes of the expected access: a CPU reports the first
    unmapped byte of an access that straddles into unmapped memory, and a JIT may split an
    access (SPARC64's byte-wise fallback for misaligned ones). The direction (read, write)
    must agree where both sides know it. A fault without an address (a CPU exception, not
    a memory access) never matches a memory fault.
    """
    if expected.fault_address is None:
        return None  # nothing to compare against
    start = expected.fault_address
    end = start + max(expected.fault_size, 1)
    same_place = actual.fault_address is not None and start <= actual.fault_address < end
    same_way = not (expected.fault_access and actual.fault_access and expected.fault_access != actual.fault_access)
    if same_place and same_way:
        return None
    return Difference("fault", describe_access(expected), describe_access(actual) + (
        f" ({actual.detail})" if actual.detail and actual.fault_address is not None else ""))
