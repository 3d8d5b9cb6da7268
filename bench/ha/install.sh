#!/bin/sh
# The Debian packages the high-availability proof (bench/ha_proof.py) needs, installed only when
# missing: Patroni, etcd (server and etcdctl), HAProxy and keepalived (two HAProxies sharing a
# virtual address by VRRP). Single-machine Strata and CI need none of them, so they are not in
# scripts/apt-packages.txt. Needs root (apt-get).
set -eu
missing=""
command -v patroni >/dev/null 2>&1 || missing="$missing patroni"
command -v etcd >/dev/null 2>&1 || missing="$missing etcd-server"
command -v etcdctl >/dev/null 2>&1 || missing="$missing etcd-client"
command -v haproxy >/dev/null 2>&1 || missing="$missing haproxy"
command -v keepalived >/dev/null 2>&1 || missing="$missing keepalived"
[ -z "$missing" ] && exit 0
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
# The packages' own services are not started (the proof runs its own instances in namespaces):
# a policy-rc.d that denies every start, for the length of the install, unless one is there.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -q --no-install-recommends $missing >&2
