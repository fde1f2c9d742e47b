#!/usr/bin/env bash
# Studies that outlive a session (hours of CPU, e.g. studies/cifar10_jpg_lt_200ep.yaml).
#
#   bash scripts/long-study.sh start STUDY.yaml   # one command at the start of every session
#   bash scripts/long-study.sh status STUDY.yaml  # where it stands (also the study's dry run)
#   bash scripts/long-study.sh save STUDY.yaml    # before the session ends, then commit results/
#
# start: builds npe with tch, extracts the study's data from ../shared/data when it names
#        /tmp/cifar10 or /tmp/stare and they are missing, brings back the runs kept in
#        results/state/<name>/ by an earlier `save`, and starts `npe study STUDY` in the
#        background (a private copy of the binary, so rebuilding does not swap it under the
#        runs; its own process group; log in runs/studies/<name>.study.log). `npe study` reuses
#        finished runs, resumes the interrupted one exactly from its newest checkpoint, and
#        trains the rest, every run's seed 0 before any seed 1.
# save:  copies each run's folder into results/state/<name>/ (finished runs without
#        checkpoints; the run in progress with its kept checkpoints), and the study's
#        table, when it has one, to results/<name>.md with the command that regenerates it.
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=${1:?usage: long-study.sh start|status|save STUDY.yaml}
study=${2:?usage: long-study.sh start|status|save STUDY.yaml}
[ -f "$study" ] || { echo "error: no study file $study" >&2; exit 2; }
name=$(sed -n 's/^name: *//p' "$study" | head -1)
[ -n "$name" ] || { echo "error: $study has no 'name:'" >&2; exit 2; }
root=runs/studies
live=$root/$name
kept=results/state/$name
npe=$root/$name.npe
log=$root/$name.study.log

running() { pgrep -f -- "$npe study" >/dev/null 2>&1; }

extract() { # DIR ARCHIVE PARENT
    if grep -q "data.root=$1" "$study" && [ ! -d "$1/train" ] && [ ! -d "$1/stare-images" ]; then
        echo "extracting $2 into $3" >&2
        mkdir -p "$3"
        tar -xzf "$2" -C "$3"
    fi
}

case "$cmd" in
start)
    if running; then
        echo "study $name is already running (log: $log)"
        exit 0
    fi
    eval "$(bash scripts/libtorch.sh)"
    cargo build --release --features tch
    extract /tmp/cifar10 ../shared/data/cifar10-jpg.tar.gz /tmp/cifar10
    extract /tmp/stare ../shared/data/stare.tar.gz /tmp
    mkdir -p "$live"
    if [ -d "$kept" ]; then
        for d in "$kept"/*/; do
            run=$(basename "$d")
            if [ ! -e "$live/$run" ]; then
                echo "bringing back $run from $kept" >&2
                cp -a "$d" "$live/$run"
            fi
        done
    fi
    cp target/release/npe "$npe"
    echo "== $(date -u '+%F %T') start (commit $(git rev-parse --short HEAD))" >>"$log"
    setsid nohup "$npe" study "$study" >>"$log" 2>&1 </dev/null &
    echo "started study $name in the background (pid $!); log: $log; runs: $live"
    ;;
status)
    if running; then echo "running (log: $log)"; else echo "not running"; fi
    for d in "$live"/*/; do
        [ -d "$d" ] || continue
        last=$(tail -n 1 "$d/metrics.jsonl" 2>/dev/null | sed -n 's/^{"epoch":\([0-9]*\).*/\1/p')
        if [ -f "$d/summary.json" ]; then s=finished; else s="epoch ${last:-0}"; fi
        echo "  $(basename "$d"): $s"
    done
    ;;
save)
    mkdir -p "$kept"
    for d in "$live"/*/; do
        [ -d "$d" ] || continue
        run=$(basename "$d")
        tmp="$kept/.$run.tmp"
        rm -rf "$tmp"
        mkdir -p "$tmp"
        # Everything but checkpoints, the lock and TensorBoard files.
        (cd "$d" && find . -maxdepth 1 -type f ! -name '.npe.lock' -exec cp -a {} "$OLDPWD/$tmp/" \;)
        if [ ! -f "$d/summary.json" ]; then
            # The study keeps one end-of-epoch checkpoint (train.checkpoint.keep_last=1), plus
            # the mid-epoch one of a stopped run: both are small, and resume picks the newest.
            newest=$(find "$d/checkpoints" -maxdepth 1 -name 'epoch-*.safetensors' 2>/dev/null | sort | tr '\n' ' ')
            if [ -n "$newest" ]; then
                mkdir -p "$tmp/checkpoints"
                # shellcheck disable=SC2086
                cp -a $newest "$tmp/checkpoints/"
            fi
        fi
        rm -rf "$kept/$run"
        mv "$tmp" "$kept/$run"
        echo "kept $run$([ -f "$d/summary.json" ] && echo ' (finished)' || echo " (newest checkpoint: ${newest:-none})")"
    done
    # The tables as they stand (finished runs, and the prior over training of the one in
    # progress), without training.
    # (The newest build: the running study's private copy may predate --report-only.)
    bin=target/release/npe
    [ -x "$bin" ] || bin=$npe
    "$bin" study "$study" --report-only >/dev/null
    if [ -f "$live/results.md" ]; then
        {
            echo "<!-- Regenerate: bash scripts/long-study.sh start $study  (resumes the runs kept in $kept; or by hand: npe study $study). Commit $(git rev-parse --short HEAD), $(date -u +%F), $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; CIFAR-10 JPEG copy of ../shared/data, not a test dependency -->"
            echo
            cat "$live/results.md"
        } >"results/$name.md"
        for f in "$live"/*.png; do [ -f "$f" ] && cp "$f" "results/${name}_$(basename "$f")"; done
        echo "wrote results/$name.md"
    fi
    ;;
*)
    echo "usage: long-study.sh start|status|save STUDY.yaml" >&2
    exit 2
    ;;
esac
