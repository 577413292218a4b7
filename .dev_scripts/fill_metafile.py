"""Create or refresh the ``Models`` of ``configs/<folder>/metafile.yml``
(maintainer script; the model index's layout is MMPretrain's).

    python .dev_scripts/fill_metafile.py [FOLDER ...]   # default: every folder

For every config under ``configs/<folder>/`` (``_base_`` folders excepted) it
writes one entry named after the config, and (re)computes from the config:

* ``FLOPs`` / ``Parameters``: the last exit's cumulative cost, from
  ``tools/analysis/get_flops.py`` (the MSDNet reference convention), and
  ``Exit MFLOPs``: every exit's, as that tool prints them;
* ``Exits``, ``Epochs``, ``Batch Size`` (N × B of the ``NxbB`` in the name,
  else the config's batch size), ``Training Data``, ``Architecture``;
* ``In Collection``: the training scheme's collection (``SCHEMES``);
* ``Config``.

Everything else is kept as written: the ``Collections`` block (paper, README),
the ``Results`` (only measured numbers: docs/results.md and the README's demo
tables) and any note. No ``Weights`` key is ever added: no trained weights
are published. Aliases (a config that is only ``_base_ = ['./other.py']``,
kept for an old path) and configs that read another run's checkpoint (the
Fixed-γ ablation) get no entry. The table between the ``<!-- models -->``
markers of the folder's README.md is rewritten from the entries.
``tests/test_model_index.py`` checks the computed fields.
"""
import argparse
import ast
import glob
import importlib.util
import os.path as osp
import re
import sys

import yaml

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# DenseKDLoss scheme -> the collection (one per scheme, in its folder's
# metafile) that every config trained with it belongs to.
SCHEMES = {
    'msdnet': 'MSDNet', 'dbt': 'DBT', 'naive_dkd': 'NaiveDKD', 'impr': 'Impr',
    'hmsdnet': 'HMSDNet', 'hdbt': 'HDBT', 'hdkd': 'HDKD'}
DATASETS = {
    'LocalFashionMNIST': 'Fashion-MNIST', 'FashionMNIST': 'Fashion-MNIST',
    'CIFAR100': 'CIFAR-100', 'LocalCIFAR100': 'CIFAR-100',
    'CIFAR10': 'CIFAR-10', 'LocalCIFAR10': 'CIFAR-10',
    'ImageNet': 'ImageNet-1k', 'LocalImageNet': 'ImageNet-1k'}
# CustomDataset folders, by the name of their data_root.
FOLDERS = {'cifar10_jpg': 'CIFAR-10 JPEG folder'}
COMPUTED = ('Training Data', 'Epochs', 'Iterations', 'Batch Size', 'FLOPs', 'Parameters',
            'Exits', 'Exit MFLOPs', 'Architecture')


def is_alias(path: str) -> bool:
    """A config whose only statement is ``_base_ = ['<one config>']``."""
    with open(path) as f:
        body = ast.parse(f.read()).body
    if len(body) != 1 or not isinstance(body[0], ast.Assign):
        return False
    (target,), value = body[0].targets, body[0].value
    return (isinstance(target, ast.Name) and target.id == '_base_'
            and isinstance(value, (ast.List, ast.Tuple))
            and len(value.elts) == 1)


def needs_a_trained_run(path: str) -> bool:
    """A config whose model reads γ from another run's checkpoint
    (``loss_weights.init='fixed'``, the Fixed-γ ablation): it has no model
    that builds on its own."""
    from mmengine.config import Config
    loss_weights = Config.fromfile(path).model.get('loss_weights') or {}
    return loss_weights.get('init') == 'fixed'


def index_configs(folder: str) -> list:
    """The configs of ``configs/<folder>`` that the index lists (relative
    to the repository): every ``*.py`` outside ``_base_``, but aliases and
    configs that need a trained run."""
    paths = glob.glob(osp.join(ROOT, 'configs', folder, '**', '*.py'),
                      recursive=True)
    return sorted(
        osp.relpath(p, ROOT) for p in paths
        if '_base_' not in osp.relpath(p, ROOT).split(osp.sep)
        and not is_alias(p) and not needs_a_trained_run(p))


def load_get_flops():
    spec = importlib.util.spec_from_file_location(
        'get_flops', osp.join(ROOT, 'tools', 'analysis', 'get_flops.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def training_data(cfg) -> str:
    """The training set's name, with ``(X per class)`` for a subset."""
    dataset = cfg.train_dataloader.dataset
    per_class = None
    while 'dataset' in dataset:  # wrappers: HeldOutSplit, ...
        per_class = per_class or dataset.get('per_class')
        dataset = dataset.dataset
    name = DATASETS.get(dataset.type)
    if dataset.type == 'CustomDataset':
        name = FOLDERS.get(osp.basename(str(dataset.data_root).rstrip('/')))
    if not name:
        raise KeyError(f'training data {dataset.type!r} ({dataset.get("data_root")}):'
                       ' add it to DATASETS or FOLDERS in '
                       '.dev_scripts/fill_metafile.py')
    return f'{name} ({per_class} per class)' if per_class else name


def architecture(cfg) -> list:
    backbone = cfg.model.backbone
    arch = [backbone.get('model_name', backbone.type)]
    return arch + [cfg.model.head.type]


def computed_metadata(config: str, get_flops):
    """The computed ``Metadata`` of ``config`` and its collection."""
    from hdkd_mm.launch import load_config
    cfg = load_config(osp.join(ROOT, config))
    exits = get_flops.get_flops(osp.join(ROOT, config))['exits']
    name = osp.splitext(osp.basename(config))[0]
    batch = cfg.train_dataloader.batch_size
    match = re.search(r'_(\d+)xb(\d+)', name)
    meta = {'Training Data': training_data(cfg)}
    if cfg.train_cfg.get('max_epochs'):
        meta['Epochs'] = cfg.train_cfg.max_epochs
    else:
        meta['Iterations'] = cfg.train_cfg.max_iters
    meta['Batch Size'] = int(match.group(1)) * batch if match else batch
    meta['FLOPs'] = round(exits[-1]['mflops'] * 1e6)
    meta['Parameters'] = round(exits[-1]['params_m'] * 1e6)
    meta['Exits'] = len(exits)
    meta['Exit MFLOPs'] = ' / '.join(str(e['mflops']) for e in exits)
    meta['Architecture'] = architecture(cfg)
    return meta, SCHEMES[cfg.model.head.loss.scheme]


def fill(folder: str, get_flops) -> None:
    path = osp.join(ROOT, 'configs', folder, 'metafile.yml')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: write its Collections (or an empty '
                                '`Models: []`) first')
    with open(path) as f:
        meta = yaml.safe_load(f) or {}
    old = {m['Config']: m for m in meta.get('Models') or []}
    models = []
    for config in index_configs(folder):
        computed, collection = computed_metadata(config, get_flops)
        entry = old.pop(config, {})
        name = osp.splitext(osp.basename(config))[0]
        kept_meta = {k: v for k, v in (entry.get('Metadata') or {}).items()
                     if k not in COMPUTED}
        model = {'Name': name, 'In Collection': collection,
                 'Metadata': {**computed, **kept_meta}}
        for key, value in entry.items():
            if key not in ('Name', 'In Collection', 'Metadata', 'Config'):
                model[key] = value
        model['Config'] = config
        models.append(model)
        print(f'{config}: {computed["Exit MFLOPs"]} MFLOPs')
    for config in old:
        print(f'dropped {config} (no such config)', file=sys.stderr)
    meta['Models'] = models
    with open(path, 'w') as f:
        yaml.safe_dump(meta, f, sort_keys=False, allow_unicode=True,
                       width=100)
    write_readme_table(folder, models)


def _result_cell(model) -> str:
    for result in model.get('Results') or []:
        metrics = result['Metrics']
        exits = [metrics[f'Exit {k} Top 1 Accuracy']
                 for k in range(1, model['Metadata']['Exits'] + 1)]
        return ' / '.join(f'{v:.2f}' for v in exits) + \
            f" ({result['Dataset']})"
    return 'not measured'


def write_readme_table(folder: str, models: list) -> None:
    """Rewrite the model table between the README's markers."""
    path = osp.join(ROOT, 'configs', folder, 'README.md')
    with open(path) as f:
        text = f.read()
    begin, end = '<!-- models -->', '<!-- /models -->'
    if begin not in text or end not in text:
        raise ValueError(f'{path}: no {begin} ... {end} markers')
    rows = ['| Model | Scheme | Params (M) | MFLOPs per exit | Top-1 (%) '
            'per exit | Config |', '|---|---|---:|---|---|---|']
    for m in models:
        meta = m['Metadata']
        rows.append(
            f"| `{m['Name']}` | {m['In Collection']} | "
            f"{meta['Parameters'] / 1e6:.2f} | {meta['Exit MFLOPs']} | "
            f"{_result_cell(m)} | [config]({osp.relpath(m['Config'], osp.join('configs', folder))}) |")
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    with open(path, 'w') as f:
        f.write(head + begin + '\n' + '\n'.join(rows) + '\n' + end + tail)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('folders', nargs='*')
    args = parser.parse_args()
    folders = args.folders or sorted(
        osp.basename(osp.dirname(p)) for p in glob.glob(
            osp.join(ROOT, 'configs', '*', 'metafile.yml')))
    sys.path.insert(0, ROOT)
    get_flops = load_get_flops()
    for folder in folders:
        fill(folder, get_flops)


if __name__ == '__main__':
    main()
