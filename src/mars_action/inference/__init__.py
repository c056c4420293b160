"""Flow-free recognition of files and live streams, export, latency.

    from mars_action.inference import Recognizer
    recognizer = Recognizer.from_checkpoint("runs/mars/checkpoints/best.pt")
    prediction = recognizer.predict("video.mp4", topk=5)
    print(prediction.topk, [(c.start, c.end, c.topk[0]) for c in prediction.clips])
"""

from mars_action.inference.export import (
    export_model,
    load_exported,
    max_abs_difference,
    read_exported_meta,
)
from mars_action.inference.prediction import ClipPrediction, Prediction, VideoFailure
from mars_action.inference.preprocess import Preprocessing
from mars_action.inference.recognizer import Recognizer
from mars_action.inference.stream import WindowPrediction, stream_windows

__all__ = [
    "ClipPrediction",
    "Prediction",
    "Preprocessing",
    "Recognizer",
    "VideoFailure",
    "WindowPrediction",
    "export_model",
    "load_exported",
    "max_abs_difference",
    "read_exported_meta",
    "stream_windows",
]
