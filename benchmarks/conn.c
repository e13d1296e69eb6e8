/*
 * conn.c - one generator connection: TCP connect, the STOMP session
 * (CONNECT -> CONNECTED -> SUBSCRIBE + receipt), reading and dispatching
 * frames, and double-buffered output (frames collect in one buffer while the
 * other is being written, so many frames go out per write).
 *
 * Everything here runs on the thread that owns the connection, except
 * stp_bench_fail() which any thread may call.
 */
#include "bench.h"

#include "stampede/buf.h"
#include "stampede/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Consumers read big batches; producers and idle connections only see small
 * frames (CONNECTED, RECEIPT, heart-beats), so thousands of them stay cheap.
 * Buffers start at these sizes and grow by doubling (stp_buf) when a frame
 * needs more. */
static size_t in_min_room(const struct stp_bench_conn *c)
{
    return c->role == ROLE_CONSUMER ? 64 * 1024 : 2 * 1024;
}

static size_t out_first_cap(const struct stp_bench_conn *c)
{
    return c->role == ROLE_PRODUCER ? 64 * 1024 : 4 * 1024;
}

static const char *role_name(enum stp_bench_role r)
{
    return r == ROLE_PRODUCER   ? "producer"
           : r == ROLE_CONSUMER ? "consumer"
           : r == ROLE_IDLE     ? "idle"
                                : "patterns";
}

void stp_bench_fail(struct stp_bench_run *r, const char *fmt, ...)
{
    int expected = 0;
    /* 0 -> 2 claims the message slot; 2 -> 1 with release publishes it */
    if (!atomic_compare_exchange_strong(&r->failed, &expected, 2))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->fail_msg, sizeof(r->fail_msg), fmt, ap);
    va_end(ap);
    atomic_store_explicit(&r->failed, 1, memory_order_release);
}

static const struct stp_bench_config *cfg_of(struct stp_bench_conn *c)
{
    return &c->t->run->cfg;
}

static void conn_fail(struct stp_bench_conn *c, const char *what, int err)
{
    const struct stp_bench_url *u = c->ep->url;
    if (!c->t->stopping)
        stp_bench_fail(c->t->run, "%s connection %u to %s:%u: %s%s%s", role_name(c->role), c->index,
                       u->host, u->port, what, err ? ": " : "", err ? stp_strerror(err) : "");
    stp_bench_conn_close(c);
}

/* --- output --- */

char *stp_bench_conn_out_reserve(struct stp_bench_conn *c, size_t n)
{
    struct stp_buf *o = &c->out[c->fill];
    if (stp_bench_buf_reserve(o, n, out_first_cap(c)))
        return NULL;
    char *at = o->data + o->len;
    o->len += n;
    return at;
}

int stp_bench_conn_append(struct stp_bench_conn *c, const void *p, size_t n)
{
    char *at = stp_bench_conn_out_reserve(c, n);
    if (!at)
        return STP_ENOMEM;
    memcpy(at, p, n);
    return 0;
}

size_t stp_bench_conn_pending(const struct stp_bench_conn *c)
{
    return c->out[0].len + c->out[1].len;
}

static void on_write(uv_write_t *req, int status)
{
    struct stp_bench_conn *c = req->data;
    struct stp_buf *done = &c->out[c->fill ^ 1];
    COUNT_ADD(c->t->bytes_out, done->len);
    stp_buf_reset(done);
    c->writing = false;
    if (c->role == ROLE_PRODUCER && status >= 0) {
        COUNT_ADD(c->u.p.written, c->u.p.flight_msgs);
        c->u.p.flight_msgs = 0;
    }
    if (status < 0) {
        conn_fail(c, "write failed", stp_err_from_uv(status));
        return;
    }
    if (c->state >= CONN_CLOSING)
        return;
    if (c->role == ROLE_PRODUCER && c->t->started)
        stp_bench_producer_pump(c, uv_hrtime());
    else
        stp_bench_conn_flush(c);
}

void stp_bench_conn_flush(struct stp_bench_conn *c)
{
    struct stp_buf *o = &c->out[c->fill];
    if (c->writing || o->len == 0 || c->state >= CONN_CLOSING)
        return;
    uv_buf_t b = uv_buf_init(o->data, (unsigned)o->len);
    c->writing = true;
    c->fill ^= 1;
    if (c->role == ROLE_PRODUCER) {
        c->u.p.flight_msgs = c->u.p.fill_msgs;
        c->u.p.fill_msgs = 0;
    }
    c->wreq.data = c;
    int rc = c->ep->url->transport->ops->write(c, &c->wreq, &b, 1, on_write);
    if (rc) {
        c->writing = false;
        conn_fail(c, "write failed", rc);
    }
}

/* --- session --- */

static int write_connect(struct stp_bench_conn *c)
{
    const struct stp_bench_config *cfg = cfg_of(c);
    struct stp_buf b = STP_BUF_INIT;
    char hb[64];
    unsigned hb_ms = c->role == ROLE_IDLE ? cfg->heartbeat_ms : 0;
    snprintf(hb, sizeof(hb), "%u,%u", hb_ms, hb_ms);
    int rc = stp_write_command(&b, STP_CMD_CONNECT);
    rc = rc ? rc : stp_write_header_str(&b, "accept-version", cfg->accept_version, STP_V10);
    rc = rc ? rc : stp_write_header_str(&b, "host", c->ep->url->vhost, STP_V10);
    if (cfg->login[0])
        rc = rc ? rc : stp_write_header_str(&b, "login", cfg->login, STP_V10);
    if (cfg->passcode[0])
        rc = rc ? rc : stp_write_header_str(&b, "passcode", cfg->passcode, STP_V10);
    rc = rc ? rc : stp_write_header_str(&b, "heart-beat", hb, STP_V10);
    rc = rc ? rc : stp_write_body(&b, (struct stp_slice){"", 0});
    rc = rc ? rc : stp_bench_conn_append(c, b.data, b.len);
    stp_buf_free(&b);
    return rc;
}

void stp_bench_conn_ready(struct stp_bench_conn *c)
{
    int rc = write_connect(c);
    if (rc) {
        conn_fail(c, "cannot build CONNECT", rc);
        return;
    }
    c->state = CONN_CONNECT_SENT;
    stp_bench_conn_flush(c);
}

static void mark_ready(struct stp_bench_conn *c)
{
    c->state = CONN_READY;
    if (!c->ready_counted) {
        c->ready_counted = true;
        atomic_fetch_add(&c->t->run->ready, 1);
    }
}

/* --idle-patterns: this holder's share, /topic/PREFIX-idle.N.* for even N
 * and .N.# for odd N; the last SUBSCRIBE asks for the receipt that makes
 * the connection ready (the broker has every pattern before the load). */
static int subscribe_patterns(struct stp_bench_conn *c)
{
    const struct stp_bench_config *cfg = cfg_of(c);
    unsigned first = c->index * STP_BENCH_PATTERNS_PER_CONN;
    unsigned end = first + STP_BENCH_PATTERNS_PER_CONN;
    if (end > cfg->idle_patterns)
        end = cfg->idle_patterns;
    struct stp_buf b = STP_BUF_INIT;
    int rc = 0;
    for (unsigned n = first; n < end && rc == 0; n++) {
        char dest[128];
        snprintf(dest, sizeof(dest), "/topic/%s-idle.%u.%s", cfg->dest_prefix, n,
                 n % 2 ? "#" : "*");
        rc = stp_write_command(&b, STP_CMD_SUBSCRIBE);
        rc = rc ? rc : stp_write_header_u64(&b, "id", n);
        rc = rc ? rc : stp_write_header_str(&b, "destination", dest, c->version);
        if (n + 1 == end)
            rc = rc ? rc : stp_write_header_str(&b, "receipt", "patterns", c->version);
        rc = rc ? rc : stp_write_body(&b, (struct stp_slice){"", 0});
    }
    rc = rc ? rc : stp_bench_conn_append(c, b.data, b.len);
    stp_buf_free(&b);
    return rc;
}

static void on_connected(struct stp_bench_conn *c, const struct stp_frame *f)
{
    const struct stp_slice *v = stp_frame_header(f, "version");
    c->version = !v || stp_slice_eq(*v, "1.0") ? STP_V10
                 : stp_slice_eq(*v, "1.1")     ? STP_V11
                                               : STP_V12;
    c->parser.version = c->version;
    if (c->role == ROLE_IDLE) {
        uint64_t sx = 0, sy = 0, cx = cfg_of(c)->heartbeat_ms;
        stp_heartbeat_parse(stp_frame_header(f, "heart-beat"), &sx, &sy);
        c->hb_send_ns = sy ? (sy > cx ? sy : cx) * UINT64_C(1000000) : 0;
        c->hb_last_sent = uv_hrtime();
    }
    if (c->role == ROLE_CONSUMER || c->role == ROLE_PATTERNS) {
        int rc = c->role == ROLE_CONSUMER ? stp_bench_consumer_subscribe(c) : subscribe_patterns(c);
        if (rc) {
            conn_fail(c, "cannot build SUBSCRIBE", rc);
            return;
        }
        c->state = CONN_SUBSCRIBING;
        return;
    }
    mark_ready(c);
}

static void on_error_frame(struct stp_bench_conn *c, const struct stp_frame *f)
{
    const struct stp_slice *m = stp_frame_header(f, "message");
    char body[201];
    size_t n = f->body.len < 200 ? f->body.len : 200;
    for (size_t i = 0; i < n; i++) {
        char ch = f->body.p[i];
        body[i] = (ch == '\n' || ch == '\r' || ch == '\0') ? ' ' : ch;
    }
    body[n] = '\0';
    char what[512];
    snprintf(what, sizeof(what), "broker sent ERROR: %.*s%s%s", m ? (int)m->len : 0, m ? m->p : "",
             n ? " | " : "", body);
    conn_fail(c, what, 0);
}

static void on_receipt(struct stp_bench_conn *c, const struct stp_frame *f, uint64_t now)
{
    if ((c->role == ROLE_CONSUMER || c->role == ROLE_PATTERNS) && c->state == CONN_SUBSCRIBING) {
        mark_ready(c);
        return;
    }
    if (c->role == ROLE_PRODUCER)
        stp_bench_producer_on_receipt(c, f, now);
}

static void handle_frame(struct stp_bench_conn *c, const struct stp_frame *f, uint64_t now)
{
    switch (f->cmd) {
    case STP_CMD_HEARTBEAT:
        c->heartbeats_in++;
        break;
    case STP_CMD_CONNECTED:
        if (c->state != CONN_CONNECT_SENT) {
            conn_fail(c, "unexpected CONNECTED", 0);
            return;
        }
        on_connected(c, f);
        break;
    case STP_CMD_ERROR:
        on_error_frame(c, f);
        break;
    case STP_CMD_RECEIPT:
        on_receipt(c, f, now);
        break;
    case STP_CMD_MESSAGE:
        if (c->role == ROLE_CONSUMER)
            stp_bench_consumer_on_message(c, f, now);
        break;
    default:
        break;
    }
}

int stp_bench_conn_input(struct stp_bench_conn *c, size_t nread)
{
    stp_bench_thread_check_start(c->t); /* phase times are valid after this */
    uint64_t now = uv_hrtime();
    c->in.len += nread;
    COUNT_ADD(c->t->bytes_in, nread);
    size_t off = 0;
    while (off < c->in.len && c->state < CONN_CLOSING) {
        struct stp_frame f;
        ssize_t n = stp_parse(&c->parser, c->in.data + off, c->in.len - off, &f);
        if (n == 0)
            break;
        if (n < 0) {
            char what[256];
            snprintf(what, sizeof(what), "bad frame from the broker at byte %zu (%s)",
                     c->parser.err_offset, c->parser.err_text ? c->parser.err_text : "");
            conn_fail(c, what, (int)n);
            return (int)n;
        }
        handle_frame(c, &f, now);
        off += (size_t)n;
    }
    if (c->state >= CONN_CLOSING)
        return 0;
    stp_buf_consume(&c->in, off); /* the one move of a partial frame, as before */
    if (c->role == ROLE_CONSUMER)
        stp_bench_consumer_read_done(c);
    if (c->role == ROLE_PRODUCER && c->u.p.rcpt_kick) {
        c->u.p.rcpt_kick = false;
        if (c->t->started && !c->writing)
            stp_bench_producer_pump(c, now); /* the receipts opened the window */
    }
    stp_bench_conn_flush(c);
    if (c->role == ROLE_CONSUMER)
        stp_bench_thread_kick(c->t);
    return 0;
}

/* Make room for n more input bytes; the first allocation is 4 * in_min_room. */
static int in_reserve(struct stp_bench_conn *c, size_t n)
{
    return stp_bench_buf_reserve(&c->in, n, 4 * in_min_room(c));
}

int stp_bench_conn_push_input(struct stp_bench_conn *c, const void *p, size_t n)
{
    if (c->state >= CONN_CLOSING)
        return 0;
    int rc = in_reserve(c, n);
    if (rc)
        return rc;
    memcpy(c->in.data + c->in.len, p, n);
    return stp_bench_conn_input(c, n); /* it counts the n bytes into in.len */
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct stp_bench_conn *c = h->data;
    /* Keep in_min_room free for the read. The buffer is at least
     * 4 * in_min_room, so a grow is one doubling, as stp_buf does it. */
    if (in_reserve(c, in_min_room(c))) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    c->ep->url->transport->ops->alloc(c, suggested, buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct stp_bench_conn *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (c->role == ROLE_IDLE && c->state == CONN_READY && !c->t->stopping) {
            atomic_fetch_add(&c->t->run->closed_idle, 1);
            stp_bench_conn_close(c);
            return;
        }
        conn_fail(c,
                  c->state == CONN_CONNECT_SENT ? "closed by the broker before CONNECTED"
                                                : "closed by the broker",
                  nread == UV_EOF ? 0 : stp_err_from_uv((int)nread));
        return;
    }
    int rc = c->ep->url->transport->ops->read(c, buf, (size_t)nread);
    if (rc && c->state < CONN_CLOSING)
        conn_fail(c, "transport error", rc);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct stp_bench_conn *c = req->data;
    if (status < 0) {
        char what[128];
        snprintf(what, sizeof(what), "cannot connect (%s)", uv_strerror(status));
        conn_fail(c, what, 0);
        return;
    }
    if (c->state >= CONN_CLOSING)
        return;
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc) {
        conn_fail(c, "cannot read", stp_err_from_uv(rc));
        return;
    }
    c->state = CONN_HANDSHAKE;
    rc = c->ep->url->transport->ops->start(c);
    if (rc)
        conn_fail(c, "transport handshake failed", rc);
}

int stp_bench_conn_start(struct stp_bench_conn *c)
{
    const struct stp_bench_config *cfg = cfg_of(c);
    struct stp_limits lim = {
        .max_frame = cfg->size + 65536, .max_headers = 64, .max_header_len = 16384};
    int rc = stp_parser_init(&c->parser, &lim);
    if (rc)
        return rc;
    c->parser_ok = true;
    uv_tcp_init(&c->t->loop, &c->tcp);
    c->tcp_inited = true;
    c->tcp.data = c;
    c->creq.data = c;
    c->state = CONN_CONNECTING;
    rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&c->ep->addr, on_connect);
    if (rc) {
        conn_fail(c, "cannot connect", stp_err_from_uv(rc));
        return stp_err_from_uv(rc);
    }
    return 0;
}

static void on_close(uv_handle_t *h)
{
    struct stp_bench_conn *c = h->data;
    c->state = CONN_CLOSED;
}

void stp_bench_conn_close(struct stp_bench_conn *c)
{
    if (c->state >= CONN_CLOSING)
        return;
    if (!c->tcp_inited) {
        c->state = CONN_CLOSED;
        return;
    }
    c->state = CONN_CLOSING;
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

void stp_bench_conn_free(struct stp_bench_conn *c)
{
    if (!c)
        return;
    if (c->parser_ok)
        stp_parser_free(&c->parser);
    if (c->ep && c->ep->url->transport->ops)
        c->ep->url->transport->ops->release(c); /* engines: never from their callbacks */
    if (c->role == ROLE_PRODUCER)
        stp_bench_producer_free(c);
    else if (c->role == ROLE_CONSUMER)
        stp_bench_consumer_free(c);
    stp_buf_free(&c->in);
    stp_buf_free(&c->out[0]);
    stp_buf_free(&c->out[1]);
    free(c);
}
