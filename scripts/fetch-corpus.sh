#!/usr/bin/env bash
# Fetches and builds the real-text English corpus into corpus/ (git-ignored):
# at least 200,000 distinct sentences of human-written English, split into
#   corpus/train.txt    everything but the held-out split (one sentence a line)
#   corpus/heldout.txt  2,000 sentences never trained or calibrated on
#   corpus/README.md    sources, counts, seed and sha256 of both files
# The text is Debian's: the English package descriptions (apt's
# Translation-en indexes) of several releases, all components, and the
# English Linux man pages (packages manpages and manpages-dev of one release).
# scripts/make_corpus.py parses, filters, deduplicates and splits it (seeded);
# the same apt lists and packages give byte-identical files.
#
# Usage (from anywhere; needs apt-get, dpkg-deb and python3, root for apt):
#   scripts/fetch-corpus.sh [--out DIR] [--suites "S1 S2 ..."]
#                           [--man-suite SUITE] [--mirror URL] [--seed N]
#                           [--no-update]
# Defaults: out corpus/, suites "bullseye bookworm trixie bookworm-backports
# trixie-backports" (all components: main contrib non-free non-free-firmware),
# man pages of bookworm, mirror http://deb.debian.org/debian, seed 20240611.
# apt runs on a private configuration and state under DIR/.apt/: the
# machine's own apt sources, lists and settings are neither read nor changed.
# --no-update rebuilds from the lists and packages already in DIR/.apt/
# (no network). Fails if fewer than 200,000 sentences result.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

out="corpus"
suites="bullseye bookworm trixie bookworm-backports trixie-backports"
man_suite="bookworm"
mirror="http://deb.debian.org/debian"
seed=20240611
update=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --suites) suites="$2"; shift 2 ;;
    --man-suite) man_suite="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --no-update) update=0; shift ;;
    -h|--help) sed -n '2,23p' "$0" | sed -e 's/^# //' -e 's/^#$//'; exit 0 ;;
    *) echo "fetch-corpus: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
  esac
done
for tool in apt-get dpkg-deb python3; do
  command -v "$tool" >/dev/null || { echo "fetch-corpus: needs $tool" >&2; exit 1; }
done

mkdir -p "$out"
out="$(cd "$out" && pwd)"
state="$out/.apt"
mkdir -p "$state/etc/parts.d" "$state/etc/sources.list.d" "$state/lists/partial" "$state/cache/archives/partial" "$state/debs"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || { echo "fetch-corpus: needs $keyring (package debian-archive-keyring)" >&2; exit 1; }

# A private apt: its own sources, lists and cache; English translations only;
# none of the machine's apt.conf.d (which may turn translations off).
: > "$state/etc/sources.list"
for suite in $suites; do
  components="main contrib non-free non-free-firmware"
  case "$suite" in  # non-free-firmware began with bookworm
    buster*|bullseye*) components="main contrib non-free" ;;
  esac
  echo "deb [signed-by=$keyring] $mirror $suite $components" >> "$state/etc/sources.list"
done
cat > "$state/etc/apt.conf" <<EOF
Dir::Etc::main "/dev/null";
Dir::Etc::parts "$state/etc/parts.d";
Dir::Etc::sourcelist "$state/etc/sources.list";
Dir::Etc::sourceparts "$state/etc/sources.list.d";
Dir::State::Lists "$state/lists";
Dir::Cache "$state/cache";
Acquire::Languages { "en"; };
APT::Sandbox::User "root";
EOF
export APT_CONFIG="$state/etc/apt.conf"

if [ "$update" = 1 ]; then
  echo "fetch-corpus: apt-get update ($suites) into $state/lists" >&2
  apt-get -q update --error-on=any >&2
  echo "fetch-corpus: downloading manpages and manpages-dev of $man_suite" >&2
  rm -f "$state/debs"/*.deb
  (cd "$state/debs" && apt-get -q download "manpages/$man_suite" "manpages-dev/$man_suite" >&2)
fi

lists=()
for suite in $suites; do
  found=("$state/lists/"*"_dists_${suite}_"*"_i18n_Translation-en"*)
  [ -e "${found[0]}" ] || { echo "fetch-corpus: no Translation-en list of $suite in $state/lists (run without --no-update)" >&2; exit 1; }
  lists+=("${found[@]}")
done
debs=("$state/debs/"manpages_*.deb "$state/debs/"manpages-dev_*.deb)
for deb in "${debs[@]}"; do
  [ -e "$deb" ] || { echo "fetch-corpus: $deb missing (run without --no-update)" >&2; exit 1; }
done
rm -rf "$state/man"
man_dirs=()
for deb in "${debs[@]}"; do
  dir="$state/man/$(basename "$deb" .deb)"
  mkdir -p "$dir"
  dpkg-deb -x "$deb" "$dir"
  man_dirs+=("$dir/usr/share/man")
done

echo "fetch-corpus: building $out from ${#lists[@]} lists and ${#debs[@]} man-page packages" >&2
python3 scripts/make_corpus.py --out "$out" --seed "$seed" \
  --descriptions "${lists[@]}" --man-pages "${man_dirs[@]}"
