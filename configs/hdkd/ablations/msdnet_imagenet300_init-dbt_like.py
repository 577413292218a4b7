# Ablation (Table 3, "HDKD with different γ initialization"): γ starts
# 'dbt_like' instead of 'ds_like'. The paper finds HDKD insensitive to it.
#   tools/dist_train.sh configs/hdkd/ablations/msdnet_imagenet300_init-dbt_like.py 8
_base_ = ['./msdnet_imagenet300.py']
model = dict(loss_weights=dict(init='dbt_like'))
