"""The plugin's configs, tools and model index, and their registration.

An installed package ships ``configs/``, ``tools/`` and ``model-index.yml`` in
``hdkd_mm/.mim/`` (``setup.py`` copies them at build time, as MMPretrain
does); a clone (editable install or ``PYTHONPATH``) has them at its root.
:func:`register_model_index`, run on ``import hdkd_mm``, makes them known to

* MMPretrain's model hub: ``mmpretrain.list_models('*hdkd*')`` lists the
  plugin's models and ``mmpretrain.get_model(name)`` builds them;
* MMEngine's config loader: ``_base_ = ['hdkd_mm::<folder>/<config>.py']``
  (MMEngine accepts the ``package::`` prefix only for the packages it lists).
  It reads the configs from the installed ``hdkd_mm/.mim``, so that prefix
  needs a regular (non-editable) install, as for MMPretrain's own configs.
"""
import os.path as osp

PACKAGE = 'hdkd_mm'
_REGISTERED = False


def mim_root() -> str:
    """The folder that holds ``configs/``, ``tools/`` and ``model-index.yml``:
    the installed package's ``.mim``, or the root of the clone it runs from."""
    package_dir = osp.dirname(osp.abspath(__file__))
    for root in (osp.join(package_dir, '.mim'), osp.dirname(package_dir)):
        if osp.isfile(osp.join(root, 'model-index.yml')) and osp.isdir(
                osp.join(root, 'configs')):
            return root
    raise FileNotFoundError(
        f'hdkd_mm at {package_dir} has neither .mim/model-index.yml (an '
        'installed wheel) nor ../model-index.yml (a clone): reinstall it '
        'with `pip install hdkd_mm` or from a clone.')


def register_model_index() -> None:
    """Register the model index with MMPretrain's ``ModelHub`` and the
    ``hdkd_mm::`` config prefix with MMEngine; idempotent."""
    global _REGISTERED
    if _REGISTERED:
        return
    from mmengine.config import utils as config_utils
    from mmpretrain.apis.model import ModelHub

    config_utils.MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)
    root = mim_root()
    # Config paths in the metafiles are relative to the folder that holds
    # model-index.yml (``configs/<folder>/<config>.py``).
    ModelHub.register_model_index(
        osp.join(root, 'model-index.yml'), config_prefix=root)
    _REGISTERED = True
