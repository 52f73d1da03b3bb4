"""Reusable layers and backbones in plain torch."""

from __future__ import annotations

from wslbench.nn.input_shift import InputShift
from wslbench.nn.maxout import Maxout
from wslbench.nn.resnet import RESNET_LAYERS, BasicBlock, Bottleneck, ResNet, resnet
from wslbench.nn.rms_pool import RMSPool2d
from wslbench.nn.unet import UNET_UPSAMPLING, UNet
from wslbench.nn.untied_conv import UntiedBiasConv2d, conv_output_size

__all__ = [
    "InputShift",
    "Maxout",
    "RMSPool2d",
    "UntiedBiasConv2d",
    "conv_output_size",
    "ResNet",
    "BasicBlock",
    "Bottleneck",
    "resnet",
    "RESNET_LAYERS",
    "UNet",
    "UNET_UPSAMPLING",
]
