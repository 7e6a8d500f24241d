"""Teacher-student distillation: losses, teacher weightings, ensembles and the student.

- :mod:`~xner.distillation.losses`: the objectives a student fits (``mse.v1``, ``kl.v1``, ``ce.v1``);
- :mod:`~xner.distillation.weighting`: how several teachers' distributions are combined
  (``uniform.v1``, ``given.v1``, ``uriel.v1``, ``langid.v1``);
- :mod:`~xner.distillation.ensemble`: the teachers' weighted ensemble as a predictor;
- :mod:`~xner.distillation.student`: soft labels (cached per sentence) and :func:`distill`.

Exports load on first use (PEP 562): the weightings' names are read by the study config,
which must not import torch.
"""

import importlib

_LAZY = {
    "DistillConfig": "xner.distillation.student",
    "distill": "xner.distillation.student",
    "soft_labels": "xner.distillation.student",
    "teacher_distributions": "xner.distillation.student",
    "LOSSES": "xner.distillation.losses",
    "make_loss": "xner.distillation.losses",
    "distill_loss_name": "xner.distillation.losses",
    "Ensemble": "xner.distillation.ensemble",
    "WEIGHTINGS": "xner.distillation.weighting",
    "TeacherWeighting": "xner.distillation.weighting",
    "resolve_weighting": "xner.distillation.weighting",
    "teacher_language": "xner.distillation.weighting",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xner.distillation' has no attribute {name!r}")


__all__ = sorted(_LAZY)
