"""Loss functions, as in ``torch.nn.functional`` (the ``nn.*Loss`` modules are in ``tensorlite.nn.loss``).

Regression: ``mse_loss``, ``l1_loss`` (composites of elementwise ops). Binary targets:
``binary_cross_entropy`` and ``binary_cross_entropy_with_logits``, one fused ``Function`` each.
Classification: ``cross_entropy`` (log-softmax and NLL fused into one ``Function`` that saves the
softmax) and ``nll_loss``; both work on rows (M, C), so (N, C, d1, ...) inputs are first laid out
with the class dimension last. ``reduction`` is ``'mean'`` (default), ``'sum'`` or ``'none'``.

Arguments that PyTorch has deprecated (``size_average``, ``reduce``) are left out; the options
after ``weight`` are keyword-only, so a call that passed them positionally fails loudly.
"""

from __future__ import annotations

import math

from tensorlite import device_checks
from tensorlite.amp.autocast_mode import cast_inputs
from tensorlite.amp.autocast_mode import state as autocast
from tensorlite.autograd import Function
from tensorlite.tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")


# -- checks shared by every loss -------------------------------------------------------------------
def check_reduction(loss: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{loss}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_same_shape(loss: str, input: Tensor, target: Tensor) -> None:
    if target.shape != input.shape:
        raise ValueError(f"{loss}: target shape {target.shape} does not match input shape {input.shape}; "
                         "they must be the same")


def _check_weight(loss: str, name: str, weight: Tensor | None, fits: bool, expected: str) -> None:
    """``weight`` rescales the loss: it must have a fitting shape and, as in PyTorch, not require grad."""
    if weight is None:
        return
    if not fits:
        raise ValueError(f"{loss}: {name} has shape {weight.shape}, expected {expected}")
    if weight.requires_grad:
        raise RuntimeError(f"{loss}: {name} must not require grad (the loss is not differentiable with respect "
                           "to it, as in PyTorch); pass weight.detach()")


def _check_elementwise_weight(loss: str, name: str, weight: Tensor | None, shape: tuple[int, ...]) -> None:
    """A weight of binary cross entropy broadcasts to the input's ``shape`` without enlarging it."""
    if weight is not None:
        fits = weight.ndim <= len(shape) and all(n in (1, m) for n, m in zip(weight.shape[::-1], shape[::-1]))
        _check_weight(loss, name, weight, fits, f"a shape that broadcasts to the input's {shape}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


# -- regression ------------------------------------------------------------------------------------
def mse_loss(input: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    """Squared error (input - target)^2, reduced; input and target have the same shape."""
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, target = cast_inputs("mse_loss", input, target)
    check_reduction("mse_loss", reduction)
    _check_same_shape("mse_loss", input, target)
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    """Absolute error ``|input - target|``, reduced; input and target have the same shape."""
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, target = cast_inputs("l1_loss", input, target)
    check_reduction("l1_loss", reduction)
    _check_same_shape("l1_loss", input, target)
    return _reduce((input - target).abs(), reduction)


# -- binary targets --------------------------------------------------------------------------------
class BinaryCrossEntropy(Function):
    """-weight * (y log x + (1 - y) log(1 - x)) elementwise, each log clamped to >= -100 as in PyTorch."""

    def forward(self, x, y, weight):
        self.x, self.y, self.weight = x, y, weight
        self.log_x, self.log_1mx = self.clamped_log(x), self.clamped_log(1 - x)
        loss = -(y * self.log_x + (1 - y) * self.log_1mx)
        return loss if weight is None else loss * weight

    def clamped_log(self, p):
        """log(p) clamped to >= -100; flooring p first keeps log(0) from warning."""
        return self.xp.maximum(self.xp.log(self.xp.maximum(p, math.exp(-100))), -100)

    def backward(self, g):
        x, y = self.x, self.y
        if self.weight is not None:
            g = g * self.weight
        gx = g * (x - y) / self.xp.maximum(x * (1 - x), 1e-12) if self.needs_grad(0) else None
        gy = g * (self.log_1mx - self.log_x) if self.needs_grad(1) else None
        return gx, gy, None


class BinaryCrossEntropyWithLogits(Function):
    """weight * ((1 - y) x + (1 + (pos_weight - 1) y) softplus(-x)) elementwise, stable for any x.

    softplus(-x) = -log(sigmoid(x)) = max(-x, 0) + log1p(exp(-|x|)); without ``pos_weight`` the
    loss is max(x, 0) - x y + log1p(exp(-|x|)) and its gradient sigmoid(x) - y.
    """

    def forward(self, x, y, weight, pos_weight):
        xp = self.xp
        self.x, self.y, self.weight, self.pos_weight = x, y, weight, pos_weight
        self.softplus_neg = xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x)))
        self.log_weight = 1 if pos_weight is None else 1 + (pos_weight - 1) * y
        loss = (1 - y) * x + self.log_weight * self.softplus_neg
        return loss if weight is None else loss * weight

    def backward(self, g):
        x, y, pos_weight = self.x, self.y, self.pos_weight
        if self.weight is not None:
            g = g * self.weight
        gx = gy = None
        if self.needs_grad(0):
            sigmoid = self.xp.exp(-self.softplus_neg)
            gx = g * (self.log_weight * sigmoid - (y if pos_weight is None else pos_weight * y))
        if self.needs_grad(1):
            gy = g * (-x if pos_weight is None else (pos_weight - 1) * self.softplus_neg - x)
        return gx, gy, None, None


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, *,
                         reduction: str = "mean") -> Tensor:
    """Binary cross entropy of probabilities ``input`` (in [0, 1]) and targets of the same shape.

    ``weight`` rescales each element's loss and broadcasts to the input's shape.
    """
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, target, weight = cast_inputs("binary_cross_entropy", input, target, weight)
    check_reduction("binary_cross_entropy", reduction)
    _check_same_shape("binary_cross_entropy", input, target)
    _check_elementwise_weight("binary_cross_entropy", "weight", weight, input.shape)
    data = input._data
    with input.device.backend.scope:  # NaN fails too, as in PyTorch
        outside = ~((data >= 0) & (data <= 1))
    device_checks.check(input.device, outside, data, "binary_cross_entropy", lambda value: ValueError(
        f"binary_cross_entropy: input values must be probabilities in [0, 1], got {value}; for logits use "
        "binary_cross_entropy_with_logits"))
    return _reduce(BinaryCrossEntropy.apply(input, target, weight), reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None, *,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """Binary cross entropy of ``sigmoid(input)`` and targets of the same shape, computed stably from logits.

    ``weight`` rescales each element's loss; ``pos_weight`` (e.g. (C,) for input (N, C)) weighs the
    positive term of each class. Both broadcast to the input's shape.
    """
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, target, weight, pos_weight = cast_inputs("binary_cross_entropy_with_logits", input, target, weight,
                                                        pos_weight)
    check_reduction("binary_cross_entropy_with_logits", reduction)
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    _check_elementwise_weight("binary_cross_entropy_with_logits", "weight", weight, input.shape)
    _check_elementwise_weight("binary_cross_entropy_with_logits", "pos_weight", pos_weight, input.shape)
    return _reduce(BinaryCrossEntropyWithLogits.apply(input, target, weight, pos_weight), reduction)


# -- classification ----------------------------------------------------------------------------------
class _ClassLoss(Function):
    """Shared by cross entropy and NLL: rows (M, C), class-index targets (M,), class weights, reduction."""

    def pick_targets(self, x, target, weight, ignore_index):
        """Per row: the target class (0 where ignored), whether it counts, and weight[target] (0 where ignored)."""
        xp = self.xp
        counted = target != ignore_index
        self.rows = xp.arange(x.shape[0])
        self.keep = counted.astype(x.dtype)
        self.target = xp.where(counted, target, 0)
        if weight is None:
            self.target_weight = self.keep
        else:
            self.target_weight = weight.astype(x.dtype, copy=False)[self.target] * self.keep

    def reduce(self, loss, reduction, total_weight):
        """The row losses, their sum, or their sum over ``total_weight`` (PyTorch's weighted mean)."""
        self.denominator, self.row_shape = (total_weight if reduction == "mean" else 1), loss.shape
        return loss if reduction == "none" else loss.sum() / self.denominator

    def row_grad(self, g):
        """The output's gradient as one value per row."""
        return self.backend.broadcast_gradient(g / self.denominator, self.row_shape)


class CrossEntropy(_ClassLoss):
    """Cross entropy of logit rows x (M, C) and class indices (M,) or class probabilities (M, C).

    Row loss: -sum_c w_c q_c log softmax(x)_c, where q is the target distribution smoothed towards
    uniform, q = (1 - smoothing) * target + smoothing / C (ignored rows: 0). Saves the softmax;
    a row's gradient is softmax * sum_c(w_c q_c) - w * q, scaled by the output's gradient.
    """

    def forward(self, x, target, weight, ignore_index, smoothing, reduction):
        xp = self.xp
        rows, classes = x.shape
        logp, self.softmax = self.backend.log_softmax(x)
        self.smoothing, self.probabilities = smoothing, target.ndim == 2
        self.weight = xp.ones(classes, dtype=x.dtype) if weight is None else weight.astype(x.dtype, copy=False)
        if self.probabilities:
            self.logp = logp
            self.weighted_target = ((1 - smoothing) * target + smoothing / classes) * self.weight
            return self.reduce(-(self.weighted_target * logp).sum(axis=1), reduction, rows)
        self.pick_targets(x, target, weight, ignore_index)
        self.uniform = self.keep * (smoothing / classes)  # each row's weight on the uniform distribution
        loss = -(1 - smoothing) * self.target_weight * logp[self.rows, self.target]
        if smoothing:
            loss -= self.uniform * (logp @ self.weight)
        return self.reduce(loss, reduction, self.target_weight.sum())

    def backward(self, g):
        g = self.row_grad(g)
        if self.probabilities:
            gx = self.softmax * (g * self.weighted_target.sum(axis=1))[:, None] - g[:, None] * self.weighted_target
            gt = -(1 - self.smoothing) * g[:, None] * self.weight * self.logp if self.needs_grad(1) else None
            return gx, gt, None, None, None, None
        on_target = g * ((1 - self.smoothing) * self.target_weight)
        gx = self.softmax * (on_target + g * self.uniform * self.weight.sum())[:, None]
        gx[self.rows, self.target] -= on_target
        if self.smoothing:
            gx -= (g * self.uniform)[:, None] * self.weight
        return gx, None, None, None, None, None


class NegativeLogLikelihood(_ClassLoss):
    """-weight[t] * x[t] per row of log-probabilities x (M, C) with class index t (0 where ignored)."""

    def forward(self, x, target, weight, ignore_index, reduction):
        self.shape = x.shape
        self.pick_targets(x, target, weight, ignore_index)
        loss = -self.target_weight * x[self.rows, self.target]
        return self.reduce(loss, reduction, self.target_weight.sum())

    def backward(self, g):
        gx = self.xp.zeros(self.shape, dtype=g.dtype)
        gx[self.rows, self.target] = -self.row_grad(g) * self.target_weight
        return gx, None, None, None, None


def _as_rows(x: Tensor) -> Tensor:
    """(N, C, d1, ...) -> (N * d1 * ..., C), classes last; (N, C) unchanged; (C,) -> (1, C)."""
    if x.ndim == 2:
        return x
    if x.ndim > 2:
        x = x.permute(0, *range(2, x.ndim), 1)
    return x.reshape(-1, x.shape[-1])


def _class_rows(loss: str, input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
                probabilities_allowed: bool) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """Check the arguments of a classification loss; return input and target as rows, and the batch shape.

    input is (C,), (N, C) or (N, C, d1, ...); target holds class indices of the batch shape (input's
    shape without C) or, where allowed, class probabilities of the input's shape.
    """
    if input.ndim == 0:
        raise ValueError(f"{loss}: input must have a class dimension: (C,), (N, C) or (N, C, d1, ...), got shape ()")
    class_dim = 1 if input.ndim > 1 else 0
    classes = input.shape[class_dim]
    batch_shape = input.shape[:class_dim] + input.shape[class_dim + 1:]
    _check_weight(loss, "weight", weight, weight is not None and weight.shape == (classes,),
                  f"({classes},): one weight per class")
    if probabilities_allowed and target.dtype.kind == "f" and target.shape == input.shape:
        return _as_rows(input), _as_rows(target), batch_shape
    if target.dtype.kind not in "iu":
        also = f", or class probabilities of the input's shape {input.shape}" if probabilities_allowed else ""
        raise TypeError(f"{loss}: expected class-index targets of an integer dtype (int64){also}; "
                        f"got a {target.dtype} target of shape {target.shape}")
    if target.shape != batch_shape:
        raise ValueError(f"{loss}: target shape {target.shape} does not match input shape {input.shape}: "
                         f"class-index targets must have shape {batch_shape}")
    indices = target._data
    with target.device.backend.scope:
        bad = ((indices < 0) | (indices >= classes)) & (indices != ignore_index)
    device_checks.check(target.device, bad, indices, (loss, classes, ignore_index), lambda value: IndexError(
        f"{loss}: target {value} is out of bounds: class indices must be in [0, {classes}) or equal "
        f"ignore_index ({ignore_index})"))
    return _as_rows(input), target.reshape(-1), batch_shape


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, *, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross entropy of logits ``input`` (C,), (N, C) or (N, C, d1, ...) and ``target``.

    ``target``: int64 class indices of shape (), (N,) or (N, d1, ...), or float class probabilities
    of the input's shape. ``weight`` (C,) rescales each class; targets equal to ``ignore_index``
    contribute nothing, and the mean divides by the summed weight of the counted targets (by the
    number of rows for probabilities), as in PyTorch. ``label_smoothing`` mixes the target with
    the uniform distribution.
    """
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, target, weight = cast_inputs("cross_entropy", input, target, weight)
    check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    rows, targets, batch_shape = _class_rows("cross_entropy", input, target, weight, ignore_index, True)
    loss = CrossEntropy.apply(rows, targets, weight, ignore_index, label_smoothing, reduction)
    return loss.reshape(batch_shape) if reduction == "none" else loss


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, *, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` (C,), (N, C) or (N, C, d1, ...).

    ``target``: int64 class indices of the input's shape without C. ``weight`` and ``ignore_index``
    as in ``cross_entropy``; ``nll_loss(log_softmax(x, 1), t)`` equals ``cross_entropy(x, t)``.
    """
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, target, weight = cast_inputs("nll_loss", input, target, weight)
    check_reduction("nll_loss", reduction)
    rows, targets, batch_shape = _class_rows("nll_loss", input, target, weight, ignore_index, False)
    loss = NegativeLogLikelihood.apply(rows, targets, weight, ignore_index, reduction)
    return loss.reshape(batch_shape) if reduction == "none" else loss
