"""Convolution and pooling: ``conv1d``/``conv2d``, ``max_pool2d``/``avg_pool2d``/``adaptive_avg_pool2d``, their
modules, ``BatchNorm2d`` and ``Dropout2d``.

Every op gets a float64 gradcheck and float32 PyTorch parity (forward, input, weight and bias
gradients) over a table of options on every backend; modules must have PyTorch's repr, state-dict
keys and initialisation, and compute what PyTorch computes with PyTorch's weights.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from oracle import TF, check_grad, check_parity, torch

import tensorlite as tl
from tensorlite import nn

F = tl.nn.functional
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # PyTorch's, not ours
rng = np.random.default_rng(0)


def randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def torch_fn(name: str, **kwargs):
    """PyTorch's functional ``name`` with ``kwargs`` bound, looked up when called."""
    return lambda *args: getattr(TF, name)(*args, **kwargs)


# -- conv2d / conv1d ---------------------------------------------------------------------------------
# (input shape, weight shape, options): inputs stay within ~40 elements for the finite differences.
CONV2D_CASES = {
    "odd 7x5, batch 1": ((1, 1, 7, 5), (2, 1, 3, 3), {}),
    "stride 2, padding 1": ((2, 1, 5, 4), (2, 1, 3, 3), {"stride": 2, "padding": 1}),
    "stride 3, tuple padding": ((1, 1, 7, 5), (2, 1, 2, 3), {"stride": 3, "padding": (1, 2)}),
    "stride (2, 1), dilation 2": ((1, 1, 7, 6), (2, 1, 2, 2), {"stride": (2, 1), "dilation": 2}),
    "same, even kernel": ((2, 1, 4, 5), (2, 1, 3, 2), {"padding": "same"}),
    "same, dilation 2": ((1, 2, 5, 4), (1, 2, 3, 3), {"padding": "same", "dilation": 2}),
    "valid": ((2, 1, 4, 4), (3, 1, 2, 2), {"padding": "valid"}),
    "groups 2": ((1, 4, 3, 3), (4, 2, 2, 2), {"groups": 2, "padding": 1}),
    "depthwise, multiplier 2": ((1, 3, 3, 4), (6, 1, 2, 2), {"groups": 3}),
    "1x1 kernel": ((2, 3, 2, 3), (4, 3, 1, 1), {}),
}


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no bias"])
@pytest.mark.parametrize("case", CONV2D_CASES)
def test_conv2d_gradcheck_and_parity(check, device, case, with_bias):
    x_shape, w_shape, options = CONV2D_CASES[case]
    arrays = [randn(*x_shape), randn(*w_shape)] + ([randn(w_shape[0])] if with_bias else [])
    ours = lambda *args: F.conv2d(*args, **options)  # noqa: E731
    check.grad(ours, arrays, device)
    check.parity(ours, torch_fn("conv2d", **options), arrays, device, rtol=1e-4, atol=1e-5)


CONV1D_CASES = {
    "plain": ((2, 2, 7), (3, 2, 3), {}),
    "stride 2, padding 1, dilation 2": ((2, 2, 9), (2, 2, 2), {"stride": 2, "padding": 1, "dilation": 2}),
    "same, even kernel": ((1, 2, 6), (2, 2, 4), {"padding": "same"}),
    "groups 2, tuple arguments": ((2, 4, 5), (4, 2, 3), {"groups": 2, "stride": (2,), "padding": (1,)}),
    "unbatched": ((2, 6), (3, 2, 3), {"padding": "valid"}),
}


@pytest.mark.parametrize("case", CONV1D_CASES)
def test_conv1d_gradcheck_and_parity(check, device, case):
    x_shape, w_shape, options = CONV1D_CASES[case]
    arrays = [randn(*x_shape), randn(*w_shape), randn(w_shape[0])]
    ours = lambda *args: F.conv1d(*args, **options)  # noqa: E731
    check.grad(ours, arrays, device)
    check.parity(ours, torch_fn("conv1d", **options), arrays, device, rtol=1e-4, atol=1e-5)


@pytest.mark.parity
@pytest.mark.parametrize("options", [{}, {"stride": 2, "padding": 2, "dilation": (1, 2)}, {"groups": 3}])
def test_conv2d_parity_on_larger_inputs_and_unbatched(device, options):
    arrays = [randn(8, 6, 12, 11), randn(9, 6 // options.get("groups", 1), 3, 3), randn(9)]
    check_parity(lambda *a: F.conv2d(*a, **options), torch_fn("conv2d", **options), arrays, device, rtol=1e-4,
                 atol=1e-4)
    unbatched = [arrays[0][0]] + arrays[1:]
    check_parity(lambda *a: F.conv2d(*a, **options), torch_fn("conv2d", **options), unbatched, device, rtol=1e-4,
                 atol=1e-4)


def test_conv2d_gradient_flows_only_where_asked(device):
    x = tl.randn(2, 3, 5, 5, device=device)  # no grad: the first layer of a network
    w, b = tl.randn(4, 3, 3, 3, device=device, requires_grad=True), tl.randn(4, device=device, requires_grad=True)
    F.conv2d(x, w, b).sum().backward()
    assert x.grad is None and w.grad.shape == (4, 3, 3, 3) and b.grad.shape == (4,)
    np.testing.assert_allclose(b.grad.numpy(), 2 * 3 * 3, rtol=1e-6)  # d(sum)/db: N * OH * OW


# -- pooling -----------------------------------------------------------------------------------------
MAX_POOL_CASES = {
    "2x2 non-overlapping": ((1, 2, 4, 4), {"kernel_size": 2}),
    "2x2 on odd 5x7 (last row and column dropped)": ((1, 1, 5, 7), {"kernel_size": 2}),
    "3x3 stride 2 (overlapping)": ((1, 2, 5, 4), {"kernel_size": 3, "stride": 2}),
    "3x3 stride 2 padding 1": ((1, 1, 7, 5), {"kernel_size": 3, "stride": 2, "padding": 1}),
    "(2, 3) kernel, stride (1, 2), padding (1, 1)": ((2, 1, 4, 5), {"kernel_size": (2, 3), "stride": (1, 2),
                                                                    "padding": (1, 1)}),
    "dilation 2": ((1, 1, 5, 6), {"kernel_size": 2, "stride": 1, "dilation": 2}),
    "ceil_mode": ((1, 1, 6, 7), {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
    "ceil_mode with padding": ((1, 1, 6, 5), {"kernel_size": 2, "padding": 1, "ceil_mode": True}),
    "unbatched": ((2, 4, 5), {"kernel_size": 2, "stride": 1}),
}


@pytest.mark.parametrize("case", MAX_POOL_CASES)
def test_max_pool2d_gradcheck_and_parity(check, device, case):
    shape, options = MAX_POOL_CASES[case]
    arrays = [randn(*shape)]  # distinct values: no ties for the finite differences to straddle
    ours = lambda x: F.max_pool2d(x, **options)  # noqa: E731
    check.grad(ours, arrays, device)
    check.parity(ours, torch_fn("max_pool2d", **options), arrays, device)


@pytest.mark.parity
@pytest.mark.parametrize("options", [{"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1},
                                     {"kernel_size": 3, "stride": 1}])
def test_max_pool2d_ties_send_the_gradient_to_the_first_maximum(device, options):
    x = np.round(randn(2, 3, 7, 8))  # many ties, and whole windows of equal values
    x[0, 0] = 1.0
    check_parity(lambda t: F.max_pool2d(t, **options), torch_fn("max_pool2d", **options), [x], device, atol=0)


AVG_POOL_CASES = {
    "2x2 non-overlapping": ((1, 2, 4, 4), {"kernel_size": 2}),
    "2x2 on odd 5x7": ((1, 1, 5, 7), {"kernel_size": 2}),
    "3x3 stride 2 (overlapping)": ((1, 2, 5, 4), {"kernel_size": 3, "stride": 2}),
    "padding 1, padding counted": ((1, 1, 7, 5), {"kernel_size": 3, "stride": 2, "padding": 1}),
    "padding 1, padding not counted": ((1, 1, 7, 5), {"kernel_size": 3, "stride": 2, "padding": 1,
                                                      "count_include_pad": False}),
    "ceil_mode, padding counted": ((1, 1, 6, 5), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    "ceil_mode, padding not counted": ((1, 1, 6, 5), {"kernel_size": 3, "stride": 2, "padding": 1,
                                                      "ceil_mode": True, "count_include_pad": False}),
    "divisor_override": ((2, 1, 4, 5), {"kernel_size": (2, 3), "stride": 1, "divisor_override": 4}),
    "unbatched": ((2, 4, 5), {"kernel_size": 2, "stride": 1}),
}


@pytest.mark.parametrize("case", AVG_POOL_CASES)
def test_avg_pool2d_gradcheck_and_parity(check, device, case):
    shape, options = AVG_POOL_CASES[case]
    ours = lambda x: F.avg_pool2d(x, **options)  # noqa: E731
    check.grad(ours, [randn(*shape)], device)
    check.parity(ours, torch_fn("avg_pool2d", **options), [randn(*shape)], device)


@pytest.mark.parametrize("shape, output_size", [
    ((1, 2, 6, 4), (3, 2)),  # divisible: plain 2x2 windows
    ((1, 2, 7, 5), (3, 4)),  # not divisible: overlapping windows of varying sizes
    ((2, 1, 5, 4), 1),  # global average
    ((1, 2, 5, 4), (2, None)),  # None keeps the width
    ((3, 5, 4), (4, 3)),  # unbatched, windows overlapping by one row and column
])
def test_adaptive_avg_pool2d_gradcheck_and_parity(check, device, shape, output_size):
    ours = lambda x: F.adaptive_avg_pool2d(x, output_size)  # noqa: E731
    check.grad(ours, [randn(*shape)], device)
    check.parity(ours, torch_fn("adaptive_avg_pool2d", output_size=output_size), [randn(*shape)], device)


@pytest.mark.parity
def test_small_cnn_matches_torch_end_to_end(device):
    """Conv-ReLU-MaxPool twice, then Linear: layouts flow from layer to layer; every gradient matches."""
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                 torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                 torch.nn.Flatten(), torch.nn.Linear(6 * 3 * 3, 5))
    ours = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 3 * 3, 5)).to(device)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = randn(5, 2, 15, 14).astype(np.float32)
    x_ours, x_theirs = tl.tensor(x, device=device, requires_grad=True), torch.from_numpy(x).requires_grad_()
    out_ours, out_theirs = ours(x_ours), theirs(x_theirs)
    np.testing.assert_allclose(out_ours.numpy(), out_theirs.detach().numpy(), rtol=1e-4, atol=1e-5)
    (out_ours * out_ours).sum().backward()
    assert out_ours.dtype == x_ours.grad.dtype == ours[0].weight.grad.dtype == tl.float32  # float32 throughout
    (out_theirs * out_theirs).sum().backward()
    np.testing.assert_allclose(x_ours.grad.numpy(), x_theirs.grad.numpy(), rtol=1e-4, atol=1e-5)
    for (name, p_ours), (_, p_theirs) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p_ours.grad.numpy(), p_theirs.grad.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)


# -- modules -----------------------------------------------------------------------------------------
MODULES = [
    ("Conv2d", (1, 32, 3), {}),
    ("Conv2d", (4, 8, (3, 2)), {"stride": 2, "padding": 1, "dilation": 2, "groups": 2, "bias": False}),
    ("Conv2d", (4, 8, 3), {"padding": "same"}),
    ("Conv1d", (2, 4, 5), {"stride": 2, "padding": 2}),
    ("Conv1d", (2, 4, 5), {"padding": "valid"}),
    ("MaxPool2d", (2,), {}),
    ("MaxPool2d", ((3, 2),), {"stride": 1, "padding": 1, "ceil_mode": True}),
    ("AvgPool2d", (3, 2, 1), {"count_include_pad": False}),
    ("AdaptiveAvgPool2d", ((1, None),), {}),
    ("BatchNorm2d", (3,), {"momentum": None}),
    ("Dropout2d", (0.3,), {}),
]


@pytest.mark.parity
@pytest.mark.parametrize("name, args, kwargs", MODULES)
def test_module_repr_and_state_dict_match_torch(name, args, kwargs):
    ours, theirs = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
           {k: tuple(v.shape) for k, v in theirs.state_dict().items()}


@pytest.mark.parity
@pytest.mark.parametrize("layer, shape", [(lambda: nn.Conv2d(6, 4, (3, 2), groups=2), (2, 6, 5, 5)),
                                          (lambda: nn.Conv1d(3, 5, 4, padding="same"), (2, 3, 7))])
def test_conv_modules_compute_what_torch_computes_with_its_weights(device, layer, shape):
    ours = layer().to(device)
    theirs = getattr(torch.nn, type(ours).__name__)(ours.in_channels, ours.out_channels, ours.kernel_size,
                                                      padding=ours.padding, groups=ours.groups)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = randn(*shape).astype(np.float32)
    np.testing.assert_allclose(ours(tl.tensor(x, device=device)).numpy(),
                               theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_conv2d_default_init_is_kaiming_uniform_like_torch(device):
    layer = nn.Conv2d(8, 64, 3, groups=2, device=device)
    assert layer.weight.shape == (64, 4, 3, 3) and layer.bias.shape == (64,) and layer.weight.device == device
    bound = 1 / math.sqrt(4 * 3 * 3)  # fan_in = in_channels / groups * kernel area
    for param in (layer.weight, layer.bias):
        values = np.abs(param.numpy())
        assert values.max() <= bound and values.max() > 0.9 * bound
    assert layer(tl.randn(2, 8, 5, 5, device=device)).shape == (2, 64, 3, 3)


@pytest.mark.parity
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm2d_matches_torch_over_training_steps_then_eval(device, momentum):
    ours, theirs = nn.BatchNorm2d(3, momentum=momentum).to(device), torch.nn.BatchNorm2d(3, momentum=momentum)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(randn(3).astype(np.float32)))
        theirs.bias.copy_(torch.from_numpy(randn(3).astype(np.float32)))
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    conv = nn.Conv2d(2, 3, 2).to(device)  # feed it a convolution's output, as in a network
    torch_conv = torch.nn.Conv2d(2, 3, 2)
    conv.load_state_dict({k: v.numpy() for k, v in torch_conv.state_dict().items()})
    for step in range(3):
        x = (randn(4, 2, 5, 6) * (step + 1) + step).astype(np.float32)
        x_ours, x_theirs = tl.tensor(x, device=device, requires_grad=True), torch.from_numpy(x).requires_grad_()
        out_ours, out_theirs = ours(conv(x_ours)), theirs(torch_conv(x_theirs))
        np.testing.assert_allclose(out_ours.numpy(), out_theirs.detach().numpy(), rtol=1e-4, atol=1e-4)
        w = randn(*out_theirs.shape).astype(np.float32)
        (out_ours * tl.tensor(w, device=device)).sum().backward()
        (out_theirs * torch.from_numpy(w)).sum().backward()
        for a, b in [(x_ours, x_theirs), (ours.weight, theirs.weight), (ours.bias, theirs.bias)]:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-4)
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name].numpy(), value.numpy(), rtol=1e-5, atol=1e-5,
                                   err_msg=name)
    ours.eval(), theirs.eval()
    x = randn(2, 3, 4, 4).astype(np.float32)
    np.testing.assert_allclose(ours(tl.tensor(x, device=device)).numpy(),
                               theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_batchnorm2d_gradcheck(device):
    layer = nn.BatchNorm2d(2, dtype=tl.float64).to(device)
    check_grad(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
               [randn(3, 2, 2, 3), randn(2), randn(2)], device)
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected a 4-D \(N, C, H, W\) input, got shape \(2, 2, 3\)"):
        layer(tl.randn(2, 2, 3, device=device, dtype=tl.float64))


def test_dropout2d_zeroes_whole_channels(device):
    p = 0.4
    x = tl.ones(50, 40, 3, 2, device=device, requires_grad=True)
    out = F.dropout2d(x, p)
    values = out.numpy()
    per_channel = values.reshape(50, 40, -1)
    assert np.all(per_channel == per_channel[:, :, :1])  # each (sample, channel) map is all kept or all zeroed
    kept = per_channel[:, :, 0] != 0
    np.testing.assert_allclose(per_channel[:, :, 0][kept], 1 / (1 - p), rtol=1e-6)
    assert abs(kept.mean() - (1 - p)) < 0.05  # 2000 channels
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), values, rtol=1e-6)  # the gradient is the scaled mask
    layer = nn.Dropout2d(p)
    assert layer.eval()(x) is x and F.dropout2d(x, 0.0) is x
    assert not F.dropout2d(x, 1.0).numpy().any()
    assert F.dropout2d(tl.ones(4, 5, 6, device=device), p).numpy().reshape(4, 5, 6).std(axis=2).max() == 0


# -- errors ------------------------------------------------------------------------------------------
def test_conv_errors_name_the_mismatch(device):
    x, w = tl.randn(2, 3, 8, 8, device=device), tl.randn(32, 1, 3, 3, device=device)
    with pytest.raises(ValueError, match=r"conv2d: input has 3 channels but weight expects 1 "
                                         r"\(weight shape \(32, 1, 3, 3\)"):
        F.conv2d(x, w)
    with pytest.raises(ValueError, match=r"conv2d: input has 3 channels but weight expects groups \* 2 = 4"):
        F.conv2d(x, tl.randn(4, 2, 3, 3, device=device), groups=2)
    with pytest.raises(ValueError, match="conv2d: groups=3 must divide out_channels=4"):
        F.conv2d(x, tl.randn(4, 1, 3, 3, device=device), groups=3)
    with pytest.raises(ValueError, match=r"conv2d: kernel size \(5, 5\) .* is larger than the padded input \(4, 4\)"):
        F.conv2d(tl.randn(1, 1, 2, 2, device=device), tl.randn(1, 1, 5, 5, device=device), padding=1)
    with pytest.raises(ValueError, match=r"conv2d: kernel size \(3, 3\) \(with dilation \(3, 3\): \(7, 7\)\)"):
        F.conv2d(tl.randn(1, 3, 6, 6, device=device), tl.randn(1, 3, 3, 3, device=device), dilation=3)
    with pytest.raises(ValueError, match="conv2d: padding='same' is not supported for strided convolutions"):
        F.conv2d(x, tl.randn(1, 3, 3, 3, device=device), padding="same", stride=2)
    with pytest.raises(ValueError, match="conv2d: padding must be an int, a tuple of ints, 'same' or 'valid', "
                                         "got 'full'"):
        F.conv2d(x, tl.randn(1, 3, 3, 3, device=device), padding="full")
    with pytest.raises(ValueError, match=r"conv2d: stride must be an int or a tuple of 2 ints >= 1, got \(1, 0\)"):
        F.conv2d(x, tl.randn(1, 3, 3, 3, device=device), stride=(1, 0))
    with pytest.raises(ValueError, match=r"conv2d: expected a 3-D \(unbatched\) or 4-D \(N, C, H, W\) input"):
        F.conv2d(tl.randn(3, 8, device=device), w)
    with pytest.raises(ValueError, match=r"conv2d: bias has shape \(3,\), expected \(1,\)"):
        F.conv2d(x, tl.randn(1, 3, 3, 3, device=device), tl.randn(3, device=device))
    with pytest.raises(TypeError, match="conv2d: input is float64 but weight is float32"):
        F.conv2d(x.double(), tl.randn(1, 3, 3, 3, device=device))
    with pytest.raises(ValueError, match=r"conv1d: weight must be 3-D \(out_channels, in_channels / groups, "):
        F.conv1d(tl.randn(2, 3, 8, device=device), w)
    with pytest.raises(ValueError, match="Conv2d: in_channels=3 must be divisible by groups=2"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="Conv2d: padding_mode='reflect' is not supported"):
        nn.Conv2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="Conv1d: padding='same' is not supported for strided convolutions"):
        nn.Conv1d(3, 4, 3, padding="same", stride=2)


def test_pooling_errors_name_the_problem(device):
    x = tl.randn(1, 2, 4, 4, device=device)
    with pytest.raises(ValueError, match="max_pool2d: padding should be at most half of the kernel size"):
        F.max_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match=r"avg_pool2d: the \(padded\) input is smaller than the kernel"):
        F.avg_pool2d(x, 5)
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 3-D \(C, H, W\) or 4-D \(N, C, H, W\) input"):
        F.max_pool2d(tl.randn(4, 4, device=device), 2)
    with pytest.raises(ValueError, match=r"max_pool2d: kernel_size must be an int or a tuple of 2 ints >= 1, "
                                         r"got \(2, 2, 2\)"):
        F.max_pool2d(x, (2, 2, 2))
    with pytest.raises(NotImplementedError, match="MaxPool2d: return_indices=True is not supported"):
        nn.MaxPool2d(2, return_indices=True)
    with pytest.raises(ValueError, match="adaptive_avg_pool2d: output_size must be an int or a tuple of 2 ints"):
        F.adaptive_avg_pool2d(x, (2, 2, 2))
    with pytest.raises(ValueError, match=r"dropout2d: expected a 3-D \(N, C, L\) or 4-D"):
        F.dropout2d(tl.randn(4, 4, device=device))
