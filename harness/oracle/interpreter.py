"""The reference interpreter: exact RFC 9669 semantics in either byte order.

It is the oracle every JIT target is compared with, so it favours plainness over
cleverness; for speed each slot is turned once into a small closure (its handler)
that updates the registers and returns the next program counter, instead of
decoding fields on every step.
"""
from __future__ import annotations

import operator
import time
from dataclasses import dataclass, field
from typing import Callable

from harness import isa, layout
from harness.oracle.helpers import HELPERS, TRASHED_ARGUMENTS, Helper, MemoryFault
from harness.isa import Insn, Program, sign_extend
from harness.oracle.maps import MapSet
from harness.oracle.outcome import FAULT, LIMIT, RETURNED, Outcome

U64 = (1 << 64) - 1
U32 = 0xFFFFFFFF
TIME_CHECK_INSNS = 1 << 16  # instructions between two looks at the clock (about 15 ms)
EXIT_PROGRAM = -1  # handler result: the main frame executed exit


class Memory:
    """The mapped regions of one run, addressable like the emulators' memory."""

    def __init__(self, input_memory: bytes, byte_order: str, maps: MapSet | None = None) -> None:
        self.byte_order = byte_order
        self.input_length = len(input_memory)
        self.maps = maps  # the map helpers reach the case's maps through here
        self.regions: list[tuple[int, int, bytearray]] = []
        for region in layout.program_regions(len(input_memory)):
            # The map region *is* the MapSet's storage, so values persist between events.
            buffer = maps.storage if maps is not None and region.name == "maps" else bytearray(region.size)
            self.regions.append((region.base, region.end, buffer))
        self.mem = self._buffer(layout.MEM_BASE)
        self.mem[:len(input_memory)] = input_memory
        self.stack = self._buffer(layout.STACK_BASE)
        context = self._buffer(layout.CONTEXT_BASE)
        context[0:8] = len(input_memory).to_bytes(8, byte_order)
        context[8:16] = layout.MEM_BASE.to_bytes(8, byte_order)

    def _buffer(self, base: int) -> bytearray:
        return next(buf for start, _, buf in self.regions if start == base)

    def locate(self, address: int, size: int, write: bool = False) -> tuple[bytearray, int]:
        for start, end, buf in self.regions:
            if start <= address and address + size <= end:
                return buf, address - start
        raise MemoryFault(address, size, write)

    def read(self, address: int, size: int) -> bytes:
        buf, offset = self.locate(address, size)
        return bytes(buf[offset:offset + size])

    def write(self, address: int, data: bytes) -> None:
        buf, offset = self.locate(address, len(data), write=True)
        buf[offset:offset + len(data)] = data

    def load(self, address: int, size: int) -> int:
        buf, offset = self.locate(address, size)
        return int.from_bytes(buf[offset:offset + size], self.byte_order)

    def store(self, address: int, size: int, value: int) -> None:
        buf, offset = self.locate(address, size, write=True)
        buf[offset:offset + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, self.byte_order)


@dataclass
class _State:
    regs: list[int]
    memory: Memory
    frames: list[tuple[int, list[int]]] = field(default_factory=list)  # (return pc, r6-r10)


class _PacketExit(Exception):
    """LD_ABS/LD_IND out of the packet: the program ends returning 0 (kernel semantics)."""


class _Unwind(Exception):
    """An unwinding helper returned 0: the program ends returning 0 (uBPF's unwind)."""


Handler = Callable[[_State], int]


def _alu_value(op: int, width: int, dst: int, src: int, signed: bool) -> int:
    """dst OP src for one ALU operation on unsigned operands of ``width`` bits."""
    mask = (1 << width) - 1
    dst &= mask
    src &= mask
    if op == isa.ADD:
        return (dst + src) & mask
    if op == isa.SUB:
        return (dst - src) & mask
    if op == isa.MUL:
        return (dst * src) & mask
    if op == isa.DIV:
        if src == 0:
            return 0
        if not signed:
            return dst // src
        a, b = sign_extend(dst, width), sign_extend(src, width)
        quotient = abs(a) // abs(b)
        return (-quotient if (a < 0) != (b < 0) else quotient) & mask
    if op == isa.MOD:
        if src == 0:
            return dst
        if not signed:
            return dst % src
        a, b = sign_extend(dst, width), sign_extend(src, width)
        remainder = abs(a) % abs(b)
        return (-remainder if a < 0 else remainder) & mask
    if op == isa.OR:
        return dst | src
    if op == isa.AND:
        return dst & src
    if op == isa.XOR:
        return dst ^ src
    if op == isa.LSH:
        return (dst << (src & (width - 1))) & mask
    if op == isa.RSH:
        return dst >> (src & (width - 1))
    if op == isa.ARSH:
        return (sign_extend(dst, width) >> (src & (width - 1))) & mask
    if op == isa.MOV:
        return src
    if op == isa.NEG:
        return (-dst) & mask
    raise AssertionError(f"not an ALU operation: {op:#x}")


def _condition(op: int, width: int, left: int, right: int) -> bool:
    mask = (1 << width) - 1
    left &= mask
    right &= mask
    if op in (isa.JSGT, isa.JSGE, isa.JSLT, isa.JSLE):
        left, right = sign_extend(left, width), sign_extend(right, width)
    if op == isa.JEQ:
        return left == right
    if op == isa.JNE:
        return left != right
    if op == isa.JSET:
        return bool(left & right)
    if op in (isa.JGT, isa.JSGT):
        return left > right
    if op in (isa.JGE, isa.JSGE):
        return left >= right
    if op in (isa.JLT, isa.JSLT):
        return left < right
    if op in (isa.JLE, isa.JSLE):
        return left <= right
    raise AssertionError(f"not a condition: {op:#x}")


def _fast_alu(combine: Callable[[int, int, int], int]):
    """A handler factory for ``dst = combine(dst, operand, mask)``; operand is a register
    (``src``) or a constant (``imm``, already cut to the width)."""
    def factory(dst: int, src: int | None, imm: int | None, mask: int, following: int) -> Handler:
        if src is not None:
            def reg_handler(state: _State) -> int:
                regs = state.regs
                regs[dst] = combine(regs[dst], regs[src], mask)
                return following
            return reg_handler

        def imm_handler(state: _State) -> int:
            regs = state.regs
            regs[dst] = combine(regs[dst], imm, mask)  # type: ignore[arg-type]
            return following
        return imm_handler
    return factory


_FAST_ALU = {
    isa.ADD: _fast_alu(lambda a, b, m: (a + b) & m),
    isa.SUB: _fast_alu(lambda a, b, m: (a - b) & m),
    isa.OR: _fast_alu(lambda a, b, m: (a | b) & m),
    isa.AND: _fast_alu(lambda a, b, m: a & b & m),
    isa.XOR: _fast_alu(lambda a, b, m: (a ^ b) & m),
    isa.MOV: _fast_alu(lambda a, b, m: b & m),
    isa.MUL: _fast_alu(lambda a, b, m: (a * b) & m),
}


_UNSIGNED_TESTS: dict[int, Callable[[int, int], bool]] = {
    isa.JEQ: operator.eq, isa.JNE: operator.ne, isa.JGT: operator.gt, isa.JGE: operator.ge,
    isa.JLT: operator.lt, isa.JLE: operator.le, isa.JSET: lambda a, b: bool(a & b),
}


def _bswap(value: int, bits: int) -> int:
    return int.from_bytes((value & ((1 << bits) - 1)).to_bytes(bits // 8, "little"), "big")


class Interpreter:
    """Runs validated programs; build once per program, run with many inputs."""

    def __init__(self, program: Program, byte_order: str = "little",
                 helpers: dict[int, Helper] = HELPERS) -> None:
        if byte_order not in ("little", "big"):
            raise ValueError(f"byte order must be 'little' or 'big', not {byte_order!r}")
        self.program = program
        self.byte_order = byte_order
        self.helpers = helpers
        self.handlers: list[Handler | None] = [None] * len(program.insns)
        for index in program.instruction_starts():
            self.handlers[index] = self._compile(index, program.insns[index])

    def run(self, input_memory: bytes = b"", budget: int = layout.DEFAULT_INSN_BUDGET,
            maps: MapSet | None = None, seconds: float | None = None,
            entry_pointer: int = layout.MEM_BASE) -> Outcome:
        """One run; it ends as ``limit`` after ``budget`` instructions or ``seconds`` of wall time.

        ``entry_pointer`` is r1 at entry (0 for a null context).
        """
        memory = Memory(input_memory, self.byte_order, maps)
        regs = [0] * isa.REG_COUNT
        regs[1] = entry_pointer
        regs[2] = len(input_memory)
        regs[10] = layout.STACK_TOP
        state = _State(regs, memory)
        handlers = self.handlers
        pc = 0
        executed = 0
        # The clock is read every TIME_CHECK_INSNS instructions, at the same test as the budget.
        deadline = None if seconds is None else time.perf_counter() + seconds
        check_at = budget if deadline is None else min(budget, TIME_CHECK_INSNS)
        try:
            while pc >= 0:
                if executed >= check_at:
                    if executed >= budget:
                        return self._finish(LIMIT, state, executed,
                                            detail=f"instruction budget of {budget} exhausted")
                    if time.perf_counter() >= deadline:  # type: ignore[operator]
                        return self._finish(LIMIT, state, executed, detail=f"time limit of {seconds:g} s "
                                                                           f"after {executed} instructions")
                    check_at = min(budget, executed + TIME_CHECK_INSNS)
                executed += 1
                pc = handlers[pc](state)  # type: ignore[misc]
        except MemoryFault as fault:
            return self._finish(FAULT, state, executed, detail=str(fault), fault=fault)
        except (_PacketExit, _Unwind):
            regs[0] = 0
        return self._finish(RETURNED, state, executed)

    def _finish(self, kind: str, state: _State, executed: int, detail: str = "",
                fault: MemoryFault | None = None) -> Outcome:
        maps = state.memory.maps
        return Outcome(kind, state.regs[0] & U64, bytes(state.memory.mem),
                       bytes(state.memory.stack), detail, fault.address if fault else None, executed,
                       maps.snapshot() if maps is not None else (),
                       fault_access=("write" if fault.write else "read") if fault else "",
                       fault_size=fault.size if fault else 0)

    # --- translation of one slot into a handler --------------------------------

    def _compile(self, index: int, insn: Insn) -> Handler:
        klass = insn.klass
        following = index + 1
        if klass in (isa.ALU, isa.ALU64):
            return self._compile_alu(insn, following)
        if klass in (isa.JMP, isa.JMP32):
            return self._compile_jump(index, insn)
        if insn.opcode == isa.LDDW:
            value = self.program.lddw_value(index)
            dst = insn.dst

            def lddw(state: _State) -> int:
                state.regs[dst] = value
                return following + 1
            return lddw
        if klass == isa.LD:
            return self._compile_packet_load(insn, following)
        return self._compile_memory(insn, following)

    def _compile_alu(self, insn: Insn, following: int) -> Handler:
        width = 64 if insn.klass == isa.ALU64 else 32
        op, dst, src = insn.op, insn.dst, insn.src
        mask = (1 << width) - 1
        if op == isa.END:
            bits = insn.imm
            if insn.klass == isa.ALU64:  # bswap: unconditional
                swap = True
            else:  # le/be: swap only when the host order differs
                wanted = "big" if insn.source == isa.TO_BE else "little"
                swap = wanted != self.byte_order

            def end(state: _State) -> int:
                value = state.regs[dst] & ((1 << bits) - 1)
                state.regs[dst] = _bswap(value, bits) if swap else value
                return following
            return end
        if op == isa.MOV and insn.source == isa.X and insn.off:
            bits = insn.off

            def movsx(state: _State) -> int:
                state.regs[dst] = sign_extend(state.regs[src], bits) & mask
                return following
            return movsx
        signed = op in (isa.DIV, isa.MOD) and insn.off == 1
        fast = _FAST_ALU.get(op)
        if fast is not None:  # the common operations, without the generic dispatch
            if insn.source == isa.X:
                return fast(dst, src, None, mask, following)
            return fast(dst, None, insn.imm & mask, mask, following)
        if insn.source == isa.X:
            def alu_reg(state: _State) -> int:
                regs = state.regs
                regs[dst] = _alu_value(op, width, regs[dst], regs[src], signed)
                return following
            return alu_reg
        # K source: the immediate is sign-extended to 64 bits, then cut to the width.
        imm = insn.imm & mask if width == 32 else insn.imm & U64

        def alu_imm(state: _State) -> int:
            regs = state.regs
            regs[dst] = _alu_value(op, width, regs[dst], imm, signed)
            return following
        return alu_imm

    def _compile_jump(self, index: int, insn: Insn) -> Handler:
        following = index + 1
        if insn.opcode == isa.JMP | isa.EXIT:
            def exit_(state: _State) -> int:
                if not state.frames:
                    return EXIT_PROGRAM
                return_pc, saved = state.frames.pop()
                state.regs[6:11] = saved
                return return_pc
            return exit_
        if insn.opcode == isa.JMP | isa.CALL:
            if insn.src == isa.CALL_LOCAL:
                target = following + insn.imm

                def call_local(state: _State) -> int:
                    if len(state.frames) + 1 >= layout.MAX_CALL_FRAMES:  # unreachable after validation
                        raise MemoryFault(state.regs[10] - layout.FRAME_SIZE, 0, True)
                    state.frames.append((following, state.regs[6:11]))
                    state.regs[10] -= layout.FRAME_SIZE
                    return target
                return call_local
            helper = self.helpers.get(insn.imm)
            if helper is None:
                raise ValueError(f"unknown helper {insn.imm}")
            function, unwinds, trashes = helper.function, helper.unwinds, helper.trashes_registers

            def call(state: _State) -> int:
                regs = state.regs
                regs[0] = function(state.memory, *regs[1:6]) & U64
                if trashes:
                    regs[1:6] = TRASHED_ARGUMENTS
                if unwinds and regs[0] == 0:
                    raise _Unwind()
                return following
            return call
        if insn.op == isa.JA:
            target = following + (insn.imm if insn.klass == isa.JMP32 else insn.off)
            return lambda state: target
        target = following + insn.off
        width = 32 if insn.klass == isa.JMP32 else 64
        op, dst, src = insn.op, insn.dst, insn.src
        imm = insn.imm & U64  # sign-extended to 64 bits
        unsigned_test = _UNSIGNED_TESTS.get(op)
        if unsigned_test is not None:  # no sign handling needed: compare the cut values
            mask = (1 << width) - 1
            if insn.source == isa.X:
                def unsigned_reg(state: _State) -> int:
                    regs = state.regs
                    return target if unsigned_test(regs[dst] & mask, regs[src] & mask) else following
                return unsigned_reg
            constant = imm & mask

            def unsigned_imm(state: _State) -> int:
                return target if unsigned_test(state.regs[dst] & mask, constant) else following
            return unsigned_imm
        if insn.source == isa.X:
            def jump_reg(state: _State) -> int:
                regs = state.regs
                return target if _condition(op, width, regs[dst], regs[src]) else following
            return jump_reg

        def jump_imm(state: _State) -> int:
            return target if _condition(op, width, state.regs[dst], imm) else following
        return jump_imm

    def _compile_packet_load(self, insn: Insn, following: int) -> Handler:
        """LD_ABS / LD_IND: r0 = the network-order value at packet offset (imm [+ src])."""
        size, imm, src = insn.nbytes, insn.imm, insn.src
        indirect = insn.mode == isa.IND

        def packet_load(state: _State) -> int:
            offset = isa.to_s32(imm + (state.regs[src] if indirect else 0))
            memory = state.memory
            if offset < 0 or offset + size > memory.input_length:
                raise _PacketExit()
            start = offset
            state.regs[0] = int.from_bytes(memory.mem[start:start + size], "big")
            return following
        return packet_load

    def _compile_memory(self, insn: Insn, following: int) -> Handler:
        klass, mode, size = insn.klass, insn.mode, insn.nbytes
        dst, src, off = insn.dst, insn.src, insn.off
        if klass == isa.LDX:
            bits = 8 * size
            if mode == isa.MEMSX:
                def load_signed(state: _State) -> int:
                    value = state.memory.load((state.regs[src] + off) & U64, size)
                    state.regs[dst] = sign_extend(value, bits) & U64
                    return following
                return load_signed

            def load(state: _State) -> int:
                state.regs[dst] = state.memory.load((state.regs[src] + off) & U64, size)
                return following
            return load
        if klass == isa.ST:
            imm = insn.imm

            def store_imm(state: _State) -> int:
                state.memory.store((state.regs[dst] + off) & U64, size, imm)
                return following
            return store_imm
        if mode == isa.MEM:
            def store_reg(state: _State) -> int:
                state.memory.store((state.regs[dst] + off) & U64, size, state.regs[src])
                return following
            return store_reg
        return self._compile_atomic(insn, following)

    def _compile_atomic(self, insn: Insn, following: int) -> Handler:
        size, dst, src, off, imm = insn.nbytes, insn.dst, insn.src, insn.off, insn.imm
        width = 8 * size
        mask = (1 << width) - 1

        def atomic(state: _State) -> int:
            regs, memory = state.regs, state.memory
            address = (regs[dst] + off) & U64
            old = memory.load(address, size)
            operand = regs[src] & mask
            if imm == isa.ATOMIC_CMPXCHG:
                if old == regs[0] & mask:
                    memory.store(address, size, operand)
                regs[0] = old
                return following
            if imm == isa.ATOMIC_XCHG:
                new = operand
            else:
                new = _alu_value(imm & 0xF0, width, old, operand, False)
            memory.store(address, size, new)
            if imm & isa.ATOMIC_FETCH:
                regs[src] = old
            return following
        return atomic


def interpret(program: Program, input_memory: bytes = b"", byte_order: str = "little",
              budget: int = layout.DEFAULT_INSN_BUDGET, maps: MapSet | None = None,
              seconds: float | None = None, helpers: dict[int, Helper] = HELPERS,
              entry_pointer: int = layout.MEM_BASE) -> Outcome:
    """Run a validated program once and return its outcome (``maps`` persist across calls).

    ``seconds`` bounds the run's wall time as ``budget`` bounds its instructions.
    """
    return Interpreter(program, byte_order, helpers).run(input_memory, budget, maps, seconds, entry_pointer)
