#!/usr/bin/env bash
# Submits a fleet replay to the current kubectl context: the bag list as the ConfigMap
# pipeline-seg-bags, the Indexed replay Job with one completion per bag, and, once every index
# has succeeded, the merge Job. Usage:
#   deploy/k8s/submit.sh BAGS.txt [IMAGE]
# BAGS.txt: one bag path per line as the pods see it (under /bags); blank and # lines are dropped.
# IMAGE (default pipeline_seg:latest): the image of deploy/Dockerfile in a registry the cluster
# pulls from. The claims of storage.yaml must exist (kubectl apply -f deploy/k8s/storage.yaml).
# A replay Job of the same name that already exists is deleted first (finished runs stay on the
# volume and are not redone). Not run here: no cluster (deploy/README.md).
set -euo pipefail
list=${1:?usage: submit.sh BAGS.txt [IMAGE]}
image=${2:-pipeline_seg:latest}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
grep -v -e '^[[:space:]]*$' -e '^[[:space:]]*#' "$list" > "$tmp" || true
n=$(wc -l < "$tmp")
[ "$n" -gt 0 ] || { echo "submit.sh: no bags in $list" >&2; exit 2; }

# Waits until the Job has the condition Complete or Failed (some index out of retries) and prints it.
wait_job() {
  local s
  while :; do
    s=$(kubectl get job "$1" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}')
    case " $s " in
      *" Complete "*) echo Complete; return ;;
      *" Failed "*) echo Failed; return ;;
    esac
    sleep 30
  done
}

kubectl create configmap pipeline-seg-bags --from-file=bags.txt="$tmp" --dry-run=client -o yaml | kubectl apply -f -
kubectl delete job pipeline-seg-replay pipeline-seg-merge --ignore-not-found
sed -e "s|^\(  completions:\) [0-9]*|\1 $n|" -e "s|image: pipeline_seg:latest|image: $image|" \
  "$here/replay-job.yaml" | kubectl apply -f -
echo "replaying $n bags; waiting for job/pipeline-seg-replay (kubectl get pods -l app.kubernetes.io/component=replay)"
wait_job pipeline-seg-replay >/dev/null
if [ "$(kubectl get job pipeline-seg-replay -o jsonpath='{.status.succeeded}')" != "$n" ]; then
  echo "not every bag replayed; failed indexes: $(kubectl get job pipeline-seg-replay -o jsonpath='{.status.failedIndexes}')" >&2
  echo "fix and rerun submit.sh (done runs are kept), or merge what there is: set ALLOW_MISSING=1 in merge-job.yaml and kubectl apply -f it" >&2
  exit 1
fi
sed -e "s|image: pipeline_seg:latest|image: $image|" "$here/merge-job.yaml" | kubectl apply -f -
[ "$(wait_job pipeline-seg-merge)" = Complete ] || { echo "merge failed: kubectl logs job/pipeline-seg-merge" >&2; exit 1; }
echo "merged: /runs/merged on the claim pipeline-seg-runs (metrics.json, frames.csv, report.html)"
