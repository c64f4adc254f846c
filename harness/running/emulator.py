"""The emulation runner: run a backend's native code under Unicorn, get an Outcome.

One :class:`Engine` per target per worker process, created once and reused: it maps
the shared memory layout (see :mod:`harness.layout`), installs the hooks that end a
run (the sentinel return address), run helpers (the stub page) and turn faults into
outcomes, and is reset between runs by rewriting only the regions a program sees.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import capstone
import unicorn
from unicorn import Uc, UcError
from unicorn import s390x_const

from arches.base import Backend, NativeCode
from harness import layout
from harness.oracle.helpers import (HELPERS, TRASHED_ARGUMENTS, TRASHED_OTHER, Helper, MemoryFault)
from harness.oracle.maps import MapSet
from harness.oracle.outcome import FAULT, LIMIT, RETURNED, Outcome
from harness.running import faults, fidelity

DEFAULT_TIMEOUT_SECONDS = 10.0
MEASURE_CAP = 20_000  # count executed native instructions up to this many, then stop counting (cost bound)
U64 = (1 << 64) - 1
CANARY = 0xCA5E_0000_0000_0000  # callee-saved registers get CANARY | n * 0x01010101 | n, n = 1, 2, ...
_S390X_GPRS = [getattr(s390x_const, f"UC_S390X_REG_R{n}") for n in range(16)]  # for s390x fault operands


def count_instructions(disassembler: Any, code: bytes, address: int) -> int:
    """How many instructions capstone decodes in ``code``.

    Calls cs_disasm through capstone's ctypes binding and frees the result at once:
    2.5x faster than iterating disasm_lite (measured), because no Python tuple is
    built per instruction. Falls back to disasm_lite if the binding changes.
    """
    try:
        import ctypes

        import capstone

        insns = ctypes.POINTER(capstone._cs_insn)()
        count = capstone._cs.cs_disasm(disassembler.csh, code, len(code), address, 0, ctypes.byref(insns))
        if count:
            capstone._cs.cs_free(insns, count)
        return int(count)
    except (AttributeError, TypeError):
        return sum(1 for _ in disassembler.disasm_lite(code, address))


class RegisterBatch:
    """Write or read a fixed set of registers (each at most 64 bits) in one Unicorn call.

    The canary check touches up to 41 registers per run; Unicorn's Python layer costs 2-3 us
    per register even in its own batch calls (measured), one uc_reg_*_batch call through
    ctypes with arrays built once costs a few. Falls back to reg_read/reg_write if the
    binding's C handle is not where unicorn 2.1 keeps it.
    """

    def __init__(self, uc: Uc, registers: list[int]) -> None:
        import ctypes

        self.uc, self.registers, self.count = uc, list(registers), len(registers)
        self.ids = (ctypes.c_int * self.count)(*registers)
        self.values = (ctypes.c_uint64 * self.count)()
        self.pointers = (ctypes.c_void_p * self.count)(
            *[ctypes.addressof(self.values) + 8 * index for index in range(self.count)])
        try:
            from unicorn.unicorn_py3.unicorn import uclib

            self.library, self.handle = uclib, uc._uch
        except (ImportError, AttributeError):
            self.library = self.handle = None

    def write(self, values: list[int]) -> None:
        if self.library is None:
            for register, value in zip(self.registers, values):
                self.uc.reg_write(register, value)
            return
        self.values[:] = values
        self.library.uc_reg_write_batch(self.handle, self.ids, self.pointers, self.count)

    def read(self) -> list[int]:
        if self.library is None:
            return [self.uc.reg_read(register) for register in self.registers]
        self.values[:] = [0] * self.count  # a narrower register fills only its own bytes
        self.library.uc_reg_read_batch(self.handle, self.ids, self.pointers, self.count)
        return list(self.values)


class _UcMemory:
    """Helper-facing view of the emulator's memory: faults become MemoryFault."""

    def __init__(self, uc: Uc, byte_order: str) -> None:
        self.uc = uc
        self.byte_order = byte_order
        self.maps: MapSet | None = None  # the map helpers reach the case's maps through here

    def _check(self, address: int, size: int, write: bool) -> None:
        for region in layout.program_regions(0):
            if region.name == "mem":
                continue
            if region.base <= address and address + size <= region.end:
                return
        if layout.MEM_BASE <= address and address + size <= layout.MEM_BASE + self.mem_size:
            return
        raise MemoryFault(address, size, write)

    mem_size = layout.REGION_ALIGN

    def read(self, address: int, size: int) -> bytes:
        self._check(address, size, False)
        return bytes(self.uc.mem_read(address, size))

    def write(self, address: int, data: bytes) -> None:
        self._check(address, len(data), True)
        self.uc.mem_write(address, bytes(data))


@dataclass
class _RunState:
    finished: bool = False
    fault: MemoryFault | None = None
    fault_detail: str = ""
    fault_access: str = ""  # "read", "write" or "fetch", as Unicorn's memory hook saw it
    fault_pc: int | None = None
    exception: int | None = None  # the CPU exception number the interrupt hook saw
    last_block: tuple[int, int] | None = None  # (address, size) of the last block the block hook saw
    executed: int = 0
    measuring: bool = True
    over_budget: bool = False
    paused: bool = False  # stopped to take the measuring hook out; resume
    unwound: bool = False  # an unwinding helper ended the program (uBPF's unwind)


class Engine:
    """A Unicorn engine set up for one backend, reused for many runs."""

    def __init__(self, backend: Backend) -> None:
        started = time.perf_counter()
        self.backend = backend
        uc = Uc(backend.uc_arch, backend.uc_mode)
        if backend.uc_cpu is not None:
            uc.ctl_set_cpu_model(backend.uc_cpu)
        backend.configure_engine(uc)
        self.uc = uc
        self.memory = _UcMemory(uc, backend.byte_order)
        self.mem_size = layout.REGION_ALIGN
        self.maps_dirty = 0  # bytes of the map region the last run with maps may have written
        for base, size in ((layout.CODE_BASE, layout.CODE_SIZE),
                           (layout.STUB_BASE, layout.STUB_SIZE),
                           (layout.SENTINEL_BASE, layout.SENTINEL_SIZE),
                           (layout.NATIVE_STACK_BASE, layout.NATIVE_STACK_SIZE)):
            uc.mem_map(base, size)
        for region in layout.program_regions(0):
            uc.mem_map(region.base, region.size)
        stub = backend.helper_stub.ljust(layout.STUB_STRIDE, b"\0")
        uc.mem_write(layout.STUB_BASE, stub * (layout.STUB_SIZE // layout.STUB_STRIDE))
        fill = backend.sentinel_fill
        uc.mem_write(layout.SENTINEL_BASE, fill * (layout.SENTINEL_SIZE // len(fill)))
        self.state = _RunState()
        self.block_insns: dict[tuple[int, int], int] = {}
        self.budget = 0
        self.helpers: dict[int, Helper] = HELPERS  # the helper set of the current run
        self.loaded_code: bytes | None = None
        self.code_length = 0
        uc.hook_add(unicorn.UC_HOOK_CODE, self._on_sentinel, begin=layout.SENTINEL_BASE,
                    end=layout.SENTINEL_BASE + layout.SENTINEL_SIZE - 1)
        # A block hook, not a code hook: on SPARC64 any code hook on a jmpl target derails
        # the delayed PC (measured); a stub's first instruction always starts a block.
        uc.hook_add(unicorn.UC_HOOK_BLOCK, self._on_stub, begin=layout.STUB_BASE,
                    end=layout.STUB_BASE + layout.STUB_SIZE - 1)
        uc.hook_add(unicorn.UC_HOOK_MEM_UNMAPPED | unicorn.UC_HOOK_MEM_PROT, self._on_unmapped)
        # Any CPU exception ends the run (left alone, Unicorn re-executes the faulting instruction
        # forever); on s390x it is also how an unmapped access shows (harness/running/faults.py).
        uc.hook_add(unicorn.UC_HOOK_INTR, self._on_interrupt)
        self.block_hook: int | None = None
        self._add_block_hook()
        self._disassembler = backend.disassembler()
        self.canary_registers = RegisterBatch(uc, list(backend.callee_saved.values()))
        self.canaries = [CANARY | number * 0x0101_0101 | number for number in range(1, len(backend.callee_saved) + 1)]
        self.canaries_read_back: list[int] | None = None
        self.corrections = fidelity.corrections_for(backend)  # where Unicorn is not the real CPU
        self.correction_hooks: list[int] = []
        self.setup_seconds = time.perf_counter() - started

    def _add_block_hook(self) -> None:
        """Count executed native instructions per block (and enforce the budget where
        Unicorn's ``count`` is unreliable). A Python call per block is costly, so on
        targets with a reliable ``count`` the hook is taken out after MEASURE_CAP."""
        self.block_hook = self.uc.hook_add(unicorn.UC_HOOK_BLOCK, self._on_block,
                                           begin=layout.CODE_BASE,
                                           end=layout.CODE_BASE + layout.CODE_SIZE - 1)
        self.uc.ctl_flush_tb()

    def _remove_block_hook(self) -> None:
        if self.block_hook is not None:
            self.uc.hook_del(self.block_hook)
            self.block_hook = None
            self.uc.ctl_flush_tb()  # translated blocks still carry the hook's call

    # --- hooks -----------------------------------------------------------------

    def _on_sentinel(self, uc: Uc, address: int, size: int, _: Any) -> None:
        self.state.finished = True
        uc.emu_stop()

    def _on_stub(self, uc: Uc, address: int, size: int, _: Any) -> None:
        offset = address - layout.STUB_BASE
        if offset % layout.STUB_STRIDE:
            return  # a later instruction of the stub (e.g. a delay slot)
        number = offset // layout.STUB_STRIDE
        helper = self.helpers.get(number)
        if helper is None:
            self.state.fault_detail = f"call to unknown helper stub {number}"
            self.state.fault = MemoryFault(address, 0)
            uc.emu_stop()
            return
        backend = self.backend
        args = backend.helper_arguments(uc)
        try:
            result = helper.function(self.memory, *args) & U64
        except MemoryFault as fault:
            self.state.fault = fault
            self.state.fault_detail = (f"{backend.name}: {fault} in helper {number} "
                                       f"({helper.name}, called at stub {address:#x})")
            uc.emu_stop()
            return
        if helper.trashes_registers:  # as a native function may: every caller-saved register
            self._trash_registers()
        backend.set_helper_result(uc, result)
        if helper.unwinds and result == 0:
            # uBPF's unwind: the program ends here returning 0. The stub's block completes
            # (it only returns); no JIT instruction after the call runs, and the JIT never
            # reaches its epilogue, so its C-ABI duties are not checked.
            self.state.finished = True
            self.state.unwound = True
            uc.emu_stop()

    def _trash_registers(self) -> None:
        """What a trashing helper leaves: eBPF r1-r5 = TRASHED_ARGUMENTS where the backend
        passes them in five native registers, and a distinct pattern in each other
        caller-saved register of the native ABI (``Backend.caller_saved_registers``; a
        32-bit backend keeps eBPF registers in pairs and stack words the helper leaves)."""
        backend, uc = self.backend, self.uc
        others = [reg for reg in backend.caller_saved_registers if reg not in backend.argument_registers]
        for value, reg in enumerate(others, start=TRASHED_OTHER):
            uc.reg_write(reg, value)
        if len(backend.argument_registers) == len(TRASHED_ARGUMENTS):  # eBPF r1-r5 live in them
            for value, reg in zip(TRASHED_ARGUMENTS, backend.argument_registers):
                uc.reg_write(reg, value)

    def _on_unmapped(self, uc: Uc, access: int, address: int, size: int, value: int,
                     _: Any) -> bool:
        kind = {unicorn.UC_MEM_READ_UNMAPPED: "read", unicorn.UC_MEM_WRITE_UNMAPPED: "write",
                unicorn.UC_MEM_FETCH_UNMAPPED: "fetch", unicorn.UC_MEM_READ_PROT: "read",
                unicorn.UC_MEM_WRITE_PROT: "write", unicorn.UC_MEM_FETCH_PROT: "fetch"}.get(access, "")
        state = self.state
        state.fault = MemoryFault(address, size, kind == "write")
        state.fault_access = kind
        state.fault_pc = uc.reg_read(self.backend.program_counter)  # the faulting instruction (measured)
        return False

    def _on_interrupt(self, uc: Uc, number: int, _: Any) -> None:
        state = self.state
        state.exception = number
        state.fault_pc = fidelity.trap_pc(self.backend, uc.reg_read(self.backend.program_counter),
                                          state.last_block)
        uc.emu_stop()

    def _on_block(self, uc: Uc, address: int, size: int, _: Any) -> None:
        state = self.state
        state.last_block = (address, size)
        if not state.measuring:
            return
        key = (address, size)
        count = self.block_insns.get(key)
        if count is None and self.backend.instruction_width:  # fixed width: no need to decode
            count = self.block_insns[key] = max(1, size // self.backend.instruction_width)
        if count is None:
            offset = address - layout.CODE_BASE
            code = self.loaded_code[offset:offset + size] if self.loaded_code else b""
            count = count_instructions(self._disassembler, code, address) or 1
            self.block_insns[key] = count
        state.executed += count
        if not self.backend.supports_count and state.executed > self.budget:
            state.over_budget = True
            uc.emu_stop()
        elif self.backend.supports_count and state.executed > MEASURE_CAP:
            state.measuring = False
            state.paused = True
            uc.emu_stop()  # resumed without this hook by Engine.run

    # --- running -------------------------------------------------------------------

    def _load(self, native: NativeCode) -> None:
        if self.loaded_code is native.code:
            return
        if len(native.code) > layout.CODE_SIZE:
            raise ValueError(f"native code of {len(native.code)} bytes exceeds the code region")
        if self.code_length > len(native.code):
            self.uc.mem_write(layout.CODE_BASE + len(native.code),
                              bytes(self.code_length - len(native.code)))
        self.uc.mem_write(layout.CODE_BASE, native.code)
        # Unicorn keeps translated blocks of the old code at the same addresses: drop them.
        self.uc.ctl_remove_cache(layout.CODE_BASE, layout.CODE_BASE + max(self.code_length, len(native.code)))
        self.loaded_code = native.code
        self.code_length = len(native.code)
        self.block_insns.clear()
        for handle in self.correction_hooks:
            self.uc.hook_del(handle)
        self.correction_hooks = [handle for correction in self.corrections
                                 for handle in correction.install(self.uc, native.code, layout.CODE_BASE)]

    def _reset_memory(self, input_memory: bytes) -> None:
        uc = self.uc
        size = layout.mem_region_size(len(input_memory))
        if size != self.mem_size:
            uc.mem_unmap(layout.MEM_BASE, self.mem_size)
            uc.mem_map(layout.MEM_BASE, size)
            self.mem_size = size
        self.memory.mem_size = size
        uc.mem_write(layout.MEM_BASE, bytes(input_memory) + bytes(size - len(input_memory)))
        uc.mem_write(layout.STACK_BASE, bytes(layout.STACK_SIZE))
        uc.mem_write(layout.HELPER_DATA_BASE, bytes(layout.HELPER_DATA_SIZE))
        if self.maps_dirty:  # a previous case's map values must not leak into this one
            uc.mem_write(layout.MAP_BASE, bytes(self.maps_dirty))
            self.maps_dirty = 0
        order = self.backend.byte_order
        context = (len(input_memory).to_bytes(8, order) + layout.MEM_BASE.to_bytes(8, order))
        uc.mem_write(layout.CONTEXT_BASE, context.ljust(layout.CONTEXT_SIZE, b"\0"))

    def run(self, native: NativeCode, input_memory: bytes = b"",
            budget: int = layout.DEFAULT_INSN_BUDGET,
            timeout: float = DEFAULT_TIMEOUT_SECONDS, maps: MapSet | None = None,
            helpers: dict[int, Helper] = HELPERS, entry_pointer: int = layout.MEM_BASE) -> Outcome:
        """Run ``native`` once on fresh program memory and return its outcome.

        ``maps`` (optional) carries map values in and out, so they persist between runs;
        ``helpers`` is the helper set the program's calls use; ``entry_pointer`` is r1
        at entry (0 for a null context).
        """
        backend, uc = self.backend, self.uc
        self.helpers = helpers
        self._load(native)
        for correction in self.corrections:
            correction.reset()
        self._reset_memory(input_memory)
        self.memory.maps = maps
        if maps is not None:
            uc.mem_write(layout.MAP_BASE, bytes(maps.storage[:maps.used]))
            self.maps_dirty = maps.used
        for register in backend.general_registers:
            uc.reg_write(register, 0)
        canaries = self._plant_canaries()
        uc.reg_write(backend.stack_pointer, layout.NATIVE_STACK_TOP)
        backend.set_entry_arguments(uc, entry_pointer, len(input_memory))
        backend.set_return_address(uc, layout.SENTINEL_BASE)
        self.state = state = _RunState()
        native_budget = budget * layout.NATIVE_BUDGET_FACTOR
        self.budget = native_budget
        if self.block_hook is None:
            self._add_block_hook()
        error: UcError | None = None
        deadline = time.perf_counter() + timeout
        start = layout.CODE_BASE + native.entry
        try:
            while True:
                # count=0 means "no limit" to Unicorn: only for targets whose count is unreliable
                count = max(1, native_budget - state.executed) if backend.supports_count else 0
                # until=0 (never reached): the sentinel hook ends a normal run on every
                # target, because s390x raises an exception when it returns to ``until``.
                remaining = max(1, int((deadline - time.perf_counter()) * 1_000_000))
                uc.emu_start(start, 0, timeout=remaining, count=count)
                if not state.paused:
                    break
                state.paused = False
                self._remove_block_hook()
                start = uc.reg_read(backend.program_counter)
        except UcError as caught:
            error = caught
        executed = state.executed if state.measuring else -1
        if state.fault is not None or state.exception is not None or error is not None:
            return self._fault_outcome(native, error, executed)
        if state.finished:
            r0 = backend.result(uc)
            clobbered = () if state.unwound else self._clobbered(canaries)
            return self._outcome(RETURNED, r0, "", None, executed, clobbered=clobbered)
        # Unicorn returns alike when ``count`` or ``timeout`` ends a run: the clock tells which.
        by_budget = state.over_budget or (backend.supports_count and time.perf_counter() < deadline)
        why = f"native instruction budget of {native_budget} exhausted" if by_budget else f"time limit of {timeout:g} s"
        return self._outcome(LIMIT, 0, why, None, executed)

    def _fault_outcome(self, native: NativeCode, error: UcError | None, executed: int) -> Outcome:
        """A FAULT outcome naming the target, the access, its address and the native instruction."""
        state, uc, backend = self.state, self.uc, self.backend
        pc = state.fault_pc if state.fault_pc is not None else uc.reg_read(backend.program_counter)
        instruction = faults.decode(backend, native.code, layout.CODE_BASE, pc)
        fault = state.fault
        if fault is not None and state.fault_detail:  # a helper touched unmapped memory
            return self._outcome(FAULT, 0, state.fault_detail, fault.address, executed,
                                 "write" if fault.write else "read", fault.size)
        if fault is not None:
            report = faults.NativeFault(state.fault_access, fault.address, fault.size, pc, faults.text(instruction))
        else:
            cause = str(error) if error is not None else faults.exception_name(backend.cs_arch, state.exception or 0)
            report = faults.NativeFault("", None, 0, pc, faults.text(instruction), cause)
            if instruction is not None and backend.cs_arch == capstone.CS_ARCH_SYSZ:
                access = faults.s390x_access(instruction, lambda n: uc.reg_read(_S390X_GPRS[n]))
                if access is not None and not self._mapped(access[1], access[2]):
                    report = faults.NativeFault(access[0], access[1], access[2], pc, report.instruction)
        return self._outcome(FAULT, 0, report.describe(backend.name), report.address, executed,
                             report.access, report.size)

    def _plant_canaries(self) -> list[int]:
        """Fill every callee-saved register with its own canary; return them as read back
        (a narrower register, such as a 4-bit condition field, keeps only its own bits)."""
        self.canary_registers.write(self.canaries)
        if self.canaries_read_back is None:
            self.canaries_read_back = self.canary_registers.read()
        return self.canaries_read_back

    def _clobbered(self, canaries: list[int]) -> tuple[str, ...]:
        """What the JIT code left changed of what the C ABI says it must preserve."""
        uc = self.uc
        changed = [f"{name} = {now:#x} (canary {value:#x})" for name, value, now
                   in zip(self.backend.callee_saved, canaries, self.canary_registers.read()) if now != value]
        sp = uc.reg_read(self.backend.stack_pointer)
        if sp != layout.NATIVE_STACK_TOP:
            changed.append(f"stack pointer = {sp:#x} (was {layout.NATIVE_STACK_TOP:#x})")
        return tuple(changed)

    def _mapped(self, address: int, size: int) -> bool:
        """Whether every byte of [address, address + size) is mapped in this engine."""
        try:
            self.uc.mem_read(address, 1)
            self.uc.mem_read(address + max(size, 1) - 1, 1)
        except UcError:
            return False
        return True

    def _outcome(self, kind: str, r0: int, detail: str, fault_address: int | None,
                 executed: int, fault_access: str = "", fault_size: int = 0,
                 clobbered: tuple[str, ...] = ()) -> Outcome:
        uc = self.uc
        memory = bytes(uc.mem_read(layout.MEM_BASE, self.mem_size))
        stack = bytes(uc.mem_read(layout.STACK_BASE, layout.STACK_SIZE))
        maps = self.memory.maps
        snapshot: tuple = ()
        if maps is not None:
            maps.storage[:maps.used] = uc.mem_read(layout.MAP_BASE, maps.used)
            snapshot = maps.snapshot()
        if clobbered:
            source = self.backend.callee_saved_source
            detail = f"{self.backend.name} broke its C ABI ({source}): " + ", ".join(clobbered)
        return Outcome(kind, r0, memory, stack, detail, fault_address, executed, snapshot,
                       fault_access=fault_access, fault_size=fault_size, clobbered=clobbered)


_ENGINES: dict[str, Engine] = {}


def engine_for(backend: Backend) -> Engine:
    """The engine of this worker process for ``backend`` (created on first use)."""
    engine = _ENGINES.get(backend.name)
    if engine is None:
        engine = Engine(backend)
        _ENGINES[backend.name] = engine
    return engine


def discard_engine(backend: Backend) -> None:
    """Forget an engine (after a run left it in doubt); the next run builds a fresh one."""
    _ENGINES.pop(backend.name, None)
