"""Every scheme by config alone: the configs build the right objective sets;
the Impr scheme's weights and gradient equilibrium."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import hdkd_mm  # noqa: F401
from hdkd_mm.models.losses import DenseKDLoss

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SCHEMES = ('msdnet', 'dbt', 'naive_dkd', 'impr', 'hmsdnet', 'hdbt', 'hdkd')
# (number of KD objectives for K exits, learned γ)
EXPECTED = {
    'msdnet': (lambda k: 0, False), 'dbt': (lambda k: k - 1, False),
    'naive_dkd': (lambda k: k * (k - 1) // 2, False),
    'impr': (lambda k: k - 1, False), 'hmsdnet': (lambda k: 0, True),
    'hdbt': (lambda k: k - 1, True),
    'hdkd': (lambda k: k * (k - 1) // 2, True),
}


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmpretrain')


def _configs(pattern):
    return sorted(glob.glob(osp.join(ROOT, 'configs', pattern)))


def token(scheme):
    """A scheme's token in config names ('naive_dkd' → 'naive-dkd': '_'
    separates the name's fields)."""
    return scheme.replace('_', '-')


def test_every_scheme_has_its_configs():
    for scheme in SCHEMES:
        t = token(scheme)
        for name in (f'{t}_msdnet-8e_1xb128_cifar100.py',
                     f'{t}_msdnet-5e_8xb128_in1k.py'):
            assert osp.isfile(osp.join(ROOT, 'configs', scheme, name))
        assert osp.isfile(osp.join(ROOT, 'configs', 'demo',
                                   f'{t}_msdnet-4e_1xb128_fashion-mnist.py'))


@pytest.mark.parametrize(
    'path',
    _configs('*/*_msdnet-8e_1xb128_cifar100.py') + _configs('demo/*.py'),
    ids=lambda p: osp.relpath(p, ROOT))
def test_scheme_configs_build_their_objective_sets(path):
    cfg = Config.fromfile(path)
    scheme = cfg.model.head.loss.scheme
    model = MODELS.build(cfg.model)
    k = model.num_exits
    num_kd, learned = EXPECTED[scheme]
    names = model.head.objective_names
    assert names[:k] == [f'ce{i}' for i in range(1, k + 1)]
    assert len(names) == k + num_kd(k)
    assert model.learns_loss_weights == learned
    if learned:
        assert cfg.train_cfg.type == 'BilevelEpochBasedTrainLoop'
        assert 'by_epoch' not in cfg.train_cfg  # MMEngine refuses both
        assert cfg.optim_wrapper.constructor == 'BilevelOptimWrapperConstructor'
        assert set(cfg.param_scheduler) == {'model', 'gamma'}
    if path.endswith('hdkd/hdkd_msdnet-8e_1xb128_cifar100.py'):
        assert len(names) == 36  # 8 CE + 28 KD


def test_impr_weights_and_gradient_equilibrium():
    loss = DenseKDLoss(num_exits=4, scheme='impr', kd_weight=0.1)
    weights = dict(zip(loss.names, loss.default_weights.tolist()))
    assert weights == pytest.approx({
        'ce1': 0.9, 'ce2': 0.9, 'ce3': 0.9, 'ce4': 1.0,
        'kd4-1': 0.1, 'kd4-2': 0.1, 'kd4-3': 0.1})
    dbt = DenseKDLoss(num_exits=4, scheme='dbt', kd_weight=0.1)
    assert dbt.default_weights[:4].tolist() == [1.0] * 4

    cfg = Config.fromfile(osp.join(
        ROOT, 'configs/demo/impr_msdnet-4e_1xb128_fashion-mnist.py'))
    assert MODELS.build(cfg.model).backbone.gradient_equilibrium
    cfg = Config.fromfile(osp.join(
        ROOT, 'configs/demo/dbt_msdnet-4e_1xb128_fashion-mnist.py'))
    assert not MODELS.build(cfg.model).backbone.gradient_equilibrium


def test_impr_needs_a_backbone_with_gradient_equilibrium():
    with pytest.raises(ValueError, match='gradient equilibrium'):
        MODELS.build(dict(
            type='MultiExitClassifier',
            backbone=dict(type='ResNet_CIFAR', depth=18, base_channels=8,
                          out_indices=(2, 3)),
            head=dict(type='GenericExitHead', num_classes=10,
                      in_channels=None,
                      loss=dict(type='DenseKDLoss', scheme='impr'))))


def test_table3_ablation_configs(tmp_path):
    """configs/hdkd/ablations: ImageNet(300) with one change each (γ init,
    α, or γ frozen from a converged run)."""
    import json
    expected = {
        'hdkd': ('ds_like', 0.5),
        'hdkd-initdbt': ('dbt_like', 0.5),
        'hdkd-initrand': ('rand', 0.5),
        'hdkd-alpha0': ('ds_like', 0),
        'hdkd-alpha0.1': ('ds_like', 0.1),
        'hdkd-alpha0.9': ('ds_like', 0.9),
        'hdkd-alpha1': ('ds_like', 1),
        'hdkd-fixed': ('fixed', 0.5),
    }
    expected = {f'{k}_msdnet-5e_8xb128_in1k-300': v
                for k, v in expected.items()}
    paths = _configs('hdkd/ablations/*.py')
    assert sorted(osp.splitext(osp.basename(p))[0] for p in paths) == \
        sorted(expected)
    for path in paths:
        cfg = Config.fromfile(path)
        init, alpha = expected[osp.splitext(osp.basename(path))[0]]
        lw = cfg.model.loss_weights
        assert (lw.init, lw.get('alpha', 0.5)) == (init, alpha), path
        assert cfg.train_dataloader.dataset.per_class == 300
        assert cfg.model.head.loss.scheme == 'hdkd'
    # Fixed: γ read from the given file and frozen (5 exits: 5 CE + 10 KD)
    cfg = Config.fromfile(osp.join(ROOT, 'configs/hdkd/ablations/'
                                   'hdkd-fixed_msdnet-5e_8xb128_in1k-300.py'))
    gamma = [0.1 * (i + 1) for i in range(15)]
    (tmp_path / 'gamma.json').write_text(json.dumps(gamma))
    cfg.model.loss_weights.path = str(tmp_path / 'gamma.json')
    model = MODELS.build(cfg.model)
    assert model.loss_weights.gamma.tolist() == pytest.approx(gamma)
    assert not model.learns_loss_weights
