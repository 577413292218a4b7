"""Real early-exit inference: evaluate the exits in order and run the later
blocks only for the samples that are still undecided.

:func:`early_exit_forward` / :class:`EarlyExitPredictor` take a built
:class:`~hdkd_mm.models.MultiExitClassifier` in eval mode, a batch of
(preprocessed) images and one confidence threshold per exit.  Block 1 runs on
the whole batch; after exit k, every sample whose max-softmax confidence is
``>=`` threshold k leaves with exit k's prediction, and the backbone state
(MSDNet: the list of scale maps) is index-selected down to the remaining
samples before block k+1 runs.  The last exit takes every sample that is
left (its threshold is not consulted, as in
:func:`~hdkd_mm.evaluation.budgeted.apply_thresholds`).  No per-sample Python
loop: one ``index_select`` per scale map per exit.

**Same decisions as the simulation.** Confidences and predictions are
computed with the arithmetic of
:func:`~hdkd_mm.evaluation.budgeted.exit_confidences` (bitwise equal) on the
float32 logits, the comparison is the same ``>=`` in float64, so for equal
logits the exits and predictions equal
``apply_thresholds(exit_confidences(full_logits)[0], thresholds)`` exactly.
In eval mode BatchNorm uses its running statistics, so a sample's logits do
not depend on the other samples of its batch *mathematically*; numerically,
PyTorch's CPU kernels pick their algorithm by batch size (measured with
torch 2.14 on this project's CPU machine: a 3×3 convolution with a batch of
1 takes the native im2col path instead of oneDNN, and ``Linear`` with 1 or 2
rows takes another BLAS path), which changes the last bits (~1e-7) of a
sample's logits.  That could flip a decision for a confidence within ~1e-7 of
a threshold.  To rule it out, a sub-batch of fewer than ``min_rows`` (3)
samples is padded with copies of its first sample (never beyond the size of
the input batch), so every later block and exit sees at least as many rows
as the full-batch evaluation's kernels did; the copies cost at most
``min_rows - 1`` samples' work per exit.  With this guard, routed batches
reproduce the simulation on full batches of the same size bit for bit
(tests/test_early_exit.py at batch 24 and 1; 0 mismatches on the 10,000 demo
test images at batch 256 and 64); batch size 1 is compared with a batch-1
simulation.  The threshold 3 is what this CPU needed; other hardware or
libraries may choose kernels differently (``evaluate_early_exit(...,
verify=True)`` counts mismatches).

**Cost.** ``exit_mflops`` (cumulative MFLOPs of each exit, as
:func:`~hdkd_mm.analysis.flops.exit_costs`, computed from the input shape on
first use when not given) gives each sample's cost: the cumulative cost of
the exit it took.

**Backbones.** Staged execution is implemented for MSDNet (its ``blocks``);
a backbone may also provide ``early_exit_stages()`` returning an object with
``num_stages``, ``start(x)``, ``run(k, state) -> (state, feature)`` and
``select(state, index)``.  Any other backbone raises
:class:`NotImplementedError` naming its type.

**Predict mode.** :class:`EarlyExitClassifier` is a ``MultiExitClassifier``
(same parameters, same checkpoints) whose ``predict`` takes this path when
it is given thresholds::

    model = dict(type='EarlyExitClassifier',        # merges into the base
                 early_exit=dict(thresholds=[0.9, 0.8, 0.7, float('-inf')]))
    test_evaluator = dict(type='EarlyExitMetric')

Each predicted data sample then has the taken exit's ``pred_score`` /
``pred_label``, ``exit_index`` (1-based), ``exit_mflops``,
``exit_confidence`` and ``exit_logits`` (and no ``exit_scores``: later exits
never ran).
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS, MODELS
from mmpretrain.structures import DataSample

from hdkd_mm.models.classifiers.multi_exit import MultiExitClassifier

from .budgeted import exit_confidences, topk_correct

__all__ = [
    'EarlyExitResult', 'EarlyExitPredictor', 'early_exit_forward',
    'staged_backbone', 'check_thresholds', 'EarlyExitClassifier',
    'EarlyExitMetric', 'parse_thresholds', 'thresholds_from_budget_json',
    'evaluate_early_exit'
]

# Smallest sub-batch the routing runs (see the module doc).
DEFAULT_MIN_ROWS = 3

EVAL_MODE_NEEDED = (
    'Early-exit inference needs the model in eval mode (model.eval()): in '
    'train mode BatchNorm normalises with the statistics of whatever samples '
    'are left in the batch.')


# --------------------------------------------------------------------------
# staged execution of a backbone
# --------------------------------------------------------------------------
class _MSDNetStages:
    """MSDNet block by block; the state is the image (before block 1) or the
    list of scale maps, whose last entry is the exit's feature."""

    def __init__(self, backbone):
        self.blocks = backbone.blocks
        self.num_stages = len(self.blocks)

    @staticmethod
    def start(x: torch.Tensor):
        return x

    def run(self, k: int, state):
        state = self.blocks[k](state)
        return state, state[-1]

    @staticmethod
    def select(state, index: torch.Tensor):
        if isinstance(state, torch.Tensor):
            return state.index_select(0, index)
        return [s.index_select(0, index) for s in state]


def staged_backbone(backbone: nn.Module):
    """The staged-execution adapter of a backbone (see the module doc).

    Raises:
        NotImplementedError: for a backbone that cannot run block by block.
    """
    from hdkd_mm.models.backbones.msdnet import MSDNet
    if hasattr(backbone, 'early_exit_stages'):
        return backbone.early_exit_stages()
    if isinstance(backbone, MSDNet):
        return _MSDNetStages(backbone)
    raise NotImplementedError(
        f'Early-exit inference runs the backbone block by block and is '
        f'implemented for MSDNet only; backbone {type(backbone).__name__} '
        'cannot run in stages (give it an `early_exit_stages()` method, see '
        'hdkd_mm/evaluation/early_exit.py). Its budgeted accuracy can still '
        'be simulated from full logits with tools/analysis/budgeted_eval.py.')


def check_thresholds(thresholds, num_exits: int) -> np.ndarray:
    """Validate per-exit thresholds: K finite or ±inf values, no NaN.

    The last one is not consulted (the last exit takes every remaining
    sample); ``-inf`` is the conventional value.
    """
    try:
        thr = np.asarray(thresholds, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f'thresholds must be {num_exits} numbers, one per '
                         f'exit; got {thresholds!r}') from err
    if thr.ndim != 1 or thr.shape[0] != num_exits:
        raise ValueError(
            f'thresholds must have one value per exit: K = {num_exits} '
            f'values (the last, conventionally -inf, is ignored: the last '
            f'exit takes every remaining sample); got {thr.size} '
            f'({np.asarray(thresholds).tolist()})')
    if np.any(np.isnan(thr)):
        raise ValueError(f'thresholds must not be NaN; got {thr.tolist()}')
    return thr


def _check_mflops(exit_mflops, num_exits: int) -> np.ndarray:
    costs = np.asarray(exit_mflops, dtype=np.float64)
    if costs.shape != (num_exits, ) or not np.all(np.isfinite(costs)):
        raise ValueError(f'exit_mflops must hold K = {num_exits} finite '
                         f'cumulative costs; got {np.asarray(exit_mflops)}')
    return costs


# --------------------------------------------------------------------------
# routing
# --------------------------------------------------------------------------
def _conf_pred(logits: np.ndarray):
    """Max-softmax confidence and argmax of ``(m, C)`` float32 logits: the
    arithmetic of :func:`~hdkd_mm.evaluation.budgeted.exit_confidences`
    (float64, ``1 / sum(exp(l - max l))``), so the values are bitwise the
    same (tested), without its validation and chunking (it runs once per
    exit on the routing's hot path)."""
    x = logits.astype(np.float64)
    np.subtract(x, x.max(axis=-1, keepdims=True), out=x)
    np.exp(x, out=x)
    conf = 1.0 / x.sum(axis=-1)
    if not np.isfinite(conf).all():
        raise ValueError('logits contain NaN or infinite values')
    return conf, logits.argmax(axis=-1)


@dataclass
class EarlyExitResult:
    """Per-sample outcome of early-exit inference (input order).

    Attributes:
        pred: int64 ``(N,)`` predicted class (argmax of the taken exit).
        exit: int64 ``(N,)`` exit taken, **1-based**.
        mflops: float64 ``(N,)`` cumulative MFLOPs of the exit taken.
        confidence: float64 ``(N,)`` max-softmax of the taken exit.
        logits: ``(N, C)`` logits of the taken exit (model dtype/device).
        rows: rows each block/exit ran on (``rows[k]`` for block k + 1,
            padding copies included) - what the routing saved.
    """
    pred: torch.Tensor
    exit: torch.Tensor
    mflops: torch.Tensor
    confidence: torch.Tensor
    logits: torch.Tensor
    rows: List[int]

    @property
    def exit0(self) -> np.ndarray:
        """0-based exit indices as numpy (what ``apply_thresholds`` gives)."""
        return self.exit.numpy() - 1


class EarlyExitPredictor:
    """Early-exit inference for one model and one set of thresholds.

    Args:
        model: a :class:`~hdkd_mm.models.MultiExitClassifier` (backbone
            supported by :func:`staged_backbone`, head with ``exits``), in
            eval mode.
        thresholds: K per-exit confidence thresholds (last one ignored).
        exit_mflops: K cumulative per-exit costs; default: computed with
            :func:`~hdkd_mm.analysis.flops.exit_costs` for the input shape
            on first use.
        min_rows: smallest sub-batch the later blocks run on (padding copies,
            never beyond the input batch size); 1 disables the guard.
    """

    def __init__(self, model: nn.Module, thresholds,
                 exit_mflops: Optional[Sequence[float]] = None,
                 min_rows: int = DEFAULT_MIN_ROWS):
        self.model = model
        self.stages = staged_backbone(model.backbone)
        exits = getattr(model.head, 'exits', None)
        if exits is None:
            raise ValueError(f'Early-exit inference needs a multi-exit head '
                             f'with `exits`; got {type(model.head).__name__}.')
        self.exits = exits
        self.num_exits = len(exits)
        if self.stages.num_stages != self.num_exits:
            raise ValueError(
                f'The backbone runs {self.stages.num_stages} stages but the '
                f'head has {self.num_exits} exits.')
        self.thresholds = check_thresholds(thresholds, self.num_exits)
        self._costs = {}
        self.exit_mflops = None
        if exit_mflops is not None:
            self.exit_mflops = _check_mflops(exit_mflops, self.num_exits)
        if int(min_rows) != min_rows or min_rows < 1:
            raise ValueError(f'min_rows must be a positive integer; got '
                             f'{min_rows}')
        self.min_rows = int(min_rows)

    def costs(self, input_shape: Sequence[int]) -> np.ndarray:
        """Cumulative per-exit MFLOPs for one image of ``input_shape``."""
        if self.exit_mflops is not None:
            return self.exit_mflops
        key = tuple(int(s) for s in input_shape)
        if key not in self._costs:
            from hdkd_mm.analysis.flops import exit_costs
            rows = exit_costs(self.model, key)
            self._costs[key] = np.array([r['mflops'] for r in rows])
        return self._costs[key]

    @torch.inference_mode()
    def __call__(self, inputs: torch.Tensor) -> EarlyExitResult:
        """Route a batch of preprocessed images ``(N, C, H, W)``."""
        if self.model.training:
            raise RuntimeError(EVAL_MODE_NEEDED)
        n = int(inputs.shape[0])
        if n == 0:
            raise ValueError('Early-exit inference got an empty batch.')
        costs = self.costs(inputs.shape[1:])
        if n == 1:
            return self._route_one(inputs, costs)
        thr = self.thresholds
        pad_to = min(self.min_rows, n)
        pred = np.empty(n, dtype=np.int64)
        exit_ = np.empty(n, dtype=np.int64)
        conf_out = np.empty(n, dtype=np.float64)
        logits_out = None
        rows: List[int] = []
        idx = np.arange(n)  # global position of each real row of the state
        m = n  # real rows; the state may hold padding copies beyond them
        state = self.stages.start(inputs)
        last = self.num_exits - 1
        head = self.model.head
        prev_logits = None  # exit k-1's logits for the state's rows
        for k in range(self.num_exits):
            state, feat = self.stages.run(k, state)
            rows.append(int(feat.shape[0]))
            prev_logits = head.exit_forward(k, feat, prev_logits)
            z = prev_logits[:m]
            if logits_out is None:
                logits_out = z.new_empty((n, ) + tuple(z.shape[1:]))
            conf, p = _conf_pred(z.detach().float().cpu().numpy())
            if k == last:
                done = np.ones(m, dtype=bool)
            else:
                done = conf >= thr[k]
            if done.any():
                g = idx[done]
                pred[g] = p[done]
                exit_[g] = k + 1
                conf_out[g] = conf[done]
                if done.all():
                    logits_out[torch.from_numpy(g).to(z.device)] = z
                    break
                d = torch.from_numpy(np.flatnonzero(done)).to(z.device)
                logits_out[torch.from_numpy(g).to(z.device)] = \
                    z.index_select(0, d)
                keep = np.flatnonzero(~done)
                idx, m = idx[keep], keep.size
                if m < pad_to:
                    keep = np.concatenate(
                        [keep, np.full(pad_to - m, keep[0])])
                keep = torch.from_numpy(keep).to(z.device)
                state = self.stages.select(state, keep)
                prev_logits = prev_logits.index_select(0, keep)
        return EarlyExitResult(
            pred=torch.from_numpy(pred),
            exit=torch.from_numpy(exit_),
            mflops=torch.from_numpy(costs[exit_ - 1]),
            confidence=torch.from_numpy(conf_out),
            logits=logits_out,
            rows=rows)

    def _route_one(self, inputs: torch.Tensor,
                   costs: np.ndarray) -> EarlyExitResult:
        """Batch size 1: the same decisions without the bookkeeping."""
        thr, last = self.thresholds, self.num_exits - 1
        state = self.stages.start(inputs)
        z = None
        for k in range(self.num_exits):
            state, feat = self.stages.run(k, state)
            z = self.model.head.exit_forward(k, feat, z)
            conf, p = _conf_pred(z.detach().float().cpu().numpy())
            if k == last or conf[0] >= thr[k]:
                break
        return EarlyExitResult(
            pred=torch.from_numpy(p), exit=torch.tensor([k + 1]),
            mflops=torch.tensor([costs[k]], dtype=torch.float64),
            confidence=torch.from_numpy(conf), logits=z, rows=[1] * (k + 1))

    def predict(self, inputs: torch.Tensor,
                data_samples: Optional[List[Optional[DataSample]]] = None
                ) -> List[DataSample]:
        """Data samples with the taken exit's ``pred_score``/``pred_label``,
        ``exit_index`` (1-based), ``exit_mflops``, ``exit_confidence`` and
        ``exit_logits``."""
        res = self(inputs)
        scores = F.softmax(res.logits.detach().float(), dim=-1)
        if data_samples is None:
            data_samples = [None] * scores.size(0)
        out = []
        for i, (sample, score) in enumerate(zip(data_samples, scores)):
            sample = DataSample() if sample is None else sample
            sample.set_pred_score(score)
            sample.set_pred_label(res.pred[i:i + 1].to(score.device))
            sample.set_field(int(res.exit[i]), 'exit_index')
            sample.set_field(float(res.mflops[i]), 'exit_mflops')
            sample.set_field(float(res.confidence[i]), 'exit_confidence')
            sample.set_field(res.logits[i].detach(), 'exit_logits',
                             dtype=torch.Tensor)
            out.append(sample)
        return out


def early_exit_forward(model: nn.Module, inputs: torch.Tensor, thresholds,
                       exit_mflops: Optional[Sequence[float]] = None,
                       min_rows: int = DEFAULT_MIN_ROWS) -> EarlyExitResult:
    """One-shot :class:`EarlyExitPredictor` call (see there)."""
    return EarlyExitPredictor(model, thresholds, exit_mflops,
                              min_rows)(inputs)


# --------------------------------------------------------------------------
# predict mode from a config
# --------------------------------------------------------------------------
@MODELS.register_module()
class EarlyExitClassifier(MultiExitClassifier):
    """A :class:`~hdkd_mm.models.MultiExitClassifier` whose ``predict`` exits
    early (same parameters and checkpoints; training is unchanged).

    Args:
        early_exit (dict, optional): ``thresholds`` (K values, the last
            ignored), optionally ``exit_mflops`` (K cumulative costs; default
            computed from the input shape), ``min_rows`` and
            ``fast_kernels`` (route on an inference copy with BatchNorm
            folded and 1×1 convolutions as ``bmm``, see
            :mod:`hdkd_mm.evaluation.fast_inference`; the copy is made at
            the first prediction and again whenever the weights have changed
            since, e.g. after loading a checkpoint). ``None``: the plain
            all-exit ``predict``.
        **kwargs: as :class:`~hdkd_mm.models.MultiExitClassifier`.
    """

    def __init__(self, *args, early_exit: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.early_exit = None
        self._fast_kernels = False
        self._fast_copy = None  # (weights version, predictor on the copy)
        if early_exit is not None:
            self.set_early_exit(**early_exit)

    def set_early_exit(self, thresholds=None, exit_mflops=None,
                       min_rows: int = DEFAULT_MIN_ROWS,
                       fast_kernels: bool = False) -> None:
        """Switch early-exit prediction on (``thresholds``) or off
        (``None``)."""
        self._fast_copy = None
        self._fast_kernels = bool(fast_kernels)
        if thresholds is None:
            self.early_exit = None
            return
        self.early_exit = EarlyExitPredictor(self, thresholds, exit_mflops,
                                             min_rows)

    def _weights_version(self) -> tuple:
        """Changes whenever a parameter or buffer is written in place
        (``load_state_dict``, an optimizer step) or replaced."""
        return tuple((id(t), t._version) for t in
                     list(self.parameters()) + list(self.buffers()))

    def _fast_predictor(self) -> EarlyExitPredictor:
        from .fast_inference import optimize_for_inference
        version = self._weights_version()
        if self._fast_copy is None or self._fast_copy[0] != version:
            plain = self.early_exit
            self.early_exit, self._fast_copy = None, None  # not copied
            try:
                copy = optimize_for_inference(self)
            finally:
                self.early_exit = plain
            # the copy's costs equal the plain model's (same FLOP rules)
            predictor = EarlyExitPredictor(copy, plain.thresholds,
                                           plain.exit_mflops, plain.min_rows)
            self._fast_copy = (version, predictor)
        return self._fast_copy[1]

    def predict(self, inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None):
        if self.early_exit is None:
            return super().predict(inputs, data_samples)
        if self._fast_kernels:
            if self.training:
                raise RuntimeError(EVAL_MODE_NEEDED)
            return self._fast_predictor().predict(inputs, data_samples)
        return self.early_exit.predict(inputs, data_samples)


@METRICS.register_module()
class EarlyExitMetric(BaseMetric):
    """Accuracy and average cost of early-exit predictions.

    Reads ``exit_logits`` (else ``pred_score``), ``gt_label``,
    ``exit_index`` and ``exit_mflops`` (from :class:`EarlyExitClassifier`)
    and reports ``early_exit/top{k}`` for k in ``topk`` (percent),
    ``early_exit/mflops`` (mean cost) and ``early_exit/exit{j}_share``
    (fraction of samples leaving at exit j).

    Args:
        topk (Sequence[int]): default ``(1, 5)`` (the argument of
            ``MultiExitAccuracy`` too, so ``test_evaluator.type=
            EarlyExitMetric`` can replace it).
    """
    default_prefix: Optional[str] = None

    def __init__(self, topk: Sequence[int] = (1, 5),
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        topk = (topk, ) if isinstance(topk, int) else tuple(topk)
        if not topk or min(topk) < 1:
            raise ValueError(f'topk must be positive integers, got {topk}.')
        self.topk = topk

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            if 'exit_index' not in s:
                raise KeyError(
                    'EarlyExitMetric needs `exit_index` in the predicted data '
                    'samples: use it with an EarlyExitClassifier given '
                    '`early_exit=dict(thresholds=...)`.')
            # rank by the logits (as the simulated evaluation does) when
            # they are there: softmax can round close logits to a tie
            scores = s['exit_logits'] if 'exit_logits' in s \
                else s['pred_score']
            self.results.append(
                (scores.cpu().float(), int(s['gt_label'][0]),
                 int(s['exit_index']), float(s['exit_mflops'])))

    def compute_metrics(self, results: List) -> dict:
        scores = torch.stack([r[0] for r in results]).numpy()
        labels = np.array([r[1] for r in results])
        exits = np.array([r[2] for r in results])
        out = {
            f'early_exit/top{k}': 100.0 * float(
                topk_correct(scores[:, None], labels, k).mean())
            for k in self.topk
        }
        out['early_exit/mflops'] = float(np.mean([r[3] for r in results]))
        for j in range(1, int(exits.max()) + 1):
            out[f'early_exit/exit{j}_share'] = float((exits == j).mean())
        return out


# --------------------------------------------------------------------------
# a whole split (what tools/analysis/early_exit_infer.py runs)
# --------------------------------------------------------------------------
def parse_thresholds(spec) -> List[float]:
    """Thresholds from a JSON file (a list, or a dict with ``thresholds``) or
    from a string of numbers separated by commas and/or spaces (``inf``,
    ``-inf`` allowed), e.g. ``'0.9,0.8,-inf'``."""
    import json
    import os.path as osp
    if isinstance(spec, (list, tuple)):
        return [float(v) for v in spec]
    if osp.isfile(spec):
        with open(spec) as f:
            value = json.load(f)
        if isinstance(value, dict):
            value = value.get('thresholds')
        if not isinstance(value, list):
            raise ValueError(f'{spec}: expected a JSON list of thresholds or '
                             'a dict with a "thresholds" list.')
        return [float(v) for v in value]
    parts = spec.replace(',', ' ').split()
    try:
        return [float(v) for v in parts]
    except ValueError:
        raise ValueError(f'--thresholds {spec!r} is neither a file nor a '
                         'list of numbers such as "0.9,0.8,-inf"') from None


def thresholds_from_budget_json(path: str, budget_index, config=None,
                                checkpoint=None) -> List[float]:
    """The thresholds of budget ``budget_index`` (1-based ``p``, or
    ``'target'`` for the ``--budget`` result) of one model of a
    ``budgeted.json`` written by tools/analysis/budgeted_eval.py: the model
    evaluated with ``config`` (and ``checkpoint``, when the config appears
    more than once); a file with a single model needs no match."""
    import json
    import os.path as osp
    with open(path) as f:
        result = json.load(f)
    models = result.get('models', [])
    matches = models
    if len(matches) > 1 and config is not None:
        stem = osp.splitext(osp.basename(config))[0]
        matches = [m for m in models
                   if osp.abspath(m['config']) == osp.abspath(config)
                   or osp.splitext(osp.basename(m['config']))[0] == stem]
    if len(matches) > 1 and checkpoint is not None:
        matches = [m for m in matches if osp.abspath(m['checkpoint'])
                   == osp.abspath(checkpoint)]
    if len(matches) != 1:
        raise ValueError(
            f'{path}: cannot tell which model\'s thresholds to use for '
            f'{config} {checkpoint or ""}: it holds '
            f'{[(m["config"], m["checkpoint"]) for m in models]}.')
    model = matches[0]
    if str(budget_index) == 'target':
        if 'target' not in model:
            raise ValueError(f'{path}: no --budget result for '
                             f'{model["name"]}.')
        return [float(t) for t in model['target']['thresholds']]
    p = int(budget_index)
    budgets = {b['budget_index']: b for b in model['budgets']}
    if p not in budgets:
        raise ValueError(f'{path}: budget index {p} not in 1..'
                         f'{len(budgets)} for {model["name"]}.')
    return [float(t) for t in budgets[p]['thresholds']]


@torch.no_grad()
def evaluate_early_exit(model: nn.Module, dataloader, thresholds,
                        exit_mflops: Optional[Sequence[float]] = None,
                        verify: bool = False) -> dict:
    """Early-exit inference over a dataloader.

    Returns a JSON-ready dict: ``num_samples``, ``batch_size``,
    ``thresholds``, ``exit_mflops``, ``top1``/``top5`` (percent),
    ``mflops`` (mean per-sample cost), ``full_mflops``, ``exit_shares``,
    ``wall_time_s`` (routing forward passes only), ``total_time_s`` (with
    data loading), ``samples`` (``index``, ``label``, ``pred``, ``exit``
    1-based, ``mflops``) and, with ``verify``, ``verify`` (the simulated
    evaluation on each batch's full logits: numbers of samples whose exit or
    prediction differ, 0 expected).
    """
    import time

    from mmengine.runner import Runner

    from .budgeted import apply_thresholds
    if isinstance(dataloader, dict):
        dataloader = Runner.build_dataloader(dataloader)
    model.eval()
    predictor = EarlyExitPredictor(model, thresholds, exit_mflops)
    samples, top1, top5 = [], 0, 0
    wall, n_seen = 0.0, 0
    bad_exit = bad_pred = 0
    costs = None
    start = time.perf_counter()
    for data in dataloader:
        data = model.data_preprocessor(data, False)
        x = data['inputs']
        labels = torch.cat([s.gt_label for s in data['data_samples']]).cpu()
        t0 = time.perf_counter()
        res = predictor(x)
        wall += time.perf_counter() - t0
        costs = predictor.costs(x.shape[1:])
        scores = res.logits.detach().float().cpu().numpy()[:, None]
        y = labels.numpy()
        top1 += int(topk_correct(scores, y, 1).sum())
        top5 += int(topk_correct(scores, y, 5).sum())
        if verify:
            full = torch.stack(model(x, mode='tensor'), 1).float().cpu()
            conf, pred = exit_confidences(full.numpy())
            sim = apply_thresholds(conf, predictor.thresholds)
            bad_exit += int((sim != res.exit0).sum())
            bad_pred += int((pred[np.arange(len(sim)), sim]
                             != res.pred.numpy()).sum())
        for i in range(len(y)):
            samples.append(dict(index=n_seen + i, label=int(y[i]),
                                pred=int(res.pred[i]),
                                exit=int(res.exit[i]),
                                mflops=float(res.mflops[i])))
        n_seen += len(y)
    total = time.perf_counter() - start
    if not samples:
        raise ValueError('The dataloader gave no samples.')
    exits = np.array([s['exit'] for s in samples])
    out = dict(
        num_samples=n_seen,
        batch_size=getattr(dataloader, 'batch_size', None),
        thresholds=predictor.thresholds.tolist(),
        exit_mflops=[float(c) for c in costs],
        top1=100.0 * top1 / n_seen, top5=100.0 * top5 / n_seen,
        mflops=float(np.mean([s['mflops'] for s in samples])),
        full_mflops=float(costs[-1]),
        exit_shares=[float((exits == k + 1).mean())
                     for k in range(predictor.num_exits)],
        wall_time_s=wall, total_time_s=total,
        ms_per_image=1000.0 * wall / n_seen)
    if verify:
        out['verify'] = dict(mismatched_exits=bad_exit,
                             mismatched_preds=bad_pred)
    out['samples'] = samples
    return out
