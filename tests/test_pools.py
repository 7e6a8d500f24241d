"""Unlabeled pools: sources in order, content digests in run ids, ``all`` = the whole pool, and a
real (tiny-model) study on a raw-text pool that is killed with SIGKILL and resumes to the same
numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from xner.data.corpus import Sentence
from xner.data.pools import TRAIN, draw, pool_digest, read_pool, read_pool_parts
from xner.data.sampling import nested_subset
from xner.errors import XnerError
from xner.study import ResultStore, RunSpec, parse_study
from xner.study.execute import default_registry

STUDY = {
    "name": "pools",
    "dataset": "wikiann",
    "model": "tiny",
    "teachers": {"de": ["nl"]},
    "train_sizes": [30],
    "volumes": [20, "all"],
    "seeds": [0],
    "training": {"epochs": 4, "lr": 2e-2, "train_layers": 1, "patience": None},
    "distillation": {"student": {"epochs": 2, "lr": 2e-2, "train_layers": 1}},
    "evaluation": {"bootstrap": 20},
    "executor": {"name": "sequential"},
}
TOY_TRAIN = 40  # the toy root's de train split (tests/conftest.py TOY_SIZES)
REGISTRY_TRAIN = 20000  # WikiANN de's train split in the language registry


@pytest.fixture
def pool_file(tmp_path, make_corpus):
    """A raw-text pool of 25 German sentences, as ``xner data sentences`` writes them."""
    path = tmp_path / "de-pool.txt"
    path.write_text("".join(" ".join(s.tokens) + "\n" for s in make_corpus(25, "de", seed=7)))
    return path


def train_split():
    return [Sentence(("Ada", "spoke"), ("B-PER", "O"), "de")]


def test_read_pool_concatenates_in_order_and_drops_labels(pool_file):
    forward = read_pool([TRAIN, pool_file], "de", train_split)
    backward = read_pool([pool_file, TRAIN], "de", train_split)
    assert len(forward) == len(backward) == 26 and all(s.tags is None for s in forward)
    assert forward[0].tokens == backward[-1].tokens == ("Ada", "spoke")
    assert pool_digest(forward) != pool_digest(backward)
    assert read_pool([pool_file], "de", lambda: pytest.fail("the train split is not a source")) == forward[1:]


def test_a_volume_takes_the_sources_in_order_so_the_pool_continues_the_split(pool_file, make_corpus):
    """Within the train split a volume is what a train-only study draws; past it, the whole
    split's sample plus the file's start: the new points continue the split's curve."""
    train = [s for s in make_corpus(12, "de", seed=3)]
    parts = read_pool_parts([TRAIN, pool_file], "de", lambda: train)
    unlabeled = [s.unlabeled() for s in train]
    for seed in (0, 1):
        assert draw(parts, 8, seed) == nested_subset(unlabeled, 8, seed)
        beyond = draw(parts, 20, seed)
        assert beyond[:12] == nested_subset(unlabeled, 12, seed) and beyond[12:] == nested_subset(parts[1], 8, seed)
        assert draw(parts, 30, seed)[:20] == beyond  # nested across volumes
    with pytest.raises(XnerError, match="volume 38 > 37 unlabeled sentences available"):
        draw(parts, 38, 0)


def test_read_pool_refuses_a_file_changed_since_planning(pool_file):
    digest = pool_digest(read_pool([pool_file], "de", train_split))
    assert len(read_pool([digest], "de", train_split, {digest: str(pool_file)})) == 25
    pool_file.write_text(pool_file.read_text() + "ein neuer Satz\n")
    with pytest.raises(XnerError, match=f"{pool_file}: pool file changed since the study was planned"):
        read_pool([digest], "de", train_split, {digest: str(pool_file)})


@pytest.mark.parametrize(("sources", "message"), [([], "at least one source"), ([TRAIN, TRAIN], "listed twice: train")])
def test_bad_pool_sources(sources, message):
    with pytest.raises(XnerError, match=message):
        read_pool(sources, "de", train_split)
    with pytest.raises(XnerError, match=f"study.pools.de: .*{message}"):
        parse_study({**STUDY, "pools": {"de": sources}})


@pytest.fixture
def students(data_root):
    """``students(pools)``: the study's distill specs by volume, on the toy root (de train: 40)."""

    def expand(pools=None) -> dict[int, object]:
        study = parse_study({**STUDY, "data_dir": str(data_root), **({"pools": pools} if pools is not None else {})})
        return {s.params["volume"]: s for s in study.expand(default_registry()) if s.kind == "distill"}

    return expand


def test_the_default_pool_is_the_train_split_and_keeps_run_ids(students):
    default = students()
    assert students({"de": [TRAIN]}).keys() == default.keys() == {0, 20, REGISTRY_TRAIN} and all(
        students({"de": "train"})[v].id == spec.id for v, spec in default.items())
    assert all(spec.params["pool"] == [TRAIN] and not spec.files for spec in default.values())
    without = {k: v for k, v in default[20].params.items() if k != "pool"}  # as written before pools existed
    assert RunSpec("distill", default[20].version, without, default[20].deps).id == default[20].id


def test_a_pool_file_is_named_by_digest_and_all_is_the_whole_pool(students, pool_file):
    default = students()
    digest = pool_digest(read_pool([pool_file], "de", train_split))
    combined = students({"de": [TRAIN, str(pool_file)]})
    assert sorted(combined) == [0, 20, TOY_TRAIN + 25]
    assert combined[0].id == default[0].id and combined[0].params["pool"] == [TRAIN]  # the teachers draw nothing
    assert combined[20].params["pool"] == [TRAIN, digest] and combined[20].files == {digest: str(pool_file)}
    assert combined[20].id != default[20].id
    assert students({"de": [str(pool_file), TRAIN]})[20].id != combined[20].id  # the order is part of the pool
    assert sorted(students({"de": [str(pool_file)]})) == [0, 20, 25]

    moved = pool_file.rename(pool_file.with_name("moved.txt"))
    assert students({"de": [TRAIN, str(moved)]})[20].id == combined[20].id  # where it lies is not hashed
    moved.write_text(moved.read_text().replace("the", "a", 1))
    assert students({"de": [TRAIN, str(moved)]})[20].id != combined[20].id  # what it holds is


def test_a_pool_of_no_student_target_is_an_error(pool_file):
    study = parse_study({**STUDY, "pools": {"nl": [str(pool_file)]}})
    with pytest.raises(XnerError, match="study.pools: nl is not a student target of the study; targets: de"):
        study.expand(default_registry())


def test_a_missing_pool_file_names_it(tmp_path):
    study = parse_study({**STUDY, "pools": {"de": [TRAIN, str(tmp_path / "none.txt")]}})
    with pytest.raises(XnerError, match="none.txt"):
        study.expand(default_registry())


# -- a real study on a raw-text pool, killed with SIGKILL and resumed ------------------------
def _study(config, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "xner.cli", "study", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _done(store) -> dict[str, dict]:
    try:
        with ResultStore(store, create=False) as results:
            return {r.id: r.metrics for r in results.records("done")}
    except XnerError:  # not created yet
        return {}


def _numbers(store) -> dict[str, dict]:
    """Every run's metrics without wall times."""
    return {run_id: {k: v for k, v in metrics.items() if k != "seconds"} for run_id, metrics in _done(store).items()}


@pytest.mark.slow
def test_a_study_on_a_raw_pool_resumes_after_kill_9_with_the_same_numbers(tmp_path, data_root, pool_file):
    config = {**STUDY, "data_dir": str(data_root), "pools": {"de": [TRAIN, str(pool_file)]}}
    env = {**os.environ, "XNER_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    paths = {}
    for name in ("killed", "whole"):
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(json.dumps({**config, "output_dir": str(tmp_path / name)}))  # JSON is YAML
    total = len(parse_study(config).expand(default_registry()))
    store = tmp_path / "killed" / "study.sqlite"

    process = _study(paths["killed"], env)
    deadline = time.monotonic() + 300
    while len(_done(store)) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _numbers(store)
    assert 2 <= len(before) < total, "the study must be killed mid-way"
    assert _study(paths["killed"], env).wait(timeout=600) == 0
    assert _study(paths["whole"], env).wait(timeout=600) == 0

    resumed, whole = _numbers(store), _numbers(tmp_path / "whole" / "study.sqlite")
    assert len(resumed) == total and {k: resumed[k] for k in before} == before
    assert resumed == whole
    pool = read_pool([TRAIN, pool_file], "de", lambda: [s for s in _toy_train(data_root)])
    distilled = [m for m in resumed.values() if "pool_sentences" in m]
    assert {(m["volume"], m["pool_sentences"], m["pool"]) for m in distilled} == {
        (20, TOY_TRAIN + 25, pool_digest(pool)), (TOY_TRAIN + 25, TOY_TRAIN + 25, pool_digest(pool))}


def _toy_train(data_root):
    from xner.data import load_split

    return load_split("de", "train", "wikiann", data_root)
