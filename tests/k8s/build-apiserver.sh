#!/usr/bin/env bash
# Build kube-apiserver 1.20.2 from Debian bookworm's `kubernetes` source package, with
# bookworm's Go, and print the binary's path on stdout (the last and only stdout line).
#
# Idempotent: packages already installed are not reinstalled, the source is fetched and
# unpacked once, and the build is skipped when the binary already exists.
#
# Environment:
#   SWITCHYARD_K8S_CACHE   cache dir (default: $HOME/.cache/switchyard-k8s)
#   SWITCHYARD_K8S_REBUILD=1  rebuild even if the binary exists
#
# See tests/k8s/README.md and shared/design/BUILD-NOTES.md ("A real Kubernetes API server
# from Debian packages only") for the why of each step.
set -euo pipefail

CACHE="${SWITCHYARD_K8S_CACHE:-$HOME/.cache/switchyard-k8s}"
BIN="$CACHE/bin/kube-apiserver"
SUITE="${SWITCHYARD_K8S_SUITE:-bookworm}"

log() { echo "[build-apiserver $(date +%T)] $*" >&2; }

if [ -x "$BIN" ] && [ "${SWITCHYARD_K8S_REBUILD:-0}" != 1 ]; then
  log "already built: $BIN"
  echo "$BIN"
  exit 0
fi

# --- 1. system packages --------------------------------------------------------------------
# golang-go: the compiler (bookworm: 1.19); etcd-server: the store the test runs against;
# rsync + jq: used by `make gen_openapi`; openssl: the service-account key (start script);
# golang-github-modern-go-reflect2-dev: reflect2 1.0.2 to replace the vendored, broken 1.0.1;
# dpkg-dev: dpkg-source; make: the build.
pkgs=(golang-go etcd-server rsync jq openssl golang-github-modern-go-reflect2-dev dpkg-dev make
      ca-certificates)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >&2
fi

# --- 2. source, through a private deb-src list (the system's lists stay untouched) ---------
mkdir -p "$CACHE/apt/lists/partial" "$CACHE/apt/archives/partial" "$CACHE/src" "$CACHE/bin"
SRCLIST="$CACHE/apt/sources.list"
MIRROR="${SWITCHYARD_K8S_MIRROR:-http://deb.debian.org/debian}"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main" \
  >"$SRCLIST"
APT_OPTS=(
  -o "Dir::Etc::SourceList=$SRCLIST"
  -o "Dir::Etc::SourceParts=/nonexistent"
  -o "Dir::State::Lists=$CACHE/apt/lists"
  -o "Dir::Cache::Archives=$CACHE/apt/archives"
  -o "APT::Get::List-Cleanup=0"
)

TREE="$(find "$CACHE/src" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)"
if [ -z "$TREE" ] || [ ! -f "$TREE/.switchyard-unpacked" ]; then
  [ -n "$TREE" ] && rm -rf "$TREE"
  log "fetching the kubernetes source package ($SUITE)"
  apt-get "${APT_OPTS[@]}" update -qq >&2
  (cd "$CACHE/src" && rm -f kubernetes_*.dsc kubernetes_*.tar.* &&
    apt-get "${APT_OPTS[@]}" source --download-only kubernetes >&2)
  dsc="$(ls "$CACHE"/src/kubernetes_*.dsc | head -n1)"
  log "unpacking $(basename "$dsc")"
  (cd "$CACHE/src" && dpkg-source --no-check -x "$dsc" >&2)
  TREE="$(find "$CACHE/src" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)"
  touch "$TREE/.switchyard-unpacked"
fi
log "source tree: $TREE"

# --- 3. replace vendored reflect2 1.0.1 (segfaults on Go >= 1.18) with Debian's 1.0.2 -------
R2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2
R2_DST="$TREE/vendor/github.com/modern-go/reflect2"
if [ ! -f "$R2_DST/.switchyard-debian-reflect2" ]; then
  log "replacing vendored reflect2 with $(dpkg-query -W -f='${Version}' golang-github-modern-go-reflect2-dev)"
  rm -f "$R2_DST"/*.go "$R2_DST"/*.s
  cp "$R2_SRC"/*.go "$R2_DST"/
  cp "$R2_SRC"/*.s "$R2_DST"/ 2>/dev/null || true
  rm -f "$R2_DST"/*_test.go
  touch "$R2_DST/.switchyard-debian-reflect2"
fi

# --- 4. GOPATH-mode build, as upstream 1.20 did ---------------------------------------------
GOPATH_DIR="$CACHE/gopath"
mkdir -p "$GOPATH_DIR/src/k8s.io"
ln -sfn "$TREE" "$GOPATH_DIR/src/k8s.io/kubernetes"
export GOPATH="$GOPATH_DIR" GO111MODULE=off CGO_ENABLED=0 GOFLAGS="" GOCACHE="$CACHE/gocache"
export KUBE_VERBOSE=1 KUBE_BUILD_PLATFORMS="linux/$(go env GOARCH)"
cd "$GOPATH_DIR/src/k8s.io/kubernetes"
log "go: $(go version)"

start=$(date +%s)
if [ ! -f pkg/generated/openapi/zz_generated.openapi.go ]; then
  log "make gen_openapi"
  make gen_openapi >&2
fi
log "building cmd/kube-apiserver (this takes minutes)"
V=k8s.io/kubernetes/vendor/k8s.io
go build -o "$BIN.tmp" \
  -ldflags "-s -w \
    -X $V/component-base/version.gitVersion=v1.20.2 \
    -X $V/component-base/version.gitMajor=1 \
    -X $V/component-base/version.gitMinor=20 \
    -X $V/component-base/version.gitTreeState=clean \
    -X $V/client-go/pkg/version.gitVersion=v1.20.2 \
    -X $V/client-go/pkg/version.gitMajor=1 \
    -X $V/client-go/pkg/version.gitMinor=20" \
  ./cmd/kube-apiserver >&2
mv "$BIN.tmp" "$BIN"
log "built in $(($(date +%s) - start)) s: $BIN"
echo "$BIN"
