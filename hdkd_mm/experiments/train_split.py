"""Every exit's top-1/top-5 on the **training subset** a model was trained
on, seen through the test pipeline (no augmentation): whether a run fits its
training set (the regime of the low-data comparisons).

    python -m hdkd_mm.experiments.train_split CONFIG CKPT --out FILE.json \\
        [--cfg-options ...]

writes ``{"split": "train", "config", "checkpoint", "num_samples",
"train_exits": [{"exit", "top1", "top5", "mflops"}, ...]}``. The key is
``train_exits`` (not ``exits``) on purpose, so that the comparison tools,
which collect anytime results recursively, never mistake it for a test-split
result.
"""
import argparse
import copy
import json
import os
import os.path as osp


def train_loader_cfg(cfg) -> dict:
    """``cfg.train_dataloader`` with the test pipeline, unshuffled, without
    ``drop_last``, at the test batch size."""
    loader = copy.deepcopy(cfg.train_dataloader.to_dict()
                           if hasattr(cfg.train_dataloader, 'to_dict')
                           else dict(cfg.train_dataloader))
    test_ds = cfg.test_dataloader['dataset']
    if 'pipeline' not in test_ds:
        raise ValueError('test_dataloader.dataset has no pipeline to '
                         'evaluate the training subset with.')
    loader['dataset']['pipeline'] = copy.deepcopy(test_ds['pipeline'])
    loader['sampler'] = dict(type='DefaultSampler', shuffle=False)
    loader['drop_last'] = False
    loader['batch_size'] = cfg.test_dataloader.get('batch_size',
                                                   loader['batch_size'])
    return loader


def train_split_eval(config: str, checkpoint: str, cfg_options=None) -> dict:
    import hdkd_mm  # noqa: F401
    from hdkd_mm.evaluation.inference import per_exit_results
    from hdkd_mm.launch import load_config, prepare_config
    cfg = prepare_config(load_config(config, cfg_options), config)
    exits, num_samples = per_exit_results(cfg, checkpoint,
                                          train_loader_cfg(cfg))
    return dict(split='train', pipeline='test', config=config,
                checkpoint=checkpoint, num_samples=num_samples,
                train_exits=exits)


def main(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='JSON file to write')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    result = train_split_eval(args.config, args.checkpoint, args.cfg_options)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    tmp = args.out + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, args.out)
    for row in result['train_exits']:
        print(f"exit {row['exit']}: train top-1 {row['top1']:.2f}")


if __name__ == '__main__':
    main()
