"""The changelog: a replicated log of the index's changes on NATS JetStream, the source of
truth of a replicated shard.

A write is published (changes.py, subjects.py) to a stream replicated on the NATS servers
and acknowledged by a quorum of them (stream.py); every replica of the shard follows the
stream in order and applies each change through its index's own write path (follower.py),
so that all replicas converge on the same images; the replica that took a write answers
once it has applied it (writes.py). Without a changelog a search service keeps its own
write-ahead log, as before.
"""
