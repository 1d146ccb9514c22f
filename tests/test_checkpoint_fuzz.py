"""Property-based fuzz of the checkpoint reader: a mutated real checkpoint (byte flips, header and tree field
mutations, length mutations) reads as a CheckpointError or exactly as the original, never anything else.
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
@given(which=st.integers(0, 1), mutation=st.sampled_from(["byte flip", "field", "length"]), rng=st.randoms())
def test_mutants_fail_cleanly_or_read_identically(which: int, mutation: str, rng: random.Random) -> None:
    original = checkpoints()[which]
    data = fuzz().MUTATIONS[mutation](original.data, rng)
    results = fuzz().outcomes(data, original, folder() / "case.safetensors", timeout=5.0)
    assert all(result in fuzz().ACCEPTED for result in results.values()), results
