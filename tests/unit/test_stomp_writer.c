/*
 * Unit tests of the STOMP serializer: byte-exact output, escaping per version,
 * and frames the parser reads back unchanged.
 */
#include "stampede/buf.h"
#include "stampede/error.h"
#include "stampede/stomp.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#define SL(lit) ((struct stp_slice){lit, sizeof(lit) - 1})

static void expect_buf(const struct stp_buf *b, const char *want, size_t wlen)
{
    cr_assert_eq(b->len, wlen, "got %zu bytes [%.*s], want %zu", b->len, (int)b->len, b->data,
                 wlen);
    cr_assert_eq(memcmp(b->data, want, wlen), 0, "got [%.*s]", (int)b->len, b->data);
}

Test(stomp_writer, message_frame_byte_exact)
{
    struct stp_buf b = STP_BUF_INIT;
    cr_assert_eq(stp_write_command(&b, STP_CMD_MESSAGE), 0);
    cr_assert_eq(stp_write_header_str(&b, "destination", "/topic/a", STP_V12), 0);
    cr_assert_eq(stp_write_header_str(&b, "message-id", "m:1", STP_V12), 0);
    cr_assert_eq(stp_write_header(&b, "note", SL("x\ny\\z\r"), STP_V12), 0);
    cr_assert_eq(stp_write_header_u64(&b, "content-length", 5), 0);
    cr_assert_eq(stp_write_body(&b, SL("he\0lo")), 0);
    static const char want[] = "MESSAGE\ndestination:/topic/a\nmessage-id:m\\c1\n"
                               "note:x\\ny\\\\z\\r\ncontent-length:5\n\nhe\0lo\0";
    expect_buf(&b, want, sizeof(want) - 1);
    stp_buf_free(&b);
}

Test(stomp_writer, header_escaping_per_version)
{
    struct stp_buf b = STP_BUF_INIT;
    cr_assert_eq(stp_write_header_str(&b, "a:b", "c:d\r", STP_V11), 0);
    expect_buf(&b, "a\\cb:c\\cd\r\n", 11);
    stp_buf_reset(&b);
    cr_assert_eq(stp_write_header_str(&b, "a:b", "c:d\r", STP_V10), 0);
    expect_buf(&b, "a:b:c:d\r\n", 9);
    stp_buf_reset(&b);
    cr_assert_eq(stp_write_header_str(&b, "k", "", STP_V12), 0);
    expect_buf(&b, "k:\n", 3);
    stp_buf_free(&b);
}

Test(stomp_writer, header_from_slices)
{
    struct stp_buf b = STP_BUF_INIT;
    /* Slices need not be NUL-terminated: only len bytes are used. */
    cr_assert_eq(stp_write_header_slices(&b, (struct stp_slice){"x:yZZ", 3},
                                         (struct stp_slice){"a\nbZZ", 3}, STP_V12),
                 0);
    expect_buf(&b, "x\\cy:a\\nb\n", 10);
    stp_buf_free(&b);
}

Test(stomp_writer, u64_and_empty_body)
{
    struct stp_buf b = STP_BUF_INIT;
    cr_assert_eq(stp_write_command(&b, STP_CMD_RECEIPT), 0);
    cr_assert_eq(stp_write_header_u64(&b, "n", 0), 0);
    cr_assert_eq(stp_write_header_u64(&b, "m", UINT64_MAX), 0);
    cr_assert_eq(stp_write_body(&b, (struct stp_slice){NULL, 0}), 0);
    static const char want[] = "RECEIPT\nn:0\nm:18446744073709551615\n\n\0";
    expect_buf(&b, want, sizeof(want) - 1);
    stp_buf_free(&b);
}

Test(stomp_writer, every_command_and_invalid_ones)
{
    struct stp_buf b = STP_BUF_INIT;
    for (int c = STP_CMD_HEARTBEAT + 1; c < STP_CMD__COUNT; c++) {
        stp_buf_reset(&b);
        cr_assert_eq(stp_write_command(&b, (enum stp_cmd)c), 0);
        const char *n = stp_cmd_name((enum stp_cmd)c);
        cr_assert_eq(b.len, strlen(n) + 1);
        cr_assert_eq(memcmp(b.data, n, b.len - 1), 0);
        cr_assert_eq(b.data[b.len - 1], '\n');
    }
    stp_buf_reset(&b);
    cr_assert_eq(stp_write_command(&b, STP_CMD_UNKNOWN), STP_EINVAL);
    cr_assert_eq(stp_write_command(&b, STP_CMD_HEARTBEAT), STP_EINVAL);
    cr_assert_eq(stp_write_command(&b, STP_CMD__COUNT), STP_EINVAL);
    cr_assert_eq(b.len, 0);
    stp_buf_free(&b);
}

/* What the writer produces, the parser reads back with the same headers. */
Test(stomp_writer, round_trip_through_parser)
{
    static const enum stp_version vs[] = {STP_V10, STP_V11, STP_V12};
    for (size_t k = 0; k < 3; k++) {
        enum stp_version v = vs[k];
        /* 1.1 cannot carry a CR at the end of a value; 1.0 no LF or leading colon. */
        struct stp_slice val = v == STP_V10 ? SL("v:a\\b") : SL("v:a\\b\nc");
        struct stp_buf b = STP_BUF_INIT;
        stp_write_command(&b, STP_CMD_SEND);
        stp_write_header(&b, v == STP_V10 ? "key" : "k:ey", val, v);
        stp_write_header_str(&b, "destination", "/queue/q", v);
        stp_write_header_u64(&b, "content-length", 3);
        stp_write_body(&b, SL("a\0b"));
        stp_write_command(&b, STP_CMD_DISCONNECT);
        stp_write_body(&b, SL(""));

        struct stp_limits lim = {1 << 16, 100, 1 << 12};
        struct stp_parser p;
        cr_assert_eq(stp_parser_init(&p, &lim), 0);
        p.version = v;
        char *in = malloc(b.len);
        memcpy(in, b.data, b.len);
        struct stp_frame f;
        ssize_t n = stp_parse(&p, in, b.len, &f);
        cr_assert_gt(n, 0, "v%d: %zd %s", v, n, p.err_text);
        cr_assert_eq(f.cmd, STP_CMD_SEND);
        cr_assert_eq(f.nheaders, 3);
        cr_assert(stp_slice_eq(f.headers[0].name, v == STP_V10 ? "key" : "k:ey"));
        cr_assert_eq(f.headers[0].value.len, val.len);
        cr_assert_eq(memcmp(f.headers[0].value.p, val.p, val.len), 0, "v%d", v);
        cr_assert(stp_slice_eq(*stp_frame_header(&f, "destination"), "/queue/q"));
        cr_assert_eq(f.body.len, 3);
        cr_assert_eq(memcmp(f.body.p, "a\0b", 3), 0);
        ssize_t m = stp_parse(&p, in + n, b.len - (size_t)n, &f);
        cr_assert_eq((size_t)(n + m), b.len);
        cr_assert_eq(f.cmd, STP_CMD_DISCONNECT);
        free(in);
        stp_parser_free(&p);
        stp_buf_free(&b);
    }
}
