"""Large compiled kernels split over OpenBLAS's threads (backends/blas_threads.py): the same bits as on one core,
each element once, never past an array, and one core where the split is unavailable or switched off."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest
from tensorlite.backends.numpy_backend import PARALLEL_MIN, NumpyBackend

pytest.importorskip("numba", reason="the compiled kernels need Numba: pip install -e '.[fast]'")
from tensorlite.backends import blas_threads, numba_kernels  # noqa: E402 (needs Numba)

CPU = NumpyBackend()


def splits_here() -> bool:
    """Whether this machine should split: Linux, NumPy's bundled scipy-openblas, more than one BLAS thread."""
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return sys.platform == "linux" and blas["name"].startswith("scipy-openblas") and (os.cpu_count() or 1) > 1


needs_split = pytest.mark.skipif(not splits_here(), reason="splits only over NumPy's bundled OpenBLAS on Linux")


@needs_split
def test_the_probe_passes_where_numpy_bundles_openblas() -> None:
    assert blas_threads.threads() >= 2, "blas_level1_thread failed the probe: the kernels run on one core"


@needs_split
@pytest.mark.parametrize("units", [1, 2, 3, 1001, PARALLEL_MIN + 7])
def test_each_unit_goes_to_exactly_one_part(units: int) -> None:
    marks = np.zeros(units, np.float32)
    assert blas_threads.split("PROBE", units, (marks,))
    np.testing.assert_array_equal(marks, 1)


def run_part(table: np.ndarray, start: int, count: int) -> None:
    """Call the compiled job as OpenBLAS does, for units start:start + count."""
    job = ctypes.CFUNCTYPE(None, *[ctypes.c_int64] * 3, ctypes.c_float, *[ctypes.c_int64] * 7)
    job(numba_kernels.part_runner().address)(count, 0, 0, 0.0, start << 2, 1, 0, 1, table.ctypes.data, 0, 0)


def test_a_part_outside_the_arrays_writes_nothing() -> None:
    marks = np.zeros(16, np.float32)
    table = blas_threads._table(numba_kernels.PROBE, 10, (marks,))  # 10 units of 16
    run_part(table, 0, 10)
    run_part(table, 5, 6)  # one past the end
    run_part(table, -1, 2)
    run_part(table, 3, -1)
    np.testing.assert_array_equal(marks, [1] * 10 + [0] * 6)


def causal(n: int) -> np.ndarray:
    return np.triu(np.full((n, n), -np.inf, np.float32), 1)


def kernels_case(size: int) -> dict[str, object]:
    rng = np.random.default_rng(size)
    x, g = rng.standard_normal((2, size), dtype=np.float32) * 3
    x[:5] = [np.nan, np.inf, -np.inf, 0.0, -9.0]
    scores = rng.standard_normal((size // 64, 64), dtype=np.float32)
    scores[1] = -np.inf  # a row with no visible key
    heads = scores[: len(scores) // 256 * 256].reshape(-1, 4, 64, 64)  # (B, nh, T, T)
    threes = scores[: len(scores) // 3 * 3, :60].reshape(-1, 3, 60).copy()
    return {
        "gelu": lambda: CPU.gelu(x, "none")[0],
        "gelu tanh": lambda: CPU.gelu(x, "tanh")[0],
        "gelu backward": lambda: CPU.gelu_backward(g, x, None, "none"),
        "gelu tanh backward": lambda: CPU.gelu_backward(g, x, None, "tanh"),
        "causal softmax": lambda: CPU.softmax(heads, 0.3, causal(64), True),
        "softmax, mask of 3 rows": lambda: CPU.softmax(threes, 1.0, -np.abs(g[:180]).reshape(3, 60)),
        "adam": lambda: adam_steps(x, g),
        "bias": lambda: add_rows(scores, g[:64]),
    }


def add_rows(rows: np.ndarray, bias: np.ndarray) -> np.ndarray:
    out = rows.copy()
    CPU.add_rows(out, bias)
    return out


def adam_steps(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    p, m, v = x.copy(), np.zeros_like(x), np.zeros_like(x)
    for step in (1, 2, 3):
        CPU.adam_update(p, g, m, v, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, step=step, decay=0.99)
    return np.stack([p, m, v])


@needs_split
@pytest.mark.parametrize("size", [PARALLEL_MIN * 4, PARALLEL_MIN * 3 + 64 * 7])
def test_split_kernels_give_the_bits_of_one_core(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    split = blas_threads.split
    monkeypatch.setattr(blas_threads, "split", lambda kind, *a, **k: calls.append(kind) or split(kind, *a, **k))
    split_results = {name: run() for name, run in kernels_case(size).items()}
    assert set(calls) >= {"GELU", "GELU_TANH", "GELU_BACKWARD", "GELU_TANH_BACKWARD", "SOFTMAX", "ADAM", "ADD_ROWS"}
    monkeypatch.setattr(blas_threads, "threads", lambda: 1)
    for name, run in kernels_case(size).items():
        np.testing.assert_array_equal(split_results[name], run(), err_msg=name)


def test_arrays_that_are_not_contiguous_float32_stay_on_one_core() -> None:
    x = np.zeros((PARALLEL_MIN, 2), np.float32)
    assert not blas_threads.split("PROBE", PARALLEL_MIN, (x[:, 0],))
    assert not blas_threads.split("PROBE", PARALLEL_MIN, (np.zeros(PARALLEL_MIN),))
    assert not x.any()


SCRIPT = """
import os, threading, numpy as np
from tensorlite.backends.numpy_backend import NumpyBackend
from tensorlite.backends import blas_threads
cpu, x = NumpyBackend(), np.random.default_rng(0).standard_normal(1 << 17, dtype=np.float32)
want = cpu.gelu(x, "none")[0]
print("threads", blas_threads.threads())
results = []
def work():
    results.extend(np.array_equal(cpu.gelu(x, "none")[0], want) for _ in range(50))
workers = [threading.Thread(target=work) for _ in range(4)]
for w in workers: w.start()
for w in workers: w.join()
print("concurrent", all(results) and len(results) == 200)
pid = os.fork()
if pid == 0:
    os._exit(0 if np.array_equal(cpu.gelu(x, "none")[0], want) else 1)
print("child", os.waitpid(pid, 0)[1] == 0)
"""


@needs_split
def test_concurrent_callers_and_a_forked_child_get_the_same_results() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["threads", str(blas_threads.threads()), "concurrent", "True", "child", "True"]


def test_the_switch_keeps_the_kernels_on_one_core() -> None:
    code = "from tensorlite.backends import blas_threads; print(blas_threads.threads())"
    env = {**os.environ, "TENSORLITE_CPU_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "1"


def attention_operands() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The products of attention on heads viewed out of a packed (B, T, 3, nh, hs) projection, and plain stacks."""
    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((12, 64, 3, 4, 32), dtype=np.float32)[:, :, i].transpose(0, 2, 1, 3)
               for i in range(3))
    p = rng.standard_normal((12, 4, 64, 64), dtype=np.float32)
    return {"q @ k.T": (q, k.swapaxes(-1, -2)), "p @ v": (p, v), "p.T @ g": (p.swapaxes(-1, -2), v),
            "g @ v.T": (p[..., :32].copy(), v.swapaxes(-1, -2)),
            "stack": (p.reshape(48, 64, 64), rng.standard_normal((48, 64, 16), dtype=np.float32))}


@needs_split
@pytest.mark.parametrize("name", ["q @ k.T", "p @ v", "p.T @ g", "g @ v.T", "stack"])
def test_split_matrix_products_give_numpys_bits(name: str) -> None:
    a, b = attention_operands()[name]
    out = np.empty((*a.shape[:-1], b.shape[-1]), np.float32)
    threads = blas_threads.threads()
    assert blas_threads.matmul(a, b, out)
    np.testing.assert_array_equal(out, np.matmul(a, b))
    assert blas_threads._openblas().get_num_threads() == threads  # OpenBLAS's thread count is given back


@needs_split
def test_products_numpy_computes_another_way_are_left_to_numpy() -> None:
    rng = np.random.default_rng(8)
    x = rng.standard_normal((8, 64, 64), dtype=np.float32)
    out = np.empty_like(x)
    assert not blas_threads.matmul(x, x.swapaxes(-1, -2), out)  # A @ A.T: NumPy calls syrk
    assert not blas_threads.matmul(x[:, :1], x, out[:, :1])  # a row vector: gemv
    assert not blas_threads.matmul(x, x[:1].repeat(8, 0), x)  # the output is an input
    assert not blas_threads.matmul(x[:, :, ::2], x[:, ::2], out)  # a stride NumPy's own loop takes
    assert not blas_threads.matmul(x.astype(np.float64), x.astype(np.float64), out.astype(np.float64))
    assert not blas_threads.matmul(x[:1], x, out)  # a broadcast batch


@needs_split
def test_attention_forward_and_backward_give_the_bits_of_one_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three ways to the same bits: each (batch, head) fused on one thread (the default), step by step with each
    step split, and on one core. Causal and not, a query of another length, a mask of one row; without the values'
    gradient too."""
    import tensorlite as tl

    F = tl.nn.functional
    rng = np.random.default_rng(3)
    cases = [((12, 4, 64, 32), (12, 4, 64, 32), {"is_causal": True}), ((6, 96, 32), (6, 120, 32), {}),
             ((2, 3, 64, 48), (2, 3, 80, 48), {"attn_mask": "row"})]

    def run(q_shape, k_shape, kwargs, values_grad=True) -> list[np.ndarray]:
        q = tl.tensor(rng.standard_normal(q_shape, dtype=np.float32), requires_grad=True)
        k, v = (tl.tensor(rng.standard_normal(k_shape, dtype=np.float32), requires_grad=grad)
                for grad in (True, values_grad))
        if kwargs.get("attn_mask") == "row":
            kwargs = {"attn_mask": tl.tensor(np.where(np.arange(k_shape[-2]) % 3, 0, -np.inf).astype(np.float32))}
        out = F.scaled_dot_product_attention(q, k, v, **kwargs)
        (out * out).sum().backward()
        return [t.detach().numpy() for t in (out, q.grad, k.grad, v.grad) if t is not None]

    mode, fused = {"fused": True, "threads": blas_threads.threads()}, []

    def counted(run_fused):  # the fused kernel, switched by mode["fused"], each call's result kept
        def call(*args) -> bool:
            fused.append(mode["fused"] and run_fused(*args))
            return fused[-1]

        return call

    for name in ("attention", "attention_backward"):
        monkeypatch.setattr(blas_threads, name, counted(getattr(blas_threads, name)))
    monkeypatch.setattr(blas_threads, "threads", lambda: mode["threads"])
    for case in cases:
        for values_grad in (True, False):
            state, ways = rng.bit_generator.state, []
            for mode["fused"], mode["threads"] in ((True, 2), (False, 2), (False, 1)):
                rng.bit_generator.state = state
                ways.append(run(*case, values_grad))
            for other in ways[1:]:
                for a, b in zip(ways[0], other):
                    np.testing.assert_array_equal(a, b)
    assert fused.count(True) == 2 * 2 * len(cases)  # forward and backward, each case, with and without gv


@needs_split
def test_a_batch_that_finds_another_running_leaves_the_thread_count_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    a, b = attention_operands()["q @ k.T"]
    out = np.empty((*a.shape[:-1], b.shape[-1]), np.float32)
    openblas, threads = blas_threads._openblas(), blas_threads.threads()

    def other_batch_ends() -> None:
        openblas.set_num_threads(threads)
        blas_threads._ONE_THREAD_EACH.release()

    def another_batch_starts(*args: object) -> bool:  # after this call's checks, before it runs
        blas_threads._ONE_THREAD_EACH.acquire()
        openblas.set_num_threads(1)
        ending.start()
        return product(*args)

    product, ending = blas_threads._product, threading.Timer(0.5, other_batch_ends)
    monkeypatch.setattr(blas_threads, "_product", another_batch_starts)
    split = blas_threads.matmul(a, b, out)
    ending.join()
    assert blas_threads.threads() == threads >= 2  # the other batch's count of 1 was not kept
    if split:
        np.testing.assert_array_equal(out, np.matmul(a, b))


@needs_split
def test_batches_of_products_from_four_threads_at_once() -> None:
    import threading

    a, b = attention_operands()["q @ k.T"]
    want = np.matmul(a, b)
    results = []

    def work() -> None:  # a caller that finds another's batch running gets False and runs NumPy's loop
        for _ in range(20):
            out = np.empty_like(want)
            split = blas_threads.matmul(a, b, out) or np.matmul(a, b, out=out) is None
            results.append((split, np.array_equal(out, want)))

    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert len(results) == 80 and all(same for _, same in results)
    assert any(split for split, _ in results)
    assert blas_threads._openblas().get_num_threads() == blas_threads.threads() >= 2
