"""γ of a run that learns its loss weights: where it started
(:func:`initial_gamma_of`), its logged path (:func:`gamma_records`), where it
ended (:func:`export_gamma`, ``RUN/gamma.json``, what a Fixed-γ cell reads),
how far it travelled (:func:`gamma_travel`, issue 16: whether an ablation of
γ tested a γ that moved), and the suite's γ table and plots."""
import glob
import os.path as osp
from typing import Dict, List, Optional, Tuple

from .records import read_json, write_json
from .spec import Run
from .tables import ordered_labels, safe_name

__all__ = ['initial_gamma_of', 'gamma_records', 'export_gamma',
           'gamma_travel', 'logged_travel', 'gamma_travel_table',
           'gamma_plots']


def initial_gamma_of(config: str, options: Dict
                     ) -> Optional[Tuple[str, Dict[str, float]]]:
    """``(init mode, {objective: γ})`` at initialisation of the model a
    config builds with ``options``; None when it learns no γ (plain or
    frozen)."""
    import hdkd_mm  # noqa: F401  (registers the modules)
    from mmpretrain.registry import MODELS

    from hdkd_mm.launch import load_config
    cfg = load_config(config, options)
    model = MODELS.build(cfg.model)
    lw = getattr(model, 'loss_weights', None)
    if lw is None or not lw.learnable:
        return None
    return lw.init_mode, {n: float(v) for n, v in
                          zip(lw.names, lw.weights().tolist())}


def gamma_records(run_dir: str) -> List[Dict]:
    """The ``gamma/*`` scalars of every training attempt of a run (a resumed
    run has several log folders; an iteration logged twice keeps the last)."""
    from hdkd_mm.analysis.run_plots import read_scalars
    paths = sorted(glob.glob(osp.join(run_dir, '*', 'vis_data',
                                      'scalars.json')), key=osp.getmtime)
    by_iter: Dict[int, Dict] = {}
    for path in paths:
        for record in read_scalars(path):
            gammas = {k: v for k, v in record.items()
                      if k.startswith('gamma/')}
            if gammas and 'iter' in record:
                by_iter[record['iter']] = dict(iter=record['iter'], **gammas)
    return [by_iter[i] for i in sorted(by_iter)]


def export_gamma(run: Run) -> Optional[str]:
    """Write ``RUN/gamma.json`` (``{objective name: γ}``) from the run's
    final checkpoint; returns its path, or None for a run without learned
    loss weights (or without a final checkpoint)."""
    out = osp.join(run.run_dir, 'gamma.json')
    ckpt_path = osp.join(run.run_dir, 'final.pth')
    if osp.isfile(out):
        return out
    if not osp.isfile(ckpt_path):
        return None
    import torch

    from hdkd_mm.launch import load_config
    from mmpretrain.registry import MODELS
    state = torch.load(ckpt_path, map_location='cpu', weights_only=False)
    state = state.get('state_dict', state)
    gamma = state.get('loss_weights.gamma')
    if gamma is None:
        return None
    cfg = load_config(run.config, dict(run.options))
    model = MODELS.build(cfg.model)
    names = list(model.loss_weights.names)
    values = gamma.detach().double().flatten().tolist()
    if len(names) != len(values):
        raise RuntimeError(
            f'{ckpt_path}: {len(values)} γ values for the {len(names)} '
            f'objectives of {run.config}.')
    write_json(out, dict(zip(names, values)))
    return out


def gamma_travel(initial: Dict[str, float], final: Dict[str, float],
                 trajectory: List[Dict]) -> Dict[str, float]:
    """How far γ moved in one run: ``l1`` = Σ_m |γ_final − γ_init|,
    ``relative`` = l1 / Σ_m |γ_init|, ``path`` = the L1 length of the logged
    trajectory (init → each logged γ → final), ``largest`` = the objective
    that moved most and by how much."""
    names = list(initial)
    points = [[initial[n] for n in names]]
    points += [[rec[f'gamma/{n}'] for n in names] for rec in trajectory]
    points.append([final[n] for n in names])
    l1 = sum(abs(final[n] - initial[n]) for n in names)
    path = sum(sum(abs(b - a) for a, b in zip(p, q))
               for p, q in zip(points, points[1:]))
    big = max(names, key=lambda n: abs(final[n] - initial[n]))
    total = sum(abs(v) for v in initial.values())
    return dict(l1=l1, relative=l1 / total if total else float('nan'),
                path=path, largest=big,
                largest_change=final[big] - initial[big])


def logged_travel(run_dir: str, initial: Optional[Dict[str, float]]
                  ) -> Optional[float]:
    """L1 distance from ``initial`` to the last logged γ of a run (before
    or without its ``gamma.json``); None without a learned γ or its log."""
    records = gamma_records(run_dir)
    if not initial or not records:
        return None
    last = {n: float(records[-1][f'gamma/{n}']) for n in initial}
    return gamma_travel(initial, last, records)['l1']


def gamma_travel_table(suite, done) -> Optional[str]:
    """γ's travel from its initialisation in every run that learned γ
    (issue 16: whether an ablation of γ tested a γ that moved); None when
    no run of the suite learned γ."""
    lines = ['| cell | seed | init | Σ γ₀ | L1(γ_final − γ₀) | relative | '
             'path length (logged) | largest change |',
             '|:---|---:|:---|---:|---:|---:|---:|:---|']
    rows = 0
    for d in done:
        run = d['run']
        final = read_json(osp.join(run.run_dir, 'gamma.json'))
        if not final:
            continue
        start = initial_gamma_of(run.config, run.options)
        if start is None:  # frozen γ (Fixed): nothing moves
            continue
        init, initial = start
        t = gamma_travel(initial, final, gamma_records(run.run_dir))
        lines.append(
            f"| {d['label']} | {d['seed']} | {init} | "
            f"{sum(initial.values()):.2f} | {t['l1']:.3f} | "
            f"{100 * t['relative']:.1f} % | {t['path']:.3f} | "
            f"{t['largest']} {t['largest_change']:+.3f} |")
        rows += 1
    return '\n'.join(lines) if rows else None


def gamma_plots(suite, done, out_dir) -> List[str]:
    """γ trajectories (``plot_run``) of the first seed of every cell that
    logged γ; returns the file names written."""
    from hdkd_mm.analysis.run_plots import gamma_series, plot_gamma
    written = []
    for label in ordered_labels(suite, done):
        ds = sorted((d for d in done if d['label'] == label),
                    key=lambda d: d['seed'])
        # every training attempt of the run (a resumed run has several
        # log folders; iterations redone after a resume keep the last)
        series = gamma_series(gamma_records(ds[0]['run'].run_dir))
        if not series:
            continue
        name = f'gamma_{safe_name(label)}.png'
        plot_gamma(series, osp.join(out_dir, name),
                   title=f'{label}, seed {ds[0]["seed"]}: γ over training')
        written.append(name)
    return written
