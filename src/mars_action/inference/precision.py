"""Reduced precision on the CPU: bfloat16 through oneDNN, int8 by static quantisation.

- ``bf16``: weights and activations in bfloat16; on a CPU with AVX-512 BF16 (or AMX)
  oneDNN runs the convolutions natively. Inputs and logits stay float32.
- ``int8``: post-training static quantisation (``torch.ao`` FX graph mode, the ``x86``
  backend: fbgemm/oneDNN kernels) of the BatchNorm-folded network, its activation
  ranges calibrated on a few real clips. Measured on this project's 2-core EPYC
  (one thread, 16x112x112): resnet10_tiny 41 -> 24 ms, 3D MobileNetV2 0.5x 20 -> 14 ms,
  but X3D-XS 106 -> 800 ms (channel-wise 3D convs and swish have no fast int8 kernel
  here), so int8 is for ResNets and MobileNets; :func:`agreement` tells whether it holds.

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
from mars_action.models.optimize import fold_batchnorm, optimize_for_inference, to_model_layout

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

    Args:
        model: a float32 network (eval mode is set on the copy).
        calibration: batches of normalised clips (B, C, T, H, W), a few training clips.
    """
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    batches = list(calibration)
    if not batches:
        raise MarsError("int8: quantisation needs calibration clips (a few training videos)")
    torch.backends.quantized.engine = "x86"
    float_model = fold_batchnorm(copy.deepcopy(model).cpu().eval())
    mapping = get_default_qconfig_mapping("x86")
    for name in _kept_in_float(float_model):
        mapping = mapping.set_module_name(name, None)
    with warnings.catch_warnings():  # torch.ao's notes on its own deprecation and observers
        warnings.simplefilter("ignore")
        prepared = prepare_fx(float_model, mapping, (batches[0],))
        with torch.inference_mode():
            for clips in batches:
                prepared(clips)
        return convert_fx(prepared)


def _kept_in_float(model: nn.Module) -> list[str]:
    """The first convolution and the classifier: where int8 costs most top-1 agreement.

    The stem reads 3 (or 2) raw channels and the classifier decides between close
    logits; both are a sliver of the work. Measured on a trained MARS resnet10_tiny
    (UCF101 subset, 179 test clips): agreement 86.0% with every layer in int8, 93.3%
    with these two in float32.
    """
    first = next(name for name, module in model.named_modules() if isinstance(module, nn.Conv3d))
    return [first, "fc"] if isinstance(getattr(model, "fc", None), nn.Linear) else [first]


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
