"""MIPS64 JIT backends, big endian (``mips64``) and little endian (``mips64el``): one
backend parameterised by byte order, assembly text for keystone in one call per program.

Shape after the kernel's arch/mips/net/bpf_jit_comp64.c (n64 ABI): the register map
at the top, then ``build_prologue`` / ``build_epilogue`` and one builder per
instruction class for the translation driver (arches/driver.py). How keystone is
held to exactly the code written (delay slots, macros, branch reach) is in
``arches/mips64/assembly.py``.

Target facts, measured with unicorn 2.1.4 (and where they lead):

* CPU model: Unicorn's default MIPS64 CPU (like R4000, 5KC, 20KC, VR5432,
  Loongson-2E) is release 1 and traps on the MIPS64r2 instructions (dext, dsbh,
  dshd, seb, seh); ``UC_CPU_MIPS64_MIPS64R2_GENERIC`` runs them and is used. The
  release-6 models (I6400, I6500) trap on ldl/ldr and on ddivu/mflo (r6 removed
  HI/LO and the unaligned pairs) while they do misaligned ld/sd in hardware.
* Misaligned ``lh``/``lw``/``ld``/``sd`` raise an address error under Unicorn
  (UC_ERR_READ_UNALIGNED / UC_ERR_WRITE_UNALIGNED), as on a real release-2 CPU
  (where Linux emulates them in its trap handler); eBPF allows them. So words and
  doublewords go through ``lwl``/``lwr``, ``ldl``/``ldr``, ``swl``/``swr``,
  ``sdl``/``sdr`` pairs (any alignment, two instructions), halfwords through bytes;
  only accesses known to be aligned (r10 plus a multiple of the size) use one
  ``lw``/``ld``/``sw``/``sd``.
* ``ddivu``/``ddiv`` by zero do not trap (the result is UNPREDICTABLE by the ISA;
  Unicorn leaves garbage); ``ddiv`` INT64_MIN / -1 gives INT64_MIN. Both are guarded
  without branches (``movz``/``movn``), as eBPF defines them.
* 32-bit operations (``addu``, ``sll``, ``ll``, ``lwl``/``lwr``) sign-extend their
  result, and ``addu``/``srlv``/``srav``/``divu`` are UNPREDICTABLE on inputs that
  are not sign-extended words (Unicorn does not model that). ALU32 therefore uses
  the 64-bit operation (whose low 32 bits are right) or explicitly sign-extended
  inputs (``sll r, r, 0``), then ``dext r, r, 0, 32`` where eBPF zero-extends.
* MIPS has no flags: conditions are ``slt``/``sltu`` into a temporary and
  ``beq``/``bne``/``beqz``/``bnez``; JMP32 compares sign- or zero-extended copies.
* Unicorn's instruction ``count`` treats a branch and its delay slot as one step
  (a run can end one instruction late, never early): good enough for the budget.
  Without ``count`` (or another code hook) Unicorn crashes the process on a
  straight-line block of 365 or more ALU instructions, so the runner's ``count``
  is required here.
* LL/SC (``lld``/``scd``, ``ll``/``sc``) work under Unicorn; atomics are retry loops.

Every branch and jump is followed by its delay slot: filled with an instruction
that is right on every path, or a ``nop``, never another branch.
"""
from __future__ import annotations

import capstone
import keystone
import unicorn
from unicorn import mips_const as um

from arches.base import AssemblyError
from arches.driver import AssemblyBackend, local_label
from arches.mips64.assembly import (PREAMBLE, Branch, check_delay_slots, check_jump_region, for_keystone,
                                    instruction_words, n64_names, relax)
from harness import isa, layout
from harness.isa import Insn

# eBPF register -> MIPS GPR (the kernel's map, bpf2mips64[] in arch/mips/net/bpf_jit_comp64.c):
# r0 v0, r1-r5 a0-a4, r6-r9 s0-s3, r10 fp.
REGISTER_MAP = {0: "$2", 1: "$4", 2: "$5", 3: "$6", 4: "$7", 5: "$8",
                6: "$16", 7: "$17", 8: "$18", 9: "$19", 10: "$30"}
N64_NAMES = {0: "$v0", 1: "$a0", 2: "$a1", 3: "$a2", 4: "$a3", 5: "$a4",
             6: "$s0", 7: "$s1", 8: "$s2", 9: "$s3", 10: "$fp"}
# Scratch: t0-t3 ($12-$15, the kernel's temporaries), t8 for addresses, t9 for call targets.
T1, T2, T3, T4, ADDR, CALL_TARGET = "$12", "$13", "$14", "$15", "$24", "$25"
SAVED_SP = "$20"  # s4: the entry stack pointer, for unwinding an out-of-packet LD_ABS
ZERO, SP, FP, RA, R0 = "$0", "$29", "$30", "$31", "$2"
_ENTRY_SAVED = (RA, "$16", "$17", "$18", "$19", SAVED_SP, FP)  # n64 callee-saved registers we use
_ENTRY_FRAME = 64  # 7 doublewords, 16-byte aligned (n64)
_CALL_SAVED = (RA, "$16", "$17", "$18", "$19", FP)  # around a local call: ra and r6-r10
_CALL_FRAME = 48

_ALU = {isa.ADD: "daddu", isa.SUB: "dsubu", isa.OR: "or", isa.AND: "and", isa.XOR: "xor"}
_ALU_IMMEDIATE = {isa.OR: "ori", isa.AND: "andi", isa.XOR: "xori"}  # zero-extended 16-bit immediates
_SHIFT64 = {isa.LSH: "dsllv", isa.RSH: "dsrlv", isa.ARSH: "dsrav"}  # the count's low 6 bits, as eBPF
_SHIFT32 = {isa.LSH: "sllv", isa.RSH: "srlv", isa.ARSH: "srav"}  # the count's low 5 bits, as eBPF
_SHIFT_IMMEDIATE = {isa.LSH: "dsll", isa.RSH: "dsrl", isa.ARSH: "dsra"}
_SIGNED = frozenset({isa.JSGT, isa.JSGE, isa.JSLT, isa.JSLE})
# signed compare with zero: one branch instruction
_AGAINST_ZERO = {isa.JSGT: "bgtz", isa.JSGE: "bgez", isa.JSLT: "bltz", isa.JSLE: "blez"}
_LOAD = {1: "lbu", 2: "lhu", 4: "lwu", 8: "ld"}  # aligned accesses only: Unicorn traps on the others
_LOAD_SIGNED = {1: "lb", 2: "lh", 4: "lw"}
_STORE = {1: "sb", 2: "sh", 4: "sw", 8: "sd"}
_ATOMIC = {isa.ADD: "daddu", isa.OR: "or", isa.AND: "and", isa.XOR: "xor"}
U64 = (1 << 64) - 1


def zero_extend(register: str) -> str:
    """The upper 32 bits cleared (MIPS64r2; the kernel uses dinsu, which capstone misprints)."""
    return f"dext {register}, {register}, 0, 32"


def shift_left(register: str, amount: int) -> list[str]:
    if amount == 0:
        return []
    return [f"dsll32 {register}, {register}, {amount - 32}" if amount >= 32 else f"dsll {register}, {register}, {amount}"]


def load_immediate(register: str, value: int) -> list[str]:
    """1 to 6 instructions: daddiu / ori / lui+ori (sign-extends) / +dext / the 64-bit build-up."""
    value &= U64
    signed = isa.to_s64(value)
    if -0x8000 <= signed < 0x8000:
        return [f"daddiu {register}, $0, {signed}"]
    if 0 <= signed <= 0xFFFF:
        return [f"ori {register}, $0, {signed:#x}"]
    if -(1 << 31) <= signed < (1 << 31):
        lines = [f"lui {register}, {(signed >> 16) & 0xFFFF:#x}"]
        return lines + ([f"ori {register}, {register}, {signed & 0xFFFF:#x}"] if signed & 0xFFFF else [])
    if 0 <= signed < (1 << 32):
        return load_immediate(register, isa.to_s32(value)) + [zero_extend(register)]
    lines = load_immediate(register, signed >> 32)  # the upper half, sign-extended
    pending = 32  # bits still to shift in
    for shift in (16, 0):
        chunk = (value >> shift) & 0xFFFF
        if chunk:
            lines += shift_left(register, pending - shift) + [f"ori {register}, {register}, {chunk:#x}"]
            pending = shift
    return lines + shift_left(register, pending)


def fits16(value: int) -> bool:
    return -0x8000 <= value < 0x8000


class Mips64Backend(AssemblyBackend):
    """MIPS64 release 2, n64 ABI, big endian; :class:`Mips64elBackend` is the same for little endian."""

    name = "mips64"
    byte_order = "big"
    uc_arch, uc_mode = unicorn.UC_ARCH_MIPS, unicorn.UC_MODE_MIPS64 | unicorn.UC_MODE_BIG_ENDIAN
    uc_cpu = um.UC_CPU_MIPS64_MIPS64R2_GENERIC  # the default (release 1) traps on dext/dsbh/seb (measured)
    cs_arch, cs_mode = capstone.CS_ARCH_MIPS, capstone.CS_MODE_MIPS64 | capstone.CS_MODE_BIG_ENDIAN
    ks_arch, ks_mode = keystone.KS_ARCH_MIPS, keystone.KS_MODE_MIPS64 | keystone.KS_MODE_BIG_ENDIAN
    register_map = N64_NAMES
    # n64 passes arguments in a0-a7 ($4-$11): eBPF r1-r5 are a0-a4.
    argument_registers = (um.UC_MIPS_REG_4, um.UC_MIPS_REG_5, um.UC_MIPS_REG_6, um.UC_MIPS_REG_7, um.UC_MIPS_REG_8)
    return_register = um.UC_MIPS_REG_2  # v0: the n64 result register is eBPF r0 itself
    stack_pointer = um.UC_MIPS_REG_29
    program_counter = um.UC_MIPS_REG_PC
    general_registers = tuple(getattr(um, f"UC_MIPS_REG_{n}") for n in range(1, 32) if n != 29) + (
        um.UC_MIPS_REG_HI, um.UC_MIPS_REG_LO)
    # n64 callee-saved registers (LLVM's CSR_N64 in MipsCallingConv.td, after the MIPSpro N32/N64
    # ABI Handbook, table 2-1; in n64, unlike o32, gp is callee-saved); ra is the return address.
    callee_saved = {**{f"s{n}": getattr(um, f"UC_MIPS_REG_{16 + n}") for n in range(8)},
                    "gp": um.UC_MIPS_REG_28, "fp": um.UC_MIPS_REG_30,
                    **{f"f{n}": getattr(um, f"UC_MIPS_REG_F{n}") for n in range(24, 32)}}
    callee_saved_source = "MIPSpro N32/N64 ABI Handbook, table 2-1; LLVM MipsCallingConv.td CSR_N64"
    # n64 temporaries, scratch across a call: at, v0-v1, a0-a7, t0-t3, t8-t9 ($1-$15, $24-$25;
    # ra holds the stub's return).
    caller_saved_registers = tuple(getattr(um, f"UC_MIPS_REG_{n}") for n in (*range(1, 16), 24, 25))
    helper_stub = bytes.fromhex("03e00008" "00000000")  # jr $ra; nop
    sentinel_fill = bytes(4)  # nop (sll $0, $0, 0)
    instruction_width = 4
    # The runner's count= is what keeps Unicorn from crashing on 365+ straight-line instructions
    # (measured; harness/running/fidelity.py): this target must keep it.
    supports_count = True

    def set_return_address(self, uc, address: int) -> None:
        uc.reg_write(um.UC_MIPS_REG_31, address)

    def disassemble(self, code: bytes, address: int = 0) -> list[str]:
        """capstone's listing with n64 register names (capstone prints o32 names)."""
        return [n64_names(line) for line in super().disassemble(code, address)]

    def listing_for_keystone(self, mnemonic: str, operands: str, address: int) -> str:
        return for_keystone(mnemonic, operands)  # targets are absolute: the address is not needed

    # --- the emitter: relaxation, then keystone held to the words written -------------------

    def assemble(self, items: list[str], marks: list[str]) -> tuple[bytes, str, list[int] | None]:
        """Relax far branches, assemble, and check that keystone put every label where
        the size model did (so no short branch can be out of reach)."""
        check_jump_region()
        lines, offsets = relax(items)
        try:
            check_delay_slots(lines)
        except ValueError as error:
            raise AssemblyError(f"{self.name}: {error}") from None
        code, listing, measured = super().assemble(lines, marks)
        expected = [offsets[mark] for mark in marks]
        if measured != expected:
            raise AssemblyError(f"{self.name}: keystone placed labels at {measured and measured[:8]}, "
                                f"the size model at {expected[:8]}")
        return code, PREAMBLE + listing, measured  # the listing is what keystone assembled

    def keystone_assemble(self, text: str, address: int) -> bytes:
        """One keystone call under :data:`PREAMBLE`; its output must be exactly the words written."""
        encoding = super().keystone_assemble(PREAMBLE + text, address)
        written = instruction_words(text)
        if len(encoding) != 4 * written:
            raise AssemblyError(f"{self.name}: keystone emitted {len(encoding) // 4} words for the "
                                f"{written} written (an instruction of its own, or a macro)")
        return encoding

    # --- translation ------------------------------------------------------------------

    def build_prologue(self, body: str) -> list[str]:
        frame = load_immediate(FP, layout.STACK_TOP)
        return ([f"daddiu {SP}, {SP}, -{_ENTRY_FRAME}"]
                + [f"sd {register}, {8 * n}({SP})" for n, register in enumerate(_ENTRY_SAVED)]
                + [f"move {SAVED_SP}, {SP}"] + frame[:-1] + [f"jal {body}", frame[-1]])  # slot: r10's last part

    def build_epilogue(self) -> list[str]:
        # r0 is v0 already; the entry stack pointer unwinds any local-call frames
        return ([f"move {SP}, {SAVED_SP}"]
                + [f"ld {register}, {8 * n}({SP})" for n, register in enumerate(_ENTRY_SAVED)]
                + [f"jr {RA}", f"daddiu {SP}, {SP}, {_ENTRY_FRAME}"])

    def build_packet_abort(self, epilogue: str) -> list[str]:
        # LD_ABS/LD_IND out of the packet: the whole program returns 0 (set in the delay slot).
        return [f"j {epilogue}", f"move {R0}, {ZERO}"]

    def build_lddw(self, insn: Insn, index: int, value: int) -> list[str]:
        # LDDW: dst = imm64
        return load_immediate(REGISTER_MAP[insn.dst], value)

    # --- ALU -----------------------------------------------------------------------------

    def source(self, insn: Insn, width: int, scratch: str = T4) -> tuple[list[str], str]:
        """The src operand as a register: eBPF src, $0, or the immediate loaded into ``scratch``."""
        if insn.source == isa.X:
            return [], REGISTER_MAP[insn.src]
        value = insn.imm if width == 64 else insn.imm & 0xFFFFFFFF
        return ([], ZERO) if value == 0 else (load_immediate(scratch, value), scratch)

    def build_alu(self, insn: Insn, index: int) -> list[str] | None:
        width = 64 if insn.klass == isa.ALU64 else 32
        dst, op = REGISTER_MAP[insn.dst], insn.op
        zext = [zero_extend(dst)] if width == 32 else []
        if op == isa.END:
            return self.build_swap(insn, dst)
        if op == isa.NEG:
            return [f"dsubu {dst}, {ZERO}, {dst}"] + zext
        if op == isa.MOV:
            return self.build_move(insn, width, dst)
        if insn.source == isa.K:
            immediate = self.build_alu_immediate(insn, width, dst)
            if immediate is not None:
                return immediate
        if op in (isa.DIV, isa.MOD):
            setup, src = self.source(insn, width)
            return setup + self.build_divide(insn, width, dst, src)
        setup, src = self.source(insn, width)
        if op in _ALU:
            # dst op= src: the 64-bit operation; its low 32 bits are the ALU32 result
            return setup + [f"{_ALU[op]} {dst}, {dst}, {src}"] + zext
        if op == isa.MUL:
            return setup + [f"dmultu {dst}, {src}", f"mflo {dst}"] + zext
        if op in _SHIFT64:
            if width == 64:
                return setup + [f"{_SHIFT64[op]} {dst}, {dst}, {src}"]
            # srlv/srav need a sign-extended word (sllv does not); the count's low 5 bits
            extend = [] if op == isa.LSH else [f"sll {dst}, {dst}, 0"]
            return setup + extend + [f"{_SHIFT32[op]} {dst}, {dst}, {src}"] + zext
        return None

    def build_alu_immediate(self, insn: Insn, width: int, dst: str) -> list[str] | None:
        """The forms whose immediate fits the instruction (None: load it into a register)."""
        op, imm = insn.op, insn.imm
        zext = [zero_extend(dst)] if width == 32 else []
        if op in (isa.ADD, isa.SUB):
            addend = imm if op == isa.ADD else -imm
            return [f"daddiu {dst}, {dst}, {addend}"] + zext if fits16(addend) else None
        if op in _ALU_IMMEDIATE and 0 <= imm <= 0xFFFF:
            return [f"{_ALU_IMMEDIATE[op]} {dst}, {dst}, {imm:#x}"] + (zext if op != isa.AND else [])
        if op in _SHIFT_IMMEDIATE:
            amount = imm & (width - 1)
            if width == 64:
                mnemonic = _SHIFT_IMMEDIATE[op]
                if amount >= 32:
                    return [f"{mnemonic}32 {dst}, {dst}, {amount - 32}"]
                return [f"{mnemonic} {dst}, {dst}, {amount}"] if amount else []
            if op == isa.LSH:
                return [f"sll {dst}, {dst}, {amount}"] + zext
            if op == isa.RSH:
                return zext + [f"dsrl {dst}, {dst}, {amount}"]
            return [f"sll {dst}, {dst}, 0", f"sra {dst}, {dst}, {amount}"] + zext
        return None

    def build_move(self, insn: Insn, width: int, dst: str) -> list[str]:
        zext = [zero_extend(dst)] if width == 32 else []
        if insn.source == isa.K:
            # MOV: dst = imm (sign-extended by ALU64, zero-extended by ALU32)
            return load_immediate(dst, insn.imm if width == 64 else insn.imm & 0xFFFFFFFF)
        src = REGISTER_MAP[insn.src]
        if insn.off:
            # MOVSX: dst = (s8/s16/s32) src
            extend = {8: f"seb {dst}, {src}", 16: f"seh {dst}, {src}", 32: f"sll {dst}, {src}, 0"}[insn.off]
            return [extend] + zext
        if width == 32:
            return [f"dext {dst}, {src}, 0, 32"]
        return [] if src == dst else [f"move {dst}, {src}"]

    def build_divide(self, insn: Insn, width: int, dst: str, src: str) -> list[str]:
        """DIV/MOD (signed when off=1) with the eBPF edges, without branches.

        By zero: div gives 0 (``movz``), mod leaves dst (``movn`` writes only for a
        non-zero divisor). Signed by -1: div negates, mod gives 0 (a 64-bit ``ddiv``
        INT_MIN / -1 is guarded the same way). ALU32 divides the 32-bit operands
        extended to 64 bits, where INT_MIN / -1 cannot overflow; then zero-extends.
        """
        signed, is_mod = insn.off == 1, insn.op == isa.MOD
        divide = "ddiv" if signed else "ddivu"
        if width == 32:
            if signed:
                lines = [f"sll {T2}, {src}, 0", f"sll {T1}, {dst}, 0"]
            else:
                lines = [f"dext {T2}, {src}, 0, 32", f"dext {T1}, {dst}, 0, 32"]
            lines.append(f"{divide} {ZERO}, {T1}, {T2}")
            if is_mod:
                return lines + ["mfhi " + T3, f"movn {dst}, {T3}, {T2}", zero_extend(dst)]
            return lines + [f"mflo {dst}", f"movz {dst}, {ZERO}, {T2}"] + ([zero_extend(dst)] if signed else [])
        lines = [f"{divide} {ZERO}, {dst}, {src}"]
        if is_mod:
            lines.append(f"mfhi {T1}")
            if signed:  # INT_MIN % -1 = 0 (any x % -1 = 0)
                lines += [f"daddiu {T3}, {src}, 1", f"movz {T1}, {ZERO}, {T3}"]
            return lines + [f"movn {dst}, {T1}, {src}"]
        lines.append(f"mflo {T1}")
        if signed:  # x / -1 = -x (INT_MIN / -1 = INT_MIN)
            lines += [f"dsubu {T2}, {ZERO}, {dst}", f"daddiu {T3}, {src}, 1", f"movz {T1}, {T2}, {T3}"]
        return lines + [f"movz {T1}, {ZERO}, {src}", f"move {dst}, {T1}"]

    def build_swap(self, insn: Insn, dst: str) -> list[str]:
        """le/be relative to the host byte order; ALU64|END (bswap) always swaps."""
        width = insn.imm
        to_other = isa.TO_BE if self.byte_order == "little" else isa.TO_LE
        if not (insn.klass == isa.ALU64 or insn.source == to_other):  # a truncation
            return {16: [f"andi {dst}, {dst}, 0xffff"], 32: [zero_extend(dst)], 64: []}[width]
        # dsbh swaps the bytes of each halfword, dshd the halfwords: together all 8 bytes
        if width == 16:
            return [f"dsbh {dst}, {dst}", f"andi {dst}, {dst}, 0xffff"]
        lines = [f"dsbh {dst}, {dst}", f"dshd {dst}, {dst}"]
        return lines + ([f"dsrl32 {dst}, {dst}, 0"] if width == 32 else [])

    # --- memory --------------------------------------------------------------------------

    def reach(self, base: str, offset: int, size: int) -> tuple[list[str], str, int]:
        """(setup, base, offset) such that offset .. offset+size-1 all fit the 16-bit field."""
        if fits16(offset) and fits16(offset + size - 1):
            return [], base, offset
        return [f"daddiu {ADDR}, {base}, {offset}"], ADDR, 0

    def pair(self, left: str, right: str, register: str, base: str, offset: int, size: int) -> list[str]:
        """An unaligned word/doubleword access: the left instruction takes the most
        significant end, which is the lowest address on big endian, the highest on little.
        The half at the lower address goes first, so a fault names the access's first byte
        (Unicorn reports the byte a partial access touches first, measured)."""
        last = offset + size - 1
        if self.byte_order == "big":
            return [f"{left} {register}, {offset}({base})", f"{right} {register}, {last}({base})"]
        return [f"{right} {register}, {offset}({base})", f"{left} {register}, {last}({base})"]

    def byte_offsets(self, offset: int) -> tuple[int, int]:
        """(offset of the high byte, of the low byte) of a halfword at ``offset``."""
        return (offset, offset + 1) if self.byte_order == "big" else (offset + 1, offset)

    @staticmethod
    def aligned(register: int, offset: int, size: int) -> bool:
        """Known aligned: r10 is always a multiple of FRAME_SIZE (the stack top, frames of 512)."""
        return register == isa.FRAME_POINTER and fits16(offset) and offset % size == 0

    def build_load(self, insn: Insn, index: int) -> list[str]:
        # LDX: dst = *(size *)(src + off), any alignment; MEMSX sign-extends
        size, dst, signed = insn.nbytes, REGISTER_MAP[insn.dst], insn.mode == isa.MEMSX
        if size == 1 or self.aligned(insn.src, insn.off, size):
            mnemonic = (_LOAD_SIGNED if signed else _LOAD)[size]
            return [f"{mnemonic} {dst}, {insn.off}({REGISTER_MAP[insn.src]})"]
        lines, base, offset = self.reach(REGISTER_MAP[insn.src], insn.off, size)
        if size == 2:
            high, low = self.byte_offsets(offset)
            return lines + [f"{'lb' if signed else 'lbu'} {T1}, {high}({base})", f"lbu {T2}, {low}({base})",
                            f"dsll {T1}, {T1}, 8", f"or {dst}, {T1}, {T2}"]
        if size == 4:  # into T1 (dst may be the base); lwl/lwr leave a sign-extended word
            extend = f"sll {dst}, {T1}, 0" if signed else f"dext {dst}, {T1}, 0, 32"
            return lines + self.pair("lwl", "lwr", T1, base, offset, 4) + [extend]
        if dst == base:
            return lines + self.pair("ldl", "ldr", T1, base, offset, 8) + [f"move {dst}, {T1}"]
        return lines + self.pair("ldl", "ldr", dst, base, offset, 8)

    def build_store(self, insn: Insn, index: int) -> list[str]:
        # ST: *(size *)(dst + off) = imm (stdw sign-extends); STX: = src; any alignment
        size = insn.nbytes
        if insn.klass == isa.ST:
            lines, value = (load_immediate(T4, insn.imm), T4) if insn.imm else ([], ZERO)
        else:
            lines, value = [], REGISTER_MAP[insn.src]
        if size == 1 or self.aligned(insn.dst, insn.off, size):
            return lines + [f"{_STORE[size]} {value}, {insn.off}({REGISTER_MAP[insn.dst]})"]
        setup, base, offset = self.reach(REGISTER_MAP[insn.dst], insn.off, size)
        lines += setup
        if size == 2:
            high, low = self.byte_offsets(offset)
            return lines + [f"sb {value}, {low}({base})", f"dsrl {T1}, {value}, 8", f"sb {T1}, {high}({base})"]
        left, right = ("swl", "swr") if size == 4 else ("sdl", "sdr")
        return lines + self.pair(left, right, value, base, offset, size)

    def build_atomic(self, insn: Insn, index: int) -> list[str]:
        """LL/SC retry loops (ll/sc or lld/scd); fetch forms return the old value in src."""
        wide = insn.nbytes == 8
        linked, conditional = ("lld", "scd") if wide else ("ll", "sc")
        src, old, new = REGISTER_MAP[insn.src], T1, T2
        retry, done = local_label(index, "retry"), local_label(index, "done")
        lines = [f"daddiu {ADDR}, {REGISTER_MAP[insn.dst]}, {insn.off}"]
        to_register = (lambda target: f"move {target}, {old}") if wide else \
            (lambda target: f"dext {target}, {old}, 0, 32")  # ll sign-extends the old word
        if insn.imm == isa.ATOMIC_CMPXCHG:
            # r0 = old; if old == r0 (the low 32 bits for the word form) *ptr = src
            expected = R0 if wide else T3
            lines += [] if wide else [f"sll {T3}, {R0}, 0"]
            return lines + [f"{retry}:", f"{linked} {old}, 0({ADDR})", f"bne {old}, {expected}, {done}",
                            f"move {new}, {src}",  # delay slot: harmless when the compare fails
                            f"{conditional} {new}, 0({ADDR})", f"beqz {new}, {retry}", "nop",
                            f"{done}:", to_register(R0)]
        if insn.imm == isa.ATOMIC_XCHG:
            compute = f"move {new}, {src}"
        else:
            compute = f"{_ATOMIC[insn.imm & ~isa.ATOMIC_FETCH]} {new}, {old}, {src}"  # sc stores the low word
        lines += [f"{retry}:", f"{linked} {old}, 0({ADDR})", compute,
                  f"{conditional} {new}, 0({ADDR})", f"beqz {new}, {retry}", "nop"]
        return lines + ([to_register(src)] if insn.imm & isa.ATOMIC_FETCH else [])

    def build_packet_load(self, insn: Insn, index: int, abort: str) -> list[str]:
        """LD_ABS/LD_IND: r0 = big-endian bytes at packet + (s32)(imm [+ src]), else abort with 0."""
        size = insn.nbytes
        lines = load_immediate(T1, insn.imm & 0xFFFFFFFF)
        if insn.mode == isa.IND:
            lines.append(f"daddu {T1}, {T1}, {REGISTER_MAP[insn.src]}")
        lines += [f"sll {T1}, {T1}, 0",  # the offset is a signed 32-bit sum
                  Branch("bltz", (T1,), abort, slot=f"daddiu {T2}, {T1}, {size}")]  # T2 = end of the read
        lines += load_immediate(ADDR, layout.PACKET_LEN_ADDR)
        lines += [f"ld {ADDR}, 0({ADDR})", f"sltu {T3}, {ADDR}, {T2}", Branch("bnez", (T3,), abort)]
        lines += load_immediate(ADDR, layout.MEM_BASE) + [f"daddu {ADDR}, {ADDR}, {T1}", f"lbu {R0}, 0({ADDR})"]
        for byte in range(1, size):  # network order: the first byte is the most significant
            lines += [f"lbu {T1}, {byte}({ADDR})", f"dsll {R0}, {R0}, 8", f"or {R0}, {R0}, {T1}"]
        return lines

    # --- jumps and calls -----------------------------------------------------------------

    def build_exit(self, insn: Insn, index: int) -> list[str]:
        return [f"jr {RA}", "nop"]  # back to the entry (or the local call site); r0 is v0

    def build_goto(self, insn: Insn, index: int, target: str) -> list[str]:
        return [f"j {target}", "nop"]  # j reaches the whole code region (check_jump_region)

    def build_branch(self, insn: Insn, index: int, target: str) -> list[str]:
        """if dst cond src: no flags, so slt/sltu into a temporary and beqz/bnez, or beq/bne."""
        width, op = (64 if insn.klass == isa.JMP else 32), insn.op
        signed = op in _SIGNED
        dst = REGISTER_MAP[insn.dst]
        lines: list[str] = []
        if insn.source == isa.X:
            src = REGISTER_MAP[insn.src]
            constant = None
        else:  # the immediate as the compare sees it: sign-extended, or zero-extended for unsigned JMP32
            constant = isa.to_s32(insn.imm) if width == 64 or signed or op in (isa.JEQ, isa.JNE, isa.JSET) \
                else insn.imm & 0xFFFFFFFF
            src = ZERO
        if op == isa.JSET:
            if constant is not None and 0 <= constant <= 0xFFFF:
                lines = [f"andi {T3}, {dst}, {constant:#x}"]
            else:
                if constant is not None:
                    lines, src = load_immediate(T2, constant), T2
                lines.append(f"and {T3}, {dst}, {src}")
                lines += [f"sll {T3}, {T3}, 0"] if width == 32 else []  # only the low word counts
            return lines + [Branch("bnez", (T3,), target)]
        if width == 32:  # compare copies extended from the low words
            extend = (lambda out, register: f"sll {out}, {register}, 0") if signed or op in (isa.JEQ, isa.JNE) \
                else (lambda out, register: f"dext {out}, {register}, 0, 32")
            lines.append(extend(T1, dst))
            dst = T1
            if constant is None:
                lines.append(extend(T2, src))
                src = T2
        if constant:
            if op in (isa.JLT, isa.JGE, isa.JSLT, isa.JSGE) and fits16(constant):
                # dst < imm in one slti/sltiu (the 16-bit immediate is sign-extended, then compared)
                lines.append(f"{'slti' if signed else 'sltiu'} {T3}, {dst}, {constant}")
                return lines + [Branch("bnez" if op in (isa.JLT, isa.JSLT) else "beqz", (T3,), target)]
            lines += load_immediate(T2, constant)
            src = T2
        if op in (isa.JEQ, isa.JNE):
            return lines + [Branch("beq" if op == isa.JEQ else "bne", (dst, src), target)]
        if src == ZERO and op in _AGAINST_ZERO:
            return lines + [Branch(_AGAINST_ZERO[op], (dst,), target)]
        slt = "slt" if signed else "sltu"
        if op in (isa.JGT, isa.JSGT, isa.JLE, isa.JSLE):  # src < dst
            lines.append(f"{slt} {T3}, {src}, {dst}")
            return lines + [Branch("bnez" if op in (isa.JGT, isa.JSGT) else "beqz", (T3,), target)]
        lines.append(f"{slt} {T3}, {dst}, {src}")  # dst < src
        return lines + [Branch("bnez" if op in (isa.JLT, isa.JSLT) else "beqz", (T3,), target)]

    def build_local_call(self, insn: Insn, index: int, target: str) -> list[str]:
        # local call: keep ra and r6-r10; the callee's frame is set in the jal's delay slot
        return ([f"daddiu {SP}, {SP}, -{_CALL_FRAME}"]
                + [f"sd {register}, {8 * n}({SP})" for n, register in enumerate(_CALL_SAVED)]
                + [f"jal {target}", f"daddiu {FP}, {FP}, -{layout.FRAME_SIZE}"]
                + [f"ld {register}, {8 * n}({SP})" for n, register in enumerate(_CALL_SAVED)]
                + [f"daddiu {SP}, {SP}, {_CALL_FRAME}"])

    def build_helper_call(self, insn: Insn, index: int, address: int) -> list[str]:
        # r1-r5 are already a0-a4 and the result comes back in v0 (= r0): only ra needs keeping
        return ([f"daddiu {SP}, {SP}, -16", f"sd {RA}, 0({SP})"] + load_immediate(CALL_TARGET, address)
                + [f"jalr {CALL_TARGET}", "nop", f"ld {RA}, 0({SP})", f"daddiu {SP}, {SP}, 16"])


class Mips64elBackend(Mips64Backend):
    """The same backend for little-endian MIPS64 (mips64el)."""

    name = "mips64el"
    byte_order = "little"
    uc_mode = unicorn.UC_MODE_MIPS64 | unicorn.UC_MODE_LITTLE_ENDIAN
    cs_mode = capstone.CS_MODE_MIPS64 | capstone.CS_MODE_LITTLE_ENDIAN
    ks_mode = keystone.KS_MODE_MIPS64 | keystone.KS_MODE_LITTLE_ENDIAN
    helper_stub = bytes.fromhex("0800e003" "00000000")  # jr $ra; nop
