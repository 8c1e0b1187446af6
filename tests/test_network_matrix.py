"""FD on every segmentation network in ``monai.networks.nets`` that takes input and output channels, 2-D and 3-D,
early and late v2: it starts as the network (early) or as the network on the high band (late), a train step
gives finite gradients and odd input sizes come back at their size; or one line says why not.

``python tests/test_network_matrix.py`` prints the table of docs/overlay.md (the test below checks that it is there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List

import pytest
import torch
from monai.networks import nets
from torch import nn

from freq_transforms.networks import FrequencyDisentangledNet
from freq_transforms.networks.backbones import first_tensor

OVERLAY_PAGE = Path(__file__).resolve().parents[1] / "docs" / "overlay.md"
SMALL_CHANNELS = {"channels": (4, 8, 16), "strides": (2, 2)}
TINY_HIGHRES = ({"name": "conv_0", "n_features": 4, "kernel_size": 3},
                {"name": "res_1", "n_features": 4, "kernels": (3, 3), "repeat": 1},
                {"name": "conv_1", "n_features": 8, "kernel_size": 1}, {"name": "conv_2", "kernel_size": 1})


@dataclass
class Entry:
    """One network of the matrix: how to build it small, a size it takes, an odd size, and what FD does."""

    name: str
    build: Callable[[int, int, int], nn.Module]  # (spatial_dims, in_channels, out_channels)
    size: int = 32
    odd: List[int] = field(default_factory=lambda: [33, 29, 35])
    refused: Dict[str, str] = field(default_factory=dict)  # fusion -> words of the one-line reason
    note: str = ""


MATRIX = [
    Entry("UNet", lambda d, i, o: nets.UNet(d, i, o, **SMALL_CHANNELS)),
    Entry("BasicUNet", lambda d, i, o: nets.BasicUNet(d, i, o, features=(4, 4, 8, 8, 16, 4))),
    Entry("BasicUNetPlusPlus", lambda d, i, o: nets.BasicUNetPlusPlus(d, i, o, features=(4, 4, 8, 8, 16, 4),
                                                                      deep_supervision=True),
          note="deep-supervision list kept"),
    Entry("AttentionUnet", lambda d, i, o: nets.AttentionUnet(d, i, o, **SMALL_CHANNELS)),
    Entry("DynUNet", lambda d, i, o: nets.DynUNet(d, i, o, kernel_size=[3, 3, 3], strides=[1, 2, 2],
                                                  upsample_kernel_size=[2, 2])),
    Entry("DynUNet (deep supervision)",
          lambda d, i, o: nets.DynUNet(d, i, o, kernel_size=[3, 3, 3, 3], strides=[1, 2, 2, 2],
                                       upsample_kernel_size=[2, 2, 2], deep_supervision=True, deep_supr_num=2),
          note="stacked heads kept; trains with `DeepSupervisionLoss`"),
    Entry("SegResNet", lambda d, i, o: nets.SegResNet(d, init_filters=8, in_channels=i, out_channels=o,
                                                      blocks_down=(1, 1, 1), blocks_up=(1, 1))),
    Entry("SegResNetDS", lambda d, i, o: nets.SegResNetDS(d, init_filters=8, in_channels=i, out_channels=o,
                                                          blocks_down=(1, 1, 1), dsdepth=2),
          note="divisor from its `shape_factor()`"),
    Entry("SwinUNETR", lambda d, i, o: nets.SwinUNETR(i, o, feature_size=12, depths=(1, 1, 1, 1), spatial_dims=d),
          size=64, odd=[37, 35, 33], note="early splits the patch embedding and the first encoder block"),
    Entry("UNETR", lambda d, i, o: nets.UNETR(i, o, img_size=(32,) * d, feature_size=8, hidden_size=48, mlp_dim=96,
                                              num_heads=4, spatial_dims=d),
          odd=[29, 31, 27], note="takes its `img_size` only: smaller inputs are padded to it, larger ones refused"),
    Entry("VNet", lambda d, i, o: nets.VNet(d, i, o, dropout_prob_down=0.0, dropout_prob=0.0,
                                            dropout_prob_up=(0.0, 0.0)),
          refused={"early": "reads its input other than through convs"},
          note="its first block adds the input itself (a residual of the image), so early v2 cannot start as it"),
    Entry("MedNeXt", lambda d, i, o: nets.MedNeXt(d, init_filters=4, in_channels=i, out_channels=o, kernel_size=3,
                                                  blocks_down=(1, 1, 1, 1), blocks_bottleneck=1, blocks_up=(1, 1, 1, 1))),
    Entry("MedNeXt (deep supervision)",
          lambda d, i, o: nets.MedNeXt(d, init_filters=4, in_channels=i, out_channels=o, kernel_size=3,
                                       blocks_down=(1, 1, 1, 1), blocks_bottleneck=1, blocks_up=(1, 1, 1, 1),
                                       deep_supervision=True),
          note="tuple of heads kept"),
    Entry("SegResNetDS2", lambda d, i, o: nets.SegResNetDS2(d, init_filters=8, in_channels=i, out_channels=o,
                                                            blocks_down=(1, 1, 1)),
          note="its second output is wrapped like the first"),
    Entry("SegResNetVAE", lambda d, i, o: nets.SegResNetVAE(input_image_size=(32,) * d, spatial_dims=d, in_channels=i,
                                                            out_channels=o, vae_nz=16),
          refused={"early": "besides logits", "late": "besides logits"},
          note="its output pairs the logits with a VAE loss, which FD cannot pad, crop or correct"),
    Entry("HighResNet", lambda d, i, o: nets.HighResNet(d, i, o, layer_params=TINY_HIGHRES)),
    Entry("FlexibleUNet (ResNet encoder)",
          lambda d, i, o: nets.FlexibleUNet(i, o, backbone="resnet10", pretrained=False, spatial_dims=d,
                                            decoder_channels=(16, 8, 8, 8, 4))),
    Entry("FlexibleUNet (EfficientNet encoder)",
          lambda d, i, o: nets.FlexibleUNet(i, o, backbone="efficientnet-b0", pretrained=False, spatial_dims=d),
          size=64, refused={"early": "found no conv reading the input"},
          note="the encoder pads the image before its first conv, so no conv reads the input itself"),
]
CASES = [(entry, d, fusion) for entry in MATRIX for d in (2, 3) for fusion in ("early", "late")]


def _outputs(output) -> List[torch.Tensor]:
    return [output] if isinstance(output, torch.Tensor) else [t for o in output for t in _outputs(o)]


def _close(a, b) -> None:
    for x, y in zip(_outputs(a), _outputs(b), strict=True):
        torch.testing.assert_close(x, y, atol=1e-4, rtol=1e-4)


def _fd(entry: Entry, d: int, fusion: str) -> FrequencyDisentangledNet:
    return FrequencyDisentangledNet(lambda i, o: entry.build(d, i, o), 1, 2, fusion=fusion, spatial_dims=d)


# SwinUNETR in 3-D takes 15-30 s a case here: the long run (.ci/run) has it
@pytest.mark.parametrize("entry,d,fusion", [pytest.param(e, d, f, marks=pytest.mark.slow) if e.name == "SwinUNETR" and d == 3
                                            else (e, d, f) for e, d, f in CASES],
                         ids=[f"{e.name}-{d}d-{f}" for e, d, f in CASES])
def test_fd_wraps_the_network_or_says_why_not_in_one_line(entry, d, fusion):
    if fusion in entry.refused:
        with pytest.raises(ValueError, match=entry.refused[fusion]) as info:
            _fd(entry, d, fusion)
        assert "\n" not in str(info.value)
        return
    torch.manual_seed(0)
    plain = entry.build(d, 1, 2).eval()
    torch.manual_seed(0)
    net = _fd(entry, d, fusion).eval()
    x = torch.rand(2, 1, *[entry.size] * d)
    with torch.no_grad():
        _close(net(x), plain(x) if fusion == "early" else plain(net.split(x)[1]))

    net.train()
    odd = torch.rand(2, 1, *entry.odd[:d], requires_grad=True)
    out = net(odd)
    main = first_tensor(out)  # coarser deep-supervision heads of a list come back at their own scale
    assert list(main.shape[-d:]) == entry.odd[:d] and main.shape[0] == 2
    sum(head.float().square().mean() for head in _outputs(out)).backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert torch.isfinite(odd.grad).all() and odd.grad.abs().sum() > 0


def test_a_network_of_one_input_size_refuses_larger_inputs_in_one_line():
    net = _fd(MATRIX[[e.name for e in MATRIX].index("UNETR")], 3, "late")
    with pytest.raises(ValueError, match=r"takes \[32, 32, 32\] only") as info:
        net(torch.rand(1, 1, 40, 32, 32))
    assert "\n" not in str(info.value)


def matrix_table() -> str:
    """The table of docs/overlay.md: one row per network, what early and late v2 do, 2-D and 3-D alike."""
    rows = ["| network (`monai.networks.nets`) | early v2 | late v2 | note |", "|---|---|---|---|"]
    for entry in MATRIX:
        cells = ["refused" if fusion in entry.refused else "wrapped" for fusion in ("early", "late")]
        rows.append(f"| {entry.name} | {cells[0]} | {cells[1]} | {entry.note} |")
    return "\n".join(rows)


def test_the_readme_shows_the_matrix():
    assert matrix_table() in OVERLAY_PAGE.read_text(), "docs/overlay.md's table is stale: python tests/test_network_matrix.py"


if __name__ == "__main__":
    print(matrix_table())
