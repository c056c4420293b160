"""Late fusion: equal and weighted means, alignment, Table 1 rows, mismatch errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mars_action.errors import MarsError
from mars_action.evaluation import VideoScores, format_table, fuse, stream_table
from mars_action.evaluation.fusion import streams_by_name

IDS = ["v0", "v1", "v2", "v3"]
LABELS = [0, 1, 2, 0]
CLASSES = ["run", "jump", "swim"]
# Hand-made so every row of Table 1 has a known top-1 (see the comments).
RGB = [[2, 1, 0], [0, 1, 3], [0, 0, 1], [0, 2, 1]]  # right: v0, v2 -> 50%
FLOW = [[0, 1, 0], [0, 3, 0], [1, 0, 0], [3, 0, 0]]  # right: v1, v3 -> 50%
MERS = [[0, 1, 0], [0, 3, 0], [0, 0, 1], [3, 0, 0]]  # right: v1, v2, v3 -> 75%
MARS = [[5, 0, 0], [0, 5, 0], [0, 0, 5], [5, 0, 0]]  # all right -> 100%


def scores(stream, values, ids=IDS, labels=LABELS, classes=CLASSES, aggregate="logits"):
    return VideoScores(ids, labels, np.array(values, dtype=np.float32), classes, stream,
                       aggregate=aggregate)


def test_equal_fusion_is_the_mean():
    fused = fuse([scores("rgb", RGB), scores("flow", FLOW)])
    np.testing.assert_allclose(fused.scores, (np.array(RGB) + np.array(FLOW)) / 2)
    assert fused.stream == "rgb+flow" and fused.video_ids == IDS
    assert fused.info == {"fused_from": ["rgb", "flow"], "weights": [1.0, 1.0]}


def test_weighted_fusion():
    fused = fuse([scores("rgb", RGB), scores("flow", FLOW)], weights=[3, 1])
    np.testing.assert_allclose(fused.scores, (3 * np.array(RGB) + np.array(FLOW)) / 4)
    with pytest.raises(MarsError, match="2 weights given for 3 score files"):
        fuse([scores("rgb", RGB)] * 3, weights=[1, 1])
    with pytest.raises(MarsError, match="non-negative with a positive sum"):
        fuse([scores("rgb", RGB), scores("flow", FLOW)], weights=[1, -1])


def test_fusion_aligns_videos_by_id():
    reordered = scores("flow", FLOW[::-1], ids=IDS[::-1], labels=LABELS[::-1])
    fused = fuse([scores("rgb", RGB), reordered])
    np.testing.assert_allclose(fused.scores, (np.array(RGB) + np.array(FLOW)) / 2)


def test_table1_rows_and_values():
    streams = {"rgb": scores("rgb", RGB), "flow": scores("flow", FLOW),
               "mers": scores("mers", MERS), "mars": scores("mars", MARS)}
    rows = stream_table(streams)
    names = [None if r is None else r["name"] for r in rows]
    assert names == ["RGB", "Flow", "RGB+Flow", None, "MERS", "MERS+RGB", "MERS+Flow",
                     "MERS+RGB+Flow", None, "MARS", "MARS+RGB", "MARS+Flow", "MARS+RGB+Flow"]
    top1 = {r["name"]: r["top1"] for r in rows if r is not None}
    assert top1["RGB"] == 50 and top1["Flow"] == 50 and top1["MERS"] == 75
    assert top1["MARS"] == 100
    # RGB+Flow means: v0 [1, 1, 0] (tie -> class 0, right), v1 [0, 2, 1.5] right,
    # v2 [.5, 0, .5] (tie -> class 0, wrong), v3 [1.5, 1, .5] right.
    assert top1["RGB+Flow"] == 75
    text = format_table(rows)
    assert text.splitlines()[0].startswith("Stream") and "MARS+RGB+Flow" in text
    assert "\n\n" in text  # blank lines between the groups, as the paper


def test_table1_keeps_only_available_rows():
    rows = stream_table({"rgb": scores("rgb", RGB), "mars": scores("mars", MARS)})
    assert [r and r["name"] for r in rows] == ["RGB", None, "MARS", "MARS+RGB"]


def test_mismatched_classes_videos_labels_and_aggregates_are_named():
    rgb = scores("rgb", RGB)
    other_classes = scores("flow", FLOW, classes=["run", "jump", "dive"])
    with pytest.raises(MarsError, match=r"b.npz: class list differs from a.npz .*#2: 'swim'"):
        fuse([rgb, other_classes], names=["a.npz", "b.npz"])
    fewer = scores("flow", FLOW[:3], ids=IDS[:3], labels=LABELS[:3])
    with pytest.raises(MarsError, match=r"video set differs .*1 video \(v3\) only in a.npz"):
        fuse([rgb, fewer], names=["a.npz", "b.npz"])
    relabelled = scores("flow", FLOW, labels=[0, 1, 2, 1])
    with pytest.raises(MarsError, match=r"labels differ from a.npz for 1 video \(v3: 0 vs 1\)"):
        fuse([rgb, relabelled], names=["a.npz", "b.npz"])
    softmax = scores("flow", FLOW, aggregate="softmax")
    with pytest.raises(MarsError, match="softmax averages but a.npz's are logits"):
        fuse([rgb, softmax], names=["a.npz", "b.npz"])


def test_streams_by_name_refuses_two_files_of_one_stream():
    a, b = scores("rgb", RGB), dataclasses.replace(scores("rgb", FLOW))
    with pytest.raises(MarsError, match="two score files for stream 'rgb': a.npz and b.npz"):
        streams_by_name([a, b], ["a.npz", "b.npz"], [None, None])
    named = streams_by_name([a, b], ["a.npz", "b.npz"], [None, "flow"])
    assert list(named) == ["rgb", "flow"]
