"""xner's run kinds: what one run of a study does (train, distill, evaluate; teacher: take in a
model trained outside the study).

Each kind is a thin adapter from a run spec's params (see :mod:`xner.study.spec`)
to the library (:mod:`xner.pipeline`, :mod:`xner.distillation`, :mod:`xner.evaluation`);
it writes its model into ``ctx.run_dir`` (renamed into place by the driver only
when the run succeeded; compact: only the weights that differ from the pretrained encoder) and returns metrics for the store. Bump a kind's version
when its results change, so that old results are not mistaken for new ones (train and
distill v2: bf16 CPU training with eager attention and fused AdamW; train/distill v3 and
evaluate v2: frozen bottom features computed in the run's precision, bf16 where native;
evaluate v3: F1 under every decoding of :mod:`xner.decoding`, ``f1`` by the params' ``decoding``).
Long sentences (over ``max_length`` subwords) are now split into word windows instead of cut:
that changes train and distill results only for corpora holding such sentences (7 of WikiANN
en's 20,000 train sentences, 1-3 in a few other splits), so their versions were kept, and
the runs of existing stores -- all of whose other results stand -- stay done. Likewise when
cached frozen features and teacher soft labels came to be computed in exact-length batches
(:mod:`xner.models.batching`; before, a sentence's cached bits depended on which run first
computed it and with which neighbours, so on run order and on the cache's history): the new
entries live under new cache keys, and a store's done runs stay done, each made by the xner
that ran it; a run redone for a lost folder that now makes another model (its ``fingerprint``
differs) takes the runs made from it along (:meth:`xner.study.store.ResultStore.made_from`), so
a curve never mixes two teachers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xner.data import dataset_labels
from xner.data.labels import entity_types
from xner.data.pools import TRAIN, draw, pool_digest, read_pool_parts
from xner.data.sampling import nested_subset
from xner.decoding import DECODINGS
from xner.distillation.ensemble import Ensemble
from xner.distillation.student import DistillConfig, distill
from xner.errors import XnerError
from xner.metrics import entity_overlap
from xner.models.tagger import Tagger, TrainConfig
from xner.pipeline import DataSpec, evaluate_model, teacher_weighting, train_model, training_sentences
from xner.study.runs import RunContext, RunSpec, register_run_kind
from xner.tasks.kinds import evaluate_documents_run, train_documents_run
from xner.teacher_signals import unlabeled_signals

__all__: list[str] = []


def _data(params: Mapping[str, Any], ctx: RunContext) -> DataSpec:
    """The run's data; the study-wide label map keeps only the types this dataset has."""
    types = set(entity_types(dataset_labels(params["dataset"])))
    label_map = {k: v for k, v in (params.get("label_map") or {}).items() if k in types}
    return DataSpec(params["dataset"], ctx.data_dir, label_map)


@register_run_kind("teacher", version=1, primary="", show=("path",))
def teacher_run(spec: RunSpec, ctx: RunContext) -> dict:
    """A model trained outside the study (``xner train``) taken in as a teacher: copied (compact)
    into the store, so the runs that depend on it read a copy that cannot change under them."""
    p = spec.params
    tagger = Tagger.load(p["path"])
    if tagger.fingerprint != p["fingerprint"]:
        raise XnerError(f"{p['path']}: the model changed since the runs were planned (fingerprint "
                        f"{tagger.fingerprint[:12]}, planned {p['fingerprint'][:12]}); plan again")
    tagger.save(ctx.run_dir, compact=True)
    return {"languages": tagger.metadata.get("languages") or [], "fingerprint": tagger.fingerprint}


@register_run_kind("train", version=3)
def train_run(spec: RunSpec, ctx: RunContext) -> dict:
    p = spec.params
    config = TrainConfig(**p["training"], seed=p["seed"])
    if "task" in p:
        return train_documents_run(p, config, ctx)
    with ctx.timed("train"):
        tagger = train_model(p["lang"], data=_data(p, ctx), model=p["model"], train_size=p["train_size"],
                             config=config, out=ctx.run_dir, compact=True)
    record = tagger.metadata["trainings"][-1]
    history = record["history"]
    ctx.log(f"trained {p['lang']}: {record['train_sentences']} sentences, best epoch {record['best_epoch']}")
    return {"train_sentences": record["train_sentences"], "best_epoch": record["best_epoch"],
            "dev_f1": history[record["best_epoch"] - 1].get("dev_f1"), "epochs_run": len(history),
            "fingerprint": tagger.fingerprint}


@register_run_kind("distill", version=3, show=("teachers", "target", "model", "seed", "train_size", "volume"))
def distill_run(spec: RunSpec, ctx: RunContext) -> dict:
    """A student of the teachers on ``volume`` unlabeled target sentences (0: none, the
    teachers' ensemble itself is evaluated), drawn from the target's pool (``pool``: its
    sources in order, files by digest; absent: the train split); records the pool's digest."""
    p = spec.params
    options = dict(p["distillation"])
    if p["volume"] == 0:
        return {"volume": 0, "teachers": p["teachers"]}
    teachers = [Tagger.load(ctx.dep(run_id).dir) for run_id in p["teacher_runs"]]
    parts = read_pool_parts(p.get("pool", [TRAIN]), p["target"], lambda: _data(p, ctx).split(p["target"], "train"),
                            ctx.files)
    unlabeled = draw(parts, p["volume"], p["seed"], p["target"])
    pool = [sentence for part in parts for sentence in part]
    student_options = options.pop("student")
    config = DistillConfig(**options, train=TrainConfig(**student_options, seed=p["seed"]))
    weighting = teacher_weighting(config.weighting, teachers, ctx.data_dir)
    with ctx.timed("distill"):
        student = distill(teachers, unlabeled, config=config, weighting=weighting)
    student.save(ctx.run_dir, compact=True)
    info = student.metadata["distillation"]
    return {"volume": p["volume"], "kept": info["kept"], "teacher_weights_mean": info["teacher_weights_mean"],
            "pool": pool_digest(pool), "pool_sentences": len(pool), "fingerprint": student.fingerprint}


@register_run_kind("evaluate", version=3, show=("role", "source", "target", "model", "seed", "volume"))
def evaluate_run(spec: RunSpec, ctx: RunContext) -> dict:
    """Clean and perturbed scores of a trained model, a student, or the teachers' ensemble."""
    p = spec.params
    if "task" in p:
        return evaluate_documents_run(p, ctx)
    predictor, tagger = _predictor(ctx.dep(p["model_run"]), ctx)
    data = _data(p, ctx)
    kinds = [k for k in p["perturbations"] if k != "clean"]
    source = p["source"].split("+")[0]
    with ctx.timed("evaluate"):
        rows = evaluate_model(predictor, p["target"], data=data, split=p["split"], perturbations=kinds,
                              train_lang=source, rate=p["rate"], seed=p["seed"], n_resamples=max(p["bootstrap"], 1),
                              limit=p["test_size"], decoding=p["decoding"])
    overlap = {}
    if tagger is not None and (trained_on := training_sentences(tagger, ctx.data_dir)):
        overlap = entity_overlap(trained_on, data.split(p["target"], p["split"])[: p["test_size"]])
    decodings = [f"f1_{name.split('.')[0]}{end}" for name in DECODINGS for end in ("", "_lo", "_hi")]
    keep = ("perturbation", "precision", "recall", "f1", "f1_lo", "f1_hi", "decoding", *decodings, "drop",
            "tokens_edited", "entities_edited", "label_map")
    rows = [{**{k: row[k] for k in keep if k in row}, **overlap} for row in rows]
    return {"rows": rows, "f1": rows[0]["f1"]}


def _predictor(dep, ctx: RunContext) -> tuple[Ensemble, Tagger | None]:
    """The model a run evaluates, and the tagger whose training data the entity overlap is
    measured against (none for the teachers' ensemble of a distill run of volume 0).

    The model is always an :class:`Ensemble` (of one saved tagger, or of the teachers), whose
    word distributions are cached per sentence with its soft labels: a teacher's transfer
    evaluation and the volume-0 evaluation of the same teacher predict the test set once, and
    a perturbed test set predicts only the sentences the perturbation changed. The numbers are
    those of predicting afresh, bit for bit: an ensemble of one is that model, and a sentence's
    probabilities do not depend on the batch that first computed them (exact-length batches)."""
    if dep.spec.kind == "distill" and dep.spec.params["volume"] == 0:
        teachers = [Tagger.load(ctx.dep(run_id).dir) for run_id in dep.spec.params["teacher_runs"]]
        return Ensemble(teachers, teacher_weighting(dep.spec.params["distillation"]["weighting"], teachers,
                                                    ctx.data_dir)), None
    tagger = Tagger.load(dep.dir)
    return Ensemble([tagger], teacher_weighting("uniform", [tagger])), tagger


@register_run_kind("signals", version=1)
def signals_run(spec: RunSpec, ctx: RunContext) -> dict:
    """A trained model's behaviour on unlabeled target text (its train split, labels unused):
    confidence, entropy, entity rate against its own training data, and its tags (for
    agreement between candidate teachers) -- the label-free signals of teacher choice."""
    p = spec.params
    tagger = Tagger.load(ctx.dep(p["model_run"]).dir)
    unlabeled = nested_subset(_data(p, ctx).split(p["target"], "train"), p["probe_size"], seed=0)
    with ctx.timed("signals"):
        probs = tagger.predict_proba([s.unlabeled() for s in unlabeled])
    return unlabeled_signals(probs, tagger.labels, training_sentences(tagger, ctx.data_dir))
