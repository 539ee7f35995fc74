# shellcheck shell=bash
# Helpers shared by scripts/backup and scripts/restore: where the stores of
# record are, read from the same environment variables as stoker itself.
# Source it after lib.sh; do not run it.
#
#   Postgres: DATABASE_URL (postgres://user:password@host:port/db?…, or
#             libpq's key=value form), else POSTGRES_HOST, POSTGRES_PORT,
#             POSTGRES_DB, POSTGRES_USER and DB_PASSWORD.
#   InfluxDB: INFLUX_URL, INFLUX_BUCKET (the 1.x database), INFLUX_TOKEN
#             (user:password for a 1.x server with auth), and INFLUX_RPC, the
#             backup/restore RPC address of influxd (bind-address in
#             influxdb.conf; default 127.0.0.1:8088).

# The schemas of record, each with its own migration history.
# shellcheck disable=SC2034  # used by the scripts that source this file
STOKER_SCHEMAS=(metadata ingestion analytics)

# A failing command inside $(…) fails the function that ran it.
shopt -s inherit_errexit

export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-5}"
export PGAPPNAME="stoker-$SCRIPT_NAME"

# ----------------------------------------------------------------- Postgres
PG_MODE=""        # url | conninfo | parts
PG_URL_PREFIX=""  # url: scheme://[user@]host[:port]
PG_URL_QUERY=""   # url: ?… or empty
PG_DB=""          # the database the settings name

url_decode() {
  local text="${1//+/ }"
  printf '%b' "${text//%/\\x}"
}

# pg_init: reads the settings; exports the password (never on a command line).
pg_init() {
  if [ -n "${DATABASE_URL:-}" ]; then
    local url="$DATABASE_URL"
    local re='^(postgres(ql)?://)(([^@/?]*)@)?([^/?]*)(/([^?]*))?(\?.*)?$'
    if [[ "$url" =~ $re ]]; then
      PG_MODE=url
      local scheme="${BASH_REMATCH[1]}" userinfo="${BASH_REMATCH[4]}"
      local hostport="${BASH_REMATCH[5]}" path="${BASH_REMATCH[7]}"
      PG_URL_QUERY="${BASH_REMATCH[8]}"
      local user="$userinfo"
      if [[ "$userinfo" == *:* ]]; then
        user="${userinfo%%:*}"
        PGPASSWORD="$(url_decode "${userinfo#*:}")"
        export PGPASSWORD
      fi
      PG_URL_PREFIX="$scheme${user:+$user@}${hostport:-127.0.0.1}"
      PG_DB="$(url_decode "$path")"
      [ -n "$PG_DB" ] || PG_DB="${user:-postgres}"
    elif [[ "$url" == *=* ]]; then
      PG_MODE=conninfo
      PG_DB="$(sed -nE "s/.*(^|[[:space:]])dbname[[:space:]]*=[[:space:]]*'?([^' ]+)'?.*/\\2/p" <<<"$url")"
      [ -n "$PG_DB" ] || die "DATABASE_URL names no database (dbname=…)"
    else
      die "DATABASE_URL is neither a postgres:// URL nor key=value settings"
    fi
  else
    PG_MODE=parts
    export PGHOST="${POSTGRES_HOST:-127.0.0.1}" PGPORT="${POSTGRES_PORT:-5432}"
    export PGUSER="${POSTGRES_USER:-postgres}"
    if [ -n "${DB_PASSWORD:-}" ]; then export PGPASSWORD="$DB_PASSWORD"; fi
    PG_DB="${POSTGRES_DB:-stoker}"
  fi
}

# pg_conn DB: what -d takes to reach database DB on the configured server.
pg_conn() {
  case "$PG_MODE" in
    url) printf '%s/%s%s' "$PG_URL_PREFIX" "$1" "$PG_URL_QUERY" ;;
    conninfo) printf "%s dbname='%s'" "$DATABASE_URL" "$1" ;;  # the last dbname wins
    parts) printf "dbname='%s'" "$1" ;;
  esac
}

# pg_describe DB: user@host:port/DB, without the password (for messages).
pg_describe() {
  case "$PG_MODE" in
    url) printf '%s/%s' "${PG_URL_PREFIX#*://}" "$1" ;;
    conninfo) printf 'DATABASE_URL (key=value) database %s' "$1" ;;
    parts) printf '%s@%s:%s/%s' "$PGUSER" "$PGHOST" "$PGPORT" "$1" ;;
  esac
}

# A database name this script accepts (it is quoted in SQL regardless).
valid_db_name() { [[ "$1" =~ ^[A-Za-z0-9_][A-Za-z0-9_$-]{0,62}$ ]]; }

# psql_at DB SQL: runs SQL, prints unaligned tuples (fields split by |).
psql_at() {
  psql -X -w -q -At -v ON_ERROR_STOP=1 -d "$(pg_conn "$1")" -c "$2"
}

# Exact row count of every table of the schemas of record, as
# "schema.table|rows", one line each. Postgres counts each table itself
# (query_to_xml), so it is one statement and can run in a snapshot.
# shellcheck disable=SC2034  # used by the scripts that source this file
PG_ROW_COUNTS_SQL="SELECT n.nspname || '.' || c.relname || '|' ||
  (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I',
     n.nspname, c.relname), false, true, '')))[1]::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('metadata', 'ingestion', 'analytics') AND c.relkind IN ('r', 'p')
ORDER BY 1;"

# need_pg_tools TOOL...: dies naming the package when one is missing.
need_pg_tools() {
  local tool
  for tool in "$@"; do
    have "$tool" || die "$tool not found: install the PostgreSQL client tools (Debian: apt-get install postgresql-client; its major version must be at least the server's)"
  done
}

# ----------------------------------------------------------------- InfluxDB
INFLUX_URL="${INFLUX_URL:-http://127.0.0.1:8086}"
INFLUX_URL="${INFLUX_URL%/}"
INFLUX_BUCKET="${INFLUX_BUCKET:-sensor_data}"
INFLUX_RPC="${INFLUX_RPC:-127.0.0.1:8088}"

# curl with INFLUX_TOKEN's credentials passed through a config on a file
# descriptor, never on the command line.
influx_curl() {
  local token="${INFLUX_TOKEN:-}"
  if [ -z "$token" ]; then
    curl "$@"
  elif [[ "$token" == *:* ]]; then
    curl -K <(printf 'user = "%s"\n' "${token//\"/\\\"}") "$@"
  else
    curl -K <(printf 'header = "Authorization: Token %s"\n' "${token//\"/\\\"}") "$@"
  fi
}

# influx_version: the server's version from /ping's X-Influxdb-Version.
influx_version() {
  local headers
  headers="$(curl -sS -m 5 -o /dev/null -D - "$INFLUX_URL/ping" 2>&1)" \
    || die "InfluxDB does not answer at $INFLUX_URL ($headers); set INFLUX_URL, or start it (scripts/dev-up)"
  printf '%s\n' "$headers" | tr -d '\r' \
    | awk -F': ' 'tolower($1)=="x-influxdb-version" {print $2}'
}

# need_influx_1x VERSION WHAT: dies unless VERSION is 1.x, saying what to
# use instead.
need_influx_1x() {
  case "${1#v}" in  # 2.x says v2.7.10
    1.*) ;;
    2.*) die "InfluxDB $1 at $INFLUX_URL is 2.x: this script speaks to 1.x's influxd only. Use the influx CLI with an operator token instead: 'influx $2 --host $INFLUX_URL --token …' (add --skip-influxdb here for the Postgres part)" ;;
    "") die "InfluxDB at $INFLUX_URL did not say its version (no X-Influxdb-Version header): is it InfluxDB?" ;;
    *) die "InfluxDB $1 at $INFLUX_URL is not 1.x: it has no influxd backup RPC. Back up its object store or data directory with the server's own tools (add --skip-influxdb here for the Postgres part)" ;;
  esac
}

# influx_csv QUERY: runs an InfluxQL query, prints CSV (name,tags,columns…).
influx_csv() {
  local out
  out="$(influx_curl -sS -m 60 -G -H 'Accept: application/csv' \
    --data-urlencode "q=$1" -w '\n%{http_code}' "$INFLUX_URL/query" 2>&1)" \
    || die "InfluxDB query failed at $INFLUX_URL: $out"
  local code="${out##*$'\n'}"
  [ "$code" = 200 ] || die "InfluxDB refused '$1' (HTTP $code): ${out%$'\n'*}"
  printf '%s\n' "${out%$'\n'*}" | tr -d '\r'
}

# influx_exec STATEMENT: runs a statement (POST), dies on an error.
influx_exec() {
  local out
  out="$(influx_curl -sS -m 600 -XPOST --data-urlencode "q=$1" \
    -w '\n%{http_code}' "$INFLUX_URL/query" 2>&1)" \
    || die "InfluxDB statement failed at $INFLUX_URL: $out"
  case "$out" in
    *'"error"'*|*$'\n'[45]??) die "InfluxDB refused '$1': ${out%$'\n'*}" ;;
  esac
}

# influx_db_exists DB
influx_db_exists() {
  influx_csv 'SHOW DATABASES' | awk -F, -v db="$1" 'NR>1 && $3==db {found=1} END {exit !found}'
}

# influx_ident NAME: NAME as a quoted InfluxQL identifier.
influx_ident() {
  local escaped="${1//\\/\\\\}"
  printf '"%s"' "${escaped//\"/\\\"}"
}

# influx_rps DB: "name duration shard_group_duration default" per policy.
influx_rps() {
  influx_csv "SHOW RETENTION POLICIES ON $(influx_ident "$1")" \
    | awk -F, 'NR>1 && $3!="" {print $3, $4, $5, $7}'
}

# influx_points DB: "rp.measurement points" for every measurement with
# points in every retention policy. A measurement's points are its largest
# field count (Stoker writes every field of a point together).
influx_points() {
  local db="$1" rp measurement count rps list
  local -a measurements
  rps="$(influx_rps "$db")"
  list="$(influx_csv "SHOW MEASUREMENTS ON $(influx_ident "$db")" | awk -F, 'NR>1 {print $3}')"
  mapfile -t measurements <<<"$list"
  while read -r rp _; do
    [ -n "$rp" ] || continue
    for measurement in "${measurements[@]}"; do
      [ -n "$measurement" ] || continue
      count="$(influx_csv "SELECT count(*) FROM $(influx_ident "$db").$(influx_ident "$rp").$(influx_ident "$measurement")" \
        | awk -F, 'NR>1 {for (i = 4; i <= NF; i++) if ($i + 0 > max) max = $i + 0} END {print max + 0}')"
      [ "$count" -eq 0 ] || printf '%s.%s %s\n' "$rp" "$measurement" "$count"
    done
  done <<<"$rps"
}

# need_influx_rpc: dies unless influxd's backup RPC accepts connections.
need_influx_rpc() {
  local host="${INFLUX_RPC%:*}" port="${INFLUX_RPC##*:}"
  tcp_open "$host" "$port" \
    || die "influxd's backup/restore RPC does not answer at $INFLUX_RPC: set INFLUX_RPC to its address (bind-address at the top of influxdb.conf; it listens on 127.0.0.1:8088 by default, so run this on the InfluxDB host)"
}

need_influxd() {
  have influxd || die "influxd not found: install InfluxDB 1.x's server package (Debian: apt-get install influxdb), whose influxd does backup and restore over the RPC"
}
