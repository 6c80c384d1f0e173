"""Configuration files and the state store."""

from __future__ import annotations

from pathlib import Path

import pytest

from sflowlab.collector.config import Config, ConfigError, StateStore, load_config


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_full_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, """
controllers = ["elb"]
[sflow]
port = 16343
hosts = ["127.0.0.1"]
[http]
host = "0.0.0.0"
port = 18008
token = "t"
[collector]
state_dir = "/tmp/x"
metric_timeout_s = 30
[groups]
lan = ["10.0.0.0/8"]
[flows.f]
keys = "ipsource"
"""), env={})
    assert (cfg.sflow_port, cfg.sflow_hosts, cfg.http_host, cfg.token) == (
        16343, ("127.0.0.1",), "0.0.0.0", "t")
    assert cfg.metric_timeout_s == 30.0 and cfg.state_dir == Path("/tmp/x")
    assert cfg.definitions["flows"] == {"f": {"keys": "ipsource"}}
    assert cfg.controllers == ["elb"]
    cfg.check()


@pytest.mark.parametrize(("text", "message"), [
    ("[sflow]\nport = 'x'\n", "sflow.port must be an integer"),
    ("[sflow]\nprot = 1\n", "unknown key sflow.prot"),
    ("[nope]\n", "unknown keys ['nope']"),
    ("controllers = 1\n", "controllers must be a list"),
    ("[sflow\n", "c.toml"),
])
def test_bad_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(write(tmp_path, text), env={})


def test_wide_bind_needs_token_which_env_may_supply() -> None:
    with pytest.raises(ConfigError, match="token"):
        Config(http_host="0.0.0.0").check()
    cfg = load_config(None, env={"SFLOWLAB_TOKEN": "abc"})
    cfg.http_host = "::"
    cfg.check()
    assert cfg.token == "abc"


def test_state_store_atomic_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "d" / "state.json")
    assert store.load() == {}
    store.save({"groups": {"a": ["10.0.0.0/8"]}})
    assert store.load() == {"groups": {"a": ["10.0.0.0/8"]}}
    assert [p.name for p in store.path.parent.iterdir()] == ["state.json"]
    store.path.write_text("{broken")
    with pytest.raises(ConfigError, match="not valid JSON"):
        store.load()
