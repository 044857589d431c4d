#!/bin/sh
# Entry point of the executor image under the process backend: gives the executor the cgroup v2 controllers
# of its container, then runs the command ("node apps/executor/dist/main.js").
#
# A privileged container with its own cgroup namespace (the default for cgroup v2 under containerd and
# Kubernetes >= 1.25) sees its own cgroup as a writable /sys/fs/cgroup, but with no controller enabled for
# children, and cgroup v2 refuses to enable them while processes sit in that cgroup ("no internal
# processes"). So, as moby's docker-in-docker entry point does: move this container's processes into the
# leaf cgroup `executor`, enable every available controller for the root's children, and again for
# `batchapi`, the parent of one cgroup per attempt that the executor makes (memory.max, and cpu.weight or
# cpu.max by BATCH_CPU_LIMIT). Without it the attempt groups have neither and attempts run without limits.
#
# Only inside a private cgroup namespace (/proc/self/cgroup says "0::/"): with the host's namespace the
# root would be the node's. CGROUP_ROOT and SELF_CGROUP exist for the test (tools/ops/test/helm.spec.ts).
set -eu
root=${CGROUP_ROOT:-/sys/fs/cgroup}
self=${SELF_CGROUP:-/proc/self/cgroup}
if [ -f "$root/cgroup.controllers" ] && [ "$(cat "$self")" = "0::/" ] && [ -w "$root/cgroup.subtree_control" ]; then
  mkdir -p "$root/executor" "$root/batchapi"
  # each write moves one process; processes that ended meanwhile are skipped
  while read -r pid; do echo "$pid" >>"$root/executor/cgroup.procs" 2>/dev/null || :; done <"$root/cgroup.procs"
  enable=$(sed -e 's/^ *//' -e 's/ *$//' -e 's/  */ +/g' -e 's/^./+&/' "$root/cgroup.controllers")
  if [ -n "$enable" ]; then
    echo "$enable" >"$root/cgroup.subtree_control" || echo "executor-entrypoint: could not enable $enable on $root" >&2
    echo "$enable" >"$root/batchapi/cgroup.subtree_control" || echo "executor-entrypoint: could not enable $enable on $root/batchapi" >&2
  fi
fi
exec "$@"
