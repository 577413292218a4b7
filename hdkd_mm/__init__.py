"""hdkd_mm: multi-exit image classifiers trained with Harmonized Dense
Knowledge Distillation (Wang & Li, AAAI 2021), as an MMPretrain plugin.

Importing the package registers every module into MMPretrain's registries
(``default_scope='mmpretrain'`` stays as it is) and applies the stack fixes of
:mod:`hdkd_mm.compat`. A config only needs::

    custom_imports = dict(imports=['hdkd_mm'], allow_failed_imports=False)
"""
from .compat import apply_stack_fixes
from .version import __version__

apply_stack_fixes()

from . import apis, datasets, engine, evaluation, models  # noqa: E402,F401

__all__ = ['__version__']
