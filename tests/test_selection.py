"""Choices made on the held-out split (hdkd_mm/experiments/selection.py,
tools/experiments/select_on_heldout.py): the rules, the log parsing and one
real selection on tiny CIFAR-10 JPEG files through the suite's own config."""
import json
import os
import os.path as osp

import pytest

from hdkd_mm.experiments.gamma import logged_travel
from hdkd_mm.experiments.selection import (choose, exit_top1,
                                           final_heldout_metrics,
                                           load_selection)
from hdkd_mm.experiments.suite import SuiteError
from tiny_data import write_cifar10_jpg
from tool_helpers import REPO, run_tool

C10 = 'configs/experiments/cifar10/msdnet_msdnet-6e_1xb64_cifar10-1000.py'


def _row(name, top1, travel=None):
    return dict(name=name, heldout_top1=top1, room=top1[-1] - top1[0],
                mean=sum(top1) / len(top1), gamma_travel=travel)


def test_min_room_takes_the_first_candidate_with_enough_room():
    rows = [_row('small', [50.0, 55.0]), _row('mid', [50.0, 58.5]),
            _row('big', [49.0, 61.0])]
    assert choose(rows, dict(type='min_room', min_room=8)) == dict(
        choice='mid', met=True, why='first candidate with room >= 8')
    out = choose(rows, dict(type='min_room', min_room=20))
    assert out['choice'] == 'big' and out['met'] is False


def test_best_mean_breaks_near_ties_by_gamma_travel():
    rows = [_row('a', [60.0, 70.0], 0.1), _row('b', [60.2, 69.6], 0.9),
            _row('c', [55.0, 66.0], 5.0)]
    # b is within 0.3 of the best mean (a) and its γ moved more; c is far
    assert choose(rows, dict(type='best_mean', tie=0.3))['choice'] == 'b'
    assert choose(rows, dict(type='best_mean', tie=0.0))['choice'] == 'a'


def test_metrics_and_gamma_travel_from_mmengine_logs(tmp_path):
    for stamp, rows in (('20260101_000000', [{'exit1/top1': 1.0}]),
                        ('20260102_000000', [
                            {'loss': 1.0, 'gamma/ce1': 1.5, 'gamma/ce2': 0.2,
                             'iter': 10},
                            {'exit1/top1': 40.0, 'exit2/top1': 52.5,
                             'exit10/top1': 60.0},
                            {'loss': 0.9, 'gamma/ce1': 1.25,
                             'gamma/ce2': 0.5, 'iter': 20}])):
        os.makedirs(tmp_path / stamp / 'vis_data')
        with open(tmp_path / stamp / 'vis_data' / 'scalars.json', 'w') as f:
            f.writelines(json.dumps(r) + '\n' for r in rows)
    metrics = final_heldout_metrics(str(tmp_path))  # the newest run's last
    assert exit_top1(metrics) == [40.0, 52.5, 60.0]  # numeric exit order
    # the last logged γ against the initial one
    travel = logged_travel(str(tmp_path), {'ce1': 1.0, 'ce2': 1.0})
    assert travel == pytest.approx(0.25 + 0.5)
    assert logged_travel(str(tmp_path), None) is None
    assert final_heldout_metrics(str(tmp_path / 'missing')) is None


def test_data_root_is_required_where_the_options_read_it(tmp_path):
    path = tmp_path / 'sel.yaml'
    path.write_text('name: s\nconfig: c.py\ncandidates: {a: {}}\n'
                    "rule: {type: min_room, min_room: 1}\n"
                    "options: {x.data_root: '{data_root}'}\n")
    with pytest.raises(SuiteError, match='--data-root DIR'):
        load_selection(str(path))
    sel = load_selection(str(path), data_root='/d')
    assert sel['options'] == {'x.data_root': '/d'}
    path.write_text('name: s\nconfig: c.py\ncandidates: {a: {}}\n'
                    'rule: {type: vibes}\n')
    with pytest.raises(SuiteError, match='rule.type must be one of'):
        load_selection(str(path))


def test_selection_on_tiny_cifar10_jpegs_reads_no_test_image(tmp_path):
    root = write_cifar10_jpg(str(tmp_path / 'c10'), per_class=12)
    split = dict(heldout_size=20, test_size=40)
    opts = {}
    for key in ('train_dataloader', 'heldout_dataloader', 'val_dataloader',
                'test_dataloader'):
        opts[f'{key}.dataset.dataset.data_root'] = '{data_root}'
        opts[f'{key}.batch_size'] = 10
        for k, v in split.items():
            opts[f'{key}.dataset.{k}'] = v
    # the test loader points at a folder that does not exist: reading a
    # test image would fail the run
    opts['test_dataloader.dataset.dataset.data_root'] = str(tmp_path / 'no')
    opts.update({'train_dataloader.dataset.per_class': 3,
                 'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1,
                 'model.backbone.nChannels': 4})
    lines = ['name: tiny', f'config: {C10}', f'work_root: {tmp_path}/sel',
             'options:'] + [f"  {k}: '{v}'" if isinstance(v, str) else
                            f'  {k}: {v}' for k, v in opts.items()] + [
        'heldout_split: {val_dataloader.dataset.split: heldout}',
        'candidates:', '  two: {model.backbone.nBlocks: 2}',
        '  three: {model.backbone.nBlocks: 3}',
        'rule: {type: min_room, min_room: -100.0}']
    sel = tmp_path / 'sel.yaml'
    sel.write_text('\n'.join(lines) + '\n')
    out = run_tool('tools/experiments/select_on_heldout.py', str(sel),
                   '--data-root', root, '--out', str(tmp_path / 't.md'))
    assert 'choice: **two**' in out
    result = json.load(open(tmp_path / 'sel' / 'selection.json'))
    assert [len(r['heldout_top1']) for r in result['candidates']] == [2]
    # cheapest first: once `two` meets the rule, `three` is not trained
    assert result['not_needed'] == ['three']
    assert not osp.exists(tmp_path / 'sel' / 'three')
    assert '| three |' in out and 'not needed by the rule' in out
    # scored on the 20 held-out images: top-1 is a multiple of 5 %
    for r in result['candidates']:
        assert all(abs(v / 5 - round(v / 5)) < 1e-6 for v in r['heldout_top1'])
    assert osp.isfile(osp.join(REPO, C10))
