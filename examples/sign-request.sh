#!/bin/sh
# Sign a homelab-cmd request (canonical form homelab-cmd/v2, docs/security.md) with openssl and
# publish it, valid for TTL seconds (default 60; MQTT 5 message expiry of the same length).
#   sign-request.sh KEY_FILE HOST ACTION ID PARAMS_JSON [mosquitto_pub options…]
# PARAMS_JSON must already be canonical: keys sorted, no spaces, e.g. {"unit":"nginx"}.
set -eu
key_file=$1 host=$2 action=$3 id=$4 params=$5
shift 5
ttl=${TTL:-60}
# Pasted into JSON as they are: only the characters the agent accepts in these fields.
for v in "$host" "$action" "$id" "$ttl"; do
  case $v in '' | *[!A-Za-z0-9._:-]*) echo "sign-request.sh: \"$v\" has a character a host, action, id or ttl cannot have" >&2; exit 2 ;; esac
done
key=$(cat "$key_file")
ts=$(($(date +%s) * 1000))
# Every field, keys sorted, absent ones null: no timeout, transaction, cancel or response topic here.
canonical=$(printf '{"action":"%s","cancel":null,"command":null,"correlation_data":null,"host":"%s","id":"%s","params":%s,"press":false,"response_topic":null,"timeout":null,"transaction":null,"ts":%s,"ttl":%s}' \
  "$action" "$host" "$id" "$params" "$ts" "$ttl")
sig=$(printf 'homelab-cmd/v2\n%s' "$canonical" | openssl dgst -sha256 -hmac "$key" -r | cut -d' ' -f1)
payload=$(printf '{"id":"%s","params":%s,"ts":%s,"ttl":%s,"sig":"%s"}' "$id" "$params" "$ts" "$ttl" "$sig")
if [ "${PRINT_ONLY:-}" = 1 ]; then
  printf '%s\n' "$payload"
else
  mosquitto_pub -V mqttv5 -D publish message-expiry-interval "$ttl" -q 1 \
    -t "homelab/$host/cmd/$action" -m "$payload" "$@"
fi
