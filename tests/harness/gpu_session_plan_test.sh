#!/usr/bin/env bash
# scripts/gpu_session.sh --plan: the stages in their order, each with a time limit, and the
# limits summing to at most 480 s (a device call is at most 10 minutes inside a 15-minute
# session that also pays for the machine's start). Also: an unknown stage is refused with
# exit 2 and SEQSCALE_GPU_LIMITS changes the plan. No GPU, no build needed.
#   gpu_session_plan_test.sh SOURCE_DIR
set -uo pipefail
src="${1:?usage: gpu_session_plan_test.sh SOURCE_DIR}"
script="$src/scripts/gpu_session.sh"
fail() { echo "FAIL: $*" >&2; exit 1; }

plan=$("$script" --plan) || fail "--plan exited $?"
echo "$plan"
stages=$(echo "$plan" | sed -n 's/^[0-9][0-9]*\. *\([a-z]*\) .*/\1/p' | tr '\n' ' ')
[ "$stages" = "facts tests memcheck checks ceilings evoformer peers predictions " ] ||
  fail "stages or their order changed: '$stages'"
sum=$(echo "$plan" | sed -n 's/^[0-9][0-9]*\. .*limit_s=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
total=$(echo "$plan" | sed -n 's/^total *limit_s=\([0-9]*\).*/\1/p')
[ "$sum" = "$total" ] || fail "stage limits sum to $sum but the plan says total $total"
[ "$sum" -le 480 ] || fail "stage limits sum to $sum s, over the 480 s a device call may plan"
grep -q '^1\. *facts ' <<< "$plan" || fail "facts (fail fast) must come first"

# Overrides show in the plan; a bad one is refused.
grep -q 'evoformer *limit_s=120' <<< "$plan" || fail "evoformer's default limit is not 120"
grep -q 'evoformer *limit_s=300' <<< "$(SEQSCALE_GPU_LIMITS="evoformer=300" "$script" --plan)" ||
  fail "SEQSCALE_GPU_LIMITS did not change the plan"
SEQSCALE_GPU_LIMITS="nosuch=3" "$script" --plan > /dev/null 2>&1
[ $? = 2 ] || fail "a bad SEQSCALE_GPU_LIMITS is not exit 2"
SEQSCALE_GPU_DRY_RUN=1 "$script" nosuchstage > /dev/null 2>&1
[ $? = 2 ] || fail "an unknown stage is not exit 2"
echo "PASS: $(echo "$stages" | wc -w) stages, limits sum to $sum s (<= 480)"
