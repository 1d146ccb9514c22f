"""Parallel training, as ``torch.nn.parallel``: ``DistributedDataParallel`` (see ``tensorlite.distributed``)."""

from tensorlite.nn.parallel.distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
