"""Study configs: validation messages, expansion into runs, content-hashed ids."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import yaml

from xner.errors import XnerError
from xner.study import RunRegistry, RunSpec, load_study, parse_study
from xner.options import TrainingOptions

KINDS = RunRegistry()
for _name in ("train", "distill", "evaluate", "signals"):
    KINDS.register(_name)(lambda spec, ctx: {})

BASE = {"name": "t", "languages": ["nl"]}


@pytest.mark.parametrize(
    ("config", "fragments"),
    [
        ({**BASE, "volumes": [10, 20, -1]}, ["study.volumes[2]: must be >= 0"]),
        ({**BASE, "volumes": [10, "full"]}, ["study.volumes[1]: must be a number of sentences or 'all', got 'full'"]),
        ({**BASE, "trainig": {}}, ["study: unknown key 'trainig'", "valid: category_map, choices, data_dir, dataset,", "training"]),
        ({**BASE, "training": {"epoch": 2}}, ["study.training: unknown key 'epoch'", "epochs"]),
        ({**BASE, "training": {"epochs": 0}}, ["study.training.epochs: must be >= 1"]),
        ({**BASE, "training": {"lr": "fast"}}, ["study.training.lr: must be a number, got 'fast'"]),
        ({**BASE, "distillation": {"student": {"bogus": 1}}}, ["study.distillation.student: unknown key 'bogus'"]),
        ({**BASE, "distillation": {"loss": "l1"}}, ["study.distillation.loss: unknown loss 'l1'; valid: ce, kl, mse"]),
        ({**BASE, "distillation": {"weighting": "vote"}}, ["unknown teacher weighting 'vote'", "uniform"]),
        ({"name": "t", "languages": ["nl", "xx"]}, ["study.languages[1]: unknown language 'xx'; valid:", "nl"]),
        ({"name": "t", "pairs": ["en-nl"]}, ["study.pairs[0]: 'en-nl' is not HRL:LRL", "pairs: all"]),
        ({"name": "t", "pairs": ["en:zz"]}, ["study.pairs[0]: unknown language 'zz'"]),
        ({"name": "t", "pairs": ["en:eng"]}, ["pairs a language with itself"]),
        ({"name": "t", "families": ["Germnic"]}, ["study.families[0]: unknown family or genus 'Germnic'", "Germanic"]),
        ({"name": "t", "teachers": {"nl": ["en+qq"]}}, ["study.teachers.nl[0]: unknown language 'qq'"]),
        ({"name": "t", "teachers": {"Elvish": ["en"]}}, ["study.teachers.Elvish: unknown language 'Elvish'"]),
        ({**BASE, "perturbations": ["shuffle"]}, ["study.perturbations[0]: unknown perturbation 'shuffle'", "mask-entity"]),
        ({**BASE, "perturbations": ["clean"]}, ["clean is always evaluated"]),
        ({**BASE, "train_sizes": [0]}, ["study.train_sizes[0]: must be > 0"]),
        ({**BASE, "train_sizes": ["most"]}, ["study.train_sizes[0]: must be an integer, got 'most'"]),
        ({**BASE, "seeds": []}, ["study.seeds: must have at least 1 item(s)"]),
        ({**BASE, "label_map": {"DATE": "B-LOC"}}, ["study.label_map:", "not to a tag"]),
        ({**BASE, "dataset": "my data"}, ["study.dataset: 'my data' must be a simple name"]),
        ({**BASE, "executor": {"name": "dask"}}, ["study.executor.name:", "'sequential', 'process' or 'ray'"]),
        ({**BASE, "executor": {"resources": {"trian": {}}}}, ["study.executor.resources.trian:", "'train'"]),
        ({**BASE, "executor": {"workers": 0}}, ["study.executor.workers: must be >= 1"]),
        ({"name": "t"}, ["study: nothing to study: give pairs, matrix, languages, families, teachers, transfer or variants"]),
        ({"languages": ["nl"]}, ["study.name: required key is missing"]),
        ({"name": "t", "matrix": [{"sources": ["en"]}]}, ["study.matrix[0].targets: required key is missing"]),
        ({"name": "t", "matrix": [{"sources": ["en"], "targets": ["zz"]}]}, ["study.matrix[0].targets[0]: unknown language 'zz'"]),
        ({**BASE, "volumes": [-1], "seeds": []}, ["(and 1 more problems)"]),
    ],
)
def test_bad_configs_name_the_key_and_give_a_hint(config, fragments):
    with pytest.raises(XnerError) as err:
        parse_study(config, source="study.yaml")
    message = str(err.value)
    assert message.startswith("study.yaml: ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: t\nlanguages: [nl\n", "study.yaml:3: invalid YAML"),
        ("- name\n- t\n", "study.yaml: a study config is a mapping of keys"),
        ("name: t\nlanguages: [nl]\nvolumes: [-5]\n", "study.yaml: study.volumes[0]: must be >= 0"),
    ],
)
def test_load_study_errors_name_the_file(tmp_path, text, fragment):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    with pytest.raises(XnerError, match=None) as err:
        load_study(path)
    assert str(err.value).startswith(str(tmp_path))
    assert fragment in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(XnerError, match="cannot read the study config"):
        load_study(tmp_path / "nope.yaml")


def kinds(specs: list[RunSpec]) -> Counter:
    return Counter(spec.kind for spec in specs)


def test_shared_training_runs_are_planned_once():
    # en:nl and en:de share the English model; the nl teachers reuse it too
    study = parse_study({"name": "t", "pairs": ["en:nl", "en:de"], "teachers": {"nl": ["en", "de+en"]}, "volumes": [50]})
    specs = study.expand(KINDS)
    trains = sorted(spec.params["lang"] for spec in specs if spec.kind == "train")
    assert trains == ["de", "en", "nl"]
    assert len({spec.id for spec in specs}) == len(specs)
    # evaluations: native nl, native de, en->nl, en->de; teachers' zero-shot: de->nl (en->nl shared);
    # students: 2 teacher sets x volumes {0, 50}
    assert kinds(specs) == {"train": 3, "evaluate": 5 + 4, "distill": 4}


def test_dependencies_come_first_and_point_to_the_right_runs():
    specs = parse_study({"name": "t", "teachers": {"nl": ["en+de"]}, "volumes": [10]}).expand(KINDS)
    by_id = {spec.id: spec for spec in specs}
    position = {spec.id: i for i, spec in enumerate(specs)}
    for spec in specs:
        assert all(position[dep] < position[spec.id] for dep in spec.deps)
    student = next(s for s in specs if s.kind == "distill" and s.params["volume"] == 10)
    assert [by_id[d].params["lang"] for d in student.params["teacher_runs"]] == ["en", "de"]
    evaluation = next(s for s in specs if s.kind == "evaluate" and s.params["model_run"] == student.id)
    assert evaluation.params | {"model_run": None} == {
        "model_run": None, "role": "student", "source": "en+de", "target": "nl", "dataset": "wikiann",
        "label_map": {}, "model": "embedded", "seed": 0, "train_size": None, "volume": 10, "split": "test",
        "perturbations": ["clean"], "test_size": None, "bootstrap": 1000, "decoding": "viterbi.v1", "rate": 1.0,
    }  # fmt: skip


def test_volume_zero_is_the_teachers_zero_shot_baseline():
    specs = parse_study({"name": "t", "teachers": {"nl": ["en"]}, "volumes": [100]}).expand(KINDS)
    distills = {s.params["volume"]: s for s in specs if s.kind == "distill"}
    assert sorted(distills) == [0, 100]
    assert distills[0].params["distillation"] == {"weighting": "uniform.v1"}
    assert distills[100].params["distillation"]["student"]["epochs"] == 3


def test_volume_all_is_each_targets_whole_train_split():
    config = {"name": "t", "teachers": {"de": ["nl"], "kin": ["swa"]}, "volumes": [500, 8000, "all"],
              "dataset_of": {"kin": "masakhaner2", "swa": "masakhaner2"}}
    specs = parse_study(config).expand(KINDS)
    volumes = sorted((s.params["target"], s.params["volume"]) for s in specs if s.kind == "distill")
    assert volumes == [("de", 0), ("de", 500), ("de", 8000), ("de", 20000),  # kin's pool is below 8000:
                       ("kin", 0), ("kin", 500), ("kin", 7825)]  # its grid ends at all


def test_volume_all_without_a_known_train_size_is_an_error():
    study = parse_study({"name": "t", "dataset": "myfolder", "teachers": {"nl": ["en"]}, "volumes": ["all"]})
    with pytest.raises(XnerError, match=r"study.volumes: 'all' needs the train size of nl in myfolder"):
        study.expand(KINDS)


def test_ids_are_stable_across_processes_and_key_order():
    spec = RunSpec("train", 1, {"lang": "nl", "seed": 1, "training": {"lr": 0.0002, "epochs": 3}})
    assert spec.id == "683a691aa30ceef7"  # a changed hash scheme would orphan every stored run
    reordered = RunSpec("train", 1, {"training": {"epochs": 3, "lr": 0.0002}, "seed": 1, "lang": "nl"})
    assert reordered.id == spec.id

    config = {"name": "t", "pairs": ["en:nl"], "training": {"epochs": 2, "lr": 0.001}, "seeds": [1, 2]}
    flipped = yaml.safe_load(yaml.safe_dump(dict(reversed(config.items())), sort_keys=False))
    ids = [s.id for s in parse_study(config).expand(KINDS)]
    assert [s.id for s in parse_study(flipped).expand(KINDS)] == ids


def test_defaults_are_filled_before_hashing():
    implicit = parse_study(BASE).expand(KINDS)
    explicit = parse_study({**BASE, "training": TrainingOptions().model_dump(), "seeds": [0]}).expand(KINDS)
    assert [s.id for s in explicit] == [s.id for s in implicit]
    assert implicit[0].params["training"]["lr"] == TrainingOptions().lr


@pytest.mark.parametrize(
    "change",
    [
        {"training": {"epochs": 4}},
        {"seeds": [7]},
        {"train_sizes": [500]},
        {"model": "tiny"},
        {"label_map": {"ORG": "O"}},
        {"dataset": "masakhaner2"},
        {"training": {"batching": "random"}},
        {"training": {"checkpoint": "average"}},
    ],
)
def test_a_result_changing_param_changes_the_ids(change):
    before = parse_study(BASE).expand(KINDS)
    after = parse_study({**BASE, **change}).expand(KINDS)
    assert not {s.id for s in before} & {s.id for s in after}


def test_evaluation_options_change_only_evaluations():
    before = {s.kind: s.id for s in parse_study(BASE).expand(KINDS)}
    after = {s.kind: s.id for s in parse_study({**BASE, "perturbations": ["mask-entity"]}).expand(KINDS)}
    assert before["train"] == after["train"] and before["evaluate"] != after["evaluate"]


@pytest.mark.parametrize(
    "change",
    [
        {"executor": {"name": "ray", "address": "auto", "resources": {"train": {"num_gpus": 1}}}},
        {"data_dir": "/elsewhere"},
        {"output_dir": "/tmp/other"},
        {"name": "renamed"},
    ],
)
def test_where_and_how_runs_execute_does_not_change_ids(change):
    before = [s.id for s in parse_study(BASE).expand(KINDS)]
    assert [s.id for s in parse_study({**BASE, **change}).expand(KINDS)] == before


def test_kind_version_is_hashed():
    newer = RunRegistry()
    for name in ("train", "evaluate"):
        newer.register(name, version=2)(lambda spec, ctx: {})
    assert not {s.id for s in parse_study(BASE).expand(KINDS)} & {s.id for s in parse_study(BASE).expand(newer)}


def test_resources_and_data_dir_reach_the_specs():
    study = parse_study({**BASE, "data_dir": "/data", "executor": {"resources": {"train": {"num_gpus": 1}}}})
    train, evaluate = study.expand(KINDS)
    assert train.resources == {"num_cpus": 1, "num_gpus": 1} and evaluate.resources == {"num_cpus": 1, "num_gpus": 0}
    assert train.data_dir == "/data"


def test_all_pairs_are_the_13_reference_pairs():
    study = parse_study({"name": "t", "pairs": "all"})
    assert len(study.pairs) == 13 and study.pairs[0] == "fr:br"
    specs = study.expand(KINDS)
    # 21 languages trained once each (es and fr serve several pairs); 13 native + 13 transfer evaluations
    assert kinds(specs) == {"train": 21, "evaluate": 26}


def test_families_add_the_languages_the_dataset_has():
    specs = parse_study({"name": "t", "families": ["Celtic"]}).expand(KINDS)
    assert sorted(s.params["lang"] for s in specs if s.kind == "train") == ["br", "cy"]
    bantu = parse_study({"name": "t", "dataset": "masakhaner2", "families": ["bantu"]}).expand(KINDS)
    langs = sorted(s.params["lang"] for s in bantu if s.kind == "train")
    assert langs == ["kin", "lug", "nya", "sna", "swa", "tsn", "xho", "zul"]  # ISO 639-3, as the folders


def test_teachers_for_every_target_and_per_family():
    study = parse_study({"name": "t", "languages": ["nl", "de", "en"], "teachers": {"*": ["en"]}})
    students = {s.params["target"] for s in study.expand(KINDS) if s.kind == "distill"}
    assert students == {"nl", "de"}  # English does not teach itself
    study = parse_study({"name": "t", "teachers": {"Celtic": ["en"]}})
    assert {s.params["target"] for s in study.expand(KINDS) if s.kind == "distill"} == {"br", "cy"}


def test_codes_are_spelled_as_the_dataset_folders():
    study = parse_study({"name": "t", "pairs": ["en:sw"], "dataset_of": {"swa": "masakhaner2"}})
    train = {s.params["lang"]: s.params["dataset"] for s in study.expand(KINDS) if s.kind == "train"}
    assert train == {"swa": "masakhaner2", "en": "wikiann"}
    assert parse_study({"name": "t", "pairs": ["en:swa"]}).expand(KINDS)[0].params["lang"] == "sw"


def test_single_values_stand_for_lists():
    study = parse_study({"name": "t", "languages": ["nl"], "model": "tiny", "seeds": 3, "teachers": {"nl": "en"}})
    assert study.model == ["tiny"] and study.seeds == [3] and study.teachers == {"nl": ["en"]}


def test_perturbations_are_stored_versioned():
    study = parse_study({**BASE, "perturbations": ["mask-entity", "unseen-entity+random-context"]})
    evaluate = study.expand(KINDS)[1]
    assert evaluate.params["perturbations"] == ["clean", "mask-entity.v1", "unseen-entity.v1+random-context.v1"]


def test_student_options_override_training_options():
    study = parse_study({**BASE, "teachers": {"nl": ["en"]}, "volumes": [10], "training": {"epochs": 5},
                         "distillation": {"student": {"train_layers": 9}}})  # fmt: skip
    student = next(s for s in study.expand(KINDS) if s.kind == "distill" and s.params["volume"])
    expected = {**TrainingOptions(epochs=5).model_dump(), "train_layers": 9}
    assert student.params["distillation"]["student"] == expected


def test_matrix_crosses_every_source_with_every_target_once():
    study = parse_study({"name": "t", "matrix": [{"sources": ["en", "de", "nl"], "targets": ["de", "nl"]}],
                         "pairs": ["en:de"]})
    runs = study.expand(KINDS)
    trained = sorted(run.params["lang"] for run in runs if run.kind == "train")
    scored = Counter((run.params["role"], run.params["source"], run.params["target"]) for run in runs if run.kind == "evaluate")
    assert trained == ["de", "en", "nl"]
    # each target: native once, and zero-shot from every other source (en:de listed twice counts once)
    assert scored == Counter({("native", "de", "de"): 1, ("native", "nl", "nl"): 1, ("transfer", "en", "de"): 1,
                              ("transfer", "nl", "de"): 1, ("transfer", "en", "nl"): 1, ("transfer", "de", "nl"): 1})


def test_a_probing_matrix_adds_one_signals_run_per_off_diagonal_cell():
    plain = parse_study({"name": "t", "matrix": [{"sources": ["en", "de"], "targets": ["de", "nl"]}]}).expand(KINDS)
    probed = parse_study({"name": "t", "matrix": [{"sources": ["en", "de"], "targets": ["de", "nl"], "probe": 300}]})
    runs = probed.expand(KINDS)
    signals = [run for run in runs if run.kind == "signals"]
    assert sorted((r.params["source"], r.params["target"]) for r in signals) == [("de", "nl"), ("en", "de"), ("en", "nl")]
    assert {r.params["probe_size"] for r in signals} == {300}
    trained = {run.id: run.params["lang"] for run in runs if run.kind == "train"}
    assert all(trained[r.params["model_run"]] == r.params["source"] and r.deps == (r.params["model_run"],) for r in signals)
    # probing adds runs; it changes none of the others
    assert {run.id for run in runs if run.kind != "signals"} == {run.id for run in plain}


VARIANTS = {
    "name": "t", "volumes": [10], "training": {"epochs": 4, "train_layers": 2},
    "distillation": {"loss": "kl", "student": {"train_layers": 2}},
    "variants": [
        {"name": "weak", "teachers": {"de": ["nl"]}},
        {"name": "strong", "teachers": {"de": ["nl"]}, "train_sizes": ["all"], "training": {"train_layers": None}},
        {"name": "english", "teachers": {"pl": ["en"]}, "seeds": [1, 2, 3]},
    ],
}


def test_variants_expand_as_studies_of_their_own_and_share_runs():
    runs = parse_study(VARIANTS).expand(KINDS)
    teachers = {(r.params["lang"], r.params["seed"], r.params["train_size"], r.params["training"]["train_layers"])
                for r in runs if r.kind == "train"}
    assert teachers == {("nl", 0, None, 2), ("nl", 0, None, None), ("en", 1, None, 2), ("en", 2, None, 2),
                        ("en", 3, None, 2)}
    # a variant changes only what it names: the strong teacher keeps epochs 4, its student stays at 2 layers
    strong = next(r for r in runs if r.kind == "train" and r.params["training"]["train_layers"] is None)
    assert strong.params["training"]["epochs"] == 4
    students = {r.params["distillation"]["student"]["train_layers"] for r in runs if r.kind == "distill" and r.params["volume"]}
    assert students == {2} and len(runs) == len({r.id for r in runs})
    # a variant equal to a plain study gives that study's runs (same ids)
    plain = parse_study({k: v for k, v in VARIANTS.items() if k != "variants"} | {"teachers": {"de": ["nl"]}})
    assert {r.id for r in plain.expand(KINDS)} <= {r.id for r in runs}


@pytest.mark.parametrize(("variants", "fragment"), [
    ([{"teachers": {"de": ["nl"]}}], "variants[0]: every variant needs a name of its own"),
    ([{"name": "a", "teachers": {"de": ["nl"]}}, {"name": "a", "teachers": {"de": ["nl"]}}],
     "variants[1] (a): every variant needs a name of its own"),
    ([{"name": "a", "training": {"epochs": 0}, "teachers": {"de": ["nl"]}}], "variants[0] (a): training.epochs: must be >= 1"),
    ([{"name": "a", "executor": {"name": "ray"}}], "variants[0] (a): executor cannot vary between variants"),
    ([{"name": "a"}], "variants[0] (a): nothing to study"),
])
def test_bad_variants_name_the_variant_and_key(variants, fragment):
    with pytest.raises(XnerError, match=re.escape(fragment)):
        parse_study({"name": "t", "volumes": [10], "variants": variants}, source="s.yaml")
