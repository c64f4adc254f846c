"""What an external-JIT target is, as data: one ``[[target]]`` table in a TOML file.

A description says which emulated architecture the JIT's code runs on (the built-in
backend whose Unicorn/capstone settings and C ABI apply), how to get native code for
a program (a command speaking arches/external/protocol.py, optionally built first by
a Python hook), and the ABI of that code where it differs from the C ABI. Example
(the uBPF descriptions are in arches/external/targets/ubpf.toml)::

    [[target]]
    name = "myjit-arm64"                  # the --arch value and the report column
    arch = "arm64"                        # a built-in backend: engine settings, C ABI
    command = ["/opt/myjit/plugin", "--arm64"]
    summary = "MyJIT's AArch64 back end"  # shown by `harness list`
    entry_arguments = ["memory", "length"]   # what native argument registers 1..n carry
    # argument_registers = ["x0", "x1", "x2", "x3", "x4"]  # default: the C ABI's
    # return_register = "x0"              # default: the C ABI's
    # return_address = "x30"              # a link register, or "push"; default: the C ABI's way
    # register_map = ["x7", "x0", ...]    # eBPF r0-r10 -> native (documentation)
    # requires_env = ["MYJIT_SRC"]        # configured only when these are set
    # helper_carries = [{register = "x5", value = "memory"}]   # what every helper call carries
    # helper_id_register = "x5"           # a dispatcher: one entry for all helpers, the id here
    # build = "package.module:function"   # returns {name: value} for {name} in command
    # known_failures = "known_failures/myjit-arm64.toml"   # relative to this file
    # timeout = 60                        # seconds per program

Entry arguments are the JIT's signature in order: ``memory`` (input address, eBPF
r1), ``length`` (eBPF r2), ``stack`` (lowest address of the harness's stack region),
``stack_size`` (its size: stack + stack_size is the initial r10), ``stack_top`` and
``cookie`` (a value the runner chooses anew for every run, for a JIT whose helpers get
a context of the embedder's).

Helper calls must pass eBPF r1-r5 in the first five ``argument_registers`` and take
the result in ``return_register``, as a C call does. ``helper_carries`` lists what
every call carries besides: each item a place, ``register = "r9"`` or ``stack = 8``
(the pointer-sized word 8 bytes above the stack pointer the helper sees: a stack
argument), and a ``value``: one of ``memory``, ``length``, ``stack``,
``stack_size``, ``stack_top``, ``cookie`` (the run's values, as the entry got them)
or an integer (a constant). The runner checks them at every call (a mismatch fails
the case, naming the call, the place and both values). ``helper_id_register`` makes
the target dispatcher-style: the code calls one entry for every helper (the harness
links it through the answer's ``"dispatcher": true`` relocation) with the helper's
id in that register.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arches.base import CARRIED_VALUES, BackendFailure

ENTRY_ARGUMENTS = ("memory", "length", "stack", "stack_size", "stack_top", "cookie")
_FIELDS = {"name", "arch", "command", "summary", "entry_arguments", "argument_registers", "return_register",
           "return_address", "register_map", "requires_env", "build", "known_failures", "timeout",
           "helper_carries", "helper_id_register"}


class DescriptionError(ValueError):
    """A target description that cannot be used; the message names the file (and line or target)."""


class Unavailable(BackendFailure):
    """A described target that cannot run here; the message is one line saying why (and what to do)."""


@dataclass(frozen=True)
class TargetDescription:
    name: str
    arch: str
    command: tuple[str, ...]
    source: Path  # the TOML file it comes from
    summary: str = ""
    entry_arguments: tuple[str, ...] = ("memory", "length")
    argument_registers: tuple[str, ...] | None = None
    return_register: str | None = None
    return_address: str | None = None
    register_map: tuple[str, ...] | None = None
    requires_env: tuple[str, ...] = ()
    build: str | None = None
    known_failures: Path | None = None
    timeout: float = 60.0
    # (value, register name or None, stack offset or None, constant) for each helper_carries item
    helper_carries: tuple[tuple[str, str | None, int | None, int], ...] = ()
    helper_id_register: str | None = None


def _strings(value: Any, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DescriptionError(f"{where}: \"{key}\" must be a list of strings")
    return tuple(value)


def _string(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise DescriptionError(f"{where}: \"{key}\" must be a non-empty string")
    return value


def _carries(value: Any, where: str) -> tuple[tuple[str, str | None, int | None, int], ...]:
    """The ``helper_carries`` items as (value, register, stack offset, constant)."""
    shape = ("\"helper_carries\" is a list of {register = \"NAME\" or stack = OFFSET, value = one of "
             f"{', '.join(CARRIED_VALUES[:-1])} or an integer}}")
    if not isinstance(value, list):
        raise DescriptionError(f"{where}: {shape}")
    items = []
    for number, item in enumerate(value, start=1):
        if not isinstance(item, dict) or set(item) - {"register", "stack", "value"} or "value" not in item \
                or ("register" in item) == ("stack" in item):
            raise DescriptionError(f"{where}: helper_carries item {number}: {shape}")
        register, stack, wanted = item.get("register"), item.get("stack"), item["value"]
        if register is not None and (not isinstance(register, str) or not register):
            raise DescriptionError(f"{where}: helper_carries item {number}: \"register\" must name a register")
        if stack is not None and (not isinstance(stack, int) or isinstance(stack, bool) or stack < 0):
            raise DescriptionError(f"{where}: helper_carries item {number}: \"stack\" must be a byte offset >= 0")
        if isinstance(wanted, bool) or not (isinstance(wanted, int) or wanted in CARRIED_VALUES[:-1]):
            raise DescriptionError(f"{where}: helper_carries item {number}: \"value\" {wanted!r}: {shape}")
        if isinstance(wanted, int):
            items.append(("constant", register, stack, wanted & (1 << 64) - 1))
        else:
            items.append((wanted, register, stack, 0))
    return tuple(items)


def load_descriptions(path: Path, builtin_arches: list[str]) -> list[TargetDescription]:
    """Every ``[[target]]`` of one TOML file, checked; raises DescriptionError naming the file."""
    try:
        document = tomllib.loads(path.read_text())
    except OSError as error:
        raise DescriptionError(f"{path}: cannot read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise DescriptionError(f"{path}: not valid TOML: {error}") from None
    tables = document.get("target")
    if not isinstance(tables, list) or not tables:
        raise DescriptionError(f"{path}: no [[target]] table")
    return [_description(table, path, index, builtin_arches) for index, table in enumerate(tables)]


def _description(table: dict[str, Any], path: Path, index: int, builtin_arches: list[str]) -> TargetDescription:
    where = f"{path}: target {table.get('name', index + 1)!s}"
    unknown = sorted(set(table) - _FIELDS)
    if unknown:
        raise DescriptionError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}")
    for key in ("name", "arch", "command"):
        if key not in table:
            raise DescriptionError(f"{where}: \"{key}\" is required")
    name = _string(table["name"], where, "name")
    if name in builtin_arches or name in ("all", "default", "interp") or "," in name:
        raise DescriptionError(f"{where}: the name {name!r} is taken (built-in targets, all, default, interp)")
    arch = _string(table["arch"], where, "arch")
    if arch not in builtin_arches:
        raise DescriptionError(f"{where}: \"arch\" must name a built-in backend ({', '.join(builtin_arches)}), "
                               f"got {arch!r}")
    command = _strings(table["command"], where, "command")
    if not command:
        raise DescriptionError(f"{where}: \"command\" is empty")
    entry = _strings(table.get("entry_arguments", ["memory", "length"]), where, "entry_arguments")
    bad = [item for item in entry if item not in ENTRY_ARGUMENTS]
    if bad or entry[:2] != ("memory", "length"):
        raise DescriptionError(f"{where}: \"entry_arguments\" starts with memory, length, then any of "
                               f"{', '.join(ENTRY_ARGUMENTS[2:])}; got {list(entry)}")
    optional = {key: _strings(table[key], where, key) for key in ("argument_registers", "register_map")
                if key in table}
    if "register_map" in optional and len(optional["register_map"]) != 11:
        raise DescriptionError(f"{where}: \"register_map\" names the native register of each of r0-r10 (11)")
    singles = {key: _string(table[key], where, key) for key in ("summary", "return_register", "return_address",
                                                                 "build", "known_failures", "helper_id_register")
               if key in table}
    carries = _carries(table.get("helper_carries", []), where)
    if "cookie" in (item[0] for item in carries) and "cookie" not in entry:
        raise DescriptionError(f"{where}: helper calls carry the cookie, but \"entry_arguments\" does not take it")
    timeout = table.get("timeout", 60)
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise DescriptionError(f"{where}: \"timeout\" must be a positive number of seconds")
    known = singles.get("known_failures")
    return TargetDescription(
        name, arch, command, path, singles.get("summary", ""), entry, optional.get("argument_registers"),
        singles.get("return_register"), singles.get("return_address"), optional.get("register_map"),
        _strings(table.get("requires_env", []), where, "requires_env"), singles.get("build"),
        (path.parent / known) if known else None, float(timeout), carries, singles.get("helper_id_register"))
