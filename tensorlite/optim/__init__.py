"""Optimizers and learning-rate schedulers, as ``torch.optim`` (``tl.optim.lr_scheduler`` holds the schedulers)."""

from tensorlite.optim import lr_scheduler
from tensorlite.optim.adagrad import Adagrad
from tensorlite.optim.adam import Adam, AdamW
from tensorlite.optim.optimizer import Optimizer
from tensorlite.optim.rmsprop import RMSprop
from tensorlite.optim.sgd import SGD

__all__ = ["Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "lr_scheduler"]
