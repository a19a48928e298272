#!/usr/bin/env bash
# watch_soak: pushes a long generated clip (FRAMES frames, a fire-like flicker in every period,
# so alarms are raised and cleared over and over) through `firesight watch` at full speed, with
# MQTT (a mosquitto of its own), the dashboard polled, and retention pruning every few seconds
# against a small disk budget; samples the watcher's resident memory, open file descriptors and
# threads from /proc while it runs, and prints first/last/max of each and a verdict on whether
# they stayed flat. Not a CI test: it takes minutes and its figures depend on the machine.
#
# usage: bench/watch_soak.sh
#   BUILD_DIR (build)  OUT (BUILD_DIR/watch-soak)  FRAMES (30000)  SAMPLE_S (2)
#   MODEL (OUT/soak.fse: the small colour-detector engine of bench/watch_soak_model, built when
#   missing; MobileNetV2 would take ~150 ms a frame here, hours for a soak)  ALARM_CLASS (fire)
#   e.g. MODEL=m.fse ALARM_CLASS=volcano for `firesight build --model mobilenet...tflite --out m.fse`
#   The verdict: after a warm-up (the first WARMUP_PCT=20 % of the samples) resident memory may
#   grow by at most RSS_SLACK_MB (8) and the fd and thread counts by at most 2.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
OUT=${OUT:-$BUILD_DIR/watch-soak}
FRAMES=${FRAMES:-30000}
SAMPLE_S=${SAMPLE_S:-2}
ALARM_CLASS=${ALARM_CLASS:-fire}
WARMUP_PCT=${WARMUP_PCT:-20}
RSS_SLACK_MB=${RSS_SLACK_MB:-8}
FS="$BUILD_DIR/apps/firesight/firesight"
GEN="$BUILD_DIR/bench/watch_soak_video"
MAKE_MODEL="$BUILD_DIR/bench/watch_soak_model"

fail() { printf 'watch_soak: %s\n' "$*" >&2; exit 1; }
[ -x "$FS" ] || fail "$FS not built (ninja -C $BUILD_DIR firesight)"
[ -x "$GEN" ] || fail "$GEN not built (ninja -C $BUILD_DIR watch_soak_video)"
[ -x "$MAKE_MODEL" ] || [ -n "${MODEL:-}" ] || fail "$MAKE_MODEL not built (ninja -C $BUILD_DIR watch_soak_model)"
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$MOSQUITTO" ] || fail "mosquitto is not installed (scripts/deps.txt lists it)"
command -v curl >/dev/null || fail "curl is not installed"
# A loopback port nothing answers on (bash's /dev/tcp: no other tool needed).
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

mkdir -p "$OUT"
rm -rf -- "$OUT/data" "$OUT/broker" "$OUT/samples.tsv"
MODEL=${MODEL:-$OUT/soak.fse}
[ -f "$MODEL" ] || "$MAKE_MODEL" "$MODEL"
CLIP="$OUT/soak-$FRAMES.avi"
[ -f "$CLIP" ] || "$GEN" "$CLIP" "$FRAMES"

mkdir -p "$OUT/broker"
MQTT_PORT=$(free_port)
printf 'user %s\nlistener %s 127.0.0.1\nallow_anonymous true\nlog_dest none\n' "$(id -un)" "$MQTT_PORT" >"$OUT/broker/mosquitto.conf"
"$MOSQUITTO" -c "$OUT/broker/mosquitto.conf" >/dev/null 2>&1 &
BROKER=$!
HTTP_PORT=$(free_port)
# A small disk budget (512 KiB) and a short interval, so pruning runs many times during the soak.
cat >"$OUT/soak.toml" <<TOML
[retention]
max_disk_mb = 0.5
prune_interval_s = 5
TOML

printf '==> firesight watch --model %s --source soak=%s (%s frames, not paced) --alarm-class %s\n' "$MODEL" "$CLIP" "$FRAMES" "$ALARM_CLASS"
printf '    (%s cores, %s)\n' "$(nproc)" "$(date -u '+%Y-%m-%d %H:%M UTC')"
"$FS" watch --config "$OUT/soak.toml" --model "$MODEL" --source "soak=$CLIP" --no-pacing --fps 0 --alarm-class "$ALARM_CLASS" \
  --min-alarm 2 --mqtt "127.0.0.1:$MQTT_PORT" --http "127.0.0.1:$HTTP_PORT" --data "$OUT/data" >"$OUT/events.log" 2>"$OUT/watch.log" &
WATCH=$!
trap 'kill $WATCH $BROKER 2>/dev/null || true' EXIT

# One sample: seconds, RSS (KiB), open fds, threads, frames so far.
printf 't_s\trss_kb\tfds\tthreads\tframes\n' >"$OUT/samples.tsv"
SECONDS=0
while kill -0 "$WATCH" 2>/dev/null; do
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$WATCH/status" 2>/dev/null || true)
  fds=$(ls "/proc/$WATCH/fd" 2>/dev/null | wc -l || true)
  threads=$(ls "/proc/$WATCH/task" 2>/dev/null | wc -l || true)
  # The dashboard is used as a person would: state, events, metrics.
  curl -s -o /dev/null "http://127.0.0.1:$HTTP_PORT/api/events?limit=50" || true
  frames=$(curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | awk '/^firesight_frames_processed_total/ { print $2 }' || true)
  [ -n "$rss" ] && [ "$fds" -gt 0 ] && printf '%s\t%s\t%s\t%s\t%s\n' "$SECONDS" "$rss" "$fds" "$threads" "${frames:-?}" >>"$OUT/samples.tsv"
  sleep "$SAMPLE_S"
done
status=0
wait "$WATCH" || status=$?
[ $status = 0 ] || fail "firesight watch failed (exit $status); see $OUT/watch.log"
tail -n 3 "$OUT/watch.log"

alarms=$(grep -c -- '-> alarm' "$OUT/events.log" || true)
events=$(grep -c . "$OUT/events.log" || true)
printf '\n==> %s events printed, %s alarms raised; retention: %s\n' "$events" "$alarms" \
  "$(grep -c 'retention: removed' "$OUT/watch.log" || true) pruning runs removed something"
awk -F'\t' -v warm="$WARMUP_PCT" -v slack_mb="$RSS_SLACK_MB" -v alarms="$alarms" '
  NR == 1 { next }
  { n++; t[n] = $1; rss[n] = $2; fds[n] = $3; thr[n] = $4 }
  END {
    if (n < 5) { print "too few samples (" n "): run longer (FRAMES)"; exit 1 }
    w = int(n * warm / 100); if (w < 1) w = 1
    split("rss_kb fds threads", names, " ")
    ok = 1
    for (k = 1; k <= 3; k++) {
      first = k == 1 ? rss[1] : k == 2 ? fds[1] : thr[1]
      at_warm = k == 1 ? rss[w] : k == 2 ? fds[w] : thr[w]
      last = k == 1 ? rss[n] : k == 2 ? fds[n] : thr[n]
      max = 0; maxw = 0
      for (i = 1; i <= n; i++) {
        v = k == 1 ? rss[i] : k == 2 ? fds[i] : thr[i]
        if (v > max) max = v
        if (i >= w && v > maxw) maxw = v
      }
      limit = k == 1 ? slack_mb * 1024 : 2
      flat = (maxw - at_warm) <= limit
      if (!flat) ok = 0
      printf "%-8s first %8d  after warm-up %8d  last %8d  max %8d  growth after warm-up %+d  %s\n",
             names[k], first, at_warm, last, max, maxw - at_warm, flat ? "flat" : "GROWING"
    }
    printf "%d samples over %.0f s (warm-up: first %d)\n", n, t[n], w
    if (alarms == 0) { print "verdict: INCONCLUSIVE (no alarm fired: nothing was stored or sent)"; exit 1 }
    print (ok ? "verdict: FLAT (memory, fds and threads did not grow)" : "verdict: GROWING (see samples.tsv)")
    exit ok ? 0 : 1
  }' "$OUT/samples.tsv"
