"""A first stage that does not keep every descriptor in memory, measured beside today's.

Today a search looks up each query descriptor's nearest database descriptors (Annoy over
every stored row, re-ranked by the int8 rows) and lets them vote for a shortlist of images;
that keeps about 317 bytes per descriptor in memory. The alternative measured here is an
ASMK*-style aggregated shortlist (Tolias et al., "To aggregate or not to aggregate", and
the DELF codebase's retrieval): a codebook of visual words; per image and word, the
residuals of the image's descriptors that fall in the word, summed and binarized (one
128-bit signature); per word, the images that hold it with their signatures (an inverted
file); a query scores each image by the selective match kernel over the words they share
(the normalised Hamming similarity u of the two signatures, counted as u**3 when positive),
normalised by both images' word counts. The shortlist is the best-scored images.

Both run on one index: the 95 real photos' features plus generated images built from real
descriptors of photos that are never queries (bench/synthetic.py); each of the 79 landmark
photos queries it with itself excluded. For each first stage: the share of queries whose
shortlist holds at least one other photo of their landmark (what verification then needs),
the share of those photos it holds, and the bytes it keeps in memory per stored descriptor.

    python -m bench.shortlist [--images 1000] [--words 8192] [--multiple 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS
from bench.ivfpq import PROBES, SUBSPACES, IvfPq
from search_service.index import codebook, inverted

SHORTLIST = 20


class ExactWords(codebook.Codebook):
    """The same words found by a full product instead of Annoy (what Annoy's lookup is
    measured against)."""

    @classmethod
    def of(cls, book: codebook.Codebook) -> ExactWords:
        return cls(book.backend, book.centroids, book.annoy, book.version, book.fitted_on)

    def nearest(self, x: np.ndarray, per_row: int = 1, search_k: int = -1) -> np.ndarray:
        return codebook.assign_exact(x, self.centroids, per_row).astype(np.int32)


def measure(images: int, words: int, multiple: int, cache: Path | None = None) -> dict:
    from bench.extraction import extract_real, load_pool, load_real
    from bench.synthetic import DescriptorPool, synthetic_images
    from search_service.engine import SearchEngine
    from search_service.limits import RequestLimits
    from search_service.search.lookup import lookup_rows
    from search_service.search.shortlist import QueryWords
    from search_service.search.votes import shortlist, vote

    with tempfile.TemporaryDirectory() as tmp:
        if cache is None or not cache.exists():
            cache = cache or Path(tmp) / "real.npz"
            extract_real(cache, "aliked")
        database = load_real(cache)
        ids, labels, feats = (list(column) for column in zip(*database, strict=True))
        pool = DescriptorPool(load_pool(cache))
        database += [
            (i, "padding", f) for i, f in synthetic_images(pool, images - len(ids), 1000, "aliked")
        ]
        descriptors = sum(len(f) for *_, f in database)
        queries = [n for n, lab in enumerate(labels) if lab != "distractor"]

        engine = SearchEngine(
            Path(tmp) / "index", background=False, limits=RequestLimits(max_add_features=1 << 40)
        )
        engine.add([(i, lab, {}, f) for i, lab, f in database])
        p = engine.params
        voted, voted_ms = [], []
        for n in queries:
            start = time.perf_counter()
            found = engine._hits(feats[n], p.k, [ids[n]], lambda: True)
            assert found is not None
            view, hits = found
            chosen = shortlist(
                vote(hits, len(view.images)), SHORTLIST, p.min_votes,
                lambda i, view=view: view.images[i].image_id,
            )  # fmt: skip
            voted_ms.append((time.perf_counter() - start) * 1e3)
            voted.append([view.images[i].image_id for i in chosen])
        # every byte of its segments is read by lookups and must stay in memory (mmapped)
        resident = engine.info()["bytes_per_descriptor"]
        engine.close()

        every = np.concatenate([f.descriptors for *_, f in database])
        start = time.perf_counter()
        book = codebook.create("aliked", codebook.fit(every, words), len(every))
        trained_s = time.perf_counter() - start
        stored = Path(tmp) / "words"
        codebook.save(book, stored)
        # what each way of finding words keeps in memory: the words, and Annoy's trees
        words_bytes = {
            "annoy": sum((stored / f).stat().st_size for f in ("centroids.npy", "words.ann")),
            "exact": book.centroids.nbytes,
        }
        counts = np.array([len(f) for *_, f in database], np.int64)
        aggregated: dict[str, tuple[list, list, float, int, int]] = {}
        for assignment, words_of in (("annoy", book), ("exact", ExactWords.of(book))):
            start = time.perf_counter()
            inv = inverted.build(every, np.cumsum(counts) - counts, counts, words_of)
            built_s = time.perf_counter() - start
            chosen_lists, times = [], []
            for n in queries:
                start = time.perf_counter()
                score = QueryWords(feats[n].descriptors, words_of, multiple).scores(inv)
                score[n] = -np.inf  # the query itself is excluded
                best = np.argsort(-score, kind="stable")[:SHORTLIST]
                times.append((time.perf_counter() - start) * 1e3)
                chosen_lists.append([database[i][0] for i in best])
            aggregated[assignment] = (chosen_lists, times, built_s, inv.nbytes(), inv.entries)

        start = time.perf_counter()
        pq = IvfPq(every, np.repeat(np.arange(len(database)), counts), book.centroids)
        pq_built_s = time.perf_counter() - start
        quantized, quantized_ms = [], []
        limit = p.lookup_features_for("aliked")
        for n in queries:
            start = time.perf_counter()
            which = lookup_rows(feats[n].strengths, len(feats[n]), limit)
            votes = pq.votes(feats[n].descriptors[which], len(database))
            votes[n] = -1  # the query itself is excluded
            chosen = shortlist(votes, SHORTLIST, p.min_votes, lambda i: database[i][0])
            quantized_ms.append((time.perf_counter() - start) * 1e3)
            quantized.append([database[i][0] for i in chosen])

    def recall(lists: list[list[str]]) -> dict:
        hit = held = relevant = 0
        for n, chosen in zip(queries, lists, strict=True):
            same = {ids[m] for m in range(len(ids)) if labels[m] == labels[n] and m != n}
            got = len(same & set(chosen))
            hit += got > 0
            held += got
            relevant += len(same)
        return {"queries_with_a_right_photo": round(hit / len(queries), 3),
                "right_photos_held": round(held / relevant, 3)}  # fmt: skip

    return {
        "images": len(database),
        "descriptors": descriptors,
        "shortlist": SHORTLIST,
        "votes": {
            **recall(voted),
            "bytes_in_memory_per_descriptor": round(float(resident), 1),
            "p50_ms": round(float(np.median(voted_ms)), 1),
        },
        "aggregated": {
            assignment: {
                **recall(chosen),
                "words": words,
                "query_words_per_descriptor": multiple,
                "entries": entries,
                # the inverted file's arrays and the words (with Annoy's trees for "annoy")
                "bytes_in_memory_per_descriptor": round(
                    (nbytes + words_bytes[assignment]) / descriptors, 1
                ),
                "p50_ms": round(float(np.median(times)), 1),
                "indexing_s": round(built_s, 1),
            }
            for assignment, (chosen, times, built_s, nbytes, entries) in aggregated.items()
        },
        "codebook_s": round(trained_s, 1),
        "ivf_pq": {
            **recall(quantized),
            "bytes_per_code": SUBSPACES,
            "probes": PROBES,
            # codes, row images, word starts and sub-codebooks, and the words
            "bytes_in_memory_per_descriptor": round(
                (pq.nbytes() + book.centroids.nbytes) / descriptors, 1
            ),
            "p50_ms": round(float(np.median(quantized_ms)), 1),
            "indexing_s": round(pq_built_s, 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--words", type=int, default=8192)
    parser.add_argument("--multiple", type=int, default=1, help="query words per descriptor")
    parser.add_argument("--out", default=str(RESULTS / "shortlist.json"))
    parser.add_argument("--cache", help="the real photos' features (bench/extraction.py)")
    args = parser.parse_args()
    from bench.machine import describe

    result = {
        "machine": describe(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": f"python -m bench.shortlist --images {args.images} --words {args.words} "
        f"--multiple {args.multiple}",
        **measure(args.images, args.words, args.multiple, Path(args.cache) if args.cache else None),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
