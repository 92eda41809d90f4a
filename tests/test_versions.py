"""The versions pyproject.toml accepts are the ones CI runs: each lower bound is what requirements-oldest.txt
installs, each upper bound the newest minor series requirements-newest.txt installs, the Pythons it claims are
the ones .ci/run runs, and the README names the versions that were run.
"""

from __future__ import annotations

import re
from functools import cache

from conftest import REPO
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

try:
    import tomllib
except ImportError:  # Python 3.10 (tomllib is 3.11's); pytest brings tomli there
    import tomli as tomllib

RANGED = ("export", "sweep")  # the extras whose ranges CI runs at both ends, beside the runtime dependencies
DEV = "dev"  # tools, run at both ends too (the locks hold them) but unbounded above; `notebook` is JupyterLab alone


@cache
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def requirements(extras: tuple[str, ...] = RANGED) -> list[Requirement]:
    """The runtime dependencies and those of ``extras``."""
    project = pyproject()["project"]
    optional = [r for extra in extras for r in project["optional-dependencies"][extra]]
    return [Requirement(r) for r in [*project["dependencies"], *optional]]


def pins(name: str) -> dict[str, Version]:
    """A lock file's pins, by (normalized) package name."""
    found = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (REPO / f"requirements-{name}.txt").read_text(), re.M)
    return {n.lower().replace("_", "-"): Version(v) for n, v in found}


def bounds(specifier: SpecifierSet) -> tuple[Version, Version | None]:
    """The ``>=`` bound (every requirement has one) and the ``<`` bound, if any."""
    (low,) = [Version(s.version) for s in specifier if s.operator == ">="]
    high = [Version(s.version) for s in specifier if s.operator == "<"]
    return low, high[0] if high else None


def test_every_lower_bound_is_the_version_the_oldest_environment_runs():
    oldest = pins("oldest")
    for requirement in requirements((*RANGED, DEV)):
        low, _ = bounds(requirement.specifier)
        run = oldest[requirement.name]
        assert run == low, f"{requirement}: requirements-oldest.txt runs {run}"


def test_every_upper_bound_is_the_newest_minor_series_run():
    newest = pins("newest")
    for requirement in requirements(RANGED):
        _, high = bounds(requirement.specifier)
        run = newest[requirement.name]
        assert run in requirement.specifier, f"{requirement}: requirements-newest.txt runs {run}, outside it"
        assert high == Version(f"{run.major}.{run.minor + 1}"), f"{requirement}: the newest run is {run}"


def test_requires_python_claims_the_pythons_ci_runs():
    ci = (REPO / ".ci" / "run").read_text()
    extra = set(re.findall(r'"(?:oldest|newest) (3\.\d+)"', ci))
    assert extra, "no extra environments in .ci/run"
    run = extra | {"3.11"}  # the README's two commands: this machine's python3, 3.11
    claimed = SpecifierSet(pyproject()["project"]["requires-python"])
    candidates = [f"3.{minor}" for minor in range(6, 20)]
    assert {v for v in candidates if f"{v}.0" in claimed} == run
    assert ci.count('"oldest 3.10"') == 1 and min(run, key=Version) == "3.10"  # the oldest versions on the oldest


def test_the_readme_names_the_versions_run():
    readme = (REPO / "README.md").read_text()
    oldest, newest = pins("oldest"), pins("newest")
    for requirement in requirements(RANGED):
        for lock, pinned in (("oldest", oldest), ("newest", newest)):
            assert f"{requirement.name} {pinned[requirement.name]}" in readme, (
                f"the README does not name {requirement.name} {pinned[requirement.name]} (requirements-{lock}.txt)")


def test_the_newest_environment_has_every_tool_of_the_dev_extra():
    newest = pins("newest")
    for requirement in map(Requirement, pyproject()["project"]["optional-dependencies"][DEV]):
        assert newest[requirement.name] in requirement.specifier, requirement
