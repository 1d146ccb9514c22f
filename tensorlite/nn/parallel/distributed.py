"""``DistributedDataParallel``: one model replica per process, gradients averaged across processes during
backward, as PyTorch's.

Wrapping a module broadcasts its parameters and buffers from rank 0 (every rank then starts from the same
weights, whatever its seed), after checking that every rank wraps a model of the same shapes. Its
parameters are grouped into buckets (``buckets.py``). During a backward that follows a forward through the
wrapper, a post-accumulate-grad hook on each parameter copies its finished gradient into its bucket; a full
bucket starts an averaging all-reduce without blocking (MPI's ``Iallreduce``, or NCCL on its own stream),
in bucket order, so that the same collectives start in the same order on every rank, while backward goes
on computing the earlier layers' gradients. When the last bucket has started, the hook waits for all of
them and copies the averages back into each ``.grad``: when ``backward()`` returns, every rank holds the
same averaged gradients, and optimizers need no change.

Each rank should see a different part of the data (``tl.utils.data.DistributedSampler``); with equal
per-rank batches the averaged gradient is the gradient of the mean loss over the combined batch.
"""

from __future__ import annotations

import contextlib
import functools
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy

from tensorlite import distributed as dist
from tensorlite.autograd import is_grad_enabled, no_grad
from tensorlite.creation import tensor
from tensorlite.device import Device
from tensorlite.device import device as as_device
from tensorlite.nn.module import Module
from tensorlite.nn.parallel.buckets import FIRST_BUCKET_BYTES, Bucket, assign_buckets, flatten, unflatten_into
from tensorlite.tensor import Tensor

BROADCAST_BUCKET_BYTES = 250 * 2**20  # parameters and buffers are broadcast in pieces of at most this (PyTorch's)


def broadcast_coalesced(tensors: Sequence[Tensor], src: int = 0, cap_bytes: int = BROADCAST_BUCKET_BYTES) -> None:
    """Overwrite ``tensors`` on every rank with rank ``src``'s, a few flat buffers at a time, in place."""
    for indices in assign_buckets(tensors, cap_bytes):
        arrays = [tensors[i]._data for i in indices]
        device = tensors[indices[0]].device
        flat = Tensor._make(flatten(arrays, device.backend.xp), device, False, None)
        dist.broadcast(flat, src)
        unflatten_into(flat._data, arrays)


class DistributedDataParallel(Module):
    """Data-parallel training of ``module``: call it as the module, then ``loss.backward()`` leaves every rank's
    ``.grad`` the average over ranks.

    ``bucket_cap_mb``: the size of a gradient bucket in MiB (larger: fewer, longer messages; smaller:
    communication starts sooner in backward). ``broadcast_buffers``: send rank 0's buffers (BatchNorm's
    running statistics) to every rank before each forward in training mode. ``device_ids``: None, or the one
    device the module's parameters are on (PyTorch's ``[local_rank]``). Every parameter that requires grad
    must get a gradient from each backward (PyTorch's default, ``find_unused_parameters=False``). The wrapped
    module is ``.module``; ``state_dict()`` keys carry its ``module.`` prefix, as PyTorch's.
    """

    def __init__(self, module: Module, device_ids: Sequence[int | str | Device] | None = None, *,
                 broadcast_buffers: bool = True, bucket_cap_mb: float = 25.0) -> None:
        super().__init__()
        if not dist.is_initialized():
            raise ValueError("DistributedDataParallel: " + dist._NOT_INITIALIZED)
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a tl.nn.Module, got {type(module).__name__}")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got {bucket_cap_mb}")
        self.module = module
        self.broadcast_buffers, self.bucket_cap_mb = broadcast_buffers, bucket_cap_mb
        self.require_backward_grad_sync = True  # False inside no_sync()
        named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
        self._names = [name for name, _ in named]
        self._params = [p for _, p in named]
        self._check_devices(device_ids)
        self._check_same_model()
        with no_grad():
            broadcast_coalesced([*module.parameters(), *module.buffers()])
        cap = bucket_cap_mb * 2**20
        self._buckets = [Bucket([self._params[i] for i in indices])
                         for indices in assign_buckets(self._params, cap, FIRST_BUCKET_BYTES)]
        index = {id(p): i for i, p in enumerate(self._params)}
        self._slot: dict[int, tuple[Bucket, int]] = {}  # parameter index -> (its bucket, its place there)
        for bucket in self._buckets:
            for slot, param in enumerate(bucket.params):
                self._slot[index[id(param)]] = (bucket, slot)
        self._handles = [p.register_post_accumulate_grad_hook(functools.partial(self._grad_ready, i))
                         for i, p in enumerate(self._params)]
        self._armed = False  # a forward through the wrapper asked for the next backward's gradients to be averaged
        self._launched = 0  # buckets whose all-reduce has started in this backward

    def _check_devices(self, device_ids: Sequence[int | str | Device] | None) -> None:
        devices = {str(p.device) for p in self._params}
        if len(devices) > 1:
            raise ValueError(f"DistributedDataParallel: the module's parameters are on several devices "
                             f"({', '.join(sorted(devices))}): move it to one device before wrapping it")
        if device_ids is None or not self._params:
            return
        wanted = [as_device(d if not isinstance(d, int) else f"cuda:{d}") for d in device_ids]
        if len(wanted) != 1 or str(wanted[0]) not in devices:
            raise ValueError(f"DistributedDataParallel: device_ids must be None or the one device the module is on "
                             f"({devices.pop()}), got {list(device_ids)}")

    def _check_same_model(self) -> None:
        """Every rank wraps parameters of the same count, sizes and shapes (else a collective would hang or mix
        up tensors): a minimum and a maximum over ranks of a small signature must agree."""
        shapes = ";".join(f"{tuple(p.shape)}{p.dtype}" for p in self._params)
        signature = [len(self._params), sum(p.numel() for p in self._params), zlib.crc32(shapes.encode())]
        low, high = (tensor(numpy.array(signature, dtype=numpy.int64), device="cpu") for _ in range(2))
        dist.all_reduce(low, dist.ReduceOp.MIN)
        dist.all_reduce(high, dist.ReduceOp.MAX)
        if low.tolist() != high.tolist():
            raise RuntimeError(f"DistributedDataParallel: the ranks wrap different models (rank {dist.get_rank()}: "
                               f"{signature[0]} parameters of {signature[1]:,} elements; over all ranks the counts "
                               f"range from {low.tolist()[:2]} to {high.tolist()[:2]}, or the shapes differ): every "
                               "rank must build the same model")

    # -- forward ---------------------------------------------------------------------------------------------
    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        self._check_previous_reduction()
        if self.broadcast_buffers and self.training and is_grad_enabled():
            buffers = list(self.module.buffers())
            if buffers:
                with no_grad():
                    broadcast_coalesced(buffers)
        self._armed = is_grad_enabled() and self.require_backward_grad_sync
        if self._armed:
            for bucket in self._buckets:
                bucket.reset()
            self._launched = 0
        return self.module(*inputs, **kwargs)

    def _check_previous_reduction(self) -> None:
        """Refuse to start a step while the last backward left a reduction half done (a parameter got no gradient)."""
        if not self._armed or all(b.waiting == len(b.params) for b in self._buckets):
            return  # no backward since the last forward, or its reduction finished
        missing = [name for i, name in enumerate(self._names)
                   if not self._slot[i][0].arrived[self._slot[i][1]]]
        raise RuntimeError("DistributedDataParallel: the previous backward produced no gradient for "
                           f"{', '.join(missing)}, so its gradients were never averaged across ranks. Every "
                           "parameter that requires grad must take part in the loss; set requires_grad=False on "
                           "those that do not, before wrapping the module")

    # -- backward --------------------------------------------------------------------------------------------
    def _grad_ready(self, index: int, param: Tensor) -> None:
        """Post-accumulate-grad hook of parameter ``index``: its gradient for this backward is complete."""
        if not self._armed:
            return
        bucket, slot = self._slot[index]
        bucket.put(slot, param.grad._data)
        if bucket.ready:
            self._launch_ready_buckets()
        elif self._launched and self._buckets[self._launched - 1].work is not None:
            self._buckets[self._launched - 1].work.is_completed()  # lets MPI move the reductions in flight

    def _launch_ready_buckets(self) -> None:
        """Start the all-reduce of each full bucket, in bucket order; after the last, finish the reduction."""
        while self._launched < len(self._buckets) and self._buckets[self._launched].ready:
            bucket = self._buckets[self._launched]
            bucket.work = dist.all_reduce(bucket.flat, dist.ReduceOp.AVG, async_op=True)
            self._launched += 1
        if self._launched == len(self._buckets):
            for bucket in self._buckets:
                bucket.work.wait()
                bucket.unflatten_into_grads()
            self._armed = False

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Inside this block, backward accumulates gradients locally without averaging them (gradient
        accumulation); the first backward after it averages everything accumulated."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def extra_repr(self) -> str:
        sizes = ", ".join(f"{b.nbytes / 2**20:.2f}" for b in self._buckets)
        return f"world_size={dist.get_world_size() if dist.is_initialized() else '?'}, buckets MiB=[{sizes}]"
