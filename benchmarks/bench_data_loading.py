"""Training-clip loading speed of one worker at 16x112x112: our datasets vs a per-frame PIL loader.

A small frame store is built in a temporary folder from UCF101-subset clips (decoded
with ``mars_action.video`` at 25 fps, short side 256; flow fields from OpenCV
Farneback quantized with ``mars_action.flow.quantize``, stored as the frame store's
``TVL1jpg_`` JPEGs), or from synthetic frames when the subset is absent. In one
single-threaded process - what one DataLoader worker does - it then times training
clips (random start, multi-scale corner crop, flip, normalization) from:

- ``rgb``: the frame store, RGB (``ClipDataset`` + ``FrameStoreSource``): only the
  crop is decoded into the clip, at half size when the crop is >= 2x the output;
- ``rgb_full_decode``: the same with ``TrainTransform(reduced_decode=False)``;
- ``rgb+flow``: the frame store, RGB and flow with the same crop and flip;
- ``rgb_mp4``: RGB decoded straight from the mp4 files (``VideoFileSource``);
- ``flow`` / ``flow_packed``: flow alone from the frame store's two JPEGs a pair, and
  from one pack file a video (``mars flow --packed``, ``PackedFlowSource``): the same
  JPEG planes behind an offset table; ``storage`` gives files and bytes per video;
- ``pil_rgb`` / ``pil_rgb+flow``: the released code's way, per frame: open the
  JPEG with PIL, convert, crop, resize (bilinear), to tensor, normalize, stack.

``breakdown_ms_per_clip`` times the stages of one 16-frame clip alone, to show where
the time goes (JPEG decoding, mostly).

    python benchmarks/bench_data_loading.py [--videos 6] [--clips 12] [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from harness import time_call, write_result
from PIL import Image, ImageOps

from mars_action.data import (
    ClipDataset,
    FrameStoreSource,
    RandomClip,
    TrainTransform,
    VideoFileSource,
    VideoRecord,
)
from mars_action.data.packed_source import PackedFlowSource
from mars_action.data.sampling import random_start
from mars_action.data.transforms import (
    FLOW_CENTER,
    RGB_MEAN,
    CropBox,
    corner_box,
    crop_resize,
    normalize,
    resize_clip,
    sample_corner_box,
)
from mars_action.flow.packed import pack_name, write_pack
from mars_action.flow.quantize import quantize
from mars_action.video import framestore
from mars_action.video.decode import decode_video

SUBSET = Path(
    os.environ.get(
        "MARS_UCF101_SUBSET", Path(__file__).resolve().parents[2] / "shared/data/ucf101-subset"
    )
)
CLIP_LEN, CROP = 16, 112


def source_videos(count: int, max_frames: int) -> list[tuple[str, np.ndarray, Path | None]]:
    """(name, frames (T, 256, W, 3), mp4 path) of real clips, else synthetic ones (no mp4)."""
    clips = sorted(SUBSET.glob("*/*.mp4"))[:: max(1, 197 // max(count, 1))][:count]
    if clips:
        return [(c.stem, decode_video(c)[:max_frames], c) for c in clips]
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (256, 400, 3), dtype=np.uint8)
    frames = np.stack([np.roll(texture, 3 * t, axis=1)[:, :340] for t in range(max_frames)])
    return [(f"synthetic{i}", frames, None) for i in range(count)]


def build_store(root: Path, videos) -> list[VideoRecord]:
    """Write RGB + Farneback flow of each video as ``<root>/bench/<name>/``.

    The same flow also goes, packed, to ``<root>/packs/bench/<name>.TVL1jpg_pack``.
    """
    records = []
    for name, frames, _ in videos:
        folder = root / "bench" / name
        framestore.write_frames(folder, frames)
        gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        images, fields = [], []
        for i in range(len(frames) - 1):
            flow = cv2.calcOpticalFlowFarneback(
                gray[i], gray[i + 1], None, 0.5, 3, 15, 3, 5, 1.2, 0
            )
            fields.append(flow)
            codes = quantize(flow)  # (H, W, 2) uint8
            x_name, y_name = framestore.flow_names(i)
            images += [(x_name, codes[..., 0]), (y_name, codes[..., 1])]
        framestore.write_jpegs_atomic(folder, images)
        write_pack(root / "packs" / "bench" / pack_name(name, "TVL1jpg_"), fields, {})
        records.append(VideoRecord(name, f"bench/{name}", 0, "train"))
    return records


def flow_storage(root: Path, records) -> dict[str, float]:
    """Mean files and bytes of one video's flow: JPEG pairs in the store against one pack."""
    jpeg = [p for r in records for p in (root / r.path).glob("TVL1jpg_[xy]_*.jpg")]
    packs = list((root / "packs").rglob("*.TVL1jpg_pack"))
    count = len(records)
    return {
        "jpeg_files": len(jpeg) / count,
        "jpeg_bytes": sum(p.stat().st_size for p in jpeg) / count,
        "packed_files": len(packs) / count,
        "packed_bytes": sum(p.stat().st_size for p in packs) / count,
    }


def ours(records, source, reduced_decode: bool = True) -> ClipDataset:
    transform = TrainTransform(CROP, reduced_decode=reduced_decode)
    return ClipDataset(records, ["bench"], source, RandomClip(CLIP_LEN), transform)


def pil_clip(folder: Path, modalities: tuple[str, ...], num_frames: int, rng) -> dict:
    """The released code's loader, step by step: one PIL image per frame and per flow axis."""
    start = random_start(num_frames, CLIP_LEN, rng)
    with Image.open(folder / "00001.jpg") as first:
        width, height = first.size
    top, left, size = sample_corner_box(height, width, rng)
    flip = rng.random() < 0.5
    box = (left, top, left + size, top + size)

    def load(name: str, mode: str, invert: bool = False) -> torch.Tensor:
        with Image.open(folder / name) as image:
            image = image.convert(mode)  # decode + copy
        image = image.crop(box).resize((CROP, CROP), Image.BILINEAR)  # MultiScaleCornerCrop
        if flip:  # RandomHorizontalFlip; flow x is inverted too
            image = ImageOps.invert(ImageOps.mirror(image)) if invert else ImageOps.mirror(image)
        # ToTensor(norm_value=1): bytes -> ByteTensor -> (C, H, W) -> float / 1
        data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
        channels = len(image.getbands())
        tensor = data.view(CROP, CROP, channels).permute(2, 0, 1).contiguous()
        return tensor.float().div(1.0)

    def normalized(tensor: torch.Tensor, mean) -> torch.Tensor:  # Normalize(mean, std=1)
        for channel, value in zip(tensor, mean, strict=True):
            channel.sub_(value).div_(1.0)
        return tensor

    item = {}
    indices = range(start, start + CLIP_LEN)
    if "rgb" in modalities:
        frames = [normalized(load(framestore.rgb_name(i), "RGB"), RGB_MEAN) for i in indices]
        item["rgb"] = torch.stack(frames, 0).permute(1, 0, 2, 3)  # (3, T, H, W)
    if "flow" in modalities:
        fields = []
        for i in indices:
            x_name, y_name = framestore.flow_names(i)
            xy = torch.cat([load(x_name, "L", invert=True), load(y_name, "L")])  # (2, H, W)
            fields.append(normalized(xy, (FLOW_CENTER, FLOW_CENTER)))
        item["flow"] = torch.stack(fields, 0).permute(1, 0, 2, 3)  # (2, T, H, W)
    return item


def repeat(load_one, count: int):
    """A timed round: ``count`` clips, cycling over the videos."""

    def run() -> None:
        for k in range(count):
            load_one(k)

    return run


def pil_loader(root: Path, records, counts, modalities: tuple[str, ...]):
    rng = np.random.default_rng(0)

    def load_one(k: int) -> dict:
        v = k % len(records)
        return pil_clip(root / records[v].path, modalities, counts[v], rng)

    return load_one


def dataset_loader(data: ClipDataset):
    return lambda k: data[k % len(data)]


def breakdown(folder: Path) -> dict[str, float]:
    """Milliseconds per 16-frame clip of each stage alone (best of 20), ours and PIL's."""
    indices = range(CLIP_LEN)
    rgb = [folder / framestore.rgb_name(i) for i in indices]
    data = [np.frombuffer(path.read_bytes(), np.uint8) for path in rgb]
    frames = framestore.read_rgb(folder, indices)  # (T, H, W, 3)
    box = corner_box(*frames.shape[1:3], 2**-0.5, "c")  # a mid-size crop (181 px)
    crops = crop_resize(frames, box, box.size)  # (T, 181, 181, 3)
    small = resize_clip(crops, CROP)
    images = [Image.fromarray(frame) for frame in frames]
    stages = {
        "file_reads_rgb": lambda: [path.read_bytes() for path in rgb],
        "jpeg_decode_rgb": lambda: [cv2.imdecode(d, cv2.IMREAD_COLOR_RGB) for d in data],
        "read_rgb_whole_frames": lambda: framestore.read_rgb(folder, indices),
        "read_rgb_whole_frames_half_size": lambda: framestore.read_rgb(folder, indices, None, 2),
        "read_flow_xy_whole_frames": lambda: framestore.read_flow(folder, indices),
        "resize_rgb_181_to_112": lambda: resize_clip(crops, CROP),
        "flip_normalize_rgb": lambda: normalize("rgb", small, flip=True),
        "pil_open_convert_rgb": lambda: [_pil_open(path, "RGB") for path in rgb],
        "pil_crop_resize_rgb": lambda: [_pil_crop_resize(image, box) for image in images],
    }
    return {name: round(1000 * _best(fn), 3) for name, fn in stages.items()}


def _pil_crop_resize(image, box: CropBox):
    area = (box.left, box.top, box.left + box.size, box.top + box.size)
    return image.crop(area).resize((CROP, CROP), Image.BILINEAR)


def _pil_open(path: Path, mode: str):
    with Image.open(path) as image:
        return image.convert(mode)


def _best(fn, repeat: int = 20) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def speedups(clips_per_s: dict[str, float]) -> dict[str, float]:
    """Our loaders over the PIL loader of the same modalities (mp4 against PIL RGB frames)."""
    pairs = {
        "rgb": "pil_rgb",
        "rgb_full_decode": "pil_rgb",
        "rgb+flow": "pil_rgb+flow",
        "rgb_mp4": "pil_rgb",
    }
    return {
        ours_name: round(clips_per_s[ours_name] / clips_per_s[pil_name], 2)
        for ours_name, pil_name in pairs.items()
        if ours_name in clips_per_s
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--max-frames", type=int, default=100)
    parser.add_argument("--clips", type=int, default=12, help="clips per timed round")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    videos = source_videos(args.videos, args.max_frames)
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        root = Path(tmp)
        records = build_store(root, videos)
        counts = [len(frames) - 1 for _, frames, _ in videos]  # usable with flow
        loaders = {}
        for modality in ("rgb", "rgb+flow"):
            modalities = tuple(modality.split("+"))
            data = ours(records, FrameStoreSource(root, modalities))
            loaders[modality] = repeat(dataset_loader(data), args.clips)
            pil = pil_loader(root, records, counts, modalities)
            loaders[f"pil_{modality}"] = repeat(pil, args.clips)
            if modality == "rgb":
                exact = ours(records, FrameStoreSource(root, modalities), reduced_decode=False)
                loaders["rgb_full_decode"] = repeat(dataset_loader(exact), args.clips)
        flow_only = ours(records, FrameStoreSource(root, ("flow",)))
        loaders["flow"] = repeat(dataset_loader(flow_only), args.clips)
        packed = ours(records, PackedFlowSource(root / "packs", ("flow",)))
        loaders["flow_packed"] = repeat(dataset_loader(packed), args.clips)
        storage = flow_storage(root, records)
        mp4s = [(r, path) for r, (_, _, path) in zip(records, videos, strict=True) if path]
        if mp4s:
            mp4_records = [VideoRecord(r.video_id, str(p), 0, "train") for r, p in mp4s]
            data = ours(mp4_records, VideoFileSource("/"))
            loaders["rgb_mp4"] = repeat(dataset_loader(data), args.clips)
        torch.manual_seed(0)
        for fn in loaders.values():  # warm the page cache and lazy imports
            fn()
        # Rounds interleave the loaders so that load from other processes hits all alike.
        rounds = {name: [] for name in loaders}
        for _ in range(args.rounds):
            for name, fn in loaders.items():
                rounds[name].append(time_call(fn, warmup=0, repeat=1))
        stages = breakdown(root / records[0].path)

    # Median round, and best round (least disturbed by other processes on a shared machine).
    clips_per_s = {n: round(args.clips / statistics.median(t), 2) for n, t in rounds.items()}
    best_clips_per_s = {n: round(args.clips / min(t), 2) for n, t in rounds.items()}
    speedup = speedups(clips_per_s)
    figures = {
        "clips_per_s": clips_per_s,
        "speedup_vs_pil": speedup,
        "best_round_clips_per_s": best_clips_per_s,
        "best_round_speedup_vs_pil": speedups(best_clips_per_s),
        "breakdown_ms_per_clip": stages,
        "flow_storage_per_video": storage,
        "flow_packed_vs_jpeg_clips_per_s": round(
            clips_per_s["flow_packed"] / clips_per_s["flow"], 2
        ),
        "rounds": args.rounds,
        "clips_per_round": args.clips,
        "target_speedup": 2.0,
        "clip": f"{CLIP_LEN}x{CROP}x{CROP}",
        "videos": len(videos),
        "frame_size": list(videos[0][1].shape[1:3]),
        "source": "ucf101-subset" if mp4s else "synthetic",
        "threads": 1,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    summary = (
        "data loading (1 worker, 16x112x112 clips/s): "
        + ", ".join(f"{name} {value}" for name, value in clips_per_s.items())
        + "; speedup vs PIL: "
        + ", ".join(f"{k} {v}x" for k, v in speedup.items())
        + " (best round: "
        + ", ".join(f"{k} {v}x" for k, v in figures["best_round_speedup_vs_pil"].items())
        + ")"
    )
    write_result("data_loading", figures, summary)


if __name__ == "__main__":
    main()
