"""segue: playlist continuation and next-track prediction, evaluated honestly.

The Python API (:mod:`segue.api`) works in track URIs::

    import segue
    model = segue.load("demo/models/itemknn")
    model.recommend(tracks=["spotify:track:…"], title="summer", n=10, explain=True).to_frame()
    segue.evaluate(["demo/models/itemknn", "demo/models/popular"], "demo/split")

Everything else is importable from its module (``segue.models``, ``segue.evaluation``, …).
"""

__version__ = "0.3.0"

__all__ = [
    "Model",
    "Recommendation",
    "Recommendations",
    "UnknownTracksError",
    "evaluate",
    "load",
    "read_evaluation",
]


def __getattr__(name: str):
    # Imported on first use: `import segue` stays cheap (the CLI and `python -m segue` import it).
    if name in __all__:
        from segue import api

        return getattr(api, name)
    raise AttributeError(f"module 'segue' has no attribute {name!r}")
