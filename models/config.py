"""What every model config shares: its fields as a dict (a checkpoint's ``model_config``), the size of
the state dict it describes, and the check of a dropout probability."""

from __future__ import annotations

from dataclasses import asdict


class ModelConfig:
    """Base of the models' dataclass configs."""

    def to_dict(self) -> dict:
        return asdict(self)

    def state_dict_numel(self) -> int:
        """Elements in the model's state dict, without building it (checkpoints are checked against it)."""
        raise NotImplementedError


def check_dropout(model: str, p: float) -> None:
    """A dropout probability must be in [0, 1); the error names ``model``."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{model}: dropout must be in [0, 1), got {p}")
