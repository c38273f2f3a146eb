#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 with a database `test` that the user
# `postgres` reaches without a password (trust auth for local TCP), as the store's tests expect
# (WARDEN_TEST_POSTGRES, default postgres://postgres@127.0.0.1:5432/test). Installs Debian's
# `postgresql` package when no server is installed, starts the cluster when it is down, creates
# the database and allows trust auth from 127.0.0.1 when they are missing. Idempotent.
set -euo pipefail

say() { printf 'install-postgres: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

URL="${WARDEN_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
reachable() { psql "$URL" -Atqc 'select 1' >/dev/null 2>&1; }

if reachable; then
  say "PostgreSQL answers at $URL"
  exit 0
fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  say "installing PostgreSQL (Debian package postgresql)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)"
[ -n "$version" ] || die "no PostgreSQL cluster under /etc/postgresql"
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  say "starting cluster $version/main"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 -q || die "PostgreSQL does not answer on 127.0.0.1:5432"

hba="/etc/postgresql/$version/main/pg_hba.conf"
if ! reachable && [ -f "$hba" ] && ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
  say "allowing trust auth from 127.0.0.1 ($hba)"
  as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  sleep 1
fi
db="${URL##*/}"
db="${db%%\?*}"
if ! reachable; then
  say "creating database $db"
  as_root runuser -u postgres -- createdb "$db" 2>/dev/null || true
fi
reachable || die "cannot connect to $URL"
say "PostgreSQL answers at $URL"
