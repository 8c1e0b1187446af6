from pathlib import Path

import pytest
import torch

from freq_transforms.lab.bench import (LABELS, _split_with_fftn, activation_memory_mb, fft_split_times, forward_gflops,
                                   train_step_times)
from freq_transforms.fourier import disentangle


def test_fftn_reference_matches_package_split():
    x = torch.rand(1, 1, 20, 18, 16)
    torch.testing.assert_close(_split_with_fftn(x), disentangle(x)[0], atol=1e-5, rtol=0)


def test_activation_memory_v2_stays_near_the_backbone_and_paper_layout_does_not():
    memory = activation_memory_mb((32, 32, 32), batch=1)
    assert set(memory) == set(LABELS)
    assert memory["none"] <= memory["v2 early"] < 1.10 * memory["none"]
    assert memory["none"] < memory["v2 late"] < 1.10 * memory["none"]
    assert memory["paper early"] > 1.2 * memory["none"] and memory["paper late"] > memory["paper early"]


def test_time_call_is_the_median_after_warmup():
    from unittest import mock

    from freq_transforms.lab.bench import time_call

    clock = iter([0.0, 1.0, 10.0, 10.5, 20.0, 30.0])  # the warm-up call is not timed; then 1, 0.5 and 10 s
    calls = []
    with mock.patch("freq_transforms.lab.bench.time.perf_counter", side_effect=lambda: next(clock)):
        median = time_call(lambda: calls.append(1), repeats=3, warmup=1)
    assert len(calls) == 4 and median == 1.0


def test_timings_are_positive_for_every_mode():
    times = train_step_times((16, 16, 16), repeats=1, batch=1)
    assert set(times) == set(LABELS) | {"none (paper group)"} and all(t > 0 for t in times.values())
    assert set(fft_split_times((16, 16, 16), repeats=1)) == {"separable", "rfftn", "fftn"}


def test_forward_flops_v2_adds_little_and_paper_layout_adds_more():
    flops = forward_gflops((32, 32, 32))
    assert set(flops) == set(LABELS)
    for fusion in ("early", "late"):
        assert flops["none"] < flops[f"v2 {fusion}"] < 1.05 * flops["none"] < flops[f"paper {fusion}"]


def test_loading_times_parse_the_bundle_preprocessing_without_its_metadata():
    """MONAI Label and the bench read train.json without metadata.json: the config may not need it."""
    from pathlib import Path

    from freq_transforms.lab.bench import loading_times

    from unittest import mock

    import nibabel

    bundle = Path(__file__).resolve().parents[1] / "bundles" / "hippocampus_mri_fd_segmentation"
    with mock.patch.object(nibabel, "load", wraps=nibabel.load) as load:
        times = loading_times(bundle, n_cases=4)
    assert set(times) == {"no cache", "CacheDataset"} and all(t > 0 for t in times.values())
    # what the timing compares (not the times themselves, which a shared machine makes noisy): the cached
    # epochs read no file, the plain ones read image and label of every case in each of their 3 epochs
    assert load.call_count == 2 * 4 * (1 + 3)


@pytest.mark.slow
def test_ct_scale_inference_reports_memory_and_the_grid():
    """The CT-scale benchmark's measurement on a small volume: the child's own peak memory (more than an empty
    Python, less than the machine) and the label map on the input's grid (the full size runs in the bench)."""
    from freq_transforms.lab.bench import ct_scale_inference

    bundle = Path(__file__).resolve().parents[1] / "bundles" / "spleen_ct_fd_segmentation"
    result = ct_scale_inference(bundle, shape=(96, 80, 40), threads=1)
    assert result["on_input_grid"] is True
    assert 0.2 < result["peak_rss_gib"] < 8 and result["seconds"] > 0
