"""Progress lines with totals and ETA in a log; a diverging training run stops itself."""

from __future__ import annotations

import io
import json
import re

import pytest
from test_training import ClipSet, tiny_config

from mars_action.models import read_checkpoint
from mars_action.progress import Progress, duration
from mars_action.training import NonFiniteLoss, train
from mars_action.training.engine import check_growth


def test_a_log_gets_lines_with_the_total_the_eta_and_one_estimate():
    out = io.StringIO()
    bar = Progress(40, "flow tvl1", "video", file=out, estimate_after=2, every_s=3600)
    for _ in range(40):
        bar.update()
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("flow tvl1: 2/40 videos (5%)")
    assert "left" in lines[0]
    assert lines[1].startswith("flow tvl1: about ") and "from 2 of 40 videos" in lines[1]
    assert lines[-1].startswith("flow tvl1: 40/40 videos (100%)") and "left" not in lines[-1]
    assert len(lines) == 21  # every 5% (2 of 40) and the estimate


def test_a_resumed_count_starts_where_it_was_and_disabled_prints_nothing():
    out = io.StringIO()
    bar = Progress(10, "train x", "epoch", file=out, initial=6, every_s=3600)
    bar.set_postfix(val_acc="0.500")
    bar.update()
    assert out.getvalue().startswith("train x: 7/10 epochs (70%)")
    assert out.getvalue().rstrip().endswith("val_acc 0.500")
    quiet = io.StringIO()
    Progress(10, "x", file=quiet, disable=True, estimate_after=1).update(5)
    assert quiet.getvalue() == ""
    assert (duration(42), duration(750), duration(11100)) == ("42 s", "12 min 30 s", "3 h 05 min")


def test_a_loss_grown_by_orders_of_magnitude_stops_the_run():
    history = [{"phase": "train", "train_loss": 1.1, "val_loss": 1.0}]
    check_growth(history, {"epoch": 2, "phase": "train", "train_loss": 50.0, "val_loss": 9.0})
    with pytest.raises(NonFiniteLoss, match=r"diverged at epoch 3: val_loss 5e\+03"):
        check_growth(history, {"epoch": 3, "phase": "train", "train_loss": 1.0, "val_loss": 5e3})
    # another phase (MERS: feature MSE, then cross-entropy) is not compared with this one
    check_growth(history, {"epoch": 3, "phase": "classifier", "train_loss": 5e3})


def test_outputs_beyond_any_sane_logit_stop_the_run_and_keep_the_last_good_epoch(tmp_path):
    # lr 3 on this set: sane for two epochs, then the outputs pass 1e4 before the loss is NaN
    config = tiny_config("rgb", "schedule.epochs=4", "optim.lr=3.0")
    with pytest.raises(NonFiniteLoss, match=r"diverged at epoch (\d), step \d+: outputs reach "
                       r".*end of epoch (\d)\)") as stopped:
        train(config, tmp_path / "run", train_set=ClipSet(12, modalities=("rgb",)),
              val_set=ClipSet(6, modalities=("rgb",)))
    epoch, saved = (int(n) for n in re.search(
        r"epoch (\d), step.*end of epoch (\d)", str(stopped.value)).groups())
    assert saved == epoch - 1 >= 1
    kept = tmp_path / "run/checkpoints/last.pt"
    assert read_checkpoint(kept)[2]["training"]["epoch"] == saved
    records = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").open()]
    assert len(records) == saved and all(0.0 <= r["val_acc"] <= 1.0 for r in records)


def test_a_bar_by_time_only_is_silent_in_a_short_log_and_plurals_are_english():
    out = io.StringIO()
    bar = Progress(6, "epoch 1/60", "batch", file=out, every_fraction=None)
    bar.update(6)
    bar.close()
    assert out.getvalue() == ""
    Progress(6, "epoch 1/60", "batch", file=out, every_s=0.0).update(3)
    assert "3/6 batches (50%)" in out.getvalue()
