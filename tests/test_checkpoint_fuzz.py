"""Property-based fuzz of the checkpoint reader: a mutated real checkpoint (byte flips, header and tree field
mutations, length mutations) reads as a CheckpointError or exactly as the original, never anything else; a
mutated file written by tensorlite 0.1.0 (no checksums) may also load as a different value.
A few hundred examples here; TENSORLITE_FUZZ_EXAMPLES=N runs N (scripts/fuzz_checkpoints.py runs 20,000)."""

from __future__ import annotations

import importlib.util
import os
import random
import sys
import tempfile
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fuzz_checkpoints.py"
EXAMPLES = int(os.environ.get("TENSORLITE_FUZZ_EXAMPLES", "300"))


@cache
def fuzz() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_checkpoints", SCRIPT)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look it up there
    spec.loader.exec_module(module)
    return module


@cache
def folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="tensorlite-fuzz-"))


@cache
def checkpoints() -> list[Any]:
    return fuzz().real_checkpoints(folder())


@settings(max_examples=EXAMPLES, deadline=None, database=None)
@given(which=st.sampled_from(range(len(fuzz().NAMES))), mutation=st.sampled_from(["byte flip", "field", "length"]),
       rng=st.randoms())
def test_mutants_fail_cleanly_or_read_identically(which: int, mutation: str, rng: random.Random) -> None:
    original = checkpoints()[which]
    data = fuzz().MUTATIONS[mutation](original.data, rng)
    results = fuzz().outcomes(data, original, folder() / "case.safetensors", timeout=5.0)
    assert all(result in fuzz().accepted(original) for result in results.values()), results


def test_only_files_without_checksums_may_load_differently() -> None:
    """A flipped tensor byte: an error in a file with checksums, a counted different load in a 0.1.0 file."""
    for original in checkpoints():
        data = bytearray(original.data)
        data[-1] ^= 1
        results = fuzz().outcomes(bytes(data), original, folder() / "flip.safetensors", timeout=5.0)
        expected = "loaded, data not verifiable (legacy)" if original.legacy else "CheckpointError"
        assert results == {"load": expected, "load_metadata": "identical"}, original.name
