"""Method `command`: a user's command per batch; timeouts and failures are one-line errors, a
missing image an empty slot, the wall time and price recorded per image."""

from __future__ import annotations

import json
import sys
import time
from types import SimpleNamespace

import pandas as pd
import pytest
from conftest import REPO, make_params

from rebalance.core.errors import RebalanceError
from rebalance.synth import methods
from rebalance.synth.base import Context, output_path
from rebalance.synth.command import CommandRunner
from rebalance.synth.curate import Curator
from rebalance.synth.judge import FILE

SCRIPT = REPO / "tests/data/command_gen.py"
TRAIN = pd.DataFrame(columns=["path", "label", "sha256", "split"])


def runner(tmp_path, mode: str, **command) -> CommandRunner:
    cmd = f"{sys.executable} {SCRIPT} {mode} {{class}} {{seeds_file}} {{out_dir}}"
    params = make_params(
        {
            "synthesize": {
                "methods": {"command": 1.0},
                "allow_external_model": command.pop("allow", True),
                "command": {"cmd": cmd, "batch": 4, "timeout_s": 20.0, **command},
            }
        }
    )
    ctx = Context(params=params, train_real=TRAIN, raw_dir=tmp_path, out_dir=tmp_path / "out", held_out=TRAIN)
    method = methods.prepare("command", ctx)
    assert isinstance(method, CommandRunner)
    return method


def test_a_command_that_writes_images_works_and_records_its_wall_time_and_price(tmp_path):
    method = runner(tmp_path, "write", dollars_per_image=0.02)
    rows = method.generate("level1", [0, 1, 2, 3, 4])  # two batches: 0-3 and 4
    assert [r["path"] for r in rows] == [output_path("command", "level1", i) for i in range(5)]
    for r in rows:
        assert (tmp_path / "out" / r["path"]).is_file() and r["origin"] == "command"
        detail = json.loads(r["detail"])
        assert detail["seconds"] > 0 and detail["dollars"] == 0.02
        assert detail["generator"]["external"] is True
    again = runner(tmp_path, "write").generate("level1", [4])  # an image depends on its seed only
    assert again[0]["sha256"] == rows[4]["sha256"]
    assert json.loads(method.cache_key("level1", 4))["block"] == [1, 4]


def test_a_command_past_its_timeout_is_a_one_line_error_not_a_hang(tmp_path):
    method = runner(tmp_path, "sleep", timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(
        RebalanceError, match=r"command_gen.py sleep .*for class level2: timed out after 1 s"
    ) as err:
        method.generate("level2", [0])
    assert time.monotonic() - started < 15
    assert "\n" not in str(err.value)


def test_a_failing_command_is_a_one_line_error_naming_it_and_the_class(tmp_path):
    with pytest.raises(
        RebalanceError, match=r"for class level0: exited with status 3: model not found"
    ) as err:
        runner(tmp_path, "fail").generate("level0", [0, 1])
    assert "command_gen.py fail" in str(err.value) and "\n" not in str(err.value)


def test_a_command_without_a_training_set_record_needs_allow_external_model(tmp_path):
    with pytest.raises(RebalanceError, match="allow_external_model"):
        runner(tmp_path, "write", allow=False)


def test_missing_images_leave_their_slots_reported_empty(tmp_path):
    assert runner(tmp_path, "none").generate("level1", [0, 1, 2]) == []
    some = runner(tmp_path, "odd").generate("level1", list(range(8)))
    assert 0 < len(some) < 8  # only the even seeds' images
    # the filter's report counts a slot without an image as empty (metrics/filter.json)
    (tmp_path / "judge").mkdir()
    (tmp_path / "judge" / FILE).write_bytes(b"judge")
    judge = SimpleNamespace(meta={"image_size": 32, "fit": "stretch"}, classes=["level1"])
    method = runner(tmp_path, "none")
    curator = Curator(judge, tmp_path / "judge", None, 4, {}, method.ctx)
    kept, outcome = curator.curate(method, "command", "level1", 3, [], tmp_path / "out")
    assert kept == [] and outcome.report()["empty"] == 3 and outcome.report()["empty_share"] == 1.0
