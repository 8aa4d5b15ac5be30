"""The course's text, notebooks included, has no misspelling codespell knows."""

from __future__ import annotations

from coursetools import spelling


def test_no_misspellings(capsys):
    assert spelling.main() == 0, capsys.readouterr().out
