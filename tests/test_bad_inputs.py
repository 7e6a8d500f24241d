"""The catalogue of bad inputs and faults: each ends in one clear error line or the right behaviour.

Every input path of xner (data files, study configs, options, model folders, result stores)
and every fault around it (a full disk, a corrupted file, a killed process, two studies
sharing a folder) has a row here, so the suite grows with every new input path:

- ``CLI_ERRORS``: a command that must refuse with exactly one ``error: ...`` line on stderr,
  exit status 2 and no traceback. A case is ``(name, build, pattern)``: ``build(env)``
  writes what the case needs and returns the command's arguments; ``pattern`` is searched
  in the error line (it names the file, line or key at fault).
- the tests after the table: faults whose right behaviour takes more than one command (a
  refused overwrite that ``--overwrite`` then allows, nothing partial left by a full disk,
  a deleted run folder redone, pool workers that outlive their driver).

Everything runs on the ``tiny`` model and the fixture data root (``conftest.data_root``).
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from test_execute import KINDS, STUDY, counted, executions, run  # noqa: F401 - fixture
from test_tagger import FAST, LABELS, easy_corpus
from typer.testing import CliRunner

from xner.cli import app
from xner.models.checksums import CHECKSUMS_FILE
from xner.models.tagger import Tagger, TrainConfig
from xner.pipeline import training_sentences
from xner.study import ResultStore, RunSpec

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN = ("--model", "tiny", "--epochs", "1", "--lr", "0.02", "--batch-size", "8", "--train-size", "20")


def cli(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("xner.models.features._STORES", {})


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory) -> dict[str, Path]:
    """A tiny tagger trained once, saved full and compact (cases copy them before breaking them)."""
    root = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XNER_CACHE", str(root / "cache"))
        tagger = Tagger.create("tiny", LABELS, seed=0)
        tagger.fit(easy_corpus(24, seed=1), config=TrainConfig(epochs=1, **FAST))
        return {"full": tagger.save(root / "full"), "compact": tagger.save(root / "compact", compact=True)}


@dataclass
class Env:
    """What a case builds on: its own folder, the fixture data root, the saved models (and, for
    the full-disk cases, a finished result store)."""

    tmp: Path
    root: Path
    models: dict[str, Path]
    store: Path | None = None

    def model(self, kind: str = "full") -> Path:
        """A fresh copy of a saved model folder, for the case to break."""
        copy = self.tmp / f"model-{kind}"
        if not copy.exists():
            shutil.copytree(self.models[kind], copy)
        return copy

    def evaluate(self, model: Path) -> list:
        return ["evaluate", model, "--lang", "nl", "--data-dir", self.root]

    def train(self, out: Path, *extra: object) -> list:
        return ["train", "--lang", "nl", "--data-dir", self.root, "--out", out, *TRAIN, *extra]


@pytest.fixture
def env(tmp_path, data_root, saved_models, monkeypatch) -> Env:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # no 25 s of retries per hub id
    return Env(tmp_path, data_root, saved_models)


def flip_byte(path: Path, offset: int = -100) -> Path:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    return path


def evaluate_after(change: Callable[[Path], object], kind: str = "full") -> Callable[[Env], list]:
    """A case: break a copy of a saved model with ``change(folder)``, then evaluate it."""

    def build(env: Env) -> list:
        folder = env.model(kind)
        change(folder)
        return env.evaluate(folder)

    return build


def without_checksums(change: Callable[[Path], object]) -> Callable[[Path], None]:
    """A model folder saved before checksums existed, then broken: the loaders must still say what."""

    def apply(folder: Path) -> None:
        (folder / CHECKSUMS_FILE).unlink()
        change(folder)

    return apply


def existing_model(env: Env) -> list:
    out = env.tmp / "out"
    shutil.copytree(env.models["full"], out)
    return env.train(out)


def a_file(env: Env) -> list:
    out = env.tmp / "out.bin"
    out.write_text("not a folder")
    return env.train(out)


def other_files(env: Env) -> list:
    (env.tmp / "out").mkdir()
    (env.tmp / "out" / "notes.txt").write_text("mine")
    return env.train(env.tmp / "out")


def broken_store(env: Env, damage: str) -> Path:
    """A result store with a few runs, then damaged: ``empty`` (truncated to 0 bytes),
    ``page`` (a b-tree page header overwritten) or ``header`` (the file magic flipped)."""
    path = env.tmp / "study.sqlite"
    with ResultStore(path) as store:
        store.register(RunSpec("train", 1, {"lang": lang, "note": "x" * 3000}) for lang in ("de", "nl", "en", "fr"))
    data = bytearray(path.read_bytes())
    if damage == "empty":
        data = bytearray()
    elif damage == "page":
        data[4096 * 2] = 0xFF  # the type byte of page 3
    else:
        data[0] ^= 0x01
    path.write_bytes(bytes(data))
    return path


def store_case(command: str, damage: str) -> Callable[[Env], list]:
    def build(env: Env) -> list:
        store = broken_store(env, damage)
        if command == "study":
            config = env.tmp / "study.yaml"
            config.write_text(yaml.safe_dump({"name": "s", "languages": ["nl"], "output_dir": str(env.tmp / "out"),
                                              "model": "tiny", "data_dir": str(env.root)}))
            return ["study", config, "--store", store]
        return [command, store, *(["--out", env.tmp / "report"] if command == "report" else [])]

    return build


def data_file(text: str | bytes, name: str = "data.conll") -> Callable[[Env], list]:
    """A case: ``xner data validate`` on a file of exactly these bytes."""

    def build(env: Env) -> list:
        path = env.tmp / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return ["data", "validate", path]

    return build


def study(**config: object) -> Callable[[Env], list]:
    """A case: ``xner study`` on a config of the fixture root with these keys changed (or the
    YAML ``text``), with command-line ``args``, after ``change(root)``."""

    def build(env: Env) -> list:
        path = env.tmp / "study.yaml"
        base = {"name": "s", "languages": ["nl"], "model": "tiny", "data_dir": str(env.root),
                "output_dir": str(env.tmp / "out"), "training": {"epochs": 1}}
        keys = {k: v for k, v in config.items() if k not in ("text", "args", "change")}
        if "change" in config:
            config["change"](env.root)
        path.write_text(config.get("text") or yaml.safe_dump({**base, **keys}))
        return ["study", path, *config.get("args", [])]

    return build



def study_with_a_file_at(relative: str) -> Callable[[Env], list]:
    """A case: ``xner study`` whose output folder (or a folder in it) is a plain file."""

    def build(env: Env) -> list:
        taken = env.tmp / "out" / relative
        taken.parent.mkdir(parents=True, exist_ok=True)
        taken.write_text("not a folder")
        return study(output_dir=str(env.tmp / "out" / "study"))(env)

    return build

def recommend_with_ranker(content: str) -> Callable[[Env], list]:
    """A case: ``xner recommend`` with a ranker file of exactly this text."""

    def build(env: Env) -> list:
        ranker = env.tmp / "ranker.json"
        ranker.write_text(content)
        return ["recommend", "--target", "nl", "--dataset", "wikiann", "--data-dir", env.root, "--ranker", ranker]

    return build


def report_continuing(earlier: str | None, students: bool = True) -> Callable[[Env], list]:
    """A case: ``xner report`` of a results table with ``--continues`` an earlier one whose
    students are of target ``earlier`` (``None``: no earlier file at all)."""

    def rows(target: str, kind: str) -> str:
        return "".join(f"{kind}-{target}-{volume},{kind},tiny,nl,{target},wikiann,{volume},0,clean,{50 + volume / 100}\n"
                       for volume in (0, 100, 200))

    def build(env: Env) -> list:
        header = "run_id,kind,model,source,target,dataset,volume,seed,perturbation,f1\n"
        (env.tmp / "study.csv").write_text(header + rows("de", "student" if students else "native"))
        if earlier is not None:
            (env.tmp / "earlier.csv").write_text(header + rows(earlier, "student"))
        return ["report", env.tmp / "study.csv", "--continues", env.tmp / "earlier.csv", "--out", env.tmp / "report"]

    return build


def train_ranker_kind(kind: str) -> Callable[[Env], list]:
    """A case: ``xner train-ranker`` on a results table with ``--kind kind``."""

    def build(env: Env) -> list:
        table = env.tmp / "results.csv"
        table.write_text("kind,model,source,target,dataset,perturbation,f1\ntransfer,tiny,de,nl,wikiann,clean,50\n")
        return ["train-ranker", table, "--out", env.tmp / "ranker.json", "--kind", kind, "--data-dir", env.root]

    return build


def train_on(change: Callable[[Path], object], *extra: object) -> Callable[[Env], list]:
    """A case: ``xner train`` on the fixture root after ``change(<root>/wikiann/nl)``."""

    def build(env: Env) -> list:
        change(env.root / "wikiann" / "nl")
        return env.train(env.tmp / "model", *extra)

    return build


def train_split_as_folder(folder: Path) -> None:
    (folder / "train.conllu").unlink()
    (folder / "train.conllu").mkdir()
    (folder / "train.conllu" / "train.conllu").write_text("Ada B-PER\n")


def iob1_train_split(folder: Path) -> None:
    (folder / "train.conllu").write_text("0\tthe\tO\n1\tBank\tI-ORG\n")


MEGA = "x" * 1_000_000

STORE_DAMAGE = {"empty": r"study\.sqlite: the result store is empty \(0 bytes",
                "page": r"study\.sqlite: (the result store is corrupt|corrupt or not an xner result store)",
                "header": r"study\.sqlite: corrupt or not an xner result store \(file is not a database\)"}

CLI_ERRORS = [
    # -- model folders: checksums verified on load, every loader error one line
    ("flipped byte in full weights", evaluate_after(lambda m: flip_byte(m / "model.safetensors")),
     r"model-full/model\.safetensors: checksum mismatch"),
    ("flipped byte in compact weights", evaluate_after(lambda m: flip_byte(m / "xner-delta.safetensors"), "compact"),
     r"model-compact/xner-delta\.safetensors: checksum mismatch"),
    ("weights truncated to 0 bytes", evaluate_after(lambda m: (m / "model.safetensors").write_bytes(b"")),
     r"model\.safetensors: checksum mismatch"),
    ("weights missing", evaluate_after(lambda m: (m / "model.safetensors").unlink()),
     r"model\.safetensors: missing from the model folder"),
    ("xner.json corrupted", evaluate_after(lambda m: flip_byte(m / "xner.json", 10)),
     r"xner\.json: checksum mismatch"),
    ("checksum manifest corrupted", evaluate_after(lambda m: (m / CHECKSUMS_FILE).write_text("{")),
     rf"{CHECKSUMS_FILE}: corrupt checksum manifest"),
    ("unverified folder, xner.json not JSON", evaluate_after(without_checksums(lambda m: (m / "xner.json").write_text("{"))),
     r"xner\.json: corrupt model metadata \(JSONDecodeError"),
    ("unverified folder, xner.json without labels",
     evaluate_after(without_checksums(lambda m: (m / "xner.json").write_text("{}"))),
     r"xner\.json: corrupt model metadata \(KeyError: 'labels'\)"),
    ("unverified folder, weights missing", evaluate_after(without_checksums(lambda m: (m / "model.safetensors").unlink())),
     r"model-full: cannot load the model \(OSError"),
    ("unverified folder, weights truncated",
     evaluate_after(without_checksums(lambda m: (m / "model.safetensors").write_bytes(b"\0" * 10))),
     r"model-full: cannot load the model"),
    ("unverified compact folder, weights truncated",
     evaluate_after(without_checksums(lambda m: (m / "xner-delta.safetensors").write_bytes(b"x")), "compact"),
     r"xner-delta\.safetensors: cannot read the model's weights"),
    # -- train --out: checked before training
    ("train over an existing model", existing_model, r"out: a model is already saved here; pass --overwrite"),
    ("train --out is a file", a_file, r"out\.bin: is a file, not a folder"),
    ("train --out holds other files", other_files, r"out: folder exists and holds no xner model"),
    # -- data files: the file and line, quotes cut short
    ("NUL byte in a token", data_file("Ada B-PER\nLov\0elace I-PER\n"), r"data\.conll:2: token 'Lov\\x00elace' contains a NUL byte"),
    ("a 1 MB token", data_file(f"Ada B-PER\n{MEGA} O\n"),
     r"data\.conll:2: token 'x{20}'\.\.\. \(1,000,000 characters\) is longer than 1,000 characters"),
    ("a 1 MB malformed line", data_file(f"Ada B-PER\n{MEGA}\n"),
     r"data\.conll:2: expected 2 fields .*got 1: 'x{80}'\.\.\. \(1,000,000 characters\)$"),
    ("a 1 MB first line", data_file(f"{MEGA}\n"), r"cannot tell the line format from 'x{80}'\.\.\. \(1,000,000 characters\)"),
    ("invalid UTF-8 on line 3", data_file(b"Ada B-PER\nLovelace I-PER\n\xff O\n"),
     r"data\.conll:3: not UTF-8 text \(invalid start byte at byte 25\)"),
    ("a folder given as a file", lambda env: ["data", "validate", env.tmp], r": is a folder, not a file"),
    ("a split that is a folder", train_on(train_split_as_folder),
     r"nl/train\.conllu: is a folder, not a 'train' file"),
    ("I-X after O in train", train_on(iob1_train_split),
     r"train\.conllu:2: I-ORG follows O: .*repair=True \(--repair in xner train, evaluate and data\)"),
    # -- options and study configs accepted before although meaningless
    ("train --train-size 0 (it saved an untrained model)", lambda env: [*env.train(env.tmp / "m"), "--train-size", 0],
     r"train_size: 0 training sentences/documents would train nothing"),
    ("train --epochs 0", lambda env: [*env.train(env.tmp / "m"), "--epochs", 0], r"TrainConfig: epochs: must be >= 1"),
    ("train --dropout 1.5", lambda env: [*env.train(env.tmp / "m"), "--dropout", 1.5],
     r"TrainConfig: dropout: must be < 1.0"),
    ("evaluate --label-map into a type the model lacks (a typo)",
     lambda env: [*env.evaluate(env.models["full"]), "--label-map", "ORG=ORGANISATION"],
     r"label map ORG=ORGANISATION: the model has no type 'ORGANISATION' \(its types: .*\); map ORG to one of them or to O"),
    ("study output_dir is a file", study_with_a_file_at("study"),
     r"out/study: is a file, not a folder \(a study writes its store and run folders there"),
    ("study runs folder is a file", study_with_a_file_at("study/runs"), r"out/study/runs: is a file, not a folder"),
    ("evaluate --limit 0 (an F1 of no sentences)", lambda env: [*env.evaluate(env.models["full"]), "--limit", 0],
     r"limit: the number of test sentences/documents to score must be at least 1, got 0"),
    ("evaluate --limit -1 (a slice dropping the last sentence)",
     lambda env: [*env.evaluate(env.models["full"]), "--limit", -1], r"limit: .* must be at least 1, got -1"),
    ("study --workers 0", study(args=["--workers", 0]), r"workers must be at least 1, got 0"),
    ("study --only without =", study(args=["--only", "seed"]), r"--only 'seed': expected KEY=VALUE"),
    ("study --only with a key no run has", study(args=["--only", "sead=1"]), r"no run has the key 'sead'; keys: .*seed"),
    ("study --only matching nothing", study(args=["--only", "seed=9"]), r"--only seed=9: no run of the study matches"),
    ("study --only with a nested key no run has (a typo)", study(args=["--only", "training.epoch=1"]),
     r"no run has the key 'training\.epoch'; keys: .*training\.epochs"),
    ("study train_sizes: []", study(train_sizes=[]), r"train_sizes: .*at least 1 item"),
    ("study training.dropout: 1", study(training={"epochs": 1, "dropout": 1}),
     r"study\.yaml: study\.training\.dropout: must be < 1\.0"),
    ("study seeds: [true]", study(seeds=[True]), r"study\.seeds\[0\]: input should be a valid integer, got True"),
    ("study label_map for a type no dataset has", study(label_map={"GPE": "O"}),
     r"label_map: 'GPE' is no entity type of wikiann; types: LOC, ORG, PER"),
    ("study duplicate key", study(text="name: s\nlanguages: [nl]\nseeds: [1]\nseeds: [2]\n"),
     r"study\.yaml:4: invalid YAML: duplicate key 'seeds'"),
    # -- study configs: data and models checked before the first run, every problem in one line
    ("study data_dir missing", study(data_dir="/no/such/root"), r"1 problem\(s\) found before the first run: "
     r"data_dir /no/such/root: no such folder"),
    ("study languages without data and a model that does not resolve",
     study(languages=["nl", "es", "fi"], model=["tiny", "no-such-org/no-such-model"]),
     r"3 problem\(s\) found before the first run: no language folder 'es' in .*; no language folder 'fi' "
     r"in .*; model 'no-such-org/no-such-model' is not a local directory"),
    ("study variant with a model that does not resolve", study(variants=[{"name": "big", "model": "no-org/no-model"}]),
     r"1 problem\(s\) found before the first run: model 'no-org/no-model' is not a local directory"),
    ("study with a split file missing", study(languages=["de"], change=lambda root: (root / "wikiann/de/dev.conllu").unlink()),
     r"1 problem\(s\) found before the first run: no 'dev' file in .*wikiann/de; found: test.conllu, train.conllu"),
    # -- teacher rankers: the file and what is wrong with it
    ("recommend --ranker not JSON", recommend_with_ranker("{not json"), r"ranker\.json: cannot read the ranker"),
    ("recommend --ranker of an unknown kind",
     recommend_with_ranker('{"format": "xner.ranker.v2", "kind": "svm", "features": [], "model": {}, "half_width": 1}'),
     r"ranker\.json: unknown ranker kind 'svm'; valid: lambdarank, ridge"),
    ("train-ranker --kind svm", train_ranker_kind("svm"), r"unknown ranker kind 'svm'; valid: auto, lambdarank, ridge"),
    # -- reports continuing an earlier study's curves: the file, and what it lacks
    ("report --continues a missing table", report_continuing(None), r"earlier\.csv: no such results table"),
    ("report --continues other curves", report_continuing("af"),
     r"--continues: the earlier results have no student of this study's curves \(tiny<-nl<-de\)"),
    ("report --continues without students", report_continuing("de", students=False),
     r"--continues: the study has no students, so no curve to continue"),
    # -- result stores: a damaged store is named, never silently replaced
    *((f"store {damage} in {command}", store_case(command, damage), pattern)
      for damage, pattern in STORE_DAMAGE.items() for command in ("status", "results", "report", "study")),
]


def error_line(result) -> str:
    """The one ``error:`` line of a refused command (exit 2, no traceback; progress bars may precede it)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
    return errors[0]


@pytest.mark.parametrize(("name", "build", "pattern"), CLI_ERRORS, ids=[c[0] for c in CLI_ERRORS])
def test_bad_input_ends_in_one_error_line(env, name, build, pattern):
    line = error_line(cli(*build(env)))
    assert re.search(pattern, line), line


# -- model folders ---------------------------------------------------------------------------------

def test_train_refuses_to_replace_a_model_until_told(env):
    out = env.tmp / "out"
    assert cli(*env.train(out)).exit_code == 0
    first = (out / "xner.json").read_bytes()
    refused = cli(*env.train(out, "--seed", 1))
    assert refused.exit_code == 2 and (out / "xner.json").read_bytes() == first
    replaced = cli(*env.train(out, "--seed", 1, "--overwrite"))
    assert replaced.exit_code == 0, replaced.output
    assert json.loads((out / "xner.json").read_text())["train_data"]["seed"] == 1
    assert sorted(p.name for p in env.tmp.iterdir() if p.name.startswith(".tmp-")) == []
    Tagger.load(out)  # checksums of the replacement verify


def test_saved_folders_carry_checksums_of_every_file(saved_models):
    for folder in saved_models.values():
        listed = json.loads((folder / CHECKSUMS_FILE).read_text())["sha256"]
        assert sorted(listed) == sorted(p.name for p in folder.iterdir() if p.name != CHECKSUMS_FILE)
        Tagger.load(folder)


# -- studies: run folders ----------------------------------------------------------------------------

def made_from(store, run_id: str) -> set[str]:
    """Every run made, directly or not, from run ``run_id``."""
    found, stack = set(), [run_id]
    while stack:
        parent = stack.pop()
        children = {r.id for r in store.records() if parent in r.spec.deps} - found
        found |= children
        stack.extend(children)
    return found


def test_a_done_run_whose_folder_was_deleted_is_redone_and_its_dependents_succeed(tmp_path, counted):
    store = run(tmp_path / "out")
    teacher = next(r for r in store.records("done") if r.kind == "train" and r.spec.params["lang"] == "en")
    dependents = [r.id for r in store.records() if teacher.id in r.spec.deps]
    with store._transaction() as conn:  # runs not done yet when the folder went (a failed rerun)
        conn.executemany("UPDATE runs SET status = 'pending' WHERE id = ?", [(i,) for i in dependents])
    store.close()
    shutil.rmtree(tmp_path / "out" / "runs" / teacher.id)

    again = run(tmp_path / "out")
    assert again.status_counts()["done"] == len(again.records())
    assert executions(counted)[teacher.id] == 2 and all(executions(counted)[i] == 2 for i in dependents)
    assert (tmp_path / "out" / "runs" / teacher.id / "model.json").is_file()


@pytest.mark.parametrize("changed", [False, True], ids=["same model", "another model"])
def test_a_redone_teacher_redoes_the_runs_made_from_the_lost_one_if_it_changed(tmp_path, counted, monkeypatch,
                                                                               changed):
    """One student still to do needs the lost teacher: the teacher is redone first. If it makes
    the very model it made before (same fingerprint), what was made from it stands; if not (another
    xner), every run already made from it is redone too -- a curve must not mix two teachers --
    while runs of other teachers stay done."""
    store = run(tmp_path / "out")
    teacher = next(r for r in store.records("done") if r.kind == "train" and r.spec.params["lang"] == "en")
    derived = made_from(store, teacher.id)
    student = next(r.id for r in store.records() if r.kind == "distill" and teacher.id in r.spec.deps)
    with store._transaction() as conn:
        conn.execute("UPDATE runs SET status = 'pending' WHERE id = ?", (student,))
    store.close()
    shutil.rmtree(tmp_path / "out" / "runs" / teacher.id)
    if changed:
        monkeypatch.setenv("MODEL_SALT", "another xner")

    again = run(tmp_path / "out")
    assert again.status_counts()["done"] == len(again.records())
    counts = executions(counted)
    redone = {teacher.id, *derived} if changed else {teacher.id, student}
    assert {i for i, n in counts.items() if n == 2} == redone
    assert len(derived) > 2 and all(n == 1 for i, n in counts.items() if i not in redone)


def test_a_lost_run_needed_by_another_lost_run_is_made_again_first(tmp_path, counted):
    """A pending evaluation needs a lost student, whose own teacher is lost too: the teacher is
    made again, then the student, then the evaluation; the teacher's other runs stand."""
    store = run(tmp_path / "out")
    teacher = next(r for r in store.records("done") if r.kind == "train" and r.spec.params["lang"] == "en")
    student = next(r for r in store.records() if r.kind == "distill" and r.spec.deps == (teacher.id,)
                   and r.spec.params["volume"])
    evaluation = next(r.id for r in store.records() if r.kind == "evaluate" and student.id in r.spec.deps)
    with store._transaction() as conn:
        conn.execute("UPDATE runs SET status = 'pending' WHERE id = ?", (evaluation,))
    store.close()
    for lost in (teacher.id, student.id):
        shutil.rmtree(tmp_path / "out" / "runs" / lost)

    again = run(tmp_path / "out")
    assert again.status_counts()["done"] == len(again.records())
    assert {i for i, n in executions(counted).items() if n == 2} == {teacher.id, student.id, evaluation}


def test_a_lost_folder_nothing_still_needs_is_not_redone(tmp_path, counted):
    """Every run made from the teacher is done: its results stand and nothing reads the folder,
    so nothing runs again (a later run that needs it would redo it then)."""
    store = run(tmp_path / "out")
    teacher = next(r for r in store.records("done") if r.kind == "train" and r.spec.params["lang"] == "en")
    store.close()
    shutil.rmtree(tmp_path / "out" / "runs" / teacher.id)

    again = run(tmp_path / "out")
    assert again.status_counts()["done"] == len(again.records())
    assert set(executions(counted).values()) == {1}
    with again._transaction() as conn:  # a later run that needs it: it and what was made from it run again
        conn.execute("UPDATE runs SET status = 'pending' WHERE id = ?",
                     (next(r.id for r in again.records() if r.kind == "evaluate" and teacher.id in r.spec.deps),))
    again.close()
    run(tmp_path / "out")
    assert executions(counted)[teacher.id] == 2


def test_stores_from_before_the_folder_table_record_the_folders_they_have(tmp_path):
    store = run(tmp_path / "out")
    trained = [r.id for r in store.records() if r.kind == "train"]
    with store._transaction() as conn:
        conn.execute("DROP TABLE folders")
    store.close()
    shutil.rmtree(tmp_path / "out" / "runs" / trained[0])
    with ResultStore(tmp_path / "out" / "study.sqlite", tmp_path / "out" / "runs") as reopened:
        recorded = {row["id"] for row in reopened._conn.execute("SELECT id FROM folders")}
    present = {p.name for p in (tmp_path / "out" / "runs").iterdir() if not p.name.startswith(".")}
    assert trained[1] in recorded and recorded == present  # a folder already gone cannot be known


def test_two_studies_sharing_a_runs_folder_keep_each_others_temporary_folders(tmp_path):
    runs = tmp_path / "runs"
    first, second = ResultStore(tmp_path / "a.sqlite", runs), ResultStore(tmp_path / "b.sqlite", runs)
    with first.session():
        in_flight = first.temp_dir("r1")
        with second.session():
            assert second.recover() == (0, 0)
            assert in_flight.is_dir()
    dead = runs / ".tmp-0123456789ab-r2-deadbeef"  # left by a session whose process died
    dead.mkdir()
    (runs / ".session-0123456789ab.lock").write_text("")
    with second.session():
        assert not dead.exists() and in_flight.exists() is False
    assert not list(runs.glob(".session-*"))


# -- a full disk: one error line, nothing partial at the final path, the store intact -----------------

@pytest.fixture
def full_disk(tmp_path, monkeypatch) -> Path:
    """A folder on a full disk: a file opened for writing under it is created empty, then the
    write fails with ENOSPC (Python's ``open``, safetensors' writer and transformers')."""
    disk = tmp_path / "disk"
    disk.mkdir(exist_ok=True)
    real_open = builtins.open

    def full(path: object) -> None:
        real_open(path, "wb").close()  # what a failed write leaves: an empty file
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    def open_(file, mode="r", *args, **kwargs):
        if isinstance(file, str | os.PathLike) and Path(file).is_relative_to(disk) and set(mode) & set("wax+"):
            full(file)
        return real_open(file, mode, *args, **kwargs)

    def save_file(tensors, filename, *args, **kwargs):
        full(filename)

    for target in ("builtins.open", "io.open"):
        monkeypatch.setattr(target, open_)
    monkeypatch.setattr("safetensors.torch.save_file", save_file)
    monkeypatch.setattr("transformers.modeling_utils.safe_save_file", save_file)
    return disk


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def finished_store(tmp_path, monkeypatch) -> Path:
    """A finished study of test_execute's quick run kinds."""
    run(tmp_path / "study").close()
    return tmp_path / "study" / "study.sqlite"


FULL_DISK = {
    "train": lambda env, disk: env.train(disk / "model"),
    "train --compact": lambda env, disk: env.train(disk / "model", "--compact"),
    "report": lambda env, disk: ["report", env.store, "--out", disk / "report", "--resamples", 20],
    "results csv": lambda env, disk: ["results", env.store, "--out", disk / "results.csv"],
    "results parquet": lambda env, disk: ["results", env.store, "--format", "parquet", "--out", disk / "r.parquet"],
    "perturb": lambda env, disk: ["perturb", env.root / "wikiann" / "nl" / "test.conllu", disk / "p.conllu",
                                  "--lang", "nl", "--data-dir", env.root, "--kind", "mask-entity", "--model", "tiny"],
}


@pytest.mark.parametrize("command", FULL_DISK, ids=list(FULL_DISK))
def test_a_full_disk_is_one_error_line_and_leaves_nothing_partial(env, full_disk, finished_store, command):
    env.store = finished_store
    store_before = finished_store.read_bytes()
    assert "No space left on device" in error_line(cli(*FULL_DISK[command](env, full_disk)))
    assert files_under(full_disk) == []
    assert finished_store.read_bytes() == store_before


def test_a_full_disk_keeps_the_report_already_there(tmp_path, finished_store, request):
    report = tmp_path / "disk" / "report"
    assert cli("report", finished_store, "--out", report, "--resamples", 20).exit_code == 0
    before = {name: (report / name).read_bytes() for name in files_under(report) if (report / name).is_file()}
    request.getfixturevalue("full_disk")  # the disk fills up
    assert "No space left" in error_line(cli("report", finished_store, "--out", report, "--resamples", 20))
    assert {name: (report / name).read_bytes() for name in files_under(report) if (report / name).is_file()} == before


def test_a_full_disk_under_the_store_stops_the_study_in_one_line_and_keeps_finished_runs(tmp_path, monkeypatch):
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump({**STUDY, "output_dir": str(tmp_path / "out")}))
    monkeypatch.setattr("xner.study.execute.default_registry", lambda: KINDS)
    finish = ResultStore.finish
    calls = []

    def finish_until_full(self, run_id, outcome):
        calls.append(run_id)
        if len(calls) > 5:
            raise sqlite3.OperationalError("database or disk is full")
        finish(self, run_id, outcome)

    monkeypatch.setattr(ResultStore, "finish", finish_until_full)
    monkeypatch.setattr("xner.report.write_report", lambda store, out_dir, config: out_dir / "report.html")
    assert error_line(cli("study", config)).startswith("error: result store: database or disk is full;")
    monkeypatch.setattr(ResultStore, "finish", finish)
    with ResultStore(tmp_path / "out" / "study.sqlite", create=False) as store:
        assert store.status_counts()["done"] == 5
    assert cli("study", config).exit_code == 0


# -- data --------------------------------------------------------------------------------------------

def test_train_and_evaluate_repair_iob1_data_as_the_error_says(env):
    train = env.root / "wikiann" / "nl" / "train.conllu"
    train.write_text(train.read_text().replace("\tB-", "\tI-"))  # IOB1: every chunk opens with I-
    assert "--repair in xner train" in error_line(cli(*env.train(env.tmp / "m")))
    assert cli(*env.train(env.tmp / "m", "--repair")).exit_code == 0
    assert len(training_sentences(Tagger.load(env.tmp / "m"))) == 20  # its provenance reads the data as it did


# -- processes ---------------------------------------------------------------------------------------

DRIVER = """
import sys, time
from xner.study.execute import ProcessExecutor
pool = ProcessExecutor(2)
pool._open()
futures = [pool._pool.submit(time.sleep, 120) for _ in range(2)]  # two runs in flight
print("ready", flush=True)
time.sleep(120)
"""


def children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process parents from /proc")
def test_pool_workers_exit_when_the_driver_is_killed():
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while len(workers := children(driver.pid) - {driver.pid}) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = {pid for pid in workers if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()}
        assert len(workers) == 2
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)
