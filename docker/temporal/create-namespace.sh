#!/bin/sh
# Creates procure's namespace and registers the search attribute every order workflow upserts
# its state into (OrderState, Keyword; procure_workflows::ORDER_STATE_ATTRIBUTE). Run by the
# `temporal-namespace` service of docker/compose.yaml once the server answers; running it again
# changes nothing. The same two commands set up any self-hosted cluster (docs/production.md).
set -eu
: "${TEMPORAL_ADDRESS:?the frontend, host:port}" "${TEMPORAL_NAMESPACE:?the namespace}"
retention=${NAMESPACE_RETENTION:-30d}
wait_s=${WAIT_S:-180}
deadline=$(($(date +%s) + wait_s))

# Repeat a command until it succeeds, at most until the deadline.
retry() {
    until "$@"; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "gave up after ${wait_s} s: $*" >&2
            return 1
        fi
        sleep 2
    done
}

tctl() {
    temporal operator "$@" --address "$TEMPORAL_ADDRESS"
}

has_order_state() {
    tctl search-attribute list --namespace "$TEMPORAL_NAMESPACE" >/tmp/attributes &&
        grep -qw OrderState /tmp/attributes
}

retry tctl cluster health
if ! tctl namespace describe --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
    tctl namespace create --namespace "$TEMPORAL_NAMESPACE" --retention "$retention"
fi
# A namespace just created reaches every frontend's cache within seconds: until then the
# search-attribute calls answer "namespace not found".
retry tctl search-attribute list --namespace "$TEMPORAL_NAMESPACE" >/dev/null
if ! has_order_state; then
    retry tctl search-attribute create --namespace "$TEMPORAL_NAMESPACE" --name OrderState --type Keyword
fi
echo "namespace $TEMPORAL_NAMESPACE is ready (OrderState Keyword registered)"
