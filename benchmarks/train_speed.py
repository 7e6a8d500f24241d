"""Training and prediction speed of xner's Tagger vs a plain Hugging Face Trainer loop.

Same data (a seeded subset of a WikiANN language), same model (the embedded
multilingual-e5-small), same epochs, same machine, one process. Prints, for each
setting, train sentences/s, prediction sentences/s, test F1, and the ratios to
the baseline: ``transformers.Trainer`` + ``DataCollatorForTokenClassification``
(first subword labelled, -100 elsewhere, run_ner.py style).

    python benchmarks/train_speed.py --lang es --train-size 2000 --epochs 2

Needs the ``bench`` extra (``pip install -e ".[bench]"``: the Trainer needs accelerate).
``--train-layers 1,2,4,6`` adds the fast path (top K layers from cached frozen
features; the one-off cache build is timed separately and shown on its own row).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lang", default="es")
    parser.add_argument("--dataset", default="wikiann")
    parser.add_argument("--data-dir", default=os.environ.get("XNER_DATA_DIR", "../shared/data"))
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-4, help="learning rate of the baseline and xner full")
    parser.add_argument("--train-layers", default="4", help="comma-separated K values for the fast path ('' = none)")
    parser.add_argument("--fast-lr", type=float, default=3e-4)
    parser.add_argument("--fast-epochs", type=int, default=None, help="epochs of the fast path (default --epochs)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def baseline(backbone, labels, train, test, args) -> dict:
    """transformers.Trainer fine-tuning (fp32, CPU), as a user of run_ner.py would run it."""
    from naive_hf import NaiveTagger

    tagger = NaiveTagger(backbone, labels, seed=args.seed)
    start = time.perf_counter()
    tagger.fit(train, epochs=args.epochs, lr=args.lr)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    pred = tagger.predict(test)
    predict_seconds = time.perf_counter() - start
    return {"train_s": train_seconds, "predict_s": predict_seconds, "f1": _f1([list(s.tags) for s in test], pred)}


def _f1(gold, pred) -> float:
    from xner.metrics import entity_scores

    return entity_scores(gold, pred)["f1"]


def xner_run(backbone, labels, train, test, args, train_layers, lr, epochs) -> dict:
    from xner.models.encoding import encode_corpus
    from xner.models.tagger import Tagger, TrainConfig

    tagger = Tagger.create(backbone, labels=labels, seed=args.seed)
    config = TrainConfig(epochs=epochs, lr=lr, train_layers=train_layers, seed=args.seed, patience=None)
    cache_s = 0.0
    if train_layers is not None:  # build the feature cache of train and test once, timed on its own
        from xner.models.features import frozen_features
        from xner.models.split import num_layers

        n_frozen = num_layers(tagger.model) - train_layers
        start = time.perf_counter()
        for sentences in (train, test):
            encoded = encode_corpus(sentences, backbone.tokenizer, config.max_length, backbone.normalize)
            frozen_features(tagger.model, encoded, n_frozen, tagger.base_fingerprint,
                            pad_id=backbone.tokenizer.pad_token_id)
        cache_s = time.perf_counter() - start
    start = time.perf_counter()
    tagger.fit(train, config=config)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    pred = tagger.predict(test)
    predict_seconds = time.perf_counter() - start
    return {"train_s": train_seconds, "predict_s": predict_seconds, "cache_s": cache_s,
            "f1": _f1([list(s.tags) for s in test], pred)}


def main() -> None:
    args = parse_args()
    os.environ.setdefault("XNER_CACHE", tempfile.mkdtemp(prefix="xner-bench-"))  # cold feature cache
    from xner.data import dataset_labels, load_split, nested_subset
    from xner.models.backbone import load_backbone
    from xner.models.device import use_all_cores

    cores = use_all_cores()
    labels = dataset_labels(args.dataset)
    train = nested_subset(load_split(args.lang, "train", args.dataset, args.data_dir), args.train_size, args.seed)
    test = load_split(args.lang, "test", args.dataset, args.data_dir)[: args.test_size]
    backbone = load_backbone(args.model)
    print(f"{args.lang} {args.dataset}: {len(train)} train, {len(test)} test sentences; model {args.model}; "
          f"{args.epochs} epochs; {cores} CPU threads")
    rows: list[tuple[str, int, dict]] = []
    if not args.skip_baseline:
        rows.append(("HF Trainer (baseline)", args.epochs, baseline(backbone, labels, train, test, args)))
    rows.append(("xner full fine-tuning", args.epochs,
                 xner_run(backbone, labels, train, test, args, None, args.lr, args.epochs)))
    fast_epochs = args.fast_epochs or args.epochs
    for k in [int(k) for k in args.train_layers.split(",") if k.strip()]:
        rows.append((f"xner --train-layers {k}", fast_epochs,
                     xner_run(backbone, labels, train, test, args, k, args.fast_lr, fast_epochs)))
    base = rows[0][2]
    base_epoch = base["train_s"] / rows[0][1]
    print(f"\n| setting | epochs | train sent/s | s/epoch | x baseline/epoch | predict sent/s | x baseline | "
          f"test F1 | cache build s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, epochs, r in rows:
        per_epoch = r["train_s"] / epochs
        print(f"| {name} | {epochs} | {len(train) * epochs / r['train_s']:.1f} | {per_epoch:.1f} | "
              f"{base_epoch / per_epoch:.2f} | {len(test) / r['predict_s']:.0f} | "
              f"{base['predict_s'] / r['predict_s']:.2f} | {r['f1']:.1f} | {r.get('cache_s', 0):.1f} |")


if __name__ == "__main__":
    main()
