# shellcheck shell=bash
# The read-only account Rechecker's backend reads the inventory with. Run once by the
# MariaDB/MySQL image at first start, after 01-inventory.sql, from the environment:
#
#   INVENTORY_READER_USER      account name (default rechecker_reader)
#   INVENTORY_READER_PASSWORD  its password (required)
#   INVENTORY_DATABASE         database of the inventory table (default `database`)
#   INVENTORY_TABLE            the inventory table (default sites)
#
# The account gets SELECT on that one table and nothing else (docs/databases.md).
#
# This file is deliberately not executable: the image's entrypoint then sources it, so it can
# use the entrypoint's docker_process_sql, which knows the socket and the root password. Being
# sourced, it defines one function, calls it, and never calls `exit`.

rechecker_create_inventory_reader() {
    local user="${INVENTORY_READER_USER:-rechecker_reader}"
    local password="${INVENTORY_READER_PASSWORD:-}"
    local database="${INVENTORY_DATABASE:-database}"
    local table="${INVENTORY_TABLE:-sites}"
    local name
    if [[ -z "$password" ]]; then
        echo "02-inventory-reader.sh: INVENTORY_READER_PASSWORD is not set" >&2
        return 1
    fi
    # Names are spliced into SQL: plain identifiers only.
    for name in "$user" "$database" "$table"; do
        if [[ ! "$name" =~ ^[A-Za-z0-9_]{1,64}$ ]]; then
            echo "02-inventory-reader.sh: not a plain identifier: '$name'" >&2
            return 1
        fi
    done
    # The password goes into a SQL string literal: escape backslashes, quotes and newlines.
    local newline=$'\n'
    local escaped="${password//\\/\\\\}"
    escaped="${escaped//\'/\\\'}"
    escaped="${escaped//$newline/\\n}"
    echo "02-inventory-reader.sh: read-only account '$user' on \`$database\`.\`$table\`"
    docker_process_sql --database=mysql <<EOSQL
CREATE USER IF NOT EXISTS '${user}'@'%' IDENTIFIED BY '${escaped}';
ALTER USER '${user}'@'%' IDENTIFIED BY '${escaped}';
GRANT SELECT ON \`${database}\`.\`${table}\` TO '${user}'@'%';
EOSQL
}

rechecker_create_inventory_reader
