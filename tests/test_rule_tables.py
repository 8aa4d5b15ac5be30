"""Every task's rule table is complete and enforced.

Each check declares its task's rules (``rules.Task``). For every rule, some wrong answer in
``tests/`` breaks that rule and gets that rule's problem code (the answers' own tests assert
the code); every task has correct alternatives that pass. A check can emit no other code: the
harness turns an undeclared one into ``undeclared:...``, which no answer expects.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import adversarial
import pytest
from adversarial import ANSWERS

import local_server.checks as checks_package
from local_server.checks.rules import COMMON

TESTS = Path(__file__).parent
BROKEN: dict[str, str] = {}


def _imported(name: str):
    """The module, or None with the reason kept: one broken module must not hide the rest."""
    try:
        return importlib.import_module(name)
    except Exception as exc:
        BROKEN[name] = f"{type(exc).__name__}: {exc}"
        return None


CHECK_MODULES = [
    module
    for _, name, _ in pkgutil.iter_modules(checks_package.__path__)
    if (module := _imported(f"local_server.checks.{name}")) is not None
]
for _path in sorted(TESTS.glob("test_checks_*.py")):
    _imported(_path.stem)
for _, _name, _ in pkgutil.iter_modules(adversarial.__path__):
    if _name.startswith("ex"):
        _imported(f"adversarial.{_name}")

CHECKS = [
    obj
    for module in CHECK_MODULES
    for obj in vars(module).values()
    if callable(obj) and hasattr(obj, "diagnose") and obj.__module__ == module.__name__
]
TABLED = [c for c in CHECKS if getattr(c, "rules", None) is not None]
CODE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
COMMON_CODES = {rule.problem for rule in COMMON}


def test_every_check_and_answer_module_imports():
    assert not BROKEN, BROKEN


def _id(check) -> str:
    return f"{check.__module__.rsplit('.', 1)[-1]}.{check.task}"


@pytest.mark.parametrize("check", TABLED, ids=_id)
def test_every_rule_is_stated_observed_and_hinted(check):
    for rule in check.rules.own_rules():
        assert CODE.match(rule.problem), rule.problem
        assert rule.rule and rule.observed and rule.hint, rule
        assert len(rule.hint) <= adversarial.HINT_LIMIT, rule.problem


@pytest.mark.parametrize("check", TABLED, ids=_id)
def test_every_rule_has_a_wrong_answer_that_gets_its_code(check):
    expected = {a.problem for a in ANSWERS if a.check is check and not a.correct}
    missing = [r.problem for r in check.rules.own_rules() if r.problem not in expected]
    assert not missing, f"no wrong answer in tests/ gets: {missing}"
    unknown = expected - set(check.rules.rules) - {None}
    assert not unknown, f"answers expect codes the table lacks: {unknown}"


@pytest.mark.parametrize("check", TABLED, ids=_id)
def test_every_task_has_correct_alternatives(check):
    assert sum(a.correct for a in ANSWERS if a.check is check) >= 2
