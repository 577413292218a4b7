"""The model index (``model-index.yml`` and one ``metafile.yml`` per config
folder, MMPretrain's layout): complete, consistent with the configs and with
``get_flops.py``, results only where measured, and registered with
MMPretrain's model hub on ``import hdkd_mm``."""
import glob
import os.path as osp
import re

import pytest
import yaml

import hdkd_mm  # noqa: F401  (registers the index)
from tool_helpers import REPO, load_tool


def _load(path):
    with open(osp.join(REPO, path)) as f:
        return yaml.safe_load(f)


INDEX = _load('model-index.yml')
METAFILES = {path: _load(path) for path in INDEX['Import']}
ENTRIES = [m for meta in METAFILES.values() for m in meta.get('Models') or []]
COLLECTIONS = [c for meta in METAFILES.values()
               for c in meta.get('Collections') or []]


FILL = load_tool('.dev_scripts/fill_metafile.py')


def _folders():
    """The folders of configs/ that hold configs (outside ``_base_``)."""
    paths = glob.glob(osp.join(REPO, 'configs', '*', '**', '*.py'),
                      recursive=True)
    return {osp.relpath(p, REPO).split(osp.sep)[1] for p in paths
            if '_base_' not in osp.relpath(p, REPO).split(osp.sep)}


def test_one_metafile_and_readme_per_config_folder():
    folders = _folders()
    assert set(INDEX['Import']) == {
        f'configs/{folder}/metafile.yml' for folder in folders}
    for folder in folders:
        assert osp.isfile(osp.join(REPO, 'configs', folder, 'README.md'))
    for collection in COLLECTIONS:
        assert osp.isfile(osp.join(REPO, collection['README']))
        assert collection['Paper']['Title'] and collection['Paper']['URL']


def test_every_config_has_one_entry_that_points_at_it():
    # every config but aliases and those built from another run's checkpoint
    configs = [m['Config'] for m in ENTRIES]
    assert sorted(configs) == sorted(
        c for folder in _folders() for c in FILL.index_configs(folder))
    names = [m['Name'] for m in ENTRIES]
    assert len(set(names)) == len(names)
    collections = {c['Name'] for c in COLLECTIONS}
    for entry in ENTRIES:
        # MMPretrain's convention: the model's name is its config's.
        assert entry['Name'] == osp.splitext(osp.basename(entry['Config']))[0]
        assert entry['In Collection'] in collections, entry['Name']
        # No trained weights are published: no entry may claim some.
        assert 'Weights' not in entry, entry['Name']


def _measured_numbers():
    text = ''
    for path in ('README.md', 'docs/results.md'):
        with open(osp.join(REPO, path)) as f:
            text += f.read()
    return set(re.findall(r'\d+\.\d\d', text))


def test_results_are_numbers_measured_in_readme_or_results_md():
    measured = _measured_numbers()
    for entry in ENTRIES:
        for result in entry.get('Results') or []:
            assert result['Task'] == 'Image Classification'
            for metric, value in result['Metrics'].items():
                assert f'{value:.2f}' in measured, (entry['Name'], metric)


@pytest.fixture(scope='module')
def get_flops():
    return load_tool('tools/analysis/get_flops.py')


@pytest.mark.parametrize('entry', ENTRIES, ids=[m['Name'] for m in ENTRIES])
def test_metadata_equals_get_flops_and_config(entry, get_flops):
    from hdkd_mm.launch import load_config
    path = osp.join(REPO, entry['Config'])
    exits = get_flops.get_flops(path)['exits']
    meta = entry['Metadata']
    assert meta['FLOPs'] == round(exits[-1]['mflops'] * 1e6)
    assert meta['Parameters'] == round(exits[-1]['params_m'] * 1e6)
    assert meta['Exits'] == len(exits)
    assert [float(v) for v in meta['Exit MFLOPs'].split(' / ')] == [
        e['mflops'] for e in exits]
    cfg = load_config(path)
    assert meta['Epochs'] == cfg.train_cfg.max_epochs
    gpus = re.search(r'_(\d+)xb(\d+)_', entry['Name'])
    if gpus:  # the name's N x B is the config's per-GPU batch
        assert int(gpus.group(2)) == cfg.train_dataloader.batch_size
        assert meta['Batch Size'] == int(gpus.group(1)) * int(gpus.group(2))


def test_list_models_and_get_model_build_every_indexed_model():
    from mmpretrain import get_model, list_models

    from hdkd_mm.models.classifiers import MultiExitClassifier
    assert list_models('*hdkd*')
    names = [m['Name'] for m in ENTRIES]
    assert set(names) <= set(list_models())  # MMPretrain's own still load
    for name in names:
        model = get_model(name)  # built, no weights loaded
        assert isinstance(model, MultiExitClassifier), name
