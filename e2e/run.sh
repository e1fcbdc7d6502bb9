#!/usr/bin/env bash
# End-to-end suite: real container clients pulling through a real
# `dproxy serve` built from this tree, in front of a Docker-Hub-like upstream
# (e2e/upstream) on loopback. Run as root, without stdin: `make e2e`.
#
# Rounds: crane (cold cache), regctl, skopeo, oras (referrers), podman,
# docker, containerd (warm cache: no upstream blob fetch allowed); crane,
# regctl and skopeo also list tags. Then mirror mode with dockerd
# --registry-mirror, containerd hosts.toml and podman registries.conf, with
# the daemons' fallback to Docker Hub blocked so a broken mirror fails; a
# virtual registry; regctl's mirror setting and containerd hosts.toml for a
# second registry through --mirror-ns; `dproxy tui` in tmux purges the
# group as a person would; last, `dproxy tui --activity` in tmux watches
# three clients pull a cold image through a throttled upstream.
# E2E_ONLY=mirror-ns runs the set-up and the --mirror-ns rounds only,
# E2E_ONLY=tui-activity the set-up and the last round.
#
# Everything it starts is stopped by PID on exit. A failure prints the
# client, the reference, the command, its output and the tail of dproxy's log.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CRANE_VERSION=v0.22.1
REGCTL_VERSION=v0.11.7
ORAS_VERSION=v1.3.6
DEBIAN_PACKAGES=(docker.io containerd podman runc skopeo tmux curl python3)
# .ci/run installs these with its own packages, in one apt-get update.
if [[ ${1:-} == --debian-packages ]]; then
	echo "${DEBIAN_PACKAGES[*]}"
	exit 0
fi
GROUP=e2e # also the mirror group
EXPECT="hello from dproxy e2e"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dproxy-e2e.XXXXXX")
BIN=$WORK/bin
mkdir -p "$BIN"
PIDS=()
SUMMARY=()
START_ALL=$(date +%s)

# ---------------------------------------------------------------- helpers

log() { printf '\n=== %s\n' "$*"; }

cleanup() {
	local rc=$?
	set +e
	local i
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill "${PIDS[i]}" 2>/dev/null
	done
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		local n=0
		while kill -0 "${PIDS[i]}" 2>/dev/null && ((n < 100)); do sleep 0.1; n=$((n + 1)); done
		kill -9 "${PIDS[i]}" 2>/dev/null
	done
	# dockerd and containerd leave mounts under their roots.
	grep -o " $WORK[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null
	if ((rc == 0)) && [[ -z ${E2E_KEEP:-} ]]; then
		rm -rf "$WORK"
	else
		echo "work dir kept: $WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT

# start NAME LOGFILE CMD...: run CMD in the background, remember its PID.
start() {
	local name=$1 logf=$2
	shift 2
	"$@" >"$logf" 2>&1 </dev/null &
	PIDS+=($!)
	echo "started $name (pid $!)"
}

# wait_for WHAT CMD...: retry CMD for up to 60 s.
wait_for() {
	local what=$1 i
	shift
	for ((i = 0; i < 600; i++)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	echo "FAIL: $what did not come up in 60 s" >&2
	for f in "$WORK"/*.log; do echo "--- tail of $f"; tail -n 20 "$f"; done >&2
	exit 1
}

CLIENT=setup
REF=-
# run CMD...: run a client command; on failure report it and stop the suite.
run() {
	local out=$WORK/last.out
	if ! "$@" >"$out" 2>&1 </dev/null; then
		fail "command failed" "$@"
	fi
	cat "$out"
}

fail() {
	local why=$1
	shift
	{
		echo
		echo "FAIL: $why"
		echo "  client:    $CLIENT"
		echo "  reference: $REF"
		local cmd="$*"
		[[ -n ${PULL_TOKEN:-} ]] && cmd=${cmd//"$PULL_TOKEN"/<token>}
		[[ -n ${E2E_PASSWORD:-} ]] && cmd=${cmd//"$E2E_PASSWORD"/<password>}
		[[ -n ${CI_DEPENDENCY_PROXY_PASSWORD:-} ]] && cmd=${cmd//"$CI_DEPENDENCY_PROXY_PASSWORD"/<deploy token>}
		[[ -n ${PULL_TOKEN_NS:-} ]] && cmd=${cmd//"$PULL_TOKEN_NS"/<token>}
		echo "  command:   $cmd"
		echo "--- output (tail)"
		tail -n 30 "$WORK/last.out" 2>/dev/null
		echo "--- dproxy log (tail)"
		tail -n 40 "$WORK/dproxy.log" 2>/dev/null
	} >&2
	exit 1
}

# expect_digest WANT CMD...: CMD's output must mention the digest WANT.
expect_digest() {
	local want=$1
	shift
	run "$@" >/dev/null
	grep -q "$want" "$WORK/last.out" || fail "digest $want (the upstream's) not in the client's output" "$@"
}

# expect_tags "T1 T2 ..." CMD...: CMD must print exactly these tags, one a
# line, in this (lexical) order.
# Only standard output counts (regctl logs warnings on standard error).
expect_tags() {
	local want=$1 got
	shift
	if ! "$@" >"$WORK/tags.out" 2>"$WORK/last.out" </dev/null; then
		cat "$WORK/tags.out" >>"$WORK/last.out"
		fail "command failed" "$@"
	fi
	cat "$WORK/tags.out" >>"$WORK/last.out"
	got=$(grep -v '^$' "$WORK/tags.out" | tr '\n' ' ' | sed 's/ $//')
	[[ $got == "$want" ]] || fail "tags \"$got\", want \"$want\"" "$@"
}

# expect_output WANT CMD...: CMD's output must contain WANT.
expect_output() {
	local want=$1
	shift
	run "$@" >/dev/null
	grep -qF "$want" "$WORK/last.out" || fail "output lacks \"$want\"" "$@"
}

# must_fail CMD...: CMD must fail (a broken or refused mirror).
must_fail() {
	if "$@" >"$WORK/last.out" 2>&1 </dev/null; then
		fail "command succeeded but must fail" "$@"
	fi
}

ROUND_START=0
round_begin() {
	CLIENT=$1
	ROUND_START=$(date +%s.%N)
	log "round: $CLIENT"
}
round_end() {
	local version=$1 secs
	secs=$(awk -v a="$ROUND_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	SUMMARY+=("$(printf '%-32s %-32s %6ss' "$CLIENT" "$version" "$secs")")
	echo "round $CLIENT passed in ${secs}s"
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

upstream_count() { # upstream_count "GET blob"
	curl -sf "$UPSTREAM_CONTROL/-/counts" | python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], 0))' "$1"
}

# ---------------------------------------------------------------- install

log "install what is missing"
need_apt=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
	status=$(dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null || true)
	[[ $status == "install ok installed" ]] || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
	echo "apt-get install ${need_apt[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq </dev/null
	apt-get install -y -qq "${need_apt[@]}" </dev/null >/dev/null
fi
GOBIN_DIR=$ROOT/bin
mkdir -p "$GOBIN_DIR"
# go_install BINARY PACKAGE MODULE VERSION: install PACKAGE@VERSION into
# bin/ unless BINARY there was built from MODULE at VERSION (go version -m
# reads the version built in; crane and regctl print the same, e.g. v0.22.1).
go_install() {
	local bin=$GOBIN_DIR/$1
	if ! go version -m "$bin" 2>/dev/null | awk -v m="$3" -v v="$4" '$1 == "mod" && $2 == m && $3 == v { ok = 1 } END { exit !ok }'; then
		echo "installing $2@$4 into bin/"
		GOBIN=$GOBIN_DIR go install "$2@$4"
	fi
}
go_install crane github.com/google/go-containerregistry/cmd/crane github.com/google/go-containerregistry "$CRANE_VERSION"
go_install regctl github.com/regclient/regclient/cmd/regctl github.com/regclient/regclient "$REGCTL_VERSION"
go_install oras oras.land/oras/cmd/oras oras.land/oras "$ORAS_VERSION"
CRANE=$GOBIN_DIR/crane
REGCTL=$GOBIN_DIR/regctl
ORAS=$GOBIN_DIR/oras
DOCKER=/usr/bin/docker # Debian's client, whatever else is on PATH

# ---------------------------------------------------------------- build

log "build dproxy, the upstream and the hello binaries"
(cd "$ROOT" && go build -o "$BIN/dproxy" ./cmd/dproxy && go build -o "$BIN/upstream" ./e2e/upstream)
for arch in amd64 arm64; do
	mkdir -p "$WORK/hello-$arch"
	(cd "$ROOT" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags '-s -w' -o "$WORK/hello-$arch/hello" ./e2e/hello)
	tar -C "$WORK/hello-$arch" --owner=0 --group=0 -cf "$WORK/hello-$arch.tar" hello
done

# ---------------------------------------------------------------- upstream

log "start the upstream registry"
start upstream "$WORK/upstream.log" "$BIN/upstream" -env "$WORK/upstream.env"
wait_for "the upstream" test -s "$WORK/upstream.env"
# shellcheck disable=SC1091
source "$WORK/upstream.env"
PUSH=${UPSTREAM_PUSH#http://}
echo "upstream $UPSTREAM_URL (push $PUSH, control $UPSTREAM_CONTROL)"

log "build and push the test images (no internet)"
export DOCKER_CONFIG=$WORK/crane-config # crane's credentials, away from the host's
mkdir -p "$DOCKER_CONFIG"
echo '{}' >"$DOCKER_CONFIG/config.json"
"$CRANE" append -f "$WORK/hello-amd64.tar" -t "$PUSH/tmp/hello-docker" >/dev/null
"$CRANE" mutate --entrypoint /hello --set-platform linux/amd64 -t "$PUSH/library/hello:latest" "$PUSH/tmp/hello-docker" >/dev/null
for t in v1 v2; do "$CRANE" tag "$PUSH/library/hello:latest" "$t" >/dev/null; done
HELLO_TAGS="latest v1 v2" # the tags clients list, in lexical order
"$CRANE" append --oci-empty-base -f "$WORK/hello-amd64.tar" -t "$PUSH/tmp/hello-oci" >/dev/null
"$CRANE" mutate --entrypoint /hello --set-platform linux/amd64 -t "$PUSH/library/hello-oci:latest" "$PUSH/tmp/hello-oci" >/dev/null
"$CRANE" append --oci-empty-base -f "$WORK/hello-arm64.tar" -t "$PUSH/tmp/hello-arm64" >/dev/null
"$CRANE" mutate --entrypoint /hello --set-platform linux/arm64 -t "$PUSH/tmp/hello-arm64:latest" "$PUSH/tmp/hello-arm64" >/dev/null
"$CRANE" index append -m "$PUSH/library/hello-oci:latest" -m "$PUSH/tmp/hello-arm64:latest" -t "$PUSH/library/multi:latest" >/dev/null
mkdir -p "$WORK/big"
head -c 200M /dev/urandom >"$WORK/big/big.bin"
tar -C "$WORK/big" --owner=0 --group=0 -cf "$WORK/big.tar" big.bin
rm -f "$WORK/big/big.bin"
"$CRANE" append -f "$WORK/hello-amd64.tar" -f "$WORK/big.tar" -t "$PUSH/tmp/big" >/dev/null
"$CRANE" mutate --entrypoint /hello --set-platform linux/amd64 -t "$PUSH/library/big:latest" "$PUSH/tmp/big" >/dev/null
rm -f "$WORK/big.tar"
IMAGES=(hello hello-oci multi big)
declare -A WANT
for img in "${IMAGES[@]}"; do
	WANT[$img]=$("$CRANE" digest "$PUSH/library/$img:latest")
	printf '  %-10s %s %s\n' "$img" "${WANT[$img]}" "$("$CRANE" manifest "$PUSH/library/$img:latest" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("mediaType", "?"))')"
done

# ---------------------------------------------------------------- dproxy

log "start dproxy serve"
PORT=$(free_port)
DP=127.0.0.1:$PORT
# The virtual registry below pulls from the upstream on 127.0.0.1, which
# the upstream address policy refuses unless allowed.
# start_dproxy [VAR=value...]: start dproxy serve on $DP with the suite's
# flags and the environment variables given (a restart keeps the data dir
# and moves the previous log aside).
DPROXY_PID=""
start_dproxy() {
	if [[ -n $DPROXY_PID ]]; then
		kill "$DPROXY_PID"
		wait "$DPROXY_PID" 2>/dev/null || true
		mv "$WORK/dproxy.log" "$WORK/dproxy-before-restart.log"
	fi
	start dproxy "$WORK/dproxy.log" env "$@" "$BIN/dproxy" serve --addr "$DP" --external-url "http://$DP" \
		--data-dir "$WORK/dproxy-data" --upstream "$UPSTREAM_URL" --mirror-group "$GROUP" --log-format text \
		--upstream-allow-cidr 127.0.0.1/32
	DPROXY_PID=${PIDS[-1]}
	wait_for "dproxy" curl -sf "http://$DP/-/readiness"
}
start_dproxy
"$BIN/dproxy" version

log "set dproxy up with its CLI: group, member, token"
# The admin commands talk to the server over its admin API with the initial
# admin token, given to the CLI alone in DPROXY_TOKEN (not on its command line).
ADMIN_TOKEN=$(cat "$WORK/dproxy-data/initial_admin_token")
# dpx ARGS...: the dproxy CLI against the server under test; a failure is
# reported like a client's. Piped, `token create` prints only the secret.
dpx() { DPROXY_TOKEN=$ADMIN_TOKEN run "$BIN/dproxy" "$@" --server "http://$DP"; }
E2E_USER=ci-puller
E2E_PASSWORD=$(head -c 18 /dev/urandom | base64)
dpx group create "$GROUP" >/dev/null
if ! DPROXY_TOKEN=$ADMIN_TOKEN "$BIN/dproxy" user create "$E2E_USER" --password-stdin --server "http://$DP" <<<"$E2E_PASSWORD" >"$WORK/last.out" 2>&1; then
	fail "dproxy user create failed" "$BIN/dproxy" user create "$E2E_USER" --password-stdin --server "http://$DP"
fi
dpx member add "$GROUP" "$E2E_USER" --role guest >/dev/null
PULL_TOKEN=$(dpx token create --user "$E2E_USER" --scopes read_registry --name e2e)
[[ $PULL_TOKEN =~ ^[^[:space:]]+$ ]] || fail "piped, dproxy token create did not print only the secret" "$BIN/dproxy" token create
set_anonymous() {
	dpx group update "$GROUP" --allow-anonymous-pull="$1" >/dev/null
	dpx group show "$GROUP" -o json | grep -q "\"allowAnonymousPull\": *$1" ||
		fail "group show does not say allowAnonymousPull: $1" "$BIN/dproxy" group show "$GROUP" -o json
}
# What GitLab CI would get: the server, the image prefixes and a deploy
# token's credentials, checked in the skopeo round.
dpx ci-env "$GROUP" -o shell --create-deploy-token >"$WORK/ci-env.sh"
# shellcheck disable=SC1091
source "$WORK/ci-env.sh"
rm -f "$WORK/ci-env.sh"
[[ $CI_DEPENDENCY_PROXY_SERVER == "$DP" ]] ||
	fail "ci-env's CI_DEPENDENCY_PROXY_SERVER is $CI_DEPENDENCY_PROXY_SERVER, want $DP" "$BIN/dproxy" ci-env "$GROUP"
[[ $CI_DEPENDENCY_PROXY_DIRECT_GROUP_IMAGE_PREFIX == "$DP/$GROUP/dependency_proxy/containers" ]] ||
	fail "ci-env's CI_DEPENDENCY_PROXY_DIRECT_GROUP_IMAGE_PREFIX is $CI_DEPENDENCY_PROXY_DIRECT_GROUP_IMAGE_PREFIX" "$BIN/dproxy" ci-env "$GROUP"
echo "group $GROUP, member $E2E_USER (guest, with a password), a read_registry token, ci-env deploy user $CI_DEPENDENCY_PROXY_USER"

ref() { echo "$DP/$GROUP/dependency_proxy/containers/$1:latest"; }

PODMAN=(podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" --storage-driver vfs
	--cgroup-manager cgroupfs --events-backend file --runtime runc)
PODMAN_RUN=(run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

# start_containerd: a containerd of its own under $WORK (once); ctr talks
# to it with "${CTR[@]}".
CTR_SOCK=""
start_containerd() {
	[[ -z $CTR_SOCK ]] || return 0
	CTR_SOCK=$WORK/containerd/containerd.sock
	mkdir -p "$WORK/containerd"
	cat >"$WORK/containerd/config.toml" <<EOF
version = 2
root = "$WORK/containerd/root"
state = "$WORK/containerd/state"
[grpc]
  address = "$CTR_SOCK"
EOF
	start containerd "$WORK/containerd.log" containerd --config "$WORK/containerd/config.toml"
	wait_for "containerd" ctr --address "$CTR_SOCK" version
	CTR=(ctr --address "$CTR_SOCK")
}

# rounds_mirror_ns: regctl's mirror setting, containerd's hosts.toml and
# podman's registries.conf for a registry other than Docker Hub. A container virtual registry "quay"
# over the upstream serves quay.io once dproxy restarts with
# DPROXY_MIRROR_NS=quay.io=<its id>; a request naming quay.io (?ns=) is then
# a pull from it, with its rules (a token with read_virtual_registry).
# regctl's docker.io mirror (?ns=registry-1.docker.io) goes to the mirror
# group. Fallbacks to the real registries are blocked, so a refused mirror
# fails the pull.
rounds_mirror_ns() {
	local quay token
	quay=$(DPROXY_TOKEN=$ADMIN_TOKEN "$BIN/dproxy" virtual-registry create "$GROUP" quay -o json --server "http://$DP" |
		python3 -c 'import json, sys; print(str(json.load(sys.stdin)["id"]).rsplit("/", 1)[-1])')
	[[ $quay =~ ^[0-9]+$ ]] || fail "virtual-registry create printed no id" "$BIN/dproxy" virtual-registry create "$GROUP" quay -o json
	dpx virtual-registry upstream add "$quay" quay "$UPSTREAM_URL" >/dev/null
	token=$(dpx token create --user "$E2E_USER" --scopes read_virtual_registry,read_registry --name e2e-mirror-ns)
	PULL_TOKEN_NS=$token # redacted from failure reports
	log "restart dproxy with DPROXY_MIRROR_NS=quay.io=$quay"
	start_dproxy "DPROXY_MIRROR_NS=quay.io=$quay"
	local no_fallback=(env HTTPS_PROXY=http://127.0.0.1:1 HTTP_PROXY=http://127.0.0.1:1 NO_PROXY=127.0.0.1,localhost)

	round_begin "mirror: regctl registry set --mirror"
	local rc=("${no_fallback[@]}" REGCTL_CONFIG="$WORK/regctl-mirror/config.json" "$REGCTL")
	mkdir -p "$WORK/regctl-mirror"
	run "${rc[@]}" registry set "$DP" --tls disabled --skip-check >/dev/null
	run "${rc[@]}" registry login "$DP" -u "$E2E_USER" -p "$token" >/dev/null
	run "${rc[@]}" registry set docker.io --mirror "$DP" --skip-check >/dev/null
	run "${rc[@]}" registry set quay.io --mirror "$DP" --skip-check >/dev/null
	REF=docker.io/library/hello:latest # ?ns=registry-1.docker.io: the mirror group
	expect_digest "${WANT[hello]}" "${rc[@]}" image digest "$REF"
	REF=docker.io/library/multi:latest
	run "${rc[@]}" image copy "$REF" "ocidir://$WORK/regctl-mirror/multi:t" >/dev/null
	grep -q "${WANT[multi]}" "$WORK/regctl-mirror/multi/index.json" || fail "pulled layout lacks the upstream digest" "${rc[@]}" image copy "$REF"
	REF=quay.io/library/hello:latest # ?ns=quay.io: the virtual registry
	expect_digest "${WANT[hello]}" "${rc[@]}" image digest "$REF"
	run "${rc[@]}" image copy "$REF" "ocidir://$WORK/regctl-mirror/quay-hello:t" >/dev/null
	dpx virtual-registry cache list "$quay" >"$WORK/quay-cache.txt"
	grep -q "^library/hello/manifests/latest" "$WORK/quay-cache.txt" ||
		fail "quay.io's pull did not go through virtual registry $quay" "$BIN/dproxy" virtual-registry cache list "$quay"
	round_end "regctl $("$REGCTL" version --format '{{.VCSTag}}' 2>/dev/null || echo "$REGCTL_VERSION")"

	round_begin "mirror: containerd hosts.toml for quay.io (--mirror-ns)"
	start_containerd
	mkdir -p "$WORK/certs-ns.d/quay.io" "$WORK/certs-ns-auth.d/quay.io"
	cat >"$WORK/certs-ns.d/quay.io/hosts.toml" <<EOF
server = "https://quay.io"

[host."http://$DP"]
  capabilities = ["pull", "resolve"]
EOF
	cat >"$WORK/certs-ns-auth.d/quay.io/hosts.toml" <<EOF
server = "https://quay.io"

[host."http://$DP"]
  capabilities = ["pull", "resolve"]
  [host."http://$DP".header]
    Authorization = "Basic $(printf '%s:%s' "$E2E_USER" "$token" | base64 -w0)"
EOF
	# A fixed header, as a node's containerd has it.
	REF=quay.io/library/hello-oci:latest
	run "${no_fallback[@]}" "${CTR[@]}" images pull --hosts-dir "$WORK/certs-ns-auth.d" "$REF" >/dev/null
	expect_digest "${WANT[hello-oci]}" "${CTR[@]}" images ls "name==$REF"
	expect_output "$EXPECT" "${CTR[@]}" run --rm "$REF" e2e-mirror-ns
	# The token flow: dproxy's challenge names the virtual registry's repository.
	REF=quay.io/library/multi:latest
	run "${no_fallback[@]}" "${CTR[@]}" images pull --hosts-dir "$WORK/certs-ns.d" --user "$E2E_USER:$token" "$REF" >/dev/null
	expect_digest "${WANT[multi]}" "${CTR[@]}" images ls "name==$REF"
	dpx virtual-registry cache list "$quay" >"$WORK/quay-cache.txt"
	for img in hello-oci multi; do
		grep -q "^library/$img/manifests/latest" "$WORK/quay-cache.txt" ||
			fail "quay.io/library/$img did not go through virtual registry $quay" "$BIN/dproxy" virtual-registry cache list "$quay"
	done
	# Anonymous: a virtual registry needs a login, whatever the mirror group allows.
	REF=quay.io/library/big:latest
	must_fail "${no_fallback[@]}" "${CTR[@]}" images pull --hosts-dir "$WORK/certs-ns.d" "$REF"
	# A registry no --mirror-ns names is refused, not served from Docker Hub.
	mkdir -p "$WORK/certs-ns.d/ghcr.io"
	sed 's|https://quay.io|https://ghcr.io|' "$WORK/certs-ns-auth.d/quay.io/hosts.toml" >"$WORK/certs-ns.d/ghcr.io/hosts.toml"
	REF=ghcr.io/library/hello:latest
	must_fail "${no_fallback[@]}" "${CTR[@]}" images pull --hosts-dir "$WORK/certs-ns.d" "$REF"
	# containerd asks with HEAD (no body): the GET says why.
	must_fail curl -sf -u "$E2E_USER:$token" "http://$DP/v2/library/hello/manifests/latest?ns=ghcr.io"
	curl -s -u "$E2E_USER:$token" "http://$DP/v2/library/hello/manifests/latest?ns=ghcr.io" >"$WORK/last.out"
	grep -q -- "--mirror-ns ghcr.io=" "$WORK/last.out" || fail "the refusal of ghcr.io does not name --mirror-ns" curl "http://$DP/v2/library/hello/manifests/latest?ns=ghcr.io"
	round_end "containerd $("${CTR[@]}" version | awk '/Server:/ { s = 1 } s && /Version:/ { print $2; exit }')"

	# podman sends no ns: its quay.io mirror is the virtual registry's prefix.
	round_begin "mirror: podman registries.conf for quay.io (virtual registry prefix)"
	cat >"$WORK/registries-ns.conf" <<EOF
[[registry]]
prefix = "quay.io"
location = "quay.io"

[[registry.mirror]]
location = "$DP/virtual_registries/container/$quay"
insecure = true
EOF
	mkdir -p "$WORK/podman-ns-auth"
	echo '{"auths": {}}' >"$WORK/podman-ns-auth/config.json"
	local pm=("${no_fallback[@]}" CONTAINERS_REGISTRIES_CONF="$WORK/registries-ns.conf"
		REGISTRY_AUTH_FILE="$WORK/podman-ns-auth/config.json" DOCKER_CONFIG="$WORK/podman-ns-auth" "${PODMAN[@]}")
	if ! printf '%s\n' "$token" | "${pm[@]}" login --tls-verify=false -u "$E2E_USER" --password-stdin "$DP" >"$WORK/last.out" 2>&1; then
		fail "podman login failed" podman login "$DP"
	fi
	REF=quay.io/library/big:latest
	run "${pm[@]}" pull "$REF" >/dev/null
	expect_digest "${WANT[big]}" "${PODMAN[@]}" image inspect "$REF"
	expect_output "$EXPECT" "${pm[@]}" "${PODMAN_RUN[@]}" "$REF"
	dpx virtual-registry cache list "$quay" >"$WORK/quay-cache.txt"
	grep -q "^library/big/manifests/latest" "$WORK/quay-cache.txt" ||
		fail "quay.io/library/big did not go through virtual registry $quay" "$BIN/dproxy" virtual-registry cache list "$quay"
	round_end "$(podman --version)"
}

# A person watching the server work: `dproxy tui --activity` in tmux while
# three crane clients pull a cold image whose 64 MiB layer the upstream
# sends at 8 MiB/s. The pane must show the one download with its progress
# and its three clients, then the download gone and the pulls as misses.
TMUX_SOCK=$WORK/tmux.sock
tm() { tmux -S "$TMUX_SOCK" "$@"; }
# pane_shows TEXT: wait up to 20 s for the pane to show TEXT; pane_matches
# REGEX the same for an extended regular expression.
pane_shows() { pane_wait -F "$1"; }
pane_matches() { pane_wait -E "$1"; }
pane_wait() {
	local i
	for ((i = 0; i < 100; i++)); do
		tm capture-pane -p -t tui >"$WORK/pane.txt" 2>&1 && grep -q "$1" -- "$2" "$WORK/pane.txt" && return 0
		sleep 0.2
	done
	cp "$WORK/pane.txt" "$WORK/last.out"
	fail "the tui never showed \"$2\"" tmux capture-pane -p -t tui
}
round_tui_activity() {
	round_begin "dproxy tui --activity in tmux"
	mkdir -p "$WORK/activity"
	head -c 64M /dev/urandom >"$WORK/activity/activity.bin"
	tar -C "$WORK/activity" --owner=0 --group=0 -cf "$WORK/activity.tar" activity.bin
	rm -f "$WORK/activity/activity.bin"
	"$CRANE" append -f "$WORK/activity.tar" -t "$PUSH/library/activity:latest" >/dev/null
	rm -f "$WORK/activity.tar"
	run "$CRANE" auth login "$DP" -u "$E2E_USER" -p "$PULL_TOKEN" >/dev/null
	run curl -sf -X POST "$UPSTREAM_CONTROL/-/bandwidth?bytes-per-second=$((8 << 20))" >/dev/null
	tm new-session -d -s tui -x 140 -y 40 \
		"NO_COLOR=1 $BIN/dproxy tui --activity --server http://$DP --data-dir $WORK/dproxy-data; sleep 30"
	PIDS+=("$(tm display-message -p '#{pid}')") # the tmux server, stopped on exit
	pane_shows "Downloads in flight (0)"
	REF=$(ref activity)
	local pulls=() i
	for i in 1 2 3; do
		"$CRANE" pull --format oci "$REF" "$WORK/activity-$i" >"$WORK/activity-$i.out" 2>&1 </dev/null &
		pulls+=($!)
		PIDS+=($!)
	done
	# The row of the layer: image, digest, group, bar and %, bytes of
	# total, rate, three clients, elapsed time.
	pane_matches "library/activity +[0-9a-f]{12} +$GROUP +[█░]+ +[0-9]+% +[0-9.]+ [KM]iB/[0-9.]+ MiB +[0-9.]+ [KM]?i?B/s +3 +[0-9ms]+"
	cat "$WORK/pane.txt"
	for i in "${!pulls[@]}"; do
		if ! wait "${pulls[i]}"; then
			cp "$WORK/activity-$((i + 1)).out" "$WORK/last.out"
			fail "a pull watched by the tui failed" "$CRANE" pull --format oci "$REF"
		fi
	done
	run curl -sf -X POST "$UPSTREAM_CONTROL/-/bandwidth?bytes-per-second=0" >/dev/null
	pane_shows "Downloads in flight (0)"
	pane_matches "miss +blob +library/activity@sha256:[0-9a-f]{12} +$GROUP "
	pane_matches "hits 5m [0-9]+% of requests"
	cat "$WORK/pane.txt"
	tm send-keys -t tui q
	tm kill-server
	REF=-
	round_end "$(tmux -V)"
}

case ${E2E_ONLY:-} in
"") ;;
mirror-ns)
	rounds_mirror_ns
	log "summary"
	printf '%-32s %-32s %7s\n' "ROUND" "CLIENT VERSION" "TIME"
	printf '%s\n' "${SUMMARY[@]}"
	echo "e2e (mirror-ns rounds) passed in $(($(date +%s) - START_ALL))s"
	exit 0
	;;
tui-activity)
	round_tui_activity
	log "summary"
	printf '%-32s %-32s %7s\n' "ROUND" "CLIENT VERSION" "TIME"
	printf '%s\n' "${SUMMARY[@]}"
	echo "e2e (tui-activity round) passed in $(($(date +%s) - START_ALL))s"
	exit 0
	;;
*)
	echo "E2E_ONLY=$E2E_ONLY: the subsets are mirror-ns and tui-activity" >&2
	exit 2
	;;
esac

# ---------------------------------------------------------------- crane (cold)

round_begin crane
run "$CRANE" auth login "$DP" -u "$E2E_USER" -p "$PULL_TOKEN" >/dev/null
for img in "${IMAGES[@]}"; do
	REF=$(ref "$img")
	expect_digest "${WANT[$img]}" "$CRANE" digest "$REF"
	run "$CRANE" pull --format oci "$REF" "$WORK/crane-$img" >/dev/null
	grep -q "${WANT[$img]}" "$WORK/crane-$img/index.json" || fail "pulled layout lacks the upstream digest" "$CRANE" pull "$REF"
done
REF=$DP/$GROUP/dependency_proxy/containers/hello
expect_tags "$HELLO_TAGS" "$CRANE" ls "$REF"
blob_gets_cold=$(upstream_count "GET blob")
echo "cold round: $blob_gets_cold upstream blob GETs"
((blob_gets_cold > 0)) || fail "the cold round made no upstream blob GET: is the upstream counting?" "$CRANE" pull
REF=-
run curl -sf -X POST "$UPSTREAM_CONTROL/-/reset" >/dev/null
round_end "crane $("$CRANE" version)"

# ---------------------------------------------------------------- regctl

round_begin regctl
for img in "${IMAGES[@]}"; do
	REF=$(ref "$img")
	expect_digest "${WANT[$img]}" "$REGCTL" --host "reg=$DP,tls=disabled,user=$E2E_USER,pass=$PULL_TOKEN" image digest "$REF"
	run "$REGCTL" --host "reg=$DP,tls=disabled,user=$E2E_USER,pass=$PULL_TOKEN" image copy "$REF" "ocidir://$WORK/regctl-$img:t" >/dev/null
	grep -q "${WANT[$img]}" "$WORK/regctl-$img/index.json" || fail "pulled layout lacks the upstream digest" "$REGCTL" image copy "$REF"
done
REF=$DP/$GROUP/dependency_proxy/containers/hello
expect_tags "$HELLO_TAGS" "$REGCTL" --host "reg=$DP,tls=disabled,user=$E2E_USER,pass=$PULL_TOKEN" tag ls "$REF"
round_end "regctl $("$REGCTL" version --format '{{.VCSTag}}' 2>/dev/null || echo "$REGCTL_VERSION")"

# ---------------------------------------------------------------- skopeo

round_begin skopeo
for img in "${IMAGES[@]}"; do
	REF=$(ref "$img")
	run skopeo copy --multi-arch all --src-tls-verify=false --src-creds "$E2E_USER:$PULL_TOKEN" "docker://$REF" "dir:$WORK/skopeo-$img" >/dev/null
	# The manifest's exact bytes as served, hashed here.
	run skopeo inspect --raw --tls-verify=false --creds "$E2E_USER:$PULL_TOKEN" "docker://$REF" >"$WORK/skopeo-$img.manifest"
	[[ "sha256:$(sha256sum <"$WORK/skopeo-$img.manifest" | cut -d' ' -f1)" == "${WANT[$img]}" ]] ||
		fail "the manifest's digest is not the upstream's" skopeo inspect --raw "docker://$REF"
done
# The same manifest with the deploy token `dproxy ci-env` made, under the
# prefix it printed, and with the user's password instead of a token.
REF=$CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX/hello:latest
run skopeo inspect --raw --tls-verify=false --creds "$CI_DEPENDENCY_PROXY_USER:$CI_DEPENDENCY_PROXY_PASSWORD" "docker://$REF" >"$WORK/skopeo-ci.manifest"
cmp -s "$WORK/skopeo-ci.manifest" "$WORK/skopeo-hello.manifest" || fail "the ci-env deploy token got another manifest" skopeo inspect --raw "docker://$REF"
REF=$(ref hello)
run skopeo inspect --raw --tls-verify=false --creds "$E2E_USER:$E2E_PASSWORD" "docker://$REF" >"$WORK/skopeo-pw.manifest"
cmp -s "$WORK/skopeo-pw.manifest" "$WORK/skopeo-hello.manifest" || fail "the user's password got another manifest" skopeo inspect --raw "docker://$REF"
# Without --raw, skopeo inspect lists the repository's tags too.
run skopeo inspect --tls-verify=false --creds "$E2E_USER:$PULL_TOKEN" "docker://$REF" >"$WORK/skopeo-inspect.json"
python3 - "$WORK/skopeo-inspect.json" "${WANT[hello]}" "$HELLO_TAGS" <<'PY' || fail "skopeo inspect does not show the upstream's digest and tags" skopeo inspect "docker://$REF"
import json, sys
out = json.load(open(sys.argv[1]))
sys.exit(0 if out.get("Digest") == sys.argv[2] and out.get("RepoTags") == sys.argv[3].split() else 1)
PY
round_end "$(skopeo --version)"

# ---------------------------------------------------------------- oras

# An artifact attached to hello upstream (where clients push) is listed
# through dproxy's referrers API, whole and filtered by artifact type.
round_begin oras
REF=$PUSH/library/hello:latest
echo '{"e2e": "sbom"}' >"$WORK/sbom.json"
pushd "$WORK" >/dev/null
run "$ORAS" attach --plain-http --artifact-type application/vnd.dproxy.e2e.sbom "$REF" sbom.json:application/json >/dev/null
popd >/dev/null
SBOM=$(grep -o 'sha256:[0-9a-f]\{64\}' "$WORK/last.out" | tail -1 || true)
[[ -n $SBOM ]] || fail "oras attach printed no digest" "$ORAS" attach "$REF"
REF=$(ref hello)
ORAS_LOGIN=(--plain-http -u "$E2E_USER" -p "$PULL_TOKEN")
expect_output "$SBOM" "$ORAS" discover "${ORAS_LOGIN[@]}" "$REF"
expect_output "application/vnd.dproxy.e2e.sbom" "$ORAS" discover "${ORAS_LOGIN[@]}" "$REF"
expect_output "$SBOM" "$ORAS" discover "${ORAS_LOGIN[@]}" --artifact-type application/vnd.dproxy.e2e.sbom "$REF"
run "$ORAS" discover "${ORAS_LOGIN[@]}" --artifact-type application/vnd.dproxy.e2e.other "$REF" >/dev/null
! grep -q "$SBOM" "$WORK/last.out" || fail "the artifact type filter let the sbom through" "$ORAS" discover --artifact-type application/vnd.dproxy.e2e.other "$REF"
round_end "oras $("$ORAS" version | awk '/^Version:/ { print $2; exit }')"

# ---------------------------------------------------------------- podman

round_begin podman
for img in "${IMAGES[@]}"; do
	REF=$(ref "$img")
	run "${PODMAN[@]}" pull --tls-verify=false --creds "$E2E_USER:$PULL_TOKEN" "$REF" >/dev/null
	expect_digest "${WANT[$img]}" "${PODMAN[@]}" image inspect "$REF"
done
REF=$(ref hello)
expect_output "$EXPECT" "${PODMAN[@]}" "${PODMAN_RUN[@]}" "$REF"
REF=$(ref multi)
expect_output "$EXPECT (linux/amd64)" "${PODMAN[@]}" "${PODMAN_RUN[@]}" "$REF"
round_end "$(podman --version)"

# ---------------------------------------------------------------- docker

# One dockerd for both docker rounds: plain pulls from dproxy, and dproxy as
# its registry mirror. The proxy variables make its Docker Hub fallback fail
# on the machine instead of leaving it, so a broken mirror fails the pull.
DOCKER_SOCK=$WORK/docker.sock
start dockerd "$WORK/dockerd.log" env HTTPS_PROXY=http://127.0.0.1:1 HTTP_PROXY=http://127.0.0.1:1 NO_PROXY=127.0.0.1,localhost \
	dockerd --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none \
	--data-root "$WORK/docker/data" --exec-root "$WORK/docker/exec" --pidfile "$WORK/docker/dockerd.pid" \
	-H "unix://$DOCKER_SOCK" --registry-mirror "http://$DP"
export DOCKER_HOST=unix://$DOCKER_SOCK
wait_for "dockerd" "$DOCKER" version
round_begin docker
REF=$DP
echo "$PULL_TOKEN" >"$WORK/token"
if ! "$DOCKER" login "$DP" -u "$E2E_USER" --password-stdin <"$WORK/token" >"$WORK/last.out" 2>&1; then
	fail "docker login failed" "$DOCKER" login "$DP" -u "$E2E_USER" --password-stdin
fi
for img in "${IMAGES[@]}"; do
	REF=$(ref "$img")
	run "$DOCKER" pull "$REF" >/dev/null
	expect_digest "${WANT[$img]}" "$DOCKER" image inspect "$REF"
done
REF=$(ref hello)
expect_output "$EXPECT" "$DOCKER" run --rm --network none "$REF"
REF=$(ref big)
expect_output "$EXPECT" "$DOCKER" run --rm --network none "$REF"
round_end "$("$DOCKER" version --format 'docker {{.Server.Version}}')"

# ---------------------------------------------------------------- CI ID token

# A CI job signs in with its OpenID Connect ID token as the password, under
# a trust policy: no stored secret. The fixture issuer runs beside the
# upstream and mints the token a CI system would give the job.
round_begin "docker: CI ID token"
REF=$DP
dpx ci-trust add e2e-ci --issuer "$OIDC_ISSUER" --audience "http://$DP" --group "$GROUP" --claim ref_protected=true >/dev/null
mint() { curl -sf -X POST "$UPSTREAM_CONTROL/-/id-token?aud=http://$DP&sub=project_path:$GROUP/app:ref_type:branch:ref:main&$1"; }
run "$DOCKER" logout "$DP" >/dev/null
mint claim=ref_protected=false >"$WORK/token" || fail "the fixture issuer minted no ID token" curl -X POST "$UPSTREAM_CONTROL/-/id-token"
# An unprotected ref: the claim rule refuses it, and says so.
if "$DOCKER" login "$DP" -u ci --password-stdin <"$WORK/token" >"$WORK/last.out" 2>&1; then
	fail "docker login with an ID token of an unprotected ref succeeded" "$DOCKER" login "$DP" -u ci --password-stdin
fi
grep -q ref_protected "$WORK/last.out" || fail "the refusal does not name the claim" "$DOCKER" login "$DP" -u ci --password-stdin
mint claim=ref_protected=true >"$WORK/token"
if ! "$DOCKER" login "$DP" -u ci --password-stdin <"$WORK/token" >"$WORK/last.out" 2>&1; then
	fail "docker login with a CI ID token failed" "$DOCKER" login "$DP" -u ci --password-stdin
fi
rm -f "$WORK/token"
REF=$(ref hello)
run "$DOCKER" image rm "$REF" >/dev/null
run "$DOCKER" pull "$REF" >/dev/null
expect_digest "${WANT[hello]}" "$DOCKER" image inspect "$REF"
expect_output "$EXPECT" "$DOCKER" run --rm --network none "$REF"
echo "$PULL_TOKEN" >"$WORK/token" # back to the docker round's sign-in
"$DOCKER" login "$DP" -u "$E2E_USER" --password-stdin <"$WORK/token" >"$WORK/last.out" 2>&1 ||
	fail "docker login failed" "$DOCKER" login "$DP" -u "$E2E_USER" --password-stdin
round_end "$("$DOCKER" version --format 'docker {{.Server.Version}}')"

# ---------------------------------------------------------------- containerd

start_containerd
round_begin containerd
for img in "${IMAGES[@]}"; do
	REF=$(ref "$img")
	run "${CTR[@]}" images pull --plain-http --user "$E2E_USER:$PULL_TOKEN" "$REF" >/dev/null
	expect_digest "${WANT[$img]}" "${CTR[@]}" images ls "name==$REF"
done
REF=$(ref hello)
expect_output "$EXPECT" "${CTR[@]}" run --rm "$REF" e2e-hello
round_end "containerd $("${CTR[@]}" version | awk '/Server:/ { s = 1 } s && /Version:/ { print $2; exit }')"

# ---------------------------------------------------------------- warm cache

CLIENT="warm cache"
REF=-
blob_gets=$(upstream_count "GET blob")
manifest_gets=$(upstream_count "GET manifest")
echo "upstream since the cold round: $blob_gets blob GETs, $manifest_gets manifest GETs, $(upstream_count "HEAD manifest") manifest HEADs"
((blob_gets == 0)) || fail "pulls of cached images fetched $blob_gets blobs upstream" "(all warm rounds)"

# ---------------------------------------------------------------- mirror mode

# The test images sit upstream under library/, so `docker pull hello` means
# docker.io/library/hello through the mirror group.
round_begin "mirror: dockerd"
REF=docker.io/library/hello-oci:latest
must_fail "$DOCKER" pull hello-oci # anonymous pulls are still off: the mirror refuses, the fallback is blocked
set_anonymous true
run "$DOCKER" pull hello-oci >/dev/null
expect_digest "${WANT[hello-oci]}" "$DOCKER" image inspect hello-oci
expect_output "$EXPECT" "$DOCKER" run --rm --network none hello-oci
REF=docker.io/library/multi:latest
run "$DOCKER" pull multi >/dev/null
expect_digest "${WANT[multi]}" "$DOCKER" image inspect multi
round_end "$("$DOCKER" version --format 'docker {{.Server.Version}}')"

round_begin "mirror: containerd hosts.toml"
mkdir -p "$WORK/certs.d/docker.io"
cat >"$WORK/certs.d/docker.io/hosts.toml" <<EOF
server = "https://registry-1.docker.io"

[host."http://$DP"]
  capabilities = ["pull", "resolve"]
EOF
CTR_MIRROR=(env HTTPS_PROXY=http://127.0.0.1:1 NO_PROXY=127.0.0.1,localhost "${CTR[@]}" images pull --hosts-dir "$WORK/certs.d")
REF=docker.io/library/hello:latest
run "${CTR_MIRROR[@]}" "$REF" >/dev/null # anonymous
expect_digest "${WANT[hello]}" "${CTR[@]}" images ls "name==$REF"
expect_output "$EXPECT" "${CTR[@]}" run --rm "$REF" e2e-mirror
REF=docker.io/library/multi:latest
set_anonymous false
run "${CTR_MIRROR[@]}" --user "$E2E_USER:$PULL_TOKEN" "$REF" >/dev/null # with credentials
expect_digest "${WANT[multi]}" "${CTR[@]}" images ls "name==$REF"
# With credentials in hosts.toml, as a kubelet's containerd has them: a
# fixed Basic header carrying the token, sent with every request.
mkdir -p "$WORK/certs-auth.d/docker.io"
cat >"$WORK/certs-auth.d/docker.io/hosts.toml" <<EOF
server = "https://registry-1.docker.io"

[host."http://$DP"]
  capabilities = ["pull", "resolve"]
  [host."http://$DP".header]
    Authorization = "Basic $(printf '%s:%s' "$E2E_USER" "$PULL_TOKEN" | base64 -w0)"
EOF
REF=docker.io/library/hello-oci:latest
run env HTTPS_PROXY=http://127.0.0.1:1 NO_PROXY=127.0.0.1,localhost "${CTR[@]}" images pull --hosts-dir "$WORK/certs-auth.d" "$REF" >/dev/null
expect_digest "${WANT[hello-oci]}" "${CTR[@]}" images ls "name==$REF"
REF=docker.io/library/big:latest
must_fail "${CTR_MIRROR[@]}" "$REF" # anonymous again, now refused
round_end "containerd $("${CTR[@]}" version | awk '/Server:/ { s = 1 } s && /Version:/ { print $2; exit }')"

round_begin "mirror: podman registries.conf"
cat >"$WORK/registries.conf" <<EOF
unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "docker.io"
location = "registry-1.docker.io"

[[registry.mirror]]
location = "$DP"
insecure = true
EOF
# Empty auth files: no credentials saved by the rounds above (the logins in
# $DOCKER_CONFIG, which podman reads too) may leak into the anonymous pulls.
mkdir -p "$WORK/no-auth"
echo '{"auths": {}}' >"$WORK/no-auth/config.json"
# podman_mirror AUTH_DIR ARGS...: podman with the mirror configuration and
# the credentials in AUTH_DIR/config.json only.
podman_mirror() {
	local auth=$1
	shift
	env CONTAINERS_REGISTRIES_CONF="$WORK/registries.conf" REGISTRY_AUTH_FILE="$auth/config.json" DOCKER_CONFIG="$auth" \
		HTTPS_PROXY=http://127.0.0.1:1 NO_PROXY=127.0.0.1,localhost "${PODMAN[@]}" "$@"
}
REF=docker.io/library/hello-oci:latest
# With credentials: --creds is for docker.io itself, so the mirror's
# credentials go into an auth file under the mirror's host.
mkdir -p "$WORK/podman-auth"
echo '{"auths": {}}' >"$WORK/podman-auth/config.json"
if ! DOCKER_CONFIG="$WORK/podman-auth" podman login --authfile "$WORK/podman-auth/config.json" --tls-verify=false -u "$E2E_USER" --password-stdin "$DP" <"$WORK/token" >"$WORK/last.out" 2>&1; then
	fail "podman login failed" podman login --authfile "$WORK/podman-auth/config.json" "$DP"
fi
run podman_mirror "$WORK/podman-auth" pull "$REF" >/dev/null
expect_digest "${WANT[hello-oci]}" "${PODMAN[@]}" image inspect "$REF"
REF=docker.io/library/big:latest
must_fail podman_mirror "$WORK/no-auth" pull "$REF" # anonymous, refused
set_anonymous true
run podman_mirror "$WORK/no-auth" pull "$REF" >/dev/null # anonymous, allowed
expect_digest "${WANT[big]}" "${PODMAN[@]}" image inspect "$REF"
expect_output "$EXPECT" podman_mirror "$WORK/no-auth" "${PODMAN_RUN[@]}" "$REF"
round_end "$(podman --version)"

CLIENT="warm cache (after mirror rounds)"
REF=-
blob_gets=$(upstream_count "GET blob")
((blob_gets == 0)) || fail "mirror pulls of cached images fetched $blob_gets blobs upstream" "(mirror rounds)"

# ---------------------------------------------------------------- virtual registry

# A container virtual registry over the same upstream, set up with the CLI
# and pulled with crane; a token without read_virtual_registry is refused.
round_begin "virtual registry (crane)"
dpx virtual-registry create "$GROUP" all >/dev/null
dpx virtual-registry upstream add 1 e2e "$UPSTREAM_URL" >/dev/null
VR_TOKEN=$(dpx token create --user "$E2E_USER" --scopes read_virtual_registry,read_registry --name e2e-virtual)
run "$CRANE" auth login "$DP" -u "$E2E_USER" -p "$VR_TOKEN" >/dev/null
for img in hello multi; do
	REF=$DP/virtual_registries/container/1/library/$img:latest
	expect_digest "${WANT[$img]}" "$CRANE" digest "$REF"
	run "$CRANE" pull --format oci "$REF" "$WORK/vr-$img" >/dev/null
	grep -q "${WANT[$img]}" "$WORK/vr-$img/index.json" || fail "pulled layout lacks the upstream digest" "$CRANE" pull "$REF"
done
REF=$DP/virtual_registries/container/1/library/hello
expect_tags "$HELLO_TAGS" "$CRANE" ls "$REF"
dpx virtual-registry cache list 1 >"$WORK/vr-cache.txt"
grep -q "^library/hello/manifests/latest" "$WORK/vr-cache.txt" ||
	fail "the upstream's cache does not list library/hello:latest" "$BIN/dproxy" virtual-registry cache list 1
run "$CRANE" auth login "$DP" -u "$E2E_USER" -p "$PULL_TOKEN" >/dev/null
must_fail "$CRANE" digest "$DP/virtual_registries/container/1/library/hello:latest"
grep -q DENIED "$WORK/last.out" || fail "a token without read_virtual_registry was not refused with DENIED" "$CRANE" digest "$REF"
round_end "crane $("$CRANE" version)"

# ---------------------------------------------------------------- mirror-ns

rounds_mirror_ns

# ---------------------------------------------------------------- tui

# A person at a terminal: `dproxy tui` in tmux against the running server
# (signed in with the local initial admin token, read from --data-dir), keys
# sent, the pane captured and read as a person would.
round_begin "dproxy tui in tmux"
tm new-session -d -s tui -x 100 -y 30 \
	"NO_COLOR=1 $BIN/dproxy tui --server http://$DP --data-dir $WORK/dproxy-data --refresh 0; sleep 30"
PIDS+=("$(tm display-message -p '#{pid}')") # the tmux server, stopped on exit
pane_shows "Groups"
pane_shows "$GROUP "
pane_shows "enabled"
tm send-keys -t tui Enter
pane_shows "Group $GROUP"
pane_shows "library/hello"
pane_shows "? help"
# Filter to the image, open it: the reference to pull it by, whole.
tm send-keys -t tui / hello Enter
pane_shows "filter /hello"
tm send-keys -t tui Enter
pane_shows "$GROUP › library/hello:latest"
pane_shows "$DP/$GROUP/dependency_proxy/containers/library/hello:latest"
tm send-keys -t tui Escape
pane_shows "tab blobs"
tm send-keys -t tui p
pane_shows "Purge the cache of group $GROUP?"
pane_shows "This removes its"
tm send-keys -t tui y
pane_shows "purged $GROUP:"
pane_shows "No cached images yet"
cat "$WORK/pane.txt"
dpx group show "$GROUP" -o json >"$WORK/group.json"
grep -q '"dependencyProxyImageCount": *0' "$WORK/group.json" ||
	fail "after purging in the tui the server still lists images of $GROUP" "$BIN/dproxy" group show "$GROUP" -o json
tm send-keys -t tui q
tm kill-server
round_end "$(tmux -V)"

# ---------------------------------------------------------------- tui --activity

round_tui_activity

# ---------------------------------------------------------------- summary

log "summary"
printf '%-32s %-32s %7s\n' "ROUND" "CLIENT VERSION" "TIME"
printf '%s\n' "${SUMMARY[@]}"
echo "upstream blob GETs: $blob_gets_cold in the cold round, 0 in the warm and mirror rounds"
echo "e2e passed in $(($(date +%s) - START_ALL))s"
