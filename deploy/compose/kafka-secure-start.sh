#!/bin/bash
# Entry point of the kafka service in docker-compose.secure.yml (apache/kafka image, runs as appuser).
# /secrets is the broker's part of the kafka-secrets volume (scripts/kafka/compose-secrets.mjs): server.properties,
# PEM key and trust stores, the cluster id, and the format arguments that create the SCRAM users. Storage is
# formatted once (SCRAM users at format time, KIP-900), then the broker runs in the foreground.
# KAFKA_HOME and SECRETS default to the image's paths; test/integration/docker-compose.test.ts points them elsewhere
# to boot this very script on the machine's Kafka jars.
set -euo pipefail
kafka=${KAFKA_HOME:-/opt/kafka}
secrets=${SECRETS:-/secrets}
props=$secrets/server.properties
data=$(sed -n 's/^log\.dirs=//p' "$props")
if [ ! -f "$data/meta.properties" ]; then
  mapfile -t scram < "$secrets/scram-format.args"
  "$kafka/bin/kafka-storage.sh" format --ignore-formatted -t "$(cat "$secrets/cluster-id")" -c "$props" "${scram[@]}" > /dev/null
  echo "kafka-secure-start: storage formatted with ${#scram[@]} SCRAM arguments"
fi
exec "$kafka/bin/kafka-server-start.sh" "$props"
