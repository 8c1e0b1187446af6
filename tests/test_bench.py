import torch

from freq_transforms.bench import _split_with_fftn, activation_memory_mb, fft_split_times, train_step_times
from freq_transforms.fourier import disentangle


def test_fftn_reference_matches_package_split():
    x = torch.rand(1, 1, 20, 18, 16)
    torch.testing.assert_close(_split_with_fftn(x), disentangle(x)[0], atol=1e-5, rtol=0)


def test_activation_memory_counts_the_extra_branches():
    memory = activation_memory_mb((16, 16, 16), batch=1)
    assert 0 < memory["none"] < memory["early"] < memory["late"]


def test_timings_are_positive_for_every_mode():
    times = train_step_times((16, 16, 16), repeats=1, batch=1)
    assert set(times) == {"none", "early", "late"} and all(t > 0 for t in times.values())
    assert set(fft_split_times((16, 16, 16), repeats=1)) == {"rfftn", "fftn"}


def test_forward_flops_grow_with_branch_width():
    from freq_transforms.bench import forward_gflops

    flops = forward_gflops((16, 16, 16), features=(8, 2))
    assert set(flops) == {"none", "early f8", "early f2", "late f8", "late f2"}
    for fusion in ("early", "late"):
        assert flops["none"] < flops[f"{fusion} f8"]
        assert flops[f"{fusion} f2"] < flops[f"{fusion} f8"]
