#!/usr/bin/env bash
# Finds firesight's assets (pretrained MobileNetV2, sample photos, fire-cair photos) and prints
# their folder on the last line of stdout. Order: $FIRESIGHT_ASSETS, ../shared/assets beside the
# checkout, else assets/ in the checkout, where missing files are downloaded from their public
# addresses (scripts/assets.manifest) and refused unless their sha256 matches.
#   scripts/assets.sh            find or download, check the model files' sha256
#   scripts/assets.sh --verify   also check every photo's sha256
set -euo pipefail
cd "$(dirname "$0")/.."
manifest=scripts/assets.manifest
verify_all=0
[ "${1:-}" = "--verify" ] && verify_all=1

log() { printf '%s\n' "$*" >&2; }

if [ -n "${FIRESIGHT_ASSETS:-}" ]; then
  dir=$FIRESIGHT_ASSETS
elif [ -d ../shared/assets ]; then
  dir=$(cd ../shared/assets && pwd)
else
  dir=$PWD/assets
fi

missing=0; bad=0; fetched=0; checked=0; offline=0
while IFS=$'\t' read -r sum rel url; do
  case "$sum" in ''|'#'*) continue ;; esac
  path="$dir/$rel"
  if [ ! -f "$path" ]; then
    if [ $offline = 1 ]; then
      missing=$((missing + 1)); continue
    fi
    if mkdir -p "$(dirname "$path")" 2>/dev/null && [ -w "$(dirname "$path")" ]; then
      log "downloading $rel"
      if ! curl -fsSL --retry 2 --connect-timeout 15 -o "$path.part" "$url"; then
        log "  failed: $url"; rm -f "$path.part"; missing=$((missing + 1))
        # Nothing fetched yet and the first try failed: the network is unreachable, stop trying.
        [ $fetched = 0 ] && { offline=1; log "  no network: not trying the other files"; }
        continue
      fi
      got=$(sha256sum "$path.part" | cut -d' ' -f1)
      if [ "$got" != "$sum" ]; then
        log "  refused $rel: sha256 $got, expected $sum"; rm -f "$path.part"; bad=$((bad + 1)); continue
      fi
      mv "$path.part" "$path"; fetched=$((fetched + 1))
    else
      log "missing: $path (folder not writable)"; missing=$((missing + 1))
    fi
    continue
  fi
  # Model files are always checked (small, and a wrong model fails confusingly); photos on --verify.
  if [ $verify_all = 1 ] || [[ "$rel" == mobilenet_v2/* ]]; then
    got=$(sha256sum "$path" | cut -d' ' -f1)
    checked=$((checked + 1))
    if [ "$got" != "$sum" ]; then log "sha256 mismatch: $path ($got, expected $sum)"; bad=$((bad + 1)); fi
  fi
done < "$manifest"

if [ $missing -gt 0 ] || [ $bad -gt 0 ]; then
  log "assets in $dir: $missing missing, $bad with a wrong checksum (see above); without network, copy them there or set FIRESIGHT_ASSETS"
  exit 1
fi
log "assets: $dir ($fetched downloaded, $checked checksums verified)"
echo "$dir"
