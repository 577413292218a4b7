"""Export a trained multi-exit model for early exit on ONNX Runtime.

    python tools/deploy/export_early_exit.py CONFIG CKPT \\
        (--thresholds FILE_OR_VALUES | --budget-json DIR/budgeted.json
         --budget-index P) --out DIR [--confidence NAME] [--opset 17]

Writes to DIR one ONNX graph per backbone stage (``stage_k.onnx``, plus
``start.onnx`` when the backbone's exit protocol computes something before
stage 1) and per exit classifier (``exit_k.onnx``), ``early_exit.json``
(format version, input shape and normalisation, the graphs and their state
inputs/outputs, thresholds, confidence measure, cumulative per-exit MFLOPs,
class names) and ``runtime.py`` (:mod:`hdkd_mm.deploy.runtime`: numpy +
onnxruntime only) with the ``confidence.py`` and ``routing.py`` it reads. Run it with::

    python -c "import sys; sys.path.insert(0, 'DIR'); \\
        from runtime import OnnxEarlyExit; m = OnnxEarlyExit('DIR')"

``--thresholds``: K values (the last is not read; write -inf), as
``--thresholds=0.9,0.8,-inf`` or a JSON file with a list or
``{"thresholds": [...], "confidence": ...}``;
``--budget-json``/``--budget-index``: budget p (1..39, or ``target``) of
this config's model in a budgeted.json of tools/analysis/budgeted_eval.py.
``--confidence``: the measure the thresholds were fitted with (default: what
the file records, else max_softmax; a different request is refused). ``tools/deploy/verify_export.py`` compares
the export with the PyTorch early exit on the test split.
"""
import argparse
import json
import sys

from mmengine.config import DictAction

import hdkd_mm  # noqa: F401
from hdkd_mm.analysis.flops import default_input_shape, exit_costs
from hdkd_mm.deploy.export import export_early_exit
from hdkd_mm.evaluation.budgeted_eval import test_loader_cfg
from hdkd_mm.evaluation.thresholds import (add_threshold_args,
                                           check_threshold_args,
                                           check_thresholds,
                                           select_thresholds)
from hdkd_mm.evaluation.inference import build_model_from_checkpoint
from hdkd_mm.launch import load_config, prepare_config
from hdkd_mm.models.exits import UnsupportedBackboneError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    add_threshold_args(parser)
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    check_threshold_args(parser, args)
    return args


def class_names(cfg, checkpoint):
    """From the checkpoint's ``meta.dataset_meta``, else the test data set
    class's ``METAINFO``; ``None`` when neither has them."""
    import torch
    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=False)
    classes = (ckpt.get('meta') or {}).get('dataset_meta', {}) \
        .get('classes') if isinstance(ckpt, dict) else None
    if classes:
        return list(classes)
    from mmpretrain.registry import DATASETS
    kind = cfg.test_dataloader.dataset.get('type')
    cls = DATASETS.get(kind) if isinstance(kind, str) else kind
    classes = getattr(cls, 'METAINFO', {}).get('classes')
    return list(classes) if classes else None


def run(args) -> dict:
    thresholds, confidence, source = select_thresholds(
        args.thresholds, args.budget_json, args.budget_index, args.config,
        args.checkpoint, args.confidence)
    cfg = prepare_config(load_config(args.config, args.cfg_options),
                         args.config)
    model = build_model_from_checkpoint(cfg, args.checkpoint)
    check_thresholds(thresholds, model.num_exits)
    shape = default_input_shape(cfg)
    costs = [r['mflops'] for r in exit_costs(model, shape)]
    pipeline = test_loader_cfg(cfg, args.config)['dataset'].get('pipeline')
    pipeline = json.loads(json.dumps(pipeline or [], default=str))
    return export_early_exit(
        model, args.out, thresholds, shape, costs, confidence=confidence,
        classes=class_names(cfg, args.checkpoint), test_pipeline=pipeline,
        source=dict(config=args.config, checkpoint=args.checkpoint,
                    thresholds=source), opset=args.opset)


def main(argv=None):
    args = parse_args(argv)
    try:
        spec = run(args)
    except (ValueError, FileNotFoundError, UnsupportedBackboneError,
            RuntimeError) as err:
        sys.exit(f'export_early_exit: error: {err}')
    graphs = ([spec['start']['file']] if spec['start'] else []) + [
        s['file'] for s in spec['stages']] + [e['file'] for e in spec['exits']]
    print(f"exported {spec['num_exits']} stages and exits ({', '.join(graphs)}"
          f") to {args.out}: thresholds {spec['thresholds']}, confidence "
          f"{spec['confidence']}, exit MFLOPs "
          + ' / '.join(f'{c:.3f}' for c in spec['exit_mflops']))


if __name__ == '__main__':
    main()
