"""Early-exit inference on ONNX Runtime, for a model exported by
``tools/deploy/export_early_exit.py``: the stages and exits run as ONNX
graphs, with the routing of :class:`hdkd_mm.evaluation.early_exit.
EarlyExitPredictor`.

**Dependencies: numpy, onnxruntime and the standard library only** (no
torch, mmengine or mmpretrain; tested in a subprocess). The exporter copies
this file into the export folder, so a deployment needs only that folder::

    import sys; sys.path.insert(0, 'DIR')
    from runtime import OnnxEarlyExit
    model = OnnxEarlyExit('DIR')
    out = model(model.preprocess(images))  # uint8 (N, H, W, C) or float
    out['pred'], out['exit']                # exit is 1-based

(with hdkd_mm installed, ``from hdkd_mm.deploy import OnnxEarlyExit`` is the
same class).

**Routing** (as the PyTorch router): stage 1 and exit 1 run on the whole
batch; a sample leaves at exit k when its confidence (``confidence`` in
``early_exit.json``, computed in float64 from the float32 logits) is ``>=``
threshold k; the state of the remaining samples is row-selected (numpy
indexing) before stage k + 1; the last exit takes every sample left (its
threshold is not read). A collaborative exit (inline subnetwork
collaboration) gets the previous exit's logits of the same rows as a second
input. ``min_rows``: sub-batches of fewer rows are padded with copies of
their first row, as the PyTorch router's guard against kernels whose
results depend on the batch size (see ``DEFAULT_MIN_ROWS``).
"""
import json
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

FORMAT = 'hdkd_mm.early_exit.onnx'
FORMAT_VERSION = 1
# ONNX Runtime's CPU kernels compute each row alike at any batch size
# (bitwise; tests/test_deploy.py checks it, tools/deploy/verify_export.py
# counts it on real data), so no padding is needed; the option is there for
# other execution providers.
DEFAULT_MIN_ROWS = 1

__all__ = ['OnnxEarlyExit', 'CONFIDENCES', 'confidence', 'thresholds_list',
           'load_spec', 'FORMAT', 'FORMAT_VERSION']


# --------------------------------------------------------------------------
# The confidence measures and the routing decision are
# hdkd_mm/evaluation/confidence.py and routing.py themselves (numpy only), so
# that the runtime decides exactly as the PyTorch router and the simulation.
# Imported as part of hdkd_mm they are the package modules; loaded from an
# export folder they are the copies the exporter put next to this file
# (loading them by path does not run hdkd_mm/__init__.py, which imports the
# OpenMMLab stack).
# --------------------------------------------------------------------------
def _evaluation_module(name: str):
    import importlib
    import importlib.util
    path = osp.join(osp.dirname(osp.abspath(__file__)), f'{name}.py')
    if osp.isfile(path):  # an export folder
        spec = importlib.util.spec_from_file_location(f'_hdkd_mm_{name}',
                                                      path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    if __package__:  # hdkd_mm.deploy
        return importlib.import_module(
            __package__.rsplit('.', 1)[0] + f'.evaluation.{name}')
    raise ImportError(f'{name}.py is missing next to {__file__}: copy the '
                      'whole export folder')


_conf = _evaluation_module('confidence')
_routing = _evaluation_module('routing')
CONFIDENCES = _conf.CONFIDENCES
confidence = _conf.confidence  # (logits, name) -> (conf float64, pred)


# --------------------------------------------------------------------------
# the JSON
# --------------------------------------------------------------------------
def thresholds_list(values, num_exits: int, where: str) -> np.ndarray:
    """K per-exit thresholds as float64; entries may be numbers or the
    strings ``'inf'``/``'-inf'`` (JSON has no infinities); no NaN. (The
    rule of :func:`hdkd_mm.evaluation.thresholds.check_thresholds`, which
    this file cannot import without the package's OpenMMLab imports.)"""
    try:
        thr = np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f'{where}: thresholds must be {num_exits} numbers '
                         f'(or "inf"/"-inf"), one per exit; got '
                         f'{values!r}') from None
    if thr.shape != (num_exits, ):
        raise ValueError(
            f'{where}: thresholds must have one value per exit, K = '
            f'{num_exits} (the last is not read: write "-inf"); got '
            f'{thr.size}: {list(values)!r}')
    if np.isnan(thr).any():
        raise ValueError(f'{where}: thresholds must not be NaN; got '
                         f'{list(values)!r}')
    return thr


_REQUIRED = ('format', 'format_version', 'num_exits', 'input', 'stages',
             'exits', 'thresholds', 'confidence', 'exit_mflops')


def load_spec(path: str) -> dict:
    """Read and check ``early_exit.json`` (clear errors naming the key)."""
    with open(path) as f:
        spec = json.load(f)
    missing = [k for k in _REQUIRED if k not in spec]
    if missing:
        raise ValueError(f'{path}: missing keys {missing}; re-export with '
                         'tools/deploy/export_early_exit.py')
    if spec['format'] != FORMAT or spec['format_version'] != FORMAT_VERSION:
        raise ValueError(
            f'{path}: format {spec["format"]!r} version '
            f'{spec["format_version"]!r}; this runtime reads {FORMAT!r} '
            f'version {FORMAT_VERSION}: re-export the model')
    k = spec['num_exits']
    if len(spec['stages']) != k or len(spec['exits']) != k:
        raise ValueError(f'{path}: num_exits = {k} but {len(spec["stages"])}'
                         f' stages and {len(spec["exits"])} exits')
    if spec['confidence'] not in CONFIDENCES:
        raise ValueError(
            f'{path}: "confidence": {spec["confidence"]!r} is not a known '
            f'confidence measure; use one of {", ".join(CONFIDENCES)} (the '
            'measure the thresholds were fitted with)')
    thresholds_list(spec['thresholds'], k, f'{path}: "thresholds"')
    costs = spec['exit_mflops']
    if len(costs) != k or not all(math.isfinite(float(c)) for c in costs):
        raise ValueError(f'{path}: "exit_mflops" must hold {k} finite '
                         f'cumulative costs; got {costs!r}')
    return spec


# --------------------------------------------------------------------------
# the runtime
# --------------------------------------------------------------------------
class OnnxEarlyExit:
    """Early-exit inference on ONNX Runtime from an export folder.

    Args:
        path: the export folder (or its ``early_exit.json``).
        thresholds: K values overriding the exported ones (last not read).
        providers: ONNX Runtime execution providers (default: CPU).
        intra_op_threads: threads per operator (ONNX Runtime's default when
            ``None``; 1 for side-by-side timing with ``OMP_NUM_THREADS=1``).
        min_rows: smallest sub-batch the later stages run on (padding
            copies of a row, never beyond the input batch size).
        optimization: ONNX Runtime graph optimisation level, ``'all'``
            (default), ``'extended'``, ``'basic'`` or ``'disable'``.
    """

    def __init__(self, path: str, thresholds: Optional[Sequence] = None,
                 providers: Optional[List[str]] = None,
                 intra_op_threads: Optional[int] = None,
                 min_rows: int = DEFAULT_MIN_ROWS,
                 optimization: str = 'all'):
        import onnxruntime as ort
        self.root = path if osp.isdir(path) else osp.dirname(path)
        json_path = osp.join(self.root, 'early_exit.json') \
            if osp.isdir(path) else path
        self.spec = load_spec(json_path)
        self.num_exits = int(self.spec['num_exits'])
        self.confidence_name = self.spec['confidence']
        self.exit_mflops = np.array(self.spec['exit_mflops'], np.float64)
        self.thresholds = thresholds_list(
            self.spec['thresholds'] if thresholds is None else thresholds,
            self.num_exits, json_path if thresholds is None else
            'OnnxEarlyExit(thresholds=...)')
        if int(min_rows) != min_rows or min_rows < 1:
            raise ValueError(f'min_rows must be a positive integer; got '
                             f'{min_rows!r}')
        self.min_rows = int(min_rows)
        levels = dict(all='ORT_ENABLE_ALL', extended='ORT_ENABLE_EXTENDED',
                      basic='ORT_ENABLE_BASIC', disable='ORT_DISABLE_ALL')
        if optimization not in levels:
            raise ValueError(f'optimization must be one of {list(levels)}; '
                             f'got {optimization!r}')
        opts = ort.SessionOptions()
        opts.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, levels[optimization])
        opts.inter_op_num_threads = 1
        if intra_op_threads is not None:
            opts.intra_op_num_threads = int(intra_op_threads)
        providers = providers or ['CPUExecutionProvider']

        def session(name):
            return ort.InferenceSession(osp.join(self.root, name), opts,
                                        providers=providers)

        start = self.spec.get('start')
        self._start = None if start is None else (session(start['file']),
                                                  start)
        self._stages = []
        for s in self.spec['stages']:
            # the feature may be one of the state outputs (MSDNet: the
            # coarsest scale map) or an output of its own
            fetch = list(s['outputs'])
            if s['feature'] not in fetch:
                fetch.append(s['feature'])
            self._stages.append((session(s['file']), s, fetch,
                                 fetch.index(s['feature'])))
        self._exits = [(session(e['file']), e) for e in self.spec['exits']]
        inp = self.spec['input']
        self.input_shape = tuple(inp['shape'])
        self.class_names = self.spec.get('classes')

    # ---------------------------------------------------------------- pieces
    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """Raw images -> the network's float32 ``(N, C, H, W)`` input:
        ``(x - mean) / std`` per channel (the config's data_preprocessor).
        ``images``: ``(N, C, H, W)`` or ``(N, H, W, C)`` (channels last when
        the last axis has C entries and the second does not) at the
        exported size, any numeric dtype. The geometric test transforms
        (``spec['input']['test_pipeline']``) are the caller's."""
        inp = self.spec['input']
        x = np.asarray(images)
        c = self.input_shape[0]
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4:
            raise ValueError(f'images must be (N, C, H, W) or (N, H, W, C); '
                             f'got shape {x.shape}')
        if x.shape[1] != c and x.shape[-1] == c:
            x = x.transpose(0, 3, 1, 2)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f'images of shape {x.shape[1:]} (C, H, W); the '
                             f'model was exported for {self.input_shape}')
        if inp.get('to_rgb'):
            x = x[:, ::-1]
        x = x.astype(np.float32)
        mean = np.array(inp['mean'], np.float32).reshape(1, -1, 1, 1)
        std = np.array(inp['std'], np.float32).reshape(1, -1, 1, 1)
        return np.ascontiguousarray((x - mean) / std)

    def start(self, x: np.ndarray) -> List[np.ndarray]:
        """The state before stage 1 (the input, or the start graph's
        outputs)."""
        if self._start is None:
            return [x]
        sess, s = self._start
        return sess.run(s['outputs'], {s['inputs'][0]: x})

    def run_stage(self, k: int, state: List[np.ndarray]):
        """Stage ``k`` (0-based): ``(new state, exit feature)``; the last
        stage returns an empty state."""
        sess, s, fetch, feat_at = self._stages[k]
        out = sess.run(fetch, dict(zip(s['inputs'], state)))
        return out[:len(s['outputs'])], out[feat_at]

    def run_exit(self, k: int, feature: np.ndarray,
                 prev_logits: Optional[np.ndarray]) -> np.ndarray:
        """Exit ``k``'s (0-based) float32 logits ``(m, num_classes)``."""
        sess, e = self._exits[k]
        feed = {e['inputs'][0]: feature}
        if len(e['inputs']) > 1:
            feed[e['inputs'][1]] = prev_logits
        return sess.run(e['outputs'], feed)[0]

    def all_exits(self, x: np.ndarray) -> np.ndarray:
        """Every exit's logits ``(N, K, num_classes)`` (no routing)."""
        state, z, out = self.start(self._check(x)), None, []
        for k in range(self.num_exits):
            state, feat = self.run_stage(k, state)
            z = self.run_exit(k, feat, z)
            out.append(z)
        return np.stack(out, 1)

    def _check(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype != np.float32 or x.ndim != 4 or \
                tuple(x.shape[1:]) != self.input_shape or not len(x):
            raise ValueError(
                f'expected a non-empty float32 batch (N, '
                f'{", ".join(map(str, self.input_shape))}) of preprocessed '
                f'images (see preprocess()); got {x.dtype} {x.shape}')
        return np.ascontiguousarray(x)

    # --------------------------------------------------------------- routing
    def __call__(self, x: np.ndarray) -> Dict[str, np.ndarray]:
        """Route a batch of preprocessed float32 images ``(N, C, H, W)``
        (the decisions: ``routing.route``, as the PyTorch router's).

        Returns a dict of per-sample arrays (input order): ``pred`` int64,
        ``exit`` int64 (1-based), ``confidence`` float64, ``mflops``
        float64 (cumulative cost of the exit taken), ``logits`` float32
        ``(N, num_classes)`` of the exit taken; and ``rows``, the rows
        stage/exit k ran on (padding copies included).
        """
        x = self._check(x)
        n = x.shape[0]
        # the current rows: the state and exit k's logits (exit k + 1 of a
        # collaborative head reads them)
        cur = dict(state=self.start(x), logits=None)
        out = {}

        def advance(k):
            cur['state'], feat = self.run_stage(k, cur['state'])
            cur['logits'] = self.run_exit(k, feat, cur['logits'])
            return int(feat.shape[0])

        def score(m):
            return confidence(cur['logits'][:m], self.confidence_name)

        def take(global_rows, local_rows):
            z = cur['logits']
            if 'logits' not in out:
                out['logits'] = np.empty((n, ) + z.shape[1:], z.dtype)
            out['logits'][global_rows] = z[local_rows]

        def keep(local_rows):
            cur['state'] = [np.ascontiguousarray(s[local_rows])
                            for s in cur['state']]
            cur['logits'] = np.ascontiguousarray(cur['logits'][local_rows])

        pred, exit_, conf, rows = _routing.route(
            n, self.thresholds, self.min_rows, advance, score, take, keep)
        return dict(pred=pred, exit=exit_, confidence=conf,
                    mflops=self.exit_mflops[exit_ - 1], logits=out['logits'],
                    rows=rows)
