"""Speed of a whole xner study vs the same runs done naively, plus prediction throughput.

    python benchmarks/study_speed.py --config configs/quick.yaml

Four phases, each in a fresh child process with a cold cache of its own (so each
reports its own peak memory, and none profits from another's caches):

1. ``xner``: ``run_study`` on the config, as ``xner study`` runs it (its executor: quick.yaml
   runs a process pool, one run per core; cached frozen features, cached teacher soft labels,
   one encoding per sentence set, bf16 where the CPU has it, length-bucketed batches).
2. ``xner-random``: the same with ``batching: random`` (batches drawn as the Trainer draws
   them): xner's recipe at the Trainer's batch schedule, the like-for-like F1 comparison
   (length-bucketed batches alone are worth about 2 F1 on quick.yaml's German).
3. ``naive``: the same run specs (same sentences, seeds, epochs, layers trained,
   early stopping, min steps), each done from scratch with a plain
   ``transformers.Trainer`` (see ``naive_hf.py``): tokenize, full forward every
   step, ``Trainer.predict``; scored by the same xner evaluation code.
4. ``predict``: one trained model of phase 1 labels the test set with
   ``Tagger.predict`` and with ``transformers.pipeline("token-classification")``.

Prints the study times, their ratios, each evaluation's F1 on every side (xner at the
Trainer's batching and the Trainer must agree within 1 F1 on average), the peak memory of
each phase (summed PSS of its processes, and the largest RSS of one), and ends with one line
``speedup: X.Xx``. Needs the ``bench`` extra (the Trainer needs accelerate).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEYS = ("kind", "source", "target", "volume", "seed", "perturbation")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/quick.yaml")
    parser.add_argument("--data-dir", default=os.environ.get("XNER_DATA_DIR", "../shared/data"))
    parser.add_argument("--phase", choices=("xner", "xner-random", "naive", "predict"), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--pipeline-batch", type=int, default=32, help="batch size of the transformers pipeline")
    parser.add_argument("--seeds", help="comma-separated seeds instead of the config's (F1 agreement over seeds)")
    return parser.parse_args()


class TreeMemory(threading.Thread):
    """Peak memory of this process and all its descendants (pool workers), sampled every 0.5 s.

    ``pss``: the peak of the summed proportional set size, i.e. what the whole tree needs, pages
    that several workers share (libraries, memory-mapped feature shards) counted once; ``rss``:
    the largest resident size of any one process (one run's worker).
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.pss = self.rss = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.stopped.wait(0.5):
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    info = process.memory_full_info()
                except psutil.Error:  # a worker that just ended
                    continue
                total += info.pss
                self.rss = max(self.rss, info.rss)
            self.pss = max(self.pss, total)

    def peaks_mib(self) -> dict[str, float]:
        self.stopped.set()
        self.join()
        return {"peak_pss_mib": self.pss / 2**20, "peak_rss_mib": self.rss / 2**20}


def load_config(args: argparse.Namespace, work: Path, batching: str | None = None):
    """The study, writing into the phase's work folder (``batching``: for teachers and students)."""
    from xner.study.spec import load_study

    study = load_study(args.config)
    update = {"output_dir": work / "study"}
    if args.seeds:
        update["seeds"] = [int(seed) for seed in args.seeds.split(",")]
    if batching:
        student = study.distillation.student.model_copy(update={"batching": batching})
        update["training"] = study.training.model_copy(update={"batching": batching})
        update["distillation"] = study.distillation.model_copy(update={"student": student})
    return study.model_copy(update=update)


def xner_phase(args: argparse.Namespace, work: Path, batching: str | None = None) -> dict:
    from xner.study.execute import run_study
    from xner.study.store import ResultStore

    study = load_config(args, work, batching)
    start = time.perf_counter()
    run = run_study(study, store=work / "study.sqlite", report=False)
    seconds = time.perf_counter() - start
    if run.counts.get("failed"):
        raise SystemExit(f"{run.counts['failed']} runs of the xner study failed (errors above): no timing to compare")
    with ResultStore(run.store_path, runs_dir=study.out_dir / "runs", create=False) as store:
        frame = store.frame()
        native = next(spec.id for spec in run.specs if spec.kind == "train"
                      and spec.params["lang"] == study.pairs[0].split(":")[1])
        model_dir = str(store.run_dir(native))
    rows = frame[list(KEYS) + ["f1"]].to_dict("records")
    return {"seconds": seconds, "rows": rows, "native_model": model_dir}


def naive_phase(args: argparse.Namespace, work: Path) -> dict:
    """Each run of the study from scratch with transformers.Trainer, in the study's order."""
    from naive_hf import NaiveTagger

    from xner.data.sampling import nested_subset
    from xner.models.backbone import load_backbone
    from xner.pipeline import DataSpec, evaluate_model
    from xner.study.execute import default_registry

    study = load_config(args, work)
    start = time.perf_counter()
    models: dict[str, NaiveTagger] = {}
    rows: list[dict] = []
    for spec in study.expand(default_registry()):
        p = spec.params
        data = DataSpec(p["dataset"], args.data_dir, p.get("label_map") or {})
        backbone = load_backbone(p["model"])  # loaded once: later calls reuse its parsed tokenizer
        if spec.kind == "train":
            options = p["training"]
            train = nested_subset(data.split(p["lang"], "train"), p["train_size"], p["seed"])
            tagger = NaiveTagger(backbone, data.labels, seed=p["seed"], train_layers=options["train_layers"],
                                 dropout=options.get("dropout"), metadata={"dataset": p["dataset"], "train_data": {
                                     "lang": p["lang"], "dataset": p["dataset"], "label_map": {},
                                     "size": p["train_size"], "seed": p["seed"]}})
            tagger.fit(train, data.split(p["lang"], "dev")[: options["dev_size"]], epochs=options["epochs"],
                       lr=options["lr"], min_steps=options["min_steps"], patience=options["patience"])
            models[spec.id] = tagger
        elif spec.kind == "distill":
            if len(p["teacher_runs"]) != 1:
                raise SystemExit("the naive baseline covers single-source teachers only")
            teacher = models[p["teacher_runs"][0]]
            if p["volume"] == 0:
                models[spec.id] = teacher
                continue
            student_options = p["distillation"]["student"]
            unlabeled = nested_subset(data.split(p["target"], "train"), p["volume"], p["seed"])
            student = NaiveTagger(backbone, teacher.labels, seed=p["seed"],
                                  train_layers=student_options["train_layers"], dropout=student_options.get("dropout"))
            student.fit(unlabeled, epochs=student_options["epochs"], lr=student_options["lr"],
                        min_steps=student_options["min_steps"], targets=teacher.predict_proba(unlabeled))
            models[spec.id] = student
        else:
            results = evaluate_model(models[p["model_run"]], p["target"], data=data, split=p["split"],
                                     perturbations=[k for k in p["perturbations"] if k != "clean"],
                                     train_lang=p["source"].split("+")[0], seed=p["seed"], n_resamples=1,
                                     limit=p["test_size"])
            rows += [{"kind": p["role"], "source": p["source"], "target": p["target"], "volume": p["volume"],
                      "seed": p["seed"], "perturbation": r["perturbation"], "f1": r["f1"]} for r in results]
            # Kept as they come: a naive phase cut off after hours still leaves its finished evaluations.
            (work / "rows.json").write_text(json.dumps(rows, default=str))
    return {"seconds": time.perf_counter() - start, "rows": rows}


def predict_phase(args: argparse.Namespace, work: Path, model_dir: str, lang: str, dataset: str,
                  test_size: int) -> dict:
    """Tagger.predict vs transformers.pipeline on the same model and test sentences."""
    from transformers import pipeline

    from xner.data import load_split
    from xner.models.tagger import Tagger

    test = load_split(lang, "test", dataset, args.data_dir)[:test_size]
    tagger = Tagger.load(model_dir)
    start = time.perf_counter()
    tagger.predict(test)
    xner_s = time.perf_counter() - start
    tagger.predict(test)  # again: the test set's frozen features are cached now (as in a study)
    xner_warm_s = time.perf_counter() - start - xner_s
    full_dir = tagger.save(work / "full-model")  # a study stores the model compactly; the pipeline needs all of it
    ner = pipeline("token-classification", model=str(full_dir), device="cpu", aggregation_strategy="first")
    texts = [" ".join(s.tokens) for s in test]
    start = time.perf_counter()
    ner(texts, batch_size=args.pipeline_batch)
    pipeline_s = time.perf_counter() - start
    return {"sentences": len(test), "xner_s": xner_s, "xner_warm_s": xner_warm_s, "pipeline_s": pipeline_s}


def run_phase(phase: str, args: argparse.Namespace, root: Path, extra: dict | None = None) -> dict:
    """One phase in a child process with a fresh cache of its own; returns its JSON result."""
    work = root / phase
    work.mkdir()
    env = {**os.environ, "XNER_CACHE": str(work / "cache"), "XNER_DATA_DIR": args.data_dir,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    (work / "extra.json").write_text(json.dumps(extra or {}))
    command = [sys.executable, __file__, "--phase", phase, "--work", str(work), "--config", args.config,
               "--data-dir", args.data_dir, "--pipeline-batch", str(args.pipeline_batch)]
    command += ["--seeds", args.seeds] if args.seeds else []
    subprocess.run(command, env=env, check=True)
    return json.loads((work / "result.json").read_text())


def child(args: argparse.Namespace) -> None:
    work = Path(args.work)
    extra = json.loads((work / "extra.json").read_text())
    memory = TreeMemory()
    memory.start()
    if args.phase == "xner":
        result = xner_phase(args, work)
    elif args.phase == "xner-random":
        result = xner_phase(args, work, batching="random")
    elif args.phase == "naive":
        result = naive_phase(args, work)
    else:
        result = predict_phase(args, work, **extra)
    result.update(memory.peaks_mib())
    (work / "result.json").write_text(json.dumps(result, default=str))


def report(xner: dict, xner_random: dict, naive: dict, predict: dict) -> None:
    import pandas as pd

    frames = [pd.DataFrame(phase["rows"]).rename(columns={"f1": f"f1_{name}"})
              for name, phase in (("xner", xner), ("xner_random", xner_random), ("naive", naive))]
    both = frames[0].merge(frames[1], on=list(KEYS)).merge(frames[2], on=list(KEYS))
    print(both.to_markdown(index=False, floatfmt=".1f"))
    print(f"\nF1 differences over {len(both)} evaluations:")
    for name in ("xner", "xner_random"):
        difference = both[f"f1_{name}"] - both["f1_naive"]
        print(f"- {name} - naive: mean {difference.mean():+.2f}, mean absolute {difference.abs().mean():.2f}")
    n = predict["sentences"]
    print("\n| | xner study | xner, random batches | naive (transformers.Trainer) |\n|---|---|---|---|")
    print(f"| wall time, s | {xner['seconds']:.0f} | {xner_random['seconds']:.0f} | {naive['seconds']:.0f} |")
    print(f"| naive / this | {naive['seconds'] / xner['seconds']:.2f}x | {naive['seconds'] / xner_random['seconds']:.2f}x | 1.00x |")
    for label, key in (("peak memory of all its processes (PSS), MiB", "peak_pss_mib"),
                       ("peak RSS of one process, MiB", "peak_rss_mib")):
        print(f"| {label} | {xner[key]:.0f} | {xner_random[key]:.0f} | {naive[key]:.0f} |")
    print(f"\n| prediction ({n} sentences) | sentences/s | ratio to pipeline |\n|---|---|---|")
    for name, key in (("transformers pipeline", "pipeline_s"), ("xner Tagger.predict (cold)", "xner_s"),
                      ("xner Tagger.predict (features cached)", "xner_warm_s")):
        print(f"| {name} | {n / predict[key]:.0f} | {predict['pipeline_s'] / predict[key]:.2f}x |")
    print(f"peak memory of the prediction phase: {predict['peak_pss_mib']:.0f} MiB (PSS)")
    print(f"speedup: {naive['seconds'] / xner['seconds']:.1f}x")


def main() -> None:
    args = parse_args()
    if args.phase:
        child(args)
        return
    root = Path(tempfile.mkdtemp(prefix="xner-study-speed-"))
    try:
        xner = run_phase("xner", args, root)
        xner_random = run_phase("xner-random", args, root)
        naive = run_phase("naive", args, root)
        study = load_config(args, root)
        predict = run_phase("predict", args, root, {
            "model_dir": xner["native_model"], "lang": study.pairs[0].split(":")[1], "dataset": study.dataset,
            "test_size": study.evaluation.test_size or 2000})
    finally:
        shutil.rmtree(root, ignore_errors=True)  # models, stores and caches of all phases
    report(xner, xner_random, naive, predict)


if __name__ == "__main__":
    main()
