#!/usr/bin/env bash
# Back up streetlight's database (docs/operations.md, "Backup and restore").
#
#   backup.sh [-c CONFIG] [DEST_DIR]
#
# PostgreSQL: pg_dump custom format (-Fc: compressed, restorable table by table with
# pg_restore). SQLite: the online backup API (what sqlite3's .backup does), safe while the
# service runs. Writes DEST_DIR/streetlight-<UTC time>.{dump,db} (default DEST_DIR
# /var/backups/streetlight), mode 0600, and prints its path. CONFIG defaults to
# $STREETLIGHT_CONFIG, then /etc/streetlight/streetlight.toml when it exists.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/dbenv.sh
. "$here/dbenv.sh"

usage() { sed -n '2,11s/^# \{0,1\}//p' "$0"; }
config=${STREETLIGHT_CONFIG:-}
if [[ -z $config && -f /etc/streetlight/streetlight.toml ]]; then
    config=/etc/streetlight/streetlight.toml
fi
while getopts "c:h" opt; do
    case $opt in
        c) config=$OPTARG ;;
        h) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
dest=${1:-/var/backups/streetlight}

resolve_database "$config"
umask 077
mkdir -p "$dest"
stamp=$(date -u +%Y%m%dT%H%M%SZ)

case $DB_KIND in
    postgresql)
        out="$dest/streetlight-$stamp.dump"
        pg_dump --format=custom --compress=6 --file="$out.partial" "$PG_URI"
        ;;
    sqlite)
        out="$dest/streetlight-$stamp.db"
        "$STREETLIGHT_PYTHON" - "$SQLITE_PATH" "$out.partial" <<'PY'
import sqlite3
import sys

source, target = sys.argv[1], sys.argv[2]
src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
dst = sqlite3.connect(target)
with dst:
    src.backup(dst)
check = dst.execute("PRAGMA integrity_check").fetchone()[0]
dst.close()
src.close()
if check != "ok":
    sys.exit(f"integrity check of the backup failed: {check}")
PY
        ;;
esac
mv "$out.partial" "$out"
echo "$out"
