"""tools/analysis/budgeted_eval.py and tools/analysis/early_exit_infer.py end
to end on a checkpoint trained on tiny Fashion-MNIST files: JSON, PNG and
tables, the logits cache, the early-exit predict path from a config, and the
errors on bad input."""
import json
import os
import os.path as osp
import re
import shutil

import numpy as np
import pytest
import torch

import hdkd_mm.evaluation.inference as inference
from hdkd_mm.evaluation.budgeted_eval import budgeted_eval
from tool_helpers import load_tool, run_tool, write_tiny_demo_config

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A 3-exit tiny MSDNet trained for 2 epochs: 120 training images (40 of
    them held out), 60 test images. Returns (config, checkpoint)."""
    root = tmp_path_factory.mktemp('budgeted')
    cfg = write_tiny_demo_config(root / 'data', per_class=(12, 6),
                                 num_exits=3, heldout_size=40)
    work = root / 'work'
    run_tool('tools/train.py', cfg, '--work-dir', work, '--no-validate')
    return cfg, str(work / 'epoch_2.pth')


class CountCalls:
    """Counts collect_exit_logits calls (monkeypatched in)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        original = inference.collect_exit_logits

        def counting(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)
        monkeypatch.setattr(inference, 'collect_exit_logits', counting)


def test_cli_json_png_table_and_cache(trained, tmp_path, monkeypatch):
    config, ckpt = trained
    out = tmp_path / 'out'
    text = run_tool('tools/analysis/budgeted_eval.py', config, ckpt,
                    '--out', out, '--budget', '2.5')
    result = json.loads((out / 'budgeted.json').read_text())
    assert (out / 'budgeted.png').read_bytes()[:8] == PNG_MAGIC
    assert (out / 'tiny_demo_logits.npz').is_file()
    (model, ) = result['models']
    assert model['config'] == config and model['checkpoint'] == ckpt
    assert (model['num_heldout'], model['num_test']) == (40, 60)
    costs = model['exit_mflops']
    assert len(costs) == 3 and costs == sorted(costs)
    budgets = model['budgets']
    assert [b['budget_index'] for b in budgets] == list(range(1, 40))
    assert [b['q'] for b in budgets] == pytest.approx(
        np.arange(1, 40) / 20)
    for b in budgets:
        assert set(b) >= {'budget_index', 'q', 'thresholds', 'exit_shares',
                          'mflops', 'top1', 'top5'}
        assert len(b['thresholds']) == 3 and b['thresholds'][-1] == -np.inf
        assert sum(b['exit_shares']) == pytest.approx(1)
        assert costs[0] <= b['mflops'] <= costs[-1]
        assert 0 <= b['top1'] <= b['top5'] <= 100
    # the cost axis the thresholds were fitted for grows with the budget
    held = [b['heldout_mflops'] for b in budgets]
    assert np.all(np.diff(held) >= 0) and held[0] < held[-1]
    target = model['target']
    assert target['heldout_mflops'] <= 2.5
    assert '| p | q | MFLOPs | top-1 (%) | top-5 (%) | exit shares |' in text
    assert '| model | target MFLOPs | test MFLOPs |' in text
    assert 'tiny_demo | 2.50 |' in text

    # second call: the cached logits are reused, nothing recomputed
    counter = CountCalls(monkeypatch)
    again = budgeted_eval([(config, ckpt)], str(out), log=lambda s: None)
    assert counter.calls == 0 and again['models'][0]['cache_reused']
    assert again['models'][0]['budgets'] == budgets
    # a touched but identical checkpoint: reused (by its hash)
    copy = tmp_path / 'copy.pth'
    shutil.copy(ckpt, copy)
    out2 = str(tmp_path / 'out2')
    budgeted_eval([(config, str(copy))], out2, log=lambda s: None)
    assert counter.calls == 2  # held-out + test
    os.utime(copy, (1e9, 1e9))
    budgeted_eval([(config, str(copy))], out2, log=lambda s: None)
    assert counter.calls == 2
    # a changed checkpoint, or changed data settings: recomputed
    shutil.copy(osp.join(osp.dirname(ckpt), 'epoch_1.pth'), copy)
    changed = budgeted_eval([(config, str(copy))], out2, log=lambda s: None)
    assert counter.calls == 4 and not changed['models'][0]['cache_reused']
    budgeted_eval([(config, str(copy))], out2,
                  cfg_options={'test_dataloader.batch_size': 4},
                  log=lambda s: None)
    assert counter.calls == 6


def test_two_models_and_test_axis_when_test_is_heldout(trained, tmp_path):
    """Two checkpoints of one config (names disambiguated), and the
    well-behaved case where the test split is the held-out split: the
    average cost is then monotone in the budget."""
    config, ckpt = trained
    from mmengine.config import Config
    heldout = Config.fromfile(config).heldout_dataloader.to_dict()
    first = osp.join(osp.dirname(ckpt), 'epoch_1.pth')
    result = budgeted_eval(
        [(config, first), (config, ckpt)], str(tmp_path), num_budgets=10,
        cfg_options={'test_dataloader': dict(heldout, _delete_=True)},
        log=lambda s: None)
    names = [m['name'] for m in result['models']]
    assert names == ['tiny_demo__epoch_1', 'tiny_demo__epoch_2']
    for m in result['models']:
        assert len(m['budgets']) == 10 and m['num_test'] == 40
        cost = [b['mflops'] for b in m['budgets']]
        assert cost == pytest.approx([b['heldout_mflops']
                                      for b in m['budgets']])
        assert np.all(np.diff(cost) >= 0)
    assert (tmp_path / 'budgeted.png').read_bytes()[:8] == PNG_MAGIC


def test_errors(trained, tmp_path, capsys):
    config, ckpt = trained
    tool = load_tool('tools/analysis/budgeted_eval.py')
    # no held-out split
    no_heldout = tmp_path / 'no_heldout.py'
    no_heldout.write_text(
        f'_base_ = [{config!r}]\nheldout_dataloader = None\n')
    with pytest.raises(SystemExit) as err:
        tool.main([str(no_heldout), ckpt, '--out', str(tmp_path / 'a')])
    assert 'no held-out split to fit the thresholds on: add ' \
        'heldout_dataloader (see configs/_base_/datasets/*_heldout.py)' \
        in str(err.value.code)
    # a budget outside [exit 1 cost, full cost] names the range
    with pytest.raises(SystemExit) as err:
        tool.main([config, ckpt, '--out', str(tmp_path / 'b'),
                   '--budget', '0.1'])
    msg = str(err.value.code)
    assert 'outside the valid range [' in msg and 'MFLOPs' in msg
    lo, hi = (float(v) for v in msg.split('[')[1].split(']')[0].split(','))
    assert 0.1 < lo < hi
    with pytest.raises(SystemExit) as err:
        tool.main([config, ckpt, '--out', str(tmp_path / 'b'),
                   '--budget', str(hi * 1.01)])
    assert f'[{lo:g}, {hi:g}]' in str(err.value.code)
    # a checkpoint with another number of exits than the config
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(config)
    cfg.model.backbone.nBlocks = 2
    two = tmp_path / 'two_exits.pth'
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict()}, two)
    with pytest.raises(SystemExit) as err:
        tool.main([config, str(two), '--out', str(tmp_path / 'c')])
    assert 'has 2 exits but the config builds a model with 3' in \
        str(err.value.code)
    # an odd number of positional arguments
    with pytest.raises(SystemExit) as err:
        tool.main([config, ckpt, config, '--out', str(tmp_path / 'd')])
    assert err.value.code == 2
    assert 'odd number' in capsys.readouterr().err
    # thresholds of the wrong length (early-exit inference)
    infer = load_tool('tools/analysis/early_exit_infer.py')
    with pytest.raises(SystemExit) as err:
        infer.main([config, ckpt, '--thresholds=0.5,-inf', '--out',
                    str(tmp_path / 'e.json')])
    assert 'K = 3 values' in str(err.value.code) and 'got 2' in \
        str(err.value.code)


def test_early_exit_infer_and_predict_config(trained, tmp_path):
    """Early-exit inference with the thresholds of a budget reproduces that
    budget's simulated accuracy and cost, at batch 8 and batch 1; tools/
    test.py with the EarlyExitClassifier config option gives the same."""
    config, ckpt = trained
    out = tmp_path / 'bud'
    result = budgeted_eval([(config, ckpt)], str(out), log=lambda s: None)
    budget = result['models'][0]['budgets'][19]  # p = 20
    infer = load_tool('tools/analysis/early_exit_infer.py')
    for batch in ('8', '1'):
        path = tmp_path / f'ee{batch}.json'
        infer.main([config, ckpt, '--budget-json', str(out / 'budgeted.json'),
                    '--budget-index', '20', '--batch-size', batch,
                    '--verify', '--out', str(path)])
        ee = json.loads(path.read_text())
        assert ee['verify'] == dict(mismatched_exits=0, mismatched_preds=0)
        assert ee['top1'] == pytest.approx(budget['top1'])
        assert ee['top5'] == pytest.approx(budget['top5'])
        assert ee['mflops'] == pytest.approx(budget['mflops'])
        assert ee['exit_shares'] == pytest.approx(budget['exit_shares'])
        assert ee['batch_size'] == int(batch) and ee['num_samples'] == 60
        assert [s['index'] for s in ee['samples']] == list(range(60))
        assert set(ee['samples'][0]) == {'index', 'label', 'pred', 'exit',
                                         'mflops'}
        assert ee['wall_time_s'] > 0
    # the inference copy (BatchNorm folded, 1x1 convs as bmm): routing
    # equals the simulation on its own logits; against the plain model's
    # simulation only a sample within float32 rounding of a threshold
    # could move, which none of these 60 is
    path = tmp_path / 'ee_fast.json'
    infer.main([config, ckpt, '--budget-json', str(out / 'budgeted.json'),
                '--budget-index', '20', '--batch-size', '8', '--verify',
                '--fast-kernels', '--out', str(path)])
    ee = json.loads(path.read_text())
    assert ee['fast_kernels'] is True
    assert ee['verify'] == dict(mismatched_exits=0, mismatched_preds=0)
    assert ee['exit_shares'] == pytest.approx(budget['exit_shares'])
    assert ee['top1'] == pytest.approx(budget['top1'])
    thr = ','.join(repr(t) for t in budget['thresholds'])
    text = run_tool('tools/test.py', config, ckpt, '--work-dir',
                    tmp_path / 'test', '--cfg-options',
                    'model.type=EarlyExitClassifier',
                    f'model.early_exit.thresholds=[{thr}]',
                    'test_evaluator.type=EarlyExitMetric')
    values = dict(re.findall(r'(early_exit/\w+): ([\d.]+)', text))
    assert float(values['early_exit/top1']) == pytest.approx(
        budget['top1'], abs=1e-3)
    assert float(values['early_exit/mflops']) == pytest.approx(
        budget['mflops'], abs=1e-3)
