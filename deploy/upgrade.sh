#!/usr/bin/env bash
# Upgrade a systemd install of streetlight (docs/operations.md, "Upgrade").
#
#   upgrade.sh [-c CONFIG] [-b BACKUP_DIR] PACKAGE [CONSTRAINTS]
#
# PACKAGE is what pip installs: a wheel, a source directory or a requirement such as
# streetlight==0.2.0; CONSTRAINTS is the release's constraints.txt (the pinned versions it was
# tested with). Steps, stopping at the first failure: stop the service, back up the database,
# install the new version into /opt/streetlight/venv, apply the migrations
# (streetlight db upgrade), start the service. If a step fails after the backup, restore with
# restore.sh and reinstall the previous version.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() { sed -n '2,12s/^# \{0,1\}//p' "$0"; }
config=${STREETLIGHT_CONFIG:-/etc/streetlight/streetlight.toml}
backups=/var/backups/streetlight
while getopts "c:b:h" opt; do
    case $opt in
        c) config=$OPTARG ;;
        b) backups=$OPTARG ;;
        h) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [[ $# -lt 1 || $# -gt 2 ]]; then
    usage >&2
    exit 2
fi
package=$1
constraints=()
if [[ $# -eq 2 ]]; then constraints=(-c "$2"); fi
venv=${STREETLIGHT_VENV:-/opt/streetlight/venv}
env_file=${STREETLIGHT_ENV_FILE:-/etc/streetlight/streetlight.env}

# The service's secrets (database and broker passwords), as systemd gives them to it.
if [[ -f $env_file ]]; then
    set -a
    # shellcheck disable=SC1090
    . "$env_file"
    set +a
fi

set -x
systemctl stop streetlight
STREETLIGHT_PYTHON="$venv/bin/python" "$here/backup.sh" -c "$config" "$backups"
"$venv/bin/pip" install --upgrade "${constraints[@]}" "$package"
"$venv/bin/pip" check
runuser -u streetlight -- "$venv/bin/streetlight" --config "$config" db upgrade
systemctl start streetlight
systemctl --no-pager status streetlight
