import pytest
import torch
from mmpretrain.structures import DataSample

import hdkd_mm  # noqa: F401
from hdkd_mm.evaluation import MultiExitAccuracy, exit_topk_accuracy
from hdkd_mm.models.heads import MultiExitHead


def _reference_topk(scores, labels, k):
    """Slow, obvious per-sample, per-exit loop."""
    n, num_exits, _ = scores.shape
    out = []
    for e in range(num_exits):
        hits = 0
        for i in range(n):
            order = sorted(range(scores.size(-1)),
                           key=lambda c: -scores[i, e, c].item())
            hits += int(labels[i].item() in order[:k])
        out.append(100.0 * hits / n)
    return out


def test_exit_topk_accuracy_matches_reference_loop():
    torch.manual_seed(0)
    scores = torch.randn(37, 3, 7)
    labels = torch.randint(0, 7, (37, ))
    acc = exit_topk_accuracy(scores, labels, (1, 5))
    for i, k in enumerate((1, 5)):
        assert acc[:, i].tolist() == pytest.approx(
            _reference_topk(scores, labels, k), abs=1e-4)


def test_metric_reports_every_exit_from_predicted_samples():
    torch.manual_seed(1)
    logits = torch.randn(10, 4, 6)
    labels = torch.randint(0, 6, (10, ))
    # Exit 4 always right, exit 1 always wrong in top-1.
    logits[torch.arange(10), 3, labels] = 100.0
    logits[torch.arange(10), 0, labels] = -100.0
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    samples = MultiExitHead.predictions(logits, samples)
    assert samples[0].exit_scores.shape == (4, 6)
    assert torch.equal(samples[0].pred_score, samples[0].exit_scores[-1])
    metric = MultiExitAccuracy(topk=(1, 5))
    metric.process(None, [s.to_dict() for s in samples])
    result = metric.evaluate(len(samples))
    exit_keys = [f'multi-exit/exit{k}/top{n}' for k in range(1, 5)
                 for n in (1, 5)]
    # the last exit's top-k first (what save_best='auto' picks), then every
    # exit's
    assert list(result) == ['multi-exit/top1', 'multi-exit/top5'] + exit_keys
    assert result['multi-exit/top1'] == result['multi-exit/exit4/top1']
    assert result['multi-exit/top5'] == result['multi-exit/exit4/top5']
    assert result['multi-exit/exit4/top1'] == 100.0
    assert result['multi-exit/exit1/top1'] == 0.0
    assert result['multi-exit/exit2/top1'] == pytest.approx(
        _reference_topk(logits, labels, 1)[1])
    custom = MultiExitAccuracy(topk=(1, ), prefix='val')
    custom.process(None, [s.to_dict() for s in samples])
    assert list(custom.evaluate(len(samples)))[:2] == ['val/top1',
                                                       'val/exit1/top1']


def test_metric_rejects_samples_without_exit_scores():
    metric = MultiExitAccuracy()
    sample = DataSample().set_gt_label(1).set_pred_score(torch.ones(3))
    with pytest.raises(KeyError, match='exit_scores'):
        metric.process(None, [sample.to_dict()])
