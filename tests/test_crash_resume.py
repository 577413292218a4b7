"""Crash safety of long runs: a training process killed with SIGKILL in the
middle of an epoch, or while it writes a checkpoint, resumes with
``tools/train.py --resume`` and ends exactly where an uninterrupted run ends
(θ, γ, the loss EMAs, both optimizers' and the schedulers' states, bit for
bit on CPU). The kills come from tests/sigkill_hook.py, inside the process,
at a set iteration, so the test is deterministic."""
import concurrent.futures as futures
import os
import os.path as osp
import signal

import pytest
import torch

from tool_helpers import REPO, run_tool, write_tiny_demo_config

TESTS = osp.join(REPO, 'tests')
# max_keep_ckpts=1 as in the demo and experiment configs: the case where
# MMEngine's own CheckpointHook deletes the only complete checkpoint before
# writing the next one.
EXTRA = '''
custom_imports = dict(imports=['hdkd_mm', 'sigkill_hook'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='SigkillHook')]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=1))
'''
ITERS_PER_EPOCH = 8  # 60 training images (80 - 20 held out), batch 8


def _train(config, work_dir, *args, kill=None):
    env = {'PYTHONPATH': os.pathsep.join(
        [TESTS, os.environ.get('PYTHONPATH', '')]),
        'HDKD_TEST_SIGKILL': kill or ''}
    rc, out = run_tool('tools/train.py', config, '--work-dir', work_dir,
                       *args, env=env, check=False)
    want = -signal.SIGKILL if kill else 0
    assert rc == want, f'exit status {rc}, expected {want}:\n{out[-4000:]}'
    return out


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def assert_same_state(a, b):
    """Bit-identical model state (θ, BatchNorm statistics, γ, E_k, step
    counters), optimizer states and scheduler states."""
    assert a['meta']['epoch'] == b['meta']['epoch']
    assert a['meta']['iter'] == b['meta']['iter']
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for k, v in a['state_dict'].items():
        assert torch.equal(v, b['state_dict'][k]), k
    oa, ob = a['optimizer'], b['optimizer']
    if 'state' in oa:  # one optimizer (not an OptimWrapperDict)
        oa, ob = dict(model=oa), dict(model=ob)
    assert oa.keys() == ob.keys()
    for name, sa in oa.items():
        sb = ob[name]
        assert sa['param_groups'] == sb['param_groups'], name
        assert sa['state'].keys() == sb['state'].keys(), name
        for pid, st in sa['state'].items():
            for k, v in st.items():
                w = sb['state'][pid][k]
                assert (torch.equal(v, w) if torch.is_tensor(v) else v == w), (
                    name, pid, k)
    assert a['param_schedulers'] == b['param_schedulers']


@pytest.mark.parametrize('scheme', ['msdnet', 'hdkd'])
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, scheme):
    config = write_tiny_demo_config(tmp_path / 'data', scheme=scheme,
                                    max_epochs=3, extra=EXTRA)
    full, crashed = tmp_path / 'full', tmp_path / 'crashed'
    # the uninterrupted run alongside the crashed one (2 processes)
    reference = futures.ThreadPoolExecutor(1).submit(_train, config, full)
    # killed after iteration 12 of 24, i.e. in the middle of epoch 2
    out = _train(config, crashed, kill=f'iter:{ITERS_PER_EPOCH + 4}')
    assert 'Epoch(train) [2][4/8]' in out and '[2][5/8]' not in out
    assert sorted(p.name for p in crashed.glob('*.pth')) == ['epoch_1.pth']
    if scheme == 'msdnet':
        # and killed again, half-way through writing epoch_2.pth
        out = _train(config, crashed, '--resume', kill='save:1')
        assert 'resumed epoch: 1' in out
        assert sorted(p.name for p in crashed.glob('*.pth')) == [
            'epoch_1.pth']
        assert (crashed / 'last_checkpoint').read_text().endswith(
            'epoch_1.pth')
    out = _train(config, crashed, '--resume')
    assert 'resumed epoch: 1' in out
    assert not list(crashed.glob('.*.tmp'))
    reference.result()
    assert_same_state(_load(full / 'epoch_3.pth'),
                      _load(crashed / 'epoch_3.pth'))
    if scheme == 'hdkd':
        state = _load(crashed / 'epoch_3.pth')
        assert set(state['optimizer']) == {'model', 'gamma'}
        assert int(state['state_dict']['loss_weights.num_steps']) == \
            3 * ITERS_PER_EPOCH


def test_resume_falls_back_to_the_newest_complete_checkpoint(tmp_path):
    """What ``--resume`` picks in a work dir written by MMEngine's own hook
    (in place): the checkpoint last_checkpoint names if complete, else the
    newest complete one; none at all: a fresh start; only broken ones: an
    error naming them."""
    from hdkd_mm.engine.checkpoint import find_resume_checkpoint
    work = str(tmp_path)
    assert find_resume_checkpoint(work) is None
    pointer = tmp_path / 'last_checkpoint'
    for epoch in (1, 2):
        torch.save({'x': torch.arange(1000.)}, tmp_path / f'epoch_{epoch}.pth')
    blob = (tmp_path / 'epoch_2.pth').read_bytes()
    (tmp_path / 'epoch_3.pth').write_bytes(blob[:len(blob) // 2])
    assert find_resume_checkpoint(work) == str(tmp_path / 'epoch_2.pth')
    pointer.write_text(str(tmp_path / 'epoch_3.pth'))  # killed mid-write
    assert find_resume_checkpoint(work) == str(tmp_path / 'epoch_2.pth')
    pointer.write_text(str(tmp_path / 'epoch_1.pth'))
    assert find_resume_checkpoint(work) == str(tmp_path / 'epoch_1.pth')
    # a path relative to another working directory: the name in work_dir
    pointer.write_text('elsewhere/epoch_1.pth')
    assert find_resume_checkpoint(work) == str(tmp_path / 'epoch_1.pth')
    for epoch in (1, 2):
        (tmp_path / f'epoch_{epoch}.pth').unlink()
    with pytest.raises(ValueError, match=r'--resume: no complete checkpoint '
                       r'in .*epoch_3\.pth.*Fix: resume from a checkpoint you '
                       'have with `--resume PATH`'):
        find_resume_checkpoint(work)


def test_train_tool_puts_the_atomic_hook_in_place_of_mmengines():
    """tools/train.py's prepare_config: MMEngine's CheckpointHook (named, or
    its default when the config has none) becomes AtomicCheckpointHook with
    the same arguments; a disabled or custom hook is left alone."""
    from mmengine.config import Config

    from hdkd_mm.launch import prepare_config
    cfg = prepare_config(Config(dict(default_hooks=dict(checkpoint=dict(
        type='CheckpointHook', interval=5, max_keep_ckpts=1)))), 'a.py')
    assert cfg.default_hooks.checkpoint == dict(
        type='AtomicCheckpointHook', interval=5, max_keep_ckpts=1)
    cfg = prepare_config(Config(dict()), 'a.py')
    assert cfg.default_hooks.checkpoint == dict(type='AtomicCheckpointHook',
                                                interval=1)
    for hook in (None, dict(type='MyCheckpointHook')):
        cfg = prepare_config(Config(dict(default_hooks=dict(
            checkpoint=hook))), 'a.py')
        assert cfg.default_hooks.checkpoint == hook
