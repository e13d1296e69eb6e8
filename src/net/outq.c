/*
 * outq.c - a connection's output queue: segments of bytes and shared
 * message tails, turned into one iovec array per write.
 *
 * On the connection's worker only. Byte segments that touch are merged, so a
 * burst of small frames becomes one iovec; a "fixed" segment (a WebSocket
 * header slot) is never merged, so its bytes can be rewritten in place.
 */
#include "conn.h"

#include "stampede/array.h"
#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/msg.h"
#include "stampede/ws.h"

#include <stdlib.h>
#include <string.h>

/* Output buffers up to this size stay allocated between writes. */
#define STP_OUTQ_KEEP_MAX (4u << 20)

struct stp_outq *stp_conn_fillq(struct stp_conn *c)
{
    return &c->out[c->fill];
}

static int add_seg(struct stp_outq *q, struct stp_out_seg seg)
{
    if (!seg.msg && !seg.fixed && q->nsegs > 0) {
        struct stp_out_seg *last = &q->segs[q->nsegs - 1];
        if (!last->msg && !last->fixed && last->off + last->len == seg.off) {
            last->len += seg.len;
            return 0;
        }
    }
    if (STP_ARRAY_RESERVE(q->segs, q->cap, q->nsegs + 1) < 0)
        return STP_ENOMEM;
    q->segs[q->nsegs++] = seg;
    return 0;
}

int stp_outq_add_fixed(struct stp_outq *q, size_t off, size_t len)
{
    int rc = add_seg(q, (struct stp_out_seg){.off = off, .len = len, .fixed = true});
    if (rc == 0)
        q->total += len;
    return rc;
}

char *stp_conn_reserve(struct stp_conn *c, size_t n)
{
    struct stp_outq *q = stp_conn_fillq(c);
    if (stp_buf_reserve(&q->bytes, n))
        return NULL;
    return q->bytes.data + q->bytes.len;
}

void stp_conn_commit(struct stp_conn *c, size_t n)
{
    struct stp_outq *q = stp_conn_fillq(c);
    size_t off = q->bytes.len;
    q->bytes.len += n;
    if (add_seg(q, (struct stp_out_seg){.off = off, .len = n}) < 0) {
        q->bytes.len = off; /* out of memory: drop the bytes and the connection */
        stp_conn_close(c, STP_CLOSE_NOW);
        return;
    }
    q->total += n;
    stp_conn_mark_dirty(c);
}

int stp_conn_write(struct stp_conn *c, const void *p, size_t n)
{
    char *dst = stp_conn_reserve(c, n);
    if (!dst)
        return STP_ENOMEM;
    memcpy(dst, p, n);
    stp_conn_commit(c, n);
    return 0;
}

int stp_conn_write_tail(struct stp_conn *c, struct stp_msg *m)
{
    if (m->tail_len <= STP_COPY_TAIL_MAX)
        return stp_conn_write(c, m->tail, m->tail_len);
    struct stp_outq *q = stp_conn_fillq(c);
    int rc = add_seg(q, (struct stp_out_seg){.len = m->tail_len, .msg = stp_msg_ref(m)});
    if (rc) {
        stp_msg_unref(&m);
        return rc;
    }
    q->total += m->tail_len;
    stp_conn_mark_dirty(c);
    return 0;
}

size_t stp_conn_pending(const struct stp_conn *c)
{
    return c->out[0].total + c->out[1].total;
}

/* --- the pending-output bound --- */

size_t stp_conn_exempt_begin(const struct stp_conn *c)
{
    return c->out[c->fill].total;
}

void stp_conn_exempt_end(struct stp_conn *c, size_t mark)
{
    struct stp_outq *q = stp_conn_fillq(c);
    if (q->total > mark) /* not when the queue was dropped meanwhile */
        q->exempt += q->total - mark;
}

static size_t counted(const struct stp_outq *q)
{
    return q->total > q->exempt ? q->total - q->exempt : 0;
}

/* Bytes that count toward --max-pending-output: both queues (the one being
 * written and the one filling) and what the stream holds (TLS records),
 * minus queue deliveries. */
static size_t counted_pending(const struct stp_conn *c)
{
    size_t stream = c->stream->pending(c);
    size_t exempt = c->stream_exempt < stream ? c->stream_exempt : stream;
    return counted(&c->out[0]) + counted(&c->out[1]) + (stream - exempt) + c->held_above;
}

bool stp_conn_output_over_limit(const struct stp_conn *c)
{
    return counted_pending(c) > c->net->cfg->max_pending_output;
}

/* Over the limit, but only for a moment? A burst (two 16 MiB messages to
 * a healthy subscriber) may take the output over it while the client
 * reads: it is a slow consumer only when it stays over for
 * --slow-consumer-grace, or at once at 4x the limit (the bound on what one
 * connection may hold meanwhile). */
static bool within_grace(struct stp_conn *c)
{
    const struct stp_config *cfg = c->net->cfg;
    if (cfg->slow_consumer_grace_ms == 0 || counted_pending(c) > cfg->max_pending_output * 4)
        return false;
    uint64_t now = stp_now_ms(c);
    if (c->over_since_ms == 0) {
        c->over_since_ms = now ? now : 1;
        return true;
    }
    return now - c->over_since_ms < cfg->slow_consumer_grace_ms;
}

void stp_conn_output_drained(struct stp_conn *c)
{
    if (c->over_since_ms && !stp_conn_output_over_limit(c))
        c->over_since_ms = 0;
}

bool stp_conn_check_output(struct stp_conn *c)
{
    if (c->closing != STP_OPEN)
        return false;
    if (!stp_conn_output_over_limit(c)) {
        c->over_since_ms = 0;
        return true;
    }
    if (within_grace(c))
        return true;
    STP_STAT_INC(c->net->stats.slow_consumers);
    stp_info("%s: slow consumer (%zu bytes pending, --max-pending-output %zu), disconnecting",
             c->peer, counted_pending(c), c->net->cfg->max_pending_output);
    /* Marked closing first: the ERROR below is output too, and must not
     * bring us back here. */
    stp_conn_close(c, STP_CLOSE_AFTER_FLUSH);
    c->ws_close_code = STP_WS_CLOSE_POLICY; /* RFC 6455 7.4.1: policy violation */
    c->net->ops->error(c, "slow consumer",
                       "The connection fell too far behind reading its output.");
    return false;
}

void stp_outq_reset(struct stp_outq *q)
{
    for (size_t i = 0; i < q->nsegs; i++)
        stp_msg_unref(&q->segs[i].msg);
    q->nsegs = 0;
    q->total = 0;
    q->exempt = 0;
    /* Keep the buffer: a busy connection refills it on every flush, and
     * regrowing it costs copies and page faults. Only give back what an
     * exceptional burst (a few large messages) grew it to. */
    if (q->bytes.cap > STP_OUTQ_KEEP_MAX && q->bytes.len < q->bytes.cap / 4)
        stp_buf_free(&q->bytes);
    stp_buf_reset(&q->bytes);
}

void stp_outq_free(struct stp_outq *q)
{
    stp_outq_reset(q);
    stp_buf_free(&q->bytes);
    free(q->segs);
    q->segs = NULL;
    q->cap = 0;
}

int stp_conn_build_iov(struct stp_conn *c, size_t *n)
{
    struct stp_outq *q = stp_conn_fillq(c);
    if (STP_ARRAY_RESERVE(c->iov, c->iov_cap, q->nsegs) < 0)
        return STP_ENOMEM;
    for (size_t i = 0; i < q->nsegs; i++) {
        struct stp_out_seg *s = &q->segs[i];
        const char *base = s->msg ? s->msg->tail : q->bytes.data + s->off;
        /* Not uv_buf_init: it takes an unsigned int length. */
        c->iov[i] = (uv_buf_t){.base = (char *)base, .len = s->len};
    }
    *n = q->nsegs;
    return 0;
}
