#!/usr/bin/env bash
# Builds the seed corpora in fuzz/seeds/<target>/ from fixtures/ (openssl CLI only). The
# seeds are committed; rerun after `fixtures/gen.sh`. Random parts (keys, IVs) make every
# run's files differ, which is fine for seeds.
set -euo pipefail
cd "$(dirname "$0")"
FIX=../fixtures
S=seeds
rm -rf "$S"
mkdir -p "$S"/{mime_open,cms,ber,certificate,smtp,admin_api}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Whole messages: every fixture, plus the forms gen.sh does not write (AES-GCM
# AuthEnvelopedData, BER from -stream, RSA-OAEP, opaque signed inside encrypted).
cp "$FIX"/messages/*.eml "$S/mime_open/"
printf 'Content-Type: text/plain\r\n\r\nhello\r\n' > "$work/body.mime"
openssl cms -encrypt -aes-256-gcm -in "$work/body.mime" "$FIX/proxy/user.pem" > "$S/mime_open/gcm.eml"
openssl cms -encrypt -aes128 -stream -in "$work/body.mime" "$FIX/proxy/user.pem" > "$S/mime_open/stream.eml"
openssl cms -encrypt -aes256 -recip "$FIX/proxy/user.pem" -keyopt rsa_padding_mode:oaep \
    -in "$work/body.mime" > "$S/mime_open/oaep.eml"
openssl cms -sign -nodetach -stream -in "$work/body.mime" -signer "$FIX/partner/alice.pem" \
    -inkey "$FIX/partner/alice.key" -certfile "$FIX/ca/partner-intermediate.pem" > "$work/opaque.eml"
openssl cms -encrypt -aes-128-gcm -in "$work/opaque.eml" "$FIX/proxy/user.pem" > "$S/mime_open/opaque-in-gcm.eml"
openssl cms -sign -in "$work/body.mime" -signer "$FIX/partner/carol-pss.pem" \
    -inkey "$FIX/partner/carol-pss.key" -keyopt rsa_padding_mode:pss > "$S/mime_open/pss-detached.eml"

# Raw CMS (DER and BER) for the CMS parser and the BER normaliser.
for m in "$S"/mime_open/*.eml; do
    name=$(basename "$m" .eml)
    if openssl cms -cmsout -in "$m" -outform DER -out "$work/$name.der" 2>/dev/null; then
        cp "$work/$name.der" "$S/cms/$name.der"
        cp "$work/$name.der" "$S/ber/$name.der"
    fi
done
openssl cms -encrypt -aes256 -stream -binary -outform DER -in "$work/body.mime" \
    "$FIX/proxy/user.pem" > "$S/cms/stream-enveloped.ber"
openssl cms -sign -nodetach -stream -binary -outform DER -in "$work/body.mime" \
    -signer "$FIX/partner/alice.pem" -inkey "$FIX/partner/alice.key" > "$S/cms/stream-signed.ber"
cp "$S"/cms/stream-*.ber "$S/ber/"

# Certificate runs: a leaf, then what a message would carry.
der() { openssl x509 -in "$1" -outform DER; }
for p in "$FIX"/partner/*.pem; do
    name=$(basename "$p" .pem)
    { der "$p"; der "$FIX/ca/partner-intermediate.pem"; } > "$S/certificate/$name-chain.der"
done
{ der "$FIX/partner/alice.pem"; der "$FIX/ca/partner-intermediate.pem"; der "$FIX/ca/partner-root.pem"; \
  der "$FIX/proxy/proxy-ca.pem"; } > "$S/certificate/alice-long.der"
der "$FIX/proxy/user.pem" > "$S/certificate/proxy-user.der"

# SMTP transcripts (the fuzz target plays the client).
printf 'EHLO mta.example\r\nMAIL FROM:<alice@partner.example> SIZE=300\r\nRCPT TO:<user@agency.example>\r\nRCPT TO:<b@agency.example> NOTIFY=NEVER\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n' \
    > "$S/smtp/transaction.txt"
printf 'EHLO mta.example\r\nXFORWARD NAME=client.example ADDR=192.0.2.1 PROTO=ESMTP HELO=x\r\nMAIL FROM:<> BODY=8BITMIME\r\nRCPT TO:<postmaster>\r\nRSET\r\nNOOP\r\nVRFY x\r\nHELP\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 5 LAST\r\nhello' \
    > "$S/smtp/xforward-rset.txt"
printf 'HELO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n' > "$S/smtp/pipelined-open-data.txt"
{ printf 'EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n'; \
  sed 's/$/\r/' "$FIX/messages/signed-detached.eml"; printf '.\r\nQUIT\r\n'; } > "$S/smtp/signed-message.txt"

# Admin API requests: request line, newline, body.
printf 'PUT /api/v1/domains/partner.example\n{"policy":"smime","note":"fuzz"}' > "$S/admin_api/approve.txt"
printf 'PUT /api/v1/domains/Partner.Example.\n{"policy":"plain"}' > "$S/admin_api/approve-plain.txt"
printf 'GET /api/v1/partners?offset=0&limit=10&domain=partner.example\n' > "$S/admin_api/partners.txt"
printf 'GET /api/v1/audit?limit=5&kind=domain-approved\n' > "$S/admin_api/audit.txt"
printf 'PUT /api/v1/certificates/%s/block\n{"note":"x"}' "$(printf 'ab%.0s' {1..32})" > "$S/admin_api/block.txt"
printf 'POST /api/v1/proxy/addresses/user%%40agency.example/certificate\n{}' > "$S/admin_api/issue.txt"
printf 'DELETE /api/v1/domains/partner.example\n' > "$S/admin_api/remove.txt"
printf 'GET /api/v1/proxy/ca?format=der\n' > "$S/admin_api/ca.txt"
printf 'GET /metrics\n' > "$S/admin_api/metrics.txt"

find "$S" -type f | wc -l
