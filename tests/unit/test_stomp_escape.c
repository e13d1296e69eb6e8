/*
 * Unit tests of STOMP header escaping: the 1.1 and 1.2 rules, 1.0 leaving bytes
 * alone, undefined escapes rejected, and escape -> unescape round trips.
 */
#include "stampede/buf.h"
#include "stampede/error.h"
#include "stampede/stomp.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#define SL(lit) ((struct stp_slice){lit, sizeof(lit) - 1})

static void expect_escape(struct stp_slice in, enum stp_version v, const char *want, size_t wlen)
{
    struct stp_buf b = STP_BUF_INIT;
    stp_buf_append_str(&b, "pre"); /* appends, does not overwrite */
    cr_assert_eq(stp_escape_append(&b, in, v), 0);
    cr_assert_eq(b.len, 3 + wlen, "v%d: got [%.*s]", v, (int)b.len, b.data);
    cr_assert_eq(memcmp(b.data, "pre", 3), 0);
    cr_assert_eq(memcmp(b.data + 3, want, wlen), 0, "v%d: got [%.*s]", v, (int)b.len, b.data);
    stp_buf_free(&b);
}

Test(stomp_escape, escape_per_version)
{
    struct stp_slice in = SL("a:b\nc\\d\re");
    expect_escape(in, STP_V12, "a\\cb\\nc\\\\d\\re", 13);
    expect_escape(in, STP_V_NONE, "a\\cb\\nc\\\\d\\re", 13);
    /* 1.1 cannot escape CR: it stays raw. */
    expect_escape(in, STP_V11, "a\\cb\\nc\\\\d\re", 12);
    expect_escape(in, STP_V10, "a:b\nc\\d\re", 9);
    expect_escape(SL("plain"), STP_V12, "plain", 5);
    expect_escape(SL(""), STP_V12, "", 0);
}

static ssize_t unesc(const char *s, size_t n, enum stp_version v, char *out)
{
    memcpy(out, s, n);
    return stp_unescape_inplace(out, n, v);
}

Test(stomp_escape, unescape_per_version)
{
    char t[64];
    static const char in[] = "a\\cb\\nc\\\\d\\re";
    cr_assert_eq(unesc(in, sizeof(in) - 1, STP_V12, t), 9);
    cr_assert_eq(memcmp(t, "a:b\nc\\d\re", 9), 0);
    cr_assert_eq(unesc(in, sizeof(in) - 1, STP_V_NONE, t), 9);
    cr_assert_eq(unesc(in, sizeof(in) - 1, STP_V11, t), STP_EBAD_ESCAPE);
    cr_assert_eq(unesc(in, sizeof(in) - 1, STP_V10, t), (ssize_t)sizeof(in) - 1);
    cr_assert_eq(memcmp(t, in, sizeof(in) - 1), 0);
    static const char in11[] = "x\\c\\n\\\\";
    cr_assert_eq(unesc(in11, sizeof(in11) - 1, STP_V11, t), 4);
    cr_assert_eq(memcmp(t, "x:\n\\", 4), 0);
    cr_assert_eq(unesc("", 0, STP_V12, t), 0);
    cr_assert_eq(unesc("no escapes", 10, STP_V12, t), 10);
}

Test(stomp_escape, undefined_escapes_rejected)
{
    static const char *const bad[] = {"\\t", "a\\", "\\", "\\C", "\\N", "x\\0y", "\\\\\\", "\\ "};
    char t[16];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(unesc(bad[i], strlen(bad[i]), STP_V12, t), STP_EBAD_ESCAPE, "%s", bad[i]);
        cr_assert_eq(unesc(bad[i], strlen(bad[i]), STP_V11, t), STP_EBAD_ESCAPE, "%s", bad[i]);
        /* 1.0 has no escapes, so nothing is undefined. */
        cr_assert_eq(unesc(bad[i], strlen(bad[i]), STP_V10, t), (ssize_t)strlen(bad[i]));
    }
}

Test(stomp_escape, needs_escape)
{
    cr_assert_not(stp_needs_escape(SL("")));
    cr_assert_not(stp_needs_escape(SL("/queue/a-b_c.d")));
    cr_assert(stp_needs_escape(SL("a:b")));
    cr_assert(stp_needs_escape(SL("a\nb")));
    cr_assert(stp_needs_escape(SL("a\\b")));
    cr_assert(stp_needs_escape(SL("a\rb")));
}

/* Every byte value, in every position, survives escape + unescape. */
Test(stomp_escape, round_trip_all_bytes)
{
    char src[256 * 3];
    for (int i = 0; i < 256; i++) {
        src[3 * i] = (char)i;
        src[3 * i + 1] = 'x';
        src[3 * i + 2] = (char)(255 - i);
    }
    static const enum stp_version vs[] = {STP_V11, STP_V12, STP_V_NONE};
    for (size_t k = 0; k < 3; k++) {
        struct stp_buf b = STP_BUF_INIT;
        cr_assert_eq(stp_escape_append(&b, (struct stp_slice){src, sizeof(src)}, vs[k]), 0);
        if (vs[k] != STP_V11) {
            /* No raw LF, colon or CR survives 1.2 escaping. */
            cr_assert_null(memchr(b.data, '\n', b.len));
            cr_assert_null(memchr(b.data, ':', b.len));
            cr_assert_null(memchr(b.data, '\r', b.len));
        }
        ssize_t n = stp_unescape_inplace(b.data, b.len, vs[k]);
        cr_assert_eq(n, (ssize_t)sizeof(src), "v%d", vs[k]);
        cr_assert_eq(memcmp(b.data, src, sizeof(src)), 0, "v%d", vs[k]);
        stp_buf_free(&b);
    }
}
