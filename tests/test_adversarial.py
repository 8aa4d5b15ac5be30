"""The independent answers in ``tests/adversarial/``: written from the exercise notebooks alone.

Every correct alternative must pass; every wrong answer must fail with the problem code of the
rule it breaks, and nothing may reach stderr. One test class per exercise, so pytest-xdist
(``--dist loadscope``) spreads the exercises over its workers.
"""

from __future__ import annotations

import importlib
import pkgutil

import adversarial
import pytest
from adversarial import ANSWERS, answer_id, judge

MODULES = sorted(
    name for _, name, _ in pkgutil.iter_modules(adversarial.__path__) if name.startswith("ex")
)


def _exercise_class(module: str) -> type:
    try:
        importlib.import_module(f"adversarial.{module}")
    except Exception as exc:  # one broken module must not hide every other exercise's answers
        message = f"adversarial.{module} cannot be imported: {type(exc).__name__}: {exc}"

        def test_imports(self):
            pytest.fail(message)

        return type(f"TestExercise{module[2:4]}", (), {"test_imports": test_imports})
    answers = [a for a in ANSWERS if a.fn.__module__ == f"adversarial.{module}"]

    reworked = all(getattr(a.check, "rules", None) is not None for a in answers)

    @pytest.mark.skipif(not reworked, reason="its checks have no rule table yet")
    @pytest.mark.parametrize("answer", answers, ids=answer_id)
    def test_answer(self, answer, capfd):
        judge(answer)
        assert capfd.readouterr().err == ""

    return type(f"TestExercise{module[2:4]}", (), {"test_answer": test_answer})


for _module in MODULES:
    _cls = _exercise_class(_module)
    globals()[_cls.__name__] = _cls
