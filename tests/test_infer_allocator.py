"""glibc allocator settings of the ``restore`` command: freed tile buffers are reused, not re-faulted."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap

import pytest

import restore.cli as cli
from restore.infer import allocator

GLIBC = sys.platform.startswith("linux") and bool(os.confstr("CS_GNU_LIBC_VERSION") or "")

# Allocate, fill and free a 64 MB tensor (above glibc's largest automatic mmap threshold, 32 MiB)
# again and again and count the page faults of the last allocations. With the settings, the first
# few allocations still grow the heap (a freed block is fenced in by small allocations made beside
# it; seen settled after 2 to 5 of them), and every later one reuses freed heap memory.
SETTLING = 8
MEASURED = 8
PROBE = textwrap.dedent(
    f"""
    import resource, sys
    import torch
    from restore.infer.allocator import keep_freed_buffers, return_freed_memory
    applied = keep_freed_buffers() if sys.argv[1] != "plain" else False
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range({SETTLING}):
        torch.empty(16 * 2**20).fill_(1.0)
    before = faults()
    for _ in range({MEASURED}):
        if sys.argv[1] == "trimmed":  # the kept free pages go back to the system first
            applied = return_freed_memory() and applied
        torch.empty(16 * 2**20).fill_(1.0)
    print(applied, faults() - before)
    """
)


def measured_allocation_faults(mode: str) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if k not in allocator.ENVIRONMENT}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, check=True
    )
    applied, faults = done.stdout.split()
    return applied == "True", int(faults)


def transparent_huge_pages_always() -> bool:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[always]" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
def test_freed_buffers_are_reused_instead_of_faulted_in_again():
    pages = 64 * 2**20 // 4096  # of one allocation
    applied, faults = measured_allocation_faults("plain")
    assert not applied
    if not transparent_huge_pages_always():  # else a fresh mapping may fault in 2 MiB at a time
        assert faults > 0.8 * MEASURED * pages  # every one a fresh mapping, zero-filled page by page
    applied, faults = measured_allocation_faults("tuned")
    # Freed heap memory, reused: at most one late fresh allocation in eight (none seen in 30 runs).
    assert applied and faults < 1.5 * pages


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc_trim")
def test_returned_memory_is_faulted_in_again():
    # what a memory meter needs after a warm-up: the freed heap pages are no longer reused unseen
    pages = 64 * 2**20 // 4096
    applied, faults = measured_allocation_faults("trimmed")
    assert applied and faults > 0.8 * MEASURED * pages


def test_settings_in_the_environment_win(monkeypatch):
    def refuse(*args):
        raise AssertionError("the C library must not be touched")

    monkeypatch.setattr(ctypes, "CDLL", refuse)
    for name in allocator.ENVIRONMENT:
        monkeypatch.setenv(name, "1")
        assert allocator.keep_freed_buffers() is False
        monkeypatch.delenv(name)


def test_other_c_libraries_are_left_alone(monkeypatch):
    for name in allocator.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)

    def missing(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    assert allocator.keep_freed_buffers() is False
    monkeypatch.setattr(ctypes, "CDLL", lambda name: object())  # a libc without mallopt
    assert allocator.keep_freed_buffers() is False


def test_the_restore_command_applies_them_and_main_does_not(monkeypatch, capsys):
    calls: list[int] = []
    monkeypatch.setattr(allocator, "keep_freed_buffers", lambda: calls.append(1) or True)
    assert cli.main(["models"]) == 0 and calls == []  # main() from Python code: the caller's allocator
    monkeypatch.setattr(sys, "argv", ["restore", "models"])
    assert cli.command() == 0 and calls == [1]
    assert "compact" in capsys.readouterr().out
