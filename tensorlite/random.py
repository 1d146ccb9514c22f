"""Random streams for code that draws on the host: an int seed, a NumPy generator, or the CPU stream.

``generator=`` arguments (samplers, ``random_split``, ``DataLoader``, ``multinomial``) take an int
seed (reproducible), a ``numpy.random.Generator`` (shared state, as a ``torch.Generator``), or
``None``: the CPU stream that ``tl.manual_seed`` seeds.
"""

from __future__ import annotations

import numpy

from tensorlite.device import device as as_device

GeneratorLike = int | numpy.random.Generator | None


def host_generator(op: str, generator: GeneratorLike) -> numpy.random.Generator:
    """The NumPy generator ``generator`` stands for; ``None``: the CPU stream as it is now (after any
    ``tl.manual_seed``), so callers resolve ``None`` when they draw, not when they are built."""
    if generator is None:
        return as_device("cpu").backend.rng
    if isinstance(generator, numpy.random.Generator):
        return generator
    if isinstance(generator, (int, numpy.integer)) and not isinstance(generator, bool):
        return numpy.random.default_rng(int(generator))
    raise TypeError(f"{op}: generator must be an int seed or a numpy.random.Generator, got {type(generator).__name__}")


def seeded_once(op: str, generator: GeneratorLike) -> numpy.random.Generator | None:
    """``generator`` as a NumPy generator made once (an int seed starts one stream that later draws
    continue, as a seeded ``torch.Generator`` does); ``None`` stays ``None``."""
    return None if generator is None else host_generator(op, generator)
