"""Training curves of a run: γ per objective over iterations (harmonized
schemes) and per-exit validation top-1 over epochs.

    python tools/analysis/plot_run.py WORKDIR --out DIR

Reads ``vis_data/scalars.json`` of the latest training run in WORKDIR (or
the run folder / scalars.json given) and writes ``DIR/gamma.png`` (skipped,
with a message, when the run logged no ``gamma/*``: fixed-weight schemes)
and ``DIR/val_top1.png``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

from hdkd_mm.analysis.run_plots import plot_run  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('workdir', help='work dir, run folder or '
                        'scalars.json')
    parser.add_argument('--out', required=True, help='output directory')
    args = parser.parse_args(argv)
    try:
        written = plot_run(args.workdir, args.out)
    except FileNotFoundError as err:
        sys.exit(f'plot_run: error: {err}')
    print(f"read {written.pop('scalars')}")
    for path in written.values():
        print(f'wrote {path}')


if __name__ == '__main__':
    main()
