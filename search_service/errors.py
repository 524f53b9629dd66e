"""Domain errors of the search core; the gRPC edge maps each to one status code."""


class InvalidRequest(ValueError):
    """The request itself is wrong (INVALID_ARGUMENT)."""


class FeatureMismatch(Exception):
    """Features of another backend or dimension than the index holds (FAILED_PRECONDITION)."""


class AlreadyExists(Exception):
    """An image id that is already in the index (ALREADY_EXISTS)."""


class IndexCorrupt(Exception):
    """The index directory cannot be loaded (the service refuses to start)."""


class IndexLocked(Exception):
    """Another process owns the index directory (the service refuses to start)."""


class Cancelled(Exception):
    """The caller went away or its deadline passed; the work was stopped."""


class DiskFull(Exception):
    """The index disk has no room for a change; nothing was written (RESOURCE_EXHAUSTED)."""


class StorageFailure(Exception):
    """The index disk failed a write (EIO and the like); nothing was written (UNAVAILABLE)."""


class BufferFull(Exception):
    """The growing buffer is at its bound while sealing catches up; nothing was written
    (RESOURCE_EXHAUSTED, with a retry hint: the caller retries after ``retry_after``)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Stopped(Exception):
    """A build was asked to stop (the service is shutting down); nothing of it was kept."""


class Unavailable(Exception):
    """The changelog cannot take or give changes now: too few of its servers answer (a
    write needs a quorum of them). Nothing was written; the caller may retry."""
