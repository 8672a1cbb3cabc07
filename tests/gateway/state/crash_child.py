"""Child process of the state store's crash test: writes batches as fast as it can and prints
each batch number on stdout only after the transaction that wrote it has returned.

Every batch puts ``BATCH_KEYS`` documents and deletes the previous batch's marker, so a torn
transaction would show as a batch with some keys missing or two markers.

Usage: python crash_child.py DB_PATH RUN_TAG
"""

from __future__ import annotations

import sys
from pathlib import Path

from foundation.clock import SystemClock
from gateway.state import StateStore

BATCH_KEYS = 5


def main(db: Path, tag: str) -> None:
    with StateStore(db, SystemClock()) as store:
        batch = 0
        while True:
            with store.transaction() as tx:
                for i in range(BATCH_KEYS):
                    tx.put(
                        "crash", f"{tag}-{batch}-{i}", {"batch": batch, "i": i, "pad": "x" * 200}
                    )
                if batch:
                    tx.delete("marker", f"{tag}-{batch - 1}")
                tx.put("marker", f"{tag}-{batch}", batch)
            # A single put on its own too: the other path to the disk.
            store.put("single", f"{tag}-{batch}", batch)
            sys.stdout.write(f"{batch}\n")
            sys.stdout.flush()
            batch += 1


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
