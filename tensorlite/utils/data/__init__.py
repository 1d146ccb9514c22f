"""Datasets, samplers and batching, as ``torch.utils.data``.

- ``dataset``: ``Dataset``, ``TensorDataset``, ``Subset``, ``random_split``
- ``sampler``: ``Sampler``, ``SequentialSampler``, ``RandomSampler``, ``SubsetRandomSampler``,
  ``WeightedRandomSampler``, ``BatchSampler``
- ``dataloader``: ``DataLoader``, ``default_collate``, ``default_convert``
- ``distributed``: ``DistributedSampler`` (each process of a data-parallel run reads its share)
"""

from tensorlite.utils.data.dataloader import DataLoader, default_collate, default_convert
from tensorlite.utils.data.dataset import Dataset, Subset, TensorDataset, random_split
from tensorlite.utils.data.distributed import DistributedSampler
from tensorlite.utils.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

__all__ = ["BatchSampler", "DataLoader", "Dataset", "DistributedSampler", "RandomSampler", "Sampler",
           "SequentialSampler", "Subset", "SubsetRandomSampler", "TensorDataset", "WeightedRandomSampler",
           "default_collate", "default_convert", "random_split"]
