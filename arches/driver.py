"""The translation driver every backend is built on, shaped like the kernel's JITs.

As in arch/arm64/net/bpf_jit_comp.c and arch/riscv/net/bpf_jit_core.c, a
translation is ``build_prologue``, ``build_body`` (a loop calling ``build_insn``,
one dispatch over instruction classes whose default reports the instruction as
unsupported), ``build_epilogue``, then the emitter's sizing pass (keystone's own,
or the branch relaxation of ``arches/direct.py``), and the map from each eBPF
instruction to its native offset (the kernel's ``ctx->offset[]``).

Layout of the native code (``NativeCode.entry`` is 0)::

    prologue           build_prologue(body): save, set r10, call the body at ``body``
    Lepilogue:         build_epilogue(): the body's return lands here; r0 to the
                       return register, restore, return to the runner
    L0: ... Ln: ...    build_body: one label and one chunk per eBPF instruction
    Lpacket_abort:     build_packet_abort(epilogue): r0 = 0, unwind to the entry
                       frame, go to the epilogue

The body is called as a function so that ``exit`` is a plain native return at
any local-call depth; the epilogue sits right after the call that returns to it.

The driver owns, so that no backend computes them:

* the instruction loop and the labels: :func:`insn_label` names an eBPF
  instruction, :func:`local_label` a place inside one instruction's chunk;
* branch targets, from ``isa.jump_target``, handed to ``build_goto``,
  ``build_branch`` and ``build_local_call`` as labels;
* helper-stub addresses, :func:`helper_address`, handed to ``build_helper_call``;
* the packet-abort and epilogue labels, handed to ``build_packet_load`` and
  ``build_packet_abort``;
* the dispatch: a slot that is not an instruction of the ISA, or a builder that
  returns None (no translation), raises :class:`UnsupportedInstruction` naming
  the instruction's mnemonic (or raw opcode);
* ``NativeCode.bpf_to_native`` and the ``rewrite`` hook of :meth:`translate`.

A backend supplies one builder per instruction class (each returns a chunk: a
list of assembly lines or of encoded instruction records) and an emitter, by
subclassing :class:`AssemblyBackend` (keystone) or :class:`EncodingBackend`
(its own encoder, with the driver's labels and relaxation).
"""
from __future__ import annotations

import operator
import struct
import time
from abc import abstractmethod
from typing import Any, ClassVar

from arches.base import AssemblyError, Backend, Chunk, NativeCode, RejectedProgram, Rewrite, UnsupportedInstruction
from arches.direct import Label, link
from harness import isa, layout
from harness.isa import Insn, Program

EPILOGUE = "Lepilogue"  # label of the epilogue, where the body's final return lands
PACKET_ABORT = "Lpacket_abort"  # label of the packet-abort path (LD_ABS/LD_IND out of range)


def insn_label(index: int) -> str:
    """The label of the eBPF instruction at ``index``."""
    return f"L{index}"


def local_label(index: int, name: str) -> str:
    """A label inside the chunk of the instruction at ``index`` (e.g. a division guard's "zero")."""
    return f"L{index}_{name}"


def helper_address(number: int) -> int:
    """Where the runner's stub for helper ``number`` lives: the address ``call N`` branches to."""
    return layout.STUB_BASE + number * layout.STUB_STRIDE


class JitBackend(Backend):
    """The driver: a backend built from per-class builders and an emitter.

    Builders get the instruction and its index (its slot; lddw takes two), plus
    a label or address where the driver owns it, and return a chunk, or None when
    the backend has no translation for that form.
    """

    def translate(self, program: Program, rewrite: Rewrite | None = None) -> NativeCode:
        """Prologue, epilogue, body, packet-abort path; then the emitter assembles it.

        ``rewrite(index, insn, chunk)`` replaces the chunk of each instruction
        before assembly (the labels of the instructions stay where they are).
        """
        started = time.perf_counter()
        starts = program.instruction_starts()
        items: list[Any] = list(self.build_prologue(insn_label(0)))
        items.append(self.label(EPILOGUE))
        items.extend(self.build_epilogue())
        for index, chunk in self.build_body(program, rewrite):
            items.append(self.label(insn_label(index)))
            items.extend(chunk)
        items.append(self.label(PACKET_ABORT))
        items.extend(self.build_packet_abort(EPILOGUE))
        translated = time.perf_counter()
        marks = [insn_label(index) for index in starts] + [PACKET_ABORT]  # the last: the end of the body
        code, listing, offsets = self.assemble(items, marks)
        bpf_to_native = dict(zip(starts + [len(program.insns)], offsets)) if offsets is not None else {}
        return NativeCode(code, listing, 0, bpf_to_native, translated - started,
                          time.perf_counter() - translated)

    def build_body(self, program: Program, rewrite: Rewrite | None = None) -> list[tuple[int, Chunk]]:
        """(index, chunk) for every instruction in order, ``rewrite`` applied to each chunk."""
        body = []
        for index in program.instruction_starts():
            chunk = self.build_insn(program, index)
            if rewrite is not None:
                chunk = rewrite(index, program.insns[index], chunk)
            body.append((index, chunk))
        return body

    def build_insn(self, program: Program, index: int) -> Chunk:
        """The one dispatch over instruction classes; anything else is unsupported."""
        insn = program.insns[index]
        chunk = self._dispatch(program, insn, index) if isa.describe(insn) is not None else None
        if chunk is None:
            raise UnsupportedInstruction(index, insn, self.name)
        return chunk

    def _dispatch(self, program: Program, insn: Insn, index: int) -> Chunk | None:
        klass, op, mode = insn.klass, insn.op, insn.mode
        if klass in (isa.ALU, isa.ALU64):
            return self.build_alu(insn, index)
        if klass in (isa.JMP, isa.JMP32):
            if op == isa.EXIT:
                return self.build_exit(insn, index)
            if op == isa.CALL:
                if insn.src == isa.CALL_HELPER:
                    return self.build_helper_call(insn, index, helper_address(insn.imm))
                if insn.src == isa.CALL_LOCAL:
                    return self.build_local_call(insn, index, self.target_label(insn, index))
                return None
            if op == isa.JA:
                return self.build_goto(insn, index, self.target_label(insn, index))
            return self.build_branch(insn, index, self.target_label(insn, index))
        if insn.opcode == isa.LDDW:
            return self.build_lddw(insn, index, program.lddw_value(index)) if insn.src == isa.LDDW_PLAIN else None
        if klass == isa.LD and mode in (isa.ABS, isa.IND):
            return self.build_packet_load(insn, index, PACKET_ABORT)
        if klass == isa.LDX and mode in (isa.MEM, isa.MEMSX):
            return self.build_load(insn, index)
        if klass in (isa.ST, isa.STX) and mode == isa.MEM:
            return self.build_store(insn, index)
        if klass == isa.STX and mode == isa.ATOMIC:
            return self.build_atomic(insn, index)
        return None

    @staticmethod
    def target_label(insn: Insn, index: int) -> str:
        """The label of the instruction a jump or local call at ``index`` goes to."""
        target = isa.jump_target(insn, index)
        assert target is not None, f"instruction {index} has no jump target"
        return insn_label(target)

    # --- the emitter ----------------------------------------------------------------

    @abstractmethod
    def label(self, name: str) -> Any:
        """The chunk item that defines label ``name`` at its position."""

    @abstractmethod
    def assemble(self, items: list[Any], marks: list[str]) -> tuple[bytes, str, list[int] | None]:
        """(code, listing, offsets of the labels ``marks``, or None if they cannot be established)."""

    # --- the builders a backend writes (kernel names) ---------------------------------

    @abstractmethod
    def build_prologue(self, body: str) -> Chunk:
        """Entry: save what the runner's caller expects kept, set r10, call the body at label ``body``."""

    @abstractmethod
    def build_epilogue(self) -> Chunk:
        """Where the body's return lands: eBPF r0 to ``return_register``, restore, return."""

    @abstractmethod
    def build_packet_abort(self, epilogue: str) -> Chunk:
        """LD_ABS/LD_IND out of range, from any call depth: r0 = 0, entry frame back, go to ``epilogue``."""

    @abstractmethod
    def build_alu(self, insn: Insn, index: int) -> Chunk | None:
        """ALU and ALU64, byte swaps included: dst = dst op src/imm."""

    @abstractmethod
    def build_lddw(self, insn: Insn, index: int, value: int) -> Chunk | None:
        """LDDW: dst = value (the 64-bit immediate of both slots)."""

    @abstractmethod
    def build_load(self, insn: Insn, index: int) -> Chunk | None:
        """LDX: dst = *(size *)(src + off); MEMSX sign-extends."""

    @abstractmethod
    def build_store(self, insn: Insn, index: int) -> Chunk | None:
        """ST: *(size *)(dst + off) = imm; STX: = src."""

    @abstractmethod
    def build_atomic(self, insn: Insn, index: int) -> Chunk | None:
        """STX|ATOMIC: add/or/and/xor (fetch or not), xchg, cmpxchg on *(size *)(dst + off)."""

    @abstractmethod
    def build_packet_load(self, insn: Insn, index: int, abort: str) -> Chunk | None:
        """LD_ABS/LD_IND: r0 = ntoh(packet[(s32)(imm [+ src])]), else go to label ``abort``."""

    @abstractmethod
    def build_exit(self, insn: Insn, index: int) -> Chunk | None:
        """EXIT: return from the body or from a local call; r0 stays in its register."""

    @abstractmethod
    def build_goto(self, insn: Insn, index: int, target: str) -> Chunk | None:
        """JA / gotol: go to label ``target``."""

    @abstractmethod
    def build_branch(self, insn: Insn, index: int, target: str) -> Chunk | None:
        """JMP/JMP32 conditions: if dst cond src/imm go to label ``target``."""

    @abstractmethod
    def build_local_call(self, insn: Insn, index: int, target: str) -> Chunk | None:
        """CALL local: keep r6-r10, move r10 down by ``layout.FRAME_SIZE``, call label ``target``."""

    @abstractmethod
    def build_helper_call(self, insn: Insn, index: int, address: int) -> Chunk | None:
        """CALL helper: r1-r5 are already the native arguments; call ``address``, r0 = the result."""


class _LongCode(Exception):
    """The code is certainly longer than the short branches reach (AssemblyBackend.translate)."""


class AssemblyBackend(JitBackend):
    """The emitter for backends that write assembly text for keystone.

    Chunks are lists of lines; labels are ``name:`` lines; the whole program goes
    to keystone in one call (one call per program is 20-30x cheaper than one per
    line, DESIGN.md).
    """

    # keystone does not relax branches: a displacement its encoding cannot hold is
    # silently truncated (measured with keystone 0.9.2: arm64 b.cond, sparc64 bpcc, both
    # +-1 MiB). A backend with such a short conditional branch sets its reach in bytes;
    # when a program's code is that long, it is translated again with ``far_branches``
    # set, and the builders then emit an inverted short branch over an unconditional one.
    short_branch_reach: ClassVar[int | None] = None
    far_branches: bool = False
    # The reach in bytes of the longest jump the builders emit even in far mode (None: as far as the
    # code region, or relaxed by the assembler). Longer code is refused, as the kernel's JIT refuses
    # it (e.g. ppc64's is_offset_in_branch_range), rather than assembled with truncated displacements.
    longest_branch_reach: ClassVar[int | None] = None

    def translate(self, program: Program, rewrite: Rewrite | None = None) -> NativeCode:
        native = self._translate(program, rewrite)
        reach = self.longest_branch_reach
        if reach is not None and len(native.code) >= reach:
            raise RejectedProgram(f"{len(native.code):,} bytes of native code: longer than its longest branch "
                                  f"reaches (+-{reach / (1 << 20):g} MiB), so jumps across the program cannot be encoded")
        return native

    def _translate(self, program: Program, rewrite: Rewrite | None) -> NativeCode:
        reach = self.short_branch_reach
        if reach is None or self.far_branches:
            return super().translate(program, rewrite)
        try:
            native = super().translate(program, rewrite)
            if len(native.code) < reach:
                return native  # no displacement in the code can exceed the reach
        except _LongCode:
            pass
        self.far_branches = True
        try:
            return super().translate(program, rewrite)
        finally:
            self.far_branches = False

    def label(self, name: str) -> str:
        return f"{name}:"

    def assemble(self, items: list[str], marks: list[str]) -> tuple[bytes, str, list[int] | None]:
        """Assemble ``items`` and measure where keystone put each label of ``marks``.

        In the same keystone call a table ``.long <mark>, ..., <end of code>``
        follows the code: keystone lays the code out, relaxes it, and fills the
        table from its own label positions, so the offsets are the assembler's,
        not a guess from counting lines (counting cannot see instructions keystone
        adds itself, e.g. MIPS delay-slot nops). The table is cut off. It costs
        keystone 5-15% more time (measured on the corpus, 2026-11). The offsets
        are used only when consistent: never decreasing, inside the code, on
        instruction boundaries of fixed-width targets, and the table's last entry
        (the end of the code) is where the table starts, so nothing keystone
        placed after the table is cut off. Otherwise the code is assembled again
        without the table and the offsets are None: ``bpf_to_native`` stays empty
        rather than wrong. Keystone puts ARM literal pools (``ldr rX, =imm``) at
        the end of the section, after the table: a backend that uses them ends
        its packet-abort chunk with ``.ltorg`` (measured with keystone 0.9.2).
        """
        reach, width = self.short_branch_reach, self.instruction_width
        if reach and width and not self.far_branches:
            # one instruction per line at least: code this long needs the far forms, so keystone
            # need not lay out what translate will replace (1-2 s on the far-branch case)
            if sum(1 for line in items if not line.endswith(":") and not line.startswith(".")) * width >= reach:
                raise _LongCode
        text = "\n".join(items)
        base = layout.CODE_BASE
        encoding = self.keystone_assemble(f"{text}\nLcode_end:\n.long {', '.join(marks)}, Lcode_end", base)
        entries = len(marks) + 1
        table_start = len(encoding) - 4 * entries
        if table_start >= 0:
            order = "<" if self.byte_order == "little" else ">"
            values = [value - base for value in struct.unpack_from(f"{order}{entries}I", encoding, table_start)]
            end, width = values[-1], self.instruction_width or 1
            if (0 <= values[0] and end == table_start and all(map(operator.le, values, values[1:]))
                    and (width == 1 or not any(value % width for value in values))):
                return encoding[:end], text, values[:-1]
        return self.keystone_assemble(text, base), text, None

    def keystone_assemble(self, text: str, address: int) -> bytes:
        """Assemble ``text`` in one keystone call; a silent failure (count 0) raises too."""
        import keystone

        engine = getattr(self, "_keystone", None)
        if engine is None:
            engine = keystone.Ks(self.ks_arch, self.ks_mode)
            self._keystone = engine
        try:
            encoding, count = engine.asm(text, address)
        except keystone.KsError as error:
            raise AssemblyError(f"{self.name}: keystone: {error}") from None
        if not encoding or not count:
            raise AssemblyError(f"{self.name}: keystone assembled nothing")
        return bytes(encoding)


class EncodingBackend(JitBackend):
    """The emitter for backends that encode machine code themselves (s390x; RISC-V next).

    Chunks are lists of :class:`arches.direct.Label` and instruction records (the
    ``arches.direct.Instruction`` protocol); :func:`arches.direct.link` lays them
    out, relaxes branches whose target is out of reach and encodes.
    """

    def label(self, name: str) -> Label:
        return Label(name)

    def assemble(self, items: list[Any], marks: list[str]) -> tuple[bytes, str, list[int] | None]:
        code, listing, labels = link(items)
        return code, "\n".join(listing), [labels[mark] for mark in marks]
