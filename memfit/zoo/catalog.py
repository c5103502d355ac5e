"""The built-in networks, each as ``NAME`` (float32) and ``NAME-int8``.

Figures in the descriptions are checked against the built graphs by tests/test_zoo.py.
"""

from __future__ import annotations

from functools import partial

from memfit.zoo import register
from memfit.zoo.dscnn import ds_cnn
from memfit.zoo.mobilenetv2 import mobilenetv2
from memfit.zoo.recipe import Recipe
from memfit.zoo.resnet8 import resnet8
from memfit.zoo.yolov2 import yolov2_16

RECIPES: dict[str, Recipe] = {
    "mobilenetv2": Recipe(mobilenetv2, (224, 224), seed=1, statistics_batch=8, calibration_count=4),
    "mobilenetv2-0.35-96": Recipe(partial(mobilenetv2, alpha=0.35), (96, 96), seed=2),
    "ds-cnn": Recipe(ds_cnn, (49, 10), seed=3),
    "resnet8": Recipe(resnet8, (32, 32), seed=4),
    # Fully convolutional: batch statistics are measured at 128x128, which costs 1/22 of 608x608.
    # One calibration input at 608x608 already gives every tensor 0.4M-12M values to take the
    # range of (about 1 s); more inputs hardly move min/max.
    "yolov2-16": Recipe(
        yolov2_16,
        (608, 608),
        seed=5,
        statistics_batch=4,
        statistics_hw=(128, 128),
        calibration_count=1,
    ),
}

WHAT = {
    "mobilenetv2": "MobileNetV2 1.0: inverted residuals (expansion 6, ReLU6, depthwise 3x3, linear "
    "bottlenecks), 224x224x3 image -> 1000 classes; 300.8M MACs, 3.49M parameters",
    "mobilenetv2-0.35-96": "MobileNetV2 0.35 (the same blocks, 0.35x channels), 96x96x3 image -> "
    "1000 classes; 11.9M MACs, 1.67M parameters",
    "ds-cnn": "DS-CNN keyword spotting (MLPerf Tiny): conv 10x4/2 with 64 filters, 4 depthwise-"
    "separable blocks, 49x10x1 MFCC -> 12 keywords; 2.7M MACs, 22.6K parameters",
    "resnet8": "ResNet-8 (MLPerf Tiny): 3 residual stacks of 16/32/64 filters, 32x32x3 CIFAR-10 "
    "image -> 10 classes; 12.5M MACs, 77.7K parameters",
    "yolov2-16": "YOLOv2 layers 0-15 (darknet, MAFAT's case): 12 convolutions 3x3/1x1 with 32-512 "
    "filters and leaky ReLU 0.1, 4 max pools, 608x608x3 image -> 38x38x256 features; "
    "13.0G MACs, 3.42M parameters",
}

FLOAT32 = "float32"
INT8 = "int8 (post-training, per-channel weights)"

for _name, _recipe in RECIPES.items():
    register(_name, f"{WHAT[_name]}; {FLOAT32}")(_recipe.float32)
    register(f"{_name}-int8", f"{WHAT[_name]}; {INT8}")(_recipe.int8)
