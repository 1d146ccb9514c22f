"""Optimizers and learning-rate schedulers, as ``torch.optim`` (``tl.optim.lr_scheduler`` holds the schedulers).

``CombinedOptimizer`` (not in PyTorch) steps several optimizers over disjoint parameters as one: Muon for
the hidden matrices and AdamW for the rest, say.
"""

from tensorlite.optim import lr_scheduler
from tensorlite.optim.adadelta import Adadelta
from tensorlite.optim.adagrad import Adagrad
from tensorlite.optim.adam import Adam, AdamW
from tensorlite.optim.combined import CombinedOptimizer
from tensorlite.optim.muon import Muon
from tensorlite.optim.optimizer import Optimizer
from tensorlite.optim.rmsprop import RMSprop
from tensorlite.optim.sgd import SGD

__all__ = ["Adadelta", "Adagrad", "Adam", "AdamW", "CombinedOptimizer", "Muon", "Optimizer", "RMSprop", "SGD",
           "lr_scheduler"]
