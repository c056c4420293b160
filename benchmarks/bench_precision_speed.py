"""Which CPU inference path of a trained MARS network reaches 2.5x eager float32 at >= 99%
top-1 agreement (issue 16's speed target), timed interleaved on a shared machine.

Candidates (each built from the same checkpoint; failures are recorded, not fatal):

- ``fp32_eager``: the baseline, the loaded model as it is;
- ``fp32``: BatchNorm folded, oneDNN convs, channels_last_3d (``precision.convert``);
- ``bf16``: the same in bfloat16 (``precision.convert``; channels_last_3d);
- ``bf16_jit``: that, traced and frozen by TorchScript (constants folded, no Python);
- ``bf16_mkldnn``: ``torch.utils.mkldnn.to_mkldnn(..., bfloat16)``: weights reordered
  once into oneDNN's blocked layout, activations kept in it between layers;
- ``bf16_compile``: ``torch.compile`` (inductor, C++ codegen, weights frozen);
- ``int8``: ``precision.convert`` (torch.ao FX static, per-channel weights, x86; the
  first conv on 2x2 pixel blocks, max-pools and the classifier in float32);
- ``fp32_jit``: ``fp32`` traced and frozen by TorchScript;
- ``int8_export`` / ``bf16_export``: the TorchScript file ``mars export --precision``
  writes, loaded back and fed plain (B, C, T, H, W) clips, as ``mars predict`` runs it.

Each round times every candidate at batch 1 and 8 in turn (median of the rounds), so
that a change of load on the shared CPU hits all alike; the load average is recorded.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_precision_speed.py \\
        --checkpoint CKPT    # the study's runs/synthetic/split1-seed0/runs/mars_paper/...last.pt
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
import warnings
from pathlib import Path

from harness import write_result

CANDIDATES = ("fp32_eager", "fp32", "bf16", "bf16_jit", "bf16_mkldnn", "bf16_compile", "int8",
              "fp32_jit", "int8_export", "bf16_export")


def build(name: str, model, calibration, example):
    """(network, input adapter) of candidate ``name``; the adapter makes a float32
    (B, C, T, H, W) batch into what the network takes."""
    import torch

    from mars_action.inference.precision import convert
    from mars_action.models.optimize import to_model_layout

    def layout(network):
        return lambda clips: to_model_layout(network, clips)

    if name == "fp32_eager":
        return model.eval(), lambda clips: clips
    if name in ("fp32", "bf16"):
        network = convert(model, name)
        return network, layout(network)
    if name == "int8":
        network = convert(model, "int8", torch.split(calibration, 8))
        return network, layout(network)
    if name.endswith("_export"):  # the file `mars export --precision` writes, as loaded
        return exported(model, name.removesuffix("_export"), calibration), lambda clips: clips
    if name == "fp32_jit":
        fp32 = convert(model, "fp32")
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.freeze(torch.jit.trace(fp32.eval(), to_model_layout(fp32, example)))
        return traced, layout(fp32)
    bf16 = convert(model, "bf16")
    if name == "bf16_jit":
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.freeze(torch.jit.trace(bf16.eval(), to_model_layout(bf16, example)))
        return traced, layout(bf16)
    if name == "bf16_mkldnn":
        from torch.utils import mkldnn

        from mars_action.models.optimize import fold_batchnorm

        network = mkldnn.to_mkldnn(fold_batchnorm(copy.deepcopy(model).eval()), torch.bfloat16)

        def run(clips):
            return network(clips.to_mkldnn(torch.bfloat16)).to_dense(torch.float32)

        return run, lambda clips: clips
    if name == "bf16_compile":
        import torch._inductor.config as inductor

        inductor.freezing = True
        compiled = torch.compile(bf16, backend="inductor")
        return compiled, layout(bf16)
    raise ValueError(name)


def exported(model, precision: str, calibration):
    """``model`` at ``precision`` written as TorchScript by ``export_reduced`` and loaded
    back, as ``mars predict``/``stream`` run it (no floor: the agreement is measured here)."""
    import tempfile

    import torch

    from mars_action.inference.precision import export_reduced
    from mars_action.models.checkpoint import CheckpointMeta

    channels, frames, side = calibration.shape[1:4]  # the traced clip's size
    meta = CheckpointMeta(arch="bench", in_channels=channels, num_classes=0, clip_len=frames,
                          crop_size=side)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "model.torchscript.pt"
        export_reduced(model, meta, out, precision, calibration[:8], calibration,
                       min_agreement=0.0)
        return torch.jit.load(str(out))


def video_top1(logits, counts: list[int]):
    """Each video's top-1 class from its clips' mean logits (``mars eval``'s default), the
    clips in video order, ``counts`` clips a video."""
    import torch

    return torch.stack([part.mean(0) for part in torch.split(logits, counts)]).argmax(1)


def measure(model, test, counts, calibration, names, rounds: int, repeat: int) -> dict:
    """Agreement with eager float32 on ``test`` (of its clips, and of the videos whose
    clips they are, ``counts`` a video) and ms per clip (batch 1 and 8) of each candidate,
    the timings interleaved over ``rounds``."""
    import torch

    built, row = {}, {}
    with torch.inference_mode():
        logits = torch.cat([model.eval()(b) for b in torch.split(test, 8)])
        reference, reference_videos = logits.argmax(1), video_top1(logits, counts)
        for name in names:
            tic = time.perf_counter()
            try:
                network, adapt = build(name, model, calibration, test[:8])
                logits = torch.cat([network(adapt(b)) for b in torch.split(test, 8)]).float()
                network(adapt(test[:1]))  # batch 1 warm (a compiled net compiles it here)
            except Exception as error:  # noqa: BLE001 - a candidate that fails is a result
                row[name] = {"failed": f"{type(error).__name__}: {str(error)[:300]}"}
                print(name, row[name], flush=True)
                continue
            built[name] = (network, adapt)
            row[name] = {"agreement": float((logits.argmax(1) == reference).float().mean()),
                         "video_agreement": float((video_top1(logits, counts)
                                                   == reference_videos).float().mean()),
                         "build_s": round(time.perf_counter() - tic, 1), "ms_b1": [], "ms_b8": []}
            print(name, row[name], flush=True)
        inputs = {name: {b: adapt(test[:b]) for b in (1, 8)} for name, (_, adapt) in built.items()}
        for _ in range(rounds):
            for name, (network, _) in built.items():
                for batch in (1, 8):
                    clips = inputs[name][batch]
                    network(clips)  # warm after the other candidates ran
                    tic = time.perf_counter()
                    for _ in range(repeat):
                        network(clips)
                    row[name][f"ms_b{batch}"].append(
                        (time.perf_counter() - tic) * 1000 / repeat / batch)
    for name in built:
        for batch in (1, 8):
            row[name][f"ms_per_clip_b{batch}"] = statistics.median(row[name][f"ms_b{batch}"])
    eager = row.get("fp32_eager", {})
    for name in built:
        for batch in (1, 8):
            key = f"ms_per_clip_b{batch}"
            if key in eager:
                row[name][f"speedup_b{batch}"] = eager[key] / row[name][key]
    return row


def test_clips(checkpoint: Path, limit: int, stride: int = 1, study: str = "synthetic"):
    """The checkpoint's test clips (every clip of the test videos, in order, up to
    ``limit``) and 32 training clips for int8 calibration, from the study that trained it:
    the motion-transfer study's synthetic set (split 1, seed 0), or ``ucf101-112``:
    UCF101 split 1 at 112 px (``deploy_ucf101.py``)."""
    import frontier_synthetic as fs
    import torch
    from bench_frontier import _clips

    from mars_action.demo.settings import video_source
    from mars_action.evaluation.loading import DataSettings, build_test_set
    from mars_action.models import load_checkpoint

    model, meta = load_checkpoint(checkpoint)
    mt = fs.study()
    if study == "ucf101-112":
        import deploy_ucf101

        settings, layout = deploy_ucf101.settings(), deploy_ucf101.layout()
    else:
        settings, layout = mt.settings_for("synthetic", 1, 0), mt.layout_for("synthetic", 1, 0)
    videos = video_source(settings, layout)
    data = DataSettings(format=videos.format, root=videos.root, annotations=videos.annotations,
                        frame_root=str(layout.frames), fold=videos.fold,
                        val_fraction=settings.val_fraction, seed=settings.split_seed,
                        stride=stride, flow_prefix=mt.flow_prefix(settings))
    test, counts = video_clips(build_test_set(data, meta, "test"), limit)
    config = mt.stream_experiment("rgb", settings, layout)
    train_set, _ = mt._datasets(config, settings)
    torch.manual_seed(0)
    return model, meta, test, counts, _clips(train_set, "rgb", 32)


def video_clips(dataset, limit: int):
    """The clips (K, C, T, S, S) of the dataset's first videos, whole videos up to ``limit``
    clips, and how many clips each video gave."""
    import torch

    clips, counts = [], []
    for index in range(len(dataset)):
        value = torch.as_tensor(dataset[index]["rgb"])
        value = value if value.dim() == 5 else value[None]
        if counts and sum(counts) + len(value) > limit:
            break
        clips.append(value)
        counts.append(len(value))
    return torch.cat(clips), counts


def main() -> None:
    import torch
    import torch.nn.functional as F

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=CANDIDATES)
    parser.add_argument("--sides", type=int, nargs="+", default=[0, 112],
                        help="clip sides (0: the trained size)")
    parser.add_argument("--clips", type=int, default=192, help="test clips for the agreement")
    parser.add_argument("--study", choices=("synthetic", "ucf101-112"), default="synthetic",
                        help="the data the checkpoint was trained on (its test videos)")
    parser.add_argument("--stride", type=int, default=1, help="the model's temporal stride")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--name", default="precision_speed", help="results/<name>.json")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, meta, test, counts, calibration = test_clips(args.checkpoint, args.clips,
                                                        args.stride, args.study)
    figures = {"checkpoint": str(args.checkpoint), "arch": meta.arch, "stream": meta.stream,
               "threads": 1, "rounds": args.rounds, "repeat": args.repeat, "sizes": {}}
    for side in args.sides:
        clips, calib = test, calibration
        if side:
            clips, calib = (F.interpolate(c, size=(c.shape[2], side, side), mode="trilinear")
                            for c in (test, calibration))
        load = os.getloadavg()
        row = measure(model, clips, counts, calib, args.candidates, args.rounds, args.repeat)
        label = f"{clips.shape[2]}x{clips.shape[3]}x{clips.shape[4]}"
        figures["sizes"][label] = {"test_clips": len(clips), "test_videos": len(counts),
                                   "load_before": load,
                                   "load_after": os.getloadavg(), **row}
        for name, entry in row.items():
            if "speedup_b1" in entry:
                print(f"{label} {name}: x{entry['speedup_b1']:.2f} / x{entry['speedup_b8']:.2f} "
                      f"(b1/b8), {entry['ms_per_clip_b1']:.2f} / {entry['ms_per_clip_b8']:.2f} "
                      f"ms, agreement {entry['agreement']:.1%} of clips, "
                      f"{entry['video_agreement']:.1%} of videos", flush=True)
    best = []
    for label, row in figures["sizes"].items():
        ok = [(min(e["speedup_b1"], e["speedup_b8"]), n) for n, e in row.items()
              if isinstance(e, dict) and e.get("agreement", 0) >= 0.99 and "speedup_b1" in e
              and n != "fp32_eager"]
        if ok:
            best.append(f"{label}: {max(ok)[1]} x{max(ok)[0]:.2f}")
    write_result(args.name, figures,
                 summary=f"{meta.arch} {meta.stream}, best min(b1, b8) speed-up at >= 99% "
                         f"agreement: {'; '.join(best)}")


if __name__ == "__main__":
    main()
