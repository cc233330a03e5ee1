"""Model cards (evss.model_card) in checkpoints (evss.checkpoint): saved, read back, written into a
file without touching its tensors, refused when malformed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from evss.checkpoint import (
    builtin_weights,
    load_model,
    read_config,
    read_metadata,
    read_model_card,
    save_model,
    write_model_card,
)
from evss.config import preset
from evss.errors import CheckpointError, ConfigError
from evss.model_card import CARD_KEY, Figure, ModelCard, card_from_json, card_to_json, read_card_file

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "recipes" / "model_cards"


def a_card(**changes) -> ModelCard:
    card = ModelCard(
        summary="Tiny test weights.", keyframe_network="From scratch.", trained_on="nothing at all",
        training_data=("Nothing: a seeded initialisation.",),
        figures=(Figure("mIoU (%), per-frame", 1.5, "evss eval --weights tiny"),
                 Figure("TC (%), EVSS", 90.0, "evss eval --weights tiny --tc-flow dis")),
        licence="MIT", licence_terms=("MIT, like evss.",), notes=("Only for tests.",))
    return dataclasses.replace(card, **changes)


def test_a_card_round_trips_through_save_and_load(tmp_path, tiny_model):
    card = a_card()
    path = save_model(tmp_path / "m.safetensors", tiny_model, preset("tiny"), card=card)
    assert read_model_card(path) == card
    model, config = load_model(path)  # the card changes nothing else
    assert config == preset("tiny") == read_config(path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), tiny_model.state_dict().values()))
    assert card_from_json(card_to_json(card)) == card  # the JSON text alone is enough


def test_a_checkpoint_without_a_card_reads_as_none(tmp_path, tiny_model):
    path = save_model(tmp_path / "m.safetensors", tiny_model, preset("tiny"))
    assert CARD_KEY not in read_metadata(path)
    assert read_model_card(path) is None


def test_writing_a_card_leaves_every_tensor_and_the_config_alone(tmp_path, tiny_model):
    path = save_model(tmp_path / "m.safetensors", tiny_model, preset("tiny"), half=True, extra={"recipe": "r"})
    before, meta = load_file(str(path)), read_metadata(path)
    write_model_card(path, a_card())
    write_model_card(path, a_card(licence="Apache-2.0"))  # a second card replaces the first
    after = load_file(str(path))
    assert set(after) == set(before)
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())
    assert {k: v for k, v in read_metadata(path).items() if k != CARD_KEY} == meta
    assert read_model_card(path) == a_card(licence="Apache-2.0")
    assert not list(tmp_path.glob(".*"))  # no temporary left behind


def test_a_card_goes_only_into_an_evss_checkpoint(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"a": torch.zeros(3)}, str(path))
    with pytest.raises(CheckpointError, match="plain.safetensors: a safetensors file without an evss config"):
        write_model_card(path, a_card())


def test_a_damaged_card_is_named(tmp_path, tiny_model):
    path = save_model(tmp_path / "m.safetensors", tiny_model, preset("tiny"), extra={CARD_KEY: '{"summary": 1'})
    with pytest.raises(CheckpointError, match="m.safetensors: bad model card metadata: model card: not valid JSON"):
        read_model_card(path)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("licence"), r"missing key\(s\) \['licence'\]"),
    (lambda d: d.update(colour="red"), r"unknown key\(s\) \['colour'\]"),
    (lambda d: d.update(figures=[{"metric": "m", "value": "high", "command": "evss eval"}]),
     r"figures\[0\]\.value: expected float"),
    (lambda d: d.update(figures=[{"metric": "m", "value": float("nan"), "command": "evss eval"}]),
     "is not a finite number"),
    (lambda d: d.update(licence=" "), "licence must not be empty"),
    (lambda d: d.update(training_data=[]), "need at least one entry"),
])
def test_a_malformed_card_file_names_the_fault(tmp_path, change, message):
    data = dataclasses.asdict(a_card())
    change(data)
    path = tmp_path / "card.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message):
        read_card_file(path)


def test_the_shipped_weights_carry_the_cards_of_recipes_model_cards():
    """The JSON files are the source of the shipped cards: recipes/ship_weights.sh writes them in."""
    shipped = builtin_weights()
    assert sorted(shipped) == sorted(p.stem for p in CARDS.glob("*.json"))
    for name, path in shipped.items():
        assert read_model_card(path) == read_card_file(CARDS / f"{name}.json"), name
