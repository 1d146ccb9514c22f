"""Op-level speed: tensorlite vs PyTorch (CPU, 2 threads), side by side in one run.

(a) per-op overhead: ``((a*b + c).relu().sum()).backward()`` on 4x4 float32, 10,000 iterations;
(b) a large op: (1024x1024) @ (1024x1024) float32 forward + backward, also against raw NumPy
    doing the same three matrix products and keeping their results; tensorlite and NumPy alternate, and
    PyTorch runs in rounds of its own after them (its threads spin on after a product, slowing the next one);
(c) with ``--two-cores``: how tensorlite's compiled kernels use the second core. Exact GELU on 393k elements
    on one core, split in two halves over Numba's threads, and split over OpenBLAS's own threads
    (``backends/blas_threads.py``), alone and right after a two-thread BLAS product, which is where a model
    runs it (OpenBLAS's worker spins on the second core after each product, in Numba's threads' way).

Rounds alternate between frameworks (this machine is noisy); medians and ratios are printed, with the
CPU kind and NumPy's BLAS kernel. ``--cpu avx2`` reruns with both libraries forced down to AVX2.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from benchlib import add_cpu_option, alternate, apply_cpu_option, blas_summary, cpu_summary, kernels_summary

import tensorlite as tl


def small_graph_tensorlite(iterations: int) -> float:
    a, b, c = (tl.randn(4, 4, requires_grad=True) for _ in range(3))
    start = time.perf_counter()
    for _ in range(iterations):
        a.grad = b.grad = c.grad = None
        ((a * b + c).relu().sum()).backward()
    return time.perf_counter() - start


def small_graph_torch(torch, iterations: int) -> float:
    a, b, c = (torch.randn(4, 4, requires_grad=True) for _ in range(3))
    start = time.perf_counter()
    for _ in range(iterations):
        a.grad = b.grad = c.grad = None
        ((a * b + c).relu().sum()).backward()
    return time.perf_counter() - start


def matmul_tensorlite(n: int) -> float:
    a, b = tl.randn(n, n, requires_grad=True), tl.randn(n, n, requires_grad=True)
    g = tl.randn(n, n)
    start = time.perf_counter()
    (a @ b).backward(g)
    return time.perf_counter() - start


def matmul_numpy(n: int) -> float:
    """The same three products, each result kept as tensorlite keeps the output and both gradients (freeing the
    first while making the third would let NumPy reuse its memory: 1-2% quicker, and not the same work)."""
    rng = np.random.default_rng(0)
    a, b, g = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(3))
    start = time.perf_counter()
    out = a @ b
    grad_a = g @ b.T
    grad_b = a.T @ g
    seconds = time.perf_counter() - start
    del out, grad_a, grad_b
    return seconds


def matmul_torch(torch, n: int) -> float:
    a, b = torch.randn(n, n, requires_grad=True), torch.randn(n, n, requires_grad=True)
    g = torch.randn(n, n)
    start = time.perf_counter()
    (a @ b).backward(g)
    return time.perf_counter() - start


def two_core_kernels(calls: int, rounds: int) -> None:
    """(c): microseconds per call of each case, the median of ``rounds`` rounds of ``calls`` calls."""
    from tensorlite.backends.numpy_backend import compiled_kernels

    kernels = compiled_kernels()
    if kernels is None:
        print("\n(c) skipped: the compiled CPU kernels are off (no Numba, or TENSORLITE_CPU_KERNELS=0)")
        return
    import numba

    gelu = kernels.gelu

    @numba.njit(parallel=True, nogil=True)
    def gelu_two_halves(x, out):  # the same compiled kernel on each half, one half per thread
        half = x.size // 2
        for part in numba.prange(2):
            lo, hi = part * half, x.size if part else half
            gelu(x[lo:hi], out[lo:hi])

    from tensorlite.backends import blas_threads

    rng = np.random.default_rng(0)
    x = rng.standard_normal(768 * 512, dtype=np.float32)  # the MLP activation of a (12, 64, 128) GPT batch
    out = np.empty_like(x)

    def gelu_on_openblas_threads() -> None:
        if not blas_threads.split("GELU", x.size, (x, out)):
            gelu(x, out)
    a, b = rng.standard_normal((768, 128), dtype=np.float32), rng.standard_normal((128, 512), dtype=np.float32)
    cases = {
        "one core": lambda: gelu(x, out),
        "two halves": lambda: gelu_two_halves(x, out),
        "BLAS product (768x128 @ 128x512)": lambda: a @ b,
        "BLAS product, then one core": lambda: (a @ b, gelu(x, out)),
        "BLAS product, then two halves": lambda: (a @ b, gelu_two_halves(x, out)),
        "OpenBLAS's threads": gelu_on_openblas_threads,
        "BLAS product, then OpenBLAS's": lambda: (a @ b, gelu_on_openblas_threads()),
    }
    for run in cases.values():
        run()  # compile and warm up

    def timed(run: Callable[[], object]) -> Callable[[], float]:
        def repeat() -> float:
            start = time.perf_counter()
            for _ in range(calls):
                run()
            return (time.perf_counter() - start) / calls

        return repeat

    t = alternate({name: timed(run) for name, run in cases.items()}, rounds)
    print(f"\n(c) exact GELU on {x.size} float32 elements, one core or two (Numba's {numba.threading_layer()} "
          f"threads), {calls} calls, median of {rounds} rounds")
    for name, seconds in t.items():
        print(f"    {name:<34} {seconds * 1e6:8.1f} us")
    product = t["BLAS product (768x128 @ 128x512)"]
    one, halves, shared = (t[f"BLAS product, then {name}"] - product for name in ("one core", "two halves",
                                                                                    "OpenBLAS's"))
    print(f"    after a BLAS product, the kernel takes {one * 1e6:.1f} us on one core, {halves * 1e6:.1f} us on two "
          f"of Numba's threads and {shared * 1e6:.1f} us on {blas_threads.threads()} of OpenBLAS's")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10_000, help="small-graph iterations per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds for the small graph")
    parser.add_argument("--matmul-rounds", type=int, default=15)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch (tensorlite and NumPy only)")
    parser.add_argument("--two-cores", action="store_true",
                        help="also (c): a compiled kernel on one core or two, alone and after a BLAS product")
    add_cpu_option(parser)
    args = parser.parse_args()
    apply_cpu_option(args)

    torch = None
    if not args.no_torch:
        import torch

        torch.set_num_threads(2)
    tl.set_default_device("cpu")
    print(f"tensorlite {tl.__version__}, numpy {np.__version__}" + (f", torch {torch.__version__}" if torch else ""))
    print(f"CPU: {cpu_summary()}\nnumpy BLAS: {blas_summary()}\ntensorlite CPU kernels: {kernels_summary()}")

    small = {"tensorlite": lambda: small_graph_tensorlite(args.iterations)}
    if torch:
        small["torch"] = lambda: small_graph_torch(torch, args.iterations)
    small_graph_tensorlite(200)  # warm up
    t = alternate(small, args.rounds)
    print(f"\n(a) ((a*b + c).relu().sum()).backward(), 4x4 float32, {args.iterations} iterations, "
          f"median of {args.rounds} rounds")
    for name, seconds in t.items():
        print(f"    {name:<11} {seconds * 1e3:8.1f} ms  ({seconds / args.iterations * 1e6:.1f} us/iteration)")
    if torch:
        print(f"    ratio tensorlite/torch = {t['tensorlite'] / t['torch']:.2f}")

    n = args.size
    big = {"tensorlite": lambda: matmul_tensorlite(n), "numpy": lambda: matmul_numpy(n)}
    for run in big.values():
        run()  # warm up
    t = alternate(big, args.matmul_rounds)
    if torch:  # in rounds of its own: PyTorch's threads spin on after its product, slowing whatever runs next by
        matmul_torch(torch, n)  # 2-3% (tensorlite right after it: 1.026 of NumPy's time; NumPy after it: 0.980)
        t |= alternate({"torch": lambda: matmul_torch(torch, n)}, args.matmul_rounds)
    flops = 3 * 2 * n**3
    print(f"\n(b) ({n}x{n}) @ ({n}x{n}) float32 forward + backward (3 matmuls), median of {args.matmul_rounds}")
    for name, seconds in t.items():
        print(f"    {name:<11} {seconds * 1e3:8.1f} ms  ({flops / seconds / 1e9:.0f} GFLOP/s)")
    print(f"    ratio tensorlite/numpy = {t['tensorlite'] / t['numpy']:.3f}")
    if torch:
        print(f"    ratio tensorlite/torch = {t['tensorlite'] / t['torch']:.2f}   "
              f"(numpy/torch = {t['numpy'] / t['torch']:.2f}: the BLAS libraries differ)")
    if args.two_cores:
        two_core_kernels(calls=100, rounds=args.rounds)


if __name__ == "__main__":
    main()
