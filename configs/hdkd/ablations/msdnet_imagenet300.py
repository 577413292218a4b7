# The setting of the paper's ablation (Table 3): HDKD on ImageNet(300), 300
# training images per class (the held-out split is taken out first), MSDNet
# step 4, 8 GPUs. The other files here change one thing each:
#   init-dbt_like / init-rand (default ds_like)      γ initialisation
#   fixed                                              Fixed-1/Fixed-2 (frozen γ)
#   alpha-0 / alpha-0.1 / alpha-0.9 / alpha-1 (default 0.5)   α of Eq. 10
#   tools/dist_train.sh configs/hdkd/ablations/msdnet_imagenet300.py 8
_base_ = ['../msdnet_imagenet.py']
train_dataloader = dict(dataset=dict(per_class=300))
