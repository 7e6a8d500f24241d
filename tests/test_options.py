"""One config source: the library configs, the CLI options and the study config agree with
:mod:`xner.options` on every training and distillation option's default, type and help."""

from __future__ import annotations

import types
import typing

import pytest
import typer.main
import typer.testing

from xner.cli import app
from xner.distillation.losses import LOSSES
from xner.distillation.student import DistillConfig
from xner.errors import XnerError
from xner.models.tagger import TrainConfig
from xner.options import DEFAULT_STUDENT, LOSS_NAMES, DistillationOptions, TrainingOptions
from xner.study.spec import DistillationSection, Study, parse_study

def base_type(annotation: object) -> type:
    """``int | None`` -> int, ``Literal['a', 'b']`` -> str, ``Annotated[str, ...]`` -> str."""
    if typing.get_origin(annotation) is typing.Annotated:
        return base_type(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) is typing.Literal:
        return type(typing.get_args(annotation)[0])
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (inner,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return base_type(inner)
    return annotation


def field(model: type, name: str) -> tuple:
    info = model.model_fields[name]
    return info.default, info.annotation, info.description


def cli_params(command: str) -> dict[str, tuple]:
    """``--name`` -> (default, help, Python type) of one command, as typer builds it."""
    group = typer.main.get_command(app)
    (callback,) = [info.callback for info in app.registered_commands if info.name == command]
    hints = typing.get_type_hints(callback)
    return {param.name: (param.default, param.help, base_type(hints[param.name]))
            for param in group.commands[command].params}


@pytest.mark.parametrize("name", list(TrainingOptions.model_fields))
def test_the_library_train_config_is_the_training_options(name):
    assert field(TrainConfig, name) == field(TrainingOptions, name)
    assert getattr(DistillConfig().train, name) == getattr(DEFAULT_STUDENT, name)


@pytest.mark.parametrize("name", list(DistillationOptions.model_fields))
def test_the_library_and_the_study_distillation_are_the_distillation_options(name):
    assert field(DistillConfig, name) == field(DistillationSection, name) == field(DistillationOptions, name)


def test_the_study_sections_are_the_options():
    assert Study.model_fields["training"].annotation is TrainingOptions
    assert Study.model_fields["distillation"].annotation is DistillationSection
    assert parse_study({"name": "t", "languages": ["de"]}).training == TrainingOptions()


COMMANDS = [
    ("train", TrainingOptions, TrainingOptions()),
    ("robustness", TrainingOptions, TrainingOptions()),
    ("distill", TrainingOptions, DEFAULT_STUDENT),
    ("distill", DistillationOptions, DistillationOptions.model_construct()),
]


@pytest.mark.parametrize(("command", "model", "defaults"), COMMANDS, ids=[f"{c}-{m.__name__}" for c, m, _ in COMMANDS])
def test_cli_options_take_default_type_and_help_from_the_options(command, model, defaults):
    params = cli_params(command)
    shared = [name for name in model.model_fields if name in params]
    assert len(shared) >= 3, f"{command} shares too few options with {model.__name__}: {shared}"
    for name in shared:
        default, annotation, description = field(model, name)
        expected = default if isinstance(defaults, DistillationOptions) else getattr(defaults, name)
        assert params[name] == (expected, description, base_type(annotation)), f"xner {command} --{name}"


def test_every_field_has_help():
    for model in (TrainingOptions, DistillationOptions, TrainConfig):
        assert [name for name, info in model.model_fields.items() if not info.description] == []


def test_loss_names_are_the_loss_registry():
    assert set(LOSS_NAMES) == set(LOSSES)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TrainConfig(precision="fp64"), "TrainConfig: precision: input should be 'auto', 'mixed', 'fp32', 'bf16' or 'fp16', got 'fp64'"),
        (lambda: TrainConfig(epochs=0), "TrainConfig: epochs: must be >= 1"),
        (lambda: TrainConfig(epoch=3), "TrainConfig: unknown key 'epoch'; valid: "),
        (lambda: DistillConfig(loss="l1"), "DistillConfig: loss: unknown loss 'l1'; valid: ce, kl, mse"),
        (lambda: DistillConfig(weighting="vote"), "DistillConfig: weighting: unknown teacher weighting 'vote'"),
    ],
)
def test_every_field_is_checked_when_a_config_is_made(make, message):
    with pytest.raises(XnerError) as err:
        make()
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_bad_precision_on_the_command_line_is_one_line(tmp_path):
    result = typer.testing.CliRunner().invoke(app, ["train", "--lang", "de", "--out", str(tmp_path / "m"),
                                                    "--precision", "fp64"])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        "error: TrainConfig: precision: input should be 'auto', 'mixed', 'fp32', 'bf16' or 'fp16', got 'fp64'"]


def test_versioned_names_are_stored():
    assert (DistillConfig(loss="kl").loss, DistillConfig().weighting) == ("kl.v1", "uniform.v1")


def test_the_choices_are_those_the_training_code_implements():
    from xner.models.batching import BATCHINGS
    from xner.models.hooks import CHECKPOINTS

    choices = {name: set(typing.get_args(TrainingOptions.model_fields[name].annotation)) for name in ("batching", "checkpoint")}
    assert choices == {"batching": set(BATCHINGS), "checkpoint": set(CHECKPOINTS)}
