"""Functions and the call graph: closed regions, recursion, the kernel's frame and stack limits.

As in the kernel's ``check_subprogs``, a function is the run of slots from an entry
(0 or a local call target) to the next entry; a jump must stay inside its own
function and no function may run off its end into the next. The call graph must be
acyclic, a call chain may hold at most ``layout.MAX_CALL_FRAMES`` frames (main
included) and ``layout.MAX_STACK`` bytes of stack (``check_max_stack_depth``).

A function's stack usage is what the kernel counts for ``stack_depth``, measured
statically: the deepest byte below r10 that a load, store or atomic *with base
register r10* touches, rounded up to ``layout.STACK_ROUNDING`` (at least one
rounding unit, as the kernel does). Accesses through a copy of r10 (``mov %r1,
%r10``) are not followed (the validator does not track values), so they neither
count nor are bounds-checked here; they fault at run time if they leave the mapped
stack region. A direct r10 access must lie inside ``[r10 - 512, r10)``, as the
kernel's ``check_stack_access_within_bounds`` demands.

Everything here is iterative and linear in the program size (plus the call edges):
no recursion, so no call graph can exhaust Python's stack or take exponential time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness import isa, layout
from harness.isa import Program
from harness.oracle.rejection import ValidationError

_EXIT = isa.JMP | isa.EXIT
_ENDS = (_EXIT, isa.JMP | isa.JA, isa.JMP32 | isa.JA)  # instructions that never fall through


@dataclass
class Function:
    """One function of a program: its slots, its calls and its stack use."""

    entry: int
    end: int  # one past its last slot
    starts: list[int] = field(default_factory=list)  # instruction starts inside it
    calls: list[tuple[int, int]] = field(default_factory=list)  # (call slot, callee entry)
    stack: int = 0  # bytes below r10 its direct r10 accesses reach

    @property
    def frame_cost(self) -> int:
        """Its share of the combined stack limit, rounded as the kernel rounds it."""
        unit = layout.STACK_ROUNDING
        return -(-max(self.stack, 1) // unit) * unit


def is_local_call(insn: isa.Insn) -> bool:
    return insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_LOCAL


def stack_access(insn: isa.Insn) -> tuple[int, int] | None:
    """(offset, size) of a load/store/atomic whose base register is r10, else None."""
    klass = insn.klass
    if klass == isa.LDX and insn.src == isa.FRAME_POINTER:
        return insn.off, insn.nbytes
    if klass in (isa.ST, isa.STX) and insn.dst == isa.FRAME_POINTER:
        return insn.off, insn.nbytes
    return None


def split_functions(program: Program, starts: list[int]) -> list[Function]:
    """The program's functions in address order; rejects jumps between functions,
    fall-through into the next function and r10 accesses outside the frame."""
    insns = program.insns
    entries = sorted({0} | {index + insns[index].imm + 1 for index in starts if is_local_call(insns[index])})
    functions = [Function(entry, end) for entry, end in zip(entries, entries[1:] + [len(insns)])]
    by_entry = {function.entry: function for function in functions}
    position = 0
    current = functions[0]
    next_entry = functions[1].entry if len(functions) > 1 else len(insns)
    for index in starts:
        if index >= next_entry:  # entered the next function: the previous one must not run into it
            previous = current.starts[-1]
            if insns[previous].opcode not in _ENDS:
                raise ValidationError(previous, f"falls through into the function at {next_entry}")
            position += 1
            current = functions[position]
            next_entry = functions[position + 1].entry if position + 1 < len(functions) else len(insns)
        current.starts.append(index)
        insn = insns[index]
        klass = insn.opcode & 0x07
        if klass == isa.JMP or klass == isa.JMP32:
            if is_local_call(insn):
                current.calls.append((index, index + insn.imm + 1))
                continue
            target = isa.jump_target(insn, index)
            if target is not None and not current.entry <= target < current.end:
                raise ValidationError(index, f"jump from the function at {current.entry} to {target}, outside "
                                             f"it ({current.entry}..{current.end - 1})")
        elif klass != isa.ALU and klass != isa.ALU64:
            access = stack_access(insn)
            if access is not None:
                offset, size = access
                if offset < -layout.FRAME_SIZE or offset + size > 0:
                    raise ValidationError(index, f"stack access [r10{offset:+d}] of {size} byte(s) is outside "
                                                 f"the frame [r10-{layout.FRAME_SIZE}, r10)")
                current.stack = max(current.stack, -offset)
    assert all(callee in by_entry for function in functions for _, callee in function.calls)
    return functions


def check_call_graph(functions: list[Function]) -> list[Function]:
    """Reject recursion and call chains over the kernel's limits; return the functions
    in topological order (every caller before its callees)."""
    by_entry = {function.entry: function for function in functions}
    visiting, done = 1, 2
    state: dict[int, int] = {}
    postorder: list[Function] = []
    # Per function: the most frames / bytes of stack on a chain starting there, and the
    # call that continues that chain (to name it in a rejection).
    frames: dict[int, tuple[int, tuple[int, int] | None]] = {}
    stack: dict[int, tuple[int, tuple[int, int] | None]] = {}
    for root in functions:
        if root.entry in state:
            continue
        path = [root]
        pending = [iter(root.calls)]
        state[root.entry] = visiting
        while path:
            for call, callee in pending[-1]:
                if state.get(callee) == visiting:
                    cycle = [function.entry for function in path[[f.entry for f in path].index(callee):]]
                    cycle.append(callee)
                    shown = cycle if len(cycle) <= 9 else cycle[:4] + ["..."] + cycle[-4:]
                    raise ValidationError(call, f"recursive local call: the function at {callee} calls itself "
                                                f"through {' -> '.join(map(str, shown))}"
                                                + (f" ({len(cycle) - 1} functions)" if len(cycle) > 9 else ""))
                if callee not in state:
                    state[callee] = visiting
                    path.append(by_entry[callee])
                    pending.append(iter(by_entry[callee].calls))
                    break
            else:
                function = path.pop()
                pending.pop()
                state[function.entry] = done
                postorder.append(function)
                deepest = max(((frames[callee][0], (call, callee)) for call, callee in function.calls),
                              default=(0, None))
                frames[function.entry] = (1 + deepest[0], deepest[1])
                largest = max(((stack[callee][0], (call, callee)) for call, callee in function.calls),
                              default=(0, None))
                stack[function.entry] = (function.frame_cost + largest[0], largest[1])
    _check_limit(frames, by_entry, layout.MAX_CALL_FRAMES, lambda function: 1,
                 "the call chain {chain} has {total} frames (limit {limit}, main included)")
    _check_limit(stack, by_entry, layout.MAX_STACK, lambda function: function.frame_cost,
                 "the call chain {chain} needs {total} bytes of stack (limit {limit} combined; each "
                 f"function counts its deepest r10 access rounded up to {layout.STACK_ROUNDING})")
    return postorder[::-1]


def _check_limit(best: dict[int, tuple[int, tuple[int, int] | None]], by_entry: dict[int, Function],
                 limit: int, cost, template: str) -> None:
    """Follow main's worst chain; reject at the call that takes it past ``limit``."""
    total = best[0][0]
    if total <= limit:
        return
    chain, running, culprit = [0], cost(by_entry[0]), None
    entry = 0
    while best[entry][1] is not None:
        call, entry = best[entry][1]  # type: ignore[misc]
        chain.append(entry)
        running += cost(by_entry[entry])
        if culprit is None and running > limit:
            culprit = call
    shown = " -> ".join(map(str, chain[:limit + 1])) + (f" -> ... ({len(chain)} functions)"
                                                        if len(chain) > limit + 1 else "")
    raise ValidationError(culprit, template.format(chain=shown, total=total, limit=limit))
