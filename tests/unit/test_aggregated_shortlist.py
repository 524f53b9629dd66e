"""The aggregated shortlist's parts: a codebook fitted, stored, versioned and searched with
Annoy; a segment's inverted file (one binarized residual per image and word); the
selective match kernel's scores."""

import json

import numpy as np
import pytest

from search_service.errors import IndexCorrupt
from search_service.index import codebook, inverted
from search_service.search.shortlist import QueryWords

D = 32


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, centres: np.ndarray, rng: np.random.Generator, spread=0.15) -> np.ndarray:
    """Unit rows near randomly chosen ``centres``."""
    pick = rng.integers(0, len(centres), n)
    return unit(centres[pick] + spread * rng.standard_normal((n, centres.shape[1])))


@pytest.fixture(scope="module")
def book() -> codebook.Codebook:
    rng = np.random.default_rng(0)
    centres = unit(rng.standard_normal((64, D)))
    x = clustered(64 * 60, centres, rng)
    return codebook.create("aliked", codebook.fit(x, 64), len(x))


def test_the_same_descriptors_fit_the_same_codebook_and_version():
    rng = np.random.default_rng(1)
    x = clustered(2000, unit(rng.standard_normal((16, D))), rng)
    a, b = codebook.fit(x, 16), codebook.fit(x, 16)
    assert np.array_equal(a, b)
    assert codebook.version_of(a) == codebook.version_of(b)
    assert codebook.version_of(a) != codebook.version_of(codebook.fit(x, 16, seed=2))
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="at least as many descriptors"):
        codebook.fit(x[:10], 16)


def test_annoy_finds_the_nearest_word_of_clustered_descriptors(book):
    rng = np.random.default_rng(2)
    x = clustered(500, book.centroids, rng, spread=0.1)
    exact = codebook.assign_exact(x, book.centroids)[:, 0]
    found = book.nearest(x, per_row=3)
    assert found.shape == (500, 3)
    assert (found[:, 0] == exact).mean() >= 0.98
    assert len(np.unique(found[0])) == 3  # three different words, nearest first


def test_the_full_product_gives_the_nearest_words_nearest_first(book):
    rng = np.random.default_rng(6)
    x = clustered(300, book.centroids, rng)
    top = codebook.assign_exact(x, book.centroids, per_row=12)
    sims = x @ book.centroids.T
    assert np.array_equal(top[:, 0], sims.argmax(axis=1))
    assert np.array_equal(top, np.argsort(-sims, axis=1)[:, :12])


def test_a_codebook_is_stored_loaded_and_checked(book, tmp_path):
    codebook.save(book, tmp_path / "codebook")
    again = codebook.load(tmp_path / "codebook")
    assert again.version == book.version and again.fitted_on == book.fitted_on
    assert np.array_equal(again.centroids, book.centroids)
    x = book.centroids[:20]
    assert np.array_equal(again.nearest(x), book.nearest(x))
    meta = json.loads((tmp_path / "codebook" / "meta.json").read_text())
    (tmp_path / "codebook" / "meta.json").write_text(json.dumps({**meta, "version": "0" * 16}))
    with pytest.raises(IndexCorrupt, match="disagree"):
        codebook.load(tmp_path / "codebook")


def images_of(rng: np.random.Generator, book, n_images=6, per_image=80):
    """Images whose descriptors cluster near a few words of their own."""
    rows, counts = [], []
    for _ in range(n_images):
        own = book.centroids[rng.choice(book.words, 8, replace=False)]
        rows.append(clustered(per_image, own, rng, spread=0.1))
        counts.append(per_image)
    counts = np.array(counts, np.int64)
    return np.concatenate(rows), np.cumsum(counts) - counts, counts


def test_one_entry_per_image_and_word_with_the_sign_of_the_summed_residuals(book):
    rng = np.random.default_rng(3)
    x, starts, counts = images_of(rng, book)
    inv = inverted.build(x, starts, counts, book)
    words = codebook.assign_exact(x, book.centroids)[:, 0]
    distinct = [len(np.unique(words[s : s + c])) for s, c in zip(starts, counts, strict=True)]
    assert inv.image_words.tolist() == distinct
    assert inv.entries == sum(distinct) and int(inv.word_starts[-1]) == inv.entries
    w = int(words[0])  # the first image's entry for the first row's word
    lo, hi = inv.word_starts[w], inv.word_starts[w + 1]
    entry = lo + int(np.nonzero(inv.entry_image[lo:hi] == 0)[0][0])
    mine = x[: counts[0]][words[: counts[0]] == w]
    residual = (mine - book.centroids[w]).sum(axis=0)
    assert np.array_equal(np.unpackbits(inv.entry_bits[entry])[:D], (residual > 0).astype(np.uint8))
    assert inv.nbytes() == (
        inv.word_starts.nbytes + inv.entries * (4 + D // 8) + inv.image_words.nbytes
    )


def test_an_image_scores_one_against_itself_and_a_repeated_pattern_counts_once(book):
    rng = np.random.default_rng(4)
    x, starts, counts = images_of(rng, book)
    inv = inverted.build(x, starts, counts, book)
    first = x[: counts[0]]
    score = QueryWords(first, book).scores(inv)
    assert score[0] == pytest.approx(1.0)
    assert score.argmax() == 0 and np.all(score[1:] < 0.5)
    # the same descriptors ten times over: the same signatures, the same score
    assert QueryWords(np.repeat(first, 10, axis=0), book).scores(inv)[0] == pytest.approx(1.0)
    # a query sharing no word scores zero everywhere
    unused = np.setdiff1d(np.arange(book.words), codebook.assign_exact(x, book.centroids)[:, 0])
    far = unit(book.centroids[unused[:4]] + 1e-3)
    assert not QueryWords(far, book).scores(inv).any()


def test_a_shared_word_whose_signatures_disagree_counts_nothing(book):
    """An image whose descriptors mirror the query's about their words: the same words,
    opposite residuals (u near -1). Scored 0, not below: a word only adds evidence."""
    rng = np.random.default_rng(7)
    own = book.centroids[rng.choice(book.words, 8, replace=False)]
    x = clustered(80, own, rng, spread=0.05)
    words = codebook.assign_exact(x, book.centroids)[:, 0]
    mirrored = unit(2 * book.centroids[words] - x)
    both = np.concatenate([x, mirrored])
    inv = inverted.build(both, np.array([0, 80]), np.array([80, 80]), book)
    score = QueryWords(x, book).scores(inv)
    assert score[0] == pytest.approx(1.0) and score[1] == 0.0


def test_scores_and_shared_words_are_the_kernel_summed_entry_by_entry(book, monkeypatch):
    """match against the selective match kernel written out per entry: the same scores and
    shared words, whether a segment's entries are scored at once or a few at a time."""
    rng = np.random.default_rng(8)
    x, starts, counts = images_of(rng, book, n_images=40)
    inv = inverted.build(x, starts, counts, book)
    query = QueryWords(x[starts[3] : starts[3] + 200], book, multiple=2)
    entry_word = np.repeat(np.arange(book.words), np.diff(inv.word_starts))
    score, shared = np.zeros(40), np.zeros(40, np.int64)
    for word, bits in zip(query.words, query.bits, strict=True):
        for e in np.nonzero(entry_word == word)[0]:
            h = int(np.unpackbits(bits ^ inv.entry_bits[e]).sum())
            u = 1 - 2 * h / D
            score[inv.entry_image[e]] += max(u, 0.0) ** 3
            shared[inv.entry_image[e]] += u > 0
    score /= np.sqrt(inv.image_words) * np.sqrt(len(query.words))
    for chunk in (1 << 18, 7):  # all at once; a few words at a time
        monkeypatch.setattr("search_service.search.shortlist.CHUNK_ENTRIES", chunk)
        got, words = query.match(inv)
        np.testing.assert_allclose(got, score, rtol=1e-12)
        assert np.array_equal(words, shared)
    # an image shares each of its words with its own descriptors (u = 1)
    itself = QueryWords(x[starts[3] : starts[3] + counts[3]], book).match(inv)[1]
    assert itself[3] == inv.image_words[3] == 8


def test_an_inverted_file_is_stored_mapped_and_checked(book, tmp_path):
    rng = np.random.default_rng(5)
    x, starts, counts = images_of(rng, book)
    inv = inverted.build(x, starts, counts, book)
    inverted.save(inv, tmp_path / "inverted")
    again = inverted.load(tmp_path / "inverted", images=len(counts))
    assert isinstance(again.entry_bits.base, np.memmap)  # mapped, not read
    query = QueryWords(x[80:160], book)
    assert np.array_equal(query.scores(again), query.scores(inv))
    with pytest.raises(IndexCorrupt, match="disagree"):
        inverted.load(tmp_path / "inverted", images=len(counts) + 1)
    other = codebook.create("aliked", book.centroids[::-1].copy(), book.fitted_on)
    with pytest.raises(ValueError, match="another codebook"):
        QueryWords(x[:80], other).scores(again)
