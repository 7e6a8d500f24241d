"""Typological distance between languages from URIEL (Littell et al. 2017), via PyPI ``lang2vec``.

lang2vec ships the URIEL database, so this works offline. URIEL indexes
individual languages; a few ISO 639-3 macrolanguage codes used by datasets are
mapped to the individual language their data is in (Swahili ``swa`` -> ``swh``,
Persian ``fas`` -> ``pes``...). Scots, absent from URIEL, is represented by its
closest listed relative (English).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import io
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.spatial.distance import cosine

from xner.errors import XnerError
from xner.io import atomic_write
from xner.paths import cache_file

__all__ = ["URIEL_ALIASES", "uriel_distance"]

URIEL_ALIASES = {"swa": "swh", "fas": "pes", "ara": "arb", "msa": "zsm", "zho": "cmn", "sco": "eng"}
DEFAULT_FEATURES = ("syntax_knn", "phonology_knn", "inventory_knn", "fam", "geo")


@functools.cache
def _lang2vec():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lang2vec imports the deprecated pkg_resources
        # lang2vec also installs a script ``bin/lang2vec.py``; a console script (``xner``) runs
        # with ``bin/`` first on sys.path, where that script would shadow the package.
        shadowing = [p for p in sys.path if (Path(p or ".") / "lang2vec.py").is_file()]
        saved = list(sys.path)
        sys.path[:] = [p for p in sys.path if p not in shadowing]
        try:
            return importlib.import_module("lang2vec.lang2vec")
        except ImportError as err:  # pragma: no cover - dependency of xner
            raise XnerError(f"URIEL distances need lang2vec ({err}); pip install lang2vec 'setuptools<81'") from None
        finally:
            sys.path[:] = saved


@functools.cache
def _known() -> frozenset[str]:
    return frozenset(_lang2vec().available_uriel_languages())


@functools.cache
def _vectors(feature_set: str) -> dict[str, np.ndarray]:
    """Vectors of every registry language for one feature set, in one lang2vec call (each
    call re-reads its whole database, seconds per feature set), kept in ``$XNER_CACHE/uriel``
    so that later processes (``xner recommend``) read a small file instead."""
    from xner.languages import LANGUAGES

    registry = sorted({URIEL_ALIASES.get(lang.iso3, lang.iso3) for lang in LANGUAGES})
    cached = cache_file("uriel", [importlib.metadata.version("lang2vec"), feature_set, registry], "npz")
    if cached.is_file():
        try:
            with np.load(cached) as stored:
                return {code: stored[code] for code in stored.files}
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is recomputed and replaced
    codes = [code for code in registry if code in _known()]
    table = _lang2vec().get_features(codes, feature_set)
    vectors = {code: np.asarray(table[code], dtype=float) for code in codes}
    cached.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **vectors)
    atomic_write(cached, buffer.getvalue())
    return vectors


def _vector(iso3: str, feature_set: str) -> np.ndarray:
    code = URIEL_ALIASES.get(iso3, iso3)
    vectors = _vectors(feature_set)
    if code not in vectors:
        if code not in _known():
            raise XnerError(f"language {iso3!r} is not in the URIEL database")
        vectors[code] = np.asarray(_lang2vec().get_features([code], feature_set)[code], dtype=float)
    return vectors[code]


def uriel_distance(a: str, b: str, features: Sequence[str] = DEFAULT_FEATURES) -> float:
    """Mean cosine distance of two languages' URIEL vectors over ``features`` (0 = identical).

    URIEL leaves some languages' vectors empty (all zero: Twi has no ``fam`` entry): a cosine
    with an empty vector is undefined, so such a feature set is left out of the mean rather than
    turning the whole distance into NaN; NaN only when no feature set has data for both.

    >>> round(uriel_distance("nld", "nld"), 6)
    0.0
    """
    pairs = [(_vector(a, f), _vector(b, f)) for f in features]
    distances = [cosine(u, v) for u, v in pairs if u.any() and v.any()]
    return float(np.mean(distances)) if distances else float("nan")
