"""The words kept as int8, as the index keeps descriptors: a quarter of float words'
memory, the words a product with their float rows finds, residuals against the rows they
stand for, and codebooks of float words (formats 1 and 2) still read and used as written."""

import numpy as np

from search_service.index import codebook, inverted
from search_service.index.compact import dequantize_descriptors
from tests.unit.test_aggregated_shortlist import clustered, unit

D = 32
WORDS = 64


def fitted_words(words: int = WORDS) -> tuple[codebook.Codebook, np.ndarray]:
    rng = np.random.default_rng(0)
    x = clustered(words * 40, unit(rng.standard_normal((words, D))), rng)
    return codebook.fitted("aliked", x, words, rounds=3), x


def test_fitted_words_are_int8_a_quarter_of_float_words_in_memory():
    book, _ = fitted_words()
    assert book.vectors.dtype == np.int8 and book.vectors.shape == (WORDS, D)
    assert np.abs(book.vectors).max(axis=1).tolist() == [127] * WORDS  # scaled like rows
    # D int8 and one float32 length per word: (32 + 4) bytes, against 4 * 32 as float
    assert book.bytes_in_memory() == WORDS * (D + 4)
    assert np.allclose(np.linalg.norm(book.centroids, axis=1), 1.0, atol=1e-6)


def two_level_words() -> tuple[codebook.Codebook, np.ndarray]:
    rng = np.random.default_rng(3)
    x = unit(rng.standard_normal((codebook.TWO_LEVEL_WORDS * 2, 8)))
    return codebook.fitted("aliked", x, codebook.TWO_LEVEL_WORDS, rounds=1, sample_per_word=2), x


def test_int8_words_are_assigned_as_their_float_rows_are():
    for book, x in (fitted_words(), two_level_words()):
        rows = book.centroids  # the unit rows the int8 words stand for
        sims = x[:2000] @ rows.T
        found = book.assign(x[:2000], per_row=2)
        best = np.take_along_axis(sims, found, axis=1)
        if book.cells is None:  # a full product: the nearest word, to the last bit
            assert np.array_equal(found, codebook.assign_exact(x[:2000], rows, per_row=2))
        # nearest first, and as near as the float rows' nearest (two levels: mostly)
        assert np.all(best[:, 0] >= best[:, 1])
        assert (np.abs(best[:, 0] - sims.max(axis=1)) < 1e-6).mean() >= 0.97


def test_residuals_are_taken_against_the_rows_the_words_stand_for():
    book, _ = fitted_words()
    word = 5
    row = book.rows(np.array([word]))[0]
    assert np.allclose(row, dequantize_descriptors(book.vectors[[word]])[0], atol=1e-6)
    # two descriptors on either side of the word's row along one axis: their summed
    # residual is the sum of the offsets, whatever the word's rounding
    offset = np.zeros(D, np.float32)
    offset[3] = 0.05
    x = np.stack([row + offset, row + 2 * offset])
    words, bits = inverted.aggregate(x, np.array([word, word]), book)
    expected = np.packbits((3 * offset) > 0)
    assert words.tolist() == [word] and np.array_equal(bits[0], expected)


def test_float_words_are_read_and_used_as_written(tmp_path):
    """A codebook written before words were int8 keeps its float rows: the same version,
    so the segments built with it still match it, and the same assignments."""
    rng = np.random.default_rng(4)
    x = clustered(3000, unit(rng.standard_normal((WORDS, D))), rng)
    old = codebook.create("aliked", codebook.fit(x, WORDS, rounds=3), len(x))
    codebook.save(old, tmp_path / "words")
    again = codebook.load(tmp_path / "words")
    assert again.vectors.dtype == np.float32 and again.inverse_norms is None
    assert again.version == old.version == codebook.version_of(old.vectors)
    assert again.bytes_in_memory() == WORDS * D * 4
    assert np.array_equal(again.assign(x, 2), codebook.assign_exact(x, old.vectors, 2))
