#!/usr/bin/env bash
# Makes the TLS material of the chart's bundled etcd with openssl: a CA, the members' certificate (server and
# peer: serverAuth + clientAuth) and the BatchAPI services' client certificate.
#   deploy/helm/batchapi/scripts/etcd-certs.sh <release> <namespace> <out dir> [extra SAN ...]
# then (docs/install.md, step 2):
#   kubectl -n <namespace> create secret generic <release>-etcd-server-tls --from-file=ca.crt=<out>/ca.crt \
#     --from-file=tls.crt=<out>/server.crt --from-file=tls.key=<out>/server.key
#   kubectl -n <namespace> create secret generic <release>-etcd-client-tls --from-file=ca.crt=<out>/ca.crt \
#     --from-file=tls.crt=<out>/client.crt --from-file=tls.key=<out>/client.key
# Keep ca.key offline: it signs new members' and clients' certificates. Validity: 5 years (renew before; see
# docs/install.md, "Production checklist").
set -euo pipefail
release=${1:?release name, e.g. batchapi}
namespace=${2:?namespace, e.g. batchapi}
out=${3:?output directory}
shift 3
days=${ETCD_CERT_DAYS:-1825}
mkdir -p "$out"
cd "$out"
umask 077

sans="DNS:*.${release}-etcd.${namespace}.svc,DNS:*.${release}-etcd.${namespace}.svc.cluster.local"
sans+=",DNS:${release}-etcd-client.${namespace}.svc,DNS:${release}-etcd-client.${namespace}.svc.cluster.local"
sans+=",DNS:localhost,IP:127.0.0.1"
for extra in "$@"; do sans+=",$extra"; done

openssl req -x509 -newkey rsa:3072 -nodes -days "$days" -subj "/CN=${release}-etcd-ca" \
  -keyout ca.key -out ca.crt -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null

issue() { # name CN extendedKeyUsage SANs
  openssl req -newkey rsa:3072 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n%s' "$3" "${4:+subjectAltName=$4}" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
issue server "${release}-etcd" serverAuth,clientAuth "$sans"
issue client "${release}-services" clientAuth ""
rm -f ca.srl
chmod 0644 ./*.crt
echo "wrote $out/{ca.crt,ca.key,server.crt,server.key,client.crt,client.key}" >&2
