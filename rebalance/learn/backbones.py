"""Classifier backbones (`train.backbone`): the small CNN (the CPU default) or any timm model.

timm models (resnet18, resnet50, efficientnet_b0, convnext_tiny, ...) start from random weights
unless `train.pretrained` names local weights: a weights file (.safetensors, .pth, .bin) or a
folder holding `model.safetensors` / `pytorch_model.bin` (a Hugging Face cache snapshot, e.g.
~/.cache/huggingface/hub/models--timm--resnet50.a1_in1k/snapshots/<hash>, or a folder written by
`save_pretrained`). timm loads them through `pretrained_cfg_overlay=dict(file=...)` and drops the
classifier head when the class count differs. Nothing is ever downloaded (HF_HUB_OFFLINE is set).
Inputs: the small CNN reads pixels scaled to [-1, 1]; timm models their own mean/std (ImageNet).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from rebalance.core.errors import RebalanceError

SMALL_CNN = "small_cnn"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def weights_file(pretrained: str) -> str:
    """The weights file `train.pretrained` names (a file, or a folder holding one)."""
    path = Path(pretrained).expanduser()
    if path.is_file():
        return str(path)
    if path.is_dir():
        for name in WEIGHT_FILES:
            if (path / name).is_file():
                return str(path / name)
        raise RebalanceError(
            f"{path}: no {' or '.join(WEIGHT_FILES[:2])} in the folder; fix train.pretrained "
            "(a weights file, or a Hugging Face snapshot folder)"
        )
    raise RebalanceError(f"{path}: train.pretrained not found; give a local weights file or folder, or null")


class SmallCNN(nn.Module):
    """Four conv blocks and global average pooling (lesion density survives the pooling)."""

    def __init__(self, n_classes: int, width: int = 16):
        super().__init__()
        self.num_classes = n_classes

        def block(c_in: int, c_out: int, pool: bool) -> list[nn.Module]:
            layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
            return layers + ([nn.MaxPool2d(2)] if pool else [])

        w = width
        self.features = nn.Sequential(
            *block(3, w, False),
            *block(w, w, True),
            *block(w, 2 * w, True),
            *block(2 * w, 4 * w, True),
            *block(4 * w, 4 * w, False),
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * w, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build(name: str, n_classes: int, width: int = 16, pretrained: str | None = None) -> nn.Module:
    """The backbone `name` with an `n_classes` head (see the module doc)."""
    if name == SMALL_CNN:
        if pretrained is not None:
            raise RebalanceError("train.pretrained: the small_cnn has no pretrained weights; set it to null")
        return SmallCNN(n_classes, width)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:5]
        hint = f" (close: {', '.join(close)})" if close else ""
        raise RebalanceError(f"train.backbone: {name!r} is neither small_cnn nor a timm model{hint}")
    if pretrained is None:
        return timm.create_model(name, pretrained=False, num_classes=n_classes)
    file = weights_file(pretrained)
    try:
        return timm.create_model(
            name, pretrained=True, num_classes=n_classes, pretrained_cfg_overlay={"file": file}
        )
    except (RuntimeError, KeyError, ValueError) as err:
        first = str(err).strip().splitlines()[0][:200]
        raise RebalanceError(
            f"{file}: not weights of a timm {name} ({first}); fix train.pretrained"
        ) from None


def input_stats(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) that map pixels in [0, 1] to the model's input, shaped 1 x 3 x 1 x 1."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean, std = cfg.get("mean", (0.5, 0.5, 0.5)), cfg.get("std", (0.5, 0.5, 0.5))
    return torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
