#!/usr/bin/env bash
# Multi-node sftlab training with torchrun. Run the same command on every node; only NODE_RANK differs.
#
#   NODE_RANK=0 MASTER_ADDR=node0.cluster MASTER_PORT=29500 \
#     bash configs/launch/torchrun_multinode.sh --config configs/quickstart.yaml \
#       --config configs/trainer/fsdp.yaml --trainer.num_nodes=2
#
# The node count and the processes per node come from the resolved YAML (trainer.num_nodes,
# trainer.devices; "auto"/-1 = every GPU of the node), so torchrun and Lightning always agree.
# Environment: NODE_RANK (0..num_nodes-1, required when num_nodes > 1), MASTER_ADDR (node 0's address
# as the other nodes reach it; default 127.0.0.1), MASTER_PORT (a free port on node 0; default 29500),
# PYTHON (default: .venv/bin/python next to this repo, else python3). Everything after the script name
# goes to `sftlab fit` unchanged. Only global rank 0 logs metrics and writes eval records; checkpoints
# and eval weights go to the run folder, which must be on a filesystem all nodes see.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON=${PYTHON:-$([ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3)}

# trainer.num_nodes and trainer.devices as `sftlab fit` resolves them (no model is loaded).
read -r NNODES DEVICES < <(
  "$PYTHON" -m sftlab fit "$@" --print_config | "$PYTHON" -c '
import sys, yaml
trainer = yaml.safe_load(sys.stdin)["trainer"]
devices = trainer.get("devices", "auto")
if isinstance(devices, list):
    devices = len(devices)
elif devices in (None, "auto", -1, "-1"):
    devices = "gpu"
print(int(trainer.get("num_nodes") or 1), devices)'
)
if [ -z "${NNODES:-}" ]; then
  echo "torchrun_multinode.sh: could not resolve trainer.num_nodes/devices from the config (see the error above)" >&2
  exit 2
fi
if [ "$NNODES" -gt 1 ] && [ -z "${NODE_RANK:-}" ]; then
  echo "torchrun_multinode.sh: trainer.num_nodes=$NNODES but NODE_RANK is not set; set it to 0..$((NNODES - 1)) on each node" >&2
  exit 2
fi
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
echo "sftlab launch: node $NODE_RANK of $NNODES, $DEVICES processes per node, master $MASTER_ADDR:$MASTER_PORT" >&2

# torchrun's static rendezvous: every node connects to MASTER_ADDR:MASTER_PORT; when one worker fails,
# torchrun stops the others on its node and exits non-zero, and the other nodes' collectives fail fast.
exec "$PYTHON" -m torch.distributed.run \
  --nnodes="$NNODES" --nproc-per-node="$DEVICES" --node-rank="$NODE_RANK" \
  --master-addr="$MASTER_ADDR" --master-port="$MASTER_PORT" \
  -m sftlab fit "$@"
