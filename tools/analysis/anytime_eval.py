"""Anytime prediction: every exit's top-1/top-5 on the test split and its
cumulative cost.

    python tools/analysis/anytime_eval.py CONFIG CHECKPOINT --out FILE.json

writes ``{"config": ..., "checkpoint": ..., "exits": [{"exit": k, "top1": ...,
"top5": ..., "mflops": ...}, ...]}`` and prints a markdown table.
"""
import argparse
import json
import os
import os.path as osp

from mmengine.config import DictAction

import hdkd_mm  # noqa: F401
from hdkd_mm.evaluation.inference import per_exit_results
from hdkd_mm.launch import load_config, prepare_config


def anytime_table(exits) -> str:
    lines = ['| exit | MFLOPs | top-1 (%) | top-5 (%) |',
             '|---:|---:|---:|---:|']
    for row in exits:
        lines.append(f"| {row['exit']} | {row['mflops']:.2f} | "
                     f"{row['top1']:.2f} | {row['top5']:.2f} |")
    return '\n'.join(lines)


def anytime_eval(config: str, checkpoint: str, cfg_options=None) -> dict:
    cfg = prepare_config(load_config(config, cfg_options), config)
    exits, num_samples = per_exit_results(cfg, checkpoint)
    return dict(config=config, checkpoint=checkpoint,
                num_samples=num_samples, exits=exits)


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
