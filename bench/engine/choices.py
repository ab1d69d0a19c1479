"""The allowed values of the run spec's enumerated options, torch-free, so that ``colorbench run --help`` and the
argument parser can offer them without importing the engine (which imports torch, torchvision and every method)."""

from __future__ import annotations

#: How unpaired methods get their two domains from the training split (recorded in every record's config).
UNPAIRED_PROTOCOLS = ("disjoint", "shuffled")

#: Where the cells of a run are computed (``--executor``; see colorbench.engine.executors).
EXECUTORS = ("auto", "local", "process", "ray")

#: When a cell keeps its test predictions (``--save-predictions``).
PREDICTION_POLICIES = ("auto", "always", "never")
