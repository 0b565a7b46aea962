"""Thread policy: PASSIVE wait policy before torch loads (the CLI), pools sized to the free CPUs."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import torch

from hueshift_core import threads


def test_auto_threads_arithmetic():
    assert threads.auto_threads(cpus=2, busy=0) == 2
    assert threads.auto_threads(cpus=2, busy=1) == 1
    assert threads.auto_threads(cpus=2, busy=5) == 1  # never below one
    assert threads.auto_threads(cpus=8, busy=2.4) == 6
    assert threads.auto_threads(cpus=4, busy=0.0) == 4


def test_busy_elsewhere_and_cpus_are_sane():
    assert 1 <= threads.available_cpus() <= (os.cpu_count() or 1)
    assert threads.busy_elsewhere() >= 0.0


def test_configure_sets_torch_and_opencv(monkeypatch):
    before_t, before_c = torch.get_num_threads(), cv2.getNumThreads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        assert threads.configure(1) == 1
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1 and threads.current() == 1
        n = threads.configure()
        assert 1 <= n <= threads.available_cpus() and torch.get_num_threads() == n
        cpus = threads.available_cpus()
        for policy in ("PASSIVE", "ACTIVE"):  # either way: the free CPUs (the load pinned: it moves)
            monkeypatch.setenv("OMP_WAIT_POLICY", policy)
            for busy in (0.0, cpus - 1.0, float(cpus)):
                monkeypatch.setattr(threads, "busy_elsewhere", lambda busy=busy: busy)
                assert threads.choose() == max(1, cpus - int(busy))
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert threads.configure() == 1  # the user's setting wins
    finally:
        torch.set_num_threads(before_t)
        cv2.setNumThreads(before_c)


def test_cli_sets_passive_wait_policy_before_torch():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = ("import os, sys; import hueshift_core.cli; "
            "print('torch' in sys.modules, os.environ.get('OMP_WAIT_POLICY'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "PASSIVE"]
    env["OMP_WAIT_POLICY"] = "ACTIVE"  # a user's own choice is kept
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "ACTIVE"]
