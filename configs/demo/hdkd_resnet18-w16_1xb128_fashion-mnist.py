# Demo of HDKD on Fashion-MNIST: the small 4-exit ResNet-18 of
# msdnet_resnet18-w16_1xb128_fashion-mnist.py (its Σ CE baseline) with dense
# KD (4 CE + 6 KD objectives) and the objective weights γ learned by the
# bilevel step (schedules/demo_sgd_3e_bilevel.py) on held-out batches of 32.
#   python tools/train.py configs/demo/hdkd_resnet18-w16_1xb128_fashion-mnist.py
_base_ = [
    './_base_/resnet18-w16_fashion-mnist.py',
    '../_base_/schedules/demo_sgd_3e_bilevel.py',
]
model = dict(
    head=dict(loss=dict(scheme='hdkd', temperature=4.0)),
    loss_weights=dict(type='LearnedLossWeights', init='ds_like', alpha=0.5))
heldout_dataloader = dict(batch_size=32)
