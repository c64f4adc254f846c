"""x86_32 JIT backend: i386, cdecl, Intel-syntax text assembled by keystone in one call.

Shape and register map after the kernel's arch/x86/net/bpf_jit_comp32.c: every
64-bit eBPF register lives in a scratch area on the native stack, two 32-bit
words addressed from ebp (``bpf2ia32``: r0 at [ebp+0], r1 at [ebp+8], ...,
r10 at [ebp+80]; low word first). An instruction loads what it needs into the
working pairs edx:eax and ebx:ecx (high:low), with esi/edi as a third pair
(the kernel keeps its blinding register BPF_REG_AX there), operates, and stores
back; where x86 allows a memory operand the scratch word is used directly
(``add [ebp+16], eax``, then ``adc [ebp+20], eax`` with the high word in eax).
64-bit ALU is add/adc and sub/sbb carry chains, shifts are shld/shrd plus a
fix-up for counts of 32 and more, multiply is built from 32-bit mul/imul
parts, 64-bit atomics are ``lock cmpxchg8b`` loops.

ABI (cdecl, as i386 Linux user space; the kernel builds with -mregparm=3):

* Entry: ``u64 jit(void *mem, u32 len)``: both arguments on the stack (the
  caller's outgoing area, as gcc calls it), the result in edx:eax; ebx, esi,
  edi, ebp and esp come back as they were (the runner checks them).
* Helpers: as the kernel's 32-bit JIT calls them (the BPF_CALL path of
  do_jit, for a regparm(3) callee taking five u64): r1 in eax (low) and edx
  (high), r2-r5 pushed as four u64 stack arguments (r2 lowest), the result in
  edx:eax; the caller pops the 32 bytes.
* 64-bit DIV/MOD (which the kernel JIT rejects) call an out-of-line routine of
  this backend, emitted after the packet-abort path when the program needs it
  (``arches/x86_32/divide.py``); 32-bit DIV/MOD use ``div``/``idiv`` guarded
  against #DE (divisor 0; INT_MIN / -1 is a negation, INT_MIN % -1 is 0).
* Local calls push r6-r10 (ten words) on the native stack around a ``call``;
  the callee's r10 is 512 bytes lower. ebp, the scratch base, never moves, so
  the epilogue's ``mov esp, ebp`` unwinds every call frame (packet abort).

Facts measured with Unicorn 2.1.4 / keystone 0.9.2 (2026-11):

* The x86-64 quirk (a successful 32-bit ``cmpxchg`` writes EAX, zero-extending
  RAX) cannot be seen in 32-bit mode: EAX then equals the comparand, which is
  the old memory value, and there is no upper half; ``cmpxchg8b`` likewise
  leaves edx:eax equal to the memory's old value on success and on failure.
  The backend stores edx:eax to r0 in both cases, as the ISA asks.
* ``div``/``idiv`` raise #DE (a CPU exception under Unicorn) on a zero divisor,
  on INT_MIN / -1 and whenever the quotient overflows 32 bits: guarded.
* Shift counts in cl are masked to 5 bits (``shld``/``shrd`` too), which is the
  ISA's rule for 32-bit shifts; 64-bit shifts test bit 5 of the count.
* keystone 0.9.2 counts a ``lock`` prefix as a statement of its own and takes
  numeric branch targets as absolute addresses (``call 0x800640``).

Limits stated: addresses are the low 32 bits of an eBPF register (as in the
kernel's 32-bit JIT), so an access through a pointer whose high word is not
zero does not fault as in the interpreter (it reaches the low-word address, or
faults there instead of at the 64-bit address); an 8-byte load or store is two
4-byte accesses (low word first), so a store straddling the end of a mapping
writes its low word before faulting (faults compare by address range, not by
memory, so this is invisible to the harness).
"""
from __future__ import annotations

import capstone
import keystone
import unicorn
from unicorn import x86_const as ux

from arches.base import NativeCode, Rewrite
from arches.driver import AssemblyBackend, local_label
from arches.x86_32 import divide
from harness import isa, layout
from harness.isa import Insn, Program

# eBPF register -> its scratch slot, as offsets from ebp (the kernel's bpf2ia32[]:
# STACK_OFFSET(8 * n) for the low word, + 4 for the high word).
SLOT = {register: 8 * register for register in range(isa.REG_COUNT)}
SCRATCH_SIZE = 8 * isa.REG_COUNT  # r0-r10; the kernel adds its tail-call count and BPF_REG_AX
REGISTER_MAP = {register: f"[ebp+{offset:#04x}]" for register, offset in SLOT.items()}
_CALLEE_SAVED = ("ebp", "ebx", "esi", "edi")  # cdecl / i386 SysV
_LOCAL_CALL_SAVED = (6, 7, 8, 9, 10)  # r6-r10 survive a local call

_PTR = {1: "byte", 2: "word", 4: "dword", 8: "qword"}
_VALUE = {1: "dl", 2: "dx", 4: "edx"}  # the low bits of edx, for stores
_ALU = {isa.ADD: "add", isa.SUB: "sub", isa.OR: "or", isa.AND: "and", isa.XOR: "xor"}
_ALU_HIGH = {isa.ADD: "adc", isa.SUB: "sbb", isa.OR: "or", isa.AND: "and", isa.XOR: "xor"}
_SHIFT = {isa.LSH: "shl", isa.RSH: "shr", isa.ARSH: "sar"}
_JCC = {isa.JEQ: "je", isa.JNE: "jne", isa.JGT: "ja", isa.JGE: "jae", isa.JLT: "jb", isa.JLE: "jbe",
        isa.JSGT: "jg", isa.JSGE: "jge", isa.JSLT: "jl", isa.JSLE: "jle", isa.JSET: "jne"}
# A signed 64-bit compare: the high words decide with a strict signed jump, equal
# high words leave it to an unsigned compare of the low words.
_SIGNED_HIGH = {isa.JSGT: "jg", isa.JSGE: "jg", isa.JSLT: "jl", isa.JSLE: "jl"}
_SIGNED_LOW = {isa.JSGT: "ja", isa.JSGE: "jae", isa.JSLT: "jb", isa.JSLE: "jbe"}
U32 = 0xFFFFFFFF


def lo(register: int) -> str:
    """The scratch word holding the low 32 bits of eBPF ``register``."""
    return f"dword ptr [ebp + {SLOT[register]:#x}]"


def hi(register: int) -> str:
    """The scratch word holding the high 32 bits of eBPF ``register``."""
    return f"dword ptr [ebp + {SLOT[register] + 4:#x}]"


def hexnum(value: int) -> str:
    return f"-{-value:#x}" if value < 0 else f"{value:#x}"


def mem(base: str, offset: int, size: int) -> str:
    """``dword ptr [base + offset]``."""
    sign = "-" if offset < 0 else "+"
    return f"{_PTR[size]} ptr [{base} {sign} {abs(offset):#x}]"


def set_word(word: str, value: int) -> str:
    """A scratch word = a constant in the fewest bytes: ``and w, 0`` and ``or w, -1`` take
    4, ``mov w, imm32`` 7 (the kernel JIT's ``xor eax, eax; mov w, eax`` takes 5). Clobbers flags."""
    value &= U32
    if value == 0:
        return f"and {word}, 0"
    if value == U32:
        return f"or {word}, -1"
    return f"mov {word}, {value:#x}"


def sign_word(imm: int) -> int:
    """The high word of a 32-bit immediate sign-extended to 64 bits."""
    return U32 if imm < 0 else 0


class X86_32Backend(AssemblyBackend):
    name = "x86_32"
    byte_order = "little"
    uc_arch, uc_mode = unicorn.UC_ARCH_X86, unicorn.UC_MODE_32
    cs_arch, cs_mode = capstone.CS_ARCH_X86, capstone.CS_MODE_32
    ks_arch, ks_mode = keystone.KS_ARCH_X86, keystone.KS_MODE_32
    register_map = REGISTER_MAP
    # No eBPF register is a native one: the ABI hooks below read and write the
    # pairs and stack slots, so the one-register-per-argument default is unused.
    argument_registers = ()
    return_register = ux.UC_X86_REG_EAX  # low word; the high word is in edx
    stack_pointer = ux.UC_X86_REG_ESP
    program_counter = ux.UC_X86_REG_EIP
    general_registers = (ux.UC_X86_REG_EAX, ux.UC_X86_REG_EBX, ux.UC_X86_REG_ECX, ux.UC_X86_REG_EDX,
                         ux.UC_X86_REG_ESI, ux.UC_X86_REG_EDI, ux.UC_X86_REG_EBP)
    # Callee-saved registers: ebx, esi, edi, ebp (and esp) belong to the caller.
    callee_saved = {name: getattr(ux, f"UC_X86_REG_{name.upper()}") for name in _CALLEE_SAVED}
    callee_saved_source = ("System V ABI, Intel386 Architecture Processor Supplement, 4th ed., chapter 3, "
                           "Function Calling Sequence")
    # The i386 System V ABI's scratch registers: eax, ecx, edx (a trashing helper overwrites them).
    caller_saved_registers = (ux.UC_X86_REG_EAX, ux.UC_X86_REG_ECX, ux.UC_X86_REG_EDX)
    helper_stub = b"\xc3"  # ret (the caller pops the stack arguments)
    sentinel_fill = b"\x90"  # nop: the runner's hook stops on the first one

    def __init__(self) -> None:
        super().__init__()
        self._divides: set[str] = set()  # the 64-bit division routines this translation calls

    # --- the ABI hooks (cdecl; helpers as the kernel's JIT calls them) -----------------

    def _push(self, uc, value: int) -> None:
        sp = uc.reg_read(self.stack_pointer) - 4
        uc.mem_write(sp, (value & U32).to_bytes(4, "little"))
        uc.reg_write(self.stack_pointer, sp)

    def set_entry_arguments(self, uc, memory: int, length: int) -> None:
        """cdecl ``jit(mem, len)`` called as gcc calls it: the arguments stored in the caller's
        outgoing area at [esp] and [esp+4] (no push), so esp is the same after the call returns."""
        sp = uc.reg_read(self.stack_pointer)
        uc.mem_write(sp, (memory & U32).to_bytes(4, "little") + (length & U32).to_bytes(4, "little"))

    def set_return_address(self, uc, address: int) -> None:
        """Push ``address`` like a ``call`` would."""
        self._push(uc, address)

    def helper_arguments(self, uc) -> tuple[int, int, int, int, int]:
        """r1 from edx:eax, r2-r5 from the four u64 stack arguments above the return address."""
        r1 = (uc.reg_read(ux.UC_X86_REG_EDX) << 32) | uc.reg_read(ux.UC_X86_REG_EAX)
        words = uc.mem_read(uc.reg_read(self.stack_pointer) + 4, 32)
        rest = [int.from_bytes(words[8 * n:8 * n + 8], "little") for n in range(4)]
        return (r1, *rest)  # type: ignore[return-value]

    def set_helper_result(self, uc, value: int) -> None:
        uc.reg_write(ux.UC_X86_REG_EAX, value & U32)
        uc.reg_write(ux.UC_X86_REG_EDX, (value >> 32) & U32)

    def result(self, uc) -> int:
        """r0 as the entry function returns a u64: edx:eax."""
        return ((uc.reg_read(ux.UC_X86_REG_EDX) & U32) << 32) | (uc.reg_read(ux.UC_X86_REG_EAX) & U32)

    # --- translation ------------------------------------------------------------------

    def translate(self, program: Program, rewrite: Rewrite | None = None) -> NativeCode:
        """The driver's translation; the division routines the body calls follow the packet-abort path."""
        self._divides = set()
        return super().translate(program, rewrite)

    def build_prologue(self, body: str) -> list[str]:
        # Save the callee-saved registers, then push the scratch area from r10 down to
        # r0 (high word first): r10 = the eBPF stack top, r1/r2 = the cdecl arguments,
        # everything else 0; ebp then points at r0 and the body is called.
        lines = [f"push {register}" for register in _CALLEE_SAVED]
        arguments = 4 * len(_CALLEE_SAVED) + 4  # above the saved registers and the return address
        lines += [f"mov eax, dword ptr [esp + {arguments:#x}]", f"mov edx, dword ptr [esp + {arguments + 4:#x}]",
                  "xor ecx, ecx", "push ecx", f"push {layout.STACK_TOP:#x}"]
        lines += ["push ecx"] * (2 * 7)  # r9 .. r3
        lines += ["push ecx", "push edx", "push ecx", "push eax", "push ecx", "push ecx"]  # r2, r1, r0
        return lines + ["mov ebp, esp", f"call {body}"]

    def build_epilogue(self) -> list[str]:
        # ebp is the scratch base at any call depth: it unwinds local-call frames too
        return (["mov esp, ebp", f"mov eax, {lo(0)}", f"mov edx, {hi(0)}", f"add esp, {SCRATCH_SIZE:#x}"]
                + [f"pop {register}" for register in reversed(_CALLEE_SAVED)] + ["ret"])

    def build_packet_abort(self, epilogue: str) -> list[str]:
        # LD_ABS/LD_IND out of the packet: the whole program returns 0. Then the
        # out-of-line division routines, if the body calls them.
        lines = [set_word(lo(0), 0), set_word(hi(0), 0), f"jmp {epilogue}"]
        if self._divides:
            lines += divide.routines(signed=divide.SIGNED in self._divides)
        return lines

    def build_lddw(self, insn: Insn, index: int, value: int) -> list[str]:
        # LDDW: dst = imm64
        return [set_word(lo(insn.dst), value & U32), set_word(hi(insn.dst), value >> 32)]

    # --- ALU ----------------------------------------------------------------------------

    def build_alu(self, insn: Insn, index: int) -> list[str] | None:
        is64, op, dst = insn.klass == isa.ALU64, insn.op, insn.dst
        lines = self._alu64(insn, index) if is64 else self._alu32(insn, index)
        if lines is None:
            return None
        if not is64 and op != isa.END:  # ALU32 results are zero-extended (byte swaps set their own width)
            lines.append(set_word(hi(dst), 0))
        return lines

    def _alu32(self, insn: Insn, index: int) -> list[str] | None:
        """dst_lo = dst_lo op src_lo/imm; the caller clears dst_hi."""
        op, dst, src = insn.op, insn.dst, insn.src
        register = insn.source == isa.X
        operand = "eax" if register else hexnum(insn.imm)
        load = [f"mov eax, {lo(src)}"] if register else []
        if op in _ALU:
            return load + [f"{_ALU[op]} {lo(dst)}, {operand}"]
        if op == isa.MOV:
            if register and insn.off:  # MOVSX: dst = (s8/s16) src, zero-extended from 32 bits
                return [f"movsx eax, {_PTR[insn.off // 8]} ptr [ebp + {SLOT[src]:#x}]", f"mov {lo(dst)}, eax"]
            return load + [f"mov {lo(dst)}, eax"] if register else [set_word(lo(dst), insn.imm)]
        if op == isa.NEG:
            return [f"neg {lo(dst)}"]
        if op == isa.MUL:
            if register:
                return [f"mov eax, {lo(dst)}", f"imul eax, {lo(src)}", f"mov {lo(dst)}, eax"]
            return [f"imul eax, {lo(dst)}, {hexnum(insn.imm)}", f"mov {lo(dst)}, eax"]
        if op in _SHIFT:
            if not register:  # the ISA masks the count to 5 bits
                count = insn.imm & 31
                return [f"{_SHIFT[op]} {lo(dst)}, {count}"] if count else []
            return [f"mov ecx, {lo(src)}", f"{_SHIFT[op]} {lo(dst)}, cl"]  # x86 masks cl to 5 bits too
        if op in (isa.DIV, isa.MOD):
            return self._divide32(insn, index)
        if op == isa.END:
            return self._swap(insn)
        return None

    def _alu64(self, insn: Insn, index: int) -> list[str] | None:
        op, dst, src = insn.op, insn.dst, insn.src
        register = insn.source == isa.X
        if op in _ALU:
            # low words, then high words with the carry/borrow of the low ones
            if register:
                return [f"mov eax, {lo(src)}", f"{_ALU[op]} {lo(dst)}, eax",
                        f"mov eax, {hi(src)}", f"{_ALU_HIGH[op]} {hi(dst)}, eax"]
            high = sign_word(insn.imm)  # the immediate, sign-extended
            lines = [f"{_ALU[op]} {lo(dst)}, {hexnum(insn.imm)}"]
            if op in (isa.ADD, isa.SUB):
                lines.append(f"{_ALU_HIGH[op]} {hi(dst)}, {high:#x}")  # the carry or borrow
            elif op == isa.AND and not high:
                lines.append(set_word(hi(dst), 0))
            elif op in (isa.OR, isa.XOR) and high:
                lines.append(f"{_ALU[op]} {hi(dst)}, {high:#x}")
            # (AND with a high word of ones, OR/XOR with zeros leave the high word as it is)
            return lines
        if op == isa.MOV:
            if register and insn.off:  # MOVSX: dst = (s8/s16/s32) src
                source = f"movsx eax, {_PTR[insn.off // 8]} ptr [ebp + {SLOT[src]:#x}]" if insn.off < 32 \
                    else f"mov eax, {lo(src)}"
                return [source, "cdq", f"mov {lo(dst)}, eax", f"mov {hi(dst)}, edx"]
            if register:
                return [f"mov eax, {lo(src)}", f"mov {lo(dst)}, eax", f"mov eax, {hi(src)}", f"mov {hi(dst)}, eax"]
            return [set_word(lo(dst), insn.imm & U32), set_word(hi(dst), sign_word(insn.imm))]
        if op == isa.NEG:
            # -(hi:lo) = (-(hi + carry of -lo)):(-lo)
            return [f"neg {lo(dst)}", f"adc {hi(dst)}, 0", f"neg {hi(dst)}"]
        if op == isa.MUL:
            return self._multiply64(insn)
        if op in _SHIFT:
            return self._shift64_register(insn, index) if register else self._shift64_immediate(insn)
        if op in (isa.DIV, isa.MOD):
            return self._divide64(insn, index)
        if op == isa.END:
            return self._swap(insn)
        return None

    def _multiply64(self, insn: Insn) -> list[str]:
        """dst * src mod 2**64 = lo*lo (64-bit, mul) + (hi*lo + lo*hi) << 32 (imul, low words only)."""
        dst, src = insn.dst, insn.src
        if insn.source == isa.X:
            return [f"mov eax, {hi(dst)}", f"imul eax, {lo(src)}",
                    f"mov ecx, {hi(src)}", f"imul ecx, {lo(dst)}", "add ecx, eax",
                    f"mov eax, {lo(dst)}", f"mul {lo(src)}", "add edx, ecx",
                    f"mov {lo(dst)}, eax", f"mov {hi(dst)}, edx"]
        imm = insn.imm
        # the immediate's high word is 0 or -1: lo(dst) * -1 contributes -lo(dst)
        lines = [f"imul ecx, {hi(dst)}, {hexnum(imm)}"] + ([f"sub ecx, {lo(dst)}"] if imm < 0 else [])
        return lines + [f"mov eax, {imm & U32:#x}", f"mul {lo(dst)}", "add edx, ecx",
                        f"mov {lo(dst)}, eax", f"mov {hi(dst)}, edx"]

    def _shift64_immediate(self, insn: Insn) -> list[str]:
        """A constant count (masked to 6 bits): shld/shrd below 32, a word move at 32 and above."""
        dst, op, count = insn.dst, insn.op, insn.imm & 63
        if count == 0:
            return []
        if count < 32:
            if op == isa.LSH:
                return [f"mov eax, {lo(dst)}", f"shld {hi(dst)}, eax, {count}", f"shl {lo(dst)}, {count}"]
            return [f"mov eax, {hi(dst)}", f"shrd {lo(dst)}, eax, {count}", f"{_SHIFT[op]} {hi(dst)}, {count}"]
        rest = [f"{_SHIFT[op]} eax, {count - 32}"] if count > 32 else []
        if op == isa.LSH:
            return [f"mov eax, {lo(dst)}"] + rest + [f"mov {hi(dst)}, eax", set_word(lo(dst), 0)]
        fill = f"sar {hi(dst)}, 31" if op == isa.ARSH else set_word(hi(dst), 0)
        return [f"mov eax, {hi(dst)}"] + rest + [f"mov {lo(dst)}, eax", fill]

    def _shift64_register(self, insn: Insn, index: int) -> list[str]:
        """Shift edx:eax by cl: shld/shrd by count mod 32, then, if bit 5 of the count is
        set, move the shifted word across (count mod 64, as the ISA masks it)."""
        dst, op, src = insn.dst, insn.op, insn.src
        done = local_label(index, "shifted")
        lines = [f"mov ecx, {lo(src)}", f"mov eax, {lo(dst)}", f"mov edx, {hi(dst)}"]
        if op == isa.LSH:
            lines += ["shld edx, eax, cl", "shl eax, cl", "test cl, 32", f"jz {done}", "mov edx, eax",
                      "xor eax, eax"]
        else:
            fill = "sar edx, 31" if op == isa.ARSH else "xor edx, edx"
            lines += ["shrd eax, edx, cl", f"{_SHIFT[op]} edx, cl", "test cl, 32", f"jz {done}",
                      "mov eax, edx", fill]
        return lines + [f"{done}:", f"mov {lo(dst)}, eax", f"mov {hi(dst)}, edx"]

    def _divide32(self, insn: Insn, index: int) -> list[str]:
        """DIV/MOD on the low words (signed when off=1) with ``div``/``idiv``, guarded against #DE.

        By zero: div gives 0, mod leaves dst. Signed by -1: div negates (INT_MIN
        stays INT_MIN), mod gives 0; idiv would trap on INT_MIN / -1.
        """
        dst, signed, is_mod = insn.dst, insn.off == 1, insn.op == isa.MOD
        by_zero = [] if is_mod else [set_word(lo(dst), 0)]
        by_minus_one = [set_word(lo(dst), 0)] if is_mod else [f"neg {lo(dst)}"]
        divide = [f"mov eax, {lo(dst)}", "cdq" if signed else "xor edx, edx", f"{'idiv' if signed else 'div'} ecx",
                  f"mov {lo(dst)}, {'edx' if is_mod else 'eax'}"]
        if insn.source == isa.K:  # the divisor is known: no run-time guard
            if insn.imm == 0:
                return by_zero
            if signed and insn.imm == -1:
                return by_minus_one
            return [f"mov ecx, {insn.imm & U32:#x}"] + divide
        zero, done, regular = (local_label(index, name) for name in ("zero", "done", "divide"))
        lines = [f"mov ecx, {lo(insn.src)}", "test ecx, ecx", f"jz {zero}"]
        if signed:
            lines += ["cmp ecx, -1", f"jne {regular}"] + by_minus_one + [f"jmp {done}", f"{regular}:"]
        return lines + divide + [f"jmp {done}", f"{zero}:"] + by_zero + [f"{done}:"]

    def _divide64(self, insn: Insn, index: int) -> list[str]:
        """DIV/MOD in 64 bits: a call to the out-of-line routine (arches/x86_32/divide.py)."""
        dst, signed, is_mod = insn.dst, insn.off == 1, insn.op == isa.MOD
        by_zero = [] if is_mod else [set_word(lo(dst), 0), set_word(hi(dst), 0)]
        if insn.source == isa.K:
            if insn.imm == 0:
                return by_zero
            divisor = [f"mov ecx, {insn.imm & U32:#x}", f"mov ebx, {sign_word(insn.imm):#x}"]
        else:
            divisor = [f"mov ecx, {lo(insn.src)}", f"mov ebx, {hi(insn.src)}"]
        routine = divide.SIGNED if signed else divide.UNSIGNED
        self._divides.add(routine)
        result = ["ecx", "ebx"] if is_mod else ["eax", "edx"]
        call = [f"mov eax, {lo(dst)}", f"mov edx, {hi(dst)}", f"call {routine}",
                f"mov {lo(dst)}, {result[0]}", f"mov {hi(dst)}, {result[1]}"]
        if insn.source == isa.K:
            return divisor + call
        zero, done = local_label(index, "zero"), local_label(index, "done")
        return (divisor + ["mov esi, ecx", "or esi, ebx", f"jz {zero}"] + call
                + [f"jmp {done}", f"{zero}:"] + by_zero + [f"{done}:"])

    def _swap(self, insn: Insn) -> list[str]:
        """le/be relative to this little-endian host; ALU64|END is an unconditional bswap.
        A 16- or 32-bit result is zero-extended to 64 bits."""
        dst, width = insn.dst, insn.imm
        swap = insn.klass == isa.ALU64 or insn.source == isa.TO_BE
        if width == 64:
            if not swap:  # le64 on a little-endian host: nothing to do
                return []
            return [f"mov eax, {lo(dst)}", f"mov edx, {hi(dst)}", "bswap eax", "bswap edx",
                    f"mov {lo(dst)}, edx", f"mov {hi(dst)}, eax"]
        if width == 16:
            lines = [f"movzx eax, word ptr [ebp + {SLOT[dst]:#x}]"] + (["rol ax, 8"] if swap else [])
            lines.append(f"mov {lo(dst)}, eax")
        else:
            lines = [f"mov eax, {lo(dst)}", "bswap eax", f"mov {lo(dst)}, eax"] if swap else []
        return lines + [set_word(hi(dst), 0)]

    # --- memory -------------------------------------------------------------------------

    def build_load(self, insn: Insn, index: int) -> list[str]:
        # LDX: dst = *(size *)(src + off); MEMSX sign-extends. The address is src's low word.
        size, dst, off = insn.nbytes, insn.dst, insn.off
        lines = [f"mov eax, {lo(insn.src)}"]
        if size == 8:
            return lines + [f"mov edx, {mem('eax', off, 4)}", f"mov eax, {mem('eax', off + 4, 4)}",
                            f"mov {lo(dst)}, edx", f"mov {hi(dst)}, eax"]
        if insn.mode == isa.MEMSX:
            load = f"movsx eax, {mem('eax', off, size)}" if size < 4 else f"mov eax, {mem('eax', off, 4)}"
            return lines + [load, "cdq", f"mov {lo(dst)}, eax", f"mov {hi(dst)}, edx"]
        load = f"movzx edx, {mem('eax', off, size)}" if size < 4 else f"mov edx, {mem('eax', off, 4)}"
        return lines + [load, f"mov {lo(dst)}, edx", set_word(hi(dst), 0)]

    def build_store(self, insn: Insn, index: int) -> list[str]:
        # ST: *(size *)(dst + off) = imm (stdw sign-extends imm); STX: = src
        size, off = insn.nbytes, insn.off
        lines = [f"mov eax, {lo(insn.dst)}"]
        if insn.klass == isa.ST:
            if size == 8:
                return lines + [f"mov {mem('eax', off, 4)}, {insn.imm & U32:#x}",
                                f"mov {mem('eax', off + 4, 4)}, {sign_word(insn.imm):#x}"]
            return lines + [f"mov {mem('eax', off, size)}, {insn.imm & ((1 << (8 * size)) - 1):#x}"]
        lines.append(f"mov edx, {lo(insn.src)}")
        if size == 8:
            return lines + [f"mov {mem('eax', off, 4)}, edx", f"mov edx, {hi(insn.src)}",
                            f"mov {mem('eax', off + 4, 4)}, edx"]
        return lines + [f"mov {mem('eax', off, size)}, {_VALUE[size]}"]

    def build_atomic(self, insn: Insn, index: int) -> list[str]:
        """Atomics on [esi + off]: lock-prefixed ops, xadd, xchg and cmpxchg for 32 bits,
        ``lock cmpxchg8b`` (and loops of it) for 64 bits."""
        dst, src, off = insn.dst, insn.src, insn.off
        if insn.nbytes == 8:
            return self._atomic64(insn, index)
        address = mem("esi", off, 4)
        operation, fetch = insn.imm & ~isa.ATOMIC_FETCH, bool(insn.imm & isa.ATOMIC_FETCH)
        lines = [f"mov esi, {lo(dst)}", f"mov ecx, {lo(src)}"]
        give_back = [f"mov {lo(src)}, ecx", set_word(hi(src), 0)]  # fetch: src = old value, zero-extended
        if insn.imm == isa.ATOMIC_CMPXCHG:
            # r0 = cmpxchg(dst + off, r0, src): the old value always lands in r0
            return lines + [f"mov eax, {lo(0)}", f"lock cmpxchg {address}, ecx", f"mov {lo(0)}, eax",
                            set_word(hi(0), 0)]
        if insn.imm == isa.ATOMIC_XCHG:
            return lines + [f"xchg {address}, ecx"] + give_back
        if not fetch:
            return lines + [f"lock {_ALU[operation]} {address}, ecx"]
        if operation == isa.ADD:
            return lines + [f"lock xadd {address}, ecx"] + give_back
        retry = local_label(index, "retry")  # fetch-or/and/xor: a cmpxchg loop
        return lines + [f"mov eax, {address}", f"{retry}:", "mov edx, eax", f"{_ALU[operation]} edx, ecx",
                        f"lock cmpxchg {address}, edx", f"jne {retry}", f"mov {lo(src)}, eax", set_word(hi(src), 0)]

    def _atomic64(self, insn: Insn, index: int) -> list[str]:
        """cmpxchg8b compares edx:eax with the qword and, if equal, stores ecx:ebx; else loads edx:eax."""
        dst, src, off = insn.dst, insn.src, insn.off
        address = mem("esi", off, 8)
        lines = [f"mov esi, {lo(dst)}"]
        if insn.imm == isa.ATOMIC_CMPXCHG:
            return lines + [f"mov eax, {lo(0)}", f"mov edx, {hi(0)}", f"mov ebx, {lo(src)}", f"mov ecx, {hi(src)}",
                            f"lock cmpxchg8b {address}", f"mov {lo(0)}, eax", f"mov {hi(0)}, edx"]
        operation, fetch = insn.imm & ~isa.ATOMIC_FETCH, bool(insn.imm & isa.ATOMIC_FETCH)
        retry = local_label(index, "retry")
        lines += [f"mov eax, {mem('esi', off, 4)}", f"mov edx, {mem('esi', off + 4, 4)}", f"{retry}:"]
        if insn.imm == isa.ATOMIC_XCHG:
            lines += [f"mov ebx, {lo(src)}", f"mov ecx, {hi(src)}"]
        else:
            lines += ["mov ebx, eax", "mov ecx, edx", f"{_ALU[operation]} ebx, {lo(src)}",
                      f"{_ALU_HIGH[operation]} ecx, {hi(src)}"]
        lines += [f"lock cmpxchg8b {address}", f"jne {retry}"]
        return lines + ([f"mov {lo(src)}, eax", f"mov {hi(src)}, edx"] if fetch else [])

    def build_packet_load(self, insn: Insn, index: int, abort: str) -> list[str]:
        """LD_ABS/LD_IND: r0 = ntoh(*(size *)(packet + (s32)(imm [+ src]))), else abort with 0.

        The length is the low word of the u64 at PACKET_LEN_ADDR (inputs are far below 4 GiB)."""
        size = insn.nbytes
        lines = [f"mov ecx, {insn.imm & U32:#x}"]
        if insn.mode == isa.IND:
            lines.append(f"add ecx, {lo(insn.src)}")
        lines += ["test ecx, ecx", f"js {abort}", f"lea edx, [ecx + {size}]",
                  f"cmp edx, dword ptr [{layout.PACKET_LEN_ADDR:#x}]", f"ja {abort}"]
        packet = f"[ecx + {layout.MEM_BASE:#x}]"
        if size == 1:
            lines.append(f"movzx eax, byte ptr {packet}")
        elif size == 2:
            lines += [f"movzx eax, word ptr {packet}", "rol ax, 8"]
        else:
            lines += [f"mov eax, dword ptr {packet}", "bswap eax"]
        return lines + [f"mov {lo(0)}, eax", set_word(hi(0), 0)]

    # --- jumps and calls --------------------------------------------------------------

    def build_exit(self, insn: Insn, index: int) -> list[str]:
        return ["ret"]  # EXIT: back to the entry (or the local call site); r0 is in its slot

    def build_goto(self, insn: Insn, index: int, target: str) -> list[str]:
        return [f"jmp {target}"]

    def build_branch(self, insn: Insn, index: int, target: str) -> list[str]:
        """if dst cond src/imm goto target. JMP32 compares the low words; JMP compares
        the high words first and the low words only when the high words are equal."""
        op, dst, src, register = insn.op, insn.dst, insn.src, insn.source == isa.X
        compare = "test" if op == isa.JSET else "cmp"

        def words(half, immediate: int) -> list[str]:  # compare one pair of words
            if register:
                return [f"mov eax, {half(src)}", f"{compare} {half(dst)}, eax"]
            return [f"{compare} {half(dst)}, {hexnum(immediate)}"]

        low = words(lo, insn.imm)
        if insn.klass == isa.JMP32:
            return low + [f"{_JCC[op]} {target}"]
        high_imm = sign_word(insn.imm)  # the immediate, sign-extended to 64 bits
        high = words(hi, high_imm)
        if op == isa.JSET:  # a common bit in either word
            return low + [f"jne {target}"] + (high + [f"jne {target}"] if register or high_imm else [])
        decided = local_label(index, "decided")
        if op in _SIGNED_HIGH:
            return (high + [f"{_SIGNED_HIGH[op]} {target}", f"jne {decided}"] + low
                    + [f"{_SIGNED_LOW[op]} {target}", f"{decided}:"])
        # unsigned and (in)equality: the high words decide unless equal, then the low words
        return high + [f"jne {decided}"] + low + [f"{decided}:", f"{_JCC[op]} {target}"]

    def build_local_call(self, insn: Insn, index: int, target: str) -> list[str]:
        # local call: r6-r10 survive (pushed on the native stack), the callee gets its own 512-byte frame
        words = [half(register) for register in _LOCAL_CALL_SAVED for half in (lo, hi)]
        return ([f"push {word}" for word in words]
                + [f"sub {lo(10)}, {layout.FRAME_SIZE:#x}", f"sbb {hi(10)}, 0", f"call {target}"]
                + [f"pop {word}" for word in reversed(words)])

    def build_helper_call(self, insn: Insn, index: int, address: int) -> list[str]:
        # r1 in edx:eax, r2-r5 as u64 stack arguments (r2 at the lowest address); r0 = edx:eax
        pushes = [f"push {half(register)}" for register in (5, 4, 3, 2) for half in (hi, lo)]
        return ([f"mov eax, {lo(1)}", f"mov edx, {hi(1)}"] + pushes
                + [f"call {address:#x}", f"mov {lo(0)}, eax", f"mov {hi(0)}, edx", "add esp, 0x20"])
