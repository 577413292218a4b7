"""Early-exit thresholds: validation, and reading them from the command line,
a JSON file or a ``budgeted.json`` of ``tools/analysis/budgeted_eval.py``,
together with the confidence measure they were fitted with.

Thresholds only mean something for the confidence measure they were fitted
with (:mod:`hdkd_mm.evaluation.confidence`): ``budgeted.json`` records it
(files written before it did were max-softmax), and a request for another
measure is refused.
"""
import argparse
import json
import os
import os.path as osp
from typing import List, Optional, Tuple

import numpy as np

from .confidence import CONFIDENCES, DEFAULT_CONFIDENCE, check_confidence

__all__ = ['check_thresholds', 'resolve_confidence', 'load_thresholds',
           'parse_thresholds', 'thresholds_from_budget_json',
           'select_thresholds', 'add_threshold_args', 'check_threshold_args']


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


def resolve_confidence(recorded: Optional[str], requested: Optional[str],
                       source: str = 'the thresholds') -> str:
    """The confidence measure to route with: the requested one, else the
    recorded one, else max-softmax.

    Raises:
        ValueError: an unknown name, or a request that differs from what
            the thresholds were fitted with.
    """
    if requested is not None:
        check_confidence(requested)
    if recorded is not None:
        check_confidence(recorded)
        if requested is not None and requested != recorded:
            raise ValueError(
                f'{source} were fitted with the {recorded!r} confidence, '
                f'not {requested!r}: route with confidence={recorded!r} '
                f'(--confidence {recorded}) or refit the thresholds with '
                f'tools/analysis/budgeted_eval.py --confidence {requested}.')
        return recorded
    return requested or DEFAULT_CONFIDENCE


def load_thresholds(spec, confidence: Optional[str] = None
                    ) -> Tuple[List[float], str]:
    """Thresholds and confidence measure from a JSON file (a list, or a
    dict with ``thresholds`` and optionally ``confidence``) or from a string
    of numbers separated by commas and/or spaces (``inf``, ``-inf``
    allowed), e.g. ``'0.9,0.8,-inf'``; ``confidence`` is the requested
    measure (see :func:`resolve_confidence`)."""
    recorded = None
    if not isinstance(spec, (str, os.PathLike)):  # a sequence of numbers
        values = list(spec)
    elif osp.isfile(spec):
        with open(spec) as f:
            values = json.load(f)
        if isinstance(values, dict):
            recorded = values.get('confidence')
            values = values.get('thresholds')
        if not isinstance(values, list):
            raise ValueError(f'{spec}: expected a JSON list of thresholds or '
                             'a dict with a "thresholds" list.')
    else:
        values = spec.replace(',', ' ').split()
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f'--thresholds {spec!r} is neither a file nor a '
                         'list of numbers such as "0.9,0.8,-inf"') from None
    return values, resolve_confidence(recorded, confidence, str(spec))


def parse_thresholds(spec) -> List[float]:
    """The thresholds of :func:`load_thresholds`."""
    return load_thresholds(spec)[0]


def thresholds_from_budget_json(path: str, budget_index, config=None,
                                checkpoint=None,
                                confidence: Optional[str] = None
                                ) -> Tuple[List[float], str]:
    """The thresholds of budget ``budget_index`` (1-based ``p``, or
    ``'target'`` for the ``--budget`` result) of one model of a
    ``budgeted.json``, and the confidence measure they were fitted with
    (``confidence``, when given, must be it). The model is the one
    evaluated with ``config`` (and ``checkpoint``, when the config appears
    more than once); a file with a single model needs no match."""
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
    # files written before the option existed were fitted with max-softmax
    recorded = model.get('confidence',
                         result.get('confidence', DEFAULT_CONFIDENCE))
    confidence = resolve_confidence(recorded, confidence, path)
    if str(budget_index) == 'target':
        if 'target' not in model:
            raise ValueError(f'{path}: no --budget result for '
                             f'{model["name"]}.')
        return [float(t) for t in model['target']['thresholds']], confidence
    p = int(budget_index)
    budgets = {b['budget_index']: b for b in model['budgets']}
    if p not in budgets:
        raise ValueError(f'{path}: budget index {p} not in 1..'
                         f'{len(budgets)} for {model["name"]}.')
    return [float(t) for t in budgets[p]['thresholds']], confidence


def select_thresholds(thresholds=None, budget_json: Optional[str] = None,
                      budget_index=None, config=None, checkpoint=None,
                      confidence: Optional[str] = None
                      ) -> Tuple[List[float], str, str]:
    """The thresholds a tool was given, by one of its two options:
    ``thresholds`` (values or a JSON file, :func:`load_thresholds`) or
    ``budget_json`` + ``budget_index`` (:func:`thresholds_from_budget_json`).

    Returns ``(thresholds, confidence measure, where they came from)``.
    """
    if thresholds is not None:
        values, confidence = load_thresholds(thresholds, confidence)
        return values, confidence, str(thresholds)
    if budget_json is None or budget_index is None:
        raise ValueError('give the thresholds (--thresholds) or a '
                         'budgeted.json and a budget (--budget-json J '
                         '--budget-index P)')
    values, confidence = thresholds_from_budget_json(
        budget_json, budget_index, config, checkpoint, confidence)
    return values, confidence, f'{budget_json} budget {budget_index}'


def add_threshold_args(parser: argparse.ArgumentParser) -> None:
    """The thresholds options of an early-exit tool (the arguments of
    :func:`select_thresholds`): ``--thresholds FILE_OR_VALUES`` or
    ``--budget-json JSON --budget-index P``, and ``--confidence``."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument('--thresholds', metavar='FILE_OR_VALUES')
    src.add_argument('--budget-json', metavar='JSON')
    parser.add_argument('--budget-index', metavar='P',
                        help='budget p (1-based) or "target"; with '
                        '--budget-json')
    parser.add_argument('--confidence', choices=CONFIDENCES,
                        help='the confidence measure the thresholds were '
                        'fitted with (default: what the thresholds file or '
                        'budgeted.json records, else max_softmax)')


def check_threshold_args(parser: argparse.ArgumentParser,
                         args: argparse.Namespace) -> None:
    """Refuse (``parser.error``) what argparse cannot: ``--budget-json``
    without ``--budget-index``."""
    if args.budget_json and args.budget_index is None:
        parser.error('--budget-json needs --budget-index P')
