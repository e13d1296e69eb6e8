/* Unit tests of /metrics label values (src/net/http.c): escaping, UTF-8
 * validity whatever the bytes, and names cut on a character boundary. */
#include "broker/metrics.h"

#include "stampede/buf.h"

#include <criterion/criterion.h>
#include <string.h>

static char out[1024];

static const char *label(const char *s, size_t n, bool cut)
{
    struct stp_buf b = STP_BUF_INIT;
    cr_assert_eq(stp_metrics_label_value(&b, s, n, cut), 0);
    cr_assert_lt(b.len, sizeof(out));
    memcpy(out, b.data ? b.data : "", b.len);
    out[b.len] = '\0';
    stp_buf_free(&b);
    return out;
}

#define L(lit, cut) label(lit, sizeof(lit) - 1, cut)
#define FFFD "\xef\xbf\xbd"

Test(http_label, plain_and_escaped)
{
    cr_assert_str_eq(L("/queue/a.b-c", false), "/queue/a.b-c");
    cr_assert_str_eq(L("q\"x", false), "q\\\"x");
    cr_assert_str_eq(L("q\\x", false), "q\\\\x");
    cr_assert_str_eq(L("q\nx", false), "q\\nx");
    cr_assert_str_eq(L("", false), "");
}

Test(http_label, valid_utf8_kept)
{
    cr_assert_str_eq(L("/queue/caf\xc3\xa9", false), "/queue/caf\xc3\xa9");
    cr_assert_str_eq(L("\xe2\x82\xac\xf0\x9f\x98\x80", false), "\xe2\x82\xac\xf0\x9f\x98\x80");
    cr_assert_str_eq(L("\xf4\x8f\xbf\xbf", false), "\xf4\x8f\xbf\xbf"); /* U+10FFFF */
}

Test(http_label, invalid_bytes_become_replacement_characters)
{
    cr_assert_str_eq(L("a\377b", false), "a" FFFD "b");
    cr_assert_str_eq(L("\x80", false), FFFD);                            /* lone continuation */
    cr_assert_str_eq(L("\xc0\xaf", false), FFFD FFFD);                   /* overlong '/' */
    cr_assert_str_eq(L("\xe0\x80\xaf", false), FFFD FFFD FFFD);          /* overlong, 3 bytes */
    cr_assert_str_eq(L("\xed\xa0\x80", false), FFFD FFFD FFFD);          /* surrogate */
    cr_assert_str_eq(L("\xf4\x90\x80\x80", false), FFFD FFFD FFFD FFFD); /* > U+10FFFF */
    cr_assert_str_eq(L("\342\202x", false), FFFD "x");                   /* maximal subpart: one */
    cr_assert_str_eq(L("\xf0\x9f\x98", false), FFFD);                    /* truncated, not cut */
    cr_assert_str_eq(L("\xff\"\\\n", false), FFFD "\\\"\\\\\\n");
}

Test(http_label, a_cut_name_ends_on_a_character_boundary)
{
    cr_assert_str_eq(L("ab\xe2\x82", true), "ab");
    cr_assert_str_eq(L("ab\xf0\x9f\x98", true), "ab");
    cr_assert_str_eq(L("ab\xc3", true), "ab");
    cr_assert_str_eq(L("ab\xc3\xa9", true), "ab\xc3\xa9"); /* whole: kept */
    cr_assert_str_eq(L("ab\xff", true), "ab" FFFD);        /* not a character: replaced */
    cr_assert_str_eq(L("\342\202ab\342\202", true), FFFD "ab");
}

/* Every 1-3 byte input gives valid UTF-8 with no raw quote, backslash
 * escape broken or newline. */
Test(http_label, any_bytes_give_a_safe_value)
{
    unsigned char in[3];
    for (unsigned v = 0; v < 1u << 24; v += 97) {
        in[0] = (unsigned char)(v >> 16), in[1] = (unsigned char)(v >> 8), in[2] = (unsigned char)v;
        for (size_t n = 1; n <= 3; n++) {
            const char *o = label((const char *)in, n, v & 1);
            size_t len = strlen(o);
            for (size_t i = 0; i < len; i++) {
                cr_assert_neq(o[i], '\n');
                if (o[i] == '\\') {
                    cr_assert(o[i + 1] == '\\' || o[i + 1] == '"' || o[i + 1] == 'n');
                    i++;
                } else {
                    cr_assert_neq(o[i], '"');
                }
            }
        }
    }
}
