"""A study as one typed YAML config, and its expansion into content-hashed run specs.

A user states the whole study -- languages or pairs, model, sizes, volumes, teachers,
perturbations, seeds, training options, executor -- in one file; :func:`load_study`
validates it (unknown keys, bad values and unknown languages fail with the key path and a
hint) and :meth:`Study.expand` turns it into the runs to execute. Every run's id hashes
all that changes its result, so a run shared by several parts of the study (one native
model evaluated clean and perturbed, one teacher behind several students) is planned and
executed once, and a rerun of the study finds its finished runs again.

Example config::

    name: quick
    pairs: [en:nl]              # or: all (the reference study's 13 pairs)
    train_sizes: [1000]
    volumes: [100, 1000]
    teachers: {nl: [en, en+de]} # per target: single- and multi-source teachers
    perturbations: [unseen-entity, mask-entity]
    seeds: [1, 2]
    training: {epochs: 2, train_layers: 3}

``load_study("quick.yaml").expand(registry)`` gives its train, distill and evaluate runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BeforeValidator, Field, StrictInt, ValidationError, field_validator, model_validator

from xner.data.datasets import dataset_labels, load_split
from xner.data.labels import check_label_map, entity_types
from xner.data.pools import TRAIN, check_sources, file_pool, name_sources
from xner.decoding import DEFAULT_DECODING, decoding_name
from xner.errors import XnerError
from xner.languages import LANGUAGES, STUDY_PAIRS, TRAIN_FIELDS, Language, get_language
from xner.options import DistillationOptions, Section, TrainingOptions, fail, validation_message
from xner.perturb import get_perturbation
from xner.study.runs import RunRegistry, RunSpec
from xner.tasks import DEFAULT_TASK, get_task
from xner.perturb.documents import DOCUMENT_PERTURBATIONS

__all__ = [
    "DistillationSection",
    "EvaluationOptions",
    "ExecutorOptions",
    "Resources",
    "Study",
    "load_study",
    "parse_study",
]

FOLDER_CODE = {"masakhaner2": "iso3", "masakhanews": "iso3"}
"""Datasets whose language folders use ISO 639-3 codes; the others use the short code."""

ALL_TARGETS = "*"
"""Teachers key meaning: every target language of the study."""

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _validated(check: Callable[..., Any], *args: Any) -> Any:
    """``check(*args)``, its :class:`XnerError` turned into a validation error used as written."""
    try:
        return check(*args)
    except XnerError as err:
        raise fail(str(err)) from None


def _language(code: str) -> Language:
    """Registry entry of a code, as a validation error that lists the valid codes."""
    return _validated(get_language, code)


def _as_list(value: Any) -> Any:
    """Let a single value stand for a one-item list (``model: embedded``)."""
    return [value] if isinstance(value, str | int) else value


def _all_to_none(value: Any) -> Any:
    return None if value == "all" else value


def _volume(value: int | str) -> int | str:
    """A number of unlabeled sentences, or ``all`` (the target's whole train split)."""
    if isinstance(value, str) and value != "all":
        raise fail(f"must be a number of sentences or 'all', got {value!r}")
    if isinstance(value, int) and value < 0:
        raise fail("must be >= 0")
    return value


def _pair_names() -> list[str]:
    return [f"{pair.hrl}:{pair.lrl}" for pair in STUDY_PAIRS]


def _family_members(name: str) -> list[Language]:
    """Languages whose family or genus is ``name`` (case-insensitive)."""
    wanted = name.lower()
    return [lang for lang in LANGUAGES if wanted in (lang.family.lower(), lang.genus.lower())]


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise fail(f"{value!r} must be a simple name (letters, digits, '_', '.', '-')")
    return value


def _check_code(code: str) -> str:
    _language(code)
    return code


def _check_pair(pair: str) -> str:
    parts = pair.split(":")
    if len(parts) != 2 or not all(parts):
        raise fail(f"{pair!r} is not HRL:LRL (e.g. en:nl), or write pairs: all")
    if _language(parts[0]) is _language(parts[1]):
        raise fail(f"{pair!r} pairs a language with itself")
    return pair


def _check_family(name: str) -> str:
    if not _family_members(name):
        valid = sorted({lang.family for lang in LANGUAGES} | {lang.genus for lang in LANGUAGES})
        raise fail(f"unknown family or genus {name!r}; valid: {', '.join(valid)}")
    return name


def _check_target(key: str) -> str:
    return key if key == ALL_TARGETS or _family_members(key) else _check_code(key)


def _check_teacher_set(teachers: str) -> str:
    for code in teachers.split("+"):
        _language(code)
    return teachers


def _check_perturbation(name: str) -> str:
    """The versioned name (``mask-entity`` -> ``mask-entity.v1``), so ids follow versions."""
    if name == "clean":
        raise fail("clean is always evaluated; list only perturbations")
    return _validated(get_perturbation, name).name


def _check_decoding(name: str) -> str:
    """The versioned name (``viterbi`` -> ``viterbi.v1``), so ids follow versions."""
    return _validated(decoding_name, name)


def _check_task(name: str) -> str:
    """The versioned task name (``topic`` -> ``topic.v1``)."""
    return _validated(get_task, name).name


def _pool_sources(sources: list[str]) -> list[str]:
    return _validated(check_sources, sources)


PoolSource = Annotated[str, Field(min_length=1)]
SimpleName = Annotated[str, AfterValidator(_check_name)]
LanguageCode = Annotated[str, AfterValidator(_check_code)]
PairName = Annotated[str, AfterValidator(_check_pair)]
FamilyName = Annotated[str, AfterValidator(_check_family)]
TeacherTarget = Annotated[str, AfterValidator(_check_target)]
TeacherSet = Annotated[str, AfterValidator(_check_teacher_set)]
PerturbationName = Annotated[str, AfterValidator(_check_perturbation)]
DecodingName = Annotated[str, AfterValidator(_check_decoding)]
TaskName = Annotated[str, AfterValidator(_check_task)]


class DistillationSection(DistillationOptions):
    """How a student learns from its teachers: :class:`~xner.options.DistillationOptions`
    plus ``student``, training options for students only, e.g. ``{train_layers: 9}`` (Wu et
    al. 2020 freeze the bottom 3 of 12 layers); unset keys follow the study's ``training``.
    """

    student: TrainingOptions = Field(TrainingOptions(), description="Students' training options; unset keys follow training.")


class EvaluationOptions(Section):
    """Which split models are scored on (all of it, or its first ``test_size`` sentences), how
    many bootstrap resamples give the CI, which decoding gives ``f1`` (every decoding is scored
    as ``f1_<name>`` regardless; :mod:`xner.decoding`), and the share of eligible tokens or
    mentions the perturbations edit (``rate``; 1: all, as the reference study)."""

    split: Literal["test", "dev"] = "test"
    test_size: int | None = Field(None, ge=1)
    bootstrap: int = Field(1000, ge=0)
    rate: float = Field(1.0, ge=0, le=1)
    decoding: DecodingName = DEFAULT_DECODING


class Resources(Section):
    """What a scheduler reserves for one run (Ray task options)."""

    num_cpus: float = Field(1, gt=0)
    num_gpus: float = Field(0, ge=0)


class ExecutorOptions(Section):
    """Where runs execute: in process, in a local process pool, or on a Ray cluster."""

    name: Literal["sequential", "process", "ray"] = "sequential"
    workers: int | None = Field(None, ge=1)
    address: str | None = None
    resources: dict[Literal["train", "distill", "evaluate", "signals"], Resources] = {}


class MatrixBlock(Section):
    """A source x target block of a transfer matrix: a model per source and per target, each
    target scored natively and zero-shot from every other source (the diagonal is native)."""

    sources: Annotated[list[LanguageCode], Field(min_length=1)]
    targets: Annotated[list[LanguageCode], Field(min_length=1)]
    probe: int = Field(0, ge=0)
    """Unlabeled target sentences (a seeded sample of its train split, labels unused) that
    every source's model tags for label-free signals of transfer (a ``signals`` run per
    pair; 0: none)."""


class Study(Section):
    """One study: what to compare, on which data, with which model and options.

    Expansion (:meth:`expand`) -- for every model x seed x train size:

    - ``train``: one per language that needs a model: each pair's LRL and every
      ``languages``/``families`` language (native), each pair's HRL (transfer source), every
      teacher language. Params: lang, dataset, label_map, model, train_size (``None`` =
      all), seed, training options.
    - ``evaluate`` of a trained model on a target: role ``native`` (train and test on the
      LRL) and ``transfer`` (HRL model on the LRL; also every teacher on its target, its
      zero-shot score). Params: model_run (dep), role, model, source, target, dataset,
      label_map, split, perturbations (``clean`` first), bootstrap, decoding, seed, train_size,
      volume.
    - ``distill`` per target, teacher set and volume: teacher_runs (deps), teachers,
      target, dataset, model, seed, train_size, volume and distillation options (student
      training options resolved). Volume 0 -- always part of a sweep, the baseline every
      student's gain is measured against -- is the teachers' zero-shot (ensemble) output,
      which only the teacher weighting changes; it is evaluated with role ``student``.

    Params are fully resolved (defaults filled) and ids hash kind, kind version, params and
    dependency ids, so identical runs from different parts of the config are one run.
    Language codes are written as the dataset's folders name them (MasakhaNER: ISO 639-3).

    Attributes (YAML keys):
        name: the study's name; ``output_dir`` defaults to ``results/<name>``.
        dataset: dataset of every language (``wikiann``, ``masakhaner2`` or a folder name),
            except those named in ``dataset_of`` (``{hau: masakhaner2}``).
        data_dir: local data root (default: ``XNER_DATA_DIR``, else the Hugging Face hub).
        label_map: entity type -> type or ``O`` applied to all data (``{DATE: O}``).
        model: backbone name(s) (``embedded``, ``bert-base-multilingual-cased``...).
        pairs: ``HRL:LRL`` strings or ``all`` (the reference study's 13 pairs).
        matrix: blocks of ``{sources: [...], targets: [...]}``: every source x target pair
            (a transfer matrix, e.g. to choose a teacher), expanded like ``pairs``.
        languages: languages studied natively (trained and tested on themselves).
        families: family or genus names (``Germanic``, ``Niger-Congo``) adding their
            languages that the dataset has to ``languages``.
        teachers: per target (a language, a family/genus, or ``*`` = every target), a list
            of teacher sets: ``en`` (single-source) or ``en+de`` (multi-source).
        train_sizes: labelled training sentences (``all`` or a positive number).
        volumes: unlabeled target sentences for students (0 = teachers zero-shot;
            ``all`` = the target's whole pool: its train split's size from the language
            registry, plus the sentences of its pool files).
        pools: per target, the unlabeled pool's sources in order: ``train`` (the train
            split, labels dropped: the default) and/or pool files of ``xner data
            sentences``, e.g. ``{yor: [train, pools/yor.txt]}`` (the train split, then the
            file). Distill params name the pool, each file by its content digest.
        perturbations: test-set perturbation names, stored versioned (``mask-entity.v1``);
            ``clean`` is always evaluated.
        seeds: one full repetition of the study per seed.
        tasks: what the models predict (:mod:`xner.tasks`): ``ner`` (default; its runs keep the
            ids they had before tasks existed), ``headline``, ``topic``; every run is made per task.
        transfer: per target, source languages whose models are scored on it zero-shot (no
            native model of the target: for targets without a train split).
        category_map: topic categories renamed or dropped (``{religion: drop}``) in every
            language's documents; a category a model does not know fails its evaluation.
        choices: candidates per headline question (the right one + distractors).
        variants: named overrides of the keys above (``{name: strong-teacher, train_sizes:
            [all], training: {train_layers: null}}``), each expanded as a study of its own
            and deep-merged into the rest of the config; runs they share are done once. For
            crossing settings that the grid keys cannot (teacher strength x student capacity,
            seeds or teachers per setting). ``name``, ``output_dir``, ``data_dir`` and
            ``executor`` are the study's own.
    """

    name: SimpleName
    output_dir: Path | None = None
    dataset: SimpleName = "wikiann"
    dataset_of: dict[str, str] = {}
    data_dir: Path | None = None
    label_map: dict[str, str] = {}
    model: Annotated[list[str], BeforeValidator(_as_list), Field(min_length=1)] = ["embedded"]
    pairs: Annotated[list[PairName], BeforeValidator(lambda v: _pair_names() if v == "all" else v)] = []
    matrix: list[MatrixBlock] = []
    languages: list[LanguageCode] = []
    families: list[FamilyName] = []
    teachers: dict[TeacherTarget, Annotated[list[TeacherSet], BeforeValidator(_as_list)]] = {}
    train_sizes: Annotated[list[Annotated[Annotated[int, Field(gt=0)] | None, BeforeValidator(_all_to_none)]],
                           Field(min_length=1)] = [None]
    volumes: list[Annotated[int | str, AfterValidator(_volume)]] = []
    perturbations: list[PerturbationName] = []
    seeds: Annotated[list[StrictInt], BeforeValidator(_as_list), Field(min_length=1)] = [0]
    pools: dict[LanguageCode, Annotated[list[PoolSource], BeforeValidator(_as_list), AfterValidator(_pool_sources)]] = {}
    training: TrainingOptions = TrainingOptions()
    distillation: DistillationSection = DistillationSection()
    evaluation: EvaluationOptions = EvaluationOptions()
    executor: ExecutorOptions = ExecutorOptions()
    variants: list[dict[str, Any]] = []
    tasks: Annotated[list[TaskName], BeforeValidator(_as_list), Field(min_length=1)] = [DEFAULT_TASK]
    transfer: dict[LanguageCode, Annotated[list[LanguageCode], BeforeValidator(_as_list)]] = {}
    category_map: dict[str, str] = {}
    choices: int = Field(4, ge=2)

    @model_validator(mode="after")
    def _tasks_fit(self) -> "Study":
        document = {p.name for p in DOCUMENT_PERTURBATIONS}
        for task in self.tasks:
            is_document = get_task(task).head is not None
            wrong = [p for p in self.perturbations if (p in document) != is_document]
            if wrong:
                kind = "NER" if is_document else "document"
                raise fail(f"perturbation(s) {', '.join(wrong)} are {kind} perturbations, but tasks has {task}")
            if is_document and (self.teachers or self.volumes):
                raise fail(f"task {task}: teachers and volumes (distillation) are NER-only")
        return self

    @field_validator("dataset_of")
    @classmethod
    def _dataset_of(cls, value: dict[str, str]) -> dict[str, str]:
        for code, dataset in value.items():
            _language(code)
            _check_name(dataset)
        return value

    @field_validator("label_map")
    @classmethod
    def _label_map(cls, value: dict[str, str]) -> dict[str, str]:
        return _validated(check_label_map, value, list(value))

    @model_validator(mode="after")
    def _something_to_run(self) -> "Study":
        if not (self.pairs or self.matrix or self.languages or self.families or self.teachers or self.transfer
                or self.variants):
            raise fail("nothing to study: give pairs, matrix, languages, families, teachers, transfer or variants")
        self.variant_studies()  # each variant must be a valid study
        return self

    @model_validator(mode="after")
    def _label_map_types(self) -> "Study":
        """Each mapped type must be one of some dataset of the study (a typo would map nothing)."""
        datasets = sorted({self.dataset, *self.dataset_of.values()})
        try:
            types = {t for name in datasets for t in entity_types(dataset_labels(name))}
        except XnerError:
            return self  # a dataset folder that cannot be read yet: its runs will say why
        unknown = sorted(set(self.label_map) - types)
        if unknown:
            raise fail(f"label_map: {', '.join(map(repr, unknown))} is no entity type of "
                       f"{', '.join(datasets)}; types: {', '.join(sorted(types))}")
        return self

    def variant_studies(self) -> list["Study"]:
        """Each variant as a whole study: this config's keys deep-merged with the variant's.

        Raises:
            PydanticCustomError: ``variants[i] (name): <key path>: <problem>``.
        """
        base = self.model_dump(exclude_unset=True, exclude={"variants"})
        studies, names = [], set()
        for index, variant in enumerate(self.variants):
            name = variant.get("name")
            where = f"variants[{index}]" + (f" ({name})" if name else "")
            if not isinstance(name, str) or not name or name in names:
                raise fail(f"{where}: every variant needs a name of its own")
            names.add(name)
            fixed = sorted(_VARIANT_FIXED & set(variant))
            if fixed:
                raise fail(f"{where}: {', '.join(fixed)} cannot vary between variants")
            merged = _deep_merge(base, {k: v for k, v in variant.items() if k != "name"})
            try:
                studies.append(Study.model_validate(merged))
            except ValidationError as err:
                problem = validation_message(err.errors()[0], root="study").removeprefix("study: ").removeprefix("study.")
                raise fail(f"{where}: {problem}") from None
        return studies

    @property
    def out_dir(self) -> Path:
        """Where results go: ``output_dir`` or ``results/<name>``."""
        return self.output_dir or Path("results") / self.name

    def expand(self, registry: RunRegistry) -> list[RunSpec]:
        """The study's runs in dependency order, each once (see the class docstring).

        Args:
            registry: the run kinds (their versions are hashed into the ids).

        Returns:
            Run specs; a run's dependencies come before it.
        """
        if self.variants:
            specs = (spec for study in self.variant_studies() for spec in study.expand(registry))
            return list({spec.id: spec for spec in specs}.values())
        plan = _Expansion(self, registry)
        targets = {target for target, _ in plan.teacher_sets()}
        if unused := [code for code in self.pools if get_language(code) not in targets]:
            valid = ", ".join(sorted(plan.code(lang) for lang in targets)) or "none: give teachers"
            raise XnerError(f"study.pools: {', '.join(unused)} is not a student target of the study; targets: {valid}")
        for model in self.model:
            for seed in self.seeds:
                for train_size in self.train_sizes:
                    for task in self.tasks:
                        plan.cell(model, seed, train_size, task)
        return list(plan.specs.values())


_VARIANT_FIXED = frozenset({"output_dir", "data_dir", "executor", "variants"})
"""Keys that are the whole study's: one store, one data root, one executor."""


_OPTION_SECTIONS = frozenset({"training", "distillation", "student", "evaluation"})
"""Option sections a variant changes key by key; any other key a variant gives replaces the
study's (``teachers: {pl: [en]}`` is the variant's whole teachers map)."""


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, option sections merged key by key (``training: {epochs: 2}``
    changes only the epochs)."""
    merged = dict(base)
    for key, value in override.items():
        if key in _OPTION_SECTIONS and isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class _Expansion:
    """Builds the run graph of one study, deduplicating runs by id."""

    def __init__(self, study: Study, registry: RunRegistry) -> None:
        self.study = study
        self.registry = registry
        self.specs: dict[str, RunSpec] = {}
        self.datasets = {get_language(code): dataset for code, dataset in study.dataset_of.items()}
        self.training = study.training.model_dump()
        self.student = {**self.training, **study.distillation.student.model_dump(exclude_unset=True)}
        self.grid: dict[str, Any] = {}  # model, seed, train_size of the cell being expanded
        self.task: dict[str, Any] = {}  # the task's params (none for NER: its ids predate tasks)
        self.pools = {get_language(code): sources for code, sources in study.pools.items()}
        self.pool_files: dict[str, tuple[int, str]] = {}  # path -> (sentences, digest)

    # -- languages ---------------------------------------------------------------------
    def dataset(self, lang: Language) -> str:
        return self.datasets.get(lang, self.study.dataset)

    def code(self, lang: Language) -> str:
        """The language's code as its dataset's folders spell it."""
        return lang.iso3 if FOLDER_CODE.get(self.dataset(lang)) == "iso3" else lang.code

    def has_data(self, lang: Language) -> bool:
        dataset = self.dataset(lang)
        return dataset not in TRAIN_FIELDS or lang.train_sentences(dataset) is not None

    def natives(self) -> list[Language]:
        listed = [get_language(code) for code in self.study.languages]
        from_families = [
            lang for name in self.study.families for lang in _family_members(name) if self.has_data(lang)
        ]
        return list(dict.fromkeys(listed + from_families))

    def pairs(self) -> list[tuple[Language, Language]]:
        """``pairs`` then every source x target of each ``matrix`` block (without the diagonal)."""
        listed = [tuple(get_language(code) for code in pair.split(":")) for pair in self.study.pairs]
        crossed = [(source, target) for source, target, _ in self.matrix_pairs()]
        return list(dict.fromkeys(listed + crossed))

    def matrix_pairs(self) -> list[tuple[Language, Language, MatrixBlock]]:
        """(source, target, block) of every off-diagonal cell of the ``matrix`` blocks."""
        return [
            (source, target, block)
            for block in self.study.matrix
            for target in map(get_language, block.targets)
            for source in map(get_language, block.sources)
            if source is not target
        ]

    def probes(self) -> list[tuple[Language, Language, int]]:
        """(source, target, probe size) of every ``matrix`` pair whose block probes."""
        return [(source, target, block.probe) for source, target, block in self.matrix_pairs() if block.probe]

    def teacher_sets(self) -> list[tuple[Language, tuple[Language, ...]]]:
        """(target, teachers) for every teachers entry, without sets holding the target."""
        every_target = list(dict.fromkeys([lrl for _, lrl in self.pairs()] + self.natives()))
        found = []
        for key, sets in self.study.teachers.items():
            targets = every_target if key == ALL_TARGETS else _family_members(key) or [get_language(key)]
            for target in targets:
                for teacher_set in sets:
                    teachers = tuple(dict.fromkeys(get_language(code) for code in teacher_set.split("+")))
                    if target not in teachers:
                        found.append((target, teachers))
        return list(dict.fromkeys(found))

    # -- runs --------------------------------------------------------------------------
    def add(
        self, kind: str, params: dict[str, Any], deps: Iterable[RunSpec] = (), files: Mapping[str, str] | None = None
    ) -> RunSpec:
        options = self.study.executor.resources.get(kind, Resources())
        spec = RunSpec(
            kind=kind,
            version=self.registry.version(kind),
            params=params,
            deps=tuple(dep.id for dep in deps),
            resources=options.model_dump(),
            data_dir=str(self.study.data_dir) if self.study.data_dir else None,
            files=dict(files or {}),
        )
        return self.specs.setdefault(spec.id, spec)

    def cell(self, model: str, seed: int, train_size: int | None, task: str = DEFAULT_TASK) -> None:
        """Every run of one (model, seed, train size, task) combination."""
        self.grid = {"model": model, "seed": seed, "train_size": train_size}
        self.task = self.task_params(task)
        for hrl, lrl in self.pairs():
            self.evaluate(self.train(lrl), "native", (lrl,), lrl)
            self.evaluate(self.train(hrl), "transfer", (hrl,), lrl)
        for lang in self.natives():
            self.evaluate(self.train(lang), "native", (lang,), lang)
        for target, sources in self.study.transfer.items():
            for source in map(get_language, sources):
                self.evaluate(self.train(source), "transfer", (source,), get_language(target))
        for source, target, probe in self.probes():
            self.signals(self.train(source), source, target, probe)
        for target, teachers in self.teacher_sets():
            self.students(teachers, target)

    def task_params(self, task: str) -> dict[str, Any]:
        """What a document task adds to its runs' params, in place of the NER label map."""
        base = get_task(task).base
        if base == "ner":
            return {}
        options = {"choices": self.study.choices} if base == "headline" else {"category_map": self.study.category_map}
        return {"task": task, **options}

    def labels(self) -> dict[str, Any]:
        """The label params of the current task: NER's label map, or the document task's."""
        return self.task or {"label_map": self.study.label_map}

    def train(self, lang: Language) -> RunSpec:
        params = {
            "lang": self.code(lang),
            "dataset": self.dataset(lang),
            **self.labels(),
            **self.grid,
            "training": self.training,
        }
        return self.add("train", params)

    def evaluate(
        self, model_run: RunSpec, role: str, sources: tuple[Language, ...], target: Language, volume: int | None = None
    ) -> RunSpec:
        params = {
            "model_run": model_run.id,
            "role": role,
            "source": "+".join(self.code(lang) for lang in sources),
            "target": self.code(target),
            "dataset": self.dataset(target),
            **self.labels(),
            **self.grid,
            "volume": volume,
            "split": self.study.evaluation.split,
            "perturbations": ["clean", *self.study.perturbations],
            "test_size": self.study.evaluation.test_size,
            "bootstrap": self.study.evaluation.bootstrap,
            "decoding": self.study.evaluation.decoding,
            "rate": self.study.evaluation.rate,
        }
        return self.add("evaluate", params, [model_run])

    def signals(self, model_run: RunSpec, source: Language, target: Language, probe: int) -> RunSpec:
        params = {
            "model_run": model_run.id,
            "source": self.code(source),
            "target": self.code(target),
            "dataset": self.dataset(target),
            "label_map": self.study.label_map,
            **self.grid,
            "probe_size": probe,
        }
        return self.add("signals", params, [model_run])

    def pool(self, target: Language) -> tuple[list[str], dict[str, str]]:
        """The target's pool as distill params name it (files by content digest: a changed
        file, new runs), and its files by digest (see :func:`xner.data.pools.name_sources`)."""
        return name_sources(self.pools.get(target, [TRAIN]), lambda path: self.pool_file(path)[1])

    def pool_file(self, path: str) -> tuple[int, str]:
        """(sentences, digest) of a pool file, read once per expansion."""
        if path not in self.pool_files:
            sentences, digest = file_pool(path)
            self.pool_files[path] = (len(sentences), digest)
        return self.pool_files[path]

    def pool_size(self, target: Language) -> int:
        """Sentences in the target's whole pool. The train split alone (the default pool):
        its size in the language registry, so that planning needs no data; with pool files:
        the files' sentences plus the train split's, counted (the files are read anyway)."""
        sources = self.pools.get(target, [TRAIN])
        size = sum(self.pool_file(source)[0] for source in sources if source != TRAIN)
        if TRAIN not in sources:
            return size
        dataset = self.dataset(target)
        if sources != [TRAIN]:
            return size + len(load_split(self.code(target), "train", dataset=dataset, data_dir=self.study.data_dir))
        train = target.train_sentences(dataset)
        if train is None:
            raise XnerError(f"study.volumes: 'all' needs the train size of {target.code} in {dataset}, "
                            "which the language registry does not know; list the volumes as numbers")
        return size + train

    def volumes(self, target: Language) -> list[int]:
        """The study's volumes for one target, ``all`` resolved to its pool's size
        (so that results carry the real number of sentences, which the analysis needs).

        With ``all``, the grid ends there: numbers at or above a target's pool are that
        target's ``all`` (pools differ, e.g. WikiANN 20,000 vs MasakhaNER 3-8k). Without
        it, a volume above the pool fails its run with a message saying so.
        """
        numbers = {0, *(v for v in self.study.volumes if v != "all")}
        if "all" not in self.study.volumes:
            return sorted(numbers)
        size = self.pool_size(target)
        return sorted({v for v in numbers if v < size} | {size})

    def students(self, teachers: tuple[Language, ...], target: Language) -> None:
        """Teachers' zero-shot scores, then the student volume sweep (with volume 0)."""
        teacher_runs = [self.train(lang) for lang in teachers]
        for lang, run in zip(teachers, teacher_runs):
            self.evaluate(run, "transfer", (lang,), target)
        distillation = self.study.distillation.model_dump(exclude={"student"})
        pool, files = self.pool(target)
        for volume in self.volumes(target):
            options = {**distillation, "student": self.student} if volume else {"weighting": distillation["weighting"]}
            params = {
                "teacher_runs": [run.id for run in teacher_runs],
                "teachers": [self.code(lang) for lang in teachers],
                "target": self.code(target),
                "dataset": self.dataset(target),
                **self.grid,
                "volume": volume,
                "distillation": options,
                "pool": pool if volume else [TRAIN],  # the teachers zero-shot draw nothing
            }
            student = self.add("distill", params, teacher_runs, files if volume else None)
            self.evaluate(student, "student", teachers, target, volume)


def _path(loc: tuple[int | str, ...]) -> str:
    """``('volumes', 2)`` -> ``study.volumes[2]``."""
    parts = [part for part in loc if part != "[key]"]  # pydantic's marker of a bad dict key
    return "study" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)


def parse_study(data: Any, source: str = "study") -> Study:
    """Validate a study config given as a mapping (e.g. parsed YAML).

    Raises:
        XnerError: ``<source>: study.<key path>: <problem and hint>`` for the first problem.
    """
    if not isinstance(data, Mapping):
        valid = ", ".join(sorted(Study.model_fields))
        raise XnerError(f"{source}: a study config is a mapping of keys ({valid}), not {type(data).__name__}")
    try:
        return Study.model_validate(data)
    except ValidationError as err:
        errors = err.errors()
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise XnerError(f"{source}: {validation_message(errors[0], root='study')}{more}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error
    (plain YAML keeps the last value: half of a config silently ignored)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_study(path: str | Path) -> Study:
    """Read and validate a study config (YAML).

    Raises:
        XnerError: one line naming the file (and line, for YAML syntax errors).

    >>> load_study("missing.yaml")
    Traceback (most recent call last):
    ...
    xner.errors.XnerError: missing.yaml: cannot read the study config (No such file or directory)
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise XnerError(f"{path}: cannot read the study config ({err.strerror})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise XnerError(f"{where}: invalid YAML: {getattr(err, 'problem', None) or err}") from None
    return parse_study(data, source=str(path))
