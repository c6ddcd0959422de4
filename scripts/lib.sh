# Shared by scripts/quickstart, scripts/test and scripts/venv (sourced, not run): make sure
# what a fresh machine lacks is there. Everything here is idempotent and does nothing when the
# tools are already installed.

say() { echo "[switchyard] $*" >&2; }
die() { say "$*"; exit 1; }

# apt_install PKG...: Debian/Ubuntu packages, through sudo when not root.
apt_install() {
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "cannot install $*: not root and no sudo; as root run: apt-get install -y $*"
    sudo=(sudo)
  fi
  say "installing with apt-get: $*"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# ensure_tools COMMAND:DEBIAN_PACKAGE:HOMEBREW_FORMULA...: installs the Debian/Ubuntu packages
# of the commands that are not on the PATH; on macOS or without apt-get, says what to install
# and fails.
ensure_tools() {
  local spec cmd deb brew missing=() debs=() brews=()
  for spec in "$@"; do
    IFS=: read -r cmd deb brew <<<"$spec"
    command -v "$cmd" >/dev/null 2>&1 && continue
    missing+=("$cmd") debs+=("$deb") brews+=("$brew")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(uname -s)" = Darwin ]; then
    die "missing ${missing[*]}: install with \`brew install ${brews[*]}\` and run this again"
  fi
  command -v apt-get >/dev/null 2>&1 ||
    die "missing ${missing[*]}: install them with your package manager (Debian/Ubuntu: apt-get install ${debs[*]}) and run this again"
  apt_install "${debs[@]}"
  for cmd in "${missing[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd is still missing after installing ${debs[*]}"
  done
}
