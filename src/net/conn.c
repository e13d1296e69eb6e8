/*
 * conn.c - client connections: accept, read, output queue, flush, close.
 *
 * Owned by the accepting thread's net (see conn.h). The read path hands
 * bytes to the transport, which hands application bytes up (ops->input). The
 * write path is batched: frames are appended to the filling output queue and
 * stp_net_flush writes every dirty connection once per loop iteration.
 */
#include "conn.h"

#include "admit.h"
#include "stampede/array.h"
#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/msg.h"
#include "stampede/tls.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define LINGER_MS 2000
/* While lingering after our last frame, input is read and thrown away; past
 * this much the connection is simply not read any more (TCP holds the
 * sender back) until the linger ends, so a flooding client cannot keep a
 * worker reading for the whole linger, and one that reads still gets our
 * last frame. */
#define LINGER_MAX_DISCARD (16 * 1024 * 1024)

static void on_close(uv_handle_t *h);
static void start_closing_handles(struct stp_conn *c);

uint64_t stp_now_ms(const struct stp_conn *c)
{
    return uv_now(c->net->loop);
}

void stp_conn_mark_dirty(struct stp_conn *c)
{
    if (c->dirty || c->closing == STP_CLOSE_NOW)
        return;
    c->dirty = true;
    c->dirty_next = c->net->dirty;
    c->net->dirty = c;
}

/* --- writing --- */

void stp_conn_writing(struct stp_conn *c)
{
    if (c->net->ops->writing)
        c->net->ops->writing(c);
}

static void maybe_finish_close(struct stp_conn *c);

static void on_write(uv_write_t *req, int status)
{
    stp_conn_write_done(req->data, status);
}

void stp_conn_write_done(struct stp_conn *c, int status)
{
    c->writing = false;
    c->stream->written(c);
    if (c->net->ops->written)
        c->net->ops->written(c, status >= 0);
    if (status < 0) {
        stp_conn_close(c, STP_CLOSE_NOW);
        return;
    }
    c->last_write_ms = stp_now_ms(c);
    stp_conn_output_drained(c);
    if (stp_conn_fillq(c)->total > 0 || c->stream->pending(c) > 0)
        stp_conn_mark_dirty(c);
    else
        maybe_finish_close(c);
}

int stp_conn_start_write(struct stp_conn *c, const uv_buf_t *bufs, size_t n)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += bufs[i].len;
    STP_STAT_ADD(c->net->stats.bytes_out, bytes);
    c->writing = true;
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, (unsigned)n, on_write);
    if (rc < 0) {
        c->writing = false;
        return stp_err_from_uv(rc);
    }
    return 0;
}

static void flush_one(struct stp_conn *c)
{
    if (c->closing == STP_CLOSE_NOW || c->writing)
        return;
    if (stp_conn_fillq(c)->total == 0 && c->stream->pending(c) == 0)
        return;
    if (c->stream->flush(c) < 0)
        stp_conn_close(c, STP_CLOSE_NOW);
}

void stp_conn_flush_dirty(struct stp_net *n)
{
    struct stp_conn *c = n->dirty;
    n->dirty = NULL;
    while (c) {
        struct stp_conn *next = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        flush_one(c);
        c = next;
    }
}

/* --- reading --- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct stp_conn *c = h->data;
    (void)suggested;
    c->stream->alloc(c, buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct stp_conn *c = stream->data;
    (void)buf;
    if (nread < 0) {
        c->read_eof = true;
        uv_read_stop(stream);
        if (c->closing != STP_OPEN)
            maybe_finish_close(c);
        else if (nread == UV_EOF)
            c->net->ops->eof(c); /* a half-close: answer, then close */
        else
            stp_conn_close(c, STP_CLOSE_NOW);
        return;
    }
    if (nread == 0)
        return;
    if (c->closing != STP_OPEN) { /* lingering after an ERROR: discard */
        c->discarded += (size_t)nread;
        if (c->discarded > LINGER_MAX_DISCARD)
            uv_read_stop(stream);
        return;
    }
    c->last_read_ms = stp_now_ms(c);
    STP_STAT_ADD(c->net->stats.bytes_in, (uint64_t)nread);
    c->stream->on_read(c, (size_t)nread);
}

/* Raw STOMP and TLS reads of a connection with nothing pending are handed up
 * from the net's shared buffers, so such an idle connection holds at most a
 * small emptied read buffer (up to RBUF_KEEP bytes, kept to avoid regrowing
 * it for the next partial frame); a larger one is freed once emptied.
 * (WebSocket appends each message to rbuf before handing it up.) */
#define RBUF_KEEP 4096

void stp_conn_app_in(struct stp_conn *c)
{
    size_t consumed = 0;
    if (c->closing != STP_OPEN || c->paused)
        return;
    c->net->ops->input(c, c->rbuf.data, c->rbuf.len, &consumed);
    stp_buf_consume(&c->rbuf, consumed);
    if (c->rbuf.len == 0 && c->rbuf.cap > RBUF_KEEP)
        stp_buf_free(&c->rbuf);
}

void stp_conn_app_in_shared(struct stp_conn *c, char *data, size_t len)
{
    size_t consumed = 0;
    if (c->closing == STP_OPEN && !c->paused)
        c->net->ops->input(c, data, len, &consumed);
    if (consumed < len && c->closing == STP_OPEN &&
        stp_buf_append(&c->rbuf, data + consumed, len - consumed) < 0)
        stp_conn_close(c, STP_CLOSE_NOW);
}

void stp_conn_pause(struct stp_conn *c)
{
    if (c->paused || c->closing != STP_OPEN)
        return;
    c->paused = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->paused_next = c->net->paused;
    c->net->paused = c;
}

static void defer_input(struct stp_conn *c)
{
    if (c->input_due)
        return;
    c->input_due = true;
    c->input_next = c->net->input_due;
    c->net->input_due = c;
}

void stp_conn_hold(struct stp_conn *c)
{
    c->throttled++;
    stp_conn_pause(c);
}

/* Read c again (it is off the paused list already). */
static void resume_one(struct stp_conn *c)
{
    c->paused = false;
    /* A heart-beat the client sent while it was not read is not its fault:
     * silence is counted from the resume. */
    c->last_read_ms = stp_now_ms(c);
    if (c->closing == STP_OPEN && !c->read_eof) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        /* Frames already buffered but not parsed when we paused are parsed
         * from the loop, never from here: a resume can come from inside one
         * of this connection's own command handlers (an ACK that drains the
         * queue that throttled it), while the session is still walking the
         * same buffer. */
        if (c->rbuf.len)
            defer_input(c);
    }
}

static void unlink_paused(struct stp_conn *c);

void stp_conn_unhold(struct stp_conn *c)
{
    if (c->throttled == 0 || --c->throttled > 0 || !c->paused)
        return;
    unlink_paused(c);
    resume_one(c);
}

int stp_conn_tls_peer_cn(const struct stp_conn *c, char *buf, size_t n)
{
    if (!c->tls || !stp_tls_peer_verified(c->tls))
        return STP_ENOT_FOUND;
    return stp_tls_peer_cn(c->tls, buf, n);
}

void stp_net_resume_paused(struct stp_net *n)
{
    struct stp_conn *c = n->paused;
    n->paused = NULL;
    while (c) {
        struct stp_conn *next = c->paused_next;
        if (c->throttled > 0) {
            /* A queue over its bound still holds this publisher back. */
            c->paused_next = n->paused;
            n->paused = c;
            c = next;
            continue;
        }
        c->paused_next = NULL;
        resume_one(c);
        c = next;
    }
}

void stp_conn_input_run(struct stp_net *n)
{
    while (n->input_due) {
        struct stp_conn *c = n->input_due;
        n->input_due = NULL;
        while (c) {
            struct stp_conn *next = c->input_next;
            c->input_next = NULL;
            c->input_due = false;
            if (c->rbuf.len)
                stp_conn_app_in(c);
            c = next;
        }
    }
}

/* --- accept and close --- */

/* Slots grow by doubling; a new slot starts at generation 1. */
static int slot_alloc(struct stp_net *n, struct stp_conn *c)
{
    if (n->nfree == 0) {
        size_t old = n->nslots, cap = old, fcap = old;
        if (old >= UINT32_MAX / 2)
            return STP_ENOMEM;
        if (STP_ARRAY_RESERVE(n->slots, cap, old ? old * 2 : 64) < 0 ||
            STP_ARRAY_RESERVE(n->free_slots, fcap, cap) < 0)
            return STP_ENOMEM;
        for (size_t i = cap; i > old; i--) {
            n->slots[i - 1] = (struct stp_net_slot){NULL, 1};
            n->free_slots[n->nfree++] = (uint32_t)(i - 1);
        }
        n->nslots = cap;
    }
    uint32_t slot = n->free_slots[--n->nfree];
    n->slots[slot].conn = c;
    c->slot = slot;
    c->gen = n->slots[slot].gen;
    n->nconns++;
    return 0;
}

static void slot_free(struct stp_net *n, struct stp_conn *c)
{
    n->slots[c->slot].conn = NULL;
    n->slots[c->slot].gen++;
    n->free_slots[n->nfree++] = c->slot;
    n->nconns--;
}

struct stp_conn *stp_net_conn(struct stp_net *n, uint32_t slot, uint32_t gen)
{
    if (slot >= n->nslots || n->slots[slot].gen != gen)
        return NULL;
    return n->slots[slot].conn;
}

/* Linger expired: the peer did not close after our last frame. (While the
 * connection is open the session owns this timer: heart-beats, login.) */
static void on_linger(uv_timer_t *t)
{
    stp_conn_close(t->data, STP_CLOSE_NOW);
}

/* Pick the stream and framing layers from the listener's scheme. */
static int init_layers(struct stp_conn *c)
{
    enum stp_scheme scheme = c->net->cfg->listen[c->listener].scheme;
    static const int kinds[] = {[STP_SCHEME_STOMP] = STP_TK_TCP,
                                [STP_SCHEME_STOMP_SSL] = STP_TK_TLS,
                                [STP_SCHEME_WS] = STP_TK_WS,
                                [STP_SCHEME_WSS] = STP_TK_WSS};
    c->kind = kinds[scheme];
    STP_STAT_INC(c->net->stats.conns_open[c->kind]);
    if (scheme == STP_SCHEME_STOMP_SSL || scheme == STP_SCHEME_WSS) {
        c->stream = &stp_stream_tls;
        if (stp_stream_tls_init(c) < 0)
            return STP_ENOMEM;
    }
    if (scheme == STP_SCHEME_WS || scheme == STP_SCHEME_WSS) {
        c->framing = &stp_framing_ws;
        if (stp_framing_ws_init(c) < 0)
            return STP_ENOMEM;
    }
    return 0;
}

static void format_peer(struct stp_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char host[48] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            uv_ip4_name(a, host, sizeof(host));
            port = ntohs(a->sin_port);
            c->peer_loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, host, sizeof(host));
            port = ntohs(a->sin6_port);
            c->peer_loopback =
                IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) ||
                (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127);
        }
    }
    snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
}

void stp_conn_connected(struct stp_conn *c)
{
    if (c->framing->connected)
        c->framing->connected(c);
}

/* A new connection on the net's lists, its tcp handle initialized. */
static struct stp_conn *conn_new(struct stp_net *n, unsigned lidx)
{
    struct stp_conn *c = calloc(1, sizeof(*c) + n->ops->up_size);
    if (!c)
        return NULL;
    c->net = n;
    c->stream = &stp_stream_tcp;
    c->framing = &stp_framing_raw;
    c->kind = -1;
    c->all_next = n->all;
    if (n->all)
        n->all->all_prev = c;
    n->all = c;
    c->listener = lidx;
    uv_tcp_init(n->loop, &c->tcp);
    c->tcp.data = c;
    c->handles = 1;
    return c;
}

/* The socket is ours: closed at once when no slot is left. */
static bool conn_start(struct stp_conn *c)
{
    if (slot_alloc(c->net, c) < 0) {
        c->closing = STP_CLOSE_NOW;
        c->torn_down = true;
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return false;
    }
    uv_timer_init(c->net->loop, &c->timer);
    c->timer.data = c;
    c->handles++;
    STP_STAT_INC(c->net->stats.conns_accepted);
    c->last_read_ms = c->last_write_ms = stp_now_ms(c);
    return true;
}

void stp_conn_accept(struct stp_net *n, uv_stream_t *server, unsigned lidx)
{
    struct stp_conn *c = conn_new(n, lidx);
    if (!c)
        return;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || !stp_admit_conn(c)) {
        c->closing = STP_CLOSE_NOW;
        c->torn_down = true;
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    if (!conn_start(c))
        return;
    uv_tcp_nodelay(&c->tcp, 1);
    format_peer(c);
    if (init_layers(c) < 0 || n->ops->open(c) < 0) {
        stp_conn_close(c, STP_CLOSE_NOW);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

struct stp_conn *stp_conn_open_detached(struct stp_net *n, unsigned lidx,
                                        const struct stp_stream_ops *stream, const char *peer)
{
    struct stp_conn *c = conn_new(n, lidx);
    if (!c || !conn_start(c))
        return NULL;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    c->peer_loopback = true;
    if (init_layers(c) < 0) {
        stp_conn_close(c, STP_CLOSE_NOW);
        return NULL;
    }
    c->stream = stream;
    if (n->ops->open(c) < 0) {
        stp_conn_close(c, STP_CLOSE_NOW);
        return NULL;
    }
    return c;
}

static void on_close(uv_handle_t *h)
{
    struct stp_conn *c = h->data;
    if (--c->handles > 0)
        return;
    if (c->admitted) /* the socket is closed: its place in the limits is free */
        stp_admit_release(c->net->admit, c->admit_stripe);
    if (c->kind >= 0)
        STP_STAT_ADD(c->net->stats.conns_open[c->kind], (uint64_t)-1);
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else if (c->net->all == c)
        c->net->all = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    if (c->framing->free)
        c->framing->free(c);
    if (c->stream->free)
        c->stream->free(c);
    stp_outq_free(&c->out[0]);
    stp_outq_free(&c->out[1]);
    stp_buf_free(&c->rbuf);
    free(c->iov);
    free(c);
}

static void unlink_paused(struct stp_conn *c)
{
    if (!c->paused)
        return;
    for (struct stp_conn **pp = &c->net->paused; *pp; pp = &(*pp)->paused_next) {
        if (*pp == c) {
            *pp = c->paused_next;
            break;
        }
    }
    c->paused = false;
}

static void unlink_input_due(struct stp_conn *c)
{
    if (!c->input_due)
        return;
    for (struct stp_conn **pp = &c->net->input_due; *pp; pp = &(*pp)->input_next) {
        if (*pp == c) {
            *pp = c->input_next;
            break;
        }
    }
    c->input_due = false;
}

static void start_closing_handles(struct stp_conn *c)
{
    unlink_paused(c);
    unlink_input_due(c);
    uv_close((uv_handle_t *)&c->tcp, on_close);
    if (c->handles > 1)
        uv_close((uv_handle_t *)&c->timer, on_close);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct stp_conn *c = req->data;
    (void)status;
    maybe_finish_close(c);
}

/* Closing after flush: once the output is written, send FIN and keep reading
 * (discarding) until the peer closes or the linger timer fires, so our last
 * frame is not destroyed by a reset caused by unread input. */
static void maybe_finish_close(struct stp_conn *c)
{
    if (c->closing != STP_CLOSE_AFTER_FLUSH || c->writing || stp_conn_fillq(c)->total > 0 ||
        c->stream->pending(c) > 0)
        return;
    if (c->read_eof) {
        stp_conn_close(c, STP_CLOSE_NOW);
        return;
    }
    if (!c->shut) {
        c->shut = true;
        c->sreq.data = c;
        if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
            stp_conn_close(c, STP_CLOSE_NOW);
    }
}

/* Closing is two-step so no list a caller is walking changes under it: here
 * the connection is only marked and queued; stp_conn_reap, run by the worker
 * once per loop iteration, tears the session down and closes the handles. */
void stp_conn_close(struct stp_conn *c, enum stp_conn_closing how)
{
    if (how == STP_OPEN || c->closing == STP_CLOSE_NOW)
        return;
    if (c->closing == STP_OPEN) {
        c->reap_next = c->net->reap;
        c->net->reap = c;
    } else if (c->torn_down && how == STP_CLOSE_NOW) {
        /* Already reaped while lingering: nothing walks it any more. */
        c->closing = STP_CLOSE_NOW;
        uv_read_stop((uv_stream_t *)&c->tcp);
        start_closing_handles(c);
        return;
    }
    if (how == STP_CLOSE_NOW) {
        c->closing = STP_CLOSE_NOW;
        uv_read_stop((uv_stream_t *)&c->tcp);
        return;
    }
    c->closing = STP_CLOSE_AFTER_FLUSH;
}

static void reap_one(struct stp_conn *c)
{
    struct stp_net *n = c->net;
    if (!c->torn_down) {
        c->torn_down = true;
        n->ops->teardown(c);
        if (c->slot < n->nslots && n->slots[c->slot].conn == c)
            slot_free(n, c);
    }
    if (c->closing == STP_CLOSE_NOW) {
        start_closing_handles(c);
        return;
    }
    /* The protocols' own goodbyes (WebSocket close frame, TLS close_notify). */
    if (c->framing->closing)
        c->framing->closing(c);
    if (c->stream->closing)
        c->stream->closing(c);
    /* After flush: keep reading (and discarding) until the peer closes or
     * the linger timer fires. */
    if (!c->paused && !c->read_eof)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    unlink_paused(c);
    uv_timer_start(&c->timer, on_linger, LINGER_MS, 0);
    stp_conn_mark_dirty(c);
    maybe_finish_close(c);
}

void stp_net_close_all(struct stp_net *n, enum stp_conn_closing how)
{
    if (how == STP_CLOSE_NOW) {
        for (struct stp_conn *c = n->all; c; c = c->all_next)
            stp_conn_close(c, STP_CLOSE_NOW);
        stp_conn_reap(n);
        return;
    }
    for (uint32_t i = 0; i < n->nslots; i++) {
        struct stp_conn *c = n->slots[i].conn;
        if (c && c->closing == STP_OPEN)
            stp_conn_close(c, how);
    }
}

void stp_conn_reap(struct stp_net *n)
{
    while (n->reap) {
        struct stp_conn *c = n->reap;
        n->reap = c->reap_next;
        c->reap_next = NULL;
        reap_one(c);
    }
}
