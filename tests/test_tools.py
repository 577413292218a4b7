"""The command-line tools end to end on tiny Fashion-MNIST files: train →
checkpoint → resume → test, anytime evaluation, and a 2-process gloo run of
tools/dist_train.sh."""
import json
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
