"""Training and distillation options, defined once: field, type, default, validation, help.

Three surfaces read these models and nothing else: the library (:class:`xner.TrainConfig`
and :class:`xner.DistillConfig` extend them), the CLI (every ``--epochs``-like option takes
its default and help text from here) and the study config (its ``training`` and
``distillation`` sections). ``tests/test_options.py`` fails when the surfaces disagree on a
default, a type or a help text. Every field is checked when a model is built, so a bad
value fails at once with the field's name instead of deep inside training.

Swappable pieces are stored under their versioned names (``kl`` -> ``kl.v1``,
``uniform`` -> ``uniform.v1``), so a result records exactly which one it used.

>>> TrainingOptions(epochs=2).epochs
2
>>> DistillationOptions(loss="kl").loss
'kl.v1'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from xner.distillation.weighting import WEIGHTINGS
from xner.errors import XnerError
from xner.registry import resolve_name

__all__ = [
    "DEFAULT_CHECKPOINT",
    "DEFAULT_STUDENT",
    "LOSS_NAMES",
    "OneLineErrors",
    "DistillationOptions",
    "Section",
    "layers_name",
    "TrainingOptions",
    "fail",
    "validation_message",
]

LOSS_NAMES = ("mse.v1", "kl.v1", "ce.v1")
"""The versioned names of :data:`xner.distillation.losses.LOSSES` (kept here, where torch is
not imported; a test checks that both agree)."""


def fail(message: str) -> PydanticCustomError:
    """A validation error whose message is used as written (no "Value error," prefix)."""
    return PydanticCustomError("xner", "{message}", {"message": message})


def _versioned(kind: str, names: tuple[str, ...]):
    """A validator storing the versioned name a bare one means (``kl`` -> ``kl.v1``)."""

    def check(name: str) -> str:
        try:
            return resolve_name(kind, name, names)
        except XnerError as err:
            raise fail(str(err)) from None

    return AfterValidator(check)


LossName = Annotated[str, _versioned("loss", LOSS_NAMES)]
WeightingName = Annotated[str, _versioned("teacher weighting", tuple(WEIGHTINGS))]


class Section(BaseModel):
    """A group of options: frozen, and unknown keys fail listing the valid ones."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key in data:
                if key not in cls.model_fields:
                    valid = ", ".join(sorted(cls.model_fields))
                    raise fail(f"unknown key {key!r}; valid: {valid}")
        return data


class OneLineErrors(BaseModel):
    """Mixin of the library's configs: a bad value raises :class:`~xner.errors.XnerError` in one
    line naming its field. (Only there: pydantic calls a custom ``__init__`` also when it
    validates a nested section, which would lose the study's key path.)"""

    def __init__(self, **values: Any) -> None:
        """Build from keywords; the first bad value raises one line naming its field."""
        try:
            super().__init__(**values)
        except ValidationError as err:
            errors = err.errors()
            more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
            raise XnerError(f"{type(self).__name__}: {validation_message(errors[0])}{more}") from None


class TrainingOptions(Section):
    """How a tagger trains. Defaults suit the embedded multilingual-e5-small on WikiANN and
    MasakhaNER: the small model needs a higher learning rate than BERT-base recipes."""

    epochs: int = Field(3, ge=1, description="Training epochs (fewer if early stopping ends training).")
    lr: float = Field(2e-4, gt=0, description="Peak learning rate (AdamW, linear warm-up and decay).")
    batch_size: int = Field(16, ge=1, description="Sentences per batch.")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of the steps the learning rate warms up over.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient norm clipping.")
    max_length: int = Field(256, ge=8, description="Subword tokens per window; longer sentences are split into "
                            "overlapping windows, every word predicted.")
    train_layers: int | None = Field(None, ge=0, description="Train only the top K encoder layers, on cached "
                                     "frozen features (0: only the classifier; default: every layer).")
    freeze_embeddings: bool = Field(True, description="Keep the word embeddings frozen (much faster on CPU).")
    patience: int | None = Field(
        2, ge=1, description="Epochs without dev improvement before stopping (none: never stop early).")
    min_steps: int = Field(0, ge=0, description="Small data trains more epochs, to reach at least this many updates.")
    dev_size: int | None = Field(1000, ge=1, description="Dev sentences used for early stopping (a fixed prefix).")
    precision: Literal["auto", "mixed", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto (bf16/fp16 on GPU, fp32 on CPU) | mixed (also bf16 on CPUs that have it) | "
        "fp32 | bf16 | fp16.")
    batching: Literal["length", "random"] = Field(
        "length", description="length (batches of similar length) | random (as transformers' Trainer).")
    checkpoint: Literal["best", "last", "average"] = Field(
        "best", description="Weights kept: best (dev F1, early stopping), last epoch, or average of the last 3.")
    dropout: float | None = Field(
        None, ge=0, lt=1, description="Dropout while training (attention, hidden states, head); default: the "
        "pretrained model's own (0.1 for BERT-like encoders). 0 skips the random masks, a sixth of a CPU training "
        "step.")


DEFAULT_CHECKPOINT: str = TrainingOptions.model_fields["checkpoint"].default
"""The weights a training run keeps unless told otherwise; a run recorded without a policy kept these."""


def layers_name(train_layers: int | None) -> int | str:
    """How tables name the layers a model trained: its top ``K``, or ``"all"`` (``train_layers``
    unset), so "every layer" reads as such rather than as a missing value."""
    return "all" if train_layers is None else train_layers


DEFAULT_STUDENT = TrainingOptions(train_layers=9, patience=None)
"""A student's training options when nothing says otherwise (Wu et al. 2020 freeze the bottom 3
of 12 layers; no labelled target dev set to stop on). In a study, unset student keys follow
its ``training`` section instead."""


class DistillationOptions(Section):
    """How a student learns from its teachers (Wu et al. 2020: soft labels, MSE)."""

    loss: LossName = Field("mse", description="mse (Wu et al. 2020; can stall at all-O where entities are rare) | kl.")
    temperature: float = Field(1.0, gt=0, description="Softens the teachers' distributions.")
    hard: bool = Field(False, description="Argmax pseudo-labels and cross-entropy instead of soft labels.")
    threshold: float | None = Field(
        None, gt=0, le=1, description="Keep sentences whose every word's teacher confidence reaches this.")
    weighting: WeightingName = Field("uniform", description="Multi-source teacher weighting: uniform | uriel | langid.")
    source_mix: int = Field(0, ge=0, description="Labelled source sentences mixed into the student's data.")


_MESSAGES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "too_short": "must have at least {min_length} item(s)",
    "missing": "required key is missing",
    "int_parsing": "must be an integer, got {input!r}",
    "int_from_float": "must be an integer, got {input!r}",
    "float_parsing": "must be a number, got {input!r}",
    "bool_parsing": "must be true or false, got {input!r}",
}


def _path(loc: tuple[int | str, ...], root: str) -> str:
    """``('volumes', 2)`` -> ``study.volumes[2]`` (root ``study``)."""
    parts = [part for part in loc if part != "[key]"]  # pydantic's marker of a bad dict key
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)
    return f"{root}{path}" if root else path.lstrip(".")


def validation_message(error: Mapping[str, Any], root: str = "") -> str:
    """One pydantic validation error as ``<key path>: <what is wrong>``."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "xner":
        text = ctx["message"]
    elif kind in _MESSAGES:
        text = _MESSAGES[kind].format(input=error["input"], **ctx)
    else:
        msg = error["msg"]
        text = f"{msg[0].lower()}{msg[1:]}, got {error['input']!r}"
    path = _path(error["loc"], root)
    return f"{path}: {text}" if path else text
