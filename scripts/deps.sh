# Sourced by scripts/*: install the Debian 12 packages vfe needs, only those missing.
# Usage: vfe_install_deps build|test|demo
vfe_install_deps() {
    local pkgs="meson ninja-build pkg-config gcc libev-dev libjansson-dev libsystemd-dev libcmocka-dev help2man"
    case "$1" in
        # package: the .deb and its checks; sysvm: a Debian 12 root booted with systemd;
        # libvirt: two libvirt hosts in namespaces
        test) pkgs="$pkgs python3 clang-14 libclang-rt-14-dev dpdk-dev qemu-system-x86 busybox-static cpio
                    debhelper dpkg-dev help2man lintian fakeroot mmdebstrap e2fsprogs
                    libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu" ;;
        demo) pkgs="$pkgs python3 qemu-system-x86 busybox-static cpio" ;;
    esac
    local missing=""
    for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "==> installing Debian packages:$missing"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq || { echo "apt-get update failed" >&2; return 1; }
    # shellcheck disable=SC2086
    $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
        echo "apt-get install failed for:$missing" >&2; return 1; }
}
