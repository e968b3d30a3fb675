"""Many processes through accelerate (rebalance/core/ranks.py): synthesis shared out with the same
bytes as one process, and data-parallel training (classifier, diffusion UNet, GAN, LoRA) that
converges with the processes in step."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, copy_built, run, set_params

from rebalance.core import manifest, ranks
from rebalance.dataset import shards

TRAIN_BOTH = """
import json, sys
import torch
from rebalance.core import ranks
from rebalance.learn import classifier, data
from rebalance.synth import diffusion_core, gan_core

world = ranks.World.current(cpu=True)
gen = torch.Generator().manual_seed(0)
n = 64
y = torch.arange(n) % 2
noise = torch.randint(0, 40, (n, 3, 16, 16), generator=gen).to(torch.uint8)
x = noise + (y * 160).to(torch.uint8)[:, None, None, None]  # class 1 bright, class 0 dark
losses = []
torch.manual_seed(0)
model = classifier.SmallCNN(2, 8)
classifier.fit(model, x, y, steps=30, batch_size=16, lr=0.01, weight_decay=0.0, seed=0, eval_every=10,
               on_eval=lambda step, epoch, loss, m: losses.append(loss), world=world)
accuracy = float((classifier.predict_proba(model, x).argmax(1) == y.numpy()).mean())
torch.manual_seed(0)
unet = diffusion_core.build_unet(16, 2, [16, 32], 1, False)
diffusion = []
diffusion_core.train(unet, x.permute(0, 2, 3, 1), y, steps=40, batch_size=16, lr=0.002, seed=0,
                     log=lambda step, loss: diffusion.append(loss), log_every=10, world=world)
torch.manual_seed(0)
gan = gan_core.Generator(16, 2, z_dim=16, channels=8)
start = sum(float(p.double().abs().sum()) for p in gan.parameters())
gan, gan_summary = gan_core.train(gan, data.TensorSet(x), y, steps=20, batch_size=16, lr=0.002, seed=0,
                                  channels=8, ema_decay=0.5, world=world)
weights = {
    "classifier": sum(float(p.double().abs().sum()) for p in model.parameters()),
    "unet": sum(float(p.double().abs().sum()) for p in unet.parameters()),
    "gan": [float(t.double().abs().sum()) for t in gan.state_dict().values()],  # weights and BatchNorm stats
}
out = {"size": world.size, "losses": losses, "accuracy": accuracy, "diffusion": diffusion, "weights": weights,
       "gan_moved": sum(float(p.double().abs().sum()) for p in gan.parameters()) != start,
       "gan_d_loss": gan_summary["d_loss"]}
with open(f"{sys.argv[1]}/rank{world.rank}.json", "w") as f:
    json.dump(out, f)
"""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.slow
def test_data_parallel_training_converges_in_step(tmp_path: Path):
    script = tmp_path / "train_both.py"
    script.write_text(TRAIN_BOTH)
    cmd = ranks.launch_command("unused", 2)[:-2] + [str(script), str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, second = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert first["size"] == second["size"] == 2
    assert first["losses"][-1] < first["losses"][0] and first["accuracy"] >= 0.9  # converges
    assert first["diffusion"][-1] < first["diffusion"][0]
    assert not second["losses"]  # validation callbacks run in the first process only
    assert first["gan_moved"] and 0 < first["gan_d_loss"] < 2  # the GAN trained (hinge loss in range)
    assert first["weights"] == second["weights"]  # the processes' weights (and GAN BatchNorm stats) agree


@pytest.mark.slow
def test_sampling_in_two_processes_gives_the_same_bytes(built_repo: Path, tmp_path: Path):
    repo = copy_built(built_repo, tmp_path / "repo")
    set_params(repo, {"synthesize": {"diffusion": {"batch_size": 2}}})  # several batches to share out
    out = repo / "data" / "synthesized"

    def synthesize(processes: int) -> tuple[dict[str, str], str]:
        set_params(repo, {"synthesize": {"processes": processes}})
        log = run([sys.executable, "-m", "stages.synthesize"], repo).stdout
        files = {p.relative_to(out).as_posix(): sha(p.read_bytes()) for p in out.rglob("*") if p.is_file()}
        rows = manifest.read(out / manifest.FILENAME)
        images = {r.path: sha(shards.read_bytes(out, r)) for r in rows.itertuples()}  # packed in tars
        assert images == dict(zip(rows.path, rows.sha256))  # each sample is the image its row names
        assert not [f for f in files if f.endswith(".png")]  # no image tracked as a file of its own
        return files | images, log

    shutil.rmtree(out)
    one, _ = synthesize(1)
    shutil.rmtree(out)
    two, log = synthesize(2)
    assert "launching 2 processes with accelerate" in log
    assert "by process 1 of 2" in log and "by process 0 of 2" in log
    assert len(one) > 10 and two == one  # images and manifest, byte for byte
    again, log = synthesize(2)  # re-run: everything reused, nothing generated by either process
    assert again == one and " 0 generated by process 1 of 2" in log
    assert not list(repo.glob("data/.synthesized.part*"))  # the part folders are merged away
