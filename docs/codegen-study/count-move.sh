#!/bin/bash
# Counts lines in the repository (REPO, default ../..) (server agent cli test bench shared; not gen/) that use ts-proto-specific shapes.
cd "${REPO:-../..}"
D="server agent cli test bench shared"
FILES=$(grep -rlE "from ['\"](\.\./)+gen/" $D --include=*.ts)
declare -A PAT
PAT[imports]="from ['\"](\.\./)+gen/"
PAT[oneof_case]='\$case'
PAT[fromPartial_create_json]='\b[A-Z][A-Za-z_]*\.(fromPartial|create|fromJSON|toJSON)\('
PAT[encode_decode]='\b[A-Z][A-Za-z_]*\.(encode|decode)\('
PAT[grpc_service_client]='\b[A-Z][A-Za-z]*Service(Client|Service|Server)\b|handle(Unary|ServerStreaming|BidiStreaming|ClientStreaming)Call|Server(Unary|Writable|Duplex|Readable)Stream|ServerUnaryCall|ClientReadableStream|ClientDuplexStream'
PAT[timestamp_fields]='\b(created|updated|started|finished|killRequested|lastSeen|since|until|revoked)\b|\.time\b|\btime:'
PAT[int64_fields]='\b(outputBytes|outputDroppedBytes|findings|offset|seq|chunks|totalBytes|droppedBytes|maxOutputBytes|timeoutMs)\b'
for k in imports oneof_case fromPartial_create_json encode_decode grpc_service_client timestamp_fields int64_fields; do
  n=$(grep -hE "${PAT[$k]}" $FILES | wc -l); f=$(grep -lE "${PAT[$k]}" $FILES | wc -l)
  printf "%-24s %5d lines %3d files\n" $k $n $f
done
ALL=$(IFS='|'; echo "${PAT[*]}")
n=$(grep -hE "$ALL" $FILES | wc -l); f=$(grep -lE "$ALL" $FILES | wc -l)
printf "%-24s %5d lines %3d files (of %d files importing gen/, %d lines in them)\n" UNION $n $f $(echo $FILES | wc -w) $(cat $FILES | wc -l)
ALL2=$(for k in imports oneof_case fromPartial_create_json encode_decode grpc_service_client; do printf '%s|' "${PAT[$k]}"; done); ALL2=${ALL2%|}
n=$(grep -hE "$ALL2" $FILES | wc -l); f=$(grep -lE "$ALL2" $FILES | wc -l)
printf "%-24s %5d lines %3d files\n" "UNION-sure(no fields)" $n $f
echo "-- per dir (union lines)"
for d in server server/services server/store agent cli test/unit test/integration test/helpers bench; do
  fs=$(echo "$FILES" | grep "^$d/[^/]*$"); [ -z "$fs" ] && continue
  printf "  %-18s %5d lines %3d files\n" $d $(grep -hE "$ALL" $fs | wc -l) $(echo "$fs" | wc -l)
done
