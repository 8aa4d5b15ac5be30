"""The one-click launch files agree with what CI tests: Binder, Codespaces, the CI workflow."""

from __future__ import annotations

import json
import os
import re
import tomllib

import yaml
from packaging.specifiers import SpecifierSet

from coursetools import launch
from coursetools.notebooks import ROOT

TESTED_PYTHONS = ("3.11", "3.12", "3.13")
START = "notebooks/00_asyncio_in_jupyter.ipynb"


def test_binder_requirements_are_requirements_txt_without_the_local_package():
    stored = (ROOT / "binder" / "requirements.txt").read_text(encoding="utf-8")
    assert stored == launch.binder_requirements(), "run: python -m coursetools.launch"
    assert not re.search(r"^\s*-e\s", stored, re.M), "a local path stops repo2docker's cache"
    assert "notebook==" in stored


def test_binder_python_is_one_make_test_passes_on():
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    version = runtime.removeprefix("python-")
    assert version in TESTED_PYTHONS
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f"{version}.0" in SpecifierSet(requires)


def test_binder_scripts_install_the_course_and_keep_the_environment():
    post_build = ROOT / "binder" / "postBuild"
    start = ROOT / "binder" / "start"
    for script in (post_build, start):
        assert os.access(script, os.X_OK), f"{script.name} must be executable"
    assert "--no-deps -e ." in post_build.read_text()
    assert "coursetools.jupyter_setup" in post_build.read_text()
    text = start.read_text()
    assert "PYDEVD_DISABLE_FILE_VALIDATION=1" in text and text.rstrip().endswith('exec "$@"')


def test_the_devcontainer_builds_the_same_environment_and_opens_lesson_00():
    config = json.loads((ROOT / ".devcontainer" / "devcontainer.json").read_text())
    assert config["postCreateCommand"] == "make setup"
    assert re.search(r"python:\S*3\.(1[1-3])", config["image"])
    assert config["customizations"]["codespaces"]["openFiles"] == [START]
    assert (ROOT / START).exists()


def test_the_workflow_runs_the_suite_the_site_and_the_checks():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    jobs = workflow["jobs"]
    linux = jobs["test-linux"]["strategy"]["matrix"]["python"]
    assert set(TESTED_PYTHONS) <= set(linux)
    steps = json.dumps(jobs)
    for command in ("make test", "python course.py test", "coursetools.wheels",
                    "coursetools.spelling", "make site", "deploy-pages"):  # fmt: skip
        assert command in steps, command


def test_the_readme_launch_links_open_lesson_00():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "mybinder.org/v2/gh/" in readme and f"urlpath=lab/tree/{START}" in readme
    assert "git-pull?repo=" in readme  # the nbgitpuller link format for a JupyterHub
    assert "codespaces.new/" in readme
