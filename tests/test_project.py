"""The project as a package: every module the code imports comes from a dependency it declares."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
OWN = {"flows", "tasks", "schemas", "sandbox", "demo", "seeding", "tests", "benchmarks"}
# Optional modules whose distribution is named otherwise, for a machine where they could not be installed.
DISTRIBUTION_OF = {"MySQLdb": "mysqlclient"}


def imported_modules(*folders: str) -> set[str]:
    """The top-level modules the Python files of `folders` import, other than the project's own."""
    found: set[str] = set()
    for folder in folders:
        for path in (PROJECT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module.split(".")[0])
    return found - OWN - set(sys.stdlib_module_names)


def declared(*extras: str) -> set[str]:
    """The distributions sequra-etl depends on, with the given extras, by their normalised names."""
    names = set()
    for requirement in metadata.requires("sequra-etl") or []:
        name, _, marker = requirement.partition(";")
        extra = re.search(r"extra == \"(\w+)\"", marker)
        if extra is None or extra.group(1) in extras:
            names.add(normalised(re.split(r"[\[<>=!~ ]", name.strip(), maxsplit=1)[0]))
    return names


def normalised(name: str) -> str:
    """A distribution's name as packaging compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions_of(modules: set[str]) -> dict[str, set[str]]:
    """Which installed distributions provide each module (one not installed: the one it is known by)."""
    provides = metadata.packages_distributions()
    return {
        module: {normalised(name) for name in provides.get(module, [DISTRIBUTION_OF.get(module, module)])}
        for module in modules
    }


def test_every_module_the_code_imports_comes_from_a_declared_dependency() -> None:
    base = declared("fast", "postgres")  # the optional readers are imported where installed
    undeclared = {
        module: sorted(names)
        for module, names in distributions_of(imported_modules(*OWN - {"tests", "benchmarks"})).items()
        if not names & base
    }
    assert undeclared == {}


def test_every_module_the_tests_and_benchmarks_import_comes_from_a_declared_dependency() -> None:
    everything = declared("test", "bench", "fast", "postgres")
    undeclared = {
        module: sorted(names)
        for module, names in distributions_of(imported_modules("tests", "benchmarks")).items()
        if not names & everything
    }
    assert undeclared == {}


def readme_map() -> dict[str, set[str]]:
    """The README's map: each folder or file it names, with the modules its row lists."""
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## How it works", 1)[1].split("Rules the code keeps", 1)[0]
    named: dict[str, set[str]] = {}
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        place, meaning = row.strip("|").split(" | ", 1)
        for path in re.findall(r"`([^`]+)`", place):
            named[path] = set(re.findall(r"`([\w/]+\.py)`", meaning)) if path.endswith("/") else set()
    return named


def test_the_readme_map_names_every_module_of_flows_tasks_and_schemas_and_only_those_that_exist() -> None:
    named = readme_map()
    assert [path for path in named if not (PROJECT / path).exists()] == []
    listed = {path for path in named if path.endswith(".py")} | {
        folder + module for folder, modules in named.items() for module in modules
    }
    assert [module for module in listed if not (PROJECT / module).is_file()] == []
    modules = {
        str(path.relative_to(PROJECT))
        for folder in ("flows", "tasks", "schemas")
        for path in (PROJECT / folder).rglob("*.py")
        if path.name != "__init__.py"
    }
    assert sorted(modules - listed) == []
