/*
 * Unit tests of the STOMP frame parser: valid frames fed at every split point,
 * heart-beats, CRLF, NULs in content-length bodies, repeated headers, every
 * rejection with its STP_E* code and offset, limits detected early.
 * Buffers are malloc'd to their exact size so an ASan build catches any read
 * past the data.
 */
#include "stampede/buf.h"
#include "stampede/error.h"
#include "stampede/stomp.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(lit) lit, sizeof(lit) - 1

static const struct stp_limits big = {1 << 20, 1000, 1 << 16};

static void init(struct stp_parser *p, const struct stp_limits *l, enum stp_version v)
{
    cr_assert_eq(stp_parser_init(p, l), 0);
    p->version = v;
}

/* Exact-size heap copy, so ASan sees reads past the end. */
static char *dup_exact(const char *s, size_t n)
{
    char *b = malloc(n ? n : 1);
    cr_assert_not_null(b);
    memcpy(b, s, n);
    return b;
}

/* Canonical text of a frame: "CMD\nname=value\n...|body". */
static void describe(const struct stp_frame *f, struct stp_buf *out)
{
    stp_buf_append_str(out, stp_cmd_name(f->cmd));
    stp_buf_append_str(out, "\n");
    for (size_t i = 0; i < f->nheaders; i++) {
        stp_buf_append(out, f->headers[i].name.p, f->headers[i].name.len);
        stp_buf_append_str(out, "=");
        stp_buf_append(out, f->headers[i].value.p, f->headers[i].value.len);
        stp_buf_append_str(out, "\n");
    }
    stp_buf_append_str(out, f->has_content_length ? "|cl|" : "|");
    stp_buf_append(out, f->body.p, f->body.len);
    stp_buf_append_str(out, "\n");
}

/*
 * A reader as a connection would run it: bytes arrive in chunks ending at
 * cuts[0..ncuts) (the last cut must be len), the buffer is reallocated to its
 * exact size on every arrival, frames are consumed from the front. Every
 * frame is described into `log`; runs of heart-beat EOLs are merged (their
 * split depends on the chunks) into "HB n". Returns 0 or the parser's error.
 */
static int drive(const char *in, size_t len, const size_t *cuts, size_t ncuts,
                 const struct stp_limits *l, enum stp_version v, struct stp_buf *log)
{
    struct stp_parser p;
    init(&p, l, v);
    char *buf = NULL;
    size_t blen = 0, prev = 0, hb = 0;
    int err = 0;
    for (size_t c = 0; c < ncuts && !err; c++) {
        cr_assert(cuts[c] >= prev && cuts[c] <= len);
        size_t add = cuts[c] - prev;
        buf = realloc(buf, blen + add ? blen + add : 1);
        memcpy(buf + blen, in + prev, add);
        blen += add;
        prev = cuts[c];
        for (;;) {
            struct stp_frame f;
            ssize_t rc = stp_parse(&p, buf, blen, &f);
            if (rc < 0) {
                err = (int)rc;
                break;
            }
            if (rc == 0)
                break;
            cr_assert((size_t)rc <= blen);
            if (f.cmd == STP_CMD_HEARTBEAT) {
                hb += (size_t)rc;
            } else {
                if (hb) {
                    char t[32];
                    snprintf(t, sizeof(t), "HB %zu\n", hb);
                    stp_buf_append_str(log, t);
                    hb = 0;
                }
                describe(&f, log);
            }
            memmove(buf, buf + rc, blen - (size_t)rc);
            blen -= (size_t)rc;
        }
    }
    if (hb) {
        char t[32];
        snprintf(t, sizeof(t), "HB %zu\n", hb);
        stp_buf_append_str(log, t);
    }
    if (!err)
        cr_assert_eq(blen, 0, "bytes left over: %zu", blen);
    free(buf);
    stp_parser_free(&p);
    return err;
}

static void expect_log(struct stp_buf *log, const char *want, size_t wlen)
{
    cr_assert_eq(log->len, wlen, "log length %zu, want %zu: [%.*s]", log->len, wlen, (int)log->len,
                 log->data);
    cr_assert_eq(memcmp(log->data, want, wlen), 0, "log [%.*s]", (int)log->len, log->data);
}

/* Parse in one go, then byte by byte, then at every two-chunk split. */
static void check_all_splits(const char *in, size_t len, enum stp_version v, const char *want,
                             size_t wlen)
{
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));
    struct stp_buf log = STP_BUF_INIT;

    size_t whole = len;
    cr_assert_eq(drive(in, len, &whole, 1, &big, v, &log), 0);
    expect_log(&log, want, wlen);

    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    stp_buf_reset(&log);
    cr_assert_eq(drive(in, len, cuts, len, &big, v, &log), 0);
    expect_log(&log, want, wlen);

    for (size_t s = 0; s <= len; s++) {
        size_t two[2] = {s, len};
        stp_buf_reset(&log);
        cr_assert_eq(drive(in, len, two, 2, &big, v, &log), 0, "split at %zu", s);
        expect_log(&log, want, wlen);
    }
    stp_buf_free(&log);
    free(cuts);
}

/* Growing prefixes of one frame: 0 until the last byte, then the whole frame. */
static void check_prefixes(const char *in, size_t len, enum stp_version v)
{
    struct stp_parser p;
    init(&p, &big, v);
    char *buf = NULL;
    for (size_t k = 0; k <= len; k++) {
        buf = realloc(buf, k ? k : 1);
        if (k)
            buf[k - 1] = in[k - 1];
        struct stp_frame f;
        ssize_t rc = stp_parse(&p, buf, k, &f);
        if (k < len)
            cr_assert_eq(rc, 0, "prefix %zu of %zu gave %zd", k, len, rc);
        else
            cr_assert_eq(rc, (ssize_t)len);
    }
    free(buf);
    stp_parser_free(&p);
}

Test(stomp_parser, send_with_body_every_split)
{
    static const char in[] = "SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello\0";
    static const char want[] = "SEND\ndestination=/queue/a\ncontent-type=text/plain\n|hello\n";
    check_all_splits(in, sizeof(in) - 1, STP_V12, S(want));
    check_prefixes(in, sizeof(in) - 1, STP_V12);
}

Test(stomp_parser, crlf_and_nul_in_content_length_body)
{
    static const char in[] = "SEND\r\ndestination:/queue/a\r\ncontent-length:5\r\n\r\nhe\0lo\0";
    static const char want[] = "SEND\ndestination=/queue/a\ncontent-length=5\n|cl|he\0lo\n";
    check_all_splits(in, sizeof(in) - 1, STP_V12, S(want));
    check_prefixes(in, sizeof(in) - 1, STP_V12);
}

Test(stomp_parser, crlf_accepted_in_1_0_and_1_1)
{
    static const char in[] = "SEND\r\na:b\r\n\r\nx\0";
    static const char want[] = "SEND\na=b\n|x\n";
    check_all_splits(in, sizeof(in) - 1, STP_V10, S(want));
    check_all_splits(in, sizeof(in) - 1, STP_V11, S(want));
}

Test(stomp_parser, escapes_unescaped_in_place_every_split)
{
    static const char in[] = "MESSAGE\nfoo\\cbar:a\\nb\\\\c\\rd\nx:\\c\\c\n\n\0";
    static const char want[] = "MESSAGE\nfoo:bar=a\nb\\c\rd\nx=::\n|\n";
    check_all_splits(in, sizeof(in) - 1, STP_V12, S(want));
    check_prefixes(in, sizeof(in) - 1, STP_V12);
    /* Before CONNECT, non-CONNECT frames use the 1.2 rules. */
    check_all_splits(in, sizeof(in) - 1, STP_V_NONE, S(want));
}

Test(stomp_parser, no_unescaping_in_1_0)
{
    static const char in[] = "SEND\nfoo:a\\nb\\tc\n\n\0";
    static const char want[] = "SEND\nfoo=a\\nb\\tc\n|\n";
    check_all_splits(in, sizeof(in) - 1, STP_V10, S(want));
}

Test(stomp_parser, no_unescaping_in_connect_stomp_connected)
{
    static const char in[] = "CONNECT\naccept-version:1.2\nhost:/\nlogin:a\\tb\n\n\0"
                             "STOMP\npasscode:p\\q\n\n\0"
                             "CONNECTED\nserver:x\\y\n\n\0";
    static const char want[] = "CONNECT\naccept-version=1.2\nhost=/\nlogin=a\\tb\n|\n"
                               "STOMP\npasscode=p\\q\n|\n"
                               "CONNECTED\nserver=x\\y\n|\n";
    check_all_splits(in, sizeof(in) - 1, STP_V12, S(want));
    check_all_splits(in, sizeof(in) - 1, STP_V_NONE, S(want));
}

Test(stomp_parser, two_frames_back_to_back_every_split)
{
    static const char in[] = "SUBSCRIBE\nid:1\ndestination:/topic/t\nack:auto\n\n\0"
                             "SEND\ndestination:/topic/t\ncontent-length:3\n\na\0b\0";
    static const char want[] = "SUBSCRIBE\nid=1\ndestination=/topic/t\nack=auto\n|\n"
                               "SEND\ndestination=/topic/t\ncontent-length=3\n|cl|a\0b\n";
    check_all_splits(in, sizeof(in) - 1, STP_V12, S(want));
}

Test(stomp_parser, heartbeats_between_frames_every_split)
{
    static const char in[] = "\n\r\n\nDISCONNECT\nreceipt:77\n\n\0\r\n\n\nACK\nid:9\n\n\0\n";
    static const char want[] = "HB 4\nDISCONNECT\nreceipt=77\n|\nHB 4\nACK\nid=9\n|\nHB 1\n";
    check_all_splits(in, sizeof(in) - 1, STP_V12, S(want));
}

Test(stomp_parser, heartbeat_run_is_one_frame)
{
    struct stp_parser p;
    init(&p, &big, STP_V12);
    struct stp_frame f;
    char *b = dup_exact(S("\n\r\n\nSEND"));
    cr_assert_eq(stp_parse(&p, b, 8, &f), 4);
    cr_assert_eq(f.cmd, STP_CMD_HEARTBEAT);
    cr_assert_eq(f.nheaders, 0);
    cr_assert_eq(f.body.len, 0);
    cr_assert_eq(stp_parse(&p, b + 4, 4, &f), 0);
    free(b);
    stp_parser_free(&p);
}

Test(stomp_parser, lone_cr_waits_for_lf)
{
    struct stp_parser p;
    init(&p, &big, STP_V12);
    struct stp_frame f;
    char *b = dup_exact(S("\r\n"));
    cr_assert_eq(stp_parse(&p, b, 1, &f), 0);
    cr_assert_eq(stp_parse(&p, b, 2, &f), 2);
    cr_assert_eq(f.cmd, STP_CMD_HEARTBEAT);
    /* "\n\r" returns the first EOL and leaves the CR. */
    memcpy(b, "\n\r", 2);
    cr_assert_eq(stp_parse(&p, b, 2, &f), 1);
    free(b);
    stp_parser_free(&p);
}

Test(stomp_parser, eols_after_nul_left_for_next_call)
{
    struct stp_parser p;
    init(&p, &big, STP_V12);
    struct stp_frame f;
    char *b = dup_exact(S("BEGIN\ntransaction:t\n\n\0\n\n"));
    cr_assert_eq(stp_parse(&p, b, 24, &f), 22);
    cr_assert_eq(f.cmd, STP_CMD_BEGIN);
    cr_assert_eq(stp_parse(&p, b + 22, 2, &f), 2);
    cr_assert_eq(f.cmd, STP_CMD_HEARTBEAT);
    free(b);
    stp_parser_free(&p);
}

Test(stomp_parser, repeated_headers_kept_in_order_first_wins)
{
    struct stp_parser p;
    init(&p, &big, STP_V12);
    struct stp_frame f;
    static const char in[] = "SEND\nfoo:1\nbar:x\nfoo:2\nfoo:3\n\n\0";
    char *b = dup_exact(S(in));
    cr_assert_eq(stp_parse(&p, b, sizeof(in) - 1, &f), (ssize_t)sizeof(in) - 1);
    cr_assert_eq(f.nheaders, 4);
    const struct stp_slice *v = stp_frame_header(&f, "foo");
    cr_assert_not_null(v);
    cr_assert(stp_slice_eq(*v, "1"));
    cr_assert(stp_slice_eq(f.headers[2].value, "2"));
    cr_assert(stp_slice_eq(f.headers[3].value, "3"));
    cr_assert(stp_slice_eq(*stp_frame_header(&f, "bar"), "x"));
    cr_assert_null(stp_frame_header(&f, "fo"));
    cr_assert_null(stp_frame_header(&f, "baz"));
    free(b);
    stp_parser_free(&p);
}

Test(stomp_parser, first_content_length_wins)
{
    struct stp_parser p;
    init(&p, &big, STP_V12);
    struct stp_frame f;
    char *b = dup_exact(S("SEND\ncontent-length:2\ncontent-length:junk\n\na\0\0"));
    cr_assert_eq(stp_parse(&p, b, 46, &f), 46);
    cr_assert(f.has_content_length);
    cr_assert_eq(f.body.len, 2);
    cr_assert_eq(memcmp(f.body.p, "a\0", 2), 0);
    free(b);
    stp_parser_free(&p);
}

Test(stomp_parser, empty_values_and_colons_in_values)
{
    /* In 1.0 and CONNECT a value may hold ':'; the first one splits. */
    static const char in[] = "SEND\nempty:\nurl:http://x:80/\n\n\0";
    static const char want[] = "SEND\nempty=\nurl=http://x:80/\n|\n";
    check_all_splits(in, sizeof(in) - 1, STP_V10, S(want));
}

Test(stomp_parser, all_commands_recognised)
{
    static const enum stp_cmd cmds[] = {
        STP_CMD_CONNECT,     STP_CMD_STOMP,   STP_CMD_SEND,       STP_CMD_SUBSCRIBE,
        STP_CMD_UNSUBSCRIBE, STP_CMD_ACK,     STP_CMD_NACK,       STP_CMD_BEGIN,
        STP_CMD_COMMIT,      STP_CMD_ABORT,   STP_CMD_DISCONNECT, STP_CMD_CONNECTED,
        STP_CMD_MESSAGE,     STP_CMD_RECEIPT, STP_CMD_ERROR,
    };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char tmp[32];
        int n = snprintf(tmp, sizeof(tmp), "%s\n\n", stp_cmd_name(cmds[i]));
        char *b = dup_exact(tmp, (size_t)n + 1); /* with the NUL */
        struct stp_parser p;
        init(&p, &big, STP_V12);
        struct stp_frame f;
        cr_assert_eq(stp_parse(&p, b, (size_t)n + 1, &f), n + 1, "%s", tmp);
        cr_assert_eq(f.cmd, cmds[i]);
        free(b);
        stp_parser_free(&p);
    }
}

Test(stomp_parser, many_headers_grow_array)
{
    struct stp_buf in = STP_BUF_INIT;
    stp_buf_append_str(&in, "SEND\n");
    for (int i = 0; i < 1000; i++) {
        char t[32];
        snprintf(t, sizeof(t), "h%d:%d\n", i, i);
        stp_buf_append_str(&in, t);
    }
    stp_buf_append(&in, "\n\0", 2);
    struct stp_parser p;
    init(&p, &big, STP_V12);
    struct stp_frame f;
    char *b = dup_exact(in.data, in.len);
    cr_assert_eq(stp_parse(&p, b, in.len, &f), (ssize_t)in.len);
    cr_assert_eq(f.nheaders, 1000);
    for (int i = 0; i < 1000; i += 97) {
        char t[16];
        snprintf(t, sizeof(t), "%d", i);
        cr_assert(stp_slice_eq(f.headers[i].value, t));
    }
    free(b);
    stp_buf_free(&in);
    stp_parser_free(&p);
}

/* --- rejections --------------------------------------------------------- */

struct reject {
    const char *in;
    size_t len;
    enum stp_version v;
    struct stp_limits lim;
    int code;
    size_t offset;
};

/* clang-format off */
#define REJ(lit, ver, l, c, off) {lit, sizeof(lit) - 1, ver, l, c, off}
#define BIG {1 << 20, 1000, 1 << 16}
/* clang-format on */

static const struct reject rejects[] = {
    REJ("send\n\n\0", STP_V12, BIG, STP_EBAD_COMMAND, 0),
    REJ("FOO\n\n\0", STP_V12, BIG, STP_EBAD_COMMAND, 0),
    REJ("SENDX\n\n\0", STP_V12, BIG, STP_EBAD_COMMAND, 0),
    REJ("SEND \n\n\0", STP_V12, BIG, STP_EBAD_COMMAND, 4),
    REJ("SEND\r\r\n\n\0", STP_V12, BIG, STP_EBAD_COMMAND, 4),
    REJ("SUBSCRIBEXXXXX\n\n\0", STP_V12, BIG, STP_EBAD_COMMAND, 12),
    REJ("UNSUBSCRIBEX\r\n\n\0", STP_V12, BIG, STP_EBAD_COMMAND, 12),
    REJ("SCRIBENECTON\r\xff", STP_V12, BIG, STP_EBAD_COMMAND, 12),
    REJ("\0", STP_V12, BIG, STP_EBAD_COMMAND, 0),
    REJ("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", STP_V12, BIG, STP_EBAD_COMMAND, 0),
    REJ("GET / HTTP/1.1\r\n\r\n", STP_V12, BIG, STP_EBAD_COMMAND, 3),
    REJ("\r\rSEND", STP_V12, BIG, STP_EBAD_COMMAND, 0),
    REJ("SEND\nfoo\n\n\0", STP_V12, BIG, STP_EBAD_HEADER, 5),
    REJ("SEND\na:b\n:bar\n\n\0", STP_V12, BIG, STP_EBAD_HEADER, 9),
    /* A NUL in a header line, wherever it is (issue 9: cut-short names and
     * frames injected into 1.0 subscribers). */
    REJ("SUBSCRIBE\nid:1\ndestination:/topic/a\0BBBB\n\n\0", STP_V12, BIG, STP_EBAD_HEADER, 35),
    REJ("SEND\nx:\\n\\n\0MESSAGE\n\n\0", STP_V12, BIG, STP_EBAD_HEADER, 11),
    REJ("SEND\n\0a:b\n\n\0", STP_V12, BIG, STP_EBAD_HEADER, 5),
    REJ("SEND\na\0:b\n\n\0", STP_V10, BIG, STP_EBAD_HEADER, 6),
    REJ("SEND\na:b\0\r\n\n\0", STP_V12, BIG, STP_EBAD_HEADER, 8),
    REJ("CONNECT\nlogin:a\0b\n\n\0", STP_V_NONE, BIG, STP_EBAD_HEADER, 15),
    REJ("SEND\na:1\\tb\n\n\0", STP_V12, BIG, STP_EBAD_ESCAPE, 8),
    REJ("SEND\na\\x:1\n\n\0", STP_V12, BIG, STP_EBAD_ESCAPE, 6),
    REJ("SEND\na:1\\rb\n\n\0", STP_V11, BIG, STP_EBAD_ESCAPE, 8),
    REJ("SEND\na:1\\\n\n\0", STP_V12, BIG, STP_EBAD_ESCAPE, 8),
    REJ("SEND\na:\\q\n\n\0", STP_V_NONE, BIG, STP_EBAD_ESCAPE, 7),
    REJ("SEND\ncontent-length:-1\n\n\0", STP_V12, BIG, STP_EBAD_CONTENT_LENGTH, 20),
    REJ("SEND\ncontent-length:abc\n\n\0", STP_V12, BIG, STP_EBAD_CONTENT_LENGTH, 20),
    REJ("SEND\ncontent-length:\n\n\0", STP_V12, BIG, STP_EBAD_CONTENT_LENGTH, 20),
    REJ("SEND\ncontent-length:1a\n\na\0", STP_V12, BIG, STP_EBAD_CONTENT_LENGTH, 20),
    REJ("SEND\ncontent-length: 1\n\na\0", STP_V12, BIG, STP_EBAD_CONTENT_LENGTH, 20),
    REJ("SEND\ncontent-length:+1\n\na\0", STP_V12, BIG, STP_EBAD_CONTENT_LENGTH, 20),
    REJ("SEND\ncontent-length:18446744073709551616\n\n\0", STP_V12, BIG, STP_EBAD_CONTENT_LENGTH,
        20),
    REJ("SEND\ncontent-length:99999999999999999999999\n\n\0", STP_V12, BIG, STP_EBAD_CONTENT_LENGTH,
        20),
    REJ("SEND\ncontent-length:5000\n\n\0", STP_V12, ((struct stp_limits){1024, 10, 100}),
        STP_EFRAME_TOO_BIG, 20),
    /* 1000 fits by itself but not with the 26 bytes before the body. */
    REJ("SEND\ncontent-length:1000\n\n", STP_V12, ((struct stp_limits){1024, 10, 100}),
        STP_EFRAME_TOO_BIG, 26),
    REJ("SEND\ncontent-length:5\n\nhello!\0", STP_V12, BIG, STP_EMISSING_NUL, 28),
    REJ("SEND\ncontent-length:0\n\nx\0", STP_V12, BIG, STP_EMISSING_NUL, 23),
    REJ("SEND\na:1\nb:2\nc:3\n\n\0", STP_V12, ((struct stp_limits){1024, 2, 100}),
        STP_ETOO_MANY_HEADERS, 13),
    REJ("SEND\na:1\n\n\0", STP_V12, ((struct stp_limits){1024, 0, 100}), STP_ETOO_MANY_HEADERS, 5),
    REJ("SEND\nabcde:12345\n\n\0", STP_V12, ((struct stp_limits){1024, 10, 10}),
        STP_EHEADER_TOO_LONG, 5),
    REJ("SEND\nabcde:1234\r\r\n\n\0", STP_V12, ((struct stp_limits){1024, 10, 10}),
        STP_EHEADER_TOO_LONG, 5),
    REJ("SEND\na:b\n\n0123456789\0", STP_V12, ((struct stp_limits){20, 10, 10}), STP_EFRAME_TOO_BIG,
        20),
    REJ("SEND\na:b\n\n0123456789", STP_V12, ((struct stp_limits){20, 10, 10}), STP_EFRAME_TOO_BIG,
        20),
    REJ("SEND\naaaaaaaaaaaaaaaaaaaaaaaaaaaaa", STP_V12, ((struct stp_limits){20, 10, 100}),
        STP_EFRAME_TOO_BIG, 20),
};

Test(stomp_parser, rejections_whole_and_byte_by_byte)
{
    for (size_t i = 0; i < sizeof(rejects) / sizeof(rejects[0]); i++) {
        const struct reject *r = &rejects[i];
        /* Whole input at once. */
        struct stp_parser p;
        init(&p, &r->lim, r->v);
        struct stp_frame f;
        char *b = dup_exact(r->in, r->len);
        ssize_t rc = stp_parse(&p, b, r->len, &f);
        cr_assert_eq(rc, r->code, "case %zu: got %zd (%s), want %d", i, rc,
                     p.err_text ? p.err_text : "-", r->code);
        cr_assert_eq(p.err_offset, r->offset, "case %zu: offset %zu, want %zu", i, p.err_offset,
                     r->offset);
        cr_assert_not_null(p.err_text);
        /* Sticky until reset. */
        cr_assert_eq(stp_parse(&p, b, r->len, &f), r->code);
        stp_parser_reset(&p);
        cr_assert_eq(stp_parse(&p, b, 0, &f), 0);
        stp_parser_free(&p);
        free(b);

        /* Byte by byte: never a frame, the same error by the end. */
        init(&p, &r->lim, r->v);
        char *g = NULL;
        rc = 0;
        for (size_t k = 1; k <= r->len && rc == 0; k++) {
            g = realloc(g, k);
            g[k - 1] = r->in[k - 1];
            rc = stp_parse(&p, g, k, &f);
            cr_assert(rc <= 0, "case %zu: frame from a bad input at %zu", i, k);
        }
        cr_assert_eq(rc, r->code, "case %zu byte by byte: got %zd", i, rc);
        cr_assert_eq(p.err_offset, r->offset, "case %zu byte by byte: offset %zu", i, p.err_offset);
        free(g);
        stp_parser_free(&p);
    }
}

/* Feed prefixes and return the length at which the parser first failed. */
static size_t fail_point(const char *in, size_t len, const struct stp_limits *l, int code)
{
    struct stp_parser p;
    init(&p, l, STP_V12);
    char *g = NULL;
    size_t at = 0;
    for (size_t k = 1; k <= len; k++) {
        g = realloc(g, k);
        g[k - 1] = in[k - 1];
        struct stp_frame f;
        ssize_t rc = stp_parse(&p, g, k, &f);
        if (rc < 0) {
            cr_assert_eq(rc, code, "at %zu: %zd", k, rc);
            at = k;
            break;
        }
        cr_assert_eq(rc, 0);
    }
    free(g);
    stp_parser_free(&p);
    return at;
}

Test(stomp_parser, limits_detected_early)
{
    char in[400];
    /* Frame limit 100: an endless body fails once 100 bytes are in. */
    memset(in, 'x', sizeof(in));
    memcpy(in, "SEND\n\n", 6);
    struct stp_limits l = {100, 10, 50};
    cr_assert_eq(fail_point(in, sizeof(in), &l, STP_EFRAME_TOO_BIG), 100);
    /* Header line limit 50: fails when the unfinished line holds 51 bytes. */
    memcpy(in, "SEND\nk:", 7);
    l = (struct stp_limits){1000, 10, 50};
    cr_assert_eq(fail_point(in, sizeof(in), &l, STP_EHEADER_TOO_LONG), 5 + 51);
    /* ... but 50 bytes then CR is still a possible CRLF. */
    in[5 + 50] = '\r';
    cr_assert_eq(fail_point(in, sizeof(in), &l, STP_EHEADER_TOO_LONG), 5 + 52);
    /* Too many headers: fails at the first byte of the third header line. */
    static const char th[] = "SEND\na:1\nb:2\nc:3\n\n";
    l = (struct stp_limits){1000, 2, 50};
    cr_assert_eq(fail_point(S(th), &l, STP_ETOO_MANY_HEADERS), 14);
    /* An announced content-length over the limit fails at its own line. */
    static const char cl[] = "SEND\ncontent-length:100\nx:y\n\n";
    l = (struct stp_limits){100, 10, 50};
    cr_assert_eq(fail_point(S(cl), &l, STP_EFRAME_TOO_BIG), 24);
    /* Junk fails on its first byte. */
    static const char junk[] = "\x01\x02\x03\x04";
    cr_assert_eq(fail_point(S(junk), &l, STP_EBAD_COMMAND), 1);
}

Test(stomp_parser, exact_limits_are_allowed)
{
    /* Frame of exactly max_frame bytes, header line of exactly max_header_len,
     * exactly max_headers headers. */
    static const char in[] = "SEND\nabcd:12345\nx:y\n\nbody\0"; /* 26 bytes */
    struct stp_limits l = {26, 2, 10};
    struct stp_buf log = STP_BUF_INIT;
    size_t cuts[26];
    for (size_t i = 0; i < 26; i++)
        cuts[i] = i + 1;
    cr_assert_eq(drive(in, 26, cuts, 26, &l, STP_V12, &log), 0);
    expect_log(&log, S("SEND\nabcd=12345\nx=y\n|body\n"));
    l.max_frame = 25;
    stp_buf_reset(&log);
    cr_assert_eq(drive(in, 26, cuts, 26, &l, STP_V12, &log), STP_EFRAME_TOO_BIG);
    stp_buf_free(&log);
}

Test(stomp_parser, limits_can_change_between_frames)
{
    struct stp_limits small = {32, 1, 16};
    struct stp_parser p;
    init(&p, &small, STP_V_NONE);
    struct stp_frame f;
    char *b = dup_exact(S("SEND\na:1\nb:2\n\n\0"));
    cr_assert_eq(stp_parse(&p, b, 15, &f), STP_ETOO_MANY_HEADERS);
    stp_parser_reset(&p);
    stp_parser_set_limits(&p, &big);
    cr_assert_eq(stp_parse(&p, b, 15, &f), 15);
    cr_assert_eq(f.nheaders, 2);
    free(b);
    stp_parser_free(&p);
}

Test(stomp_parser, peek_header_after_error_and_while_incomplete)
{
    struct stp_parser p;
    init(&p, &big, STP_V12);
    struct stp_frame f;
    struct stp_slice v;
    static const char in[] = "SEND\nreceipt:r\\c1\nreceipt:2\ncontent-length:x\n\n\0";
    char *b = dup_exact(S(in));
    /* Incomplete: the finished lines can be looked at, already unescaped. */
    cr_assert_eq(stp_parse(&p, b, 20, &f), 0);
    cr_assert(stp_parser_peek_header(&p, b, "receipt", &v));
    cr_assert(stp_slice_eq(v, "r:1"));
    cr_assert_eq(stp_parse(&p, b, sizeof(in) - 1, &f), STP_EBAD_CONTENT_LENGTH);
    cr_assert(stp_parser_peek_header(&p, b, "receipt", &v));
    cr_assert(stp_slice_eq(v, "r:1"));
    cr_assert_not(stp_parser_peek_header(&p, b, "content-length", &v));
    cr_assert_not(stp_parser_peek_header(&p, b, "destination", &v));
    stp_parser_reset(&p);
    cr_assert_not(stp_parser_peek_header(&p, b, "receipt", &v));
    free(b);
    stp_parser_free(&p);
}

/* --- helpers ------------------------------------------------------------ */

Test(stomp_parser, cmd_names)
{
    cr_assert_str_eq(stp_cmd_name(STP_CMD_SEND), "SEND");
    cr_assert_str_eq(stp_cmd_name(STP_CMD_UNSUBSCRIBE), "UNSUBSCRIBE");
    cr_assert_str_eq(stp_cmd_name(STP_CMD_ERROR), "ERROR");
    cr_assert_str_eq(stp_cmd_name(STP_CMD_HEARTBEAT), "HEARTBEAT");
    cr_assert_str_eq(stp_cmd_name(STP_CMD_UNKNOWN), "UNKNOWN");
    cr_assert_str_eq(stp_cmd_name((enum stp_cmd)999), "UNKNOWN");
}

Test(stomp_parser, slice_eq)
{
    cr_assert(stp_slice_eq((struct stp_slice){"abc", 3}, "abc"));
    cr_assert_not(stp_slice_eq((struct stp_slice){"abc", 2}, "abc"));
    cr_assert_not(stp_slice_eq((struct stp_slice){"abd", 3}, "abc"));
    cr_assert(stp_slice_eq((struct stp_slice){NULL, 0}, ""));
}

Test(stomp_parser, parse_u64_table)
{
    static const struct {
        const char *s;
        int rc;
        uint64_t v;
    } t[] = {
        {"0", 0, 0},
        {"007", 0, 7},
        {"1234567890", 0, 1234567890},
        {"18446744073709551615", 0, UINT64_MAX},
        {"18446744073709551616", STP_EINVAL, 0},
        {"99999999999999999999", STP_EINVAL, 0},
        {"", STP_EINVAL, 0},
        {"-1", STP_EINVAL, 0},
        {"+1", STP_EINVAL, 0},
        {" 1", STP_EINVAL, 0},
        {"1 ", STP_EINVAL, 0},
        {"1x", STP_EINVAL, 0},
        {"0x10", STP_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        uint64_t v = 12345;
        int rc = stp_parse_u64((struct stp_slice){t[i].s, strlen(t[i].s)}, &v);
        cr_assert_eq(rc, t[i].rc, "'%s'", t[i].s);
        if (rc == 0)
            cr_assert_eq(v, t[i].v, "'%s'", t[i].s);
        else
            cr_assert_eq(v, 12345, "'%s' wrote its output on error", t[i].s);
    }
}

/* Progress is remembered: a 16 MiB body arriving 8 bytes at a time takes
 * 2M calls (well under a second); rescanning the body from its start on each
 * call would read about 16 TB and blow the timeout by far. */
Test(stomp_parser, resuming_does_not_rescan, .timeout = 10)
{
    const size_t body = 16 << 20;
    struct stp_limits l = {32 << 20, 10, 100};
    char *b = malloc(body + 64);
    cr_assert_not_null(b);
    size_t n = (size_t)sprintf(b, "SEND\ndestination:/queue/big\n\n");
    memset(b + n, 'x', body);
    n += body;
    b[n++] = '\0';
    struct stp_parser p;
    init(&p, &l, STP_V12);
    struct stp_frame f;
    ssize_t rc = 0;
    size_t have = 0;
    while (rc == 0 && have < n) {
        have = have + 8 < n ? have + 8 : n;
        rc = stp_parse(&p, b, have, &f);
    }
    cr_assert_eq(rc, (ssize_t)n);
    cr_assert_eq(f.body.len, body);
    free(b);
    stp_parser_free(&p);
}
