"""Flow-free recognition of files and live streams, export, latency.

from mars_action.inference import Recognizer
recognizer = Recognizer.from_checkpoint("runs/mars/checkpoints/best.pt")
prediction = recognizer.predict("video.mp4", topk=5)
print(prediction.topk, [(c.start, c.end, c.topk[0]) for c in prediction.clips])
"""

from mars_action.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "mars_action.inference.export": (
            "export_model",
            "load_exported",
            "max_abs_difference",
            "read_exported_meta",
        ),
        "mars_action.inference.prediction": ("ClipPrediction", "Prediction", "VideoFailure"),
        "mars_action.inference.preprocess": ("Preprocessing",),
        "mars_action.inference.recognizer": ("Recognizer",),
        "mars_action.inference.stream": ("WindowPrediction", "stream_windows"),
    },
)
