"""The training and validation sets of a config, from the data stage's builders."""

from __future__ import annotations

from torch.utils.data import Dataset

from mars_action.data import load_annotations, make_dataset
from mars_action.data.builder import check_data
from mars_action.training.config import DataConfig


def build_datasets(data: DataConfig, modalities: tuple[str, ...]) -> tuple[Dataset, Dataset | None]:
    """(train, val) clip datasets with the ``modalities`` the run reads ("rgb", "flow").

    Annotations are parsed once for both splits. ``val`` is None when the split
    holds no video (``val_fraction`` 0): the run then selects on training accuracy.
    """
    annotations = load_annotations(
        data.format,
        data.root,
        data.annotations,
        fold=data.fold,
        val_fraction=data.val_fraction,
        seed=data.seed,
        use_test_as_val=data.use_test_as_val,
    )
    check_data(annotations, data.strict)
    common = {
        "modality": "+".join(modalities),
        "clip_len": data.clip_len,
        "crop_size": data.crop_size,
        "root": data.root,
        "frame_root": data.frame_root,
        "flow_root": data.flow_root,
        "stride": data.stride,
        "flow_prefix": data.flow_prefix,
        "flow_scale": data.flow_scale,
        "scale_flow_vectors": data.scale_flow_vectors,
        "fps": data.fps,
        "short_side": data.short_side,
        "on_missing": data.on_missing,
    }
    train = make_dataset(
        annotations, "train", clips="random", augment=True, flip=data.flip, **common
    )
    if data.crop_scales:
        train.transform.scales = tuple(data.crop_scales)
    if not annotations.split("val"):
        return train, None
    return train, make_dataset(annotations, "val", clips="center", augment=False, **common)
