"""Inference cost of the heart sliding window at overlap 0.5 and 0.25, side by side: early v2 around DynUNet with deep
supervision (the heads are not run at inference), the bundle's 96x96x64 windows and gaussian weighting, one
320x320x110 volume (an MSD Task02 image at its native spacing), 2 threads, the two overlaps alternated, median of 2
after a warm-up each. Usage: python infer_time.py (from the repository root)."""

import statistics
import time

import torch
from monai.bundle import ConfigParser

BUNDLE = "bundles/heart_mri_fd_segmentation"
OVERLAPS = (0.5, 0.25)


def predictor(overlap: float) -> tuple:
    parser = ConfigParser()
    parser.read_config(f"{BUNDLE}/configs/inference.json")
    parser.update({"bundle_root": BUNDLE, "backbone": "DynUNet", "ensemble": False, "sw_overlap": overlap,
                   "backbone_kwargs": {"deep_supervision": True, "deep_supr_num": 2}})
    return parser.get_parsed_content("network_def").eval(), parser.get_parsed_content("inferer")


if __name__ == "__main__":
    torch.set_num_threads(2)
    image = torch.rand(1, 1, 320, 320, 110)
    runs = {overlap: predictor(overlap) for overlap in OVERLAPS}
    times = {overlap: [] for overlap in OVERLAPS}
    with torch.no_grad():
        for _ in range(3):
            for overlap, (network, inferer) in runs.items():
                start = time.perf_counter()
                inferer(image, network)
                times[overlap].append(time.perf_counter() - start)
    seconds = {overlap: statistics.median(values[1:]) for overlap, values in times.items()}
    for overlap, value in seconds.items():
        print(f"overlap {overlap}: {value:.2f} s per case")
    print(f"0.25 / 0.5: {seconds[0.25] / seconds[0.5]:.2f}")
