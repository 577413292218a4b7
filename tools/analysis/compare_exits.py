"""Anytime comparison table (the paper's Table 1/2 layout) from the anytime
results of several runs.

    python tools/analysis/compare_exits.py WORKDIR_OR_JSON [...] \\
        --out FILE.md [--png FILE.png] [--labels L1 L2 ...] [--metric top5]

Inputs: JSON files of ``tools/analysis/anytime_eval.py --out``, or work
directories searched recursively for them. Rows = exits with their cumulative
MFLOPs, columns = schemes; a run's scheme is the stem of the config it was
evaluated with (or its ``--labels`` entry, one per input), and several runs
of one scheme (seeds) give mean ± std (sample std). The best mean of each
row is bold. ``--png`` also plots per-exit accuracy vs MFLOPs per scheme with
error bars.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

from hdkd_mm.analysis.compare import (compare_table, load_runs,  # noqa: E402
                                      plot_compare, summarize)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('inputs', nargs='+', metavar='WORKDIR_OR_JSON')
    parser.add_argument('--out', required=True, help='markdown file')
    parser.add_argument('--png', help='plot file')
    parser.add_argument('--labels', nargs='+',
                        help='one scheme label per input')
    parser.add_argument('--metric', default='top1', choices=['top1', 'top5'])
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        runs = load_runs(args.inputs, args.labels)
        summary = summarize(runs, args.metric)
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f'compare_exits: error: {err}')
    table = compare_table(summary, args.metric)
    for path in (args.out, args.png):
        if path:
            os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(args.out, 'w') as f:
        f.write(table + '\n')
    if args.png:
        plot_compare(summary, args.png, args.metric)
    print(table)
    print(f'\n{len(runs)} runs, {len(summary)} schemes; wrote {args.out}'
          + (f' and {args.png}' if args.png else ''))


if __name__ == '__main__':
    main()
