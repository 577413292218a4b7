"""`import hdkd_mm` registers the modules and applies the stack fixes."""
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

import hdkd_mm  # noqa: F401


def test_modules_are_registered_in_mmpretrain_scope():
    from mmpretrain.registry import METRICS, MODELS
    for name in ('MultiExitClassifier', 'DenseKDLoss'):
        assert MODELS.get(name) is not None, name
    assert METRICS.get('MultiExitAccuracy') is not None


def test_mmengine_checkpoints_load_under_weights_only_default(tmp_path):
    # MMEngine pickles its message hub into checkpoints; torch >= 2.6 refuses
    # that by default. The plugin's local loader must read it.
    path = tmp_path / 'ckpt.pth'
    buffer = HistoryBuffer()
    buffer.update(np.float64(1.5))
    torch.save({'state_dict': {'w': torch.ones(2)},
                'message_hub': {'loss': buffer}}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)  # the failure being fixed
    ckpt = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))
    assert ckpt['message_hub']['loss'].current() == 1.5
