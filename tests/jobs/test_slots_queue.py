"""One slot rule across processes: the on-disk queue and the slot locks hold however jobs are started."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nocodetune.errors import ConflictError
from nocodetune.jobs.service import JobService
from nocodetune.jobs.slots import SlotPool, take_for_export
from nocodetune.records.events import read_events
from nocodetune.records.queue import list_entries
from tests.jobs.conftest import FAKE_TRAINER, fake_command, make_job_folder, wait_for


def _times(ws, name: str) -> tuple[float, float]:
    """(started, ended) as the training process wrote them in its events."""
    events, _ = read_events(ws.job(name).events)
    started = next(e.time for e in events if e.type == "started")
    ended = next(e.time for e in events if e.type in ("finished", "failed", "cancelled"))
    return started, ended


LONG = 600  # steps of a job that must still run while the test looks (cancelled by the test)


def _never_overlap(ws, names: list[str]) -> None:
    spans = sorted(_times(ws, n) for n in names)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, f"two jobs ran at once: {spans}"


def _cli(ws, *args: str, steps: int = 8, sleep: float = 0.1, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        NOCODETUNE_WORKSPACE=str(ws.root),
        NOCODETUNE_TRAINING_COMMAND=f"{{python}} {FAKE_TRAINER} {{job_dir}} --steps {steps} --sleep {sleep}",
        COLUMNS="200",
        **(extra_env or {}),
    )
    done = subprocess.run([sys.executable, "-m", "nocodetune", *args], env=env, capture_output=True, text=True, timeout=120)
    done.text = " ".join((done.stdout + done.stderr).split())  # type: ignore[attr-defined]
    return done


def test_two_detached_cli_runs_on_a_one_slot_machine_take_turns(ws):
    make_job_folder(ws, "first")
    make_job_folder(ws, "second")
    one = _cli(ws, "job", "run", "first", "--detach", steps=LONG)
    assert one.returncode == 0 and "Started job first" in one.text, one.text
    two = _cli(ws, "job", "run", "second", "--detach")
    assert two.returncode == 0 and "Queued job second" in two.text and "busy with first" in two.text, two.text
    service = JobService(ws)
    assert service.get("second").status == "queued" and service.get("first").status == "running"
    assert _cli(ws, "job", "cancel", "first").returncode == 0
    wait_for(lambda: service.get("second").status == "succeeded", timeout=90)  # its waiter started it when first ended
    assert service.get("first").status == "cancelled"
    _never_overlap(ws, ["first", "second"])
    assert list_entries(ws) == []
    wait_for(lambda: "second left the queue" in (ws.job("second").logs / "queue-waiter.log").read_text(), timeout=30)  # and its waiter ended


def test_more_slots_let_jobs_run_side_by_side(ws):
    make_job_folder(ws, "left")
    make_job_folder(ws, "right")
    env = {"NOCODETUNE_MAX_CONCURRENT_JOBS": "2"}
    assert "Started job left" in _cli(ws, "job", "run", "left", "--detach", steps=LONG, extra_env=env).text
    assert "Started job right" in _cli(ws, "job", "run", "right", "--detach", steps=LONG, extra_env=env).text
    service = JobService(ws)
    wait_for(lambda: all(service.get(n).status == "running" for n in ("left", "right")), timeout=60)  # both at once
    for name in ("left", "right"):
        _cli(ws, "job", "cancel", name)
    assert {service.get(n).status for n in ("left", "right")} == {"cancelled"}
    (l0, l1), (r0, r1) = _times(ws, "left"), _times(ws, "right")
    assert r0 < l1 and l0 < r1


def test_two_api_services_and_a_cli_share_one_slot(ws):
    for name in ("a", "b", "c", "d"):
        make_job_folder(ws, name)
    command = fake_command("--steps", "5", "--sleep", "0.05")
    first = JobService(ws, command=command, max_concurrent=1, poll_s=0.05)
    second = JobService(ws, command=command, max_concurrent=1, poll_s=0.05)
    first.start()
    second.start()
    try:
        first.submit("a")
        second.submit("b")
        first.submit("c")
        assert _cli(ws, "job", "run", "d", "--detach", steps=5, sleep=0.05).returncode == 0
        wait_for(lambda: all(first.get(n).status == "succeeded" for n in "abcd"), timeout=120)
    finally:
        first.stop()
        second.stop()
    _never_overlap(ws, list("abcd"))
    order = sorted("abcd", key=lambda n: _times(ws, n)[0])
    assert order == list("abcd")  # first come, first served, whichever process queued it


def test_reindex_keeps_the_queue(ws):
    make_job_folder(ws, "busy")
    make_job_folder(ws, "waiting")
    assert "Started" in _cli(ws, "job", "run", "busy", "--detach", steps=LONG).text
    assert "Queued" in _cli(ws, "job", "run", "waiting", "--detach").text
    os.remove(ws.db_path)  # the registry is lost (or damaged and rebuilt)
    from nocodetune import db

    db.dispose_all()
    assert "2 jobs" in _cli(ws, "workspace", "reindex").text
    service = JobService(ws)
    assert service.get("waiting").status == "queued"
    assert [e.job for e in list_entries(ws)] == ["waiting"]
    _cli(ws, "job", "cancel", "busy")
    wait_for(lambda: service.get("waiting").status == "succeeded", timeout=90)


def test_cancel_of_a_queued_cli_run_takes_it_out_of_the_queue(ws):
    make_job_folder(ws, "running")
    make_job_folder(ws, "dropped")
    assert "Started" in _cli(ws, "job", "run", "running", "--detach", steps=LONG).text
    assert "Queued" in _cli(ws, "job", "run", "dropped", "--detach").text
    cancelled = _cli(ws, "job", "cancel", "dropped")
    assert cancelled.returncode == 0 and "is cancelled" in cancelled.text, cancelled.text
    assert list_entries(ws) == []
    service = JobService(ws)
    assert service.get("dropped").status == "cancelled"
    _cli(ws, "job", "cancel", "running")
    wait_for(lambda: service.get("running").status == "cancelled", timeout=60)
    assert not ws.job("dropped").run_logs()  # it never ran


def test_foreground_cli_run_waits_its_turn(ws):
    make_job_folder(ws, "ahead")
    make_job_folder(ws, "behind")
    assert "Started" in _cli(ws, "job", "run", "ahead", "--detach", steps=LONG).text
    env = dict(os.environ, NOCODETUNE_WORKSPACE=str(ws.root), COLUMNS="200",
               NOCODETUNE_TRAINING_COMMAND=f"{{python}} {FAKE_TRAINER} {{job_dir}} --steps 3 --sleep 0.01")
    behind = subprocess.Popen([sys.executable, "-m", "nocodetune", "job", "run", "behind"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        service = JobService(ws)
        wait_for(lambda: service.get("behind").status == "queued", timeout=60)
        assert _cli(ws, "job", "cancel", "ahead").returncode == 0
        out, _ = behind.communicate(timeout=120)
    finally:
        if behind.poll() is None:
            behind.kill()
    text = " ".join(out.split())
    assert behind.returncode == 0, text
    assert "Queued: position 1" in text and "busy with ahead" in text and "Job behind succeeded" in text
    _never_overlap(ws, ["ahead", "behind"])


def test_an_export_takes_a_slot_and_is_refused_while_jobs_use_them(ws):
    make_job_folder(ws, "trainer")
    pool = SlotPool(ws, [None])
    held = take_for_export(ws, "export of x", pool)
    assert pool.holders() == {"cpu0": "export of x"}
    with pytest.raises(ConflictError, match="export of x"):
        take_for_export(ws, "export of y", pool)
    held.release()
    service = JobService(ws, command=fake_command("--steps", "40", "--sleep", "0.05"), max_concurrent=1, poll_s=0.05)
    service.start()
    try:
        service.submit("trainer")
        wait_for(lambda: service.get("trainer").status == "running")
        with pytest.raises(ConflictError, match="in use by trainer"):
            take_for_export(ws, "export of z", pool)
        service.cancel("trainer", wait=True)
    finally:
        service.stop()
    take_for_export(ws, "export of z", pool).release()
