"""The simulated device: CuPy-like arrays over NumPy that refuse hidden host/device mixing."""

from __future__ import annotations

import operator

import numpy
import pytest
from tensorlite.backends import get_backend
from tensorlite.backends.numpy_backend import NumpyBackend
from tensorlite.backends.sim import DeviceMismatchError, SimArray, SimBackend, count_transfers, current_device

HOST_MIXING = "do not mix with host NumPy arrays"
USE_XP = "must do array math through backend.xp"


@pytest.fixture
def backend() -> SimBackend:
    return SimBackend()


@pytest.fixture
def xp(backend: SimBackend):
    return backend.xp


def host(a: SimArray) -> numpy.ndarray:
    assert isinstance(a, SimArray)
    return a.get()


FLOAT_OPS = [operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.mod,
             operator.pow, operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge]
INT_OPS = [operator.and_, operator.or_, operator.xor, operator.lshift, operator.rshift]


@pytest.mark.parametrize("op", FLOAT_OPS + INT_OPS, ids=lambda op: op.__name__)
def test_binary_operators_match_numpy(backend: SimBackend, op) -> None:
    if op in INT_OPS:
        a, b = numpy.array([[1, 2, 3], [4, 5, 6]]), numpy.array([1, 2, 1])
    else:
        a, b = numpy.array([[1.5, -2.0, 3.0], [4.0, 5.0, -6.0]]), numpy.array([0.5, 2.0, 3.0])
    sa, sb = backend.from_host(a), backend.from_host(b)
    numpy.testing.assert_array_equal(host(op(sa, sb)), op(a, b))
    numpy.testing.assert_array_equal(host(op(sa, 2)), op(a, 2))  # Python scalar, right
    numpy.testing.assert_array_equal(host(op(3, sa)), op(3, a))  # Python scalar, left (reflected)
    two = a.dtype.type(2)
    numpy.testing.assert_array_equal(host(op(two, sa)), op(two, a))  # NumPy scalar, left
    numpy.testing.assert_array_equal(host(op(sa, two)), op(a, two))


def test_matmul_divmod_unary(backend: SimBackend) -> None:
    a = numpy.arange(6.0).reshape(2, 3) - 2
    sa = backend.from_host(a)
    numpy.testing.assert_array_equal(host(sa @ sa.T), a @ a.T)
    quotient, remainder = divmod(sa, 4)
    numpy.testing.assert_array_equal(host(quotient), a // 4)
    numpy.testing.assert_array_equal(host(remainder), a % 4)
    numpy.testing.assert_array_equal(host(-sa), -a)
    numpy.testing.assert_array_equal(host(+sa), a)
    numpy.testing.assert_array_equal(host(abs(sa)), abs(a))
    numpy.testing.assert_array_equal(host(~backend.from_host(numpy.array([0, 5]))), ~numpy.array([0, 5]))


def test_inplace_operators_write_into_the_array(backend: SimBackend) -> None:
    a = backend.from_host(numpy.ones(3))
    alias = a
    a += backend.from_host(numpy.array([1.0, 2.0, 3.0]))
    a *= 2
    a -= numpy.float64(1)
    assert a is alias
    numpy.testing.assert_array_equal(host(a), [3.0, 5.0, 7.0])


def test_reductions_and_indexing_give_0d_arrays(backend: SimBackend, xp) -> None:
    a = backend.from_host(numpy.arange(6.0).reshape(2, 3))
    for result in (a.sum(), xp.sum(a), a.max(), xp.mean(a), a[1, 2], a.sum() + 1, next(iter(a[0]))):
        assert isinstance(result, SimArray) and result.ndim == 0
    assert float(a.sum()) == 15.0 and int(a[1, 2]) == 5 and a[1, 2].item() == 5.0
    assert bool(a[0, 1]) and not bool(a[0, 0])
    assert [7, 8, 9][backend.from_host(numpy.array(2))] == 9  # __index__
    assert f"{a.mean():.2f}" == "2.50"
    numpy.testing.assert_array_equal(host(a.max(axis=0)), [3.0, 4.0, 5.0])


def test_array_attributes_and_methods(backend: SimBackend) -> None:
    a = backend.from_host(numpy.arange(6, dtype=numpy.float32).reshape(2, 3))
    assert (a.shape, a.dtype, a.ndim, a.size, a.itemsize, a.nbytes) == ((2, 3), numpy.float32, 2, 6, 4, 24)
    assert a.strides == (12, 4) and a.flags.c_contiguous and a.base is None
    assert len(a) == 2 and [row.shape for row in a] == [(3,), (3,)]
    assert a.T.shape == (3, 2) and isinstance(a.T, SimArray)
    assert isinstance(a.reshape(3, 2).base, SimArray)
    assert a.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert a.astype(numpy.float32, copy=False) is a
    numpy.testing.assert_array_equal(host(a.reshape(3, 2).swapaxes(0, 1).ravel()), [0, 2, 4, 1, 3, 5])
    numpy.testing.assert_array_equal(host(a.clip(1, 4).astype(numpy.int64)), [[1, 1, 2], [3, 4, 4]])
    a.fill(7)
    assert host(a).tolist() == [[7.0] * 3] * 2
    assert repr(backend.from_host(numpy.array([[1, 2], [3, 4]]))) == "sim_array([[1, 2],\n           [3, 4]])"
    with pytest.raises(TypeError):
        hash(a)


def test_getitem_setitem_with_device_keys(backend: SimBackend) -> None:
    a = backend.from_host(numpy.arange(10.0))
    index = backend.from_host(numpy.array([1, 3, 3]))
    numpy.testing.assert_array_equal(host(a[index]), [1.0, 3.0, 3.0])
    numpy.testing.assert_array_equal(host(a[a > 7]), [8.0, 9.0])
    numpy.testing.assert_array_equal(host(a[None, 2:4, ...]), [[2.0, 3.0]])
    numpy.testing.assert_array_equal(host(a[[0, 1]]), [0.0, 1.0])
    a[index] = backend.from_host(numpy.array([-1.0, -2.0, -3.0]))
    a[a > 8] = 0
    a[0] = numpy.float32(5)
    numpy.testing.assert_array_equal(host(a), [5, -1, 2, -3, 4, 5, 6, 7, 8, 0])


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("numpy.asarray(sim)", "Implicit conversion to a NumPy array is not allowed"),
        ("numpy.array([sim, sim])", "Implicit conversion to a NumPy array is not allowed"),
        ("numpy.exp(sim)", USE_XP),
        ("numpy.add.at(sim, [0], 1)", USE_XP),
        ("numpy.sum(sim)", USE_XP),
        ("numpy.concatenate([sim, sim])", USE_XP),
        ("sim + host", HOST_MIXING),
        ("host + sim", HOST_MIXING),
        ("sim == host", HOST_MIXING),
        ("host < sim", HOST_MIXING),
        ("sim[host_index]", HOST_MIXING),
        ("sim[(host_index, 0)]", HOST_MIXING),
        ("xp.asarray(host)", HOST_MIXING),
        ("xp.array([host])", HOST_MIXING),
        ("xp.exp(host)", HOST_MIXING),
        ("xp.add(sim, sim, out=host)", HOST_MIXING),
        ("backend.from_host([1.0, 2.0])", "takes a NumPy array"),
        ("backend.to_host(host)", "expected a sim device array"),
        ("backend.from_dlpack(host)", HOST_MIXING),
    ],
)
def test_host_device_mixing_raises(backend: SimBackend, xp, case: str, message: str) -> None:
    sim = backend.from_host(numpy.arange(3.0))
    names = {"numpy": numpy, "xp": xp, "backend": backend, "sim": sim,
             "host": numpy.arange(3.0), "host_index": numpy.array([0, 1])}
    with pytest.raises(TypeError, match=message):
        eval(case, names)


def test_inplace_on_host_array_raises(backend: SimBackend) -> None:
    target = numpy.zeros(3)
    with pytest.raises(TypeError, match=HOST_MIXING):
        target += backend.from_host(numpy.ones(3))
    sim = backend.from_host(numpy.zeros(3))
    with pytest.raises(TypeError, match=HOST_MIXING):
        sim[0:2] = numpy.ones(2)


def test_host_round_trip_copies(backend: SimBackend) -> None:
    source = numpy.arange(4, dtype=numpy.float32)
    device = backend.from_host(source)
    source[0] = 100
    back = backend.to_host(device)
    assert isinstance(back, numpy.ndarray) and back.dtype == numpy.float32
    numpy.testing.assert_array_equal(back, [0, 1, 2, 3])
    back[1] = 100
    numpy.testing.assert_array_equal(device.get(), [0, 1, 2, 3])
    assert backend.is_array(device) and not backend.is_array(source)
    assert backend.from_host(numpy.float32(2.5)).shape == ()


def test_dlpack_shares_memory(backend: SimBackend) -> None:
    a = backend.from_host(numpy.arange(3.0))
    b = backend.from_dlpack(a)
    b[0] = 42
    assert isinstance(b, SimArray) and host(a)[0] == 42
    assert numpy.from_dlpack(a)[0] == 42  # the explicit DLPack route out is allowed


def test_namespace_wraps_numpy(backend: SimBackend, xp) -> None:
    a = xp.asarray([[1.0, 2.0], [3.0, 4.0]], dtype=xp.float32)
    assert isinstance(a, xp.ndarray) and isinstance(a, SimArray) and xp.ndarray is SimArray
    assert a.dtype == numpy.float32 and xp.float32 is numpy.float32 and xp.dtype is numpy.dtype
    assert xp.pi == numpy.pi and xp.inf == numpy.inf and xp.newaxis is None
    assert xp.__name__ == "sim_numpy" and xp.linalg.__name__ == "sim_numpy.linalg"
    assert xp.asarray(a) is a
    out = xp.empty((2, 2), dtype=xp.float32)
    assert xp.add(a, a, out=out) is out
    numpy.testing.assert_array_equal(host(out), [[2, 4], [6, 8]])
    numpy.testing.assert_allclose(host(xp.exp(a)), numpy.exp([[1, 2], [3, 4]]), rtol=1e-6)
    numpy.testing.assert_allclose(float(xp.linalg.norm(a)), numpy.sqrt(30), rtol=1e-6)
    left, right = xp.split(xp.arange(4), 2)
    assert isinstance(left, SimArray) and host(right).tolist() == [2, 3]
    u, s, vh = xp.linalg.svd(xp.eye(2))
    assert all(isinstance(x, SimArray) for x in (u, s, vh))
    assert isinstance(xp.fft.fft(xp.ones(4)), SimArray)
    numpy.testing.assert_array_equal(host(xp.maximum.reduce(a, axis=0)), [3, 4])
    numpy.testing.assert_array_equal(host(xp.stack([a[0], a[1]])), host(a))


def test_ufunc_at_accumulates(xp) -> None:
    target = xp.zeros(4)
    xp.add.at(target, xp.asarray([0, 2, 2, 2]), xp.asarray([1.0, 1.0, 2.0, 3.0]))
    numpy.testing.assert_array_equal(host(target), [1.0, 0.0, 6.0, 0.0])


def test_scatter_add_accumulates_repeated_indices(backend: SimBackend) -> None:
    target = backend.from_host(numpy.zeros(5))
    index = backend.from_host(numpy.array([1, 1, 4, 1]))
    backend.scatter_add(target, index, backend.from_host(numpy.ones(4)))
    numpy.testing.assert_array_equal(host(target), [0, 3, 0, 0, 1])
    grid = backend.from_host(numpy.zeros((3, 2)))
    rows = backend.from_host(numpy.array([0, 2, 0]))
    backend.scatter_add(grid, (rows, slice(None)), backend.from_host(numpy.ones((3, 2))))
    numpy.testing.assert_array_equal(host(grid), [[2, 2], [0, 0], [1, 1]])
    with pytest.raises(TypeError):
        backend.scatter_add(numpy.zeros(5), backend.from_host(numpy.array([1])), 1.0)


def test_sliding_window_view(backend: SimBackend, xp) -> None:
    x = numpy.arange(12.0).reshape(3, 4)
    expected = numpy.lib.stride_tricks.sliding_window_view(x, (2,), axis=(1,))
    windows = backend.sliding_window_view(backend.from_host(x), (2,), axis=(1,))
    numpy.testing.assert_array_equal(host(windows), expected)
    via_xp = xp.lib.stride_tricks.sliding_window_view(backend.from_host(x), 2, axis=1)
    numpy.testing.assert_array_equal(host(via_xp), expected)


def test_seeded_generator_is_reproducible_and_matches_cpu(backend: SimBackend) -> None:
    cpu = NumpyBackend()

    def draws(b):
        b.manual_seed(7)
        return [b.uniform((2, 3), numpy.float32), b.normal((4,), numpy.float64),
                b.integers(0, 10, (5,), numpy.int32), b.permutation(6)]

    first, second = draws(backend), draws(backend)
    for x, y, reference in zip(first, second, draws(cpu), strict=True):
        assert isinstance(x, SimArray) and x.dtype == reference.dtype
        numpy.testing.assert_array_equal(host(x), host(y))
        numpy.testing.assert_array_equal(host(x), reference)
    assert first[3].dtype == numpy.int64


def test_erf_matches_cpu(backend: SimBackend) -> None:
    x = numpy.linspace(-3, 3, 13, dtype=numpy.float32)
    result = backend.erf(backend.from_host(x))
    assert isinstance(result, SimArray)
    numpy.testing.assert_array_equal(host(result), NumpyBackend().erf(x))


def test_registry_serves_sim_device() -> None:
    backend = get_backend("sim", 0)
    assert isinstance(backend, SimBackend) and backend.device_type == "sim" and backend.name == "sim"


# -- several devices, and counted transfers -------------------------------------------------------------
def test_arrays_live_on_the_device_current_when_they_were_made() -> None:
    zero, one = SimBackend(0), SimBackend(1)
    a = one.from_host(numpy.arange(3.0))
    assert a.device.id == 1 and one.is_array(a) and not zero.is_array(a)
    with one.scope:
        assert current_device() == 1
        b = a * 2 + one.xp.ones(3)
        assert b.device.id == 1 and one.xp.exp(b).device.id == 1 and a.sum().device.id == 1
        with zero.scope:
            assert current_device() == 0
        assert current_device() == 1
    assert current_device() == 0
    assert one.uniform((2,), numpy.float32).device.id == 1  # a backend's own draws live on its device


@pytest.mark.parametrize("case", ["a + 1", "a + b", "xp.exp(a)", "a[0]", "a.sum()", "-a", "a.reshape(3, 1)",
                                  "b[a > 0]", "backend.scatter_add(a, xp.asarray([0]), 1.0)"])
def test_an_array_of_another_device_is_refused(case: str) -> None:
    backend = SimBackend(0)
    a = SimBackend(1).from_host(numpy.arange(3.0))
    b = backend.from_host(numpy.arange(3.0))
    with pytest.raises(DeviceMismatchError, match="array on sim:1 was used while sim:0 is the current device"):
        eval(case, {"a": a, "b": b, "xp": backend.xp, "backend": backend})


def test_explicit_reads_and_copies_work_from_any_device() -> None:
    zero, one = SimBackend(0), SimBackend(1)
    a = one.from_host(numpy.arange(3.0))
    assert a.get().tolist() == [0.0, 1.0, 2.0] and zero.to_host(a).tolist() == [0.0, 1.0, 2.0]
    copy = zero.copy_from(a, one)
    assert copy.device.id == 0 and (copy + 1).get().tolist() == [1.0, 2.0, 3.0]


def test_every_read_and_copy_is_counted_with_where_it_happened(backend: SimBackend, xp) -> None:
    a = backend.from_host(numpy.arange(4.0))
    with count_transfers() as log:
        a.get(), a[0].item(), a.tolist(), bool(a[1]), int(a[1]), float(a[1]), f"{a[1]:.1f}", str(a), repr(a)
        backend.to_host(a)
        backend.from_host(numpy.ones(2)), xp.asarray([1.0, 2.0]), xp.array(3.0)
        b = a * 2 + xp.exp(a)  # device math: no transfer
        xp.asarray(b)  # already on the device: no transfer
    assert [t.what for t in log.device_to_host] == ["get", "item", "tolist", "bool", "int", "float", "format", "str",
                                                    "repr", "to_host"]
    assert [t.what for t in log.host_to_device] == ["from_host", "xp.asarray", "xp.array"]
    assert "test_sim_backend.py" in log.report()


def test_out_of_bounds_integer_indices_wrap_around_as_in_cupy(backend: SimBackend) -> None:
    a = backend.from_host(numpy.arange(10.0).reshape(5, 2))
    assert host(a[backend.from_host(numpy.array([5, -6, 7]))])[:, 0].tolist() == [0.0, 8.0, 4.0]
    assert host(a[backend.from_host(numpy.array([6])), backend.from_host(numpy.array([3]))]).tolist() == [3.0]
    a[backend.from_host(numpy.array([5]))] = 0
    assert host(a)[0].tolist() == [0.0, 0.0]
