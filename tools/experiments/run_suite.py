"""Run an experiment suite: every (config × override set × seed) run of a
suite file, N at a time, then the per-suite tables and plots.

    python tools/experiments/run_suite.py SUITE.yaml [--parallel N]
        [--threads T] [--only PATTERN ...] [--dry-run] [--report-only]
        [--doc docs/results.md | --no-doc] [--data-root DIR]

Finished runs (``RUN/result.json``) are skipped, an interrupted run resumes
from its last checkpoint, so the same command continues a suite across
sessions. The suite file format is documented in
``hdkd_mm/experiments/suite.py``; the outputs in
``hdkd_mm/experiments/report.py``.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

from hdkd_mm.experiments.suite import SuiteError, load_suite  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('suite', help='suite file (.yaml/.yml/.py)')
    parser.add_argument('--parallel', type=int,
                        help='runs at a time (default: the suite\'s)')
    parser.add_argument('--threads', type=int,
                        help='OpenMP threads per run (default: the suite\'s,'
                        ' else CPU cores // parallel)')
    parser.add_argument('--only', nargs='+', metavar='PATTERN',
                        help='run only the runs whose id (CONFIG_STEM/'
                        'OVERRIDE/seedK) or cell label matches one of these '
                        'shell patterns, e.g. "hdkd/*/seed0"; the report '
                        'then covers those runs')
    parser.add_argument('--dry-run', action='store_true',
                        help='list the runs and their state, run nothing')
    parser.add_argument('--report-only', action='store_true',
                        help='no training: tables from the finished runs')
    parser.add_argument('--doc', help='fill this document\'s blocks marked '
                        '<!-- BEGIN suite:NAME/FILE --> (default: the '
                        'suite\'s `publish`, if any)')
    parser.add_argument('--no-doc', action='store_true',
                        help='do not update the suite\'s `publish` document')
    parser.add_argument('--data-root', metavar='DIR',
                        help='the data folder, put in place of {data_root} '
                        'in the suite\'s options (wins over the suite file\'s '
                        '`data_root`); the recorded run specs keep the '
                        'placeholder')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        suite = load_suite(args.suite, data_root=args.data_root)
    except SuiteError as err:
        sys.exit(f'run_suite: error: {err}')
    if args.parallel is not None:
        if args.parallel < 1:
            sys.exit('run_suite: error: --parallel must be >= 1')
        suite.parallel = args.parallel
        if args.threads is None:
            import os
            suite.threads = max(1, (os.cpu_count() or 1) // args.parallel)
    if args.threads is not None:
        if args.threads < 1:
            sys.exit('run_suite: error: --threads must be >= 1')
        suite.threads = args.threads
    if args.only:
        import fnmatch
        suite.runs = [r for r in suite.runs if any(
            fnmatch.fnmatchcase(r.run_id, p) or fnmatch.fnmatchcase(r.label, p)
            for p in args.only)]
        if not suite.runs:
            sys.exit(f'run_suite: error: --only {" ".join(args.only)} '
                     'matches no run of the suite.')
    from hdkd_mm.experiments.report import publish, write_report
    from hdkd_mm.experiments.progress import fmt_duration
    from hdkd_mm.experiments.runner import plan_runs, run_suite
    start = time.time()
    try:
        if args.report_only:
            plan_runs(suite)
            results = {}
        else:
            results = run_suite(suite, dry_run=args.dry_run)
    except SuiteError as err:
        sys.exit(f'run_suite: error: {err}')
    if args.dry_run:
        return
    failed = {k: v['error'] for k, v in results.items() if 'error' in v}
    files = write_report(suite, failed)
    for name, path in files.items():
        print(f'wrote {path}')
    # a partial (--only) report fills the document only when asked to
    doc = args.doc or (None if args.no_doc or args.only else suite.publish)
    if doc and files:
        publish(suite, files, doc)
    print(f'suite {suite.name}: done in {fmt_duration(time.time() - start)}'
          + (f'; {len(failed)} run(s) FAILED: {", ".join(failed)}'
             if failed else ''))
    if failed:
        sys.exit(1)


if __name__ == '__main__':
    main()
