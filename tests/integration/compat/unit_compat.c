/* vfe-vhostd's peer-format helpers on their own: the PCI address decoder and the errno -> peer code table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "app/vfe-vdpa/rpc_compat.h"

static void test_bdf(void **state)
{
    static const struct {
        const char *in, *out;
    } good[] = {
        {"af:00.3", "0000:af:00.3"},     {"AF:00.3", "0000:af:00.3"},     {"0000:AF:1F.7", "0000:af:1f.7"},
        {"0001:3b:00.0", "0001:3b:00.0"}, {"ffff:ff:1f.7", "ffff:ff:1f.7"}, {"00:00.0", "0000:00:00.0"},
    };
    char out[VHOSTD_BDF_LEN];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        memset(out, 'x', sizeof(out));
        assert_int_equal(vhostd_bdf_normalise(good[i].in, out), 0);
        assert_string_equal(out, good[i].out);
    }
    static const char *const bad[] = {"", "af", "af:00", "af:00.", "af:00.8", "af:20.0", "af:0.3", "a:00.3",
                                      "af:00.3 ", " af:00.3", "+f:00.3", "af:-0.3", "af:00:3", "af.00.3",
                                      "00000:af:00.3", "000:af:00.3", "0000:af:00.3x", "0000-af:00.3", "0x:00.3",
                                      "af:0x.3", "gg:00.3", "0000:af:00.3\n", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(vhostd_bdf_normalise(bad[i], out), -EINVAL);
    assert_int_equal(vhostd_bdf_normalise(NULL, out), -EINVAL);
}

static void test_codes(void **state)
{
    assert_int_equal(compat_code(COMPAT_OP_PF_ADD, -EEXIST), -1008);
    assert_int_equal(compat_code(COMPAT_OP_PF_ADD, -ENOENT), -1001);
    assert_int_equal(compat_code(COMPAT_OP_PF_REMOVE, -ENOENT), -1001);
    assert_int_equal(compat_code(COMPAT_OP_VF_ADD, -EEXIST), -1038);
    assert_int_equal(compat_code(COMPAT_OP_VF_ADD, -EADDRINUSE), -1038);
    assert_int_equal(compat_code(COMPAT_OP_VF_ADD, -ENAMETOOLONG), -1030);
    assert_int_equal(compat_code(COMPAT_OP_VF_ADD, -ENOENT), -1003);
    assert_int_equal(compat_code(COMPAT_OP_VF_ADD, -ENODEV), -1001);
    assert_int_equal(compat_code(COMPAT_OP_VF_REMOVE, -ENOENT), -1003);
    assert_int_equal(compat_code(COMPAT_OP_VF_REMOVE, -ENOSPC), -1005);
    assert_int_equal(compat_code(COMPAT_OP_VF_REMOVE, -EBUSY), -EBUSY);   /* no peer code: the errno */
    assert_int_equal(compat_code(COMPAT_OP_PF_REMOVE, -EEXIST), -EEXIST);
    assert_string_equal(compat_errstr(0), "Success");
    assert_string_equal(compat_errstr(-1001), "PF device not found");
    assert_string_equal(compat_errstr(-1013), "Please remove all VF devices before remove PF");
    assert_string_equal(compat_errstr(-1014), "VF device already add");
    assert_string_equal(compat_errstr(-EINVAL), strerror(EINVAL));
    assert_string_equal(compat_errstr(-1099), "Unknown error");
    assert_string_equal(compat_errstr(7), "Unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bdf),
        cmocka_unit_test(test_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
