"""Helpers shared by the tests that run the command-line tools: run a tool in
a subprocess or load it as a module, and write the demo config pointed at
tiny Fashion-MNIST files (the pattern of tests/test_tools.py)."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys

from tiny_data import write_fashion_mnist

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_DIR = osp.join(REPO, 'configs', 'demo')
DEMO = osp.join(DEMO_DIR, 'msdnet_msdnet-4e_1xb128_fashion-mnist.py')


def load_tool(path: str):
    """A tool script (``path`` relative to the repository, e.g.
    ``tools/analysis/get_flops.py``) as a module, to call its functions
    in-process."""
    name = 'tool_' + osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(*args, env=None, timeout=300, check=True):
    """Run ``python TOOL ARGS`` (or ``bash`` for ``.sh``) in the repository
    root with one OpenMP thread; returns stdout + stderr. With
    ``check=False`` returns ``(returncode, output)`` instead of asserting
    success."""
    cmd = [sys.executable] + [str(a) for a in args]
    if str(args[0]).endswith('.sh'):
        cmd = ['bash'] + [str(a) for a in args]
    full_env = dict(os.environ, PYTHONHASHSEED='0', OMP_NUM_THREADS='1',
                    PYTHON=sys.executable)
    full_env.update(env or {})
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if not check:
        return proc.returncode, out
    assert proc.returncode == 0, (
        f'{" ".join(cmd)} failed:\n{proc.stdout[-3000:]}\n'
        f'{proc.stderr[-5000:]}')
    return out


def write_tiny_demo_config(root, name='tiny_demo.py', per_class=(8, 2),
                           num_exits=2, heldout_size=20, max_epochs=2,
                           extra='', scheme='msdnet'):
    """Write tiny learnable Fashion-MNIST files under ``root`` and a config
    derived from ``configs/demo/<scheme>_msdnet-4e_1xb128_fashion-mnist.py``
    that uses them:
    ``num_exits``-exit small MSDNet, ``heldout_size`` held-out images, no
    augmentation, batch 8, a MultiStepLR schedule (split into θ's and a
    constant γ one for the harmonized schemes). ``extra`` is appended to the
    config text. Returns the config path."""
    root = str(root)
    demo = osp.join(DEMO_DIR, f"{scheme.replace('_', '-')}_msdnet-4e_1xb128_"
                    'fashion-mnist.py')
    schedule = "[dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=0.5)]"
    if scheme in ('hmsdnet', 'hdbt', 'hdkd'):
        schedule = (f"dict(_delete_=True, model={schedule}, "
                    "gamma=[dict(type='ConstantLR', factor=1.0, "
                    "by_epoch=True)])")
    write_fashion_mnist(root, per_class=per_class, learnable=True)
    path = osp.join(root, name)
    with open(path, 'w') as f:
        f.write(f'''
_base_ = [{demo!r}]
_root = {root!r}
_test_pipeline = [
    dict(type='CenterPad', size=32), dict(type='GrayToRGB'),
    dict(type='PackInputs')]
model = dict(backbone=dict(nBlocks={num_exits}, nChannels=8, growthRate=4),
             head=dict(inter_channels=16))
train_dataloader = dict(batch_size=8, dataset=dict(
    heldout_size={heldout_size}, pipeline=_test_pipeline,
    dataset=dict(data_root=_root)))
heldout_dataloader = dict(batch_size=8, dataset=dict(
    heldout_size={heldout_size}, dataset=dict(data_root=_root)))
val_dataloader = dict(batch_size=8, dataset=dict(data_root=_root))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs={max_epochs})
param_scheduler = {schedule}
optim_wrapper = dict(optimizer=dict(lr=0.05))
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=3))
randomness = dict(seed=0, deterministic=True)
''' + extra)
    return path
