"""The interface every backbone family shares, written once.

A family (X3D, R(2+1)D, MobileNetV2-3D) only defines ``forward_stages`` (the
``layer3`` and ``layer4`` maps) and its pooled feature; the training loop, the
distillation losses, feature extraction and export then need no special cases.
Top-level children follow ``ResNet3d``'s names where they mean the same thing
(``stem``/``conv1``, ``layer1``..``layer4``, an optional ``head`` before the classifier,
``fc``) so fine-tuning by ``ft_begin_index`` works on every family.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Feature names a caller can ask for (as ``ResNet3d``'s): two maps, the pooled
# feature the classifier reads, the logits.
FEATURE_NAMES = ("layer3", "layer4", "pooled", "logits")


class Backbone(nn.Module):
    """Base of every family (``ResNet3d`` too): pooling, classifier and named outputs.

    Subclasses set ``in_channels``, ``num_classes``, ``num_features`` and ``fc`` and
    implement :meth:`forward_stages`; :meth:`pool` may add work after pooling (X3D's
    projection to 2048 channels).
    """

    in_channels: int
    num_classes: int
    num_features: int
    feature_names: tuple[str, ...] = FEATURE_NAMES  # what forward_with_features can return

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"layer3": map, "layer4": last map before pooling}`` of a (B, C, T, H, W) clip."""
        raise NotImplementedError

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F, t, h, w) map -> (B, num_features): a global average by default."""
        return torch.flatten(F.adaptive_avg_pool3d(features, 1), 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last map before pooling, used by class activation maps."""
        return self.forward_stages(x)["layer4"]

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool a ``layer4`` map and classify it (or stop at the pooled vector)."""
        pooled = self.pool(features)
        return pooled if pre_logits else self.fc(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) clips -> (B, num_classes) logits, through the two halves that
        class activation maps and feature extraction call on their own."""
        return self.forward_head(self.forward_features(x))

    def forward_with_features(
        self, x: torch.Tensor, names: Sequence[str] = ("pooled",)
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits plus the named intermediate outputs (see ``FEATURE_NAMES``)."""
        unknown = [n for n in names if n not in self.feature_names]
        if unknown:
            raise ValueError(
                f"unknown feature name(s) {unknown}; choose from {self.feature_names}"
            )
        stages = self.forward_stages(x)
        pooled = self.pool(stages["layer4"])
        logits = self.fc(pooled)
        available = {**stages, "pooled": pooled, "logits": logits}
        return logits, {name: available[name] for name in names}

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised classifier (fine-tuning to another class set)."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def get_classifier(self) -> nn.Module:
        """The head on the pooled feature (timm's interface): MERS trains it alone and
        may start it as a copy of the teacher's."""
        return self.fc


def classifier(num_features: int, num_classes: int) -> nn.Module:
    """``fc``: a linear layer, or nothing for a feature extractor (``num_classes`` 0)."""
    return nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()


def init_weights(model: nn.Module) -> None:
    """Kaiming normal (fan-out) for convs, BN weight 1 and bias 0 (as ``ResNet3d``)."""
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm3d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def conv_bn(in_ch: int, out_ch: int, kernel, stride=1, groups: int = 1) -> nn.Sequential:
    """Conv3d (no bias, 'same' padding) then BatchNorm: folds at export (Sequential pair)."""
    kernel = (kernel,) * 3 if isinstance(kernel, int) else tuple(kernel)
    padding = tuple(k // 2 for k in kernel)
    conv = nn.Conv3d(in_ch, out_ch, kernel, stride=stride, padding=padding, groups=groups,
                     bias=False)
    return nn.Sequential(conv, nn.BatchNorm3d(out_ch))
