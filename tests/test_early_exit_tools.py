"""Real early exit through the tools on every backbone of the CIFAR-100
configs besides MSDNet (tests/test_budgeted_eval.py has MSDNet): the model
dicts of configs/_base_/models/{resnet18_cifar,timm_resnet18_cifar,
timm_mobilenetv3_cifar,vit_tiny_cifar}.py (narrowed where slow, 10 classes)
on tiny Fashion-MNIST files, random weights with non-trivial BatchNorm
statistics. tools/analysis/budgeted_eval.py --confidence entropy fits the
thresholds; tools/analysis/early_exit_infer.py routes with them at batch 8
and 1 (--verify: 0 decisions differ from the simulation) and reproduces the
budget's accuracy, exit shares and cost; tools/test.py with
EarlyExitClassifier + EarlyExitMetric reports the same."""
import json

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from test_exit_protocol import perturb_norms
from tool_helpers import REPO, load_tool, write_tiny_demo_config

MODELS_CFG = {
    'resnet18': ('resnet18_cifar.py', dict(
        backbone=dict(stem_channels=8, base_channels=8))),
    'timm-resnet18': ('timm_resnet18_cifar.py', {}),
    'timm-mobilenetv3': ('timm_mobilenetv3_cifar.py', dict(
        backbone=dict(model_name='mobilenetv3_small_050'))),
    'vit-tiny': ('vit_tiny_cifar.py', dict(backbone=dict(
        arch=dict(embed_dims=32, num_layers=4, num_heads=2,
                  feedforward_channels=64), out_indices=(0, 1, 2, 3)))),
}


@pytest.fixture(scope='module')
def data_config(tmp_path_factory):
    """The tiny demo config (120 training images, 40 of them held out, 60
    test images, batch 8); its model is replaced per test."""
    root = tmp_path_factory.mktemp('ee_tools')
    return root, write_tiny_demo_config(root / 'data', per_class=(12, 6),
                                        num_exits=4, heldout_size=40)


def write_model(root, name, base_config):
    """A config on the tiny data with the model of ``name`` and a
    checkpoint of its random weights."""
    init_default_scope('mmpretrain')
    file, narrow = MODELS_CFG[name]
    cfg = Config.fromfile(f'{REPO}/configs/_base_/models/{file}')
    cfg.merge_from_dict(dict(model=narrow))
    cfg.model.head.num_classes = 10
    model_dict = cfg.model.to_dict()
    config = root / f'{name}.py'
    config.write_text(f'_base_ = [{base_config!r}]\n'
                      f'model = dict(_delete_=True, **{model_dict!r})\n')
    torch.manual_seed(0)
    model = MODELS.build(model_dict)
    perturb_norms(model)
    ckpt = root / f'{name}.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    return str(config), str(ckpt)


@pytest.mark.parametrize('name', sorted(MODELS_CFG))
def test_budgeted_eval_early_exit_infer_and_test_py(name, data_config):
    root, base = data_config
    config, ckpt = write_model(root, name, base)
    out = root / f'{name}_budgeted'
    load_tool('tools/analysis/budgeted_eval.py').main(
        [config, ckpt, '--out', str(out), '--confidence', 'entropy'])
    result = json.loads((out / 'budgeted.json').read_text())
    assert result['confidence'] == 'entropy'
    (model, ) = result['models']
    assert model['confidence'] == 'entropy'
    budget = model['budgets'][19]  # p = 20
    costs = model['exit_mflops']
    assert len(costs) == 4 and costs == sorted(costs)
    assert len({round(s, 6) for s in budget['exit_shares'] if s}) > 1
    infer = load_tool('tools/analysis/early_exit_infer.py')
    for batch in ('8', '1'):
        path = root / f'{name}_ee{batch}.json'
        infer.main([config, ckpt, '--budget-json',
                    str(out / 'budgeted.json'), '--budget-index', '20',
                    '--batch-size', batch, '--verify', '--out', str(path)])
        ee = json.loads(path.read_text())
        assert ee['confidence'] == 'entropy'
        assert ee['verify'] == dict(mismatched_exits=0, mismatched_preds=0)
        assert ee['top1'] == pytest.approx(budget['top1'])
        assert ee['mflops'] == pytest.approx(budget['mflops'])
        assert ee['exit_shares'] == pytest.approx(budget['exit_shares'])
        assert ee['exit_mflops'] == pytest.approx(costs, abs=1e-9)
        for s in ee['samples']:
            assert s['mflops'] == pytest.approx(costs[s['exit'] - 1])
    # thresholds fitted with entropy are refused for another measure
    with pytest.raises(SystemExit) as err:
        infer.main([config, ckpt, '--budget-json', str(out / 'budgeted.json'),
                    '--budget-index', '20', '--confidence', 'max_softmax',
                    '--out', str(root / 'x.json')])
    assert "fitted with the 'entropy' confidence, not 'max_softmax'" in \
        str(err.value.code)
    # the config option through tools/test.py, scored by EarlyExitMetric
    thr = ','.join(repr(t) for t in budget['thresholds'])
    metrics = load_tool('tools/test.py').main([
        config, ckpt, '--work-dir', str(root / f'{name}_test'),
        '--cfg-options', 'model.type=EarlyExitClassifier',
        f'model.early_exit.thresholds=[{thr}]',
        'model.early_exit.confidence=entropy',
        'test_evaluator.type=EarlyExitMetric'])
    assert metrics['early_exit/top1'] == pytest.approx(budget['top1'])
    assert metrics['early_exit/mflops'] == pytest.approx(budget['mflops'])
    for k, share in enumerate(budget['exit_shares'], start=1):
        assert metrics.get(f'early_exit/exit{k}_share', 0.0) == \
            pytest.approx(share)


@pytest.mark.parametrize('tool', ['tools/analysis/early_exit_infer.py',
                                  'tools/deploy/export_early_exit.py'])
def test_threshold_options_are_refused_before_any_work(tool, capsys):
    """Both tools take the thresholds the same way (``add_threshold_args``):
    exactly one source, and ``--budget-json`` only with a budget."""
    parse = load_tool(tool).parse_args
    base = ['cfg.py', 'ckpt.pth', '--out', 'out']
    args = parse(base + ['--budget-json', 'b.json', '--budget-index', '3',
                         '--confidence', 'entropy'])
    assert (args.thresholds, args.budget_json, args.budget_index,
            args.confidence) == (None, 'b.json', '3', 'entropy')
    for argv, message in [
            (['--budget-json', 'b.json'], '--budget-json needs '
             '--budget-index P'),
            (['--thresholds=0.5,-inf', '--budget-json', 'b.json'],
             'not allowed with argument'),
            ([], 'one of the arguments --thresholds --budget-json is '
             'required'),
            (['--thresholds=0.5,-inf', '--confidence', 'max'],
             "invalid choice: 'max'")]:
        with pytest.raises(SystemExit) as err:
            parse(base + argv)
        assert err.value.code == 2
        assert message in capsys.readouterr().err
