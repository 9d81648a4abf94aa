# DeepLabV2-ResNet-101 trained on CLIP-ES pseudo masks, mirroring deeplab-pytorch's
# configs/voc12.yaml as CLIP-ES used it (docs/method.md, "Segmenter"), in mmseg 1.x terms.
# Load with mmengine `Config.fromfile`; `wsss_mmseg.training.train_segmenter` overrides the
# data paths, class list, schedule length, batch, crop, lr, seed and checkpoints.
#
# Differences from deeplab-pytorch that remain (documented, not hidden):
# * single-scale training; deeplab-pytorch also supervises 0.75x, 0.5x and max-fused logits (MSC);
# * logits are upsampled to the label size before the loss (mmseg) instead of labels
#   being nearest-downsampled to the logit size;
# * batch 10 in one step instead of 5 x ITER_SIZE 2 (same effective batch, BN sees 10);
# * BN is trained (`requires_grad=True`); deeplab-pytorch freezes it. For frozen BN set
#   `norm_eval=True` and `requires_grad=False` in the backbone;
# * RandomResize samples the scale continuously in [0.5, 1.5] of a 500 px long side (= of the
#   image itself for VOC, whose images are at most 500 px), not from {0.5, ..., 1.5}.
custom_imports = dict(imports=["wsss_mmseg"], allow_failed_imports=False)
default_scope = "mmseg"

num_classes = 21  # VOC: background + 20; COCO 81 (class list comes from train_segmenter)
crop_size = (321, 321)
# BN for one process (CPU or a single GPU). `train_cli --launcher pytorch` turns it into SyncBN on
# CUDA hosts and keeps BN on CPU processes (wsss_mmseg/distributed.py); SyncBN without a process
# group fails with "Default process group is not initialized".
norm_cfg = dict(type="BN", requires_grad=True)

data_preprocessor = dict(
    type="SegDataPreProcessor",
    # torchvision-style ImageNet statistics; a Caffe-converted checkpoint (AdvCAM's) needs
    # its own mean (BGR 104.008, 116.669, 122.675), std 1 and bgr_to_rgb=False.
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=crop_size,
)

model = dict(
    type="EncoderDecoder",
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type="ResNet",
        depth=101,
        num_stages=4,
        out_indices=(3,),
        # output stride 8: layer3/layer4 keep resolution and dilate by 2/4 (DeepLabV2).
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style="pytorch",
        contract_dilation=False,
        # No pretrained weights by default: nothing is downloaded here. train_segmenter sets
        # init_cfg=dict(type='Pretrained', checkpoint=<local path>) when given a checkpoint
        # (ImageNet ResNet-101, e.g. AdvCAM's; its key names must match mmseg's ResNet).
        init_cfg=None,
    ),
    decode_head=dict(
        type="ASPPV2Head",
        in_channels=2048,
        in_index=-1,
        dilations=(6, 12, 18, 24),
        num_classes=num_classes,
        align_corners=False,
        ignore_index=255,
        # threshold 0.95 + "hard" = CLIP-ES's 255 encoding (docs/method.md); balanced=True is the
        # class-balanced CE that ImageNet-initialised runs needed to avoid NaN (docs/method.md).
        loss_decode=dict(type="ConfidenceGuidedCELoss", threshold=0.95, mode="hard", balanced=False, loss_weight=1.0, loss_name="loss_cgl"),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode="whole"),
)

# ---- data -------------------------------------------------------------------------------
dataset_type = "PseudoMaskDataset"
data_root = "data/VOCdevkit/VOC2012"
metainfo = dict(classes=None, palette=None)  # set by train_segmenter (any class list)
train_pipeline = [
    dict(type="LoadImageAsStored"),  # raw pixel grid, as every stage (no EXIF rotation)
    dict(type="LoadAnnotations"),
    dict(type="LoadConfidenceMap"),
    dict(type="RandomResize", scale=(500, 500), ratio_range=(0.5, 1.5), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=1.0),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackSegInputsWithConfidence"),
]
# Full image, no resize (deeplab-pytorch tests on the whole image); needed at top level by
# mmseg's inference_model.
test_pipeline = [
    dict(type="LoadImageAsStored"),  # raw pixel grid, as every stage (no EXIF rotation)
    dict(type="LoadAnnotations"),
    dict(type="PackSegInputs"),
]
train_dataloader = dict(
    batch_size=10,  # deeplab-pytorch: 5 x ITER_SIZE 2; AdvCAM's recipe: 10
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file="ImageSets/Segmentation/train_aug.txt",
        img_suffix=".jpg",
        seg_map_suffix=".png",
        confidence_suffix=".npy",
        data_prefix=dict(img_path="JPEGImages", seg_map_path="pseudo_masks", confidence_path=None),
        metainfo=metainfo,
        pipeline=train_pipeline,
    ),
)
# Evaluation runs through wsss_mmseg.training.evaluate_segmenter (the project's own mIoU
# protocol, optional multi-scale), not an mmengine val loop.
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None

# ---- schedule ---------------------------------------------------------------------------
max_iters = 20000
# lr 2.5e-4 (AdvCAM's recipe) by default; CLIP-ES's author: 2e-4 with ImageNet-pretrained
# ResNet-101 and 2.5e-5 with the COCO-pretrained DeepLab (docs/method.md).
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="SGD", lr=2.5e-4, momentum=0.9, weight_decay=5e-4),
    clip_grad=None,
    # deeplab-pytorch's groups: backbone x1, ASPP weights x10, ASPP biases x20 without
    # weight decay. mmengine applies the first matching custom key (longest first) and then
    # ignores bias_lr_mult, so the head biases need their own keys (checked by a test).
    paramwise_cfg=dict(
        custom_keys={
            "decode_head": dict(lr_mult=10.0),
            "decode_head.aspp_branches.0.bias": dict(lr_mult=20.0, decay_mult=0.0),
            "decode_head.aspp_branches.1.bias": dict(lr_mult=20.0, decay_mult=0.0),
            "decode_head.aspp_branches.2.bias": dict(lr_mult=20.0, decay_mult=0.0),
            "decode_head.aspp_branches.3.bias": dict(lr_mult=20.0, decay_mult=0.0),
        }
    ),
)
param_scheduler = [dict(type="PolyLR", eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters + 1)

# ---- runtime ----------------------------------------------------------------------------
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=2000, max_keep_ckpts=3),
    sampler_seed=dict(type="DistSamplerSeedHook"),
)
env_cfg = dict(cudnn_benchmark=True, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0), dist_cfg=dict(backend="nccl"))
# LocalVisBackend writes <work_dir>/<timestamp>/vis_data/scalars.json (loss, lr per log step).
vis_backends = [dict(type="LocalVisBackend")]
visualizer = dict(type="SegLocalVisualizer", vis_backends=vis_backends, name="visualizer")
log_processor = dict(by_epoch=False)
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
