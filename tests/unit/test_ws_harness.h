/*
 * test_ws_harness.h - shared fixture of the WebSocket engine's unit tests
 * (test_ws_handshake.c, test_ws_frames.c): an engine whose callbacks record
 * what they saw, its output drained into a buffer after every call the way
 * the connection layer will, and a builder of masked client frames.
 */
#ifndef TEST_WS_HARNESS_H
#define TEST_WS_HARNESS_H

#include "stampede/buf.h"
#include "stampede/error.h"
#include "stampede/ws.h"

#include <criterion/criterion.h>
#include <string.h>

#define H_MAX_MSGS 64

struct harness {
    struct stp_ws *ws;
    struct stp_ws_config cfg;
    int opened;
    const char *subprotocol;
    int http;
    enum stp_ws_endpoint endpoint;
    struct stp_buf msgs; /* payloads of all messages, concatenated */
    size_t nmsgs;
    size_t msg_len[H_MAX_MSGS];
    bool msg_binary[H_MAX_MSGS];
    int closed;
    uint16_t close_code;
    bool close_by_peer;
    uint64_t close_after; /* on_message calls stp_ws_close after this many messages (0: never) */
    struct stp_buf out;   /* everything the engine produced, in order */
};

static inline void h_on_open(void *ud, const char *subprotocol)
{
    struct harness *h = ud;
    h->opened++;
    h->subprotocol = subprotocol;
}

static inline void h_on_http(void *ud, enum stp_ws_endpoint which)
{
    struct harness *h = ud;
    h->http++;
    h->endpoint = which;
}

static inline void h_on_message(void *ud, const uint8_t *p, size_t n, bool binary)
{
    struct harness *h = ud;
    cr_assert_lt(h->nmsgs, H_MAX_MSGS);
    cr_assert_eq(stp_buf_append(&h->msgs, p, n), 0);
    h->msg_len[h->nmsgs] = n;
    h->msg_binary[h->nmsgs] = binary;
    h->nmsgs++;
    if (h->close_after && h->nmsgs == h->close_after)
        cr_assert_eq(stp_ws_close(h->ws, STP_WS_CLOSE_POLICY, "enough"), 0);
}

static inline void h_on_close(void *ud, uint16_t code, bool by_peer)
{
    struct harness *h = ud;
    h->closed++;
    h->close_code = code;
    h->close_by_peer = by_peer;
}

static const struct stp_ws_ops h_ops = {
    .on_open = h_on_open,
    .on_http = h_on_http,
    .on_message = h_on_message,
    .on_close = h_on_close,
};

static inline void h_init(struct harness *h, uint64_t max_message)
{
    memset(h, 0, sizeof(*h));
    h->cfg.path = "/ws";
    h->cfg.max_message = max_message;
    h->ws = stp_ws_new(&h->cfg, &h_ops, h);
    cr_assert_not_null(h->ws);
}

static inline void h_fini(struct harness *h)
{
    stp_ws_free(&h->ws);
    cr_assert_null(h->ws);
    stp_buf_free(&h->msgs);
    stp_buf_free(&h->out);
}

static inline void h_drain(struct harness *h)
{
    size_t n;
    const uint8_t *p = stp_ws_out(h->ws, &n);
    if (n) {
        cr_assert_eq(stp_buf_append(&h->out, p, n), 0);
        stp_ws_out_consume(h->ws, n);
    }
    stp_ws_out(h->ws, &n);
    cr_assert_eq(n, 0);
}

static inline int h_feed(struct harness *h, const void *p, size_t n)
{
    int rc = stp_ws_feed(h->ws, p, n);
    h_drain(h);
    return rc;
}

static inline int h_feed_str(struct harness *h, const char *s)
{
    return h_feed(h, s, strlen(s));
}

/* Output so far equals exactly these bytes. */
static inline void h_expect_out(struct harness *h, const void *p, size_t n)
{
    cr_assert_eq(h->out.len, n, "output is %zu bytes, expected %zu: %.*s", h->out.len, n,
                 (int)h->out.len, h->out.data);
    if (n)
        cr_assert_eq(memcmp(h->out.data, p, n), 0);
}

/* The output contains s. */
static inline bool h_out_has(struct harness *h, const char *s)
{
    return memmem(h->out.data, h->out.len, s, strlen(s)) != NULL;
}

#define H_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define H_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define H_REQUEST                                                                                  \
    "GET /ws HTTP/1.1\r\nHost: localhost:15674\r\nUpgrade: websocket\r\n"                          \
    "Connection: Upgrade\r\nSec-WebSocket-Key: " H_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n"

#define H_101                                                                                      \
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"            \
    "Sec-WebSocket-Accept: " H_ACCEPT "\r\n\r\n"

/* Upgrade with the default request, then forget the 101 answer. */
static inline void h_open(struct harness *h, uint64_t max_message)
{
    h_init(h, max_message);
    cr_assert_eq(h_feed_str(h, H_REQUEST), 0);
    cr_assert_eq(h->opened, 1);
    cr_assert_eq(stp_ws_state(h->ws), STP_WS_OPEN);
    h_expect_out(h, H_101, strlen(H_101));
    stp_buf_reset(&h->out);
}

static const uint8_t h_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Append a masked client frame to b. */
static inline void h_frame(struct stp_buf *b, int opcode, bool fin, const void *payload, size_t n)
{
    uint8_t hdr[14];
    size_t hlen = stp_ws_client_frame_header(hdr, opcode, fin, n, h_mask);
    cr_assert_eq(stp_buf_append(b, hdr, hlen), 0);
    size_t at = b->len;
    cr_assert_eq(stp_buf_append(b, payload, n), 0);
    stp_ws_mask((uint8_t *)b->data + at, n, h_mask, 0);
}

#endif
