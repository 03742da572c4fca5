"""Every kind of strategy in a project: DEAL (a model with a difficulty head), RALIS (a trained agent
and a state set set aside from the pool), RIPU's grid score and a MiSiCAL class policy."""

from __future__ import annotations

import pytest
import torch
import yaml

from activeseg.config import from_dict
from activeseg.errors import ConfigError
from activeseg.methods.misical.config import MisicalConfig
from activeseg.methods.misical.embeddings import model_fingerprint, region_embeddings
from activeseg.methods.misical.policy import ClassQNet, save_policy
from activeseg.methods.ralis.agent import AgentConfig, train_agent
from activeseg.project.query import run_query
from activeseg.project.session import load_session
from activeseg.project.workspace import Project


def test_deal_project_queries_with_its_difficulty_head(tmp_path, project_inputs):
    p = project_inputs
    settings = yaml.safe_load(p["config"].read_text())
    settings["al"]["strategy"] = "deal_de"
    (tmp_path / "deal.yaml").write_text(yaml.safe_dump(settings))
    project = Project.init(tmp_path / "deal", p["images"], p["classes"], p["labels"], p["val"], tmp_path / "deal.yaml")
    session = load_session(project, progress=False)
    assert "difficulty" in session.start_model.head_specs()
    out = run_query(session, None, 4)
    assert out["strategy"] == "deal_de" and out["queries"] == 4


def test_ralis_project_uses_its_state_set(tmp_path, project_inputs, native_dir, project_settings):
    s = project_settings
    (tmp_path / "state.txt").write_text("train_0004\ntrain_0005\n")
    (tmp_path / "agent_pool.txt").write_text("\n".join(f"train_{i:04d}" for i in range(6, 12)))
    agent = from_dict(AgentConfig, {
        "data": {"dataset": str(native_dir), "height": 48, "width": 64}, "model": s["model"],
        "state_images": str(tmp_path / "state.txt"), "pool_images": str(tmp_path / "agent_pool.txt"),
        "start_every": 2, "start_train": s["start_train"], "episodes": 1, "budget": 8, "regions_per_step": 4,
        "candidates_per_pool": 3, "step_train": s["al"]["step_train"], "episode_end_batch_size": 4,
        "region_rows": 2, "region_cols": 4, "dqn": {"batch_size": 4, "replay_capacity": 12}, "seed": 3,
        "out": str(tmp_path / "agent"), "device": "cpu", "cache_dir": None})
    train_agent(agent, progress=False)
    p = project_inputs
    project = Project.init(tmp_path / "ralis", p["images"], p["classes"], p["labels"], p["val"], p["config"],
                           state_images=str(tmp_path / "state.txt"))
    assert [r["image_id"] for r in project.state_images()] == ["train_0004", "train_0005"]
    assert len(project.pool_images()) == 6
    out = run_query(load_session(project, progress=False), "ralis", 4, agent=tmp_path / "agent" / "agent_last.pt")
    assert out["strategy"] == "ralis" and out["queries"] == 4
    pool_ids = {r["image_id"] for r in project.pool_images()}
    assert all(q["image_id"] in pool_ids for q in project.store.queries().values())


def test_ripu_grid_project_query(tmp_path, project_inputs):
    p = project_inputs
    project = Project.init(tmp_path / "ripu", p["images"], p["classes"], p["labels"], p["val"], p["config"])
    out = run_query(load_session(project, progress=False), "ripu_grid", 4)
    assert out["strategy"] == "ripu_grid" and out["queries"] == 4
    assert all(q["strategy"] == "ripu_grid" and q["score"] is not None for q in project.store.queries().values())


def test_misical_project_query_reads_a_policy_of_the_projects_start_model(tmp_path, project_inputs):
    p = project_inputs
    project = Project.init(tmp_path / "misical", p["images"], p["classes"], p["labels"], p["val"], p["config"])
    session = load_session(project, progress=False)
    torch.manual_seed(0)
    dim = region_embeddings("seg_start", session.pool.features, project.grid, session.start_model).shape[-1]
    qnet = ClassQNet(dim)
    policy = tmp_path / "policy.pt"
    save_policy(policy, qnet, MisicalConfig(target_class="disc", episode_len=8, pool_size=8),
                {"seed": 0, "history": [], "embedding_model": model_fingerprint("seg_start", session.start_model)})
    with pytest.raises(ConfigError, match="fixes the class"):
        run_query(session, "misical", 4, target_class="box", policy=policy)
    out = run_query(session, "misical", 4, target_class="disc", policy=policy)
    assert out["strategy"] == "misical" and out["queries"] == 4
    queries = list(project.store.queries().values())
    assert len(queries) == 4  # query ids name the image and the box: four distinct regions
    assert all(q["strategy"] == "misical" and q["score"] is not None for q in queries)
