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

    python -m bench.shortlist [--images 1000] [--words 16384] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS

SHORTLIST = 20
ALPHA = 3.0  # the selective match kernel's exponent: u**ALPHA for u > 0
BITS = 128


def kmeans(sample: np.ndarray, words: int, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """Lloyd's k-means on unit vectors (spherical: centroids renormalised), from a random
    choice of the sample."""
    centroids = sample[rng.choice(len(sample), words, replace=False)].copy()
    for _ in range(rounds):
        nearest = assign(sample, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, nearest, sample)
        counts = np.bincount(nearest, minlength=words)
        empty = counts == 0
        sums[empty] = sample[rng.choice(len(sample), int(empty.sum()), replace=False)]
        centroids = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    return centroids.astype(np.float32)


def assign(x: np.ndarray, centroids: np.ndarray, block: int = 8192) -> np.ndarray:
    """The nearest word of each row (largest dot product: unit vectors)."""
    out = np.empty(len(x), np.int64)
    for lo in range(0, len(x), block):
        out[lo : lo + block] = (x[lo : lo + block] @ centroids.T).argmax(axis=1)
    return out


def signatures(x: np.ndarray, words: np.ndarray, centroids: np.ndarray):
    """Per word present: the summed residuals, binarized and packed: (words [W], bits [W, 16])."""
    order = np.argsort(words, kind="stable")
    w, xs = words[order], x[order]
    present, starts = np.unique(w, return_index=True)
    sums = np.add.reduceat(xs - centroids[w], starts, axis=0)
    return present, np.packbits(sums > 0, axis=1)


class InvertedFile:
    def __init__(self, centroids: np.ndarray) -> None:
        self.centroids = centroids
        self.postings: dict[int, tuple[list[int], list[np.ndarray]]] = {}
        self.word_counts: list[int] = []

    def add(self, image: int, descriptors: np.ndarray) -> None:
        present, bits = signatures(descriptors, assign(descriptors, self.centroids), self.centroids)
        for word, b in zip(present.tolist(), bits, strict=True):
            images, sigs = self.postings.setdefault(word, ([], []))
            images.append(image)
            sigs.append(b)
        self.word_counts.append(len(present))

    def freeze(self) -> None:
        self.frozen = {
            w: (np.array(i, np.int32), np.stack(s)) for w, (i, s) in self.postings.items()
        }
        self.norms = 1.0 / np.sqrt(np.maximum(np.array(self.word_counts, np.float64), 1))

    def entries(self) -> int:
        return sum(len(i) for i, _ in self.frozen.values())

    def scores(self, descriptors: np.ndarray) -> np.ndarray:
        present, bits = signatures(descriptors, assign(descriptors, self.centroids), self.centroids)
        score = np.zeros(len(self.word_counts), np.float64)
        for word, b in zip(present.tolist(), bits, strict=True):
            found = self.frozen.get(word)
            if found is None:
                continue
            images, sigs = found
            hamming = np.bitwise_count(np.bitwise_xor(sigs, b)).sum(axis=1, dtype=np.int64)
            u = 1.0 - 2.0 * hamming / BITS
            np.add.at(score, images, np.where(u > 0, u**ALPHA, 0.0))
        return score * self.norms / np.sqrt(max(len(present), 1))


def measure(images: int, words: int, rounds: int, cache: Path | None = None) -> dict:
    from bench.extraction import extract_real
    from bench.synthetic import DescriptorPool, synthetic_images
    from search_service.engine import SearchEngine
    from search_service.limits import RequestLimits
    from search_service.search.votes import shortlist, vote

    with tempfile.TemporaryDirectory() as tmp:
        if cache is None or not cache.exists():
            cache = cache or Path(tmp) / "real.npz"
            extract_real(cache, "aliked")
        real = np.load(cache)
        ids, labels = real["ids"].tolist(), real["labels"].tolist()
        from landmark.wire import Features

        feats = [
            Features(
                "aliked",
                real[f"l{i}"],
                real[f"d{i}"],
                tuple(int(v) for v in real["sizes"][i]),
                strengths=real[f"s{i}"],
            )
            for i in range(len(ids))
        ]
        padding = list(
            synthetic_images(DescriptorPool(real["pool"]), images - len(ids), 1000, "aliked")
        )
        database = [(i, lab, f) for i, lab, f in zip(ids, labels, feats, strict=True)]
        database += [(i, "padding", f) for i, f in padding]
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

        rng = np.random.default_rng(0)
        every = np.concatenate([f.descriptors for *_, f in database])
        start = time.perf_counter()
        centroids = kmeans(every[rng.choice(len(every), 40 * words)], words, rounds, rng)
        trained_s = time.perf_counter() - start
        inverted = InvertedFile(centroids)
        start = time.perf_counter()
        for image, (*_, f) in enumerate(database):
            inverted.add(image, f.descriptors)
        inverted.freeze()
        built_s = time.perf_counter() - start
        aggregated, aggregated_ms = [], []
        for n in queries:
            start = time.perf_counter()
            score = inverted.scores(feats[n].descriptors)
            score[n] = -np.inf  # the query itself is excluded
            best = np.argsort(-score, kind="stable")[:SHORTLIST]
            aggregated_ms.append((time.perf_counter() - start) * 1e3)
            aggregated.append([database[i][0] for i in best])

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

    entries = inverted.entries()
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
            **recall(aggregated),
            "words": words,
            "kmeans_rounds": rounds,
            "entries": entries,
            # per entry: the image (4 bytes) and its signature (16); the codebook as int8
            "bytes_in_memory_per_descriptor": round(
                (entries * (4 + BITS // 8) + words * 128) / descriptors, 1
            ),
            "p50_ms": round(float(np.median(aggregated_ms)), 1),
            "codebook_s": round(trained_s, 1),
            "indexing_s": round(built_s, 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--words", type=int, default=16384)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--out", default=str(RESULTS / "shortlist.json"))
    parser.add_argument("--cache", help="the real photos' features (bench/extraction.py)")
    args = parser.parse_args()
    from bench.machine import describe

    result = {
        "machine": describe(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": f"python -m bench.shortlist --images {args.images} --words {args.words} "
        f"--rounds {args.rounds}",
        **measure(args.images, args.words, args.rounds, Path(args.cache) if args.cache else None),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
