"""Video-level evaluation, score fusion, the paper's analyses and figures.

The score file (``.npz`` + ``.json`` summary) is described in
:mod:`mars_action.evaluation.scores`; ``mars eval`` writes it, ``mars fuse``,
``mars analyze`` and ``mars report`` read it.
"""

from mars_action.evaluation.evaluate import evaluate, score_views, spatial_crops
from mars_action.evaluation.fusion import align, format_table, fuse, stream_table
from mars_action.evaluation.metrics import (
    clip_accuracy,
    mean_class_accuracy,
    per_class_accuracy,
    summarize,
    topk_accuracy,
)
from mars_action.evaluation.scores import VideoScores, load_scores, save_scores

__all__ = [
    "VideoScores",
    "align",
    "clip_accuracy",
    "evaluate",
    "format_table",
    "fuse",
    "load_scores",
    "mean_class_accuracy",
    "per_class_accuracy",
    "save_scores",
    "score_views",
    "spatial_crops",
    "stream_table",
    "summarize",
    "topk_accuracy",
]
