"""The bilevel iteration inside MMEngine, by config alone: the two-optimizer
constructor, the held-out train loop, logging, checkpoints, bit-identical
resume, and DDP (2 gloo processes)."""
import copy
import os
import os.path as osp

import pytest
import torch
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.registry import DATASETS, HOOKS
from mmpretrain.structures import DataSample

import hdkd_mm  # noqa: F401
from test_hypergrad import NUM_CLASSES, TinyExitNet  # noqa: F401 (registers)


@DATASETS.register_module(force=True)
class TinySynthetic(torch.utils.data.Dataset):
    """In-memory 3×8×8 uint8 images; the label is the brightest channel
    plus a quadrant, so there is something to learn."""

    def __init__(self, num: int = 32, seed: int = 0, size: int = 8):
        gen = torch.Generator().manual_seed(seed)
        self.x = (torch.rand(num, 3, size, size, generator=gen) *
                  255).to(torch.uint8)
        self.y = (self.x.float().mean((2, 3)).argmax(1) +
                  (self.x[:, 0, :4, :4].float().mean((1, 2)) > 127).long()
                  ) % NUM_CLASSES
        self.metainfo = dict(classes=[str(i) for i in range(NUM_CLASSES)])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i],
                    data_samples=DataSample().set_gt_label(int(self.y[i])))


@HOOKS.register_module(force=True)
class StopAfterEpochHook(Hook):
    """Interrupt training after ``epoch`` epochs (a checkpoint is written)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 >= self.epoch:
            runner.train_loop.stop_training = True


@HOOKS.register_module(force=True)
class CountItersHook(Hook):
    """Count the training iterations this runner actually ran."""

    def before_train(self, runner):
        self.count = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.count += 1


def loader(num, seed, batch_size):
    return dict(batch_size=batch_size, num_workers=0,
                persistent_workers=False,
                dataset=dict(type='TinySynthetic', num=num, seed=seed),
                sampler=dict(type='DefaultSampler', shuffle=True))


def config(work_dir, scheme='hdkd', max_epochs=3, loss_weights=None,
           heldout=True, bilevel=None, **extra):
    head = dict(type='GenericExitHead', num_classes=NUM_CLASSES,
                loss=dict(type='DenseKDLoss', scheme=scheme))
    model = dict(type='MultiExitClassifier',
                 backbone=dict(type='TinyExitNet', width=4),
                 head=head,
                 data_preprocessor=dict(type='ClsDataPreprocessor',
                                        mean=[127.5] * 3, std=[127.5] * 3))
    if loss_weights is not None:
        model['loss_weights'] = loss_weights
    cfg = dict(
        model=model,
        work_dir=str(work_dir),
        train_dataloader=loader(24, 0, 8),
        train_cfg=dict(type='BilevelEpochBasedTrainLoop',
                       max_epochs=max_epochs, bilevel=bilevel),
        optim_wrapper=dict(
            constructor='BilevelOptimWrapperConstructor',
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9,
                           weight_decay=1e-4),
            gamma=dict(optimizer=dict(type='Adam', lr=0.05))),
        param_scheduler=dict(
            model=[dict(type='MultiStepLR', by_epoch=True, milestones=[2],
                        gamma=0.1)],
            gamma=[dict(type='MultiStepLR', by_epoch=True, milestones=[1],
                        gamma=0.5)]),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING',
    )
    if heldout:
        cfg['heldout_dataloader'] = loader(12, 1, 4)
    cfg.update(extra)
    return Config(cfg)


def model_state(runner):
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


def test_config_only_hdkd_training_logs_and_checkpoints(tmp_path):
    runner = Runner.from_cfg(config(tmp_path, max_epochs=2))
    gamma0 = runner.model.loss_weights.gamma.detach().clone()
    runner.train()
    lw = runner.model.loss_weights
    assert not torch.equal(lw.gamma.detach(), gamma0)
    assert bool((lw.gamma >= 0).all())
    assert float(lw.gamma.detach().sum()) == pytest.approx(float(lw.total),
                                                           rel=1e-5)
    assert int(lw.num_steps) == 6 and bool(lw.ema_initialised)
    hub = runner.message_hub
    for key in ('train/gamma/ce1', 'train/gamma/kd3-2', 'train/ema/ce3',
                'train/objective/kd2-1', 'train/gamma_skipped',
                'train/heldout/l_val', 'train/gamma.lr', 'train/lr'):
        assert key in hub.log_scalars, key
    # the γ learning-rate schedule ran (0.05 → 0.025 after epoch 1)
    assert runner.optim_wrapper['gamma'].get_lr()['lr'][0] == \
        pytest.approx(0.025)
    ckpt = torch.load(osp.join(tmp_path, 'epoch_2.pth'), weights_only=False)
    assert 'loss_weights.gamma' in ckpt['state_dict']
    assert 'loss_weights.ema' in ckpt['state_dict']
    assert set(ckpt['optimizer']) == {'model', 'gamma'}
    assert set(ckpt['param_schedulers']) == {'model', 'gamma'}


def test_resume_is_bit_identical(tmp_path):
    """With a γ step every 2nd of the 3 iterations per epoch
    (train_cfg.bilevel.gamma_interval=2), so the resumed run must also
    continue γ's step count (num_steps) to keep the phase."""
    bilevel = dict(gamma_interval=2)
    full = Runner.from_cfg(config(tmp_path / 'full', max_epochs=4,
                                  bilevel=bilevel))
    full.train()
    assert full.model.bilevel_step.gamma_interval == 2
    part = Runner.from_cfg(config(
        tmp_path / 'part', max_epochs=4, bilevel=bilevel,
        custom_hooks=[dict(type='StopAfterEpochHook', epoch=2)]))
    part.train()
    assert part.epoch == 2
    resumed = Runner.from_cfg(config(
        tmp_path / 'resumed', max_epochs=4, resume=True, bilevel=bilevel,
        load_from=str(tmp_path / 'part' / 'epoch_2.pth'),
        custom_hooks=[dict(type='CountItersHook')]))
    resumed.train()
    counter = [h for h in resumed.hooks if isinstance(h, CountItersHook)][0]
    assert counter.count == 2 * 3  # epochs 3 and 4 only
    assert int(resumed.model.loss_weights.num_steps) == 12
    a, b = model_state(full), model_state(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert torch.equal(full.model.loss_weights.gamma,
                       resumed.model.loss_weights.gamma)
    sa = full.optim_wrapper.state_dict()
    sb = resumed.optim_wrapper.state_dict()
    for name in ('model', 'gamma'):
        for pid, st in sa[name]['state'].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    assert torch.equal(v, sb[name]['state'][pid][k]), (name,
                                                                       k)


def test_fixed_schemes_train_with_the_same_config(tmp_path):
    # no held-out loader needed, no γ optimizer built
    runner = Runner.from_cfg(config(tmp_path, scheme='dbt', max_epochs=1,
                                    heldout=False))
    runner.train()
    assert runner.model.loss_weights is None
    assert list(runner.optim_wrapper.keys()) == ['model']


def test_frozen_gamma_trains_without_heldout(tmp_path):
    import json
    path = tmp_path / 'gamma.json'
    path.write_text(json.dumps([1.0, 1.0, 1.0, 0.2, 0.3, 0.4]))
    runner = Runner.from_cfg(config(
        tmp_path, max_epochs=1, heldout=False,
        loss_weights=dict(init='fixed', path=str(path))))
    runner.train()
    assert runner.model.loss_weights.gamma.tolist() == pytest.approx(
        [1.0, 1.0, 1.0, 0.2, 0.3, 0.4])


def test_loop_hands_its_bilevel_knobs_to_the_step(tmp_path):
    """train_cfg.bilevel reaches the model's step: finite differences and
    a γ step every 3rd iteration take 2 held-out batches in 6 iterations;
    a bad value stops the runner when the loop is built."""
    runner = Runner.from_cfg(config(
        tmp_path / 'a', max_epochs=2,
        bilevel=dict(hypergrad='finite_diff', gamma_interval=3)))
    calls = []
    runner.model.set_heldout_source = lambda src: setattr(
        runner.model, '_heldout_source',
        lambda: calls.append(1) or src())
    runner.train()
    assert runner.model.bilevel_step.hypergrad == 'finite_diff'
    assert len(calls) == 2 and int(runner.model.loss_weights.num_steps) == 6
    bad = Runner.from_cfg(config(tmp_path / 'b',
                                 bilevel=dict(virtual_step='adam')))
    with pytest.raises(ValueError, match='train_cfg.bilevel.virtual_step'):
        bad.train()


def test_learned_scheme_without_heldout_is_an_error_at_start(tmp_path):
    runner = Runner.from_cfg(config(tmp_path, heldout=False))
    with pytest.raises(ValueError, match='heldout_dataloader'):
        runner.train()


# ------------------------------------------------------------------ DDP
def _ddp_worker(rank, world, tmp, mode):
    import torch.distributed as dist
    from mmengine.model import BaseDataPreprocessor

    from mmengine.model import MMDistributedDataParallel

    from hdkd_mm.engine.hypergrad import gamma_hypergradient
    from hdkd_mm.engine.loops import train_step
    from hdkd_mm.engine.optim import BilevelOptimWrapperConstructor
    from test_hypergrad import as_data, batch, tiny_model
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{tmp}/pg',
                            rank=rank, world_size=world)
    try:
        model = _hypergrad_model(mode)
        model.data_preprocessor = BaseDataPreprocessor()
        x, y = batch(8, 1)
        hx, hy = batch(6, 2)
        lo, hi = rank * 4, rank * 4 + 4
        hlo, hhi = rank * 3, rank * 3 + 3
        ddp = MMDistributedDataParallel(model, device_ids=None,
                                        broadcast_buffers=False)
        ow = BilevelOptimWrapperConstructor(dict(
            optimizer=dict(type='SGD', lr=0.3, momentum=0.9),
            gamma=dict(optimizer=dict(type='Adam', lr=0.05))))(ddp)
        if mode.startswith('hypergrad'):
            # g through DDP (averaged), then the distributed hypergradient
            losses = ddp(x[lo:hi], mode='tensor')
            obj = model.head.objective_losses(losses, y[lo:hi])
            (model.objective_weights() * obj).sum().backward()
            res = gamma_hypergradient(model, ow['model'].optimizer,
                                      x[lo:hi], y[lo:hi], hx[hlo:hhi],
                                      hy[hlo:hhi], model.loss_weights,
                                      distributed=True)
            torch.save(dict(grad=res.grad, ce=res.heldout_ce),
                       f'{tmp}/hg{rank}.pth')
        else:
            model.set_heldout_source(lambda: as_data(hx[hlo:hhi],
                                                     hy[hlo:hhi]))
            for i in range(3):  # the loop's route to the bilevel step
                train_step(ddp, as_data(x[lo:hi], y[lo:hi]), ow)
            torch.save(model.state_dict(), f'{tmp}/state{rank}.pth')
    finally:
        dist.destroy_process_group()


def _hypergrad_model(mode):
    """'train': BatchNorm model; 'hypergrad-<norm>': float64 model with
    norm = 'none' (no BatchNorm), 'frozen' (BatchNorm in eval mode: running
    statistics) or 'batch' (BatchNorm normalising with batch statistics)."""
    from test_hypergrad import tiny_model
    norm = mode.split('-')[-1]
    model = tiny_model('hdkd', norm=norm != 'none', seed=0)
    if norm == 'frozen':
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                with torch.no_grad():  # non-trivial running statistics
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
                m.eval()
    return model


def _spawn(tmp, mode):
    mp.spawn(_ddp_worker, args=(2, str(tmp), mode), nprocs=2, join=True)


def _two_rank_vs_one_rank(tmp, mode):
    """Relative difference between the 2-rank hypergradient and the 1-rank
    one on the concatenated batches (train 2×4, held-out 2×3)."""
    from test_hypergrad import batch, set_train_grad, sgd

    from hdkd_mm.engine.hypergrad import gamma_hypergradient
    _spawn(tmp, mode)
    r0 = torch.load(tmp / 'hg0.pth')
    r1 = torch.load(tmp / 'hg1.pth')
    assert torch.equal(r0['grad'], r1['grad'])  # γ stays in sync
    model = _hypergrad_model(mode)
    x, y = batch(8, 1)
    hx, hy = batch(6, 2)
    opt = sgd(model, lr=0.3, momentum=0.9)
    set_train_grad(model, x, y)
    ref = gamma_hypergradient(model, opt, x, y, hx, hy, model.loss_weights)
    return float((r0['grad'] - ref.grad).norm() / ref.grad.norm()), r0, ref


@pytest.mark.parametrize('norm', ['none', 'frozen'])
def test_ddp_two_ranks_hypergradient_equals_one_rank(tmp_path, norm):
    """float64, no batch statistics (no BatchNorm, or BatchNorm frozen): the
    2-rank hypergradient (v and J v averaged) equals the 1-rank one on the
    concatenated batch. 1e-9: the two differ only in the order of float64
    sums (measured ≈ 1e-16)."""
    err, r0, ref = _two_rank_vs_one_rank(tmp_path, f'hypergrad-{norm}')
    assert err <= 1e-9, err
    torch.testing.assert_close(r0['ce'], ref.heldout_ce, rtol=1e-12, atol=0)


def test_ddp_batchnorm_statistics_make_ranks_differ(tmp_path):
    """With BatchNorm normalising by batch statistics each rank normalises
    its own 4 (train) / 3 (held-out) samples, not the global 8 / 6: a
    different function, so the 2-rank hypergradient is *expected* to differ
    from the 1-rank one (as plain DDP's θ-gradient does without SyncBN).
    Measured here: 0.40 relative on these tiny batches. The lower bound
    shows the effect is real, far above float64 round-off."""
    err, _, _ = _two_rank_vs_one_rank(tmp_path, 'hypergrad-batch')
    print(f'2-rank vs 1-rank hypergradient with BatchNorm: {err:.3g}')
    assert err > 1e-3, err


def test_ddp_two_ranks_gamma_identical(tmp_path):
    """BatchNorm model in MMEngine's MMDistributedDataParallel, stepped the
    way BilevelEpochBasedTrainLoop steps it (the module's bilevel step with
    the wrapper): γ, E_k and θ stay identical on both ranks."""
    _spawn(tmp_path, 'train')
    s0 = torch.load(tmp_path / 'state0.pth')
    s1 = torch.load(tmp_path / 'state1.pth')
    for k in s0:
        if k.startswith('loss_weights') or 'running' not in k:
            assert torch.equal(s0[k], s1[k]), k
    assert int(s0['loss_weights.num_steps']) == 3
    assert bool(s0['loss_weights.ema_initialised'])


@pytest.mark.parametrize('heldout_options, message', [
    ({'seed': 1}, r'held-out split overlaps the training split \(\d+ shared'),
    ({'heldout_size': 30}, 'held-out split overlaps the training split'),
    # 10 of the 20 held out: disjoint here, but not by construction
    ({'heldout_size': 10}, 'held-out split is not provably disjoint'),
])
def test_heldout_split_overlapping_training_is_an_error_at_start(
        tmp_path, heldout_options, message):
    """A harmonized run whose held-out split shares images with its training
    split (another seed or size than the training split's partition, or the
    training split itself: tests/test_config_checks.py) stops before the
    first step, naming the fix."""
    from tool_helpers import write_tiny_demo_config
    path = write_tiny_demo_config(tmp_path / 'data', name='hdkd_tiny.py',
                                  per_class=(8, 4), scheme='hdkd')
    cfg = Config.fromfile(path)
    cfg.merge_from_dict({f'heldout_dataloader.dataset.{k}': v
                         for k, v in heldout_options.items()})
    cfg.work_dir = str(tmp_path / 'work')
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match='heldout_dataloader: γ would be '
                       'fitted on training images: .*' + message):
        runner.train()
    # raised while the loop is built: no step ran, nothing was saved
    assert not list((tmp_path / 'work').rglob('*.pth'))
    # (the shipped partition passes: tests/test_tools.py and
    # tests/test_run_suite.py train this config through the same loop)
