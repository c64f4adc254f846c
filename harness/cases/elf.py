"""Programs from ELF objects built by ``clang -target bpf -O2 -c`` (pyelftools).

A case names an object (``-- elf prog.o [SECTION]``, the section defaulting to
the first executable one). The loader checks that it is a 64-bit little-endian
eBPF object, takes the section's instructions, and applies its relocations the
way libbpf does for legacy maps: each ``R_BPF_64_64`` relocation points at an
``lddw`` whose symbol must be one of the case's declared maps (``-- map NAME``);
the lddw gets the map pseudo source (src=1) and the map's index. Anything else is
a clear :class:`ElfError`.
"""
from __future__ import annotations

import io
from pathlib import Path

from harness import isa
from harness.isa import Insn, Program

EM_BPF = 247
R_BPF_64_64 = 1  # lddw of a symbol's address (maps)
R_BPF_64_32 = 10  # call to a function (bpf-to-bpf call; already resolved by clang within a section)
MAX_OBJECT_BYTES = 64 << 20  # an object file larger than this is refused before it is read


class ElfError(ValueError):
    """An object that cannot be loaded; the message names the problem."""


def load_program(path: str | Path, section: str | None = None, map_names: list[str] | None = None) -> Program:
    """The program in ``section`` of the object at ``path`` with map relocations applied."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    try:
        with open(path, "rb") as file:
            data = file.read(MAX_OBJECT_BYTES + 1)
    except OSError as error:
        raise ElfError(f"cannot read {path}: {error.strerror}") from None
    if len(data) > MAX_OBJECT_BYTES:
        raise ElfError(f"{path} is larger than {MAX_OBJECT_BYTES} bytes")
    try:
        elf = ELFFile(io.BytesIO(data))
        if elf.elfclass != 64:
            raise ElfError(f"{path}: ELF class {elf.elfclass}, expected 64-bit")
        if not elf.little_endian:
            raise ElfError(f"{path}: big-endian object; eBPF objects here are little-endian")
        machine = elf["e_machine"]
        if machine not in ("EM_BPF", EM_BPF):
            raise ElfError(f"{path}: machine {machine}, expected EM_BPF (clang -target bpf)")
        if section is None:
            executable = [s for s in elf.iter_sections()
                          if s["sh_type"] == "SHT_PROGBITS" and s["sh_flags"] & 0x4 and s.data_size]
            if not executable:
                raise ElfError(f"{path}: no executable section")
            target = executable[0]
        else:
            target = elf.get_section_by_name(section)
            if target is None:
                names = ", ".join(s.name for s in elf.iter_sections() if s.name)
                raise ElfError(f"{path}: no section {section!r} (sections: {names})")
        code = target.data()
        if len(code) % 8 or not code:
            raise ElfError(f"{path}: section {target.name} is {len(code)} bytes, not whole instructions")
        insns = list(Program.decode(code).insns)
        index = elf.get_section_index(target.name)
        for relocations in elf.iter_sections():
            if not isinstance(relocations, RelocationSection) or relocations["sh_info"] != index:
                continue
            symbols = elf.get_section(relocations["sh_link"])
            for relocation in relocations.iter_relocations():
                _apply(path, relocation, symbols, insns, map_names or [])
    except ElfError:
        raise
    except ELFError as error:
        raise ElfError(f"{path}: malformed ELF: {error}") from None
    except Exception as error:  # pyelftools meets a damaged file with many kinds of exception
        raise ElfError(f"{path}: malformed ELF: {type(error).__name__}: {error}") from None
    return Program(tuple(insns))


def _apply(path: str | Path, relocation, symbols, insns: list[Insn], map_names: list[str]) -> None:
    offset, kind = relocation["r_offset"], relocation["r_info_type"]
    symbol = symbols.get_symbol(relocation["r_info_sym"])
    name = symbol.name if symbol is not None else "?"
    if offset % 8 or offset // 8 >= len(insns):
        raise ElfError(f"{path}: relocation at offset {offset} is not on an instruction")
    slot = offset // 8
    if kind == R_BPF_64_32:
        return  # a call within the section: clang already put the relative offset in imm
    if kind != R_BPF_64_64:
        raise ElfError(f"{path}: instruction {slot}: unsupported relocation type {kind} for {name}")
    insn = insns[slot]
    if insn.opcode != isa.LDDW or slot + 1 >= len(insns):
        raise ElfError(f"{path}: instruction {slot}: relocation for {name} is not on an lddw")
    if name not in map_names:
        declared = ", ".join(map_names) or "none"
        raise ElfError(f"{path}: instruction {slot}: relocation against {name!r}, which is not a declared "
                       f"map (declared: {declared})")
    insns[slot], insns[slot + 1] = isa.lddw_pair(insn.dst, map_names.index(name), isa.LDDW_MAP_FD)
