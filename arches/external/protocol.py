"""The external-JIT protocol: the harness runs a command, the command answers in JSON.

Language-neutral on purpose, in the spirit of bpf_conformance's plugins (a runtime
under test is a process that reads the program and prints a result): any JIT whose
author can write a small program in any language can be a target.

Request. The harness runs the target's command with ``key=value`` options appended
and the program on standard input, as hex (two digits per byte, whitespace allowed
between bytes; the harness writes one 8-byte instruction slot per line)::

    COMMAND... protocol=1 frame_size=512 helpers=1,100 code_address=0x1000000 max_code_size=134217728

``frame_size``: bytes each function's frame takes (a local call moves r10 down by
this much); ``helpers``: the helper ids the program calls (the harness provides
each; the JIT numbers them as it likes); ``code_address``: where the code will be
loaded; ``max_code_size``: the most code the harness can load (a JIT sizes its
buffer from the program, up to this); ``dispatcher=1``, only for a target whose
description names a ``helper_id_register``: link every helper call through one
dispatcher entry. A plugin ignores options it does not know (later protocol
versions add, never change).

Answer. One JSON object on standard output, exit status 0::

    {"code": "554889e5...", "entry": 0,
     "relocations": [{"offset": 712, "type": "abs64", "helper": 100}],
     "data": [{"offset": 200, "size": 512, "name": "helper table"}]}

``code``: the machine code as hex; ``entry``: the offset of the function the
harness calls (default 0); ``relocations``: where the harness writes the address of
its stub for a helper, ``abs64`` (8 bytes) or ``abs32`` (4 bytes) in the target's
byte order, or, with ``"dispatcher": true`` instead of ``"helper"``, the address of
its dispatcher stub (which reads the helper's id from the description's
``helper_id_register``); ``helper_ids`` (optional, for a dispatcher): the id the
code passes for each helper, ``{"100": 63}`` (default: the helper's own number);
``data`` (optional): byte ranges that are data, not instructions (shown as data in
listings); ``bpf_to_native`` (optional): ``[[slot, offset], ...]``, the
offset in ``code`` of the first native instruction of each eBPF instruction (by the
slot it starts at; an lddw's second slot has none), plus ``[number of slots, end of
the body]``, so a failure can show each eBPF instruction with the native code it
became (``NativeCode.bpf_to_native``; without it the two listings are shown side by
side). Or, when the JIT refuses the program::

    {"rejected": "call to nonexistent function 7 at PC 0"}

which the harness reports as a skip with that message. A command killed by a signal
(a failed assertion, a segmentation fault) is the JIT crashing on a valid program: the
item fails, naming the signal and quoting its standard error. Anything else (a
non-zero exit status, no JSON, a field of the wrong type) is an error of the plugin,
reported as an error that names the command and quotes its standard error.
"""
from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from arches.base import BackendFailure, JitCrashed

PROTOCOL_VERSION = 1
RELOCATION_SIZES = {"abs64": 8, "abs32": 4}  # relocation type -> bytes written
DEFAULT_TIMEOUT_SECONDS = 60.0


class ProtocolError(BackendFailure):
    """A plugin that failed or broke the protocol; the message names the command and the fault."""


@dataclass(frozen=True)
class Relocation:
    """Write the absolute address of helper ``helper``'s stub at ``offset`` (``type`` sets the width),
    or, for ``dispatcher``, the address of the harness's dispatcher stub."""

    offset: int
    type: str
    helper: int | None
    dispatcher: bool = False


@dataclass(frozen=True)
class DataRange:
    """Bytes of the answer's code that are data (a helper table, a literal pool), not instructions."""

    offset: int
    size: int
    name: str = ""


@dataclass(frozen=True)
class Answer:
    """A plugin's answer: code and how to link it, or the JIT's rejection message."""

    code: bytes = b""
    entry: int = 0
    relocations: tuple[Relocation, ...] = ()
    data: tuple[DataRange, ...] = ()
    rejected: str | None = None
    seconds: float = 0.0  # how long the command took
    helper_ids: dict[int, int] = field(default_factory=dict)  # helper -> the id a dispatcher call passes
    extra: dict[str, Any] = field(default_factory=dict)  # fields this version does not know
    bpf_to_native: tuple[tuple[int, int], ...] = ()  # (eBPF slot, code offset), ascending


def request_options(options: dict[str, Any]) -> list[str]:
    """``key=value`` arguments, the protocol version first; lists become comma lists."""
    items = {"protocol": PROTOCOL_VERSION, **options}
    arguments = []
    for key, value in items.items():
        if isinstance(value, (list, tuple)):
            value = ",".join(str(item) for item in value)
        arguments.append(f"{key}={value}")
    return arguments


def program_text(program_bytes: bytes) -> str:
    """The program as the request's standard input: one 8-byte slot per line, in hex."""
    return "".join(program_bytes[index:index + 8].hex(" ") + "\n" for index in range(0, len(program_bytes), 8))


def run_command(command: list[str], program_bytes: bytes, options: dict[str, Any],
                timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Answer:
    """Run a plugin once and parse its answer (raises ProtocolError when it fails)."""
    argv = [*command, *request_options(options)]
    shown = " ".join(argv)
    started = time.perf_counter()
    try:
        finished = subprocess.run(argv, input=program_text(program_bytes), capture_output=True, text=True,
                                  timeout=timeout)
    except FileNotFoundError:
        raise ProtocolError(f"{shown}: no such program: {command[0]}") from None
    except PermissionError:
        raise ProtocolError(f"{shown}: not executable: {command[0]}") from None
    except subprocess.TimeoutExpired:
        raise ProtocolError(f"{shown}: gave no answer within {timeout:g} s") from None
    seconds = time.perf_counter() - started
    if finished.returncode < 0:  # killed by a signal: the JIT crashed on this program
        raise JitCrashed(f"{shown}: killed by {_signal_name(-finished.returncode)}"
                         f"{_stderr_tail(finished.stderr)}")
    if finished.returncode != 0:
        raise ProtocolError(f"{shown}: exited with status {finished.returncode}{_stderr_tail(finished.stderr)}")
    answer = parse_answer(finished.stdout, shown)
    return Answer(answer.code, answer.entry, answer.relocations, answer.data, answer.rejected, seconds,
                  answer.helper_ids, answer.extra, answer.bpf_to_native)


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return f"signal {number}"


def _stderr_tail(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return f"; its standard error ends: {' | '.join(lines[-3:])}" if lines else " (nothing on standard error)"


def _integer(document: dict[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = document.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(f"{where}: \"{key}\" must be a non-negative integer, got {value!r}")
    return value


def parse_answer(text: str, where: str) -> Answer:
    """The answer in ``text``, checked field by field; ``where`` names the command in errors."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        first = text.strip().splitlines()[0][:120] if text.strip() else "(nothing)"
        raise ProtocolError(f"{where}: the answer is not JSON (line {error.lineno}: {error.msg}); "
                            f"it starts: {first}") from None
    if not isinstance(document, dict):
        raise ProtocolError(f"{where}: the answer must be a JSON object, got {type(document).__name__}")
    version = document.get("protocol", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"{where}: speaks protocol {version!r}; this harness speaks {PROTOCOL_VERSION}")
    if "rejected" in document:
        message = document["rejected"]
        if not isinstance(message, str):
            raise ProtocolError(f"{where}: \"rejected\" must be the JIT's message as a string")
        return Answer(rejected=message.strip() or "(the JIT gave no reason)")
    code_hex = document.get("code")
    if not isinstance(code_hex, str):
        raise ProtocolError(f"{where}: the answer has neither \"code\" (hex) nor \"rejected\"")
    try:
        code = bytes.fromhex(code_hex)
    except ValueError:
        raise ProtocolError(f"{where}: \"code\" is not hex") from None
    if not code:
        raise ProtocolError(f"{where}: \"code\" is empty")
    entry = _integer(document, "entry", where, 0)
    if entry >= len(code):
        raise ProtocolError(f"{where}: \"entry\" {entry} lies outside the {len(code)} bytes of code")
    relocations = []
    for index, item in enumerate(_list(document, "relocations", where)):
        place = f"{where}: relocation {index}"
        kind = item.get("type")
        if kind not in RELOCATION_SIZES:
            raise ProtocolError(f"{place}: \"type\" must be one of {', '.join(RELOCATION_SIZES)}, got {kind!r}")
        offset = _integer(item, "offset", place)
        if offset + RELOCATION_SIZES[kind] > len(code):
            raise ProtocolError(f"{place}: {kind} at offset {offset} runs past the {len(code)} bytes of code")
        if item.get("dispatcher") is True:
            relocations.append(Relocation(offset, kind, None, True))
        else:
            relocations.append(Relocation(offset, kind, _integer(item, "helper", place)))
    data = []
    for index, item in enumerate(_list(document, "data", where)):
        place = f"{where}: data range {index}"
        offset, size = _integer(item, "offset", place), _integer(item, "size", place)
        if offset + size > len(code):
            raise ProtocolError(f"{place}: {size} bytes at {offset} run past the {len(code)} bytes of code")
        data.append(DataRange(offset, size, str(item.get("name", ""))))
    ids = document.get("helper_ids", {})
    if not isinstance(ids, dict) or not all(key.isdigit() and isinstance(value, int) and not isinstance(value, bool)
                                            and value >= 0 for key, value in ids.items()):
        raise ProtocolError(f"{where}: \"helper_ids\" must map helper numbers to ids, e.g. {{\"100\": 63}}")
    mapping = _slot_offsets(document, where, len(code))
    known = {"protocol", "code", "entry", "relocations", "data", "helper_ids", "bpf_to_native"}
    extra = {key: value for key, value in document.items() if key not in known}
    return Answer(code, entry, tuple(relocations), tuple(sorted(data, key=lambda r: r.offset)), None, 0.0,
                  {int(key): value for key, value in ids.items()}, extra, mapping)


def _slot_offsets(document: dict[str, Any], where: str, size: int) -> tuple[tuple[int, int], ...]:
    """The answer's ``bpf_to_native``: [slot, offset] pairs, both ascending, offsets inside the code."""
    value = document.get("bpf_to_native", [])
    place = f"{where}: \"bpf_to_native\""
    if not isinstance(value, list) or not all(isinstance(pair, list) and len(pair) == 2 for pair in value):
        raise ProtocolError(f"{place} must be a list of [slot, offset] pairs")
    pairs: list[tuple[int, int]] = []
    for index, (slot, offset) in enumerate(value):
        if not all(isinstance(number, int) and not isinstance(number, bool) and number >= 0
                   for number in (slot, offset)):
            raise ProtocolError(f"{place}: pair {index} must be two non-negative integers, got {[slot, offset]!r}")
        if offset > size:
            raise ProtocolError(f"{place}: pair {index}: offset {offset} lies past the {size} bytes of code")
        if pairs and (slot <= pairs[-1][0] or offset < pairs[-1][1]):
            raise ProtocolError(f"{place}: pair {index} ({slot}, {offset}) does not follow ({pairs[-1][0]}, "
                                f"{pairs[-1][1]}): slots must ascend and offsets never decrease")
        pairs.append((slot, offset))
    return tuple(pairs)


def _list(document: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = document.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ProtocolError(f"{where}: \"{key}\" must be a list of objects")
    return value
