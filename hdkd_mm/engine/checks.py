"""Checks of a training set-up that MMEngine would only meet in the first
iteration (after the model, the data and the optimizers are built), meet
with a message that does not name the cause, or not meet at all.

:func:`check_training_setup` runs when ``tools/train.py`` has built the
runner and again when :class:`~hdkd_mm.engine.BilevelEpochBasedTrainLoop`
is built (for runners built by other means); :func:`check_heldout_data`
runs when the loop has built the held-out loader. Each problem is a
``ValueError`` naming the config key, its value, why it is wrong and the
fix. (The model's own settings are checked when it is built: see
:mod:`hdkd_mm.models.classifiers.checks`.)
"""
import logging
from typing import List, Optional, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmpretrain.registry import LOOPS, OPTIM_WRAPPER_CONSTRUCTORS, OPTIMIZERS


def _module(model):
    return model.module if is_model_wrapper(model) else model


def _scheme(module) -> str:
    return getattr(getattr(module.head, 'loss_module', None), 'scheme_name',
                   '?')


def _registered(registry, name):
    """The class a config ``type``/``constructor`` names (or None)."""
    if name is None or isinstance(name, type):
        return name
    try:
        return registry.get(name)
    except Exception:  # unknown scope prefix
        return None


def _loop_class(loop) -> Tuple[Optional[type], str]:
    """The class and config name of a train loop (config or built)."""
    if loop is None:
        return None, 'None'
    if not isinstance(loop, dict):
        return type(loop), type(loop).__name__
    name = loop.get('type')
    if name is None:
        name = ('EpochBasedTrainLoop' if loop.get('by_epoch', True) else
                'IterBasedTrainLoop')
    return _registered(LOOPS, name), str(getattr(name, '__name__', name))


def check_training_setup(runner) -> None:
    """The loop, optimizer and scheduler settings of a built runner whose
    model is a :class:`~hdkd_mm.models.MultiExitClassifier` (other models
    pass). Uses the configs MMEngine has not built yet."""
    module = _module(runner.model)
    if not hasattr(module, 'learns_loss_weights'):
        return
    learned = module.learns_loss_weights
    loop = getattr(runner, '_train_loop', None)
    if learned:
        _check_bilevel_loop(loop, module)
        _check_virtual_step(loop, runner.optim_wrapper)
    _check_optim(runner.optim_wrapper, runner.param_schedulers, module)


def _check_bilevel_loop(loop, module) -> None:
    from .loops import BilevelEpochBasedTrainLoop
    cls, name = _loop_class(loop)
    if cls is not None and issubclass(cls, BilevelEpochBasedTrainLoop):
        return
    raise ValueError(
        f'train_cfg: the loop is {name}, but the scheme {_scheme(module)!r} '
        'learns the objective weights γ, which needs a held-out batch and a '
        'bilevel step every iteration that only BilevelEpochBasedTrainLoop '
        "gives; fix: train_cfg = dict(type='BilevelEpochBasedTrainLoop', "
        "max_epochs=...) (and a top-level heldout_dataloader), or freeze γ "
        "with model.loss_weights=dict(init='fixed', path=...).")


def _check_virtual_step(loop, optim) -> None:
    """``virtual_step='optimizer'`` reproduces SGD's next iterate only."""
    from .step_cfg import BilevelStepConfig
    step = (BilevelStepConfig.from_cfg(loop.get('bilevel')) if isinstance(
        loop, dict) else getattr(loop, 'step_cfg', None))
    if step is None or step.virtual_step != 'optimizer':
        return
    if isinstance(optim, dict):
        name = (optim.get('optimizer') or {}).get('type')
        cls = _registered(OPTIMIZERS, name)
    else:
        wrapper = _theta_wrapper(optim)
        cls = type(getattr(wrapper, 'optimizer', None))
        name = cls.__name__
    if cls is None or issubclass(cls, torch.optim.SGD):
        return
    raise ValueError(
        "train_cfg.bilevel.virtual_step='optimizer' with optim_wrapper."
        f'optimizer.type={getattr(name, "__name__", name)!r}: the '
        "look-ahead θ' is the next iterate of torch.optim.SGD (momentum, "
        'weight decay, Nesterov), an affine function of the gradient, which '
        "other optimizers' steps are not; fix: train_cfg.bilevel."
        "virtual_step='sgd' (θ' = θ - ξg, any optimizer) or an SGD θ "
        'optimizer.')


def _constructor(optim_cfg) -> Optional[type]:
    from .optim import BilevelOptimWrapperConstructor
    name = optim_cfg.get('constructor')
    if name is None or name == 'DefaultOptimWrapperConstructor':
        return None
    cls = _registered(OPTIM_WRAPPER_CONSTRUCTORS, name)
    if cls is not None and issubclass(cls, BilevelOptimWrapperConstructor):
        return BilevelOptimWrapperConstructor
    return cls or object  # another constructor: it may build anything


def _wrapper_names(optim, module) -> Optional[List[str]]:
    """The optimizer names ``optim`` (config or built) gives: ``['model']``
    or ``['model', 'gamma']``, [] for a single optimizer, None when a
    custom constructor makes it impossible to tell."""
    if isinstance(optim, OptimWrapperDict):
        return list(optim.keys())
    if isinstance(optim, OptimWrapper):
        return []
    if not isinstance(optim, dict):
        return None
    from .optim import BilevelOptimWrapperConstructor
    cons = _constructor(optim)
    if cons is None:
        return []
    if cons is not BilevelOptimWrapperConstructor:
        return None
    return ['model', 'gamma'] if module.learns_loss_weights else ['model']


def _theta_wrapper(optim):
    """θ's optim wrapper of a built wrapper (or wrapper dict)."""
    if isinstance(optim, OptimWrapperDict):
        return optim['model'] if 'model' in optim.keys() else None
    return optim


def _check_optim(optim, schedulers, module) -> None:
    names = _wrapper_names(optim, module)
    learned = module.learns_loss_weights
    if learned and names is not None and 'gamma' not in names:
        cons = optim.get('constructor') if isinstance(optim, dict) else None
        raise ValueError(
            f'optim_wrapper (constructor={cons!r}): the scheme '
            f'{_scheme(module)!r} learns γ, which needs its own optimizer '
            'next to θ\'s, and this optim_wrapper builds only one; fix: '
            "optim_wrapper = dict(constructor='BilevelOptimWrapperConstructor',"
            " optimizer=dict(...), gamma=dict(optimizer=dict(type='Adam', "
            "lr=1e-3))) and param_scheduler = dict(model=[...], gamma=[...]).")
    if learned:
        counts = (optim.get('accumulative_counts', 1) if isinstance(
            optim, dict) else getattr(_theta_wrapper(optim),
                                      '_accumulative_counts', 1))
        if counts != 1:
            raise ValueError(
                f'optim_wrapper.accumulative_counts={counts!r}: learning γ '
                'takes the virtual step θ\' = θ - ξg with this iteration\'s '
                'gradient g and then steps θ with it, so gradients cannot be '
                'accumulated over iterations; fix: drop accumulative_counts '
                '(or set 1) and use a larger batch instead.')
    if (isinstance(schedulers, dict) and 'type' not in schedulers
            and names is not None):
        keys = sorted(schedulers)
        if not names:
            raise ValueError(
                f'param_scheduler is a dict of per-optimizer lists ({keys}),'
                ' which needs several optimizers, but optim_wrapper builds a '
                'single one (MMEngine then fails with KeyError: \'type\'); '
                'fix: give param_scheduler as a list of schedulers, e.g. '
                "[dict(type='MultiStepLR', by_epoch=True, milestones=[...])],"
                " or set optim_wrapper.constructor='BilevelOptimWrapper"
                "Constructor'.")
        missing = [n for n in names if n not in schedulers]
        if missing:
            raise ValueError(
                f'param_scheduler has lists for {keys} but not for '
                f'{missing}, one of the optimizers {names} that optim_wrapper '
                'builds; fix: add it, e.g. param_scheduler = dict(model=[...],'
                " gamma=[dict(type='ConstantLR', factor=1.0, by_epoch=True)]).")


def _eval_datasets(runner) -> List[Tuple[str, object]]:
    """The val and test datasets of a runner, for the held-out check. The
    val loop is built here (``train()`` would build it next anyway); a test
    dataloader config other than the val one is built without its loader,
    and one that cannot be built (test data absent while training) is
    skipped."""
    from mmpretrain.registry import DATASETS
    out = []
    val_loop = runner.val_loop
    if val_loop is not None:
        out.append(('val_dataloader', val_loop.dataloader.dataset))
    test = getattr(runner, '_test_dataloader', None)
    if test is None:
        return out
    if hasattr(test, 'dataset'):
        out.append(('test_dataloader', test.dataset))
    elif not (val_loop is not None
              and test == getattr(runner, '_val_dataloader', None)):
        try:
            out.append(('test_dataloader',
                        DATASETS.build(dict(test['dataset']))))
        except Exception as err:
            print_log(f'The test dataset was not compared with the held-out '
                      f'set: it does not build ({type(err).__name__}: {err}).',
                      logger='current', level=logging.INFO)
    return out


def check_heldout_data(runner, train_loader, heldout_loader,
                       allow_overlap: bool = False) -> List[str]:
    """The held-out set γ is fitted on must be disjoint from the training
    set and from the val/test sets, and give at least one batch.

    Returns the problems that ``allow_overlap`` let through ([] if none).

    Raises:
        ValueError: a held-out loader that gives no batch; a held-out set
            that shares images with the training set or with a val/test set
            (unless ``allow_overlap``: then logged as a warning, loudly).
    """
    from hdkd_mm.datasets import HeldOutSplit, check_disjoint
    from hdkd_mm.datasets.overlap import describe, shared_images
    _check_nonempty(heldout_loader)
    train_ds, held_ds = train_loader.dataset, heldout_loader.dataset
    problems, unproven = [], None
    if (isinstance(train_ds, HeldOutSplit) and isinstance(held_ds, HeldOutSplit)
            and held_ds.split == 'heldout'):
        try:  # one partition: disjoint by construction, or not
            check_disjoint(train_ds, held_ds)
        except ValueError as err:
            problems.append('heldout_dataloader: γ would be fitted on '
                            f'training images: {err}')
    else:
        shared = shared_images(train_ds, held_ds)
        if shared:
            problems.append(
                f'heldout_dataloader.dataset ({describe(held_ds)}) shares '
                f'{shared} of its {len(held_ds)} images with '
                f'train_dataloader.dataset ({describe(train_ds)}): γ would '
                'be fitted on images θ trains on; fix: hold part of the '
                "training set out with HeldOutSplit, split='train' for "
                "train_dataloader.dataset and split='heldout' for "
                'heldout_dataloader.dataset, same seed and heldout_size '
                '(configs/_base_/datasets/fashion_mnist_heldout.py)')
        elif shared is None:
            unproven = (
                f'The held-out set ({describe(held_ds)}) and the training '
                f'set ({describe(train_ds)}) are not views of one base '
                'dataset, so nothing checks that γ is fitted on images the '
                'model never trains on; make sure they are disjoint.')
    for key, ds in _eval_datasets(runner):
        shared = shared_images(held_ds, ds)
        if not shared:
            continue
        what = (f'is the dataset of {key}' if shared == len(held_ds) ==
                len(ds) else f'shares {shared} of its {len(held_ds)} images '
                f'with {key}.dataset ({describe(ds)})')
        problems.append(
            f'heldout_dataloader.dataset ({describe(held_ds)}) {what}: γ '
            'would be fitted on the images the model is evaluated on, and '
            'every reported accuracy would be invalid; fix: hold out part of '
            "the training set, HeldOutSplit(split='heldout') (when the "
            "val/test set is itself a HeldOutSplit(split='test'), the "
            "split='heldout' of the same partition)")
    problems = [p.rstrip('.') for p in problems]
    if not problems:
        if unproven:
            print_log(unproven, logger='current', level=logging.WARNING)
        return []
    opt_out = ('train_cfg.allow_heldout_overlap=True (only if you mean it: '
               'the run\'s numbers are then not held-out results)')
    if not allow_overlap:
        raise ValueError('; '.join(problems) +
                         f'. To train anyway: {opt_out}.')
    bar = '!' * 78
    print_log(f'\n{bar}\ntrain_cfg.allow_heldout_overlap=True: training '
              'ANYWAY with a held-out set that is not held out:\n  ' +
              '\n  '.join(problems) +
              f'\nNo number of this run is a held-out result.\n{bar}',
              logger='current', level=logging.WARNING)
    runner.message_hub.update_info('heldout_overlap', problems)
    return problems


def _check_nonempty(loader) -> None:
    if len(loader) > 0:
        return
    size = len(getattr(loader, 'sampler', None) or loader.dataset)
    if size == 0:
        raise ValueError(
            'heldout_dataloader.dataset is empty: γ needs held-out images; '
            'fix: hold out images of the training set (HeldOutSplit with '
            "heldout_size > 0 and split='heldout').")
    raise ValueError(
        f'heldout_dataloader.batch_size={loader.batch_size} with '
        f'drop_last=True, but the held-out split has only {size} images '
        '(per process), fewer than one batch, so no held-out batch is ever '
        f'drawn; fix: heldout_dataloader.batch_size <= {size}, '
        'heldout_dataloader.drop_last=False, or a larger heldout_size (in '
        'both HeldOutSplit datasets).')
