"""``torch.utils.tensorboard``: outside tensorlite's scope (it logs; tensorlite computes).

``SummaryWriter`` exists so that a script importing it still imports, and so that creating one says
what to do instead.
"""

from tensorlite import scope

SummaryWriter = scope.out_of_scope(
    "torch.utils.tensorboard.SummaryWriter", "tensorlite does not write TensorBoard event files: log "
    "the numbers yourself (print, or a JSON-lines file as tensorlite's Trainer does), or give the script a "
    "stand-in with add_scalar/flush/close, or use tensorboardX's SummaryWriter with Python floats (loss.item())")

__all__ = ["SummaryWriter"]
