"""Parsers of the official annotation files: UCF101, HMDB51, Something-Something v1.

Each parser reads the files exactly as distributed (CRLF or LF, a UTF-8 BOM,
trailing spaces, blank lines) and returns :class:`Annotations` with paths as the
annotation names them (``Class/v_x.avi``); matching them to the files on disk
is :func:`mars_action.data.resolve.resolve_videos`'s job. A malformed line raises
:class:`MarsError` naming the file and the line number. Kinetics, MiniKinetics,
folders and manifests are in :mod:`mars_action.data.formats_custom`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from mars_action.data.records import Annotations, VideoRecord, video_stem
from mars_action.errors import MarsError

HMDB_ROLES = {"0": "unused", "1": "train", "2": "test"}
_HMDB_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<fold>\d)\.txt$")
SSV1_PREFIX = "something-something-v1"


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped text) of each non-blank line; CRLF and BOM tolerated."""
    if not path.is_file():
        raise MarsError(f"{path}: annotation file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise MarsError(f"{path}: not UTF-8 text ({error.reason})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line.strip()


def malformed(path: Path, number: int, expected: str, line: str) -> MarsError:
    """The one-line error for an annotation line that does not parse, with file and line number."""
    return MarsError(f"{path}:{number}: expected {expected}, got {line!r}")


def parse_ucf101(annotation_dir: str | Path, fold: int = 1) -> Annotations:
    """UCF101: ``classInd.txt``, ``trainlist0{fold}.txt``, ``testlist0{fold}.txt``.

    Train lines are ``Class/v_X.avi <1-based label>``; test lines have no label,
    the class folder gives it. A label that disagrees with its folder is an error
    (the released code's train-list parser got this wrong).
    """
    folder = Path(annotation_dir)
    _check_fold(fold)
    class_names = _ucf_classes(folder / "classInd.txt")
    index = {name: i for i, name in enumerate(class_names)}
    train, test = folder / f"trainlist0{fold}.txt", folder / f"testlist0{fold}.txt"
    records = [*_ucf_list(train, index, "train"), *_ucf_list(test, index, "test")]
    return Annotations("ucf101", class_names, records, [str(train), str(test)])


def _ucf_classes(path: Path) -> list[str]:
    names: list[str] = []
    for number, line in read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise malformed(path, number, "'<index> <class>'", line)
        if int(parts[0]) != len(names) + 1:
            raise MarsError(f"{path}:{number}: class index {parts[0]}, expected {len(names) + 1}")
        names.append(parts[1])
    if not names:
        raise MarsError(f"{path}: no classes")
    return names


def _ucf_list(path: Path, index: dict[str, int], role: str) -> list[VideoRecord]:
    records = []
    for number, line in read_lines(path):
        parts = line.split()
        if len(parts) not in (1, 2) or "/" not in parts[0]:
            raise malformed(path, number, "'<Class>/<video>.avi [label]'", line)
        video = parts[0]
        class_name = video.split("/")[0]
        if class_name not in index:
            raise MarsError(f"{path}:{number}: class {class_name!r} is not in classInd.txt")
        label = index[class_name]
        if len(parts) == 2 and (not parts[1].isdigit() or int(parts[1]) - 1 != label):
            raise MarsError(
                f"{path}:{number}: label {parts[1]} disagrees with folder {class_name!r} "
                f"(class {label + 1} in classInd.txt)"
            )
        records.append(VideoRecord(video_stem(video), video, label, role))
    return records


def parse_hmdb51(annotation_dir: str | Path, fold: int = 1) -> Annotations:
    """HMDB51: one ``<class>_test_split{fold}.txt`` per class, lines ``video.avi 0|1|2``.

    1 is train, 2 test, 0 unused (kept with role ``unused``). Classes are sorted
    by name, the usual HMDB51 label order.
    """
    folder = Path(annotation_dir)
    _check_fold(fold)
    files = sorted(
        (m.group("cls"), p)
        for p in (folder.iterdir() if folder.is_dir() else [])
        if (m := _HMDB_FILE.match(p.name)) and m.group("fold") == str(fold)
    )
    if not files:
        raise MarsError(f"{folder}: no HMDB51 '<class>_test_split{fold}.txt' files")
    records = []
    for label, (class_name, path) in enumerate(files):
        for number, line in read_lines(path):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in HMDB_ROLES:
                raise malformed(path, number, "'<video>.avi 0|1|2'", line)
            video = f"{class_name}/{parts[0]}"
            records.append(VideoRecord(video_stem(video), video, label, HMDB_ROLES[parts[1]]))
    names = [name for name, _ in files]
    return Annotations("hmdb51", names, records, [f"{folder}/*_test_split{fold}.txt"])


def parse_sthsth_v1(annotation_dir: str | Path) -> Annotations:
    """Something-Something v1: labels CSV (one name per line) + ``id;label`` train/validation.

    Frames are distributed as ``<id>/%05d.jpg`` (12 fps, 100 px high), so a
    record's path is its id, a frame folder. The official validation set is the
    ``test`` role (test labels are not public).
    """
    folder = Path(annotation_dir)
    labels_file = folder / f"{SSV1_PREFIX}-labels.csv"
    class_names = [line for _, line in read_lines(labels_file)]
    index = {name: i for i, name in enumerate(class_names)}
    records = []
    sources = [str(labels_file)]
    for name, role in (("train", "train"), ("validation", "test")):
        path = folder / f"{SSV1_PREFIX}-{name}.csv"
        sources.append(str(path))
        for number, line in read_lines(path):
            video_id, sep, label = line.partition(";")
            if not sep or not video_id.strip().isdigit():
                raise malformed(path, number, "'<id>;<label>'", line)
            video_id, label = video_id.strip(), label.strip()
            if label not in index:
                raise MarsError(f"{path}:{number}: label {label!r} is not in {labels_file.name}")
            records.append(VideoRecord(video_id, video_id, index[label], role))
    return Annotations("sthsth-v1", class_names, records, sources)


def _check_fold(fold: int) -> None:
    if fold not in (1, 2, 3):
        raise MarsError(f"split fold must be 1, 2 or 3, got {fold}")
