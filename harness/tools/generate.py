"""Random but valid eBPF programs, for differential fuzzing.

One generator, two faces: :func:`generate` takes a seed (plain, deterministic,
fast) and :func:`programs` is a Hypothesis strategy drawing the same choices
(so Hypothesis can shrink them). Programs use every instruction class, with
registers and immediates biased to edge values: ALU (byte swaps, movsx, signed
division), 64-bit constants, loads, stores and atomics in the stack frame and the
input memory, memory offsets at every target's encoding edges (x86 disp8, arm64
ldur's +-256 and scaled imm12, arm32's imm8/imm12, RISC-V's and SPARC64's 12/13-bit
immediates, the +-4096 page and the 16-bit edge), forward jumps whose operands are
used again after the compare, bounded loops, helper calls, local calls, LD_ABS and
LD_IND, map lookups and updates, and (rarely) long programs whose branches reach
past every short-branch range. Each program ends by folding every register into
r0, so a wrong register anywhere shows in the result.

No program reads a register before writing it on every path (the validator
rejects that, as the kernel does): registers start edge-valued, and r1-r5 are
rewritten after every call and packet load. What each kind of piece gets is a
weight (:data:`DEFAULT_WEIGHTS`); ``harness fuzz --steer`` raises the weights of
the pieces whose programs reach backend builder branches the corpus misses
(:mod:`harness.tools.steer`).

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
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness import isa, layout
from harness.cases.mapspec import MapSpec
from harness.isa import Insn, Program

EDGE_IMMEDIATES = [0, 1, -1, 2, 7, 31, 32, 63, 64, 0x7F, 0x80, 0xFF, 0x7FFF, -0x8000, 0xFFFF,
                   0x7FFFFFFF, -0x80000000, -2, 0x12345678, 0x800, -0x801, 0xFFF, 0x1000]
EDGE_VALUES = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
               0x100000000, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, (1 << 64) - 1, 0x0123456789ABCDEF]
INPUT_SIZE = 64  # bytes of input memory every generated program gets
BIG_INPUT_SIZE = 0x10000  # programs with far memory offsets get the whole input region
FAR_BASE = layout.MEM_BASE + 0x8000  # the base register of a far-offset access points here
# Displacements at the encoding edges of the targets' load/store forms: x86 disp8 (+-128), arm64 ldur
# (-256..255) and scaled imm12 (4095 * size), arm32 ldrh imm8 (+-255) and ldr imm12 (+-4095), RISC-V
# imm12 (-2048..2047), SPARC64 simm13 (-4096..4095), ppc64/mips64 16-bit (+-32767), and a page.
FAR_OFFSETS = [127, 128, -128, -129, 255, 256, -256, -257, 2047, 2048, -2048, -2049, 4095, 4096, -4096,
               -4097, 8190, 8192, 16380, 16384, 32760, -32768, 0x7FF8, 504, 4088, -4104]
ALU_OPS = [isa.ADD, isa.SUB, isa.MUL, isa.DIV, isa.OR, isa.AND, isa.LSH, isa.RSH, isa.MOD, isa.XOR,
           isa.MOV, isa.ARSH]
JUMP_OPS = [isa.JEQ, isa.JGT, isa.JGE, isa.JSET, isa.JNE, isa.JSGT, isa.JSGE, isa.JLT, isa.JLE,
            isa.JSLT, isa.JSLE]
ATOMIC_OPS = [isa.ADD, isa.OR, isa.AND, isa.XOR]  # atomic imm = the ALU operation
SIZES = [isa.B, isa.H, isa.W, isa.DW]
WORK_REGISTERS = list(range(0, 8))  # r8 is the loop counter and r9 the memory base inside blocks
FUZZ_MAPS = (MapSpec("fuzz_array", "array", 4, 8, 4), MapSpec("fuzz_hash", "hash", 8, 8, 4))
FAR_JUMP_FILLER = [300, 1100, 2600, 9000]  # instructions jumped over: past RISC-V's B, ppc64's bc, s390x's brc
# The pieces a program body is made of, and how often each is drawn (out of the sum).
DEFAULT_WEIGHTS: dict[str, int] = {
    "alu": 40, "lddw": 5, "mov": 5, "memory": 14, "far_memory": 4, "jump": 8, "jump_reuse": 4,
    "loop": 4, "helper": 4, "packet": 3, "map": 3,
    "far_jump": 1,  # out of 32 programs (not of the pieces): long programs are slow to translate
}
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
    """A generated program with its input memory, its maps and the seed that made it."""

    program: Program
    memory: bytes
    seed: int | None = None
    maps: tuple[MapSpec, ...] = field(default_factory=tuple)


class _Builder:
    def __init__(self, choose: Chooser, size: int, weights: dict[str, int]) -> None:
        self.choose = choose
        self.size = size
        self.weights = {name: weight for name, weight in weights.items() if weight > 0}
        self.insns: list[Insn] = []
        self.frame = layout.MAX_STACK  # bytes below r10 the current function may use
        self.big_memory = False
        self.maps = False

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

    def weighted(self, names: list[str]) -> str:
        total = sum(self.weights.get(name, 0) for name in names)
        if total <= 0:
            return names[0]
        draw = self.choose.integer(0, total - 1)
        for name in names:
            draw -= self.weights.get(name, 0)
            if draw < 0:
                return name
        return names[-1]

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

    def access(self, base: int, offset: int, size: int, atomic: bool) -> None:
        """One load, store or atomic of ``size`` at ``base + offset``."""
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
        self.access(base, offset, size, atomic)

    def far_memory(self) -> None:
        """An access at an encoding-edge displacement from the middle of the input region, then
        (often) the same bytes read back, so a store to the wrong place shows in a register."""
        self.big_memory = True
        size = self.choose.pick(SIZES)
        nbytes = isa.SIZE_BYTES[size]
        offset = self.choose.pick(FAR_OFFSETS)
        offset += self.choose.pick([0, 0, 1, -1]) if offset % 8 == 0 else 0
        offset = max(-0x8000, min(0x7FFF, offset))  # eBPF's off is a signed 16-bit field
        atomic = size in (isa.W, isa.DW) and offset % nbytes == 0 and not self.choose.integer(0, 4)
        self.emit(*isa.lddw_pair(9, FAR_BASE))
        self.access(9, offset, size, atomic)
        if self.choose.integer(0, 1):
            self.emit(Insn(isa.LDX | isa.MEM | size, self.register(), 9, offset, 0))

    def forward_jump(self, remaining: int, reuse: bool = False) -> None:
        """A conditional jump over the next few instructions (patched once they exist); with
        ``reuse``, the compared registers are read again right after the block."""
        klass = self.choose.pick([isa.JMP, isa.JMP32])
        op = self.choose.pick(JUMP_OPS)
        dst = self.register()
        if self.choose.integer(0, 1):
            jump = Insn(klass | op | isa.X, dst, self.register(), 0, 0)
        else:
            jump = Insn(klass | op | isa.K, dst, 0, 0, self.immediate())
        index = len(self.insns)
        self.emit(jump)
        for _ in range(self.choose.integer(0 if reuse else 1, max(1, min(4, remaining)))):
            self.simple()
        self.insns[index] = Insn(jump.opcode, jump.dst, jump.src, len(self.insns) - index - 1, jump.imm)
        if reuse:  # a compare that clobbers its operands shows here
            self.emit(Insn(isa.ALU64 | isa.ADD | isa.X, 0, jump.dst, 0, 0))
            if jump.source == isa.X:
                self.emit(Insn(isa.STX | isa.MEM | isa.DW, 10, jump.src, -self.frame, 0))

    def far_jump(self) -> None:
        """A branch over (or a loop around) a block longer than some target's short branch reaches."""
        filler = self.choose.pick(FAR_JUMP_FILLER)
        register = self.choose.pick([0, 6, 7])
        kind = self.choose.integer(0, 2)
        if kind == 2:  # a loop whose backward branch is far
            self.emit(Insn(isa.ALU64 | isa.MOV | isa.K, 8, 0, 0, 2))
            top = len(self.insns)
            self.fill(filler, register)
            self.emit(Insn(isa.ALU64 | isa.SUB | isa.K, 8, 0, 0, 1))
            self.emit(Insn(isa.JMP | isa.JNE | isa.K, 8, 0, top - len(self.insns) - 1, 0))
            return
        index = len(self.insns)
        op = self.choose.pick(JUMP_OPS)
        self.emit(Insn(self.choose.pick([isa.JMP, isa.JMP32]) | op | isa.K, self.register(), 0, 0, self.immediate()))
        self.fill(filler, register)
        jump = self.insns[index]
        if kind == 1:  # gotol (32-bit offset in imm) instead of the conditional branch
            self.insns[index] = Insn(isa.JMP32 | isa.JA, 0, 0, 0, len(self.insns) - index - 1)
        else:
            self.insns[index] = Insn(jump.opcode, jump.dst, jump.src, len(self.insns) - index - 1, jump.imm)

    def fill(self, count: int, register: int) -> None:
        step = self.choose.pick([1, 3, 0x10001])
        for position in range(count):
            self.emit(Insn(self.choose.pick([isa.ALU, isa.ALU64]) | isa.ADD | isa.K, register, 0, 0, step)
                      if position % 7 else Insn(isa.ALU64 | isa.XOR | isa.K, register, 0, 0, position))

    def loop(self) -> None:
        """``r8 = n; top: body; r8 -= 1; if r8 != 0 goto top`` with a body that leaves r8 alone."""
        count = self.choose.integer(1, 5)
        self.emit(Insn(isa.ALU64 | isa.MOV | isa.K, 8, 0, 0, count))
        top = len(self.insns)
        for _ in range(self.choose.integer(1, 4)):
            self.simple()
        self.emit(Insn(isa.ALU64 | isa.SUB | isa.K, 8, 0, 0, 1))
        self.emit(Insn(isa.JMP | isa.JNE | isa.K, 8, 0, top - len(self.insns) - 1, 0))

    def scratch_reset(self) -> None:
        """r1-r5 are scratch after a call or a packet load (the ISA leaves them undefined)."""
        for register in range(1, 6):
            self.emit(Insn(isa.ALU64 | isa.MOV | isa.K, register, 0, 0, register))

    def helper_call(self) -> None:
        number = self.choose.pick([100, 102, 104, 101, 103])
        if number == 101:  # memfrob(input + k, n)
            self.emit(*isa.lddw_pair(1, layout.MEM_BASE + self.choose.integer(0, 16)))
            self.emit(Insn(isa.ALU64 | isa.MOV | isa.K, 2, 0, 0, self.choose.integer(0, 40)))
        elif number == 103:  # strcmp(input + a, input + b): the bytes past the input are zero
            self.emit(*isa.lddw_pair(1, layout.MEM_BASE + self.choose.integer(0, 60)))
            self.emit(*isa.lddw_pair(2, layout.MEM_BASE + self.choose.integer(0, 60)))
        self.emit(Insn(isa.JMP | isa.CALL, 0, 0, 0, number))
        self.scratch_reset()

    def packet(self) -> None:
        """LD_ABS or LD_IND; an offset past the packet ends the program with r0 = 0."""
        size = self.choose.pick([isa.B, isa.H, isa.W])
        limit = INPUT_SIZE - isa.SIZE_BYTES[size]
        if self.choose.integer(0, 1):
            offset = self.choose.pick([0, 1, limit, limit + 1, self.choose.integer(0, limit), -1, 0x7FFFFFFF]
                                      if not self.choose.integer(0, 5) else [self.choose.integer(0, limit)])
            self.emit(Insn(isa.LD | isa.ABS | size, 0, 0, 0, offset))
        else:
            register = self.choose.pick([1, 2, 3, 6, 7])
            self.emit(Insn(isa.ALU64 | isa.MOV | isa.K, register, 0, 0, self.choose.integer(-2, limit)))
            self.emit(Insn(isa.LD | isa.IND | size, 0, register, 0, self.choose.integer(-4, 8)))
        self.scratch_reset()

    def map_op(self) -> None:
        """A lookup (and a read and write through the value pointer), an update or a delete."""
        self.maps = True
        which = self.choose.integer(0, len(FUZZ_MAPS) - 1)
        key_size = FUZZ_MAPS[which].key_size
        key = self.choose.integer(0, 5)
        self.emit(Insn(isa.ST | isa.MEM | (isa.W if key_size == 4 else isa.DW), 10, 0, -8, key))
        self.emit(*isa.lddw_pair(1, which, isa.LDDW_MAP_FD))
        self.emit(Insn(isa.ALU64 | isa.MOV | isa.X, 2, 10, 0, 0), Insn(isa.ALU64 | isa.ADD | isa.K, 2, 0, 0, -8))
        kind = self.choose.integer(0, 3)
        if kind == 0:  # update with a value from a register
            self.emit(Insn(isa.STX | isa.MEM | isa.DW, 10, self.choose.pick([0, 6, 7]), -16, 0))
            self.emit(Insn(isa.ALU64 | isa.MOV | isa.X, 3, 10, 0, 0), Insn(isa.ALU64 | isa.ADD | isa.K, 3, 0, 0, -16),
                      Insn(isa.ALU64 | isa.MOV | isa.K, 4, 0, 0, 0), Insn(isa.JMP | isa.CALL, 0, 0, 0, 2))
        elif kind == 1:
            self.emit(Insn(isa.JMP | isa.CALL, 0, 0, 0, 3))
        else:  # lookup; if found: read the value, add a register to it
            self.emit(Insn(isa.JMP | isa.CALL, 0, 0, 0, 1))
            self.emit(Insn(isa.JMP | isa.JEQ | isa.K, 0, 0, 3, 0))
            self.emit(Insn(isa.LDX | isa.MEM | isa.DW, 6, 0, 0, 0),
                      Insn(isa.ALU64 | isa.ADD | isa.X, 6, 7, 0, 0), Insn(isa.STX | isa.MEM | isa.DW, 0, 6, 0, 0))
        self.scratch_reset()

    def simple(self) -> None:
        kind = self.weighted(["alu", "memory", "far_memory", "lddw", "mov"])
        if kind == "alu":
            self.alu()
        elif kind == "memory":
            self.memory()
        elif kind == "far_memory":
            self.far_memory()
        elif kind == "lddw":
            self.lddw()
        else:
            self.emit(Insn(isa.ALU64 | isa.MOV | isa.X, self.register(), self.register(), 0, 0))

    def body(self, count: int) -> None:
        while count > 0:
            kinds = ["alu", "memory", "far_memory", "lddw", "mov", "jump", "jump_reuse", "loop", "helper",
                     "packet", "map"]
            kind = self.weighted(kinds)
            if kind == "loop":
                self.loop()
            elif kind in ("jump", "jump_reuse"):
                self.forward_jump(count, reuse=kind == "jump_reuse")
            elif kind == "helper":
                self.helper_call()
            elif kind == "packet":
                self.packet()
            elif kind == "map":
                self.map_op()
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


def _build(choose: Chooser, size: int, weights: dict[str, int] | None = None, far: int = 0) -> Generated:
    builder = _Builder(choose, size, weights or DEFAULT_WEIGHTS)
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
        if choose.integer(0, 31) < builder.weights.get("far_jump", 0):  # a long program: 1 in 32 by default
            builder.far_jump()
        builder.fold_and_exit()
    if with_function and call_site is not None:
        start = len(builder.insns)
        builder.define([0, 6, 7])  # a function starts with only r1-r5 (its arguments) and r10
        builder.body(max(1, size // 3))
        builder.emit(Insn(isa.JMP | isa.EXIT, 0, 0, 0, 0))
        builder.insns[call_site] = Insn(isa.JMP | isa.CALL, 0, isa.CALL_LOCAL, 0, start - call_site - 1)
    memory = bytes(choose.integer(0, 255) for _ in range(INPUT_SIZE))
    if builder.big_memory:
        memory += bytes(BIG_INPUT_SIZE - INPUT_SIZE)  # zeros: what the far accesses store shows there
    return Generated(Program(tuple(builder.insns)), memory, maps=FUZZ_MAPS if builder.maps else ())


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


def generate(seed: int, size: int = 24, weights: dict[str, int] | None = None, far: int = 0) -> Generated:
    """A valid program of about ``size`` body pieces, determined by ``seed`` (and ``weights``);
    ``far`` slots of never-run code between its halves make it large (see the module's docstring)."""
    generated = _build(RandomChooser(seed), size, weights, far)
    generated.seed = seed
    return generated


def programs(size: int = 24, weights: dict[str, int] | None = None):  # -> SearchStrategy[Generated]
    """The same generator as a Hypothesis strategy (shrinks by Hypothesis' own means)."""
    from hypothesis import strategies as st

    @st.composite
    def strategy(draw: Any) -> Generated:
        class DrawChooser:
            def integer(self, low: int, high: int) -> int:
                return draw(st.integers(low, high))

            def pick(self, options: list[Any]) -> Any:
                return draw(st.sampled_from(options))

        return _build(DrawChooser(), size, weights)

    return strategy()
