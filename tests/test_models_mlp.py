"""tensorlite.models.mlp: MLP layer structure, config validation, the perceptron, torch-compatible keys."""

from __future__ import annotations

import numpy as np
import pytest
from oracle import torch

import tensorlite as tl
from tensorlite import models, nn


def kinds(model: nn.Module) -> list[type]:
    return [type(layer) for layer in model]


def test_default_config_is_the_tutorials_2_3_1_sigmoid() -> None:
    config = models.MLPConfig()
    assert config.to_dict() == {"sizes": [2, 3, 1], "activation": "sigmoid", "output_activation": None, "dropout": 0.0}


def test_2_3_1_sigmoid_layers() -> None:
    model = models.MLP(models.MLPConfig([2, 3, 1], "sigmoid"))
    assert kinds(model) == [nn.Linear, nn.Sigmoid, nn.Linear]
    assert (model[0].in_features, model[0].out_features) == (2, 3)
    assert (model[2].in_features, model[2].out_features) == (3, 1)
    assert model(tl.zeros(5, 2)).shape == (5, 1)


def test_output_activation_is_appended() -> None:
    model = models.MLP(models.MLPConfig([2, 3, 1], "sigmoid", output_activation="sigmoid"))
    assert kinds(model) == [nn.Linear, nn.Sigmoid, nn.Linear, nn.Sigmoid]
    out = model(tl.randn(6, 2)).numpy()
    assert ((out > 0) & (out < 1)).all()


@pytest.mark.parametrize("activation, layer", [("relu", nn.ReLU), ("tanh", nn.Tanh), ("gelu", nn.GELU),
                                               ("leaky_relu", nn.LeakyReLU)])
def test_deeper_mlp_with_dropout(activation: str, layer: type) -> None:
    model = models.MLP(models.MLPConfig([4, 8, 8, 3], activation, dropout=0.5))
    assert kinds(model) == [nn.Linear, layer, nn.Dropout, nn.Linear, layer, nn.Dropout, nn.Linear]
    assert model.config.sizes == [4, 8, 8, 3]
    assert model(tl.randn(2, 4)).shape == (2, 3)


def test_perceptron_is_one_linear_layer() -> None:
    model = models.perceptron()
    assert kinds(model) == [nn.Linear, nn.Sigmoid]
    assert sum(isinstance(layer, nn.Linear) for layer in model) == 1
    assert kinds(models.perceptron(3, 2, output_activation=None)) == [nn.Linear]
    assert model[0].weight.shape == (1, 2)
    assert list(model.state_dict()) == ["0.weight", "0.bias"]


@pytest.mark.parametrize("kwargs, message", [
    ({"sizes": [2]}, "two or more positive integers"),
    ({"sizes": [2, 0, 1]}, "two or more positive integers"),
    ({"sizes": [2, -3, 1]}, "two or more positive integers"),
    ({"sizes": [2, 3.5, 1]}, "two or more positive integers"),
    ({"activation": "swish"}, "unknown activation 'swish'"),
    ({"output_activation": "softmax"}, "unknown activation 'softmax'"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ({"dropout": -0.1}, r"dropout must be in \[0, 1\)"),
])
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=r"^MLP: .*" + message):
        models.MLPConfig(**kwargs)


def test_config_round_trips_through_a_dict() -> None:
    config = models.MLPConfig([4, 16, 3], "relu", None, 0.1)
    assert config.to_dict() == {"sizes": [4, 16, 3], "activation": "relu", "output_activation": None,
                                "dropout": 0.1}
    assert models.MLPConfig(**config.to_dict()) == config


@pytest.mark.parity
@pytest.mark.parametrize("config", [models.MLPConfig([2, 3, 1], "sigmoid", "sigmoid"),
                                    models.MLPConfig([4, 8, 8, 3], "relu", dropout=0.2)])
def test_state_dict_keys_and_outputs_match_torch_sequential(config: models.MLPConfig) -> None:
    acts = {"sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU}
    layers = []
    pairs = list(zip(config.sizes, config.sizes[1:]))
    for i, (n_in, n_out) in enumerate(pairs):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(pairs) - 1:
            layers.append(acts[config.activation]())
            if config.dropout:
                layers.append(torch.nn.Dropout(config.dropout))
    if config.output_activation:
        layers.append(acts[config.output_activation]())
    reference = torch.nn.Sequential(*layers).eval()
    model = models.MLP(config).eval()

    theirs = reference.state_dict()
    assert list(model.state_dict()) == list(theirs)
    for key, value in model.state_dict().items():
        assert value.shape == tuple(theirs[key].shape), key
    model.load_state_dict({k: v.numpy() for k, v in theirs.items()})  # a ported torch checkpoint loads as is
    x = np.random.default_rng(0).normal(size=(5, config.sizes[0])).astype(np.float32)
    np.testing.assert_allclose(model(tl.tensor(x)).numpy(), reference(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
