from . import backbones, classifiers, heads, losses, weighting  # noqa: F401
