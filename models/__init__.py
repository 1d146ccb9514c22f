"""Ready-made models, each with a dataclass config."""

from tensorlite.models.char_lstm import CharLSTM, CharLSTMConfig
from tensorlite.models.gpt import GPT, GPTConfig
from tensorlite.models.mlp import MLP, MLPConfig, perceptron
from tensorlite.models.mnist import MNISTCNN, MNISTMLP, MNISTCNNConfig, MNISTMLPConfig

__all__ = ["MLP", "MLPConfig", "MNISTCNN", "MNISTCNNConfig", "MNISTMLP", "MNISTMLPConfig", "perceptron"]
__all__ += ["GPT", "GPTConfig"]
__all__ += ["CharLSTM", "CharLSTMConfig"]
