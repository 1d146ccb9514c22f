"""``Module``: PyTorch's contract for layers and models.

Assigning a ``Parameter``, a ``Module`` or a registered buffer to an attribute registers it, so
``parameters()``, ``state_dict()``, ``to(device)``, ``train()``/``eval()`` find it. State-dict
keys are dotted attribute paths (``"0.weight"``, ``"blocks.3.attn.bias"``), the same as
PyTorch's for the same architecture, so weights move between the two.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from tensorlite import dtypes
from tensorlite.autograd import no_grad
from tensorlite.device import device as as_device
from tensorlite.nn.parameter import Parameter
from tensorlite.tensor import Tensor


class IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of every layer and model: subclass it, set layers as attributes, define ``forward``."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration ----------------------------------------------------------------------------
    # Registered values live in their registry (what traversal reads) and, mirrored, in the instance
    # __dict__, so that ``self.weight`` on a hot path is a plain attribute lookup, not a __getattr__ call.
    def _register(self, registry: dict, name: str, value: Any) -> None:
        registry[name] = value
        self.__dict__[name] = value

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() is called")
        if isinstance(value, (Parameter, Module)):
            self._forget(name)
            self._register(self._parameters if isinstance(value, Parameter) else self._modules, name, value)
        elif name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} to buffer {name!r} (a tensor or None expected)")
            self._register(self._buffers, name, value)
        elif name in self._parameters or name in self._modules:
            if value is not None:
                kind = "parameter" if name in self._parameters else "submodule"
                raise TypeError(f"cannot assign {type(value).__name__} to {kind} {name!r} "
                                f"(a {'Parameter' if kind == 'parameter' else 'Module'} or None expected)")
            self._register(self._parameters if name in self._parameters else self._modules, name, None)
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules, self.__dict__):
            registry.pop(name, None)

    def __getattr__(self, name: str) -> Any:  # only reached for names that are not set at all
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                del self.__dict__[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` under ``name`` (as ``self.name = param`` does); None leaves an empty slot."""
        self._assign_or_empty(self._parameters, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor that is state but not learnable (BatchNorm's running mean); saved if ``persistent``."""
        self._forget(name)
        self._register(self._buffers, name, tensor)
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register a child module under ``name`` (as ``self.name = module`` does)."""
        self._assign_or_empty(self._modules, name, module)

    def _assign_or_empty(self, registry: dict, name: str, value: Any) -> None:
        """Register ``value`` as attribute assignment does, or for None an empty slot in ``registry``."""
        if value is None:
            self._forget(name)
            self._register(registry, name, None)
        else:
            setattr(self, name, value)

    register_module = add_module

    # -- running -----------------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; subclasses define it and callers write ``module(x)``."""
        raise NotImplementedError(f"{type(self).__name__} has no forward() method")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # -- traversal ---------------------------------------------------------------------------------
    def named_modules(self, prefix: str = "", memo: set[int] | None = None) -> Iterator[tuple[str, Module]]:
        """``(name, module)`` for this module and every descendant, each once, depth first."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self) -> Iterator[Module]:
        """This module and every descendant, each once."""
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """``(name, module)`` for the direct children."""
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self) -> Iterator[Module]:
        """The direct child modules."""
        for _, child in self.named_children():
            yield child

    def _named_members(self, registry: str, prefix: str, recurse: bool) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()  # a tied weight is yielded once, under its first name
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """``(dotted name, parameter)`` pairs, the state-dict keys of the parameters."""
        yield from self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter of this module and its descendants: what an optimizer takes."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """``(dotted name, buffer)`` pairs (BatchNorm's running statistics)."""
        yield from self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every buffer of this module and its descendants."""
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def num_parameters(self, trainable_only: bool = False) -> int:
        """How many numbers the parameters hold (tied weights counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn`` on every submodule (children first) and on self, e.g. for custom init."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # -- modes, devices, gradients -------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (``mode=True``) for this module and its descendants: dropout drops, BatchNorm updates."""
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: dropout passes through, BatchNorm uses its running statistics."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Set ``requires_grad`` of every parameter (False freezes the module)."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of every parameter (set them to None, or to zeros)."""
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad.zero_()

    def to(self, device: Any = None, dtype: Any = None) -> Module:
        """Move (and/or cast) parameters and buffers in place, so optimizers keep working on them."""
        target = None if device is None else as_device(device)
        dtype = None if dtype is None else dtypes.as_dtype(dtype)
        for tensor in [*self.parameters(), *self.buffers()]:
            cast = dtype if dtype is not None and dtypes.is_floating(tensor.dtype) else None
            moved = tensor.detach().to(target, cast)
            tensor._data, tensor._device = moved._data, moved._device
            if tensor.grad is not None:
                grad = tensor.grad.to(target, cast)
                tensor.grad = grad
        return self

    def cpu(self) -> Module:
        """Move every parameter and buffer to the CPU, in place; returns the module."""
        return self.to("cpu")

    def cuda(self, index: int = 0) -> Module:
        """Move every parameter and buffer to CUDA device ``index``, in place; returns the module."""
        return self.to(f"cuda:{index}")

    def float(self) -> Module:
        """Convert floating parameters and buffers to float32, in place."""
        return self.to(dtype=dtypes.float32)

    def double(self) -> Module:
        """Convert floating parameters and buffers to float64, in place (gradient checks)."""
        return self.to(dtype=dtypes.float64)

    # -- state -----------------------------------------------------------------------------------------
    def state_dict(self, prefix: str = "") -> OrderedDict[str, Tensor]:
        """Every parameter and persistent buffer by dotted name (tied weights under each name)."""
        state: OrderedDict[str, Tensor] = OrderedDict()
        for module_prefix, module in self.named_modules(prefix.rstrip(".")):
            dot = f"{module_prefix}." if module_prefix else ""
            for name, param in module._parameters.items():
                if param is not None:
                    state[dot + name] = param.detach()
            for name, buffer in module._buffers.items():
                if buffer is not None and name not in module._non_persistent:
                    state[dot + name] = buffer.detach()
        return state

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values into the parameters and buffers, checking names and shapes.

        With ``strict`` a missing or unexpected key is an error; a shape mismatch always is.
        Values may be tensors (any device) or arrays; they are cast to each target's dtype.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            shape = tuple(value.shape) if hasattr(value, "shape") else ()
            if shape != target.shape:
                problems.append(f"  {key}: checkpoint has shape {shape}, the model has {target.shape}")
        if strict:
            problems += [f"  missing key {k} (shape {own[k].shape})" for k in missing]
            problems += [f"  unexpected key {k} (shape {tuple(getattr(state_dict[k], 'shape', ()))})"
                         for k in unexpected]
        if problems:
            raise RuntimeError(f"load_state_dict: {type(self).__name__} cannot load this state dict\n"
                               + "\n".join(problems))
        from tensorlite.creation import as_tensor

        with no_grad():
            for key, target in own.items():
                if key in state_dict:
                    value = state_dict[key]
                    value = value.detach() if isinstance(value, Tensor) else as_tensor(value)
                    target.copy_(value.to(target.device, target.dtype))
        return IncompatibleKeys(missing, unexpected)

    # -- printing ------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The layer's settings, shown in its ``repr`` (``in_features=2, out_features=3``)."""
        return ""

    def __repr__(self) -> str:
        children = [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in self._modules.items()]
        extra = self.extra_repr()
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = ([extra] if extra else []) + children
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"
