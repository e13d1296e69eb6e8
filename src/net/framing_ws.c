/*
 * framing_ws.c - STOMP over WebSocket (ws://, wss://), with the WebSocket
 * engine (src/ws): the HTTP Upgrade, frames in, and the listener's plain
 * HTTP endpoints (/healthz, /metrics, whose bodies come from ops->http).
 *
 * On the connection's thread. Every STOMP frame the session writes becomes
 * one WebSocket message: frame_begin reserves a 10-byte slot in the output
 * queue and frame_end writes the real header (2, 4 or 10 bytes) at the end of
 * the slot, so the payload - header block and shared message tail - is never
 * copied again. Text frames for valid UTF-8, binary otherwise (or always with
 * --ws-frame binary). Bytes the engine produces itself (the 101 answer,
 * pongs, close frames) are moved into the output queue after every engine
 * call and before any frame of ours, as ws.h requires.
 */
#include "conn.h"

#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/msg.h"
#include "stampede/ws.h"

#include <string.h>

#define HDR_SLOT 10

/* Move the engine's pending bytes into our output queue. */
static void drain_engine(struct stp_conn *c)
{
    size_t len;
    const uint8_t *p = stp_ws_out(c->ws, &len);
    if (!p || len == 0)
        return;
    if (stp_conn_write(c, p, len) < 0) {
        stp_conn_close(c, STP_CLOSE_NOW);
        return;
    }
    stp_ws_out_consume(c->ws, len);
}

static void on_open(void *ud, const char *subprotocol)
{
    struct stp_conn *c = ud;
    (void)subprotocol; /* CONNECT's accept-version still settles the version */
    drain_engine(c);
}

static void on_http(void *ud, enum stp_ws_endpoint which)
{
    struct stp_conn *c = ud;
    struct stp_buf body = STP_BUF_INIT;
    struct stp_http_request req = {.which = which};
    req.authorization = stp_ws_http_authorization(c->ws, &req.authorization_len);
    struct stp_http_answer ans = {.status = 200, .type = "text/plain", .body = &body};
    int rc = c->net->ops->http ? c->net->ops->http(c, &req, &ans) : -1;
    if (rc == 0)
        stp_ws_http_reply_ex(c->ws, ans.status, ans.extra_headers, ans.type, body.data, body.len);
    else if (rc < 0)
        stp_ws_http_reply(c->ws, 500, "text/plain", "internal error\n", 15);
    stp_buf_free(&body);
    drain_engine(c);
}

void stp_conn_http_reply(struct stp_conn *c, const struct stp_http_answer *ans)
{
    if (!c->ws || c->closing != STP_OPEN || stp_ws_state(c->ws) != STP_WS_HTTP)
        return;
    const struct stp_buf *b = ans->body;
    stp_ws_http_reply_ex(c->ws, ans->status, ans->extra_headers, ans->type, b ? b->data : NULL,
                         b ? b->len : 0);
    drain_engine(c);
    stp_conn_close(c, STP_CLOSE_AFTER_FLUSH);
}

/* Before CONNECTED a message may be no larger than a TCP client's frame
 * (--max-frame-size capped by the 64 KiB pre-connect bound); the engine
 * answers a bigger one with 1009 from its frame header, before buffering it. */
static uint64_t pre_connect_max(const struct stp_conn *c)
{
    const struct stp_config *cfg = c->net->cfg;
    return cfg->max_pre_connect < cfg->max_frame_size ? cfg->max_pre_connect : cfg->max_frame_size;
}

static void on_message(void *ud, const uint8_t *p, size_t n, bool binary)
{
    struct stp_conn *c = ud;
    (void)binary;
    drain_engine(c);
    if (stp_buf_append(&c->rbuf, p, n) < 0) {
        stp_conn_close(c, STP_CLOSE_NOW);
        return;
    }
    stp_conn_app_in(c);
}

/* CONNECTED: the next frame header is judged by the full bound. */
static void ws_connected(struct stp_conn *c)
{
    stp_ws_set_max_message(c->ws, c->net->ws_cfg[c->listener].max_message);
}

static const struct stp_ws_ops ws_ops = {
    .on_open = on_open,
    .on_http = on_http,
    .on_message = on_message,
};

int stp_framing_ws_init(struct stp_conn *c)
{
    c->ws = stp_ws_new(&c->net->ws_cfg[c->listener], &ws_ops, c);
    if (!c->ws)
        return STP_ENOMEM;
    stp_ws_set_max_message(c->ws, pre_connect_max(c));
    return 0;
}

static void ws_input(struct stp_conn *c, const char *p, size_t n)
{
    int rc = stp_ws_feed(c->ws, (const uint8_t *)p, n);
    drain_engine(c);
    /* Pongs are output too: a client that pings and never reads ends here.
     * (Not the handshake's or an endpoint's one answer: the broker bounds
     * those, and the connection closes after them.) */
    if (stp_ws_state(c->ws) == STP_WS_OPEN && !stp_conn_check_output(c))
        return;
    if (rc < 0 || stp_ws_state(c->ws) == STP_WS_DONE) {
        uint16_t code = stp_ws_close_code(c->ws);
        if (code && code != STP_WS_CLOSE_NORMAL)
            stp_info("%s: WebSocket closed with %u", c->peer, code);
        stp_conn_close(c, STP_CLOSE_AFTER_FLUSH);
    }
}

static void ws_frame_begin(struct stp_conn *c)
{
    struct stp_outq *q = stp_conn_fillq(c);
    if (stp_buf_reserve(&q->bytes, HDR_SLOT) < 0)
        goto fail;
    size_t off = q->bytes.len;
    q->bytes.len += HDR_SLOT;
    if (stp_outq_add_fixed(q, off, HDR_SLOT) < 0)
        goto fail;
    c->frame_seg = q->nsegs - 1;
    c->frame_total0 = q->total;
    stp_conn_mark_dirty(c);
    return;
fail:
    stp_conn_close(c, STP_CLOSE_NOW);
}

static bool msg_utf8(struct stp_msg *m)
{
    /* Relaxed: a cache of a pure function of immutable bytes; racing
     * writers store the same value. */
    unsigned char v = atomic_load_explicit(&m->utf8, memory_order_relaxed);
    if (v == 0) {
        v = stp_ws_utf8_valid((const uint8_t *)m->tail, m->tail_len) ? 1 : 2;
        atomic_store_explicit(&m->utf8, v, memory_order_relaxed);
    }
    return v == 1;
}

/* Text when the whole payload is UTF-8. A message's shared tail is checked
 * once per message (cached in it), whether it was copied or referenced; only
 * the per-delivery header block is checked for every frame. */
static bool frame_is_text(struct stp_conn *c, struct stp_outq *q)
{
    struct stp_msg *tail = c->frame_tail; /* set for this frame only */
    c->frame_tail = NULL;
    if (c->net->cfg->ws_frame_binary)
        return false;
    if (tail && !msg_utf8(tail))
        return false;
    /* A copied tail is the last tail_len bytes of the frame's byte runs. */
    size_t skip = tail && q->segs[q->nsegs - 1].msg != tail ? tail->tail_len : 0;
    for (size_t i = q->nsegs; i-- > c->frame_seg + 1;) {
        struct stp_out_seg *s = &q->segs[i];
        if (s->msg) {
            if (s->msg != tail && !msg_utf8(s->msg))
                return false;
            continue;
        }
        size_t len = s->len, cut = skip < len ? skip : len;
        skip -= cut;
        len -= cut;
        if (len && !stp_ws_utf8_valid((const uint8_t *)q->bytes.data + s->off, len))
            return false;
    }
    return true;
}

/* The frame's payload is one run of bytes right after its header slot (no
 * referenced tail): the common case for small messages. */
static bool payload_follows_slot(const struct stp_outq *q, size_t slot_i, size_t payload)
{
    const struct stp_out_seg *slot = &q->segs[slot_i];
    if (slot->off + HDR_SLOT + payload != q->bytes.len)
        return false;
    if (slot_i + 1 == q->nsegs)
        return payload == 0;
    const struct stp_out_seg *run = &q->segs[slot_i + 1];
    return slot_i + 2 == q->nsegs && !run->msg && run->off == slot->off + HDR_SLOT;
}

/* Close the gap between a short header and its payload, so that frame and
 * neighbours become one run of bytes: one iovec for a whole burst of frames
 * instead of two per frame. */
static void pack_frame(struct stp_outq *q, size_t slot_i, const uint8_t *hdr, size_t hlen,
                       size_t payload)
{
    struct stp_out_seg *slot = &q->segs[slot_i];
    char *base = q->bytes.data + slot->off;
    memmove(base + hlen, base + HDR_SLOT, payload);
    memcpy(base, hdr, hlen);
    q->bytes.len -= HDR_SLOT - hlen;
    q->total -= HDR_SLOT - hlen;
    q->nsegs = slot_i + 1;
    slot->len = hlen + payload;
    slot->fixed = false;
    if (slot_i > 0) {
        struct stp_out_seg *prev = &q->segs[slot_i - 1];
        if (!prev->msg && !prev->fixed && prev->off + prev->len == slot->off) {
            prev->len += slot->len;
            q->nsegs--;
        }
    }
}

static void ws_frame_end(struct stp_conn *c)
{
    struct stp_outq *q = stp_conn_fillq(c);
    if (c->frame_seg >= q->nsegs || !q->segs[c->frame_seg].fixed)
        return; /* the slot was lost to an out-of-memory close */
    uint8_t hdr[HDR_SLOT];
    size_t payload = q->total - c->frame_total0;
    int op = frame_is_text(c, q) ? STP_WS_OP_TEXT : STP_WS_OP_BINARY;
    size_t hlen = stp_ws_frame_header(hdr, op, payload);
    if (payload_follows_slot(q, c->frame_seg, payload)) {
        pack_frame(q, c->frame_seg, hdr, hlen, payload);
        return;
    }
    /* A referenced tail follows: write the header at the end of the slot. */
    struct stp_out_seg *slot = &q->segs[c->frame_seg];
    memcpy(q->bytes.data + slot->off + HDR_SLOT - hlen, hdr, hlen);
    slot->off += HDR_SLOT - hlen;
    slot->len = hlen;
    q->total -= HDR_SLOT - hlen;
}

static void ws_closing(struct stp_conn *c)
{
    if (stp_ws_state(c->ws) == STP_WS_OPEN)
        /* 1001 "going away" when the broker shuts down (RFC 6455 7.4.1). */
        stp_ws_close(c->ws,
                     c->ws_close_code   ? c->ws_close_code
                     : c->net->stopping ? STP_WS_CLOSE_GOING_AWAY
                                        : STP_WS_CLOSE_NORMAL,
                     NULL);
    else if (stp_ws_state(c->ws) == STP_WS_HANDSHAKE)
        stp_ws_close(c->ws, 0, NULL);
    drain_engine(c);
}

static bool ws_ready(const struct stp_conn *c)
{
    return stp_ws_state(c->ws) == STP_WS_OPEN;
}

static void ws_free(struct stp_conn *c)
{
    stp_ws_free(&c->ws);
}

const struct stp_framing_ops stp_framing_ws = {
    .name = "websocket",
    .input = ws_input,
    .frame_begin = ws_frame_begin,
    .frame_end = ws_frame_end,
    .closing = ws_closing,
    .free = ws_free,
    .ready = ws_ready,
    .connected = ws_connected,
};
