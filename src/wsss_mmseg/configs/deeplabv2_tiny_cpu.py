# The DeepLabV2 recipe shrunk for CPU smoke runs and tests: dilated ResNet-18 (BasicBlock,
# 512 channels out), crop 64, batch 2, 20 iterations at lr 0.01, random initialisation. This file
# is the sample pipeline's recipe (params.yaml's train.* keys are null = keep these values).
_base_ = ["./deeplabv2_r101_voc_pseudo.py"]

crop_size = (64, 64)
norm_cfg = dict(type="BN", requires_grad=True)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor, backbone=dict(depth=18, norm_cfg=norm_cfg, init_cfg=None), decode_head=dict(in_channels=512))

train_pipeline = [
    dict(type="LoadImageAsStored"),  # raw pixel grid, as every stage (no EXIF rotation)
    dict(type="LoadAnnotations"),
    dict(type="LoadConfidenceMap"),
    dict(type="RandomResize", scale=(96, 96), ratio_range=(0.5, 1.5), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=1.0),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackSegInputsWithConfidence"),
]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(img_suffix=".png", pipeline=train_pipeline))

max_iters = 20
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [dict(type="PolyLR", eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=10, max_keep_ckpts=2))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo"))
