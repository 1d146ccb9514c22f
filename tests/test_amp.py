"""Mixed precision: ``tl.autocast`` casts the ops on PyTorch's lists (checked op by op against PyTorch's CPU
autocast, and against its CUDA lists on sim), a GPT step under autocast with ``tl.amp.GradScaler`` matches
PyTorch's within half-precision tolerance, and the scaler skips, backs off and grows as PyTorch's does, without
reading the device on a device.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from oracle import torch
from tensorlite.backends.sim import count_transfers
from test_attention_gpt import jitter_, load_from_torch, torch_nanogpt

import tensorlite as tl
from tensorlite import models, nn, optim

F = nn.functional
U = 2.0**-11  # float16's unit roundoff: half its machine epsilon


# -- which ops change dtype -------------------------------------------------------------------------------------
OPS = {  # name: (tensorlite call, PyTorch call), each taking one (4, 4) float tensor
    "matmul": (lambda t: t @ t.T, lambda t: t @ t.T),
    "linear": (lambda t: F.linear(t, t), lambda t: torch.nn.functional.linear(t, t)),
    "conv2d": (lambda t: F.conv2d(t[None, None], t[None, None, :2, :2]),
               lambda t: torch.nn.functional.conv2d(t[None, None], t[None, None, :2, :2])),
    "sdpa": (lambda t: F.scaled_dot_product_attention(t[None], t[None], t[None]),
             lambda t: torch.nn.functional.scaled_dot_product_attention(t[None], t[None], t[None])),
    "layer_norm": (lambda t: F.layer_norm(t, (4,)), lambda t: torch.nn.functional.layer_norm(t, (4,))),
    "softmax": (lambda t: t.softmax(dim=-1), lambda t: t.softmax(dim=-1)),
    "log_softmax": (lambda t: t.log_softmax(dim=-1), lambda t: t.log_softmax(dim=-1)),
    "logsumexp": (lambda t: t.logsumexp(dim=-1), lambda t: t.logsumexp(dim=-1)),
    "sum": (lambda t: t.sum(), lambda t: t.sum()),
    "mean": (lambda t: t.mean(), lambda t: t.mean()),
    "exp": (lambda t: t.exp(), lambda t: t.exp()),
    "log": (lambda t: (t * t + 1).log(), lambda t: (t * t + 1).log()),
    "pow": (lambda t: t**2, lambda t: t**2),
    "gelu": (F.gelu, lambda t: torch.nn.functional.gelu(t)),
    "relu": (F.relu, lambda t: torch.nn.functional.relu(t)),
    "tanh": (lambda t: t.tanh(), lambda t: t.tanh()),
    "softplus": (F.softplus, lambda t: torch.nn.functional.softplus(t)),
    "add": (lambda t: t + t, lambda t: t + t),
    "mse_loss": (lambda t: F.mse_loss(t, t * 0), lambda t: torch.nn.functional.mse_loss(t, t * 0)),
    "l1_loss": (lambda t: F.l1_loss(t, t * 0), lambda t: torch.nn.functional.l1_loss(t, t * 0)),
    "cross_entropy": (lambda t: F.cross_entropy(t, tl.tensor([0, 1, 2, 3], device=t.device)),
                      lambda t: torch.nn.functional.cross_entropy(t, torch.tensor([0, 1, 2, 3]))),
    "nll_loss": (lambda t: F.nll_loss(t, tl.tensor([0, 1, 2, 3], device=t.device)),
                 lambda t: torch.nn.functional.nll_loss(t, torch.tensor([0, 1, 2, 3]))),
    "bce_with_logits": (lambda t: F.binary_cross_entropy_with_logits(t, t * 0),
                        lambda t: torch.nn.functional.binary_cross_entropy_with_logits(t, t * 0)),
    "binary_cross_entropy": (lambda t: F.binary_cross_entropy(t.sigmoid(), t * 0),
                             lambda t: torch.nn.functional.binary_cross_entropy(t.sigmoid(), t * 0)),
    "embedding": (lambda t: F.embedding(tl.tensor([0, 1], device=t.device), t),
                  lambda t: torch.nn.functional.embedding(torch.tensor([0, 1]), t)),
}

# PyTorch's CUDA lists (ATen/autocast_mode.h), for the ops above: which give float16 / float32 from either input.
CUDA_LOWER = {"matmul", "linear", "conv2d", "sdpa"}
CUDA_FLOAT32 = {"layer_norm", "softmax", "log_softmax", "logsumexp", "sum", "exp", "log", "pow", "softplus",
                "mse_loss", "l1_loss", "cross_entropy", "nll_loss", "bce_with_logits"}


@pytest.mark.parity
@pytest.mark.parametrize("source", ["float32", "float16"])
@pytest.mark.parametrize("op", OPS)
def test_each_op_takes_the_dtype_pytorchs_cpu_autocast_gives_it(op: str, source: str) -> None:
    ours, theirs = OPS[op]
    x = np.random.default_rng(0).standard_normal((4, 4)).astype(source)
    with torch.autocast("cpu", dtype=torch.float16):
        expected = str(theirs(torch.from_numpy(x)).dtype).removeprefix("torch.")
    with tl.autocast("cpu", dtype=tl.float16):
        got = ours(tl.tensor(x)).dtype.name
    assert got == expected


@pytest.mark.parametrize("source", ["float32", "float16"])
@pytest.mark.parametrize("op", [op for op in OPS if op != "binary_cross_entropy"])
def test_on_sim_each_op_follows_pytorchs_cuda_lists(op: str, source: str) -> None:
    x = tl.tensor(np.random.default_rng(0).standard_normal((4, 4)).astype(source), device="sim")
    with tl.autocast("sim"):
        got = OPS[op][0](x).dtype.name
    expected = "float16" if op in CUDA_LOWER else "float32" if op in CUDA_FLOAT32 else source
    assert got == expected


def test_binary_cross_entropy_is_refused_under_cuda_autocast_as_in_pytorch() -> None:
    x = tl.rand(3, device="sim")
    with tl.autocast("sim"), pytest.raises(RuntimeError, match="binary_cross_entropy: unsafe to autocast on sim.*"
                                                                "binary_cross_entropy_with_logits"):
        F.binary_cross_entropy(x, x)


def test_float64_is_never_cast_and_other_devices_are_left_alone() -> None:
    x64 = tl.randn(3, 3, dtype=tl.float64)
    with tl.autocast("cpu"):
        assert (x64 @ x64).dtype == tl.float64
    with tl.autocast("sim"):  # on for sim only: CPU tensors keep float32
        assert (tl.randn(3, 3) @ tl.randn(3, 3)).dtype == tl.float32


def test_nesting_disabling_and_decorating() -> None:
    w = tl.randn(3, 3)

    @tl.autocast("cpu")
    def product() -> tl.Tensor:
        return w @ w

    assert product().dtype == tl.float16 and (w @ w).dtype == tl.float32
    with tl.autocast("cpu"):
        with tl.autocast("cpu", enabled=False):
            assert (w @ w).dtype == tl.float32
        assert (w @ w).dtype == tl.float16 and tl.amp.is_autocast_enabled("cpu")
    assert not tl.amp.is_autocast_enabled("cpu")


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"device_type": "tpu"}, ValueError, "device_type must be one of cpu, cuda, sim"),
    ({"device_type": "cpu", "dtype": "bfloat16"}, TypeError, "bfloat16 is not supported: NumPy has no bfloat16"),
    ({"device_type": "cpu", "dtype": tl.float64}, TypeError, "dtype must be tl.float16"),
])
def test_bad_autocast_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        tl.autocast(**kwargs)


def test_a_parameter_is_cast_once_per_region_and_its_gradient_comes_back_in_float32(device: str) -> None:
    w = tl.randn(4, 4, device=device, requires_grad=True)
    x = tl.randn(2, 4, device=device)
    with tl.autocast(tl.device(device).type):
        first, second = F.linear(x, w), F.linear(x * 2, w)
        assert first.dtype == tl.float16
        assert first._fn.inputs[1] is second._fn.inputs[1]  # the same float16 copy of w
    (first.float().sum() + second.float().sum()).backward()
    assert w.grad.dtype == tl.float32
    np.testing.assert_allclose(w.grad.numpy(), np.tile(3 * x.numpy().sum(0), (4, 1)), rtol=2e-3)


# -- a GPT step under autocast and GradScaler, against PyTorch's ------------------------------------------------
GPT_CONFIG = dict(block_size=16, vocab_size=65, n_layer=2, n_head=2, n_embd=32, bias=False)
LR = 1e-3


def amp_gpt_step(framework: str, device: str, x: np.ndarray, y: np.ndarray) -> tuple[float, dict, dict, dict]:
    """One AdamW step of the same GPT, autocast to float16 with a GradScaler, gradients unscaled and clipped to
    1.0: (loss, gradients after unscaling, parameters after the step, the scaler's state dict)."""
    reference = torch_nanogpt()
    torch.manual_seed(0)  # the same initial weights for both frameworks
    theirs = reference.GPT(SimpleNamespace(**models.GPTConfig(**GPT_CONFIG).to_dict()))
    jitter_(theirs)
    if framework == "torch":
        model, lib = theirs, torch
        scaler = torch.amp.GradScaler("cpu")
        context = torch.autocast("cpu", dtype=torch.float16)
        inputs = torch.from_numpy(x), torch.from_numpy(y)
        optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    else:
        model, lib = models.GPT(models.GPTConfig(**GPT_CONFIG)).to(device), tl
        load_from_torch(model, theirs)
        scaler = tl.amp.GradScaler(tl.device(device).type)
        context = tl.autocast(tl.device(device).type, dtype=tl.float16)
        inputs = tl.tensor(x, device=device), tl.tensor(y, device=device)
        optimizer = optim.AdamW(model.parameters(), lr=LR)
    with context:
        _, loss = model(*inputs)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grads = {name: np.array(p.grad.detach().cpu().numpy()) for name, p in model.named_parameters()}
    lib.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
    params = {name: np.array(p.detach().cpu().numpy()) for name, p in model.named_parameters()}
    return loss.item(), grads, params, scaler.state_dict()


@pytest.mark.parity
def test_a_gpt_step_under_autocast_and_gradscaler_matches_pytorchs(device: str) -> None:
    """Tolerances, from float16's unit roundoff u = 2^-11 (a matrix product rounds its float32 sum to float16, so
    the two libraries' products differ by up to an ulp where their float32 sums round apart):

    - loss within 4u relative (measured: 1.4e-5, the cross entropy runs in float32 in both);
    - each gradient within 8u of its largest entry (measured: at most 2.5u; PyTorch's float32 step differs from
      its float16 step by as much, so this checks half-precision agreement, not more);
    - parameters after AdamW: the first step moves each by lr * sign(gradient), so where a gradient is larger
      than that tolerance (its sign is certain) the parameters agree to 1e-6, and elsewhere within 2 lr.

    On sim, autocast follows PyTorch's CUDA lists (more ops in float32): the same tolerances hold.
    """
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 65, (4, 16)), rng.integers(0, 65, (4, 16))
    loss, grads, params, scaler_state = amp_gpt_step("tensorlite", device, x, y)
    tloss, tgrads, tparams, tscaler_state = amp_gpt_step("torch", device, x, y)
    assert abs(loss - tloss) <= 4 * U * abs(tloss)
    assert scaler_state == tscaler_state == {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                                             "growth_interval": 2000, "_growth_tracker": 1}
    for name, expected in tgrads.items():
        tolerance = 8 * U * np.abs(expected).max()
        np.testing.assert_allclose(grads[name], expected, rtol=0, atol=tolerance, err_msg=name)
        certain = np.abs(expected) > tolerance
        np.testing.assert_allclose(params[name][certain], tparams[name][certain], rtol=0, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(params[name], tparams[name], rtol=0, atol=2 * LR + 1e-6, err_msg=name)


# -- the scaler's skips, backoffs and growth -------------------------------------------------------------------
# Each step's loss is sum(p * x): a gradient of x, made infinite or NaN at some steps.
SEQUENCE = [1.0, 1.0, np.inf, 1.0, 1.0, 1.0, np.nan, 1.0, 1.0, 1.0, 1.0, -np.inf, 1.0, 1.0]


@pytest.mark.parity
@pytest.mark.parametrize("optimizer", ["Adam", "AdamW", "SGD"])
def test_the_scaler_skips_backs_off_and_grows_as_pytorchs(device: str, optimizer: str) -> None:
    """A sequence of finite and infinite/NaN gradients: after every step, the same scale, the same count of
    clean steps, the same parameters and optimizer step count (skipped steps leave all of them alone)."""
    start = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    ours = tl.tensor(start, device=device, requires_grad=True)
    theirs = torch.tensor(start, requires_grad=True)
    make = {"Adam": lambda lib, p: lib.optim.Adam([p], lr=0.1),
            "AdamW": lambda lib, p: lib.optim.AdamW([p], lr=0.1, weight_decay=0.1),
            "SGD": lambda lib, p: lib.optim.SGD([p], lr=0.1, momentum=0.9)}[optimizer]
    ours_opt, theirs_opt = make(tl, ours), make(torch, theirs)
    kwargs = dict(init_scale=2.0**8, growth_factor=4.0, backoff_factor=0.25, growth_interval=3)
    ours_scaler = tl.amp.GradScaler(tl.device(device).type, **kwargs)
    theirs_scaler = torch.amp.GradScaler("cpu", **kwargs)
    for i, value in enumerate(SEQUENCE):
        factor = np.array([value, 2.0, -1.0], dtype=np.float32)
        for p, opt, scaler, lib in ((ours, ours_opt, ours_scaler, tl), (theirs, theirs_opt, theirs_scaler, torch)):
            scaled = scaler.scale((p * lib.tensor(factor, device=device) if lib is tl
                                   else p * torch.from_numpy(factor)).sum())
            opt.zero_grad()
            scaled.backward()
            scaler.step(opt)
            scaler.update()
        assert ours_scaler.state_dict() == theirs_scaler.state_dict(), f"step {i}"
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-6, atol=1e-6,
                                   err_msg=f"step {i}")
        if optimizer != "SGD":
            assert int(ours_opt.state[ours]["step"]) == int(theirs_opt.state[theirs]["step"]), f"step {i}"
    assert ours_scaler.get_scale() != kwargs["init_scale"]  # it moved both ways on the way


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the infinite step's clipping, on NumPy
def test_a_scaled_step_on_a_device_reads_nothing() -> None:
    p = tl.randn(5, device="sim", requires_grad=True)
    opt = optim.AdamW([p], lr=0.1)
    scaler = tl.amp.GradScaler("sim", growth_interval=2)
    for value in (1.0, float("inf"), 1.0, 1.0):
        with count_transfers() as log:
            with tl.autocast("sim"):
                loss = (p * value).sum()
            opt.zero_grad()
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_([p], 1.0)
            scaler.step(opt)
            scaler.update()
        assert not log.device_to_host, log.report()
    assert scaler.get_scale() == 2.0**16 * 0.5 * 2 and int(opt.state[p]["step"]) == 3


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # a float16 gradient scaled past its range
def test_scaler_misuse_is_explained() -> None:
    p = tl.randn(2, requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    scaler = tl.amp.GradScaler("cpu")
    with pytest.raises(RuntimeError, match="no loss was scaled yet"):
        scaler.unscale_(opt)
    scaler.scale(p.sum()).backward()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="unscale_\\(\\) has already been called on this optimizer"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called since the last update"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="Closure use is not currently supported"):
        tl.amp.GradScaler("cpu").step(opt, closure=lambda: None)
    half = tl.randn(2, dtype=tl.float16, requires_grad=True)
    half_scaler = tl.amp.GradScaler("cpu")
    half_scaler.scale(half.sum()).backward()
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
        half_scaler.unscale_(optim.SGD([half], lr=0.1))
    with pytest.raises(ValueError, match="growth_factor should be > 1"):
        tl.amp.GradScaler("cpu", growth_factor=1.0)


def test_a_disabled_scaler_passes_through_and_state_dicts_round_trip() -> None:
    p = tl.randn(2, requires_grad=True)
    off = tl.amp.GradScaler("cpu", enabled=False)
    loss = p.sum()
    assert off.scale(loss) is loss and off.state_dict() == {} and off.get_scale() == 1.0
    scaler = tl.amp.GradScaler("cpu", init_scale=8.0, growth_interval=5)
    scaler.load_state_dict({"scale": 32.0, "growth_factor": 3.0, "backoff_factor": 0.25, "growth_interval": 7,
                            "_growth_tracker": 4})
    assert scaler.state_dict() == {"scale": 32.0, "growth_factor": 3.0, "backoff_factor": 0.25,
                                   "growth_interval": 7, "_growth_tracker": 4}
    assert scaler.scale(tl.tensor(1.0)).item() == 32.0
