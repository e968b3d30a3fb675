"""Foundation-model features for stage assess: a local DINOv2 or CLIP vision model (a Hugging Face
folder given in `assess.features`, never downloaded) embeds real and synthetic images, and the
sample-quality measures are computed in its embedding too. ImageNet-trained and self-supervised
features track expert judgement of medical images better than the small judge's (Woodland et al.
2024), so a GPU user can report precision, recall, density, coverage and the Fréchet distance in
a space nobody here trained.

- DINOv2 (`model_type` dinov2): the pooled CLS token (`pooler_output`);
- CLIP (`clip`, or a vision tower saved alone, `clip_vision_model`): the projected image embedding
  (`image_embeds`).

Images are brought to the model's `image_size` by `dataset.fit` and normalised with the mean and
std of the folder's `preprocessor_config.json`, else the family's published ones.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rebalance.core.device import CPU, Runtime
from rebalance.core.errors import RebalanceError
from rebalance.core.hashing import sha256_file

FAMILIES = {"dinov2": "dinov2", "clip": "clip", "clip_vision_model": "clip"}
STATS = {  # (mean, std) each family's models were trained with
    "dinov2": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
}


@dataclass
class Embedder:
    model: torch.nn.Module
    family: str
    image_size: int
    mean: torch.Tensor
    std: torch.Tensor
    describe: dict  # what the report records: folder, model type, embedding size, weights' hash
    runtime: Runtime = CPU

    @classmethod
    def load(cls, folder: str | Path, runtime: Runtime = CPU) -> Embedder:
        folder = Path(folder)
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise RebalanceError(
                f"assess.features: {folder} has no config.json; give a local folder of a Hugging Face "
                "DINOv2 or CLIP model (it is never downloaded), or null"
            )
        model_type = json.loads(config_file.read_text()).get("model_type", "")
        family = FAMILIES.get(model_type)
        if family is None:
            raise RebalanceError(
                f"assess.features: {config_file} is a {model_type or 'model of no type'}; "
                f"use a DINOv2 or CLIP model ({', '.join(FAMILIES)})"
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoConfig, CLIPVisionModelWithProjection, Dinov2Model

        kind = Dinov2Model if family == "dinov2" else CLIPVisionModelWithProjection
        model = kind.from_pretrained(folder, local_files_only=True).to(runtime.device).eval()
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        vision = getattr(config, "vision_config", config)
        mean, std = STATS[family]
        pre = folder / "preprocessor_config.json"
        if pre.is_file():
            given = json.loads(pre.read_text())
            mean, std = given.get("image_mean", mean), given.get("image_std", std)
        weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
        describe = {
            "folder": folder.as_posix(),
            "model_type": model_type,
            "image_size": int(vision.image_size),
            "weights_sha256": {w.name: sha256_file(w) for w in weights},
        }
        return cls(model, family, int(vision.image_size), torch.tensor(mean).view(1, 3, 1, 1),
                   torch.tensor(std).view(1, 3, 1, 1), describe, runtime)  # fmt: skip

    @torch.no_grad()
    def embed(self, images, batch_size: int = 64) -> np.ndarray:
        """Embeddings (N x D, float32) of a Dataset or tensor of uint8 images at `image_size`."""
        from rebalance.learn import data

        images = data.as_dataset(images)
        out = []
        for xb in data.loader(images, data.sequential(len(images), batch_size), self.runtime):
            x = xb.to(self.runtime.device).float() / 255.0
            x = (x - self.mean.to(x.device)) / self.std.to(x.device)
            with self.runtime.autocast():
                result = self.model(pixel_values=x)
            emb = result.pooler_output if self.family == "dinov2" else result.image_embeds
            out.append(emb.float().cpu())
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        self.describe["dim"] = int(out[0].shape[1])
        return torch.cat(out).numpy()
