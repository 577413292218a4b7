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
from hdkd_mm.analysis.flops import default_input_shape, exit_costs
from hdkd_mm.evaluation import exit_topk_accuracy
from hdkd_mm.evaluation.inference import (build_model_from_checkpoint,
                                          collect_exit_logits)
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
    model = build_model_from_checkpoint(cfg, checkpoint)
    logits, labels = collect_exit_logits(model, cfg.test_dataloader)
    acc = exit_topk_accuracy(logits, labels, (1, 5))
    costs = exit_costs(model, default_input_shape(cfg))
    exits = [dict(exit=k + 1, top1=round(acc[k, 0].item(), 4),
                  top5=round(acc[k, 1].item(), 4),
                  mflops=round(costs[k]['mflops'], 4))
             for k in range(acc.size(0))]
    return dict(config=config, checkpoint=checkpoint,
                num_samples=int(labels.numel()), exits=exits)


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
