#!/usr/bin/env bash
# Build the service image WITHOUT a Docker daemon and smoke-test it the way a cluster runs it.
#
#   1. debootstrap a minimal Debian base with python3 (no registry pull needed) and import it
#      as localhost/<slug>-base with buildah;
#   2. `buildah bud` the repository's Dockerfile with BASE_IMAGE pointing at that base;
#   3. run it with podman + runc: read-only root fs, writable /tmp only, UID 10001, no
#      capabilities, no new privileges; check readiness, a prediction, the UID and that the root
#      fs is read-only; stop it (SIGTERM) and check it exited 0; print the image size.
#
# Needs root and the Debian packages buildah podman runc debootstrap; models/model.onnx and
# models/features.json must exist (`dvc repro` or `dvc pull`). The CI image build (kaniko) uses
# the digest-pinned python base from the Dockerfile instead; this is the offline equivalent.
#
# Environment: WORK (scratch dir; storage, rootfs and logs; default /tmp/<slug>-image),
# SUITE (Debian release, default {{ "bookworm" if cookiecutter.python_version == "3.11" else "trixie" }}: its python3 must satisfy requires-python),
# MIRROR (Debian mirror URL), EXTRA_CA_CERTS (PEM files the build must trust, e.g. a TLS-
# inspecting proxy's CA), PORT / METRICS_PORT (host ports for the smoke run; host network).
set -euo pipefail

SLUG="{{ cookiecutter.project_slug }}"
cd "$(dirname "$0")/.."
WORK="${WORK:-/tmp/${SLUG}-image}"
SUITE="${SUITE:-{{ "bookworm" if cookiecutter.python_version == "3.11" else "trixie" }}}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
PORT="${PORT:-18000}"
METRICS_PORT="${METRICS_PORT:-19000}"
BASE="localhost/${SLUG}-base:${SUITE}"
IMAGE="localhost/${SLUG}:local"
NAME="${SLUG}-smoke-$$"
STORE=(--root "$WORK/storage" --runroot "$WORK/run" --storage-driver "${STORAGE_DRIVER:-overlay}")

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'build-image: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (buildah/podman rootful storage under $WORK)"
for tool in buildah podman runc debootstrap python3; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (Debian: apt-get install buildah podman runc debootstrap)"
done
for f in models/model.onnx models/features.json uv.lock; do
    [ -f "$f" ] || fail "$f is missing: run \`make setup\` and \`dvc repro\` (or \`dvc pull\`) first"
done
mkdir -p "$WORK"

say "base image $BASE (debootstrap $SUITE)"
if ! buildah "${STORE[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
    rootfs="$WORK/rootfs-$SUITE"
    if [ ! -x "$rootfs/usr/bin/python3" ]; then
        rm -rf "$rootfs"
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            "$SUITE" "$rootfs" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
            || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap failed"; }
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
    buildah "${STORE[@]}" commit --rm --quiet "$ctr" "$BASE" > /dev/null
fi

say "buildah bud -> $IMAGE"
started=$(date +%s)
# --format docker: the OCI format has no HEALTHCHECK field and would drop it.
buildah "${STORE[@]}" bud --isolation chroot --layers --quiet --format docker \
    --build-arg "BASE_IMAGE=$BASE" -t "$IMAGE" -f Dockerfile . > "$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log"; fail "image build failed (log: $WORK/build.log)"; }
echo "built in $(( $(date +%s) - started )) s"

PODMAN=(podman "${STORE[@]}" --runtime runc --cgroup-manager cgroupfs --events-backend none)
say "run $IMAGE read-only as a non-root user"
cleanup() { "${PODMAN[@]}" rm -f "$NAME" > /dev/null 2>&1 || true; }
trap cleanup EXIT
"${PODMAN[@]}" run -d --name "$NAME" --network host --read-only --tmpfs /tmp:rw,size=16m \
    --cap-drop ALL --security-opt no-new-privileges --health-interval disable \
    --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 \
    -e API_KEYS=smoke-key -e PORT="$PORT" -e METRICS_PORT="$METRICS_PORT" -e DRAIN_DELAY_S=1 \
    "$IMAGE" > /dev/null

PORT="$PORT" METRICS_PORT="$METRICS_PORT" python3 - <<'PY'
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
schema = json.load(open("models/features.json"))
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
print("prediction:", answer)
metrics = urllib.request.urlopen(f"http://127.0.0.1:{os.environ['METRICS_PORT']}/metrics", timeout=5).read()
assert b"model_ready 1.0" in metrics
PY

health=$("${PODMAN[@]}" image inspect --format '{{ "{{json .HealthCheck}}" }}' "$IMAGE")
case "$health" in *health/ready*) ;; *) fail "the image has no HEALTHCHECK ($health)";; esac
"${PODMAN[@]}" healthcheck run "$NAME" || fail "the image's HEALTHCHECK command fails"
echo "HEALTHCHECK present and passing"
uid=$("${PODMAN[@]}" exec "$NAME" python3 -c "import os; print(os.getuid())")
[ "$uid" = 10001 ] || fail "the service runs as uid $uid, not 10001"
if "${PODMAN[@]}" exec "$NAME" python3 -c "open('/app/probe', 'w')" 2>/dev/null; then
    fail "the root filesystem is writable"
fi
"${PODMAN[@]}" exec "$NAME" python3 -c "open('/tmp/probe', 'w').write('ok')"
echo "uid $uid, root fs read-only, /tmp writable"

say "SIGTERM (podman stop)"
"${PODMAN[@]}" stop -t 30 "$NAME" > /dev/null
code=$("${PODMAN[@]}" inspect --format '{{ "{{.State.ExitCode}}" }}' "$NAME")
[ "$code" = 0 ] || fail "the service exited $code on SIGTERM"
echo "exited $code"
"${PODMAN[@]}" logs "$NAME" 2>&1 | tail -3

size=$("${PODMAN[@]}" image inspect --format '{{ "{{.Size}}" }}' "$IMAGE")
base_size=$("${PODMAN[@]}" image inspect --format '{{ "{{.Size}}" }}' "$BASE")
say "OK: $IMAGE is $(( size / 1000000 )) MB (base $BASE $(( base_size / 1000000 )) MB)"
echo "IMAGE_SIZE_BYTES=$size"
