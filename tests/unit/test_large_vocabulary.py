"""A large vocabulary's parts: the two-level codebook (cells, then words within a cell),
fitted, stored and versioned, whose assignment finds the words a full product finds; and a
merge's inverted file taken from its segments' own instead of assigning their rows again."""

import json

import numpy as np
import pytest

from search_service.errors import IndexCorrupt
from search_service.index import codebook, inverted
from search_service.index.compact import quantize_descriptors
from tests.unit.test_aggregated_shortlist import clustered, images_of, unit

D = 32
WORDS = 400


@pytest.fixture(scope="module")
def two_level() -> codebook.Codebook:
    rng = np.random.default_rng(0)
    x = clustered(WORDS * 40, unit(rng.standard_normal((WORDS, D))), rng, spread=0.05)
    centroids, cells, starts = codebook.fit_two_level(x, WORDS)
    return codebook.create("aliked", centroids, len(x), cells, starts)


def test_a_two_level_codebook_has_its_words_grouped_by_cell(two_level):
    book = two_level
    assert book.cells.shape == (20, D)  # sqrt(400) cells
    starts = book.cell_starts
    assert starts[0] == 0 and starts[-1] == book.words and np.all(np.diff(starts) > 0)
    assert abs(book.words - WORDS) <= 20  # each cell its share, rounded
    # a cell's words are those nearest it, mostly: its words lie around it
    cell_of_word = np.repeat(np.arange(len(book.cells)), np.diff(starts))
    nearest_cell = codebook.assign_exact(book.centroids, book.cells)[:, 0]
    assert (nearest_cell == cell_of_word).mean() >= 0.9


def test_two_level_assignment_finds_the_words_a_full_product_finds(two_level):
    book = two_level
    rng = np.random.default_rng(1)
    x = clustered(3000, book.centroids, rng, spread=0.05)
    exact = codebook.assign_exact(x, book.centroids, per_row=2)
    found = book.assign(x, per_row=2)
    assert found.shape == (3000, 2) and found.dtype == np.int64
    assert (found[:, 0] == exact[:, 0]).mean() >= 0.97
    assert np.all(found[:, 0] != found[:, 1])
    # nearest first: the first word is at least as near as the second
    sims = np.take_along_axis(x @ book.centroids.T, found, axis=1)
    assert np.all(sims[:, 0] >= sims[:, 1])
    # grouped by blocks or one row at a time, the same words
    one_by_one = np.concatenate([book.assign(x[i : i + 1], 2) for i in range(50)])
    assert np.array_equal(one_by_one, found[:50])


def test_a_two_level_codebook_is_stored_versioned_by_its_cells_and_checked(two_level, tmp_path):
    book = two_level
    assert book.version == codebook.version_of(book.centroids, book.cells)
    assert book.version != codebook.version_of(book.centroids)
    codebook.save(book, tmp_path / "words")
    again = codebook.load(tmp_path / "words")
    assert again.version == book.version
    assert np.array_equal(again.cells, book.cells)
    assert np.array_equal(again.cell_starts, book.cell_starts)
    x = book.centroids[::7]
    assert np.array_equal(again.assign(x, 2), book.assign(x, 2))
    np.save(tmp_path / "words" / "cell_starts.npy", book.cell_starts[::-1].copy())
    with pytest.raises(IndexCorrupt, match="disagree"):
        codebook.load(tmp_path / "words")
    meta = json.loads((tmp_path / "words" / "meta.json").read_text())
    assert meta["words"] == book.words


def test_fitted_chooses_two_levels_from_the_large_vocabulary_size():
    rng = np.random.default_rng(2)
    x = unit(rng.standard_normal((codebook.TWO_LEVEL_WORDS * 2, 8)))
    small = codebook.fitted("aliked", x[:2000], 64, rounds=1)
    assert small.cells is None and small.words == 64
    large = codebook.fitted("aliked", x, codebook.TWO_LEVEL_WORDS, rounds=1, sample_per_word=2)
    assert large.cells is not None and len(large.cells) == 128


def test_a_merge_takes_the_entries_of_its_segments_inverted_files(two_level):
    """Two segments' inverted files, one image of each left out: the entries carried over
    are those a build from the remaining images' rows gives, byte for byte."""
    book = two_level
    rng = np.random.default_rng(3)
    x, starts, counts = images_of(rng, book, n_images=8, per_image=60)
    first = inverted.build(x, starts[:5], counts[:5], book)
    second = inverted.build(x, starts[5:], counts[5:], book)
    # new numbers: the first segment's images 0, 2, 3, 4, then the second's 0 and 2
    new_first = np.array([0, -1, 1, 2, 3])
    new_second = np.array([4, -1, 5])
    merged = inverted.carried([(first, new_first), (second, new_second)], book.words)
    kept = [0, 2, 3, 4, 5, 7]
    rebuilt = inverted.build(x, starts[kept], counts[kept], book)
    assert merged.codebook_version == rebuilt.codebook_version
    for name in inverted.ARRAYS:
        assert np.array_equal(getattr(merged, name), getattr(rebuilt, name)), name
        assert getattr(merged, name).dtype == getattr(rebuilt, name).dtype, name


def test_a_build_of_stored_images_with_the_same_words_assigns_no_row_again(
    two_level, tmp_path, monkeypatch
):
    """A merge (stored images, StoredImages) whose segments were built with the codebook
    takes their entries: the words builder is never used, and the merged file is what a
    build from the rows gives. With another codebook the rows are assigned again."""
    from search_service.index.images import ImageData
    from search_service.index.segment_writer import StoredImages, build_segment

    book = two_level
    rng = np.random.default_rng(4)
    x, starts, counts = images_of(rng, book, n_images=6, per_image=50)

    def image(i: int) -> ImageData:
        rows = x[starts[i] : starts[i] + counts[i]]
        xy = rng.uniform(0, 100, (len(rows), 2)).astype(np.float32)
        return ImageData(f"img-{i}", "x", rows, xy, 100, 100)

    def build(images, name, words):  # noqa: ANN001, ANN202
        return build_segment(
            images, D, 2, tmp_path / f".tmp-{name}", tmp_path / name, codebook=words
        )

    a = build([image(i) for i in range(3)], "a", book)
    b = build([image(i) for i in range(3, 6)], "b", book)
    fresh = build(StoredImages([(a, 0), (a, 2), (b, 1)]), "fresh", book)  # assigned again

    def refuse(*args):  # noqa: ANN002, ANN202
        raise AssertionError("a row was assigned to words again")

    monkeypatch.setattr(inverted.Builder, "add", refuse)
    merged = build(StoredImages([(a, 0), (a, 2), (b, 1)]), "merged", book)
    for name in inverted.ARRAYS:
        assert np.array_equal(getattr(merged.inverted, name), getattr(fresh.inverted, name))
    other = codebook.create("aliked", book.centroids[::-1].copy(), book.fitted_on)
    with pytest.raises(AssertionError, match="assigned to words again"):
        build(StoredImages([(a, 0), (b, 1)]), "other", other)


def test_scores_are_the_same_whatever_the_entries_scored_at_once(two_level, monkeypatch):
    from search_service.search import shortlist

    book = two_level
    rng = np.random.default_rng(5)
    x, starts, counts = images_of(rng, book, n_images=10, per_image=60)
    inv = inverted.build(x, starts, counts, book)
    query = shortlist.QueryWords(x[60:120], book, multiple=2)
    whole, shared = query.match(inv)
    assert whole.argmax() == 1 and shared[1] > 0
    monkeypatch.setattr(shortlist, "CHUNK_ENTRIES", 7)  # a few words at a time
    pieces, shared_pieces = query.match(inv)
    assert np.allclose(pieces, whole, rtol=1e-12) and np.array_equal(shared_pieces, shared)


def test_formats_float_words_one_or_two_levels_then_int8_words(two_level, tmp_path):
    """Float words keep the formats they were written in (1: one level; 2: two levels, which
    code that reads only format 1 refuses instead of assigning words by a full product its
    segments were not built with); int8 words are format 3, with their levels; a newer
    format is refused."""
    codebook.save(two_level, tmp_path / "two")
    assert json.loads((tmp_path / "two" / "meta.json").read_text())["format"] == 2
    one = codebook.create("aliked", two_level.centroids, two_level.fitted_on)
    codebook.save(one, tmp_path / "one")
    assert json.loads((tmp_path / "one" / "meta.json").read_text())["format"] == 1
    assert codebook.load(tmp_path / "one").cells is None
    int8 = codebook.create(
        "aliked", quantize_descriptors(two_level.centroids), two_level.fitted_on,
        two_level.cells, two_level.cell_starts,
    )  # fmt: skip
    codebook.save(int8, tmp_path / "int8")
    meta = json.loads((tmp_path / "int8" / "meta.json").read_text())
    assert (meta["format"], meta["levels"]) == (3, 2)
    again = codebook.load(tmp_path / "int8")
    assert again.vectors.dtype == np.int8 and again.version == int8.version
    assert np.array_equal(again.cell_starts, two_level.cell_starts)
    (tmp_path / "int8" / "meta.json").write_text(json.dumps({**meta, "format": 4}))
    with pytest.raises(IndexCorrupt, match="format 4 is not one of"):
        codebook.load(tmp_path / "int8")


def test_a_two_level_codebook_has_no_annoy_trees(two_level, tmp_path):
    """Its words are found through its cells; Annoy's trees over 65,536 words would only
    cost disk and build time."""
    codebook.save(two_level, tmp_path / "two")
    assert not (tmp_path / "two" / "words.ann").exists()
    assert codebook.load(tmp_path / "two").annoy is None
    with pytest.raises(ValueError, match="no Annoy trees"):
        two_level.nearest(two_level.centroids[:2])
