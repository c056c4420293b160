"""Our checkpoint format and the released MARS .pth layout: round trips and clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from mars_action.cli import main
from mars_action.errors import MarsError
from mars_action.models import (
    CheckpointMeta,
    build_model,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)


def _randomize_bn(model: torch.nn.Module) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
            module.num_batches_tracked.fill_(7)
    return model


def _released_file(path, model, arch="resnext-101"):
    """A file laid out like MARS_*.pth: DataParallel prefixes, epoch and optimizer."""
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"epoch": 42, "arch": arch, "state_dict": state, "optimizer": {"state": {}}}, path)
    return path


@pytest.fixture(scope="module")
def resnext_pair():
    torch.manual_seed(0)
    return _randomize_bn(build_model("resnext101", in_channels=2, num_classes=51)).eval()


def test_released_resnext101_loads_with_identical_outputs(tmp_path, resnext_pair):
    path = _released_file(tmp_path / "Flow_HMDB51_16f.pth", resnext_pair)
    raw = torch.load(path, weights_only=True)
    assert len(raw["state_dict"]) == 626 and "module.layer1.0.conv2.weight" in raw["state_dict"]
    assert raw["state_dict"]["module.layer1.0.conv2.weight"].shape == (128, 4, 3, 3, 3)

    model, meta = load_checkpoint(path)
    assert (meta.arch, meta.in_channels, meta.num_classes) == ("resnext101", 2, 51)
    assert (meta.stream, meta.clip_len, meta.modality) == ("flow", 16, "flow")
    assert meta.provenance["epoch"] == 42
    clip = torch.randn(1, 2, 16, 112, 112)
    with torch.inference_mode():
        assert torch.equal(model(clip), resnext_pair(clip))


def test_convert_round_trip_keeps_weights_and_meta(tmp_path, resnext_pair):
    source = _released_file(tmp_path / "MARS_Kinetics_64f.pth", resnext_pair)
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{i + 1} class {i}\n" for i in range(51)))
    out = tmp_path / "converted.pt"
    assert main(["convert", str(source), str(out), "--labels", str(labels)]) == 0

    state, meta, raw = read_checkpoint(out)
    assert raw["format"] == "mars-action"
    assert meta.class_names[0] == "class 0" and len(meta.class_names) == 51
    assert meta.stream == "mars" and meta.clip_len == 64
    original = resnext_pair.state_dict()
    assert state.keys() == original.keys()
    assert all(torch.equal(state[k], original[k]) for k in original)


def test_our_format_is_self_describing(tmp_path):
    model = build_model("resnet10_tiny", in_channels=3, num_classes=3).eval()
    meta = CheckpointMeta(
        arch="resnet10_tiny", in_channels=3, num_classes=3, stream="mars",
        class_names=["a", "b", "c"], clip_len=8, crop_size=64, provenance={"epochs": 2},
    )
    path = save_checkpoint(tmp_path / "m.pt", model, meta, epoch=3)
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind
    loaded, meta2 = load_checkpoint(path, expect_modality="rgb", expect_num_classes=3)
    assert meta2 == meta
    assert meta2.mean == pytest.approx([114.7748, 107.7354, 99.4750]) and meta2.std == [1.0] * 3
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))


def test_wrong_modality_and_class_count_are_named(tmp_path):
    model = build_model("resnet10_tiny", in_channels=2, num_classes=4)
    path = save_checkpoint(tmp_path / "flow.pt", model, CheckpointMeta("resnet10_tiny", 2, 4))
    with pytest.raises(MarsError, match="flow checkpoint .* rgb model is needed"):
        load_checkpoint(path, expect_modality="rgb")
    with pytest.raises(MarsError, match="4 classes, expected 10"):
        load_checkpoint(path, expect_num_classes=10)
    with pytest.raises(MarsError, match="2 class names given"):
        load_checkpoint(path, class_names=["a", "b"])


def test_mismatched_keys_are_listed_never_partially_loaded(tmp_path):
    model = build_model("resnet18", num_classes=5)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    del state["module.layer2.0.conv1.weight"]
    state["module.extra.weight"] = torch.zeros(1)
    state["module.fc.bias"] = torch.zeros(9)
    torch.save({"arch": "resnet-18", "state_dict": state}, tmp_path / "bad.pth")
    with pytest.raises(MarsError) as info:
        load_checkpoint(tmp_path / "bad.pth")
    message = str(info.value)
    assert "1 missing: layer2.0.conv1.weight" in message
    assert "1 unexpected: extra.weight" in message
    assert "fc.bias (9,) vs (5,)" in message


def test_pickled_code_is_never_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"state_dict": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(MarsError, match="not a readable checkpoint"):
        read_checkpoint(tmp_path / "evil.pth")


@pytest.mark.parametrize(
    "content, reason", [(b"", "not a readable checkpoint"), (b"garbage" * 10, "not a readable")]
)
def test_cli_reports_corrupt_files_in_one_line(tmp_path, content, reason):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(content)
    result = subprocess.run(
        [sys.executable, "-m", "mars_action.cli", "convert", str(bad), str(tmp_path / "o.pt")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and reason in result.stderr
    assert "Traceback" not in result.stderr and str(bad) in result.stderr
    assert not (tmp_path / "o.pt").exists()
