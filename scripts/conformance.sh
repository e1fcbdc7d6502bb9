#!/usr/bin/env bash
# OCI distribution-spec conformance, pull workflow, through dproxy.
#
#   scripts/conformance.sh [LABEL=]DISTRIBUTION_SPEC_DIR...    (or: make conformance DISTRIBUTION_SPEC=DIR)
#
# Each argument is a checkout of github.com/opencontainers/distribution-spec
# (a release such as v1.1.1, or the main branch). Its conformance suite is
# built into a temp dir, never into this tree: `go test -c` for the
# releases' Ginkgo suite, `go build` for the main branch's runner (the one
# with conformance/main.go). Then, on loopback only, the script starts the
# test upstream (e2e/upstream: a real registry behind Docker-Hub-like token
# auth) seeded with a small OCI image under four tags, and a `dproxy serve`
# built from this tree with a mirror group and a virtual registry over that
# upstream, and runs every suite against three paths to the same image:
#
#   proxy    <group>/dependency_proxy/containers/<repo>
#   virtual  virtual_registries/container/<id>/<repo>
#   mirror   <repo> (mirror mode)
#
# signed in with a token of a guest of the group (read_registry and
# read_virtual_registry). dproxy accepts no pushes, so the suites run
# read-only on the seeded content. The main-branch suite runs once per
# CONFORMANCE_MAIN_VARIANTS item (default "tags-off tags-on": without and
# with its tag-listing checks; add "all" for tag listing and referrers).
#
# Prints one line per run (passed/failed/skipped checks) and exits non-zero
# when any check failed. CONFORMANCE_KEEP=1 keeps the work dir with every
# run's output and reports.
set -euo pipefail
exec </dev/null

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if (($# == 0)) || [[ $1 == -h || $1 == --help ]]; then
	sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
	exit 2
fi
VARIANTS=${CONFORMANCE_MAIN_VARIANTS:-tags-off tags-on}
GROUP=conformance
REPO=conformance/repo1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dproxy-conformance.XXXXXX")
PIDS=()
cleanup() {
	local rc=$? i
	set +e
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null; done
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do wait "${PIDS[i]}" 2>/dev/null; done
	if [[ -n ${CONFORMANCE_KEEP:-} ]]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
	exit "$rc"
}
trap cleanup EXIT
die() {
	echo "conformance: $*" >&2
	exit 1
}
wait_for() { # wait_for WHAT CMD...: up to 60 s
	local what=$1 i
	shift
	for ((i = 0; i < 600; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	for f in "$WORK"/*.log; do echo "--- tail of $f"; tail -n 20 "$f"; done >&2
	die "$what did not come up in 60 s"
}

# ------------------------------------------------------------------ build

mkdir -p "$WORK/bin"
echo "building dproxy and the test upstream"
(cd "$ROOT" && go build -o "$WORK/bin/dproxy" ./cmd/dproxy && go build -o "$WORK/bin/upstream" ./e2e/upstream)

SUITES=() # "label kind binary"
for arg in "$@"; do
	label=${arg%%=*} dir=${arg#*=}
	[[ $arg == *=* ]] || label=""
	[[ -d $dir/conformance ]] || die "$dir has no conformance/ folder: give a checkout of opencontainers/distribution-spec"
	dir=$(cd "$dir" && pwd)
	if [[ -z $label ]]; then
		label=$(git -C "$dir" describe --tags --exact-match 2>/dev/null ||
			git -C "$dir" rev-parse --short=12 HEAD 2>/dev/null || basename "$dir")
	fi
	bin=$WORK/bin/conformance-${#SUITES[@]}
	echo "building the conformance suite of $label ($dir)"
	if [[ -f $dir/conformance/main.go ]]; then
		(cd "$dir/conformance" && go build -o "$bin" .) || die "building $dir/conformance failed"
		SUITES+=("$label runner $bin")
	else
		(cd "$dir/conformance" && go test -c -o "$bin" .) || die "building $dir/conformance failed"
		SUITES+=("$label ginkgo $bin")
	fi
done

# ------------------------------------------------------------------ start

echo "starting the upstream, seeded with $REPO"
"$WORK/bin/upstream" -env "$WORK/upstream.env" -seed "$REPO" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
wait_for "the upstream" test -s "$WORK/upstream.env"
# shellcheck disable=SC1091
source "$WORK/upstream.env"

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DP=127.0.0.1:$PORT
echo "starting dproxy on $DP"
"$WORK/bin/dproxy" serve --addr "$DP" --external-url "http://$DP" --data-dir "$WORK/dproxy-data" \
	--upstream "$UPSTREAM_URL" --mirror-group "$GROUP" --upstream-allow-cidr 127.0.0.1/32 \
	--log-format text >"$WORK/dproxy.log" 2>&1 &
PIDS+=($!)
wait_for "dproxy" curl -sf "http://$DP/-/readiness"

dpx() { DPROXY_TOKEN=$(cat "$WORK/dproxy-data/initial_admin_token") "$WORK/bin/dproxy" --server "http://$DP" "$@"; }
dpx group create "$GROUP" >/dev/null
dpx user create puller >/dev/null
dpx member add "$GROUP" puller --role guest >/dev/null
TOKEN=$(dpx token create --user puller --scopes read_registry,read_virtual_registry --name conformance)
# The admin API's id is a global id ending in the number pull paths use.
VR=$(dpx virtual-registry create "$GROUP" conformance -o json | python3 -c 'import json, sys; print(str(json.load(sys.stdin)["id"]).rsplit("/", 1)[-1])')
[[ $VR =~ ^[0-9]+$ ]] || die "virtual-registry create gave the id \"$VR\""
dpx virtual-registry upstream add "$VR" upstream "$UPSTREAM_URL" >/dev/null

declare -A PATHS=(
	[proxy]=$GROUP/dependency_proxy/containers/$REPO
	[virtual]=virtual_registries/container/$VR/$REPO
	[mirror]=$REPO
)
FIRST_TAG=${SEED_TAGS%% *}

# ------------------------------------------------------------------ run

FAILED=0
RESULTS=()
result() { # result SUITE PATH VARIANT PASSED FAILED SKIPPED
	RESULTS+=("$(printf '%-14s %-8s %-9s %7s %7s %8s' "$@")")
	[[ $5 == 0 && -n $4 && $4 != 0 ]] || FAILED=1
}

for suite in "${SUITES[@]}"; do
	read -r label kind bin <<<"$suite"
	for path in proxy virtual mirror; do
		ns=${PATHS[$path]}
		if [[ $kind == ginkgo ]]; then
			out=$WORK/out/$label/$path
			mkdir -p "$out"
			echo "running $label, pull workflow, $path: $ns"
			(cd "$out" && env OCI_ROOT_URL="http://$DP" OCI_NAMESPACE="$ns" OCI_USERNAME=puller OCI_PASSWORD="$TOKEN" \
				OCI_TEST_PULL=1 OCI_TAG_NAME="$FIRST_TAG" OCI_MANIFEST_DIGEST="$SEED_MANIFEST" OCI_BLOB_DIGEST="$SEED_CONFIG" \
				OCI_HIDE_SKIPPED_WORKFLOWS=1 OCI_REPORT_DIR="$out" "$bin" -ginkgo.no-color -ginkgo.v >"$out/output.txt" 2>&1) || true
			# Ginkgo's summary: "FAIL! -- 12 Passed | 2 Failed | 0 Pending | 13 Skipped"
			line=$(grep -aE '[0-9]+ Passed \| [0-9]+ Failed' "$out/output.txt" | tail -1 || true)
			[[ -n $line ]] || { tail -n 30 "$out/output.txt" >&2; die "$label on $path printed no summary"; }
			passed=$(sed -E 's/.* ([0-9]+) Passed.*/\1/' <<<"$line")
			failed=$(sed -E 's/.* ([0-9]+) Failed.*/\1/' <<<"$line")
			skipped=$(sed -E 's/.* ([0-9]+) Skipped.*/\1/' <<<"$line")
			result "$label" "$path" pull "$passed" "$failed" "$skipped"
			grep -aE '^\s*\[FAIL\]' "$out/output.txt" | sort -u | sed 's/^ */    /' || true
			continue
		fi
		for variant in $VARIANTS; do
			tags=false referrers=false
			case $variant in
			tags-off) ;;
			tags-on) tags=true ;;
			all) tags=true referrers=true ;;
			*) die "CONFORMANCE_MAIN_VARIANTS: unknown variant $variant (tags-off, tags-on, all)" ;;
			esac
			out=$WORK/out/$label/$path-$variant
			mkdir -p "$out"
			echo "running $label, read-only pull, $variant, $path: $ns"
			(cd "$out" && env OCI_REGISTRY="$DP" OCI_TLS=disabled OCI_REPO1="$ns" OCI_REPO2="$ns" \
				OCI_USERNAME=puller OCI_PASSWORD="$TOKEN" OCI_VERSION=1.1 OCI_RESULTS_DIR="$out" \
				OCI_API_PULL=true OCI_API_PUSH=false OCI_API_BLOBS_DELETE=false OCI_API_MANIFESTS_DELETE=false \
				OCI_API_TAGS_DELETE=false OCI_API_TAGS_LIST=$tags OCI_API_REFERRER=$referrers \
				OCI_RO_DATA_TAGS="$SEED_TAGS" OCI_RO_DATA_MANIFESTS="$SEED_MANIFEST" \
				OCI_RO_DATA_BLOBS="$SEED_CONFIG $SEED_LAYER" OCI_RO_DATA_REFERRERS="$([[ $referrers == true ]] && echo "$SEED_MANIFEST")" \
				"$bin" >"$out/output.txt" 2>&1) || true
			# The runner's summary: "  Pass....: 18", "  FAIL....: 2", "  Error...: 0", ...
			count() { sed -nE "s/^  $1\.*: +([0-9]+)$/\1/p" "$out/output.txt" | head -1; }
			passed=$(count Pass)
			[[ -n $passed ]] || { tail -n 30 "$out/output.txt" >&2; die "$label on $path printed no summary"; }
			result "$label" "$path" "$variant" "$passed" "$(($(count FAIL) + $(count Error)))" "$(($(count Skip) + $(count Disabled)))"
			grep -aE '^ +OCI Conformance Test/.*: (FAIL|Error)$' "$out/output.txt" | sed 's/^ */    /' || true
		done
	done
done

echo
printf '%-14s %-8s %-9s %7s %7s %8s\n' SUITE PATH RUN PASSED FAILED SKIPPED
printf '%s\n' "${RESULTS[@]}"
exit "$FAILED"
