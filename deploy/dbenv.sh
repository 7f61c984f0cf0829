# shellcheck shell=bash
# Sourced by backup.sh, restore.sh and upgrade.sh: resolve the database from streetlight's own
# settings (environment, then the TOML file in $CONFIG), exactly as `streetlight serve` does.
#
# Sets DB_KIND (postgresql or sqlite), and PG_URI (a libpq URI without the password; the
# password, if the URL has one, goes to PGPASSWORD, which pg_dump/pg_restore read and `ps`
# does not show) or SQLITE_PATH.

STREETLIGHT_PYTHON=${STREETLIGHT_PYTHON:-/opt/streetlight/venv/bin/python}

resolve_database() {
    local config=${1:-} assignments
    if [[ ! -x $STREETLIGHT_PYTHON ]]; then
        echo "error: $STREETLIGHT_PYTHON not found (set STREETLIGHT_PYTHON to the venv's python)" >&2
        return 1
    fi
    assignments=$("$STREETLIGHT_PYTHON" - "$config" <<'PY'
import shlex
import sys
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from controller.config.settings import load_settings

config = Path(sys.argv[1]) if sys.argv[1] else None
url = make_url(load_settings(config).database_url)
out = {}
if url.get_backend_name() == "sqlite":
    out["DB_KIND"] = "sqlite"
    out["SQLITE_PATH"] = str(Path(url.database or "").resolve())
else:
    out["DB_KIND"] = "postgresql"
    query = {k: (v if isinstance(v, str) else v[-1]) for k, v in url.query.items()}
    params = {}
    if "ssl" in query:  # asyncpg's ssl= modes are libpq's sslmode= values
        params["sslmode"] = query.pop("ssl")
    if "host" in query:  # a Unix socket directory
        params["host"] = query.pop("host")
    # URL.set(password=None) keeps the password: build the URL anew without it
    libpq = URL.create(
        "postgresql", url.username, None, url.host, url.port, url.database, params
    )
    out["PG_URI"] = libpq.render_as_string(hide_password=False)
    if url.password is not None:
        out["PGPASSWORD"] = url.password
for name, value in out.items():
    print(f"{name}={shlex.quote(value)}")
PY
    ) || return 1
    eval "$assignments"
    if [[ -n ${PGPASSWORD:-} ]]; then export PGPASSWORD; fi
}
