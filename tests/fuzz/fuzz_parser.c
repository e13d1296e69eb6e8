/*
 * fuzz_parser.c - libFuzzer target for the STOMP frame parser.
 *
 * Input layout: byte 0 picks the protocol version (bits 0-1) and the limits
 * (bits 2-3), byte 1 seeds the chunk sizes, the rest is the byte stream.
 * The stream is parsed twice by two parsers: whole (all bytes in one buffer)
 * and in pseudo-random chunks, the way a connection receives it (the buffer
 * is reallocated to its exact size on every arrival, so ASan sees any read
 * past the data). Invariants checked on every call: the return value is
 * within the buffer, every slice of a frame lies inside the consumed bytes,
 * the body is followed by its NUL, limits hold; and both runs must agree on
 * the frames and on the error (code and offset) that ends them.
 */
#include "stampede/buf.h"
#include "stampede/error.h"
#include "stampede/stomp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const enum stp_version versions[4] = {STP_V_NONE, STP_V10, STP_V11, STP_V12};
static const struct stp_limits limits[4] = {
    {1 << 16, 1000, 1 << 12},
    {64, 4, 16},
    {256, 16, 40},
    {1 << 20, 2, 1 << 16},
};

struct run {
    struct stp_buf log; /* described frames, heart-beat runs merged */
    size_t hb;          /* pending heart-beat bytes */
    int err;
    size_t err_offset; /* from the start of the frame that failed */
};

static bool within(const char *buf, size_t n, struct stp_slice s)
{
    return s.p >= buf && s.len <= n && (size_t)(s.p - buf) <= n - s.len;
}

static void flush_hb(struct run *r)
{
    if (r->hb) {
        char t[32];
        int n = snprintf(t, sizeof(t), "HB %zu\n", r->hb);
        CHECK(stp_buf_append(&r->log, t, (size_t)n) == 0);
        r->hb = 0;
    }
}

static void check_frame(const struct stp_limits *l, const char *buf, size_t len, ssize_t rc,
                        const struct stp_frame *f, struct run *r)
{
    CHECK(rc > 0 && (size_t)rc <= len);
    size_t n = (size_t)rc;
    if (f->cmd == STP_CMD_HEARTBEAT) {
        CHECK(f->nheaders == 0 && f->body.len == 0);
        for (size_t i = 0; i < n; i++)
            CHECK(buf[i] == '\n' || (buf[i] == '\r' && i + 1 < n && buf[i + 1] == '\n'));
        r->hb += n;
        return;
    }
    CHECK(f->cmd > STP_CMD_HEARTBEAT && f->cmd < STP_CMD__COUNT);
    CHECK(n <= l->max_frame);
    CHECK(f->nheaders <= l->max_headers);
    CHECK(within(buf, n, f->body));
    CHECK(f->body.p + f->body.len == buf + n - 1 && buf[n - 1] == '\0');
    flush_hb(r);
    stp_buf_append_str(&r->log, stp_cmd_name(f->cmd));
    stp_buf_append(&r->log, "\n", 1);
    for (size_t i = 0; i < f->nheaders; i++) {
        const struct stp_header *h = &f->headers[i];
        CHECK(within(buf, n, h->name) && within(buf, n, h->value));
        CHECK(h->name.len > 0 && h->name.len <= l->max_header_len);
        stp_buf_append(&r->log, h->name.p, h->name.len);
        stp_buf_append(&r->log, "=", 1);
        stp_buf_append(&r->log, h->value.p, h->value.len);
        stp_buf_append(&r->log, "\n", 1);
    }
    stp_buf_append(&r->log, f->has_content_length ? "|cl|" : "|", f->has_content_length ? 4 : 1);
    stp_buf_append(&r->log, f->body.p, f->body.len);
    stp_buf_append(&r->log, "\n", 1);
}

static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Parse `in` arriving in chunks; chunk sizes from `seed` (0 = all at once). */
static void run_stream(const uint8_t *in, size_t size, enum stp_version v,
                       const struct stp_limits *l, uint32_t seed, struct run *r)
{
    struct stp_parser p;
    CHECK(stp_parser_init(&p, l) == 0);
    p.version = v;
    char *buf = NULL;
    size_t blen = 0, fed = 0;
    while (fed < size && !r->err) {
        size_t add = size - fed;
        if (seed) {
            uint32_t x = next_rand(&seed);
            size_t c = (x & 3) == 0 ? 1 + (x >> 8) % 512 : 1 + (x >> 8) % 8;
            add = c < add ? c : add;
        }
        buf = realloc(buf, blen + add);
        CHECK(buf);
        memcpy(buf + blen, in + fed, add);
        blen += add;
        fed += add;
        for (;;) {
            struct stp_frame f;
            ssize_t rc = stp_parse(&p, buf, blen, &f);
            if (rc < 0) {
                CHECK(rc > STP__EFIRST && rc < STP__ELAST);
                CHECK(p.err_text != NULL && p.err_offset <= blen);
                CHECK(stp_parse(&p, buf, blen, &f) == rc); /* sticky */
                struct stp_slice pk;
                if (stp_parser_peek_header(&p, buf, "receipt", &pk))
                    CHECK(within(buf, blen, pk));
                r->err = (int)rc;
                r->err_offset = p.err_offset;
                break;
            }
            if (rc == 0)
                break;
            check_frame(l, buf, blen, rc, &f, r);
            memmove(buf, buf + rc, blen - (size_t)rc);
            blen -= (size_t)rc;
        }
    }
    flush_hb(r);
    free(buf);
    stp_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    enum stp_version v = versions[data[0] & 3];
    const struct stp_limits *l = &limits[(data[0] >> 2) & 3];
    uint32_t seed = 0x9e3779b9u ^ ((uint32_t)data[1] << 8) ^ (uint32_t)size;
    data += 2;
    size -= 2;

    struct run whole = {STP_BUF_INIT, 0, 0, 0}, chunked = {STP_BUF_INIT, 0, 0, 0};
    run_stream(data, size, v, l, 0, &whole);
    run_stream(data, size, v, l, seed ? seed : 1, &chunked);
    if (whole.err != chunked.err || whole.err_offset != chunked.err_offset ||
        whole.log.len != chunked.log.len ||
        (whole.log.len && memcmp(whole.log.data, chunked.log.data, whole.log.len) != 0)) {
        fprintf(stderr, "whole and chunked runs differ: err %d@%zu vs %d@%zu\n", whole.err,
                whole.err_offset, chunked.err, chunked.err_offset);
        fprintf(stderr, "whole:\n%.*s\nchunked:\n%.*s\n", (int)whole.log.len, whole.log.data,
                (int)chunked.log.len, chunked.log.data);
        abort();
    }
    stp_buf_free(&whole.log);
    stp_buf_free(&chunked.log);
    return 0;
}
