"""Flow regression: the student's maps predict the clip's own optical flow, no teacher.

``distill.flow_regression`` (a weight) and ``distill.flow_layer`` (``layer1``..``layer4``):
the student's maps at that layer go through a small head (BatchNorm, then a 1x1x1
convolution to 2 channels, x and y) and are compared with the clip's flow, the same
2-channel clip the teacher of MARS reads, average-pooled to the head's
``t x h x w`` grid (the layer's temporal and spatial strides). It is the second mode of
``mars pretrain``: motion pretraining for a user with videos and their flow but no Flow
teacher (the MARS idea without the teacher: the RGB stream learns what flow would show).

The loss is the average end-point error (EPE): the Euclidean length of the 2-D error
vector at each grid position, averaged (FlowNet, Dosovitskiy et al. 2015, trains and
scores flow with it). Not the MSE, because the target is in flow-input units (centred
8-bit codes, up to +-127.5): the MSE's gradient grows with the error, so the first steps
at the recipe's lr 0.1 are large and a few fast-moving cells dominate the loss. The
EPE's gradient is a unit vector per position whatever the error's size, and it scores
the flow vector as a whole (one number per position, as flow is evaluated). A small
``EPS`` under the square root keeps its gradient finite where the error is 0.

The head is the student's adapter of the output :data:`FLOW_OUTPUT` (see
``distill.apply_adapters``): it trains with the student, is saved in ``last.pt``'s
training state (``--resume`` continues it), and is never part of the model, so the
checkpoint is an ordinary RGB network that ``model.pretrained`` accepts.
"""

from __future__ import annotations

import torch
from torch import nn

from mars_action.training.adapters import output_shapes, resize

FLOW_OUTPUT = "flow"  # the student's output (and adapter) name of the regressed flow
EPS = 1e-6  # under the EPE's square root: a finite gradient at a zero error


def pool_flow(flow: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """A (B, 2, T, H, W) flow clip as the mean flow of each cell of a ``size`` grid.

    The grid is that of the regressing maps: a layer that halved time twice and space
    four times sees, per position, the average motion over the frames and pixels it
    covers. Sizes that do not divide are split as ``adaptive_avg_pool3d`` splits them.
    """
    return resize(flow.float(), tuple(size))


def endpoint_error(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over batch and positions of ``|| predicted - target ||_2`` along the 2 channels.

    Args:
        predicted: (B, 2, t, h, w) flow predictions.
        target: (B, 2, t, h, w) flow of the same grid (:func:`pool_flow`).
    """
    if predicted.shape[1] != 2 or predicted.shape != target.shape:
        raise ValueError(f"flow regression: predictions {tuple(predicted.shape)} and target "
                         f"{tuple(target.shape)} must both be (B, 2, t, h, w): is the flow "
                         f"head (the adapter of output {FLOW_OUTPUT!r}) missing?")
    error = predicted.float() - target.float()
    return (error.pow(2).sum(1) + EPS).sqrt().mean()


def flow_regression_loss(predicted: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The EPE of the head's predictions against the clip's ``flow`` pooled to their grid."""
    return endpoint_error(predicted, pool_flow(flow, tuple(predicted.shape[2:])))


class FlowHead(nn.Module):
    """BatchNorm, then a 1x1x1 convolution from a layer's channels to flow's (x, y).

    The normalisation is the adapters' (``training/adapters.py``): a projection's SGD
    step grows with its input's energy, and raw post-ReLU maps vary widely in scale
    between layers and families.
    """

    def __init__(self, in_channels: int):
        super().__init__()
        self.norm = nn.BatchNorm3d(in_channels)
        self.proj = nn.Conv3d(in_channels, 2, kernel_size=1)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:  # (B, C, t, h, w) -> (B, 2, t, h, w)
        return self.proj(self.norm(maps))


def build_flow_head(model: nn.Module, layer: str, clip_len: int, crop_size: int,
                    device: torch.device | str = "cpu") -> FlowHead:
    """The head for ``model``'s ``layer`` maps (their width read from one forward on
    clips of the training size)."""
    clips = torch.zeros(2, model.in_channels, clip_len, crop_size, crop_size, device=device)
    channels = output_shapes(model, clips, (layer,))[layer][0]
    return FlowHead(channels).to(device)
