"""Backbone surgery: build a MONAI network, find the size its input must divide by, find and split the convs that
read its input, and run it on any input size. Used by :class:`~freq_transforms.networks.FrequencyDisentangledNet`
and by the zoo overlay (:mod:`freq_transforms.bundle.overlay`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from monai.networks import nets
from monai.networks.utils import eval_mode
from torch import nn

__all__ = ["BACKBONE_DEFAULTS", "Backbone", "build_backbone", "backbone_divisor", "fixed_input_size", "first_tensor",
           "probe", "input_convs", "split_input_convs", "check_segmentation_output", "pad_for_backbone", "pad_to_divisor", "pad_to_size",
           "crop_to", "crop_each"]

# Small-data defaults per backbone name; any keyword given in ``backbone_kwargs`` overrides them.
BACKBONE_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "UNet": {"channels": (16, 32, 64, 128), "strides": (2, 2, 2), "num_res_units": 2, "norm": "instance"},
    "SegResNet": {"init_filters": 8, "blocks_down": (1, 2, 2, 4), "blocks_up": (1, 1, 1)},
    "DynUNet": {"kernel_size": (3, 3, 3, 3), "strides": (1, 2, 2, 2), "upsample_kernel_size": (2, 2, 2),
                "filters": (16, 32, 64, 128), "norm_name": "instance"},
    "SwinUNETR": {"feature_size": 12, "depths": (1, 1, 1, 1), "num_heads": (3, 6, 12, 24)},
    "BasicUNet": {"features": (8, 16, 32, 64, 128, 8)},
    "AttentionUnet": {"channels": (16, 32, 64, 128), "strides": (2, 2, 2)},
}

Backbone = Union[str, nn.Module, Callable[[int, int], nn.Module]]


def build_backbone(name: str, spatial_dims: int, in_channels: int, out_channels: int,
                   **kwargs: Any) -> nn.Module:
    """Instantiate ``monai.networks.nets.<name>`` with this package's small-data defaults.

    Example: ``build_backbone("UNet", 3, 1, 2, channels=(8, 16, 32), strides=(2, 2))``.
    """
    net_cls = getattr(nets, name, None)
    if not (isinstance(net_cls, type) and issubclass(net_cls, nn.Module)):
        raise ValueError(f"backbone {name!r} is not a network in monai.networks.nets "
                         f"(known defaults: {sorted(BACKBONE_DEFAULTS)})")
    options = {**BACKBONE_DEFAULTS.get(name, {}), **kwargs}
    return net_cls(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **options)


def _stride_product(strides: Any, spatial_dims: int) -> List[int]:
    divisor = [1] * spatial_dims
    for stride in strides:
        per_axis = list(stride) if isinstance(stride, (list, tuple)) else [stride] * spatial_dims
        divisor = [a * int(s) for a, s in zip(divisor, per_axis)]
    return divisor


def backbone_divisor(net: nn.Module, spatial_dims: int) -> List[int]:
    """Per-axis size the backbone's input must be divisible by (1 where unknown).

    The network's own word where it gives one (``SegResNetDS.shape_factor()``), else its strides; MONAI has no
    common method for this, so the known networks are listed.
    """
    if callable(getattr(net, "shape_factor", None)):
        return [int(f) for f in net.shape_factor()][:spatial_dims]
    if isinstance(net, (nets.UNet, nets.AttentionUnet, nets.DynUNet)):
        return _stride_product(net.strides, spatial_dims)
    if isinstance(net, nets.SegResNet):
        return [2 ** (len(net.blocks_down) - 1)] * spatial_dims
    if isinstance(net, (nets.BasicUNet, nets.BasicUNetPlusPlus, nets.VNet)):
        return [16] * spatial_dims
    if isinstance(net, (nets.FlexibleUNet, nets.AHNet)):
        return [32] * spatial_dims
    if isinstance(net, nets.MedNeXt):
        return [2 ** len(net.enc_stages)] * spatial_dims
    if isinstance(net, nets.SwinUNETR):
        return [32] * spatial_dims
    return [1] * spatial_dims


def fixed_input_size(net: nn.Module) -> List[int]:
    """The one input size a network takes, for networks with a fixed grid of patch positions (UNETR:
    ``feat_size`` patches of ``patch_size``) or a fixed ``input_image_size`` (SegResNetVAE); ``[]`` for networks
    that take many sizes. MONAI has no common attribute for this."""
    fixed = getattr(net, "input_image_size", None)
    if isinstance(fixed, (list, tuple)) and all(isinstance(s, int) for s in fixed):
        return [int(s) for s in fixed]
    feat_size, patch_size = getattr(net, "feat_size", None), getattr(net, "patch_size", None)
    if isinstance(feat_size, (list, tuple)) and isinstance(patch_size, (list, tuple)) and \
            len(feat_size) == len(patch_size):
        return [int(f) * int(p) for f, p in zip(feat_size, patch_size)]
    return []


def _probe_sizes(divisor: Sequence[int], spatial_dims: int,
                 first: Optional[Sequence[int]]) -> List[List[int]]:
    sizes = [list(first)] if first else []
    sizes.append([max(2 * int(d), 16) for d in divisor][:spatial_dims])
    return sizes + [[n] * spatial_dims for n in (32, 64, 96, 128)]


def first_tensor(output: Any) -> torch.Tensor:
    """The main output of a network: the tensor itself, or the first of a list of deep-supervision heads."""
    return output if isinstance(output, torch.Tensor) else first_tensor(output[0])


def probe(net: nn.Module, in_channels: int, spatial_dims: int, divisor: Sequence[int],
          before_each: Optional[Callable[[], None]] = None, size: Optional[Sequence[int]] = None) -> Any:
    """``net``'s output for a random input (its own generator: the global random state is left as it was), in
    eval mode without gradients: at ``size`` when given (a bundle's own input size), else the smallest size it
    takes (twice its divisor, at least 16, else 32, 64, 96 or 128 per axis). Any exception means "not this
    size". The input of the current attempt is ``probe.last_input``; ``before_each`` is called before every
    attempt."""
    error: Optional[Exception] = None
    generator = torch.Generator().manual_seed(0)
    with eval_mode(net):
        for shape in _probe_sizes(divisor, spatial_dims, size or fixed_input_size(net) or None):
            x = torch.rand(1, in_channels, *shape, generator=generator)
            probe.last_input = x  # type: ignore[attr-defined]
            if before_each is not None:
                before_each()
            try:
                return net(x)
            except Exception as err:  # noqa: BLE001  (networks refuse sizes with RuntimeError, ValueError, ...)
                error = err
    raise ValueError(f"{type(net).__name__} ran on no probe input of {in_channels} channels up to 128 voxels per "
                     f"axis ({type(error).__name__}: {error})")


def input_convs(net: nn.Module, in_channels: int, spatial_dims: int, divisor: Sequence[int],
                size: Optional[Sequence[int]] = None) -> List[str]:
    """Names of the convs that read the network's input tensor itself (found by one small forward pass).

    For MONAI's UNet these are the first residual unit's conv and its residual conv; for SegResNet
    ``convInit``; for SwinUNETR the patch embedding and the first encoder block.
    """
    conv_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    found: List[str] = []
    hooks = []
    for name, module in net.named_modules():
        if isinstance(module, conv_types):
            def hook(mod: nn.Module, args: Tuple[Any, ...], name: str = name) -> None:
                current = probe.last_input  # type: ignore[attr-defined]
                if args and isinstance(args[0], torch.Tensor) and args[0].data_ptr() == current.data_ptr():
                    found.append(name)
            hooks.append(module.register_forward_pre_hook(hook))
    try:
        probe(net, in_channels, spatial_dims, divisor, before_each=found.clear, size=size)
    finally:
        for handle in hooks:
            handle.remove()
    return sorted(set(found))


def _outputs(output: Any) -> List[torch.Tensor]:
    return [output] if isinstance(output, torch.Tensor) else [t for o in output for t in _outputs(o)]


def check_segmentation_output(net: nn.Module, output: Any, spatial_dims: int) -> None:
    """Raise ``ValueError`` (one line) unless ``output`` is logits ``(B, C, *spatial)`` or deep-supervision heads
    of them (a list, tuple or stacked tensor): FD corrects and crops every head, so an output that carries
    something else (SegResNetVAE's VAE loss) cannot be wrapped."""
    heads = [output] if isinstance(output, torch.Tensor) else list(output) if isinstance(output, (list, tuple)) \
        else [output]
    for head in heads:
        if isinstance(head, (list, tuple)):
            check_segmentation_output(net, head, spatial_dims)
        elif not (isinstance(head, torch.Tensor) and head.dim() >= spatial_dims + 2):
            got = "None" if head is None else type(head).__name__ if not isinstance(head, torch.Tensor) \
                else f"a tensor of shape {list(head.shape)}"
            raise ValueError(f"FD cannot wrap {type(net).__name__}: its output holds {got} besides logits (FD "
                             "wraps networks whose outputs are logits or deep-supervision heads of them)")


def _check_starts_as(net: nn.Module, x: torch.Tensor, reference: Any) -> None:
    """Raise ``ValueError`` unless the split ``net`` computes ``reference`` (its output before the split) from
    ``[x, 0]``: something other than the split convs reads the input (a residual of the input itself)."""
    name = type(net).__name__
    try:
        with eval_mode(net):
            split = net(torch.cat([x, torch.zeros_like(x)], dim=1))
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"early fusion (arch='v2') cannot start as {name}: it reads its input other than through "
                         f"convs ({type(err).__name__}); use fusion='late'") from None
    pairs = list(zip(_outputs(reference), _outputs(split)))
    if not pairs or any(a.shape != b.shape or not torch.allclose(a, b, atol=1e-4, rtol=1e-4) for a, b in pairs):
        raise ValueError(f"early fusion (arch='v2') cannot start as {name}: it reads its input other than through "
                         "convs; use fusion='late'")


def split_input_convs(net: nn.Module, in_channels: int, spatial_dims: int, divisor: Sequence[int],
                      size: Optional[Sequence[int]] = None) -> List[str]:
    """Let ``net`` take the stacked bands (``2 * in_channels`` channels: all low, then all high) where it took the
    image.

    Each conv that reads the input gets a second copy of its input weights, so at initialisation
    ``conv([low, high]) == conv(low + high) == conv(image)``: the network computes exactly what the
    plain backbone computes, and training can then weigh the two bands apart. This is checked on a probe input
    (``size``, or the smallest size the network takes); a network that reads its input otherwise, or whose input
    convs cannot be found (one that pads before its first conv), stops with one line. Returns the conv names.
    """
    names = input_convs(net, in_channels, spatial_dims, divisor, size)
    if not names:
        raise ValueError(f"early fusion (arch='v2') found no conv reading the input of {type(net).__name__} (it "
                         "changes the input before its first conv); use fusion='late' or arch='paper'")
    x = probe.last_input  # type: ignore[attr-defined]
    with eval_mode(net):
        reference = net(x)
    check_segmentation_output(net, reference, spatial_dims)
    modules = dict(net.named_modules())
    for name in names:
        conv = modules[name]
        if conv.groups != 1:
            raise ValueError(f"early fusion (arch='v2') cannot split the grouped input conv {name!r} of "
                             f"{type(net).__name__}; use arch='paper'")
        conv.weight = nn.Parameter(torch.cat([conv.weight.data, conv.weight.data], dim=1))
        conv.in_channels = 2 * in_channels
    if isinstance(getattr(net, "in_channels", None), int):
        net.in_channels = 2 * in_channels
    _check_starts_as(net, x, reference)
    return names


def pad_to_divisor(x: torch.Tensor, divisor: List[int]) -> torch.Tensor:
    """``x`` zero-padded at the end of each spatial axis up to a multiple of ``divisor``."""
    flat: List[int] = []
    for size, div in zip(list(x.shape[2:])[::-1], divisor[::-1]):  # F.pad takes the last axis first
        flat += [0, (div - size % div) % div]
    return F.pad(x, flat)


def pad_to_size(x: torch.Tensor, size: List[int]) -> torch.Tensor:
    """``x`` zero-padded at the end of each spatial axis up to ``size`` (each axis at most ``size``)."""
    flat: List[int] = []
    for have, want in zip(list(x.shape[2:])[::-1], size[::-1]):
        flat += [0, want - have]
    return F.pad(x, flat)


def pad_for_backbone(x: torch.Tensor, divisor: List[int], fixed_size: List[int], pad: bool) -> torch.Tensor:
    """``x`` as the backbone takes it: padded at the end of each axis up to a multiple of ``divisor``, or, for a
    backbone of one input size (``fixed_size``, zeros for none), up to that size; unchanged where it already fits.
    A size that does not fit and may not be padded (``pad=False``, or larger than ``fixed_size``) is a
    ``ValueError``."""
    sizes = list(x.shape[2:])
    if fixed_size[0] > 0:
        if sizes == fixed_size:
            return x
        if not pad or any(s > f for s, f in zip(sizes, fixed_size)):
            raise ValueError(f"input spatial size {sizes} does not fit this backbone, which takes {fixed_size} only "
                             f"(smaller inputs are padded when pad_to_divisible=True): infer with a sliding window "
                             f"of roi_size {fixed_size}")
        return pad_to_size(x, fixed_size)
    if all(size % div == 0 for size, div in zip(sizes, divisor)):
        return x
    if not pad:
        raise ValueError(f"input spatial size {sizes} must be divisible by {divisor} for this backbone "
                         "(or construct with pad_to_divisible=True)")
    return pad_to_divisor(x, divisor)


def crop_to(out: torch.Tensor, sizes: List[int]) -> torch.Tensor:
    """``out`` cut to ``sizes`` on its last (spatial) axes, whatever stands before them (deep-supervision heads
    stacked by DynUNet too)."""
    if len(sizes) == 3:
        return out[..., : sizes[0], : sizes[1], : sizes[2]]
    return out[..., : sizes[0], : sizes[1]]


def crop_each(outputs: Any, padded: List[int], sizes: List[int]) -> Any:
    """:func:`crop_to` for every head of a list or tuple of deep-supervision outputs (the padded input was
    ``padded``; a head at a coarser resolution is cut to the same fraction)."""
    if isinstance(outputs, torch.Tensor):
        shape = list(outputs.shape[-len(sizes):])
        return crop_to(outputs, [-(-s * h // p) for s, h, p in zip(sizes, shape, padded)])
    return type(outputs)(crop_each(o, padded, sizes) for o in outputs)
