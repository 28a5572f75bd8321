#!/bin/bash
# Builds a schema-2 database with the release before schema 3 (commit 0b3baf6).
set -euo pipefail
V="${OLD:-/work/target-old/debug/vigilo} --db $PWD/schema2.db"
cat > rotate.md <<'MD'
+++
title = "Rotate the TLS certificate"
category = "security"
published = true
+++

Rotate the wildcard certificate before it expires.

## 1. Announce the rotation
- role: operator
- est: 2

Post in #ops that the rotation starts.

## 2. Swap the certificate
- role: admin
- est: 10
- approval: required
- destructive: yes

Run `deploy-cert --bundle new.pem --all`.

## 3. Check the expiry
- est: 3

`curl -sI https://edge.example.com | grep -i expire`
MD
cat > restart.md <<'MD'
+++
title = "Restart the API"
published = true
+++

## 1. Drain
- role: dba
- est: 5
- approval: required

Drain traffic.

## 2. Restart
- est: 2

Restart it.
MD
$V init --workspace ops --owner olga --name "Olga Owner"
$V --as olga user add --role admin adam --name "Adam Admin"
$V --as olga user add --role operator otto --name "Otto Operator" --team-role dba
$V --as olga user add --role operator pia --team-role dba
$V --as olga runbook import rotate.md restart.md
# 1: walked to the end with an approval, notes and a skip.
$V --as otto exec start RB-00001
$V --as otto exec done EX-00001 --note "posted in #ops"
$V --as adam exec approve EX-00001
$V --as otto exec done EX-00001
$V --as otto exec skip EX-00001 --reason "checked by the monitor"
# 2: a failure, retries, an approval lost to the retry and given again, then aborted.
$V --as otto exec start RB-00001
$V --as otto exec done EX-00002
$V --as olga exec approve EX-00002
$V --as otto exec fail EX-00002 --note "bundle rejected"
$V --as otto exec retry EX-00002
$V --as otto exec fail EX-00002 --note "still rejected"
$V --as otto exec retry EX-00002
$V --as adam exec approve EX-00002
$V --as otto exec abort EX-00002 --reason "window closed"
# 3: team-role approval (dba), still running.
$V --as otto exec start RB-00002
$V --as pia exec approve EX-00003
# 4: an edit publishes version 2; a run of it stays open at step 1; a rehearsal of it too.
sed -i 's/- est: 3/- est: 4/' rotate.md
$V --as olga runbook import rotate.md --into RB-00001
$V --as pia exec start RB-00001
$V --as pia exec start RB-00002 --rehearsal || true
$V --as olga exec start RB-00002
$V --as olga exec abort EX-00006 --reason "wrong runbook"
$V audit verify
