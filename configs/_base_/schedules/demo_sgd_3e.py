# A short CPU schedule for the Fashion-MNIST demos: SGD with momentum,
# cosine decay over 3 epochs (per iteration), a short linear warm-up.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4,
                   nesterov=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=3,
         eta_min=1e-3, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=3, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)
