"""Bad configs fail before the first optimizer step, with a message naming
the key, its value, why and the fix (issue 15). No test runs a training
iteration: model errors come from building the runner, loop/optimizer errors
from building the train loop (``runner.train_loop``) or from
``check_training_setup``, which tools/train.py runs on the built runner."""
import json
import math
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmpretrain.registry import DATASETS, MODELS

import hdkd_mm  # noqa: F401
from hdkd_mm.datasets import HeldOutSplit
from hdkd_mm.datasets.overlap import image_sources, shared_images
from hdkd_mm.engine import BilevelOptimWrapperConstructor
from hdkd_mm.engine.checks import check_training_setup
from hdkd_mm.models.losses import DenseKDLoss
from tiny_data import write_cifar10_jpg
from tool_helpers import REPO, write_tiny_demo_config

TEST_PIPELINE = [dict(type='CenterPad', size=32), dict(type='GrayToRGB'),
                 dict(type='PackInputs')]


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Tiny Fashion-MNIST files (80 train / 40 test images, 20 held out)
    and the hdkd and msdnet demo configs pointed at them."""
    root = tmp_path_factory.mktemp('fmnist')
    return dict(
        root=str(root),
        hdkd=write_tiny_demo_config(root, name='hdkd.py', per_class=(8, 4),
                                    scheme='hdkd'),
        msdnet=write_tiny_demo_config(root, name='msdnet.py',
                                      per_class=(8, 4)),
        dbt=write_tiny_demo_config(root, name='dbt.py', per_class=(8, 4),
                                   scheme='dbt'))


def runner_for(path, tmp_path, options=None):
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(options or {})
    cfg.work_dir = str(tmp_path / 'work')
    cfg.log_level = 'WARNING'
    return Runner.from_cfg(cfg)


def fmnist(root, split):
    return dict(_delete_=True, type='LocalFashionMNIST', data_root=root,
                split=split, pipeline=TEST_PIPELINE)


# --------------------------------------------------------- λ, T, γ, ε
def test_negative_kd_weight_fails_when_the_model_is_built(data, tmp_path):
    """The issue's case: the DBT demo with kd_weight=-1 trained with a loss
    of -101; now the runner does not build."""
    with pytest.raises(ValueError, match=r'model\.head\.loss\.kd_weight=-1: '
                       r'λ weighs every KD term.*fix: kd_weight >= 0'):
        runner_for(data['dbt'], tmp_path, {'model.head.loss.kd_weight': -1})


@pytest.mark.parametrize('scheme, key, value, message', [
    ('dbt', 'kd_weight', -0.5, r'kd_weight=-0\.5: λ weighs every KD term'),
    ('naive_dkd', 'kd_weight', math.nan, 'kd_weight=nan is not a finite'),
    ('dbt', 'kd_weight', math.inf, 'kd_weight=inf is not a finite'),
    ('dbt', 'kd_weight', 'one', "kd_weight='one' is not a finite"),
    ('dbt', 'temperature', 0.0, 'temperature=0.0: the KD temperature T'),
    ('hdkd', 'temperature', -4, 'temperature=-4: the KD temperature T'),
    ('hdkd', 'temperature', math.inf, 'temperature=inf is not a finite'),
    ('impr', 'kd_weight', 1.5, r"kd_weight=1\.5 with scheme='impr': the CE "
     r'of every exit but the last is weighted by 1 - λ = -0\.5'),
])
def test_bad_lambda_or_temperature(scheme, key, value, message):
    with pytest.raises(ValueError, match=message):
        DenseKDLoss(num_exits=3, scheme=scheme, **{key: value})


def test_valid_lambda_edges_pass():
    assert DenseKDLoss(3, 'impr', kd_weight=1.0).default_weights[0] == 0
    assert DenseKDLoss(3, 'dbt', kd_weight=0.0).kd_weight == 0


@pytest.mark.parametrize('bad', [-0.25, math.nan, math.inf])
def test_fixed_gamma_must_be_finite_and_non_negative(tmp_path, bad):
    path = tmp_path / 'gamma.json'
    # json writes NaN/Infinity, which Python's json reads back
    path.write_text(json.dumps([1.0, 1.0, 1.0, bad, 0.3, 0.4]))
    cfg = dict(type='MultiExitClassifier',
               backbone=dict(type='MSDNet', nBlocks=3, nChannels=8,
                             growthRate=4, stepmode='even'),
               head=dict(type='MSDNetExitHead', num_classes=10,
                         inter_channels=16,
                         loss=dict(type='DenseKDLoss', scheme='hdkd')),
               loss_weights=dict(init='fixed', path=str(path)))
    with pytest.raises(ValueError, match=r"model\.loss_weights\.path=.*\(init="
                       r"'fixed'\): the fixed γ must be finite and >= 0, got "
                       rf'kd2-1={bad!r}'):
        MODELS.build(cfg)


@pytest.mark.parametrize('lr', [-1e-3, 0.0, math.nan, math.inf, '1e-3'])
def test_gamma_learning_rate_epsilon(lr):
    with pytest.raises(ValueError, match=re.escape(
            f'optim_wrapper.gamma.optimizer.lr={lr!r}: ε, the learning rate '
            'of the objective weights γ, must be a finite number > 0')):
        BilevelOptimWrapperConstructor(dict(
            optimizer=dict(type='SGD', lr=0.1),
            gamma=dict(optimizer=dict(type='Adam', lr=lr))))


def test_bad_epsilon_fails_before_the_first_iteration(data, tmp_path):
    runner = runner_for(data['hdkd'], tmp_path,
                        {'optim_wrapper.gamma.optimizer.lr': -1e-3})
    with pytest.raises(ValueError, match=r'gamma\.optimizer\.lr=-0\.001'):
        runner.train()
    assert runner.iter == 0


# ----------------------------------------------------------- held-out
@pytest.mark.parametrize('case', ['raw_training_set', 'raw_train_heldout_split',
                                  'test_set', 'heldout_is_train_split'])
def test_heldout_set_that_is_not_held_out_is_an_error(data, tmp_path, case):
    root = data['root']
    options = {
        # held-out = the whole training set (its 60 training images inside)
        'raw_training_set': {'heldout_dataloader.dataset':
                             fmnist(root, 'train')},
        # trained on the whole base set, held-out split of the same base
        'raw_train_heldout_split': {'train_dataloader.dataset':
                                    fmnist(root, 'train')},
        # held-out = the val/test set
        'test_set': {'heldout_dataloader.dataset': fmnist(root, 'test')},
        'heldout_is_train_split': {'heldout_dataloader.dataset.split':
                                   'train'},
    }[case]
    message = {
        'raw_training_set': r'heldout_dataloader\.dataset \(LocalFashionMNIST'
        r".*split='train', num_samples=80\)\) shares 60 of its 80 images with "
        r'train_dataloader\.dataset .*fix: hold part of the training set out',
        'raw_train_heldout_split': r'shares 20 of its 20 images with '
        r'train_dataloader\.dataset',
        'test_set': r"split='test', num_samples=40\)\) is the dataset of "
        r'val_dataloader: γ would be fitted on the images the model is '
        r'evaluated on',
        'heldout_is_train_split': r'shares 60 of its 60 images',
    }[case]
    runner = runner_for(data['hdkd'], tmp_path, options)
    with pytest.raises(ValueError, match=message + r'.*To train anyway: '
                       r'train_cfg\.allow_heldout_overlap=True'):
        runner.train_loop


def test_heldout_overlap_opt_out_is_recorded(data, tmp_path):
    runner = runner_for(data['hdkd'], tmp_path, {
        'heldout_dataloader.dataset': fmnist(data['root'], 'test'),
        'train_cfg.allow_heldout_overlap': True})
    loop = runner.train_loop
    assert len(loop.heldout_overlap) == 1
    assert 'is the dataset of val_dataloader' in loop.heldout_overlap[0]
    assert runner.message_hub.get_info('heldout_overlap') == \
        loop.heldout_overlap


def test_heldout_smaller_than_its_batch_names_the_cause(data, tmp_path):
    runner = runner_for(data['hdkd'], tmp_path,
                        {'heldout_dataloader.batch_size': 32})
    with pytest.raises(ValueError, match=r'heldout_dataloader\.batch_size=32 '
                       r'with drop_last=True, but the held-out split has only '
                       r'20 images .*fix: heldout_dataloader\.batch_size <= '
                       '20'):
        runner.train_loop


def _cifar10_runner(data, tmp_path, heldout_split):
    """The hdkd tiny config on the CIFAR-10 JPEG folder partition: test 40 /
    held-out 20 / train 60 of 120 images, val and test = split='test'."""
    root = write_cifar10_jpg(str(tmp_path / 'c10'), per_class=12)
    c10 = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'datasets',
                                   'cifar10_jpg_splits.py'))
    cfg = Config.fromfile(data['hdkd'])
    for key in ('train_dataloader', 'heldout_dataloader', 'val_dataloader'):
        ds = c10[key]['dataset']
        ds['dataset']['data_root'] = root
        ds.update(heldout_size=20, test_size=40)
        cfg[key]['dataset'] = ds
    cfg.heldout_dataloader.dataset.split = heldout_split
    cfg.test_dataloader = cfg.val_dataloader
    cfg.work_dir, cfg.log_level = str(tmp_path / 'work'), 'WARNING'
    return Runner.from_cfg(cfg)


def test_carved_test_split_and_heldout_split_of_one_partition_pass(
        data, tmp_path):
    loop = _cifar10_runner(data, tmp_path, 'heldout').train_loop
    assert loop.heldout is not None and loop.heldout_overlap == []


def test_heldout_loader_on_the_carved_test_split_is_refused(data, tmp_path):
    runner = _cifar10_runner(data, tmp_path, 'test')
    with pytest.raises(ValueError, match=r"HeldOutSplit\(split='test'\) of "
                       r'CustomDataset.*is the dataset of val_dataloader'):
        runner.train_loop


def test_shared_images_counts_through_wrappers(data):
    base = dict(type='LocalFashionMNIST', data_root=data['root'],
                split='train', pipeline=[])
    train = HeldOutSplit(base, 'train', heldout_size=20)
    held = HeldOutSplit(base, 'heldout', heldout_size=20)
    raw = train.dataset
    assert shared_images(train, held) == 0
    assert shared_images(raw, held) == 20
    subset = torch.utils.data.Subset(raw, held.indices[:5].tolist())
    assert shared_images(subset, train) == 0
    assert shared_images(subset, held) == 5
    other = DATASETS.build(dict(base, split='test'))
    assert shared_images(other, held) is None  # another base: unknown
    assert image_sources(object()) is None
    assert np.array_equal(image_sources(held)[0].indices, held.indices)


# ------------------------------------------------------- model build
@pytest.mark.parametrize('backbone, in_channels, message', [
    (dict(type='MSDNet', nBlocks=2, nChannels=8, growthRate=4,
          stepmode='even'), [48, 32, 32],
     r'model\.head\.in_channels=\[48, 32, 32\]: 3 exits, but the backbone '
     r'\(MSDNet\) returns 2 features'),
    (dict(type='ResNet_CIFAR', depth=18, base_channels=8, stem_channels=8,
          out_indices=(2, 3)), [8, 16, 32, 64],
     r'4 exits, but the backbone \(ResNet_CIFAR\) returns 2 features \(widths '
     r'\[32, 64\]\).*`out_indices`'),
    (dict(type='ResNet_CIFAR', depth=18, base_channels=8, stem_channels=8,
          out_indices=(2, 3)), [64, 32],
     r'model\.head\.in_channels=\[64, 32\] but the backbone\'s 2 features '
     r'have widths \[32, 64\]'),
])
def test_head_exits_must_match_backbone_outputs(backbone, in_channels,
                                                message):
    head = dict(type='GenericExitHead', num_classes=10,
                in_channels=in_channels)
    with pytest.raises(ValueError, match=message):
        MODELS.build(dict(type='MultiExitClassifier', backbone=backbone,
                          head=head))


@pytest.mark.parametrize('augment', ['Mixup', 'CutMix'])
@pytest.mark.parametrize('scheme', ['hdkd', 'msdnet'])
def test_soft_label_batch_augments_fail_at_build(data, tmp_path, augment,
                                                 scheme):
    with pytest.raises(ValueError, match=rf"data_preprocessor\.batch_augments"
                       rf"=\['{augment}'\]: batch augments replace the labels"):
        runner_for(data[scheme], tmp_path, {
            'model.data_preprocessor.batch_augments': dict(
                augments=[dict(type=augment, alpha=1.0)])})


# ---------------------------------------- loop, optimizers, schedulers
def test_learned_gamma_without_gamma_optimizer(data, tmp_path):
    runner = runner_for(data['hdkd'], tmp_path, {
        'optim_wrapper': dict(_delete_=True, type='OptimWrapper',
                              optimizer=dict(type='SGD', lr=0.05))})
    with pytest.raises(ValueError, match=r"optim_wrapper \(constructor=None\):"
                       r" the scheme 'hdkd' learns γ, which needs its own "
                       r'optimizer.*fix: optim_wrapper = dict\(constructor='
                       r"'BilevelOptimWrapperConstructor'"):
        runner.train_loop


def test_learned_gamma_with_the_plain_loop(data, tmp_path):
    runner = runner_for(data['hdkd'], tmp_path, {
        'train_cfg': dict(_delete_=True, by_epoch=True, max_epochs=2)})
    with pytest.raises(ValueError, match=r'train_cfg: the loop is '
                       r"EpochBasedTrainLoop, but the scheme 'hdkd' learns "
                       r".*fix: train_cfg = dict\(type='BilevelEpochBased"):
        check_training_setup(runner)


@pytest.mark.parametrize('optimizer', ['Adam', 'AdamW'])
def test_optimizer_virtual_step_needs_sgd(data, tmp_path, optimizer):
    runner = runner_for(data['hdkd'], tmp_path, {
        'train_cfg.bilevel.virtual_step': 'optimizer',
        'optim_wrapper.optimizer': dict(_delete_=True, type=optimizer,
                                        lr=1e-3)})
    with pytest.raises(ValueError, match=r"train_cfg\.bilevel\.virtual_step="
                       rf"'optimizer' with optim_wrapper\.optimizer\.type="
                       rf"'{optimizer}': the look-ahead θ' is the next "
                       r"iterate of torch\.optim\.SGD.*fix: train_cfg\."
                       r"bilevel\.virtual_step='sgd'"):
        runner.train_loop
    # SGD (the configs' θ optimizer) is what 'optimizer' reproduces
    runner = runner_for(data['hdkd'], tmp_path / 'sgd', {
        'train_cfg.bilevel.virtual_step': 'optimizer'})
    assert runner.train_loop.step_cfg.virtual_step == 'optimizer'


def test_gradient_accumulation_with_learned_gamma(data, tmp_path):
    runner = runner_for(data['hdkd'], tmp_path,
                        {'optim_wrapper.accumulative_counts': 2})
    with pytest.raises(ValueError, match=r'optim_wrapper\.accumulative_counts'
                       r'=2: learning γ takes the virtual step'):
        runner.train_loop


@pytest.mark.parametrize('loop', ['plain', 'bilevel'])
def test_per_optimizer_scheduler_dict_with_one_optimizer(data, tmp_path,
                                                         loop):
    """The bilevel configs' dict param_scheduler on a single optimizer:
    MMEngine's KeyError: 'type' becomes a message naming the cause."""
    options = {'param_scheduler': dict(
        _delete_=True,
        model=[dict(type='ConstantLR', factor=1.0, by_epoch=True)])}
    if loop == 'bilevel':
        options['train_cfg'] = dict(_delete_=True, max_epochs=2,
                                    type='BilevelEpochBasedTrainLoop')
    runner = runner_for(data['msdnet'], tmp_path, options)
    message = (r"param_scheduler is a dict of per-optimizer lists \(\['model'"
               r"\]\), which needs several optimizers, but optim_wrapper "
               "builds a single one")
    with pytest.raises(ValueError, match=message):
        check_training_setup(runner)
    if loop == 'bilevel':
        with pytest.raises(ValueError, match=message):
            runner.train_loop


def test_scheduler_dict_without_the_gamma_list(data, tmp_path):
    runner = runner_for(data['hdkd'], tmp_path, {'param_scheduler': dict(
        _delete_=True, model=[dict(type='ConstantLR', by_epoch=True)])})
    with pytest.raises(ValueError, match=r"param_scheduler has lists for "
                       r"\['model'\] but not for \['gamma'\]"):
        runner.train_loop


def test_the_demo_configs_pass_the_checks(data, tmp_path):
    for scheme in ('hdkd', 'msdnet', 'dbt'):
        runner = runner_for(data[scheme], tmp_path / scheme)
        check_training_setup(runner)
        runner.train_loop
