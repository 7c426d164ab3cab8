#!/usr/bin/env bash
# The end-to-end suite on kind: builds the image, creates a kind cluster whose kube-controller-manager runs without the
# three endpoint controllers and whose kube-apiserver presents a client certificate to webhooks (kind-config.yaml),
# loads the image into it, deploys config/default with the webhooks verifying that certificate (e2e/kind/deploy),
# waits for the rollout, then runs the scenarios the local suite runs too (e2e/scenarios, through
# e2e/kind/run-scenarios.ts) and checks that no Switchboard pod logged a refused request.
#
# Needs a Docker engine, kind (v0.30 or later: the node image is v0.30.0's), kubectl, Node.js 20+ and the npm
# dependencies (`make deps`). Environment:
#   KIND, KUBECTL        the binaries (default: kind and kubectl on PATH)
#   KIND_CLUSTER_NAME    the cluster's name (default: switchboard-e2e); an existing one of that name is replaced
#   KEEP_CLUSTER=1       keep the cluster afterwards (its kubeconfig is printed)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
KIND="${KIND:-kind}"
KUBECTL="${KUBECTL:-kubectl}"
CLUSTER="${KIND_CLUSTER_NAME:-switchboard-e2e}"
KIND_NETWORK=kind
SYSTEM_NS=switchboard-system
KUBECONFIG_FILE="$ROOT/.cache/kind-$CLUSTER.kubeconfig"

say() { printf '\n--- %s\n' "$*"; }
fail() { printf 'e2e/kind/run.sh: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || fail "$1 is needed"; }
need docker
need "$KIND"
need "$KUBECTL"
need node
docker info >/dev/null 2>&1 || fail "no Docker engine answers (docker info failed)"

# The image config/default runs (one for both components): build exactly that reference.
IMAGE="$("$KUBECTL" kustomize config/default | sed -n 's/^ *image: *//p' | sort -u)"
[[ -n "$IMAGE" && "$IMAGE" != *$'\n'* ]] || fail "expected exactly one image in config/default, got: ${IMAGE:-none}"

say "building $IMAGE"
docker build --tag "$IMAGE" "$ROOT"

say "building the scenario runner"
npm run build && npm run build:test

say "creating kind cluster $CLUSTER"
mkdir -p "$(dirname "$KUBECONFIG_FILE")"
if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then "$KIND" delete cluster --name "$CLUSTER"; fi
cleanup() {
  if [[ "${KEEP_CLUSTER:-}" == 1 ]]; then
    echo "kept the cluster: export KUBECONFIG=$KUBECONFIG_FILE"
  else
    "$KIND" delete cluster --name "$CLUSTER" || true
  fi
}
trap cleanup EXIT
"$KIND" create cluster --name "$CLUSTER" --config e2e/kind/kind-config.yaml --kubeconfig "$KUBECONFIG_FILE" --wait 180s
export KUBECONFIG="$KUBECONFIG_FILE"
k() { "$KUBECTL" --kubeconfig="$KUBECONFIG_FILE" "$@"; }

# A kubeadm patch of another API version than kind generates would be silently ignored: check the flag arrived.
kcm="$(k -n kube-system get pod -l component=kube-controller-manager -o jsonpath='{.items[0].spec.containers[0].command}')"
[[ "$kcm" == *"-endpointslice-controller,-endpoints-controller,-endpointslice-mirroring-controller"* ]] ||
  fail "kube-controller-manager still runs the endpoint controllers: $kcm"

say "loading $IMAGE into the nodes"
"$KIND" load docker-image "$IMAGE" --name "$CLUSTER"

diagnose() {
  k get pods --all-namespaces -o wide || true
  k -n "$SYSTEM_NS" describe pods || true
  k -n "$SYSTEM_NS" logs -l app.kubernetes.io/part-of=switchboard --all-containers --prefix --tail=200 || true
}

# The API server presents its client certificate (kind-config.yaml): check the flag arrived, then deploy config/default
# with the controller verifying it (e2e/kind/deploy).
apiserver="$(k -n kube-system get pod -l component=kube-apiserver -o jsonpath='{.items[0].spec.containers[0].command}')"
[[ "$apiserver" == *"--admission-control-config-file=/etc/kubernetes/switchboard/admission-config.yaml"* ]] ||
  fail "kube-apiserver runs without Switchboard's admission configuration: $apiserver"

say "deploying config/default with webhook client authentication"
k apply -k e2e/kind/deploy
k -n "$SYSTEM_NS" rollout status deployment/switchboard-controller --timeout=180s || { diagnose; fail "the controller did not roll out"; }
k -n "$SYSTEM_NS" rollout status daemonset/switchboard-speaker --timeout=180s || { diagnose; fail "the speaker did not roll out"; }
# The leader registers the allocation webhooks once its server answers (the operator owns those configurations).
for _ in $(seq 90); do
  k get mutatingwebhookconfiguration switchboard-service-allocation >/dev/null 2>&1 && break
  sleep 2
done
k get mutatingwebhookconfiguration switchboard-service-allocation >/dev/null || { diagnose; fail "the allocation webhook was never registered"; }
# The API server reaches the webhook through its Service, whose EndpointSlices Switchboard itself writes: wait until a
# Service write goes through it (a dry run takes no claim).
for _ in $(seq 60); do
  k -n default create service clusterip switchboard-e2e-probe --tcp=80 --dry-run=server >/dev/null 2>&1 && break
  sleep 2
done
k -n default create service clusterip switchboard-e2e-probe --tcp=80 --dry-run=server >/dev/null || { diagnose; fail "Service writes do not get through the webhook"; }

# LoadBalancer addresses: the last 50 of the kind network's IPv4 subnet (Docker hands out addresses from the start).
subnet="$(docker network inspect "$KIND_NETWORK" --format '{{range .IPAM.Config}}{{.Subnet}} {{end}}' | tr ' ' '\n' | grep -m1 -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+/[0-9]+$')" ||
  fail "the $KIND_NETWORK network has no IPv4 subnet"
LB_RANGE="$(node -e '
  const [net, bits] = process.argv[1].split("/");
  if (Number(bits) > 25) throw new Error(`${process.argv[1]} is too small for 50 LoadBalancer addresses`);
  const base = net.split(".").reduce((a, o) => a * 256n + BigInt(o), 0n);
  const last = base + (1n << BigInt(32 - Number(bits))) - 2n;
  const ip = (v) => [24n, 16n, 8n, 0n].map((s) => (v >> s) & 255n).join(".");
  console.log(`${ip(last - 49n)}-${ip(last)}`);
' "$subnet")"

say "running the scenarios (LoadBalancer addresses $LB_RANGE on $KIND_NETWORK $subnet)"
status=0
KUBECTL="$KUBECTL" SWITCHBOARD_IMAGE="$IMAGE" SWITCHBOARD_E2E_LB_RANGE="$LB_RANGE" KIND_NETWORK="$KIND_NETWORK" \
  node dist-test/e2e/kind/run-scenarios.js || status=$?

say "checking the Switchboard pods' logs for refused requests"
logs="$(k -n "$SYSTEM_NS" logs -l app.kubernetes.io/part-of=switchboard --all-containers --prefix --tail=-1 --max-log-requests=20)"
# A 403 for an Event in a namespace being deleted is NamespaceLifecycle, not a missing permission.
refused="$(grep -E '\b403\b|[Ff]orbidden' <<<"$logs" | grep -v 'because it is being terminated' || true)"
if [[ -n "$refused" ]]; then
  printf '%s\n' "$refused"
  status=1
  echo "refused requests in the logs above"
fi

if [[ "$status" != 0 ]]; then
  diagnose
  fail "the kind suite failed"
fi
say "the kind suite passed"
