"""Where Unicorn differs from the real CPUs in ways that matter for JIT testing.

Each :class:`Deviation` is measured with unicorn 2.1.4 (tests/test_fidelity.py
pins every one, so an upgrade that changes a fact shows up) and is either
corrected by the runner, here or in the engine, or stated as a limit in the
README's table. A correction restores what the hardware does, so a JIT bug
that the real CPU would expose is not hidden by the emulator.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import capstone
import unicorn
from unicorn import x86_const

CORRECTED, LIMIT = "corrected", "limit"


@dataclass(frozen=True)
class Deviation:
    """One measured difference between Unicorn and the real CPU."""

    target: str
    emulator: str  # what Unicorn does
    hardware: str  # what the real CPU does
    handling: str  # CORRECTED or LIMIT
    how: str  # the correction, or what the limit means for a JIT under test


DEVIATIONS = (
    Deviation("x86_64", "a successful 32-bit `cmpxchg` writes EAX, zero-extending RAX",
              "RAX is left alone on success (only a failure loads EAX)", CORRECTED,
              "a hook after each 32-bit cmpxchg restores RAX when ZF is set, so a JIT that does not "
              "zero-extend r0 afterwards (the kernel's 'bpf: Explicitly zero-extend R0 after 32-bit "
              "cmpxchg') fails atomic/lock_cmpxchg32_success_ignores_r0_upper"),
    Deviation("s390x", "an access to unmapped memory raises a program interruption and never "
                       "calls the memory hook", "a program interruption with the address in the "
                                                "translation-exception identification", CORRECTED,
              "the runner decodes the faulting instruction's storage operand (base + index + "
              "displacement) to name the address, size and direction (harness/running/faults.py)"),
    Deviation("s390x", "starts in 24-bit addressing mode", "Linux runs programs in 64-bit mode",
              CORRECTED, "the engine sets the PSW's addressing-mode bits (S390xBackend.configure_engine)"),
    Deviation("s390x", "returning to the `until` address raises an exception", "(not a CPU matter)",
              CORRECTED, "a sentinel page of `bcr 0,0` and a code hook end every run"),
    Deviation("arm64", "the default CPU model traps on LSE atomics (ldadd, cas, swp)",
              "ARMv8.1 and later CPUs run them", LIMIT,
              "a backend emitting LSE atomics must set uc_cpu = UC_CPU_ARM64_MAX; this one uses LL/SC"),
    Deviation("arm64, ppc64, arm32", "a store-exclusive (stxr, stdcx., strex) never fails in "
                                     "single-threaded emulation", "may fail spuriously, and does under "
                                                                  "contention", LIMIT,
              "the retry path of a JIT's LL/SC loop never runs, so a bug in it is not found"),
    Deviation("arm32", "`ldrd`/`strd` at an address that is not word-aligned load and store",
              "an alignment fault (ARMv7-A: LDRD/STRD need word alignment even with SCTLR.A clear)",
              LIMIT, "a JIT that moves an eBPF doubleword with ldrd/strd passes with a misaligned pointer "
                     "but faults on the hardware; this backend uses two ldr/str for eBPF memory and "
                     "ldrd/strd only on its own 8-byte-aligned stack slots"),
    Deviation("ppc64", "`or N,N,N` priority hints (e.g. `or 1,1,1`) stop the emulation silently",
              "they are no-ops", LIMIT, "the backend never emits them; a JIT that does ends as `limit`"),
    Deviation("ppc64", "at a program interruption (an illegal instruction, a trap), the PC register "
                       "reads the next instruction's address", "SRR0 holds the interrupted instruction's",
              CORRECTED, "the runner names the instruction before that PC"),
    Deviation("ppc64", "the named POWER CPU models run only 32-bit code", "64-bit CPUs",
              CORRECTED, "the default model with the virtual TLB runs 64-bit code (configure_engine)"),
    Deviation("sparc64", "`save`/`restore` trap: register-window spill and fill are not emulated",
              "an OS handles the window traps", LIMIT,
              "JIT code must be window-free (this backend's frame model); a JIT using windows, as "
              "the kernel's does, cannot run"),
    Deviation("sparc64", "at a trap (a CPU exception), the PC register reads the next PC: the "
                         "instruction after the trapping one, or a branch's target for a trap in "
                         "its delay slot", "the trap PC is the trapping instruction's", CORRECTED,
              "the runner takes the instruction before that PC when it lies in the last block "
              "executed, else the last instruction of that block (the delay slot)"),
    Deviation("sparc64", "emu_start's instruction `count` misbehaves after delayed branches, and a "
                         "code hook on a `jmpl` target derails the PC", "(not a CPU matter)",
              CORRECTED, "the budget is counted by a block hook with a time bound; helper stubs use "
                         "a block hook"),
)


class Cmpxchg32Correction:
    """x86-64: restore RAX after a *successful* 32-bit cmpxchg, as the hardware leaves it.

    Hooks only the addresses of 32-bit cmpxchg instructions in the loaded code (and the
    instruction after each), so programs without one pay nothing.
    """

    def __init__(self) -> None:
        self.saved: int | None = None

    def reset(self) -> None:
        """Forget a cmpxchg the previous run faulted on."""
        self.saved = None

    def install(self, uc: Any, code: bytes, base: int) -> list[int]:
        if b"\x0f\xb1" not in code:  # the cmpxchg opcode: no 32-bit cmpxchg anywhere
            return []
        engine = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        handles = []
        for address, size, mnemonic, operands in engine.disasm_lite(code, base):
            if mnemonic.endswith("cmpxchg") and _is_32_bit(operands):
                handles.append(uc.hook_add(unicorn.UC_HOOK_CODE, self._before, begin=address, end=address))
                after = address + size
                handles.append(uc.hook_add(unicorn.UC_HOOK_CODE, self._after, begin=after, end=after))
        return handles

    def _before(self, uc: Any, address: int, size: int, _: Any) -> None:
        self.saved = uc.reg_read(x86_const.UC_X86_REG_RAX)

    def _after(self, uc: Any, address: int, size: int, _: Any) -> None:
        saved, self.saved = self.saved, None
        if saved is not None and uc.reg_read(x86_const.UC_X86_REG_EFLAGS) & 0x40:  # ZF: it succeeded
            uc.reg_write(x86_const.UC_X86_REG_RAX, saved)


def _is_32_bit(operands: str) -> bool:
    """Whether a cmpxchg's source register (its last operand) is a 32-bit register."""
    source = operands.rsplit(",", 1)[-1].strip()
    return source.startswith("e") or (source.startswith("r") and source.endswith("d"))


def trap_pc(backend: Any, pc: int, last_block: tuple[int, int] | None) -> int:
    """The trapping instruction's address, from the PC Unicorn shows in its interrupt hook.

    SPARC64 and PowerPC64 need this (measured: the hook reads the next PC there, as the table says);
    ``last_block`` is the block being executed, as the engine's block hook last saw it.
    """
    if backend.uc_arch == unicorn.UC_ARCH_PPC:
        return pc - 4  # no delay slots: always the instruction before
    if backend.uc_arch != unicorn.UC_ARCH_SPARC or last_block is None:
        return pc
    start, size = last_block
    if start <= pc - 4 < start + size:
        return pc - 4
    return start + size - 4  # a trap in the delay slot: the next PC was the branch's target


def corrections_for(backend: Any) -> list[Any]:
    """The corrections the runner installs for ``backend``'s emulator (fresh objects per engine)."""
    if backend.uc_arch == unicorn.UC_ARCH_X86 and backend.uc_mode == unicorn.UC_MODE_64:
        return [Cmpxchg32Correction()]
    return []
