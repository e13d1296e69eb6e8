/*
 * Unit tests of version and heart-beat negotiation (server side).
 */
#include "stampede/error.h"
#include "stampede/stomp.h"

#include <criterion/criterion.h>
#include <string.h>

static struct stp_slice sl(const char *s)
{
    return (struct stp_slice){s, strlen(s)};
}

Test(stomp_negotiate, versions_table)
{
    /* clang-format off */
    static const struct {
        const char *accept;
        enum stp_version want;
    } t[] = {
        {"1.0", STP_V10},
        {"1.1", STP_V11},
        {"1.2", STP_V12},
        {"1.0,1.1,1.2", STP_V12},
        {"1.2,1.0", STP_V12},
        {"1.1,1.0", STP_V11},
        {"1.0, 1.1", STP_V11},
        {" 1.2 , 1.1 ", STP_V12},
        {"1.0,\t1.1", STP_V11},
        {"2.0,1.1,9", STP_V11},
        {"1.3", STP_V_NONE},
        {"2.0", STP_V_NONE},
        {"", STP_V_NONE},
        {",,,", STP_V_NONE},
        {"1.10", STP_V_NONE},
        {"1.2x", STP_V_NONE},
        {"1.0,", STP_V10},
        {",1.2", STP_V12},
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct stp_slice s = sl(t[i].accept);
        cr_assert_eq(stp_negotiate_version(&s), t[i].want, "'%s'", t[i].accept);
    }
    /* No accept-version header means 1.0. */
    cr_assert_eq(stp_negotiate_version(NULL), STP_V10);
}

Test(stomp_negotiate, version_strings)
{
    cr_assert_str_eq(stp_version_str(STP_V10), "1.0");
    cr_assert_str_eq(stp_version_str(STP_V11), "1.1");
    cr_assert_str_eq(stp_version_str(STP_V12), "1.2");
    cr_assert_str_eq(stp_version_str(STP_V_NONE), "");
}

Test(stomp_negotiate, heartbeat_parse_table)
{
    /* clang-format off */
    static const struct {
        const char *hb;
        int rc;
        uint64_t cx, cy;
    } t[] = {
        {"0,0", 0, 0, 0},
        {"0,500", 0, 0, 500},
        {"10000,10000", 0, 10000, 10000},
        {"1, 2", 0, 1, 2},
        {" 3 ,4 ", 0, 3, 4},
        {"18446744073709551615,0", 0, UINT64_MAX, 0},
        {"", STP_EINVAL, 0, 0},
        {"5", STP_EINVAL, 0, 0},
        {",5", STP_EINVAL, 0, 0},
        {"5,", STP_EINVAL, 0, 0},
        {"-1,5", STP_EINVAL, 0, 0},
        {"5,-1", STP_EINVAL, 0, 0},
        {"a,b", STP_EINVAL, 0, 0},
        {"1,2,3", STP_EINVAL, 0, 0},
        {"1.5,2", STP_EINVAL, 0, 0},
        {"18446744073709551616,0", STP_EINVAL, 0, 0},
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct stp_slice s = sl(t[i].hb);
        uint64_t cx = 77, cy = 77;
        int rc = stp_heartbeat_parse(&s, &cx, &cy);
        cr_assert_eq(rc, t[i].rc, "'%s'", t[i].hb);
        if (rc == 0) {
            cr_assert_eq(cx, t[i].cx, "'%s'", t[i].hb);
            cr_assert_eq(cy, t[i].cy, "'%s'", t[i].hb);
        }
    }
    uint64_t cx = 1, cy = 1;
    cr_assert_eq(stp_heartbeat_parse(NULL, &cx, &cy), 0);
    cr_assert_eq(cx, 0);
    cr_assert_eq(cy, 0);
}

Test(stomp_negotiate, heartbeat_negotiate_table)
{
    /* clang-format off */
    static const struct {
        uint64_t cx, cy, min, max, sx, sy;
    } t[] = {
        /* The example: "0,500" is answered "500,0". */
        {0, 500, 100, 60000, 500, 0},
        {500, 0, 100, 60000, 0, 500},
        {0, 0, 100, 60000, 0, 0},
        {1000, 2000, 100, 60000, 2000, 1000},
        /* Clamped to the minimum, 0 stays 0. */
        {10, 0, 100, 60000, 0, 100},
        {10, 20, 100, 60000, 100, 100},
        /* Clamped to the maximum. */
        {120000, 90000, 100, 60000, 60000, 60000},
        {UINT64_MAX, 1, 100, 60000, 100, 60000},
        /* Exactly at the bounds. */
        {100, 60000, 100, 60000, 60000, 100},
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        uint64_t sx = 7, sy = 7;
        stp_heartbeat_negotiate(t[i].cx, t[i].cy, t[i].min, t[i].max, &sx, &sy);
        cr_assert_eq(sx, t[i].sx, "row %zu: sx %lu", i, (unsigned long)sx);
        cr_assert_eq(sy, t[i].sy, "row %zu: sy %lu", i, (unsigned long)sy);
    }
}
