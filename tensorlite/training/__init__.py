"""The training core that scripts import: one epoch loop (``Trainer``), its iteration-based variant for
language models (``LMTrainer``), the run directory, metrics and progress bars.

Nothing here knows about the command line: errors name Python arguments, not options.
"""

from tensorlite.training.lm_trainer import LMTrainConfig, LMTrainer
from tensorlite.training.metrics import (
    AccuracyFn,
    argmax_accuracy,
    confusion_matrix,
    threshold_accuracy,
    tolerance_accuracy,
)
from tensorlite.training.run_dir import BEST, CHECKPOINT, LOG, load_model, read_log, resolve_checkpoint
from tensorlite.training.stopping import NonFiniteLossError
from tensorlite.training.trainer import CHECKPOINT_SECONDS, Trainer, TrainState

__all__ = ["BEST", "CHECKPOINT", "CHECKPOINT_SECONDS", "LOG", "AccuracyFn", "LMTrainConfig", "LMTrainer",
           "NonFiniteLossError", "TrainState", "Trainer", "argmax_accuracy", "confusion_matrix", "load_model",
           "read_log", "resolve_checkpoint", "threshold_accuracy", "tolerance_accuracy"]
