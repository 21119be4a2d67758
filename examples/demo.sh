#!/usr/bin/env bash
# The main job, end to end, on a registry file of the demo's own (examples/demo.db, made
# anew on every run; your own registry is never touched): register the example Query LLMs
# and Query Models, import a week of usage by two users, ask who spent what, serve it
# over HTTP, and run the training-table loop. Needs only Python (and bash).
set -euo pipefail
cd "$(dirname "$0")"

export QLLM_DB="$PWD/demo.db"
unset QLLM_TOKEN
rm -f demo.db demo.db-wal demo.db-shm
work=$(mktemp -d)          # the server's log, gone at the end whatever happens
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

run() {
    printf '\n$ %s\n' "$*"
    "$@"
}
field() {  # field KEY: read one key of the JSON object on stdin
    python -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

echo "registry file: $(qllm where)   (the demo's own: QLLM_DB points at it)"

printf '\n$ qllm token create alice   (and bob; a token is printed once, then only its hash is kept)\n'
alice=$(qllm token create alice | field token)
bob=$(qllm token create bob | field token)

# A token goes in QLLM_TOKEN, never on a command line (which every user can read in ps).
printf '\n$ QLLM_TOKEN=$alice qllm register query-llms/*.json\n'
QLLM_TOKEN="$alice" qllm register query-llms/*.json | python -c '
import json, sys
for body in json.load(sys.stdin):
    print(body["name"], body["id"], body["mode"])'
name=$(qllm validate query-llms/claude-sonnet-select.json | field name)

# Query Models: two ensembles of the Query LLMs above (registered before the usage,
# whose events name them in query_model).
printf '\n$ QLLM_TOKEN=$alice qllm model register query-models/*.json\n'
QLLM_TOKEN="$alice" qllm model register query-models/*.json | python -c '
import json, sys
for body in json.load(sys.stdin):
    print(body["name"], " + ".join(m["id"] for m in body["models"]))'
ensemble=$(qllm model validate query-models/learned-select.json | field name)

printf '\n$ QLLM_TOKEN=$alice qllm usage import usage-alice.jsonl\n'
QLLM_TOKEN="$alice" qllm usage import usage-alice.jsonl
printf '\n$ QLLM_TOKEN=$bob qllm usage import usage-bob.jsonl\n'
QLLM_TOKEN="$bob" qllm usage import usage-bob.jsonl

# Who spent what: the week of 16 November 2026 is ISO week 47.
run qllm top --by cost --from 2026-W47 --to 2026-W48
run qllm top --models --from 2026-W47 --to 2026-W48
run qllm usage series --from 2026-W47 --to 2026-W48 --group-by user_id --format chart
run qllm get "$name" --metadata --from 2026-11-18 --to 2026-11-20T12:00:00Z
printf '\n$ QLLM_TOKEN=$alice qllm get %s --metadata --me --from 2026-11-18 --to 2026-11-20T12:00:00Z\n' "$name"
QLLM_TOKEN="$alice" qllm get "$name" --metadata --me --from 2026-11-18 --to 2026-11-20T12:00:00Z
run qllm list --sort requests --from 2026-11-20 --to 2026-11-21 --count 3 --format table
run qllm count
run qllm model get "$ensemble" --metadata --from 2026-11-18 --to 2026-11-20T12:00:00Z
run qllm model count

# The same registry over HTTP: `qllm serve` in the background, a few requests.
port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '\n$ qllm serve --port %s &\n' "$port"
qllm serve --port "$port" 2>"$work/serve.log" &
server=$!
url="http://127.0.0.1:$port"
until python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
    "$url/health" 2>/dev/null; do
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
    sleep 0.1
done
http() {
    printf '\n'
    python request.py "$@"
}
http GET "$url/query_llms/$name?metadata=true&from=2026-11-18&to=2026-11-20T12:00:00Z"
QLLM_TOKEN="$alice" http GET "$url/query_llms/count?me=true" --auth
http POST "$url/usage" "{\"name\": \"$name\", \"request_id\": \"demo-http-1\", \"chat_cost\": 0.0125}"
http GET "$url/query_llms/abc"
http GET "$url/query_models/count"
http GET "$url/usage?from=2026-11-18&to=2026-11-21&group_by=user_id&query_model=$ensemble"
http GET "$url/?from=2026-11-16&to=2026-11-23&group_by=user_id" --head 2
printf '\n(the dashboard: open %s/ in a browser while the server runs)\n' "$url"
kill -TERM "$server"
wait "$server"
server=""
printf '\nserver log (one line per request):\n'
cat "$work/serve.log"

# Training tables: record each ensemble call, mark the right answer later, and the
# members' weights for the next prompt move away from their base weights (on a
# temporary file of its own).
run python training.py

printf '\n$ qllm token revoke   (with QLLM_TOKEN set to each demo token)\n'
QLLM_TOKEN="$alice" qllm token revoke >/dev/null
QLLM_TOKEN="$bob" qllm token revoke >/dev/null
echo
echo "done. The demo's registry is $QLLM_DB; look around in it:"
echo "  export QLLM_DB=$QLLM_DB"
echo "  qllm top --from 2026-11 --format csv"
echo "  qllm usage series --from 2026-W47 --to 2026-W48 --group-by name --format table"
