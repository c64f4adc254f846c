"""eBPF maps shared by the interpreter and every JIT target: array and hash maps.

A case declares its maps (``-- map counts hash key=4 value=8 entries=64``); a
program names one with ``lddw %r1, map:counts`` (the kernel's pseudo map source,
src=1, imm = the map's index). Before validation and JIT the loader rewrites that
instruction into a plain 64-bit load of the map's handle, as the kernel's loader
puts a ``struct bpf_map`` pointer there, so backends never see ``lddw map``.

Map *values* live in the shared memory layout (``layout.MAP_BASE``): a lookup
returns a pointer into that region, and the program reads and writes the value
through it on every target. The bookkeeping of which key owns which slot stays
here, in Python, and is used by the helpers 1-3 on every target alike. A
:class:`MapSet` outlives the runs of one case, so values persist between events.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness import isa, layout
from harness.cases.mapspec import ARRAY, MapError, MapSpec
from harness.isa import Program

U64 = (1 << 64) - 1
# errno values the kernel's map helpers return, negated as u64
ENOENT, E2BIG, EEXIST, EINVAL = 2, 7, 17, 22
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
HANDLE_STRIDE = 0x10  # handles sit in a small descriptor table at the start of the region
DESCRIPTOR_AREA = 0x1000


@dataclass
class _MapState:
    spec: MapSpec
    handle: int
    values_base: int  # address of slot 0
    keys: dict[bytes, int] = field(default_factory=dict)  # hash maps: key -> slot

    def slot_address(self, slot: int) -> int:
        return self.values_base + slot * self.spec.slot_size


class MapSet:
    """The maps of one case on one target; ``storage`` is the map region's bytes."""

    def __init__(self, specs: list[MapSpec], byte_order: str) -> None:
        self.byte_order = byte_order
        self.maps: list[_MapState] = []
        cursor = layout.MAP_BASE + DESCRIPTOR_AREA
        for index, spec in enumerate(specs):
            self.maps.append(_MapState(spec, layout.MAP_BASE + index * HANDLE_STRIDE, cursor))
            cursor += spec.slot_size * spec.max_entries
        self.used = cursor - layout.MAP_BASE
        if self.used > layout.MAP_SIZE:
            raise MapError(f"the maps need {self.used} bytes, more than the {layout.MAP_SIZE} "
                           "bytes of the map region")
        self.storage = bytearray(layout.MAP_SIZE)
        self._by_handle = {state.handle: state for state in self.maps}

    # --- the helpers ------------------------------------------------------------

    def lookup(self, memory, handle: int, key_pointer: int) -> int:
        """map_lookup_elem: the address of the key's value, or 0."""
        state = self._by_handle.get(handle)
        if state is None:
            return 0
        key = memory.read(key_pointer, state.spec.key_size)
        slot = self._slot(state, key)
        return 0 if slot is None else state.slot_address(slot)

    def update(self, memory, handle: int, key_pointer: int, value_pointer: int, flags: int) -> int:
        """map_update_elem: copy the value in; 0 or a negative errno (as u64)."""
        state = self._by_handle.get(handle)
        if state is None or flags & U64 > BPF_EXIST:
            return -EINVAL & U64
        spec = state.spec
        key = memory.read(key_pointer, spec.key_size)
        value = memory.read(value_pointer, spec.value_size)
        slot = self._slot(state, key)
        if spec.kind == ARRAY:
            if slot is None:
                return -E2BIG & U64
            if flags == BPF_NOEXIST:
                return -EEXIST & U64
        else:
            if slot is not None and flags == BPF_NOEXIST:
                return -EEXIST & U64
            if slot is None:
                if flags == BPF_EXIST:
                    return -ENOENT & U64
                free = sorted(set(range(spec.max_entries)) - set(state.keys.values()))
                if not free:
                    return -E2BIG & U64
                slot = free[0]
                state.keys[key] = slot
        memory.write(state.slot_address(slot), value)
        return 0

    def delete(self, memory, handle: int, key_pointer: int) -> int:
        """map_delete_elem: 0, or -ENOENT / -EINVAL (arrays cannot delete) as u64."""
        state = self._by_handle.get(handle)
        if state is None or state.spec.kind == ARRAY:
            return -EINVAL & U64
        key = memory.read(key_pointer, state.spec.key_size)
        slot = state.keys.pop(key, None)
        if slot is None:
            return -ENOENT & U64
        memory.write(state.slot_address(slot), bytes(state.spec.slot_size))
        return 0

    def _slot(self, state: _MapState, key: bytes) -> int | None:
        if state.spec.kind == ARRAY:
            index = int.from_bytes(key, self.byte_order)
            return index if index < state.spec.max_entries else None
        return state.keys.get(key)

    # --- loading and comparing -------------------------------------------------------

    def handle(self, index: int) -> int:
        return self.maps[index].handle

    def snapshot(self) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
        """Every map's contents as (name, ((key hex, value hex), ...)), in a stable order."""
        result = []
        for state in self.maps:
            spec = state.spec
            if spec.kind == ARRAY:
                slots = [(index.to_bytes(4, self.byte_order), index) for index in range(spec.max_entries)]
            else:
                slots = sorted(state.keys.items())
            entries = []
            for key, slot in slots:
                offset = state.slot_address(slot) - layout.MAP_BASE
                entries.append((key.hex(), bytes(self.storage[offset:offset + spec.value_size]).hex()))
            result.append((spec.name, tuple(entries)))
        return tuple(result)


def resolve_map_loads(program: Program, maps: MapSet | None) -> Program:
    """The program with every ``lddw map`` replaced by a plain lddw of the map's handle."""
    if not any(insn.opcode == isa.LDDW and insn.src == isa.LDDW_MAP_FD for insn in program.insns):
        return program
    insns = list(program.insns)
    for index in program.instruction_starts():
        insn = insns[index]
        if insn.opcode == isa.LDDW and insn.src == isa.LDDW_MAP_FD:
            if maps is None or not 0 <= insn.imm < len(maps.maps):
                raise MapError(f"instruction {index}: lddw refers to map {insn.imm}, which is not declared")
            insns[index], insns[index + 1] = isa.lddw_pair(insn.dst, maps.handle(insn.imm))
    return Program(tuple(insns))


def describe_snapshot(snapshot: tuple) -> str:
    """A short text form of a snapshot for reports."""
    parts = []
    for name, entries in snapshot:
        shown = ", ".join(f"{key}: {value}" for key, value in entries[:6])
        more = f", ... {len(entries) - 6} more" if len(entries) > 6 else ""
        parts.append(f"{name} {{{shown}{more}}}")
    return "; ".join(parts)


__all__ = ["MapError", "MapSet", "MapSpec", "resolve_map_loads", "describe_snapshot"]
