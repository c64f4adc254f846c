"""Random but valid eBPF programs, for differential fuzzing.

One generator, two faces: :func:`generate` takes a seed (plain, deterministic,
fast) and :func:`programs` is a Hypothesis strategy drawing the same choices
(so Hypothesis can shrink them). Programs use every instruction class, with
registers and immediates biased to edge values, forward jumps, bounded loops,
loads and stores inside the stack frame and the input memory, atomics, helper
calls and local calls; each ends by folding every register into r0, so a wrong
register anywhere shows in the result. No program reads a register before writing
it on every path (the validator rejects that, as the kernel does): registers start
edge-valued, and r1-r5 are rewritten after every call.

``far=N`` makes a large program: a block of N slots that never runs (helper calls
and atomics, 35 bytes a slot of this project's arm64 code and 44 of uBPF's) sits
between the two halves of the body; the program jumps over it with gotol, the second
half comes back over it with a conditional jump (with gotol beyond the 32,767 slots a
conditional offset reaches) and exits at the far end, where local functions and
helper calls also are. N = 30,000 puts more than 1 MiB of arm64 code under the
branches, N = 60,000 more than 2 MiB (and more than the 65,536 branches uBPF's arm64 JIT
can record: its jump table overruns, see arches/external/known_failures/ubpf-arm64.toml).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

from harness import isa, layout
from harness.isa import Insn, Program

EDGE_IMMEDIATES = [0, 1, -1, 2, 7, 31, 32, 63, 64, 0x7F, 0x80, 0xFF, 0x7FFF, -0x8000, 0xFFFF,
                   0x7FFFFFFF, -0x80000000, -2, 0x12345678]
EDGE_VALUES = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
               0x100000000, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, (1 << 64) - 1, 0x0123456789ABCDEF]
INPUT_SIZE = 64  # bytes of input memory every generated program gets
ALU_OPS = [isa.ADD, isa.SUB, isa.MUL, isa.DIV, isa.OR, isa.AND, isa.LSH, isa.RSH, isa.MOD, isa.XOR,
           isa.MOV, isa.ARSH]
JUMP_OPS = [isa.JEQ, isa.JGT, isa.JGE, isa.JSET, isa.JNE, isa.JSGT, isa.JSGE, isa.JLT, isa.JLE,
            isa.JSLT, isa.JSLE]
ATOMIC_OPS = [isa.ADD, isa.OR, isa.AND, isa.XOR]  # atomic imm = the ALU operation
SIZES = [isa.B, isa.H, isa.W, isa.DW]
WORK_REGISTERS = list(range(0, 8))  # r8 is the loop counter and r9 the memory base inside blocks
# The never-run block of a far program, repeated: a helper call, three cmpxchg (fat native code on
# every arm64 JIT; uBPF's x86-64 JIT accepts at most 65,536 patched jumps, three per helper call).
FAR_FILLER = (Insn(isa.JMP | isa.CALL, 0, 0, 0, 102),) + (
    Insn(isa.STX | isa.ATOMIC | isa.DW, 10, 1, -8, isa.ATOMIC_CMPXCHG),) * 3
FAR_CONDITIONAL_REACH = 0x7FFF  # slots a conditional jump's 16-bit offset reaches


class Chooser(Protocol):
    """The source of every decision: a seeded Random or a Hypothesis ``draw``."""

    def integer(self, low: int, high: int) -> int: ...

    def pick(self, options: list[Any]) -> Any: ...


class RandomChooser:
    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)

    def integer(self, low: int, high: int) -> int:
        return self.random.randint(low, high)

    def pick(self, options: list[Any]) -> Any:
        return self.random.choice(options)


@dataclass
class Generated:
    """A generated program with its input memory and the seed that made it."""

    program: Program
    memory: bytes
    seed: int | None = None


class _Builder:
    def __init__(self, choose: Chooser, size: int) -> None:
        self.choose = choose
        self.size = size
        self.insns: list[Insn] = []
        self.frame = layout.MAX_STACK  # bytes below r10 the current function may use

    # --- operands ---------------------------------------------------------------

    def immediate(self) -> int:
        if self.choose.integer(0, 3):
            return self.choose.pick(EDGE_IMMEDIATES)
        return self.choose.integer(-(1 << 31), (1 << 31) - 1)

    def value(self) -> int:
        if self.choose.integer(0, 2):
            return self.choose.pick(EDGE_VALUES)
        return self.choose.integer(0, (1 << 64) - 1)

    def register(self) -> int:
        return self.choose.pick(WORK_REGISTERS)

    # --- pieces -------------------------------------------------------------------

    def emit(self, *insns: Insn) -> None:
        self.insns.extend(insns)

    def alu(self) -> None:
        klass = self.choose.pick([isa.ALU, isa.ALU64])
        dst = self.register()
        kind = self.choose.integer(0, 19)
        if kind == 0:  # neg
            self.emit(Insn(klass | isa.NEG, dst, 0, 0, 0))
        elif kind == 1:  # byte swaps and conversions
            width = self.choose.pick([16, 32, 64])
            if klass == isa.ALU64:
                self.emit(Insn(isa.ALU64 | isa.END, dst, 0, 0, width))
            else:
                self.emit(Insn(isa.ALU | isa.END | self.choose.pick([isa.K, isa.X]), dst, 0, 0, width))
        elif kind == 2:  # movsx
            offset = self.choose.pick([8, 16] if klass == isa.ALU else [8, 16, 32])
            self.emit(Insn(klass | isa.MOV | isa.X, dst, self.register(), offset, 0))
        elif kind == 3:  # signed division / modulo
            op = self.choose.pick([isa.DIV, isa.MOD])
            if self.choose.integer(0, 1):
                self.emit(Insn(klass | op | isa.X, dst, self.register(), 1, 0))
            else:
                self.emit(Insn(klass | op | isa.K, dst, 0, 1, self.immediate()))
        else:
            op = self.choose.pick(ALU_OPS)
            if self.choose.integer(0, 1):
                self.emit(Insn(klass | op | isa.X, dst, self.register(), 0, 0))
            else:
                self.emit(Insn(klass | op | isa.K, dst, 0, 0, self.immediate()))

    def lddw(self) -> None:
        self.emit(*isa.lddw_pair(self.register(), self.value()))

    def memory(self) -> None:
        """A load, store or atomic in the stack frame or the input memory."""
        size = self.choose.pick(SIZES)
        nbytes = isa.SIZE_BYTES[size]
        on_stack = self.choose.integer(0, 1)
        atomic = size in (isa.W, isa.DW) and not self.choose.integer(0, 3)
        if on_stack:
            base, slot = 10, self.choose.integer(1, self.frame // 8) * 8
            offset = -slot if atomic or self.choose.integer(0, 3) else -slot + self.choose.integer(0, 7)
            offset = min(offset, -nbytes)  # inside the frame [r10-frame, r10), as the validator demands
        else:
            self.emit(*isa.lddw_pair(9, layout.MEM_BASE))
            base = 9
            offset = self.choose.integer(0, (INPUT_SIZE - nbytes) // nbytes) * nbytes
            if not atomic and not self.choose.integer(0, 3):
                offset = self.choose.integer(0, INPUT_SIZE - nbytes)
        if atomic:
            op = self.choose.pick(ATOMIC_OPS + [isa.ATOMIC_XCHG, isa.ATOMIC_CMPXCHG])
            if op in ATOMIC_OPS and self.choose.integer(0, 1):
                op |= isa.ATOMIC_FETCH
            self.emit(Insn(isa.STX | isa.ATOMIC | size, base, self.register(), offset, op))
            return
        kind = self.choose.integer(0, 3)
        if kind == 0:
            self.emit(Insn(isa.ST | isa.MEM | size, base, 0, offset, self.immediate()))
        elif kind == 1:
            self.emit(Insn(isa.STX | isa.MEM | size, base, self.register(), offset, 0))
        else:
            signed = size != isa.DW and kind == 3
            self.emit(Insn(isa.LDX | (isa.MEMSX if signed else isa.MEM) | size, self.register(), base, offset, 0))

    def forward_jump(self, remaining: int) -> None:
        """A conditional jump over the next few instructions (patched once they exist)."""
        klass = self.choose.pick([isa.JMP, isa.JMP32])
        op = self.choose.pick(JUMP_OPS)
        dst = self.register()
        if self.choose.integer(0, 1):
            jump = Insn(klass | op | isa.X, dst, self.register(), 0, 0)
        else:
            jump = Insn(klass | op | isa.K, dst, 0, 0, self.immediate())
        index = len(self.insns)
        self.emit(jump)
        for _ in range(self.choose.integer(1, max(1, min(4, remaining)))):
            self.simple()
        self.insns[index] = Insn(jump.opcode, jump.dst, jump.src, len(self.insns) - index - 1, jump.imm)

    def loop(self) -> None:
        """``r8 = n; top: body; r8 -= 1; if r8 != 0 goto top`` with a body that leaves r8 alone."""
        count = self.choose.integer(1, 5)
        self.emit(Insn(isa.ALU64 | isa.MOV | isa.K, 8, 0, 0, count))
        top = len(self.insns)
        for _ in range(self.choose.integer(1, 4)):
            self.simple()
        self.emit(Insn(isa.ALU64 | isa.SUB | isa.K, 8, 0, 0, 1))
        self.emit(Insn(isa.JMP | isa.JNE | isa.K, 8, 0, top - len(self.insns) - 1, 0))

    def helper_call(self) -> None:
        """A helper call; r1-r5 are scratch afterwards (the ISA leaves them undefined), so reset them."""
        self.emit(Insn(isa.JMP | isa.CALL, 0, 0, 0, self.choose.pick([100, 102, 104])))
        for register in range(1, 6):
            self.emit(Insn(isa.ALU64 | isa.MOV | isa.K, register, 0, 0, register))

    def simple(self) -> None:
        kind = self.choose.integer(0, 9)
        if kind <= 5:
            self.alu()
        elif kind <= 7:
            self.memory()
        elif kind == 8:
            self.lddw()
        else:
            self.emit(Insn(isa.ALU64 | isa.MOV | isa.X, self.register(), self.register(), 0, 0))

    def body(self, count: int) -> None:
        while count > 0:
            kind = self.choose.integer(0, 15)
            if kind == 0:
                self.loop()
            elif kind <= 2:
                self.forward_jump(count)
            elif kind == 3:
                self.helper_call()
            else:
                self.simple()
            count -= 1

    def define(self, registers: range | list[int]) -> None:
        """Give registers edge values: the validator rejects a read of an undefined register."""
        for register in registers:
            self.emit(*isa.lddw_pair(register, self.value()))

    def fold_and_exit(self) -> None:
        for register in range(1, 9):
            self.emit(Insn(isa.ALU64 | isa.XOR | isa.X, 0, register, 0, 0))
        self.emit(Insn(isa.JMP | isa.EXIT, 0, 0, 0, 0))


def _build(choose: Chooser, size: int, far: int = 0) -> Generated:
    builder = _Builder(choose, size)
    builder.define(range(0, 9))  # defined values everywhere: registers start edge-valued
    with_function = choose.integer(0, 3) == 0
    call_site = None
    if with_function:
        builder.frame = layout.MAX_STACK // 2  # main and the function share the combined stack limit
        call_site = len(builder.insns)
        builder.emit(Insn(isa.JMP | isa.CALL, 0, isa.CALL_LOCAL, 0, 0))  # patched below
        builder.define(range(1, 6))  # r1-r5 are scratch after the call
    if far:
        _far_body(builder, size, far)
    else:
        builder.body(size)
        builder.fold_and_exit()
    if with_function and call_site is not None:
        start = len(builder.insns)
        builder.define([0, 6, 7])  # a function starts with only r1-r5 (its arguments) and r10
        builder.body(max(1, size // 3))
        builder.emit(Insn(isa.JMP | isa.EXIT, 0, 0, 0, 0))
        builder.insns[call_site] = Insn(isa.JMP | isa.CALL, 0, isa.CALL_LOCAL, 0, start - call_site - 1)
    memory = bytes(choose.integer(0, 255) for _ in range(INPUT_SIZE))
    return Generated(Program(tuple(builder.insns)), memory)


def _far_body(builder: _Builder, size: int, far: int) -> None:
    """gotol over the block; second half ... exit; the block; first half; back over the block; exit."""
    over = len(builder.insns)
    builder.emit(Insn(isa.JMP32 | isa.JA, 0, 0, 0, 0))  # patched below
    second = len(builder.insns)
    builder.body(size - size // 2)
    builder.fold_and_exit()
    builder.insns.extend((FAR_FILLER * (far // len(FAR_FILLER) + 1))[:far])
    first = len(builder.insns)
    builder.insns[over] = Insn(isa.JMP32 | isa.JA, 0, 0, 0, first - over - 1)
    builder.body(size // 2)
    back = second - len(builder.insns) - 1
    if -back <= FAR_CONDITIONAL_REACH:
        builder.emit(Insn(isa.JMP | builder.choose.pick(JUMP_OPS) | isa.X, builder.register(), builder.register(),
                          back, 0))
    else:
        builder.emit(Insn(isa.JMP32 | isa.JA, 0, 0, 0, back))
    builder.fold_and_exit()


def generate(seed: int, size: int = 24, far: int = 0) -> Generated:
    """A valid program of about ``size`` body instructions, determined by ``seed``; ``far`` slots
    of never-run code between its halves make it large (see the module's docstring)."""
    generated = _build(RandomChooser(seed), size, far)
    generated.seed = seed
    return generated


def programs(size: int = 24):  # -> hypothesis.strategies.SearchStrategy[Generated]
    """The same generator as a Hypothesis strategy (shrinks by Hypothesis' own means)."""
    from hypothesis import strategies as st

    @st.composite
    def strategy(draw: Any) -> Generated:
        class DrawChooser:
            def integer(self, low: int, high: int) -> int:
                return draw(st.integers(low, high))

            def pick(self, options: list[Any]) -> Any:
                return draw(st.sampled_from(options))

        return _build(DrawChooser(), size)

    return strategy()
