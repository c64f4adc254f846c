"""RV64IMA (little-endian) JIT backend, encoding machine code directly.

Shape after the kernel's arch/riscv/net/bpf_jit_comp64.c: the register map at
the top, then ``build_prologue`` / ``build_epilogue`` and one builder per
instruction class for the translation driver (arches/driver.py), which lays the
code out with its labels and relaxes branches (arches/direct.py). keystone has
no RISC-V, so ``encoding.py`` encodes from a declarative table of formats.

Measured with unicorn 2.1.4 and capstone 5.0.6 (and how the backend deals with it):

* RV64IMA only. Zbb (``rev8``, ``zext.h``, ``sext.b``, ``andn``, ``clz``) and Zba
  (``add.uw``) raise an illegal-instruction exception on every RV64 CPU model
  Unicorn offers (ANY, BASE64, SIFIVE_U54), and capstone 5 cannot decode them;
  byte swaps are built from shifts and masks, zero-extension is ``slli``/``srli``.
* Division does not trap (the ISA's "Division Operations" table): ``divu``/``div``
  by zero give all ones, ``remu``/``rem`` by zero give the dividend, and signed
  INT_MIN / -1 gives INT_MIN with remainder 0. eBPF agrees except for division
  by zero (0): a register divisor's quotient is masked with ``src != 0``. The
  32-bit ``*w`` forms read the low 32 bits and sign-extend their result, so each
  32-bit result is zero-extended afterwards.
* Misaligned scalar loads and stores execute in Unicorn (real cores may trap to
  firmware that emulates them); misaligned AMOs and LR raise exception 4, as the
  A extension allows (with a load's cause number). The validator does not see
  runtime alignment, so a misaligned eBPF atomic faults here where the
  interpreter succeeds (the kernel's verifier rejects such programs; the corpus
  and the fuzzer's generator keep atomics aligned).
* At a CPU exception Unicorn's PC reads the next instruction; the runner names
  the one before (harness/running/fidelity.py). Nothing here is compressed.
* B-type branches reach +-4 KiB and JAL +-1 MiB: every branch and call to a label
  is relaxed by arches/direct.py (an inverted branch over ``jal``, then over
  ``auipc``+``jalr`` through t6, the escalation the kernel's JIT also uses).
* Unicorn's instruction ``count`` is reliable (budget cases end as ``limit``).

Conventions: eBPF r1-r5 arrive in a0-a4 (the psABI's argument registers), so a
helper call needs no shuffling; helpers return in a0 and the result moves to a5.
The entry saves ra and s1-s6 and keeps its stack pointer in s6, so an
out-of-packet LD_ABS unwinds from any call depth. Local calls save ra and s1-s5
on the native stack around a ``jal ra``.
"""
from __future__ import annotations

import capstone
import unicorn
from unicorn import riscv_const as ur

from arches.driver import EncodingBackend, local_label
from arches.riscv64.encoding import NUMBERS, RA, SP, ZERO, Chunk, decode_operands, encode
from harness import isa, layout
from harness.isa import Insn

# eBPF register -> RV64 register (the kernel's map, regmap[] in arch/riscv/net/bpf_jit_comp64.c).
REGISTER_MAP = {0: "a5", 1: "a0", 2: "a1", 3: "a2", 4: "a3", 5: "a4",
                6: "s1", 7: "s2", 8: "s3", 9: "s4", 10: "s5"}
REG = {bpf: NUMBERS[name] for bpf, name in REGISTER_MAP.items()}
R0, FP = REG[0], REG[10]
# Scratch registers no eBPF register uses (t6 belongs to branch relaxation); s6 keeps the entry sp.
TMP1, TMP2, TMP3, TMP4 = (NUMBERS[name] for name in ("t1", "t2", "t3", "t4"))
SAVED_SP = NUMBERS["s6"]
ENTRY_SAVED = (RA, REG[6], REG[7], REG[8], REG[9], FP, SAVED_SP)  # the entry frame: ra, s1-s6
CALL_SAVED = (RA, REG[6], REG[7], REG[8], REG[9], FP)  # around a local call: ra and eBPF r6-r10

_ALU_REGISTER = {isa.ADD: "add", isa.SUB: "sub", isa.MUL: "mul", isa.OR: "or", isa.AND: "and",
                 isa.XOR: "xor", isa.LSH: "sll", isa.RSH: "srl", isa.ARSH: "sra"}
_ALU_REGISTER32 = {isa.ADD: "addw", isa.SUB: "subw", isa.MUL: "mulw", isa.LSH: "sllw", isa.RSH: "srlw",
                   isa.ARSH: "sraw"}  # OR/AND/XOR: the 64-bit form, then zero-extension
_ALU_IMMEDIATE = {isa.ADD: "addi", isa.OR: "ori", isa.AND: "andi", isa.XOR: "xori"}
_SHIFT_IMMEDIATE = {isa.LSH: "slli", isa.RSH: "srli", isa.ARSH: "srai"}
_SHIFT_IMMEDIATE32 = {isa.LSH: "slliw", isa.RSH: "srliw", isa.ARSH: "sraiw"}
# (div, mod) by signedness and width
_DIVIDE = {(False, 64): ("divu", "remu"), (True, 64): ("div", "rem"),
           (False, 32): ("divuw", "remuw"), (True, 32): ("divw", "remw")}
# eBPF condition -> (B-type mnemonic, operands swapped): dst > src is src < dst
_BRANCH = {isa.JEQ: ("beq", False), isa.JNE: ("bne", False), isa.JGT: ("bltu", True),
           isa.JGE: ("bgeu", False), isa.JLT: ("bltu", False), isa.JLE: ("bgeu", True),
           isa.JSGT: ("blt", True), isa.JSGE: ("bge", False), isa.JSLT: ("blt", False),
           isa.JSLE: ("bge", True)}
_LOAD = {1: "lbu", 2: "lhu", 4: "lwu", 8: "ld"}
_LOAD_SIGNED = {1: "lb", 2: "lh", 4: "lw"}
_STORE = {1: "sb", 2: "sh", 4: "sw", 8: "sd"}
_AMO = {isa.ADD: "amoadd", isa.OR: "amoor", isa.AND: "amoand", isa.XOR: "amoxor", isa.ATOMIC_XCHG & ~isa.ATOMIC_FETCH: "amoswap"}


def fits12(value: int) -> bool:
    """Does ``value`` fit an I/S-type immediate (signed 12 bits)?"""
    return -2048 <= value < 2048


def load_immediate(asm: Chunk, rd: int, value: int) -> None:
    """rd = value (any 64-bit constant) in at most 8 instructions.

    32-bit values take ``lui`` + ``addiw`` (addiw wraps in 32 bits, so a low part
    that borrows from ``lui``'s sign still lands right). Wider ones load the value
    without its low 12 bits (shifted right past their trailing zeros) the same way,
    then ``slli`` and ``addi`` the low 12 bits back.
    """
    value &= (1 << 64) - 1
    signed = value - (1 << 64) if value >> 63 else value
    if fits12(signed):
        asm.emit("addi", rd=rd, rs1=ZERO, imm=signed)
        return
    if -(1 << 31) <= signed < (1 << 31):
        upper = (signed + 0x800) >> 12
        lower = signed - (upper << 12)
        asm.emit("lui", rd=rd, imm=((upper + 0x80000) & 0xFFFFF) - 0x80000)
        if lower:
            asm.emit("addiw", rd=rd, rs1=rd, imm=lower)
        return
    lower = ((signed & 0xFFF) ^ 0x800) - 0x800  # the low 12 bits, sign-extended as addi reads them
    upper = (signed - lower) >> 12
    shift = 12
    while not upper & 1:
        upper >>= 1
        shift += 1
    load_immediate(asm, rd, upper)
    asm.emit("slli", rd=rd, rs1=rd, imm=shift)
    if lower:
        asm.emit("addi", rd=rd, rs1=rd, imm=lower)


def zero_extend32(asm: Chunk, rd: int, rs: int | None = None) -> None:
    """rd = (u32) rs (rs defaults to rd): no Zba ``zext.w`` under Unicorn."""
    asm.emit("slli", rd=rd, rs1=rd if rs is None else rs, imm=32)
    asm.emit("srli", rd=rd, rs1=rd, imm=32)


class Riscv64Backend(EncodingBackend):
    name = "riscv64"
    byte_order = "little"
    uc_arch, uc_mode = unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV64
    cs_arch, cs_mode = capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV64  # no CS_MODE_RISCVC: nothing compressed
    ks_arch = ks_mode = None  # encoded directly (encoding.py)
    register_map = REGISTER_MAP
    argument_registers = tuple(getattr(ur, f"UC_RISCV_REG_A{n}") for n in range(5))
    return_register = ur.UC_RISCV_REG_A0  # helpers return in a0; the epilogue copies a5 there
    stack_pointer = ur.UC_RISCV_REG_SP
    program_counter = ur.UC_RISCV_REG_PC
    general_registers = tuple(getattr(ur, f"UC_RISCV_REG_X{n}") for n in range(1, 32))
    callee_saved = {**{f"s{n}": getattr(ur, f"UC_RISCV_REG_S{n}") for n in range(12)},
                    **{f"fs{n}": getattr(ur, f"UC_RISCV_REG_FS{n}") for n in range(12)}}
    callee_saved_source = ("RISC-V ELF psABI 1.0, \"Integer Register Convention\" and "
                           "\"Floating-point Register Convention\" (s0-s11, fs0-fs11; sp restored)")
    # psABI integer convention: t0-t6 and a0-a7 are caller-saved (ra holds the stub's return).
    caller_saved_registers = tuple(getattr(ur, f"UC_RISCV_REG_X{n}") for n in (5, 6, 7, *range(10, 18), *range(28, 32)))
    helper_stub = encode("jalr", rd=ZERO, rs1=RA, imm=0)  # ret
    sentinel_fill = encode("addi", rd=ZERO, rs1=ZERO, imm=0)  # nop
    instruction_width = 4

    def set_return_address(self, uc, address: int) -> None:
        uc.reg_write(ur.UC_RISCV_REG_RA, address)

    def encode_disassembled(self, insn) -> bytes:
        """Capstone's decode of one instruction, encoded again by this backend's table."""
        operands = []
        for operand in insn.operands:
            if operand.type == capstone.riscv.RISCV_OP_REG:
                operands.append(("reg", insn.reg_name(operand.reg)))
            elif operand.type == capstone.riscv.RISCV_OP_IMM:
                operands.append(("imm", operand.imm))
            else:
                operands.append(("mem", insn.reg_name(operand.mem.base), operand.mem.disp))
        mnemonic, values = decode_operands(insn.insn_name(), insn.mnemonic, operands)
        return encode(mnemonic, **values)

    # --- frame ----------------------------------------------------------------------

    def build_prologue(self, body: str) -> Chunk:
        # save ra and s1-s6, keep the entry sp in s6, r10 = top of the eBPF stack, call the body
        asm = Chunk()
        frame = 8 * (len(ENTRY_SAVED) + 1)  # 16-byte aligned, as the psABI keeps sp
        asm.emit("addi", rd=SP, rs1=SP, imm=-frame)
        for slot, register in enumerate(ENTRY_SAVED):
            asm.emit("sd", rs2=register, rs1=SP, imm=8 * slot)
        asm.emit("addi", rd=SAVED_SP, rs1=SP, imm=0)
        load_immediate(asm, FP, layout.STACK_TOP)
        asm.jump(body, link=RA)
        return asm

    def build_epilogue(self) -> Chunk:
        asm = Chunk()
        frame = 8 * (len(ENTRY_SAVED) + 1)
        asm.emit("addi", rd=SP, rs1=SAVED_SP, imm=0)
        asm.emit("addi", rd=NUMBERS["a0"], rs1=R0, imm=0)
        for slot, register in enumerate(ENTRY_SAVED):
            asm.emit("ld", rd=register, rs1=SP, imm=8 * slot)
        asm.emit("addi", rd=SP, rs1=SP, imm=frame)
        asm.emit("jalr", rd=ZERO, rs1=RA, imm=0)
        return asm

    def build_packet_abort(self, epilogue: str) -> Chunk:
        # LD_ABS/LD_IND out of the packet: the whole program returns 0 (the epilogue restores sp)
        asm = Chunk()
        asm.emit("addi", rd=R0, rs1=ZERO, imm=0)
        asm.jump(epilogue)
        return asm

    def build_lddw(self, insn: Insn, index: int, value: int) -> Chunk:
        # LDDW: dst = imm64
        asm = Chunk()
        load_immediate(asm, REG[insn.dst], value)
        return asm

    # --- ALU ------------------------------------------------------------------------

    def source(self, asm: Chunk, insn: Insn, width: int) -> int:
        """The source operand as a register: src, zero, or the immediate loaded into TMP1."""
        if insn.source == isa.X:
            return REG[insn.src]
        if insn.imm == 0:
            return ZERO
        load_immediate(asm, TMP1, insn.imm if width == 64 else insn.imm & 0xFFFFFFFF)
        return TMP1

    def build_alu(self, insn: Insn, index: int) -> Chunk | None:
        asm = Chunk()
        width = 64 if insn.klass == isa.ALU64 else 32
        dst, op = REG[insn.dst], insn.op
        if op == isa.END:
            self.build_swap(asm, insn, dst)
            return asm
        if op == isa.MOV:
            self.build_move(asm, insn, width, dst)
            return asm
        if op == isa.NEG:
            # dst = -dst
            asm.emit("sub" if width == 64 else "subw", rd=dst, rs1=ZERO, rs2=dst)
        elif op in (isa.DIV, isa.MOD):
            self.build_divide(asm, insn, width, dst)
            return asm
        elif insn.source == isa.K and op in _SHIFT_IMMEDIATE:
            # dst = dst shift imm (the count masked to the width, as the ISA says)
            table = _SHIFT_IMMEDIATE if width == 64 else _SHIFT_IMMEDIATE32
            asm.emit(table[op], rd=dst, rs1=dst, imm=insn.imm & (width - 1))
        elif insn.source == isa.K and op in _ALU_IMMEDIATE and fits12(insn.imm):
            # dst = dst op imm: the low 32 bits of a 64-bit addi/andi/ori/xori are the 32-bit result
            if op == isa.ADD and width == 32:
                asm.emit("addiw", rd=dst, rs1=dst, imm=insn.imm)
            else:
                asm.emit(_ALU_IMMEDIATE[op], rd=dst, rs1=dst, imm=insn.imm)
        elif insn.source == isa.K and op == isa.SUB and fits12(-insn.imm):
            asm.emit("addi" if width == 64 else "addiw", rd=dst, rs1=dst, imm=-insn.imm)
        elif op in _ALU_REGISTER:
            # dst = dst op src (register shifts mask the count: 6 bits, 5 for the *w forms)
            src = self.source(asm, insn, width)
            mnemonic = _ALU_REGISTER[op] if width == 64 else _ALU_REGISTER32.get(op, _ALU_REGISTER[op])
            asm.emit(mnemonic, rd=dst, rs1=dst, rs2=src)
        else:
            return None
        if width == 32:  # ALU32 results are zero-extended (the *w forms sign-extend)
            zero_extend32(asm, dst)
        return asm

    def build_move(self, asm: Chunk, insn: Insn, width: int, dst: int) -> None:
        if insn.off:
            # MOVSX: dst = (s8/s16/s32) src; a 32-bit result is zero-extended
            shift = 64 - insn.off
            asm.emit("slli", rd=dst, rs1=REG[insn.src], imm=shift)
            asm.emit("srai", rd=dst, rs1=dst, imm=shift)
            if width == 32:
                zero_extend32(asm, dst)
        elif insn.source == isa.K:
            # MOV: dst = imm (sign-extended for 64 bits, zero-extended for 32)
            load_immediate(asm, dst, insn.imm if width == 64 else insn.imm & 0xFFFFFFFF)
        elif width == 64:
            asm.emit("addi", rd=dst, rs1=REG[insn.src], imm=0)
        else:
            zero_extend32(asm, dst, REG[insn.src])

    def build_divide(self, asm: Chunk, insn: Insn, width: int, dst: int) -> None:
        """dst = dst / src or dst % src as eBPF defines them, from RISC-V's non-trapping division.

        Only division by zero differs (RISC-V: all ones; eBPF: 0), so a register
        divisor's quotient is ANDed with a mask that is 0 when the divisor's low
        ``width`` bits are zero. A zero immediate is decided here.
        """
        divide, remainder = _DIVIDE[(insn.off == 1, width)]
        is_mod = insn.op == isa.MOD
        if insn.source == isa.K and insn.imm == 0:
            if not is_mod:  # div by 0 -> 0
                asm.emit("addi", rd=dst, rs1=ZERO, imm=0)
            elif width == 32:  # mod by 0 -> dst (its low half, zero-extended)
                zero_extend32(asm, dst)
            return
        src = self.source(asm, insn, width)
        if is_mod:
            asm.emit(remainder, rd=dst, rs1=dst, rs2=src)
        elif insn.source == isa.K:
            asm.emit(divide, rd=dst, rs1=dst, rs2=src)
        else:
            # TMP2 = src != 0 ? -1 : 0, computed before dst (which may be src) is written
            if width == 32:
                asm.emit("addiw", rd=TMP2, rs1=src, imm=0)
                asm.emit("sltu", rd=TMP2, rs1=ZERO, rs2=TMP2)
            else:
                asm.emit("sltu", rd=TMP2, rs1=ZERO, rs2=src)
            asm.emit("sub", rd=TMP2, rs1=ZERO, rs2=TMP2)
            asm.emit(divide, rd=dst, rs1=dst, rs2=src)
            asm.emit("and", rd=dst, rs1=dst, rs2=TMP2)
        if width == 32:
            zero_extend32(asm, dst)

    def build_swap(self, asm: Chunk, insn: Insn, dst: int) -> None:
        """le is a zero-extension on this little-endian host; be and bswap reverse the low bytes.

        Without Zbb's ``rev8`` the reversal is built in TMP1 a byte at a time,
        lowest byte first (it ends up highest), and needs no zero-extension after.
        """
        width = insn.imm
        if insn.klass == isa.ALU and insn.source == isa.TO_LE:
            if width < 64:
                asm.emit("slli", rd=dst, rs1=dst, imm=64 - width)
                asm.emit("srli", rd=dst, rs1=dst, imm=64 - width)
            return
        asm.emit("andi", rd=TMP1, rs1=dst, imm=0xFF)
        for byte in range(1, width // 8):
            asm.emit("slli", rd=TMP1, rs1=TMP1, imm=8)
            asm.emit("srli", rd=TMP2, rs1=dst, imm=8 * byte)
            asm.emit("andi", rd=TMP2, rs1=TMP2, imm=0xFF)
            asm.emit("or", rd=TMP1, rs1=TMP1, rs2=TMP2)
        asm.emit("addi", rd=dst, rs1=TMP1, imm=0)

    # --- memory ---------------------------------------------------------------------

    def address(self, asm: Chunk, base: int, offset: int) -> tuple[int, int]:
        """(register, 12-bit displacement) that address base + offset."""
        if fits12(offset):
            return base, offset
        load_immediate(asm, TMP1, offset)
        asm.emit("add", rd=TMP1, rs1=TMP1, rs2=base)
        return TMP1, 0

    def build_load(self, insn: Insn, index: int) -> Chunk:
        # LDX: dst = *(size *)(src + off); MEMSX sign-extends (misaligned is fine under Unicorn)
        asm = Chunk()
        base, offset = self.address(asm, REG[insn.src], insn.off)
        table = _LOAD_SIGNED if insn.mode == isa.MEMSX else _LOAD
        asm.emit(table[insn.nbytes], rd=REG[insn.dst], rs1=base, imm=offset)
        return asm

    def build_store(self, insn: Insn, index: int) -> Chunk:
        # ST: *(size *)(dst + off) = imm (stdw sign-extends); STX: = src
        asm = Chunk()
        if insn.klass == isa.ST:
            value = ZERO if insn.imm == 0 else TMP2
            if insn.imm:
                load_immediate(asm, TMP2, insn.imm)
        else:
            value = REG[insn.src]
        base, offset = self.address(asm, REG[insn.dst], insn.off)
        asm.emit(_STORE[insn.nbytes], rs2=value, rs1=base, imm=offset)
        return asm

    def build_atomic(self, insn: Insn, index: int) -> Chunk:
        """AMOs for add/or/and/xor/xchg, an LR/SC loop for cmpxchg.

        The fetch forms are sequentially consistent (``.aqrl``), as the kernel's
        JIT makes them. The ``.w`` forms sign-extend the old value they return,
        so a 32-bit fetch result is zero-extended.
        """
        asm = Chunk()
        suffix = "d" if insn.nbytes == 8 else "w"
        src = REG[insn.src]
        base, offset = self.address(asm, REG[insn.dst], insn.off)
        if offset:
            asm.emit("addi", rd=TMP1, rs1=base, imm=offset)
            base = TMP1
        if insn.imm == isa.ATOMIC_CMPXCHG:
            # r0 = old; if old == r0 then *ptr = src (a 32-bit compare sees sign-extended words on both sides)
            retry, done = local_label(index, "retry"), local_label(index, "done")
            expected = R0
            if suffix == "w":
                asm.emit("addiw", rd=TMP3, rs1=R0, imm=0)
                expected = TMP3
            asm.label(retry)
            asm.emit(f"lr.{suffix}", rd=TMP2, rs1=base, aq=1, rl=1)
            asm.branch("bne", TMP2, expected, done)
            asm.emit(f"sc.{suffix}", rd=TMP4, rs2=src, rs1=base, rl=1)
            asm.branch("bne", TMP4, ZERO, retry)
            asm.label(done)
            if suffix == "w":
                zero_extend32(asm, R0, TMP2)
            else:
                asm.emit("addi", rd=R0, rs1=TMP2, imm=0)
            return asm
        fetch = bool(insn.imm & isa.ATOMIC_FETCH)
        # *ptr op= src; the fetch forms put the old value in src
        asm.emit(f"{_AMO[insn.imm & ~isa.ATOMIC_FETCH]}.{suffix}", rd=src if fetch else ZERO,
                 rs2=src, rs1=base, aq=int(fetch), rl=int(fetch))
        if fetch and suffix == "w":
            zero_extend32(asm, src)
        return asm

    def build_packet_load(self, insn: Insn, index: int, abort: str) -> Chunk:
        """LD_ABS/LD_IND: r0 = ntoh(*(size *)(packet + (s32)(imm [+ src]))), else abort with 0.

        The value is read a byte at a time, most significant first: network order
        on this little-endian host, at any alignment.
        """
        asm = Chunk()
        size = insn.nbytes
        load_immediate(asm, TMP1, insn.imm)
        if insn.mode == isa.IND:
            asm.emit("addw", rd=TMP1, rs1=TMP1, rs2=REG[insn.src])  # (s32) (imm + src)
        asm.branch("blt", TMP1, ZERO, abort)
        asm.emit("addi", rd=TMP2, rs1=TMP1, imm=size)
        load_immediate(asm, TMP3, layout.PACKET_LEN_ADDR)
        asm.emit("ld", rd=TMP3, rs1=TMP3, imm=0)
        asm.branch("bltu", TMP3, TMP2, abort)  # length < offset + size
        load_immediate(asm, TMP3, layout.MEM_BASE)
        asm.emit("add", rd=TMP3, rs1=TMP3, rs2=TMP1)
        asm.emit("lbu", rd=R0, rs1=TMP3, imm=0)
        for byte in range(1, size):
            asm.emit("slli", rd=R0, rs1=R0, imm=8)
            asm.emit("lbu", rd=TMP2, rs1=TMP3, imm=byte)
            asm.emit("or", rd=R0, rs1=R0, rs2=TMP2)
        return asm

    # --- jumps and calls --------------------------------------------------------------

    def build_exit(self, insn: Insn, index: int) -> Chunk:
        asm = Chunk()
        asm.emit("jalr", rd=ZERO, rs1=RA, imm=0)  # ret: to the epilogue or the local call site
        return asm

    def build_goto(self, insn: Insn, index: int, target: str) -> Chunk:
        asm = Chunk()
        asm.jump(target)
        return asm

    def build_branch(self, insn: Insn, index: int, target: str) -> Chunk:
        """if dst cond src goto target: one B-type compare-and-branch (relaxed when far).

        JMP32 compares sign-extended low words: sign extension keeps both the
        signed and the unsigned order of 32-bit values, so one extension serves
        every condition.
        """
        asm = Chunk()
        width = 64 if insn.klass == isa.JMP else 32
        dst = REG[insn.dst]
        if insn.source == isa.X:
            src = REG[insn.src]
        elif insn.imm == 0:
            src = ZERO
        else:
            load_immediate(asm, TMP1, insn.imm)  # sign-extended: already the 32-bit form's extension
            src = TMP1
        if insn.op == isa.JSET:
            asm.emit("and", rd=TMP2, rs1=dst, rs2=src)
            if width == 32:
                asm.emit("addiw", rd=TMP2, rs1=TMP2, imm=0)
            asm.branch("bne", TMP2, ZERO, target)
            return asm
        if width == 32:
            asm.emit("addiw", rd=TMP2, rs1=dst, imm=0)
            dst = TMP2
            if insn.source == isa.X:
                asm.emit("addiw", rd=TMP1, rs1=src, imm=0)
                src = TMP1
        mnemonic, swapped = _BRANCH[insn.op]
        asm.branch(mnemonic, src if swapped else dst, dst if swapped else src, target)
        return asm

    def build_local_call(self, insn: Insn, index: int, target: str) -> Chunk:
        # local call: save ra and r6-r10, give the callee its own frame
        asm = Chunk()
        frame = 8 * len(CALL_SAVED)
        asm.emit("addi", rd=SP, rs1=SP, imm=-frame)
        for slot, register in enumerate(CALL_SAVED):
            asm.emit("sd", rs2=register, rs1=SP, imm=8 * slot)
        asm.emit("addi", rd=FP, rs1=FP, imm=-layout.FRAME_SIZE)
        asm.jump(target, link=RA)
        for slot, register in enumerate(CALL_SAVED):
            asm.emit("ld", rd=register, rs1=SP, imm=8 * slot)
        asm.emit("addi", rd=SP, rs1=SP, imm=frame)
        return asm

    def build_helper_call(self, insn: Insn, index: int, address: int) -> Chunk:
        # r1-r5 are already a0-a4; the result comes back in a0
        asm = Chunk()
        asm.emit("addi", rd=SP, rs1=SP, imm=-16)
        asm.emit("sd", rs2=RA, rs1=SP, imm=0)
        load_immediate(asm, TMP1, address)
        asm.emit("jalr", rd=RA, rs1=TMP1, imm=0)
        asm.emit("ld", rd=RA, rs1=SP, imm=0)
        asm.emit("addi", rd=SP, rs1=SP, imm=16)
        asm.emit("addi", rd=R0, rs1=NUMBERS["a0"], imm=0)
        return asm
