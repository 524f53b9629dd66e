"""Writes to a replicated shard: published to the changelog, answered once this replica
has applied them (read-your-writes); the other replicas apply them as they follow.

Conflicts are decided against the changelog, not the local index (another replica may
have taken a write this one has not applied yet): an image is present when its subject's
latest message is an add. An add with on_conflict ERROR or SKIP publishes each image on
the condition that its subject is still as read (JetStream's expected last subject
sequence), so that two replicas adding one image at once cannot both succeed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ..config import SearchConfig
from ..engine import AddResult, OnConflict, SearchEngine
from ..errors import AlreadyExists, FeatureMismatch, Unavailable
from ..limits import check_add
from ..sharding import shard_of
from . import changes
from .follower import Entry, Follower
from .stream import Changelog, Conflict
from .subjects import subject

log = logging.getLogger(__name__)

APPLY_SECONDS = 30.0  # how long an answer waits for this replica to apply its write


class ReplicatedWrites:
    def __init__(
        self,
        engine: SearchEngine,
        changelog: Changelog,
        follower: Follower,
        shard: int,
        shards: int,
    ) -> None:
        """``shard`` of ``shards``: the one this replica follows, of those the images are
        spread over by id (sharding.shard_of)."""
        self.engine = engine
        self.changelog = changelog
        self.follower = follower
        self.shard = shard
        self.shards = shards

    def close(self) -> None:
        self.follower.close()
        self.changelog.close()

    def _subject(self, image_id: str) -> str:
        return subject(shard_of(image_id, self.shards), self.shards, image_id)

    def add(self, entries: list[Entry], on_conflict: OnConflict = OnConflict.ERROR) -> AddResult:
        if not entries:
            return AddResult(0, 0, 0)
        kind = check_add(self.engine.limits, entries)
        store = self.engine.store
        if store.backend and (store.backend, store.dimension) != kind:
            raise FeatureMismatch(
                f"this index holds {store.backend} features ({store.dimension}-D); these "
                f"are {kind[0]} ({kind[1]}-D)"
            )
        ids = [e[0] for e in entries]
        names = [self._subject(i) for i in ids]
        latest = self.changelog.latest(names)
        present = [i for i, n in zip(ids, names, strict=True) if _is_add(latest.get(n))]
        if present and on_conflict is OnConflict.ERROR:
            raise AlreadyExists(
                f"{len(present)} image id(s) already in the index, e.g. {present[:3]}; "
                "remove them first or add with on_conflict SKIP or REPLACE"
            )
        skip = set(present) if on_conflict is OnConflict.SKIP else set()
        conditional = on_conflict is not OnConflict.REPLACE
        messages = [
            (n, changes.added(*e), latest.get(n, (0, b""))[0] if conditional else None)
            for e, n in zip(entries, names, strict=True)
            if e[0] not in skip
        ]
        if messages:
            try:
                last = self.changelog.publish(messages)
            except Conflict:
                raise AlreadyExists(
                    "another write added or removed one of these images meanwhile; nothing "
                    "was added: send the add again"
                ) from None
            self._applied(last, [m[0] for m in messages])
        replaced = len(present) if on_conflict is OnConflict.REPLACE else 0
        return AddResult(len(entries) - len(skip) - replaced, len(skip), replaced)

    def remove(self, image_ids: list[str]) -> tuple[int, list[str]]:
        wanted = sorted(set(image_ids))
        names = {i: self._subject(i) for i in wanted}
        latest = self.changelog.latest(list(names.values()))
        found = [i for i in wanted if _is_add(latest.get(names[i]))]
        if found:
            messages = [(names[i], changes.removed(i), None) for i in found]
            self._applied(self.changelog.publish(messages), [m[0] for m in messages])
        return len(found), sorted(set(image_ids) - set(found))

    def _applied(self, last: int, subjects: list[str]) -> None:
        """Wait until this replica has applied its shard's part of a batch whose last
        message has sequence ``last`` (a batch's sequences are consecutive); the other
        shards' replicas apply theirs as they follow."""
        mine = subject(self.shard, self.shards, "")
        own = [k for k, s in enumerate(subjects) if s.startswith(mine)]
        if not own:
            return
        sequence = last - (len(subjects) - 1 - own[-1])
        if not self.follower.wait(sequence, APPLY_SECONDS):
            raise Unavailable(
                f"the change is in the changelog (sequence {sequence}) but this replica has "
                f"not applied it within {APPLY_SECONDS:.0f} s; it will be: search again shortly"
            )


def _is_add(latest: tuple[int, bytes] | None) -> bool:
    return latest is not None and latest[1][:1] == changes.ADD


PROGRESS = {
    "applied": "stream sequence of the last change this replica applied",
    "behind": "changes of this replica's shard still to apply",
    "caught_up": "1 once this replica has applied what the stream held when it started",
}


def follow(
    config: SearchConfig,
    engine: SearchEngine,
    started: Callable[[Follower], None],
) -> ReplicatedWrites:
    """Connect to the changelog of ``config``, follow this replica's shard from where its
    index folder left off, and return once every change the stream held is applied;
    ``started(follower)`` is called as following begins (PROGRESS: its progress)."""
    shard = max(config.shard_index, 0)
    changelog = Changelog(config.changelog.split(","), config.changelog_replicas)
    try:
        follower = Follower(
            changelog,
            shard,
            config.shard_count,
            Path(config.index_dir),
            add=lambda entries: engine.add(entries, OnConflict.REPLACE),
            remove=engine.remove,
        )
    except BaseException:
        changelog.close()
        raise
    started(follower)
    while not follower.catch_up(2.0):
        log.info(
            "catching up: %d changes to apply (applied up to %d)", follower.behind, follower.applied
        )
    log.info("caught up with the changelog at change %d", follower.applied)
    return ReplicatedWrites(engine, changelog, follower, shard, config.shard_count)
