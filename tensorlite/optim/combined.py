"""``CombinedOptimizer``: several optimizers over disjoint parameters, stepped, scheduled and saved as one.

Muon updates only matrices, so a network that trains with it also needs another optimizer (AdamW) for its
embeddings, head, biases and norm gains. Wrapped in one ``CombinedOptimizer``, the two are one optimizer for
the rest of the code: ``step``/``zero_grad`` go to both, ``param_groups`` lists their groups (the same dicts,
so a learning-rate scheduler schedules both), and one state dict in PyTorch's layout holds both states. Not
in PyTorch, where the two would be stepped side by side by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tensorlite.autograd import enable_grad
from tensorlite.optim.optimizer import Optimizer
from tensorlite.tensor import Tensor


class CombinedOptimizer(Optimizer):
    """``optimizers``, each with its own parameters, acting as one.

    ``param_groups`` is every optimizer's groups in order; ``state_dict()`` is
    ``{"state": {index: ...}, "param_groups": [...]}`` as one optimizer's, its parameter indices counted
    across all of them in that order, so it loads back into a ``CombinedOptimizer`` of the same optimizers
    over the same parameters.

    Example::

        matrices = [p for p in model.blocks.parameters() if p.ndim == 2]
        rest = [p for p in model.parameters() if all(p is not q for q in matrices)]
        optimizer = CombinedOptimizer(tl.optim.AdamW(rest, lr=1e-3), tl.optim.Muon(matrices, lr=0.02))
    """

    def __init__(self, *optimizers: Optimizer) -> None:
        # The parameters, groups and state live in the wrapped optimizers: Optimizer.__init__ is not called.
        if not optimizers:
            raise ValueError("CombinedOptimizer: give at least one optimizer")
        for optimizer in optimizers:
            if not isinstance(optimizer, Optimizer) or isinstance(optimizer, CombinedOptimizer):
                raise TypeError(f"CombinedOptimizer: expected optimizers (tl.optim.AdamW, tl.optim.Muon ...), got "
                                f"{type(optimizer).__name__}")
        seen: set[int] = set()
        for optimizer in optimizers:
            ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
            if ids & seen:
                raise ValueError(f"CombinedOptimizer: a parameter of {type(optimizer).__name__} is also in an earlier "
                                 "optimizer; each parameter must have one optimizer")
            seen |= ids
        self.optimizers = list(optimizers)
        self.defaults: dict[str, Any] = {}

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    @property
    def state(self) -> dict[Tensor, dict[str, Any]]:  # type: ignore[override]
        """Every parameter's state (read it; each optimizer keeps its own)."""
        return {p: s for optimizer in self.optimizers for p, s in optimizer.state.items()}

    def __repr__(self) -> str:
        inner = "\n".join("    " + line for optimizer in self.optimizers for line in repr(optimizer).splitlines())
        return f"CombinedOptimizer (\n{inner}\n)"

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        raise TypeError("CombinedOptimizer: add the group to one of its optimizers "
                        "(combined.optimizers[i].add_param_group), which decides how it is updated")

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Evaluate ``closure`` (if given) once, then step every optimizer; returns the closure's loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for optimizer in self.optimizers:
            optimizer.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        """One state dict in PyTorch's layout: each optimizer's, its parameter indices shifted past the previous."""
        state: dict[int, dict[str, Any]] = {}
        groups: list[dict[str, Any]] = []
        offset = 0
        for optimizer in self.optimizers:
            saved = optimizer.state_dict()
            state.update({offset + index: value for index, value in saved["state"].items()})
            groups += [{**group, "params": [offset + index for index in group["params"]]}
                       for group in saved["param_groups"]]
            offset += sum(len(group["params"]) for group in saved["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved: its groups are dealt out to the optimizers in order, as many to
        each as it has (a state dict of other optimizers or parameters is a ``ValueError`` naming it)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"CombinedOptimizer.load_state_dict: the state dict has {len(saved_groups)} parameter "
                             f"groups, the optimizers have {len(self.param_groups)} "
                             f"({', '.join(type(o).__name__ for o in self.optimizers)})")
        start, offset = 0, 0
        for optimizer in self.optimizers:
            groups = saved_groups[start:start + len(optimizer.param_groups)]
            for i, group in enumerate(groups, start):
                missing = sorted(optimizer.defaults.keys() - group.keys())
                if missing:
                    raise ValueError(f"CombinedOptimizer.load_state_dict: parameter group {i} of the state dict lacks "
                                     f"{', '.join(missing)}, which {type(optimizer).__name__} needs: it was saved "
                                     "by another optimizer")
            count = sum(len(group["params"]) for group in groups)
            indices = {index for group in groups for index in group["params"]}
            optimizer.load_state_dict({
                "state": {index - offset: value for index, value in state_dict["state"].items() if index in indices},
                "param_groups": [{**group, "params": [index - offset for index in group["params"]]}
                                 for group in groups]})
            start, offset = start + len(groups), offset + count
