"""The one small interface every JIT backend implements, and what they share.

A backend turns a validated eBPF program into native code for its target and
knows the settings Unicorn, keystone and capstone need for it, plus the calling
convention the emulation runner uses to enter the code, pass helper arguments
and read the result.

Conventions every backend follows (so the runner needs no per-arch code):

* Entry: native argument registers 1 and 2 hold r1 (input memory address) and
  r2 (its length); the stack pointer is ``layout.NATIVE_STACK_TOP``; returning to
  the address :meth:`Backend.set_return_address` installed ends the run.
  The prologue sets the eBPF frame pointer to ``layout.STACK_TOP``.
* Exit: the epilogue leaves eBPF r0 in ``return_register`` and returns.
* Helper ``N``: a native call to ``layout.STUB_BASE + N * layout.STUB_STRIDE``
  with eBPF r1-r5 in ``argument_registers``; the runner's hook runs the helper,
  puts its result in ``return_register``, and the stub's code (``helper_stub``)
  returns to the caller.
* Local calls: each frame gets its own 512 bytes: r10 moves down by
  ``layout.FRAME_SIZE`` for the callee and r6-r10 are as before after it returns.
* LD_ABS/LD_IND read the packet (the input memory) using the length stored at
  ``layout.PACKET_LEN_ADDR``; out of range ends the program with r0 = 0.
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.isa import Program


class UnsupportedInstruction(Exception):
    """The backend has no translation for the instruction at ``index``."""

    def __init__(self, index: int, what: str) -> None:
        super().__init__(f"instruction {index}: {what} is not supported by this backend")
        self.index = index
        self.what = what


class AssemblyError(Exception):
    """The assembler refused the backend's output (a backend bug, reported as error)."""


@dataclass(frozen=True)
class NativeCode:
    """The result of compiling one program for one target."""

    code: bytes  # machine code, loaded at layout.CODE_BASE
    assembly: str  # what was assembled (or, for direct encoders, a listing)
    entry: int = 0  # offset of the entry point within ``code``
    bpf_to_native: dict[int, int] = field(default_factory=dict)  # eBPF slot -> code offset
    translate_seconds: float = 0.0
    assemble_seconds: float = 0.0


class Backend(ABC):
    """One JIT target. Subclasses fill in the class attributes and ``translate``."""

    name: ClassVar[str]
    byte_order: ClassVar[str]  # "little" or "big"
    version: ClassVar[str] = "1"  # bump when the output changes (keys on-disk caches)

    # Unicorn settings.
    uc_arch: ClassVar[int]
    uc_mode: ClassVar[int]
    uc_cpu: ClassVar[int | None] = None
    # Disassembly (capstone) settings.
    cs_arch: ClassVar[int]
    cs_mode: ClassVar[int]
    # Assembler (keystone) settings; None for a backend that encodes directly.
    ks_arch: ClassVar[int | None] = None
    ks_mode: ClassVar[int | None] = None

    # eBPF register number -> native register name (documentation and listings).
    register_map: ClassVar[dict[int, str]]

    # Calling convention, as Unicorn register ids.
    argument_registers: ClassVar[tuple[int, ...]]  # native args 1..5 = eBPF r1..r5
    return_register: ClassVar[int]
    stack_pointer: ClassVar[int]
    program_counter: ClassVar[int]
    general_registers: ClassVar[tuple[int, ...]] = ()  # zeroed before each run (determinism)
    # The native ABI's caller-saved general registers that a helper may overwrite, without the
    # one the helper stub returns through (a trashing helper overwrites all of them).
    caller_saved_registers: ClassVar[tuple[int, ...]] = ()
    helper_stub: ClassVar[bytes]  # native code at each helper stub: return to the caller
    sentinel_fill: ClassVar[bytes]  # repeated over the sentinel page (harmless instructions)
    # Unicorn's instruction ``count`` is reliable on this target (not on SPARC64).
    supports_count: ClassVar[bool] = True
    # Bytes per native instruction on fixed-width ISAs (lets the runner count without capstone).
    instruction_width: ClassVar[int | None] = None

    def __init__(self) -> None:
        self._cache: dict[bytes, NativeCode] = {}

    # --- compilation -------------------------------------------------------

    @abstractmethod
    def translate(self, program: Program) -> NativeCode:
        """Emit native code for ``program`` (which the validator accepted).

        Raise UnsupportedInstruction for anything without a translation: never
        emit silently wrong code.
        """

    def compile(self, program: Program) -> NativeCode:
        """``translate`` with a per-process cache keyed by the program's bytes."""
        key = hashlib.blake2b(program.encode(), digest_size=16).digest()
        native = self._cache.get(key)
        if native is None:
            native = self.translate(program)
            self._cache[key] = native
        return native

    # --- emulation hooks the runner calls ------------------------------------

    def configure_engine(self, uc: Any) -> None:
        """Engine settings beyond arch/mode/cpu (e.g. ppc64's TLB mode)."""

    @abstractmethod
    def set_return_address(self, uc: Any, address: int) -> None:
        """Arrange that the entry function returns to ``address`` (push it, or set the link register)."""

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

    def listing_for_keystone(self, mnemonic: str, operands: str, address: int) -> str:
        """One capstone line in the form keystone reads back (used by the round-trip check)."""
        return f"{mnemonic} {operands}"

    # --- disassembly -----------------------------------------------------------

    def disassembler(self) -> Any:
        import capstone

        engine = capstone.Cs(self.cs_arch, self.cs_mode)
        return engine

    def disassemble(self, code: bytes, address: int = 0) -> list[str]:
        """Capstone listing, one ``address: mnemonic operands`` line per instruction."""
        engine = self.disassembler()
        lines = []
        end = 0
        for insn in engine.disasm(code, address):
            lines.append(f"{insn.address:#08x}: {insn.mnemonic} {insn.op_str}".rstrip())
            end = insn.address + insn.size - address
        if end < len(code):
            lines.append(f"{address + end:#08x}: .byte {code[end:].hex(' ')}  # not decodable")
        return lines


class AssemblyBackend(Backend):
    """A backend that writes assembly text for keystone (x86-64, arm64, ppc64, sparc64).

    One label ``L<index>`` per eBPF instruction, so branches are labels; the whole
    program goes to keystone in one call. Subclasses write the kernel JITs' pieces:
    ``build_prologue``/``build_epilogue`` and one builder per instruction class,
    each returning lines of assembly.
    """

    def translate(self, program: Program) -> NativeCode:
        import time

        from harness import layout

        started = time.perf_counter()
        lines = self.build_prologue()
        for index in program.instruction_starts():
            lines.append(f"L{index}:")
            lines.extend(self.build_insn(program, index))
        lines.extend(self.build_epilogue())
        text = "\n".join(lines)
        translated = time.perf_counter()
        code = self.keystone_assemble(text, layout.CODE_BASE)
        return NativeCode(code, text, 0, {}, translated - started, time.perf_counter() - translated)

    def build_insn(self, program: Program, index: int) -> list[str]:
        """The one dispatch over instruction classes; anything else is unsupported."""
        from harness import isa

        insn = program.insns[index]
        klass, mode = insn.klass, insn.mode
        if klass in (isa.ALU, isa.ALU64):
            return self.build_alu(insn, index)
        if klass in (isa.JMP, isa.JMP32):
            return self.build_jump(insn, index)
        if insn.opcode == isa.LDDW and insn.src == isa.LDDW_PLAIN:
            return self.build_lddw(insn.dst, program.lddw_value(index))  # LDDW: dst = imm64
        if klass == isa.LD and mode in (isa.ABS, isa.IND):
            return self.build_packet_load(insn, index)
        if klass == isa.LDX and mode in (isa.MEM, isa.MEMSX):
            return self.build_load(insn, index)
        if klass in (isa.ST, isa.STX) and mode == isa.MEM:
            return self.build_store(insn, index)
        if klass == isa.STX and mode == isa.ATOMIC:
            return self.build_atomic(insn, index)
        raise UnsupportedInstruction(index, isa.describe(insn))

    @abstractmethod
    def build_prologue(self) -> list[str]: ...

    @abstractmethod
    def build_epilogue(self) -> list[str]: ...

    @abstractmethod
    def build_alu(self, insn: Any, index: int) -> list[str]: ...

    @abstractmethod
    def build_jump(self, insn: Any, index: int) -> list[str]: ...

    @abstractmethod
    def build_lddw(self, dst: int, value: int) -> list[str]: ...

    @abstractmethod
    def build_load(self, insn: Any, index: int) -> list[str]: ...

    @abstractmethod
    def build_store(self, insn: Any, index: int) -> list[str]: ...

    @abstractmethod
    def build_atomic(self, insn: Any, index: int) -> list[str]: ...

    @abstractmethod
    def build_packet_load(self, insn: Any, index: int) -> list[str]: ...
