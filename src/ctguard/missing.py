"""Missing is a value: a reader that cannot produce its record says why."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Missing:
    """An input that could not be read; ``reason`` is shown to the operator."""

    reason: str

    def __bool__(self) -> bool:
        return False
