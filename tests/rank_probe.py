"""A hook for multi-process tests, imported by a config through
``custom_imports``: at the end of training every rank saves its model state
(unwrapped), the wrapper's type and the number of γ steps to
``<work_dir>/rank<r>.pth``, so a test can compare the ranks."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module(force=True)
class SaveRankStateHook(Hook):

    def after_train(self, runner):
        model = runner.model
        inner = getattr(model, 'module', model)
        torch.save(dict(wrapper=type(model).__name__,
                        state_dict={k: v.detach().clone()
                                    for k, v in inner.state_dict().items()}),
                   osp.join(runner.work_dir, f'rank{get_rank()}.pth'))
