"""The one small interface every JIT backend implements, and what they share.

A backend turns a validated eBPF program into native code for its target and
knows the settings Unicorn, keystone and capstone need for it, plus the calling
convention the emulation runner uses to enter the code, pass helper arguments
and read the result. The runner sees only :class:`Backend`.

Every backend in this tree is built on the translation driver in
``arches/driver.py`` (shaped like the kernel's JITs): the driver owns the
instruction loop, the labels, branch targets, helper-stub addresses, the one
dispatch over instruction classes and the per-instruction map
``NativeCode.bpf_to_native``; a backend supplies one builder per instruction
class and an emitter (keystone assembly text, ``AssemblyBackend``, or its own
encoder with the driver's labels and branch relaxation, ``EncodingBackend``).

Conventions every backend follows (so the runner needs no per-arch code):

* Entry: r1 (input memory address) and r2 (its length) arrive as the native ABI
  passes the first two arguments (:meth:`Backend.set_entry_arguments`; by default
  native argument registers 1 and 2); the stack pointer is
  ``layout.NATIVE_STACK_TOP``; returning to the address
  :meth:`Backend.set_return_address` installed ends the run, with every register
  in ``callee_saved`` and the stack pointer as they were at entry (the code is
  called as a C function of the target's ABI).
  The prologue sets the eBPF frame pointer to ``layout.STACK_TOP`` and calls the
  body as a function; the epilogue follows it and returns.
* Exit: ``exit`` returns from the body (or from a local call); the epilogue
  leaves eBPF r0 in ``return_register`` and returns to the runner.
* Helper ``N``: a native call to ``driver.helper_address(N)`` (``layout.STUB_BASE
  + N * layout.STUB_STRIDE``) with eBPF r1-r5 where the native ABI passes five
  arguments (:meth:`Backend.helper_arguments`; by default ``argument_registers``);
  the runner's hook runs the helper, returns its result as the ABI does
  (:meth:`Backend.set_helper_result`), and the stub's code (``helper_stub``)
  returns to the caller.
* Local calls: each frame gets its own 512 bytes: r10 moves down by
  ``layout.FRAME_SIZE`` for the callee and r6-r10 are as before after it returns.
* LD_ABS/LD_IND read the packet (the input memory) using the length stored at
  ``layout.PACKET_LEN_ADDR``; out of range jumps to the packet-abort path, which
  ends the whole program with r0 = 0 from any call depth.
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from harness import isa
from harness.isa import Insn, Program

# What a builder emits for one eBPF instruction: lines of assembly text for keystone
# backends, instruction records and labels for direct encoders (arches/direct.py).
Chunk = list[Any]
# A per-instruction rewrite: (slot, instruction, its chunk) -> the chunk to use instead.
Rewrite = Callable[[int, Insn, Chunk], Chunk]


def instruction_name(insn: Insn) -> str:
    """The ISA's mnemonic for ``insn``, or its raw opcode and bytes when no instruction has that form."""
    info = isa.describe(insn)
    if info is not None:
        return info.mnemonic
    return f"opcode {insn.opcode:#04x} ({insn.encode().hex(' ')})"


class UnsupportedInstruction(Exception):
    """The backend has no translation for the instruction at ``index``.

    The message always names the instruction: its mnemonic, or its raw opcode
    and bytes when it is not an instruction of the ISA.
    """

    def __init__(self, index: int, insn: Insn, backend: str = "") -> None:
        self.index = index
        self.insn = insn
        self.what = instruction_name(insn)
        by = f"the {backend} backend" if backend else "this backend"
        super().__init__(f"instruction {index}: {self.what} is not supported by {by}")


class AssemblyError(Exception):
    """The assembler refused the backend's output (a backend bug, reported as error)."""


class RejectedProgram(Exception):
    """The JIT refuses the program, in its own words (an external JIT's loader or compiler).

    Never an error of the harness: the item is reported as skipped with this message.
    """


class BackendFailure(Exception):
    """The backend's machinery failed, e.g. an external JIT's command crashed or broke the
    protocol; reported as an error naming the cause (no harness traceback: not a harness bug)."""


@dataclass(frozen=True)
class NativeCode:
    """The result of compiling one program for one target.

    ``bpf_to_native`` maps the slot of every instruction start to the offset in
    ``code`` of the first native instruction translated from it, plus one entry
    for ``len(program.insns)``: the end of the body. The native code of the
    instruction at slot ``s`` is therefore ``code[bpf_to_native[s]:bpf_to_native[n]]``
    where ``n`` is the next instruction start (or the end). Offsets never
    decrease; an instruction translated to nothing has the same offset as the
    next one. Code before the first entry is the prologue and epilogue, code
    after the last the packet-abort path. The map is empty when the emitter
    could not establish it for this program (see ``AssemblyBackend.assemble``).
    """

    code: bytes  # machine code, loaded at layout.CODE_BASE
    assembly: str  # what was assembled (or, for direct encoders, a listing)
    entry: int = 0  # offset of the entry point within ``code``
    bpf_to_native: dict[int, int] = field(default_factory=dict)  # eBPF slot -> code offset
    translate_seconds: float = 0.0
    assemble_seconds: float = 0.0
    data_size: int = 0  # bytes of ``code`` that are data, not instructions (uBPF's helper table)


def _weight(native: NativeCode) -> int:
    """Bytes a cached translation holds, roughly: code, listing, and ~100 per slot map entry."""
    return len(native.code) + len(native.assembly) + 100 * len(native.bpf_to_native)


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
    # The C ABI's callee-saved registers (name -> Unicorn id) and the document that lists them.
    # The runner fills each with a distinct canary before every run and, once the code has
    # returned, fails the run naming any that changed, and a stack pointer not back in place.
    callee_saved: ClassVar[dict[str, int]] = {}
    callee_saved_source: ClassVar[str] = ""
    helper_stub: ClassVar[bytes]  # native code at each helper stub: return to the caller
    sentinel_fill: ClassVar[bytes]  # repeated over the sentinel page (harmless instructions)
    # Unicorn's instruction ``count`` is reliable on this target (not on SPARC64).
    supports_count: ClassVar[bool] = True
    # Bytes per native instruction on fixed-width ISAs (lets the runner count without capstone).
    instruction_width: ClassVar[int | None] = None

    # The translation cache holds at most this many bytes of code, listing and slot map (about 150
    # bytes per eBPF instruction): a translation larger than that is not kept at all, or eleven
    # targets would hold gigabytes after a program of 1,000,000 instructions (measured: 5 GiB).
    CACHE_BYTES: ClassVar[int] = 64 << 20

    def __init__(self) -> None:
        self._cache: OrderedDict[bytes, NativeCode] = OrderedDict()
        self._cache_bytes = 0

    # --- compilation -------------------------------------------------------

    @abstractmethod
    def translate(self, program: Program, rewrite: Rewrite | None = None) -> NativeCode:
        """Emit native code for ``program`` (which the validator accepted).

        Raise UnsupportedInstruction for anything without a translation: never
        emit silently wrong code. ``rewrite``, when given, is applied to the chunk
        emitted for each instruction before it is assembled (native-level mutation).
        """

    def compile_cached(self, program: Program) -> tuple[NativeCode, bool]:
        """``translate`` through a per-process cache keyed by the program's bytes.

        Returns the code and whether it came from the cache (the runner records
        translate and assemble times only for code translated now).
        """
        key = hashlib.blake2b(program.encode(), digest_size=16).digest()
        native = self._cache.get(key)
        if native is not None:
            self._cache.move_to_end(key)
            return native, True
        native = self.translate(program)
        self._cache[key] = native
        self._cache_bytes += _weight(native)
        while self._cache and self._cache_bytes > self.CACHE_BYTES:
            self._cache_bytes -= _weight(self._cache.popitem(last=False)[1])
        return native, False

    def compile(self, program: Program) -> NativeCode:
        """``translate`` with a per-process cache keyed by the program's bytes."""
        return self.compile_cached(program)[0]

    def known_failure(self, case: str) -> str | None:
        """Why ``case`` is a recorded known failure of this target, or None.

        External JITs record the bugs their authors know of (arches/external/known_failures/);
        the runner reports such a failing cell as ``known`` and a passing one as ``stale``.
        """
        return None

    def clear_cache(self) -> None:
        """Forget every cached translation. A ``copy.copy`` of a backend that calls
        this gets a cache of its own (the original's is left as it was)."""
        self._cache = OrderedDict()
        self._cache_bytes = 0

    # --- emulation hooks the runner calls ------------------------------------

    def configure_engine(self, uc: Any) -> None:
        """Engine settings beyond arch/mode/cpu (e.g. ppc64's TLB mode)."""

    @abstractmethod
    def set_return_address(self, uc: Any, address: int) -> None:
        """Arrange that the entry function returns to ``address`` (push it, or set the link register)."""

    # The four places where a value crosses the native ABI. The defaults suit a 64-bit
    # target that passes each eBPF register in one native register; a 32-bit target
    # (register pairs, arguments on the stack) overrides them, and the runner calls
    # only these.

    def set_entry_arguments(self, uc: Any, memory: int, length: int) -> None:
        """Before the run: eBPF r1 = ``memory`` (input address), r2 = ``length``.

        Called after the stack pointer is set and before :meth:`set_return_address`.
        """
        uc.reg_write(self.argument_registers[0], memory)
        uc.reg_write(self.argument_registers[1], length)

    def helper_arguments(self, uc: Any) -> tuple[int, int, int, int, int]:
        """At a helper stub: eBPF r1-r5 as the native code passed them (u64 each)."""
        mask = (1 << 64) - 1
        return tuple(uc.reg_read(register) & mask for register in self.argument_registers)  # type: ignore[return-value]

    def set_helper_result(self, uc: Any, value: int) -> None:
        """At a helper stub: hand the helper's u64 result back as the ABI returns it."""
        uc.reg_write(self.return_register, value)

    def result(self, uc: Any) -> int:
        """After the entry function returned: eBPF r0 as u64."""
        return uc.reg_read(self.return_register) & ((1 << 64) - 1)

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

    def encode_disassembled(self, insn: Any) -> bytes | None:
        """A direct encoder's own bytes for one instruction capstone decoded (detail on), or None.

        The shared backend checks compare them with the decoded bytes: the round
        trip that keystone gives the assembly backends. None: no such re-encoding.
        """
        return None

    def listing_for_keystone(self, mnemonic: str, operands: str, address: int) -> str:
        """One capstone line in the form keystone reads back (used by the round-trip check)."""
        return f"{mnemonic} {operands}"
