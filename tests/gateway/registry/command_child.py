"""Child process of the tag commands' crash test: binds tag after tag through the real
command processor and prints each command id once its response said ok.

Usage: python command_child.py DB_PATH RUN_TAG
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from foundation.clock import SystemClock
from gateway.registry import TagRegistry, register_tag_commands
from gateway.state import StateStore
from gateway.uplink.commands import CommandProcessor, CommandRegistry

#: Assets cycle through these, so a rebind of an earlier tag is part of the run too.
ASSETS = (
    "https://id.gs1.org/00/340123450000000017",
    "urn:epc:id:sscc:0614141.1234567890",
    "https://id.gs1.org/8004/0952123456ABC",
)
CANONICAL_ASSETS = (
    "https://id.gs1.org/00/340123450000000017",
    "https://id.gs1.org/00/106141412345678908",
    "https://id.gs1.org/8004/0952123456ABC",
)
TAGS = 50


def command_for(n: int) -> tuple[str, str, str]:
    """Command ``n``: (command id, tag id, asset as sent)."""
    return f"c{n}", f"smartlabel:{n % TAGS:016x}", ASSETS[n % len(ASSETS)]


async def main(db: Path, tag: str) -> None:
    clock = SystemClock()
    with StateStore(db, clock) as store:
        tags = await asyncio.to_thread(TagRegistry.load, store)
        registry = CommandRegistry()
        register_tag_commands(registry, tags, store)
        processor = CommandProcessor(registry, clock, max_bytes=4096, results_kept=64)
        n = int(tag)
        while True:
            cid, tag_id, asset = command_for(n)
            body = {"id": cid, "tag": tag_id, "asset": asset}
            response = await processor.handle("tags.bind", json.dumps(body).encode())
            if not response.ok:
                raise SystemExit(f"command failed: {response}")
            sys.stdout.write(f"{n}\n")
            sys.stdout.flush()
            n += 1


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
