"""Label-preserving test-set perturbations: pure, seeded functions over labelled sentences.

Two families (docs/design.md, "Perturbations"):

- the reference study's overlap removers (Manafi & Krishnaswamy 2024), relative to the
  training language L1 of the model under test: ``unseen-entity`` (P1) replaces every
  test entity chunk that is an L1 training chunk of the same type by a same-type name
  L1 never saw; ``unseen-context`` (P2) replaces every context word shared with L1's
  training context words by the most similar target word outside L1's vocabulary;
  ``unseen-both`` (P3) does both;
- generic ones at a rate p of eligible units (Srinivasan & Vajjala 2023 style):
  ``mask-entity``, ``random-context``, ``swap-entity``;
- the reference study's document-level P4/P5 for the document tasks:
  ``nearest-unseen-word``, ``random-unseen-word`` (:mod:`~xner.perturb.documents`).

Kinds live in a registry under versioned names (``"unseen-entity.v1"``); a bare name
means its latest version, and ``a+b`` applies ``a`` then ``b``. Every perturbation
returns the new sentence and :class:`Edit` records that replay it exactly
(:func:`apply_edits`). Randomness comes only from the ``rng`` argument;
:func:`perturb_corpus` seeds one generator per sentence from ``(seed, index)``, so the
output does not depend on order or batching. The rate applies to every kind: each
eligible unit (token or mention) is edited with probability ``rate``; 1 edits all of
them (the reference study's setting) and 0 is the identity.

What perturbations look up (L1 chunks, vocabularies, name inventories, stopwords, word
neighbours) is built once per (training language, target language) into
:class:`PerturbationResources`.

Modules: :mod:`~xner.perturb.kinds` (the kinds and their registry),
:mod:`~xner.perturb.resources` (what they look up), :mod:`~xner.perturb.neighbours` (word
neighbours for ``unseen-context``), :mod:`~xner.perturb.files` (a file in, a file and its
edit log out); the edit record itself is :mod:`xner.data.edits`.
"""

from xner.data.edits import Edit, apply_edits, edit_summary
from xner.perturb.files import perturb_file
from xner.perturb.kinds import PERTURBATIONS, Perturbation, get_perturbation, list_perturbations, perturb, perturb_corpus
from xner.perturb.neighbours import ContextNeighbours
from xner.perturb.resources import PerturbationResources, build_resources
from xner.perturb import documents as _documents  # noqa: F401 - registers the document kinds P4/P5

__all__ = [
    "PERTURBATIONS",
    "ContextNeighbours",
    "Edit",
    "Perturbation",
    "PerturbationResources",
    "apply_edits",
    "build_resources",
    "edit_summary",
    "get_perturbation",
    "list_perturbations",
    "perturb",
    "perturb_corpus",
    "perturb_file",
]
