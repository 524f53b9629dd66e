"""The index's visual words: fitted by the first segment build after the index holds
codebook_min_rows descriptors, on a sample of them; named in the manifest with that
segment; the same for every later segment (seals, bulk adds, merges in the child
process), and a segment written before them is rewritten with them; kept across a
restart. A crash between the fit and the commit leaves nothing
named."""

import json

import numpy as np

from search_service.index import codebook, manifest
from search_service.index.codebook import MIN_ROWS_PER_WORD
from search_service.index.store_settings import StoreSettings
from search_service.index.vocabulary import Words
from search_service.index.wiring import Index
from search_service.index.writing import OnConflict, Writer
from search_service.search.shortlist import QueryWords, by_words
from tests.unit.test_write_path import KIND, image


def index_at(path, words: int = 64, min_rows: int = 0) -> Index:
    settings = StoreSettings(
        n_trees=2,
        seal_descriptors=1000,
        idle_merge_seconds=0,
        codebook_words=words,
        codebook_min_rows=min_rows,
    )
    return Index(path, settings, background=False)


def test_words_are_fitted_once_the_index_holds_enough_and_used_from_then_on(tmp_path):
    index = index_at(tmp_path / "index", min_rows=1500)
    store, writer = index.store, Writer(index.store)
    writer.add([image(1)], KIND, OnConflict.ERROR)  # 500 descriptors in the buffer
    assert index.sealer.seal()
    assert store.vocabulary.codebook is None and store.segments[0].inverted is None
    writer.add([image(i) for i in range(2, 5)], KIND, OnConflict.ERROR)  # a bulk add: 2,000
    book = store.vocabulary.codebook
    assert book is not None and book.words == min(64, book.fitted_on // MIN_ROWS_PER_WORD)
    assert json.loads((store.dir / manifest.NAME).read_text())["codebook"] == book.path.name
    assert [s.inverted is not None for s in store.segments] == [False, True]
    writer.remove(["img-2"])
    # a segment without words in an index that has them is due a rewrite, alone
    assert index.merger.needs_merge() and index.merger.plan() == store.segments[:1]
    assert index.merger.merge()  # in the child process: the first segment gets words too
    assert store.vocabulary.codebook is book
    assert [s.inverted.codebook_version for s in store.segments] == [book.version] * 2
    assert not index.merger.needs_merge()
    merged = store.segments[0]
    assert merged.inverted.image_words.shape == (len(merged.images),)
    index.close()
    again = index_at(tmp_path / "index", min_rows=1500)
    assert again.store.vocabulary.codebook.version == book.version
    again.close()


def test_a_small_first_build_fits_fewer_words(tmp_path):
    index = index_at(tmp_path / "index", words=8192)
    Writer(index.store).add([image(1, n=300)], KIND, OnConflict.ERROR)
    assert index.sealer.seal()
    assert index.store.vocabulary.codebook.words == 300 // MIN_ROWS_PER_WORD
    index.close()


def test_words_fitted_before_a_crash_are_not_named_and_are_deleted(tmp_path):
    index = index_at(tmp_path / "index")
    store = index.store
    Writer(store).add([image(1)], KIND, OnConflict.ERROR)
    batch = store.buffer_to_seal()
    # fitted, then the crash
    book = store.vocabulary.for_build(batch.images, "aliked", batch.dimension)
    index.close()
    assert (store.dir / book.path.name).is_dir()
    assert json.loads((store.dir / manifest.NAME).read_text())["codebook"] == ""
    again = index_at(tmp_path / "index")
    assert not (store.dir / book.path.name).exists()
    assert again.store.vocabulary.codebook is None and "img-1" in again.store.view.by_id
    again.close()


def test_a_shard_without_a_codebook_given_fits_none(tmp_path):
    """Its words would differ from the other shards': it is searched by its rows."""
    from search_service.config import SearchConfig

    settings = SearchConfig(shard_index=1, codebook_min_rows=1).store_settings()
    assert not settings.fit_codebook
    index = Index(tmp_path / "index", settings, background=False)
    Writer(index.store).add([image(i) for i in range(3)], KIND, OnConflict.ERROR)
    index.sealer.seal()
    assert index.store.vocabulary.codebook is None
    assert index.store.segments and all(s.annoy is not None for s in index.store.segments)
    index.close()
    assert SearchConfig(codebook_min_rows=1).store_settings().fit_codebook  # one index fits


def best_by_words(store, image_id: str) -> str:
    """The image the words shortlist first for ``image_id``'s own descriptors."""
    view = store.view
    features = view.features_of(view.by_id[image_id])[0]
    words = [QueryWords(features, book) for book in view.codebooks]
    choice = by_words(view, words, 1, np.zeros(0, np.int64))
    return view.images[int(choice.image[0])].image_id


def test_the_words_grow_with_the_index_and_its_segments_move_to_them(tmp_path):
    """31 words fitted on 500 descriptors; at 9,500 the index could have 64 (more than
    REFIT_GROWTH times 31 would need): the next merge fits them and builds with them, both
    are named until the merger has rewritten the last segment built with the first, whose
    folder then goes; seals use the words there are, and do not fit."""
    index = index_at(tmp_path / "index", words=64, min_rows=500)
    store, writer = index.store, Writer(index.store)
    writer.add([image(1)], KIND, OnConflict.ERROR)
    assert index.sealer.seal()
    first = store.vocabulary.codebook
    assert first.words == 500 // MIN_ROWS_PER_WORD == 31
    writer.add([image(2), image(3)], KIND, OnConflict.ERROR)  # bulk adds: builds
    writer.add([image(i) for i in range(4, 20)], KIND, OnConflict.ERROR)
    assert store.vocabulary.codebook is first  # a seal's or bulk add's build does not fit
    # the two small segments are merged (the large one would be rewritten for them)
    assert index.merger.merge()
    grown = store.vocabulary.codebook
    assert grown.words == 64 and store.vocabulary.state.previous is first
    assert [s.inverted.codebook_version for s in store.segments] == [grown.version, first.version]
    listed = json.loads((store.dir / manifest.NAME).read_text())
    assert (listed["codebook"], listed["previous_codebook"]) == (grown.path.name, first.path.name)
    assert store.view.codebooks == (grown, first)
    for i in (1, 2, 10):  # each segment scored by its own words
        assert best_by_words(store, f"img-{i}") == f"img-{i}"
    index.close()

    again = index_at(tmp_path / "index", words=64, min_rows=500)  # a restart meanwhile
    store = again.store
    assert store.vocabulary.state.previous.version == first.version
    assert again.merger.needs_merge() and again.merger.plan() == store.segments[1:]
    assert again.merger.merge()  # in the child process, with the new words
    assert [s.inverted.codebook_version for s in store.segments] == [grown.version] * 2
    assert store.vocabulary.state.previous is None
    assert json.loads((store.dir / manifest.NAME).read_text())["previous_codebook"] == ""
    assert not (store.dir / first.path.name).exists()
    assert [b.version for b in store.view.codebooks] == [grown.version]
    assert not again.merger.needs_merge()
    for i in (1, 2, 10):
        assert best_by_words(store, f"img-{i}") == f"img-{i}"
    again.close()


def test_words_given_to_a_shard_do_not_grow(tmp_path):
    """Shards of one coordinator share the words they were given: an index that took them
    keeps them however large it grows."""
    small = index_at(tmp_path / "small", words=64, min_rows=500)
    Writer(small.store).add([image(1)], KIND, OnConflict.ERROR)
    assert small.sealer.seal()
    given = small.store.vocabulary.codebook
    small.close()
    settings = StoreSettings(
        n_trees=2, seal_descriptors=1000, codebook_words=64, codebook=str(given.path)
    )
    index = Index(tmp_path / "index", settings, background=False)
    writer = Writer(index.store)
    for first in (2, 8):  # two bulk adds: two builds
        writer.add([image(i) for i in range(first, first + 6)], KIND, OnConflict.ERROR)
    assert index.merger.merge()  # where the index's own words would grow
    versions = [s.inverted.codebook_version for s in index.store.segments]
    assert versions == [given.version]
    assert index.store.vocabulary.codebook.version == given.version
    assert index.store.vocabulary.state.previous is None
    index.close()


def test_words_fitted_for_codebook_words_do_not_grow_even_a_few_short(tmp_path):
    """A two-level fit for 65,536 words may give 65,531: fitted for the full count, they
    are never fitted again, however the index grows (each refit rewrites every segment)."""
    index = index_at(tmp_path / "index", words=64, min_rows=1100)
    store, writer = index.store, Writer(index.store)
    writer.add([image(i) for i in range(1, 4)], KIND, OnConflict.ERROR)  # 1,500: fits 64
    fitted = store.vocabulary.codebook
    assert fitted.words == 64 and fitted.fitted_on >= 64 * MIN_ROWS_PER_WORD
    # as a two-level fit a few words short would be: fewer words, fitted for all 64
    codebook.save(codebook.create("aliked", fitted.vectors[:60], fitted.fitted_on), tmp_path / "s")
    short = codebook.load(tmp_path / "s")
    store.vocabulary.state = Words(short, store.vocabulary.name)
    writer.add([image(i) for i in range(4, 20)], KIND, OnConflict.ERROR)
    assert index.merger.merge()
    assert store.vocabulary.codebook is short and store.vocabulary.state.previous is None
    index.close()


def test_a_fit_stops_when_the_index_closes_and_the_next_start_fits_again(tmp_path):
    import pytest

    from search_service.errors import Stopped

    index = index_at(tmp_path / "index", min_rows=1500)
    store = index.store
    for i in range(1, 4):  # 1,500 descriptors in the buffer: its seal fits the words
        Writer(store).add([image(i)], KIND, OnConflict.ERROR)
    index.stop.set()  # as close() begins
    with pytest.raises(Stopped):
        index.sealer.seal()
    assert store.vocabulary.codebook is None and not store.segments
    assert not [p.name for p in store.dir.iterdir() if p.name.startswith("words")]
    index.close()
    again = index_at(tmp_path / "index", min_rows=1500)
    assert again.sealer.seal() and again.store.vocabulary.codebook is not None
    assert {"img-1", "img-2", "img-3"} <= set(again.store.view.by_id)
    again.close()
