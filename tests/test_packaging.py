"""`import hdkd_mm` registers the modules and applies the stack fixes; the
package installs from a wheel and works outside the clone (MIM, the
``hdkd_mm::`` config prefix); mmcv is never a pip dependency."""
import os
import os.path as osp
import pickle
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

import hdkd_mm  # noqa: F401
from tiny_data import fashion_mnist_overrides, write_fashion_mnist

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# What a build needs from the clone (the rest of it must not matter).
SOURCES = ('setup.py', 'setup.cfg', 'pyproject.toml', 'MANIFEST.in',
           'README.md', 'model-index.yml', 'hdkd_mm', 'configs', 'tools')
# The installed-package checks run on this config (by name, as `mim` finds
# it) and inherit from it through the `hdkd_mm::` prefix.
DEMO_FOLDER, DEMO_NAME = 'demo', 'msdnet_msdnet-4e_1xb128_fashion-mnist.py'


def test_modules_are_registered_in_mmpretrain_scope():
    from mmpretrain.registry import METRICS, MODELS
    for name in ('MultiExitClassifier', 'DenseKDLoss'):
        assert MODELS.get(name) is not None, name
    assert METRICS.get('MultiExitAccuracy') is not None


def test_mmengine_checkpoints_load_under_weights_only_default(tmp_path):
    # MMEngine pickles its message hub into checkpoints; torch >= 2.6 refuses
    # that by default. The plugin's local loader must read it.
    path = tmp_path / 'ckpt.pth'
    buffer = HistoryBuffer()
    buffer.update(np.float64(1.5))
    torch.save({'state_dict': {'w': torch.ones(2)},
                'message_hub': {'loss': buffer}}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)  # the failure being fixed
    ckpt = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))
    assert ckpt['message_hub']['loss'].current() == 1.5


def _clean_env(pythonpath):
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env.update(OMP_NUM_THREADS='1', PYTHONHASHSEED='0')
    if pythonpath:
        env['PYTHONPATH'] = pythonpath
    return env


def _run(cmd, cwd, env, timeout=300):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{" ".join(map(str, cmd))} failed:\n' \
        f'{out[-6000:]}'
    return out


def test_import_without_mmcv_names_both_install_options():
    # mmcv is no pip dependency (mmcv-lite would replace a full mmcv), so an
    # environment without either must get an error that says what to do.
    code = "import sys; sys.modules['mmcv'] = None; import hdkd_mm"
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO,
                          env=_clean_env(os.environ.get('PYTHONPATH')),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert 'hdkd_mm needs mmcv' in proc.stderr, proc.stderr[-2000:]
    assert 'pip install "hdkd_mm[lite]"' in proc.stderr
    assert 'mim install "mmcv>=2.0,<2.4"' in proc.stderr


@pytest.fixture(scope='module')
def wheel_install(tmp_path_factory):
    """The package built as a wheel from a copy of the sources (so that no
    build output of the clone can leak in) and installed with ``pip install
    --no-deps --target``: the running environment provides the dependencies,
    and the subprocesses below import hdkd_mm from the target only (the
    editable install's finder comes after ``PYTHONPATH``)."""
    tmp = tmp_path_factory.mktemp('wheel')
    src = tmp / 'src'
    src.mkdir()
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '.mim',
                                    '*.egg-info')
    for name in SOURCES:
        path = osp.join(REPO, name)
        if osp.isdir(path):
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    env = _clean_env(None)
    _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-q', src,
          '-w', tmp / 'dist'], tmp, env)
    (wheel,) = (tmp / 'dist').iterdir()
    site = tmp / 'site'
    _run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q',
          '--target', site, wheel], tmp, env)
    return wheel, site


def _files_under(root):
    return {osp.relpath(osp.join(d, f), root)
            for d, _, files in os.walk(root) for f in files
            if '__pycache__' not in d and not f.endswith('.pyc')}


def test_wheel_ships_configs_tools_and_model_index(wheel_install):
    wheel, site = wheel_install
    mim = site / 'hdkd_mm' / '.mim'
    for name in ('configs', 'tools'):
        assert _files_under(mim / name) == _files_under(
            osp.join(REPO, name)), name
    with open(mim / 'model-index.yml') as f, \
            open(osp.join(REPO, 'model-index.yml')) as g:
        assert f.read() == g.read()
    assert os.access(mim / 'tools' / 'dist_train.sh', os.X_OK)
    # mmcv only through extras: a full mmcv must never be replaced.
    with zipfile.ZipFile(wheel) as z:
        (meta,) = [n for n in z.namelist() if n.endswith('.dist-info/METADATA')]
        requires = [line for line in z.read(meta).decode().splitlines()
                    if line.startswith('Requires-Dist:')]
    mmcv = [r for r in requires if 'mmcv' in r.lower()]
    assert mmcv and all('extra ==' in r for r in mmcv), requires


def test_installed_wheel_trains_tests_and_searches_with_mim(
        wheel_install, tmp_path):
    """Outside the clone: a user config inherits an installed config through
    ``hdkd_mm::``, ``mim train`` trains it one epoch, ``mim test`` finds the
    installed config by name and evaluates the checkpoint, and ``mim search``
    lists the installed model index."""
    _, site = wheel_install
    data = str(tmp_path / 'fashion_mnist')
    write_fashion_mnist(data, per_class=(6, 2), learnable=True)
    overrides = [f'{k}={v}' for k, v in fashion_mnist_overrides(data).items()]
    user_cfg = tmp_path / 'my_config.py'
    user_cfg.write_text(
        f"_base_ = ['hdkd_mm::{DEMO_FOLDER}/{DEMO_NAME}']\n"
        'train_cfg = dict(max_epochs=1)\n')
    env = _clean_env(str(site))
    mim = [sys.executable, '-m', 'mim']
    work = tmp_path / 'work'

    out = _run(mim + ['train', 'hdkd_mm', user_cfg, '--work-dir', work,
                      '--cfg-options'] + overrides, tmp_path, env)
    assert f'{site}/hdkd_mm/.mim/tools/train.py' in out
    assert 'Training finished successfully' in out
    # the base's dicts were built in the hdkd_mm scope, without fallback
    assert 'Failed to search registry' not in out

    out = _run(mim + ['test', 'hdkd_mm', DEMO_NAME, '--checkpoint',
                      work / 'epoch_1.pth', '--cfg-options'] + overrides,
               tmp_path, env)
    assert f'{site}/hdkd_mm/.mim/configs/{DEMO_FOLDER}/{DEMO_NAME}' in out
    assert 'exit4/top1' in out and 'Testing finished successfully' in out

    from modelindex.load_model_index import load
    index = load(osp.join(REPO, 'model-index.yml'))
    index.build_models_with_collections()
    names = [m.name for m in index.models]
    out = _run(mim + ['search', 'hdkd_mm'], tmp_path, env)
    assert names and all(name in out for name in names), out[-3000:]
