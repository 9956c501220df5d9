#!/usr/bin/env bash
# make vm-check: lesson 05 and the limit tests, as a normal user, on a Debian 12 VM with systemd as PID 1 and the
# unified cgroup v2 hierarchy (what most learners' Linux laptops run), booted with KVM.
#
# The image is built once (debootstrap, about 250 MB of packages) and cached outside the repository in
# $OFFLOAD_LAB_VM_DIR (default ~/.cache/offload-lab/vm); every boot runs from a throw-away snapshot of it
# (qemu -snapshot), so a run never changes the image.
#
# Python and the project are not installed in the VM: the host's interpreter, its virtual environment and this
# checkout are shared read-only over 9p at the same paths. That is small (no wheels to fetch: the VM has no
# network) and robust only where the host's interpreter runs on the guest's libraries, so this script refuses
# a host whose glibc is newer than bookworm's 2.36 (a Debian 12 host, like this project's machines, matches).
# The checkpoints the runs build live on the VM's own ext4 disk, not on 9p: the page cache, cold_cache and
# major faults must behave as on a laptop's disk.
#
# Variables: VM_ACCEL (kvm or tcg), VM_FIRST_OUTPUT_S, OFFLOAD_LAB_VM_DIR, VM_PYTHON (the venv's python), VM_TIMEOUT (seconds, default 2400),
# VM_MEM (default 4G), VM_CPUS (default 2), VM_CPU (qemu -cpu), VM_MIRROR (default: the host's Debian mirror), VM_SIZE (the
# lesson's checkpoint size, default 60MB), VM_TESTS (the pytest -k selection of tests/test_limits.py; empty: skip
# them, e.g. VM_TESTS= make vm-check VM_ACCEL=tcg runs lesson 05's checks alone).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
VM_DIR=${OFFLOAD_LAB_VM_DIR:-$HOME/.cache/offload-lab/vm}
VM_PYTHON=${VM_PYTHON:-$REPO/.venv/bin/python}
VM_TIMEOUT=${VM_TIMEOUT:-2400}
VM_MEM=${VM_MEM:-4G}
VM_CPUS=${VM_CPUS:-2}
VM_SIZE=${VM_SIZE:-60MB}
# The limit tests to run there (pytest -k); the others do not touch a limit. Set and empty: none.
VM_TESTS=${VM_TESTS-real_limit or watchdog or cancel_under or crashed_runners}
# VM_ACCEL=kvm (default) needs a /dev/kvm that runs a stock kernel at speed. VM_ACCEL=tcg is qemu's own CPU
# emulation: many times slower, but the same kernel, systemd and cgroup v2, so the same budget_mode, cgroup path,
# oom_kill and fault counts (only the seconds differ); for hosts whose /dev/kvm cannot boot the image.
VM_ACCEL=${VM_ACCEL:-kvm}
# KVM: the host's CPU (torch's kernels want its vector instructions) less IA32_ARCH_CAPABILITIES: under nested
# KVM qemu aborts with "failed to set MSR 0x10a" when it is passed through. TCG: everything qemu can emulate.
if [ "$VM_ACCEL" = tcg ]; then VM_CPU=${VM_CPU:-max}; else VM_CPU=${VM_CPU:-host,-arch-capabilities}; fi
# A kernel that has not reached its initramfs after this many seconds is not booting at a usable
# speed (seen on a /dev/kvm served by kvm_pvm: a stock kernel's decompressor still ran after 5 minutes).
VM_FIRST_OUTPUT_S=${VM_FIRST_OUTPUT_S:-120}
# Bump when the recipe below changes: a cached image built from an older recipe is rebuilt.
RECIPE=3

say() { echo "vm-check: $*"; }
die() { echo "vm-check: $*" >&2; exit 2; }

# --- preconditions, each a one-line answer rather than a hang or a stack of qemu errors
if [ "$VM_ACCEL" = kvm ] && { [ ! -c /dev/kvm ] || ! (exec 3<>/dev/kvm) 2>/dev/null; }; then
    die "no KVM here: /dev/kvm is missing or not readable and writable by $(id -un) (add the user to group kvm, or run where hardware virtualisation is enabled); nothing was run."
fi
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is not installed; apt-get install qemu-system-x86."
[ -x "$VM_PYTHON" ] || die "VM_PYTHON=$VM_PYTHON is not an executable; point it at the virtual environment's python (make install makes .venv)."
host_glibc=$(ldd --version 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+$' || true)
if [ -z "$host_glibc" ] || [ "$(printf '%s\n2.36\n' "$host_glibc" | sort -V | tail -1)" != 2.36 ]; then
    die "the host's glibc is ${host_glibc:-unknown}, newer than Debian 12's 2.36, so its Python cannot run in the VM; run vm-check on a Debian 12 host."
fi
# The interpreter's real installation (a venv only points at it) and the venv itself, as the guest will see them.
read -r PY_BASE PY_VENV < <("$VM_PYTHON" -c 'import sys; print(sys.base_prefix, sys.prefix)')

IMG=$VM_DIR/rootfs.img
KERNEL=$VM_DIR/vmlinuz
INITRD=$VM_DIR/initrd.img

build_image() {
    command -v debootstrap >/dev/null || die "debootstrap is not installed; apt-get install debootstrap."
    [ "$(id -u)" = 0 ] || die "building the image needs root (debootstrap chroots); run once as root, later runs reuse $IMG."
    # The mirror apt already uses here (a machine without general internet reaches only that one).
    local mirror=${VM_MIRROR:-$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        | grep -oE 'https?://[^ ]+' | head -1)}
    mirror=${mirror:-http://deb.debian.org/debian}
    local root=$VM_DIR/build/root
    local packages=systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,udev,kmod,procps,linux-image-amd64,initramfs-tools,libssl3,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,libreadline8,zlib1g,libncursesw6,libuuid1,libgomp1
    # minbase plus: systemd as PID 1, logind and a user D-Bus (busctl --user talks to the user manager
    # over it), udev and kmod for the virtio and 9p modules, a kernel with its initramfs, and the shared
    # libraries the host's CPython links against. A finished debootstrap of the same list is reused (it is the
    # slow part), so an interrupted build resumes at the configuration below.
    if [ "$(cat "$VM_DIR/build/debootstrapped" 2>/dev/null)" != "$packages" ]; then
        say "building the Debian 12 image once (debootstrap from $mirror into $root; a few minutes)"
        rm -rf "$VM_DIR/build" && mkdir -p "$VM_DIR/build"
        debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" \
            > "$VM_DIR/build/debootstrap.log" 2>&1 \
            || { tail -20 "$VM_DIR/build/debootstrap.log" >&2; die "debootstrap failed (log: $VM_DIR/build/debootstrap.log)."; }
        echo "$packages" > "$VM_DIR/build/debootstrapped"
    fi
    echo offload-vm > "$root/etc/hostname"
    printf '/dev/vda / ext4 defaults 0 1\n' > "$root/etc/fstab"
    printf '9p\n9pnet_virtio\n' > "$root/etc/modules-load.d/vmcheck.conf"
    chroot "$root" id learner >/dev/null 2>&1 || chroot "$root" useradd --create-home --shell /bin/bash --uid 1000 learner
    # The serial console logs the learner in: a real logind session (session scope, XDG_RUNTIME_DIR, user bus),
    # as at a laptop's terminal. Its login shell runs the check once.
    mkdir -p "$root/etc/systemd/system/serial-getty@ttyS0.service.d"
    cat > "$root/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" <<'UNIT'
[Unit]
After=vmcheck-setup.service
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin learner --noclear --keep-baud 115200,57600,38400,9600 %I $TERM
UNIT
    cat > "$root/home/learner/.bash_profile" <<'PROFILE'
# vm-check: the host's tools/vm_check.sh put the entry point on the share; run it once, then stay idle (the
# system's vmcheck-poweroff.service powers off when it is done).
if [ "$(tty)" = /dev/ttyS0 ] && [ -x /mnt/vmcheck/guest-entry ]; then
    /mnt/vmcheck/guest-entry
    exec sleep infinity
fi
PROFILE
    chroot "$root" chown learner:learner /home/learner/.bash_profile
    # Root's part at boot: mount the host's shares where the host has them, and give the learner a lingering
    # user manager (loginctl enable-linger, as the issue asks; it also keeps user@1000 up between sessions).
    cat > "$root/usr/local/sbin/vmcheck-setup" <<'SETUP'
#!/bin/sh
set -e
mkdir -p /mnt/vmcheck
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 vmcheck /mnt/vmcheck
while read -r tag path; do
    mkdir -p "$path"
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro "$tag" "$path"
done < /mnt/vmcheck/mounts.txt
# The venv and the interpreter may sit under /root: let the learner through (not list) its folders.
while read -r tag path; do p=$path; while [ "$p" != / ]; do p=$(dirname "$p"); chmod o+x "$p" 2>/dev/null || true; done; done < /mnt/vmcheck/mounts.txt
loginctl enable-linger learner
SETUP
    cat > "$root/usr/local/sbin/vmcheck-poweroff" <<'OFF'
#!/bin/sh
# Power off once the learner's run wrote "done" (the host's timeout covers a run that never does).
while [ ! -e /mnt/vmcheck/out/done ]; do sleep 2; done
sleep 1
systemctl poweroff
OFF
    chmod 755 "$root/usr/local/sbin/vmcheck-setup" "$root/usr/local/sbin/vmcheck-poweroff"
    cat > "$root/etc/systemd/system/vmcheck-setup.service" <<'UNIT'
[Unit]
Description=vm-check: mount the host's shares, linger the learner
After=systemd-logind.service systemd-modules-load.service
Before=serial-getty@ttyS0.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/vmcheck-setup
StandardOutput=journal+console
[Install]
WantedBy=multi-user.target
UNIT
    cat > "$root/etc/systemd/system/vmcheck-poweroff.service" <<'UNIT'
[Unit]
Description=vm-check: power off when the run is done
After=vmcheck-setup.service
Requires=vmcheck-setup.service
[Service]
ExecStart=/usr/local/sbin/vmcheck-poweroff
[Install]
WantedBy=multi-user.target
UNIT
    chroot "$root" systemctl enable vmcheck-setup.service vmcheck-poweroff.service >/dev/null 2>&1
    chroot "$root" apt-get clean
    cp "$(ls "$root"/boot/vmlinuz-* | tail -1)" "$VM_DIR/vmlinuz.new"
    cp "$(ls "$root"/boot/initrd.img-* | tail -1)" "$VM_DIR/initrd.img.new"
    # mke2fs -d fills the file system from the folder (owners and modes kept): no loop device needed.
    mkfs.ext4 -q -F -L root -d "$root" "$IMG.new" 6G
    mv "$VM_DIR/vmlinuz.new" "$KERNEL"; mv "$VM_DIR/initrd.img.new" "$INITRD"; mv "$IMG.new" "$IMG"
    echo "$RECIPE" > "$VM_DIR/recipe"
    # build/root is kept (about 800 MB): a change of the recipe rebuilds from it without debootstrap again.
    say "image ready: $IMG"
}

mkdir -p "$VM_DIR"
if [ ! -f "$IMG" ] || [ "$(cat "$VM_DIR/recipe" 2>/dev/null)" != "$RECIPE" ]; then
    build_image
fi

# --- one run: a fresh share folder holds the mount list, the entry point and, afterwards, the results
RUN=$VM_DIR/run
rm -rf "$RUN" && mkdir -p "$RUN/out" && chmod 1777 "$RUN/out"
printf 'python %s\nvenv %s\nrepo %s\n' "$PY_BASE" "$PY_VENV" "$REPO" > "$RUN/mounts.txt"
cat > "$RUN/guest-entry" <<ENTRY
#!/bin/bash
export VM_PYTHON='$VM_PYTHON' VM_SIZE='$VM_SIZE' REPO='$REPO' VM_TESTS='$VM_TESTS'
exec bash '$REPO/tools/vm_guest.sh' > /mnt/vmcheck/out/guest.log 2>&1
ENTRY
chmod 755 "$RUN/guest-entry"

share() { echo "-virtfs local,path=$1,mount_tag=$2,security_model=$3${4:+,readonly=on}"; }
if [ "$VM_ACCEL" = tcg ]; then accel=(-accel tcg,thread=multi); else accel=(-enable-kvm); fi
say "booting the VM ($VM_ACCEL, $VM_CPUS vCPUs, $VM_MEM; at most $VM_TIMEOUT s; console: $RUN/console.log)"
: > "$RUN/console.log"
# shellcheck disable=SC2046
timeout -k 10 "$VM_TIMEOUT" qemu-system-x86_64 "${accel[@]}" -cpu "$VM_CPU" -smp "$VM_CPUS" -m "$VM_MEM" \
    -kernel "$KERNEL" -initrd "$INITRD" \
    -append "root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=1 panic=1 loglevel=3" \
    -drive "file=$IMG,if=virtio,format=raw" -snapshot -no-reboot \
    $(share "$RUN" vmcheck passthrough) $(share "$PY_BASE" python none ro) $(share "$PY_VENV" venv none ro) \
    $(share "$REPO" repo none ro) \
    -nic none -display none -monitor none -serial "file:$RUN/console.log" &
qemu_pid=$!
waited=0
booted() { grep -aqE "Loading, please wait|Welcome to" "$RUN/console.log"; }  # the initramfs, or systemd
while kill -0 "$qemu_pid" 2>/dev/null && ! booted && [ "$waited" -lt "$VM_FIRST_OUTPUT_S" ]; do
    sleep 1; waited=$((waited + 1))
done
if kill -0 "$qemu_pid" 2>/dev/null && ! booted; then
    kill "$qemu_pid"; wait "$qemu_pid" 2>/dev/null
    die "the VM's kernel did not start within VM_FIRST_OUTPUT_S=$VM_FIRST_OUTPUT_S s with VM_ACCEL=$VM_ACCEL: this /dev/kvm ($(ls /sys/module | grep -E '^kvm_' | tr '\n' ' ')) does not run a stock kernel at a usable speed; run with VM_ACCEL=tcg (slower, same results)."
fi
set +e
wait "$qemu_pid"
qemu_rc=$?
set -e
if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
    tail -20 "$RUN/out/guest.log" 2>/dev/null || tail -20 "$RUN/console.log"
    die "the VM did not finish within VM_TIMEOUT=$VM_TIMEOUT s and was stopped; raise VM_TIMEOUT or read $RUN/console.log."
fi
[ "$qemu_rc" = 0 ] || { tail -20 "$RUN/console.log"; die "qemu exited with $qemu_rc; its console is in $RUN/console.log."; }
[ -f "$RUN/out/guest.log" ] || { tail -30 "$RUN/console.log"; die "the VM powered off without running the check; its console is in $RUN/console.log."; }
cat "$RUN/out/guest.log"
status=$(cat "$RUN/out/status" 2>/dev/null || echo missing)
say "guest status: $status (full log: $RUN/out/guest.log)"
[ "$status" = 0 ]
