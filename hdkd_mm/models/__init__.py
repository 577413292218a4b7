from . import (backbones, classifiers, exits, heads, losses, tta,  # noqa: F401
               weighting)
