"""Stages that run alongside or after the cells, chosen from the spec (the CLI orders them: cells, stages, report).

A stage may subscribe to "a colorizer is ready" (``colorizer_ready``): the runner calls it with each trained
method (final and ``--eval-every`` epochs) without knowing what the stage does. The only stage today is the
cross-domain classification (:mod:`colorbench.engine.crossdomain`), imported here lazily so that the runner, the
cross-domain code and the reports import no one in a circle.
"""

from __future__ import annotations

from typing import Any, Protocol


class Stage(Protocol):
    def run_start(self, rd: Any, datasets: dict[str, Any], spec: Any) -> None: ...
    def colorizer_ready(self, run_dir: str, method: Any, data: Any, spec: Any, device: Any, *, epoch: int | None,
                        final: bool) -> float: ...
    def run_end(self, run_dir: Any, log: Any) -> None: ...


def check_cross_domain(spec: Any) -> None:
    """Raise ValueError when ``--cross-domain`` cannot serve the spec (unknown preset, grid, executor)."""
    from colorbench.engine.crossdomain import classifier_config

    classifier_config(spec.cross_domain_classifier, spec.dataset_names()[0])  # unknown preset -> error
    if len(spec.dataset_names()) > 1 or len(spec.seed_list()) > 1:
        raise ValueError("--cross-domain runs on one dataset and one seed (its image sets are per method); "
                         "run each (dataset, seed) into its own --out")


def stages_for(spec: Any) -> list[Stage]:
    """The stages a spec asks for, in the order they run."""
    stages: list[Stage] = []
    if spec.cross_domain:
        from colorbench.engine.crossdomain import CrossDomainStage

        stages.append(CrossDomainStage(spec.cross_domain_classifier, seed=spec.seed_list()[0], device=spec.device,
                                       progress=spec.progress))
    return stages
