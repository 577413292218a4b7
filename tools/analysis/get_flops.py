"""Per-exit cumulative cost (MFLOPs, params) of a multi-exit model config, in
the MSDNet reference convention (see ``hdkd_mm/analysis/flops.py``).

    python tools/analysis/get_flops.py CONFIG [--shape H [W]] \
        [--cfg-options ...] --out FILE.json

writes ``{"config": ..., "input_shape": [C, H, W], "exits": [{"exit": 1,
"mflops": ..., "params_m": ...}, ...]}`` and prints a markdown table. The
input size is ``--shape`` or else the config's (the last fixed-size transform
of its test pipeline, 32×32 for a CIFAR test set); a config that fixes none
(e.g. a model-only config) needs ``--shape``. The exits' cost markers come
from the backbone's exit protocol (hdkd_mm/models/exits).
"""
import argparse
import json
import os
import os.path as osp

import torch
from mmengine.config import DictAction

import hdkd_mm  # noqa: F401  (registers the modules)
from hdkd_mm.analysis.flops import costs_table, default_input_shape, exit_costs
from hdkd_mm.launch import load_config


def build_model(model_cfg):
    """Build on the meta device (shapes only: fast, no memory) and fall back
    to the CPU for modules that cannot be built or run there."""
    from mmpretrain.registry import MODELS
    try:
        with torch.device('meta'):
            return MODELS.build(model_cfg), True
    except Exception:  # noqa: BLE001 - any failure: retry on the CPU
        return MODELS.build(model_cfg), False


def get_flops(config: str, shape=None, cfg_options=None) -> dict:
    cfg = load_config(config, cfg_options)
    if shape:
        h, w = (shape[0], shape[0]) if len(shape) == 1 else shape
        channels = (cfg.model.get('backbone') or {}).get('in_channels') or 3
        input_shape = (int(channels), int(h), int(w))
    else:
        input_shape = default_input_shape(cfg)
    model, on_meta = build_model(cfg.model)
    try:
        exits = exit_costs(model, input_shape)
    except (RuntimeError, NotImplementedError):
        if not on_meta:
            raise
        from mmpretrain.registry import MODELS
        exits = exit_costs(MODELS.build(cfg.model), input_shape)
    exits = [dict(exit=r['exit'], mflops=round(r['mflops'], 4),
                  params_m=round(r['params_m'], 4)) for r in exits]
    return dict(config=config, input_shape=list(input_shape), exits=exits)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs='+', metavar='H [W]',
                        help='input height (and width); default: from the '
                        'config')
    parser.add_argument('--out', required=True, help='JSON file to write')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    if args.shape and len(args.shape) > 2:
        parser.error('--shape takes H or H W')
    try:
        result = get_flops(args.config, args.shape, args.cfg_options)
    except ValueError as err:
        parser.exit(2, f'get_flops: error: {err}\n')
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=2)
    c, h, w = result['input_shape']
    print(f'Input {c}x{h}x{w}, cumulative cost per exit (MSDNet convention):')
    print(costs_table(result['exits']))


if __name__ == '__main__':
    main()
