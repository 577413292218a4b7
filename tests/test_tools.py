"""The command-line tools end to end on tiny Fashion-MNIST files: train →
checkpoint → resume → test, anytime evaluation, and a 2-process gloo run of
tools/dist_train.sh."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

from tiny_data import write_fashion_mnist

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(REPO, 'configs', 'demo', 'msdnet_fashion_mnist.py')


def run_tool(*args, env=None, timeout=300):
    cmd = [sys.executable] + [str(a) for a in args]
    if args[0].endswith('.sh'):
        cmd = ['bash'] + [str(a) for a in args]
    full_env = dict(os.environ, PYTHONHASHSEED='0', OMP_NUM_THREADS='1',
                    PYTHON=sys.executable)
    full_env.update(env or {})
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f'{" ".join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory):
    """The demo config on 80 training / 20 test images, 2-exit MSDNet,
    no augmentation (so that a resumed run can be compared bit for bit)."""
    root = tmp_path_factory.mktemp('fmnist')
    write_fashion_mnist(str(root), per_class=(8, 2), learnable=True)
    cfg = root / 'tiny_demo.py'
    cfg.write_text(f'''
_base_ = [{DEMO!r}]
_root = {str(root)!r}
_test_pipeline = [
    dict(type='CenterPad', size=32), dict(type='GrayToRGB'),
    dict(type='PackInputs')]
model = dict(backbone=dict(nBlocks=2, nChannels=8, growthRate=4),
             head=dict(inter_channels=16))
train_dataloader = dict(batch_size=8, dataset=dict(
    heldout_size=20, pipeline=_test_pipeline,
    dataset=dict(data_root=_root)))
heldout_dataloader = dict(batch_size=8, dataset=dict(
    heldout_size=20, dataset=dict(data_root=_root)))
val_dataloader = dict(batch_size=8, dataset=dict(data_root=_root))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=2)
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[1],
                        gamma=0.5)]
optim_wrapper = dict(optimizer=dict(lr=0.05))
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=3))
randomness = dict(seed=0, deterministic=True)
''')
    return str(cfg)


def _state(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def test_train_resume_test_and_anytime_eval(tiny_config, tmp_path):
    full = tmp_path / 'full'
    run_tool('tools/train.py', tiny_config, '--work-dir', full)
    assert (full / 'epoch_2.pth').is_file()

    # An interrupted run left epoch_1.pth behind: resuming from it in a new
    # work dir reproduces the uninterrupted run's θ bit for bit. (Shortening
    # the run with `train_cfg.max_epochs=1` would not do: MMEngine clips every
    # scheduler's `end` to max_epochs, which changes the schedule itself.)
    part = tmp_path / 'part'
    out = run_tool('tools/train.py', tiny_config, '--work-dir', part,
                   '--resume', full / 'epoch_1.pth')
    assert 'resumed epoch: 1' in out
    assert not (part / 'epoch_1.pth').exists()
    resumed, uninterrupted = (_state(part / 'epoch_2.pth'),
                              _state(full / 'epoch_2.pth'))
    assert resumed['meta']['epoch'] == 2
    assert 'optimizer' in resumed and 'param_schedulers' in resumed
    assert resumed['state_dict'].keys() == uninterrupted['state_dict'].keys()
    for key, value in uninterrupted['state_dict'].items():
        assert torch.equal(resumed['state_dict'][key], value), key

    out = run_tool('tools/test.py', tiny_config, full / 'epoch_2.pth',
                   '--work-dir', tmp_path / 'test')
    for k in (1, 2):
        assert f'exit{k}/top1' in out and f'exit{k}/top5' in out

    json_path = tmp_path / 'anytime.json'
    out = run_tool('tools/analysis/anytime_eval.py', tiny_config,
                   full / 'epoch_2.pth', '--out', json_path)
    result = json.loads(json_path.read_text())
    assert [e['exit'] for e in result['exits']] == [1, 2]
    assert result['num_samples'] == 20
    for row in result['exits']:
        assert 0 <= row['top1'] <= row['top5'] <= 100
        assert row['mflops'] > 0
    assert result['exits'][0]['mflops'] < result['exits'][1]['mflops']
    assert '| exit | MFLOPs | top-1 (%) | top-5 (%) |' in out


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_dist_train_two_processes_gloo(tiny_config, tmp_path):
    work = tmp_path / 'dist'
    run_tool('tools/dist_train.sh', tiny_config, 2, '--work-dir', work,
             '--cfg-options', 'train_cfg.max_epochs=1',
             env={'PORT': str(_free_port())})
    ckpt = work / 'epoch_1.pth'
    assert ckpt.is_file()
    from mmengine.config import Config

    from hdkd_mm.evaluation.inference import build_model_from_checkpoint
    model = build_model_from_checkpoint(Config.fromfile(tiny_config),
                                        str(ckpt))
    assert model.num_exits == 2


def test_anytime_eval_rejects_checkpoint_with_other_exit_count(
        tiny_config, tmp_path):
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    import hdkd_mm  # noqa: F401
    from hdkd_mm.evaluation.inference import build_model_from_checkpoint
    cfg = Config.fromfile(tiny_config)
    cfg.model.backbone.nBlocks = 3
    other = MODELS.build(cfg.model)
    path = tmp_path / 'three_exits.pth'
    torch.save({'state_dict': other.state_dict()}, path)
    with pytest.raises(ValueError, match='has 3 exits but the config builds '
                       'a model with 2'):
        build_model_from_checkpoint(Config.fromfile(tiny_config), str(path))
