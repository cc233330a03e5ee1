"""One process or one of several: evss.device.init_distributed, which training (and evaluation) use."""

from __future__ import annotations

import torch

from evss import device
from evss.device import Runtime, init_distributed


def test_alone_it_is_the_resolved_device(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    rt = init_distributed("cpu")
    assert rt == Runtime(device=torch.device("cpu")) and rt.is_main and not rt.distributed
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert init_distributed("auto").device == device.resolve_device("auto")
    rt.close()  # nothing to end


def test_under_torchrun_it_joins_the_group_with_its_rank(monkeypatch):
    started = []
    fake = {"initialized": False}

    def init_process_group(backend):
        started.append(backend)
        fake["initialized"] = True

    monkeypatch.setattr(device.dist, "is_initialized", lambda: fake["initialized"])
    monkeypatch.setattr(device.dist, "init_process_group", init_process_group)
    monkeypatch.setattr(device.dist, "get_rank", lambda: 1)
    monkeypatch.setattr(device.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(device.dist, "destroy_process_group", lambda: started.append("destroyed"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    rt = init_distributed("cpu")
    assert rt == Runtime(device=torch.device("cpu"), rank=1, world_size=2, owns_group=True)
    assert started == ["gloo"] and rt.distributed and not rt.is_main
    again = init_distributed("cpu")  # a group that exists is joined, not started again
    assert started == ["gloo"] and not again.owns_group
    again.close()
    assert started == ["gloo"]
    rt.close()
    assert started == ["gloo", "destroyed"]
