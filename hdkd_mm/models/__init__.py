from . import backbones, classifiers, heads, losses, tta, weighting  # noqa: F401
