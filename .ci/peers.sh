#!/usr/bin/env bash
# Installs what herd's third-party test servers need (tests/peers/README.md): nginx with the
# nchan module, Action Cable under puma (Debian packages), PyPI websockets, and npm ws. Idempotent: when everything is
# there it only checks, without touching the network. Run as root (as on CI); .ci/run calls it
# before the tests.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
peers="$root/tests/peers"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

apt=()
# Debian's nginx-light, or the full nginx, with the nchan module.
installed nginx-light || installed nginx || apt+=(nginx-light)
installed libnginx-mod-nchan || apt+=(libnginx-mod-nchan)
# A real Action Cable server (tests/peers/cable/config.ru).
installed ruby-actioncable || apt+=(ruby-actioncable)
installed puma || apt+=(puma)
# Node and Python may come from elsewhere (nvm, pyenv): only installed when absent.
command -v node >/dev/null || apt+=(nodejs)
command -v npm >/dev/null || apt+=(npm)
command -v python3 >/dev/null || apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || apt+=(python3-pip)
if [ "${#apt[@]}" -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${apt[@]}"
fi

want_websockets="$(sed -n 's/^websockets==//p' "$peers/requirements.txt")"
if [ "$(python3 -c 'import websockets; print(websockets.__version__)' 2>/dev/null)" != "$want_websockets" ]; then
    # Debian's own Python refuses pip installs into the system (PEP 668) unless told otherwise.
    python3 -m pip install -r "$peers/requirements.txt" ||
        python3 -m pip install --break-system-packages -r "$peers/requirements.txt"
fi

ws_locked() { node -p "require('$peers/package-lock.json').packages['node_modules/ws'].version"; }
ws_installed() { node -p "require('$peers/node_modules/ws/package.json').version" 2>/dev/null || true; }
sio_locked() { node -p "require('$peers/package-lock.json').packages['node_modules/socket.io'].version"; }
sio_installed() { node -p "require('$peers/node_modules/socket.io/package.json').version" 2>/dev/null || true; }
if [ "$(ws_installed)" != "$(ws_locked)" ] || [ "$(sio_installed)" != "$(sio_locked)" ]; then
    npm ci --prefix "$peers" --no-audit --no-fund
fi

echo "peers.sh: $(nginx -v 2>&1), nchan module $(test -e /usr/lib/nginx/modules/ngx_nchan_module.so && echo present)," \
    "python websockets $(python3 -c 'import websockets; print(websockets.__version__)'), node $(node --version), npm ws $(ws_installed), npm socket.io $(sio_installed)"
