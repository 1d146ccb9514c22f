"""The ``tensorlite`` command line and what exists only for it: the typer app (``cli.app``), one module per
family of commands (small tasks, MNIST, character language models), presets, option checks and plots.

The library never imports this package. Its family modules import no typer, so scripts can call
``train_task``, ``train_mnist`` or ``train_char_lm`` with the same defaults as the command line.
"""
