#!/usr/bin/env bash
# Inside the vm-check VM, as the logged-in learner (tools/vm_check.sh boots it; this runs from the serial
# console's login shell): the facts of the set-up, the limit tests, lesson 05's strategies under a budget, and
# the clean-up checks. Results go to the host's share; "done" tells the VM to power off.
set -u
out=/mnt/vmcheck/out
status=0
# Unbuffered: the log on the host's share shows progress while the VM runs.
export PYTHONPATH=$REPO PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# Checkpoints on the VM's own disk (ext4), where page cache and major faults behave as on a laptop.
export OFFLOAD_LAB_CACHE=$HOME/.cache/offload-lab OFFLOAD_LAB_TEST_CACHE=$HOME/test-cache
cd "$REPO" || exit 1
section() { echo; echo "===== $*"; }

section "set-up"
echo "user: $(id)"
echo "kernel: $(uname -r); PID 1: $(cat /proc/1/comm); /sys/fs/cgroup is $(stat -fc %T /sys/fs/cgroup)"
echo "systemd: $(systemctl --version | head -1)"
echo "this shell's cgroup: $(cat /proc/self/cgroup)"
loginctl show-user "$(id -un)" -p Linger -p State
echo "user manager: $(systemctl --user is-system-running 2>&1)"
manager=/sys/fs/cgroup/user.slice/user-$(id -u).slice/user@$(id -u).service
echo "controllers delegated to user@$(id -u).service: $(cat "$manager/cgroup.controllers" 2>&1)"
echo "user@.service Delegate=: $(systemctl show -p Delegate -p DelegateControllers "user@$(id -u).service" | tr '\n' ' ')"
echo "python: $("$VM_PYTHON" -c 'import sys; print(sys.version.split()[0], sys.executable)')"

# Lesson 05 first: it is what the check is for, and under VM_ACCEL=tcg the whole run takes long.
section "lesson 05's strategies under a budget, then the clean-up checks"
"$VM_PYTHON" tools/vm_lesson05.py || status=1

# --timeout=0: the suite's 600 s per test is sized for a real CPU, not for qemu's emulated one.
if [ -n "$VM_TESTS" ]; then
    section "tests/test_limits.py -k '$VM_TESTS' (as $(id -un))"
    "$VM_PYTHON" -m pytest -p no:cacheprovider -v -rA --timeout=0 -o addopts="--import-mode=importlib" \
        tests/test_limits.py -k "$VM_TESTS" || status=1
else
    section "tests/test_limits.py: not run (VM_TESTS is empty)"
fi

echo "$status" > "$out/status"
touch "$out/done"
