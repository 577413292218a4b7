"""Every evaluation of one finished run, in one process (one import of the
stack instead of three):

* ``RUN/anytime.json``: ``tools/analysis/anytime_eval.py``'s
  ``anytime_eval`` (test split, per exit);
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
import importlib.util
import json
import os
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool(name: str):
    """A module of ``tools/analysis`` (the tools are scripts, not a
    package)."""
    path = osp.join(REPO, 'tools', 'analysis', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'_tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dump(path: str, data) -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def evaluate_run(config: str, checkpoint: str, run_dir: str,
                 cfg_options=None, log=print) -> None:
    import hdkd_mm  # noqa: F401
    from hdkd_mm.evaluation.budgeted_eval import budgeted_eval

    from .train_split import train_split_eval
    out = osp.join(run_dir, 'anytime.json')
    if not osp.isfile(out):
        tool = _tool('anytime_eval')
        result = tool.anytime_eval(config, checkpoint,
                                   copy.deepcopy(cfg_options))
        _dump(out, result)
        log(tool.anytime_table(result['exits']))
    out = osp.join(run_dir, 'train_split.json')
    if not osp.isfile(out):
        result = train_split_eval(config, checkpoint,
                                  copy.deepcopy(cfg_options))
        _dump(out, result)
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
