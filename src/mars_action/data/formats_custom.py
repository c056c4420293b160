"""Parsers of Kinetics-400/600/700 CSVs, MiniKinetics-200 id lists, folders and manifests.

Kinetics CSVs (``label,youtube_id,time_start,time_end,split[,is_cc]``) name
clips ``<label>/<youtube_id>_<start:06d>_<end:06d>.mp4``. Roles: ``train`` rows
-> train, ``val``/``validate`` rows -> test (the paper reports on the validation
set: test labels were not public), labelled ``test`` rows -> unused; unlabelled
test rows are left out.
"""

from __future__ import annotations

import csv
from pathlib import Path

from mars_action.data.formats import malformed, read_lines
from mars_action.data.records import SPLITS, VIDEO_EXTENSIONS, Annotations, VideoRecord, video_stem
from mars_action.errors import MarsError

KINETICS_ROLES = {"train": "train", "val": "test", "validate": "test", "test": "unused"}
_KINETICS_COLUMNS = ("youtube_id", "time_start", "time_end")


def parse_kinetics(annotations: str | Path) -> Annotations:
    """Kinetics: one official CSV, or a folder of them (train, validate, test)."""
    files = _csv_files(Path(annotations))
    rows = [row for path in files for row in _kinetics_rows(path)]
    class_names = sorted({label for label, _, _ in rows})
    index = {name: i for i, name in enumerate(class_names)}
    records = [
        VideoRecord(video_stem(path), path, index[label], role) for label, path, role in rows
    ]
    return Annotations("kinetics", class_names, records, [str(p) for p in files])


def _csv_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = [f for f in sorted(path.glob("*.csv")) if "youtube_id" in _header(f)]
    if not files:
        raise MarsError(f"{path}: no Kinetics CSV (header 'label,youtube_id,time_start,...')")
    return files


def _header(path: Path) -> str:
    with path.open(encoding="utf-8-sig") as handle:
        return handle.readline()


def _kinetics_rows(path: Path) -> list[tuple[str, str, str]]:
    """(label, relative path, role) per labelled row of one CSV."""
    rows = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        absent = [c for c in _KINETICS_COLUMNS if c not in (reader.fieldnames or [])]
        if absent:
            raise MarsError(f"{path}:1: header lacks column(s) {', '.join(absent)}")
        for row in reader:
            label = (row.get("label") or "").strip()
            split = (row.get("split") or _role_from_name(path)).strip()
            if split not in KINETICS_ROLES:
                raise MarsError(f"{path}:{reader.line_num}: unknown split {split!r}")
            if not label:
                if split == "test":
                    continue
                raise MarsError(f"{path}:{reader.line_num}: {split} row without a label")
            stem = _kinetics_stem(path, reader.line_num, row)
            rows.append((label, f"{label}/{stem}.mp4", KINETICS_ROLES[split]))
    return rows


def _kinetics_stem(path: Path, number: int, row: dict[str, str]) -> str:
    try:
        start, end = int(float(row["time_start"])), int(float(row["time_end"]))
    except (TypeError, ValueError):
        raise malformed(path, number, "integer time_start and time_end", str(row)) from None
    youtube_id = (row["youtube_id"] or "").strip()
    if not youtube_id:
        raise malformed(path, number, "a youtube_id", str(row))
    return f"{youtube_id}_{start:06d}_{end:06d}"


def _role_from_name(path: Path) -> str:
    name = path.stem.lower()
    return "train" if "train" in name else "val" if "val" in name else "test"


def parse_minikinetics(annotations: str | Path) -> Annotations:
    """MiniKinetics-200: Kinetics-400 CSVs filtered by the published id lists.

    ``annotations`` is a folder with the Kinetics-400 CSVs and
    ``train_ytid_list.txt`` / ``val_ytid_list.txt`` (one YouTube id, or clip
    stem, per line). Classes are those of the kept clips (200 for the real lists).
    """
    folder = Path(annotations)
    kinetics = parse_kinetics(folder)
    lists = {"train": folder / "train_ytid_list.txt", "test": folder / "val_ytid_list.txt"}
    wanted = {role: {line for _, line in read_lines(path)} for role, path in lists.items()}
    kept = [
        r
        for r in kinetics.records
        if r.split in wanted and {r.video_id, r.video_id[:-14]} & wanted[r.split]
    ]
    old_names = sorted({kinetics.class_names[r.label] for r in kept})
    index = {name: i for i, name in enumerate(old_names)}
    records = [
        VideoRecord(r.video_id, r.path, index[kinetics.class_names[r.label]], r.split)
        for r in kept
    ]
    sources = [*kinetics.sources, *(str(p) for p in lists.values())]
    return Annotations("minikinetics", old_names, records, sources)


def parse_folder(root: str | Path) -> Annotations:
    """A folder dataset ``root/<class>/<video file or frame folder>``: every video is train."""
    root = Path(root)
    if not root.is_dir():
        raise MarsError(f"{root}: dataset folder not found")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    records = []
    for label, name in enumerate(classes):
        for video in sorted((root / name).iterdir()):
            if not video.name.startswith(".") and (
                video.is_dir() or video.suffix.lower() in VIDEO_EXTENSIONS
            ):
                path = f"{name}/{video.name}"
                records.append(VideoRecord(video_stem(path), path, label, "train"))
    if not records:
        raise MarsError(f"{root}: no videos in '<class>/<video>' folders")
    return Annotations("folder", classes, records, [str(root)])


def parse_manifest(path: str | Path) -> Annotations:
    """A manifest: CSV with a ``path,label[,split]`` header, or text lines ``path label [split]``.

    Labels are class names; if every label is an integer they are class indices
    (names "0", "1", ...). Paths are relative to the dataset root and may contain
    spaces in CSVs. Without a split every video is train.
    """
    path = Path(path)
    entries = _manifest_csv(path) if path.suffix.lower() == ".csv" else _manifest_text(path)
    if not entries:
        raise MarsError(f"{path}: empty manifest")
    labels = {label for _, label, _ in entries}
    if all(label.isdigit() for label in labels):
        class_names = [str(i) for i in range(max(int(label) for label in labels) + 1)]
        entries = [(video, str(int(label)), role) for video, label, role in entries]
    else:
        class_names = sorted(labels)
    index = {name: i for i, name in enumerate(class_names)}
    records = [
        VideoRecord(video_stem(video), video, index[label], role) for video, label, role in entries
    ]
    return Annotations("manifest", class_names, records, [str(path)])


def _manifest_csv(path: Path) -> list[tuple[str, str, str]]:
    entries = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"path", "label"} <= set(reader.fieldnames or []):
            raise MarsError(f"{path}:1: header must name 'path' and 'label' columns")
        for row in reader:
            video, label = (row["path"] or "").strip(), (row["label"] or "").strip()
            role = (row.get("split") or "train").strip()
            if not video or not label or role not in SPLITS:
                raise malformed(path, reader.line_num, "path, label and train|val|test", str(row))
            entries.append((video, label, role))
    return entries


def _manifest_text(path: Path) -> list[tuple[str, str, str]]:
    entries = []
    for number, line in read_lines(path):
        parts = line.split()
        role = parts.pop() if len(parts) == 3 and parts[2] in SPLITS else "train"
        if len(parts) != 2:
            raise malformed(path, number, "'<path> <label> [train|val|test]'", line)
        entries.append((parts[0], parts[1], role))
    return entries
