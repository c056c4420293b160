"""Reduced precision on the CPU: bfloat16 through oneDNN, int8 by static quantisation.

- ``bf16``: weights and activations in bfloat16; on a CPU with AVX-512 BF16 (or AMX)
  oneDNN runs the convolutions natively. Inputs and logits stay float32.
- ``int8``: post-training static quantisation (``torch.ao`` FX graph mode, the ``x86``
  backend: fbgemm/oneDNN kernels with AVX-512 VNNI) of the BatchNorm-folded network, its
  activation ranges calibrated on a few real clips (:func:`quantize_int8` says which
  layers stay float and why). Measured on this project's 2-core EPYC (one thread,
  16x112x112, trained MARS resnet10_tiny; ``benchmarks/bench_precision_speed.py``): see
  ``benchmarks/results/precision_speed_*.json``. X3D's channel-wise 3D convolutions and
  swish have no fast int8 kernel (X3D-XS 106 -> 800 ms), so int8 is for ResNets and
  MobileNets; :func:`agreement` tells whether it holds.

Reduced precision changes outputs, so every conversion is judged by the top-1
agreement with float32 on real clips (``mars export --precision`` stores it and
refuses a model below a floor).
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from mars_action.errors import MarsError
from mars_action.inference.export import export_model
from mars_action.models.checkpoint import CheckpointMeta
from mars_action.models.optimize import (
    SpaceToDepth,
    fold_batchnorm,
    optimize_for_inference,
    space_to_depth_stem,
    to_model_layout,
)

PRECISIONS = ("fp32", "bf16", "int8")


def bf16_supported() -> bool:
    """Whether oneDNN has native bfloat16 kernels on this CPU (AVX-512 BF16 or AMX)."""
    mkldnn = torch.backends.mkldnn.is_available()
    return bool(mkldnn and torch.ops.mkldnn._is_mkldnn_bf16_supported())


class Bf16Network(nn.Module):
    """A network run in bfloat16: float32 clips in, float32 logits out."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.to(torch.bfloat16)
        self.uses_channels_last = getattr(model, "uses_channels_last", False)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) float32
        return self.model(clips.to(torch.bfloat16)).float()


def to_bf16(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` (BN folded, channels_last_3d) in bfloat16."""
    if not bf16_supported():
        raise MarsError("bf16: this CPU has no native bfloat16 (AVX-512 BF16 / AMX) for oneDNN")
    return Bf16Network(optimize_for_inference(model))


def quantize_int8(model: nn.Module, calibration: Iterable[torch.Tensor]) -> nn.Module:
    """A statically quantised int8 copy of ``model``, activation ranges from ``calibration``.

    Every convolution runs in int8, the first one on 2x2 pixel blocks
    (:class:`~mars_action.models.optimize.SpaceToDepthConv3d`: its 3 input channels
    would waste VNNI's groups of 4); the classifier stays float32 (it decides between
    close logits and is a sliver of the work), and so do max-pools (PyTorch's int8 3D
    max-pool is 3x slower than float32's on channels_last_3d; pooling commutes with
    the int8 rounding, so the numbers are the same). Feed it channels_last_3d clips
    (:func:`~mars_action.models.optimize.to_model_layout`).

    Args:
        model: a float32 network (eval mode is set on the copy).
        calibration: batches of normalised clips (B, C, T, H, W), a few training clips.
    """
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.fx.custom_config import PrepareCustomConfig
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    batches = [clips.contiguous(memory_format=torch.channels_last_3d) for clips in calibration]
    if not batches:
        raise MarsError("int8: quantisation needs calibration clips (a few training videos)")
    torch.backends.quantized.engine = "x86"
    float_model = space_to_depth_stem(fold_batchnorm(copy.deepcopy(model).cpu().eval()))
    mapping = get_default_qconfig_mapping("x86")
    mapping = mapping.set_global(_activation_ranges(mapping.global_qconfig.weight))
    if isinstance(getattr(float_model, "fc", None), nn.Linear):
        mapping = mapping.set_module_name("fc", None)
    # the block folding is reshapes of the float clip, before the first quantize
    leaves = PrepareCustomConfig().set_non_traceable_module_classes([SpaceToDepth])
    with warnings.catch_warnings():  # torch.ao's notes on its own deprecation and observers
        warnings.simplefilter("ignore")
        graph = _without_identities(_LeafTracer((SpaceToDepth,)).trace(float_model), float_model)
        prepared = prepare_fx(graph, mapping, (batches[0],), prepare_custom_config=leaves)
        with torch.inference_mode():
            for clips in batches:
                prepared(clips)
        quantized = convert_fx(prepared)
    for module in list(quantized.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.MaxPool3d):
                setattr(module, name, FloatMaxPool3d(child))
    quantized.uses_channels_last = True
    return quantized


def _activation_ranges(weights):
    """Per-tensor activation ranges from the calibration's minimum and maximum, all 8 bits.

    PyTorch's x86 default clips each range to minimise the histogram's rounding error and
    keeps 7 bits (``reduce_range``: without VNNI, u8 x s8 pair sums can saturate). Large
    activations are rare but decide the class here: measured top-1 agreement with float32
    on trained resnet10_tiny MARS students (UCF101 at 16x112x112, 633 test clips /
    synthetic at 16x28x28, 192): default 96.8% / 95.8%, 8-bit histogram 97.5%, 7-bit
    min-max 97.3%, 8-bit min-max 98.6% / 98.4%. With VNNI (no saturation) all 8 bits.
    ``weights``: the weight observer to keep (x86's per-channel one).
    """
    from torch.ao.quantization import MinMaxObserver, QConfig

    observer = MinMaxObserver.with_args(dtype=torch.quint8, reduce_range=not _has_vnni())
    return QConfig(activation=observer, weight=weights)


def _has_vnni() -> bool:
    """Whether the CPU multiplies int8 with VNNI (AVX512-VNNI, AVX-VNNI or AMX), per Linux."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


def _without_identities(graph: torch.fx.Graph, root: nn.Module) -> torch.fx.GraphModule:
    """``root`` as a GraphModule with its ``nn.Identity`` calls (folded BatchNorms) removed,
    so that each convolution meets its ReLU and int8 fuses the two."""
    module = torch.fx.GraphModule(root, graph)
    for node in list(module.graph.nodes):
        if node.op == "call_module" and isinstance(module.get_submodule(node.target), nn.Identity):
            node.replace_all_uses_with(node.args[0])
            module.graph.erase_node(node)
    module.recompile()
    return module


class _LeafTracer(torch.fx.Tracer):
    """torch.fx's tracer, with ``leaves`` kept as calls (not traced into)."""

    def __init__(self, leaves: tuple[type, ...]):
        super().__init__()
        self.leaves = leaves

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, self.leaves) or super().is_leaf_module(module, qualified_name)


class FloatMaxPool3d(nn.Module):
    """A max-pool that runs int8 inputs in float32 and returns them in int8 with the same
    scale: the maximum of the dequantised values is the dequantised maximum."""

    def __init__(self, pool: nn.MaxPool3d):
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_quantized:
            return self.pool(x)
        return torch.quantize_per_tensor(self.pool(x.dequantize()), x.q_scale(),
                                         x.q_zero_point(), x.dtype)


def convert(
    model: nn.Module, precision: str, calibration: Iterable[torch.Tensor] = ()
) -> nn.Module:
    """``model`` ready for inference at ``precision`` (``fp32``: BN folded, oneDNN convs)."""
    if precision not in PRECISIONS:
        raise MarsError(f"precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    if precision == "bf16":
        return to_bf16(model)
    if precision == "int8":
        return quantize_int8(model, calibration)
    return optimize_for_inference(model)


def agreement(
    reference: nn.Module, candidate: nn.Module, clips: torch.Tensor, batch_size: int = 8
) -> float:
    """Share of ``clips`` (K, C, T, H, W) whose top-1 class is the same for both networks."""
    if len(clips) == 0:
        raise MarsError("no clips to measure the agreement on")
    same = 0
    with torch.inference_mode():
        for start in range(0, len(clips), batch_size):
            batch = clips[start : start + batch_size]
            want = reference.eval()(batch).argmax(1)
            got = candidate(to_model_layout(candidate, batch)).argmax(1)
            same += int((want == got).sum())
    return same / len(clips)



def export_reduced(
    model: nn.Module,
    meta: CheckpointMeta,
    out: str | Path,
    precision: str,
    test_clips: torch.Tensor,
    calibration: torch.Tensor | None = None,
    min_agreement: float = 0.99,
) -> float:
    """Write ``model`` at ``precision`` as TorchScript, if it agrees enough with float32.

    The top-1 agreement on ``test_clips`` (real clips of held-out videos) is measured
    first; below ``min_agreement`` nothing is written and :class:`MarsError` says so.
    Otherwise the file stores the precision and the agreement in its meta. Returns the
    agreement.
    """
    batches = () if calibration is None else torch.split(calibration, 8)
    network = convert(model, precision, batches)
    share = agreement(model, network, test_clips)
    if share < min_agreement:
        raise MarsError(
            f"{out}: not written: {precision} agrees with float32 on {share:.1%} of "
            f"{len(test_clips)} test clips, below the floor of {min_agreement:.1%}"
        )
    record = {"precision": precision, "top1_agreement": share, "test_clips": len(test_clips),
              "calibration_clips": 0 if calibration is None else len(calibration)}
    provenance = {**meta.provenance, "precision": record}
    with warnings.catch_warnings():  # tracing notes the quantisation scales as constants
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        export_model(network, dataclasses.replace(meta, provenance=provenance), out, "torchscript")
    return share
