"""A multi-exit image classifier: any backbone returning one feature per exit,
plus a :class:`MultiExitHead`, trained with fixed objective weights or with
the learned γ of the harmonized schemes (the bilevel iteration of HDKD)."""
import warnings
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from hdkd_mm.engine.step_cfg import MOVED_FROM_LOSS_WEIGHTS, BilevelStepConfig

from hdkd_mm.models.exits import exit_protocol

from .checks import check_exits_match_backbone, check_hard_labels


def infer_exit_channels(backbone: nn.Module) -> List[int]:
    """Channel widths of the features a backbone returns, one per exit: its
    exit protocol's :meth:`~hdkd_mm.models.exits.ExitProtocol.exit_channels`.

    Raises:
        UnsupportedBackboneError: for a backbone without an exit protocol.
    """
    return list(exit_protocol(backbone).exit_channels())


@MODELS.register_module()
class MultiExitClassifier(ImageClassifier):
    """Image classifier with one classification exit per backbone output.

    Args:
        backbone (dict): a backbone returning a tuple of K features, with
            an exit protocol (:mod:`hdkd_mm.models.exits`: MSDNet, MMPretrain
            ResNets and ViT with ``out_indices``, ``TIMMBackbone`` with
            ``features_only``).
        head (dict): a multi-exit head. Leave its ``in_channels`` unset
            (``None``) to infer the widths from the backbone.
        neck, pretrained, train_cfg, data_preprocessor, init_cfg: as
            :class:`mmpretrain.models.ImageClassifier`.

        loss_weights (dict, optional): the objective weights γ, a
            :class:`~hdkd_mm.models.weighting.LearnedLossWeights` config
            (initialisation, α, projection). The harmonized schemes
            (``hmsdnet``, ``hdbt``,
            ``hdkd``) build it with its defaults when left out; the fixed
            schemes take none, or a frozen one (``init='fixed'``).
        channels_last (bool): keep the model's 4-D weights and its input
            images in ``torch.channels_last`` memory format (NHWC), as timm's
            ``--channels-last``. The same computation in another memory
            layout: results differ by float rounding only (another summation
            order in the convolution kernels), so it is an execution choice
            like the thread count and is left out of a suite run's config
            digest. Whether it is faster depends on the model and the
            device: measure with ``bench/memory_format.py CONFIG``.
            Default False.

    Modes of ``forward``: ``'loss'`` (dict of losses), ``'predict'`` (data
    samples with ``exit_scores`` of shape ``(K, C)`` and the last exit's
    ``pred_score``), ``'tensor'`` (tuple of K logits of shape ``(N, C)``).

    Training with learned γ (:meth:`train_step`) needs, in the config::

        optim_wrapper = dict(
            constructor='BilevelOptimWrapperConstructor',
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9,
                           weight_decay=1e-4),          # θ
            gamma=dict(optimizer=dict(type='Adam', lr=1e-3)))  # γ, lr ε
        param_scheduler = dict(model=[...], gamma=[...])
        train_cfg = dict(type='BilevelEpochBasedTrainLoop', max_epochs=300,
                         bilevel=dict(hypergrad='jvp', gamma_interval=1))
        heldout_dataloader = dict(...)   # the held-out split

    (see :mod:`hdkd_mm.engine`; ``train_cfg.bilevel`` is a
    :class:`~hdkd_mm.engine.BilevelStepConfig`, handed to the model by the
    loop through :meth:`set_bilevel_step`).
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 neck: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 train_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 loss_weights: Optional[dict] = None,
                 channels_last: bool = False):
        if neck is not None:
            raise ValueError(
                'MultiExitClassifier takes no neck: every exit has its own '
                'head module (set pooling inside the head).')
        if isinstance(backbone, dict):
            backbone = MODELS.build(backbone)
        widths = infer_exit_channels(backbone)  # refuses unsupported ones
        inferred = isinstance(head, dict) and head.get('in_channels') is None
        if inferred:
            head = dict(head, in_channels=widths)
        super().__init__(
            backbone=backbone,
            neck=None,
            head=head,
            pretrained=pretrained,
            train_cfg=train_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        if not inferred:
            check_exits_match_backbone(self.backbone, self.head)
        check_hard_labels(self.data_preprocessor)
        self._build_loss_weights(loss_weights)
        self._heldout_source: Optional[Callable[[], dict]] = None
        self.bilevel_step = BilevelStepConfig()
        self._apply_gradient_equilibrium()
        self.channels_last = bool(channels_last)
        self._apply_memory_format()

    def _apply_memory_format(self) -> None:
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def init_weights(self) -> None:
        # initialise in the default layout: in-place random initialisers
        # fill a tensor in memory order, so in NHWC the same seed would give
        # other (permuted) weights than in NCHW
        if self.channels_last:
            self.to(memory_format=torch.contiguous_format)
        super().init_weights()
        self._apply_memory_format()

    def _apply_gradient_equilibrium(self) -> None:
        """Schemes with gradient equilibrium (``impr``) switch it on in the
        backbone, which must support it (MSDNet does)."""
        scheme = getattr(getattr(self.head, 'loss_module', None), 'scheme',
                         None)
        if scheme is None or not scheme.gradient_equilibrium:
            return
        if not hasattr(self.backbone, 'gradient_equilibrium'):
            raise ValueError(
                f'The scheme {self.head.loss_module.scheme_name!r} rescales '
                'gradients between blocks (gradient equilibrium), which '
                f'{type(self.backbone).__name__} does not support: use MSDNet '
                "or the 'dbt' scheme (the same KD without it).")
        self.backbone.gradient_equilibrium = True

    @property
    def num_exits(self) -> int:
        return self.head.num_exits

    def extract_feat(self, inputs: torch.Tensor, stage='neck'):
        if self.channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        feats = self.backbone(inputs)
        if isinstance(feats, torch.Tensor):
            feats = (feats, )
        return tuple(feats)

    def exit_logits(self, inputs: torch.Tensor) -> Tuple[torch.Tensor]:
        """K logits of shape ``(N, num_classes)`` for a batch of images."""
        return self.head(self.extract_feat(inputs))

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        if mode == 'tensor':
            return self.exit_logits(inputs)
        return super().forward(inputs, data_samples, mode)

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """Σ_m w_m ℓ_m with w the objective weights (γ, detached, when the
        model has loss weights; the scheme's fixed weights otherwise), plus
        the per-objective values ``objective/<name>`` to log."""
        feats = self.extract_feat(inputs)
        weights = self.objective_weights()
        if weights is None:
            return self.head.loss(feats, data_samples)
        return self.head.loss(feats, data_samples, weights=weights)

    # --------------------------------------------------------- γ and HDKD
    def _build_loss_weights(self, cfg: Optional[dict]) -> None:
        loss_module = getattr(self.head, 'loss_module', None)
        scheme = getattr(loss_module, 'scheme', None)
        learned = bool(scheme is not None and scheme.learned)
        if cfg is None and learned:
            cfg = dict(type='LearnedLossWeights')
        if cfg is None:
            self.loss_weights = None
            return
        if loss_module is None:
            raise ValueError('`loss_weights` needs a head with a DenseKDLoss '
                             '(`head.loss`).')
        if isinstance(cfg, dict):
            cfg = dict(cfg)
            moved = [k for k in MOVED_FROM_LOSS_WEIGHTS if k in cfg]
            if moved:
                key = moved[0]
                raise ValueError(
                    f'model.loss_weights.{key}={cfg[key]!r}: the bilevel '
                    "step's knobs moved to the train loop's config: remove it "
                    "from loss_weights and set train_cfg=dict(type="
                    "'BilevelEpochBasedTrainLoop', ..., bilevel=dict("
                    f'{key}={cfg[key]!r})) (or inherit a configs/_base_/'
                    'schedules/*_bilevel.py schedule).')
            cfg.setdefault('type', 'LearnedLossWeights')
            cfg['objectives'] = loss_module.objectives
            module = MODELS.build(cfg)
        else:
            module = cfg
        if module.names != loss_module.names:
            raise ValueError(
                f'The loss weights cover {module.num_objectives} objectives '
                f'but the head has {loss_module.num_objectives} '
                f'({loss_module.names}).')
        if module.learnable and not learned:
            raise ValueError(
                f'The scheme {loss_module.scheme_name!r} has fixed objective '
                'weights, so γ cannot be learned: choose a harmonized scheme '
                "('hmsdnet', 'hdbt', 'hdkd') in the head's loss, or freeze γ "
                "with loss_weights=dict(init='fixed', path=...).")
        self.loss_weights = module
        # γ and the EMAs are updated identically on every rank by the
        # bilevel step: keep them out of DDP's gradient/buffer sync.
        self._ddp_params_and_buffers_to_ignore = [
            f'loss_weights.{n}' for n, _ in module.named_parameters()] + [
            f'loss_weights.{n}' for n, _ in module.named_buffers()]

    def objective_weights(self) -> Optional[torch.Tensor]:
        """The weights of the training loss: γ (detached), or ``None`` for
        the scheme's fixed weights."""
        if self.loss_weights is None:
            return None
        return self.loss_weights.weights()

    @property
    def learns_loss_weights(self) -> bool:
        """Whether :meth:`train_step` runs the bilevel iteration (learned,
        not frozen, γ); it then needs a held-out batch every γ step."""
        return self.loss_weights is not None and self.loss_weights.learnable

    def set_heldout_source(self, source: Optional[Callable[[], dict]]) -> None:
        """Where γ steps take their held-out batch from: a callable returning
        one batch of the held-out dataloader (set by
        :class:`~hdkd_mm.engine.BilevelEpochBasedTrainLoop`)."""
        self._heldout_source = source

    def set_bilevel_step(self, cfg: Union[BilevelStepConfig, dict, None]
                         ) -> None:
        """How :meth:`train_step` takes γ steps (hypergradient method,
        look-ahead, interval): ``train_cfg.bilevel``, set by
        :class:`~hdkd_mm.engine.BilevelEpochBasedTrainLoop`; the defaults of
        :class:`~hdkd_mm.engine.BilevelStepConfig` until then."""
        self.bilevel_step = BilevelStepConfig.from_cfg(cfg)

    def _next_heldout_batch(self) -> dict:
        if self._heldout_source is None:
            raise RuntimeError(
                f'The scheme {self.head.loss_module.scheme_name!r} learns the '
                'objective weights γ on a held-out batch every γ step, and no '
                'held-out data was given: set '
                "`train_cfg = dict(type='BilevelEpochBasedTrainLoop', ...)` "
                'and a top-level `heldout_dataloader` in the config.')
        return self._heldout_source()

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper,
                   wrapper: Optional[nn.Module] = None
                   ) -> Dict[str, torch.Tensor]:
        """One training iteration.

        Fixed weights (or frozen γ): the standard step, Σ w_m ℓ_m.

        Learned γ (``optim_wrapper`` an ``OptimWrapperDict(model=, gamma=)``),
        every ``gamma_interval``-th iteration (``train_cfg.bilevel``), with
        nothing computed twice:

        1. train forward → per-objective ℓ_m → backward of Σ γ_m ℓ_m (γ
           detached) → g, θ's gradient for this iteration's θ step;
        2. θ' from g, ξ = the θ optimizer's current learning rate;
        3. held-out batch at θ' (Eq. 10; E_k updated with its CE) → v;
        4. ∇γ = −ξ J v, J v by one forward-mode JVP on the train batch at θ
           (or central differences, ``hypergrad='finite_diff'``);
        5. γ step (its own optimizer) and projection; a non-finite ∇γ skips
           the γ step with a warning (counted in ``gamma_skipped``);
        6. θ step with g (Algorithm 1: it uses γ before this γ step).

        The other iterations are plain θ steps with the current γ.

        Args:
            data: the train batch from the dataloader.
            optim_wrapper: ``OptimWrapper`` or ``OptimWrapperDict``.
            wrapper: the DDP wrapper of this module, if any (passed by
                :class:`~hdkd_mm.engine.BilevelEpochBasedTrainLoop`): the train
                forward runs through it so that g is all-reduced, and the
                hypergradient's v and J v are averaged over ranks.
        """
        if isinstance(optim_wrapper, OptimWrapperDict):
            keys = list(optim_wrapper.keys())
            if 'model' not in keys:
                raise ValueError(
                    'Expected an OptimWrapperDict with a `model` (θ) entry, '
                    f'got {keys}: use BilevelOptimWrapperConstructor.')
            model_ow = optim_wrapper['model']
            gamma_ow = optim_wrapper['gamma'] if 'gamma' in keys else None
        else:
            model_ow, gamma_ow = optim_wrapper, None
        forward_module = self if wrapper is None else wrapper
        lw = self.loss_weights
        if not self.learns_loss_weights:
            return self._plain_step(data, model_ow, forward_module)
        if gamma_ow is None:
            raise ValueError(
                'Learning γ needs its own optimizer: set '
                "optim_wrapper.constructor='BilevelOptimWrapperConstructor' "
                '(optim_wrapper.gamma configures the γ optimizer).')
        if not lw.is_gamma_step(self.bilevel_step.gamma_interval):
            log_vars = self._plain_step(data, model_ow, forward_module)
        else:
            if getattr(model_ow, '_accumulative_counts', 1) != 1:
                raise ValueError('Learning γ does not support gradient '
                                 'accumulation (accumulative_counts != 1).')
            log_vars = self._bilevel_step(data, model_ow, gamma_ow,
                                          forward_module,
                                          distributed=wrapper is not None)
        lw.num_steps.add_(1)
        log_vars.update(lw.log_vars())
        return log_vars

    def _plain_step(self, data, model_ow: OptimWrapper,
                    forward_module: nn.Module) -> Dict[str, torch.Tensor]:
        with model_ow.optim_context(forward_module):
            data = self.data_preprocessor(data, True)
            losses = forward_module._run_forward(data, mode='loss')
        parsed, log_vars = self.parse_losses(losses)
        model_ow.update_params(parsed)
        return log_vars

    def _bilevel_step(self, data, model_ow: OptimWrapper,
                      gamma_ow: OptimWrapper, forward_module: nn.Module,
                      distributed: bool) -> Dict[str, torch.Tensor]:
        from hdkd_mm.engine.fast_jvp import ConvOutputCache
        from hdkd_mm.engine.hypergrad import capture_rng, gamma_hypergradient
        lw, step = self.loss_weights, self.bilevel_step
        heldout = self.data_preprocessor(self._next_heldout_batch(), False)
        # 1. Train forward and backward: g, the real θ step's gradient.
        train_logits = []
        hook = conv_cache = None
        if step.hypergrad == 'finite_diff':
            hook = self.head.register_forward_hook(
                lambda m, i, out: train_logits.append(
                    tuple(z.detach().float() for z in out)))
        elif step.jvp_backend == 'forward_ad' and step.jvp_reuse_forward:
            conv_cache = ConvOutputCache(self)
        try:
            with model_ow.optim_context(forward_module):
                data = self.data_preprocessor(data, True)
                rng = capture_rng(data['inputs'].device)
                losses = forward_module._run_forward(data, mode='loss')
        finally:
            if hook is not None:
                hook.remove()
            if conv_cache is not None:
                conv_cache.remove_hooks()
        parsed, log_vars = self.parse_losses(losses)
        model_ow.backward(parsed)
        scaler = getattr(model_ow, 'loss_scaler', None)
        grad_scale = float(scaler.get_scale()) if scaler is not None else 1.0
        # 2-4. The hypergradient (θ, g, optimizer state and BN untouched).
        # Computed in float32 even under mixed precision (outside autocast).
        result = gamma_hypergradient(
            self, model_ow.optimizer,
            train_inputs=data['inputs'],
            train_target=self.head.targets(data['data_samples']),
            heldout_inputs=heldout['inputs'],
            heldout_target=self.head.targets(heldout['data_samples']),
            loss_weights=lw,
            method=step.hypergrad,
            virtual=step.virtual_step,
            jvp_backend=step.jvp_backend,
            fd_eps=step.fd_eps,
            train_logits=train_logits[0] if train_logits else None,
            rng_state=rng,
            grad_scale=grad_scale,
            distributed=distributed,
            conv_cache=conv_cache)
        # 5. γ step and projection (skipped on a non-finite hypergradient).
        if result.finite:
            lw.gamma.grad = result.grad.to(lw.gamma).detach()
            gamma_ow.step()
            gamma_ow.zero_grad()
            lw.project_()
        else:
            lw.num_skipped.add_(1)
            warnings.warn(
                'Non-finite γ hypergradient: γ step skipped (the θ step goes '
                f'on); {int(lw.num_skipped)} skipped so far.')
        lw.update_ema(result.heldout_ce)
        # 6. θ step with g.
        model_ow.step()
        model_ow.zero_grad()
        log_vars['heldout/l_val'] = float(result.val_loss)
        return log_vars
