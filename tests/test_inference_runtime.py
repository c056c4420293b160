"""The network's engine: ONNX Runtime chosen on the CPU, cached, checked; PyTorch's rewrites."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import moving_square_frames
from test_inference import save_tiny_checkpoint

from mars_action.cli import main
from mars_action.errors import MarsError
from mars_action.inference import Recognizer, runtime
from mars_action.models.optimize import OneDnnConv3d, optimize_for_inference, to_model_layout
from mars_action.models.resnet3d import ResNet3d, ResNeXtBottleneck


def test_onnxruntime_runs_once_exported_and_matches_pytorch(
    tmp_path, make_video, monkeypatch, capsys
):
    path = save_tiny_checkpoint(tmp_path / "tiny.pt")
    video = make_video("v.mp4", moving_square_frames(24, 96, 128), crf=0)
    cache = tmp_path / "cache"
    monkeypatch.setenv(runtime.CACHE_ENV, str(cache))
    args = ["predict", str(video), "--checkpoint", str(path)]
    assert main([*args, "--runtime", "onnxruntime"]) == 0
    (cached,) = (cache / "onnx").iterdir()  # the checked file, nothing left over
    assert cached.name.startswith("tiny-") and cached.suffix == ".onnx"
    err = capsys.readouterr().err
    assert err == f"mars predict: exported the network to {cached} for ONNX Runtime (once)\n"
    stamp = cached.stat().st_mtime_ns
    again = Recognizer.from_checkpoint(path, device="cpu", runtime="auto", cache_dir=cache)
    assert again.runtime == "onnxruntime" and again.runtime_note is None
    assert Recognizer.from_checkpoint(path, device="cpu").runtime == "pytorch"  # the default
    assert cached.stat().st_mtime_ns == stamp  # read from the cache, not exported again
    eager = Recognizer.from_checkpoint(path, device="cpu", runtime="pytorch", optimize=False)
    fast = Recognizer.from_checkpoint(path, device="cpu", runtime="pytorch")
    assert eager.runtime == fast.runtime == "pytorch" and fast.runtime_note is None
    reference = eager.predict(video).clip_logits  # (3, 4)
    for recognizer in (again, fast):
        np.testing.assert_allclose(recognizer.predict(video).clip_logits, reference, atol=1e-4)
    # The cache key is the checkpoint's bytes (and architecture), not its name.
    key = runtime.checkpoint_key(path, again.meta)
    assert cached.stem == f"tiny-{key}"
    save_tiny_checkpoint(path, clip_len=4)
    assert runtime.checkpoint_key(path, again.meta) != key


def test_auto_falls_back_to_pytorch_without_onnxruntime(tmp_path, monkeypatch):
    path = save_tiny_checkpoint(tmp_path / "tiny.pt")
    monkeypatch.setattr(runtime, "onnxruntime_available", lambda: False)
    recognizer = Recognizer.from_checkpoint(path, device="cpu", runtime="auto",
                                            cache_dir=tmp_path / "c")
    assert recognizer.runtime == "pytorch"
    assert recognizer.runtime_note == "network runs in PyTorch (onnxruntime is not installed)"
    assert isinstance(recognizer.model, torch.nn.Module) and not (tmp_path / "c").exists()
    with pytest.raises(MarsError, match="onnxruntime is not installed"):
        Recognizer.from_checkpoint(path, device="cpu", runtime="onnxruntime")


@pytest.mark.parametrize(
    "failure, reason",
    [("mismatch", "differs from PyTorch by 1.00e+00 > 1e-04"), ("crash", "exporter broke")],
)
def test_an_export_that_fails_or_differs_is_not_used_nor_cached(
    tmp_path, monkeypatch, failure, reason
):
    path = save_tiny_checkpoint(tmp_path / "tiny.pt")

    def fake_export(model, meta, out, fmt):
        if failure == "crash":
            raise RuntimeError("exporter broke\nwith a long story")
        out.write_bytes(b"onnx")
        return out

    monkeypatch.setattr(runtime, "export_model", fake_export)
    monkeypatch.setattr(runtime, "load_exported", lambda path, device="cpu": None)
    monkeypatch.setattr(runtime, "max_abs_difference", lambda exported, model, clips: 1.0)
    cache = tmp_path / "cache"
    recognizer = Recognizer.from_checkpoint(path, device="cpu", runtime="auto", cache_dir=cache)
    assert recognizer.runtime == "pytorch"
    assert recognizer.runtime_note == f"network runs in PyTorch (ONNX export: {reason})"
    assert list((cache / "onnx").iterdir()) == []
    with pytest.raises(MarsError, match="no ONNX Runtime model: " + reason.split(" by")[0]):
        Recognizer.from_checkpoint(path, device="cpu", runtime="onnxruntime", cache_dir=cache)
    with pytest.raises(MarsError, match="runtime 'tvm'"):
        Recognizer.from_checkpoint(path, device="cpu", runtime="tvm")


@pytest.mark.parametrize(
    "shape",
    [
        dict(in_channels=24, out_channels=40, kernel_size=1, stride=(1, 2, 2)),  # projection
        dict(in_channels=32, out_channels=32, kernel_size=3, padding=1, groups=8),  # ResNeXt's
        dict(in_channels=24, out_channels=8, kernel_size=7, stride=(1, 2, 2), padding=3),  # stem
    ],
)
@pytest.mark.parametrize("channels_last", [True, False])
def test_onednn_conv_equals_the_convolution(shape, channels_last):
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(**shape)
    x = torch.randn(1, conv.in_channels, 5, 9, 11)  # (B, C, T, H, W), odd sizes
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    fast = OneDnnConv3d(conv)
    with torch.inference_mode(), torch.profiler.profile() as profile:
        expected, out = conv(x), fast(x)
    assert "aten::mkldnn_convolution" in {event.key for event in profile.key_averages()}
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert fast(x).dtype == conv(x).dtype == torch.bfloat16  # autocast still applies
    with torch.inference_mode():  # other dtypes take F.conv3d (shared weights: both double)
        torch.testing.assert_close(fast.double()(x.double()), conv(x.double()))
    with pytest.raises(ValueError, match="zero padding"):
        OneDnnConv3d(torch.nn.Conv3d(4, 4, 3, padding=1, padding_mode="reflect"))


def test_optimized_resnext_skips_pytorchs_slow_conv3d_path_at_batch_1():
    """Small convs at batch 1 go to ``slow_conv3d`` in PyTorch; the optimized model's do not."""
    torch.manual_seed(0)
    model = ResNet3d(ResNeXtBottleneck, [1, 1, 1, 1], (32, 64, 128, 256), 3, 5, 32, 16)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)):
        bn.running_mean.normal_(0, 0.2)  # statistics a trained model has: folding shows
        bn.running_var.uniform_(0.3, 2.0)
    model.eval()
    fast = optimize_for_inference(model)
    assert not any(type(m) is torch.nn.Conv3d for m in fast.modules())
    clip = torch.randn(1, 3, 8, 48, 48)  # (B, C, T, H, W)
    with torch.inference_mode(), torch.profiler.profile() as plain:
        reference = model(clip)
    with torch.inference_mode(), torch.profiler.profile() as optimized:
        out = fast(to_model_layout(fast, clip))
    assert "aten::slow_conv3d_forward" in {event.key for event in plain.key_averages()}
    assert "aten::slow_conv3d_forward" not in {event.key for event in optimized.key_averages()}
    torch.testing.assert_close(out, reference, atol=1e-4, rtol=0)
