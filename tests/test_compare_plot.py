"""tools/analysis/compare_exits.py (anytime table, mean ± std over seeds) on
fake anytime JSONs, and tools/analysis/plot_run.py on a fake
scalars.json."""
import json
import os
import os.path as osp

import numpy as np
import pytest

from hdkd_mm.analysis.compare import (compare_table, load_runs,
                                      plot_compare, summarize)
from hdkd_mm.analysis.run_plots import (find_scalars, gamma_series,
                                        plot_run, read_scalars,
                                        val_top1_series)
from tool_helpers import run_tool

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
MFLOPS = [6.86, 14.35, 27.29]
# scheme -> seed -> per-exit (top1, top5)
VALUES = {
    'msdnet_cifar100': {1: [(60, 80), (66, 85), (70, 90)],
                        2: [(62, 84), (67, 85), (71, 92)]},
    'hdkd_cifar100': {1: [(63, 81), (69, 88), (72, 91)],
                      2: [(65, 83), (70, 88), (72, 93)]},
}


def write_anytime(path, config, rows):
    os.makedirs(osp.dirname(path), exist_ok=True)
    exits = [dict(exit=k + 1, top1=t1, top5=t5, mflops=MFLOPS[k])
             for k, (t1, t5) in enumerate(rows)]
    with open(path, 'w') as f:
        json.dump(dict(config=f'configs/x/{config}.py', checkpoint='c.pth',
                       num_samples=100, exits=exits), f)


@pytest.fixture
def runs_dir(tmp_path):
    for scheme, seeds in VALUES.items():
        for seed, rows in seeds.items():
            work = tmp_path / f'{scheme}_seed{seed}'
            write_anytime(str(work / 'anytime.json'), scheme, rows)
            # other files of a work dir are skipped
            (work / 'vis_data').mkdir()
            (work / 'vis_data' / 'scalars.json').write_text(
                '{"loss": 1, "step": 1}\n{"loss": 0.5, "step": 2}\n')
            (work / 'budgeted.json').write_text('{"models": []}')
    return tmp_path


def test_mean_and_std_over_seeds(runs_dir):
    runs = load_runs([str(runs_dir)])
    assert len(runs) == 4
    summary = summarize(runs, 'top1')
    assert list(summary) == ['hdkd_cifar100', 'msdnet_cifar100']  # sorted
    s = summary['msdnet_cifar100']
    assert s['n'] == 2 and s['mflops'] == MFLOPS
    assert s['mean'] == [61, 66.5, 70.5]
    np.testing.assert_allclose(s['std'], [np.sqrt(2), np.sqrt(0.5),
                                          np.sqrt(0.5)])
    table = compare_table(summary, 'top1')
    lines = table.splitlines()
    assert '| exit | MFLOPs | hdkd_cifar100 (n=2) | msdnet_cifar100 (n=2) |' \
        in lines
    assert '| 1 | 6.86 | **64.00 ± 1.41** | 61.00 ± 1.41 |' in lines
    assert '| 2 | 14.35 | **69.50 ± 0.71** | 66.50 ± 0.71 |' in lines
    assert '| 3 | 27.29 | **72.00 ± 0.00** | 70.50 ± 0.71 |' in lines
    summary5 = summarize(runs, 'top5')
    assert summary5['hdkd_cifar100']['mean'] == [82, 88, 92]


def test_cli_with_labels_metric_and_png(runs_dir, tmp_path):
    inputs = [str(runs_dir / f'{s}_seed{seed}' / 'anytime.json')
              for s in VALUES for seed in (1, 2)]
    out, png = tmp_path / 'table.md', tmp_path / 'exits.png'
    text = run_tool('tools/analysis/compare_exits.py', *inputs, '--out', out,
                    '--png', png, '--labels', 'MSDNet', 'MSDNet', 'HDKD',
                    'HDKD', '--metric', 'top5')
    table = out.read_text()
    assert table.strip() in text
    assert '| exit | MFLOPs | MSDNet (n=2) | HDKD (n=2) |' in table
    # a tie: both bold
    assert '| 1 | 6.86 | **82.00 ± 2.83** | **82.00 ± 1.41** |' in table
    assert '| 3 | 27.29 | 91.00 ± 1.41 | **92.00 ± 1.41** |' in table
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_single_runs_and_errors(runs_dir, tmp_path):
    one = str(runs_dir / 'msdnet_cifar100_seed1' / 'anytime.json')
    table = compare_table(summarize(load_runs([one])))
    assert '| 1 | 6.86 | 60.00 |' in table  # no ± and no bold for one run
    png = tmp_path / 'one.png'
    plot_compare(summarize(load_runs([one])), str(png))
    assert png.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match='one label per input'):
        load_runs([one], labels=['a', 'b'])
    bad = tmp_path / 'other' / 'anytime.json'
    write_anytime(str(bad), 'msdnet_cifar100', [(1, 2), (3, 4)])
    with pytest.raises(ValueError, match='not seeds of one scheme'):
        summarize(load_runs([one, str(bad)]))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match='No anytime results'):
        load_runs([str(empty)])
    with pytest.raises(ValueError, match='not an anytime result'):
        load_runs([str(runs_dir / 'msdnet_cifar100_seed1' / 'budgeted.json')])


# --------------------------------------------------------------------------
# plot_run
# --------------------------------------------------------------------------
GAMMA_NAMES = ['ce1', 'ce2', 'ce3', 'kd2-1', 'kd3-1', 'kd3-2']


def write_scalars(path, with_gamma=True, epochs=3, iters_per_epoch=4):
    os.makedirs(osp.dirname(path), exist_ok=True)
    lines = []
    for epoch in range(1, epochs + 1):
        for i in range(iters_per_epoch):
            it = (epoch - 1) * iters_per_epoch + i + 1
            rec = dict(lr=0.1, loss=3.0 / it, epoch=epoch, iter=it, step=it)
            if with_gamma:
                rec.update({f'gamma/{n}': 1.0 + 0.01 * it * j
                            for j, n in enumerate(GAMMA_NAMES)})
                rec['gamma_skipped'] = 0.0
            lines.append(json.dumps(rec))
        lines.append(json.dumps({'exit1/top1': 50.0 + epoch,
                                 'exit1/top5': 90.0,
                                 'exit2/top1': 55.0 + epoch,
                                 'exit3/top1': 60.0 + epoch,
                                 'step': epoch}))
    lines.append('{"loss": 0.1, "iter": 9')  # a line cut by a crash
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def test_plot_run_gamma_and_val_top1(tmp_path):
    work = tmp_path / 'work'
    train = work / '20260101_000000' / 'vis_data' / 'scalars.json'
    write_scalars(str(train))
    # a later tools/test.py run in the same work dir: no training lines
    test_run = work / '20260102_000000' / 'vis_data' / 'scalars.json'
    os.makedirs(test_run.parent)
    test_run.write_text('{"exit1/top1": 10.0, "step": 0}\n')
    os.utime(test_run, (2e9, 2e9))
    assert find_scalars(str(work)) == str(train)

    records = read_scalars(str(train))
    assert len(records) == 3 * 4 + 3
    gammas = gamma_series(records)
    assert list(gammas) == GAMMA_NAMES
    assert gammas['kd2-1'][0] == list(range(1, 13))
    assert gammas['ce2'][1][:2] == [1.01, 1.02]
    vals = val_top1_series(records)
    assert list(vals) == [1, 2, 3]
    assert vals[2] == ([1, 2, 3], [56.0, 57.0, 58.0])

    out = tmp_path / 'plots'
    text = run_tool('tools/analysis/plot_run.py', work, '--out', out)
    assert str(train) in text
    for name in ('gamma.png', 'val_top1.png'):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC


def test_plot_run_without_gamma(tmp_path):
    scalars = tmp_path / 'run' / 'vis_data' / 'scalars.json'
    write_scalars(str(scalars), with_gamma=False)
    messages = []
    written = plot_run(str(tmp_path / 'run'), str(tmp_path / 'out'),
                       log=messages.append)
    assert 'gamma' not in written and 'no gamma/* values' in messages[0]
    assert not (tmp_path / 'out' / 'gamma.png').exists()
    assert (tmp_path / 'out' / 'val_top1.png').read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(FileNotFoundError, match='No vis_data/scalars.json'):
        find_scalars(str(tmp_path / 'out'))
