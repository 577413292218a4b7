"""Config names (configs/README.md): every runnable config has its own default
work dir, follows MMPretrain's {scheme}_{backbone}_{N}xb{B}_{dataset} scheme
(checked against its own batch size), and the model card's old path still
builds the model it names."""
import glob
import os.path as osp
import re
from collections import defaultdict

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import hdkd_mm  # noqa: F401
from hdkd_mm.launch import prepare_config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# Runnable configs: everything under configs/ except _base_ folders.
RUNNABLE = sorted(
    p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                     recursive=True)
    if '_base_' not in osp.relpath(p, ROOT).split(osp.sep))
# Kept for old links; not named by the scheme (and not in the count below).
ALIASES = {'configs/hdkd/msdnet_imagenet.py':
           'configs/hdkd/hdkd_msdnet-5e_8xb128_in1k.py'}
NAME = re.compile(r'^(?P<scheme>[a-z0-9.-]+)_(?P<backbone>[a-z0-9.-]+)_'
                  r'(?P<gpus>\d+)xb(?P<batch>\d+)_(?P<data>[a-z0-9.-]+)$')


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmpretrain')


def rel(path):
    return osp.relpath(path, ROOT).replace(osp.sep, '/')


def default_work_dir(path):
    """The work dir tools/train.py gives ``path`` without --work-dir."""
    cfg = prepare_config(Config.fromfile(path), path)
    return osp.normpath(cfg.work_dir)


def test_every_runnable_config_has_its_own_work_dir():
    """Two configs with one default work dir would overwrite each other's
    checkpoints and `--resume` would continue the wrong run."""
    assert len(RUNNABLE) >= 50
    by_dir = defaultdict(list)
    for path in RUNNABLE:
        by_dir[default_work_dir(path)].append(rel(path))
    shared = {d: ps for d, ps in by_dir.items() if len(ps) > 1}
    assert not shared, shared


def test_names_follow_the_scheme_with_their_own_batch_size():
    named = [p for p in RUNNABLE if rel(p) not in ALIASES]
    for path in named:
        stem = osp.splitext(osp.basename(path))[0]
        m = NAME.match(stem)
        assert m, f'{rel(path)}: not {{scheme}}_{{backbone}}_{{N}}xb{{B}}_' \
            '{dataset}'
        cfg = Config.fromfile(path)
        assert int(m['batch']) == cfg.train_dataloader.batch_size, rel(path)
        scheme = cfg.model.head.loss.scheme.replace('_', '-')
        assert m['scheme'].split('-')[0] == scheme.split('-')[0], rel(path)
        # the scheme folders hold their scheme's configs
        folder = rel(path).split('/')[1]
        if folder in ('msdnet', 'impr', 'dbt', 'naive_dkd', 'hmsdnet',
                      'hdbt', 'hdkd') and '/ablations/' not in rel(path):
            assert m['scheme'] == folder.replace('_', '-'), rel(path)


@pytest.mark.parametrize('alias', sorted(ALIASES))
def test_card_path_builds_the_same_model_as_its_target(alias):
    """`tools/train.py configs/hdkd/msdnet_imagenet.py` (the model card's
    path) trains the same model with the same settings as the renamed
    config; only the default work dir differs."""
    a = Config.fromfile(osp.join(ROOT, alias))
    b = Config.fromfile(osp.join(ROOT, ALIASES[alias]))
    assert a.to_dict() == b.to_dict()
    assert default_work_dir(osp.join(ROOT, alias)) != default_work_dir(
        osp.join(ROOT, ALIASES[alias]))
    torch.manual_seed(0)
    ma = MODELS.build(a.model)
    torch.manual_seed(0)
    mb = MODELS.build(b.model)
    sa, sb = ma.state_dict(), mb.state_dict()
    assert sa.keys() == sb.keys()
    assert all(sa[k].shape == sb[k].shape for k in sa)
    assert ma.learns_loss_weights and ma.loss_weights.names == \
        mb.loss_weights.names
    assert a.train_cfg.type == 'BilevelEpochBasedTrainLoop'
