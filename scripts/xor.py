"""XOR from scratch: a 2-3-1 sigmoid network trained with tensorlite's autograd and plain SGD.

The smallest complete training loop: tensors, a forward pass, an MSE loss, ``backward()``, and
weight updates under ``tl.no_grad()``. Run: ``python scripts/xor.py [--device cpu|cuda]``.
"""

from __future__ import annotations

import argparse

import tensorlite as tl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (default: $TENSORLITE_DEVICE)")
    parser.add_argument("--epochs", type=int, default=5000)
    parser.add_argument("--lr", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    tl.manual_seed(args.seed)
    device = tl.device(args.device)
    x = tl.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], device=device)  # (4, 2)
    y = tl.tensor([[0.0], [1.0], [1.0], [0.0]], device=device)  # (4, 1)
    w1 = (tl.randn(2, 3, device=device) * 1.0).requires_grad_()  # (2, 3)
    b1 = tl.zeros(3, device=device, requires_grad=True)
    w2 = (tl.randn(3, 1, device=device) * 1.0).requires_grad_()  # (3, 1)
    b2 = tl.zeros(1, device=device, requires_grad=True)
    params = [w1, b1, w2, b2]

    for epoch in range(args.epochs + 1):
        hidden = (x @ w1 + b1).sigmoid()  # (4, 3)
        out = (hidden @ w2 + b2).sigmoid()  # (4, 1)
        loss = ((out - y) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with tl.no_grad():
            for p in params:
                p -= args.lr * p.grad
        if epoch % (args.epochs // 5) == 0:
            print(f"epoch {epoch:5d}  loss {loss.item():.5f}")

    print(f"\ndevice {device}; predictions after {args.epochs} epochs:")
    for inputs, target, pred in zip(x.tolist(), y.tolist(), out.tolist()):
        print(f"  {inputs[0]:.0f} xor {inputs[1]:.0f} = {pred[0]:.3f}  (target {target[0]:.0f})")


if __name__ == "__main__":
    main()
