"""The report's charts: one module per chart, each a function of the figures returning a
PNG (bytes). matplotlib with the Agg backend: no display needed."""

from __future__ import annotations

import io
from typing import Any

import click


class PlotsUnavailable(click.ClickException):
    """matplotlib is not installed (the ``plot`` extra)."""


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or a clear error when it is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotsUnavailable(
            "the HTML report's charts need matplotlib: pip install 'flux-reconciler[plot]' "
            "(or use --output markdown or json)"
        ) from None
    return plt


def png(fig: Any) -> bytes:
    """``fig`` as PNG bytes; the figure is closed."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
