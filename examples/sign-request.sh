#!/bin/sh
# Sign a homelab-cmd request with openssl and publish it (docs/security.md).
#   sign-request.sh KEY_FILE HOST ACTION ID PARAMS_JSON [mosquitto_pub options…]
# PARAMS_JSON must already be canonical: keys sorted, no spaces, e.g. {"unit":"nginx"}.
set -eu
key_file=$1 host=$2 action=$3 id=$4 params=$5
shift 5
key=$(cat "$key_file")
ts=$(($(date +%s) * 1000))
sig=$(printf 'homelab-cmd/v1\n%s\n%s\n%s\n%s\n%s' "$host" "$action" "$id" "$ts" "$params" |
  openssl dgst -sha256 -hmac "$key" -r | cut -d' ' -f1)
payload=$(printf '{"id":"%s","params":%s,"ts":%s,"sig":"%s"}' "$id" "$params" "$ts" "$sig")
if [ "${PRINT_ONLY:-}" = 1 ]; then
  printf '%s\n' "$payload"
else
  mosquitto_pub -q 1 -t "homelab/$host/cmd/$action" -m "$payload" "$@"
fi
