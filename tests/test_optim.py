"""Optimizers, learning-rate schedulers and gradient clipping against ``torch.optim`` / ``torch.nn.utils``.

Each optimizer runs 20 steps on a small model (a matrix, a bias and a 0-d scale, starting from the
same values as PyTorch's copy) and the parameters must match PyTorch's after every step.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from oracle import torch_or_skip

import tensorlite as tl
from tensorlite.optim import lr_scheduler

STEPS = 20


@pytest.fixture
def torch():
    return torch_or_skip()


def host(t: tl.Tensor) -> np.ndarray:
    return t.detach().numpy()


# -- a small model, the same in both libraries -----------------------------------------------------------


def initial_values() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32),
            np.array(1.5, dtype=np.float32)]


INPUT = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)


def loss_fn(w, b, s, x):
    """Quadratic plus tanh; ``w``, ``b``, ``s`` are parameters of either library, ``x`` a constant."""
    y = (x @ w + b).tanh()
    return ((y - 0.5) ** 2).mean() * s + 0.1 * (w * w).sum() + (s - 1) ** 2


def ours_params(device: str) -> list[tl.Tensor]:
    return [tl.tensor(v, device=device, requires_grad=True) for v in initial_values()]


def torch_params(torch) -> list:
    return [torch.tensor(v, requires_grad=True) for v in initial_values()]


def groups(params: list, grouped: bool, lr: float) -> list:
    """All parameters in one group, or two groups where the second has half the learning rate."""
    if not grouped:
        return params
    return [{"params": params[:1]}, {"params": params[1:], "lr": lr / 2}]


def train_step(optimizer, params: list, x) -> None:
    optimizer.zero_grad()
    loss_fn(*params, x).backward()
    optimizer.step()


CONFIGS = [
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.02, "momentum": 0.8, "dampening": 0.3, "maximize": True}),
    ("Adam", {"lr": 0.05}),
    ("Adam", {"lr": 0.05, "weight_decay": 0.1, "amsgrad": True}),
    ("Adam", {"lr": 0.03, "betas": (0.8, 0.99), "eps": 1e-6, "maximize": True}),
    ("AdamW", {"lr": 0.05}),
    ("AdamW", {"lr": 0.05, "weight_decay": 0.1, "amsgrad": True, "maximize": True}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "weight_decay": 0.1, "centered": True, "maximize": True}),
    ("Adagrad", {"lr": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1, "initial_accumulator_value": 0.1}),
    ("Adagrad", {"lr": 0.1, "eps": 1e-6, "maximize": True}),
    ("Adadelta", {"lr": 1.0}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-5, "weight_decay": 0.1, "maximize": True}),
]


@pytest.mark.parity
@pytest.mark.parametrize("grouped", [False, True], ids=["one-group", "two-groups"])
@pytest.mark.parametrize("name, options", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_steps_match_torch(device: str, torch, name: str, options: dict, grouped: bool) -> None:
    ours, theirs = ours_params(device), torch_params(torch)
    opt = getattr(tl.optim, name)(groups(ours, grouped, options["lr"]), **options)
    ref = getattr(torch.optim, name)(groups(theirs, grouped, options["lr"]), **options)
    x, x_ref = tl.tensor(INPUT, device=device), torch.tensor(INPUT)
    for step in range(STEPS):
        train_step(opt, ours, x)
        train_step(ref, theirs, x_ref)
        for i, (a, b) in enumerate(zip(ours, theirs)):
            np.testing.assert_allclose(host(a), b.detach().numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name} {options}: parameter {i} after step {step + 1}")


STATEFUL = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("Adam", {"lr": 0.05, "amsgrad": True}),
    ("AdamW", {"lr": 0.05}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True}),
    ("Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.1}),
    ("Adadelta", {"lr": 0.5}),
]


@pytest.mark.parity
@pytest.mark.parametrize("name, options", STATEFUL, ids=[n for n, _ in STATEFUL])
def test_state_dict_layout_matches_torch(torch, name: str, options: dict) -> None:
    ours, theirs = ours_params("cpu"), torch_params(torch)
    opt = getattr(tl.optim, name)(groups(ours, True, options["lr"]), **options)
    ref = getattr(torch.optim, name)(groups(theirs, True, options["lr"]), **options)
    for _ in range(3):
        train_step(opt, ours, tl.tensor(INPUT))
        train_step(ref, theirs, torch.tensor(INPUT))
    got, want = opt.state_dict(), ref.state_dict()
    assert got["state"].keys() == want["state"].keys() == {0, 1, 2}
    for index, state in want["state"].items():
        assert got["state"][index].keys() == state.keys()
        for key, value in state.items():
            mine = got["state"][index][key]
            np.testing.assert_allclose(float(mine) if key == "step" else host(mine), value.numpy(),
                                       rtol=1e-5, atol=1e-6, err_msg=f"state {index} {key}")
    assert len(got["param_groups"]) == 2
    for mine, theirs_group in zip(got["param_groups"], want["param_groups"]):
        for key, value in mine.items():
            assert theirs_group[key] == value, key


@pytest.mark.parametrize("name, options", STATEFUL, ids=[n for n, _ in STATEFUL])
def test_state_dict_round_trip_continues_like_uninterrupted(device: str, name: str, options: dict) -> None:
    """Save on the CPU after 10 steps, load into a new optimizer on ``device``: the next 10 steps agree."""
    x = tl.tensor(INPUT)
    params = ours_params("cpu")
    opt = getattr(tl.optim, name)(groups(params, True, options["lr"]), **options)
    for _ in range(10):
        train_step(opt, params, x)
    saved = opt.state_dict()

    resumed = [tl.tensor(p, device=device, requires_grad=True) for p in params]
    other = getattr(tl.optim, name)(groups(resumed, True, 123.0), **options)
    other.load_state_dict(saved)
    assert [g["lr"] for g in other.param_groups] == [options["lr"], options["lr"] / 2]
    x_device = tl.tensor(INPUT, device=device)
    for _ in range(10):
        train_step(opt, params, x)  # the optimizer keeps working on its own state: no aliasing
        train_step(other, resumed, x_device)
    for a, b in zip(params, resumed):
        np.testing.assert_allclose(host(b), host(a), rtol=1e-6, atol=1e-7)


@pytest.mark.parity
@pytest.mark.parametrize("name, options", STATEFUL, ids=[n for n, _ in STATEFUL])
def test_torch_state_dict_loads_and_continues(device: str, torch, name: str, options: dict) -> None:
    theirs = torch_params(torch)
    ref = getattr(torch.optim, name)(groups(theirs, True, options["lr"]), **options)
    x, x_ref = tl.tensor(INPUT, device=device), torch.tensor(INPUT)
    for _ in range(5):
        train_step(ref, theirs, x_ref)
    ours = [tl.tensor(p.detach().numpy(), device=device, requires_grad=True) for p in theirs]
    opt = getattr(tl.optim, name)(groups(ours, True, 1.0), **options)
    opt.load_state_dict(ref.state_dict())
    for _ in range(5):
        train_step(ref, theirs, x_ref)
        train_step(opt, ours, x)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(host(a), b.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_load_state_dict_checks_groups_and_shapes() -> None:
    params = ours_params("cpu")
    opt = tl.optim.Adam(params, lr=0.1)
    train_step(opt, params, tl.tensor(INPUT))
    saved = opt.state_dict()
    with pytest.raises(ValueError, match="2 parameter groups.*has 1"):
        tl.optim.Adam(ours_params("cpu")).load_state_dict({"state": {}, "param_groups": saved["param_groups"] * 2})
    with pytest.raises(ValueError, match="group 0 has 3 parameters in the state dict, 2"):
        tl.optim.Adam(ours_params("cpu")[:2]).load_state_dict(saved)
    swapped = [tl.zeros(3, requires_grad=True), tl.zeros(4, 3, requires_grad=True), tl.zeros((), requires_grad=True)]
    with pytest.raises(ValueError, match=r"exp_avg.*parameter 0 has shape \(4, 3\), the parameter has shape \(3,\)"):
        tl.optim.Adam(swapped).load_state_dict(saved)


# -- the Optimizer contract ----------------------------------------------------------------------


def test_zero_grad_sets_none_or_zeros(device: str) -> None:
    params = ours_params(device)
    opt = tl.optim.SGD(params, lr=0.1)
    loss_fn(*params, tl.tensor(INPUT, device=device)).backward()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not host(p.grad).any() for p in params)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_parameters_without_grad_are_skipped(device: str) -> None:
    w, b = tl.ones(2, device=device, requires_grad=True), tl.ones(2, device=device, requires_grad=True)
    opt = tl.optim.Adam([w, b], lr=0.1)
    (w * w).sum().backward()
    opt.step()
    np.testing.assert_array_equal(host(b), [1.0, 1.0])
    assert host(w)[0] < 1.0
    assert b not in opt.state and opt.state_dict()["state"].keys() == {0}


def test_step_returns_the_closure_loss(device: str) -> None:
    w = tl.tensor([3.0], device=device, requires_grad=True)
    opt = tl.optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with tl.no_grad():  # the closure still records a graph, as in PyTorch
        loss = opt.step(closure)
    assert float(loss) == 9.0
    np.testing.assert_allclose(host(w), [1.5])


def test_add_param_group_and_its_checks() -> None:
    w, b = tl.ones(2, requires_grad=True), tl.ones(3, requires_grad=True)
    opt = tl.optim.SGD([w], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": b, "lr": 0.01})
    assert opt.param_groups[1]["params"] == [b] and opt.param_groups[1]["lr"] == 0.01
    assert opt.param_groups[1]["momentum"] == 0.9
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [w]})
    with pytest.raises(ValueError, match="non-leaf"):
        opt.add_param_group({"params": [w * 2]})
    with pytest.raises(TypeError, match="can only optimize tensors.*list"):
        tl.optim.SGD([[w]], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        tl.optim.SGD(w, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        tl.optim.Adam([])


def test_adagrad_state_starts_at_construction() -> None:
    w = tl.ones(2, requires_grad=True)
    opt = tl.optim.Adagrad([w], initial_accumulator_value=0.5)
    state = opt.state_dict()["state"][0]
    assert state["step"] == 0
    np.testing.assert_array_equal(host(state["sum"]), [0.5, 0.5])


def test_repr_lists_the_groups() -> None:
    text = repr(tl.optim.AdamW([tl.ones(2, requires_grad=True)], lr=0.1))
    assert text.startswith("AdamW (\nParameter Group 0\n") and "    weight_decay: 0.01" in text


@pytest.mark.parametrize("make, match", [
    (lambda p: tl.optim.SGD(p, lr=-0.1), "SGD: invalid lr -0.1"),
    (lambda p: tl.optim.SGD(p, lr=0.1, momentum=-1), "SGD: invalid momentum -1"),
    (lambda p: tl.optim.SGD(p, lr=0.1, nesterov=True), "SGD: invalid .* for nesterov"),
    (lambda p: tl.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "dampening == 0"),
    (lambda p: tl.optim.Adam(p, lr=0.1, betas=(1.0, 0.999)), "Adam: invalid beta parameter at index 0 1.0"),
    (lambda p: tl.optim.Adam(p, betas=(0.9, -0.1)), "Adam: invalid beta parameter at index 1 -0.1"),
    (lambda p: tl.optim.Adam(p, eps=-1e-8), "Adam: invalid eps -1e-08"),
    (lambda p: tl.optim.AdamW(p, weight_decay=-0.01), "AdamW: invalid weight_decay -0.01"),
    (lambda p: tl.optim.Adam([{"params": p, "lr": -1.0}]), "Adam: invalid lr -1.0"),
    (lambda p: tl.optim.RMSprop(p, alpha=-0.5), "RMSprop: invalid alpha -0.5"),
    (lambda p: tl.optim.RMSprop(p, lr=float("nan")), "RMSprop: invalid lr nan"),
    (lambda p: tl.optim.Adagrad(p, lr_decay=-1), "Adagrad: invalid lr_decay -1"),
    (lambda p: tl.optim.Adagrad(p, initial_accumulator_value=-1), "Adagrad: invalid initial_accumulator_value"),
    (lambda p: tl.optim.Adadelta(p, rho=1.5), r"Adadelta: invalid rho 1.5, expected a value in \[0, 1\]"),
    (lambda p: tl.optim.Adadelta(p, eps=-1.0), "Adadelta: invalid eps -1.0"),
])
def test_invalid_hyperparameters_raise(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make([tl.ones(2, requires_grad=True)])


# -- learning-rate schedulers ----------------------------------------------------------------------


def lr_sequences(optimizer, scheduler, steps: int, key: str | None = None) -> list:
    """The learning rates (or ``group[key]``) after construction and after each of ``steps`` steps."""
    def record():
        if key is None:
            return scheduler.get_last_lr()
        return [group[key] for group in optimizer.param_groups]

    seen = [record()]
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        seen.append(record())
    return seen


def two_group_optimizers(torch, name: str = "SGD", **options):
    def make(lib, tensor):
        return getattr(lib.optim, name)([{"params": [tensor(1.0)]}, {"params": [tensor(2.0)], "lr": 0.05}],
                                        lr=0.1, **options)

    return (make(tl, lambda v: tl.tensor(v, requires_grad=True)),
            make(torch, lambda v: torch.tensor(v, requires_grad=True)))


SCHEDULERS = {
    "StepLR": lambda m, opt: m.StepLR(opt, step_size=7, gamma=0.5),
    "ExponentialLR": lambda m, opt: m.ExponentialLR(opt, gamma=0.9),
    "CosineAnnealingLR": lambda m, opt: m.CosineAnnealingLR(opt, T_max=10, eta_min=0.01),
    "LambdaLR": lambda m, opt: m.LambdaLR(opt, lambda step: 0.95**step),
    "LambdaLR-per-group": lambda m, opt: m.LambdaLR(opt, [lambda s: 1 / (s + 1), lambda s: 1 + 0.1 * s]),
    "OneCycleLR": lambda m, opt: m.OneCycleLR(opt, max_lr=[1.0, 0.5], total_steps=40),
    "OneCycleLR-three-phase-linear": lambda m, opt: m.OneCycleLR(
        opt, max_lr=0.3, epochs=4, steps_per_epoch=10, pct_start=0.25, three_phase=True, anneal_strategy="linear"),
}


@pytest.mark.parity
@pytest.mark.parametrize("make", SCHEDULERS.values(), ids=SCHEDULERS.keys())
def test_scheduler_matches_torch(torch, make) -> None:
    opt, ref = two_group_optimizers(torch, momentum=0.9)
    got = lr_sequences(opt, make(lr_scheduler, opt), 40)
    want = lr_sequences(ref, make(torch.optim.lr_scheduler, ref), 40)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert [g["lr"] for g in opt.param_groups] == got[-1]


@pytest.mark.parity
@pytest.mark.parametrize("name, key", [("SGD", "momentum"), ("Adam", "betas")])
def test_one_cycle_cycles_momentum_like_torch(torch, name: str, key: str) -> None:
    opt, ref = two_group_optimizers(torch, name)
    got = lr_sequences(opt, lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=30), 30, key)
    want = lr_sequences(ref, torch.optim.lr_scheduler.OneCycleLR(ref, max_lr=0.2, total_steps=30), 30, key)
    np.testing.assert_allclose(np.array(got, dtype=float), np.array(want, dtype=float), rtol=1e-12)


def test_one_cycle_refuses_to_step_past_the_end() -> None:
    opt = tl.optim.SGD([tl.ones(1, requires_grad=True)], lr=0.1)
    scheduler = lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=5)
    for _ in range(5):
        scheduler.step()
    with pytest.raises(ValueError, match="stepped 6 times, but total_steps is 5"):
        scheduler.step()


def test_warmup_cosine_follows_nanogpt_formula() -> None:
    opt = tl.optim.AdamW([{"params": [tl.ones(1, requires_grad=True)]},
                          {"params": [tl.ones(1, requires_grad=True)], "lr": 3e-4}], lr=6e-4)
    warmup, total, min_lrs = 10, 40, [6e-5, 0.0]
    scheduler = lr_scheduler.WarmupCosineLR(opt, warmup_steps=warmup, total_steps=total, min_lr=min_lrs)

    def nanogpt(it: int, learning_rate: float, min_lr: float) -> float:
        if it < warmup:
            return learning_rate * it / warmup
        if it > total:
            return min_lr
        decay_ratio = (it - warmup) / (total - warmup)
        coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
        return min_lr + coeff * (learning_rate - min_lr)

    got = lr_sequences(opt, scheduler, total + 5)
    want = [[nanogpt(it, 6e-4, min_lrs[0]), nanogpt(it, 3e-4, min_lrs[1])] for it in range(total + 6)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-18)
    assert got[0] == [0.0, 0.0] and got[warmup] == [6e-4, 3e-4] and got[-1] == min_lrs


def test_warmup_cosine_checks_its_steps() -> None:
    opt = tl.optim.SGD([tl.ones(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="0 <= warmup_steps < total_steps"):
        lr_scheduler.WarmupCosineLR(opt, warmup_steps=10, total_steps=10)


def test_scheduler_state_dict_resumes_the_schedule() -> None:
    def make():
        opt = tl.optim.SGD([tl.ones(1, requires_grad=True)], lr=0.1)
        return opt, lr_scheduler.LambdaLR(opt, lambda step: 0.9**step)

    opt, scheduler = make()
    for _ in range(7):
        scheduler.step()
    saved_opt, saved = opt.state_dict(), scheduler.state_dict()
    assert "lr_lambdas" not in saved and "optimizer" not in saved and saved["last_epoch"] == 7
    other_opt, other = make()
    other_opt.load_state_dict(saved_opt)
    other.load_state_dict(saved)
    assert other.get_last_lr() == scheduler.get_last_lr()
    scheduler.step()
    other.step()
    assert other.get_last_lr() == scheduler.get_last_lr() == [pytest.approx(0.1 * 0.9**8)]


def test_scheduler_resume_needs_initial_lr() -> None:
    opt = tl.optim.SGD([tl.ones(1, requires_grad=True)], lr=0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(opt, step_size=3, last_epoch=5)
    with pytest.raises(TypeError, match="expected an Optimizer"):
        lr_scheduler.StepLR(object(), step_size=3)


# -- clip_grad_norm_ -------------------------------------------------------------------------------


@pytest.mark.parity
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(device: str, torch, norm_type: float, max_norm: float) -> None:
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal(shape).astype(np.float32) for shape in [(4, 3), (3,), ()]]
    ours = [tl.zeros(g.shape, device=device, requires_grad=True) for g in grads]
    theirs = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for a, b, g in zip(ours, theirs, grads):
        a.grad, b.grad = tl.tensor(g, device=device), torch.tensor(g)
    skipped = tl.zeros(2, device=device, requires_grad=True)  # no grad: ignored
    total = tl.nn.utils.clip_grad_norm_([*ours, skipped], max_norm, norm_type=norm_type)
    want = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert total.shape == () and total.device == tl.device(device)
    np.testing.assert_allclose(host(total), want.numpy(), rtol=1e-6)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(host(a.grad), b.grad.numpy(), rtol=1e-6, atol=1e-7)
    assert skipped.grad is None


def test_clip_grad_norm_single_tensor_empty_and_nonfinite(device: str) -> None:
    w = tl.zeros(2, device=device, requires_grad=True)
    assert float(tl.nn.utils.clip_grad_norm_(w, 1.0)) == 0.0  # no gradients at all
    w.grad = tl.tensor([3.0, 4.0], device=device)
    assert float(tl.nn.utils.clip_grad_norm_(w, 1.0)) == pytest.approx(5.0)
    np.testing.assert_allclose(host(w.grad), [0.6, 0.8], rtol=1e-5)
    w.grad = tl.tensor([math.inf, 1.0], device=device)
    with pytest.raises(RuntimeError, match="total norm .* is inf"):
        tl.nn.utils.clip_grad_norm_(w, 1.0, error_if_nonfinite=True)
