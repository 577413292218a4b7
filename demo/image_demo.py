"""Classify images with a multi-exit model: every exit's prediction, or the
exit each image takes with early exit and its cost.

    python demo/image_demo.py IMAGE_OR_FOLDER CONFIG --checkpoint CKPT
    python demo/image_demo.py IMAGE_OR_FOLDER CONFIG --checkpoint CKPT \\
        --thresholds 0.93,0.68,0.52,-inf     # or a JSON file of thresholds

Prints one block per image and, with ``--out``, writes the results as JSON
(``MultiExitInferencer``'s dicts; the score arrays as lists).
"""
import json
import os.path as osp
import sys
from argparse import ArgumentParser

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from hdkd_mm.apis import MultiExitInferencer  # noqa: E402


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('img', help='an image file or a folder of images')
    parser.add_argument('model', help='config file (or model name)')
    parser.add_argument('--checkpoint', help='checkpoint file (default: the '
                        "config's load_from; none: random weights)")
    parser.add_argument(
        '--thresholds',
        help='early exit: K per-exit max-softmax thresholds separated by '
        'commas (the last one is ignored; "-inf" is conventional), or a JSON '
        'file with a list or {"thresholds": [...]}')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--device', default=None, help='e.g. cpu, cuda:0')
    parser.add_argument('--show', action='store_true',
                        help='show each image with its prediction')
    parser.add_argument('--show-dir', help='save each image drawn with its '
                        'prediction (the last exit\'s, or the exit taken)')
    parser.add_argument('--out', help='write the results as JSON')
    return parser.parse_args(argv)


def describe(path, result) -> str:
    """A short text block for one image."""
    lines = [str(path)]
    if 'exit_scores' in result:
        names = result.get('exit_classes') or [None] * len(
            result['exit_labels'])
        for k, (label, scores, name) in enumerate(
                zip(result['exit_labels'], result['exit_scores'], names), 1):
            lines.append(f'  exit {k}: {label}'
                         + (f' ({name})' if name else '')
                         + f'  score {float(scores[label]):.3f}')
    else:
        name = result.get('pred_class')
        lines.append(
            f"  exit {result['exit_index']} taken: {result['pred_label']}"
            + (f' ({name})' if name else '')
            + f"  score {result['pred_score']:.3f}, "
            f"cost {result['exit_mflops']:.2f} MFLOPs")
    return '\n'.join(lines)


def to_json(value):
    if hasattr(value, 'tolist'):
        return value.tolist()
    return value


def main(argv=None):
    args = parse_args(argv)
    early_exit = None
    if args.thresholds is not None:
        from hdkd_mm.evaluation.thresholds import parse_thresholds
        early_exit = dict(thresholds=parse_thresholds(args.thresholds))
    inferencer = MultiExitInferencer(
        args.model, pretrained=args.checkpoint or True, device=args.device,
        early_exit=early_exit)
    inputs = inferencer._inputs_to_list(args.img)
    if osp.isdir(args.img):
        inputs = sorted(inputs)
    results = inferencer(inputs, batch_size=args.batch_size, show=args.show,
                         show_dir=args.show_dir)
    print()  # after MMPretrain's progress bar, which ends without one
    for path, result in zip(inputs, results):
        print(describe(path, result))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump([dict(img=str(path),
                            **{k: to_json(v) for k, v in result.items()})
                       for path, result in zip(inputs, results)], f,
                      indent=1)
        print(f'wrote {args.out}')
    return results


if __name__ == '__main__':
    main()
