"""One training over several hosts: ``mars train --nnodes N --node-rank R --master ADDR:PORT``.

Two "hosts" on this machine: two torchrun agents, one gloo process each, meeting on
the loopback interface only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest
import torch
from test_training_run import PYTHON, cli_args, synth, weights  # noqa: F401 (synth: fixture)

from mars_action.cli import main
from mars_action.errors import MarsError
from mars_action.training.distributed import Nodes, parse_nodes


def test_nodes_become_torchrun_options():
    assert Nodes().torchrun_args() == ["--standalone"]
    nodes = parse_nodes(2, 1, "10.0.0.5:29400")
    assert nodes.torchrun_args() == ["--nnodes=2", "--node_rank=1", "--master_addr=10.0.0.5",
                                     "--master_port=29400"]  # fmt: skip
    with pytest.raises(MarsError, match="ADDR:PORT"):
        parse_nodes(2, 0, None)
    with pytest.raises(MarsError, match="--node-rank 2 of --nnodes 2"):
        parse_nodes(2, 2, "host:1")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_hosts_train_as_one_process_with_the_same_global_batch(synth, tmp_path):  # noqa: F811
    """The classifier alone trains (frozen BN), so 2 hosts x 2 clips = 1 process x 4 clips."""
    frozen = ("model.ft_begin_index=5", "model.frozen_bn=freeze")
    master = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    hosts = [
        subprocess.Popen(
            [PYTHON, "-m", "mars_action.cli", *cli_args(synth, tmp_path / "two", *frozen),
             "--nnodes", "2", "--node-rank", str(rank), "--master", master],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    for host in hosts:
        _, err = host.communicate(timeout=240)
        assert host.returncode == 0, err[-3000:]
    assert main(cli_args(synth, tmp_path / "one", *frozen)) == 0
    got = weights(tmp_path / "two/checkpoints/last.pt")
    want = weights(tmp_path / "one/checkpoints/last.pt")
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], msg=key)
    records = [
        json.loads((tmp_path / name / "metrics.jsonl").read_text()) for name in ("two", "one")
    ]
    assert records[0]["train_clips"] == records[1]["train_clips"] == 8
