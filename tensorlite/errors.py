"""Error messages users can act on: the op, the shapes, the dimension or the devices that disagree."""

from __future__ import annotations


def broadcast_error(op: str, *shapes: tuple[int, ...]) -> ValueError:
    """Explain why ``shapes`` do not broadcast, naming the first dimension (from the right) that clashes."""
    shown = " and ".join(str(tuple(s)) for s in shapes)
    ndim = max(len(s) for s in shapes)
    for dim in range(1, ndim + 1):
        sizes = {s[-dim] for s in shapes if len(s) >= dim} - {1}
        if len(sizes) > 1:
            sizes_text = " vs ".join(str(n) for n in sorted(sizes))
            return ValueError(
                f"{op}: shapes {shown} cannot be broadcast together: dimension {-dim} has sizes {sizes_text} "
                "(sizes must match or be 1)"
            )
    return ValueError(f"{op}: shapes {shown} cannot be broadcast together")


def check_dim(op: str, dim: int, ndim: int) -> int:
    """Normalise a possibly negative ``dim`` for a tensor of ``ndim`` dimensions, or say what is wrong."""
    low = -max(ndim, 1)
    if not low <= dim < max(ndim, 1):
        raise IndexError(f"{op}: dimension {dim} is out of range for a tensor with {ndim} dimension(s) "
                         f"(expected {low} to {max(ndim, 1) - 1})")
    return dim % max(ndim, 1)


def device_mismatch(op: str, first: object, second: object) -> RuntimeError:
    """Tensors of one op on two devices, worded as PyTorch words it (with the op in front)."""
    return RuntimeError(f"{op}: Expected all tensors to be on the same device, but found at least two devices, "
                        f"{first} and {second}!")
