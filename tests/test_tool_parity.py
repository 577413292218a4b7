"""Parity with MMPretrain's tools: test.py's --tta/--out-item/--amp/
--show-dir, the Slurm scripts, logs that MMPretrain's analyze_logs.py reads,
the metric's prefix, --auto-scale-lr on the γ optimizer, and a quiet
start-up."""
import importlib.util
import json
import logging
import os
import os.path as osp
import pickle
import socket
import stat
import warnings

import mmpretrain
import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from mmpretrain.apis import get_model
from mmpretrain.structures import DataSample

import hdkd_mm  # noqa: F401
from hdkd_mm.analysis.run_plots import find_scalars, read_scalars, \
    val_top1_series
from hdkd_mm.evaluation.metrics.multi_exit_accuracy import exit_top1
from hdkd_mm.experiments.selection import final_heldout_metrics
from hdkd_mm.models.tta import AverageExitScoresTTA
from test_bilevel_runner import config as bilevel_config
from tool_helpers import load_tool, run_tool, write_tiny_demo_config

# The start-up messages that must not appear (README "Start-up messages").
NOISE = ('MultiScaleDeformableAttention', '"FileClient" will be deprecated',
         '"HardDiskBackend" is the alias', '`torch.jit.script` is deprecated',
         'The prefix is not set in metric class')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """The tiny 2-exit demo config (20 test images) and a checkpoint of its
    random-init model."""
    root = tmp_path_factory.mktemp('parity')
    config = write_tiny_demo_config(root, num_exits=2)
    torch.manual_seed(0)
    model = get_model(config)
    ckpt = str(root / 'init.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    flipped = str(root / 'flipped.py')
    with open(flipped, 'w') as f:
        f.write(f'''_base_ = [{config!r}]
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='CenterPad', size=32), dict(type='GrayToRGB'),
    dict(type='RandomFlip', prob=1.0, direction='horizontal'),
    dict(type='PackInputs')]))
''')
    return dict(root=root, config=config, flipped=flipped, ckpt=ckpt)


def _test(tiny, name, *args, config=None):
    """tools/test.py in this process; returns its metrics."""
    tool = load_tool('tools/test.py')
    return tool.main([config or tiny['config'], tiny['ckpt'],
                      '--work-dir', str(tiny['root'] / name),
                      '--cfg-options', f'experiment_name={name}',
                      *[str(a) for a in args]])


def _scores(path):
    with open(path, 'rb') as f:
        return torch.stack([s['exit_scores'] for s in pickle.load(f)])


def test_test_tool_out_item_tta_amp_show_dir(tiny, tmp_path):
    plain = _test(tiny, 'plain', '--out', tmp_path / 'plain.pkl')
    assert 'multi-exit/exit2/top1' in plain
    metrics = _test(tiny, 'metrics', '--out', tmp_path / 'm.json',
                    '--out-item', 'metrics')
    assert json.loads((tmp_path / 'm.json').read_text()) == \
        pytest.approx(metrics)
    assert metrics == pytest.approx(plain)

    # --tta: every exit's scores averaged over the image and its flip
    _test(tiny, 'flipped', '--out', tmp_path / 'flip.pkl',
          config=tiny['flipped'])
    _test(tiny, 'tta', '--tta', '--out', tmp_path / 'tta.pkl')
    a, b, t = (_scores(tmp_path / f'{n}.pkl') for n in ('plain', 'flip',
                                                         'tta'))
    assert t.shape == a.shape == (20, 2, 10)
    # the flip changes the scores (by ~2e-4 with these random weights, 200
    # times the tolerance of the check below), so an average can be told
    # from either view
    assert (a - b).abs().max() > 5e-5
    # the mean of two float32 softmax outputs, in another order
    torch.testing.assert_close(t, (a + b) / 2, rtol=0, atol=1e-6)

    # --amp on CPU: autocast in bfloat16 (8-bit mantissa, ~0.4 % per op;
    # a few layers keep the softmax outputs, ~0.1 here, within 0.02)
    _test(tiny, 'amp', '--amp', '--out', tmp_path / 'amp.pkl')
    amp = _scores(tmp_path / 'amp.pkl')
    assert amp.dtype == torch.bfloat16
    torch.testing.assert_close(amp.float(), a, rtol=0, atol=2e-2)

    # --show-dir: every 7th of the 20 images drawn
    _test(tiny, 'show', '--show-dir', tmp_path / 'show', '--interval', 7)
    assert sorted(os.listdir(tmp_path / 'show')) == [
        '0_0.png', '14_0.png', '7_0.png']


@pytest.mark.parametrize('args, message', [
    (['--tta', '--show-dir', 'x'], 'cannot be combined with --tta'),
    (['--out-item', 'metrics'], '--out-item needs --out'),
])
def test_test_tool_rejects_option_mixes(tiny, args, message, capsys):
    with pytest.raises(SystemExit) as err:
        load_tool('tools/test.py').parse_args(['c.py', 'ckpt.pth', *args])
    assert err.value.code == 2
    assert message in capsys.readouterr().err


class _Views(torch.nn.Module):
    """A stand-in model whose predictions are the data samples it is given
    (the TTA model only needs ``test_step``)."""

    def test_step(self, data):
        return data['data_samples']


def test_tta_model_averages_every_exit_and_refuses_early_exit():
    tta = AverageExitScoresTTA(module=_Views())
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(2, 3, 4, 5, generator=gen).softmax(-1)  # V, N, K, C
    views = [[DataSample(exit_scores=scores[v, i]).set_gt_label(i)
              for i in range(3)] for v in range(2)]
    merged = tta.test_step(dict(inputs=[None, None], data_samples=views))
    assert len(merged) == 3
    for i, sample in enumerate(merged):
        mean = (scores[0, i] + scores[1, i]) / 2
        torch.testing.assert_close(sample.exit_scores, mean, rtol=0, atol=0)
        torch.testing.assert_close(sample.pred_score, mean[-1], rtol=0,
                                   atol=0)
        assert int(sample.pred_label) == int(mean[-1].argmax())
        assert int(sample.gt_label) == i
    early = [[DataSample(exit_index=1).set_pred_score(torch.ones(3) / 3)]
             for _ in range(2)]
    with pytest.raises(KeyError, match='early-exit prediction'):
        tta.test_step(dict(inputs=[None, None], data_samples=early))


def test_slurm_scripts(tiny, tmp_path):
    """srun is replaced by a script that runs the command as --ntasks local
    processes with Slurm's variables, as srun would on one node."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text('''#!/usr/bin/env bash
echo "$@" >> "$SRUN_LOG"
ntasks=1
while [[ $# -gt 0 && "$1" == -* ]]; do
  case "$1" in
    --ntasks=*) ntasks=${1#--ntasks=} ;;
    -p) shift ;;
  esac
  shift
done
pids=()
for ((i = 0; i < ntasks; i++)); do
  SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NTASKS=$ntasks \\
  SLURM_NODELIST=localhost MASTER_ADDR=127.0.0.1 "$@" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc
''')
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / 'srun.log'
    env = dict(PATH=f'{bin_dir}:{os.environ["PATH"]}', SRUN_LOG=str(log),
               MASTER_PORT=str(_free_port()), GPUS='2', GPUS_PER_NODE='2')
    work = tmp_path / 'work'
    run_tool('tools/slurm_train.sh', 'part', 'job', tiny['config'], work,
             '--cfg-options', 'train_cfg.max_epochs=1', env=env)
    assert (work / 'epoch_1.pth').is_file()
    train_log = next((work).glob('*/*.log')).read_text()
    assert 'Distributed launcher: slurm' in train_log
    assert 'GPU number: 2' in train_log  # MMEngine's name for world size
    # slurm_test.sh: the same srun call around test.py, checked with a
    # stand-in interpreter that prints its arguments (test.py itself runs
    # in test_test_tool_out_item_tta_amp_show_dir)
    echo = bin_dir / 'echo_python'
    echo.write_text('#!/usr/bin/env bash\necho "PYTHON $@"\n')
    echo.chmod(echo.stat().st_mode | stat.S_IEXEC)
    env.update(GPUS='1', GPUS_PER_NODE='1', PYTHON=str(echo))
    out = run_tool('tools/slurm_test.sh', 'part', 'job', 'cfg.py', 'w.pth',
                   '--tta', env=env)
    # (run_tool runs `bash tools/slurm_test.sh` from the repository root)
    assert 'PYTHON -u tools/test.py cfg.py w.pth --launcher=slurm --tta' \
        in out
    calls = log.read_text().splitlines()
    assert calls[0].startswith('-p part --job-name=job --gres=gpu:2 '
                               '--ntasks=2 --ntasks-per-node=2')
    assert '--launcher=slurm' in calls[0]
    assert calls[1].startswith('-p part --job-name=job --gres=gpu:1 '
                               '--ntasks=1 --ntasks-per-node=1')


def test_hdkd_run_is_quiet_and_its_log_plots_with_analyze_logs(
        tmp_path, monkeypatch, capsys):
    config = write_tiny_demo_config(tmp_path, scheme='hdkd', max_epochs=1)
    work = tmp_path / 'work'
    out = run_tool('tools/train.py', config, '--work-dir', work,
                   '--cfg-options', 'default_hooks.checkpoint.save_best=auto')
    for text in NOISE:
        assert text not in out, text
    # save_best='auto' takes the metric's first key: the last exit's top-1
    assert (work / 'best_multi-exit_top1_epoch_1.pth').is_file()

    scalars = find_scalars(str(work))
    train = [r for r in read_scalars(scalars) if 'loss' in r]
    assert train and all('lr' in r and 'gamma.lr' in r for r in train)
    assert not any('model.lr' in r for r in train)
    assert list(val_top1_series(read_scalars(scalars))) == [1, 2]
    # the held-out selection reads the same prefixed keys
    assert len(exit_top1(final_heldout_metrics(str(work)))) == 2

    # MMPretrain's own script, run in this process
    tool = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools',
                    'analysis_tools', 'analyze_logs.py')
    png = tmp_path / 'curves.png'
    monkeypatch.setattr('sys.argv', [
        tool, 'plot_curve', scalars, '--keys', 'loss', 'lr', 'gamma.lr',
        'multi-exit/exit1/top1', '--out', str(png)])
    spec = importlib.util.spec_from_file_location('analyze_logs', tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main()
    assert png.is_file() and 'metric is gamma.lr' in capsys.readouterr().out


def _add_one(x: torch.Tensor) -> torch.Tensor:
    return x + 1


def test_exit_top1_reads_prefixed_and_older_keys():
    logged = {'multi-exit/top1': 9.0, 'multi-exit/exit10/top1': 3.0,
              'multi-exit/exit2/top1': 2.0, 'multi-exit/exit1/top1': 1.0,
              'multi-exit/exit1/top5': 7.0, 'early_exit/exit1_share': 0.5}
    assert exit_top1(logged) == [1.0, 2.0, 3.0]  # numeric exit order
    assert exit_top1({'exit1/top1': 4.0, 'exit2/top1': 5.0}) == [4.0, 5.0]


def test_noise_filters_are_narrow():
    logger = MMLogger.get_instance('parity_filter_test')

    def shown(msg):
        return logger.filter(logging.LogRecord(
            'x', logging.WARNING, __file__, 1, msg, None, None))

    assert not shown('"FileClient" will be deprecated in future. Please ...')
    assert not shown('"HardDiskBackend" is the alias of "LocalBackend" and')
    assert not shown('The prefix is not set in metric class DumpResults.')
    assert shown('The prefix is not set in metric class Foo.')
    assert shown('A "FileClient" will be deprecated in future')
    # torch.jit.script still warns in user code
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.jit.script(_add_one)
    assert any('torch.jit.script' in str(w.message) for w in caught)


def test_auto_scale_lr_scales_theta_and_gamma_alike(tmp_path):
    """Batch 8 against a base of 4: MMEngine's Runner.scale_lr doubles θ's
    lr and γ's ε (documented in hdkd_mm/engine/optim.py)."""
    runner = Runner.from_cfg(bilevel_config(
        tmp_path, auto_scale_lr=dict(enable=True, base_batch_size=4)))
    wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    assert wrapper.get_lr() == {'lr': [0.1], 'gamma.lr': [0.05]}
    runner.scale_lr(wrapper, runner.auto_scale_lr)
    lrs = wrapper.get_lr()
    assert lrs['lr'] == pytest.approx([0.2])
    assert lrs['gamma.lr'] == pytest.approx([0.1])
    assert np.isclose(wrapper['gamma'].get_lr()['lr'][0], 0.1)
