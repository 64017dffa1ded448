"""A separate process writing a WAL database the way Home Assistant's recorder does:
one row per transaction, as fast as it can, until stdin closes. It prints `ready` after
its first commit, so the test starts reading once writes are really going on."""

from __future__ import annotations

import select
import sqlite3
import sys
import time


def main(path: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    written = 0
    while True:
        db.execute("BEGIN")
        db.execute(
            "INSERT INTO states (state, last_updated_ts, metadata_id) VALUES (?, ?, 1)",
            (str(written), time.time()),
        )
        db.execute("COMMIT")
        written += 1
        if written == 1:
            print("ready", flush=True)
        if select.select([sys.stdin], [], [], 0)[0] and not sys.stdin.read(1):
            break
    print(written, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
