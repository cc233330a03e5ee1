"""The EVSS training stage's losses (Eq. 6-7) against values computed by hand on a tiny batch.

Which features each term sees (L_w: F^w, L_s: F^m, L_es: F^u gated by M^f), where the pseudo-label
comes from (the frozen backbone on I_i, not I_k), where the edge target comes from (the labels, or
the pseudo-label for unlabelled samples), and that every lambda reaches the total: through
``evss_batch_losses`` and through the stage that ``train_evss`` builds from a TrainConfig.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from evss import train
from evss.classes import LABEL_SPACES
from evss.losses import LossWeights
from evss.train import stages

THIN = LABEL_SPACES["camvid"].thin
WEIGHTS = LossWeights(warp=0.3, semantic=0.7, edge=0.11, edge_semantic=0.13)  # all different from the defaults


def up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x.float(), scale_factor=4, mode="bilinear", align_corners=False)  # 1/4 grid -> labels


def by_hand(net, batch) -> dict[str, torch.Tensor]:
    """Eq. (6)-(7) written out from the model's parts, without evss.losses or evss.train."""
    from evss.data.transforms import edge_target
    key, image = batch["key_image"], batch["image"]
    cached = {k: batch[k] for k in ("key_logits", "flow") if k in batch}  # from a teacher cache
    with torch.no_grad():
        out = net(key, image, **cached)
        pseudo = up(net.backbone(image)).argmax(1)  # (N, H, W): P^gt_i from I_i
    f_w, f_m, f_u = up(out.warped_logits), up(out.merged_logits), up(out.updated_logits)  # (N, C, H, W)
    m_e = net.correction.edge_probability(up(out.edge_scores))[:, 0]  # (N, H, W)
    m_f = up(out.fine_map)[:, 0]  # (N, H, W)
    target = batch["edge"].clone()
    unlabelled = (batch["label"] == 255).flatten(1).all(1)
    for n in torch.nonzero(unlabelled).flatten().tolist():  # M^gt from the pseudo-label
        target[n] = torch.as_tensor(edge_target(pseudo[n], thin_classes=THIN)).long()
    # L_e: class-balanced BCE, w_pos = N_neg / N, w_neg = N_pos / N, over the weights' sum
    p = m_e.clamp(1e-6, 1 - 1e-6)
    pos, neg = target == 1, target == 0
    n_pos, n_neg = pos.sum().double(), neg.sum().double()
    w_pos, w_neg = n_neg / (n_pos + n_neg), n_pos / (n_pos + n_neg)
    l_e = -(w_pos * torch.log(p[pos]).double().sum() + w_neg * torch.log(1 - p[neg]).double().sum()) \
        / (w_pos * n_pos + w_neg * n_neg)
    # L_es (Eq. 7, "paper" mask): F^es = F^u * M^f against P^gt where M^f > 0.5, ignored elsewhere
    es_target = torch.where(m_f > 0.5, pseudo, torch.full_like(pseudo, 255))
    l_es = F.cross_entropy(f_u * m_f[:, None], es_target, ignore_index=255)
    terms = {"warp": F.cross_entropy(f_w, pseudo), "semantic": F.cross_entropy(f_m, pseudo),
             "edge": l_e.float(), "edge_semantic": l_es}
    return {**terms, "pseudo": pseudo, "f_u": f_u, "f_m": f_m, "m_f": m_f,
            "key_pseudo": up(net.backbone(key)).argmax(1)}


def total(terms, weights: LossWeights) -> float:
    return float(weights.warp * terms["warp"] + weights.semantic * terms["semantic"]
                 + weights.edge * terms["edge"] + weights.edge_semantic * terms["edge_semantic"])


def check(got: dict[str, torch.Tensor], hand: dict[str, torch.Tensor], weights: LossWeights) -> None:
    for term in ("warp", "semantic", "edge", "edge_semantic"):
        assert float(got[term].detach()) == pytest.approx(float(hand[term]), rel=1e-5), term
    assert float(got["total"].detach()) == pytest.approx(total(hand, weights), rel=1e-5)
    # The batch tells the alternatives apart: the pseudo-label of I_k, F^u in L_s or F^m in L_es,
    # and any lambda left out would each move a term or the total by far more than the tolerance.
    assert (hand["key_pseudo"] != hand["pseudo"]).float().mean() > 0.05
    swapped_s = F.cross_entropy(hand["f_u"], hand["pseudo"])
    assert abs(float(swapped_s - hand["semantic"])) > 1e-3 * float(hand["semantic"])
    assert min(float(hand[t]) for t in ("warp", "semantic", "edge", "edge_semantic")) > 1e-2


@pytest.fixture
def pair_batch(synth_clip):
    """Two pairs (I_k, I_i) of a moving SynthDrive clip, 64x128; the second sample is unlabelled."""
    from evss.data.transforms import edge_target
    frames = torch.from_numpy(synth_clip.frames).permute(0, 3, 1, 2).float() / 255  # (8, 3, 64, 128)
    labels = torch.from_numpy(synth_clip.labels).long()  # (8, 64, 128)
    label = torch.stack([labels[3], torch.full_like(labels[6], 255)])
    edge = torch.stack([torch.as_tensor(edge_target(labels[3], thin_classes=THIN)).long(),
                        torch.full_like(labels[6], 255)])
    return {"key_image": frames[[0, 2]], "image": frames[[3, 6]], "label": label, "edge": edge}


def test_evss_batch_losses_match_the_hand_computation(tiny_model, pair_batch):
    got = train.evss_batch_losses(tiny_model, pair_batch, net=tiny_model, weights=WEIGHTS, es_mask="paper",
                                  thin_classes=THIN)
    hand = by_hand(tiny_model, pair_batch)
    check(got, hand, WEIGHTS)
    assert 0.05 < float((hand["m_f"] > 0.5).float().mean()) < 0.95  # L_es sees some pixels, not all


def evss_stage(tiny_weights, tmp_path, monkeypatch, **over):
    """The Stage that ``train_evss`` hands to ``fit`` for a small config with WEIGHTS as its lambdas."""
    captured = {}
    monkeypatch.setattr(stages, "fit", lambda config, rt, stage, model_config: captured.setdefault("stage", stage))
    config = train.TrainConfig(stage="evss", model="tiny", teacher=str(tiny_weights), out_dir=str(tmp_path / "run"),
                               synth_clips=1, synth_frames=6, synth_size=(64, 128), crop_size=(64, 128),
                               batch_size=2, progress=False, tensorboard=False, threads=1,
                               lambda_warp=WEIGHTS.warp, lambda_semantic=WEIGHTS.semantic,
                               lambda_edge=WEIGHTS.edge, lambda_edge_semantic=WEIGHTS.edge_semantic,
                               # a random CoNet head, so that F^u, F^m and F^w differ and the terms tell them apart
                               model_set=("correction.head_init=random",), **over)
    train.train_evss(config, train.Runtime(device=torch.device("cpu")))
    return captured["stage"]


def test_the_evss_stage_wires_config_weights_teacher_and_terms(tiny_weights, tmp_path, monkeypatch, pair_batch):
    """``train_evss`` builds the stage from a TrainConfig: its loss function gives the hand-computed
    terms with the configured lambdas, and its backbone (the pseudo-labeller) is the teacher."""
    from evss.checkpoint import load_model
    stage = evss_stage(tiny_weights, tmp_path, monkeypatch)
    model = stage.model.eval()
    teacher, _ = load_model(tiny_weights)
    for k, v in teacher.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    got = stage.losses(model, pair_batch)
    check(got, by_hand(model, pair_batch), WEIGHTS)


def test_the_cached_evss_stage_takes_the_pseudo_label_of_i_i(tiny_weights, tmp_path, monkeypatch):
    """With a teacher cache the batch carries P^gt and F^b_k: P^gt is the backbone's on I_i (not I_k),
    F^b_k the backbone's on I_k (to float16), and the losses are the hand-computed ones."""
    stage = evss_stage(tiny_weights, tmp_path, monkeypatch, cache=str(tmp_path / "cache"), flip=False)
    model = stage.model.eval()
    items = [stage.dataset[i] for i in range(len(stage.dataset))]
    items = [it for it in items if it["offset"] >= 2][:2]  # pairs far enough apart to differ
    assert len(items) == 2
    batch = train.collate(items)
    with torch.no_grad():  # frame by frame, as the cache computes them
        key_logits = torch.cat([model.backbone(k[None]) for k in batch["key_image"]])  # (2, C, 16, 32)
        pseudo = torch.cat([up(model.backbone(i[None])).argmax(1) for i in batch["image"]])  # (2, 64, 128)
        key_pseudo = up(key_logits).argmax(1)
    assert (batch["pseudo"].long() != pseudo).float().mean() < 1e-3  # float rounding may flip a near-tie
    assert (key_pseudo != pseudo).float().mean() > 0.05
    assert torch.allclose(batch["key_logits"], key_logits, rtol=2e-3, atol=2e-3 * float(key_logits.abs().max()))
    got = stage.losses(model, batch)
    check(got, by_hand(model, batch), WEIGHTS)
