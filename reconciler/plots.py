"""matplotlib for Flux's charts (reports, plans, backtests): the Agg backend, so no display
is needed, and a clear error when the ``plot`` extra is not installed (the agent on a site
never draws, so matplotlib is not one of its dependencies)."""

from __future__ import annotations

import io
from typing import Any

import click


class PlotsUnavailable(click.ClickException):
    """matplotlib is not installed (the ``plot`` extra)."""


def pyplot(what: str = "charts", instead: str = "") -> Any:
    """matplotlib.pyplot on the Agg backend, or :class:`PlotsUnavailable` naming ``what``
    needs it and, in ``instead``, what the user can do without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        also = f" ({instead})" if instead else ""
        raise PlotsUnavailable(
            f"{what} need matplotlib: pip install 'flux-reconciler[plot]'{also}"
        ) from None
    return plt


def png(fig: Any, dpi: int = 90) -> bytes:
    """``fig`` as PNG bytes, laid out tight; the figure is closed."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()
