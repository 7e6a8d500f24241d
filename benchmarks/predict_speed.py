"""Prediction speed: ``xner predict`` in each precision vs what a user would write.

On the WikiANN es test set and a MasakhaNER 2.0 test set, with the same trained model, each
method runs in a fresh process (so that its peak RSS is its own) after a warm-up of 64
sentences (for int8 that includes the one-off ONNX export, reported apart):

* plain loop: a Hugging Face model in fp32, sentences sorted by length, batches of 32,
  first-subword argmax (the baseline a user would write);
* ``pipeline("token-classification")`` on the sentences joined by spaces, each word tagged
  by its first token;
* ``xner predict`` (:func:`xner.predict_file`, CoNLL file in and out) in fp32, bf16, int8
  and auto.

Words are given to every method after the model's own normalisation, so that only the
inference differs. Prints sentences/s, entity F1, peak RSS and the ratio to the plain loop;
the last line is ``xner predict --precision auto`` over both test sets.

    python benchmarks/predict_speed.py --es-model models/es --masakhaner-model models/swa --masakhaner-lang swa

A model folder that does not exist is trained first, as ``benchmarks/train_speed.py``'s fast
path trains (2,000 sentences, 2 epochs, top 4 layers; all of a MasakhaNER language's train split).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

_WARMUP = 64
_BATCH = 32


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("XNER_DATA_DIR", "../shared/data"))
    parser.add_argument("--es-model", default="models/bench-es", help="model folder (trained if absent)")
    parser.add_argument("--masakhaner-model", default="models/bench-swa",
                        help="model folder (trained if absent); 'es': the es model, zero-shot")
    parser.add_argument("--masakhaner-lang", default="swa")
    parser.add_argument("--test-size", type=int, default=None, help="first N test sentences (default: all)")
    parser.add_argument("--methods", default="plain,pipeline,fp32,bf16,int8,auto")
    return parser.parse_args()


def ensure_model(folder: str, lang: str, dataset: str, data_dir: str, train_size: int | None) -> str:
    """The model folder, trained first (fast path of train_speed.py) when it does not exist."""
    if (Path(folder) / "xner.json").is_file():
        return folder
    from xner.models.tagger import TrainConfig
    from xner.pipeline import DataSpec, train_model

    print(f"training {folder}: {lang} {dataset}", flush=True)
    config = TrainConfig(epochs=2, lr=3e-4, train_layers=4, patience=None)
    train_model(lang, data=DataSpec(dataset, data_dir), train_size=train_size, config=config, out=folder)
    return folder


def measure(method: str, model_dir: str, lang: str, dataset: str, data_dir: str, test_size: int | None) -> dict:
    """Run one method on the test set in this (fresh) process: sentences/s, F1, peak RSS."""
    from xner.data import load_split
    from xner.metrics import entity_scores
    from xner.models.device import use_all_cores
    from xner.models.tagger import Tagger

    use_all_cores()
    test = load_split(lang, "test", dataset, data_dir)[:test_size]
    tagger = Tagger.load(model_dir)
    run = {"plain": plain_loop, "pipeline": hf_pipeline}.get(method, xner_predict)
    started = time.perf_counter()
    run(tagger, test[:_WARMUP], method)
    warmup = time.perf_counter() - started
    started = time.perf_counter()
    predicted, precision = run(tagger, test, method)
    seconds = time.perf_counter() - started
    f1 = entity_scores([list(s.tags) for s in test], predicted)["f1"]
    return {"sentences_per_s": len(test) / seconds, "f1": f1, "precision": precision, "warmup_s": warmup,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "sentences": len(test)}


def _words(tagger, sentences) -> list[list[str]]:
    normalize = tagger.backbone.normalize or (lambda word: word)
    return [[normalize(word) for word in s.tokens] for s in sentences]


def plain_loop(tagger, sentences, _method) -> tuple[list[list[str]], str]:
    """A user's loop: tokenize, sort by length, batches of 32, fp32, first-subword argmax."""
    import torch

    from xner.decoding import repair_iob2

    tokenizer, model = tagger.backbone.tokenizer, tagger.model.eval()
    encoded = tokenizer(_words(tagger, sentences), is_split_into_words=True, truncation=True, max_length=256)
    order = sorted(range(len(sentences)), key=lambda i: len(encoded["input_ids"][i]))
    predicted: list[list[str]] = [[] for _ in sentences]
    with torch.inference_mode():
        for start in range(0, len(order), _BATCH):
            rows = order[start : start + _BATCH]
            batch = tokenizer.pad({"input_ids": [encoded["input_ids"][i] for i in rows]}, return_tensors="pt")
            labels = model(**batch).logits.argmax(-1)
            for row, i in enumerate(rows):
                first = [position for position, word in enumerate(encoded.word_ids(i))
                         if word is not None and (position == 0 or encoded.word_ids(i)[position - 1] != word)]
                tags = [tagger.labels[int(j)] for j in labels[row, first]]
                predicted[i] = repair_iob2(tags + ["O"] * (len(sentences[i]) - len(tags)))
    return predicted, "fp32"


def hf_pipeline(tagger, sentences, _method) -> tuple[list[list[str]], str]:
    """``pipeline("token-classification")`` on the joined words; a word takes its first token's tag."""
    from transformers import pipeline

    from xner.decoding import repair_iob2

    model = tagger.model.eval()
    model.config.id2label = dict(enumerate(tagger.labels))
    tagger_pipeline = pipeline("token-classification", model=model, tokenizer=tagger.backbone.tokenizer,
                               device="cpu", ignore_labels=[])
    words = _words(tagger, sentences)
    texts = [" ".join(w) for w in words]
    predicted = []
    for sentence_words, tokens in zip(words, tagger_pipeline(texts, batch_size=_BATCH)):
        starts, position = {}, 0
        for index, word in enumerate(sentence_words):
            for char in range(position, position + len(word)):
                starts[char] = index
            position += len(word) + 1
        tags = ["O"] * len(sentence_words)
        seen = set()
        for token in tokens:
            word = starts.get(token["start"], starts.get(token["start"] + 1))  # offsets may include the space
            if word is not None and word not in seen:
                seen.add(word)
                tags[word] = token["entity"]
        predicted.append(repair_iob2(tags))
    return predicted, "fp32"


def xner_predict(tagger, sentences, precision) -> tuple[list[list[str]], str]:
    """:func:`xner.predict_file` from a CoNLL file to a CoNLL file (reading and writing included)."""
    from xner.data import read_conll, write_conll
    from xner.predict import predict_file

    with tempfile.TemporaryDirectory() as folder:
        source = write_conll(sentences, Path(folder) / "in.conll")
        summary = predict_file(tagger, [source], Path(folder) / "out.conll", precision=precision)
        predicted = [list(s.tags) for s in read_conll(Path(folder) / "out.conll")]
    return predicted, summary["precision"]


def main() -> None:
    args = parse_args()
    os.environ.setdefault("XNER_CACHE", tempfile.mkdtemp(prefix="xner-bench-"))  # cold ONNX and feature caches
    sets = [("wikiann", "es", ensure_model(args.es_model, "es", "wikiann", args.data_dir, 2000)),
            ("masakhaner2", args.masakhaner_lang, args.es_model if args.masakhaner_model == "es" else
             ensure_model(args.masakhaner_model, args.masakhaner_lang, "masakhaner2", args.data_dir, None))]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    print(f"{os.cpu_count()} CPUs; methods {', '.join(methods)}; each in a fresh process", flush=True)
    print("\n| test set | method | precision | sentences/s | x plain loop | F1 | F1 diff | peak RSS MB | warm-up s |")
    print("|---|---|---|---|---|---|---|---|---|")
    results: dict[tuple[str, str], dict] = {}
    context = multiprocessing.get_context("spawn")
    for dataset, lang, model_dir in sets:
        for method in methods:
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
                result = pool.submit(measure, method, model_dir, lang, dataset, args.data_dir, args.test_size).result()
            results[lang, method] = result
            base = results.get((lang, "plain"), result)
            name = {"plain": "plain HF loop (baseline)", "pipeline": 'pipeline("token-classification")'}.get(
                method, f"xner predict --precision {method}")
            print(f"| {dataset} {lang} ({result['sentences']}) | {name} | {result['precision']} | "
                  f"{result['sentences_per_s']:.0f} | {result['sentences_per_s'] / base['sentences_per_s']:.2f} | "
                  f"{result['f1']:.2f} | {result['f1'] - base['f1']:+.2f} | {result['peak_rss_mb']:.0f} | "
                  f"{result['warmup_s']:.1f} |", flush=True)
    if "plain" in methods and "auto" in methods:
        seconds = {m: sum(results[lang, m]["sentences"] / results[lang, m]["sentences_per_s"] for _, lang, _ in sets)
                   for m in ("plain", "auto")}
        worst = max((results[lang, "auto"]["f1"] - results[lang, "plain"]["f1"] for _, lang, _ in sets), key=abs)
        print(f"\nspeedup vs plain loop: {seconds['plain'] / seconds['auto']:.1f}x (F1 diff {worst:.2f})")


if __name__ == "__main__":
    main()
