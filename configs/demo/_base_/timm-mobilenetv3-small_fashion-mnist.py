# The demo model, data and runtime without a schedule:
# msdnet_timm-mobilenetv3-small_1xb128_fashion-mnist.py adds
# schedules/demo_sgd_3e.py, the harmonized demos demo_sgd_3e_bilevel.py.
# The CIFAR-100 model (configs/_base_/models/timm_mobilenetv3_cifar.py) uses
# MobileNetV3-Large; the demo takes the Small variant (exits on timm's
# features 1-4: widths 16/24/48/576 at strides 4/8/16/32, so 8/4/2/1 pixels
# on the 32×32 padded images), trained on 2,000 images per class for 3 epochs;
# validated on the full 10,000-image test split. pretrained=False.
_base_ = [
    '../../_base_/models/timm_mobilenetv3_cifar.py',
    '../../_base_/datasets/fashion_mnist_heldout.py',
    '../../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(model_name='mobilenetv3_small_100'),
    head=dict(num_classes=10))
train_dataloader = dict(dataset=dict(per_class=2000))

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=1, max_keep_ckpts=1))
