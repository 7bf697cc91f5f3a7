#!/usr/bin/env bash
# Start (installing if needed) Debian's PostgreSQL on 127.0.0.1:5432 with
# trust auth for local connections, for the test suite's PostgreSQL pass.
set -euo pipefail
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
if ! command -v pg_ctlcluster >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /etc/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | grep -q "online"; then
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || \
    $SUDO pg_ctlcluster "$version" main start
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 1
done
if ! psql -h 127.0.0.1 -U postgres -c "select 1" postgres >/dev/null 2>&1; then
  # Fresh cluster: allow the test role over loopback without a password.
  hba=$(ls /etc/postgresql/"$version"/main/pg_hba.conf)
  $SUDO sed -i 's/^\(host\s\+all\s\+all\s\+127.0.0.1\/32\s\+\)\S\+/\1trust/' "$hba"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
fi
pg_isready -h 127.0.0.1 -p 5432
