"""bf16 and int8 on the CPU: close to float32, judged by top-1 agreement, refused below a floor."""

from __future__ import annotations

import pytest
import torch
from conftest import moving_square_frames
from test_inference import save_tiny_checkpoint

from mars_action.cli import main
from mars_action.errors import MarsError
from mars_action.inference import Recognizer, read_exported_meta
from mars_action.inference.precision import agreement, bf16_supported, convert
from mars_action.models import build_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def _model_and_clips():
    torch.manual_seed(0)
    model = build_model("resnet10_tiny", num_classes=6).eval()
    clips = torch.randn(12, 3, 8, 32, 32) * 40  # normalised 0-255 pixels: std ~40
    return model, clips


@pytest.mark.skipif(not bf16_supported(), reason="no native bfloat16 on this CPU")
def test_bf16_stays_close_to_float32():
    model, clips = _model_and_clips()
    network = convert(model, "bf16")
    with torch.inference_mode():
        want, got = model(clips), network(clips)
    assert got.dtype == torch.float32
    assert (got - want).abs().max() <= 0.05 * want.abs().max()
    assert agreement(model, network, clips) >= 0.9


def test_int8_calibrated_on_clips_stays_close_to_float32():
    model, clips = _model_and_clips()
    network = convert(model, "int8", torch.split(clips[:8], 4))
    with torch.inference_mode():
        want, got = model(clips), network(clips)
    assert any(m.__class__.__module__.startswith("torch.ao.nn.quantized")
               for m in network.modules())  # really int8 convolutions
    assert (got - want).abs().max() <= 0.1 * want.abs().max()
    assert agreement(model, network, clips) >= 0.75
    with pytest.raises(MarsError, match="calibration clips"):
        convert(model, "int8", [])


def test_int8_runs_the_stem_on_pixel_blocks_and_pools_exactly():
    from torch.ao.nn.intrinsic import quantized as q

    from mars_action.inference.precision import FloatMaxPool3d
    from mars_action.models.optimize import SpaceToDepth

    model, clips = _model_and_clips()
    network = convert(model, "int8", [clips[:8]])
    stem = network.get_submodule("conv1")
    assert isinstance(stem.fold, SpaceToDepth)  # kept float: reshapes before the quantize
    assert isinstance(stem.conv, q.ConvReLU3d) and stem.conv.in_channels == 12
    assert sum(isinstance(m, q.ConvReLU3d) for m in network.modules()) >= 5  # ReLUs fused
    pools = [m for m in network.modules() if isinstance(m, FloatMaxPool3d)]
    assert len(pools) == 1
    ints = torch.quantize_per_tensor(torch.rand(2, 4, 6, 10, 10), 0.01, 3, torch.quint8)
    want = torch.nn.functional.max_pool3d(ints, 3, 2, 1)  # PyTorch's int8 max-pool
    got = pools[0](ints)
    assert got.q_scale() == want.q_scale() and torch.equal(got.int_repr(), want.int_repr())


def test_int8_activation_ranges_are_min_max_on_8_bits_with_vnni():
    from torch.ao.quantization import MinMaxObserver, default_per_channel_weight_observer

    from mars_action.inference.precision import _activation_ranges, _has_vnni

    observer = _activation_ranges(default_per_channel_weight_observer).activation()
    assert isinstance(observer, MinMaxObserver)
    clips = torch.linspace(-100.0, 150.0, 1000)
    observer(clips)
    scale, _ = observer.calculate_qparams()
    levels = 127 if not _has_vnni() else 255  # reduce_range only without VNNI
    assert abs(float(scale) - 250.0 / levels) < 1e-4  # the whole range, nothing clipped


def test_export_int8_stores_its_agreement_and_predicts(checkpoint, make_video, tmp_path, capsys):
    train = make_video("train.mp4", moving_square_frames(24, 96, 128, seed=1), crf=0)
    test = make_video("test.mp4", moving_square_frames(40, 96, 128, seed=2), crf=0)
    out = tmp_path / "tiny.int8.torchscript.pt"
    argv = ["export", str(checkpoint), "--format", "torchscript", "--precision", "int8",
            "--calibrate", str(train), "--video", str(test), "--out", str(out),
            "--min-agreement", "0.5"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "top-1 agreement with float32 on 5 clips of 1 videos" in printed
    record = read_exported_meta(out).provenance["precision"]
    assert record["precision"] == "int8" and record["test_clips"] == 5
    assert record["calibration_clips"] == 3 and 0.5 <= record["top1_agreement"] <= 1.0
    prediction = Recognizer.from_checkpoint(out, device="cpu").predict(test)
    assert len(prediction.clip_logits) == 5


def test_export_below_the_floor_writes_nothing(checkpoint, make_video, tmp_path, capsys):
    test = make_video("test.mp4", moving_square_frames(24, 96, 128, seed=2), crf=0)
    out = tmp_path / "tiny.bf16.torchscript.pt"
    argv = ["export", str(checkpoint), "--format", "torchscript", "--precision", "int8",
            "--calibrate", str(test), "--video", str(test), "--out", str(out),
            "--min-agreement", "1.01"]
    assert main(argv) == 2
    assert "not written" in capsys.readouterr().err and not out.exists()
    assert main(["export", str(checkpoint), "--format", "onnx", "--precision", "bf16"]) == 2
    assert "TorchScript only" in capsys.readouterr().err


def test_recognizer_runs_at_a_precision(checkpoint, make_video):
    video = make_video("v.mp4", moving_square_frames(24, 96, 128), crf=0)
    plain = Recognizer.from_checkpoint(checkpoint, device="cpu")
    int8 = Recognizer.from_checkpoint(checkpoint, device="cpu", precision="int8",
                                      calibration=[video])
    assert int8.precision == "int8"
    want, got = plain.predict(video).clip_logits, int8.predict(video).clip_logits
    assert abs(got - want).max() <= 0.2 * abs(want).max() + 1e-3
    with pytest.raises(MarsError, match="calibration clips"):
        Recognizer.from_checkpoint(checkpoint, device="cpu", precision="int8")
    with pytest.raises(MarsError, match="runs in PyTorch"):
        Recognizer.from_checkpoint(checkpoint, device="cpu", precision="bf16", runtime="auto")
