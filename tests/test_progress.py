"""Long loops report progress: a bar on a terminal, one summary line in logs (CI, dvc repro)."""

from __future__ import annotations

from rebalance.core import progress as progress_mod
from rebalance.core.progress import progress


def test_one_summary_line_when_not_a_terminal(capsys, monkeypatch):
    assert list(progress(range(5), "a quick loop")) == [0, 1, 2, 3, 4]
    assert capsys.readouterr().err == ""  # loops shorter than SUMMARY_AFTER_S stay silent
    monkeypatch.setattr(progress_mod, "SUMMARY_AFTER_S", 0.0)
    assert list(progress(range(5), "synthesize level3 lesion_edit")) == [0, 1, 2, 3, 4]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("synthesize level3 lesion_edit: 5 img in ")
