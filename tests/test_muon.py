"""``tl.optim.Muon`` against ``torch.optim.Muon`` (PyTorch 2.13), and ``tl.optim.CombinedOptimizer``.

PyTorch runs Muon's Newton-Schulz steps in bfloat16, tensorlite in float32, so the comparison is made twice:

- against ``torch.optim.Muon`` itself, within what bfloat16 explains. bfloat16 keeps 8 significant bits
  (a relative rounding error up to 2**-9 = 0.2% per value), and each of the five Newton-Schulz steps rounds
  three matrix products, so an element of PyTorch's orthogonalised update is off by up to a few percent of
  the update's size (measured here: at most about 2%). The gradients are the same fixed sequence in both
  libraries, so the momentum buffers agree exactly and the per-step differences only add up: after ``n``
  steps the weights agree within ``BF16_TOLERANCE`` (5%) of the sum of the ``n`` largest update elements;
- against PyTorch's own algorithm with only the bfloat16 cast removed (``torch.optim.Muon`` with its
  ``_zeropower_via_newtonschulz`` replaced by the same iteration, written here from torch ops, in float32),
  within float32 rounding (rtol 1e-5, atol 1e-6; measured: 5e-7). That PyTorch's bfloat16 result is outside
  this tolerance is checked too, so the two comparisons say different things.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from oracle import torch_or_skip

import tensorlite as tl
from tensorlite.optim.muon import (
    NS_COEFFICIENTS,
    newton_schulz_direct,
    newton_schulz_on_gram,
    zeropower_via_newton_schulz,
)

STEPS = 20
BF16_TOLERANCE = 0.05  # of the largest element of each step's update; see the module docstring
F32 = dict(rtol=1e-5, atol=1e-6)

CONFIGS = [
    {"lr": 0.02},  # PyTorch's defaults otherwise: weight decay 0.1, Nesterov, "original" scaling
    {"lr": 0.02, "weight_decay": 0.0},
    {"lr": 0.02, "nesterov": False},
    {"lr": 0.02, "weight_decay": 0.0, "nesterov": False, "momentum": 0.9},
    {"lr": 0.02, "adjust_lr_fn": "original", "weight_decay": 0.01},
    {"lr": 0.01, "adjust_lr_fn": "match_rms_adamw"},
    {"lr": 0.01, "adjust_lr_fn": "match_rms_adamw", "nesterov": False, "weight_decay": 0.0},
]
IDS = [",".join(f"{k}={v}" for k, v in c.items()) for c in CONFIGS]
SHAPES = [(12, 5), (5, 12), (8, 8)]  # tall (Newton-Schulz on its transpose), wide, square


@pytest.fixture
def torch():
    return torch_or_skip()


def ns_float32(torch):
    """PyTorch's ``_zeropower_via_newtonschulz`` (2.13) without its bfloat16 cast: the reference in float32."""
    def zeropower(grad, ns_coefficients, ns_steps, eps):
        a, b, c = ns_coefficients
        x = grad.float()
        if grad.size(0) > grad.size(1):
            x = x.T
        x = x / x.norm().clamp(min=eps)
        for _ in range(ns_steps):
            gram = x @ x.T
            x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
        return x.T if grad.size(0) > grad.size(1) else x
    return zeropower


@pytest.fixture
def float32_torch(torch, monkeypatch):
    """``torch.optim.Muon`` running Newton-Schulz in float32 while the fixture lasts."""
    import torch.optim._muon as muon_module

    monkeypatch.setattr(muon_module, "_zeropower_via_newtonschulz", ns_float32(torch))
    return torch


def problem(shapes=SHAPES, steps=STEPS, seed=0) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Initial weights (one per shape) and ``steps`` gradients for each, float32."""
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    grads = [[rng.standard_normal(shape).astype(np.float32) for shape in shapes] for _ in range(steps)]
    return weights, grads


def run_both(torch, options: dict, device: str, steps: int):
    """Both optimizers over the same weights, stepped with the same gradients; yields, after each step, the
    weights of each (host arrays) and PyTorch's largest update element of that step."""
    weights, grads = problem(steps=steps)
    ours = [tl.tensor(w, device=device, requires_grad=True) for w in weights]
    theirs = [torch.tensor(w, requires_grad=True) for w in weights]
    opt, ref = tl.optim.Muon(ours, **options), torch.optim.Muon(theirs, **options)
    for step_grads in grads:
        before = [t.detach().clone() for t in theirs]
        for p, q, g in zip(ours, theirs, step_grads):
            p.grad, q.grad = tl.tensor(g, device=device), torch.tensor(g)
        opt.step()
        ref.step()
        largest = [float((q.detach() - b).abs().max()) for q, b in zip(theirs, before)]
        yield [p.detach().numpy() for p in ours], [q.detach().numpy() for q in theirs], largest


@pytest.mark.parity
@pytest.mark.parametrize("steps", [1, STEPS])
@pytest.mark.parametrize("options", CONFIGS, ids=IDS)
def test_steps_match_torch_muon_within_bfloat16(device, torch, options, steps):
    results = list(run_both(torch, options, device, steps))
    moved = np.sum([largest for _, _, largest in results], axis=0)  # how far each matrix moved, at most
    ours, theirs, _ = results[-1]
    for i, (a, b) in enumerate(zip(ours, theirs)):
        gap = np.abs(a - b).max()
        assert gap <= BF16_TOLERANCE * moved[i], f"{SHAPES[i]}: {gap} > {BF16_TOLERANCE} * {moved[i]}"


@pytest.mark.parity
@pytest.mark.parametrize("steps", [1, STEPS])
@pytest.mark.parametrize("options", CONFIGS, ids=IDS)
def test_steps_match_torch_muon_run_in_float32(device, float32_torch, options, steps):
    for step, (ours, theirs, _) in enumerate(run_both(float32_torch, options, device, steps), 1):
        for i, (a, b) in enumerate(zip(ours, theirs)):
            np.testing.assert_allclose(a, b, **F32, err_msg=f"{SHAPES[i]} after step {step}")


@pytest.mark.parity
def test_float32_tolerance_cannot_pass_torch_muon_in_bfloat16(torch):
    """PyTorch's own (bfloat16) result is further from ours than the float32 tolerance: the two tests differ."""
    for ours, theirs, _ in run_both(torch, CONFIGS[0], "cpu", 1):
        assert not all(np.allclose(a, b, **F32) for a, b in zip(ours, theirs))


@pytest.mark.parity
@pytest.mark.parametrize("options", CONFIGS[:3], ids=IDS[:3])
def test_training_on_a_loss_follows_torch_run_in_float32(device, float32_torch, options):
    """Gradients from a loss (weights and gradients feed back), zero_grad and backward included."""
    torch = float32_torch
    rng = np.random.default_rng(2)
    w0, x = rng.standard_normal((6, 4)).astype(np.float32), rng.standard_normal((5, 6)).astype(np.float32)

    def loss(w, x):
        return ((x @ w).tanh() - 0.5).pow(2).mean() + 0.1 * (w * w).sum()

    ours, theirs = tl.tensor(w0, device=device, requires_grad=True), torch.tensor(w0, requires_grad=True)
    opt, ref = tl.optim.Muon([ours], **options), torch.optim.Muon([theirs], **options)
    for step in range(STEPS):
        for optimizer, w, inputs in ((opt, ours, tl.tensor(x, device=device)), (ref, theirs, torch.tensor(x))):
            optimizer.zero_grad()
            loss(w, inputs).backward()
            optimizer.step()
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), **F32, err_msg=f"step {step}")


# -- Newton-Schulz ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(32, 80), (80, 32), (48, 48)])
def test_newton_schulz_makes_an_approximately_orthogonal_matrix(device, shape):
    """Keller Jordan's quintic leaves the singular values between about 0.5 and 1.5 (not at 1 exactly)."""
    g = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    backend = tl.device(device).backend
    out = backend.to_host(zeropower_via_newton_schulz(backend.xp, backend.from_host(g), NS_COEFFICIENTS, 5, 1e-7))
    assert out.shape == shape and out.dtype == np.float32
    singular = np.linalg.svd(out.astype(np.float64), compute_uv=False)
    assert 0.5 < singular.min() and singular.max() < 1.3, singular
    u, _, vt = np.linalg.svd(g.astype(np.float64), full_matrices=False)
    assert np.abs(out - u @ vt).max() < 0.5  # the polar factor U V^T, roughly
    zero = backend.from_host(np.zeros(shape, np.float32))
    assert not backend.to_host(zeropower_via_newton_schulz(backend.xp, zero, NS_COEFFICIENTS, 5, 1e-7)).any()


@pytest.mark.parametrize("steps", [2, 3, 5])
@pytest.mark.parametrize("shape", [(16, 64), (16, 25)])  # wide: where it is used (l > 1.5 k)
def test_newton_schulz_on_the_gram_matrix_is_the_direct_iteration(shape, steps):
    """The Gram-matrix form (what wide matrices use) equals the steps as written: to 1e-12 in float64, to
    float32 rounding in float32 (relative to the largest entry, as the direct float32 steps are to float64)."""
    g = np.random.default_rng(steps).standard_normal(shape) * np.random.default_rng(1).uniform(0.1, 10, (shape[0], 1))
    x = g / np.linalg.norm(g)
    direct = newton_schulz_direct(np, x.copy(), NS_COEFFICIENTS, steps)
    np.testing.assert_allclose(newton_schulz_on_gram(np, x.copy(), NS_COEFFICIENTS, steps), direct, rtol=0,
                               atol=1e-12 * np.abs(direct).max())
    single = newton_schulz_on_gram(np, x.astype(np.float32), NS_COEFFICIENTS, steps)
    assert single.dtype == np.float32
    assert np.abs(single - direct).max() < 2e-5 * np.abs(direct).max()


def test_newton_schulz_runs_in_float64_for_float64_and_leaves_its_input_alone():
    g = np.random.default_rng(0).standard_normal((4, 6))
    copy = g.copy()
    assert zeropower_via_newton_schulz(np, g, NS_COEFFICIENTS, 5, 1e-7).dtype == np.float64
    np.testing.assert_array_equal(g, copy)
    single = zeropower_via_newton_schulz(np, g.astype(np.float16), NS_COEFFICIENTS, 5, 1e-7)
    assert single.dtype == np.float32


def test_a_step_reads_nothing_from_the_device(monkeypatch):
    """Newton-Schulz's norm and every scale stay on the device: no value comes back to the host."""
    from tensorlite.backends.sim import SimArray

    def refuse(*args):
        raise AssertionError("Muon read a value from the device")

    params = [tl.randn(12, 5, device="sim", requires_grad=True), tl.randn(5, 12, device="sim", requires_grad=True)]
    opt = tl.optim.Muon(params, lr=0.02)
    for p in params:
        p.grad = tl.randn(*p.shape, device="sim")
    for name in ("__float__", "__int__", "__bool__", "__index__", "item", "tolist", "get"):
        monkeypatch.setattr(SimArray, name, refuse)
    opt.step()
    opt.step()


# -- state dicts ----------------------------------------------------------------------------------------------
def muon_params(device: str = "cpu") -> list[tl.Tensor]:
    weights, _ = problem()
    return [tl.tensor(w, device=device, requires_grad=True) for w in weights]


def step_with(opt, params, grads) -> None:
    for p, g in zip(params, grads):
        p.grad = tl.tensor(g, device=p.device)
    opt.step()


@pytest.mark.parity
def test_state_dict_layout_matches_torch(torch):
    weights, grads = problem(steps=3)
    ours, theirs = muon_params(), [torch.tensor(w, requires_grad=True) for w in weights]
    groups = lambda ps: [{"params": ps[:1]}, {"params": ps[1:], "lr": 0.01, "nesterov": False}]  # noqa: E731
    opt, ref = tl.optim.Muon(groups(ours), lr=0.02), torch.optim.Muon(groups(theirs), lr=0.02)
    for step_grads in grads:
        step_with(opt, ours, step_grads)
        for q, g in zip(theirs, step_grads):
            q.grad = torch.tensor(g)
        ref.step()
    got, want = opt.state_dict(), ref.state_dict()
    assert got["state"].keys() == want["state"].keys() == {0, 1, 2}
    for index, state in want["state"].items():
        assert got["state"][index].keys() == state.keys() == {"momentum_buffer"}
        np.testing.assert_allclose(got["state"][index]["momentum_buffer"].numpy(), state["momentum_buffer"].numpy(),
                                   rtol=1e-6, atol=1e-7)
    assert got["param_groups"] == want["param_groups"]  # every key and value, the parameter indices included


@pytest.mark.parametrize("through_file", [False, True])
def test_state_dict_round_trip_continues_like_uninterrupted(device, tmp_path, through_file):
    """Save on the CPU after 10 steps (in memory, or through tl.save and tl.load), load into a new optimizer on
    ``device``: the next 10 steps agree exactly."""
    _, grads = problem()
    params = muon_params()
    opt = tl.optim.Muon([{"params": params[:2]}, {"params": params[2:], "adjust_lr_fn": "match_rms_adamw"}],
                        lr=0.02, nesterov=False)
    for step_grads in grads[:10]:
        step_with(opt, params, step_grads)
    saved = opt.state_dict()
    if through_file:
        tl.save({"optimizer": saved}, tmp_path / "muon.safetensors")
        saved = tl.load(tmp_path / "muon.safetensors")["optimizer"]
    resumed = [tl.tensor(p.detach().numpy(), device=device, requires_grad=True) for p in params]
    other = tl.optim.Muon([{"params": resumed[:2]}, {"params": resumed[2:]}], lr=1.0)
    other.load_state_dict(saved)
    assert other.param_groups[1]["adjust_lr_fn"] == "match_rms_adamw" and not other.param_groups[0]["nesterov"]
    assert other.param_groups[0]["ns_coefficients"] == NS_COEFFICIENTS
    for step_grads in grads[10:]:
        step_with(opt, params, step_grads)
        step_with(other, resumed, step_grads)
    for a, b in zip(params, resumed):
        np.testing.assert_array_equal(b.numpy(), a.numpy())


@pytest.mark.parity
def test_torch_state_dict_loads_and_continues(device, float32_torch):
    torch = float32_torch
    weights, grads = problem()
    theirs = [torch.tensor(w, requires_grad=True) for w in weights]
    ref = torch.optim.Muon(theirs, lr=0.02, weight_decay=0.05)
    for step_grads in grads[:5]:
        for q, g in zip(theirs, step_grads):
            q.grad = torch.tensor(g)
        ref.step()
    ours = [tl.tensor(q.detach().numpy(), device=device, requires_grad=True) for q in theirs]
    opt = tl.optim.Muon(ours)
    opt.load_state_dict(ref.state_dict())
    assert opt.param_groups[0]["lr"] == 0.02 and opt.param_groups[0]["weight_decay"] == 0.05
    for step_grads in grads[5:]:
        step_with(opt, ours, step_grads)
        for q, g in zip(theirs, step_grads):
            q.grad = torch.tensor(g)
        ref.step()
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), **F32)


# -- errors ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3,), (), (2, 3, 4)])
def test_parameters_that_are_not_matrices_are_refused(shape):
    expected = re.escape(f"Muon: only supports 2-D parameters (matrices), but a parameter has shape {shape}")
    with pytest.raises(ValueError, match=expected + ".*AdamW"):
        tl.optim.Muon([tl.zeros(4, 4, requires_grad=True), tl.zeros(*shape, requires_grad=True)])
    opt = tl.optim.Muon([tl.zeros(4, 4, requires_grad=True)])
    with pytest.raises(ValueError, match="only supports 2-D parameters"):
        opt.add_param_group({"params": [tl.zeros(*shape, requires_grad=True)]})


@pytest.mark.parity
def test_torch_refuses_the_same_parameters(torch):
    with pytest.raises(ValueError, match="Muon only supports 2D parameters"):
        torch.optim.Muon([torch.zeros(3, requires_grad=True)])


@pytest.mark.parametrize("options, message", [
    ({"lr": -1.0}, "Muon: invalid lr -1.0, expected a value >= 0"),
    ({"momentum": -0.1}, "Muon: invalid momentum -0.1"),
    ({"weight_decay": -0.1}, "Muon: invalid weight_decay -0.1"),
    ({"eps": -1e-7}, "Muon: invalid eps"),
    ({"adjust_lr_fn": "rms"}, "Muon: invalid adjust_lr_fn 'rms', expected None, 'original' or 'match_rms_adamw'"),
    ({"ns_steps": 100}, "Muon: invalid ns_steps 100, expected an integer from 0 to 99"),
    ({"ns_steps": 2.5}, "Muon: invalid ns_steps 2.5"),
    ({"ns_coefficients": (3.4, -4.7)}, r"Muon: invalid ns_coefficients \(3.4, -4.7\), expected three numbers"),
])
def test_invalid_hyperparameters_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        tl.optim.Muon([tl.zeros(4, 4, requires_grad=True)], **options)


def test_defaults_are_torch_muons():
    opt = tl.optim.Muon([tl.zeros(4, 4, requires_grad=True)])
    assert opt.defaults == dict(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                                ns_coefficients=(3.4445, -4.775, 2.0315), eps=1e-7, ns_steps=5, adjust_lr_fn=None)


# -- CombinedOptimizer -------------------------------------------------------------------------------------------
def combined(params: list[tl.Tensor], bias: tl.Tensor) -> tl.optim.CombinedOptimizer:
    return tl.optim.CombinedOptimizer(
        tl.optim.AdamW([{"params": [bias], "weight_decay": 0.0}], lr=1e-2),
        tl.optim.Muon([{"params": params[:2]}, {"params": params[2:], "lr": 0.01}], lr=0.02))


def combined_problem(device: str = "cpu"):
    params = muon_params(device)
    bias = tl.tensor(np.linspace(-1, 1, 5, dtype=np.float32), device=device, requires_grad=True)
    _, grads = problem()
    bias_grads = [np.random.default_rng(i).standard_normal(5).astype(np.float32) for i in range(STEPS)]
    return params, bias, [[*g, b] for g, b in zip(grads, bias_grads)]


def test_combined_optimizer_steps_each_optimizer_on_its_own_parameters(device):
    params, bias, grads = combined_problem(device)
    opt = combined(params, bias)
    alone_params, alone_bias, _ = combined_problem(device)
    muon = tl.optim.Muon([{"params": alone_params[:2]}, {"params": alone_params[2:], "lr": 0.01}], lr=0.02)
    adamw = tl.optim.AdamW([{"params": [alone_bias], "weight_decay": 0.0}], lr=1e-2)
    for step_grads in grads[:5]:
        step_with(opt, [*params, bias], step_grads)
        step_with(muon, alone_params, step_grads[:3])
        step_with(adamw, [alone_bias], step_grads[3:])
    for a, b in zip([*params, bias], [*alone_params, alone_bias]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert [g["lr"] for g in opt.param_groups] == [1e-2, 0.02, 0.01]
    assert opt.param_groups[1] is opt.optimizers[1].param_groups[0]  # the same dicts: what a scheduler sets, they use
    opt.zero_grad()
    assert all(p.grad is None for p in [*params, bias])
    assert len(opt.state) == 4 and "momentum_buffer" in opt.state[params[0]] and "exp_avg" in opt.state[bias]
    assert "CombinedOptimizer (\n    AdamW (" in repr(opt) and "    Muon (" in repr(opt)


def test_combined_optimizer_is_scheduled_as_one():
    params, bias, grads = combined_problem()
    opt = combined(params, bias)
    scheduler = tl.optim.lr_scheduler.WarmupCosineLR(opt, 2, 10, [1e-3, 2e-3, 1e-3])
    for step_grads in grads[:4]:
        step_with(opt, [*params, bias], step_grads)
        scheduler.step()
    expected = [low + (base - low) * (1 + np.cos(np.pi * 2 / 8)) / 2
                for base, low in zip([1e-2, 0.02, 0.01], [1e-3, 2e-3, 1e-3])]
    np.testing.assert_allclose([g["lr"] for g in opt.optimizers[0].param_groups + opt.optimizers[1].param_groups],
                               expected)


@pytest.mark.parametrize("through_file", [False, True])
def test_combined_state_dict_has_pytorchs_layout_and_resumes_exactly(device, tmp_path, through_file):
    params, bias, grads = combined_problem()
    opt = combined(params, bias)
    for step_grads in grads[:10]:
        step_with(opt, [*params, bias], step_grads)
    saved = opt.state_dict()
    assert saved["state"].keys() == {0, 1, 2, 3}  # the AdamW's parameter first, then Muon's
    assert saved["state"][0].keys() == {"step", "exp_avg", "exp_avg_sq"}
    assert saved["state"][3].keys() == {"momentum_buffer"}
    assert [g["params"] for g in saved["param_groups"]] == [[0], [1, 2], [3]]
    if through_file:
        tl.save({"optimizer": saved}, tmp_path / "opt.safetensors")
        saved = tl.load(tmp_path / "opt.safetensors")["optimizer"]
    other_params, other_bias, _ = combined_problem(device)
    for mine, theirs in zip([*other_params, other_bias], [*params, bias]):
        mine._data[...] = tl.tensor(theirs.numpy(), device=device)._data
    other = combined(other_params, other_bias)
    for group in other.param_groups:
        group["lr"] = 123.0
    other.load_state_dict(saved)
    for step_grads in grads[10:]:
        step_with(opt, [*params, bias], step_grads)
        step_with(other, [*other_params, other_bias], step_grads)
    for a, b in zip([*params, bias], [*other_params, other_bias]):
        np.testing.assert_array_equal(b.numpy(), a.numpy())


def test_combined_optimizer_errors():
    params, bias, _ = combined_problem()
    with pytest.raises(ValueError, match="give at least one optimizer"):
        tl.optim.CombinedOptimizer()
    with pytest.raises(TypeError, match="expected optimizers"):
        tl.optim.CombinedOptimizer(params)
    with pytest.raises(ValueError, match="a parameter of Muon is also in an earlier optimizer"):
        tl.optim.CombinedOptimizer(tl.optim.AdamW(params), tl.optim.Muon(params))
    opt = combined(params, bias)
    with pytest.raises(TypeError, match="add the group to one of its optimizers"):
        opt.add_param_group({"params": [tl.zeros(2, 2, requires_grad=True)]})
    adamw_only = tl.optim.AdamW([*params, bias]).state_dict()
    with pytest.raises(ValueError, match="the state dict has 1 parameter groups, the optimizers have 3 "
                                         r"\(AdamW, Muon\)"):
        opt.load_state_dict(adamw_only)
    swapped = tl.optim.CombinedOptimizer(tl.optim.Muon([params[0]]), tl.optim.AdamW([{"params": params[1:2]},
                                                                                    {"params": [bias]}]))
    with pytest.raises(ValueError, match="group 0 of the state dict lacks amsgrad, betas.*which AdamW needs"):
        opt.load_state_dict(swapped.state_dict())


def test_combined_step_evaluates_the_closure_once():
    params, bias, _ = combined_problem()
    opt = combined(params, bias)
    calls = []

    def closure():
        calls.append(tl.is_grad_enabled())
        loss = (params[0] * params[0]).sum() + bias.sum()
        loss.backward()
        return loss

    with tl.no_grad():
        loss = opt.step(closure)
    assert calls == [True] and loss.item() > 0 and params[0].grad is not None
