"""VLLMBackend options that need no engine: CPU thread binding and argument checks."""

from __future__ import annotations

import os

import pytest
import torch

from sftlab.eval.backends.vllm_backend import VLLMBackend

BIND, RESERVED = "VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_NUM_OF_RESERVED_CPU"


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in (BIND, RESERVED):  # set, then delete: monkeypatch then restores the original on teardown
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_all_binds_every_allowed_cpu_and_reserves_none(cpu_only) -> None:
    VLLMBackend(cpu_threads="all")._bind_cpu_threads()
    assert os.environ[BIND] == ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    assert os.environ[RESERVED] == "0"


def test_vllm_choice_and_user_settings_are_left_alone(cpu_only, monkeypatch) -> None:
    VLLMBackend(cpu_threads="vllm")._bind_cpu_threads()
    assert BIND not in os.environ and RESERVED not in os.environ
    monkeypatch.setenv(BIND, "1")
    VLLMBackend(cpu_threads="all")._bind_cpu_threads()
    assert os.environ[BIND] == "1" and os.environ[RESERVED] == "0"


def test_unknown_cpu_threads_names_the_choices() -> None:
    with pytest.raises(ValueError, match='cpu_threads must be "all" or "vllm", got \'half\''):
        VLLMBackend(cpu_threads="half")
