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
# Changes whenever the patches below change, so an old binary is rebuilt.
BUILD_ID="v1.20.2 reflect2-debian openapi-zero-value-fix"
SUITE="${SWITCHYARD_K8S_SUITE:-bookworm}"

log() { echo "[build-apiserver $(date +%T)] $*" >&2; }

if [ -x "$BIN" ] && [ "$(cat "$BIN.build-id" 2>/dev/null)" = "$BUILD_ID" ] &&
  [ "${SWITCHYARD_K8S_REBUILD:-0}" != 1 ]; then
  log "already built: $BIN"
  echo "$BIN"
  exit 0
fi

# --- 1. system packages --------------------------------------------------------------------
# golang-go: the compiler (bookworm: 1.19); etcd-server: the store the test runs against;
# rsync + jq: used by `make gen_openapi`; openssl: the service-account key (start script);
# golang-github-modern-go-reflect2-dev: reflect2 1.0.2 to replace the vendored, broken 1.0.1;
# dpkg-dev: dpkg-source; make: the build; curl + python3: start-apiserver.sh.
pkgs=(golang-go etcd-server rsync jq openssl golang-github-modern-go-reflect2-dev dpkg-dev make
      ca-certificates curl python3)
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
# The Debian mirror this machine's apt already uses (deb822 or one-line format).
system_mirror() {
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources
  elif [ -f /etc/apt/sources.list ]; then
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
      /etc/apt/sources.list
  fi
}
MIRROR="${SWITCHYARD_K8S_MIRROR:-$(system_mirror)}"
[ -n "$MIRROR" ] || { log "no Debian mirror found in apt's sources; set SWITCHYARD_K8S_MIRROR"; exit 1; }
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

# --- 4. the zero-value check of the vendored OpenAPI validators (kubernetes#99804) ----------
# `reflect.DeepEqual(reflect.Zero(T), reflect.ValueOf(data))` compares reflect.Value internals;
# it never matched before Go 1.16, and since then matches "" (and other zero values), so a
# server built with Go >= 1.16 rejects every empty string in a custom resource, and every
# `default: ""` in a CRD, with `in body must be of type string: "null"`. Upstream 1.21 took
# kube-openapi#230, which drops the check (`data == nil` only); do the same here.
for f in "$TREE/vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go" \
         "$TREE/vendor/github.com/go-openapi/validate/type.go"; do
  if grep -q 'reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data))' "$f"; then
    log "patching the zero-value check in ${f#"$TREE"/}"
    sed -i 's/if data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {/if data == nil {/' "$f"
    grep -q 'if data == nil {' "$f" || { log "patch failed: $f"; exit 1; }
  fi
done

# --- 5. GOPATH-mode build, as upstream 1.20 did ---------------------------------------------
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
echo "$BUILD_ID" >"$BIN.build-id"
log "built in $(($(date +%s) - start)) s: $BIN"
echo "$BIN"
