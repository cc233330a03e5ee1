import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from evss.checkpoint import dedupe, load_model, load_official_model, read_official, save_model
from evss.config import build_model, preset
from evss.errors import CheckpointError


def test_roundtrip_fp16_rebuilds_its_own_model(tmp_path, tiny_model):
    path = save_model(tmp_path / "m.safetensors", tiny_model, preset("tiny"), half=True)
    model, config = load_model(path)
    assert config == preset("tiny")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = tiny_model.backbone(x), model.backbone(x)
    assert (a - b).abs().max() < 2e-2 * a.abs().max()
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary left behind


def test_equal_tensors_are_stored_once_and_come_back_under_both_names(tmp_path, tiny_model):
    state = {"a": torch.arange(300.0), "b": torch.arange(300.0), "c": torch.arange(300.0).half(),
             "d": torch.arange(300.0).reshape(10, 30), "e": torch.zeros(3), "f": torch.zeros(3),
             "g": torch.arange(300.0) + 1}
    kept, aliases = dedupe(state)
    # only same dtype, shape and values; small tensors always stored
    assert aliases == {"b": "a"} and set(kept) == {"a", "c", "d", "e", "f", "g"}

    twin = build_model(preset("tiny"))
    twin.load_state_dict(tiny_model.state_dict())
    by_shape: dict = {}
    for name, p in twin.named_parameters():
        by_shape.setdefault(tuple(p.shape), []).append((name, p))
    (src, a), (dst, b) = next(v for k, v in by_shape.items() if len(v) > 1 and v[0][1].numel() >= 256)[:2]
    with torch.no_grad():
        b.copy_(a)  # two tensors with equal values, as a copied frozen encoder has
    path = save_model(tmp_path / "m.safetensors", twin, preset("tiny"), half=True)
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        assert src in f.keys() and dst not in f.keys()
    model, _ = load_model(path)
    for (name, x), (_, y) in zip(model.state_dict().items(), twin.state_dict().items()):
        assert torch.equal(x, y.half().float() if y.is_floating_point() else y), name


def test_damaged_alias_metadata_is_named(tmp_path):
    from safetensors.torch import save_file

    from evss.checkpoint import read_tensors
    meta = {"format": "evss-checkpoint", "config": "{}"}
    cases = {"missing": ('{"x": "nope"}', "'x' is stored as 'nope', which the file lacks"),
             "both": ('{"a": "a"}', "'a' is both stored and listed as an alias"),
             "junk": ("[1, 2", "bad 'aliases' metadata"),
             "shape": ('["a"]', "bad 'aliases' metadata")}
    for name, (aliases, message) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        save_file({"a": torch.zeros(300)}, str(path), metadata={**meta, "aliases": aliases})
        with pytest.raises(CheckpointError, match=f"{name}.safetensors.*{message}"):
            read_tensors(path)


def test_wrong_architecture_names_keys(tmp_path, tiny_model):
    path = save_model(tmp_path / "m.safetensors", tiny_model, preset("tiny"))
    from evss.checkpoint import load_state_checked
    other = build_model(preset("tiny", num_classes=5))
    with pytest.raises(CheckpointError, match=r"shape mismatches: .*logits\.conv\.weight"):
        load_state_checked(other, tiny_model.state_dict(), str(path))


def test_missing_and_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such file and not a built-in name"):
        load_model(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_model(junk)


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": _Evil()}, f)
    with pytest.raises(CheckpointError, match="refused to load"):
        read_official(path)


def _official_state(gen, name):
    return {k: torch.from_numpy(np.asarray(a)) for k, a in gen.state_dict_for(name).items()}


def test_standalone_official_files_load_strictly(reference, tmp_path):
    _, gen = reference
    torch.save(_official_state(gen, "csrnet_camvid"), tmp_path / "csrnet_camvid_best.pth")
    torch.save({"state_dict": _official_state(gen, "flownet")}, tmp_path / "flownet.pth")
    model, config = load_official_model(tmp_path / "csrnet_camvid_best.pth", tmp_path / "flownet.pth")
    assert config.num_classes == 11 and config.correction.variant == "official" and config.distortion.w_f == 0.2
    ref = _official_state(gen, "flownet")
    assert torch.equal(model.flow.state_dict()["conv1.0.weight"], ref["conv1.0.weight"])


def test_full_evss_checkpoint_with_module_prefix_and_resnet_duplicates(reference, tmp_path):
    v, gen = reference
    full = {}
    for prefix, name in (("csrnet", "csrnet_cityscapes"), ("flownet", "flownet"), ("conet", "conet_cityscapes")):
        for k, t in _official_state(gen, name).items():
            full[f"module.{prefix}.{k}"] = t
            if prefix == "csrnet" and k.startswith("backbone."):
                full[f"module.resnet.{k[len('backbone.'):]}"] = t
    assert sum(k.startswith("module.resnet.") for k in full) == 380
    torch.save(full, tmp_path / "evss_city_best.pth")
    model, config = load_official_model(tmp_path / "evss_city_best.pth")
    assert config.num_classes == 19
    f1 = torch.from_numpy(v["128x256/frame1"])
    with torch.no_grad():
        logits = model.backbone(f1)
    ref = v["128x256/f64/csr19_logits_frame1"]
    assert np.abs(logits.double().numpy() - ref).max() <= 1e-3 * np.abs(ref).max()
    # A tampered duplicate is caught rather than silently ignored.
    full["module.resnet.conv1.weight"] = full["module.resnet.conv1.weight"] + 1
    torch.save(full, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="resnet.conv1.weight differs"):
        load_official_model(tmp_path / "bad.pth")


def test_official_file_of_another_class_count_is_explained(reference, tmp_path):
    _, gen = reference
    torch.save(_official_state(gen, "csrnet_camvid"), tmp_path / "c.pth")
    shapes = "logits.conv.weight: checkpoint \\(11, 128, 1, 1\\) vs model \\(19, 128, 1, 1\\)"
    with pytest.raises(CheckpointError, match=shapes):
        load_official_model(tmp_path / "c.pth", config=preset("official"))


# ---- unreadable .pth files: one message, whatever fails inside torch.load ---------------------------

def _unreadable_files(tmp_path):
    """Deterministic junk: seeded random bytes (with and without a zip header), truncated and
    corrupted real checkpoints, an empty file, text, and a pickle that would run code."""
    import io
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    torch.save({"w": torch.arange(64.0), "b": torch.zeros(3)}, buf)
    good = buf.getvalue()
    blobs = [rng.bytes(int(n)) for n in rng.integers(1, 2000, 60)]
    blobs += [b"PK\x03\x04" + rng.bytes(int(n)) for n in rng.integers(1, 2000, 30)]
    blobs += [good[:cut] for cut in range(8, len(good), max(1, len(good) // 25))]
    for _ in range(25):  # flip a byte at a random place
        b = bytearray(good)
        b[int(rng.integers(0, len(b)))] ^= 0xFF
        blobs.append(bytes(b))
    blobs += [b"", b"just some text\n", pickle.dumps({"state_dict": _Evil()}), pickle.dumps(_Evil(), protocol=0)]
    paths = []
    for i, blob in enumerate(blobs):
        path = tmp_path / f"junk{i:03d}.pth"
        path.write_bytes(blob)
        paths.append(path)
    return paths


def test_every_unreadable_pth_gets_the_same_message(tmp_path):
    from evss.checkpoint import safe_torch_load
    outcomes = {"refused": 0, "loaded": 0}
    for path in _unreadable_files(tmp_path):
        try:
            safe_torch_load(path)  # a flipped byte inside tensor data may still load: that is fine
            outcomes["loaded"] += 1
        except CheckpointError as exc:
            assert str(exc).startswith(f"{path}: refused to load: not a readable PyTorch checkpoint of plain "
                                       "tensors; it is damaged, is not a checkpoint, or holds pickled objects "
                                       "other than tensors (unsafe to unpickle). Detail: "), str(exc)
            outcomes["refused"] += 1
    assert outcomes["refused"] >= 100, outcomes


# ---- interrupted writes: the old file stays, no temporary is left -------------------------------------

def _interrupting(real_write, *, path_arg: int):
    """A serialiser that writes half a file where it was told to, then is interrupted."""
    def write(*args, **kwargs):
        target = Path(args[path_arg])
        target.write_bytes(b"half a file")
        raise KeyboardInterrupt
    return write


def test_an_interrupted_checkpoint_write_keeps_the_old_file(tmp_path, tiny_model, monkeypatch):
    from evss import checkpoint
    path = save_model(tmp_path / "m.safetensors", tiny_model, preset("tiny"), extra={"step": "1"})
    before = path.read_bytes()
    monkeypatch.setattr(checkpoint, "save_file", _interrupting(checkpoint.save_file, path_arg=1))
    with pytest.raises(KeyboardInterrupt):
        save_model(path, tiny_model, preset("tiny"), extra={"step": "2"})
    monkeypatch.undo()
    assert path.read_bytes() == before and load_model(path)[1] == preset("tiny")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temporary behind


def test_an_interrupted_training_state_write_keeps_the_old_files(tmp_path, tiny_model, monkeypatch):
    from evss import train
    from evss.checkpoint import read_metadata
    params = [p for p in tiny_model.correction.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    config = train.TrainConfig(stage="evss", model="tiny", out_dir=str(tmp_path))
    save = lambda step: train.save_training_state(tmp_path, step=step, model=tiny_model, model_config=preset("tiny"),
                                                  config=config, optimizer=optimizer, scheduler=scheduler,
                                                  scaler=scaler)
    save(1)
    state_before = (tmp_path / train.STATE_FILE).read_bytes()
    monkeypatch.setattr(torch, "save", _interrupting(torch.save, path_arg=1))
    with pytest.raises(KeyboardInterrupt):
        save(2)
    monkeypatch.undo()
    assert (tmp_path / train.STATE_FILE).read_bytes() == state_before
    assert train.read_training_state(tmp_path / train.STATE_FILE)["step"] == 1
    assert read_metadata(tmp_path / train.MODEL_FILE)["step"] == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([train.STATE_FILE, train.MODEL_FILE])
