"""The objective set (DenseKDLoss): order, names, schemes, values."""
import pytest
import torch
import torch.nn.functional as F

import hdkd_mm  # noqa: F401
from hdkd_mm.models.losses import SCHEMES, DenseKDLoss, get_scheme


def test_objective_order_and_counts():
    loss = DenseKDLoss(num_exits=4, scheme='hdkd')
    assert loss.names == ['ce1', 'ce2', 'ce3', 'ce4', 'kd2-1', 'kd3-1',
                          'kd3-2', 'kd4-1', 'kd4-2', 'kd4-3']
    assert DenseKDLoss(num_exits=8, scheme='hdkd').num_objectives == 36
    assert DenseKDLoss(num_exits=4, scheme='dbt').names[4:] == [
        'kd4-1', 'kd4-2', 'kd4-3']
    assert DenseKDLoss(num_exits=4, scheme='msdnet').num_objectives == 4


def test_unknown_scheme():
    with pytest.raises(ValueError, match='Unknown training scheme'):
        DenseKDLoss(num_exits=3, scheme='hdkd2')
    with pytest.raises(ValueError):
        get_scheme('HDKD')
    assert {n for n, s in SCHEMES.items() if s.learned} == {
        'hmsdnet', 'hdbt', 'hdkd'}


def test_values_and_ce_losses():
    torch.manual_seed(0)
    logits = [torch.randn(5, 7, dtype=torch.float64) for _ in range(3)]
    y = torch.randint(0, 7, (5, ))
    loss = DenseKDLoss(num_exits=3, scheme='hdkd', temperature=3.0)
    out = loss(logits, y)
    ce = torch.stack([F.cross_entropy(z, y) for z in logits])
    torch.testing.assert_close(out[:3], ce)
    torch.testing.assert_close(loss.ce_losses(logits, y), ce)
    T = 3.0
    for k, (t, s) in enumerate([(1, 0), (2, 0), (2, 1)]):
        p = F.softmax(logits[t] / T, -1)
        kd = -(p * F.log_softmax(logits[s] / T, -1)).sum(-1).mean() * T * T
        torch.testing.assert_close(out[3 + k], kd)
    with pytest.raises(ValueError, match='3 exits'):
        loss.ce_losses(logits[:2], y)


def test_teacher_is_detached():
    logits = [torch.randn(4, 5, requires_grad=True) for _ in range(2)]
    y = torch.randint(0, 5, (4, ))
    out = DenseKDLoss(num_exits=2, scheme='hdkd')(logits, y)
    g_teacher = torch.autograd.grad(out[2], logits[1], allow_unused=True)[0]
    assert g_teacher is None or float(g_teacher.abs().max()) == 0.0
