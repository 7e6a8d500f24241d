"""The package layout: xner's import graph, built from the source, has no cycle; only the model
and training modules import torch (so ``import xner`` and the CLI stay fast); every package the
code imports is declared in pyproject.toml."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from graphlib import CycleError, TopologicalSorter
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xner"

TORCH_PACKAGES = ("xner.models", "xner.distillation")
"""Where torch may be imported: the models and the distillation (training) code."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name | ast.Attribute) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path: Path) -> set[str]:
    """Every module an xner module imports, at the top or inside functions (both run), but
    not under ``if TYPE_CHECKING`` (never runs). ``from a import b`` names module ``a.b`` when
    it is one, else ``a``."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking(node)
               for child in node.body for n in ast.walk(child)}
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                qualified = f"{node.module}.{alias.name}"
                found.add(qualified if qualified in MODULES else node.module)
    return found


GRAPH = {name: {dep for dep in imports(path) if dep in MODULES and dep != name} for name, path in MODULES.items()}


def test_the_graph_is_built_from_every_module():
    assert {"xner.study.runs", "xner.study.kinds", "xner.perturb.kinds", "xner.data.edits"} <= GRAPH.keys()
    assert "xner.study.runs" in GRAPH["xner.study.kinds"]  # an edge the study layer relies on


def test_xner_has_no_import_cycle():
    try:
        order = list(TopologicalSorter(GRAPH).static_order())
    except CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")
    assert set(order) == set(GRAPH)


def test_a_cycle_is_found():
    """The check itself: a graph with a back edge fails."""
    with pytest.raises(CycleError):
        list(TopologicalSorter({**GRAPH, "xner.errors": {"xner.study.kinds"}}).static_order())


def test_only_model_and_training_modules_import_torch():
    users = {name for name, path in MODULES.items() if any(dep.split(".")[0] == "torch" for dep in imports(path))}
    assert users, "no module imports torch: the check reads nothing"
    assert sorted(name for name in users if not name.startswith(TORCH_PACKAGES)) == []


def _declared() -> set[str]:
    """Distribution names in pyproject.toml's dependencies and optional dependencies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = [*project["dependencies"], *(s for extra in project["optional-dependencies"].values() for s in extra)]
    return {re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in specs}


def test_every_package_the_code_imports_is_declared():
    third_party = {dep.split(".")[0] for path in MODULES.values() for dep in imports(path)}
    third_party -= {*sys.stdlib_module_names, "xner"}
    distributions = packages_distributions()
    undeclared = sorted(
        name for name in third_party
        if not {d.lower().replace("_", "-") for d in distributions.get(name, [name])} & _declared()
    )
    assert {"torch", "filelock"} <= third_party and undeclared == []


CITED = re.compile(r"(?<![\w/.])((?:docs|configs|tests|benchmarks)/[\w./+-]*\w\.(?:md|yaml|csv|sqlite|py))")
"""A repository file named in code, docstrings or tests (``docs/design.md``)."""

SOURCES = [*PACKAGE.rglob("*.py"), *(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py"), ROOT / "README.md"]


def test_every_cited_repository_file_exists():
    cited = {(path.relative_to(ROOT), name) for path in SOURCES
             for name in CITED.findall(path.read_text(encoding="utf-8"))}
    assert {"docs/design.md", "docs/results_schema.md"} <= {name for _, name in cited}
    assert sorted((str(path), name) for path, name in cited if not (ROOT / name).exists()) == []


@pytest.mark.parametrize("pattern", [r"\bDESIGN\.md", r"\bSTYLE\.md", r"\b[Ii]ssue[ -]?#?\d+", r"\.\./shared/(?!data)"])
def test_code_cites_nothing_outside_the_repository(pattern):
    """Not the project's planning files or issue numbers (this file names the patterns only)."""
    files = [*PACKAGE.rglob("*.py"), *(path for path in (ROOT / "tests").glob("*.py") if path.name != "test_layout.py")]
    found = [f"{path.relative_to(ROOT)}:{number}" for path in files
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
             if re.search(pattern, line)]
    assert found == []


def test_the_readme_test_command_runs_the_real_data_tests():
    """Run as written, the command points the real-data tests at the data (else 30-odd skip)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- test-command -->")[1].split("<!-- /test-command -->")[0]
    (command,) = [line for line in block.splitlines() if line.startswith("pip install")]
    assert re.search(r"XNER_DATA_DIR=\S*\.\./shared/data\S* pytest\b", command)
