"""Benchmark: real early-exit inference vs full inference on the CPU, in eager
PyTorch and on ONNX Runtime, side by side.

    OMP_NUM_THREADS=1 .venv/bin/python bench/early_exit.py \\
        [--backbone msdnet|resnet18 | --config CFG] [--checkpoint CKPT] \\
        [--runtimes torch onnx] [--num-samples 1024] [--batch1-samples 256] \\
        [--repeats 5] [--target-ratio 0.48] [--batch-size 64 [256 ...]] \\
        [--stage-shares] [--fast-kernels]

``--backbone``: the demo MSDNet (configs/demo/msdnet_msdnet-4e_1xb128_
fashion-mnist.py, default) or the demo ResNet-18
(msdnet_resnet18-w16_1xb128_fashion-mnist.py); randomly initialised unless
``--checkpoint`` is given. Images: Fashion-MNIST through the config's test
pipeline when the files are installed (held-out split for fitting, test
split for timing), random tensors otherwise. Thresholds are fitted on
``--heldout-samples`` held-out images with
:func:`~hdkd_mm.evaluation.budgeted.search_budget` for an average cost of at
most ``--target-ratio`` of the full network's (the achieved ratio on the
timed images is what is reported).

Runtimes: ``torch`` (eager, the model's exit protocol and
:class:`~hdkd_mm.evaluation.early_exit.EarlyExitPredictor`; with
``--fast-kernels`` the copy of :mod:`hdkd_mm.evaluation.fast_inference`)
and ``onnx`` (the model exported with :mod:`hdkd_mm.deploy.export` to a
temporary folder, run by :class:`~hdkd_mm.deploy.OnnxEarlyExit` with one
intra-op thread, so both runtimes use one core). For each runtime and batch
size, interleaved with the other runtime, medians of ``--repeats`` rounds:
the full network (every stage and exit), early exit, and the 'ideal' early
exit (the same stages and exits on contiguous slices of the same sizes,
without decisions or row selection: what routing costs shows apart from the
cost of running later stages on smaller sub-batches, which FLOPs do not
count). Each runtime's routed exits and predictions are checked against the
simulation on its own full logits.

Printed: a markdown table (one row per runtime and batch size), the
speed-up of ONNX Runtime over eager PyTorch on full inference, and per
runtime the targets: at batch 1, ``time/cost <= 1.2`` (early-exit time at
most 1.2 x cost ratio x full time); at the other batch sizes, early exit
within 1.2 x the ideal. ``--stage-shares`` adds, per batch size, where the
full network's time goes (cumulative time shares beside the cumulative FLOP
shares of the exits; torch).
"""
import argparse
import os
import os.path as osp
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMOS = dict(
    msdnet='msdnet_msdnet-4e_1xb128_fashion-mnist.py',
    resnet18='msdnet_resnet18-w16_1xb128_fashion-mnist.py')
TARGET = 1.2


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--backbone', choices=sorted(DEMOS),
                        default='msdnet', help='which demo config')
    parser.add_argument('--config', help='a config (overrides --backbone)')
    parser.add_argument('--checkpoint')
    parser.add_argument('--runtimes', nargs='+', default=['torch', 'onnx'],
                        choices=['torch', 'onnx'])
    parser.add_argument('--num-samples', type=int, default=1024,
                        help='timed images at the batch sizes > 1')
    parser.add_argument('--batch1-samples', type=int, default=256,
                        help='timed images at batch 1')
    parser.add_argument('--heldout-samples', type=int, default=1024)
    parser.add_argument('--batch-size', type=int, nargs='+', default=[64],
                        help='batch sizes timed (besides batch 1)')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--target-ratio', type=float, default=0.48,
                        help='fitted held-out cost / full cost (a margin '
                        'below 0.5 so the timed images stay <= 0.5)')
    parser.add_argument('--random-data', action='store_true',
                        help='random images even if Fashion-MNIST exists')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--stage-shares', action='store_true',
                        help='also time each stage of the full network')
    parser.add_argument('--fast-kernels', action='store_true',
                        help='torch: time the copy of hdkd_mm.evaluation.'
                        'fast_inference.optimize_for_inference (BatchNorm '
                        'folded, 1x1 convolutions as bmm)')
    args = parser.parse_args()
    args.config = args.config or osp.join(REPO, 'configs', 'demo',
                                          DEMOS[args.backbone])
    return args


def build_model(cfg, checkpoint):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from hdkd_mm.evaluation.inference import build_model_from_checkpoint
    if checkpoint:
        return build_model_from_checkpoint(cfg, checkpoint)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = cfg.model.copy()
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(model_cfg)
    # PyTorch's default initialisation (init_weights would log every
    # parameter); BatchNorm statistics perturbed so that they matter.
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(
                m.running_mean.shape, generator=gen))
            m.running_var.copy_(torch.empty(m.running_var.shape).uniform_(
                0.5, 1.5, generator=gen))
    return model.eval()


def load_images(cfg, model, n_held, n_test, random_data, seed):
    """(held-out images, held-out labels, test images, source)
    preprocessed."""
    from mmengine.runner import Runner

    from hdkd_mm.evaluation.budgeted_eval import (heldout_loader_cfg,
                                                  test_loader_cfg)
    if not random_data:
        try:
            out = []
            for loader_cfg, n in ((heldout_loader_cfg(cfg), n_held),
                                  (test_loader_cfg(cfg), n_test)):
                loader_cfg['batch_size'] = n
                data = next(iter(Runner.build_dataloader(loader_cfg)))
                data = model.data_preprocessor(data, False)
                labels = torch.cat([s.gt_label
                                    for s in data['data_samples']])
                out.append((data['inputs'], labels.numpy()))
            return out[0][0], out[0][1], out[1][0], 'Fashion-MNIST'
        except (FileNotFoundError, OSError) as err:
            print(f'(no data set: {err}; using random images)')
    gen = torch.Generator().manual_seed(seed)
    from hdkd_mm.analysis.flops import default_input_shape
    shape = default_input_shape(cfg)
    held = torch.randn((n_held, ) + tuple(shape), generator=gen)
    test = torch.randn((n_test, ) + tuple(shape), generator=gen)
    return held, np.zeros(n_held, dtype=np.int64), test, 'random'


def batches_of(x, batch):
    return [x[i:i + batch] for i in range(0, len(x), batch)]


# --------------------------------------------------------------------------
# the two runtimes: full / early / ideal on one chunk
# --------------------------------------------------------------------------
class TorchRunner:
    name = 'torch'

    def __init__(self, model, thresholds, costs):
        from hdkd_mm.evaluation.early_exit import EarlyExitPredictor
        from hdkd_mm.models.exits import exit_protocol
        self.model = model
        self.proto = exit_protocol(model.backbone)
        self.predictor = EarlyExitPredictor(model, thresholds, costs)

    @torch.inference_mode()
    def full(self, c):
        return torch.stack(self.model(c, mode='tensor'), 1).float().numpy()

    def early(self, c):
        r = self.predictor(c)
        return r.exit0, r.pred.numpy(), r.mflops.numpy(), r.rows

    @torch.inference_mode()
    def ideal(self, c, rows):
        head = self.model.head
        s, z = self.proto.start(c), None
        for k, m in enumerate(rows):
            if k:
                s, z = tuple(t[:m] for t in s), z[:m]
            s, feat = self.proto.run(k, s)
            z = head.exit_forward(k, feat, z)


class OnnxRunner:
    name = 'onnx'

    def __init__(self, model, thresholds, costs, shape, folder):
        from hdkd_mm.deploy import OnnxEarlyExit
        from hdkd_mm.deploy.export import export_early_exit
        export_early_exit(model, folder, thresholds, shape, costs)
        self.m = OnnxEarlyExit(folder, intra_op_threads=1)

    def full(self, c):
        return self.m.all_exits(c)

    def early(self, c):
        r = self.m(c)
        return r['exit'] - 1, r['pred'], r['mflops'], r['rows']

    def ideal(self, c, rows):
        m = self.m
        s, z = m.start(c), None
        for k, n in enumerate(rows):
            if k:
                s, z = [t[:n] for t in s], z[:n]
            s, feat = m.run_stage(k, s)
            z = m.run_exit(k, feat, z)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def compare(runners, chunks, thresholds, repeats):
    """Per runner: median seconds of full / early / ideal over the chunks
    (the runners, and the three within each, interleaved in every round),
    its mean cost and exit shares, and whether its routing equals the
    simulation on its own full logits."""
    from hdkd_mm.evaluation.budgeted import apply_thresholds, exit_confidences
    out = {}
    for r in runners:
        d = [c.numpy() if r.name == 'onnx' else c for c in chunks]
        r.full(d[0])  # warm-up
        plan = [r.early(c)[3] for c in d]
        out[r.name] = dict(data=d, plan=plan, full=[], early=[], ideal=[])
    for _ in range(repeats):
        for r in runners:
            o = out[r.name]
            o['full'].append(timed(lambda: [r.full(c) for c in o['data']])[0])
            o['early'].append(timed(lambda: [r.early(c)
                                             for c in o['data']])[0])
            o['ideal'].append(timed(lambda: [
                r.ideal(c, rows) for c, rows in zip(o['data'], o['plan'])])[0])
    for r in runners:
        o = out[r.name]
        logits = np.concatenate([r.full(c) for c in o['data']])
        early = [r.early(c) for c in o['data']]
        conf, pred = exit_confidences(logits)
        sim = apply_thresholds(conf, thresholds)
        ex = np.concatenate([e[0] for e in early])
        pr = np.concatenate([e[1] for e in early])
        out[r.name] = dict(
            full=statistics.median(o['full']),
            early=statistics.median(o['early']),
            ideal=statistics.median(o['ideal']),
            same=bool(np.array_equal(sim, ex) and np.array_equal(
                pred[np.arange(len(sim)), sim], pr)),
            mflops=float(np.concatenate([e[2] for e in early]).mean()),
            shares=np.bincount(ex, minlength=logits.shape[1]) / len(ex))
    return out


@torch.inference_mode()
def stage_times(model, x, batch, repeats):
    """Median seconds of each stage (stage k then exit k) of the full
    network over ``x`` in chunks of ``batch`` (eager)."""
    from hdkd_mm.models.exits import exit_protocol
    proto, head = exit_protocol(model.backbone), model.head
    chunks = batches_of(x, batch)
    per_round = []
    for r in range(repeats + 1):  # round 0 warms up
        times = np.zeros(proto.num_exits)
        for c in chunks:
            s, z = proto.start(c), None
            for k in range(proto.num_exits):
                t0 = time.perf_counter()
                s, feat = proto.run(k, s)
                z = head.exit_forward(k, feat, z)
                times[k] += time.perf_counter() - t0
        if r:
            per_round.append(times)
    return np.median(np.stack(per_round), axis=0)


def print_stage_shares(times, costs, batch):
    t_cum = np.cumsum(times) / times.sum()
    f_cum = np.asarray(costs) / costs[-1]
    t_own = times / times.sum()
    f_own = np.diff(np.concatenate([[0.0], f_cum]))
    print(f'batch {batch:>3}: cumulative share of the full time / of the '
          'FLOPs, exit 1 -> K: '
          + ' / '.join(f'{t:.2f}:{f:.2f}' for t, f in zip(t_cum, f_cum))
          + '; time/FLOP share of stage k: '
          + ' / '.join(f'{t / f:.2f}' for t, f in zip(t_own, f_own)))


def main():
    args = parse_args()
    import hdkd_mm  # noqa: F401
    from hdkd_mm.analysis.flops import default_input_shape, exit_costs
    from hdkd_mm.evaluation.budgeted import search_budget
    from hdkd_mm.launch import load_config, prepare_config

    torch.manual_seed(args.seed)
    cfg = prepare_config(load_config(args.config), args.config)
    model = build_model(cfg, args.checkpoint)
    shape = default_input_shape(cfg)
    n_test = max(args.num_samples, args.batch1_samples)
    batches = [b for b in dict.fromkeys(args.batch_size) if b > 1] or [64]
    held, held_y, test, source = load_images(
        cfg, model, args.heldout_samples, n_test, args.random_data,
        args.seed)
    costs = np.array([r['mflops'] for r in exit_costs(model, shape)])
    full = float(costs[-1])
    if args.fast_kernels:
        from hdkd_mm.evaluation.fast_inference import optimize_for_inference
        model = optimize_for_inference(model)
    with torch.inference_mode():
        held_logits = torch.cat([
            torch.stack(model(c, mode='tensor'), 1)
            for c in batches_of(held, batches[0])]).numpy()
    fit = search_budget(held_logits, held_y, held_logits, held_y, costs,
                        args.target_ratio * full)
    thr = np.asarray(fit['thresholds'], dtype=np.float64)

    print(f'config {osp.relpath(args.config, REPO)}, weights: '
          f'{args.checkpoint or "random init"}, images: {source}, torch '
          f'threads: {torch.get_num_threads()} (OMP_NUM_THREADS='
          f'{os.environ.get("OMP_NUM_THREADS", "unset")}), onnxruntime '
          'intra-op threads: 1' + (', torch: fast kernels'
                                   if args.fast_kernels else ''))
    print('exit MFLOPs (cumulative): '
          + ' / '.join(f'{c:.3f}' for c in costs))
    print(f'thresholds fitted on {len(held)} held-out images for <= '
          f'{args.target_ratio:.0%} of the full cost (held-out ratio '
          f'{fit["heldout_mflops"] / full:.3f}): '
          + ', '.join(f'{t:.4g}' for t in thr))
    with tempfile.TemporaryDirectory() as folder:
        runners = []
        if 'torch' in args.runtimes:
            runners.append(TorchRunner(model, thr, costs))
        if 'onnx' in args.runtimes:
            runners.append(OnnxRunner(model, thr, costs, shape, folder))
        runs = [(b, args.num_samples) for b in batches] + [
            (1, args.batch1_samples)]
        if args.stage_shares:
            for batch, n in runs:
                print_stage_shares(stage_times(model, test[:n], batch,
                                               args.repeats), costs, batch)
        rows = [(batch, n, compare(runners, batches_of(test[:n], batch),
                                   thr, args.repeats))
                for batch, n in runs]
    report(rows, [r.name for r in runners], full, args.repeats)


def report(rows, names, full_mflops, repeats):
    print(f'\nmedians of {repeats} rounds, ms per image; ideal = the same '
          'stages on contiguous slices without routing\n')
    print('| runtime | batch | images | full | early exit | ideal | cost '
          'ratio | time ratio | time/cost | early/ideal | exit shares | '
          'routed == simulated |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|')
    for batch, n, res in rows:
        for name in names:
            r = res[name]
            cost_ratio = r['mflops'] / full_mflops
            tr = r['early'] / r['full']
            print(f"| {name} | {batch} | {n} | {1e3 * r['full'] / n:.3f} | "
                  f"{1e3 * r['early'] / n:.3f} | {1e3 * r['ideal'] / n:.3f} "
                  f"| {cost_ratio:.3f} | {tr:.3f} | {tr / cost_ratio:.3f} | "
                  f"{r['early'] / r['ideal']:.3f} | "
                  + ' / '.join(f'{s:.3f}' for s in r['shares'])
                  + f" | {r['same']} |")
    print()
    if len(names) == 2:
        print('onnx vs torch, full inference speed-up: ' + ', '.join(
            f"batch {b}: {res['torch']['full'] / res['onnx']['full']:.2f}x"
            for b, _, res in rows) + '; early exit: ' + ', '.join(
            f"batch {b}: {res['torch']['early'] / res['onnx']['early']:.2f}x"
            for b, _, res in rows))
    for name in names:
        parts = []
        for batch, _, res in rows:
            r = res[name]
            if batch == 1:
                v = r['early'] / r['full'] / (r['mflops'] / full_mflops)
                what = 'time/cost'
            else:
                v = r['early'] / r['ideal']
                what = 'early/ideal'
            parts.append(f"batch {batch}: {what}={v:.3f} "
                         f"({'ok' if v <= TARGET else 'MISS'})")
        print(f'early_exit[{name}] targets <= {TARGET}: ' + '; '.join(parts))


if __name__ == '__main__':
    main()
