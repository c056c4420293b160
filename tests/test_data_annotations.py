"""Annotation parsers on files written like the official ones, matching, val split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mars_action.data.builder import load_annotations
from mars_action.data.formats import parse_hmdb51, parse_sthsth_v1, parse_ucf101
from mars_action.data.formats_custom import (
    parse_folder,
    parse_kinetics,
    parse_manifest,
    parse_minikinetics,
)
from mars_action.data.records import Annotations, VideoRecord
from mars_action.data.resolve import hold_out_val, resolve_videos, ucf101_group
from mars_action.errors import MarsError


def write(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + newline for line in lines).encode())
    return path


def touch_videos(root: Path, paths: list[str]) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"x")


# --- UCF101 ------------------------------------------------------------------


@pytest.fixture
def ucf_lists(tmp_path):
    folder = tmp_path / "ucfTrainTestlist"
    crlf = "\r\n"
    write(folder / "classInd.txt", ["1 ApplyEyeMakeup", "2 Archery", "3 YoYo"], crlf)
    write(
        folder / "trainlist01.txt",
        [
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1",
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c02.avi 1",
            "Archery/v_Archery_g08_c01.avi 2",
            "YoYo/v_YoYo_g25_c05.avi 3",
        ],
        crlf,
    )
    write(
        folder / "testlist01.txt",
        ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "YoYo/v_YoYo_g01_c01.avi"],
        crlf,
    )
    return folder


def test_ucf101_official_format(ucf_lists):
    parsed = parse_ucf101(ucf_lists, fold=1)
    assert parsed.class_names == ["ApplyEyeMakeup", "Archery", "YoYo"]
    assert parsed.records[0] == VideoRecord(
        "v_ApplyEyeMakeup_g08_c01", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 0, "train"
    )
    assert [r.label for r in parsed.split("train")] == [0, 0, 1, 2]
    assert [(r.label, r.split) for r in parsed.split("test")] == [(0, "test"), (2, "test")]
    assert all("\r" not in r.path for r in parsed.records)


def test_ucf101_label_disagreeing_with_folder_names_the_line(ucf_lists):
    lines = ucf_lists / "trainlist01.txt"
    lines.write_bytes(lines.read_bytes() + b"Archery/v_Archery_g09_c01.avi 3\r\n")
    with pytest.raises(MarsError, match=r"trainlist01\.txt:5: label 3 disagrees"):
        parse_ucf101(ucf_lists)


def test_ucf101_malformed_and_missing_files(ucf_lists):
    write(ucf_lists / "classInd.txt", ["1 ApplyEyeMakeup", "two Archery"], "\r\n")
    with pytest.raises(MarsError, match=r"classInd\.txt:2: expected"):
        parse_ucf101(ucf_lists)
    with pytest.raises(MarsError, match=r"trainlist02\.txt: annotation file not found"):
        write(ucf_lists / "classInd.txt", ["1 ApplyEyeMakeup"], "\r\n")
        parse_ucf101(ucf_lists, fold=2)


def test_avi_entries_find_mp4_files_and_missing_ones_are_counted(ucf_lists, tmp_path):
    videos = tmp_path / "videos"
    touch_videos(
        videos,
        [
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.mp4",
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c02.avi",
            "Archery/v_Archery_g08_c01.mkv",
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.mp4",
        ],
    )
    resolved = resolve_videos(parse_ucf101(ucf_lists), videos)
    assert [r.path for r in resolved.records] == [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.mp4",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c02.avi",
        "Archery/v_Archery_g08_c01.mkv",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.mp4",
    ]
    assert sorted(r.video_id for r in resolved.missing) == ["v_YoYo_g01_c01", "v_YoYo_g25_c05"]
    summary = resolved.summary()
    assert "missing videos: 2" in summary and "YoYo/v_YoYo_g25_c05.avi" in summary


# --- HMDB51 ------------------------------------------------------------------


def test_hmdb51_split_files(tmp_path):
    folder = tmp_path / "testTrainMulti_7030_splits"
    write(
        folder / "brush_hair_test_split1.txt",
        [
            "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 ",
            "Brushing_Hair_with_Beth_brush_hair_h_nm_np1_le_goo_0.avi 2 ",
            "Aussie_Brunette_Brushing_Hair_II_brush_hair_u_nm_np1_ba_med_3.avi 0 ",
        ],
    )
    odd_name = "(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi"
    write(folder / "cartwheel_test_split1.txt", [f"{odd_name} 2 "], "\r\n")
    write(folder / "cartwheel_test_split2.txt", ["other_cartwheel_f_cm_np1_le_med_0.avi 1 "])
    parsed = parse_hmdb51(folder, fold=1)
    assert parsed.class_names == ["brush_hair", "cartwheel"]
    assert [r.split for r in parsed.records] == ["train", "test", "unused", "test"]
    assert parsed.records[3].path == f"cartwheel/{odd_name}"
    assert parsed.counts() == {"train": 1, "val": 0, "test": 2, "unused": 1}
    assert len(parse_hmdb51(folder, fold=2).records) == 1
    write(folder / "cartwheel_test_split1.txt", ["video.avi 3"])
    with pytest.raises(MarsError, match=r"cartwheel_test_split1\.txt:1: expected"):
        parse_hmdb51(folder)
    with pytest.raises(MarsError, match="no HMDB51"):
        parse_hmdb51(folder, fold=3)


# --- Kinetics and MiniKinetics ---------------------------------------------------


@pytest.fixture
def kinetics_csvs(tmp_path):
    folder = tmp_path / "kinetics400"
    write(
        folder / "train.csv",
        [
            "label,youtube_id,time_start,time_end,split,is_cc",
            "abseiling,---QUuC4vJs,3,13,train,0",
            '"passing American football (in game)",-4ONDzlN0yE,58,68,train,0',
            "tying knot (not on a tie),_0JaEsmGqPU,10,20,train,0",
            "abseiling,--33Lscn6sk,4,14,train,0",
        ],
        "\r\n",
    )
    write(
        folder / "validate.csv",
        ["label,youtube_id,time_start,time_end,split", "abseiling,0wR5jVB-WPk,417,427,val"],
    )
    write(folder / "test.csv", ["youtube_id,time_start,time_end,split", "--7VNpTE4kY,0,10,test"])
    return folder


def test_kinetics_csvs(kinetics_csvs, tmp_path):
    parsed = parse_kinetics(kinetics_csvs)
    assert parsed.class_names == [
        "abseiling",
        "passing American football (in game)",
        "tying knot (not on a tie)",
    ]
    assert parsed.counts() == {"train": 4, "val": 0, "test": 1}  # unlabelled test rows left out
    record = parsed.records[1]
    assert record.path == "passing American football (in game)/-4ONDzlN0yE_000058_000068.mp4"
    assert record.video_id == "-4ONDzlN0yE_000058_000068" and record.label == 1
    videos = tmp_path / "videos"
    touch_videos(
        videos,
        [
            "train/abseiling/---QUuC4vJs_000003_000013.mp4",
            "train/passing_American_football_(in_game)/-4ONDzlN0yE_000058_000068.mp4",
            "val/abseiling/0wR5jVB-WPk_000417_000427.mp4",
        ],
    )
    resolved = resolve_videos(parsed, videos)
    assert len(resolved.records) == 3 and len(resolved.missing) == 2
    assert resolved.records[1].path.startswith("train/passing_American_football_(in_game)/")


def test_kinetics_malformed_row_names_the_line(kinetics_csvs):
    path = kinetics_csvs / "train.csv"
    path.write_bytes(path.read_bytes() + b"abseiling,abc,three,13,train,0\r\n")
    with pytest.raises(MarsError, match=r"train\.csv:6: expected integer time_start"):
        parse_kinetics(kinetics_csvs)


def test_minikinetics_filters_by_id_lists(kinetics_csvs):
    write(kinetics_csvs / "train_ytid_list.txt", ["---QUuC4vJs", "-4ONDzlN0yE"])
    write(kinetics_csvs / "val_ytid_list.txt", ["0wR5jVB-WPk"])
    parsed = parse_minikinetics(kinetics_csvs)
    assert parsed.class_names == ["abseiling", "passing American football (in game)"]
    assert [(r.video_id[:11], r.label, r.split) for r in parsed.records] == [
        ("---QUuC4vJs", 0, "train"),
        ("-4ONDzlN0yE", 1, "train"),
        ("0wR5jVB-WPk", 0, "test"),
    ]


# --- Something-Something v1, folder, manifest ---------------------------------------


def test_something_something_v1(tmp_path):
    prefix = tmp_path / "something-something-v1"
    labels = [
        "Holding something",
        "Putting something on a surface",
        "Pushing something so that it slightly moves",
    ]
    write(Path(f"{prefix}-labels.csv"), labels)
    write(Path(f"{prefix}-train.csv"), [f"100218;{labels[1]}", f"24;{labels[0]}"])
    write(Path(f"{prefix}-validation.csv"), ["9223;Pushing something so that it slightly moves"])
    parsed = parse_sthsth_v1(tmp_path)
    assert parsed.class_names == labels
    assert parsed.records[0] == VideoRecord("100218", "100218", 1, "train")
    assert parsed.records[2] == VideoRecord("9223", "9223", 2, "test")
    write(Path(f"{prefix}-validation.csv"), ["9223;Holding something", "9224;Dancing"])
    with pytest.raises(MarsError, match=r"validation\.csv:2: label 'Dancing' is not in"):
        parse_sthsth_v1(tmp_path)


def test_folder_dataset(tmp_path):
    touch_videos(tmp_path, ["walk/a b.mp4", "walk/c.avi", "run/d.mp4", "run/notes.txt"])
    (tmp_path / "run" / "frames_of_e").mkdir()
    parsed = parse_folder(tmp_path)
    assert parsed.class_names == ["run", "walk"]
    assert [(r.path, r.label) for r in parsed.records] == [
        ("run/d.mp4", 0), ("run/frames_of_e", 0), ("walk/a b.mp4", 1), ("walk/c.avi", 1)
    ]


def test_manifests(tmp_path):
    csv_file = write(
        tmp_path / "list.csv",
        ["path,label,split", "clips/a b.mp4,jump,train", "clips/c.mp4,sit,test", "d.mp4,jump,val"],
        "\r\n",
    )
    parsed = parse_manifest(csv_file)
    assert parsed.class_names == ["jump", "sit"]
    assert [(r.path, r.label, r.split) for r in parsed.records] == [
        ("clips/a b.mp4", 0, "train"), ("clips/c.mp4", 1, "test"), ("d.mp4", 0, "val")
    ]
    text = write(tmp_path / "list.txt", ["x/a.mp4 2", "x/b.mp4 0 test", "", "x/c.mp4 02"])
    parsed = parse_manifest(text)
    assert parsed.class_names == ["0", "1", "2"]
    assert [(r.label, r.split) for r in parsed.records] == [(2, "train"), (0, "test"), (2, "train")]
    write(text, ["x/a.mp4 2", "x/b.mp4"])
    with pytest.raises(MarsError, match=r"list\.txt:2: expected"):
        parse_manifest(text)


# --- validation split --------------------------------------------------------------


def _many(n_classes=3, per_class=20):
    records = [
        VideoRecord(f"v_C{c}_g{g:02d}_c{k}", f"C{c}/v.mp4", c, "train")
        for c in range(n_classes)
        for g in range(8, 8 + per_class // 4)
        for k in range(4)
    ]
    return Annotations("ucf101", [f"C{c}" for c in range(n_classes)], records)


def test_val_split_is_stratified_seeded_and_group_disjoint():
    data = _many()
    split = hold_out_val(data, 0.2, seed=3, group_of=ucf101_group)
    val = split.split("val")
    assert Counter(r.label for r in val) == {0: 4, 1: 4, 2: 4}  # one group of 4 per class
    groups = lambda recs: {ucf101_group(r) for r in recs}  # noqa: E731
    assert not groups(val) & groups(split.split("train"))
    again = hold_out_val(Annotations("ucf101", data.class_names, data.records[::-1]), 0.2, seed=3,
                         group_of=ucf101_group)
    assert {r.video_id for r in again.split("val")} == {r.video_id for r in val}
    others = [hold_out_val(data, 0.2, seed=s).split("val") for s in range(4)]
    assert len({frozenset(r.video_id for r in v) for v in others}) > 1
    assert Counter(r.label for r in others[0]) == {0: 4, 1: 4, 2: 4}  # 20% of 20 videos
    assert hold_out_val(data, 0.0).counts()["val"] == 0


def test_use_test_as_val_is_explicit(ucf_lists):
    parsed = load_annotations("ucf101", None, ucf_lists, use_test_as_val=True)
    assert parsed.counts() == {"train": 4, "val": 2, "test": 2}
    assert {r.video_id for r in parsed.split("val")} == {r.video_id for r in parsed.split("test")}
    default = load_annotations("ucf101", None, ucf_lists)
    held_out = {r.video_id for r in default.split("val")}
    assert held_out and not held_out & {r.video_id for r in default.split("test")}


# --- the real UCF101 subset ----------------------------------------------------------


def test_ucf101_subset_split1(ucf101_subset):
    parsed = parse_ucf101(ucf101_subset / "ucfTrainTestlist", fold=1)
    assert len(parsed.class_names) == 20
    assert parsed.counts() == {"train": 141, "val": 0, "test": 56}
    resolved = load_annotations("ucf101", ucf101_subset, val_fraction=0.1, seed=0)
    assert resolved.missing == []
    for record in resolved.records:
        assert record.path.endswith(".mp4") and (ucf101_subset / record.path).is_file()
    counts = resolved.counts()
    assert counts["train"] + counts["val"] == 141 and counts["test"] == 56
    assert len({r.label for r in resolved.split("val")}) == 20  # every class in val
    test_groups = {r.video_id.split("_")[2] for r in resolved.split("test")}
    assert test_groups <= {f"g0{g}" for g in range(1, 8)}  # the official split-1 rule
