"""A synthetic motion dataset: classes told apart by motion alone, written as real MP4 files.

Why it exists: a user without Kinetics or a GPU can still watch the MARS effect
happen. Everything a single frame shows (textures, colours, shapes, sizes,
lighting, noise, distractors, camera pan) is drawn from the same distribution for
every class, so a stream only beats chance by seeing *motion* - like the paper's
motion-heavy sets (HMDB51, Something-Something), where Flow beats RGB.

Each video is rendered from its own generator seeded by ``(seed, class, index)``:
a video never depends on how many others are made or in which order, so
generation is resumable and parallel. Speeds stay at a few pixels per frame,
inside what OpenCV's default TV-L1 resolves (it fails above ~6-8 px per frame).

On disk (the folder-dataset layout): ``root/<class>/<class>_<index>.mp4`` plus
``root/manifest.csv`` (``path,label,split`` rows, labels as class names) and
``root/synth.json`` (the spec that made it).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mars_action.errors import MarsError
from mars_action.progress import Progress
from mars_action.video.writer import write_video

_S = float(np.sqrt(0.5))
# Directions (dx, dy) in image coordinates, y pointing down. A class never tells
# left from right, clockwise from counter-clockwise: the paper's recipe flips
# training clips horizontally (negating flow x), which would turn such a class into
# its mirror image half of the time while keeping the label.
DIRECTIONS: dict[str, tuple[tuple[float, float], ...]] = {
    "up": ((0.0, -1.0),),
    "down": ((0.0, 1.0),),
    "sideways": ((1.0, 0.0), (-1.0, 0.0)),
    "up_diagonal": ((_S, -_S), (-_S, -_S)),
    "down_diagonal": ((_S, _S), (-_S, _S)),
}

# Ordered so that the first k classes are a varied set for any k.
MOTION_CLASSES: tuple[str, ...] = (
    "move_up",
    "move_down",
    "move_sideways",
    "rotate",
    "zoom_in",
    "zoom_out",
    "wave_horizontal",
    "wave_vertical",
    "move_up_diagonal",
    "move_down_diagonal",
)

MANIFEST = "manifest.csv"
SPEC_FILE = "synth.json"


@dataclass(frozen=True)
class SynthSpec:
    """What a synthetic dataset is made of; the same spec and seed give the same videos.

    Attributes:
        classes: motion class names, a subset of ``MOTION_CLASSES``.
        videos_per_class: videos rendered per class.
        test_fraction: share of each class's videos marked ``test`` in the manifest.
        height, width: frame size in pixels.
        num_frames: frames per video.
        fps: frame rate written into the MP4 files.
        seed: the seed every video's generator derives from.
        speed: object speed range, pixels per frame (rim speed for rotation and zoom).
        max_pan: largest camera pan, pixels per frame.
        max_distractors: up to this many small objects wandering at random.
        lighting: largest relative change of brightness over a video.
        noise: largest std of per-pixel Gaussian noise (0-255 scale).
    """

    classes: tuple[str, ...] = MOTION_CLASSES[:8]
    videos_per_class: int = 30
    test_fraction: float = 0.3
    height: int = 64
    width: int = 64
    num_frames: int = 32
    fps: float = 25.0
    seed: int = 0
    speed: tuple[float, float] = (1.0, 2.2)
    max_pan: float = 0.5
    max_distractors: int = 2
    lighting: float = 0.2
    noise: float = 4.0

    def __post_init__(self) -> None:
        unknown = [c for c in self.classes if c not in MOTION_CLASSES]
        if unknown or not self.classes or len(set(self.classes)) != len(self.classes):
            raise MarsError(
                f"synthetic classes {list(self.classes)}: need distinct names from "
                f"{', '.join(MOTION_CLASSES)}"
            )
        if self.videos_per_class < 1 or self.num_frames < 2 or min(self.height, self.width) < 16:
            raise MarsError("synthetic spec: need >= 1 video per class, >= 2 frames, >= 16 px")
        if not 0.0 <= self.test_fraction < 1.0:
            raise MarsError(f"synthetic test_fraction {self.test_fraction}: must be in [0, 1)")


def spec_with_classes(num_classes: int, **fields) -> SynthSpec:
    """A spec using the first ``num_classes`` motion classes (the CLI's ``--classes N``)."""
    if not 1 <= num_classes <= len(MOTION_CLASSES):
        raise MarsError(f"--classes {num_classes}: choose 1 to {len(MOTION_CLASSES)}")
    return SynthSpec(classes=MOTION_CLASSES[:num_classes], **fields)


# ----------------------------------------------------------------------------- motion
# A trajectory is (T, 4): centre offset x, y (px), angle (degrees, counter-clockwise
# as OpenCV draws it), log-scale; relative to the object's starting pose.


def _translation(directions: tuple[tuple[float, float], ...]) -> Callable:
    def path(rng: np.random.Generator, t: np.ndarray, spec: SynthSpec, radius: float):
        direction = directions[int(rng.integers(len(directions)))]
        speed = rng.uniform(*spec.speed)
        centred = t - t.mean()  # the object crosses the middle of the frame mid-video
        return np.stack([centred * speed * direction[0], centred * speed * direction[1],
                         0 * t, 0 * t], axis=1)

    return path


def _rotation(rng: np.random.Generator, t: np.ndarray, spec: SynthSpec, radius: float):
    sign = rng.choice([-1.0, 1.0])  # clockwise or not: a mirror swaps the two
    degrees_per_frame = np.degrees(rng.uniform(*spec.speed) / radius)
    angle = sign * degrees_per_frame * t + rng.uniform(0, 360)
    return np.stack([0 * t, 0 * t, angle, 0 * t], axis=1)


def _zoom(sign: float) -> Callable:
    def path(rng: np.random.Generator, t: np.ndarray, spec: SynthSpec, radius: float):
        # The whole change stays under e (2.7x): rim speed ~ rate x radius stays near 1 px.
        rate = rng.uniform(0.6, 1.0) / max(len(t) - 1, 1)
        return np.stack([0 * t, 0 * t, 0 * t, sign * rate * (t - t.mean())], axis=1)

    return path


def _wave(axis: int) -> Callable:
    def path(rng: np.random.Generator, t: np.ndarray, spec: SynthSpec, radius: float):
        period = rng.uniform(8.0, 16.0)
        amplitude = rng.uniform(*spec.speed) * 1.5 * period / (2 * np.pi)  # peak speed 1.5 x
        offset = amplitude * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        xy = [offset, 0 * t] if axis == 0 else [0 * t, offset]
        return np.stack([*xy, 0 * t, 0 * t], axis=1)

    return path


_MOTIONS: dict[str, Callable] = {
    **{f"move_{name}": _translation(d) for name, d in DIRECTIONS.items()},
    "rotate": _rotation,
    "zoom_in": _zoom(1.0),
    "zoom_out": _zoom(-1.0),
    "wave_horizontal": _wave(0),
    "wave_vertical": _wave(1),
}


# ----------------------------------------------------------------------------- appearance

_MEAN_COLOUR = np.array([115.0, 108.0, 100.0], np.float32)  # ~ the ActivityNet mean (RGB)


def _texture(rng: np.random.Generator, height: int, width: int, cast: float) -> np.ndarray:
    """(H, W, 3) float32: smooth random colour noise at a few scales, random palette.

    The texture's average colour is the dataset mean moved by ``cast`` (0-255 units)
    in a random colour direction. Objects get a strong cast, so that they stand out
    from the background as moving shapes; the background a weak one, so that the
    average colour of a frame stays near the mean the RGB input is centred on. With
    the paper's normalisation (mean subtraction only) a per-video colour cast of the
    whole frame is a large constant offset of the clip, which a small 3D CNN trained
    from scratch with SGD memorises instead of learning motion.
    """
    gray = np.zeros((height, width, 3), np.float32)
    for cell in rng.choice([2, 3, 5, 8, 12], size=3, replace=False):
        low = rng.standard_normal((height // cell + 2, width // cell + 2, 3)).astype(np.float32)
        gray += cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC) * rng.uniform(
            0.3, 1.0
        )
    gray = (gray - gray.mean()) / (gray.std() + 1e-6)
    mixing = rng.normal(0.0, 1.0, (3, 3)).astype(np.float32)
    mixing /= np.linalg.norm(mixing, axis=0, keepdims=True) + 1e-6
    direction = rng.normal(0.0, 1.0, 3)
    mean = _MEAN_COLOUR + cast * direction / (np.linalg.norm(direction) + 1e-9)
    colour = gray @ mixing * rng.uniform(15.0, 40.0) + mean.astype(np.float32)
    return np.clip(colour, 0.0, 255.0).astype(np.float32)


def _shape_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) float32 in [0, 1]: an anti-aliased random blob filling most of the box."""
    sides = int(rng.integers(5, 10))
    angles = np.sort(rng.uniform(0, 2 * np.pi, sides))
    radii = rng.uniform(0.65, 1.0, sides) * (size / 2 - 2)
    upscale = 4
    centre = size * upscale / 2
    points = np.stack([centre + radii * upscale * np.cos(angles),
                       centre + radii * upscale * np.sin(angles)], axis=1)
    big = np.zeros((size * upscale, size * upscale), np.uint8)
    cv2.fillPoly(big, [np.round(points).astype(np.int32)], 255)
    small = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


@dataclass
class _Sprite:
    """A textured shape and its pose over time: centre (T, 2), angle (T,), scale (T,)."""

    texture: np.ndarray  # (S, S, 3)
    mask: np.ndarray  # (S, S)
    centre: np.ndarray
    angle: np.ndarray
    scale: np.ndarray

    def draw(self, canvas: np.ndarray, t: int) -> None:
        size = self.mask.shape[0]
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), self.angle[t], self.scale[t])
        matrix[:, 2] += self.centre[t] - size / 2
        h, w = canvas.shape[:2]
        alpha = cv2.warpAffine(self.mask, matrix, (w, h), flags=cv2.INTER_LINEAR)
        colour = cv2.warpAffine(
            self.texture, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        canvas += alpha[..., None] * (colour - canvas)


def _sprite(rng: np.random.Generator, radius: float, trajectory: np.ndarray, start: np.ndarray):
    size = int(np.ceil(2 * radius)) + 4
    return _Sprite(
        texture=_texture(rng, size, size, cast=rng.uniform(50.0, 90.0)),
        mask=_shape_mask(rng, size),
        centre=start + trajectory[:, :2],
        angle=trajectory[:, 2],
        scale=np.exp(trajectory[:, 3]),
    )


def _distractor_path(rng: np.random.Generator, spec: SynthSpec) -> np.ndarray:
    """(T, 4): a jittery random walk whose velocity drifts; no class uses such motion."""
    velocity = rng.normal(0.0, 0.8, 2) + rng.normal(0.0, 0.35, (spec.num_frames, 2)).cumsum(0)
    velocity = np.clip(velocity, -2.0, 2.0)
    offsets = np.concatenate([np.zeros((1, 2)), velocity[:-1].cumsum(0)])
    spin = rng.normal(0.0, 2.0) * np.arange(spec.num_frames)
    return np.column_stack([offsets, spin, np.zeros(spec.num_frames)])


# ----------------------------------------------------------------------------- rendering


def render_video(spec: SynthSpec, label: int, index: int) -> np.ndarray:
    """Render video ``index`` of class ``label``: (T, H, W, 3) uint8 RGB."""
    rng = np.random.default_rng([spec.seed, label, index])
    h, w, frames = spec.height, spec.width, spec.num_frames
    t = np.arange(frames, dtype=np.float64)
    short = min(h, w)
    pan = rng.normal(0.0, 1.0, 2)
    pan *= rng.uniform(0.0, spec.max_pan) / (np.linalg.norm(pan) + 1e-9)
    camera = np.outer(t - t.mean(), pan)  # (T, 2) how far the scene has shifted
    margin = int(np.ceil(np.abs(camera).max())) + 2
    background = _texture(rng, h + 2 * margin, w + 2 * margin, cast=rng.uniform(0.0, 15.0))

    radius = rng.uniform(0.22, 0.32) * short
    trajectory = _MOTIONS[spec.classes[label]](rng, t, spec, radius)
    centre = np.array([w / 2, h / 2]) + rng.uniform(-0.1, 0.1, 2) * short
    sprites = []
    for _ in range(int(rng.integers(0, spec.max_distractors + 1))):
        start = rng.uniform(0.1, 0.9, 2) * (w, h)
        sprites.append(_sprite(rng, rng.uniform(0.06, 0.1) * short, _distractor_path(rng, spec),
                               start))
    subject = _sprite(rng, radius, trajectory, centre)
    sprites.insert(int(rng.integers(0, len(sprites) + 1)), subject)  # distractors may occlude it
    for sprite in sprites:
        sprite.centre = sprite.centre + camera

    gain = np.linspace(*rng.uniform(1 - spec.lighting, 1 + spec.lighting, 2), frames)
    sigma = rng.uniform(0.0, spec.noise)
    video = np.empty((frames, h, w, 3), np.uint8)
    for i in range(frames):
        shift = np.float32([[1, 0, camera[i, 0] - margin], [0, 1, camera[i, 1] - margin]])
        canvas = cv2.warpAffine(background, shift, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
        for sprite in sprites:
            sprite.draw(canvas, i)
        canvas = canvas * gain[i] + rng.normal(0.0, sigma, canvas.shape).astype(np.float32)
        video[i] = np.clip(canvas, 0, 255).astype(np.uint8)
    return video


def video_plan(spec: SynthSpec) -> list[tuple[str, int, int, str]]:
    """Every video as (relative path, label, index, split); the last of each class are test."""
    num_test = int(round(spec.videos_per_class * spec.test_fraction))
    first_test = spec.videos_per_class - num_test
    return [
        (f"{name}/{name}_{index:04d}.mp4", label, index, "test" if index >= first_test else "train")
        for label, name in enumerate(spec.classes)
        for index in range(spec.videos_per_class)
    ]


def generate_dataset(root: str | Path, spec: SynthSpec, progress: bool = True) -> Path:
    """Write the dataset under ``root`` (resumable: existing videos are kept); returns the manifest.

    Raises:
        MarsError: ``root`` holds a synthetic dataset made from a different spec.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _claim(root, spec)
    plan = video_plan(spec)
    bar = Progress(len(plan), "synth", "video", disable=not progress)
    for path, label, index, _ in plan:
        target = root / path
        if not target.is_file():
            write_video(target, render_video(spec, label, index), fps=spec.fps, crf=18)
        bar.update()
    bar.close()
    manifest = root / MANIFEST
    tmp = manifest.with_suffix(".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        writer.writerows([path, spec.classes[label], split] for path, label, _, split in plan)
    tmp.replace(manifest)
    return manifest


def load_spec(root: str | Path) -> SynthSpec | None:
    """The spec a synthetic dataset under ``root`` was made with, or None if there is none."""
    path = Path(root) / SPEC_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return SynthSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _claim(root: Path, spec: SynthSpec) -> None:
    """Record the spec; refuse to mix videos of two different specs in one folder."""
    existing = load_spec(root)
    if existing is not None and existing != spec:
        raise MarsError(
            f"{root / SPEC_FILE}: the folder holds a synthetic dataset made with another spec; "
            "use a new folder or delete it"
        )
    (root / SPEC_FILE).write_text(json.dumps(dataclasses.asdict(spec), indent=2) + "\n")
