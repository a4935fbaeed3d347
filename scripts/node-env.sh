# Sourced by ./aperture and .ci/run: makes sure a Node >= 22.17 is first on PATH.
# When the system Node is older, fetches Node 24 LTS from the npm registry (package node-linux-<arch>),
# unpacks it once under ~/.cache/aperture and puts it first on PATH, the way a CI setup-node step would.
APERTURE_NODE_VERSION="${APERTURE_NODE_VERSION:-24.21.0}"

aperture_node_ok() {
  command -v node >/dev/null 2>&1 &&
    node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=17)?0:1)' 2>/dev/null
}

aperture_provision_node() {
  if aperture_node_ok; then return 0; fi
  local arch
  case "$(uname -m)" in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "aperture: no Node package for $(uname -m); install Node >= 22.17 yourself" >&2; return 1 ;;
  esac
  local dir="${APERTURE_CACHE:-$HOME/.cache/aperture}/node-$APERTURE_NODE_VERSION-$arch"
  if [ ! -x "$dir/bin/node" ]; then
    command -v npm >/dev/null 2>&1 || { echo "aperture: need npm (any version) to fetch Node $APERTURE_NODE_VERSION" >&2; return 1; }
    echo "aperture: system Node is $(node --version 2>/dev/null || echo missing); fetching Node $APERTURE_NODE_VERSION from the npm registry…" >&2
    local tmp
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "node-linux-$arch@$APERTURE_NODE_VERSION" >/dev/null) || { rm -rf "$tmp"; return 1; }
    mkdir -p "$dir.partial"
    tar xzf "$tmp"/node-linux-"$arch"-*.tgz -C "$dir.partial" --strip-components=1 && rm -rf "$dir" && mv "$dir.partial" "$dir"
    rm -rf "$tmp" "$dir.partial"
  fi
  export PATH="$dir/bin:$PATH"
  # node-gyp must find headers locally (no downloads): the package ships include/node.
  export npm_config_nodedir="$dir"
  aperture_node_ok
}

# Installs the locked dependencies when node_modules is missing or older than package-lock.json.
aperture_install() {
  local stamp=node_modules/.aperture-lock.sha256
  local want
  want="$(sha256sum package-lock.json | cut -d' ' -f1)"
  if [ "${1:-}" = "--force" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    npm ci --no-audit --no-fund
    echo "$want" >"$stamp"
  fi
}

# The browser tests drive Debian's Chromium through playwright-core (no browser download from the npm registry).
# Installs it when it is missing and this shell may use apt-get; otherwise says how, and those tests skip outside CI.
aperture_browser() {
  local bin="${CHROMIUM_PATH:-/usr/bin/chromium}"
  if [ -x "$bin" ]; then return 0; fi
  local sudo=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; }; then
    echo "aperture: installing Debian's chromium for the browser tests…" >&2
    $sudo apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 ||
      { $sudo apt-get update >/dev/null 2>&1 && $sudo apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; } ||
      echo "aperture: could not install chromium; the browser tests will skip (set CHROMIUM_PATH to a Chromium)" >&2
  else
    echo "aperture: no chromium at $bin; install it (apt-get install chromium) or set CHROMIUM_PATH; the browser tests skip without it" >&2
  fi
  return 0
}
