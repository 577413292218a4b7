"""Build hook: ship ``configs/``, ``tools/`` and ``model-index.yml`` inside the
package, in ``hdkd_mm/.mim/``, the folder where OpenMMLab's tools look for them
in an installed package (as MMPretrain ships its own):

* ``mim train|test hdkd_mm CONFIG`` runs ``hdkd_mm/.mim/tools/train.py|test.py``
  and finds CONFIG by name under ``hdkd_mm/.mim/configs``;
* ``mim search hdkd_mm`` reads ``hdkd_mm/.mim/model-index.yml``;
* MMEngine resolves ``_base_ = ['hdkd_mm::<folder>/<config>.py']`` to
  ``hdkd_mm/.mim/configs/<folder>/<config>.py``.

The files are copied into the build folder only, so a wheel (or a plain
``pip install .``) carries them and the source tree stays as it is. An
editable install (``pip install -e .``) gets no ``.mim``: there the package is
the clone's ``hdkd_mm/`` folder and the files are the clone's own (see
``hdkd_mm.registry.mim_root``).

Everything else (metadata, dependencies) is in ``setup.cfg``.
"""
import os.path as osp
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'tools', 'model-index.yml')


class BuildPyWithMim(build_py):
    """``build_py`` that also copies :data:`MIM_FILES` to ``hdkd_mm/.mim``."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        target = osp.join(self.build_lib, 'hdkd_mm', '.mim')
        if osp.isdir(target):
            shutil.rmtree(target)  # a stale build must not keep old configs
        for name in MIM_FILES:
            src = osp.join(ROOT, name)
            if not osp.exists(src):
                raise FileNotFoundError(
                    f'{src} is missing: the package ships {name} in '
                    'hdkd_mm/.mim (build from a clone or an sdist that has '
                    'it; MANIFEST.in lists it for the sdist).')
            dst = osp.join(target, name)
            if osp.isdir(src):
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
                    '__pycache__', '*.pyc'))
            else:
                self.mkpath(target)
                shutil.copy2(src, dst)


setup(cmdclass={'build_py': BuildPyWithMim})
