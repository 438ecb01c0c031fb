"""Multi-process training on CPU (gloo): DDP equals one process, a two-"node" launch on loopback logs once,
a killed or stalled rank ends the job with a clear error instead of a hang.

Each job runs as its own program (`ddp_job.py`, or the shipped torchrun recipe) under a time limit, so a
hang fails the test rather than the test run. Slow: tens of seconds per job on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import repo_root

JOB = Path(__file__).with_name("ddp_job.py")
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(repo_root()), env.get("PYTHONPATH", "")])
    env["MASTER_ADDR"], env["MASTER_PORT"] = "127.0.0.1", str(free_port())
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def start_job(tmp_path: Path, name: str, **job) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / name
    out.mkdir()
    spec = {"out": str(out / "run"), **job}
    (out / "job.json").write_text(json.dumps(spec))
    log = (out / "log.txt").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(JOB), str(out / "job.json")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=job_env(),
        cwd=repo_root(),
        start_new_session=True,  # its own process group: the test can clean up every rank it started
    )
    return proc, out


def finish(proc: subprocess.Popen, out: Path, timeout: float) -> tuple[int, str]:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(
            f"job did not finish in {timeout}s (a hang); log:\n{(out / 'log.txt').read_text()[-3000:]}"
        )
    return rc, (out / "log.txt").read_text()


def run_job(tmp_path: Path, name: str, timeout: float = 300, **job) -> dict:
    proc, out = start_job(tmp_path, name, **job)
    rc, log = finish(proc, out, timeout)
    assert rc == 0, log[-3000:]
    return json.loads((out / "run" / "result.json").read_text())


def eval_offline(model_folder: str, weights: Path, tmp_path: Path) -> tuple[dict[str, float], list[str]]:
    """One process, no Trainer: the eval core on a checkpoint's weights (what `sftlab eval` does)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftlab.eval.backends.hf_backend import HFBackend
    from sftlab.eval.evaluate import evaluate, flatten_metrics
    from sftlab.eval.export import export_model
    from sftlab.eval.tasks.countdown import CountdownTask

    model = AutoModelForCausalLM.from_pretrained(model_folder, dtype=torch.float32)
    model.load_state_dict(torch.load(weights))
    folder = export_model(model, tmp_path / "offline_export", source_folder=model_folder)
    backend = HFBackend(batch_size=1)
    backend.start(str(folder))
    task = CountdownTask(num_problems=4, num_numbers=(3,), max_tokens=6, temperature=0.0)
    result = evaluate(task, backend, AutoTokenizer.from_pretrained(model_folder))
    return flatten_metrics([result]), [r["response"] for r in result.records]


def test_ddp_two_ranks_equal_one_rank_in_loss_gradients_and_eval(tiny_model: str, tmp_path: Path) -> None:
    common = dict(model=tiny_model, max_steps=3, micro_batch_size=2, global_batch_size=4, eval_every=3)
    started = time.perf_counter()
    two = run_job(tmp_path, "ddp2", devices=2, eval_ranks="all", save_final=True, **common)
    one = run_job(tmp_path, "ddp1", devices=1, **common)  # the same global batch through accumulation
    assert two["world_size"] == 2 and one["world_size"] == 1
    # Token-mean loss over the global batch: the same numbers at any rank count.
    assert two["losses"].keys() == one["losses"].keys() == {"1", "2", "3"}
    for step, loss in one["losses"].items():
        assert two["losses"][step] == pytest.approx(loss, rel=1e-6), step
    grads_two = torch.load(tmp_path / "ddp2/run/grads_step1.pt")
    grads_one = torch.load(tmp_path / "ddp1/run/grads_step1.pt")
    assert grads_two.keys() == grads_one.keys()
    for name, grad in grads_one.items():
        torch.testing.assert_close(grads_two[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    # The eval split across both ranks (eval_ranks="all") equals a one-process eval of the same weights.
    (entry,) = two["history"]
    assert entry["step"] == 3
    offline, responses = eval_offline(tiny_model, tmp_path / "ddp2/run/final_model.pt", tmp_path)
    logged = {k: v for k, v in entry["metrics"].items() if k not in ("eval/time_s", "eval/errors")}
    assert logged == {k: v for k, v in offline.items() if k in logged} and logged.keys() <= offline.keys()
    records = (tmp_path / "ddp2/run/eval/step_000003/countdown.jsonl").read_text().splitlines()
    assert [json.loads(line)["response"] for line in records] == responses
    print(f"2-rank + 1-rank jobs: {time.perf_counter() - started:.0f}s")


def test_two_node_launch_on_loopback_logs_once(tiny_model: str, tmp_path: Path) -> None:
    config = yaml.safe_load((repo_root() / "configs/quickstart.yaml").read_text())
    config["trainer"].update(
        accelerator="cpu", devices=1, num_nodes=2, strategy="ddp", precision="32-true", max_steps=2
    )
    config["trainer"]["logger"]["init_args"] = {
        "repo": str(tmp_path / "runs"),
        "system_tracking_interval": None,
    }
    callback = config["trainer"]["callbacks"][0]["init_args"]
    callback.update(every_n_steps=1, backend={"class_path": "sftlab.eval.backends.hf_backend.HFBackend"})
    callback["tasks"][0]["init_args"].update(num_problems=4, max_tokens=8)
    config["model"]["model_name"] = tiny_model
    config["data"]["regime"]["init_args"]["train_size"] = 16
    config["data"].update(micro_batch_size=4, global_batch_size=8)  # 4 per rank x 2 ranks
    path = tmp_path / "two_node.yaml"
    path.write_text(yaml.safe_dump(config))

    env = job_env()
    env["PYTHON"] = sys.executable
    script = repo_root() / "configs/launch/torchrun_multinode.sh"
    nodes = []
    for node_rank in (0, 1):
        log = (tmp_path / f"node{node_rank}.log").open("w")
        nodes.append(
            subprocess.Popen(
                ["bash", str(script), "--config", str(path)],
                env={**env, "NODE_RANK": str(node_rank)},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
                start_new_session=True,
            )
        )
    deadline = time.monotonic() + 420
    for node_rank, proc in enumerate(nodes):
        try:
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for p in nodes:
                os.killpg(p.pid, signal.SIGKILL)
            pytest.fail(
                "two-node launch did not finish: " + (tmp_path / f"node{node_rank}.log").read_text()[-3000:]
            )
        assert rc == 0, (tmp_path / f"node{node_rank}.log").read_text()[-3000:]
    assert "node 1 of 2, 1 processes per node" in (tmp_path / "node1.log").read_text()

    # Exactly one run folder and one Aim run, each eval written once, by global rank 0.
    (run_dir,) = list((tmp_path / "runs" / "outputs").iterdir())
    assert sorted(p.name for p in (run_dir / "eval").iterdir()) == [
        "step_000000",
        "step_000001",
        "step_000002",
    ]
    for step in (0, 1, 2):
        assert len((run_dir / f"eval/step_{step:06d}/countdown.jsonl").read_text().splitlines()) == 4
    texts = [json.loads(line) for line in (run_dir / "texts.jsonl").read_text().splitlines()]
    assert sorted(t["step"] for t in texts) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    hashes, runs = aim_runs(tmp_path / "runs")
    assert len(hashes) == 1, hashes  # rank 1 never opened a run of its own
    (run,) = runs
    from aim.storage.context import Context

    def steps(name: str, stage: str) -> list[int]:
        frame = run.get_metric(name, Context({"stage": stage})).dataframe()
        return [int(s) for s in frame["step"]]

    assert steps("train/loss", "train") == [0, 1]  # one value per optimizer step, not one per rank
    assert steps("eval/countdown/accuracy", "eval") == [0, 1, 2]


def aim_runs(repo_path: Path) -> tuple[list[str], list]:
    """Every run hash in an Aim repo, and the runs readable after indexing them (a run written by another
    process is only queryable once indexed; `aim up` does that in the background)."""
    from aim import Repo
    from aim.sdk.index_manager import RepoIndexManager

    repo = Repo(str(repo_path))
    hashes = list(repo.list_all_runs())
    manager = RepoIndexManager.get_index_manager(repo)
    for run_hash in hashes:
        manager.index(run_hash)
    return hashes, list(Repo(str(repo_path)).iter_runs())


def test_a_killed_rank_ends_the_job_with_an_error(tiny_model: str, tmp_path: Path) -> None:
    proc, out = start_job(
        tmp_path,
        "kill",
        model=tiny_model,
        devices=2,
        max_steps=200,
        micro_batch_size=2,
        global_batch_size=4,
        sleep_s=0.3,
        train_size=64,
    )
    rank1 = out / "run" / "rank1.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if rank1.is_file() and json.loads(rank1.read_text() or "{}").get("losses"):
            break
        time.sleep(0.5)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("rank 1 never trained a step: " + (out / "log.txt").read_text()[-3000:])
    os.kill(json.loads(rank1.read_text())["pid"], signal.SIGKILL)
    killed = time.monotonic()
    rc, log = finish(proc, out, timeout=120)
    assert rc != 0
    assert time.monotonic() - killed < 120
    # gloo names the dead peer instead of waiting for the 30-minute collective time-out.
    assert "Connection closed by peer" in log or "crash" in log.lower(), log[-3000:]


def test_a_rank_that_does_not_arrive_for_eval_is_named(tiny_model: str, tmp_path: Path) -> None:
    proc, out = start_job(
        tmp_path,
        "stall",
        model=tiny_model,
        devices=2,
        max_steps=2,
        micro_batch_size=2,
        global_batch_size=4,
        eval_every=1,
        stall_rank=1,
        stall_s=60,
        barrier_timeout_s=5,
    )
    rc, log = finish(proc, out, timeout=240)
    assert rc != 0
    assert "GenerationEval at step 1" in log and "not every rank arrived" in log, log[-3000:]
    assert "Rank 1" in log or "Ranks 1" in log or "rank 1" in log, log[-3000:]


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed_stage_3"])
def test_sharded_training_exports_full_weights_for_eval(
    tiny_model: str, tmp_path: Path, strategy: str
) -> None:
    import importlib.util

    if strategy.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        pytest.skip("needs deepspeed")
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    result = run_job(
        tmp_path,
        strategy,
        model=tiny_model,
        accelerator="gpu",
        strategy=strategy,
        precision="bf16-mixed",
        devices=2,
        max_steps=2,
        micro_batch_size=2,
        global_batch_size=4,
        eval_every=2,
        eval_ranks="all",
    )
    assert [h["step"] for h in result["history"]] == [2]
    exported = load_file(str(tmp_path / strategy / "run" / "eval_weights" / "model.safetensors"))
    reference = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    # Consolidated, not shards: every tensor of the HF model at its full shape (plus an explicit lm_head).
    assert set(reference) <= set(exported)
    for name, tensor in reference.items():
        assert exported[name].shape == tensor.shape, name
    assert not torch.equal(
        exported["model.layers.0.mlp.up_proj.weight"].float(), reference["model.layers.0.mlp.up_proj.weight"]
    )
