"""Clip samplers and transforms: indices, crops, flips and normalization, exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mars_action.data.sampling import (
    AllClips,
    CenterClip,
    EvenClips,
    RandomClip,
    all_clip_starts,
    clip_indices,
)
from mars_action.data.transforms import (
    POSITIONS,
    RGB_MEAN,
    SCALES,
    ClipPlan,
    CropBox,
    EvalTransform,
    TrainTransform,
    corner_box,
    crop_resize,
    decode_reduction,
    normalize,
    sample_corner_box,
)

# --- samplers ---------------------------------------------------------------


def test_random_clip_is_consecutive_and_inside_the_video():
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        indices = RandomClip(16)(100, rng)
        assert indices.shape == (16,)
        assert np.array_equal(np.diff(indices), np.ones(15))
        assert 0 <= indices[0] and indices[-1] <= 99
        starts.add(int(indices[0]))
    assert min(starts) == 0 and max(starts) == 84  # every start 0..84 is reachable
    assert len(starts) > 60


def test_random_clip_loops_when_the_video_is_short():
    indices = RandomClip(16)(5, np.random.default_rng(0))
    assert indices.tolist() == [0, 1, 2, 3, 4] * 3 + [0]


def test_stride_spreads_the_clip():
    indices = RandomClip(4, stride=3)(10, np.random.default_rng(1))
    assert indices.tolist() == [0, 3, 6, 9]  # span 10 = the whole video: start 0
    assert clip_indices(2, 7, 4, stride=2).tolist() == [2, 4, 6, 1]


def test_all_clips_are_non_overlapping_and_drop_the_tail():
    clips = AllClips(16)(70, None)
    assert clips.shape == (4, 16)
    assert clips[:, 0].tolist() == [0, 16, 32, 48]
    assert len(np.unique(clips)) == 64
    assert all_clip_starts(10, 16).tolist() == [0]  # shorter than a clip: one looped clip
    assert AllClips(16)(10, None)[0].tolist() == [*range(10), *range(6)]


def test_even_and_center_clips():
    clips = EvenClips(16, num_clips=3)(116, None)
    assert clips[:, 0].tolist() == [17, 50, 83]  # centres at 1/6, 3/6, 5/6 of 0..100
    assert CenterClip(16)(116, None)[0] == 50
    assert CenterClip(16)(8, None).tolist() == [*range(8), *range(8)]


# --- crops ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("position", "corner"),
    [("c", (19, 59)), ("tl", (0, 0)), ("tr", (0, 119)), ("bl", (39, 0)), ("br", (39, 119))],
)
def test_corner_box_positions(position, corner):
    box = corner_box(240, 320, 2**-0.25, position)
    assert box.size == int(240 * 2**-0.25) == 201
    assert (box.top, box.left) == corner


def test_sampled_boxes_cover_every_scale_and_position():
    rng = np.random.default_rng(0)
    boxes = {sample_corner_box(256, 340, rng) for _ in range(400)}
    sizes = {box.size for box in boxes}
    assert sizes == {int(256 * s) for s in SCALES} == {256, 215, 181, 152, 128}
    # 5 scales x 5 positions, except that at scale 1 tl = bl and tr = br (full height)
    assert len(boxes) == len(SCALES) * len(POSITIONS) - 2
    for box in boxes:
        assert box.top >= 0 and box.left >= 0
        assert box.top + box.size <= 256 and box.left + box.size <= 340


def test_crop_resize_takes_exactly_the_box():
    frames = np.random.default_rng(0).integers(0, 255, (3, 40, 60, 3), dtype=np.uint8)
    same = crop_resize(frames, CropBox(5, 7, 20), 20)
    assert np.array_equal(same, frames[:, 5:25, 7:27])
    flow = frames[..., :2]
    assert crop_resize(flow, CropBox(0, 0, 10), 30).shape == (3, 30, 30, 2)
    assert np.array_equal(crop_resize(frames[:, :, ::-1], CropBox(0, 0, 40), 20)[:, :, ::-1],
                          crop_resize(frames, CropBox(0, 20, 40), 20))


@pytest.mark.parametrize("size", [256, 215, 181, 152, 128, 100])
def test_crop_resize_matches_the_released_codes_pil_bilinear(size):
    image_module = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(size)
    smooth = rng.integers(0, 256, (2, 34, 44, 3), dtype=np.uint8)
    # (2, 256, 340, 3) smooth frames
    frames = np.stack([image_module.fromarray(f).resize((340, 256)) for f in smooth])
    box = CropBox(0, 340 - size, size)
    ours = crop_resize(frames, box, 112)
    assert ours.shape == (2, 112, 112, 3) and ours.dtype == np.uint8
    for frame, out in zip(frames, ours, strict=True):
        crop = image_module.fromarray(frame).crop((340 - size, 0, 340, size))
        expected = np.asarray(crop.resize((112, 112), image_module.BILINEAR)).astype(int)
        assert np.abs(out.astype(int) - expected).max() <= 1


# --- flips and normalization -------------------------------------------------


def test_flow_flip_mirrors_and_negates_x_like_255_minus_code():
    codes = np.random.default_rng(0).integers(0, 256, (2, 4, 5, 2), dtype=np.uint8)
    flipped = normalize("flow", codes, flow_scale=0.5, flip=True)
    released = codes[:, :, ::-1].copy()  # the released code: mirror, then x -> 255 - x
    released[..., 0] = 255 - released[..., 0]
    assert torch.equal(flipped, normalize("flow", released, flow_scale=0.5))
    rgb = codes[..., [0, 1, 1]]
    flipped_rgb = normalize("rgb", rgb, flip=True)
    assert torch.equal(flipped_rgb, normalize("rgb", rgb).flip(-1))  # RGB is only mirrored


def test_normalization_matches_the_released_code():
    rgb = np.full((2, 3, 3, 3), 200, dtype=np.uint8)
    out = normalize("rgb", rgb)
    assert out.shape == (3, 2, 3, 3) and out.dtype == torch.float32
    for c in range(3):
        assert torch.allclose(out[c], torch.tensor(200 - RGB_MEAN[c]))
    codes = np.array([0, 127, 255], dtype=np.uint8).reshape(1, 1, 3, 1).repeat(2, axis=3)
    flow = normalize("flow", codes, flow_scale=2.0)
    assert flow.shape == (2, 1, 1, 3)
    assert flow[0, 0, 0].tolist() == [-255.0, -1.0, 255.0]


def _sample(h=48, w=64, t=4, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    # flow made of the rgb's first two channels: identical pixels show identical crops
    return {"rgb": rgb, "flow": rgb[..., :2].copy()}


def test_train_transform_gives_rgb_and_flow_the_same_crop_and_flip():
    clips = _sample()
    flips = 0
    for seed in range(20):
        transform = TrainTransform(crop_size=16, scale_vectors=False)  # codes as stored
        out = transform(clips, np.random.default_rng(seed))
        assert out["rgb"].shape == (3, 4, 16, 16) and out["flow"].shape == (2, 4, 16, 16)
        rgb_y = out["rgb"][1] + RGB_MEAN[1]  # the source of flow y, unflipped values
        flow_y = out["flow"][1] + 127.5
        assert torch.allclose(rgb_y, flow_y, atol=1e-3)  # same crop, same flip
        rgb_x = out["rgb"][0] + RGB_MEAN[0]
        flow_x = out["flow"][0] + 127.5
        if torch.allclose(flow_x, 255 - rgb_x, atol=1e-3):
            flips += 1
        else:
            assert torch.allclose(flow_x, rgb_x, atol=1e-3)
    assert 4 <= flips <= 16  # p = 0.5


@pytest.mark.parametrize("side", [16, 32, 24])
def test_flow_vectors_are_scaled_into_pixels_of_the_network_input(side):
    """A crop of ``side`` store pixels resized to 16: vectors times 16 / side (a uniform
    field stays uniform through the resize, so the factor is exact)."""
    codes = np.full((4, 40, 40, 2), (147, 117), np.uint8)  # (+20, -10.5) code units
    clips = {"flow": codes}
    transform = TrainTransform(16, scales=[side / 40], positions=["c"], flip_prob=0.0)
    scaled = transform(clips, np.random.default_rng(0))["flow"]  # (2, T, 16, 16)
    raw = TrainTransform(16, scales=[side / 40], positions=["c"], flip_prob=0.0,
                         scale_vectors=False)(clips, np.random.default_rng(0))["flow"]
    assert torch.allclose(raw[0], torch.tensor(19.5))
    assert torch.allclose(raw[1], torch.tensor(-10.5))
    assert torch.allclose(scaled, raw * 16 / side, atol=1e-5)
    centre = EvalTransform(16)(clips)["flow"]  # the whole 40 px short side -> 16
    assert torch.allclose(centre, raw * 16 / 40, atol=1e-5)


def test_eval_transform_is_the_central_square():
    clips = _sample(h=30, w=50)
    out = EvalTransform(crop_size=30)(clips)
    expected = clips["rgb"][:, :, 10:40].transpose(3, 0, 1, 2).astype(np.float32)
    expected -= np.array(RGB_MEAN, dtype=np.float32).reshape(3, 1, 1, 1)
    assert np.allclose(out["rgb"].numpy(), expected)


def test_modalities_of_different_sizes_are_refused():
    clips = {"rgb": np.zeros((2, 8, 8, 3), np.uint8), "flow": np.zeros((2, 8, 9, 2), np.uint8)}
    with pytest.raises(ValueError, match="different frame sizes"):
        EvalTransform(4)(clips)


# --- reading only the crop ----------------------------------------------------


def test_decode_reduction_and_snapping_to_the_reduced_grid():
    assert decode_reduction(256, 112) == 2 and decode_reduction(215, 112) == 2
    assert decode_reduction(203, 112) == 1 and decode_reduction(181, 112) == 1
    assert decode_reduction(128, 32) == 4 and decode_reduction(40, 112) == 1
    assert EvalTransform(112).plan(256, 341) == ClipPlan(CropBox(0, 42, 256), False, 2)
    rng = np.random.default_rng(0)
    right = TrainTransform(112, scales=[1.0], positions=["tr"], flip_prob=0.0)
    assert right.plan(256, 341, rng) == ClipPlan(CropBox(0, 84, 256), False, 2)  # 85 -> 84
    exact = TrainTransform(112, scales=[1.0], positions=["tr"], flip_prob=0.0, reduced_decode=False)
    assert exact.plan(256, 341, rng) == ClipPlan(CropBox(0, 85, 256), False, 1)
    small = TrainTransform(112, scales=[2**-0.5], positions=["br"], flip_prob=1.0)
    assert small.plan(256, 341, rng) == ClipPlan(CropBox(75, 160, 181), True, 1)
    enlarged = TrainTransform(112, scales=[2**-0.25], positions=["br"], flip_prob=1.0)
    assert enlarged.plan(256, 341, rng) == ClipPlan(CropBox(40, 126, 214), True, 2)


@pytest.mark.parametrize("transform", [TrainTransform(16), EvalTransform(16, scale=0.5)])
def test_finishing_read_crops_equals_the_transform_on_whole_frames(transform):
    clips = _sample()
    for seed in range(6):
        whole = transform(clips, np.random.default_rng(seed))
        plan = transform.plan(48, 64, np.random.default_rng(seed))
        top, left, size = plan.box
        crops = {m: f[:, top : top + size, left : left + size].copy() for m, f in clips.items()}
        finished = transform.finish(crops, plan)
        assert all(torch.equal(whole[m], finished[m]) for m in clips)
