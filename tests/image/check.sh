#!/usr/bin/env bash
# Builds the two images of the Containerfile and runs them, without a registry or a daemon
# (buildah and podman as root; see BUILD-NOTES.md "Containers without a registry"):
#
#   1. a local runtime base (FROM scratch plus the shared libraries the binaries link and the
#      CA bundle), since no registry is reachable to pull the Containerfile's default base;
#   2. the `proxy` and `operator` targets with BINARIES=prebuilt: the binaries built on this
#      host. By default those are the debug binaries `cargo test --workspace` already built
#      (target/debug, refreshed with `cargo build --workspace --bins`, a no-op after the
#      tests), which keeps CI short; SWITCHYARD_BIN_DIR=target/release after
#      `cargo build --release --workspace --bins` checks the release binaries instead;
#   3. runs the proxy image with a read-only root (not even a /tmp) and examples/quickstart
#      mounted read-only, listening on 0.0.0.0 inside and published on 127.0.0.1, and sends
#      chat requests through it with the official OpenAI Python SDK (from .venv, see scripts/venv);
#      checks /metrics' switchyard_build_info, the OCI labels, the non-root user, and
#      `--version` of both images;
#   4. saves both images as OCI archives in target/images/ (with images.env naming the
#      references, which tests/k8s/chart-check.sh installs with), then removes the
#      containers and images (SWITCHYARD_KEEP_IMAGES=1 keeps the images).
#
# Needs root, and Debian's buildah, podman and runc (apt-get install buildah podman runc).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
log() { echo "[image-check] $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (buildah and podman without a daemon, as root)"
for tool in buildah podman runc; do
  command -v "$tool" >/dev/null || fail "$tool not found: apt-get install -y buildah podman runc"
done
python="${PYTHON:-$root/.venv/bin/python}"
"$python" -c 'import openai' 2>/dev/null || fail "no OpenAI SDK in $python: run scripts/venv"

version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
chart_version="$(sed -n 's/^appVersion: "\(.*\)"/\1/p' charts/switchyard/Chart.yaml)"
file_version="$(sed -n 's/^ARG VERSION=//p' Containerfile)"
[ "$version" = "$chart_version" ] && [ "$version" = "$file_version" ] ||
  fail "versions differ: Cargo.toml $version, Chart.yaml appVersion $chart_version, Containerfile VERSION $file_version"
# What build-info compiled into the binaries: $SWITCHYARD_REVISION, else the commit.
revision="${SWITCHYARD_REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
proxy_image="switchyard/proxy:$version"
operator_image="switchyard/operator:$version"
base_image="localhost/switchyard-check-base:latest"

if [ -z "${SWITCHYARD_BIN_DIR:-}" ]; then
  log "binaries: target/debug (cargo build --workspace --bins)"
  cargo build --workspace --bins --quiet
fi
bins="$(cd "${SWITCHYARD_BIN_DIR:-target/debug}" && pwd)"
for b in switchyard-proxy switchyard-operator; do
  [ -x "$bins/$b" ] || fail "no $bins/$b (cargo build --workspace)"
done

out="$root/target/images"
work="$(mktemp -d /tmp/switchyard-image-check-XXXXXX)"
containers=()
cleanup() {
  for c in ${containers[@]+"${containers[@]}"}; do podman rm -f "$c" >/dev/null 2>&1 || true; done
  # The intermediate `prebuilt` stages buildah leaves behind (untagged, newer than the base),
  # and the working containers it keeps on them for the `FROM ${BINARIES}` stage.
  local stages id
  stages="$(podman images -q --filter dangling=true --filter since="$base_image" 2>/dev/null || true)"
  for id in $stages; do
    buildah containers -q --filter ancestor="$id" 2>/dev/null | xargs -r buildah rm >/dev/null 2>&1 || true
  done
  if [ "${SWITCHYARD_KEEP_IMAGES:-0}" != 1 ]; then
    podman rmi -f "$proxy_image" "$operator_image" $stages "$base_image" >/dev/null 2>&1 || true
  elif [ -n "$stages" ]; then
    podman rmi -f $stages >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$out" "$work/base/etc/ssl/certs" "$work/context/bin"

started=$SECONDS
log "runtime base from the binaries' shared libraries and the CA bundle"
for b in switchyard-proxy switchyard-operator; do
  # The debug binaries carry debug info the image does not need.
  strip -o "$work/context/bin/$b" "$bins/$b"
  ldd "$bins/$b" | grep -o '/[^ ]*' | sort -u
done | sort -u | while read -r lib; do
  cp -L --parents "$lib" "$work/base/"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$work/base/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$work/base/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$work/base/etc/group"
tar -C "$work/base" -c . | podman import -q - "$base_image" >/dev/null
log "base: $(du -sh "$work/base" | cut -f1), $(find "$work/base" -name '*.so*' | wc -l) libraries"

for target in proxy operator; do
  image="switchyard/$target:$version"
  log "build $image (target $target)"
  buildah bud --isolation chroot --pull=never --quiet -f "$root/Containerfile" --target "$target" \
    --build-arg BINARIES=prebuilt --build-arg RUNTIME_IMAGE="$base_image" \
    --build-arg VERSION="$version" --build-arg REVISION="$revision" \
    -t "$image" "$work/context" >/dev/null
  user="$(podman image inspect --format '{{.Config.User}}' "$image")"
  label() { podman image inspect --format "{{ index .Labels \"org.opencontainers.image.$1\" }}" "$image"; }
  [ "$user" = "65532:65532" ] || fail "$image runs as '$user', not 65532:65532"
  [ "$(label version)" = "$version" ] || fail "$image label version is '$(label version)'"
  [ "$(label revision)" = "$revision" ] || fail "$image label revision is '$(label revision)'"
  [ "$(label title)" = "switchyard-$target" ] || fail "$image label title is '$(label title)'"
  log "ok: $image, user $user, labels version $version revision $revision"
done
log "images built in $((SECONDS - started)) s"

run=(podman run --runtime runc --ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
want_version="$version (revision $revision)"
for target in operator proxy; do
  got="$("${run[@]}" --rm --read-only "switchyard/$target:$version" --version)"
  [ "$got" = "switchyard-$target $want_version" ] || fail "switchyard/$target --version: '$got', want 'switchyard-$target $want_version'"
  log "ok: switchyard/$target:$version --version: $got"
done

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)" admin="$(free_port)"
name="switchyard-image-check-$$"
containers+=("$name")
"${run[@]}" -d --name "$name" --read-only --read-only-tmpfs=false \
  -v "$root/examples/quickstart:/etc/switchyard:ro" \
  -p "127.0.0.1:$port:8080" -p "127.0.0.1:$admin:9090" \
  "$proxy_image" --config /etc/switchyard >/dev/null
ready=0
for _ in $(seq 1 300); do
  if "$python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$admin/readyz', timeout=1)" 2>/dev/null; then
    ready=1; break
  fi
  [ "$(podman inspect --format '{{.State.Running}}' "$name")" = true ] || break
  sleep 0.1
done
[ "$ready" = 1 ] || { podman logs "$name" >&2 || true; fail "the proxy container never became ready"; }
log "ok: proxy container ready (read-only root without /tmp, quickstart mounted read-only, 127.0.0.1:$port -> 0.0.0.0:8080)"

NO_PROXY=127.0.0.1 no_proxy=127.0.0.1 "$python" - "http://127.0.0.1:$port/v1" "http://127.0.0.1:$admin/metrics" "$version" "$revision" <<'PY' || { podman logs "$name" >&2 || true; fail "requests through the proxy image"; }
import sys
import urllib.request

from openai import OpenAI

base_url, metrics_url, version, revision = sys.argv[1:]
client = OpenAI(base_url=base_url, api_key="sk-quickstart-demo", max_retries=0, timeout=30)
raw = client.chat.completions.with_raw_response.create(
    model="gpt-4o", messages=[{"role": "user", "content": "Hello from a container!"}]
)
reply = raw.parse()
assert raw.http_response.status_code == 200, raw.http_response.status_code
assert raw.headers.get("x-switchyard-route") == "summaries", dict(raw.headers)
assert reply.choices[0].message.content, reply
assert reply.usage.total_tokens > 0, reply.usage
print(f"[image-check] ok: chat through the image: route summaries, "
      f"{raw.headers.get('x-switchyard-provider')}/{reply.model}, {reply.usage.total_tokens} tokens", file=sys.stderr)
chunks = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
    model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "Count to five."}]) if c.choices]
assert "".join(chunks), chunks
print(f"[image-check] ok: streamed chat through the image: {len(chunks)} chunks", file=sys.stderr)
metrics = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
info = [line for line in metrics.splitlines() if line.startswith("switchyard_build_info{")]
assert len(info) == 1 and f'revision="{revision}"' in info[0] and f'version="{version}"' in info[0] \
    and info[0].endswith(" 1"), info
print(f"[image-check] ok: /metrics {info[0]}", file=sys.stderr)
PY

podman rm -f "$name" >/dev/null
log "save OCI archives"
rm -f "$out"/*.oci.tar
for image in "$proxy_image" "$operator_image"; do
  file="$out/$(echo "$image" | tr '/:' '--').oci.tar"
  podman save -q --format oci-archive -o "$file" "$image"
  log "ok: $file ($(du -h "$file" | cut -f1))"
done
cat >"$out/images.env" <<ENV
SWITCHYARD_PROXY_IMAGE=$proxy_image
SWITCHYARD_OPERATOR_IMAGE=$operator_image
ENV
log "all image checks passed in $((SECONDS - started)) s; references in $out/images.env"
