"""The one error every static check raises: a program the validator refuses."""
from __future__ import annotations


class ValidationError(ValueError):
    """A program the validator refuses; ``index`` is the offending slot (or None)."""

    def __init__(self, index: int | None, message: str) -> None:
        where = f"instruction {index}: " if index is not None else ""
        super().__init__(where + message)
        self.index = index
        self.message = message
