"""The Python half of ``scripts/device_check.sh``: what can be checked anywhere, the long training run, and the
summary. See the shell script for the whole check.

    python scripts/device_check.py preflight OUT_DIR    # CuPy importable? CUDA usable? fused kernels' math on NumPy
    python scripts/device_check.py train OUT_DIR        # 300 iterations of the `gpu` preset on cuda, with its loss
    python scripts/device_check.py summary OUT_DIR      # summary.json and summary.txt from the parts' JSON files

``preflight`` exits 0 when CUDA is usable, 3 when it is not (after checking what it can), 1 on a failed check.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

# The tests that run on cuda, by file (TENSORLITE_TEST_DEVICES=cuda): every op's forward and backward (gradcheck
# and PyTorch parity), every layer, one training step of each model, devices and mixed precision, tl.cuda.
TEST_SUBSET = [
    "tests/test_ops_elementwise.py",
    "tests/test_ops_reduce_shape_index.py",
    "tests/test_autograd.py",
    "tests/test_nn_layers.py",
    "tests/test_nn_conv.py",
    "tests/test_nn_losses.py",
    "tests/test_rnn.py",
    "tests/test_attention_gpt.py",
    "tests/test_model_steps.py",
    "tests/test_optim.py",
    "tests/test_amp.py",
    "tests/test_multi_device.py",
    "tests/test_cuda.py",
    "tests/test_fused.py",
]
TRAIN_ITERS = 300


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def preflight(out: Path) -> int:
    """Check what needs no GPU: CuPy imports, CUDA is usable or why not, the fused kernels' math on NumPy."""
    from tensorlite.backends.cupy_backend import cuda_status

    report: dict[str, Any] = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        import cupy

        report["cupy"] = cupy.__version__
    except ImportError as exc:
        report["cupy"] = f"not importable: {exc}"
    usable, reason = cuda_status()
    report["cuda_usable"], report["cuda_status"] = usable, reason
    try:
        from tensorlite.backends import fused

        report["fused_math_on_numpy"] = fused.self_check()
    except Exception:  # a failed check is reported, not raised: the summary says what failed
        report["fused_math_on_numpy"] = "FAILED:\n" + traceback.format_exc()
    write_json(out / "preflight.json", report)
    failed = isinstance(report["fused_math_on_numpy"], str)
    print(f"preflight: CuPy {report['cupy']}; CUDA {'usable' if usable else 'not usable'} ({reason}); fused kernels' "
          f"math on NumPy: {'FAILED' if failed else 'ok'}")
    return 1 if failed else 0 if usable else 3


def train(out: Path, device: str, iters: int, preset: str) -> int:
    """``iters`` iterations of a GPT preset on Shakespeare (LMTrainer's step: AdamW, clipping, warmup/cosine) with the
    loss every 50 and the time per iteration after the first 10 (kernel compilation)."""
    from tensorlite.models import GPT, GPTConfig

    import tensorlite as tl
    from tensorlite.cli.presets import GPT_PRESETS
    from tensorlite.datasets import CharTokenizer, TextData, load_shakespeare
    from tensorlite.training import LMTrainConfig, LMTrainer

    settings = GPT_PRESETS[preset]
    text = load_shakespeare()
    tokenizer = CharTokenizer.from_text(text)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, **{k: settings[k] for k in (
        "n_layer", "n_head", "n_embd", "block_size", "dropout", "bias")})
    tl.manual_seed(1337)
    model = GPT(config).to(device)
    schedule = LMTrainConfig(batch_size=settings["batch_size"], max_iters=iters, warmup_iters=min(100, iters // 3))
    trainer = LMTrainer(model, TextData(tokenizer.encode(text)), schedule, progress=False)
    losses: dict[int, float] = {}
    started = None
    for i in range(1, iters + 1):
        loss = trainer.train_step()
        if i == min(10, iters):
            if device.startswith("cuda"):
                tl.cuda.synchronize()
            started = time.perf_counter()
        if i % 50 == 0 or i in (1, iters):
            losses[i] = loss.item()  # a read: only at these log points
    seconds = time.perf_counter() - started
    timed = iters - min(10, iters)
    result = {"device": device, "preset": preset, "iters": iters, "loss": losses,
              "ms_per_iter": seconds / timed * 1e3 if timed else None,
              "first_loss": losses[1], "last_loss": losses[iters],
              "loss_fell": losses[iters] < losses[1]}
    if device.startswith("cuda"):
        result["memory_pool"] = tl.cuda.memory_summary_line()
    write_json(out / "train.json", result)
    print(f"train: {iters} iterations of the `{preset}` preset on {device}: loss {losses[1]:.3f} -> "
          f"{losses[iters]:.3f}" + (f", {result['ms_per_iter']:.1f} ms/iteration" if timed else ""))
    return 0 if result["loss_fell"] else 1


def summary(out: Path) -> int:
    """summary.json (every part's JSON, the date and the machine) and summary.txt (the headline figures)."""
    parts = {path.stem: json.loads(path.read_text()) for path in sorted(out.glob("*.json"))
             if path.stem != "summary"}
    phases = out / "phases.txt"
    parts["phases"] = phases.read_text().splitlines() if phases.exists() else []
    parts["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    parts["host"] = platform.node()
    gpu = out / "nvidia-smi.txt"
    parts["gpu"] = gpu.read_text().strip() if gpu.exists() else None
    write_json(out / "summary.json", parts)
    lines = [f"device check, {parts['date']}, {parts['gpu'] or 'no GPU'}"]
    lines += parts["phases"]
    bench = parts.get("bench")
    if bench:
        gpt, cnn = bench["gpt"], bench["mnist_cnn"]
        lines.append(f"GPT `{bench['preset']}` preset ms/iter: tensorlite {gpt['ms_per_iter']['tensorlite']:.2f}, "
                     f"torch {gpt['ms_per_iter']['torch']:.2f} (ratio {gpt['ratio']:.2f}; peak MiB {gpt['peak_mib']})")
        lines.append(f"MNISTCNN ms/step: tensorlite {cnn['ms_per_step']['tensorlite']:.2f}, torch "
                     f"{cnn['ms_per_step']['torch']:.2f} (ratio {cnn['ratio']:.2f}; peak MiB {cnn['peak_mib']})")
        lines.append(f"sampling chars/s: {bench['sampling_chars_per_s']}")
    trained = parts.get("train")
    if trained:
        lines.append(f"{trained['iters']} iterations of `{trained['preset']}`: loss {trained['first_loss']:.3f} -> "
                     f"{trained['last_loss']:.3f}, {trained['ms_per_iter']:.1f} ms/iter")
    (out / "summary.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["preflight", "train", "summary", "tests"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--iters", type=int, default=TRAIN_ITERS)
    parser.add_argument("--preset", default="gpu")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.part == "preflight":
        return preflight(args.out)
    if args.part == "train":
        return train(args.out, args.device, args.iters, args.preset)
    if args.part == "tests":  # the subset, one path a line, for the shell script
        print("\n".join(TEST_SUBSET))
        return 0
    return summary(args.out)


if __name__ == "__main__":
    sys.exit(main())
