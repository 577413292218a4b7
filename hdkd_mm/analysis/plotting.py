"""Matplotlib figures for the analysis tools, drawn on the Agg canvas
directly (no pyplot, so no global backend state and no display needed)."""
from typing import List, Tuple

__all__ = ['new_figure']


def new_figure(ncols: int = 1, width: float = 5.5,
               height: float = 4.2) -> Tuple[object, List[object]]:
    """A figure with ``ncols`` axes side by side; save it with
    ``fig.savefig(path)``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width * ncols, height), layout='constrained')
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)
