"""Figures written as PNG files: the one place that picks matplotlib's backend and saves.

Use: ``plt = plotting.pyplot()``, draw on ``plt.subplots()``, then
``plotting.save_png(fig, "curve.png")``.
"""

import io

from data import fileio


def pyplot():
    """matplotlib.pyplot with the file-only Agg backend (no display on a TPU host or in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str, dpi: int = 110) -> None:
    """Lays out `fig`, writes it to `path` atomically (local or gs://) and closes it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    fileio.write_atomic(path, buffer.getvalue())
