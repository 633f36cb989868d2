#!/bin/bash
# Starts the proof server (BRIDGE=wire|object), calls it with curl (Connect JSON, unary + enveloped server stream) and the connect-node client.
cd "$(dirname "$0")"
node dist/src/proof.js > proof.port & PID=$!
for i in $(seq 50); do [ -s proof.port ] && break; sleep 0.1; done
PORT=$(cat proof.port); U=http://127.0.0.1:$PORT/taskgate.v1.TaskService
echo "== BRIDGE=${BRIDGE:-wire} port $PORT"
echo "-- curl unary JSON"; curl -sS --http1.1 -H 'content-type: application/json' -d '{"id":"x"}' $U/GetTask | python3 -c 'import json,sys; d=json.load(sys.stdin); t=d["task"]; print({k:t[k] for k in ("id","created","started","finished","status","outputBytes","exitCode","findings","review")} , "| absent (zero) fields:", [k for k in ("outputDroppedBytes","signal","killRequested","exitCode") if k not in t])'
echo "-- curl unary JSON, not found"; curl -sS -w ' HTTP %{http_code}\n' -H 'content-type: application/json' -d '{"id":"nope"}' $U/GetTask
echo "-- curl server stream (application/connect+json, enveloped)"
python3 -c 'import struct,sys; b=b"{\"id\":\"x\",\"offset\":\"100\"}"; sys.stdout.buffer.write(b"\0"+struct.pack(">I",len(b))+b)' |
  curl -sS -H 'content-type: application/connect+json' --data-binary @- $U/GetTaskLogs |
  python3 -c '
import sys,struct,json
b=sys.stdin.buffer.read(); i=0
while i<len(b):
  f=b[i]; n=struct.unpack(">I",b[i+1:i+5])[0]; m=json.loads(b[i+5:i+5+n]); i+=5+n
  print(" flag",f, json.dumps(m)[:150])'
echo "-- connect-node client (binary + JSON)"; node dist/src/proof-client.js $PORT
kill $PID; rm -f proof.port
