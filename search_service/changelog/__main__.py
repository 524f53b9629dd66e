"""``python -m search_service.changelog``: back up, restore and re-shard the changelog, from
the stream alone (no search service, no photo)."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from .copying import BATCH, backup, publish_all, read, resharded, restore
from .stream import Changelog
from .subjects import every_shard, of_layout


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m search_service.changelog", description=__doc__)
    ap.add_argument("--changelog", required=True, help="nats://HOST:PORT[,...] of its servers")
    ap.add_argument("--replicas", type=int, default=3, help="servers holding each change")
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("backup", help="write every change of the stream to a new file")
    b.add_argument("out", type=Path)
    r = sub.add_parser("restore", help="publish a backup's changes into the stream")
    r.add_argument("backup", type=Path)
    s = sub.add_parser(
        "reshard",
        help="copy the changes of N shards into a layout of M (start M new replicas on it, "
        "move callers to them, then drop the old layout)",
    )
    s.add_argument("--from-shards", type=int, required=True)
    s.add_argument("--to-shards", type=int, required=True)
    s.add_argument(
        "--follow", action="store_true", help="keep copying new changes until interrupted"
    )
    d = sub.add_parser("drop", help="delete a layout's changes (after re-sharding away from it)")
    d.add_argument("--shards", type=int, required=True)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    changelog = Changelog(args.changelog.split(","), args.replicas)
    try:
        if args.command == "backup":
            n = backup(changelog, every_shard(), args.out)
            print(f"{args.out}: {n} changes")
        elif args.command == "restore":
            print(f"restored {restore(changelog, args.backup)} changes")
        elif args.command == "reshard":
            if args.from_shards == args.to_shards:
                ap.error("--from-shards and --to-shards are the same layout")
            stop = threading.Event() if args.follow else None
            changes = read(changelog, of_layout(args.from_shards), stop)
            try:
                # one at a time when following: a change is copied as it comes
                size = 1 if args.follow else BATCH
                n = publish_all(changelog, resharded(changes, args.to_shards), size)
            except KeyboardInterrupt:
                n = -1
            print(f"copied {n if n >= 0 else 'the'} changes into {args.to_shards} shards")
        else:
            changelog.purge(of_layout(args.shards))
            print(f"dropped the layout of {args.shards} shards")
    finally:
        changelog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
