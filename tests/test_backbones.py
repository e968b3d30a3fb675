"""train.backbone: timm models from random init or local weights (never downloaded), trained and
saved by the same loop as the small CNN."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from rebalance.core.errors import RebalanceError
from rebalance.learn import backbones, classifier


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "efficientnet_b0", "convnext_tiny"])
def test_the_named_timm_backbones_build_with_the_class_count(name):
    model = backbones.build(name, 3)
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 3, 32, 32))
    assert out.shape == (1, 3) and model.num_classes == 3


def imagenet_like(tmp_path):
    """A resnet18 with a 1000-class head saved as a weights file (stands in for ImageNet weights)."""
    torch.manual_seed(0)
    source = backbones.build("resnet18", 1000)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    file = tmp_path / "resnet18.safetensors"
    save_file(state, str(file))
    return state, file


def test_pretrained_weights_load_from_a_local_file_or_snapshot_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    state, file = imagenet_like(tmp_path)
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    (snapshot / "model.safetensors").write_bytes(file.read_bytes())
    for given in (file, snapshot):
        model = backbones.build("resnet18", 4, pretrained=str(given))
        assert torch.equal(model.conv1.weight, state["conv1.weight"])  # the file's weights are used
        assert torch.equal(model.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
        assert model.fc.out_features == 4  # a new head for our classes
    assert not torch.equal(backbones.build("resnet18", 4).conv1.weight, state["conv1.weight"])


def test_backbone_mistakes_are_one_line_errors(tmp_path):
    with pytest.raises(RebalanceError, match="train.pretrained not found"):
        backbones.build("resnet18", 2, pretrained=str(tmp_path / "nope.safetensors"))
    with pytest.raises(RebalanceError, match="no model.safetensors"):
        backbones.build("resnet18", 2, pretrained=str(tmp_path))
    with pytest.raises(RebalanceError, match="neither small_cnn nor a timm model"):
        backbones.build("resnet_181", 2)
    _, file = imagenet_like(tmp_path)
    with pytest.raises(RebalanceError, match="not weights of a timm efficientnet_b0"):
        backbones.build("efficientnet_b0", 2, pretrained=str(file))
    with pytest.raises(RebalanceError, match="small_cnn has no pretrained"):
        backbones.build("small_cnn", 2, pretrained=str(file))


def test_a_timm_backbone_trains_saves_and_loads_through_the_same_loop(tmp_path):
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8, generator=gen)
    y = torch.arange(24) % 2
    x[y == 1, 0] = 255  # class 1: a saturated red channel
    net = backbones.build("resnet18", 2)
    classifier.fit(net, x, y, steps=6, batch_size=8, lr=1e-3, weight_decay=0.0, seed=0)
    proba = classifier.predict_proba(net, x)
    path = tmp_path / "model.pt"
    classifier.save(net, path, ["a", "b"], 32, 16, "resnet18")
    loaded, ckpt = classifier.load(path)
    assert ckpt["backbone"] == "resnet18"
    assert torch.allclose(torch.from_numpy(classifier.predict_proba(loaded, x)), torch.from_numpy(proba))
