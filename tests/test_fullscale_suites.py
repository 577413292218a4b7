"""The full-scale suites of docs/results.md ("Suite (c)") run end to end:
``cifar100_lowdata.yaml``, ``imagenet_lowdata.yaml`` and
``imagenet_ablation.yaml``, through ``tools/experiments/run_suite.py``, on
tiny files in the real formats (CIFAR-100 pickles, ImageNet folders),
one training iteration per run, then every evaluation and the report.

What the test changes in a copy of each suite file, and nothing else (the
configs, schemes, grid, labels, needs and claims are the suite's own):

* the data: ``--data-root`` (the suites' ``{data_root}``); the tiny CIFAR
  pickles are read without the official md5 check (``verify_md5``); the
  tiny ImageNet has 3 classes (``metainfo.classes``);
* the sizes: held-out split; ``per_class=None`` for every run (every
  data-size override set and the ablation configs' ImageNet(300)): the
  training subset is all the tiny set leaves after the hold-out, a few
  images of a few classes (X images of *every* class would be 100 images a
  batch on CIFAR-100); batch sizes (one batch = the whole training subset),
  no dataloader workers;
* the iteration count: ``epochs: 1`` (one epoch of one batch);
* the runs trained (``--only``), seed 0 and one data size: all seven
  schemes of CIFAR-100 (every loss and weighting path); on ImageNet, MSDNet
  and HDKD (the 5-exit model, its pipeline and schedule, plain and
  bilevel), then the ablation cells with a mechanism of their own: a γ init
  (DBT-like), α (α = 0), and Fixed-1, which freezes the γ of the HDKD run's
  final checkpoint. Every other run of the three suites (other schemes,
  data sizes, inits and α values, Fixed-2) is planned by ``--dry-run``:
  its config loads with its options, and its command is formed. This keeps
  the file at 12 trained runs.
"""
import os.path as osp

import pytest
import yaml

from tiny_data import write_cifar100, write_imagenet
from tool_helpers import REPO, run_tool

SUITES = osp.join(REPO, 'configs', 'experiments')
SPLITS = ('train_dataloader', 'heldout_dataloader')
EVALS = ('val_dataloader', 'test_dataloader')


def _size_options(batch: int, heldout: int, base_extra: dict) -> dict:
    """Sizes (and data-format options) of the tiny data for every run: the
    training subset, the test split and the held-out split in one batch
    each."""
    opts = {'train_dataloader.dataset.per_class': None}
    for key in SPLITS:
        opts[f'{key}.dataset.heldout_size'] = heldout
        for k, v in base_extra.items():
            opts[f'{key}.dataset.dataset.{k}'] = v
    for key in EVALS:
        for k, v in base_extra.items():
            opts[f'{key}.dataset.{k}'] = v
    for key in SPLITS + EVALS:
        opts[f'{key}.batch_size'] = heldout if key == SPLITS[1] else batch
        opts[f'{key}.num_workers'] = 0
    return opts


def _tiny_suite(name: str, tmp_path, sizes: dict) -> str:
    """A copy of the suite file with the test's overrides (module doc)."""
    with open(osp.join(SUITES, name)) as f:
        data = yaml.safe_load(f)
    data.update(work_root=str(tmp_path / 'runs'), seeds=[0], epochs=1,
                parallel=2, threads=1)
    data.pop('publish', None)
    data.pop('archive', None)
    data['options'] = dict(data.get('options') or {}, **sizes)
    for body in (data.get('overrides') or {}).values():
        opts = body.get('options', body) if isinstance(body, dict) else {}
        if 'train_dataloader.dataset.per_class' in opts:
            opts['train_dataloader.dataset.per_class'] = None
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return str(path)


def _run_suite(path, data_root, only, expect_runs):
    """Plan every run of the copy (its config loads with its options, its
    command is formed), then train and evaluate the ``only`` ones."""
    planned = run_tool('tools/experiments/run_suite.py', path,
                       '--data-root', data_root, '--dry-run')
    assert 'no command' not in planned, planned
    out = run_tool('tools/experiments/run_suite.py', path, '--data-root',
                   data_root, '--no-doc', '--only', *only, timeout=1200)
    assert f'{expect_runs} to run' in out, out
    assert 'FAILED' not in out, out
    return planned + out


def _check_report(tmp_path, suite: str, report: str, labels):
    out_dir = tmp_path / 'runs' / 'suites' / suite / report
    for name in ('anytime_top1.md', 'train_top1.md', 'budgeted.md',
                 'runs.md', 'report.md'):
        assert (out_dir / name).is_file(), (suite, name)
    table = (out_dir / 'anytime_top1.md').read_text()
    for label in labels:
        assert f'{label} (n=1)' in table, (label, table)
    return out_dir


def test_cifar100_suite_one_iteration(tmp_path):
    write_cifar100(str(tmp_path / 'cifar100'), n_train_per_class=4,
                   n_test_per_class=1, classes_present=4)
    # 16 training images: 8 held out, the other 8 one batch; the 4 test
    # images one batch
    sizes = _size_options(batch=8, heldout=8,
                          base_extra=dict(verify_md5=False))
    path = _tiny_suite('cifar100_lowdata.yaml', tmp_path, sizes)
    out = _run_suite(path, tmp_path / 'cifar100', ['*/pc150/seed0'], 7)
    assert '28 runs' in out  # the dry run planned every data size
    schemes = ('msdnet', 'impr', 'dbt', 'naive_dkd', 'hmsdnet', 'hdbt',
               'hdkd')
    _check_report(tmp_path, 'cifar100_lowdata', 'pc150', schemes)
    # the 8-exit model: one row per exit
    assert '| 8 |' in (tmp_path / 'runs/suites/cifar100_lowdata/pc150/'
                       'anytime_top1.md').read_text()
    assert out.count('start ') == 7


@pytest.fixture(scope='module')
def imagenet(tmp_path_factory):
    root = tmp_path_factory.mktemp('imagenet')
    write_imagenet(str(root / 'data'), n_classes=2, per_class=2,
                   val_per_class=1)
    # 4 training images: 2 held out, the other 2 one batch; the 2
    # validation images one batch
    classes = ['n00', 'n01']
    sizes = _size_options(batch=2, heldout=2,
                          base_extra={'metainfo.classes': classes})
    low = _tiny_suite('imagenet_lowdata.yaml', root, sizes)
    out = _run_suite(low, root / 'data', ['msdnet/pc300/seed0',
                                          'hdkd/pc300/seed0'], 2)
    return root, sizes, out


def test_imagenet_lowdata_suite_one_iteration(imagenet):
    root, _, out = imagenet
    assert '28 runs' in out  # planned: 7 schemes × 4 data sizes
    assert out.count('start ') == 2
    out_dir = _check_report(root, 'imagenet_lowdata', 'pc300',
                            ('msdnet', 'hdkd'))
    assert '| 5 |' in (out_dir / 'anytime_top1.md').read_text()  # 5 exits


def test_imagenet_ablation_suite_one_iteration(imagenet):
    """After the ImageNet(300) seed-0 runs of imagenet_lowdata: MSDNet and
    DS-like HDKD are reused; the one-change cells train; Fixed-1 freezes
    the γ of the HDKD run's final checkpoint."""
    root, sizes, _ = imagenet
    path = _tiny_suite('imagenet_ablation.yaml', root, sizes)
    only = ['msdnet', 'ds_like', 'dbt_like', 'alpha0', 'fixed1']
    out = _run_suite(path, root / 'data', only, 3)
    assert '10 runs' in out  # planned: every cell of seed 0
    assert '2 already done' in out  # msdnet, ds_like: imagenet_lowdata's
    assert out.count('start ') == 3
    _check_report(root, 'imagenet_ablation', '', (
        'msdnet', 'ds_like', 'dbt_like', 'alpha0', 'fixed1'))
    claims = (root / 'runs/suites/imagenet_ablation/claims.md').read_text()
    assert 'C6 Fixed-1 worse than evolving γ' in claims
