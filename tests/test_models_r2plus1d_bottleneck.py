"""PyTorchVideo's R(2+1)D R50 (``create_r2plus1d``) as ``r2plus1d_50``: a file with the
library's key names computes what the library's network computes, its strides and
widths, and the depths that are not models here."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mars_action.errors import MarsError
from mars_action.models import build_model, load_checkpoint
from mars_action.models.foreign import pytorchvideo_r2plus1d_arch

FIXTURES = Path(__file__).parent / "fixtures"


def _library_state() -> dict[str, torch.Tensor]:
    """The fixture's keys and shapes (r2plus1d_r50, from the library's source), filled with
    He-scaled weights and plausible BN statistics so that 50 layers stay finite."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for line in (FIXTURES / "pytorchvideo_r2plus1d_r50_keys.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        key, shape = line.split()
        if shape == "-":
            state[key] = torch.tensor(0)
            continue
        dims = tuple(int(v) for v in shape.split("x"))
        noise = torch.randn(dims, generator=gen)
        if len(dims) > 1:  # conv / linear weight
            state[key] = noise * math.sqrt(2.0 / math.prod(dims[1:]))
        elif key.endswith("norm_c.weight"):  # small last BN of each residual branch
            state[key] = 0.2 + 0.02 * noise  # keeps the sum of 16 branches in range
        elif key.endswith("running_var") or key.endswith(".weight"):
            state[key] = 1.0 + 0.1 * noise.abs()
        else:
            state[key] = 0.1 * noise
    return state


def _bn(x: torch.Tensor, s: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return F.batch_norm(x, s[f"{name}.running_mean"], s[f"{name}.running_var"],
                        s[f"{name}.weight"], s[f"{name}.bias"], eps=1e-5)


def _library_forward(s: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``create_r2plus1d`` in eval mode, written from its source with functional ops on
    its own key names: stem 1x7x7, bottlenecks with Conv2plus1d (conv_t, norm, ReLU,
    conv_xy), spatial strides (2, 2, 2, 2), temporal (1, 1, 2, 2), softmax head."""
    x = F.relu(_bn(F.conv3d(x, s["blocks.0.conv.weight"], stride=(1, 2, 2),
                            padding=(0, 3, 3)), s, "blocks.0.norm"))
    for stage, (depth, t_stride) in enumerate(zip((3, 4, 6, 3), (1, 1, 2, 2), strict=True), 1):
        for block in range(depth):
            p = f"blocks.{stage}.res_blocks.{block}"
            st, ss = (t_stride, 2) if block == 0 else (1, 1)
            out = F.relu(_bn(F.conv3d(x, s[f"{p}.branch2.conv_a.weight"]), s,
                             f"{p}.branch2.norm_a"))
            out = F.conv3d(out, s[f"{p}.branch2.conv_b.conv_t.weight"], stride=(st, 1, 1),
                           padding=(1, 0, 0))
            out = F.relu(_bn(out, s, f"{p}.branch2.conv_b.norm"))
            out = F.conv3d(out, s[f"{p}.branch2.conv_b.conv_xy.weight"], stride=(1, ss, ss),
                           padding=(0, 1, 1))
            out = F.relu(_bn(out, s, f"{p}.branch2.norm_b"))
            out = _bn(F.conv3d(out, s[f"{p}.branch2.conv_c.weight"]), s, f"{p}.branch2.norm_c")
            shortcut = x
            if block == 0:
                shortcut = _bn(F.conv3d(x, s[f"{p}.branch1_conv.weight"], stride=(st, ss, ss)),
                               s, f"{p}.branch1_norm")
            x = F.relu(out + shortcut)
    # the head's 4x7x7 average covers the whole map of a 16x224x224 clip: a global mean
    logits = F.linear(x.mean(dim=(2, 3, 4)), s["blocks.5.proj.weight"], s["blocks.5.proj.bias"])
    return logits.softmax(dim=1)


def test_the_library_file_loads_exactly_and_computes_as_the_library(tmp_path):
    state = _library_state()
    path = tmp_path / "R2PLUS1D_16x4_R50.pyth"
    torch.save({"model_state": state}, path)  # the hub file's wrapper
    model, meta = load_checkpoint(path)  # every key used, none missing, or an error
    assert meta.arch == "r2plus1d_50" and meta.num_classes == 400
    assert meta.provenance["source"] == "PyTorchVideo"
    assert torch.equal(model.layer3[0].conv2t.weight,
                       state["blocks.3.res_blocks.0.branch2.conv_b.conv_t.weight"])
    clip = torch.randn(1, 3, 4, 24, 24, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = _library_forward(state, clip)
        logits, feats = model.forward_with_features(clip, ("layer3", "layer4", "pooled"))
    assert torch.allclose(logits.softmax(dim=1), expected, atol=1e-6, rtol=1e-4)
    assert 0.01 < expected.max() < 0.5  # neither flat nor saturated: the check has content
    assert feats["layer3"].shape == (1, 1024, 2, 2, 2)  # time halved in stage 3, space /16
    assert feats["layer4"].shape == (1, 2048, 1, 1, 1) and feats["pooled"].shape == (1, 2048)


def test_strides_and_widths_follow_create_r2plus1d():
    with torch.device("meta"):  # shapes only
        model = build_model("r2plus1d_50")
        _, feats = model.forward_with_features(torch.zeros(1, 3, 16, 224, 224), ("layer4",))
    assert feats["layer4"].shape == (1, 2048, 4, 7, 7)  # the library head's 4x7x7 pool
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    first = model.layer1[0]
    assert first.conv2t.kernel_size == (3, 1, 1) and first.conv2s.kernel_size == (1, 3, 3)
    assert first.conv2s.stride == (1, 2, 2)  # stage 1 halves space too (no max-pool)
    assert model.layer3[0].conv2t.stride == (2, 1, 1)
    assert model.layer4[0].conv2t.in_channels == 512  # (2+1)D at the bottleneck's width


def test_other_depths_are_one_clear_line():
    r101 = {f"blocks.3.res_blocks.{b}.branch2.conv_a.weight": torch.zeros(1) for b in range(23)}
    with pytest.raises(MarsError, match=r"23 blocks in stage 3; only its R50"):
        pytorchvideo_r2plus1d_arch(r101)
