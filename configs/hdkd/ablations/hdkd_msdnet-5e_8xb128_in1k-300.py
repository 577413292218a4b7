# The setting of the paper's ablation (Table 3): HDKD on ImageNet(300), 300
# training images per class (the held-out split is taken out first), MSDNet
# step 4, 8 GPUs. The other files here (hdkd-<change>_msdnet-5e_8xb128_in1k-300.py)
# change one thing each:
#   hdkd-initdbt / hdkd-initrand (default ds_like)        γ initialisation
#   hdkd-fixed                                            Fixed-1/Fixed-2 (frozen γ)
#   hdkd-alpha0 / -alpha0.1 / -alpha0.9 / -alpha1 (default 0.5)   α of Eq. 10
#   tools/dist_train.sh configs/hdkd/ablations/hdkd_msdnet-5e_8xb128_in1k-300.py 8
_base_ = ['../hdkd_msdnet-5e_8xb128_in1k.py']
train_dataloader = dict(dataset=dict(per_class=300))
