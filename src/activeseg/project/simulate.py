"""`activeseg project simulate`: rounds of query -> ground-truth answers written as a tool's export ->
import -> (at the budgets) train, all through the project's files and commands.

With the settings and seed of an `activeseg run`, each round selects the regions of the run's step and
each training at a budget gives the run's weights (CPU). A killed simulation resumes: open queries are
answered and imported first, and a budget already trained is not trained again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from activeseg.errors import ConfigError
from activeseg.project.answer import write_answers
from activeseg.project.importer import import_labels
from activeseg.project.query import run_query
from activeseg.project.session import Session
from activeseg.project.training import train_project

log = logging.getLogger(__name__)

SUFFIX = {"labelstudio": ".json", "cvat_segmask": ".zip", "png_folder": ""}


def _answer_and_import(session: Session, truth: Path, fmt: str) -> dict:
    project = session.project
    rnd = session.store.rounds()[-1]["round"]
    out = project.dir / "answers" / f"round_{rnd:03d}{SUFFIX[fmt]}"
    write_answers(project, truth, out, fmt)
    return import_labels(project, out)


def simulate(session: Session, truth: Path, budgets: tuple[int, ...], strategy: str | None = None,
             regions: int | None = None, fmt: str = "labelstudio", progress: bool = True) -> list[dict]:
    """Runs rounds until the last budget (labelled regions) is reached, training at each budget;
    returns one record per trained budget (version, val metrics)."""
    if not budgets or list(budgets) != sorted(set(budgets)):
        raise ConfigError(f"budgets {list(budgets)} must be increasing labelled-region counts, e.g. 480,960")
    per_round = regions or session.project.cfg.al.regions_per_step
    out = []
    if session.open_queries():
        _answer_and_import(session, truth, fmt)
    while True:
        labelled = session.project.labelled_state()[0].num_labelled
        if labelled in budgets:
            out.append(train_project(session, progress))
        if labelled >= budgets[-1]:
            return out
        k = min(per_round, next(b for b in budgets if b > labelled) - labelled)  # each budget reached exactly
        run_query(session, strategy, k)
        report = _answer_and_import(session, truth, fmt)
        log.info("round %d: %d labelled, %d rejected", session.store.rounds()[-1]["round"], report["labelled"],
                 report["rejected"])
