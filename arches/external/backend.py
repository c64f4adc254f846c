"""An external JIT as a :class:`~arches.base.Backend`: native code comes from a command.

The runner sees the same small interface as for the built-in backends. The engine
settings (Unicorn, capstone), the registers the runner zeroes and the callee-saved
registers it checks are those of the built-in backend named by the description's
``arch``; the ABI hooks follow the description (entry arguments such as the eBPF
stack, registers that differ from the C ABI). ``translate`` asks the command for
code (arches/external/protocol.py), writes the harness's helper-stub addresses at
the relocations the answer names, and raises :class:`RejectedProgram` with the
JIT's own message when it refuses the program. What helper calls must carry besides
r1-r5 (``helper_carries``) and a dispatcher's id register come from the description;
the runner checks them at every call (harness/running/calls.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import unicorn

from arches.base import Backend, CarriedValue, NativeCode, RejectedProgram, Rewrite
from arches.driver import helper_address
from arches.external.description import TargetDescription
from arches.external.known import KnownFailure, matching
from arches.external.protocol import RELOCATION_SIZES, DataRange, ProtocolError, run_command
from harness import isa, layout
from harness.isa import Program

# The Backend attributes an external target takes from the built-in backend of its arch.
_INHERITED = ("byte_order", "uc_arch", "uc_mode", "uc_cpu", "cs_arch", "cs_mode", "argument_registers",
              "return_register", "stack_pointer", "program_counter", "general_registers", "callee_saved",
              "callee_saved_source", "helper_stub", "sentinel_fill", "supports_count", "instruction_width",
              "caller_saved_registers", "link_register", "pointer_size", "call_stack_alignment",
              "call_stack_alignment_source", "callee_stack_area")

# Unicorn's register constants per architecture: (module, prefix), for register names in descriptions.
_REGISTER_CONSTANTS = {
    unicorn.UC_ARCH_X86: ("x86_const", "UC_X86_REG_"), unicorn.UC_ARCH_ARM64: ("arm64_const", "UC_ARM64_REG_"),
    unicorn.UC_ARCH_ARM: ("arm_const", "UC_ARM_REG_"), unicorn.UC_ARCH_S390X: ("s390x_const", "UC_S390X_REG_"),
    unicorn.UC_ARCH_PPC: ("ppc_const", "UC_PPC_REG_"), unicorn.UC_ARCH_SPARC: ("sparc_const", "UC_SPARC_REG_"),
    unicorn.UC_ARCH_MIPS: ("mips_const", "UC_MIPS_REG_"), unicorn.UC_ARCH_RISCV: ("riscv_const", "UC_RISCV_REG_"),
}


def register_id(uc_arch: int, name: str) -> int:
    """Unicorn's id of the register ``name`` (e.g. ``x30``, ``rax``); ValueError if there is none."""
    import importlib

    module_name, prefix = _REGISTER_CONSTANTS[uc_arch]
    module = importlib.import_module(f"unicorn.{module_name}")
    value = getattr(module, prefix + name.upper().lstrip("%$"), None)
    if not isinstance(value, int):
        raise ValueError(f"no register {name!r} on this architecture")
    return value


def called_helpers(program: Program) -> list[int]:
    """The helper ids the program calls, in ascending order."""
    return sorted({program.insns[index].imm for index in program.instruction_starts()
                   if program.insns[index].opcode == isa.JMP | isa.CALL
                   and program.insns[index].src == isa.CALL_HELPER})


class ExternalBackend(Backend):
    """A target whose native code comes from an external JIT through the protocol."""

    def __init__(self, description: TargetDescription, base: Backend, command: list[str], version: str,
                 known_failures: list[KnownFailure]) -> None:
        super().__init__()
        self.description = description
        self.base = base
        self.name = description.name  # type: ignore[misc]
        self.version = version  # type: ignore[misc]
        self.command = command
        self.failures = known_failures
        for attribute in _INHERITED:
            setattr(self, attribute, getattr(base, attribute))
        arch = base.uc_arch
        if description.argument_registers is not None:
            self.argument_registers = tuple(register_id(arch, name) for name in description.argument_registers)
        if description.return_register is not None:
            self.return_register = register_id(arch, description.return_register)
        names = description.register_map or tuple(f"r{number}?" for number in range(11))
        self.register_map = dict(enumerate(names))  # type: ignore[misc]
        if len(self.argument_registers) < max(5, len(description.entry_arguments)):
            raise ValueError(f"{len(self.argument_registers)} argument registers cannot carry the entry "
                             f"arguments and helper arguments r1-r5")
        self._return_address = self._return_address_hook(description.return_address)
        self.helper_carries = tuple(  # type: ignore[misc]
            CarriedValue(value, register or f"[sp+{offset}]", register_id(arch, register) if register else None,
                         offset, constant)
            for value, register, offset, constant in description.helper_carries)
        if description.helper_id_register is not None:
            self.helper_id_register = register_id(arch, description.helper_id_register)  # type: ignore[misc]
        self._data: dict[bytes, tuple[DataRange, ...]] = {}  # code -> its data ranges (for listings)

    # --- compilation ----------------------------------------------------------------

    def translate(self, program: Program, rewrite: Rewrite | None = None) -> NativeCode:
        """Ask the command for code; link the helper relocations; RejectedProgram when refused."""
        if rewrite is not None:
            raise NotImplementedError(f"{self.name}: an external JIT's code cannot be rewritten per instruction "
                                      "(mutation testing needs a backend built on arches/driver.py)")
        helpers = called_helpers(program)
        options: dict[str, Any] = {"frame_size": layout.FRAME_SIZE, "helpers": helpers,
                                   "code_address": hex(layout.CODE_BASE), "max_code_size": layout.CODE_SIZE}
        dispatcher = self.helper_id_register is not None
        if dispatcher:
            options["dispatcher"] = 1
        answer = run_command(self.command, program.encode(), options, self.description.timeout)
        if answer.rejected is not None:
            raise RejectedProgram(answer.rejected)
        if len(answer.code) > layout.CODE_SIZE:
            raise ProtocolError(f"{self.name}: {len(answer.code)} bytes of code exceed the "
                                f"{layout.CODE_SIZE}-byte code region")
        code = bytearray(answer.code)
        for relocation in answer.relocations:
            if relocation.dispatcher and not dispatcher:
                continue  # this target calls helpers one by one (its description names no id register)
            if not relocation.dispatcher and relocation.helper not in helpers:
                raise ProtocolError(f"{self.name}: relocation at {relocation.offset} names helper "
                                    f"{relocation.helper}, which the program does not call")
            size = RELOCATION_SIZES[relocation.type]
            address = layout.DISPATCHER_STUB if relocation.dispatcher else helper_address(relocation.helper or 0)
            code[relocation.offset:relocation.offset + size] = address.to_bytes(size, self.byte_order)
        if dispatcher and helpers and not any(relocation.dispatcher for relocation in answer.relocations):
            raise ProtocolError(f"{self.name}: the description names a helper_id_register (a dispatcher), but the "
                                f"answer has no \"dispatcher\": true relocation")
        missing = sorted(set(helpers) - {relocation.helper for relocation in answer.relocations})
        if missing and not dispatcher:
            raise ProtocolError(f"{self.name}: the answer has no relocation for helper(s) "
                                f"{', '.join(map(str, missing))}, which the program calls")
        linked = bytes(code)
        self._data[linked] = answer.data
        helper_ids = {answer.helper_ids.get(helper, helper): helper for helper in helpers} if dispatcher else {}
        return NativeCode(linked, f"{self.name}: {len(linked)} bytes from {' '.join(self.command)}",
                          answer.entry, self._map(program, answer.bpf_to_native), answer.seconds, 0.0,
                          sum(data.size for data in answer.data), helper_ids)

    def _map(self, program: Program, pairs: tuple[tuple[int, int], ...]) -> dict[int, int]:
        """The plugin's eBPF-to-native map, when it gave one: it must name every instruction start
        and the end of the body (``NativeCode.bpf_to_native``), or it is a fault of the plugin."""
        if not pairs:
            return {}
        mapping = dict(pairs)
        wanted = set(program.instruction_starts()) | {len(program.insns)}
        if set(mapping) != wanted:
            odd = sorted(set(mapping) ^ wanted)[:5]
            raise ProtocolError(f"{self.name}: \"bpf_to_native\" must name every instruction start and the end "
                                f"({len(program.insns)}) exactly; it differs at slot(s) {', '.join(map(str, odd))}")
        return mapping

    def known_failure(self, case: str) -> str | None:
        failure = matching(self.failures, case)
        if failure is None:
            return None
        return failure.reason + (f" (recorded in {_shown(failure.source)})" if failure.source else "")

    # --- the ABI ----------------------------------------------------------------------

    def configure_engine(self, uc: Any) -> None:
        self.base.configure_engine(uc)

    def set_entry_arguments(self, uc: Any, memory: int, length: int) -> None:
        values = {"memory": memory, "length": length, "stack": layout.STACK_BASE,
                  "stack_size": layout.STACK_SIZE, "stack_top": layout.STACK_TOP, "cookie": 0}
        for register, argument in zip(self.argument_registers, self.description.entry_arguments):
            uc.reg_write(register, values[argument])  # the cookie comes with set_run_cookie

    def set_return_address(self, uc: Any, address: int) -> None:
        self._return_address(uc, address)

    def set_run_cookie(self, uc: Any, cookie: int) -> None:
        if "cookie" in self.description.entry_arguments:
            uc.reg_write(self.argument_registers[self.description.entry_arguments.index("cookie")], cookie)

    def helper_return_address(self, uc: Any) -> int:
        return self.base.helper_return_address(uc)

    def stack_pointer_at_call(self, uc: Any) -> int:
        return self.base.stack_pointer_at_call(uc)

    def _return_address_hook(self, how: str | None) -> Callable[[Any, int], None]:
        if how is None:
            return self.base.set_return_address
        if how == "push":
            def push(uc: Any, address: int) -> None:
                sp = uc.reg_read(self.stack_pointer) - 8
                uc.mem_write(sp, address.to_bytes(8, self.byte_order))
                uc.reg_write(self.stack_pointer, sp)
            return push
        register = register_id(self.uc_arch, how)
        return lambda uc, address: uc.reg_write(register, address)

    # --- listings ---------------------------------------------------------------------

    def disassemble(self, code: bytes, address: int = 0) -> list[str]:
        """Capstone for the instructions; the data ranges the answer named are shown as data."""
        ranges = self._data.get(code, ())
        lines, start = [], 0
        for data in ranges:
            if data.offset > start:
                lines += super().disassemble(code[start:data.offset], address + start)
            lines += describe_data(code[data.offset:data.offset + data.size], address + data.offset, data.name,
                                   self.byte_order)
            start = max(start, data.offset + data.size)
        if start < len(code):
            lines += super().disassemble(code[start:], address + start)
        return lines


def describe_data(data: bytes, address: int, name: str, byte_order: str) -> list[str]:
    """A data range in a listing: its size and name, then its non-zero 8-byte words."""
    lines = [f"{address:#08x}: .data {len(data)} bytes" + (f" ({name})" if name else "")]
    words = [(offset, int.from_bytes(data[offset:offset + 8], byte_order)) for offset in range(0, len(data), 8)]
    nonzero = [(offset, value) for offset, value in words if value]
    lines += [f"{address + offset:#08x}:   +{offset:#x}: {value:#x}" for offset, value in nonzero[:16]]
    if len(nonzero) > 16:
        lines.append(f"{'':10}  ... {len(nonzero) - 16} more non-zero words")
    if not nonzero:
        lines.append(f"{'':10}  (all zero)")
    return lines


def _shown(path: Path) -> str:
    """A path relative to the working directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
