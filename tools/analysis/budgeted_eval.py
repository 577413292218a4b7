"""Budgeted batch classification: accuracy vs average FLOPs (MSDNet's 39
budgets, or one target cost) for one or more trained models.

    python tools/analysis/budgeted_eval.py CONFIG CKPT [CONFIG CKPT ...] \\
        --out DIR [--budget MFLOPS] [--num-budgets 39] \\
        [--confidence max_softmax|entropy|margin] [--cfg-options ...]

Per model: every exit's logits on the held-out split (the config's
``heldout_dataloader``, test pipeline, unshuffled) and on the test split,
cached in ``DIR/<config name>_logits.npz`` (reused while the config and the
checkpoint are unchanged); thresholds fitted on the held-out confidences for
each budget q = p/20 (p = 1..39) and applied to the test split. Writes
``DIR/budgeted.json`` and ``DIR/budgeted.png`` (top-1 and top-5 vs average
MFLOPs, one curve per model) and prints markdown tables. ``--budget`` also
finds, per model, the thresholds for that average cost (on the held-out
split) and reports their test accuracy and cost. ``--confidence`` chooses
the confidence measure of an exit (default ``max_softmax``, MSDNet's; also
``entropy``, the negative entropy of the softmax, and ``margin``, top-1 minus
top-2 probability); ``budgeted.json`` records it, and
``tools/analysis/early_exit_infer.py`` routes with it.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

import hdkd_mm  # noqa: F401
from hdkd_mm.evaluation.budgeted_eval import (budgeted_eval, budgets_table,
                                              target_table)
from hdkd_mm.evaluation.confidence import CONFIDENCES, DEFAULT_CONFIDENCE


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('pairs', nargs='+', metavar='CONFIG CKPT',
                        help='config and checkpoint, repeated per model')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--budget', type=float, metavar='MFLOPS',
                        help='also find the thresholds for this average '
                        'cost (MFLOPs per image)')
    parser.add_argument('--num-budgets', type=int, default=39,
                        help='budgets p = 1..N, q = p / 20 (default 39)')
    parser.add_argument('--confidence', default=DEFAULT_CONFIDENCE,
                        choices=CONFIDENCES,
                        help='confidence measure of an exit (default '
                        f'{DEFAULT_CONFIDENCE})')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides applied to every config')
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error(f'expected CONFIG CKPT pairs, got {len(args.pairs)} '
                     f'positional arguments (an odd number): '
                     f'{" ".join(args.pairs)}')
    return args


def main(argv=None):
    args = parse_args(argv)
    pairs = list(zip(args.pairs[0::2], args.pairs[1::2]))
    try:
        result = budgeted_eval(pairs, args.out, args.num_budgets,
                               args.budget, args.cfg_options,
                               confidence=args.confidence)
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f'budgeted_eval: error: {err}')
    for model in result['models']:
        print(budgets_table(model))
        print()
    if args.budget is not None:
        print(target_table(result))
        print()
    print(f"wrote {osp.join(args.out, 'budgeted.json')} and "
          f"{osp.join(args.out, 'budgeted.png')}")


if __name__ == '__main__':
    main()
