"""Overlays: what a web photo carries on its frame rather than in its scene.

Two photos of different places that carry the same overlay (a stock agency's watermark
repeated across the frame, a caption banner, a TV channel's logo, a burnt-in timestamp)
match where the overlay is, and those matches pass a geometric check: they map one
*frame* onto the other, not one *scene* onto the other. Such a map is frame-locked:

- no rotation and no shear;
- a scale that the two frames' sizes give (the ratio of their widths, of their heights, of
  their longer or shorter sides, or each axis by its own), within SCALE_SLACK, because a
  stamp is drawn at a size rounded from the photo's;
- any translation: a watermark repeats on a grid, and a copy of it in one photo matches
  the copy one step over in the other as well as the one at the same place.

Two different photos of one scene rarely relate that way, unless their matches are bunched
in a small area, which fits *some* frame-locked map whatever it shows (``pinned`` tells
the two apart). Two copies of one photo always do, and so does the scene of a photo with
the scene of its copy under an overlay. Which of those a frame-locked match is, verify.py
decides from how much of the query it covers.
"""

from __future__ import annotations

import numpy as np

SCALE_SLACK = 0.03  # a frame scale may be off by this much (stamps drawn at rounded sizes)
SCALE_STEPS = 7  # scales tried across the slack, per frame scale


def frame_scales(
    query_size: tuple[float, float], reference_size: tuple[float, float]
) -> np.ndarray:
    """The (x, y) scales the two frames' sizes give, query → reference: [S, 2]."""
    (w1, h1), (w2, h2) = query_size, reference_size
    rx, ry = w2 / w1, h2 / h1
    found = [
        (1.0, 1.0),
        (rx, rx),
        (ry, ry),
        (rx, ry),
        (max(w2, h2) / max(w1, h1),) * 2,
        (min(w2, h2) / min(w1, h1),) * 2,
    ]
    scales: list[tuple[float, float]] = []
    for s in found:
        if not any(abs(s[0] - t[0]) < 1e-3 and abs(s[1] - t[1]) < 1e-3 for t in scales):
            scales.append(s)
    return np.array(scales, np.float64)


def frame_locked(
    src: np.ndarray,
    dst: np.ndarray,
    query_size: tuple[float, float],
    reference_size: tuple[float, float],
    tolerance: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The largest set of correspondences ``src`` → ``dst`` [M, 2] that one frame-locked
    map explains: a mask [M], and the map's (x, y) scale. Under a scale s, correspondence
    i asks for the translation dst_i - s * src_i; those whose translations share a cell of
    2 x ``tolerance`` pixels (on four grids offset by half a cell) agree on one map. The
    map is chosen on at most SAMPLE of the correspondences (a set that is a large share of
    all is as large a share of those), then every correspondence is tested against it."""
    m = src.shape[0]
    scales = _scales(query_size, reference_size)
    if m < 2:
        return np.zeros(m, bool), scales[0]
    take = _sample(m)
    shifts = _shifts(src[take], dst[take], scales)  # [S, m', 2]
    # every (grid, scale, cell) as one key: the grid's number and the scale's in the high bits
    grids = np.array(OFFSETS)[:, None, None, :] * tolerance  # [4, 1, 1, 2]
    cells = np.floor((shifts[None] + grids) / (2 * tolerance)).astype(np.int64)  # [4, S, m', 2]
    key = (np.arange(len(OFFSETS))[:, None, None] << 50) + (np.arange(len(scales))[:, None] << 42)
    key = key + ((cells[..., 0] & 0x1FFFFF) << 21) + (cells[..., 1] & 0x1FFFFF)
    ordered = np.sort(key.ravel())
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    runs = np.diff(np.r_[starts, ordered.size])
    top = int(ordered[starts[int(runs.argmax())]])  # the most shared key
    grid, row, cell = top >> 50, (top >> 42) & 0xFF, (top >> 21 & 0x1FFFFF, top & 0x1FFFFF)
    every = _cells(_shifts(src, dst, scales[row : row + 1])[0], OFFSETS[grid], tolerance)
    return ((every & 0x1FFFFF) == cell).all(axis=1), scales[row]


def placed_alike(
    src: np.ndarray,
    dst: np.ndarray,
    query_size: tuple[float, float],
    reference_size: tuple[float, float],
    tolerance: float,
) -> np.ndarray:
    """The largest set of correspondences that one frame-locked map *placing the stamp at
    the same place of both frames* explains: a mask [M]. The places are ANCHORS, as
    fractions of the frame: a corner, the middle of an edge, the centre (a banner along
    the bottom edge, a logo in a corner, a centred stamp). Unlike frame_locked this holds
    for a few correspondences in a small area too, where any translation would fit. The
    place is chosen on at most SAMPLE correspondences, as in frame_locked."""
    m = src.shape[0]
    if m < 2:
        return np.zeros(m, bool)
    scales = _scales(query_size, reference_size)
    room = np.array(reference_size, np.float64) - scales * np.array(query_size, np.float64)
    take = _sample(m)
    shifts = _shifts(src[take], dst[take], scales)  # [S, m', 2]
    # within ``tolerance`` of a place on each axis: the x and y tests apart, then paired
    near_x = np.abs(shifts[:, None, :, 0] - places_x(room)[:, :, None]) <= tolerance
    near_y = np.abs(shifts[:, None, :, 1] - places_y(room)[:, :, None]) <= tolerance
    counts = np.einsum("sip,sjp->sij", near_x.astype(np.float32), near_y.astype(np.float32))
    s, i, j = np.unravel_index(int(counts.argmax()), counts.shape)
    every = _shifts(src, dst, scales[s : s + 1])[0]
    place = np.array([places_x(room)[s, i], places_y(room)[s, j]])
    return (np.abs(every - place) <= tolerance).all(axis=1)


def pinned(points: np.ndarray, scale: np.ndarray, tolerance: float, pin: float) -> bool:
    """Whether ``points`` [N, 2] (query side of a frame-locked set under ``scale``) pin the
    map down: a scale off by ``pin`` would move the farthest of them from their centre out
    of the map's cell. Points bunched together (a dome, a doorway) fit any scale, and so
    some frame-locked map, within a few pixels, whatever the two photos are."""
    if points.shape[0] < 2:
        return False
    radius = float(np.linalg.norm(points - np.median(points, axis=0), axis=1).max())
    return pin * radius * float(np.mean(scale)) >= 2 * tolerance


# where a stamp sits, as fractions of the frame's free room along each axis: the two edges
# and the middle (so corners, edge middles and the centre)
ANCHORS = np.array([0.0, 0.5, 1.0])


def places_x(room: np.ndarray) -> np.ndarray:
    """The anchored translations along x for each scale's free room [S, 2]: [S, 3]."""
    return room[:, :1] * ANCHORS


def places_y(room: np.ndarray) -> np.ndarray:
    """The same along y: [S, 3]."""
    return room[:, 1:] * ANCHORS


SAMPLE = 64  # correspondences a map is chosen on (all of them below that)
OFFSETS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0))  # the cell grids, in half cells


def _sample(m: int) -> np.ndarray:
    """At most SAMPLE indices of 0..m-1, evenly spread (the same every time)."""
    if m <= SAMPLE:
        return np.arange(m)
    return np.linspace(0, m - 1, SAMPLE).round().astype(np.int64)


def _cells(shifts: np.ndarray, offset: tuple[float, float], tolerance: float) -> np.ndarray:
    """The cell (of 2 x tolerance pixels, on the grid ``offset``) of each translation."""
    return np.floor((shifts + np.array(offset) * tolerance) / (2 * tolerance)).astype(np.int64)


def _scales(query_size: tuple[float, float], reference_size: tuple[float, float]) -> np.ndarray:
    """Every frame scale across its slack: [S, 2]."""
    steps = np.linspace(1 - SCALE_SLACK, 1 + SCALE_SLACK, SCALE_STEPS)
    frame = frame_scales(query_size, reference_size)
    return (frame[:, None, :] * steps[None, :, None]).reshape(-1, 2)


def _shifts(src: np.ndarray, dst: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The translation each correspondence asks for under each scale: [S, M, 2]."""
    return dst[None].astype(np.float64) - src[None].astype(np.float64) * scales[:, None]
