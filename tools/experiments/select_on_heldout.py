"""Choose between a few training set-ups on the held-out split only, by a
rule written in the selection file before any run (see
``hdkd_mm/experiments/selection.py`` for the file format and the rules).

    python tools/experiments/select_on_heldout.py SELECTION.yaml \
        [--data-root DIR] [--threads T] [--out FILE.md] [--only NAME]

Trains the candidates that have not been trained yet (resumable), scores
each exit on the held-out images, prints the table and the choice, and
writes ``WORK_ROOT/selection.json`` (and the table to ``--out``).
``--only NAME`` trains that candidate alone and stops (start one process per
candidate to train them side by side; then run without ``--only``).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

from hdkd_mm.experiments.selection import (load_selection,  # noqa: E402
                                           run_selection, selection_table,
                                           train_candidate)
from hdkd_mm.experiments.suite import SuiteError  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('selection', help='selection file (.yaml)')
    parser.add_argument('--data-root', help='fills {data_root} in options')
    parser.add_argument('--threads', type=int, default=1,
                        help='OpenMP threads of each training run')
    parser.add_argument('--out', help='also write the table here (.md)')
    parser.add_argument('--only', metavar='NAME',
                        help='train this candidate only, then stop')
    args = parser.parse_args(argv)
    try:
        sel = load_selection(args.selection, args.data_root)
    except SuiteError as err:
        sys.exit(f'error: {err}')
    if args.only and args.only not in sel['candidates']:
        sys.exit(f'error: --only {args.only!r} is not a candidate of '
                 f"{args.selection} ({sorted(sel['candidates'])}).")
    try:  # a failed training names its log; a busy folder, its lock
        if args.only:
            train_candidate(sel, args.only, threads=args.threads)
            return
        result = run_selection(sel, threads=args.threads)
    except RuntimeError as err:
        sys.exit(f'error: {err}')
    text = (f"{selection_table(result)}\n\nRule: {result['rule']}; choice: "
            f"**{result['choice']}** ({result['why']}).\n")
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text)


if __name__ == '__main__':
    main()
