"""matplotlib for Flux's charts (reports, plans, backtests): the Agg backend, so no display
is needed, and a clear error when the ``plot`` extra is not installed (the agent on a site
never draws, so matplotlib is not one of its dependencies)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import click

from reconciler.cliparams import check_output_path


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


def check_plot_path(path: Path, what: str, instead: str, option: str = "--plot") -> None:
    """Before work that may take minutes: matplotlib can write a file of this kind (by
    its extension) and the file can be written (:func:`check_output_path`). Raises
    click.BadParameter (exit 2) if not, and PlotsUnavailable when matplotlib is missing."""
    pyplot(what, instead)
    from matplotlib.backend_bases import FigureCanvasBase

    kinds = FigureCanvasBase.get_supported_filetypes()
    kind = path.suffix.lstrip(".").lower()
    if kind not in kinds:
        raise click.BadParameter(
            f"{path}: cannot draw a {path.suffix or 'file without an extension'}; "
            f"name it .png, .svg or .pdf (any of: {', '.join(sorted(kinds))})",
            param_hint=option,
        )
    check_output_path(path, option)
