"""Layers and initialisers: ``tl.nn.init``, the functional forms (``linear``, ``dropout``, ``layer_norm``,
``batch_norm``, ``embedding``) and the modules built on them.

Every differentiable op gets a float64 gradcheck and float32 PyTorch parity (forward, input and
parameter gradients) on every backend; models built from these layers must have PyTorch's state-dict
keys, shapes and dtypes, load PyTorch's weights and then compute what PyTorch computes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from oracle import check_grad, check_parity, torch

import tensorlite as tl
from tensorlite import nn

F = tl.nn.functional
rng = np.random.default_rng(0)


def randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


# -- linear ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("x_shape", [(2, 3), (2, 2, 3), (3,)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_gradcheck_and_parity(check, device, x_shape, with_bias):
    arrays = [randn(*x_shape), randn(4, 3)] + ([randn(4)] if with_bias else [])
    check.grad(F.linear, arrays, device)
    check.parity(F.linear, lambda *a: torch.nn.functional.linear(*a), arrays, device)


def test_linear_errors_name_the_mismatch(device):
    x, w = tl.randn(2, 3, device=device), tl.randn(4, 5, device=device)
    with pytest.raises(ValueError, match="linear: .*in_features=5"):
        F.linear(x, w)
    with pytest.raises(ValueError, match=r"linear: bias has shape \(3,\), expected \(4,\)"):
        F.linear(x, tl.randn(4, 3, device=device), tl.randn(3, device=device))
    with pytest.raises(TypeError, match="linear: input is float64 but weight is float32"):
        F.linear(x.double(), tl.randn(4, 3, device=device))


def test_linear_module_parameters_and_default_init(device):
    layer = nn.Linear(50, 40, device=device)
    assert layer.weight.shape == (40, 50) and layer.bias.shape == (40,)
    assert layer.weight.device == device and layer.weight.requires_grad and layer.weight.is_leaf
    bound = 1 / math.sqrt(50)  # kaiming_uniform_(a=sqrt(5)) and the bias rule both give 1/sqrt(fan_in)
    for param in (layer.weight, layer.bias):
        values = param.numpy()
        assert np.abs(values).max() <= bound and np.abs(values).max() > 0.9 * bound
    assert layer(tl.randn(7, 50, device=device)).shape == (7, 40)
    no_bias = nn.Linear(3, 2, bias=False, dtype=tl.float64)
    assert no_bias.bias is None and list(no_bias.state_dict()) == ["weight"] and no_bias.weight.dtype == tl.float64


# -- dropout -----------------------------------------------------------------------------------------
def test_dropout_identity_when_p_is_zero_or_evaluating(device):
    x = tl.randn(4, 5, device=device)
    assert F.dropout(x, 0.0) is x
    assert F.dropout(x, 0.5, training=False) is x
    layer = nn.Dropout(0.5).eval()
    assert layer(x) is x


def test_dropout_scales_kept_elements_and_keeps_about_1_minus_p(device):
    p = 0.3
    x = tl.ones(200_000, device=device, requires_grad=True)
    out = F.dropout(x, p)
    values = out.numpy()
    kept = values != 0
    np.testing.assert_allclose(values[kept], 1 / (1 - p), rtol=1e-6)
    assert abs(kept.mean() - (1 - p)) < 0.01
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), values)  # d out / d x is the scaled mask
    assert not F.dropout(tl.ones(100, device=device), 1.0).numpy().any()


def test_dropout_mask_follows_the_seed(device):
    x = tl.ones(1000, device=device)
    tl.manual_seed(3)
    first = nn.Dropout(0.5)(x).numpy()
    tl.manual_seed(3)
    np.testing.assert_array_equal(nn.Dropout(0.5)(x).numpy(), first)


def test_dropout_gradcheck(device):
    def fixed_mask_dropout(x):
        tl.manual_seed(0)  # the same mask at every evaluation
        return F.dropout(x, 0.4)

    check_grad(fixed_mask_dropout, [randn(4, 5)], device)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_rejects_bad_p(device, p):
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(tl.ones(3, device=device), p)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(p)


# -- layer norm --------------------------------------------------------------------------------------
LAYER_NORM_CASES = [  # (input shape, normalized_shape, affine)
    ((2, 3, 4), (4,), True),
    ((2, 2, 3), (2, 3), True),
    ((3, 4), (4,), False),
    ((2, 3, 4), (3, 4), False),
]


@pytest.mark.parametrize(("shape", "normalized", "affine"), LAYER_NORM_CASES)
def test_layer_norm_gradcheck_and_parity(check, device, shape, normalized, affine):
    arrays = [randn(*shape)] + ([randn(*normalized), randn(*normalized)] if affine else [])

    def ours(x, *params):
        return F.layer_norm(x, normalized, *params)

    def theirs(x, *params):
        return torch.nn.functional.layer_norm(x, normalized, *params)

    check.grad(ours, arrays, device)
    check.parity(ours, theirs, arrays, device)


@pytest.mark.parity
def test_layer_norm_module(device):
    layer = nn.LayerNorm((3, 4), eps=1e-3).to(device)
    assert layer.weight.shape == layer.bias.shape == (3, 4)
    assert list(nn.LayerNorm(4, bias=False).state_dict()) == ["weight"]
    assert list(nn.LayerNorm(4, elementwise_affine=False).state_dict()) == []
    x = randn(2, 3, 4).astype(np.float32)
    expected = torch.nn.LayerNorm((3, 4), eps=1e-3)(torch.from_numpy(x))
    np.testing.assert_allclose(layer(tl.tensor(x, device=device)).numpy(), expected.detach().numpy(), atol=1e-5)


def test_layer_norm_shape_error(device):
    with pytest.raises(ValueError, match=r"layer_norm: normalized_shape=\(4,\) needs an input whose last 1"):
        F.layer_norm(tl.randn(2, 3, device=device), 4)
    with pytest.raises(ValueError, match=r"layer_norm: weight has shape \(3,\), expected \(4,\)"):
        F.layer_norm(tl.randn(2, 4, device=device), 4, tl.ones(3, device=device))


# -- batch norm --------------------------------------------------------------------------------------
BATCH_NORM_SHAPES = [(5, 3), (2, 3, 2), (2, 2, 2, 2)]  # (N, C), (N, C, L), (N, C, H, W)


def _batch_norm_arrays(shape: tuple[int, ...]) -> list[np.ndarray]:
    channels = shape[1]
    return [randn(*shape), randn(channels), np.abs(randn(channels)) + 0.5, randn(channels), randn(channels)]


@pytest.mark.parametrize("shape", BATCH_NORM_SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck_and_parity(check, device, shape, training):
    arrays = _batch_norm_arrays(shape)
    wants_grad = [True, False, False, True, True]  # input, running_mean, running_var, weight, bias

    def ours(x, mean, var, weight, bias):
        return F.batch_norm(x, mean, var, weight, bias, training, 0.1, 1e-5)

    def theirs(x, mean, var, weight, bias):
        return torch.nn.functional.batch_norm(x, mean, var, weight, bias, training, 0.1, 1e-5)

    check.parity(ours, theirs, arrays, device, grad=wants_grad)
    if training:  # no running statistics: gradcheck evaluates the function many times
        check.grad(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                   [arrays[0], arrays[3], arrays[4]], device)
    else:
        check.grad(ours, arrays, device, grad=wants_grad)


def test_batch_norm_without_affine_gradcheck(device):
    check_grad(lambda x: F.batch_norm(x, None, None, training=True), [randn(4, 3)], device)


@pytest.mark.parity
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5)])
def test_batchnorm1d_matches_torch_over_training_steps(device, momentum, shape):
    ours, theirs = nn.BatchNorm1d(4, momentum=momentum).to(device), torch.nn.BatchNorm1d(4, momentum=momentum)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(randn(4).astype(np.float32)))
        theirs.bias.copy_(torch.from_numpy(randn(4).astype(np.float32)))
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    for step in range(3):
        x = (randn(*shape) * (step + 1) + step).astype(np.float32)
        x_ours, x_theirs = tl.tensor(x, device=device, requires_grad=True), torch.from_numpy(x).requires_grad_()
        w = randn(*shape).astype(np.float32)
        out_ours, out_theirs = ours(x_ours), theirs(x_theirs)
        np.testing.assert_allclose(out_ours.numpy(), out_theirs.detach().numpy(), rtol=1e-5, atol=1e-5)
        (out_ours * tl.tensor(w, device=device)).sum().backward()
        (out_theirs * torch.from_numpy(w)).sum().backward()
        for a, b in [(x_ours, x_theirs), (ours.weight, theirs.weight), (ours.bias, theirs.bias)]:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-5)
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name].numpy(), value.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    assert ours.num_batches_tracked.item() == 3
    x = randn(*shape).astype(np.float32)
    ours.eval(), theirs.eval()
    np.testing.assert_allclose(ours(tl.tensor(x, device=device)).numpy(),
                               theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)
    assert ours.num_batches_tracked.item() == 3  # evaluation leaves the statistics alone


def test_batchnorm1d_without_running_stats_uses_batch_statistics(device):
    layer = nn.BatchNorm1d(3, affine=False, track_running_stats=False).to(device).eval()
    assert list(layer.state_dict()) == [] and layer.running_mean is None
    out = layer(tl.randn(8, 3, device=device) * 5 + 2).numpy()
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(0), 1, atol=1e-3)


def test_batch_norm_errors(device):
    layer = nn.BatchNorm1d(3).to(device)
    with pytest.raises(ValueError, match="BatchNorm1d: expected a 2-D .* got shape \\(2, 3, 4, 5\\)"):
        layer(tl.randn(2, 3, 4, 5, device=device))
    with pytest.raises(ValueError, match="BatchNorm1d: expected 3 channels"):
        layer(tl.randn(4, 5, device=device))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        layer(tl.randn(1, 3, device=device))
    with pytest.raises(ValueError, match="needs running_mean and running_var"):
        F.batch_norm(tl.randn(4, 3, device=device), None, None, training=False)


# -- embedding ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("padding_idx", [None, 1, -1])
def test_embedding_gradcheck_and_parity(check, device, padding_idx):
    indices = np.array([[0, 2, 1], [2, 2, 4]])  # repeats, and the padding row
    arrays = [indices, randn(5, 3)]

    def ours(i, w):
        return F.embedding(i, w, padding_idx)

    def theirs(i, w):
        return torch.nn.functional.embedding(i, w, padding_idx)

    # By design the padding row's gradient is zero, not its true derivative: check the others.
    padding_row = -1 if padding_idx is None else padding_idx % 5
    check.grad(ours, [np.where(indices == padding_row, 0, indices), arrays[1]], device)
    check.parity(ours, theirs, arrays, device)


def test_embedding_gradient_accumulates_repeats_and_skips_padding(device):
    weight = tl.randn(4, 2, device=device, requires_grad=True)
    F.embedding(tl.tensor([1, 1, 1, 2, 0, 0], device=device), weight, padding_idx=0).sum().backward()
    np.testing.assert_array_equal(weight.grad.numpy(), [[0, 0], [3, 3], [1, 1], [0, 0]])


def test_embedding_module(device):
    layer = nn.Embedding(1000, 64, padding_idx=3, device=device)
    weight = layer.weight.numpy()
    assert weight.shape == (1000, 64) and not weight[3].any()
    assert abs(weight.std() - 1) < 0.02 and abs(weight.mean()) < 0.02
    assert layer(tl.tensor([[3, 5]], device=device)).shape == (1, 2, 64)


def test_embedding_errors(device):
    weight = tl.randn(5, 2, device=device)
    with pytest.raises(TypeError, match="embedding: indices must be an integer tensor"):
        F.embedding(tl.tensor([0.0, 1.0], device=device), weight)
    with pytest.raises(IndexError, match=r"embedding: index -1 is out of range: indices must be in \[0, 5\)"):
        F.embedding(tl.tensor([-1, 2, 5], device=device), weight).sum().item()  # a device finds it at a read
    with pytest.raises(ValueError, match="padding_idx=5 is out of range"):
        F.embedding(tl.tensor([0], device=device), weight, padding_idx=5)
    with pytest.raises(ValueError, match="padding_idx=-6 is out of range"):
        nn.Embedding(5, 2, padding_idx=-6)


# -- activation, flatten and identity modules ----------------------------------------------------------
MODULE_PAIRS = [  # (tensorlite module, the name and arguments of PyTorch's)
    (lambda: nn.ReLU(), "ReLU", ()),
    (lambda: nn.LeakyReLU(0.2), "LeakyReLU", (0.2,)),
    (lambda: nn.Sigmoid(), "Sigmoid", ()),
    (lambda: nn.Tanh(), "Tanh", ()),
    (lambda: nn.GELU(), "GELU", ()),
    (lambda: nn.GELU(approximate="tanh"), "GELU", ("tanh",)),
    (lambda: nn.Softmax(dim=1), "Softmax", (1,)),
    (lambda: nn.Flatten(), "Flatten", ()),
    (lambda: nn.Flatten(0, 1), "Flatten", (0, 1)),
    (lambda: nn.Identity(), "Identity", ()),
]


@pytest.mark.parity
@pytest.mark.parametrize(("make", "torch_name", "args"), MODULE_PAIRS)
def test_simple_modules_match_torch(device, make, torch_name, args):
    ours, theirs = make(), getattr(torch.nn, torch_name)(*args)
    assert repr(ours) == repr(theirs)
    check_parity(ours, theirs, [randn(2, 3, 4)], device)


# -- init --------------------------------------------------------------------------------------------
@pytest.mark.parity
@pytest.mark.parametrize(("nonlinearity", "param"), [
    ("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("selu", None),
    ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)),
])
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert nn.init.calculate_gain(nonlinearity, param) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity,
                                                                                                     param))


def test_calculate_gain_rejects_unknown():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        nn.init.calculate_gain("swish")


@pytest.mark.parity
@pytest.mark.parametrize("shape", [(3, 4), (8, 3, 5), (8, 3, 3, 3)])
def test_fan_in_and_fan_out_matches_torch(shape):
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert nn.init.fan_in_and_fan_out(tl.empty(shape)) == expected
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        nn.init.fan_in_and_fan_out(tl.empty(5))


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


SHAPE = (256, 128, 3)  # fan_in 384, fan_out 768: about 100,000 samples


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize(("nonlinearity", "a"), [("relu", 0), ("leaky_relu", 0.2), ("tanh", 0)])
def test_kaiming_statistics(device, mode, nonlinearity, a):
    fan = _fans(SHAPE)[0 if mode == "fan_in" else 1]
    std = nn.init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    w = tl.empty(SHAPE, device=device)
    assert nn.init.kaiming_uniform_(w, a=a, mode=mode, nonlinearity=nonlinearity) is w
    values = w.numpy()
    bound = math.sqrt(3) * std
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.99 * bound
    assert values.std() == pytest.approx(std, rel=0.02)
    values = nn.init.kaiming_normal_(w, a=a, mode=mode, nonlinearity=nonlinearity).numpy()
    assert values.std() == pytest.approx(std, rel=0.02) and abs(values.mean()) < 0.02 * std


@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_xavier_statistics(device, gain):
    fan_in, fan_out = _fans(SHAPE)
    std = gain * math.sqrt(2 / (fan_in + fan_out))
    w = tl.empty(SHAPE, device=device)
    values = nn.init.xavier_uniform_(w, gain).numpy()
    assert np.abs(values).max() <= math.sqrt(3) * std and np.abs(values).max() > 0.99 * math.sqrt(3) * std
    assert values.std() == pytest.approx(std, rel=0.02)
    values = nn.init.xavier_normal_(w, gain=gain).numpy()
    assert values.std() == pytest.approx(std, rel=0.02) and abs(values.mean()) < 0.02 * std


def test_uniform_normal_and_constants(device):
    w = tl.empty(100_000, device=device)
    values = nn.init.uniform_(w, -2.0, 3.0).numpy()
    assert values.min() >= -2 and values.max() < 3 and values.mean() == pytest.approx(0.5, abs=0.03)
    values = nn.init.normal_(w, mean=1.0, std=0.5).numpy()
    assert values.mean() == pytest.approx(1.0, abs=0.01) and values.std() == pytest.approx(0.5, rel=0.02)
    assert (nn.init.constant_(w, 0.25).numpy() == 0.25).all()
    assert not nn.init.zeros_(w).numpy().any()
    assert (nn.init.ones_(w).numpy() == 1).all()
    assert w.device == device


def test_init_on_parameters_is_not_recorded(device):
    param = nn.Parameter(tl.zeros(4, 3, device=device))
    assert nn.init.kaiming_uniform_(param) is param
    assert param.is_leaf and param.requires_grad and param.grad is None and param.numpy().any()
    with pytest.raises(TypeError, match="normal_: expected a floating-point tensor, got int64"):
        nn.init.normal_(tl.zeros(3, dtype=tl.int64, device=device))


def test_same_seed_same_weights(device):
    def weights(seed):
        tl.manual_seed(seed)
        model = nn.Sequential(nn.Linear(5, 4, device=device), nn.Embedding(6, 3, device=device))
        return [p.numpy() for p in model.parameters()]

    for a, b in zip(weights(1), weights(1)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(weights(1)[0], weights(2)[0])


# -- whole models: state dicts, PyTorch's weights, repr ------------------------------------------------
def _models(lib):
    """The same two models in tensorlite (``lib=tl``) or PyTorch (``lib=torch``)."""
    n = lib.nn
    mlp = n.Sequential(
        n.Flatten(), n.Linear(6, 8), n.BatchNorm1d(8), n.ReLU(), n.Dropout(0.2), n.Linear(8, 8), n.LayerNorm(8),
        n.Tanh(), n.Linear(8, 3, bias=False),
    )
    tokens = n.Sequential(
        n.Embedding(10, 4, padding_idx=0), n.Flatten(), n.Linear(12, 5), n.GELU(approximate="tanh"),
        n.LayerNorm(5, bias=False), n.LeakyReLU(0.1), n.Linear(5, 4), n.LayerNorm(4, elementwise_affine=False),
        n.Softmax(dim=-1),
    )
    return mlp, tokens


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    return randn(5, 2, 3).astype(np.float32), np.array([[1, 0, 3], [9, 9, 2]])


@pytest.mark.parity
def test_state_dict_keys_shapes_and_dtypes_match_torch():
    for ours, theirs in zip(_models(tl), _models(torch)):
        mine, reference = ours.state_dict(), theirs.state_dict()
        assert list(mine) == list(reference)
        for key, value in reference.items():
            assert mine[key].shape == tuple(value.shape), key
            assert mine[key].dtype == np.dtype(str(value.dtype).removeprefix("torch.")), key
        # and the other way: PyTorch loads ours strictly
        theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in mine.items()})


@pytest.mark.parity
def test_models_with_torch_weights_compute_what_torch_computes(device):
    for ours, theirs, x in zip(_models(tl), _models(torch), _inputs()):
        with torch.no_grad():  # non-trivial BatchNorm and LayerNorm parameters and statistics
            for name, value in theirs.state_dict().items():
                if value.dtype.is_floating_point and "running_var" not in name:
                    value.add_(torch.randn(value.shape) * 0.3)
        ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
        ours.to(device)
        # Evaluation, then a training step with dropout switched off: outputs and every parameter's gradient.
        for training in (False, True):
            ours.train(training), theirs.train(training)
            for model in (ours, theirs):
                for layer in model:
                    if isinstance(layer, (nn.Dropout, torch.nn.Dropout)):
                        layer.p = 0.0
            out_ours, out_theirs = ours(tl.tensor(x, device=device)), theirs(torch.from_numpy(x))
            np.testing.assert_allclose(out_ours.numpy(), out_theirs.detach().numpy(), rtol=1e-4, atol=1e-5)
            w = randn(*out_theirs.shape).astype(np.float32)
            ours.zero_grad(), theirs.zero_grad()
            (out_ours * tl.tensor(w, device=device)).sum().backward()
            (out_theirs * torch.from_numpy(w)).sum().backward()
            grads = dict(theirs.named_parameters())
            for name, param in ours.named_parameters():
                np.testing.assert_allclose(param.grad.numpy(), grads[name].grad.numpy(), rtol=1e-4, atol=1e-5,
                                           err_msg=name)
        for name, value in theirs.state_dict().items():  # running statistics after the training step
            np.testing.assert_allclose(ours.state_dict()[name].numpy(), value.numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=name)


@pytest.mark.parity
def test_repr_matches_torch():
    for ours, theirs in zip(_models(tl), _models(torch)):
        assert repr(ours) == repr(theirs)
    assert repr(nn.Sequential(nn.Identity(), nn.ReLU(inplace=True), nn.Embedding(3, 2))) == repr(
        torch.nn.Sequential(torch.nn.Identity(), torch.nn.ReLU(inplace=True), torch.nn.Embedding(3, 2)))


def test_registration_by_attribute_assignment_stays_in_sync():
    """Parameters, buffers and submodules are plain attributes and registry entries at once: assigning,
    replacing, setting to None and deleting keep both views (and so parameters()/state_dict()) in step."""
    model = nn.Module()
    model.layer = nn.Linear(2, 3)
    model.register_buffer("steps", tl.zeros(1))
    model.scale = nn.Parameter(tl.ones(3))
    assert model.layer is model._modules["layer"] and model.scale is model._parameters["scale"]
    assert list(model.state_dict()) == ["scale", "steps", "layer.weight", "layer.bias"]
    model.layer = nn.Linear(2, 4)  # replacing re-registers
    assert model.layer.out_features == 4 and model._modules["layer"] is model.layer
    model.steps = tl.ones(1)
    assert model.steps.item() == 1.0 and model._buffers["steps"] is model.steps
    model.scale = None  # a parameter slot that is empty
    assert model.scale is None and "scale" not in model.state_dict()
    with pytest.raises(TypeError, match="cannot assign int to submodule 'layer'"):  # a name keeps its kind
        model.layer = 5
    with pytest.raises(TypeError, match="cannot assign int to buffer 'steps'"):
        model.steps = 3
    del model.steps
    assert not hasattr(model, "steps") and "steps" not in model.state_dict()
    register = nn.ModuleDict({"a": nn.ReLU(), "b": nn.Tanh()})
    del register["a"]
    assert not hasattr(register, "a") and list(register) == ["b"]
    with pytest.raises(KeyError):
        del register["a"]
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'missing'"):
        _ = model.missing
