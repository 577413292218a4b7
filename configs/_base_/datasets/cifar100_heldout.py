# CIFAR-100 for HDKD (paper, Experiments/Datasets): 5,000 of the 50,000
# training images are held out (threshold search for budgeted classification
# and HDKD's γ updates); the model trains on the other 45,000 (or on X per
# class, CIFAR(X)); val/test = the 10,000 test images. Batch 128.
#
# Overrides in a child config (dicts merge into these):
#   CIFAR(X), e.g. CIFAR(150):
#     train_dataloader = dict(dataset=dict(per_class=150))
#   X can be at most the smallest class's remaining count: about 425-440
#   after the random 5,000 hold-out (the error names the class), exactly 450
#   with stratified=True in BOTH splits. CIFAR(500), all 500 images of every
#   class, cannot coexist with a hold-out; per_class=None takes all 45,000.
#   held-out size / seed: change BOTH splits (hdkd_mm.datasets.check_disjoint
#   refuses a training and a held-out split that were drawn differently):
#     train_dataloader = dict(dataset=dict(heldout_size=1000, seed=1))
#     heldout_dataloader = dict(dataset=dict(heldout_size=1000, seed=1))
#   data root (the folder holding cifar-100-python/), on the command line:
#     --cfg-options train_dataloader.dataset.dataset.data_root=/data/c100 \
#       heldout_dataloader.dataset.dataset.data_root=/data/c100 \
#       val_dataloader.dataset.data_root=/data/c100 \
#       test_dataloader.dataset.data_root=/data/c100
# Nothing is downloaded: a missing data root raises FileNotFoundError (fix:
# extract cifar-100-python.tar.gz into data_root).
dataset_type = 'LocalCIFAR100'  # MMPretrain's CIFAR100, local files only
data_root = 'data/cifar100'

data_preprocessor = dict(
    num_classes=100,
    # RGB mean/std of the CIFAR-100 training set (as MMPretrain's configs)
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418],
    to_rgb=False)  # CIFAR images are loaded as RGB already

# Standard augmentation (He et al. 2016): 4-pixel zero padding, random 32×32
# crop, horizontal flip.
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]

# The full training set, without a pipeline: each HeldOutSplit applies its
# own (augmented for training, unaugmented for the held-out split).
cifar100_train = dict(
    type=dataset_type, data_root=data_root, split='train', pipeline=[])

train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        type='HeldOutSplit',
        dataset=cifar100_train,
        split='train',
        heldout_size=5000,
        per_class=None,  # CIFAR(X): X images per class
        seed=0,
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)

# The held-out split (test pipeline, unaugmented); HDKD draws one batch of it
# per training iteration, hence shuffle and drop_last.
heldout_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    drop_last=True,
    dataset=dict(
        type='HeldOutSplit',
        dataset=cifar100_train,
        split='heldout',
        heldout_size=5000,
        seed=0,
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)

val_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='MultiExitAccuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
