# Demo of HDKD on Fashion-MNIST: the 4-exit timm MobileNetV3-Small of
# msdnet_timm-mobilenetv3-small_1xb128_fashion-mnist.py (its Σ CE baseline)
# with dense KD (4 CE + 6 KD objectives) and the objective weights γ learned
# by the bilevel step (schedules/demo_sgd_3e_bilevel.py) on held-out batches
# of 32.
#   python tools/train.py configs/demo/hdkd_timm-mobilenetv3-small_1xb128_fashion-mnist.py
_base_ = [
    './_base_/timm-mobilenetv3-small_fashion-mnist.py',
    '../_base_/schedules/demo_sgd_3e_bilevel.py',
]
model = dict(
    head=dict(loss=dict(scheme='hdkd', temperature=4.0)),
    loss_weights=dict(type='LearnedLossWeights', init='ds_like', alpha=0.5))
heldout_dataloader = dict(batch_size=32)
