"""Benchmark: real early-exit inference vs full inference on the CPU.

    OMP_NUM_THREADS=1 .venv/bin/python bench/early_exit.py \\
        [--checkpoint CKPT] [--num-samples 1024] [--batch1-samples 256] \\
        [--repeats 5] [--target-ratio 0.5] [--batch-size 64 [256 ...]]

The demo MSDNet (configs/demo/msdnet_msdnet-4e_1xb128_fashion-mnist.py; randomly initialised
unless ``--checkpoint`` is given). Images: Fashion-MNIST through the config's
test pipeline when the files are installed (held-out split for fitting,
test split for timing), random tensors otherwise. Thresholds are fitted on
``--heldout-samples`` held-out images with
:func:`~hdkd_mm.evaluation.budgeted.search_budget` for an average cost of at
most ``--target-ratio`` of the full network's (the achieved ratio on the
timed images is what is reported).

Times, interleaved and as medians of ``--repeats`` rounds: the full network
(every block and every exit, ``model(x, mode='tensor')``, whose cost is the
last exit's cumulative cost) vs early-exit inference
(:class:`~hdkd_mm.evaluation.early_exit.EarlyExitPredictor`), at batch 64
and batch 1; and the 'ideal' early exit (the same blocks and exits on
contiguous slices of the same sizes, without decisions or index_select), so
that the routing's own overhead shows apart from the cost of running later
blocks on smaller sub-batches (FLOPs do not count that). Also checks that the routed exits and predictions equal the
simulated evaluation (``apply_thresholds`` on the full logits of the same
batches). The last line is

    early_exit: cost_ratio=C time_ratio=T time/cost=T/C ...

for the first ``--batch-size`` (then the same for the other batch sizes and
for batch 1); the target is time/cost <= 1.2.

Before it, for each batch size, where the full network's time goes: every
stage (block k and exit k) timed alone, interleaved, medians, as cumulative
shares of the full time beside the cumulative FLOP shares of the exits.
Early exit can only track the FLOPs ratio where the two agree; the line
``time/FLOP share of block k`` is each stage's time share over its FLOP
share (1 = FLOPs predict its time).
"""
import argparse
import os
import os.path as osp
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(REPO, 'configs', 'demo',
                'msdnet_msdnet-4e_1xb128_fashion-mnist.py')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEMO)
    parser.add_argument('--checkpoint')
    parser.add_argument('--num-samples', type=int, default=1024,
                        help='timed images at batch 64')
    parser.add_argument('--batch1-samples', type=int, default=256,
                        help='timed images at batch 1')
    parser.add_argument('--heldout-samples', type=int, default=1024)
    parser.add_argument('--batch-size', type=int, nargs='+', default=[64],
                        help='batch sizes timed (besides batch 1); the '
                        'first also computes the held-out logits')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--target-ratio', type=float, default=0.48,
                        help='fitted held-out cost / full cost (a margin '
                        'below 0.5 so the timed images stay <= 0.5)')
    parser.add_argument('--random-data', action='store_true',
                        help='random images even if Fashion-MNIST exists')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--fast-kernels', action='store_true',
                        help='time the model of hdkd_mm.evaluation.'
                        'fast_inference.optimize_for_inference (BatchNorm '
                        'folded, 1x1 convolutions as bmm) instead of the '
                        'plain one, and its full-inference speed-up')
    return parser.parse_args()


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
    """(held-out images, held-out labels, test images) preprocessed."""
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
    """``x`` in consecutive chunks of ``batch`` rows (the last may be
    shorter)."""
    return [x[i:i + batch] for i in range(0, len(x), batch)]


@torch.inference_mode()
def full_logits(model, x, batch):
    return torch.cat([torch.stack(model(c, mode='tensor'), 1)
                      for c in batches_of(x, batch)])


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def compare(model, predictor, x, batch, repeats):
    """Interleaved timing of the full network, early exit and the 'ideal'
    (the blocks and exits early exit ran, on contiguous slices of the same
    sizes: no decisions, no index_select); medians."""
    from hdkd_mm.evaluation.budgeted import apply_thresholds, exit_confidences
    chunks = batches_of(x, batch)
    blocks = model.backbone.blocks

    @torch.inference_mode()
    def run_full():
        return [model(c, mode='tensor') for c in chunks]

    def run_early():
        return [predictor(c) for c in chunks]

    @torch.inference_mode()
    def run_ideal():
        for c, rows in zip(chunks, plan):
            s, z = c, None
            for k, m in enumerate(rows):
                if k:
                    s, z = [t[:m] for t in s], z[:m]
                s = blocks[k](s)
                z = model.head.exit_forward(k, s[-1], z)

    run_full()
    plan = [r.rows for r in run_early()]  # warm-up, and the sizes
    run_ideal()
    t_full, t_early, t_ideal = [], [], []
    for _ in range(repeats):
        t, full = timed(run_full)
        t_full.append(t)
        t, early = timed(run_early)
        t_early.append(t)
        t_ideal.append(timed(run_ideal)[0])
    logits = torch.cat([torch.stack(f, 1) for f in full]).float().numpy()
    conf, pred = exit_confidences(logits)
    sim = apply_thresholds(conf, predictor.thresholds)
    routed_exit = np.concatenate([r.exit0 for r in early])
    routed_pred = np.concatenate([r.pred.numpy() for r in early])
    same = (np.array_equal(sim, routed_exit),
            np.array_equal(pred[np.arange(len(sim)), sim], routed_pred))
    mflops = float(np.concatenate([r.mflops.numpy() for r in early]).mean())
    return (statistics.median(t_full), statistics.median(t_early),
            statistics.median(t_ideal), mflops,
            np.bincount(routed_exit, minlength=predictor.num_exits) /
            len(routed_exit), same)


@torch.inference_mode()
def stage_times(model, x, batch, repeats):
    """Median seconds of each stage (block k then exit k) of the full
    network over ``x`` in chunks of ``batch``, the stages timed in turn
    within each round."""
    blocks, head = model.backbone.blocks, model.head
    chunks = batches_of(x, batch)
    per_round = []
    for r in range(repeats + 1):  # round 0 warms up
        times = np.zeros(len(blocks))
        for c in chunks:
            s, z = c, None
            for k, block in enumerate(blocks):
                t0 = time.perf_counter()
                s = block(s)
                z = head.exit_forward(k, s[-1], z)
                times[k] += time.perf_counter() - t0
        if r:
            per_round.append(times)
    return np.median(np.stack(per_round), axis=0)


@torch.inference_mode()
def full_speedup(plain, fast, x, batch, repeats):
    """Median full-inference seconds of two models over ``x``, interleaved."""
    chunks = batches_of(x, batch)
    times = [[], []]
    for r in range(repeats + 1):  # round 0 warms up
        for j, model in enumerate((plain, fast)):
            t0 = time.perf_counter()
            for c in chunks:
                model(c, mode='tensor')
            if r:
                times[j].append(time.perf_counter() - t0)
    return statistics.median(times[0]), statistics.median(times[1])


def print_stage_shares(times, costs, batch):
    """Cumulative time shares vs cumulative FLOP shares, per exit."""
    t_cum = np.cumsum(times) / times.sum()
    f_cum = np.asarray(costs) / costs[-1]
    t_own = times / times.sum()
    f_own = np.diff(np.concatenate([[0.0], f_cum]))
    print(f'batch {batch:>3}: cumulative share of the full time / of the '
          'FLOPs, exit 1 -> K: '
          + ' / '.join(f'{t:.2f}:{f:.2f}' for t, f in zip(t_cum, f_cum))
          + '; time/FLOP share of block k: '
          + ' / '.join(f'{t / f:.2f}' for t, f in zip(t_own, f_own)))


def main():
    args = parse_args()
    import hdkd_mm  # noqa: F401
    from hdkd_mm.analysis.flops import default_input_shape, exit_costs
    from hdkd_mm.evaluation.budgeted import search_budget
    from hdkd_mm.evaluation.early_exit import EarlyExitPredictor
    from hdkd_mm.launch import load_config, prepare_config

    torch.manual_seed(args.seed)
    cfg = prepare_config(load_config(args.config), args.config)
    model = build_model(cfg, args.checkpoint)
    n_test = max(args.num_samples, args.batch1_samples)
    batches = [b for b in dict.fromkeys(args.batch_size) if b > 1] or [64]
    held, held_y, test, source = load_images(
        cfg, model, args.heldout_samples, n_test, args.random_data,
        args.seed)
    costs = np.array([r['mflops']
                      for r in exit_costs(model, default_input_shape(cfg))])
    full = float(costs[-1])
    if args.fast_kernels:
        from hdkd_mm.evaluation.fast_inference import optimize_for_inference
        plain, model = model, optimize_for_inference(model)
    held_logits = full_logits(model, held, batches[0]).numpy()
    fit = search_budget(held_logits, held_y, held_logits, held_y, costs,
                        args.target_ratio * full)
    predictor = EarlyExitPredictor(model, fit['thresholds'], costs)

    print(f'config {osp.relpath(args.config, REPO)}, weights: '
          f'{args.checkpoint or "random init"}, images: {source}, torch '
          f'threads: {torch.get_num_threads()} (OMP_NUM_THREADS='
          f'{os.environ.get("OMP_NUM_THREADS", "unset")})')
    print('exit MFLOPs (cumulative): '
          + ' / '.join(f'{c:.3f}' for c in costs))
    print(f'thresholds fitted on {len(held)} held-out images for <= '
          f'{args.target_ratio:.0%} of the full cost (held-out ratio '
          f'{fit["heldout_mflops"] / full:.3f}): '
          + ', '.join(f'{t:.4g}' for t in fit['thresholds']))

    runs = [(b, args.num_samples) for b in batches] + [
        (1, args.batch1_samples)]
    if args.fast_kernels:
        print(f'fast kernels: {model.inference_optimizations}')
        for batch, n in runs:
            t_plain, t_fast = full_speedup(plain, model, test[:n], batch,
                                           args.repeats)
            print(f'batch {batch:>3}: full inference, plain '
                  f'{1e3 * t_plain / n:.3f} ms/img, fast kernels '
                  f'{1e3 * t_fast / n:.3f} ms/img: speed-up '
                  f'{t_plain / t_fast:.2f}x')
    for batch, n in runs:
        print_stage_shares(
            stage_times(model, test[:n], batch, args.repeats), costs, batch)
    results = {}
    for batch, n in runs:
        t_full, t_early, t_ideal, mflops, shares, same = compare(
            model, predictor, test[:n], batch, args.repeats)
        cost_ratio, time_ratio = mflops / full, t_early / t_full
        results[batch] = (cost_ratio, time_ratio)
        print(f'batch {batch:>3} ({n} images, median of {args.repeats}): '
              f'full {1e3 * t_full / n:.3f} ms/img, early exit '
              f'{1e3 * t_early / n:.3f} ms/img (ideal '
              f'{1e3 * t_ideal / n:.3f}: routing overhead '
              f'{100 * (t_early - t_ideal) / t_early:.1f} %); exit shares '
              + ' / '.join(f'{s:.3f}' for s in shares)
              + f'; cost ratio {cost_ratio:.3f}, time ratio {time_ratio:.3f},'
              f' time/cost {time_ratio / cost_ratio:.3f}; routed == '
              f'simulated: exits {same[0]}, predictions {same[1]}')
    (c0, t0) = results[batches[0]]
    print(f'early_exit: cost_ratio={c0:.3f} time_ratio={t0:.3f} '
          f'time/cost={t0 / c0:.3f} (batch {batches[0]}); ' + '; '.join(
              f'batch{b}: cost_ratio={results[b][0]:.3f} time_ratio='
              f'{results[b][1]:.3f} time/cost='
              f'{results[b][1] / results[b][0]:.3f}'
              for b in batches[1:] + [1]))


if __name__ == '__main__':
    main()
