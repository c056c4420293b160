"""Video-level evaluation, score fusion, the paper's analyses and figures.

The score file (``.npz`` + ``.json`` summary) is described in
:mod:`mars_action.evaluation.scores`; ``mars eval`` writes it, ``mars fuse``,
``mars analyze`` and ``mars report`` read it.
"""

from mars_action.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "mars_action.evaluation.evaluate": ("evaluate", "score_views", "spatial_crops"),
        "mars_action.evaluation.fusion": ("align", "format_table", "fuse", "stream_table"),
        "mars_action.evaluation.metrics": (
            "clip_accuracy",
            "mean_class_accuracy",
            "per_class_accuracy",
            "summarize",
            "topk_accuracy",
        ),
        "mars_action.evaluation.scores": ("VideoScores", "load_scores", "save_scores"),
    },
)
