"""Compare an exported early-exit model (ONNX Runtime) with the PyTorch
early exit on the test split.

    python tools/deploy/verify_export.py CONFIG CKPT DIR \\
        [--batch-size 64] [--num-samples N] [--out FILE.json]

DIR: the folder of tools/deploy/export_early_exit.py (its thresholds and
confidence measure are used on both sides). For every test batch (the
config's test pipeline): the PyTorch router
(:class:`~hdkd_mm.evaluation.early_exit.EarlyExitPredictor`) on the
data_preprocessor's output, and :class:`~hdkd_mm.deploy.OnnxEarlyExit` on
its own ``preprocess`` of the raw batch; also every exit's logits on both.
Prints, over all images: the preprocessing difference, the number of equal
exits and predictions, max |Δlogit| (absolute and relative to the largest
logit) on every exit, and each decision flip with its cause (the two
confidences against the threshold, or the two top logits for a prediction
flip at the same exit); and whether the ONNX router reproduces the
simulation on its own full-batch logits (``rows_bitwise``: whether routed
sub-batches give bitwise the full batch's logits, i.e. whether a padding
guard is needed).
"""
import argparse
import json
import os
import os.path as osp
import sys

import numpy as np
import torch

import hdkd_mm  # noqa: F401
from hdkd_mm.deploy import OnnxEarlyExit
from hdkd_mm.evaluation.budgeted import apply_thresholds
from hdkd_mm.evaluation.budgeted_eval import test_loader_cfg
from hdkd_mm.evaluation.confidence import confidence
from hdkd_mm.evaluation.early_exit import EarlyExitPredictor
from hdkd_mm.evaluation.inference import build_model_from_checkpoint
from hdkd_mm.launch import load_config, prepare_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('export_dir')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--num-samples', type=int,
                        help='stop after this many test images')
    parser.add_argument('--intra-op-threads', type=int, default=1)
    parser.add_argument('--out', help='JSON file for the counts')
    return parser.parse_args(argv)


def compare(model, onnx_model, loader, num_samples=None) -> dict:
    """Counts over the loader (see the module doc)."""
    thr = onnx_model.thresholds
    name = onnx_model.confidence_name
    predictor = EarlyExitPredictor(model, thr, onnx_model.exit_mflops,
                                   confidence=name)
    n = same_exit = same_pred = 0
    max_abs = max_rel = pre_diff = max_dconf = 0.0
    min_margin = np.inf
    own_exit = own_pred = rows_bitwise = 0
    flips = []
    for data in loader:
        raw = data['inputs']
        raw = torch.stack(raw) if isinstance(raw, list) else raw
        batch = model.data_preprocessor(data, False)
        x = batch['inputs']
        x_onnx = onnx_model.preprocess(raw.numpy())
        pre_diff = max(pre_diff, float(np.abs(x_onnx - x.numpy()).max()))
        res = predictor(x)
        out = onnx_model(x_onnx)
        with torch.inference_mode():
            full_t = torch.stack(model(x, mode='tensor'), 1).float().numpy()
        full_o = onnx_model.all_exits(x_onnx)
        diff = np.abs(full_o - full_t)
        max_abs = max(max_abs, float(diff.max()))
        max_rel = max(max_rel, float(diff.max() / np.abs(full_t).max()))
        e_t, e_o = res.exit0, out['exit'] - 1
        p_t = res.pred.numpy()
        same_exit += int((e_t == e_o).sum())
        same_pred += int((p_t == out['pred']).sum())
        conf_t = confidence(full_t, name)[0]
        conf_o = confidence(full_o, name)[0]
        # how close the decisions came: the confidences consulted (exits
        # up to the one taken, not the last) against their thresholds
        k_all = np.arange(conf_t.shape[1] - 1)
        consulted = k_all[None, :] <= e_t[:, None]
        gap = np.abs(conf_t[:, :-1] - thr[None, :-1])[consulted]
        if gap.size:
            min_margin = min(min_margin, float(gap.min()))
        max_dconf = max(max_dconf, float(np.abs(conf_o - conf_t).max()))
        # the ONNX router against the simulation on its own full logits
        sim_o = apply_thresholds(conf_o, thr)
        own_exit += int((sim_o == e_o).sum())
        own_pred += int((full_o[np.arange(len(sim_o)), sim_o].argmax(-1)
                         == out['pred']).sum())
        rows_bitwise += int((full_o[np.arange(len(e_o)), e_o]
                             == out['logits']).all(-1).sum())
        for i in np.flatnonzero((e_t != e_o) | (p_t != out['pred'])):
            k = int(min(e_t[i], e_o[i]))
            top_t = np.sort(full_t[i, k])[-2:]
            flips.append(dict(
                index=n + int(i), exit_torch=int(e_t[i]) + 1,
                exit_onnx=int(e_o[i]) + 1, pred_torch=int(p_t[i]),
                pred_onnx=int(out['pred'][i]), at_exit=k + 1,
                threshold=float(thr[k]), conf_torch=float(conf_t[i, k]),
                conf_onnx=float(conf_o[i, k]),
                top2_gap_torch=float(top_t[1] - top_t[0])))
        n += len(x)
        if num_samples and n >= num_samples:
            break
    return dict(num_samples=n, same_exits=same_exit, same_preds=same_pred,
                max_abs_logit_diff=max_abs, max_rel_logit_diff=max_rel,
                max_preprocess_diff=pre_diff, flips=flips,
                max_conf_diff=max_dconf,
                min_conf_threshold_gap=float(min_margin),
                onnx_router_vs_own_simulation=dict(
                    same_exits=own_exit, same_preds=own_pred,
                    rows_bitwise=rows_bitwise))


def main(argv=None):
    args = parse_args(argv)
    cfg = prepare_config(load_config(args.config), args.config)
    loader_cfg = test_loader_cfg(cfg, args.config)
    loader_cfg['batch_size'] = args.batch_size
    try:
        onnx_model = OnnxEarlyExit(args.export_dir,
                                   intra_op_threads=args.intra_op_threads)
        model = build_model_from_checkpoint(cfg, args.checkpoint)
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f'verify_export: error: {err}')
    from mmengine.runner import Runner
    loader = Runner.build_dataloader(loader_cfg)
    r = compare(model, onnx_model, loader, args.num_samples)
    n = r['num_samples']
    print(f"{n} test images, batch {args.batch_size}, thresholds "
          f"{onnx_model.thresholds.tolist()} ({onnx_model.confidence_name})")
    print(f"preprocess: max |runtime.preprocess - data_preprocessor| = "
          f"{r['max_preprocess_diff']:.3g}")
    print(f"exits equal: {r['same_exits']}/{n}; predictions equal: "
          f"{r['same_preds']}/{n}; max |dlogit| over all exits "
          f"{r['max_abs_logit_diff']:.3g} ({r['max_rel_logit_diff']:.3g} of "
          'the largest |logit|)')
    print(f"confidences: max |torch - onnx| {r['max_conf_diff']:.3g}; "
          f"closest consulted confidence to its threshold "
          f"{r['min_conf_threshold_gap']:.3g} (a decision can flip only "
          'where this gap is below the confidence difference)')
    for f in r['flips']:
        print(f"  flip: image {f['index']}: exit {f['exit_torch']} -> "
              f"{f['exit_onnx']}, class {f['pred_torch']} -> "
              f"{f['pred_onnx']}; at exit {f['at_exit']} confidence "
              f"{f['conf_torch']:.9g} (torch) / {f['conf_onnx']:.9g} (onnx) "
              f"vs threshold {f['threshold']:.9g}; top-2 logit gap "
              f"{f['top2_gap_torch']:.3g}")
    own = r['onnx_router_vs_own_simulation']
    print(f"ONNX router vs the simulation on its own full-batch logits: "
          f"exits equal {own['same_exits']}/{n}, predictions equal "
          f"{own['same_preds']}/{n}, taken-exit logits bitwise equal "
          f"{own['rows_bitwise']}/{n}")
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(r, f, indent=1)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
