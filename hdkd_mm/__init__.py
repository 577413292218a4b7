"""hdkd_mm: multi-exit image classifiers trained with Harmonized Dense
Knowledge Distillation (Wang & Li, AAAI 2021), as an MMPretrain plugin.

Importing the package registers every module into MMPretrain's registries
(``default_scope='mmpretrain'`` stays as it is), registers the plugin's model
index (:mod:`hdkd_mm.model_index`) and applies the stack fixes of
:mod:`hdkd_mm.compat`. A config only needs::

    custom_imports = dict(imports=['hdkd_mm'], allow_failed_imports=False)
"""
try:
    import mmcv  # noqa: F401
except ModuleNotFoundError as error:
    if error.name != 'mmcv':
        raise
    # Not a pip dependency: mmcv-lite would be installed over a full mmcv.
    raise ModuleNotFoundError(
        'hdkd_mm needs mmcv (>=2.0, <2.4, as MMPretrain 1.2), and no module '
        'named mmcv is installed. Install either the pure-Python build, '
        '`pip install "hdkd_mm[lite]"` (mmcv-lite), or the full build with '
        'compiled ops, `mim install "mmcv>=2.0,<2.4"`. Both install the '
        'module `mmcv`.', name='mmcv') from None

from .compat import apply_stack_fixes  # noqa: E402
from .version import __version__  # noqa: E402

apply_stack_fixes()

from . import apis, datasets, engine, evaluation, models  # noqa: E402,F401
from .model_index import register_model_index  # noqa: E402

register_model_index()

__all__ = ['__version__']
