"""MultiExitInferencer and demo/image_demo.py on images written here, with a
tiny random-init MSDNet (no checkpoint: what is checked is that the
inferencer runs the config's test pipeline and the model, and reports every
exit, or the exit taken and its cost)."""
import json

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import INFERENCERS

import hdkd_mm  # noqa: F401
from hdkd_mm.analysis.flops import exit_costs
from hdkd_mm.apis import MultiExitInferencer
from tool_helpers import load_tool, write_tiny_demo_config

NUM_EXITS = 3


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp('inferencer')
    config = write_tiny_demo_config(root, num_exits=NUM_EXITS)
    rng = np.random.RandomState(3)
    folder = root / 'images'
    folder.mkdir()
    images, paths = [], []
    for i in range(3):
        img = rng.randint(0, 256, (28, 28), dtype=np.uint8)
        path = str(folder / f'img{i}.png')
        cv2.imwrite(path, img)
        images.append(img)
        paths.append(path)
    return dict(config=config, folder=str(folder), paths=paths,
                images=images)


def reference_scores(model, images):
    """Every exit's softmax, computed without the inferencer: the demo
    config's test pipeline by hand (2-pixel pad to 32×32, gray repeated to 3
    channels), the model's data preprocessor, the exits' logits."""
    x = torch.stack([
        torch.from_numpy(np.repeat(np.pad(img, 2)[None], 3, 0))
        for img in images])
    data = model.data_preprocessor(dict(inputs=list(x)), False)
    with torch.no_grad():
        logits = model(data['inputs'], mode='tensor')
    return torch.stack(logits, 1).softmax(-1).numpy()  # (N, K, C)


def test_inferencer_returns_every_exit_then_exit_taken_and_cost(tiny):
    torch.manual_seed(0)
    inferencer = INFERENCERS.build(dict(
        type='MultiExitInferencer', model=tiny['config'], pretrained=False))
    assert isinstance(inferencer, MultiExitInferencer)
    results = inferencer(tiny['paths'], batch_size=2)
    assert len(results) == 3
    expected = reference_scores(inferencer.model, tiny['images'])
    for result, ref in zip(results, expected):
        scores = result['exit_scores']
        assert scores.shape == (NUM_EXITS, 10) and scores.dtype == np.float32
        # same float32 ops on the same pixels; only the batch composition
        # differs (2+1 against 3 images), which moves the last bits
        np.testing.assert_allclose(scores, ref, rtol=0, atol=1e-6)
        assert result['exit_labels'] == list(scores.argmax(-1))
        assert result['exit_classes'][0] == \
            inferencer.classes[result['exit_labels'][0]]
        np.testing.assert_array_equal(result['pred_scores'], scores[-1])
        assert result['pred_label'] == result['exit_labels'][-1]

    # Early exit, thresholds set between the images' exit-1 confidences:
    # the two most confident images leave at exit 1, the third one can leave
    # nowhere before the last exit (threshold +inf at exit 2).
    conf1 = np.array([r['exit_scores'][0].max() for r in results])
    low, mid, _ = np.sort(conf1)
    # a gap far above the float32 rounding of a confidence (~1e-8 here)
    assert mid - low > 1e-5
    thresholds = [(low + mid) / 2, float('inf'), float('-inf')]
    early = MultiExitInferencer(tiny['config'], pretrained=False,
                                early_exit=dict(thresholds=thresholds))
    early.model.load_state_dict(inferencer.model.state_dict())
    costs = [row['mflops'] for row in exit_costs(early.model, (3, 32, 32))]
    out = early(tiny['paths'], batch_size=3)
    expected_exit = np.where(conf1 > thresholds[0], 1, NUM_EXITS)
    assert sorted(expected_exit.tolist()) == [1, 1, NUM_EXITS]
    for result, full, k in zip(out, results, expected_exit):
        assert 'exit_scores' not in result
        assert result['exit_index'] == k
        assert result['exit_mflops'] == pytest.approx(costs[k - 1])
        assert result['pred_label'] == full['exit_labels'][k - 1]
        assert result['exit_confidence'] == pytest.approx(
            float(full['exit_scores'][k - 1].max()), abs=1e-6)
    assert costs[0] < costs[-1]


def test_image_demo_on_a_folder(tiny, tmp_path, capsys):
    demo = load_tool('demo/image_demo.py')
    out = tmp_path / 'demo.json'
    demo.main([tiny['folder'], tiny['config'], '--out', str(out)])
    printed = capsys.readouterr().out
    assert printed.count('exit 3:') == 3
    results = json.loads(out.read_text())
    assert [r['img'] for r in results] == sorted(tiny['paths'])
    for r in results:
        assert np.array(r['exit_scores']).shape == (NUM_EXITS, 10)

    demo.main([tiny['paths'][0], tiny['config'], '--out', str(out),
               '--thresholds=-inf,-inf,-inf'])
    (result, ) = json.loads(out.read_text())
    assert result['exit_index'] == 1 and result['exit_mflops'] > 0
    assert 'exit 1 taken' in capsys.readouterr().out


def test_inferencer_refuses_a_single_exit_model():
    cfg = Config(dict(
        model=dict(type='ImageClassifier',
                   backbone=dict(type='LeNet5', num_classes=10),
                   head=dict(type='ClsHead')),
        test_dataloader=dict(dataset=dict(
            type='CIFAR10', pipeline=[dict(type='PackInputs')]))))
    with pytest.raises(TypeError, match='multi-exit classifier'):
        MultiExitInferencer(cfg, pretrained=False)


def test_inferencer_early_exit_needs_an_early_exit_model(tiny):
    model = MultiExitInferencer(tiny['config'], pretrained=False).model
    with pytest.raises(TypeError, match='EarlyExitClassifier'):
        MultiExitInferencer(model, pretrained=False,
                            early_exit=dict(thresholds=[0.5, 0.5, 0.5]))
