#!/usr/bin/env bash
# The main job, end to end, on the default registry file (or $QLLM_DB):
# register the example Query LLMs, import a week of usage by two users, then
# ask for statistics. Safe to run again: nothing is registered or counted twice.
set -euo pipefail
cd "$(dirname "$0")"

run() {
    printf '\n$ %s\n' "$*"
    "$@"
}
field() {  # field KEY: read one key of the JSON object on stdin
    python -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

echo "registry file: $(qllm where | field db)"

printf '\n$ qllm token create alice   (and bob; a token is printed once, then only its hash is kept)\n'
alice=$(qllm token create alice | field token)
bob=$(qllm token create bob | field token)

for body in query-llms/*.json; do
    printf '\n$ qllm register %s --token "$alice"\n' "$body"
    qllm register "$body" --token "$alice" | field name
done
name=$(qllm validate query-llms/claude-sonnet-select.json | field name)

# --- Query Models: two ensembles of the Query LLMs above (registered before the
# usage, whose events name them in query_model) -------------------------------
for body in query-models/*.json; do
    printf '\n$ qllm model register %s --token "$alice"\n' "$body"
    qllm model register "$body" --token "$alice" | field name
done
ensemble=$(qllm model validate query-models/learned-select.json | field name)
# --- end of Query Models ---------------------------------------------------------

printf '\n$ qllm usage import usage-alice.jsonl --token "$alice"\n'
qllm usage import usage-alice.jsonl --token "$alice" >/dev/null
printf '\n$ qllm usage import usage-bob.jsonl --token "$bob"\n'
qllm usage import usage-bob.jsonl --token "$bob" >/dev/null

run qllm get "$name" --metadata --from 2026-11-18 --to 2026-11-20T12:00:00Z
printf '\n$ qllm get %s --metadata --me --from 2026-11-18 --to 2026-11-20T12:00:00Z --token "$alice"\n' "$name"
qllm get "$name" --metadata --me --from 2026-11-18 --to 2026-11-20T12:00:00Z --token "$alice"
run qllm list --sort cost
run qllm list --sort requests --from 2026-11-20 --to 2026-11-21 --count 3
run qllm count
run qllm usage series --from 2026-11-16 --to 2026-11-23 --group-by user_id --format chart

# --- Query Models: an ensemble with its members, and its statistics ----------------
run qllm model get "$ensemble" --metadata --from 2026-11-18 --to 2026-11-20T12:00:00Z
printf '\n$ qllm model get %s --metadata --me --token "$bob"\n' "$ensemble"
qllm model get "$ensemble" --metadata --me --token "$bob"
run qllm model list --sort cost
run qllm model count
# --- end of Query Models ---------------------------------------------------------

# The same registry over HTTP: `qllm serve` in the background, a few calls with curl.
port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '\n$ qllm serve --port %s &\n' "$port"
qllm serve --port "$port" 2>serve.log &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.1; done
url="http://127.0.0.1:$port"
run curl -s "$url/query_llms/$name?metadata=true&from=2026-11-18&to=2026-11-20T12:00:00Z"
echo
printf '\n$ curl -s -H "Authorization: Bearer $alice" "%s/query_llms/count?me=true"\n' "$url"
curl -s -H "Authorization: Bearer $alice" "$url/query_llms/count?me=true"
echo
run curl -s -X POST "$url/usage" -H 'Content-Type: application/json' \
    -d "{\"name\": \"$name\", \"request_id\": \"demo-http-1\", \"chat_cost\": 0.0125}"
echo
run curl -s "$url/query_llms/abc"
echo
run curl -s "$url/query_models/$ensemble?metadata=true&from=2026-11-18&to=2026-11-20T12:00:00Z"
echo
run curl -s "$url/query_models/count"
echo
run curl -s "$url/usage?from=2026-11-18&to=2026-11-21&group_by=user_id&query_model=$ensemble"
echo
printf '\n$ curl -s "%s/?from=2026-11-16&to=2026-11-23" > dashboard.html   (or open %s/ in a browser)\n' "$url" "$url"
curl -s "$url/?from=2026-11-16&to=2026-11-23" | head -c 120
echo " ..."
kill -TERM "$server"
wait "$server"
trap - EXIT
printf '\nserver log (one line per request):\n'
cat serve.log
rm -f serve.log

# --- training tables: record each ensemble call, mark the right answer later, and the
# members' weights for the next prompt move away from their base weights --------------
run python training.py
# --- end of training tables ------------------------------------------------------

printf '\n$ qllm token revoke "$alice"; qllm token revoke "$bob"\n'
qllm token revoke "$alice" >/dev/null
qllm token revoke "$bob" >/dev/null
echo "done: the demo's tokens are revoked; the registry file keeps its Query LLMs and usage."
