"""The Dockerfile's contract, checked without a Docker engine: read its instructions, build a
fresh virtual environment the way it builds one, and run its entrypoint with the environment it
sets, /data and /articles redirected to temporary folders."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import venv
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in stage:
        if word == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", args):
                env[key] = value
    return env


def test_the_dockerfile_is_multi_stage_slim_non_root_and_healthchecked() -> None:
    steps = instructions()
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) == 2 and all(f.startswith("python:3.11-slim") for f in froms)
    stage = final_stage()
    users = [args for word, args in stage if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    healthcheck = [args for word, args in stage if word == "HEALTHCHECK"]
    assert healthcheck and '["newsbot", "healthcheck"]' in healthcheck[0]
    assert ("VOLUME", '["/data"]') in stage
    assert ("ENTRYPOINT", '["newsbot"]') in stage and ("CMD", '["run"]') in stage
    # No secret in any layer: nothing token-like is set or copied in.
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert not re.search(r"(?i)^\s*(ENV|ARG)\s+[^#\n]*(TOKEN|SECRET|WEBHOOK)", text, re.M)
    dockerignore = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert dockerignore[0] == "*" or "*" in dockerignore  # everything out unless listed


@pytest.fixture(scope="module")
def built_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m venv /opt/newsbot && pip install --no-compile .`, as the build stage does,
    from a copy of just what .dockerignore lets into the build context."""
    root = tmp_path_factory.mktemp("image")
    context = root / "src"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, context / name)
    shutil.copytree(REPO / "bot", context / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    target = root / "opt-newsbot"
    venv.create(target, with_pip=True)
    install = subprocess.run(
        [str(target / "bin" / "pip"), "install", "-q", "--no-compile", str(context)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return target


def container_env(venv_dir: Path, config: Path) -> dict[str, str]:
    env = env_of(final_stage())
    assert env["NEWSBOT_CONFIG"] == "/etc/newsbot/config.toml"
    result = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSBOT_", "PYTHON"))}
    result.update(env)
    result["PATH"] = f"{venv_dir / 'bin'}:{os.environ['PATH']}"
    result["NEWSBOT_CONFIG"] = str(config)
    return result


def redirected_config(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The image's own config with /articles, /data and the port moved to temporary places."""
    articles, data = tmp_path / "articles", tmp_path / "data"
    articles.mkdir()
    data.mkdir()
    text = (REPO / "docker" / "config.toml").read_text(encoding="utf-8")
    text = text.replace('"/articles"', json.dumps(str(articles)))
    text = text.replace('"/data/newsbot.db"', json.dumps(str(data / "newsbot.db")))
    text = re.sub(r"^port = \d+", "port = 0", text, flags=re.M)
    text = text.replace('host = "0.0.0.0"', 'host = "127.0.0.1"')
    config = tmp_path / "config.toml"
    config.write_text(text, encoding="utf-8")
    return config, articles, data


def test_the_entrypoint_runs_heals_and_stops_as_the_container_would(
    built_venv: Path, tmp_path: Path, seeds_dir: Path
) -> None:
    config, articles, data = redirected_config(tmp_path)
    for seed in sorted(seeds_dir.iterdir())[:5]:
        shutil.copy(seed, articles / seed.name)
    os.chmod(articles, 0o555)  # mounted read-only
    env = container_env(built_venv, config)
    entrypoint = [str(built_venv / "bin" / "newsbot"), "run"]
    proc = subprocess.Popen(
        entrypoint, cwd=data, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "watching" in line:
                break
        else:
            raise AssertionError("the worker never started watching: " + "".join(seen))
        health = subprocess.run(
            [str(built_venv / "bin" / "newsbot"), "healthcheck"],
            cwd=data, env=env, capture_output=True, text=True, timeout=30,
        )
        assert health.returncode == 0, health.stdout + health.stderr
        assert (data / "newsbot.db").is_file()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        os.chmod(articles, 0o755)
    # The installed package carries no test or development tools.
    site = next((built_venv / "lib").glob("python3*/site-packages"))
    assert not (site / "pytest").exists() and not (site / "hypothesis").exists()
