"""Inference cost of the two heart backbones side by side: the heart bundle's sliding window (96x96x64, its overlap
and gaussian weighting) on one 320x320x110 volume (an MSD Task02 image at its native spacing), early v2 around the
UNet and around DynUNet with deep supervision (the heads are not run at inference), 2 threads, median of 3 after a
warm-up. Usage: python infer_time.py (from the repository root)."""

import statistics
import time

import torch
from monai.bundle import ConfigParser

BUNDLE = "bundles/heart_mri_fd_segmentation"
BACKBONES = {"UNet": {}, "DynUNet": {"deep_supervision": True, "deep_supr_num": 2}}


def seconds_per_case(backbone: str, kwargs: dict, image: torch.Tensor) -> float:
    parser = ConfigParser()
    parser.read_config(f"{BUNDLE}/configs/inference.json")
    parser.update({"bundle_root": BUNDLE, "backbone": backbone, "backbone_kwargs": kwargs, "ensemble": False,
                   "sw_overlap": 0.5})  # the overlap of the recorded numbers (bundle 0.10 defaults to 0.25)
    network, inferer = parser.get_parsed_content("network_def").eval(), parser.get_parsed_content("inferer")
    times = []
    with torch.no_grad():
        for _ in range(4):
            start = time.perf_counter()
            inferer(image, network)
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


if __name__ == "__main__":
    torch.set_num_threads(2)
    image = torch.rand(1, 1, 320, 320, 110)
    measured = {name: seconds_per_case(name, kwargs, image) for name, kwargs in BACKBONES.items()}
    for name, value in measured.items():
        print(f"{name}: {value:.2f} s per case")
    print(f"DynUNet / UNet: {measured['DynUNet'] / measured['UNet']:.2f}")
