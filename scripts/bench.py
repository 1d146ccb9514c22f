"""Model-level speed: tensorlite vs PyTorch (CPU, 2 threads) on identical models, in one run.

    python scripts/bench.py xor      # 10,000 full-batch SGD steps of the 2-3-1 sigmoid XOR net
    python scripts/bench.py iris     # 100 epochs of the 4-32-3 Iris classifier, batch 16, Adam
    python scripts/bench.py all

Both frameworks start from the same weights; rounds alternate between them (this machine is
noisy) and medians and the ratio tensorlite/PyTorch are printed. Unset OpenBLAS's core-type
override for the run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/bench.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from benchlib import alternate

import tensorlite as tl
from tensorlite import nn, optim


def report(title: str, times: dict[str, float], unit_count: int, unit: str) -> None:
    print(f"\n{title}")
    for name, seconds in times.items():
        print(f"    {name:<11} {seconds * 1e3:9.1f} ms  ({seconds / unit_count * 1e6:8.1f} us/{unit})")
    print(f"    ratio tensorlite/torch = {times['tensorlite'] / times['torch']:.2f}")


def copy_weights(ours: nn.Module, theirs) -> None:
    """Give the PyTorch model tensorlite's initial weights (same architecture, same keys)."""
    import torch

    with torch.no_grad():
        for key, value in ours.state_dict().items():
            theirs.state_dict()[key].copy_(torch.from_numpy(value.numpy()))


# -- XOR: 10,000 full-batch steps ------------------------------------------------------------------
XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=np.float32)


def xor_tensorlite(steps: int) -> float:
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1), nn.Sigmoid())
    opt = optim.SGD(model.parameters(), lr=2.0, momentum=0.9)
    loss_fn = nn.MSELoss()
    x, y = tl.tensor(XOR_X), tl.tensor(XOR_Y)
    start = time.perf_counter()
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def xor_torch(torch, steps: int) -> float:
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Sigmoid(), torch.nn.Linear(3, 1), torch.nn.Sigmoid())
    tl.manual_seed(0)
    copy_weights(nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1), nn.Sigmoid()), model)
    opt = torch.optim.SGD(model.parameters(), lr=2.0, momentum=0.9)
    loss_fn = torch.nn.MSELoss()
    x, y = torch.from_numpy(XOR_X), torch.from_numpy(XOR_Y)
    start = time.perf_counter()
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


# -- Iris: 100 epochs, batch 16 ---------------------------------------------------------------------
def iris_data() -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    from tensorlite.data import Normalizer, load_iris, stratified_split

    x, y = load_iris()
    train, _ = stratified_split(y, 30, 0)
    x = Normalizer.fit(x[train], "standard")(x[train])
    rng = np.random.default_rng(0)
    orders = [rng.permutation(len(train)) for _ in range(100)]  # the same shuffles for both frameworks
    return x, y[train], orders


def iris_model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))


def iris_tensorlite(data, epochs: int) -> float:
    x_np, y_np, orders = data
    tl.manual_seed(0)
    model = iris_model()
    opt = optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    x, y = tl.tensor(x_np), tl.tensor(y_np)
    start = time.perf_counter()
    for epoch in range(epochs):
        order = tl.tensor(orders[epoch])
        for i in range(0, len(order), 16):
            idx = order[i:i + 16]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def iris_torch(torch, data, epochs: int) -> float:
    x_np, y_np, orders = data
    model = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    tl.manual_seed(0)
    copy_weights(iris_model(), model)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    start = time.perf_counter()
    for epoch in range(epochs):
        order = torch.from_numpy(orders[epoch])
        for i in range(0, len(order), 16):
            idx = order[i:i + 16]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["xor", "iris", "all"], nargs="?", default="all")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    tl.set_default_device("cpu")
    print(f"tensorlite {tl.__version__}, numpy {np.__version__}, torch {torch.__version__} (2 threads)")
    if args.which in ("xor", "all"):
        steps = 10_000
        times = alternate({"tensorlite": lambda: xor_tensorlite(steps), "torch": lambda: xor_torch(torch, steps)},
                          args.rounds)
        report(f"XOR 2-3-1 sigmoid, MSE, SGD: {steps} full-batch steps, median of {args.rounds}", times, steps, "step")
    if args.which in ("iris", "all"):
        data, epochs = iris_data(), 100
        times = alternate({"tensorlite": lambda: iris_tensorlite(data, epochs),
                           "torch": lambda: iris_torch(torch, data, epochs)}, args.rounds)
        report(f"Iris 4-32-3 ReLU, cross-entropy, Adam, batch 16: {epochs} epochs, median of {args.rounds}",
               times, epochs, "epoch")


if __name__ == "__main__":
    main()
