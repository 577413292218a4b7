"""Real early-exit inference on the test split: later blocks run only for the
samples that are still undecided.

    python tools/analysis/early_exit_infer.py CONFIG CKPT \\
        (--thresholds FILE_OR_VALUES | --budget-json DIR/budgeted.json
         --budget-index P) [--confidence NAME] [--batch-size N] [--verify] \\
        --out FILE.json

``--thresholds``: K values, one per exit (the last is ignored; write -inf),
as ``--thresholds=0.9,0.8,-inf`` (use ``=`` when the list starts with a minus
sign) or a JSON file holding a list or ``{"thresholds": [...]}``.
``--budget-json``/``--budget-index``: the thresholds of budget p (1..39, or
``target`` for the ``--budget`` result) of this config's model in a
``budgeted.json`` of tools/analysis/budgeted_eval.py.
``--confidence``: the confidence measure the thresholds were fitted with
(``max_softmax``, the default, ``entropy`` or ``margin``); a
``budgeted.json`` (or a thresholds file with ``"confidence"``) records it,
and a different ``--confidence`` is refused.

Writes per-sample ``{index, label, pred, exit, mflops}`` (exit 1-based,
mflops = cumulative cost of the exit taken), top-1/top-5, the average cost
and the wall time of the routed forward passes. ``--verify`` also runs the
full network on every batch and counts the samples whose exit or prediction
differ from the simulated evaluation (``apply_thresholds`` on the full
logits); 0 is expected. ``--fast-kernels`` runs an inference copy with
BatchNorm folded and 1×1 convolutions as ``bmm``
(:mod:`hdkd_mm.evaluation.fast_inference`); ``--verify`` then simulates on
that copy's logits.
"""
import argparse
import json
import os
import os.path as osp
import sys

from mmengine.config import DictAction

import hdkd_mm  # noqa: F401
from hdkd_mm.analysis.flops import default_input_shape, exit_costs
from hdkd_mm.evaluation.budgeted_eval import test_loader_cfg
from hdkd_mm.evaluation.early_exit_eval import evaluate_early_exit
from hdkd_mm.evaluation.thresholds import (add_threshold_args,
                                           check_threshold_args,
                                           check_thresholds,
                                           select_thresholds)
from hdkd_mm.evaluation.fast_inference import optimize_for_inference
from hdkd_mm.evaluation.inference import build_model_from_checkpoint
from hdkd_mm.launch import load_config, prepare_config
from hdkd_mm.models.exits import UnsupportedBackboneError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    add_threshold_args(parser)
    parser.add_argument('--batch-size', type=int,
                        help='test batch size (default: the config\'s)')
    parser.add_argument('--verify', action='store_true',
                        help='compare with the simulated evaluation')
    parser.add_argument('--fast-kernels', action='store_true',
                        help='run an inference copy with BatchNorm folded '
                        'and 1x1 convolutions as bmm (hdkd_mm.evaluation.'
                        'fast_inference): the same function to float32 '
                        'rounding, faster on CPU')
    parser.add_argument('--out', required=True, help='JSON file to write')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    check_threshold_args(parser, args)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error('--batch-size must be >= 1')
    return args


def run(args) -> dict:
    thresholds, confidence, _ = select_thresholds(
        args.thresholds, args.budget_json, args.budget_index, args.config,
        args.checkpoint, args.confidence)
    cfg = prepare_config(load_config(args.config, args.cfg_options),
                         args.config)
    loader = test_loader_cfg(cfg, args.config)
    if args.batch_size is not None:
        loader['batch_size'] = args.batch_size
    model = build_model_from_checkpoint(cfg, args.checkpoint)
    check_thresholds(thresholds, model.num_exits)
    costs = [r['mflops'] for r in exit_costs(model, default_input_shape(cfg))]
    if args.fast_kernels:
        model = optimize_for_inference(model)
    result = evaluate_early_exit(model, loader, thresholds, costs,
                                 verify=args.verify, confidence=confidence)
    return dict(config=args.config, checkpoint=args.checkpoint,
                fast_kernels=args.fast_kernels, **result)


def main(argv=None):
    args = parse_args(argv)
    try:
        result = run(args)
    except (ValueError, FileNotFoundError, UnsupportedBackboneError) as err:
        sys.exit(f'early_exit_infer: error: {err}')
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=1)
    shares = ' / '.join(f'{s:.3f}' for s in result['exit_shares'])
    ratio = 100 * result['mflops'] / result['full_mflops']
    print(f"early exit ({result['confidence']} confidence) on "
          f"{result['num_samples']} test images "
          f"(batch {result['batch_size']}): top-1 {result['top1']:.2f} %, "
          f"top-5 {result['top5']:.2f} %, {result['mflops']:.3f} MFLOPs per "
          f"image on average ({ratio:.1f} % of the full "
          f"{result['full_mflops']:.3f}), exit shares {shares}, "
          f"{result['ms_per_image']:.3f} ms per image "
          f"({result['wall_time_s']:.2f} s of forward passes)")
    if 'verify' in result:
        v = result['verify']
        print(f"verify against the simulated evaluation: "
              f"{v['mismatched_exits']} exits and {v['mismatched_preds']} "
              f"predictions differ")
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
