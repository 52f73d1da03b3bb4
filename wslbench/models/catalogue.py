"""Every architecture of the five papers behind one factory: ``create_model(name, **kwargs)``.

``list_models()`` names them; an unknown name or a misspelled keyword raises a
:class:`~wslbench.errors.ConfigError` listing what is expected. The paper families
keep their typed builders (:func:`~wslbench.models.dr.build_dr_net`,
:func:`~wslbench.models.mri.build_mri_cnn`…); this catalogue is the one place a
user or a preset names any of them.

=============  ==============================================================
name           architecture
=============  ==============================================================
net_a, net_b   o_O nets of Quellec et al. 2017 (Table 1)
alexnet        the AlexNet variant of Quellec et al. 2017
aecl1, aeres18 autoencoder + classifier of Arora et al. (4.2)
wsl            ResNet backbone + any WSL pooling head (Rony 2020, ch. 2–3)
unet           U-Net upper bound (Rony 2020, 2.1.3.2)
cnncs, ecnncs1, ecnncs2   CNN + compressed-sensing detectors of Xue et al. (3.3)
density_net    FCRN-A density-map baseline (Xie et al. 2016)
mri_cnn        3D CNN of Thibeau-Sutre et al. 2020 (2.2.3)
resnet         ResNet-18/34/50/101/152 backbone in plain torch
=============  ==============================================================
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from wslbench.models.cnncs import CNNCS
from wslbench.models.density import DensityNet
from wslbench.models.dr import build_dr_net
from wslbench.models.mri import build_mri_cnn
from wslbench.models.ssl import create_ssl_model
from wslbench.nn.resnet import ResNet
from wslbench.nn.unet import UNet
from wslbench.pooling import WSLModel, create_pooling
from wslbench.registry import Registry

__all__ = ["MODELS", "create_model", "list_models", "wsl_model"]

MODELS: Registry[nn.Module] = Registry("model")


def _family(names: tuple[str, ...], build):  # one registry entry per name of a family
    for name in names:
        MODELS.register(name)(lambda _n=name, **kwargs: build(_n, **kwargs))


_family(("net_a", "net_b", "alexnet"), build_dr_net)
_family(("aecl1", "aeres18"), create_ssl_model)
_family(("cnncs", "ecnncs1", "ecnncs2"), lambda variant, **kwargs: CNNCS(variant=variant, **kwargs))
MODELS.register("mri_cnn")(build_mri_cnn)
MODELS.register("density_net")(DensityNet)
MODELS.register("unet")(UNet)
MODELS.register("resnet")(ResNet)


@MODELS.register("wsl")
def wsl_model(
    *,
    head: str = "gap",
    num_classes: int = 2,
    depth: int = 18,
    base_width: int = 64,
    output_stride: int = 16,
    head_kwargs: Mapping[str, object] | None = None,
) -> WSLModel:
    """A WSL network: ResNet backbone → feature map → pooling head (any head on any backbone).

    ``head_kwargs`` are the head's own hyper-parameters (``q`` for LSE, ``k_pos`` for WILDCAT…).
    """
    backbone = ResNet(depth=depth, output_stride=output_stride, base_width=base_width)
    pool = create_pooling(head, in_channels=backbone.num_features, num_classes=num_classes,
                          **dict(head_kwargs or {}))
    return WSLModel(backbone, pool)


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build the architecture ``name`` (see :func:`list_models`) with ``kwargs``."""
    return MODELS.create(name, **kwargs)


def list_models() -> list[str]:
    """Names of every architecture of the five papers."""
    return MODELS.names()
