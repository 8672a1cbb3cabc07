"""The custody package's one exception: a request the engine refuses, naming the field."""

from __future__ import annotations

from gateway.errors import GatewayError

__all__ = ["CustodyError"]


class CustodyError(GatewayError):
    """A command the engine refuses; ``field`` names what is wrong, ``detail`` says why.

    Raising it leaves the engine's state exactly as it was."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail
