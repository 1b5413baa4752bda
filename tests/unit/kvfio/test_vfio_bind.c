/*
 * Binding to vfio-pci on a fake sysfs tree: every refusal names its cause
 * (no function, vfio-pci missing, no IOMMU, group not viable with its other
 * devices, bound to another driver with its interfaces), nothing is written
 * when refused, and a bind writes driver_override, the unbind (forced only)
 * and drivers_probe, then waits for the group node.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "drivers/bus/vfio/vfio_bind.h"

#define BDF  "0000:01:00.0"
#define PEER "0000:01:00.1"

static char root[256], bus[300], vdir[300];

static void pathf(char *p, size_t n, const char *rel)
{
    snprintf(p, n, "%s/%s", root, rel);
}

static void mkd(const char *rel)
{
    char p[600];
    pathf(p, sizeof(p), rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static void touch(const char *rel)
{
    char p[600];
    pathf(p, sizeof(p), rel);
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    assert_true(fd >= 0);
    close(fd);
}

static void link_to(const char *target, const char *rel)
{
    char p[600], t[600];
    pathf(p, sizeof(p), rel);
    pathf(t, sizeof(t), target);
    assert_int_equal(symlink(t, p), 0);
}

static void rm(const char *rel)
{
    char p[600];
    pathf(p, sizeof(p), rel);
    assert_int_equal(remove(p), 0);
}

static void slurp(const char *rel, char *buf, size_t n)
{
    char p[600];
    pathf(p, sizeof(p), rel);
    buf[0] = 0;
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    size_t r = fread(buf, 1, n - 1, f);
    buf[r] = 0;
    fclose(f);
}

/* A bus with BDF (virtio-pci, interface eth7) and PEER in group 5. */
static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/vfe-bind-XXXXXX");
    assert_non_null(mkdtemp(root));
    mkd("bus");
    mkd("bus/devices");
    mkd("bus/drivers");
    mkd("bus/drivers/vfio-pci");
    mkd("bus/drivers/virtio-pci");
    mkd("bus/drivers/e1000e");
    touch("bus/drivers/virtio-pci/unbind");
    touch("bus/drivers_probe");
    mkd("groups");
    mkd("groups/5");
    mkd("groups/5/devices");
    mkd("dev");
    mkd("bus/devices/" BDF);
    mkd("bus/devices/" BDF "/virtio3");
    mkd("bus/devices/" BDF "/virtio3/net");
    mkd("bus/devices/" BDF "/virtio3/net/eth7");
    touch("bus/devices/" BDF "/driver_override");
    link_to("bus/drivers/virtio-pci", "bus/devices/" BDF "/driver");
    link_to("groups/5", "bus/devices/" BDF "/iommu_group");
    mkd("bus/devices/" PEER);
    link_to("groups/5", "bus/devices/" PEER "/iommu_group");
    link_to("bus/devices/" BDF, "groups/5/devices/" BDF);
    link_to("bus/devices/" PEER, "groups/5/devices/" PEER);
    snprintf(bus, sizeof(bus), "%s/bus", root);
    snprintf(vdir, sizeof(vdir), "%s/dev", root);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    return system(cmd);
}

static int bind(bool force, char *msg, size_t n)
{
    struct vfe_bind_opts o = {.bus_root = bus, .vfio_dir = vdir, .force = force, .wait_ms = 60};
    return vfe_vfio_bind(&o, BDF, msg, n);
}

static void test_refusals(void **state)
{
    (void)state;
    char msg[512], buf[64];
    struct vfe_bind_opts o = {.bus_root = bus, .vfio_dir = vdir};
    assert_int_equal(vfe_vfio_bind(&o, "0000:01:00.0/../x", msg, sizeof(msg)), -EINVAL);
    assert_int_equal(vfe_vfio_bind(&o, "0000:02:00.0", msg, sizeof(msg)), -ENODEV);
    assert_non_null(strstr(msg, "no such PCI function"));

    /* bound to another driver with a network interface: refused without force */
    assert_int_equal(bind(false, msg, sizeof(msg)), -EBUSY);
    assert_non_null(strstr(msg, "bound to virtio-pci"));
    assert_non_null(strstr(msg, "eth7"));
    slurp("bus/devices/" BDF "/driver_override", buf, sizeof(buf));
    assert_string_equal(buf, "");

    /* a group whose other device has a driver is not viable */
    link_to("bus/drivers/e1000e", "bus/devices/" PEER "/driver");
    assert_int_equal(bind(true, msg, sizeof(msg)), -EBUSY);
    assert_non_null(strstr(msg, "not viable"));
    assert_non_null(strstr(msg, PEER " (e1000e)"));
    rm("bus/devices/" PEER "/driver");

    /* no IOMMU */
    rm("bus/devices/" BDF "/iommu_group");
    assert_int_equal(bind(true, msg, sizeof(msg)), -ENXIO);
    assert_non_null(strstr(msg, "intel_iommu=on"));
    link_to("groups/5", "bus/devices/" BDF "/iommu_group");

    /* vfio-pci not loaded */
    char p[600];
    pathf(p, sizeof(p), "bus/drivers/vfio-pci");
    assert_int_equal(rmdir(p), 0);
    assert_int_equal(bind(true, msg, sizeof(msg)), -ENOPKG);
    assert_non_null(strstr(msg, "modprobe vfio-pci"));
    slurp("bus/drivers_probe", buf, sizeof(buf));
    assert_string_equal(buf, "");
    slurp("bus/drivers/virtio-pci/unbind", buf, sizeof(buf));
    assert_string_equal(buf, "");
}

/* Why a kernel VFIO open failed: the driver that holds the function, its
 * interfaces and the way out; nothing to say for an unbound or vfio-pci one. */
static void test_explain_open(void **state)
{
    (void)state;
    char msg[512], devs[600];
    snprintf(devs, sizeof(devs), "%s/bus/devices", root);
    assert_int_equal(vfe_vfio_explain_open(devs, BDF, msg, sizeof(msg)), 1);
    assert_non_null(strstr(msg, "bound to virtio-pci"));
    assert_non_null(strstr(msg, "eth7"));
    assert_non_null(strstr(msg, "vhostmgmt bind " BDF " --force"));
    assert_int_equal(vfe_vfio_explain_open(devs, "../../etc", msg, sizeof(msg)), 0);
    assert_string_equal(msg, "");
    assert_int_equal(vfe_vfio_explain_open(devs, PEER, msg, sizeof(msg)), 0);
    link_to("bus/drivers/vfio-pci", "bus/devices/" PEER "/driver");
    assert_int_equal(vfe_vfio_explain_open(devs, PEER, msg, sizeof(msg)), 0);
    assert_int_equal(vfe_vfio_explain_open(devs, BDF, msg, 8), 1);
    assert_int_equal(strlen(msg), 7);
}

static void test_forced_bind(void **state)
{
    (void)state;
    char msg[512], buf[64];
    /* the kernel would create the node on probe; here it is there, or not */
    assert_int_equal(bind(true, msg, sizeof(msg)), -ETIMEDOUT);
    assert_non_null(strstr(msg, "did not appear"));
    touch("dev/5");
    assert_int_equal(bind(true, msg, sizeof(msg)), 0);
    assert_non_null(strstr(msg, "bound to vfio-pci (group 5"));
    slurp("bus/devices/" BDF "/driver_override", buf, sizeof(buf));
    assert_string_equal(buf, "vfio-pci");
    slurp("bus/drivers/virtio-pci/unbind", buf, sizeof(buf));
    assert_string_equal(buf, BDF);
    slurp("bus/drivers_probe", buf, sizeof(buf));
    assert_string_equal(buf, BDF);
}

static void test_unbound_and_already(void **state)
{
    (void)state;
    char msg[512], buf[64];
    rm("bus/devices/" BDF "/driver");
    touch("dev/5");
    /* an unbound function needs no force and no unbind */
    assert_int_equal(bind(false, msg, sizeof(msg)), 0);
    slurp("bus/drivers/virtio-pci/unbind", buf, sizeof(buf));
    assert_string_equal(buf, "");
    slurp("bus/drivers_probe", buf, sizeof(buf));
    assert_string_equal(buf, BDF);
    /* already vfio-pci: nothing written */
    touch("bus/drivers_probe");
    link_to("bus/drivers/vfio-pci", "bus/devices/" BDF "/driver");
    assert_int_equal(bind(false, msg, sizeof(msg)), 0);
    assert_non_null(strstr(msg, "already bound"));
    slurp("bus/drivers_probe", buf, sizeof(buf));
    assert_string_equal(buf, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_explain_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forced_bind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unbound_and_already, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
