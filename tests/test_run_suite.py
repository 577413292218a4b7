"""tools/experiments/run_suite.py end to end: a 2-config × 1-seed × 1-epoch
mini suite on tiny Fashion-MNIST files (train → anytime/train-split/budgeted
evaluation → tables), a second invocation that skips the finished runs, and
clear errors for bad suite files."""
import json
import os.path as osp
import re

import pytest

from hdkd_mm.experiments.options import epoch_options, format_options
from hdkd_mm.experiments.suite import SuiteError, load_suite
from tiny_data import write_fashion_mnist
from tool_helpers import (REPO, load_tool, run_tool,
                          write_tiny_demo_config)


def _write_suite(tmp_path, configs, extra=''):
    path = tmp_path / 'mini.yaml'
    path.write_text(
        'name: mini\n'
        f'work_root: {tmp_path / "runs"}\n'
        'seeds: [0]\n'
        'parallel: 2\n'
        'threads: 1\n'
        'epochs: 1\n'
        'baselines: [msdnet_tiny]\n'
        'claims:\n'
        '  - {claim: DBT lifts exit 1, a: dbt_tiny, b: msdnet_tiny, '
        "exit: first, expect: '+', paper: '+6.48'}\n"
        'configs:\n' + ''.join(f'  - {c}\n' for c in configs) + extra)
    return path


@pytest.fixture(scope='module')
def tiny_configs(tmp_path_factory):
    root = tmp_path_factory.mktemp('fmnist')
    plain = write_tiny_demo_config(root, name='msdnet_tiny.py',
                                   per_class=(8, 4))
    dbt = write_tiny_demo_config(
        root, name='dbt_tiny.py', per_class=(8, 4),
        extra="model['head']['loss'] = dict(scheme='dbt', temperature=4.0, "
        "kd_weight=1.0)\nmodel['channels_last'] = True\n")
    return [plain, dbt]


# the demo configs of the suite files below
MS = 'configs/demo/msdnet_msdnet-4e_1xb128_fashion-mnist.py'
HD = 'configs/demo/hdkd_msdnet-4e_1xb128_fashion-mnist.py'
_CELL = re.compile(r'^\d+\.\d\d( ± \d+\.\d\d)?$')


def _table_rows(path):
    lines = [line for line in open(path).read().splitlines()
             if line.startswith('|')]
    header = [c.strip() for c in lines[0].strip('|').split('|')]
    rows = [[c.strip().strip('*') for c in line.strip('|').split('|')]
            for line in lines[2:]]
    return header, rows


def test_mini_suite_end_to_end_and_skip(tiny_configs, tmp_path):
    suite = _write_suite(tmp_path, tiny_configs)
    out = run_tool('tools/experiments/run_suite.py', suite, timeout=600)
    assert '0 already done, 2 to run' in out
    # one status line per finished run, with the last exit's top-1
    assert re.search(r'msdnet_tiny seed 0: last-exit top-1 \d+\.\d\d', out)
    assert re.search(r'dbt_tiny seed 0: last-exit top-1 \d+\.\d\d', out)
    assert re.search(r'\] 2/2, .*elapsed', out)  # MMEngine's ProgressBar
    out_dir = tmp_path / 'runs' / 'suites' / 'mini'
    header, rows = _table_rows(out_dir / 'anytime_top1.md')
    assert header == ['exit', 'MFLOPs', 'msdnet_tiny (n=1)',
                      'dbt_tiny (n=1)']
    assert [r[0] for r in rows] == ['1', '2']  # the 2-exit tiny model
    for row in rows:
        for cell in row[2:]:
            assert _CELL.match(cell), row
            assert 0 <= float(cell.split()[0]) <= 100
    header, rows = _table_rows(out_dir / 'train_top1.md')
    assert len(rows) == 2 and len(header) == 4
    assert all(0 <= float(c.split()[0]) <= 100 for r in rows for c in r[2:])
    _, rows = _table_rows(out_dir / 'deltas_vs_msdnet_tiny.md')
    assert [r[0] for r in rows] == ['1', '2', 'n']
    header, rows = _table_rows(out_dir / 'claims.md')
    # one seed: an effect, no interval, no verdict either way
    assert len(rows) == 1 and rows[0][0] == 'DBT lifts exit 1'
    row = dict(zip(header, rows[0]))
    assert row['n'] == '1' and row['verdict'] == 'one seed'
    assert row['detectable'] == '–' and row['paper'] == '+6.48 → +6.48'
    for name in ('anytime_top1.png', 'budgeted.png', 'budgeted.md',
                 'regime.md', 'runs.md', 'timing.md', 'report.md'):
        assert (out_dir / name).is_file(), name
    run_dir = tmp_path / 'runs' / 'msdnet_tiny' / 'default' / 'seed0'
    result = json.loads((run_dir / 'result.json').read_text())
    assert result['spec']['max_epochs'] == 1
    # the memory layout each run trained in, recorded and tabled
    dbt_dir = tmp_path / 'runs' / 'dbt_tiny' / 'default' / 'seed0'
    assert result['channels_last'] is False
    assert json.loads((dbt_dir / 'result.json').read_text())[
        'channels_last'] is True
    header, rows = _table_rows(out_dir / 'timing.md')
    layout = {r[0]: r[header.index('layout')] for r in rows}
    assert layout == {'msdnet_tiny': 'NCHW', 'dbt_tiny': 'NHWC'}
    assert len(result['test_top1']) == len(result['train_top1']) == 2
    for name in ('final.pth', 'anytime.json', 'train_split.json',
                 'budgeted/budgeted.json', 'logs/train.log'):
        assert (run_dir / name).is_file(), name
    # the epochs override reached the training config
    assert 'train_cfg.max_epochs=1' in (run_dir / 'logs' /
                                        'train.log').read_text()
    summary = json.loads((out_dir / 'summary.json').read_text())
    assert summary['complete'] and summary['num_done'] == 2

    # A second invocation skips the finished run (dbt) and finishes the
    # msdnet run whose evaluation was interrupted (result.json and two
    # outputs removed): it evaluates again without training again.
    mtime = (run_dir / 'final.pth').stat().st_mtime_ns
    train_log = (run_dir / 'logs' / 'train.log').read_text()
    for name in ('result.json', 'anytime.json', 'budgeted/budgeted.json'):
        (run_dir / name).unlink()
    out = run_tool('tools/experiments/run_suite.py', suite)
    assert '1 already done, 1 to run' in out
    assert 'start msdnet_tiny/default/seed0' in out
    assert 'start dbt_tiny' not in out
    assert (run_dir / 'final.pth').stat().st_mtime_ns == mtime
    assert (run_dir / 'logs' / 'train.log').read_text() == train_log
    assert (run_dir / 'result.json').is_file()
    # A third one has nothing left to run; it fills a document's blocks.
    doc = tmp_path / 'doc' / 'results.md'
    doc.parent.mkdir()
    doc.write_text('# R\n<!-- BEGIN suite:mini/anytime_top1.md -->\nold\n'
                   '<!-- END suite:mini/anytime_top1.md -->\ntext\n'
                   '<!-- BEGIN suite:mini/budgeted.png -->\nold\n'
                   '<!-- END suite:mini/budgeted.png -->\n'
                   '<!-- BEGIN suite:other/budgeted.png -->\nkeep\n'
                   '<!-- END suite:other/budgeted.png -->\n')
    out = run_tool('tools/experiments/run_suite.py', suite, '--doc', doc)
    assert '2 already done, 0 to run' in out and 'start ' not in out
    text = doc.read_text()
    assert 'old' not in text and 'keep' in text and 'text' in text
    assert (out_dir / 'anytime_top1.md').read_text() in text
    assert '![mini budgeted](results/mini/budgeted.png)' in text
    assert (doc.parent / 'results' / 'mini' / 'budgeted.png').is_file()

    # A run folder made with other settings is refused, not reused.
    other = _write_suite(tmp_path, tiny_configs,
                         'options: {model.head.loss.temperature: 2.0}\n')
    code, out = run_tool('tools/experiments/run_suite.py', other,
                         check=False)
    assert code != 0 and 'was made by another run spec' in out


@pytest.mark.parametrize('body,message', [
    (f'name: s\nseeds: [0]\nconfigs: [{MS}]\n'
     'parallell: 2\n', "unknown key(s) ['parallell']"),
    ('name: s\nseeds: [0]\nconfigs: [configs/demo/nope.py]\n',
     "config file 'configs/demo/nope.py' does not exist"),
    (f'name: s\nconfigs: [{MS}]\n',
     '`seeds` is required'),
    ('name: s\nseeds: [0]\ngrid:\n  - configs: '
     f'[{HD}]\n    overrides: [rand]\n',
     "unknown override set 'rand'"),
    (f'name: s\nseeds: [0]\nconfigs: [{MS}]\n'
     'overrides:\n  x: {model.backbone: {nBlocks: 5}}\n',
     'use one dotted key per leaf'),
    (f'name: s\nseeds: [0]\nconfigs: [{HD}]\n'
     'overrides:\n  fixed: {needs: hdkd, options: {}}\n',
     'needs must be a run id CONFIG_STEM/OVERRIDE/seedK'),
    (f'name: s\nseeds: [0]\nconfigs: [{HD}]\n'
     'overrides:\n  x: {model.loss_weights.path: "{needs}"}\n',
     'uses {needs} but the override set has no `needs`'),
    ('name: s\nseeds: [0]\nconfigs: [{path: configs/hdkd/hdkd_msdnet-8e_1xb128_'
     'cifar100.py, name: x}, {path: configs/dbt/dbt_msdnet-8e_1xb128_cifar100.py,'
     ' name: x}]\n',
     'two configs share the name'),
    (f'name: s\nseeds: [0]\nconfigs: [{MS}]\n'
     'data_root: /data/fmnist\n',
     "data_root '/data/fmnist' is given, but no option of the suite uses "
     '{data_root}'),
    (f'name: s\nseeds: [0]\nconfigs: [{MS}]\n'
     'data_root: 5\n', 'data_root must be a folder path or null, got 5'),
])
def test_bad_suite_file(tmp_path, monkeypatch, body, message):
    monkeypatch.chdir(REPO)
    path = tmp_path / 'bad.yaml'
    path.write_text(body)
    with pytest.raises(SuiteError, match=re.escape(message)):
        load_suite(str(path))


def test_data_root_placeholder(tmp_path, monkeypatch):
    """``{data_root}`` in option values: the command line's folder wins
    over the suite file's; the run spec keeps the placeholder, the commands'
    options get the folder; a run to start without a folder, or with one
    that does not exist, is refused with the fix."""
    from hdkd_mm.experiments.runner import check_data_root
    monkeypatch.chdir(REPO)
    path = tmp_path / 'd.yaml'
    body = ('name: d\nseeds: [0]\n'
            f'configs: [{{path: {MS}, name: m}}]\n'
            "options: {val_dataloader.dataset.data_root: '{data_root}', "
            "work_dir_note: '{data_root}/sub'}\n")
    path.write_text(body)
    run = load_suite(str(path)).runs[0]
    assert run.data_root is None
    with pytest.raises(SuiteError, match=re.escape(
            "run m/default/seed0: option val_dataloader."
            "dataset.data_root='{data_root}' needs the data folder, and none "
            'is given: pass run_suite --data-root DIR, or set `data_root: '
            'DIR` in the suite file.')):
        check_data_root([run])
    path.write_text(body + f'data_root: {tmp_path}\n')
    run = load_suite(str(path)).runs[0]
    assert run.command_options(run.options) == {
        'val_dataloader.dataset.data_root': str(tmp_path),
        'work_dir_note': f'{tmp_path}/sub', 'randomness.seed': 0}
    check_data_root([run])  # the folder exists
    # the command line wins; the spec never holds the folder
    run = load_suite(str(path), data_root='elsewhere/fmnist').runs[0]
    assert run.command_options(run.options)[
        'val_dataloader.dataset.data_root'] == 'elsewhere/fmnist'
    assert run.spec()['options'] == {
        'val_dataloader.dataset.data_root': '{data_root}',
        'work_dir_note': '{data_root}/sub', 'randomness.seed': 0}
    with pytest.raises(SuiteError, match=re.escape(
            "the data folder 'elsewhere/fmnist' (--data-root or the suite "
            "file's data_root) does not exist")):
        check_data_root([run])
    with pytest.raises(SuiteError, match="--data-root 'a b': the string"):
        load_suite(str(path), data_root='a b')


def test_bad_suite_file_cli(tmp_path):
    """The tool exits non-zero with the message, before running anything."""
    path = tmp_path / 'bad.yaml'
    path.write_text('name: s\nseeds: [0]\nconfigs: [configs/demo/nope.py, '
                    f'{MS}]\nwork_root: '
                    f'{tmp_path / "runs"}\n')
    code, out = run_tool('tools/experiments/run_suite.py', path,
                         check=False)
    assert code != 0
    assert ("run_suite: error: " in out and
            "config file 'configs/demo/nope.py' does not exist" in out)
    assert not (tmp_path / 'runs').exists()


def test_shipped_suites_load(monkeypatch):
    """The suites of configs/experiments load, their configs exist, and the
    Fixed-γ cell needs the HDKD run of the low-data suite."""
    monkeypatch.chdir(REPO)
    low = load_suite('configs/experiments/fashion_mnist_lowdata.yaml')
    assert len(low.labels()) == 7 and len(low.seeds) >= 3
    abl = load_suite('configs/experiments/fashion_mnist_ablation.yaml')
    assert abl.work_root == low.work_root
    fixed = [r for r in abl.runs if r.override == 'fixed']
    assert fixed and all(r.needs == 'hdkd/default/seed0' for r in fixed)
    assert any(r.run_id == 'hdkd/default/seed0' for r in low.runs)
    for r in fixed:
        assert r.options['model.loss_weights.path'].endswith(
            'hdkd/default/seed0/gamma.json')
        assert r.needs_files == [r.options['model.loss_weights.path']]
    # both suites keep their finished runs in one committed archive
    assert low.archive == abl.archive == \
        'docs/results/runs/fashion_mnist100'


def test_epoch_and_option_formatting():
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo',
                                   'hdkd_msdnet-4e_1xb128_fashion-mnist.py'))
    opts = epoch_options(cfg, 7)
    assert opts['train_cfg.max_epochs'] == 7
    assert opts['param_scheduler.model.1.end'] == 7
    assert format_options({'a': [1, 2], 'b': 'x/y.pth', 'c': 0.5,
                           'd': None}) == ['a=[1,2]', 'b=x/y.pth', 'c=0.5',
                                           'd=None']
    with pytest.raises(ValueError):
        format_options({'a': 'x,y'})


def test_bilevel_cost_follows_the_scheme_definitions(monkeypatch):
    """A run is costed as bilevel when its scheme learns γ
    (``Scheme.learned``) and γ is not frozen: a new learned scheme needs
    no list in the runner."""
    from mmengine.config import Config

    from hdkd_mm.experiments.runner import is_bilevel
    from hdkd_mm.models.losses import SCHEMES
    from hdkd_mm.models.losses.dense_kd import Scheme
    monkeypatch.setitem(SCHEMES, 'new_learned', Scheme('last', learned=True))

    def cfg(scheme, **weights):
        return Config(dict(model=dict(
            head=dict(loss=dict(type='DenseKDLoss', scheme=scheme)),
            loss_weights=weights or None)))
    assert is_bilevel(cfg('new_learned'))
    assert is_bilevel(cfg('hdkd', init='rand'))
    assert not is_bilevel(cfg('hdkd', init='fixed', path='g.json'))
    assert not is_bilevel(cfg('dbt')) and not is_bilevel(cfg('msdnet'))
    assert not is_bilevel(Config(dict(model=dict(head=dict(
        loss=dict(type='CrossEntropyLoss'))))))


def test_time_left_counts_parallel_slots_and_running_runs():
    """The progress bar's estimate. Two bilevel runs (cost 2) started
    together, one just finished after 1,800 s: 1,800 s per cost 2. Left: the
    other (about done), 10 bilevel and 3 plain runs (cost 1), on 2 slots."""
    from hdkd_mm.experiments.progress import estimate_left
    rate = 1800 / 2
    left = estimate_left([2.0] * 10 + [1.0] * 3, [(2.0, 1790.0)], rate, 2)
    assert left == pytest.approx((10 * 1800 + 3 * 900 + 10) / 2)
    # a running run past its estimate adds nothing (never negative)
    assert estimate_left([], [(2.0, 5000.0)], rate, 2) == 0.0
    # one slot: the work in sequence
    assert estimate_left([1.0, 1.0], [], 60.0, 1) == 120.0


#: The data folder options of a fashion_mnist_heldout-based config, as a
#: suite file reading its data from ``{data_root}`` gives them.
DATA_ROOT_OPTIONS = (
    'options:\n' + ''.join(
        f"  {key}.data_root: '{{data_root}}'\n" for key in (
            'train_dataloader.dataset.dataset',
            'heldout_dataloader.dataset.dataset', 'val_dataloader.dataset',
            'test_dataloader.dataset')))


def test_archive_restores_a_suite_in_a_fresh_work_root(tmp_path):
    """With ``archive``, every finished run's small files (and the learned
    γ, as ``gamma.json``) are kept; a Fixed-γ cell reads the needed run's
    ``{needs_gamma}``; after the work folders are lost (a fresh clone), the
    suite restores the runs from the archive instead of training them, and
    the tables come out the same. The runs read their data from
    ``--data-root``; the recorded specs keep ``{data_root}``, so the
    archive restores with the data somewhere else."""
    import shutil

    import torch
    hdkd = write_tiny_demo_config(tmp_path / 'conf', name='hdkd_tiny.py',
                                  per_class=(8, 4), scheme='hdkd')
    # the data the runs read: only in the folder given on the command line
    data = tmp_path / 'fmnist'
    write_fashion_mnist(str(data), per_class=(8, 4), learnable=True)
    for f in (tmp_path / 'conf').glob('*-ubyte.gz'):
        f.unlink()
    archive = tmp_path / 'archive'
    path = tmp_path / 'arch.yaml'
    path.write_text(
        'name: arch\n'
        f'work_root: {tmp_path / "runs"}\n'
        f'archive: {archive}\n'
        'seeds: [0]\n'
        'parallel: 1\n'
        'threads: 1\n'
        'epochs: 1\n'
        'data_root: null\n' + DATA_ROOT_OPTIONS +
        f'configs: [{hdkd}]\n'
        'overrides:\n'
        '  default: {}\n'
        '  fixed:\n'
        '    needs: hdkd_tiny/default/seed0\n'
        '    options: {model.loss_weights.init: fixed, '
        "model.loss_weights.path: '{needs_gamma}'}\n")
    # no data folder given: refused before anything runs
    code, out = run_tool('tools/experiments/run_suite.py', path, '--no-doc',
                         check=False)
    assert code != 0 and 'start ' not in out
    assert ("run hdkd_tiny/default/seed0: option train_dataloader.dataset."
            "dataset.data_root='{data_root}' needs the data folder, and none "
            'is given: pass run_suite --data-root DIR') in out
    out = run_tool('tools/experiments/run_suite.py', path, '--no-doc',
                   '--data-root', data, timeout=600)
    assert '0 already done, 2 to run' in out
    learned = tmp_path / 'runs' / 'hdkd_tiny' / 'default' / 'seed0'
    fixed = tmp_path / 'runs' / 'hdkd_tiny' / 'fixed' / 'seed0'
    # the commands got the folder, the recorded spec the placeholder
    for step in ('train', 'eval'):
        log = (learned / 'logs' / f'{step}.log').read_text()
        assert f'val_dataloader.dataset.data_root={data} ' in log
    spec = json.loads((archive / 'hdkd_tiny/default/seed0/run.json')
                      .read_text())['spec']
    assert spec['options']['test_dataloader.dataset.data_root'] == \
        '{data_root}'
    # gamma.json names every objective of the 2-exit HDKD model with the
    # final γ of the checkpoint
    gamma = json.loads((learned / 'gamma.json').read_text())
    assert list(gamma) == ['ce1', 'ce2', 'kd2-1']
    final = torch.load(learned / 'final.pth', map_location='cpu',
                       weights_only=False)['state_dict']
    assert torch.equal(final['loss_weights.gamma'].double(),
                       torch.tensor(list(gamma.values()), dtype=torch.float64))
    # the fixed cell trained with exactly that γ (float32), frozen
    frozen = torch.load(fixed / 'final.pth', map_location='cpu',
                        weights_only=False)['state_dict']
    assert torch.equal(frozen['loss_weights.gamma'],
                       final['loss_weights.gamma'])
    for run in ('hdkd_tiny/default/seed0', 'hdkd_tiny/fixed/seed0'):
        for name in ('run.json', 'result.json', 'timing.json',
                     'anytime.json', 'train_split.json',
                     'budgeted/budgeted.json', 'gamma.json'):
            assert (archive / run / name).is_file(), (run, name)
        assert not list((archive / run).rglob('*.pth'))
    # the learned run's γ trajectory is archived (one record per logged
    # iteration, γ keys only); the frozen one logs γ too
    records = [json.loads(line) for line in
               (archive / 'hdkd_tiny/default/seed0/scalars.json')
               .read_text().splitlines()]
    assert records and all(set(r) == {'iter', 'gamma/ce1', 'gamma/ce2',
                                      'gamma/kd2-1'} for r in records)
    out_dir = tmp_path / 'runs' / 'suites' / 'arch'
    table = (out_dir / 'anytime_top1.md').read_text()
    # γ's travel: the learned run only (the frozen one cannot move), from
    # the config's DS-like init to the archived final γ
    travel = (out_dir / 'gamma_travel.md').read_text().splitlines()
    assert len(travel) == 3 and travel[2].startswith('| hdkd_tiny | 0 | '
                                                     'ds_like | ')
    init = {'ce1': 1.0, 'ce2': 1.0, 'kd2-1': 1.0}  # DS-like, 2 exits
    l1 = sum(abs(gamma[k] - v) for k, v in init.items())
    assert f'| {l1:.3f} |' in travel[2]

    # A fresh clone on another machine: the work folders are gone, the
    # archive is there, the data lie elsewhere (nothing to train: the
    # folder is not even read).
    shutil.rmtree(tmp_path / 'runs')
    out = run_tool('tools/experiments/run_suite.py', path, '--no-doc',
                   '--data-root', tmp_path / 'elsewhere')
    assert 'restored 2 finished run(s)' in out
    assert '2 already done, 0 to run' in out and 'start ' not in out
    assert (out_dir / 'anytime_top1.md').read_text() == table
    assert (out_dir / 'gamma_hdkd_tiny.png').is_file()
    assert not (learned / 'final.pth').exists()

    # An archived run made by another spec is refused, not reused.
    shutil.rmtree(tmp_path / 'runs')
    spec_file = archive / 'hdkd_tiny/default/seed0/run.json'
    info = json.loads(spec_file.read_text())
    info['spec']['options']['model.head.loss.temperature'] = 2.0
    spec_file.write_text(json.dumps(info))
    code, out = run_tool('tools/experiments/run_suite.py', path, '--no-doc',
                         check=False)
    assert code != 0 and 'archived run' in out and 'another run spec' in out
    # ... and so is one trained with another version of its config (same
    # path and options, a setting changed in the file)
    info['spec']['options'].pop('model.head.loss.temperature')
    spec_file.write_text(json.dumps(info))
    assert info['config_digest']
    with open(hdkd, 'a') as f:
        f.write('optim_wrapper = dict(optimizer=dict(lr=0.02))\n')
    code, out = run_tool('tools/experiments/run_suite.py', path, '--no-doc',
                         check=False)
    assert code != 0 and 'trained with another version of' in out
    assert 'resolved config digest' in out


def test_gamma_travel_adds_up_the_logged_path():
    from hdkd_mm.experiments.gamma import gamma_travel
    init = {'ce1': 1.0, 'kd2-1': 0.5}
    logged = [{'iter': 1, 'gamma/ce1': 1.5, 'gamma/kd2-1': 0.5},
              {'iter': 2, 'gamma/ce1': 1.0, 'gamma/kd2-1': 0.25}]
    t = gamma_travel(init, {'ce1': 1.25, 'kd2-1': 0.25}, logged)
    assert t['l1'] == pytest.approx(0.25 + 0.25)
    assert t['relative'] == pytest.approx(0.5 / 1.5)
    # 1 → 1.5 → 1.0 → 1.25 on ce1, 0.5 → 0.5 → 0.25 → 0.25 on kd2-1
    assert t['path'] == pytest.approx(0.5 + 0.5 + 0.25 + 0.25)
    assert (t['largest'], t['largest_change']) in (('ce1', 0.25),
                                                   ('kd2-1', -0.25))


def test_sync_archive_keeps_a_digest_added_to_the_archive(tmp_path):
    """A run folder whose result.json lacks the ``config_digest`` that was
    later added to its archived copy is the same result: the sync leaves
    the archive alone. A folder with another result is archived again."""
    import types

    from hdkd_mm.experiments.archive import sync_archive
    from hdkd_mm.experiments.records import read_json, write_json
    run_dir = tmp_path / 'runs' / 'm' / 'default' / 'seed0'
    archive = tmp_path / 'archive'
    run = types.SimpleNamespace(run_id='m/default/seed0',
                                run_dir=str(run_dir))
    result = dict(run_id=run.run_id, exits=[dict(exit=1, top1=80.0)])
    kept = archive / run.run_id
    run_dir.mkdir(parents=True)
    kept.mkdir(parents=True)
    write_json(str(run_dir / 'result.json'), result)
    write_json(str(run_dir / 'run.json'), dict(run_id=run.run_id))
    write_json(str(kept / 'result.json'), dict(result, config_digest='ab'))
    write_json(str(kept / 'run.json'),
               dict(run_id=run.run_id, config_digest='ab'))
    logs = []
    sync_archive([run], str(archive), log=logs.append)
    assert logs == []
    assert read_json(str(kept / 'result.json'))['config_digest'] == 'ab'
    assert read_json(str(kept / 'run.json'))['config_digest'] == 'ab'
    # another result (or another digest) is a difference
    write_json(str(run_dir / 'result.json'),
               dict(result, exits=[dict(exit=1, top1=81.0)]))
    sync_archive([run], str(archive), log=logs.append)
    assert logs and 'archived 1 finished run' in logs[0]
    assert read_json(str(kept / 'result.json'))['exits'][0]['top1'] == 81.0


def _placeholder_configs(tmp_path):
    """Config files that only need to exist (nothing is trained)."""
    paths = [tmp_path / 'msdnet_tiny.py', tmp_path / 'dbt_tiny.py']
    for path in paths:
        path.write_text('# never trained in this test\n')
    return [str(p) for p in paths]


def _write_kept_run(root, run_id, top1, train_s=600.0):
    folder = root / run_id
    folder.mkdir(parents=True)
    (folder / 'result.json').write_text(json.dumps(
        dict(run_id=run_id, test_top1=top1, train_wall_s=train_s)))
    (folder / 'anytime.json').write_text(json.dumps(
        dict(exits=[dict(exit=k + 1, top1=v) for k, v in enumerate(top1)])))


def test_rerun_table_compares_runs_and_claims(tmp_path):
    """compare_reruns: the same runs trained twice, per run and per claim
    (the claim's paired difference from each, the kept runs' verdict)."""
    from hdkd_mm.experiments.report import collect_from
    from hdkd_mm.experiments.tables import rerun_table
    suite = load_suite(_write_suite(tmp_path, _placeholder_configs(tmp_path)))
    kept, rerun = tmp_path / 'kept', tmp_path / 'rerun'
    _write_kept_run(kept, 'msdnet_tiny/default/seed0', [80.0, 84.0])
    _write_kept_run(kept, 'dbt_tiny/default/seed0', [82.5, 84.5])
    _write_kept_run(rerun, 'msdnet_tiny/default/seed0', [81.0, 83.0], 300.0)
    _write_kept_run(rerun, 'dbt_tiny/default/seed0', [80.25, 84.5], 300.0)
    _write_kept_run(rerun, 'other/default/seed0', [1.0, 1.0])  # not a run
    table = rerun_table(suite, collect_from(suite, str(kept)),
                        collect_from(suite, str(rerun)))
    rows = {line.split('|')[1].strip(): [c.strip() for c in
                                         line.strip('|').split('|')]
            for line in table.splitlines() if line.startswith('| ')}
    assert rows['msdnet_tiny/default/seed0'][1:] == [
        '80.00', '81.00', '84.00', '83.00', '1.00', '10.0 → 5.0']
    assert rows['dbt_tiny/default/seed0'][5] == '2.25'
    assert 'other/default/seed0' not in rows
    assert 'Largest change of an exit: 2.25 points over 2 run(s).' in table
    # the claim (dbt − msdnet at the first exit): +2.50 kept, −0.75 re-run;
    # one kept seed gives no interval, so there is no kept verdict yet
    assert rows['DBT lifts exit 1'][3:] == ['+2.50', '-0.75', 'one seed']


def test_compare_reruns_tool_names_a_missing_folder(tmp_path):
    suite = _write_suite(tmp_path, _placeholder_configs(tmp_path))
    with pytest.raises(SystemExit, match='has no `archive`'):
        _compare_main([str(suite), str(tmp_path)])
    with pytest.raises(SystemExit, match='re-run folder .*nowhere'):
        _compare_main([str(suite), str(tmp_path / 'nowhere'),
                       '--kept', str(tmp_path)])


def _compare_main(argv):
    load_tool('tools/experiments/compare_reruns.py').main(argv)
