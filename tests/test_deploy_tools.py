"""tools/deploy/export_early_exit.py and tools/deploy/verify_export.py on a
tiny 3-exit MSDNet checkpoint and tiny Fashion-MNIST files: the export
folder, the comparison's counts, and the errors on bad input."""
import json

import pytest
import torch
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from hdkd_mm.launch import load_config, prepare_config
from tool_helpers import load_tool, write_tiny_demo_config

EXPORT = 'tools/deploy/export_early_exit.py'
VERIFY = 'tools/deploy/verify_export.py'


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """(config, checkpoint) of a randomly initialised 3-exit tiny MSDNet
    (what is compared does not need training)."""
    root = tmp_path_factory.mktemp('deploy')
    config = write_tiny_demo_config(root / 'data', per_class=(4, 3),
                                    num_exits=3, heldout_size=10)
    cfg = prepare_config(load_config(config), config)
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg.model,
                              data_preprocessor=cfg.data_preprocessor))
    path = str(root / 'random.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return config, path


def test_export_then_verify(checkpoint, tmp_path, capsys):
    config, ckpt = checkpoint
    out = tmp_path / 'export'
    thr_file = tmp_path / 'thr.json'
    # thresholds low enough for random logits, so that some images leave
    # at each exit
    thr_file.write_text(json.dumps(dict(
        thresholds=[0.1002, 0.1004, '-inf'], confidence='max_softmax')))
    load_tool(EXPORT).main([config, ckpt, '--thresholds', str(thr_file),
                            '--out', str(out)])
    text = capsys.readouterr().out
    assert 'exported 3 stages and exits' in text
    spec = json.loads((out / 'early_exit.json').read_text())
    assert spec['thresholds'] == [0.1002, 0.1004, '-inf']
    assert spec['confidence'] == 'max_softmax'
    assert spec['classes'][9] == 'Ankle boot'
    assert [t['type'] for t in spec['input']['test_pipeline']] == [
        'CenterPad', 'GrayToRGB', 'PackInputs']
    assert spec['source']['checkpoint'] == ckpt

    report = tmp_path / 'verify.json'
    load_tool(VERIFY).main([config, ckpt, str(out), '--batch-size', '8',
                            '--out', str(report)])
    text = capsys.readouterr().out
    assert 'exits equal: 30/30; predictions equal: 30/30' in text
    assert 'max |runtime.preprocess - data_preprocessor| = 0' in text
    result = json.loads(report.read_text())
    assert result['flips'] == []
    assert result['max_rel_logit_diff'] < 1e-5
    own = result['onnx_router_vs_own_simulation']
    assert own['same_exits'] == own['same_preds'] == 30


def test_export_bad_input(checkpoint, tmp_path):
    config, ckpt = checkpoint
    tool = load_tool(EXPORT)
    out = str(tmp_path / 'x')
    with pytest.raises(SystemExit, match='one value per exit: K = 3'):
        tool.main([config, ckpt, '--thresholds=0.5,-inf', '--out', out])
    thr_file = tmp_path / 'thr.json'
    thr_file.write_text(json.dumps(dict(thresholds=[0.5, 0.5, 0.0],
                                        confidence='entropy')))
    with pytest.raises(SystemExit, match="fitted with the 'entropy' "
                       "confidence, not 'margin'"):
        tool.main([config, ckpt, '--thresholds', str(thr_file),
                   '--confidence', 'margin', '--out', out])
