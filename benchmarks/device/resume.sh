#!/usr/bin/env bash
# Resume training on the lent machine when device time is left (a second, shorter call):
#   run(command="bash benchmarks/device/resume.sh", carry=[".whl", "devdata"], timeout_s=330)
# It continues runs/device/{vae,denoiser} where the last call left them (the same warm machine keeps
# ignored folders), or, on a fresh machine, from checkpoint parts copied into devckpt/ (carry it too).
# Checkpoint parts come back in $OUT as before. BUDGET_S (default 270) bounds the whole call.
exec env STAGES="${STAGES:-env train}" BUDGET_S="${BUDGET_S:-270}" bash "$(dirname "$0")/run.sh" "$@"
