"""Anytime prediction: every exit's top-1/top-5 on the test split and its
cumulative cost.

    python tools/analysis/anytime_eval.py CONFIG CHECKPOINT --out FILE.json

writes ``{"config": ..., "checkpoint": ..., "exits": [{"exit": k, "top1": ...,
"top5": ..., "mflops": ...}, ...]}`` and prints a markdown table (the
library's :mod:`hdkd_mm.evaluation.anytime`).
"""
import argparse
import json
import os
import os.path as osp

from mmengine.config import DictAction

from hdkd_mm.evaluation.anytime import anytime_eval, anytime_table


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='JSON file to write')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    result = anytime_eval(args.config, args.checkpoint, args.cfg_options)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=2)
    print(anytime_table(result['exits']))


if __name__ == '__main__':
    main()
