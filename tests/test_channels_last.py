"""``MultiExitClassifier(channels_last=True)``: the model and its images in
NHWC layout compute what the default layout computes (float64, so only the
summation order of the convolution kernels differs), keep the layout through
initialisation and training, and do not change a suite run's identity."""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.model import BaseDataPreprocessor
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import hdkd_mm  # noqa: F401
from hdkd_mm.engine.optim import BilevelOptimWrapperConstructor
from hdkd_mm.experiments.records import config_digest

MSDNET = dict(
    type='MultiExitClassifier',
    backbone=dict(type='MSDNet', nBlocks=3, stepmode='even', step=1, base=1,
                  nChannels=4, growthRate=4, grFactor=(1, 2, 4),
                  bnFactor=(1, 2, 4), stem='cifar'),
    head=dict(type='MSDNetExitHead', num_classes=5, in_channels=None,
              variant='cifar', inter_channels=8,
              loss=dict(type='DenseKDLoss', scheme='dbt', temperature=2.0)),
    data_preprocessor=BaseDataPreprocessor())  # keeps float64 inputs


def build(channels_last, **kw):
    torch.manual_seed(0)
    model = MODELS.build(dict(MSDNET, channels_last=channels_last, **kw))
    model.init_weights()
    return model.double().train()


def data(seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 3, 32, 32, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 5, (6, ), generator=gen)
    return dict(inputs=x,
                data_samples=[DataSample().set_gt_label(int(t)) for t in y])


def weights(model):
    """The conv weights whose two layouts differ (a 1×1 kernel's are both)."""
    return [m.weight for m in model.modules()
            if isinstance(m, nn.Conv2d) and m.in_channels > 1
            and m.kernel_size != (1, 1)]


def test_channels_last_trains_as_the_default_layout():
    default, nhwc = build(False), build(True)
    # every (non-trivial) conv weight in NHWC, after init_weights too
    assert all(w.is_contiguous(memory_format=torch.channels_last)
               and not w.is_contiguous() for w in weights(nhwc))
    assert all(w.is_contiguous() for w in weights(default))
    # the same seed gives the same initial weights in either layout
    for a, b in zip(default.parameters(), nhwc.parameters()):
        assert torch.equal(a, b)
    opts = [OptimWrapper(torch.optim.SGD(m.parameters(), lr=0.1,
                                         momentum=0.9, nesterov=True))
            for m in (default, nhwc)]
    seen = []

    def spy(module, inputs, output):
        seen.append(inputs[0].is_contiguous(memory_format=torch.channels_last))

    nhwc.backbone.register_forward_hook(spy)
    for step in range(3):  # momentum makes steps 2-3 depend on step 1's state
        logs = [m.train_step(data(step), o) for m, o in zip((default, nhwc),
                                                             opts)]
        for k in logs[0]:
            # float64; another summation order only: ~1e-15 relative
            torch.testing.assert_close(logs[1][k], logs[0][k], rtol=1e-10,
                                       atol=1e-12)
    assert seen and all(seen)  # the images reached the backbone as NHWC
    for (n, a), b in zip(default.named_parameters(), nhwc.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12, msg=n)
    buffers = [opts[1].optimizer.state[w]['momentum_buffer']
               for w in weights(nhwc)]
    assert all(b.is_contiguous(memory_format=torch.channels_last)
               for b in buffers)
    # the exits' predictions agree as well (eval mode, running statistics)
    default.eval(), nhwc.eval()
    with torch.no_grad():
        x = data(9)['inputs']
        for a, b in zip(default(x), nhwc(x)):
            torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


def test_channels_last_bilevel_step_moves_gamma_as_the_default_layout():
    """HDKD's iteration (θ step, held-out pass at θ', JVP, γ step) in NHWC:
    θ and γ after two iterations equal the NCHW run's (float64)."""
    head = dict(MSDNET['head'], loss=dict(type='DenseKDLoss', scheme='hdkd',
                                          temperature=2.0))
    models, opts = [], []
    for cl in (False, True):
        model = build(cl, head=head)
        model.set_bilevel_step(dict(hypergrad='jvp'))
        model.set_heldout_source(lambda: data(7))
        models.append(model)
        opts.append(BilevelOptimWrapperConstructor(dict(
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
            gamma=dict(optimizer=dict(type='Adam', lr=0.1))))(model))
    gamma0 = models[0].loss_weights.gamma.detach().clone()
    for step in range(2):
        for model, ow in zip(models, opts):
            model.train_step(data(step), ow)
    default, nhwc = models
    assert not torch.allclose(default.loss_weights.gamma, gamma0)  # it moved
    for (n, a), b in zip(default.named_parameters(), nhwc.parameters()):
        # float64, another summation order; the look-ahead amplifies it a
        # little (see hypergrad.py), still ~1e-13 relative
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-11, msg=n)


def test_checkpoint_moves_between_layouts():
    """A checkpoint saved in one layout loads into the other and predicts
    the same (``load_state_dict`` copies into the existing layout)."""
    nhwc, default = build(True), build(False)
    nhwc.train_step(data(0), OptimWrapper(torch.optim.SGD(
        nhwc.parameters(), lr=0.1)))
    default.load_state_dict(copy.deepcopy(nhwc.state_dict()))
    assert all(w.is_contiguous() for w in weights(default))
    default.eval(), nhwc.eval()
    with torch.no_grad():
        x = data(1)['inputs']
        for a, b in zip(nhwc(x), default(x)):
            torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('key,value,same', [
    ('channels_last', True, True),
    ('channels_last', False, True),
    ('loss_weights', dict(type='LearnedLossWeights'), False),
])
def test_layout_is_not_part_of_a_runs_config_digest(key, value, same):
    """The suite runner refuses to reuse a run whose config changed; the
    memory layout is an execution choice (rounding only), as the thread
    count, so toggling it keeps finished runs valid; any other model key
    does not."""
    base = Config(dict(model=dict(MSDNET, data_preprocessor=None)))
    other = Config(dict(model=dict(MSDNET, data_preprocessor=None,
                                   **{key: value})))
    assert (config_digest(other) == config_digest(base)) is same


def test_timing_table_counts_the_layouts_of_a_cell():
    """A cell whose seeds trained in different layouts says so (results
    recorded before the key existed trained in NCHW)."""
    from hdkd_mm.experiments.tables import _layouts
    assert _layouts([{}, {'channels_last': True},
                     {'channels_last': True}]) == 'NCHW 1, NHWC 2'
    assert _layouts([{'channels_last': False}, {}]) == 'NCHW'
    assert _layouts([{'channels_last': True}]) == 'NHWC'
