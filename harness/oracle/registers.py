"""Undefined register reads, found path-sensitively as the kernel verifier finds them.

A forward dataflow over each function's control-flow graph: the state at an
instruction is the set of registers *defined on every path* to it (a bit mask),
so at a join the sets intersect and a register written on only one branch is
unreadable after it. The lattice has 11 bits, so a worklist settles in at most
11 passes over each instruction: linear in the program size.

What is defined where (the kernel's rules, kernel/bpf/verifier.c):

* the program starts with r1 (input memory), r2 (its length) and r10 (the frame
  pointer); r0 and r3-r9 are undefined until written;
* a helper call or a local call defines r0 and leaves r1-r5 undefined (they are
  scratch: ``clear_caller_saved_regs``); r6-r10 survive it;
* LD_ABS/LD_IND are calls in disguise: they define r0 and leave r1-r5 undefined
  (``check_ld_abs``);
* a local function starts with r10 and its arguments r1-r5, each defined only if
  *every* call site defines it (the kernel checks each call with the caller's own
  state, ``set_callee_state``; one state for all call sites is the path-insensitive
  intersection of those); r0 and r6-r9 start undefined;
* ``exit`` reads r0 (the return value); a helper call reads as many of r1-r5 as the
  helper takes (its ``arguments``, in the case's helper set; :data:`harness.oracle.helpers.HELPERS`
  by default).

The validator tracks which registers are defined, not their values, so a branch the
kernel could prove never taken still counts as a path here (a stated limit). Code
that no path reaches (an instruction after an unconditional jump, a function whose
every call site is unreachable) is not checked: it never runs.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import NamedTuple

from harness import isa
from harness.isa import Insn, Program
from harness.oracle.functions import Function
from harness.oracle.helpers import HELPERS, Helper
from harness.oracle.rejection import ValidationError

R0 = 1 << 0
SCRATCH = 0b111110  # r1-r5
KEPT = 0b11110000000  # r6-r10
FP = 1 << isa.FRAME_POINTER
MAIN_ENTRY = (1 << 1) | (1 << 2) | FP  # r1 = input memory, r2 = its length, r10 = stack top
UNVISITED = -1


class Effect(NamedTuple):
    """What one instruction does to the defined set: out = (in & ~kills) | writes."""

    reads: int
    writes: int
    kills: int
    successors: tuple[int, ...]


_EXIT, _CALL, _JA32 = isa.JMP | isa.EXIT, isa.JMP | isa.CALL, isa.JMP32 | isa.JA


def effect(program: Program, index: int, helpers: Mapping[int, Helper] = HELPERS) -> Effect:
    """The registers ``program.insns[index]`` reads, writes and leaves undefined, and where it goes next."""
    insn = program.insns[index]
    opcode, dst, src = insn.opcode, insn.dst, insn.src
    klass, op, from_register = opcode & 0x07, opcode & 0xF0, opcode & isa.X
    dst_bit, src_bit = 1 << dst, 1 << src
    following = index + 1
    if klass == isa.ALU or klass == isa.ALU64:
        if op == isa.MOV:  # mov and movsx read only the source
            reads = src_bit if from_register else 0
        elif op == isa.NEG or op == isa.END or not from_register:
            reads = dst_bit
        else:
            reads = dst_bit | src_bit
        return Effect(reads, dst_bit, 0, (following,))
    if klass == isa.JMP or klass == isa.JMP32:
        if opcode == _EXIT:
            return Effect(R0, 0, 0, ())
        if opcode == _CALL:
            if src == isa.CALL_HELPER:
                helper = helpers.get(insn.imm)
                count = helper.arguments if helper is not None else 5
                return Effect(((1 << (count + 1)) - 1) & SCRATCH, R0, SCRATCH, (following,))
            return Effect(0, R0, SCRATCH, (following,))  # local call: the callee checks its arguments
        if op == isa.JA:
            return Effect(0, 0, 0, (following + (insn.imm if opcode == _JA32 else insn.off),))
        reads = dst_bit | src_bit if from_register else dst_bit
        return Effect(reads, 0, 0, (following, following + insn.off))
    if opcode == isa.LDDW:
        return Effect(0, dst_bit, 0, (following + 1,))
    if klass == isa.LD:  # LD_ABS / LD_IND
        return Effect(src_bit if insn.mode == isa.IND else 0, R0, SCRATCH, (following,))
    if klass == isa.LDX:
        return Effect(src_bit, dst_bit, 0, (following,))
    if klass == isa.ST:
        return Effect(dst_bit, 0, 0, (following,))
    if insn.mode == isa.ATOMIC:
        if insn.imm == isa.ATOMIC_CMPXCHG:
            return Effect(dst_bit | src_bit | R0, R0, 0, (following,))
        return Effect(dst_bit | src_bit, src_bit if insn.imm & isa.ATOMIC_FETCH else 0, 0, (following,))
    return Effect(dst_bit | src_bit, 0, 0, (following,))  # STX


def check_registers(program: Program, functions: list[Function],
                    helpers: Mapping[int, Helper] = HELPERS) -> None:
    """Reject the lowest-numbered instruction that reads a register undefined on some path to it.

    ``functions`` come in topological order (callers first, as
    :func:`harness.oracle.functions.check_call_graph` returns them), so every call
    site of a function is settled before the function's own entry state is formed.
    """
    effects = {index: effect(program, index, helpers) for function in functions for index in function.starts}
    callers: dict[int, list[int]] = {}
    for function in functions:
        for call, callee in function.calls:
            callers.setdefault(callee, []).append(call)
    defined_in: dict[int, int] = {}
    problems: list[tuple[int, int, Function]] = []
    for function in functions:
        if function.entry == 0:
            entry = MAIN_ENTRY
        else:
            sites = [defined_in[call] for call in callers.get(function.entry, [])
                     if defined_in.get(call, UNVISITED) != UNVISITED]
            if not sites:
                continue  # no call site runs: nothing in this function ever does
            entry = FP | SCRATCH
            for site in sites:
                entry &= (site & SCRATCH) | FP
        _settle(function, entry, effects, defined_in)
        for index in function.starts:
            state = defined_in.get(index, UNVISITED)
            if state == UNVISITED:
                continue
            missing = effects[index].reads & ~state
            if missing:
                problems.append((index, (missing & -missing).bit_length() - 1, function))
    if problems:
        index, register, function = min(problems, key=lambda problem: problem[0])
        insn = program.insns[index]
        info = isa.describe(insn)
        what = "exit returns r0" if insn.opcode == isa.JMP | isa.EXIT else \
            f"{info.mnemonic if info else 'the instruction'} reads r{register}"
        raise ValidationError(index, f"{what}, which is undefined on a path to it: "
                                     f"{_witness(program, functions, function, index, register, effects, defined_in)}")


def _settle(function: Function, entry: int, effects: dict[int, Effect], defined_in: dict[int, int]) -> None:
    """Run the worklist to its fixed point: ``defined_in[i]`` for every reachable instruction."""
    defined_in[function.entry] = entry
    work = deque([function.entry])
    queued = {function.entry}
    while work:
        index = work.popleft()
        queued.discard(index)
        step = effects[index]
        out = (defined_in[index] & ~step.kills) | step.writes
        for successor in step.successors:
            old = defined_in.get(successor, UNVISITED)
            new = out if old == UNVISITED else old & out
            if new != old:
                defined_in[successor] = new
                if successor not in queued:
                    queued.add(successor)
                    work.append(successor)


def _witness(program: Program, functions: list[Function], function: Function, index: int, register: int,
             effects: dict[int, Effect], defined_in: dict[int, int]) -> str:
    """Why ``register`` is undefined at ``index``: walk back along a path on which it is."""
    bit = 1 << register
    predecessors: dict[int, list[int]] = {}
    for start in function.starts:
        if defined_in.get(start, UNVISITED) != UNVISITED:
            for successor in effects[start].successors:
                predecessors.setdefault(successor, []).append(start)
    seen = {index}
    work = deque([index])
    while work:
        at = work.popleft()
        for before in predecessors.get(at, []):
            step = effects[before]
            if before in seen or (((defined_in[before] & ~step.kills) | step.writes) & bit):
                continue
            if step.kills & bit:
                insn = program.insns[before]
                what = ("packet load" if insn.klass == isa.LD else
                        "local call" if insn.src == isa.CALL_LOCAL else "helper call")
                return f"r1-r5 are scratch after the {what} at instruction {before}"
            seen.add(before)
            work.append(before)
    if function.entry == 0:
        return "a program starts with only r1 (input memory), r2 (its length) and r10 defined"
    if bit & SCRATCH:
        site = min(call for caller in functions for call, callee in caller.calls
                   if callee == function.entry and not defined_in.get(call, bit) & bit)  # once, on rejection
        return f"the local call at instruction {site} does not set r{register}, an argument of the function at " \
               f"{function.entry}"
    return f"a function starts with only r10 and its arguments r1-r5 defined (the function at {function.entry})"
