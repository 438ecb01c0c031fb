#!/usr/bin/env bash
# Headless-Chromium screenshots of an `sftlab report` page and of the Aim UI listing the runs of a repo.
#
#   scripts/screenshots.sh REPORT_DIR AIM_REPO [OUT_DIR]
#
#   REPORT_DIR  folder written by `python -m sftlab report --output REPORT_DIR` (holds index.html)
#   AIM_REPO    the Aim repo folder (holds .aim), e.g. runs
#   OUT_DIR     where the PNGs go (default REPORT_DIR/screenshots):
#                 report.png       the top of the report page (run table, summary table)
#                 report_full.png  the whole page, figures included (tall window)
#                 aim_runs.png     Aim's Runs explorer listing the runs
#                 aim_run.png      the newest run's page in Aim (params, metrics)
#
# Needs Chromium (Debian: apt-get install -y chromium) and the venv's `aim`. It starts `aim up` on a free
# local port for the screenshots and stops it (its own process group) on exit.
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
report_dir=$(cd "$1" && pwd)
aim_repo=$(cd "$2" && pwd)
out_dir=${3:-$report_dir/screenshots}
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
aim=${AIM:-$(dirname "$python")/aim}

[ -f "$report_dir/index.html" ] || { echo "screenshots: no index.html in $report_dir (run sftlab report first)" >&2; exit 2; }
[ -d "$aim_repo/.aim" ] || { echo "screenshots: $aim_repo is not an Aim repo (no .aim folder)" >&2; exit 2; }
chrome=""
for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null 2>&1; then chrome=$(command -v "$name"); break; fi
done
[ -n "$chrome" ] || { echo "screenshots: Chromium not found; install it: apt-get install -y chromium" >&2; exit 2; }

profile=$(mktemp -d)
aim_pid=""
cleanup() {
  if [ -n "$aim_pid" ]; then kill -- -"$aim_pid" 2>/dev/null || true; fi
  rm -rf "$profile"
}
trap cleanup EXIT

shot() {  # shot URL OUT.png WIDTH,HEIGHT [extra flags...]
  local url=$1 png=$2 size=$3
  shift 3
  "$chrome" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
    --user-data-dir="$profile" --window-size="$size" --screenshot="$png" "$@" "$url" >/dev/null 2>&1
  [ -s "$png" ] || { echo "screenshots: Chromium wrote no $png" >&2; exit 1; }
  echo "screenshots: $png"
}

shot "file://$report_dir/index.html" "$out_dir/report.png" 1400,1000
shot "file://$report_dir/index.html" "$out_dir/report_full.png" 1400,6000

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
setsid "$aim" up --repo "$aim_repo" --host 127.0.0.1 --port "$port" --workers 1 >"$out_dir/aim_up.log" 2>&1 &
aim_pid=$!
for _ in $(seq 1 240); do
  curl -sf "$base/api/projects/" >/dev/null 2>&1 && break
  kill -0 "$aim_pid" 2>/dev/null || { echo "screenshots: aim up exited; see $out_dir/aim_up.log" >&2; exit 1; }
  sleep 0.5
done
# `aim up` indexes runs in the background: wait until the run search streams something back.
for _ in $(seq 1 120); do
  [ "$(curl -sf "$base/api/runs/search/run/?q=&report_progress=false&exclude_traces=true" | wc -c)" -gt 0 ] && break
  sleep 0.5
done
run_hash=$("$python" - "$aim_repo" <<'EOF'
import sys
from aim import Repo
runs = sorted(Repo(sys.argv[1]).iter_runs(), key=lambda r: r.creation_time)
print(runs[-1].hash if runs else "")
EOF
)
# The UI is a single-page app that fetches after load: give its scripts virtual time to render.
shot "$base/runs" "$out_dir/aim_runs.png" 1400,1000 --virtual-time-budget=20000
if [ -n "$run_hash" ]; then
  shot "$base/runs/$run_hash" "$out_dir/aim_run.png" 1400,1000 --virtual-time-budget=20000
fi
