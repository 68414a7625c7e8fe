#!/usr/bin/env bash
# The service image, without a Docker daemon: the CI build job and a developer run this script.
#
#   scripts/build-image.sh base           only prepare the base image (pull it, or debootstrap it)
#   scripts/build-image.sh build          buildah bud the Dockerfile into $IMAGE
#   scripts/build-image.sh push REF...    push $IMAGE to each REF; its digest goes to $DIGEST_FILE
#   scripts/build-image.sh smoke [REF]    run $IMAGE (or REF, pulled first) as the cluster does and
#                                         check it: readiness, a prediction, HEALTHCHECK, UID 10001,
#                                         read-only root fs, writable /tmp, SIGTERM exits 0
#   scripts/build-image.sh                build, then smoke (the local check before a merge request)
#
# `build` needs models/model.onnx, models/features.json, models/reference_profile.json (from
# `dvc repro`, `dvc pull` or, in CI, the train job's artifacts) and uv.lock (`make setup`). The
# uv inside the image is the one .gitlab-ci.yml pins (UV_VERSION): one pin for CI and image.
#
# Environment:
#   BASE_IMAGE     unset: the Dockerfile's digest-pinned python base (pulled from Docker Hub);
#                  "debootstrap": an equivalent Debian base made here with debootstrap, for a
#                  machine that cannot pull from Docker Hub (SUITE, MIRROR, EXTRA_CA_CERTS apply);
#                  any other value: that image.
#   IMAGE          the local image name (default localhost/{{ cookiecutter.project_slug }}:local)
#   WORK           scratch dir: container storage, logs, the debootstrap rootfs
#                  (default /tmp/{{ cookiecutter.project_slug }}-image); reuse it to reuse layers
#   STORAGE_DRIVER overlay (default) or vfs (inside an unprivileged CI container)
#   REGISTRY_USER / REGISTRY_PASSWORD   log in before push (CI: the job's registry credentials)
#   REGISTRY_TLS_VERIFY   false for a plain-HTTP registry (e.g. one on 127.0.0.1)
#   DIGEST_FILE    where push writes the pushed manifest's digest (default image.digest)
#   SUITE          Debian release for debootstrap (default {{ "bookworm" if cookiecutter.python_version == "3.11" else "trixie" }}: its python3 must satisfy requires-python)
#   MIRROR         Debian mirror URL; EXTRA_CA_CERTS: PEM files the build must trust (a TLS-
#                  inspecting proxy's CA, for pip/uv inside the build)
#   PORT / METRICS_PORT   host ports of the smoke run (host network; default 18000 / 19000)
#
# Needs buildah (build, push) and podman + runc (smoke); build and smoke run as root here
# (rootful storage under $WORK), as the CI image's buildah does.
set -euo pipefail

SLUG="{{ cookiecutter.project_slug }}"
cd "$(dirname "$0")/.."
WORK="${WORK:-/tmp/${SLUG}-image}"
IMAGE="${IMAGE:-localhost/${SLUG}:local}"
SUITE="${SUITE:-{{ "bookworm" if cookiecutter.python_version == "3.11" else "trixie" }}}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
PORT="${PORT:-18000}"
METRICS_PORT="${METRICS_PORT:-19000}"
DIGEST_FILE="${DIGEST_FILE:-image.digest}"
TLS_VERIFY="--tls-verify=${REGISTRY_TLS_VERIFY:-true}"
# podman refuses a runroot over 50 characters, which a deep $WORK gives: one short directory per
# $WORK instead (the same one every run, as the storage beside it expects).
RUNROOT="/tmp/ctr-run-$(printf '%s' "$WORK" | sha256sum | cut -c1-12)"
STORE=(--root "$WORK/storage" --runroot "$RUNROOT" --storage-driver "${STORAGE_DRIVER:-overlay}")
# Files the Dockerfile copies besides the code: a build without them fails late and unclearly.
INPUTS=(uv.lock models/model.onnx models/features.json models/reference_profile.json)

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'build-image: %s\n' "$*" >&2; exit 1; }
need() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null || fail "$tool is not installed (Debian: apt-get install $tool)"
    done
}

# The one uv pin: .gitlab-ci.yml's UV_VERSION (in CI it is already in the environment).
uv_version() {
    local pin="${UV_VERSION:-}"
    [ -n "$pin" ] || pin=$(sed -n 's/^  UV_VERSION: "\([^"]*\)".*/\1/p' .gitlab-ci.yml)
    [ -n "$pin" ] || fail "no UV_VERSION: set it, or keep the 'UV_VERSION: \"x.y.z\"' line in .gitlab-ci.yml"
    printf '%s' "$pin"
}

debootstrap_base() {
    local base="localhost/${SLUG}-base:${SUITE}" rootfs="$WORK/rootfs-$SUITE" ctr mnt
    if buildah "${STORE[@]}" inspect --type image "$base" >/dev/null 2>&1; then
        printf '%s' "$base"
        return
    fi
    need debootstrap
    [ "$(id -u)" = 0 ] || fail "debootstrap needs root"
    if [ ! -x "$rootfs/usr/bin/python3" ]; then
        rm -rf "$rootfs"
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            "$SUITE" "$rootfs" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
            || { tail -20 "$WORK/debootstrap.log" >&2; fail "debootstrap failed (log: $WORK/debootstrap.log)"; }
    fi
    for cert in ${EXTRA_CA_CERTS:-}; do
        cp "$cert" "$rootfs/usr/local/share/ca-certificates/extra-$(basename "${cert%.*}").crt"
    done
    [ -z "${EXTRA_CA_CERTS:-}" ] || chroot "$rootfs" update-ca-certificates > /dev/null
    rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
    ctr=$(buildah "${STORE[@]}" from scratch)
    mnt=$(buildah "${STORE[@]}" mount "$ctr")
    cp -a "$rootfs/." "$mnt/"
    buildah "${STORE[@]}" umount "$ctr" > /dev/null
    buildah "${STORE[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --cmd /bin/sh "$ctr"
    buildah "${STORE[@]}" commit --rm --quiet "$ctr" "$base" > /dev/null
    printf '%s' "$base"
}

# The base image the build starts from: pulled (the Dockerfile's pinned default, or BASE_IMAGE),
# or made here (BASE_IMAGE=debootstrap). Prints its name.
base() {
    need buildah
    local ref="${BASE_IMAGE:-}"
    if [ "$ref" = debootstrap ]; then
        debootstrap_base
        return
    fi
    [ -n "$ref" ] || ref=$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile)
    buildah "${STORE[@]}" pull --quiet "$TLS_VERIFY" "$ref" > /dev/null || fail "cannot pull the base image $ref"
    printf '%s' "$ref"
}

build() {
    need buildah
    for f in "${INPUTS[@]}"; do
        [ -f "$f" ] || fail "$f is missing: run \`make setup\` and \`make repro\` (or \`dvc pull\`) first"
    done
    local args=(--build-arg "UV_VERSION=$(uv_version)")
    case "${BASE_IMAGE:-}" in
        "") ;;  # the Dockerfile's own pinned default, pulled by the build
        debootstrap)
            say "base image: debootstrap $SUITE"
            args+=(--build-arg "BASE_IMAGE=$(debootstrap_base)") ;;
        *) args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE") ;;
    esac
    if revision=$(git rev-parse HEAD 2>/dev/null); then
        args+=(--label "org.opencontainers.image.revision=$revision")
    fi
    [ -z "${CI_PROJECT_URL:-}" ] || args+=(--label "org.opencontainers.image.source=$CI_PROJECT_URL")
    say "buildah bud -> $IMAGE"
    local started
    started=$(date +%s)
    # --format docker: the OCI format has no HEALTHCHECK field and would drop it.
    buildah "${STORE[@]}" bud --isolation "${BUILDAH_ISOLATION:-chroot}" --layers --quiet \
        --format docker "$TLS_VERIFY" "${args[@]}" -t "$IMAGE" -f Dockerfile . > "$WORK/build.log" 2>&1 \
        || { tail -40 "$WORK/build.log" >&2; fail "image build failed (log: $WORK/build.log)"; }
    echo "built $IMAGE in $(( $(date +%s) - started )) s"
}

push() {
    need buildah
    [ "$#" -gt 0 ] || fail "push needs at least one destination, e.g. registry.example.com/group/${SLUG}:v1.0.0"
    local auth=()
    if [ -n "${REGISTRY_USER:-}" ]; then
        auth=(--authfile "$WORK/auth.json")
        printf '%s' "${REGISTRY_PASSWORD:-}" | buildah login "$TLS_VERIFY" "${auth[@]}" \
            --username "$REGISTRY_USER" --password-stdin "${1%%/*}" > /dev/null \
            || fail "login to ${1%%/*} as $REGISTRY_USER failed"
    fi
    for ref in "$@"; do
        say "push $IMAGE -> $ref"
        buildah "${STORE[@]}" push --quiet "$TLS_VERIFY" "${auth[@]}" --digestfile "$WORK/digest" \
            "$IMAGE" "docker://$ref" || fail "push to $ref failed"
    done
    cp "$WORK/digest" "$DIGEST_FILE"
    echo "IMAGE_DIGEST=$(cat "$DIGEST_FILE")"
}

smoke() {
    need podman runc python3
    local image="${1:-$IMAGE}"
    # Globals, not locals: the EXIT trap below runs after this function has returned.
    name="${SLUG}-smoke-$$"
    podman=(podman "${STORE[@]}" --runtime runc --cgroup-manager cgroupfs --events-backend none)
    if [ "$#" -gt 0 ]; then
        say "pull $image"
        "${podman[@]}" pull --quiet "$TLS_VERIFY" "$image" > /dev/null || fail "cannot pull $image"
    fi
    say "run $image read-only as a non-root user"
    cleanup() { "${podman[@]}" rm -f "$name" > /dev/null 2>&1 || true; }
    trap cleanup EXIT
    "${podman[@]}" run -d --name "$name" --network host --read-only --tmpfs /tmp:rw,size=16m \
        --cap-drop ALL --security-opt no-new-privileges --health-interval disable \
        --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 \
        -e API_KEYS=smoke-key -e PORT="$PORT" -e METRICS_PORT="$METRICS_PORT" -e DRAIN_DELAY_S=1 \
        "$image" > /dev/null
    # The request is built from the image's own feature schema, not from the working tree.
    local schema
    schema=$("${podman[@]}" exec "$name" python3 -c "print(open('/app/models/features.json').read())")

    SCHEMA="$schema" PORT="$PORT" METRICS_PORT="$METRICS_PORT" python3 - <<'PY'
import json, os, time, urllib.error, urllib.request

base = f"http://127.0.0.1:{os.environ['PORT']}"
deadline = time.monotonic() + 90
while True:
    try:
        with urllib.request.urlopen(f"{base}/health/ready", timeout=2) as r:
            if r.status == 200:
                break
    except (urllib.error.URLError, OSError):
        pass
    if time.monotonic() > deadline:
        raise SystemExit("the container did not become ready in 90 s")
    time.sleep(0.5)
print("ready:", urllib.request.urlopen(f"{base}/health/ready", timeout=5).read().decode())
schema = json.loads(os.environ["SCHEMA"])
record = {}
for f in schema["features"]:
    record[f["name"]] = {
        "categorical": (f.get("categories") or [None])[0], "money": "($1,250.00)", "percent": "42%",
    }.get(f["kind"], 0.5)
request = urllib.request.Request(
    f"{base}/v1/predict", data=json.dumps(record).encode(),
    headers={"X-API-Key": "smoke-key", "Content-Type": "application/json"}, method="POST",
)
answer = json.loads(urllib.request.urlopen(request, timeout=10).read())
assert 0.0 <= answer["p_hat"] <= 1.0 and answer["business_outcome"] in (0, 1), answer
assert answer["model_version"] == schema["model"]["version"], answer
print("prediction:", answer)
metrics = urllib.request.urlopen(f"http://127.0.0.1:{os.environ['METRICS_PORT']}/metrics", timeout=5).read()
assert b"model_ready 1.0" in metrics
PY

    local health uid code size
    health=$("${podman[@]}" image inspect --format '{{ "{{json .HealthCheck}}" }}' "$image")
    case "$health" in *health/ready*) ;; *) fail "the image has no HEALTHCHECK ($health)";; esac
    "${podman[@]}" healthcheck run "$name" || fail "the image's HEALTHCHECK command fails"
    echo "HEALTHCHECK present and passing"
    uid=$("${podman[@]}" exec "$name" python3 -c "import os; print(os.getuid())")
    [ "$uid" = 10001 ] || fail "the service runs as uid $uid, not 10001"
    if "${podman[@]}" exec "$name" python3 -c "open('/app/probe', 'w')" 2>/dev/null; then
        fail "the root filesystem is writable"
    fi
    "${podman[@]}" exec "$name" python3 -c "open('/tmp/probe', 'w').write('ok')"
    echo "uid $uid, root fs read-only, /tmp writable"

    say "SIGTERM (podman stop)"
    "${podman[@]}" stop -t 30 "$name" > /dev/null
    code=$("${podman[@]}" inspect --format '{{ "{{.State.ExitCode}}" }}' "$name")
    [ "$code" = 0 ] || fail "the service exited $code on SIGTERM"
    echo "exited $code"
    "${podman[@]}" logs "$name" 2>&1 | tail -3

    size=$("${podman[@]}" image inspect --format '{{ "{{.Size}}" }}' "$image")
    say "OK: $image is $(( size / 1000000 )) MB"
    echo "IMAGE_SIZE_BYTES=$size"
}

mkdir -p "$WORK"
case "${1:-}" in
    base) say "base image: $(base)" ;;
    build) build ;;
    push) shift; push "$@" ;;
    smoke) shift; smoke "$@" ;;
    "") build; smoke ;;
    *) fail "unknown command '$1': use base, build, push REF..., smoke [REF] or no argument (build + smoke)" ;;
esac
