"""Every evaluation of one finished run, in one process (one import of the
stack instead of three):

* ``RUN/anytime.json``: :func:`hdkd_mm.evaluation.anytime.anytime_eval`
  (test split, per exit), what ``tools/analysis/anytime_eval.py`` runs;
* ``RUN/train_split.json``: :func:`~hdkd_mm.experiments.train_split.
  train_split_eval` (the training subset through the test pipeline);
* ``RUN/budgeted/budgeted.json`` (+ png, cached logits):
  :func:`hdkd_mm.evaluation.budgeted_eval.budgeted_eval`, what
  ``tools/analysis/budgeted_eval.py`` runs.

    python -m hdkd_mm.experiments.evaluate CONFIG CKPT --run-dir RUN \\
        [--cfg-options ...]

Outputs that exist already are kept (an interrupted evaluation continues).
"""
import argparse
import copy
import os
import os.path as osp

from .records import write_json


def evaluate_run(config: str, checkpoint: str, run_dir: str,
                 cfg_options=None, log=print) -> None:
    import hdkd_mm  # noqa: F401
    from hdkd_mm.evaluation.anytime import anytime_eval, anytime_table
    from hdkd_mm.evaluation.budgeted_eval import budgeted_eval

    from .train_split import train_split_eval
    os.makedirs(run_dir, exist_ok=True)
    out = osp.join(run_dir, 'anytime.json')
    if not osp.isfile(out):
        result = anytime_eval(config, checkpoint, copy.deepcopy(cfg_options))
        write_json(out, result)
        log(anytime_table(result['exits']))
    out = osp.join(run_dir, 'train_split.json')
    if not osp.isfile(out):
        result = train_split_eval(config, checkpoint,
                                  copy.deepcopy(cfg_options))
        write_json(out, result)
        log('train split top-1: ' + ' '.join(
            f"{e['top1']:.2f}" for e in result['train_exits']))
    budget_dir = osp.join(run_dir, 'budgeted')
    if not osp.isfile(osp.join(budget_dir, 'budgeted.json')):
        budgeted_eval([(config, checkpoint)], budget_dir,
                      cfg_options=copy.deepcopy(cfg_options), log=log)
        log(f'wrote {budget_dir}/budgeted.json')


def main(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--run-dir', required=True)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    evaluate_run(args.config, args.checkpoint, args.run_dir,
                 args.cfg_options)


if __name__ == '__main__':
    main()
