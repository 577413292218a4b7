"""The command-line tools end to end on tiny Fashion-MNIST files: train →
checkpoint → resume → test, anytime evaluation, and a 2-process gloo run of
tools/dist_train.sh."""
import json
import os.path as osp
import socket

import pytest
import torch

from tool_helpers import run_tool, write_tiny_demo_config


@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory):
    """The demo config on 80 training / 20 test images, 2-exit MSDNet,
    no augmentation (so that a resumed run can be compared bit for bit)."""
    return write_tiny_demo_config(tmp_path_factory.mktemp('fmnist'))


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
    out = run_tool('tools/dist_train.sh', tiny_config, 2, '--work-dir', work,
                   '--cfg-options', 'train_cfg.max_epochs=1',
                   env={'PORT': str(_free_port())})
    ckpt = work / 'epoch_1.pth'
    assert ckpt.is_file()
    # torch's DDP deprecation notice for the broadcast_buffers=False we mean
    # (hdkd_mm/compat.py) is not printed by the ranks
    assert '`broadcast_buffers` is deprecated' not in out
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


def test_dist_train_hdkd_demo_two_ranks_identical_gamma(tmp_path):
    """``tools/dist_train.sh configs/demo/hdkd_msdnet-4e_1xb128_fashion-mnist.py
    2`` (on tiny
    files): the full Runner with the bilevel loop under gloo DDP. The loop
    routes MMEngine's plain wrapper to the model's own bilevel step; γ, the
    loss EMAs and θ end identical on both ranks (BatchNorm running stats
    may differ: each rank tracks its own batches)."""
    tests_dir = osp.dirname(osp.abspath(__file__))
    config = write_tiny_demo_config(
        tmp_path, scheme='hdkd', max_epochs=1,
        extra="custom_imports = dict(imports=['rank_probe'], "
              "allow_failed_imports=False)\n"
              "custom_hooks = [dict(type='SaveRankStateHook')]\n")
    work = tmp_path / 'dist'
    run_tool('tools/dist_train.sh', config, 2, '--work-dir', work,
             env={'PORT': str(_free_port()), 'PYTHONPATH': tests_dir})
    ranks = [torch.load(work / f'rank{r}.pth', weights_only=False)
             for r in (0, 1)]
    assert ranks[0]['wrapper'] == 'MMDistributedDataParallel'
    s0, s1 = ranks[0]['state_dict'], ranks[1]['state_dict']
    assert s0.keys() == s1.keys()
    for key in s0:
        if 'running_' not in key and 'num_batches_tracked' not in key:
            assert torch.equal(s0[key], s1[key]), key
    # 60 training images (80 minus 20 held out) over 2 ranks, batch 8:
    # ceil(30 / 8) = 4 γ steps in the one epoch, on both ranks.
    assert int(s0['loss_weights.num_steps']) == 4
    ckpt = torch.load(work / 'epoch_1.pth', weights_only=False)
    assert torch.equal(ckpt['state_dict']['loss_weights.gamma'],
                       s0['loss_weights.gamma'])
    num_objectives = s0['loss_weights.gamma'].numel()
    assert num_objectives == 3  # 2 exits: ce1, ce2, kd2-1
    # γ moved away from its ds_like initialisation (1, 1, 1)
    assert not torch.allclose(s0['loss_weights.gamma'],
                              torch.ones(num_objectives))
