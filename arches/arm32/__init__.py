"""arm32 JIT backend: ARMv7-A, ARM state, little endian, AAPCS; keystone assembly text.

Shape after the kernel's arch/arm/net/bpf_jit_32.c: eBPF registers in pairs of ARM
registers or in stack words (:mod:`arches.arm32.registers`, the kernel's
``bpf2a32[]``), 64-bit ALU as carry chains and multi-instruction shifts
(:mod:`arches.arm32.alu`), division through out-of-line subroutines
(:mod:`arches.arm32.runtime`, like the kernel's calls to ``jit_udiv32``), atomics
as ``ldrex``/``strex`` (``ldrexd``/``strexd``) retry loops.

Frame: the entry saves r4-r11, ip and lr, points fp at the saved registers, puts
the stacked eBPF registers below it (r2 = the input length, r10 = the top of the
eBPF stack) and ``bl``s eBPF instruction 0; ``exit`` is ``bx lr``;
the epilogue restores sp from fp, so it unwinds any call depth (the packet-abort
path jumps there too). A local call saves r6-r10 and lr on the native stack and
moves r10 down by one frame. Every call site saves lr, which is never a scratch
register here (the kernel's JIT uses it as one; it has no local calls).

ABI (AAPCS, the way the kernel's arm32 JIT calls helpers): a 64-bit argument takes
an even/odd register pair, so eBPF r1 and r2 go in r0:r1 and r2:r3, r3-r5 on the
native stack (8 bytes each, r3 at sp); the result comes back in r0:r1, which is
eBPF r0's home. The entry takes r1 and r2 the same way.

Unicorn/keystone facts (unicorn 2.1.4, keystone 0.9.2, measured):
* The default ARM CPU is a Cortex-A15, which runs ``udiv``/``sdiv``; Cortex-A8 and
  A9 (ARMv7-A without the integer-divide extension, where the kernel calls out)
  trap on them. The engine uses the Cortex-A8 so that the code is checked to run on
  every ARMv7-A core; division never uses ``udiv``.
* keystone cannot assemble ``udiv``/``sdiv`` in ARM mode ("missing CPU feature"),
  rejects ``adc rX, rY, #-1`` with the same message (``sbc rX, rY, #0`` is the same
  operation), assembles ``lsr``/``asr`` ``#0`` as ``mov`` (ARM's encoding of 0 there
  means 32; this backend never emits a shift by 0), and ``push {lr}`` as
  ``str lr, [sp, #-4]!``. No literal pools are used (movw/movt instead).
* Unicorn allows unaligned ``ldr``/``ldrh``/``str``/``strh`` (as ARMv7 does with
  SCTLR.A clear) and even unaligned ``ldrd`` (a stated limit: hardware faults; this
  backend uses ``ldrd`` only on its aligned stack slots); ``ldrex``/``ldrexd`` fault
  unless aligned to their size, as on hardware, so an atomic on a misaligned address
  ends in a CPU exception where the interpreter completes it (so do arm64, s390x,
  ppc64 and sparc64; the kernel's verifier rejects such programs, ours does not yet).
* Addresses are 32 bits: a load or store uses the low word of the pointer, so a
  pointer whose high word is not 0 reaches the 32-bit address it wraps to.
"""
from __future__ import annotations

import capstone
import keystone
import unicorn
from unicorn import arm_const as ua

from arches.arm32 import alu, runtime
from arches.arm32.registers import (HOMES, MASK32, TMP1, TMP2, fetch64, fetch_low,
                                    immediate_operand, move_immediate, put32, put64,
                                    working_pair)
from arches.base import NativeCode, Rewrite
from arches.driver import AssemblyBackend, local_label
from harness import isa, layout
from harness.isa import Insn, Program

REGISTER_MAP = {number: home.describe() for number, home in HOMES.items()}
_CALLEE_SAVED = "{r4, r5, r6, r7, r8, r9, r10, fp, ip, lr}"  # ip keeps sp 8-byte aligned (AAPCS)
_LOAD = {1: "ldrb", 2: "ldrh", 4: "ldr", 8: "ldr"}
_LOAD_SIGNED = {1: "ldrsb", 2: "ldrsh", 4: "ldr"}
_STORE = {1: "strb", 2: "strh", 4: "str", 8: "str"}
# Conditions after cmp dst, src (unsigned and 32-bit signed forms) ...
_COND = {isa.JEQ: "eq", isa.JNE: "ne", isa.JGT: "hi", isa.JGE: "hs", isa.JLT: "lo", isa.JLE: "ls",
         isa.JSGT: "gt", isa.JSGE: "ge", isa.JSLT: "lt", isa.JSLE: "le", isa.JSET: "ne"}
# ... and after a 64-bit signed subtraction chain, which has no usable Z: JSGT/JSLE
# subtract dst from src, JSLT/JSGE src from dst (the kernel's emit_ar_r).
_COND_SIGNED64 = {isa.JSGT: "lt", isa.JSLE: "ge", isa.JSLT: "lt", isa.JSGE: "ge"}
_ATOMIC_ALU32 = {isa.ADD: "add", isa.OR: "orr", isa.AND: "and", isa.XOR: "eor"}
_ATOMIC_ALU = {isa.ADD: ("adds", "adc"), isa.OR: ("orr", "orr"), isa.AND: ("and", "and"), isa.XOR: ("eor", "eor")}


def memory_offset(base: str, offset: int, size: int) -> tuple[list[str], str]:
    """``[base, #offset]`` when the offset fits the load/store form, else the offset in ip."""
    reach = 255 if size == 2 or size == -1 else 4095 - (4 if size == 8 else 0)
    if -reach <= offset <= reach:
        return [], f"[{base}, #{offset}]"
    return move_immediate("ip", offset), f"[{base}, ip]"


class Arm32Backend(AssemblyBackend):
    name = "arm32"
    byte_order = "little"
    longest_branch_reach = 1 << 25  # b/bl: imm24 words (Arm ARM A8.8.18): +-32 MiB
    uc_arch, uc_mode = unicorn.UC_ARCH_ARM, unicorn.UC_MODE_ARM
    uc_cpu = ua.UC_CPU_ARM_CORTEX_A8  # ARMv7-A without udiv/sdiv: see the module docstring
    cs_arch, cs_mode = capstone.CS_ARCH_ARM, capstone.CS_MODE_ARM
    ks_arch, ks_mode = keystone.KS_ARCH_ARM, keystone.KS_MODE_ARM
    register_map = REGISTER_MAP
    # AAPCS: the first two 64-bit arguments in r0:r1 and r2:r3 (see helper_arguments).
    argument_registers = (ua.UC_ARM_REG_R0, ua.UC_ARM_REG_R2)
    return_register = ua.UC_ARM_REG_R0
    stack_pointer = ua.UC_ARM_REG_SP
    program_counter = ua.UC_ARM_REG_PC
    general_registers = tuple(getattr(ua, f"UC_ARM_REG_R{n}") for n in range(13)) + (ua.UC_ARM_REG_LR,)
    # Callee-saved: r4-r11 (r9 is callee-saved on Linux, which uses it as no platform
    # register) and sp; d8-d15 of the VFP register file.
    callee_saved = {**{f"r{n}": getattr(ua, f"UC_ARM_REG_R{n}") for n in range(4, 12)},
                    **{f"d{n}": getattr(ua, f"UC_ARM_REG_D{n}") for n in range(8, 16)}}
    callee_saved_source = "AAPCS (Arm IHI 0042), sections 5.1.1 and 5.1.2.1"
    # AAPCS 5.1.1: r0-r3 and r12 (ip) are scratch across a call (lr holds the stub's return).
    caller_saved_registers = tuple(getattr(ua, f"UC_ARM_REG_R{n}") for n in (0, 1, 2, 3, 12))
    helper_stub = bytes.fromhex("1eff2fe1")  # bx lr
    sentinel_fill = bytes.fromhex("00f020e3")  # nop
    instruction_width = 4

    def __init__(self) -> None:
        super().__init__()
        self._subroutines: set[str] = set()  # the division subroutines the current translation calls

    def set_return_address(self, uc, address: int) -> None:
        uc.reg_write(ua.UC_ARM_REG_LR, address)

    # --- the ABI: 64-bit values in register pairs and stack slots ---------------------

    def set_entry_arguments(self, uc, memory: int, length: int) -> None:
        """eBPF r1 in r0:r1, r2 in r2:r3 (AAPCS for two 64-bit arguments)."""
        for low, value in ((ua.UC_ARM_REG_R0, memory), (ua.UC_ARM_REG_R2, length)):
            uc.reg_write(low, value & MASK32)
            uc.reg_write(low + 1, value >> 32 & MASK32)  # Unicorn numbers r0-r12 consecutively

    def helper_arguments(self, uc) -> tuple[int, int, int, int, int]:
        """r1 in r0:r1, r2 in r2:r3, r3-r5 at sp, sp+8, sp+16 (as the kernel's JIT pushes them)."""
        first = uc.reg_read(ua.UC_ARM_REG_R0) | uc.reg_read(ua.UC_ARM_REG_R1) << 32
        second = uc.reg_read(ua.UC_ARM_REG_R2) | uc.reg_read(ua.UC_ARM_REG_R3) << 32
        stacked = bytes(uc.mem_read(uc.reg_read(self.stack_pointer), 24))
        rest = [int.from_bytes(stacked[i:i + 8], "little") for i in range(0, 24, 8)]
        return (first, second, *rest)  # type: ignore[return-value]

    def set_helper_result(self, uc, value: int) -> None:
        uc.reg_write(ua.UC_ARM_REG_R0, value & MASK32)
        uc.reg_write(ua.UC_ARM_REG_R1, value >> 32 & MASK32)

    def result(self, uc) -> int:
        return uc.reg_read(ua.UC_ARM_REG_R0) | uc.reg_read(ua.UC_ARM_REG_R1) << 32

    # --- translation -----------------------------------------------------------------

    def translate(self, program: Program, rewrite: Rewrite | None = None) -> NativeCode:
        """The driver's translation; the body's builders record which subroutines it calls."""
        self._subroutines = set()
        return super().translate(program, rewrite)

    def build_prologue(self, body: str) -> list[str]:
        # the stacked homes, from fp - 8 down (push stores the lowest register lowest):
        # r2 = the length (r2:r3), room for r3-r5 and r7-r9 (the validator rejects reading
        # a register before writing it), r10 = the top of the eBPF stack
        return ([f"push {_CALLEE_SAVED}", "mov fp, sp", "push {r2, r3}", "sub sp, sp, #48"]
                + move_immediate("r8", layout.STACK_TOP) + ["mov r9, #0", "push {r8, r9}"]
                + ["mov r2, r0", "mov r3, r1", f"bl {body}"])

    def build_epilogue(self) -> list[str]:
        # r0 is already r0:r1, the AAPCS 64-bit result; fp unwinds any call depth
        return ["mov sp, fp", f"pop {_CALLEE_SAVED.replace('lr', 'pc')}"]

    def build_packet_abort(self, epilogue: str) -> list[str]:
        # LD_ABS/LD_IND out of the packet: the whole program returns 0. The division
        # subroutines the body calls follow.
        return ["mov r0, #0", "mov r1, #0", f"b {epilogue}"] + runtime.subroutine_code(self._subroutines)

    def build_lddw(self, insn: Insn, index: int, value: int) -> list[str]:
        # LDDW: dst = imm64
        pair = working_pair(insn.dst, TMP1)
        return move_immediate(pair[0], value) + move_immediate(pair[1], value >> 32) + put64(insn.dst, pair)

    def build_alu(self, insn: Insn, index: int) -> list[str] | None:
        return alu.build_alu(insn, index, self._subroutines.add)

    # --- memory ------------------------------------------------------------------------

    def build_load(self, insn: Insn, index: int) -> list[str]:
        # LDX: dst = *(size *)(src + off); MEMSX sign-extends. The address is src's low word.
        size, signed = insn.nbytes, insn.mode == isa.MEMSX
        lines, base = fetch_low(insn.src, TMP2[0])
        low, high = working_pair(insn.dst, TMP1)
        if size == 8:  # the high word first: the low word's register may be the base
            setup, address = memory_offset(base, insn.off, 8)
            if setup:
                lines += setup + [f"add ip, {base}, ip"]
                base, address = "ip", "[ip]"
            high_address = f"[{base}, #{insn.off + 4}]" if base != "ip" else "[ip, #4]"
            lines += [f"ldr {high}, {high_address}", f"ldr {low}, {address}"]
            return lines + put64(insn.dst, (low, high))
        setup, address = memory_offset(base, insn.off, -1 if signed and size == 1 else size)
        lines += setup + [f"{(_LOAD_SIGNED if signed else _LOAD)[size]} {low}, {address}"]
        if not signed:
            return lines + put32(insn.dst, low)
        return lines + [f"asr {high}, {low}, #31"] + put64(insn.dst, (low, high))

    def build_store(self, insn: Insn, index: int) -> list[str]:
        # ST: *(size *)(dst + off) = imm (stdw sign-extends imm); STX: = src
        size = insn.nbytes
        lines, base = fetch_low(insn.dst, TMP2[0])
        if insn.klass == isa.ST:
            value = TMP1
            lines += alu.immediate_pair(insn.imm, TMP1) if size == 8 else move_immediate(TMP1[0], insn.imm)
        elif size == 8:
            setup, value = fetch64(insn.src, TMP1)
            lines += setup
        else:
            setup, low = fetch_low(insn.src, TMP1[0])
            lines += setup
            value = (low, "")
        setup, address = memory_offset(base, insn.off, size)
        if size == 8 and setup:
            return lines + setup + [f"add ip, {base}, ip", f"str {value[0]}, [ip]", f"str {value[1]}, [ip, #4]"]
        lines += setup + [f"{_STORE[size]} {value[0]}, {address}"]
        if size == 8:
            lines.append(f"str {value[1]}, [{base}, #{insn.off + 4}]")
        return lines

    def atomic_address(self, insn: Insn) -> list[str]:
        """ip = dst + off (ldrex/strex take a bare register)."""
        lines, base = fetch_low(insn.dst, TMP2[0])
        if not insn.off:
            return lines + [f"mov ip, {base}"]
        setup, operand = immediate_operand(insn.off, "ip")
        return lines + setup + [f"add ip, {base}, {operand}"]

    def build_atomic(self, insn: Insn, index: int) -> list[str]:
        """Atomics as ldrex/strex (ldrexd/strexd) retry loops, with a full barrier after
        the fetching forms; the old value lands in src (r0 for cmpxchg)."""
        retry, done, fail = (local_label(index, name) for name in ("retry", "done", "fail"))
        lines = self.atomic_address(insn)
        fetch = bool(insn.imm & isa.ATOMIC_FETCH)
        if insn.nbytes == 4:
            setup, value = fetch_low(insn.src, TMP2[1])
            lines += setup + [f"{retry}:", "ldrex r6, [ip]"]
            if insn.imm == isa.ATOMIC_CMPXCHG:
                # r0 = cmpxchg(dst + off, r0, src), compared and returned in 32 bits
                return lines + ["cmp r6, r0", f"bne {fail}", f"strex r10, {value}, [ip]", "cmp r10, #0",
                                f"bne {retry}", f"b {done}", f"{fail}:", "clrex", f"{done}:", "dmb ish",
                                "mov r0, r6", "mov r1, #0"]
            if insn.imm == isa.ATOMIC_XCHG:
                new = value
            else:
                new = "r7"
                lines.append(f"{_ATOMIC_ALU32[insn.imm & ~isa.ATOMIC_FETCH]} r7, r6, {value}")
            lines += [f"strex r10, {new}, [ip]", "cmp r10, #0", f"bne {retry}"]
            return lines + (["dmb ish"] + put32(insn.src, "r6") if fetch else [])
        # 64 bits: the source must be an even/odd pair for strexd; a stacked one borrows r4:r5
        home = HOMES[insn.src]
        borrowed = home.stacked
        if borrowed:
            lines += ["push {r4, r5}", f"ldrd r4, r5, [fp, #{home.slot}]"]
            source = ("r4", "r5")
        else:
            source = (home.low, home.high)
        lines += [f"{retry}:", "ldrexd r6, r7, [ip]"]
        if insn.imm == isa.ATOMIC_CMPXCHG:
            lines += ["cmp r6, r0", "cmpeq r7, r1", f"bne {fail}", f"strexd r10, {source[0]}, {source[1]}, [ip]",
                      "cmp r10, #0", f"bne {retry}", f"b {done}", f"{fail}:", "clrex", f"{done}:", "dmb ish",
                      "mov r0, r6", "mov r1, r7"]
            return lines + (["pop {r4, r5}"] if borrowed else [])
        if insn.imm == isa.ATOMIC_XCHG:
            new = source
        else:
            new = ("r8", "r9")
            first, second = _ATOMIC_ALU[insn.imm & ~isa.ATOMIC_FETCH]
            lines += [f"{first} r8, r6, {source[0]}", f"{second} r9, r7, {source[1]}"]
        lines += [f"strexd r10, {new[0]}, {new[1]}, [ip]", "cmp r10, #0", f"bne {retry}"]
        if fetch:
            lines += ["dmb ish"] + put64(insn.src, TMP1)
        return lines + (["pop {r4, r5}"] if borrowed else [])

    def build_packet_load(self, insn: Insn, index: int, abort: str) -> list[str]:
        """LD_ABS/LD_IND: r0 = ntoh(*(size *)(packet + (s32)(imm [+ src]))), else abort with 0."""
        size = insn.nbytes
        lines = move_immediate("r8", insn.imm)
        if insn.mode == isa.IND:
            setup, offset = fetch_low(insn.src, "r9")
            lines += setup + [f"add r8, r8, {offset}"]
        lines += ["cmp r8, #0", f"blt {abort}", f"add r9, r8, #{size}"]
        # the packet length is a u64; its high word is 0 (inputs are far below 4 GiB)
        lines += move_immediate("ip", layout.PACKET_LEN_ADDR) + ["ldr ip, [ip]", "cmp r9, ip", f"bhi {abort}"]
        lines += move_immediate("ip", layout.MEM_BASE)
        lines += {1: ["ldrb r0, [ip, r8]"], 2: ["ldrh r0, [ip, r8]", "rev16 r0, r0"],
                  4: ["ldr r0, [ip, r8]", "rev r0, r0"]}[size]
        return lines + ["mov r1, #0"]

    # --- jumps and calls -----------------------------------------------------------------

    def build_exit(self, insn: Insn, index: int) -> list[str]:
        return ["bx lr"]  # back to the entry (or the local call site); r0 is r0:r1

    def build_goto(self, insn: Insn, index: int, target: str) -> list[str]:
        return [f"b {target}"]

    def build_branch(self, insn: Insn, index: int, target: str) -> list[str]:
        """if dst cond src/imm: set the flags, then b<cond>. JMP decides on the high words
        first (then the low words if they are equal); JMP32 looks at the low words only."""
        op = insn.op
        if insn.klass == isa.JMP32:
            lines, dst = fetch_low(insn.dst, TMP1[0])
            if insn.source == isa.X:
                setup, src = fetch_low(insn.src, TMP2[0])
                lines += setup
                return lines + [f"{'tst' if op == isa.JSET else 'cmp'} {dst}, {src}", f"b{_COND[op]} {target}"]
            return lines + self.compare_immediate(op, dst, insn.imm, "") + [f"b{_COND[op]} {target}"]
        lines, (low, high) = fetch64(insn.dst, TMP1)
        if insn.source == isa.K and op not in _COND_SIGNED64:
            # the immediate's high word is 0 or all ones (sign extension)
            high_word = MASK32 if insn.imm < 0 else 0
            if op == isa.JSET:
                if not high_word:
                    return lines + self.compare_immediate(op, low, insn.imm, "") + [f"bne {target}"]
                setup, operand = immediate_operand(insn.imm, "r8")
                return lines + setup + [f"and ip, {low}, {operand}", f"orrs ip, ip, {high}", f"bne {target}"]
            return (lines + self.compare_immediate(op, high, high_word, "")
                    + self.compare_immediate(op, low, insn.imm, "eq") + [f"b{_COND[op]} {target}"])
        if insn.source == isa.X:
            setup, (src_low, src_high) = fetch64(insn.src, TMP2)
        else:
            setup, (src_low, src_high) = alu.immediate_pair(insn.imm, TMP2), TMP2
        lines += setup
        if op == isa.JSET:
            lines += [f"and ip, {low}, {src_low}", f"and r10, {high}, {src_high}", "orrs ip, ip, r10"]
        elif op in (isa.JSGT, isa.JSLE):  # src - dst, 64 bits: N^V says src < dst
            lines += [f"cmp {src_low}, {low}", f"sbcs ip, {src_high}, {high}"]
        elif op in (isa.JSLT, isa.JSGE):  # dst - src
            lines += [f"cmp {low}, {src_low}", f"sbcs ip, {high}, {src_high}"]
        else:  # the low words decide only when the high words are equal
            lines += [f"cmp {high}, {src_high}", f"cmpeq {low}, {src_low}"]
        return lines + [f"b{_COND_SIGNED64.get(op, _COND[op])} {target}"]

    @staticmethod
    def compare_immediate(op: int, register: str, value: int, condition: str) -> list[str]:
        """Flags for ``register`` against the 32-bit ``value``: cmp/tst #imm, cmn #-imm, or via r8."""
        value &= MASK32
        mnemonic = "tst" if op == isa.JSET else "cmp"
        setup, operand = immediate_operand(value, "r8")
        if setup and mnemonic == "cmp" and value != 0x8000_0000:
            negated = -value & MASK32  # cmn adds: the same C and Z, and V too unless value is INT_MIN
            if immediate_operand(negated, "r8")[0] == []:
                return [f"cmn{condition} {register}, #{negated:#x}"]
        return setup + [f"{mnemonic}{condition} {register}, {operand}"]

    def build_local_call(self, insn: Insn, index: int, target: str) -> list[str]:
        # local call: r6-r10 and lr saved on the native stack, the callee gets its own frame
        slot7, slot8, slot9, slot10 = (HOMES[n].slot for n in (7, 8, 9, 10))
        return [f"ldrd r6, r7, [fp, #{slot7}]", f"ldrd r8, r9, [fp, #{slot8}]", "push {r4, r5, r6, r7, r8, r9}",
                f"ldrd r6, r7, [fp, #{slot9}]", f"ldrd r8, r9, [fp, #{slot10}]", "push {r6, r7, r8, r9, ip, lr}",
                f"subs r8, r8, #{layout.FRAME_SIZE}", "sbc r9, r9, #0", f"strd r8, r9, [fp, #{slot10}]",
                f"bl {target}",
                "pop {r6, r7, r8, r9, ip, lr}", f"strd r6, r7, [fp, #{slot9}]", f"strd r8, r9, [fp, #{slot10}]",
                "pop {r4, r5, r6, r7, r8, r9}", f"strd r6, r7, [fp, #{slot7}]", f"strd r8, r9, [fp, #{slot8}]"]

    def build_helper_call(self, insn: Insn, index: int, address: int) -> list[str]:
        # AAPCS with five u64 arguments: r1 -> r0:r1, r2 -> r2:r3, r3-r5 pushed (r3 lowest)
        slot2, slot3, slot4, slot5 = (HOMES[n].slot for n in (2, 3, 4, 5))
        return (["push {ip, lr}", f"ldrd r6, r7, [fp, #{slot4}]", f"ldrd r8, r9, [fp, #{slot5}]",
                 "push {r6, r7, r8, r9}", f"ldrd r6, r7, [fp, #{slot3}]", "push {r6, r7}",
                 "mov r0, r2", "mov r1, r3", f"ldrd r2, r3, [fp, #{slot2}]"]
                + move_immediate("ip", address) + ["blx ip", "add sp, sp, #24", "pop {ip, lr}"])
