/* Unit tests of HTTP Basic credentials (src/auth/basic.c). */
#include "auth/auth.h"

#include <criterion/criterion.h>
#include <string.h>

static int parse(const char *hdr, char *login, char *pass)
{
    return stp_basic_auth_parse(hdr, strlen(hdr), login, 64, pass, 64);
}

Test(basic, decodes_login_and_password)
{
    char l[64], p[64];
    /* base64("mon:pw1") = bW9uOnB3MQ== */
    cr_assert_eq(parse("Basic bW9uOnB3MQ==", l, p), 0);
    cr_assert_str_eq(l, "mon");
    cr_assert_str_eq(p, "pw1");
    cr_assert_eq(parse("  bAsIc \t bW9uOnB3MQ  ", l, p), 0, "case, blanks, no padding");
    cr_assert_str_eq(p, "pw1");
    /* base64("a:b:c") = YTpiOmM=: the password keeps its ':' */
    cr_assert_eq(parse("Basic YTpiOmM=", l, p), 0);
    cr_assert_str_eq(l, "a");
    cr_assert_str_eq(p, "b:c");
    /* base64("a:") = YTo=: an empty password is a password */
    cr_assert_eq(parse("Basic YTo=", l, p), 0);
    cr_assert_str_eq(p, "");
}

Test(basic, refuses_everything_else)
{
    char l[64], p[64];
    const char *bad[] = {
        "",
        "Basic",
        "Basic ",
        "Bearer bW9uOnB3MQ==",
        "Basicbm9u",
        "Basic bW9uOnB3MQ=!",   /* not base64 */
        "Basic bW9uOnB3M",      /* a lone 6-bit group: 4n+1 characters */
        "Basic bW9uOnB3MR==",   /* leftover bits not zero */
        "Basic bm9jb2xvbg==",   /* "nocolon" */
        "Basic OnB3",           /* ":pw": empty login */
        "Basic YQlhOmI=",       /* "a\ta:b": a control byte */
        "Basic bW9uOnB3MQ== x", /* trailing junk */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_lt(parse(bad[i], l, p), 0, "accepted '%s'", bad[i]);
}

Test(basic, bounds)
{
    char l[4], p[4];
    /* base64("abcd:x") = YWJjZDp4: login of 4 bytes does not fit in 4 */
    cr_assert_lt(stp_basic_auth_parse("Basic YWJjZDp4", 14, l, sizeof(l), p, sizeof(p)), 0);
    /* base64("abc:x") = YWJjOng= fits */
    cr_assert_eq(stp_basic_auth_parse("Basic YWJjOng=", 14, l, sizeof(l), p, sizeof(p)), 0);
    char big[4 * STP_BASIC_MAX];
    memcpy(big, "Basic ", 6);
    memset(big + 6, 'Q', sizeof(big) - 7);
    big[sizeof(big) - 1] = '\0';
    char L[STP_BASIC_MAX], P[STP_BASIC_MAX];
    cr_assert_lt(stp_basic_auth_parse(big, strlen(big), L, sizeof(L), P, sizeof(P)), 0,
                 "more than STP_BASIC_MAX decoded bytes");
}
