"""Map declarations of a case: ``-- map NAME array|hash key=K value=V entries=N``.

What a case declares, parsed and range-checked; the maps themselves (values in the
shared memory layout, the helpers that use them) live in :mod:`harness.oracle.maps`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

ARRAY, HASH = "array", "hash"
KINDS = (ARRAY, HASH)
VALUE_ALIGN = 8  # every map value slot starts on an 8-byte boundary


class MapError(ValueError):
    """A map declaration that cannot be honoured."""


@dataclass(frozen=True)
class MapSpec:
    """One declared map: ``-- map NAME KIND key=K value=V entries=N``."""

    name: str
    kind: str
    key_size: int
    value_size: int
    max_entries: int

    @staticmethod
    def parse(text: str) -> "MapSpec":
        words = text.split()
        if len(words) < 2:
            raise MapError("expected '-- map NAME array|hash key=K value=V entries=N'")
        name, kind, *options = words
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise MapError(f"bad map name {name!r}")
        if kind not in KINDS:
            raise MapError(f"unknown map kind {kind!r} (known: {', '.join(KINDS)})")
        values: dict[str, int] = {}
        for option in options:
            key, _, number = option.partition("=")
            if key not in ("key", "value", "entries") or not number:
                raise MapError(f"bad map option {option!r} (key=, value=, entries=)")
            try:
                values[key] = int(number, 0)
            except ValueError:
                raise MapError(f"bad number in {option!r}") from None
        if kind == ARRAY:
            values.setdefault("key", 4)
            if values["key"] != 4:
                raise MapError("an array map's key is its u32 index: key=4")
        missing = [key for key in ("key", "value", "entries") if key not in values]
        if missing:
            raise MapError(f"map {name} lacks {', '.join(k + '=' for k in missing)}")
        if not (1 <= values["key"] <= 512 and 1 <= values["value"] <= 4096 and 1 <= values["entries"] <= 65536):
            raise MapError(f"map {name}: key 1-512, value 1-4096 and entries 1-65536 bytes/items")
        return MapSpec(name, kind, values["key"], values["value"], values["entries"])

    @property
    def slot_size(self) -> int:
        return -(-self.value_size // VALUE_ALIGN) * VALUE_ALIGN
