"""The shared checks every JIT backend must pass: one entry point, no per-arch copies.

Each check takes a backend instance; ``tests/test_backends.py`` runs every check on
every registered backend.
"""
from __future__ import annotations

from arches.base import Backend, NativeCode
from harness import isa, layout
from harness.running.coverage import opcode_coverage
from harness.isa import Insn, Program


def program_with_every_form(packet_loads: bool = True) -> Program:
    """A valid program holding one instruction of every form the interpreter implements.

    Jumps go to the next instruction, calls go to helper 100 or a trailing local
    function, so the program is also runnable (its result is not the point). Every
    register is written before it is read, and r1-r5 again after each call and packet
    load (they are scratch there), so the validator accepts it.
    """
    slots: list[Insn] = []
    redefine = [Insn(0xB7, register, 0, 0, register) for register in range(1, 6)]
    for (opcode, variant), info in sorted(isa.OPCODES.items()):
        klass, op = opcode & 0x07, opcode & 0xF0
        if opcode == isa.LDDW:
            if variant == isa.LDDW_PLAIN:
                slots.extend(isa.lddw_pair(3, 0x1122334455667788))
            continue
        if opcode == isa.JMP | isa.EXIT:
            continue
        if opcode == isa.JMP | isa.CALL:
            if variant == isa.CALL_HELPER:
                slots.append(Insn(opcode, 0, 0, 0, 100))
            else:
                slots.append(Insn(opcode, 0, isa.CALL_LOCAL, 0, -1))  # patched below
            slots.extend(redefine)
            continue
        if klass in (isa.ALU, isa.ALU64):
            off = variant if op in (isa.DIV, isa.MOD) or (op == isa.MOV and opcode & isa.X) else 0
            if op == isa.END:  # the source bit means "to big endian" here
                slots.append(Insn(opcode, 2, 0, 0, variant))
                continue
            imm = 0 if opcode & isa.X or op == isa.NEG else 3
            src = 4 if opcode & isa.X else 0
            slots.append(Insn(opcode, 2, src, off, imm))
        elif klass in (isa.JMP, isa.JMP32):
            if op == isa.JA:
                slots.append(Insn(opcode, 0, 0, 0, 0))
            else:
                slots.append(Insn(opcode, 2, 4 if opcode & isa.X else 0, 0,
                                  0 if opcode & isa.X else 7))
        elif klass == isa.LD:
            if not packet_loads:
                continue
            slots.append(Insn(opcode, 0, 4 if opcode & 0xE0 == isa.IND else 0, 0, 1))
            slots.extend(redefine)
        elif klass == isa.LDX:
            slots.append(Insn(opcode, 2, 10, -16, 0))
        elif klass == isa.ST:
            slots.append(Insn(opcode, 10, 0, -16, 5))
        else:  # STX and atomics
            slots.append(Insn(opcode, 10, 5, -16, variant if opcode & 0xE0 == isa.ATOMIC else 0))
    exit_ = Insn(isa.JMP | isa.EXIT)
    body = [Insn(0xB7, 0, 0, 0, 0), Insn(0xB7, 3, 0, 0, 0), Insn(0xB7, 4, 0, 0, 1), Insn(0xB7, 5, 0, 0, 2)]
    body += slots + [exit_]
    function_start = len(body)
    body += [Insn(0xB7, 0, 0, 0, 9), exit_]
    patched = []
    for index, insn in enumerate(body):
        if insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_LOCAL:
            insn = Insn(insn.opcode, 0, isa.CALL_LOCAL, 0, function_start - index - 1)
        patched.append(insn)
    return Program(tuple(patched))


def check_translates_every_form(backend: Backend) -> None:
    """No UnsupportedInstruction for any form of the ISA, and some code for each."""
    from harness.oracle.validator import validate

    program = program_with_every_form()
    validate(program)
    native = backend.compile(program)
    assert len(native.code) > 4 * len(program.instruction_starts()) // 2


def compiled_every_form(backend: Backend) -> tuple[Program, NativeCode]:
    """The every-form program and its code; a JIT that rejects packet loads (LD_ABS/LD_IND,
    as uBPF's loader does) is given the program without them."""
    from arches.base import RejectedProgram

    program = program_with_every_form()
    try:
        return program, backend.compile(program)
    except RejectedProgram:
        program = program_with_every_form(packet_loads=False)
        return program, backend.compile(program)


def check_capstone_decodes_everything(backend: Backend) -> None:
    """Capstone decodes the whole output: no stray bytes in the instruction stream."""
    native = compiled_every_form(backend)[1]
    listing = backend.disassemble(native.code, layout.CODE_BASE)
    undecodable = [line for line in listing if "not decodable" in line]
    assert not undecodable, f"{backend.name}: capstone cannot decode {undecodable[:3]}"


def check_reassembly_is_byte_identical(backend: Backend) -> None:
    """Capstone's decode of the output, encoded again, gives the same bytes: assembled by
    keystone for keystone backends, encoded by the backend's own table
    (``encode_disassembled``) for direct encoders that offer it."""
    native = backend.compile(program_with_every_form())
    engine = backend.disassembler()
    engine.detail = True
    decoded = list(engine.disasm(native.code, layout.CODE_BASE))
    assert decoded, "no instructions decoded"
    if backend.ks_arch is None:
        if backend.encode_disassembled(decoded[0]) is None:
            return  # a direct encoder without a re-encoding: the capstone check above is its cross-check
        encode = backend.encode_disassembled
    else:
        import keystone

        assembler = keystone.Ks(backend.ks_arch, backend.ks_mode)

        def encode(insn):
            text = backend.listing_for_keystone(insn.mnemonic, insn.op_str, insn.address)
            encoding, _ = assembler.asm(text, insn.address)
            return None if encoding is None else bytes(encoding)
    mismatches = []
    for insn in decoded:
        try:
            encoding = encode(insn)
        except Exception as error:  # keystone.KsError, or a direct encoder refusing the operands
            encoding, why = None, f"rejected: {error}"
        else:
            why = encoding.hex() if encoding else "rejected"
        if encoding is None or encoding != bytes(insn.bytes):
            mismatches.append(f"{insn.address:#x}: {insn.mnemonic} {insn.op_str} -> {why} "
                              f"(was {bytes(insn.bytes).hex()})")
    assert not mismatches, f"{backend.name}: {len(mismatches)} instruction(s) do not " \
                           f"round-trip, e.g. {mismatches[:3]}"


def check_corpus_forms_are_translated(backend: Backend, case_paths: list[str]) -> None:
    """Every instruction form the corpus uses has a translation on this backend, and the
    program of the shortest case using it has a sound bpf_to_native (the shortest: the
    far-branch cases hold 24,000 instructions)."""
    from arches.base import UnsupportedInstruction

    coverage = opcode_coverage(case_paths)
    for form in sorted(coverage.covered):
        opcode, variant = form
        using = [path for path, forms in coverage.by_case.items() if form in forms]
        assert using
        single = min(using, key=coverage.slots.__getitem__)
        from harness.running.conformance import load_checked

        runnable = load_checked(single).runnable  # as loaded: map loads already resolved
        if runnable is None:
            continue
        try:
            native = backend.compile(runnable)
        except UnsupportedInstruction as error:
            raise AssertionError(f"{backend.name}: {isa.OPCODES[form].mnemonic} used by "
                                 f"{single} is unsupported: {error}") from None
        assert_bpf_to_native_is_sound(backend, runnable, native, single)


def check_every_form_runs_like_the_interpreter(backend: Backend) -> None:
    """The every-form program ends in the same state (r0, memory, stack) as the oracle."""
    from harness.running.emulator import engine_for
    from harness.oracle.interpreter import interpret
    from harness.oracle.outcome import RETURNED, first_difference

    program, native = compiled_every_form(backend)
    memory = bytes(range(1, 33))
    expected = interpret(program, memory, backend.byte_order)
    assert expected.kind == RETURNED, expected.summary()
    actual = engine_for(backend).run(native, memory)
    difference = first_difference(expected, actual, base_mem=layout.MEM_BASE,
                                  base_stack=layout.STACK_BASE)
    assert difference is None, f"{backend.name}: {difference}"


def check_faults_name_target_access_address_and_instruction(backend: Backend) -> None:
    """A load from address 0x10, and an 8-byte store straddling the end of input memory,
    fault as the interpreter's do, and the detail names what, where and which native instruction."""
    from harness.cases.asm import assemble
    from harness.running.emulator import engine_for
    from harness.oracle.interpreter import interpret
    from harness.oracle.outcome import FAULT, first_difference

    for source, access, address in (
            ("mov %r0, 0\nmov %r3, 0\nldxw %r0, [%r3+16]\nexit", "read", 0x10),
            (f"mov %r0, 0\nlddw %r3, {layout.MEM_BASE + 0xFFFC:#x}\nstxdw [%r3], %r0\nexit", "write", None)):
        program = assemble(source)
        expected = interpret(program, b"", backend.byte_order)
        actual = engine_for(backend).run(backend.compile(program))
        assert actual.kind == FAULT and first_difference(expected, actual) is None, \
            f"{backend.name}: {expected.summary()} vs {actual.summary()}"
        assert actual.detail.startswith(f"{backend.name}: {access} of "), actual.detail
        assert address is None or f" at {address:#x} by `" in actual.detail, actual.detail
        assert "` at 0x" in actual.detail and actual.fault_access == access, actual.detail


def check_declares_its_c_abi(backend: Backend) -> None:
    """The callee-saved registers are declared with their source, apart from the return and
    stack registers, and the every-form program preserves them."""
    from harness.running.emulator import engine_for

    assert backend.callee_saved and backend.callee_saved_source, f"{backend.name}: no callee-saved registers"
    ids = list(backend.callee_saved.values())
    assert len(set(ids)) == len(ids), f"{backend.name}: a callee-saved register is listed twice"
    # (an argument register may be callee-saved: s390x's r6 is both)
    overlap = set(ids) & {backend.return_register, backend.stack_pointer}
    assert not overlap, f"{backend.name}: the return or stack register is declared callee-saved"
    outcome = engine_for(backend).run(compiled_every_form(backend)[1], bytes(range(1, 33)))
    assert not outcome.clobbered, f"{backend.name}: {outcome.detail}"


HELPER_CALLS = """
lddw %r1, 0x1111111111111101
lddw %r2, 0x2222222222222202
lddw %r3, 0x3333333333333303
lddw %r4, 0x4444444444444404
lddw %r5, 0x5555555555555505
mov %r6, 7
call 104
mov %r7, %r0
mov %r1, 16
call local first
add %r0, %r7
add %r0, %r6
exit
first:
mov %r6, %r1
call local second
add %r0, %r6
exit
second:
mov %r1, 2
mov %r2, 3
mov %r3, 5
mov %r4, 7
mov %r5, 11
call 100
mov %r6, %r0
mov %r1, 81
call 102
add %r0, %r6
exit
"""


def check_helper_calls_keep_the_abi(backend: Backend) -> None:
    """Helper calls from the main program and from two local frames down: each hands the helper
    exactly what the interpreter had in r1-r5 and breaks no rule of the native ABI at the call
    (stack alignment and region, callee-saved registers kept), survives the runner's clobbering
    of every caller-saved register, and (with bpf_to_native) maps back to its instruction."""
    from harness.cases.asm import assemble
    from harness.oracle.interpreter import interpret
    from harness.oracle.outcome import first_difference
    from harness.running.emulator import engine_for

    assert backend.caller_saved_registers, f"{backend.name}: no caller-saved registers declared"
    assert backend.call_stack_alignment and backend.call_stack_alignment_source, \
        f"{backend.name}: no stack alignment at calls declared"
    link = {backend.link_register} if backend.link_register is not None else set()
    assert not link & set(backend.caller_saved_registers), f"{backend.name}: the link register would be clobbered"
    program = assemble(HELPER_CALLS)
    expected = interpret(program, b"", backend.byte_order)
    native = backend.compile(program)
    actual = engine_for(backend).run(native)
    assert first_difference(expected, actual) is None, f"{backend.name}: {first_difference(expected, actual)}"
    assert [call.helper for call in actual.helper_calls] == [104, 100, 102]
    for want, got in zip(expected.helper_calls, actual.helper_calls):
        assert not got.problems and got.native_return is not None, f"{backend.name}: {got}"
        assert got.instruction in (None, want.instruction), f"{backend.name}: {got} for {want}"
        assert got.instruction is not None or not native.bpf_to_native, f"{backend.name}: {got} not mapped"


def assert_bpf_to_native_is_sound(backend: Backend, program: Program, native: NativeCode, name: str) -> None:
    """One entry per instruction start plus the end of the body, never decreasing, each
    on a native instruction boundary (capstone's decode), the body inside the code."""
    starts = program.instruction_starts()
    offsets = native.bpf_to_native
    assert sorted(offsets) == starts + [len(program.insns)], f"{backend.name}: {name}: map keys {sorted(offsets)[:8]}"
    values = [offsets[slot] for slot in sorted(offsets)]
    assert values == sorted(values), f"{backend.name}: {name}: offsets decrease: {values[:16]}"
    assert 0 < values[0] and values[-1] < len(native.code), f"{backend.name}: {name}: body outside the code"
    boundaries = {address for address, *_ in backend.disassembler().disasm_lite(native.code, 0)} | {len(native.code)}
    inside = [(slot, offsets[slot]) for slot in sorted(offsets) if offsets[slot] not in boundaries]
    assert not inside, f"{backend.name}: {name}: offsets inside native instructions: {inside[:5]}"


def program_with_short_and_long_branches() -> Program:
    """Jumps forward and backward over 1 and over 300 instructions (x86: rel8 and rel32 forms)."""
    from harness.cases.asm import assemble

    lines = ["mov %r0, 0", "jeq %r1, 0, near", "add %r0, 1", "near:", "jne %r1, 0, far", "top:"]
    lines += ["add %r0, 1"] * 300
    lines += ["far:", "add %r0, 2", "jlt %r0, 3, top", "jgt %r0, 1000, top", "exit"]
    return assemble("\n".join(lines))


def check_bpf_to_native_maps_every_instruction(backend: Backend) -> None:
    """NativeCode.bpf_to_native is filled and sound for every form and for short and long branches."""
    for name, program in (("every-form program", program_with_every_form()),
                          ("branches program", program_with_short_and_long_branches())):
        assert_bpf_to_native_is_sound(backend, program, backend.compile(program), name)


def check_rewrite_replaces_one_instruction(backend: Backend) -> None:
    """The rewrite hook acts on exactly one instruction, whose native range bpf_to_native gives.

    The hook sees every instruction once, in order; returning each chunk unchanged
    changes nothing. Dropping the chunk of slot i removes exactly the bytes
    [bpf_to_native[i], bpf_to_native[next]) and shifts later entries by their
    size (the program is short: no branch changes its encoding size). Replacing
    the chunk of an ``add`` with the one the backend builds for ``sub`` there
    gives the code of the program with that ``sub``, differs from the original
    only inside the add's range, and runs like the interpreter on the changed program.
    """
    from harness.cases.asm import assemble
    from harness.running.emulator import engine_for
    from harness.oracle.interpreter import interpret

    source = "mov %r0, 1\njeq %r0, 100, out\nadd %r0, 2\nlddw %r1, 0x1122334455667788\nadd %r0, 3\nadd %r0, 4\nout:\nexit"
    program = assemble(source)
    plain = backend.translate(program)
    starts = program.instruction_starts()
    ends = starts[1:] + [len(program.insns)]
    offsets = plain.bpf_to_native
    seen: list[tuple[int, Insn]] = []
    unchanged = backend.translate(program, lambda index, insn, chunk: seen.append((index, insn)) or chunk)
    assert seen == [(slot, program.insns[slot]) for slot in starts] and unchanged.code == plain.code
    for slot, end in zip(starts, ends):
        dropped = backend.translate(program, lambda index, insn, chunk: [] if index == slot else chunk)
        size = offsets[end] - offsets[slot]
        assert len(plain.code) - len(dropped.code) == size, \
            f"{backend.name}: slot {slot} maps to {size} bytes, its chunk was {len(plain.code) - len(dropped.code)}"
        assert dropped.bpf_to_native == {key: value - (size if key > slot else 0) for key, value in offsets.items()}
    for number, slot in enumerate(slot for slot in starts if program.insns[slot].op == isa.ADD):
        changed = assemble(source.replace(f"add %r0, {number + 2}", f"sub %r0, {number + 2}"))
        native = backend.translate(program, lambda index, insn, chunk: backend.build_insn(changed, index)
                                   if index == slot else chunk)
        assert native.code == backend.translate(changed).code
        low, high = offsets[slot], offsets[ends[starts.index(slot)]]
        assert native.code[:low] == plain.code[:low] and native.code[high:] == plain.code[high:], \
            f"{backend.name}: rewriting slot {slot} changed bytes outside [{low:#x}, {high:#x})"
        expected = interpret(changed, b"", backend.byte_order)
        assert engine_for(backend).run(native).r0 == expected.r0 != interpret(program, b"", backend.byte_order).r0


# The checks of the code at run time, which external JITs (arches/external/) pass too; the
# others check this project's translation itself (keystone round trip, bpf_to_native, rewrite).
RUNTIME_CHECKS = (check_capstone_decodes_everything, check_every_form_runs_like_the_interpreter,
                  check_faults_name_target_access_address_and_instruction, check_declares_its_c_abi,
                  check_helper_calls_keep_the_abi)
SHARED_CHECKS = (check_translates_every_form, check_capstone_decodes_everything,
                 check_reassembly_is_byte_identical, check_every_form_runs_like_the_interpreter,
                 check_bpf_to_native_maps_every_instruction, check_rewrite_replaces_one_instruction,
                 check_faults_name_target_access_address_and_instruction, check_declares_its_c_abi,
                 check_helper_calls_keep_the_abi)
