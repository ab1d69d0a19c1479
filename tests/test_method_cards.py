"""Method metadata on every card (issue 26; read by the results schema of issue 25): ``licence``,
``training_data`` (dataset names of pretrained weights) and ``weights`` (weights-registry names, whose hashes the
registry holds)."""

from __future__ import annotations

import pytest

from colorbench.core import weights as W
from colorbench.methods import METHODS


@pytest.mark.parametrize("name", METHODS.names())
def test_every_card_has_licence_training_data_and_weights(name):
    card = METHODS.get(name).card
    assert isinstance(card.licence, str) and "MIT" in card.licence  # colorbench's own code, always
    assert isinstance(card.training_data, tuple) and all(isinstance(d, str) and d for d in card.training_data)
    assert isinstance(card.weights, tuple) and all(w in W.WEIGHTS for w in card.weights)
    # pretrained weights come with the data they were trained on, and vice versa
    assert bool(card.weights) == bool(card.training_data)
    hashes = card.weights_hashes()
    assert set(hashes) == set(card.weights) and all(len(h) >= 8 for h in hashes.values())
    d = card.to_dict()
    assert d["licence"] == card.licence and d["training_data"] == list(card.training_data)
    assert d["weights"] == list(card.weights)


def test_methods_with_released_weights_name_them():
    assert set(METHODS.get("ddcolor").card.weights) == {"ddcolor-paper", "ddcolor-paper-tiny", "ddcolor-modelscope",
                                                        "ddcolor-artistic"}
    assert "Apache-2.0" in METHODS.get("ddcolor").card.licence
    assert METHODS.get("zhang-siggraph17").card.weights == ("zhang-siggraph17",)
    assert METHODS.get("gorriz-featrec").card.weights and not METHODS.get("gorriz-featrec-selftrained").card.weights
    # every weights entry a method uses is claimed by that method's card
    for entry in W.WEIGHTS.values():
        for user in entry.used_by:
            name = user.split(" ")[0]
            if name in METHODS:
                assert entry.name in METHODS.get(name).card.weights, (entry.name, name)
