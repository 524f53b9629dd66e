"""The store's settings: one declaration of each default (config.py reads them)."""

from __future__ import annotations

from dataclasses import dataclass

PROJECTION_DIM = 16  # Annoy's dimension (docs/index-design.md has the measurements)


@dataclass(frozen=True)
class StoreSettings:
    n_trees: int = 8  # over 16-D projections (docs/index-design.md has the measurements)
    projection_dim: int = PROJECTION_DIM  # Annoy's dimension: a PCA projection (compact.py)
    seal_descriptors: int = 20_000  # seal the growing buffer at this size ...
    seal_seconds: float = 2.0  # ... or when its oldest image waits this long
    # small adds are refused (BufferFull, RESOURCE_EXHAUSTED) while the buffer holds this
    # many descriptors: every search scans the buffer exactly
    max_growing_descriptors: int = 100_000
    max_segments: int = 8  # merge segments when there are more ...
    # ... but never build one of more rows than this: a build holds Annoy's nodes for its
    # rows in memory (about 190 bytes each), so this bounds a merge's memory
    max_segment_rows: int = 10_000_000
    max_dead_fraction: float = 0.3  # ... or when removed rows are this share of all rows
    # ... or when no write came for this long and there is something to compact
    # (more than one segment, or removed rows); 0 = never compact when idle
    idle_merge_seconds: float = 5.0
    # visual words of the aggregated shortlist, fitted once the sealed images and a build
    # hold codebook_min_rows descriptors: words fitted on the first 48 photos of 95 (a few
    # landmarks) shortlist worse than words fitted on them all (docs/index-design.md)
    codebook_words: int = 65_536
    codebook_min_rows: int = 100_000
    # a codebook folder to take instead (shards of one coordinator must share their words)
    codebook: str = ""
    # whether the index may fit words of its own: not a shard without a codebook given, as
    # its words would differ from the other shards' (it is then searched by its rows)
    fit_codebook: bool = True
