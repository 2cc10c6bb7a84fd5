#!/usr/bin/env bash
# Fetches and builds the real-text English corpus into corpus/ (git-ignored):
#   corpus/train.txt      training sentences (one a line), 300,000 or more
#   corpus/train-debian.txt  train.txt without WordNet and the Bible: Debian's
#                         own registers (the vocabulary of w4.pc, vocab.pc)
#   corpus/dev.txt        2,000 in-domain sentences for calibration/selection
#   corpus/heldout.txt    2,000 in-domain sentences never trained on
#   corpus/ood.txt        2,000 out-of-domain sentences (fortune cookies: a
#                         kind of text kept out of training entirely)
#   corpus/general.txt    2,000 held-out sentences of general English (WordNet,
#                         the Bible: kinds that otherwise only train)
#   corpus/retrieval.tsv  query<TAB>document: short and long description of
#                         up to 2,000 held-out packages
#   corpus/sections/{train,dev,test}.tsv  text<TAB>section: package
#                         descriptions labelled with 12 Debian sections
#   corpus/README.md, corpus/sections/README.md  sources, counts, seed, sha256
# The text is Debian's: the English package descriptions (apt's
# Translation-en indexes) of several releases, all components; the amd64
# Packages indexes (for the sections); and documentation packages of one
# release: man pages, manuals and handbooks, Perl's documentation, Debian's
# project texts, The Devil's Dictionary, the Jargon File, fortunes, and
# WordNet and the World English Bible for general English
# (`python3 scripts/make_corpus.py --list-packages` lists them). Packages and
# documents are split train/dev/test by a seeded hash of their names;
# scripts/make_corpus.py (with scripts/corpus/) parses, filters, deduplicates
# and splits; the same apt lists and packages give byte-identical files.
#
# Usage (from anywhere; needs apt-get, dpkg-deb and python3, root for apt):
#   scripts/fetch-corpus.sh [--out DIR] [--suites "S1 S2 ..."]
#                           [--docs-suite SUITE] [--mirror URL] [--seed N]
#                           [--no-update]
# Defaults: out corpus/, suites "bullseye bookworm trixie bookworm-backports
# trixie-backports" (all components: main contrib non-free non-free-firmware),
# documentation packages of bookworm, mirror http://deb.debian.org/debian,
# seed 20240611. apt runs on a private configuration and state under
# DIR/.apt/: the machine's own apt sources, lists and settings are neither
# read nor changed. --no-update rebuilds from the lists and packages already
# in DIR/.apt/ (no network). Fails if fewer than 300,000 sentences result.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

out="corpus"
suites="bullseye bookworm trixie bookworm-backports trixie-backports"
docs_suite="bookworm"
mirror="http://deb.debian.org/debian"
seed=20240611
update=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --suites) suites="$2"; shift 2 ;;
    --docs-suite) docs_suite="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --no-update) update=0; shift ;;
    -h|--help) sed -n '2,38p' "$0" | sed -e 's/^# //' -e 's/^#$//'; exit 0 ;;
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

mapfile -t doc_packages < <(python3 scripts/make_corpus.py --list-packages)
if [ "$update" = 1 ]; then
  echo "fetch-corpus: apt-get update ($suites) into $state/lists" >&2
  apt-get -q update --error-on=any >&2
  echo "fetch-corpus: downloading ${#doc_packages[@]} documentation packages of $docs_suite" >&2
  rm -f "$state/debs"/*.deb
  (cd "$state/debs" && apt-get -q download "${doc_packages[@]/%//$docs_suite}" >&2)
fi

lists=()
packages_lists=()
for suite in $suites; do
  found=("$state/lists/"*"_dists_${suite}_"*"_i18n_Translation-en"*)
  [ -e "${found[0]}" ] || { echo "fetch-corpus: no Translation-en list of $suite in $state/lists (run without --no-update)" >&2; exit 1; }
  lists+=("${found[@]}")
  found=("$state/lists/"*"_dists_${suite}_"*"_binary-amd64_Packages"*)
  [ -e "${found[0]}" ] || { echo "fetch-corpus: no binary-amd64 Packages list of $suite in $state/lists (run without --no-update)" >&2; exit 1; }
  packages_lists+=("${found[@]}")
done
rm -rf "$state/docs"
doc_dirs=()
for package in "${doc_packages[@]}"; do
  debs=("$state/debs/${package}_"*.deb)
  [ -e "${debs[0]}" ] || { echo "fetch-corpus: no $package package in $state/debs (run without --no-update)" >&2; exit 1; }
  dir="$state/docs/$(basename "${debs[0]}" .deb)"
  mkdir -p "$dir"
  dpkg-deb -x "${debs[0]}" "$dir"
  doc_dirs+=("$dir")
done

echo "fetch-corpus: building $out from ${#lists[@]} Translation-en lists, ${#packages_lists[@]} Packages lists and ${#doc_dirs[@]} documentation packages" >&2
python3 scripts/make_corpus.py --out "$out" --seed "$seed" \
  --descriptions "${lists[@]}" --packages-lists "${packages_lists[@]}" --docs "${doc_dirs[@]}"
