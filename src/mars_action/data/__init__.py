"""Annotations, clip sampling, transforms and datasets (and the synthetic motion dataset).

The usual entry point::

    from mars_action.data import build_dataset, loader_kwargs
    train = build_dataset("ucf101", "data/UCF101", None, "train", "rgb+flow", 16, 112,
                          frame_root="frames/UCF101")
    loader = DataLoader(train, batch_size=16, shuffle=True, num_workers=4,
                        **loader_kwargs(seed=0))

Builder signature (``mars_action.data.builder``)::

    build_dataset(
        format: str,                       # ucf101 | hmdb51 | kinetics | minikinetics |
                                           # sthsth-v1 | folder | manifest
        root: str | Path | None,           # videos: <root>/<class>/<video>.<ext>
        annotations: str | Path | None,    # annotation file or folder (see load_annotations)
        split: str,                        # "train" | "val" | "test"
        modality: str = "rgb",             # "rgb" | "flow" | "rgb+flow"
        clip_len: int = 16,
        crop_size: int = 112,
        *,
        frame_root: str | Path | None = None,  # frame store; None -> RGB decoded from root
        fold: int = 1,                     # UCF101 / HMDB51 split number
        val_fraction: float = 0.1,         # held out of train, stratified, seeded
        seed: int = 0,                     # seed of that held-out draw
        use_test_as_val: bool = False,     # released code's behaviour: val = test split
        clips: str | int | None = None,    # "random" (train default) | "center" |
                                           # "all" (val/test default) | N evenly spaced
        augment: bool | None = None,       # multi-scale corner crop + flip; default: train
        stride: int = 1,                   # temporal stride inside a clip
        flow_prefix: str = "TVL1jpg_",     # flow method in the frame store
        flow_scale: float = 1.0,           # flow = (code - 127.5) * flow_scale
        fps: float = 25.0,                 # decoding from video files only
        short_side: int = 256,             # decoding from video files only
        on_missing: str = "error",         # empty/missing frame folders: "error" | "skip"
    ) -> ClipDataset

``load_annotations(format, root, annotations, *, fold, val_fraction, seed,
use_test_as_val) -> Annotations`` and ``make_dataset(annotations, split, ...)``
split that in two, to parse once and build several splits.

Items (``ClipDataset.__getitem__``):

- ``clips="random"`` or ``"center"``: ``{"rgb": float32 (3, T, H, W), "flow":
  float32 (2, T, H, W), "label": int, "video_id": str}``, only the modalities
  asked for, same crop and flip for both. Default collate -> ``(B, C, T, H, W)``.
- ``clips="all"`` or N: the clips of one video, ``{"rgb"|"flow": (K, C, T, H, W),
  "label", "video_id"}``; batch with ``batch_size=1`` or :func:`collate_videos`.

Splits: ``train``; ``val`` held out of train (whole groups for UCF101); ``test``
is the official test list (UCF101/HMDB51) or the official validation set
(Kinetics, MiniKinetics, Something-Something v1, whose test labels are not
public). The test split is never used for model selection unless
``use_test_as_val=True``.

Normalization: RGB 0-255 minus the ActivityNet mean, flow codes minus 127.5,
std 1 (the released code's).

Speed: with ``TrainTransform`` / ``EvalTransform`` an item's crop is drawn first and
only the crop is copied out of each decoded frame; a crop at least twice
``crop_size`` (scale 1 of the training scales, every test centre crop) is decoded
from the JPEGs at half size (libjpeg DCT scaling: about half the decoding time, a
mean difference under one grey level on UCF101 frames, the crop snapped to even
pixels). ``TrainTransform(..., reduced_decode=False)`` decodes at full size.

``ClipDataset`` also exposes ``class_names``, ``records``, ``labels``, ``modalities``.
"""

from mars_action.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "mars_action.data.builder": (
            "FORMATS",
            "build_dataset",
            "load_annotations",
            "make_dataset",
        ),
        "mars_action.data.datasets": (
            "ClipDataset",
            "collate_videos",
            "loader_kwargs",
            "sample_rng",
            "seed_worker",
        ),
        "mars_action.data.records": ("SPLITS", "Annotations", "VideoRecord"),
        "mars_action.data.resolve": ("hold_out_val", "resolve_videos"),
        "mars_action.data.sampling": ("AllClips", "CenterClip", "EvenClips", "RandomClip"),
        "mars_action.data.sources": ("FrameStoreSource", "VideoFileSource"),
        "mars_action.data.transforms": (
            "FLOW_CENTER",
            "POSITIONS",
            "RGB_MEAN",
            "SCALES",
            "EvalTransform",
            "TrainTransform",
        ),
    },
)
