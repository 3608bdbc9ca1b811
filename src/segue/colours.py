"""One colour per model, the same in every figure of a run.

Matplotlib's default cycle has 10 colours and is assigned by position, so with 14 models two
share a colour and a model's colour changes between figures. Here a model's colour comes from
its name: registered models in registry order (Kelly's 20 colours of maximum contrast, 18
models), anything else (a submission, "sessions" variants) after them by a stable hash.
"""

from __future__ import annotations

import zlib

# Kelly (1965), "Twenty-two colors of maximum contrast", without white and black.
KELLY = (
    "#F3C300", "#875692", "#F38400", "#A1CAF1", "#BE0032", "#C2B280", "#848482", "#008856",
    "#E68FAC", "#0067A5", "#F99379", "#604E97", "#F6A600", "#B3446C", "#DCD300", "#882D17",
    "#8DB600", "#654522", "#E25822", "#2B3D26",
)  # fmt: skip


def model_colour(name: str) -> str:
    """A hex colour for model ``name``; two registered models never share one.

    >>> from segue.models.registry import available
    >>> names = [n for n, _ in available()]
    >>> len({model_colour(n) for n in names}) == len(names)  # all 18 distinct
    True
    >>> model_colour("popular") == model_colour("popular")
    True
    """
    from segue.models.registry import available

    names = [n for n, _ in available()]
    base = name.split(" ")[0]
    if base in names:
        return KELLY[names.index(base) % len(KELLY)]
    return KELLY[zlib.crc32(name.encode()) % len(KELLY)]
