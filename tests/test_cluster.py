"""Scale-out: placement by GPUs and the loss of a worker node, on a multi-node Ray cluster
whose worker nodes declare GPUs (no real GPU needed), and a study run on a cluster started with
`ray start --head`. Each test starts its own cluster in other processes, apart from the test
session's Ray instance."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

FAKE_GPU = """\
name: fakegpu
data: {corpus: "builtin:kjv", tokenizer: bytes, seq_len: 64}
architectures: [decoder]
sizes: [10K, 25K, 50K]
budget: {tokens: 160K}
train: {batch_size: 8, checkpoint_every: 16K}
eval: {every_tokens: 80K, tokens: 4K, zero_shot: {tasks: []}}
resources:
  cpus_per_trial: 1
  gpus_per_trial:            # the 10K model on a CPU, the others on one GPU each
    - {max_params: 15K, gpus: 0}
    - {gpus: 1}
"""


@pytest.mark.slow
def test_gpu_trials_share_out_the_gpu_nodes_and_survive_losing_one(tmp_path):
    study = tmp_path / "fakegpu.yaml"
    study.write_text(FAKE_GPU + f"storage: {tmp_path / 'artifacts'}\n")
    script = Path(__file__).parent / "fake_gpu_cluster.py"
    done = subprocess.run(
        [sys.executable, str(script), str(study), str(tmp_path / "out.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads((tmp_path / "out.json").read_text())
    assert seen["outcome"] == {"failed": []}, seen

    # Trials asking for a GPU ran on the GPU nodes only, and side by side.
    gpu_nodes = set(seen["gpu_nodes"])
    assert set(seen["seen"]["decoder-25K-s0"]) <= gpu_nodes
    assert set(seen["seen"]["decoder-50K-s0"]) <= gpu_nodes
    assert seen["side_by_side"]

    # The trial whose node was removed ran again on the other GPU node, from its checkpoint.
    removed = seen["removed"]
    assert removed in gpu_nodes
    assert seen["seen"]["decoder-50K-s0"] == [removed, (gpu_nodes - {removed}).pop()]
    assert "decoder-50K-s0 lost its node or worker on try 1, running again" in seen["log"]
    assert "decoder-50K-s0: resumed at" in seen["log"]

    with sqlite3.connect(tmp_path / "runs" / "fakegpu.db") as db:
        rows = db.execute("SELECT trial_id, status, attempts, node FROM trials").fetchall()
        assert {(t, s, a) for t, s, a, _ in rows} == {
            ("decoder-10K-s0", "finished", 1),
            ("decoder-25K-s0", "finished", 1),
            ("decoder-50K-s0", "finished", 2),
        }
        assert dict((t, n) for t, _, _, n in rows)["decoder-50K-s0"] != removed
        duplicates = db.execute(
            "SELECT COUNT(*) FROM (SELECT trial_pk, name, step FROM metrics "
            "GROUP BY trial_pk, name, step HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        assert duplicates == 0
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head():
    """A Ray head started as a user starts one, `ray start --head`, with Ray 2.60's default
    token authentication; stopped (its whole process group) afterwards. Yields the GCS and
    dashboard ports."""
    port, dashboard = _free_port(), _free_port()
    temp = tempfile.mkdtemp(prefix="rayhead", dir="/tmp")  # short, as Ray's socket paths must be
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    ray_cli = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [str(ray_cli) if ray_cli.exists() else "ray", "start", "--head", f"--port={port}",
         f"--dashboard-port={dashboard}", "--num-cpus=2", f"--temp-dir={temp}",
         "--disable-usage-stats", "--block"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{dashboard}/api/version", timeout=2)
            except urllib.error.HTTPError:
                break  # it answers (401: it wants the token)
            except OSError:
                assert head.poll() is None and time.monotonic() < deadline, "no Ray head"
                time.sleep(0.5)
        yield port, dashboard
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(5)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def _get(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10):
            return 200
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.slow
def test_study_run_joins_a_ray_start_head_with_its_token(ray_head, tmp_path, study_cli, study_here):
    port, dashboard = ray_head
    nodes = f"http://127.0.0.1:{dashboard}/nodes?view=summary"
    token = (Path.home() / ".ray" / "auth_token").read_text().strip()
    assert _get(nodes) == 401  # the dashboard keeps token authentication on
    assert _get(nodes, "not-the-token") == 403
    assert _get(nodes, token) == 200

    study = tmp_path / "head.yaml"
    study.write_text(
        "name: head\ndata: {corpus: 'builtin:kjv', tokenizer: bytes, seq_len: 32}\n"
        "architectures: [decoder]\nsizes: [25K]\nbudget: {tokens: 16K}\n"
        "train: {batch_size: 8}\neval: {tokens: 2K, zero_shot: {tasks: []}}\n"
        f"storage: {tmp_path / 'artifacts'}\n"
    )
    address = f"127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}

    # Without RAY_AUTH_MODE=token the driver sends no token, and is told what to do.
    refused = study_cli("run", str(study), "--address", address, cwd=tmp_path, env=env)
    assert refused.returncode == 2
    assert "export RAY_AUTH_MODE=token" in refused.stderr and "Traceback" not in refused.stderr
    with sqlite3.connect(tmp_path / "runs" / "head.db") as db:
        assert db.execute("SELECT status, attempts FROM trials").fetchall() == [("pending", 0)]

    # A wrong address fails in seconds, naming what to check.
    wrong = study_cli("run", str(study), "--address", f"127.0.0.1:{_free_port()}", cwd=tmp_path)
    assert wrong.returncode == 2 and "nothing answers at 127.0.0.1:" in wrong.stderr

    # `study plan --address` checks the trials against the cluster's nodes, before anything
    # trains: a trial on more workers (8) than the cluster has CPUs (2) is named; nothing stored
    wide = tmp_path / "wide.yaml"
    wide.write_text(study.read_text().replace("name: head", "name: wide") + "resources: {workers: 8}\n")
    signed = env | {"RAY_AUTH_MODE": "token"}
    planned = study_cli("plan", str(wide), "--json", "--address", address, cwd=tmp_path,
                        env=signed)  # fmt: skip
    assert planned.returncode == 0, planned.stderr[-3000:]
    said = json.loads(planned.stdout)["warnings"]  # the text prints the same lines
    assert [w for w in said if f"needs 8 workers × 1 CPU; the cluster at {address} has" in w]
    assert not (tmp_path / "runs" / "wide.db").exists()
    unplaced = study_here("plan", str(wide), "--json", "--address",
                          f"127.0.0.1:{_free_port()}", cwd=tmp_path)  # fmt: skip
    assert unplaced.returncode == 2 and "nothing answers at 127.0.0.1:" in unplaced.stderr

    joined = study_cli(
        "run", str(study), "--n-boot", "20", cwd=tmp_path,
        env=env | {"RAY_AUTH_MODE": "token", "RAY_ADDRESS": address},
    )  # fmt: skip
    assert joined.returncode == 0, joined.stderr[-3000:]
    assert f"Ray dashboard: http://127.0.0.1:{dashboard}" in joined.stdout
    with sqlite3.connect(tmp_path / "runs" / "head.db") as db:
        assert db.execute("SELECT status, attempts FROM trials").fetchall() == [("finished", 1)]
    # The dashboard's Jobs list names the run after the study (its Name column: job_name).
    jobs = _jobs(f"http://127.0.0.1:{dashboard}", token)
    assert {"job_name": "study run head", "study": "head"} in [j["metadata"] for j in jobs]


def _jobs(dashboard: str, token: str) -> list[dict]:
    """The dashboard's Jobs list, as its page reads it."""
    request = urllib.request.Request(
        dashboard + "/api/jobs/", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


PROBE_LOCAL_DASHBOARD = """
import json, sys, urllib.error, urllib.request
from pathlib import Path
from orchestrator import schedule
cluster = schedule.connect(job="study run probe", study="probe")
try:
    url = cluster.dashboard_url + "/nodes?view=summary"
    try:
        urllib.request.urlopen(url, timeout=10)
        code = 200
    except urllib.error.HTTPError as e:
        code = e.code
    token = (Path.home() / ".ray" / "auth_token").read_text().strip()
    jobs = urllib.request.Request(cluster.dashboard_url + "/api/jobs/",
                                  headers={"Authorization": f"Bearer {token}"})
    names = [j["metadata"] for j in json.load(urllib.request.urlopen(jobs, timeout=10))]
    import psutil  # what the instance's processes listen on (Ray's own dependency)
    mine = [psutil.Process(), *psutil.Process().children(recursive=True)]
    listening = sorted({c.laddr.ip for p in mine for c in p.net_connections(kind="tcp")
                        if c.status == psutil.CONN_LISTEN})
    print(json.dumps({"url": cluster.dashboard_url, "without_token": code, "jobs": names,
                      "secured": cluster.token_secured, "listening": listening}))
finally:
    schedule.disconnect(cluster)
"""


@pytest.mark.slow
def test_the_local_instance_keeps_token_auth_on_and_listens_on_loopback_only(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    token = Path.home() / ".ray" / "auth_token"
    if token.exists():
        token.chmod(0o644)  # as Ray writes it
    done = subprocess.run(
        [sys.executable, "-c", PROBE_LOCAL_DASHBOARD],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["url"].startswith("http://127.0.0.1:")
    assert seen["without_token"] == 401
    assert seen["jobs"] == [{"job_name": "study run probe", "study": "probe"}]
    assert "RAY_AUTH_MODE=disabled" not in done.stderr  # Ray's opt-out advice, on every run
    assert token.stat().st_mode & 0o777 == 0o600 and seen["secured"]  # its owner's alone
    # every endpoint of the local instance (GCS, raylet, the metrics agent, which answers
    # without the token) answers this machine only
    assert seen["listening"] and set(seen["listening"]) <= {"127.0.0.1", "::ffff:127.0.0.1"}
