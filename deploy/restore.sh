#!/usr/bin/env bash
# Restore streetlight's database from a backup made by backup.sh (docs/operations.md).
#
#   restore.sh [-c CONFIG] [-f] BACKUP_FILE
#
# Stop the service first (systemctl stop streetlight, or docker compose stop controller):
# the script refuses while the systemd unit is active, unless -f. PostgreSQL: pg_restore
# --clean --if-exists into the configured database, in one transaction (all or nothing).
# SQLite: the current file is kept as <file>.before-restore-<UTC time>, then replaced.
# Afterwards run `streetlight db upgrade` (a backup from an older version is migrated),
# then start the service.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/dbenv.sh
. "$here/dbenv.sh"

usage() { sed -n '2,12s/^# \{0,1\}//p' "$0"; }
config=${STREETLIGHT_CONFIG:-}
if [[ -z $config && -f /etc/streetlight/streetlight.toml ]]; then
    config=/etc/streetlight/streetlight.toml
fi
force=0
while getopts "c:fh" opt; do
    case $opt in
        c) config=$OPTARG ;;
        f) force=1 ;;
        h) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [[ $# -ne 1 || ! -f $1 ]]; then
    usage >&2
    exit 2
fi
backup=$1

if [[ $force -eq 0 ]] && command -v systemctl >/dev/null \
    && systemctl is-active --quiet streetlight 2>/dev/null; then
    echo "error: streetlight.service is running; stop it first (or -f)" >&2
    exit 1
fi

resolve_database "$config"
case $DB_KIND in
    postgresql)
        pg_restore --clean --if-exists --no-owner --no-privileges --single-transaction \
            --exit-on-error --dbname="$PG_URI" "$backup"
        ;;
    sqlite)
        stamp=$(date -u +%Y%m%dT%H%M%SZ)
        "$STREETLIGHT_PYTHON" - "$backup" <<'PY'
import sqlite3
import sys

with sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True) as db:
    check = db.execute("PRAGMA integrity_check").fetchone()[0]
if check != "ok":
    sys.exit(f"{sys.argv[1]} is not a sound SQLite database: {check}")
PY
        owner=""
        if [[ -f $SQLITE_PATH ]]; then
            owner=$(stat -c %u:%g "$SQLITE_PATH")
            mv "$SQLITE_PATH" "$SQLITE_PATH.before-restore-$stamp"
            echo "previous database kept as $SQLITE_PATH.before-restore-$stamp"
        fi
        rm -f "$SQLITE_PATH-wal" "$SQLITE_PATH-shm"
        mkdir -p "$(dirname "$SQLITE_PATH")"
        install -m 0600 "$backup" "$SQLITE_PATH"
        # Run as root, keep the file the service's (its user must be able to write it).
        if [[ -n $owner && $(id -u) -eq 0 ]]; then chown "$owner" "$SQLITE_PATH"; fi
        ;;
esac
echo "restored $backup; now run: streetlight db upgrade, then start the service"
