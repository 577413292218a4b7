# ImageNet schedule of MSDNet (90 epochs, lr ÷10 at 30 and 60, SGD momentum
# 0.9, weight decay 1e-4) at the paper's batch of 1024. The paper does not state
# its learning rate at batch 1024; we follow the rule it cites (Goyal et al.
# 2017): lr 0.1 × 1024 / 256 = 0.4 with a 5-epoch linear warm-up.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.4, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.25, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60], gamma=0.1),
]
train_cfg = dict(by_epoch=True, max_epochs=90, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)
