/* Unit tests of vfe-vhostd's path work: canonical socket paths (one socket,
 * one name) and the VF scan of a PF whose VF links have holes. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "app/vfe-vdpa/pci_tree.h"
#include "app/vfe-vdpa/sock_path.h"

static char tmp[256];   /* canonical temp dir of the test */

static int setup(void **state)
{
    char t[] = "/tmp/vfe-unit-XXXXXX", real[PATH_MAX];
    if (!mkdtemp(t) || !realpath(t, real) || strlen(real) >= sizeof(tmp))
        return -1;
    snprintf(tmp, sizeof(tmp), "%s", real);
    return 0;
}

/* tmp/rel in buf. */
static char *at(char buf[PATH_MAX], const char *rel)
{
    snprintf(buf, PATH_MAX, "%s/%.3000s", tmp, rel);
    return buf;
}

static int teardown(void **state)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static int canon(const char *in, char out[VHOSTD_SOCK_PATH_LEN])
{
    char msg[512];
    int rc = vhostd_sock_path_canon(in, out, msg, sizeof(msg));
    if (rc < 0)
        assert_true(strlen(msg) > 0);   /* every refusal says why */
    return rc;
}

static void test_canon_spellings(void **state)
{
    char out[VHOSTD_SOCK_PATH_LEN], want[PATH_MAX], p[PATH_MAX];
    at(want, "vf-x");
    assert_int_equal(mkdir(at(p, "sub"), 0700), 0);
    assert_int_equal(symlink(".", at(p, "lnk")), 0);
    static const char *const spellings[] = {"vf-x", "./vf-x", "/vf-x", "sub/../vf-x", "lnk/vf-x", "lnk/./lnk//vf-x"};
    for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
        assert_int_equal(canon(at(p, spellings[i]), out), 0);
        assert_string_equal(out, want);
    }
    /* the base name is kept as written, even when it is a symlink: a link is not a socket */
    assert_int_equal(canon(at(p, "lnk"), out), 0);
    assert_string_equal(out, at(want, "lnk"));
    assert_int_equal(vhostd_sock_path_canon("/x.sock", out, p, sizeof(p)), 0);
    assert_string_equal(out, "/x.sock");
}

static void test_canon_refusals(void **state)
{
    char out[VHOSTD_SOCK_PATH_LEN], p[PATH_MAX];
    assert_int_equal(canon("", out), -EINVAL);
    assert_int_equal(canon(at(p, ""), out), -EINVAL);
    assert_int_equal(canon(at(p, "."), out), -EINVAL);
    assert_int_equal(canon(at(p, ".."), out), -EINVAL);
    assert_int_equal(canon(at(p, "missing/x.sock"), out), -ENOENT);
    FILE *f = fopen(at(p, "file"), "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(canon(at(p, "file/x.sock"), out), -ENOTDIR);
    /* exactly sun_path's limit fits; one more is refused, never truncated */
    size_t room = VFE_SUN_PATH_MAX - strlen(tmp) - 1;
    char base[VHOSTD_SOCK_PATH_LEN + 8];
    memset(base, 'b', sizeof(base));
    base[room] = '\0';
    char dotted[VHOSTD_SOCK_PATH_LEN + 16];
    snprintf(dotted, sizeof(dotted), "./%s", base);
    assert_int_equal(canon(at(p, dotted), out), 0);   /* longer as written, fits once canonical */
    assert_int_equal(strlen(out), VFE_SUN_PATH_MAX);
    base[room] = 'b';
    base[room + 1] = '\0';
    assert_int_equal(canon(at(p, base), out), -ENAMETOOLONG);
    /* a short name whose directory resolves long is too long as well */
    char longdir[PATH_MAX], lnk[PATH_MAX];
    memset(base, 'd', 100);
    base[100] = '\0';
    assert_int_equal(mkdir(at(longdir, base), 0700), 0);
    assert_int_equal(symlink(longdir, at(lnk, "s")), 0);
    assert_int_equal(canon(at(p, "s/x"), out), -ENAMETOOLONG);
}

static void test_under(void **state)
{
    assert_true(vhostd_path_is_under("/a/b/c", "/a/b"));
    assert_true(vhostd_path_is_under("/a/b", "/a/b"));
    assert_false(vhostd_path_is_under("/a/bc", "/a/b"));
    assert_false(vhostd_path_is_under("/a", "/a/b"));
    assert_true(vhostd_path_is_under("/anything", "/"));
}

static void mkfile(const char *dir, const char *name, const char *text)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%.3000s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void mklink(const char *dir, const char *name, const char *target)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%.3000s/%s", dir, name);
    assert_int_equal(symlink(target, p), 0);
}

/* VF 1 of 3 removed by surprise: virtfn0 is gone, virtfn1 and virtfn2 stay. */
static void test_vfs_with_hole(void **state)
{
    char root[PATH_MAX], pf[PATH_MAX];
    at(root, "tree");
    at(pf, "tree/0000:3b:00.0");
    assert_int_equal(mkdir(root, 0700), 0);
    assert_int_equal(mkdir(pf, 0700), 0);
    mkfile(pf, "sriov_totalvfs", "3\n");
    mkfile(pf, "sriov_numvfs", "3\n");
    mklink(pf, "virtfn1", "../0000:3b:00.2");
    mklink(pf, "virtfn2", "../0000:3b:00.3");
    char vfs[VHOSTD_MAX_VFS][16];
    assert_int_equal(pci_pf_vfs(root, "0000:3b:00.0", vfs, VHOSTD_MAX_VFS), 3);
    assert_string_equal(vfs[0], "");
    assert_string_equal(vfs[1], "0000:3b:00.2");
    assert_string_equal(vfs[2], "0000:3b:00.3");
    /* the scan is bounded by the PF's own counts: a link beyond them is not a VF */
    mklink(pf, "virtfn5", "../0000:3b:00.6");
    assert_int_equal(pci_pf_vfs(root, "0000:3b:00.0", vfs, VHOSTD_MAX_VFS), 3);
    /* ... and by max */
    assert_int_equal(pci_pf_vfs(root, "0000:3b:00.0", vfs, 2), 2);
    /* without the counts every index up to max is looked at */
    char p[PATH_MAX];
    unlink(at(p, "tree/0000:3b:00.0/sriov_totalvfs"));
    unlink(at(p, "tree/0000:3b:00.0/sriov_numvfs"));
    assert_int_equal(pci_pf_vfs(root, "0000:3b:00.0", vfs, VHOSTD_MAX_VFS), 6);
    assert_string_equal(vfs[5], "0000:3b:00.6");
    assert_string_equal(vfs[3], "");
    /* a link that does not name a BDF is an error, not a hole */
    mklink(pf, "virtfn3", "../not-a-bdf");
    assert_int_equal(pci_pf_vfs(root, "0000:3b:00.0", vfs, VHOSTD_MAX_VFS), -EINVAL);
    /* a count that is not a number is ignored */
    unlink(at(p, "tree/0000:3b:00.0/virtfn3"));
    mkfile(pf, "sriov_numvfs", "lots\n");
    assert_int_equal(pci_pf_vfs(root, "0000:3b:00.0", vfs, VHOSTD_MAX_VFS), 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canon_spellings),
        cmocka_unit_test(test_canon_refusals),
        cmocka_unit_test(test_under),
        cmocka_unit_test(test_vfs_with_hole),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
