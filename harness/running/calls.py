"""What the runner checks and does at every helper call of a JIT run, besides running the helper.

A helper is a C function of the target's ABI. The JIT's code must hand it what that ABI (and,
for an external JIT, its description) says, and must survive whatever a C function may do to
the caller's state. At each call, :class:`CallChecks` (driven by the engine's stub hook):

* records the call (:class:`~harness.oracle.outcome.HelperCall`): the helper, the arguments it
  reads, the native return address and, through ``NativeCode.bpf_to_native``, the eBPF
  instruction that made it. The compare step checks each call's helper and arguments against
  the interpreter's calls in order, so a JIT must pass exactly r1-r5, upper halves included;
* checks what every call carries besides r1-r5 (``Backend.helper_carries``: uBPF's context
  pointer) against the values the run started with (:class:`RunValues`: the input memory
  pointer, the per-run cookie, ...);
* checks the stack pointer at the call: aligned as the psABI requires
  (``Backend.call_stack_alignment``) and inside the native stack region together with the area
  above it that the ABI gives the callee (``Backend.callee_stack_area``);
* checks, at the run's first calls, that every callee-saved register the code has changed by
  then still has its entry value (the runner's canary) where the helper cannot touch it: in the
  native stack above the stack pointer, or in another callee-saved register;
* once the helper has run, before its result goes back: fills every caller-saved register
  (``Backend.caller_saved_registers``) with distinct garbage, and the stack below the stack
  pointer (a callee's frame) and the callee's area above it with a pattern, as a C function may
  leave them, so a JIT that keeps a live value there across a call goes wrong visibly.

A problem names the register or stack slot and both values; the compare step names the call's
eBPF instruction (``helper_call_difference`` in harness/oracle/outcome.py).
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, Protocol

from unicorn import UcError

from arches.base import Backend, CarriedValue, NativeCode
from harness import layout
from harness.oracle.outcome import RECORDED_CALLS, HelperCall

COOKIE = 0xC00C_1E00_0000_0000  # the cookie of run n is COOKIE | n: new every run, so none can be baked in
# Caller-saved register n after helper call c (the low word alone is distinct too, for 32-bit targets).
GARBAGE = 0xBAD0_0000_0000_0000
STACK_GARBAGE = bytes.fromhex("baadf00d")  # repeated over the stack a callee may use
CLOBBERED_BELOW = 256  # bytes below the stack pointer a callee's frame overwrites here
CANARY_CHECKED_CALLS = 16  # calls per run whose callee-saved registers are checked (reads the stack)
NATIVE_STACK_END = layout.NATIVE_STACK_BASE + layout.NATIVE_STACK_SIZE

WHAT = {"memory": "the input memory pointer", "length": "the input length",
        "stack": "the eBPF stack region's base", "stack_size": "the eBPF stack region's size",
        "stack_top": "the initial eBPF frame pointer", "cookie": "the run's cookie", "constant": "the constant"}


def garbage_note(value: int | None) -> str:
    """A note for a fault at an address the runner's clobbering made, else ""."""
    if value is None:
        return ""
    if value >> 48 == GARBAGE >> 48 and value & 0xFF == 0xEE:
        return (f" ({value:#x} is the garbage the runner leaves in a caller-saved register after helper call "
                f"{value >> 8 & 0xFFFF}: the code kept a live value there across the call)")
    if value & 0xFFFF_FFFF in (int.from_bytes(STACK_GARBAGE, "big"), int.from_bytes(STACK_GARBAGE, "little")):
        return (f" ({value:#x} comes from the pattern the runner writes where a helper may use the stack: the "
                f"code kept a live value below the stack pointer, or in the callee's area, across a call)")
    return ""


class Registers(Protocol):
    """A fixed set of registers read and written at once (emulator.RegisterBatch)."""

    def read(self) -> list[int]: ...

    def write(self, values: list[int]) -> None: ...


@dataclass(frozen=True)
class RunValues:
    """What a run started with: the values a helper call may be required to carry."""

    memory: int
    length: int
    cookie: int
    stack: int = layout.STACK_BASE
    stack_size: int = layout.STACK_SIZE
    stack_top: int = layout.STACK_TOP

    def of(self, carried: CarriedValue) -> int:
        return carried.constant if carried.value == "constant" else getattr(self, carried.value)


def instruction_finder(native: NativeCode) -> Any:
    """A function: native return address -> the eBPF slot whose code holds the call before it,
    or None (no ``bpf_to_native``, or an address outside the body)."""
    if not native.bpf_to_native:
        return lambda address: None
    end_slot = max(native.bpf_to_native)
    items = sorted(native.bpf_to_native.items(), key=lambda item: (item[1], item[0]))
    offsets, slots = [offset for _, offset in items], [slot for slot, _ in items]

    def find(address: int) -> int | None:
        position = bisect_right(offsets, address - 1 - layout.CODE_BASE) - 1  # the byte before: the call
        if position < 0 or slots[position] == end_slot:
            return None
        return slots[position]
    return find


class CallChecks:
    """The helper-call checks and clobbering of one engine (one backend, one Unicorn instance)."""

    def __init__(self, backend: Backend, uc: Any, caller_saved: Registers, callee_saved: Registers) -> None:
        self.backend, self.uc = backend, uc
        self.caller_saved, self.callee_saved = caller_saved, callee_saved
        self.order = backend.byte_order
        self.pointer_mask = (1 << (8 * backend.pointer_size)) - 1
        self.native: NativeCode | None = None
        self.find_instruction: Any = lambda address: None
        self.values = RunValues(layout.MEM_BASE, 0, COOKIE)
        self.canaries: list[int] = []
        self.widths: list[int] = []
        self.count = 0
        self.records: list[HelperCall] = []

    def start(self, native: NativeCode, values: RunValues, planted: list[int], read_back: list[int]) -> None:
        """Before a run: its code, its values, and the callee-saved canaries (as written, as read back)."""
        if native is not self.native:
            self.native, self.find_instruction = native, instruction_finder(native)
        self.values, self.canaries = values, read_back
        # 8 or 4 bytes to look for in the stack; 0 for a register narrower than a word (ppc64's
        # condition fields), which is only checked when the code returns.
        self.widths = [8 if back == written else 4 if back == written & 0xFFFF_FFFF else 0
                       for written, back in zip(planted, read_back)]
        self.count = 0
        self.records = []

    def helper_number(self, helper_id: int) -> int | None:
        """A dispatcher call's helper id -> the harness's helper (the answer's ``helper_ids``)."""
        if self.native is not None and self.native.helper_ids:
            return self.native.helper_ids.get(helper_id)
        return helper_id

    def at_call(self, helper: int, arguments: tuple[int, ...], reads: int = 5) -> None:
        """At the stub, before the helper runs: record the call (the ``reads`` arguments the
        helper reads) and what it broke."""
        self.count += 1
        problems = self.problems()
        first_broken = problems and not any(record.problems for record in self.records)
        if self.count <= RECORDED_CALLS or first_broken:
            returns = self.backend.helper_return_address(self.uc)
            self.records.append(HelperCall(self.count, helper, tuple(arguments[:reads]),
                                           self.find_instruction(returns), returns, tuple(problems)))

    def calls(self) -> tuple[HelperCall, ...]:
        return tuple(self.records)

    # --- the checks -------------------------------------------------------------------

    def problems(self) -> list[tuple[str, str]]:
        """Each way the call breaks the ABI or the description: (what it had, what was required)."""
        backend, uc = self.backend, self.uc
        problems = []
        stub_sp = uc.reg_read(backend.stack_pointer)
        for carried in backend.helper_carries:
            problem = self._carried(carried, stub_sp)
            if problem:
                problems.append(problem)
        problems += self._stack_pointer()
        if self.count <= CANARY_CHECKED_CALLS and layout.NATIVE_STACK_BASE <= stub_sp < NATIVE_STACK_END:
            problems += self._callee_saved(stub_sp)
        return problems

    def _carried(self, carried: CarriedValue, stub_sp: int) -> tuple[str, str] | None:
        expected = self.values.of(carried) & self.pointer_mask
        required = f"{carried.where} = {expected:#x} ({WHAT[carried.value]})"
        if carried.register is not None:
            actual = self.uc.reg_read(carried.register) & self.pointer_mask
        else:
            try:
                word = self.uc.mem_read(stub_sp + (carried.stack_offset or 0), self.backend.pointer_size)
            except UcError:
                return f"{carried.where} unmapped (the stack pointer is {stub_sp:#x})", required
            actual = int.from_bytes(word, self.order)
        return None if actual == expected else (f"{carried.where} = {actual:#x}", required)

    def _stack_pointer(self) -> list[tuple[str, str]]:
        backend = self.backend
        sp = backend.stack_pointer_at_call(self.uc)
        problems = []
        alignment = backend.call_stack_alignment
        had = f"the stack pointer at the call = {sp:#x}"
        if alignment and sp % alignment:
            problems.append((had, f"the stack pointer at the call a multiple of {alignment} "
                                  f"({backend.call_stack_alignment_source})"))
        if not layout.NATIVE_STACK_BASE < sp <= NATIVE_STACK_END - max(backend.callee_stack_area[1], 0):
            problems.append((had, f"the stack pointer at the call inside the native stack region "
                                  f"[{layout.NATIVE_STACK_BASE:#x}, {NATIVE_STACK_END:#x})"))
        return problems

    def _callee_saved(self, stub_sp: int) -> list[tuple[str, str]]:
        now = self.callee_saved.read()
        if now == self.canaries:
            return []
        stack = bytes(self.uc.mem_read(stub_sp, NATIVE_STACK_END - stub_sp))
        problems = []
        for name, canary, value, width in zip(self.backend.callee_saved, self.canaries, now, self.widths):
            if value == canary or not width or canary in now:
                continue
            if (canary & ((1 << (8 * width)) - 1)).to_bytes(width, self.order) in stack:
                continue
            problems.append((f"callee-saved {name} = {value:#x}, its value at entry ({canary:#x}) saved nowhere",
                             f"{name}'s value at entry kept where a helper must leave it (in {name}, another "
                             f"callee-saved register or the native stack above the stack pointer)"))
        return problems

    # --- what a C function may leave behind ---------------------------------------------

    def clobber(self) -> None:
        """After the helper: garbage in every caller-saved register and in the callee's stack."""
        backend, uc, call = self.backend, self.uc, self.count & 0xFFFF
        registers = len(backend.caller_saved_registers)
        if registers:
            self.caller_saved.write([GARBAGE | (n + 1) << 24 | call << 8 | 0xEE for n in range(registers)])
        stub_sp = uc.reg_read(backend.stack_pointer)
        self._fill(stub_sp - CLOBBERED_BELOW, stub_sp)
        start, end = backend.callee_stack_area
        if end > start:
            sp = backend.stack_pointer_at_call(uc)
            self._fill(sp + start, sp + end)

    def _fill(self, low: int, high: int) -> None:
        low, high = max(low, layout.NATIVE_STACK_BASE), min(high, NATIVE_STACK_END)
        if low < high:
            self.uc.mem_write(low, (STACK_GARBAGE * ((high - low) // 4 + 1))[:high - low])
