"""Compare a suite's kept runs with the same runs trained again (another
machine, another library version): per-run accuracies and the claims'
paired differences, side by side, as a markdown table.

    python tools/experiments/compare_reruns.py SUITE.yaml RERUN_DIR
        [--kept DIR] [--out FILE]

RERUN_DIR holds run folders laid out as the suite's archive
(``<config>/<override>/seed<k>/`` with ``result.json`` and
``anytime.json``): a re-run's ``work_root`` or its archive. ``--kept``
defaults to the suite's ``archive``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

from hdkd_mm.experiments.report import collect_from  # noqa: E402
from hdkd_mm.experiments.suite import SuiteError, load_suite  # noqa: E402
from hdkd_mm.experiments.tables import rerun_table  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 3)[3])
    parser.add_argument('suite', help='suite file (.yaml/.yml/.py)')
    parser.add_argument('rerun', help='folder of the re-run runs')
    parser.add_argument('--kept', help='folder of the kept runs (default: '
                        "the suite's archive)")
    parser.add_argument('--out', help='also write the table to this file')
    args = parser.parse_args(argv)
    try:
        suite = load_suite(args.suite)
    except SuiteError as err:
        sys.exit(f'error: {err}')
    kept_dir = args.kept or suite.archive
    if not kept_dir:
        sys.exit(f'error: {args.suite} has no `archive`; give the kept runs '
                 'with --kept DIR.')
    for what, folder in (('kept', kept_dir), ('re-run', args.rerun)):
        if not osp.isdir(folder):
            sys.exit(f'error: the {what} folder {folder} does not exist.')
    table = rerun_table(suite, collect_from(suite, kept_dir),
                        collect_from(suite, args.rerun))
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')


if __name__ == '__main__':
    main()
