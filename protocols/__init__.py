"""Pure decoders and framing: bytes in, typed messages out.

This package sits at the bottom of the data path. It does no I/O and imports no driver,
asyncio, MQTT or SQLite library: the drivers hand it bytes, the gateway receives typed
messages, and the simulator builds its frames from the same definitions.
"""

from protocols.errors import ProtocolError
from protocols.jsonform import JsonValue, to_json_value, to_jsonable

__all__ = ["JsonValue", "ProtocolError", "to_json_value", "to_jsonable"]
