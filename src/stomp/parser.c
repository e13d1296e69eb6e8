/*
 * parser.c - the resumable, zero-copy STOMP frame parser (contract in
 * include/stampede/stomp.h) and the small frame helpers around it.
 *
 * Owns struct stp_parser's private fields. A parser belongs to one
 * connection and is used by one thread at a time; no locks, no globals
 * besides constant tables.
 *
 * How it works: a frame always starts at buf[0]. The state remembers what is
 * already known about the bytes before p->scan (command, finished header
 * lines as offsets, content-length), so a call with more bytes only looks at
 * the new ones. Every scan is a memchr bounded by lim = min(len, max_frame), so
 * nothing past the frame limit is ever read and an oversize frame is reported
 * as soon as max_frame bytes have arrived without completing it. Header slices
 * are stored as offsets while the frame is incomplete (the caller may move the
 * buffer between calls) and turned into pointers when the frame is returned.
 */
#include "stampede/stomp.h"

#include "stampede/error.h"
#include "stomp_internal.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum {
    S_START = 0, /* before or inside the command line */
    S_HEADERS,   /* p->hdr_start is the start of the next header line */
    S_BODY,      /* headers done; p->body_start is the first body byte */
};

#define CMD_LINE_MAX 12 /* "UNSUBSCRIBE\r" */
#define HDRS_INITIAL 16

/* clang-format off */
static const char *const cmd_names[STP_CMD__COUNT] = {
    [STP_CMD_UNKNOWN] = "UNKNOWN",
    [STP_CMD_HEARTBEAT] = "HEARTBEAT",
#define STP_CMD_NAME(n) [STP_CMD_##n] = #n,
    STP_CMD_MAP(STP_CMD_NAME)
#undef STP_CMD_NAME
};
/* clang-format on */

const char *stp_cmd_name(enum stp_cmd cmd)
{
    if ((unsigned)cmd >= STP_CMD__COUNT)
        return "UNKNOWN";
    return cmd_names[cmd];
}

static const unsigned char cmd_lens[STP_CMD__COUNT] = {
#define STP_CMD_LEN(n) [STP_CMD_##n] = sizeof(#n) - 1,
    STP_CMD_MAP(STP_CMD_LEN)
#undef STP_CMD_LEN
};

/* s[0..n) is 1..CMD_LINE_MAX upper-case letters. */
static enum stp_cmd lookup_cmd(const char *s, size_t n)
{
    for (int c = STP_CMD_HEARTBEAT + 1; c < STP_CMD__COUNT; c++) {
        if (cmd_lens[c] == n && memcmp(cmd_names[c], s, n) == 0)
            return (enum stp_cmd)c;
    }
    return STP_CMD_UNKNOWN;
}

static size_t sat_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static void clear_frame(struct stp_parser *p)
{
    p->state = S_START;
    p->scan = 0;
    p->hdr_start = 0;
    p->body_start = 0;
    p->content_length = 0;
    p->has_cl = false;
    p->cmd = STP_CMD_UNKNOWN;
    p->nhdrs = 0;
}

int stp_parser_init(struct stp_parser *p, const struct stp_limits *limits)
{
    memset(p, 0, sizeof(*p));
    p->limits = *limits;
    p->hdrs_cap = limits->max_headers < HDRS_INITIAL ? limits->max_headers : HDRS_INITIAL;
    p->hdrs = malloc((p->hdrs_cap ? p->hdrs_cap : 1) * sizeof(*p->hdrs));
    if (!p->hdrs)
        return STP_ENOMEM;
    p->version = STP_V_NONE;
    clear_frame(p);
    return 0;
}

void stp_parser_set_limits(struct stp_parser *p, const struct stp_limits *limits)
{
    p->limits = *limits;
}

void stp_parser_reset(struct stp_parser *p)
{
    p->err_offset = 0;
    p->err_text = NULL;
    clear_frame(p);
}

void stp_parser_free(struct stp_parser *p)
{
    free(p->hdrs);
    p->hdrs = NULL;
    p->hdrs_cap = 0;
    p->nhdrs = 0;
}

static int fail(struct stp_parser *p, int code, size_t off, const char *text)
{
    assert(code < 0);
    p->state = code;
    p->err_offset = off;
    p->err_text = text;
    return code;
}

/* Nothing complete within lim bytes: an error if lim is the frame limit. */
static int need_more(struct stp_parser *p, size_t lim)
{
    if (lim >= p->limits.max_frame)
        return fail(p, STP_EFRAME_TOO_BIG, lim, "frame larger than the limit");
    return 0;
}

/* Length of the run of EOLs at buf[0]; *partial when it stops at a final CR. */
static size_t eol_run(const char *buf, size_t len, bool *partial)
{
    size_t i = 0;
    *partial = false;
    while (i < len) {
        if (buf[i] == '\n') {
            i++;
        } else if (buf[i] == '\r') {
            if (i + 1 == len)
                *partial = true;
            if (i + 1 == len || buf[i + 1] != '\n')
                break;
            i += 2;
        } else {
            break;
        }
    }
    return i;
}

/* S_START: the command line. 1 when done, 0 for more bytes, or an error. */
static int parse_command(struct stp_parser *p, const char *buf, size_t len, size_t lim)
{
    size_t end = lim < CMD_LINE_MAX + 1 ? lim : CMD_LINE_MAX + 1;
    size_t i = p->scan;
    for (; i < end; i++) {
        char c = buf[i];
        if (c == '\n')
            break;
        if (i == CMD_LINE_MAX)
            return fail(p, STP_EBAD_COMMAND, i, "command line too long");
        if (c >= 'A' && c <= 'Z')
            continue;
        if (c == '\r' && (i + 1 >= len || buf[i + 1] == '\n'))
            continue;
        return fail(p, STP_EBAD_COMMAND, i, "command must be upper-case letters");
    }
    if (i == end) {
        assert(end == lim);
        /* A final CR is looked at again once the byte after it is in. */
        p->scan = i > 0 && buf[i - 1] == '\r' ? i - 1 : i;
        return need_more(p, lim);
    }
    size_t n = i > 0 && buf[i - 1] == '\r' ? i - 1 : i;
    p->cmd = n ? lookup_cmd(buf, n) : STP_CMD_UNKNOWN;
    if (p->cmd == STP_CMD_UNKNOWN)
        return fail(p, STP_EBAD_COMMAND, 0, "unknown command");
    p->hdr_start = p->scan = i + 1;
    p->state = S_HEADERS;
    return 1;
}

static bool escapes_apply(const struct stp_parser *p)
{
    return p->version != STP_V10 && p->cmd != STP_CMD_CONNECT && p->cmd != STP_CMD_STOMP &&
           p->cmd != STP_CMD_CONNECTED;
}

static int grow_headers(struct stp_parser *p, size_t off)
{
    size_t cap = p->hdrs_cap ? 2 * p->hdrs_cap : 1;
    if (cap > p->limits.max_headers || cap < p->hdrs_cap)
        cap = p->limits.max_headers;
    struct stp_header *h = realloc(p->hdrs, cap * sizeof(*h));
    if (!h)
        return fail(p, STP_ENOMEM, off, "out of memory for headers");
    p->hdrs = h;
    p->hdrs_cap = cap;
    return 0;
}

static int content_length(struct stp_parser *p, const char *v, size_t vlen, size_t off)
{
    uint64_t cl;
    if (stp_parse_u64((struct stp_slice){v, vlen}, &cl) != 0)
        return fail(p, STP_EBAD_CONTENT_LENGTH, off, "content-length is not a decimal number");
    if (cl >= p->limits.max_frame)
        return fail(p, STP_EFRAME_TOO_BIG, off, "content-length larger than the frame limit");
    p->content_length = (size_t)cl;
    p->has_cl = true;
    return 0;
}

/* One complete header line buf[hs..le) (EOL excluded): split, unescape, store. */
static int add_header(struct stp_parser *p, char *buf, size_t hs, size_t le)
{
    char *line = buf + hs;
    char *colon = memchr(line, ':', le - hs);
    if (!colon)
        return fail(p, STP_EBAD_HEADER, hs, "header line without ':'");
    size_t nlen = (size_t)(colon - line);
    if (nlen == 0)
        return fail(p, STP_EBAD_HEADER, hs, "empty header name");
    size_t voff = hs + nlen + 1, vlen = le - voff;
    if (escapes_apply(p) && memchr(line, '\\', le - hs)) {
        size_t bad;
        ssize_t r = stp_stomp_unescape(line, nlen, p->version, &bad);
        if (r < 0)
            return fail(p, STP_EBAD_ESCAPE, hs + bad, "undefined escape in header name");
        nlen = (size_t)r;
        r = stp_stomp_unescape(buf + voff, vlen, p->version, &bad);
        if (r < 0)
            return fail(p, STP_EBAD_ESCAPE, voff + bad, "undefined escape in header value");
        vlen = (size_t)r;
    }
    if (!p->has_cl && nlen == 14 && memcmp(line, "content-length", 14) == 0) {
        int rc = content_length(p, buf + voff, vlen, voff);
        if (rc)
            return rc;
    }
    if (p->nhdrs == p->hdrs_cap && grow_headers(p, hs))
        return p->state;
    struct stp_header *h = &p->hdrs[p->nhdrs++];
    h->name = (struct stp_slice){(const char *)(uintptr_t)hs, nlen};
    h->value = (struct stp_slice){(const char *)(uintptr_t)voff, vlen};
    return 0;
}

static int end_of_headers(struct stp_parser *p, size_t body_start)
{
    p->body_start = p->scan = body_start;
    p->state = S_BODY;
    /* body_start <= max_frame here, so the subtraction cannot wrap. */
    if (p->has_cl && p->content_length >= p->limits.max_frame - body_start)
        return fail(p, STP_EFRAME_TOO_BIG, body_start,
                    "content-length larger than the frame limit");
    return 1;
}

/* An unfinished header line of n bytes: longer than the limit already? */
static bool line_too_long(const struct stp_parser *p, const char *buf, size_t hs, size_t n)
{
    size_t max = p->limits.max_header_len;
    if (n <= max)
        return false;
    /* One byte over is still fine when it is the CR of a coming CRLF. */
    return n > sat_add(max, 1) || buf[hs + n - 1] != '\r';
}

/* S_HEADERS: header lines up to the blank line. 1 when done, 0, or an error. */
static int parse_headers(struct stp_parser *p, char *buf, size_t lim)
{
    const size_t max_len = p->limits.max_header_len;
    for (;;) {
        size_t hs = p->hdr_start;
        if (p->nhdrs == p->limits.max_headers && hs < lim && buf[hs] != '\n' && buf[hs] != '\r')
            return fail(p, STP_ETOO_MANY_HEADERS, hs, "too many headers");
        size_t w = sat_add(hs, sat_add(max_len, 2));
        if (w > lim)
            w = lim;
        char *nl = p->scan < w ? memchr(buf + p->scan, '\n', w - p->scan) : NULL;
        if (!nl) {
            if (line_too_long(p, buf, hs, w - hs))
                return fail(p, STP_EHEADER_TOO_LONG, hs, "header line too long");
            p->scan = w;
            return need_more(p, lim);
        }
        size_t e = (size_t)(nl - buf);
        size_t le = e > hs && buf[e - 1] == '\r' ? e - 1 : e;
        if (le == hs)
            return end_of_headers(p, e + 1);
        if (le - hs > max_len)
            return fail(p, STP_EHEADER_TOO_LONG, hs, "header line too long");
        if (p->nhdrs == p->limits.max_headers)
            return fail(p, STP_ETOO_MANY_HEADERS, hs, "too many headers");
        /* A NUL ends a frame on the wire: one inside a header would let a
         * value cut short in C strings, or end a relayed frame early. */
        const char *nul = memchr(buf + hs, '\0', le - hs);
        if (nul)
            return fail(p, STP_EBAD_HEADER, (size_t)(nul - buf), "NUL byte in a header line");
        int rc = add_header(p, buf, hs, le);
        if (rc)
            return rc;
        p->hdr_start = p->scan = e + 1;
    }
}

/* S_BODY: index of the terminating NUL in *nul. 1 when found, 0, or an error. */
static int parse_body(struct stp_parser *p, const char *buf, size_t len, size_t lim, size_t *nul)
{
    if (p->has_cl) {
        size_t end = p->body_start + p->content_length; /* < max_frame, checked */
        if (end >= len)
            return 0;
        if (buf[end] != '\0')
            return fail(p, STP_EMISSING_NUL, end, "body not followed by NUL");
        *nul = end;
        return 1;
    }
    const char *z = p->scan < lim ? memchr(buf + p->scan, '\0', lim - p->scan) : NULL;
    if (!z) {
        p->scan = lim;
        return need_more(p, lim);
    }
    *nul = (size_t)(z - buf);
    return 1;
}

static ssize_t emit_frame(struct stp_parser *p, char *buf, size_t nul, struct stp_frame *out)
{
    for (size_t i = 0; i < p->nhdrs; i++) {
        struct stp_header *h = &p->hdrs[i];
        h->name.p = buf + (uintptr_t)h->name.p;
        h->value.p = buf + (uintptr_t)h->value.p;
    }
    out->cmd = p->cmd;
    out->headers = p->hdrs;
    out->nheaders = p->nhdrs;
    out->body = (struct stp_slice){buf + p->body_start, nul - p->body_start};
    out->has_content_length = p->has_cl;
    clear_frame(p);
    return (ssize_t)(nul + 1);
}

static ssize_t emit_heartbeat(struct stp_parser *p, char *buf, size_t n, struct stp_frame *out)
{
    out->cmd = STP_CMD_HEARTBEAT;
    out->headers = p->hdrs;
    out->nheaders = 0;
    out->body = (struct stp_slice){buf, 0};
    out->has_content_length = false;
    return (ssize_t)n;
}

ssize_t stp_parse(struct stp_parser *p, char *buf, size_t len, struct stp_frame *out)
{
    if (p->state < 0)
        return p->state;
    assert(p->scan <= len);
    size_t lim = len < p->limits.max_frame ? len : p->limits.max_frame;
    int rc;
    if (p->state == S_START) {
        if (p->scan == 0 && len > 0 && (buf[0] == '\n' || buf[0] == '\r')) {
            bool partial;
            size_t n = eol_run(buf, len, &partial);
            if (n > 0)
                return emit_heartbeat(p, buf, n, out);
            if (partial)
                return 0;
        }
        rc = parse_command(p, buf, len, lim);
        if (rc <= 0)
            return rc;
    }
    if (p->state == S_HEADERS) {
        rc = parse_headers(p, buf, lim);
        if (rc <= 0)
            return rc;
    }
    assert(p->state == S_BODY);
    size_t nul = 0;
    rc = parse_body(p, buf, len, lim, &nul);
    if (rc <= 0)
        return rc;
    return emit_frame(p, buf, nul, out);
}

bool stp_parser_peek_header(const struct stp_parser *p, const char *buf, const char *name,
                            struct stp_slice *out)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < p->nhdrs; i++) {
        const struct stp_header *h = &p->hdrs[i];
        const char *hn = buf + (uintptr_t)h->name.p;
        if (h->name.len == n && memcmp(hn, name, n) == 0) {
            *out = (struct stp_slice){buf + (uintptr_t)h->value.p, h->value.len};
            return true;
        }
    }
    return false;
}

const struct stp_slice *stp_frame_header(const struct stp_frame *f, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < f->nheaders; i++) {
        const struct stp_header *h = &f->headers[i];
        if (h->name.len == n && memcmp(h->name.p, name, n) == 0)
            return &h->value;
    }
    return NULL;
}

bool stp_slice_eq(struct stp_slice s, const char *str)
{
    size_t n = strlen(str);
    return s.len == n && (n == 0 || memcmp(s.p, str, n) == 0);
}

int stp_parse_u64(struct stp_slice s, uint64_t *out)
{
    if (s.len == 0)
        return STP_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d = (unsigned char)s.p[i] - (unsigned)'0';
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return STP_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}
