"""Shared fixtures: small labelled corpora, files written from them, a toy data root, real data.

Every fixture writes into the test's own ``tmp_path``; nothing is read from the repository.

- ``make_corpus(n, lang, types, seed)``: deterministic synthetic IOB2 sentences.
- ``write_corpus(sentences, name, format)``: those sentences as a file (``.gz`` compresses).
- ``write_lines(text, name)``: a file with exactly this text, for malformed-input tests.
- ``data_root``: a local root ``wikiann/{de,nl}`` (indexed ``.conllu``) and
  ``masakhaner2/swa`` (space-separated ``.txt``), train/dev/test each.
- ``real_data``: ``$XNER_DATA_DIR`` as a Path; the test is skipped when it is absent.
- ``source_counts``: the per-language table of a real dataset's SOURCE.md.
- ``one_thread``: torch on one thread for a module (the training tests).

Every test runs on the CPU (``XNER_DEVICE=cpu``), also on a GPU machine: the assertions
hold xner's CPU determinism. ``tests/test_gpu.py`` (marker ``gpu``) runs on the GPU.
"""

from __future__ import annotations

import gzip
import os
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from xner.data.corpus import Sentence
from xner.data.formats import write_conll

WORDS = {
    "O": ("the", "of", "in", "said", "and", "a", "to", "was", "near", "with"),
    "PER": ("Ada", "Lovelace", "Alan", "Turing", "Grace", "Hopper"),
    "ORG": ("UNESCO", "Bank", "Union", "Council", "Institute"),
    "LOC": ("Oslo", "Lima", "Accra", "Nile", "Andes"),
    "DATE": ("Monday", "2020", "March", "1999"),
}
"""Word lists of the synthetic corpus, by tag type (other types get made-up words)."""

TOY_SIZES = {"train": 40, "dev": 12, "test": 15}
"""Sentences per split in the ``data_root`` fixture."""


def synthetic_corpus(
    n: int, lang: str = "xx", types: Sequence[str] = ("PER", "ORG", "LOC"), seed: int = 0
) -> list[Sentence]:
    """``n`` valid IOB2 sentences of 2 to 6 chunks: O words and 1-3 word mentions of ``types``."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        tokens: list[str] = []
        tags: list[str] = []
        for _ in range(rng.randint(2, 6)):
            kind = rng.choice(("O", "O", *types))
            length = 1 if kind == "O" else rng.randint(1, 3)
            words = WORDS.get(kind) or tuple(f"{kind.title()}{i}" for i in range(3))
            tokens += [rng.choice(words) for _ in range(length)]
            tags += ["O"] if kind == "O" else [f"B-{kind}"] + [f"I-{kind}"] * (length - 1)
        sentences.append(Sentence(tuple(tokens), tuple(tags), lang))
    return sentences


@pytest.fixture
def make_corpus() -> Callable[..., list[Sentence]]:
    """Factory: ``make_corpus(n, lang="xx", types=("PER", "ORG", "LOC"), seed=0)``."""
    return synthetic_corpus


@pytest.fixture
def write_corpus(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``write_corpus(sentences, name="data.conll", format="conll") -> Path``."""

    def write(sentences: Sequence[Sentence], name: str = "data.conll", format: str = "conll") -> Path:
        return write_conll(sentences, tmp_path / name, format=format)

    return write


@pytest.fixture
def write_lines(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``write_lines(text, name="data.txt") -> Path``; str or bytes, gzip for ``.gz``."""

    def write(text: str | bytes, name: str = "data.txt") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8") if isinstance(text, str) else text
        path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
        return path

    return write


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A local data root with wikiann de/nl (indexed) and masakhaner2 swa (space-separated)."""
    root = tmp_path / "root"
    layout = [
        ("wikiann", "de", ("PER", "ORG", "LOC"), "conllu", "indexed"),
        ("wikiann", "nl", ("PER", "ORG", "LOC"), "conllu", "indexed"),
        ("masakhaner2", "swa", ("PER", "ORG", "LOC", "DATE"), "txt", "conll-space"),
    ]
    for seed, (dataset, lang, types, ext, fmt) in enumerate(layout):
        for split, n in TOY_SIZES.items():
            sentences = synthetic_corpus(n, lang, types, seed=seed * 10 + len(split))
            write_conll(sentences, root / dataset / lang / f"{split}.{ext}", format=fmt)
    return root


@pytest.fixture(scope="module")
def one_thread():
    """Run torch on one thread: tiny models gain nothing from more, and on a shared 2-core box
    extra threads spin against other jobs (several times slower). Training test modules use it
    (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("xner.models.device.use_all_cores", lambda: 1)
        torch.set_num_threads(1)
        yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def on_cpu():
    """Pin the CPU for the whole session (before module fixtures build their models);
    subprocesses and pool workers inherit it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XNER_DEVICE", "cpu")
        yield


REAL_DATA = os.environ.get("XNER_DATA_DIR")
"""Read at start-up, so tests that unset the variable for isolation can still use real data."""


@pytest.fixture
def real_data() -> Path:
    """The real data root ``$XNER_DATA_DIR``; skips the test when it is not there."""
    root = REAL_DATA
    if not root or not Path(root).is_dir():
        pytest.skip("real data absent: set XNER_DATA_DIR (e.g. ../shared/data)")
    return Path(root)


def read_source_table(path: Path) -> dict[str, dict[str, int]]:
    """A SOURCE.md table ``| lang | train | dev | test | train entities |`` as numbers per lang."""
    pattern = re.compile(r"^\| (\w+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|$", re.M)
    keys = ("train", "dev", "test", "train_entities")
    return {
        lang: dict(zip(keys, (int(n.replace(",", "")) for n in numbers)))
        for lang, *numbers in pattern.findall(path.read_text(encoding="utf-8"))
    }


@pytest.fixture
def source_counts(real_data: Path) -> Callable[[str], dict[str, dict[str, int]]]:
    """Factory: ``source_counts("wikiann") -> {"de": {"train": 20000, ...}, ...}``."""
    return lambda dataset: read_source_table(real_data / dataset / "SOURCE.md")


@pytest.fixture(scope="session")
def embedded_cache(tmp_path_factory: pytest.TempPathFactory):
    """A session-wide ``XNER_CACHE`` holding the converted embedded model, built once (~5 s).

    Tests that need ``load_backbone("embedded")`` request it, so the suite converts once.
    """
    from xner.models import embedded_model_dir

    root = tmp_path_factory.mktemp("xner-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XNER_CACHE", str(root))
        embedded_model_dir(root)
        yield root
