"""A protocol plugin that answers with one of this project's own backends: a worked example.

    python -m arches.external.example_plugin --backend x86_64 protocol=1 helpers=100 ... < program.hex

It reads the request exactly as an external JIT's plugin would (arches/external/protocol.py:
``key=value`` options, the program as hex on standard input), translates the program
with the named built-in backend, and prints the JSON answer. It keeps the protocol
tested where no C compiler exists (tests/test_external.py), and it is the shortest
complete plugin to copy.

Helpers: a built-in backend calls helper N at its stub address, which it embeds in
the code. This plugin finds each such address stored as one 8-byte value in the
backend's byte order (x86_64 emits ``movabs r11, ADDRESS; call r11``), zeroes it and
reports it as an ``abs64`` relocation, so the harness's linking is what makes the
call work. A backend that builds addresses piecewise (arm64's movz/movk) cannot be
relocated this way; the plugin then fails, naming the helper.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arches.base import Backend

PROTOCOL_VERSION = 1


def parse_request(arguments: list[str], text: str) -> tuple[dict[str, str], bytes]:
    """The ``key=value`` options (unknown ones kept, ignored) and the program bytes."""
    options = dict(argument.split("=", 1) for argument in arguments if "=" in argument)
    return options, bytes.fromhex("".join(text.split()))


def answer(backend: "str | Backend", options: dict[str, str], program_bytes: bytes, with_map: bool = True) -> dict:
    """The protocol answer for one program, from a built-in backend (its name) or a backend object
    (a test's variant of one), with its eBPF-to-native map unless ``with_map`` is false."""
    import arches
    from arches.base import UnsupportedInstruction
    from arches.driver import helper_address
    from harness.isa import Program

    if options.get("frame_size", "512") != "512":
        return {"rejected": f"this plugin's backends give every frame 512 bytes, not {options['frame_size']}"}
    if isinstance(backend, str):
        backend = arches.get(backend)
    backend_name = backend.name
    program = Program.decode(program_bytes)
    try:
        native = backend.translate(program)
    except UnsupportedInstruction as error:
        return {"rejected": str(error)}
    code = bytearray(native.code)
    relocations = []
    helpers = [int(item) for item in options.get("helpers", "").split(",") if item]
    for helper in helpers:
        needle = helper_address(helper).to_bytes(8, backend.byte_order)
        start = code.find(needle)
        if start < 0:
            raise SystemExit(f"example_plugin: the {backend_name} backend does not embed helper {helper}'s "
                             f"address as one 8-byte value; it cannot be relocated")
        while start >= 0:
            code[start:start + 8] = bytes(8)
            relocations.append({"offset": start, "type": "abs64", "helper": helper})
            start = code.find(needle, start + 8)
    result = {"protocol": PROTOCOL_VERSION, "code": code.hex(), "entry": native.entry, "relocations": relocations}
    if with_map and native.bpf_to_native:  # [slot, offset] per instruction start, then the end of the body
        result["bpf_to_native"] = sorted([slot, offset] for slot, offset in native.bpf_to_native.items())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", required=True, help="a built-in backend, e.g. x86_64")
    parser.add_argument("--without-map", action="store_true",
                        help="leave bpf_to_native out (as a plugin that cannot tell which code is whose)")
    known, rest = parser.parse_known_args(argv)
    options, program_bytes = parse_request(rest, sys.stdin.read())
    print(json.dumps(answer(known.backend, options, program_bytes, with_map=not known.without_map)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
