"""Distributed training helpers: this rank's device, whether it is the main one, and a clean end of the group."""

from __future__ import annotations

import gc
import os

import ignite.distributed as idist
import torch

__all__ = ["distributed_device", "is_main_process", "leave_process_group"]


def distributed_device() -> torch.device:
    """The device of this rank: ``cuda:<LOCAL_RANK>`` where CUDA is available, else the CPU.

    ``ignite.distributed.device()`` answers the CPU for a gloo group even where CUDA is available, and its local
    rank is known only once a process group exists; torchrun sets ``LOCAL_RANK`` before (the global rank names a
    GPU only on the first node).
    """
    rank = idist.get_local_rank() if idist.get_world_size() > 1 else int(os.environ.get("LOCAL_RANK", "0"))
    return torch.device(f"cuda:{rank}") if torch.cuda.is_available() else torch.device("cpu")


def is_main_process() -> bool:
    return idist.get_rank() == 0


def leave_process_group() -> None:
    """End a distributed run: wait for every rank at a barrier, then destroy the default process group.

    Without the barrier a rank that finishes first (rank > 0 skips logging and saving) shuts its gloo/NCCL
    connections down while rank 0 is still working. The ``gc.collect()`` releases communication work objects
    kept alive by reference cycles while the interpreter is still intact, not during its teardown.
    No-op when no process group is initialised.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    gc.collect()
