"""Near-duplicate leakage: how similar raw news sentences get to MasakhaNER's dev/test sentences.

For each language, the MasakhaNEWS sentences (split and tokenized as ``xner data sentences``
does, length-filtered) are compared with every MasakhaNER dev and test sentence by the exact
Jaccard similarity of their character 5-gram sets (a sparse matrix product, brute force), and
with the MinHash LSH index xner uses (:class:`xner.data.neardup.NearDuplicates`). Printed per
threshold: news sentences whose best match reaches it (brute force), the share of them LSH
finds (recall; its precision is 1 by construction), and example pairs from each similarity
band, to see where "the same sentence, lightly edited" ends.

    python benchmarks/near_duplicates.py --data-dir ../shared/data --langs xho,sna,yor
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from scipy import sparse

from xner.data import load_split
from xner.data.neardup import NearDuplicates, _shingles, sentence_key
from xner.data.rawpool import build_pool

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def _matrix(keys: list[str], columns: dict[int, int]) -> sparse.csr_matrix:
    rows, cols = [], []
    for i, key in enumerate(keys):
        for h in _shingles(key).tolist():
            rows.append(i)
            cols.append(columns.setdefault(h, len(columns)))
    return sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)))


def best_jaccard(pool: list[str], gold: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Exact best Jaccard of each pool key against the gold keys, and the gold index."""
    columns: dict[int, int] = {}
    a, b = _matrix(pool, columns), _matrix(gold, columns)
    a.resize(a.shape[0], len(columns))
    b.resize(b.shape[0], len(columns))
    common = (a @ b.T).tocoo()
    size_a, size_b = np.asarray(a.sum(1)).ravel(), np.asarray(b.sum(1)).ravel()
    jaccard = common.data / (size_a[common.row] + size_b[common.col] - common.data)
    best, where = np.zeros(len(pool)), np.full(len(pool), -1)
    order = np.argsort(jaccard)
    best[common.row[order]], where[common.row[order]] = jaccard[order], common.col[order]
    return best, where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("XNER_DATA_DIR", "../shared/data"))
    parser.add_argument("--langs", default="xho,sna,yor")
    args = parser.parse_args()
    root = Path(args.data_dir)
    print("| lang | news sentences | " + " | ".join(f">= {t}: n (LSH recall %)" for t in THRESHOLDS) + " |")
    print("|---|---|" + "---|" * len(THRESHOLDS))
    examples = []
    for lang in args.langs.split(","):
        gold = [s.tokens for split in ("dev", "test") for s in load_split(lang, split, "masakhaner2", root)]
        news, _ = build_pool(sorted((root / "masakhanews" / lang).glob("*.tsv.gz")), lang, near_dup=1.0)
        best, where = best_jaccard([sentence_key(t) for t in news], [sentence_key(t) for t in gold])
        cells = []
        for threshold in THRESHOLDS:
            start = time.perf_counter()
            index = NearDuplicates(threshold)
            for tokens in gold:
                index.add(tokens)
            hits = np.flatnonzero(best >= threshold)
            found = sum(index.match(news[i]) for i in hits)
            cells.append(f"{len(hits)} ({100 * found / max(len(hits), 1):.0f})")
        print(f"| {lang} | {len(news)} | " + " | ".join(cells) + " |")
        for low, high in zip(THRESHOLDS, THRESHOLDS[1:]):
            band = np.flatnonzero((best >= low) & (best < high))[:2]
            examples += [(lang, best[i], " ".join(news[i]), " ".join(gold[where[i]])) for i in band]
    print("\nexamples (lang, Jaccard, news sentence / gold sentence):")
    for lang, jaccard, raw, gold_text in examples:
        print(f"- {lang} {jaccard:.2f}\n    news: {raw[:160]}\n    gold: {gold_text[:160]}")


if __name__ == "__main__":
    main()
