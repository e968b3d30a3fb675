"""Devices: `compute.device` auto/cpu/cuda, precision, and streaming data that give the same model
whatever the number of decode workers. CUDA checks run only where a GPU is present."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_params

from rebalance.config import ParamsError
from rebalance.core import device
from rebalance.core.device import CPU, Runtime
from rebalance.core.errors import RebalanceError
from rebalance.core.images import save_png
from rebalance.learn import classifier
from rebalance.learn.data import ImageSet, TensorSet
from rebalance.synth import diffusion_core as core

HAS_CUDA = torch.cuda.is_available()


def test_cpu_is_explicit_and_auto_falls_back():
    assert device.select("cpu") == torch.device("cpu")
    if not HAS_CUDA:
        assert device.select("auto").type in ("cpu", "mps")
        with pytest.raises(RebalanceError, match="compute.device"):
            device.select("cuda")
    assert device.autocast_dtype(torch.device("cpu"), "auto") is None  # float32 on the CPU
    assert device.autocast_dtype(torch.device("cpu"), "bf16") == torch.bfloat16


def test_compute_params_are_validated():
    run = device.runtime(make_params({"compute": {"device": "cpu", "threads": 1, "workers": 0}}).compute)
    assert run == Runtime(torch.device("cpu"), None, 0) and torch.get_num_threads() == 1
    with pytest.raises(ParamsError, match="compute.device"):
        make_params({"compute": {"device": "gpu"}})


@pytest.fixture
def tiny_images(tmp_path):
    rng = np.random.default_rng(0)
    names, labels = [], []
    for i in range(24):
        label = i % 2
        img = np.clip(60 + 120 * label + rng.normal(0, 25, (16, 16, 3)), 0, 255).astype(np.uint8)
        names.append(f"img{i}.png")
        save_png(img, tmp_path / names[-1])
        labels.append(label)
    return tmp_path, names, torch.tensor(labels)


def train_once(data, y, runtime: Runtime) -> dict:
    torch.manual_seed(0)
    net = classifier.SmallCNN(2, 4)
    classifier.fit(net, data, y, steps=6, batch_size=8, lr=0.01, weight_decay=0.0, seed=0, runtime=runtime)
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def test_streaming_training_is_the_same_with_worker_processes(tiny_images):
    folder, names, y = tiny_images
    stream = ImageSet(folder, names, 16, "stretch")
    in_process = train_once(stream, y, CPU)
    two_workers = train_once(stream, y, Runtime(torch.device("cpu"), None, 2))
    in_memory = train_once(torch.stack([stream[i] for i in range(len(stream))]), y, CPU)
    for k in in_process:
        assert torch.equal(in_process[k], two_workers[k]) and torch.equal(in_process[k], in_memory[k]), k


def test_prediction_streams_in_order(tiny_images):
    folder, names, _ = tiny_images
    stream = ImageSet(folder, names, 16, "stretch")
    net = classifier.SmallCNN(2, 4)
    a = classifier.predict_proba(net, stream, batch_size=5, runtime=Runtime(torch.device("cpu"), None, 2))
    b = classifier.predict_proba(net, TensorSet(torch.stack([stream[i] for i in range(24)])), batch_size=24)
    assert a.shape == (24, 2) and np.allclose(a, b, atol=1e-6)


@pytest.mark.skipif(
    not HAS_CUDA, reason="no CUDA device on this machine (the GPU path runs on the accelerator)"
)
def test_cuda_training_and_sampling_with_autocast(tiny_images):
    folder, names, y = tiny_images
    gpu = Runtime(torch.device("cuda"), device.autocast_dtype(torch.device("cuda"), "auto"), 2)
    state = train_once(ImageSet(folder, names, 16, "stretch"), y, gpu)
    assert all(torch.isfinite(v.float()).all() for v in state.values())
    unet = core.build_unet(16, 2, channels=(16, 32), attention=False)
    scheduler = core.sampler(core.noise_scheduler().config, "ddim")
    a = core.sample(unet, scheduler, [0, 1], [5, 6], steps=3, runtime=gpu)
    b = core.sample(unet, scheduler, [0, 1], [5, 6], steps=3, runtime=gpu)
    assert a.device.type == "cpu" and a.dtype == torch.uint8 and torch.equal(a, b)
    gpu_paths_train(ImageSet(folder, names, 16, "stretch"), y, gpu)


def gpu_paths_train(stream: ImageSet, y: torch.Tensor, runtime: Runtime) -> None:
    """The training paths a GPU run takes beyond plain fit: augmentation applied on the device
    (draws on the CPU) and diffusion training (draws on the CPU, EMA foreach on CUDA)."""
    torch.manual_seed(0)
    net = classifier.SmallCNN(2, 4)
    kwargs = {"lr": 0.01, "weight_decay": 0.0, "seed": 0, "augmented": True, "runtime": runtime}
    classifier.fit(net, stream, y, steps=4, batch_size=8, **kwargs)
    assert all(torch.isfinite(v.float()).all() for v in net.state_dict().values())
    images = torch.stack([stream[i] for i in range(len(stream))]).permute(0, 2, 3, 1)  # N x H x W x 3
    unet = core.build_unet(16, 2, channels=(16, 32), attention=False)
    kwargs = {"steps": 3, "batch_size": 4, "lr": 1e-3, "seed": 0, "log_every": 2, "runtime": runtime}
    summary = core.train(unet, images, y, **kwargs)
    assert summary["steps"] == 3 and np.isfinite(summary["loss"]) and summary["loss"] > 0


def test_gpu_training_paths_run_on_the_cpu_too(tiny_images):
    folder, names, y = tiny_images
    gpu_paths_train(ImageSet(folder, names, 16, "stretch"), y, CPU)
