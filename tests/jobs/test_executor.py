"""Slots: one per GPU (pinned with CUDA_VISIBLE_DEVICES), else max_concurrent_jobs on the CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from nocodetune.jobs.executor import LocalExecutor, detect_gpus, plan_slots
from nocodetune.jobs.service import JobService
from tests.jobs.conftest import FAKE_TRAINER, fake_command, make_job_folder, wait_for


def test_gpus_come_from_nvidia_smi_without_torch(tmp_path, monkeypatch):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-a)'\necho 'GPU 1: NVIDIA H100 (UUID: GPU-b)'\n")
    smi.chmod(0o755)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert detect_gpus() == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert detect_gpus() == ["3", "5"]


def test_slot_plan():
    assert plan_slots(None, []) == [None]
    assert plan_slots(3, []) == [None, None, None]
    assert plan_slots(None, ["0", "1"]) == ["0", "1"]
    assert plan_slots(1, ["0", "1"]) == ["0"]


def test_a_job_is_pinned_to_its_gpu_slot(ws):
    make_job_folder(ws, "pinned")
    from nocodetune import db
    from nocodetune.jobs.registry import get_row

    with db.session(ws) as s:
        get_row(s, ws, "pinned").status = "queued"
    executor = LocalExecutor(ws, slots=["1"], command=fake_command("--steps", "2", "--sleep", "0.01"), poll_s=0.05)
    executor.start()
    try:
        executor.submit("pinned")
        wait_for(lambda: JobService(ws).get("pinned").status == "succeeded")
    finally:
        executor.stop()
    assert "CUDA_VISIBLE_DEVICES=1" in ws.job("pinned").run_log(1).read_text()


def test_ctrl_c_in_a_foreground_cli_run_cancels_gracefully(ws):
    make_job_folder(ws, "interrupted")
    env = dict(os.environ, NOCODETUNE_WORKSPACE=str(ws.root), NOCODETUNE_TRAINING_COMMAND=f"{{python}} {FAKE_TRAINER} {{job_dir}} --steps 300 --sleep 0.05")
    cli = subprocess.Popen([sys.executable, "-m", "nocodetune", "job", "run", "interrupted"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    service = JobService(ws)
    try:
        wait_for(lambda: (service.get("interrupted").step or 0) >= 2, timeout=60)
        cli.send_signal(signal.SIGINT)
        out, _ = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
    text = " ".join(out.split())
    assert cli.returncode == 130, text
    assert "Job interrupted cancelled" in text and "nocodetune job resume interrupted" in text
    assert service.get("interrupted").status == "cancelled"
    time.sleep(0.1)
    assert (ws.job("interrupted").checkpoints / "last.json").exists()
