"""Sentence splitters and word tokenizers against MasakhaNER 2.0's own tokenization.

xner turns raw text into unlabeled pools (``xner data sentences``) and tags raw text; a
student trained on MasakhaNER-tokenized sentences sees raw text only through the tokenizer,
so the tokenizer should cut words where MasakhaNER's annotators did. Two measurements on the
languages MasakhaNEWS and MasakhaNER share:

1. **Found in both** (unbiased, few languages): MasakhaNER test sentences whose characters
   (whitespace removed) occur verbatim in MasakhaNEWS articles. The article's raw span is
   tokenized and compared with the gold tokens (exact-sentence rate, token F1 over
   character spans).
2. **Detokenized** (every language): MasakhaNER test sentences joined with the simple rule
   "no space before ``. , ; : ! ? ) ] } %`` and none after ``( [ {``", retokenized, and
   compared the same way; groups of 4 consecutive sentences joined by a space give the
   sentence-boundary F1 (a boundary is a character offset between two sentences).

    python benchmarks/sentence_split.py --data-dir ../shared/data --max-sentences 2000

Candidates (PyPI), scored separately: sentence splitters blingfire, pysbd, nltk (untrained
Punkt: its trained models are not on PyPI); word tokenizers blingfire, sacremoses (Moses),
nltk (Treebank-derived) and Unicode default word boundaries (UAX #29) of the `regex` package.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

LANGS = ("hau", "ibo", "lug", "pcm", "sna", "swa", "xho", "yor")
NO_SPACE_BEFORE = set(".,;:!?)]}%")
NO_SPACE_AFTER = set("([{")

Splitter = Callable[[str], list[str]]
Tokenizer = Callable[[str], list[str]]


def _candidates() -> tuple[dict[str, Splitter], dict[str, Tokenizer]]:
    """The sentence splitters and word tokenizers compared (each scored on its own)."""
    import blingfire
    import pysbd
    import regex
    from nltk.tokenize import NLTKWordTokenizer, PunktSentenceTokenizer
    from sacremoses import MosesTokenizer

    segmenter = pysbd.Segmenter(language="en", clean=False)
    moses = MosesTokenizer(lang="en")
    punkt, treebank = PunktSentenceTokenizer(), NLTKWordTokenizer()
    splitters: dict[str, Splitter] = {
        "blingfire": lambda text: blingfire.text_to_sentences(text).split("\n"),
        "pysbd": lambda text: [s.strip() for s in segmenter.segment(text)],
        "nltk punkt": punkt.tokenize,
    }
    tokenizers: dict[str, Tokenizer] = {
        "blingfire": lambda text: blingfire.text_to_words(text).split(),
        "sacremoses": lambda text: moses.tokenize(text, escape=False),
        "nltk treebank": lambda text: [text[a:b] for a, b in treebank.span_tokenize(text)],
        "regex UAX#29": lambda text: [p for p in regex.split(r"(?wV1)\b", text) if p.strip()],
    }
    return splitters, tokenizers


def read_gold(path: Path) -> list[list[str]]:
    """Token lists of a MasakhaNER ``token TAG`` file."""
    sentences, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if fields:
            current.append(unicodedata.normalize("NFC", fields[0]))
        elif current:
            sentences.append(current)
            current = []
    return sentences + ([current] if current else [])


def read_news(folder: Path) -> list[str]:
    """Headlines and texts of every MasakhaNEWS split of a language (NFC)."""
    csv.field_size_limit(1 << 30)
    texts = []
    for path in sorted(folder.glob("*.tsv.gz")):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                texts += [unicodedata.normalize("NFC", row["headline"]), unicodedata.normalize("NFC", row["text"])]
    return texts


def raw_spans(gold: list[list[str]], news: list[str], min_tokens: int = 5) -> list[tuple[list[str], str]]:
    """(gold tokens, raw news span) for gold sentences whose characters occur in the news."""
    blob = "\n".join(news)
    stripped_index = [i for i, ch in enumerate(blob) if not ch.isspace()]
    stripped = "".join(blob[i] for i in stripped_index)
    pairs = []
    for tokens in gold:
        key = "".join(tokens)
        at = stripped.find(key) if len(tokens) >= min_tokens else -1
        if at >= 0:
            pairs.append((tokens, blob[stripped_index[at] : stripped_index[at + len(key) - 1] + 1]))
    return pairs


def detokenize(tokens: list[str]) -> str:
    """Join tokens with the neutral punctuation rule of the module docstring."""
    out = tokens[0]
    for prev, token in zip(tokens, tokens[1:]):
        glue = token in NO_SPACE_BEFORE or prev in NO_SPACE_AFTER
        out += ("" if glue else " ") + token
    return out


def _offsets(tokens: list[str]) -> set[tuple[int, int]]:
    """Character spans of tokens over the whitespace-free text (tokenizer-independent)."""
    spans, at = set(), 0
    for token in tokens:
        width = len("".join(token.split()))
        spans.add((at, at + width))
        at += width
    return spans


def token_scores(pairs: list[tuple[list[str], list[str]]]) -> tuple[float, float]:
    """(exact-sentence %, token span F1 %) of predicted vs gold token lists."""
    exact = sum(gold == pred for gold, pred in pairs)
    hit = gold_n = pred_n = 0
    for gold, pred in pairs:
        g, p = _offsets(gold), _offsets(pred)
        hit, gold_n, pred_n = hit + len(g & p), gold_n + len(g), pred_n + len(p)
    return 100 * exact / len(pairs), 100 * 2 * hit / (gold_n + pred_n)


def boundary_f1(groups: list[list[str]], split: Splitter) -> float:
    """Sentence-boundary F1 over groups of consecutive detokenized sentences."""
    hit = gold_n = pred_n = 0
    for group in groups:
        gold, at = set(), 0
        for sentence in group[:-1]:
            at += len("".join(sentence.split()))
            gold.add(at)
        pred, at = set(), 0
        for sentence in [s for s in split(" ".join(group)) if s.strip()][:-1]:
            at += len("".join(sentence.split()))
            pred.add(at)
        hit, gold_n, pred_n = hit + len(gold & pred), gold_n + len(gold), pred_n + len(pred)
    return 100 * 2 * hit / max(gold_n + pred_n, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("XNER_DATA_DIR", "../shared/data"))
    parser.add_argument("--langs", default=",".join(LANGS))
    parser.add_argument("--max-sentences", type=int, default=2000, help="gold test sentences per language")
    args = parser.parse_args()
    root = Path(args.data_dir)
    splitters, tokenizers = _candidates()
    scores: dict[str, dict[str, list[float]]] = {}
    print("| lang | tokenizer | found: n | found: exact % | found: token F1 | detok: exact % | detok: token F1 |")
    print("|---|---|---|---|---|---|---|")
    for lang in args.langs.split(","):
        gold = read_gold(root / "masakhaner2" / lang / "test.txt")[: args.max_sentences]
        found = raw_spans(gold, read_news(root / "masakhanews" / lang))
        detok = [detokenize(tokens) for tokens in gold]
        groups = [detok[i : i + 4] for i in range(0, len(detok) - 3, 4)]
        for name, tokenize in tokenizers.items():
            found_scores = token_scores([(g, tokenize(raw)) for g, raw in found]) if found else (float("nan"),) * 2
            row = [*found_scores, *token_scores([(g, tokenize(text)) for g, text in zip(gold, detok)])]
            scores.setdefault(name, {}).setdefault("found", []).extend([row[0]] * len(found))
            scores[name].setdefault("found_f1", []).extend([row[1]] * len(found))
            scores[name].setdefault("detok", []).append(row[2])
            scores[name].setdefault("detok_f1", []).append(row[3])
            print(f"| {lang} | {name} | {len(found)} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
        for name, split in splitters.items():
            scores.setdefault(name + " (splitter)", {}).setdefault(lang, []).append(boundary_f1(groups, split))
    print("\n| tokenizer | found: exact % (sentence-weighted) | found: token F1 | detok: exact % (mean) | detok: token F1 |")
    print("|---|---|---|---|---|")
    for name in tokenizers:
        means = [sum(v) / len(v) for v in scores[name].values()]
        print(f"| {name} | " + " | ".join(f"{m:.1f}" for m in means) + " |")
    langs = args.langs.split(",")
    print("\n| splitter | " + " | ".join(langs) + " | mean |")
    print("|---|" + "---|" * (len(langs) + 1))
    for name in splitters:
        values = [scores[name + " (splitter)"][lang][0] for lang in langs]
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in values) + f" | {sum(values) / len(values):.1f} |")


if __name__ == "__main__":
    main()
