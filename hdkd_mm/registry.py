"""The ``hdkd_mm`` scope: one child of each of MMPretrain's registries.

The plugin's modules are registered in MMPretrain's registries, and configs
keep ``default_scope='mmpretrain'``. These children exist for the one place
where MMEngine switches to the plugin's own scope: a config that inherits from
an installed plugin config, ``_base_ = ['hdkd_mm::<folder>/<config>.py']``.
MMEngine then tags every ``type`` dict of that base with ``_scope_='hdkd_mm'``,
imports ``hdkd_mm.registry`` and builds those dicts from the registry of that
scope. A child finds every key of its ancestors (MMPretrain's, then
MMEngine's), so the same modules build either way. Nothing is registered here.

``locations`` repeats the parent's: a lookup from the child reads the
ancestors' tables without importing their modules first.
"""
from mmengine.registry import Registry
from mmpretrain import registry as mmpretrain_registry


def _child(parent: Registry) -> Registry:
    return Registry(
        parent.name, parent=parent, scope='hdkd_mm',
        locations=list(parent._locations) or ['hdkd_mm'])


RUNNERS = _child(mmpretrain_registry.RUNNERS)
RUNNER_CONSTRUCTORS = _child(mmpretrain_registry.RUNNER_CONSTRUCTORS)
LOOPS = _child(mmpretrain_registry.LOOPS)
HOOKS = _child(mmpretrain_registry.HOOKS)
LOG_PROCESSORS = _child(mmpretrain_registry.LOG_PROCESSORS)
OPTIMIZERS = _child(mmpretrain_registry.OPTIMIZERS)
OPTIM_WRAPPERS = _child(mmpretrain_registry.OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = _child(
    mmpretrain_registry.OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child(mmpretrain_registry.PARAM_SCHEDULERS)
DATASETS = _child(mmpretrain_registry.DATASETS)
DATA_SAMPLERS = _child(mmpretrain_registry.DATA_SAMPLERS)
TRANSFORMS = _child(mmpretrain_registry.TRANSFORMS)
MODELS = _child(mmpretrain_registry.MODELS)
MODEL_WRAPPERS = _child(mmpretrain_registry.MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child(mmpretrain_registry.WEIGHT_INITIALIZERS)
BATCH_AUGMENTS = _child(mmpretrain_registry.BATCH_AUGMENTS)
TASK_UTILS = _child(mmpretrain_registry.TASK_UTILS)
METRICS = _child(mmpretrain_registry.METRICS)
EVALUATORS = _child(mmpretrain_registry.EVALUATORS)
VISUALIZERS = _child(mmpretrain_registry.VISUALIZERS)
VISBACKENDS = _child(mmpretrain_registry.VISBACKENDS)
