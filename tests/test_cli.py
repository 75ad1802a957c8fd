"""The `restore` command and the README's generated loss table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import losses
import restore
from losses import table
from restore.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"restore {restore.__version__}"


def test_losses_table_lists_every_entry_with_metadata(capsys):
    assert main(["losses"]) == 0
    out = capsys.readouterr().out.splitlines()
    header = out[0].split()
    assert header == [
        "name",
        "kind",
        "modality",
        "lower-is-better",
        "input-range",
        "needs-weights",
        "fp32",
        "inputs",
    ]
    rows = {line.split()[0]: line.split() for line in out[2:] if line.strip() and not line.startswith(" ")}
    rows = {k: v for k, v in rows.items() if k in losses.available()}
    assert set(rows) == set(losses.available())
    assert len(rows) >= 30
    assert rows["ssim"][1:7] == ["structural", "image", "yes", "[0,1]", "no", "yes"]


def test_losses_filters_and_describe(capsys):
    assert main(["losses", "--modality", "audio"]) == 0
    out = capsys.readouterr().out
    assert "ssim " not in out and "l1 " in out
    assert main(["losses", "ms_ssim"]) == 0
    assert "parameters:" in capsys.readouterr().out
    assert main(["losses", "ssmi"]) == 2
    assert "Did you mean 'ssim'" in capsys.readouterr().err


def test_models_lists_the_registry_and_describes_one(capsys):
    import restore.models as models

    assert main(["models", "--task", "sr"]) == 0
    out = capsys.readouterr().out
    table, bundled = out.split("Bundled weights", 1)
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["name", "task", "scale", "parameters"]
    rows = {line.split()[0]: line.split() for line in lines[2:] if line.strip() and "models." not in line}
    assert set(rows) == set(models.available("sr"))
    from restore import hub

    listed = [line.split()[0] for line in bundled.splitlines()[1:] if line.strip()]
    assert listed == [entry.name for entry in hub.bundled("sr")]  # sr-x4 first: the default
    assert rows["rrdbnet"][1:4] == ["sr", "4", "16.70M"]
    assert main(["models", "nafnet"]) == 0
    out = capsys.readouterr().out
    assert "task: deblur" in out and "width = 32" in out
    assert main(["models", "rrdbnett"]) == 2
    assert "Did you mean 'rrdbnet'" in capsys.readouterr().err


def test_console_script_runs_as_module():
    result = subprocess.run(
        [sys.executable, "-m", "restore", "losses", "--kind", "weighting"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "balancer" in result.stdout and "uncertainty" in result.stdout


def test_readme_loss_table_is_generated_from_the_registry():
    readme = (ROOT / "README.md").read_text()
    block = readme.split(table.START, 1)[1].split(table.END, 1)[0].strip()
    assert block == table.markdown_table(), "README table is stale: run `python -m losses.table README.md`"


def test_importing_losses_does_not_import_heavy_dependencies():
    code = (
        "import sys, losses, restore, restore.models, restore.data, restore.io, restore.degrade; "
        "heavy = ('lpips', 'torchaudio', 'kornia', 'spandrel', 'cv2', 'torchvision'); "
        "print([m for m in heavy if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
