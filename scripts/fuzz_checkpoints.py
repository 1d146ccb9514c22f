"""Fuzz the checkpoint reader: mutate real checkpoints and read each mutant with tl.load and tl.load_metadata.

Every read must end in a ``CheckpointError`` or return exactly what the original file holds; any other
exception, a different result or a read taking over ``--timeout`` seconds fails the run (exit 1). One
exception: a mutant with no ``tensorlite_`` key left (``__metadata__`` deleted) is a plain safetensors file
by definition, and reads as one ("plain safetensors"): no checksum can survive its own deletion.
Mutations: byte flips, field mutations of the JSON header and of tensorlite's trees inside it, and length
mutations (the 8-byte prefix, truncation, bytes appended, inserted or removed). The checkpoints: a small
one and a model + AdamW optimizer state with nested metadata, both with checksums, and two files written by
tensorlite 0.1.0 (tests/fixtures/tensorlite-0.1.0), which have none. A mutant of a 0.1.0 file may also load
as something else, counted apart and never hidden: "loaded, data not verifiable (legacy)" when only its
tensors' bytes changed, "loaded, header not verifiable (legacy)" when its header changed yet still obeys
every rule. Any other outcome of a 0.1.0 file fails the run as for the others.

    python scripts/fuzz_checkpoints.py [--cases 20000] [--seed 0] [--timeout 5]

tests/test_checkpoint_fuzz.py drives the same mutations from hypothesis.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tensorlite as tl

DEEP = "\x00deep\x00"  # stands for 5,000 nested lists, spliced into the JSON text (json.dumps would recurse)
INTERESTING = [None, True, 0, -1, 1.5, 2**63, 2**64 + 1, "", "4", "F32", "BF16", [], [0], [0, "4"], [-1, 4],
               [2**62, 2**62], {}, {"tensor": "w"}, {"dict": []}, {"list": [{"tensor": "0.weight"}]}]


LEGACY = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tensorlite-0.1.0"
LEGACY_FILES = {"0.1.0 objects": LEGACY / "objects.safetensors",
                "0.1.0 xor run": LEGACY / "xor" / "checkpoint.safetensors"}
NAMES = ("small", "nested", *LEGACY_FILES)


@dataclass(frozen=True)
class Checkpoint:
    name: str
    data: bytes
    loaded: dict[str, Any]
    metadata: dict[str, Any]
    legacy: bool  # written by tensorlite 0.1.0: no checksums


def real_checkpoints(folder: Path) -> list[Checkpoint]:
    """A small checkpoint and a model + optimizer one, then the 0.1.0 files, as bytes and as loaded."""
    tl.manual_seed(0)
    model = tl.nn.Sequential(tl.nn.Linear(3, 4), tl.nn.ReLU(), tl.nn.Linear(4, 2))
    optimizer = tl.optim.AdamW(model.parameters(), lr=1e-3)
    model(tl.randn(5, 3)).sum().backward()
    optimizer.step()
    objects = {
        "small": ({"w": tl.ones(3), "step": 1}, {"model": "m"}),
        "nested": ({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3,
                    "history": [(1, 0.5), (2, 0.25)]},
                   {"model": "mlp", "config": {"sizes": [3, 4, 2], "bias": True}, "itos": {0: "a", 1: "\n"}}),
    }
    checkpoints = []
    for name, (obj, metadata) in objects.items():
        path = folder / f"{name}.safetensors"
        tl.save(obj, path, metadata=metadata)
        checkpoints.append(Checkpoint(name, path.read_bytes(), tl.load(path), tl.load_metadata(path), False))
    for name, path in LEGACY_FILES.items():
        checkpoints.append(Checkpoint(name, path.read_bytes(), tl.load(path), tl.load_metadata(path), True))
    return checkpoints


# -- mutations ------------------------------------------------------------------------------------------
def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def _mutate_json(value: Any, rng: random.Random) -> Any:
    """``value`` with one node somewhere inside replaced, deleted, duplicated or nested very deep."""
    if isinstance(value, (dict, list)) and value and rng.random() < 0.7:
        keys = list(value) if isinstance(value, dict) else list(range(len(value)))
        key = rng.choice(keys)
        choice = rng.random()
        if choice < 0.1:
            copy = dict(value) if isinstance(value, dict) else list(value)
            del copy[key]
            return copy
        if choice < 0.15 and isinstance(value, list):
            return value + [value[key]]
        copy = dict(value) if isinstance(value, dict) else list(value)
        copy[key] = _mutate_json(value[key], rng)
        return copy
    if isinstance(value, str) and value[:1] in "{[" and rng.random() < 0.8:
        return _dumps(_mutate_json(json.loads(value), rng))  # a tree inside a metadata string
    if rng.random() < 0.05:
        return DEEP
    if rng.random() < 0.05:
        deep: Any = 1
        for _ in range(70):
            deep = {"list": [deep]}
        return deep
    return rng.choice(INTERESTING)


def _dumps(value: Any) -> str:
    return json.dumps(value).replace(json.dumps(DEEP), "[" * 5000 + "]" * 5000)


def mutate_field(data: bytes, rng: random.Random) -> bytes:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    text = _dumps(_mutate_json(header, rng)).encode()
    if rng.random() < 0.5:
        text += b" " * (-len(text) % 8)  # the padding safetensors writes
    return len(text).to_bytes(8, "little") + text + data[8 + n:]


def mutate_length(data: bytes, rng: random.Random) -> bytes:
    n = int.from_bytes(data[:8], "little")
    choice = rng.randrange(5)
    if choice == 0:
        claim = rng.choice([0, 1, n - 1, n + 1, n + 8, len(data), 2**63, 2**64 - 1, 100_000_001])
        return max(claim, 0).to_bytes(8, "little") + data[8:]
    if choice == 1:
        return data[:rng.randrange(len(data))]
    if choice == 2:
        return data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    at = rng.randrange(len(data))
    if choice == 3:
        return data[:at] + bytes(rng.randint(1, 8)) + data[at:]
    return data[:at] + data[at + rng.randint(1, 8):]


MUTATIONS = {"byte flip": flip_bytes, "field": mutate_field, "length": mutate_length}


# -- outcomes -------------------------------------------------------------------------------------------
ACCEPTED = ("CheckpointError", "identical", "plain safetensors")
UNVERIFIABLE = ("loaded, data not verifiable (legacy)", "loaded, header not verifiable (legacy)")


def accepted(original: Checkpoint) -> tuple[str, ...]:
    """The outcomes allowed for mutants of ``original``: a file without checksums may also load differently."""
    return ACCEPTED + UNVERIFIABLE if original.legacy else ACCEPTED


class Hang(Exception):
    pass


def same(a: Any, b: Any) -> bool:
    """Equal trees: same container and key types, values, tensor dtypes, shapes and elements."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tl.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and a.numpy().tobytes() == b.numpy().tobytes()
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(same, a, b))
    return a == b


def _difference(data: bytes, original: Checkpoint, loaded: Any) -> str:
    """What a read of ``data`` that differs from ``original``'s is called."""
    if b"tensorlite_" not in data and isinstance(loaded, dict):
        return "plain safetensors"
    if original.legacy:
        n = int.from_bytes(original.data[:8], "little")
        return UNVERIFIABLE[0] if data[:8 + n] == original.data[:8 + n] else UNVERIFIABLE[1]
    return "different result"


def outcomes(data: bytes, original: Checkpoint, path: Path, timeout: float) -> dict[str, str]:
    """How ``tl.load`` and ``tl.load_metadata`` end on the file ``data``: CheckpointError, identical, or else."""
    path.write_bytes(data)

    def expire(signum: int, frame: Any) -> None:
        raise Hang

    results = {}
    for reader, expected in ((tl.load, original.loaded), (tl.load_metadata, original.metadata)):
        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            loaded = reader(path)
            result = "identical" if same(loaded, expected) else _difference(data, original, loaded)
        except tl.CheckpointError:
            result = "CheckpointError"
        except Hang:
            result = f"hang (over {timeout} s)"
        except Exception as exc:  # the point of the fuzz: name whatever else escapes
            result = f"{type(exc).__name__}: {str(exc)[:200]}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        results[reader.__name__] = result
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds one read may take")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    counts: Counter[tuple[str, str, str]] = Counter()
    failures = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        checkpoints = real_checkpoints(Path(folder))
        for case in range(args.cases):
            original, (kind, mutate) = rng.choice(checkpoints), rng.choice(list(MUTATIONS.items()))
            for reader, result in outcomes(mutate(original.data, rng), original, Path(folder) / "case", args.timeout
                                           ).items():
                counts[original.name, reader, result.split(":")[0]] += 1
                if result not in accepted(original):
                    failures.append(f"case {case} ({original.name}, {kind}): {reader} -> {result}")
    elapsed = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"{args.cases} mutations (seed {args.seed}) in {elapsed:.1f} s, peak RSS {peak_mib:.0f} MiB")
    for (name, reader, result), count in sorted(counts.items()):
        print(f"  {name:14} {reader:14} {result:38} {count}")
    for failure in failures[:20]:
        print(failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
