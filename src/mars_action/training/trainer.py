"""``train(config, run_dir)``: the run from start (or ``resume``) to the last epoch.

Run folder (written by the main process only)::

    run_dir/config.yaml          the resolved config (recipe applied)
    run_dir/metrics.jsonl        one record per epoch (see ``metrics.py``)
    run_dir/checkpoints/last.pt  weights + meta + training state (resume point)
    run_dir/checkpoints/best.pt  weights + meta of the best validation accuracy
    run_dir/curves.png           loss and accuracy per epoch
    run_dir/tensorboard/         event files, when TensorBoard is installed
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from mars_action.config import save_config
from mars_action.errors import MarsError
from mars_action.models.checkpoint import load_state_dict_exactly
from mars_action.progress import Progress
from mars_action.training import build, distributed
from mars_action.training import state as run_state
from mars_action.training.adapters import build_adapters
from mars_action.training.config import (
    ExperimentConfig,
    check_resumable,
    epochs_for_steps,
    resolve,
)
from mars_action.training.config_checks import DISTILLED
from mars_action.training.datasets import build_datasets
from mars_action.training.engine import (
    Engine,
    Meter,
    NonFiniteLoss,
    check_growth,
    evaluate,
    train_one_epoch,
)
from mars_action.training.loading import run_loader, train_loader
from mars_action.training.losses import Phase, plan_phases
from mars_action.training.metrics import MetricsLog, plot_curves
from mars_action.training.optim import learning_rates, set_train_mode, step_scheduler
from mars_action.training.unlabeled import build_unlabeled


@dataclass
class RunSummary:
    """What ``train`` returns: where things are, how far it got, the best epoch (1-based)."""

    run_dir: Path
    epochs: int
    best_epoch: int | None
    best_val_acc: float | None
    last_checkpoint: Path
    best_checkpoint: Path | None
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Run:
    """The pieces of one run the epoch functions share."""

    config: ExperimentConfig
    run_dir: Path
    process: distributed.Process
    model: torch.nn.Module
    meta: Any
    state: run_state.RunState
    train_loader: Any
    val_loader: Any | None
    log: MetricsLog | None
    saved: str = "none"  # what last.pt holds, for the divergence message
    bar: Progress | None = None  # epochs i/N with the ETA and the last validation accuracy
    adapters: torch.nn.ModuleDict | None = None  # cross-family adapters, in last.pt only

    @property
    def last(self) -> Path:
        """The full training state, rewritten after each epoch (and every
        ``train.save_every_steps``): what ``--resume`` reads."""
        return self.run_dir / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        """Weights of the epoch ``train.select`` keeps: what evaluation loads."""
        return self.run_dir / "checkpoints" / "best.pt"


def train(
    config: ExperimentConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    train_set: Dataset | None = None,
    val_set: Dataset | None = None,
    class_names: list[str] | None = None,
) -> RunSummary:
    """Train ``config`` in ``run_dir``; ``resume`` continues from ``checkpoints/last.pt``.

    Datasets come from ``config.data`` unless given (tests, notebooks, the demo);
    ``class_names`` then default to ``train_set.class_names``. Raises ``MarsError``
    on bad input and :class:`NonFiniteLoss` (a ``MarsError``) if the loss diverges,
    leaving ``last.pt`` at the last good epoch.
    """
    config = resolve(config)
    process = distributed.start(config.train.device)
    threads = torch.get_num_threads()
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    try:
        summary = _train(config, Path(run_dir), process, resume, train_set, val_set, class_names)
        # Leave together: a rank that tears gloo down while rank 0 still writes its last
        # checkpoint and plots can abort ("terminate called without an active exception").
        distributed.barrier(process)
        return summary
    finally:
        torch.set_num_threads(threads)
        distributed.stop(process)


def _train(config, run_dir, process, resume, train_set, val_set, class_names) -> RunSummary:
    if train_set is None:  # data problems are reported before the run folder is made
        needed = build.modalities([p.objective for p in plan_phases(config)])
        train_set, val_set = build_datasets(config.data, needed)
    config = epochs_for_steps(config, len(train_set))
    extra = None  # clips for the teacher terms only, checked before the run folder is made
    if config.distill.unlabeled and config.stream in DISTILLED:
        extra = build_unlabeled(config.data, config.distill.unlabeled)
    training = _prepare_folder(config, run_dir, resume, process)
    class_names = list(class_names or train_set.class_names)
    torch.manual_seed(config.train.seed)  # the same initial weights on every run
    model = build.prepare(build.build_student(config, len(class_names)), config, process)
    if training is not None:
        load_state_dict_exactly(model, training["weights"], source="last.pt")
    run = Run(
        config=config,
        run_dir=run_dir,
        process=process,
        model=model,
        meta=build.make_meta(config, class_names),
        state=run_state.run_state(training) if training else run_state.RunState(),
        train_loader=train_loader(train_set, extra, config, process),
        val_loader=run_loader(val_set, config, process, train=False) if val_set else None,
        log=MetricsLog(run_dir, (training or {}).get("history", [])) if process.is_main else None,
    )
    run.bar = Progress(
        config.schedule.epochs,
        f"train {config.name}",
        "epoch",
        initial=run.state.epoch,
        disable=not (config.train.progress and process.is_main),
    )
    try:
        _run_phases(run, training)
    except NonFiniteLoss as error:
        message = f"{error}; training stopped. Last good checkpoint: {run.saved}"
        raise NonFiniteLoss(message) from None
    finally:
        run.bar.close()
        if run.log is not None:
            run.log.close()
    return _finish(run)


def _prepare_folder(config, run_dir: Path, resume: bool, process) -> dict[str, Any] | None:
    """Check the folder against ``resume``, write ``config.yaml``; the training state to resume."""
    last = run_dir / "checkpoints" / "last.pt"
    if last.exists() and not resume:
        raise MarsError(f"{run_dir}: holds a run already; pass --resume or another --run-dir")
    training = None
    if resume and last.exists():
        check_resumable(config, run_dir / "config.yaml")
        weights, _, training = run_state.read_last(last)
        training["weights"] = weights
        if process.is_main:
            print(
                f"resuming {last} at epoch {training['epoch'] + 1}, step {training['step']}",
                flush=True,
            )
    if process.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
    return training


def _run_phases(run: Run, training: dict[str, Any] | None) -> None:
    phases = plan_phases(run.config)
    teacher = stats = adapters = None
    if build.needs_teacher(phases):
        teacher = build.build_teacher(run.config, run.model, run.process)
        if training is None and run.config.stream == "mers" and \
                run.config.mers.classifier_init == "teacher":
            build.classifier_from_teacher(run.model, teacher, run.config.distill.teacher)
        stats = build.teacher_stats(run.config, phases, teacher, run.train_loader, run.process)
        # A teacher of another family: learned maps from the student's outputs to its shapes.
        names = [n for p in phases for n in p.objective.distill.outputs]
        data = run.config.data
        adapters = build_adapters(run.model, teacher, names, data.clip_len, data.crop_size,
                                  run.process.device, stats)
    # Flow regression's head: the adapter of the output "flow" (no teacher needed).
    adapters = build.add_flow_head(adapters, phases, run.model, run.config, run.process.device)
    _restore_adapters(adapters, training)
    run.adapters = adapters
    for phase in phases:
        if run.state.epoch >= phase.end_epoch:
            continue
        engine, scheduler, frozen = build.build_engine(
            phase, run.model, teacher, run.config, run.process, stats=stats, adapters=adapters
        )
        if training is not None and training.get("phase") == phase.name:
            _restore(engine, scheduler, training)
        for epoch in range(max(run.state.epoch, phase.first_epoch), phase.end_epoch):
            restored = training.get("meter") if training else None
            _run_epoch(run, phase, engine, scheduler, frozen, epoch, restored)
            training = None


def _restore_adapters(adapters: torch.nn.ModuleDict | None, training: dict | None) -> None:
    """The adapters' trained weights from ``last.pt`` (a resumed run goes on with them)."""
    saved = (training or {}).get("adapters")
    if saved is None:
        return
    if adapters is None:
        raise MarsError("last.pt holds adapters but this run's student and teacher need none")
    load_state_dict_exactly(adapters, saved, source="last.pt (adapters)")


def _restore(engine: Engine, scheduler, training: dict[str, Any]) -> None:
    engine.optimizer.load_state_dict(training["optimizer"])
    scheduler.load_state_dict({**scheduler.state_dict(), **training["scheduler"]})
    engine.scaler.load_state_dict(training["scaler"])
    run_state.set_rng_state(training["rng"])


def _run_epoch(
    run: Run,
    phase: Phase,
    engine: Engine,
    scheduler,
    frozen: list[str],
    epoch: int,
    restored: dict | None,
) -> None:
    """Train one epoch (from a mid-epoch resume point if any), validate, log, checkpoint."""
    config, started = run.config, time.perf_counter()
    run.state.epoch = epoch
    start_step, first_global = run.state.step, run.state.global_step
    run.train_loader.sampler.set_epoch(
        epoch, start=start_step * config.train.grad_accum * run.train_loader.batch_size
    )
    update_bn = config.model.frozen_bn == "update" and phase.trainable != "classifier"
    set_train_mode(run.model, frozen, update_bn)
    if run.adapters is not None:  # validation left them in eval mode (their BatchNorm)
        run.adapters.train()
    engine.loss.train()
    meter = _meter(restored, run.process)
    lrs = learning_rates(engine.optimizer)

    def on_step(step: int, meter: Meter) -> None:
        run.state.step, run.state.global_step = step, first_global + step - start_step
        every = config.train.save_every_steps
        if every and step % every == 0:
            _save_last(run, engine, scheduler, phase, meter)

    metrics, steps = train_one_epoch(
        engine,
        run.train_loader,
        epoch=epoch,
        start_step=start_step,
        on_step=on_step,
        meter=meter,
        progress=config.train.progress,
        epochs=config.schedule.epochs,
    )
    run.state.global_step = first_global + steps - start_step
    val = _validate(run, engine, epoch)
    monitored = metrics if run.val_loader is None else val  # None: no validation this epoch
    step_scheduler(scheduler, monitored["loss"] if monitored else None)
    record = {
        "epoch": epoch + 1,
        "phase": phase.name,
        "lr": lrs,
        **{f"train_{k}": v for k, v in metrics.items()},
        **{f"val_{k}": v for k, v in (val or {}).items() if k not in ("clips",)},
        "time_s": time.perf_counter() - started,
    }
    check_growth(run.state.history, record)
    run.state.history.append(record)
    run.state.epoch, run.state.step = epoch + 1, 0
    if monitored:
        _keep_best(run, phase, epoch, monitored["acc"])
    _save_last(run, engine, scheduler, phase, None)
    if run.log is not None:
        run.log.append(record)
    _show_epoch(run.bar, record)


def _show_epoch(bar: Progress | None, record: dict[str, Any]) -> None:
    """The epoch's losses and validation accuracy on the run's bar (or log line)."""
    if bar is None:
        return
    figures = {"loss": f"{record['train_loss']:.3f}", "acc": f"{record['train_acc']:.3f}"}
    if record.get("val_acc") is not None:
        # One centre clip per video: clip accuracy, not the paper's video accuracy.
        figures.update(
            val_loss=f"{record['val_loss']:.3f}", val_clip_acc=f"{record['val_acc']:.3f}"
        )
    bar.set_postfix(**figures)
    bar.update()


def _meter(restored: dict | None, process) -> Meter:
    meter = Meter(process.device)
    if restored:
        meter.restore(restored["sums"], restored["present"])
    return meter


def _validate(run: Run, engine: Engine, epoch: int) -> dict[str, float] | None:
    every, last = run.config.train.eval_every, epoch + 1 == run.config.schedule.epochs
    if run.val_loader is None or not ((epoch + 1) % every == 0 or last):
        return None
    return evaluate(engine, run.val_loader)


def _keep_best(run: Run, phase: Phase, epoch: int, acc: float) -> None:
    """``best.pt`` by validation accuracy (training accuracy without a validation set),
    or every epoch's weights with ``train.select: last`` (a few validation videos do
    not pick the epoch; ``best_acc`` is then the last epoch's).

    Epochs whose classifier is not trained (MERS ``mimic``) are never "best".
    """
    pretrain = run.config.stream == "pretrain"  # no classifier: the last epoch is the result
    last = run.config.train.select == "last" or pretrain
    if (not phase.objective.ce and not pretrain) or (acc <= run.state.best_acc and not last):
        return
    run.state.best_acc, run.state.best_epoch = acc, epoch + 1
    if run.process.is_main:
        run_state.save_best(run.best, run.model, run.meta, epoch + 1, acc)


def _save_last(run: Run, engine: Engine, scheduler, phase: Phase, meter: Meter | None) -> None:
    """``last.pt`` at ``run.state``: an epoch's end, or mid-epoch with the ``meter`` so far."""
    if not run.process.is_main:
        return
    epoch, step = run.state.epoch, run.state.step
    sums = {"sums": meter.sums.cpu(), "present": sorted(meter.present)} if meter else None
    run_state.save_last(
        run.last,
        run.model,
        run.meta,
        run.state,
        phase=phase.name,
        optimizer=engine.optimizer,
        scheduler=scheduler,
        scaler=engine.scaler,
        meter=sums,
        adapters=run.adapters,
    )
    where = f"epoch {epoch + 1}, step {step}" if step else f"end of epoch {epoch}"
    run.saved = f"{run.last} ({where})"
    print(f"checkpoint: {run.saved}", flush=True)


def _finish(run: Run) -> RunSummary:
    if run.process.is_main:
        title = f"{run.config.stream.upper()} stream: {run.run_dir.resolve().name}"
        plot_curves(run.state.history, run.run_dir / "curves.png", title)
    best = run.state.best_epoch if run.state.best_epoch > 0 else None
    return RunSummary(
        run_dir=run.run_dir,
        epochs=run.state.epoch,
        best_epoch=best,
        best_val_acc=run.state.best_acc if best else None,
        last_checkpoint=run.last,
        best_checkpoint=run.best if best else None,
        history=list(run.state.history),
    )
