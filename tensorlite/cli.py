"""The ``tensorlite`` command line (typer). ``tensorlite --help`` lists the commands."""

from __future__ import annotations

import platform

import typer

app = typer.Typer(help="tensorlite: train, evaluate and inspect models on NumPy or CuPy.", no_args_is_help=True)


def _blas_info() -> str:
    """Which BLAS NumPy calls into (threadpoolctl when available, else NumPy's build config)."""
    try:
        from threadpoolctl import threadpool_info

        libs = [f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
                for i in threadpool_info() if i.get("user_api") == "blas" and "numpy" in i.get("filepath", "")]
        if libs:
            return ", ".join(libs)
    except ImportError:
        pass
    import numpy

    try:
        config = numpy.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy has no mode="dicts"; the BLAS name is then unknown
        return "unknown"


@app.command()
def info() -> None:
    """Versions, the BLAS NumPy uses, which backends are available (and why not), the default device."""
    import os

    import numpy

    import tensorlite
    from tensorlite.backends.cupy_backend import cuda_status

    cuda_ok, cuda_reason = cuda_status()
    try:
        default = str(tensorlite.default_device())
    except RuntimeError as exc:
        default = f"unavailable ({exc})"
    rows = [
        ("tensorlite", tensorlite.__version__),
        ("python", platform.python_version()),
        ("numpy", numpy.__version__),
        ("blas", _blas_info()),
        ("backend numpy (cpu)", "available"),
        ("backend cupy (cuda)", ("available: " if cuda_ok else "unavailable: ") + f"cupy {cuda_reason}"),
        ("TENSORLITE_DEVICE", os.environ.get("TENSORLITE_DEVICE", "(not set: auto)")),
        ("default device", default),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key:<{width}}  {value}")


@app.callback()
def main() -> None:
    """tensorlite: train, evaluate and inspect models on NumPy or CuPy."""
