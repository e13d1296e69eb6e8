/*
 * transport_stack.c - the layered transports of stampede-bench: TLS
 * (stomp+ssl://), WebSocket (ws://) and both (wss://), over the project's
 * engines (include/stampede/tls.h client mode, include/stampede/ws.h client
 * engine). Socket bytes are read into the stack's own buffer, decrypted and
 * unframed, and the STOMP bytes are copied into the connection's input buffer
 * (stp_bench_conn_push_input). Outgoing STOMP batches become one masked text
 * message each, then TLS records.
 *
 * Output: one socket write in flight at a time. Without TLS the bytes collect
 * in two swapped buffers; with TLS the engine holds the ciphertext and lends
 * one region at a time. The connection's own write completes (its callback
 * runs) only when everything queued so far reached the socket, which keeps
 * the connection's back-pressure intact.
 *
 * Called only on the connection's thread. Engines are freed in release(),
 * which runs from stp_bench_conn_free(), never from an engine callback.
 */
#include "transport.h"

#include "bench.h"

#include "stampede/error.h"
#include "stampede/tls.h"
#include "stampede/ws.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct stack {
    struct stp_bench_conn *c;
    struct stp_tls *tls; /* NULL for ws:// */
    struct stp_ws *ws;   /* NULL for stomp+ssl:// */
    bool upper_started;
    char *raw, *plain; /* socket bytes, decrypted bytes: bufsize each */
    size_t bufsize;
    struct stp_buf q[2]; /* without TLS: q[fill] collects, the other is written */
    int fill;
    bool writing;
    uv_write_t wreq;
    uv_write_t *user_req; /* the connection's write waiting for the socket */
    uv_write_cb user_cb;
    uint32_t rnd;
};

static struct stack *stack_of(struct stp_bench_conn *c)
{
    return c->transport_state;
}

static uint32_t next_rand(struct stack *s)
{
    /* xorshift32: masking keys only need to differ, not to be secret */
    uint32_t x = s->rnd;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return s->rnd = x;
}

static int queue_plain(struct stack *s, const void *p, size_t n)
{
    if (s->tls) {
        struct iovec iov = {(void *)p, n};
        return stp_tls_write(s->tls, &iov, 1);
    }
    struct stp_buf *o = &s->q[s->fill];
    if (stp_bench_buf_reserve(o, n, 4 * 1024))
        return STP_ENOMEM;
    return stp_buf_append(o, p, n);
}

static void flush(struct stack *s);

static void on_written(uv_write_t *req, int status)
{
    struct stack *s = req->data;
    s->writing = false;
    if (s->tls)
        stp_tls_out_release(s->tls);
    else
        s->q[s->fill ^ 1].len = 0;
    if (status < 0) {
        if (s->user_cb) {
            uv_write_cb cb = s->user_cb;
            s->user_cb = NULL;
            cb(s->user_req, status);
        }
        return;
    }
    flush(s);
}

/* Start the next socket write, or complete the connection's write. */
static void flush(struct stack *s)
{
    struct stp_bench_conn *c = s->c;
    if (s->writing || c->state >= CONN_CLOSING)
        return;
    const char *p = NULL;
    size_t len = 0;
    if (s->tls) {
        if (stp_tls_out_take(s->tls, &p, &len) != 0)
            len = 0;
    } else if (s->q[s->fill].len) {
        p = s->q[s->fill].data;
        len = s->q[s->fill].len;
        s->fill ^= 1;
    }
    if (len == 0) {
        if (s->user_cb) {
            uv_write_cb cb = s->user_cb;
            s->user_cb = NULL;
            cb(s->user_req, 0);
        }
        return;
    }
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
    s->writing = true;
    s->wreq.data = s;
    int rc = uv_write(&s->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc)
        on_written(&s->wreq, rc);
}

/* The WebSocket engine's own output (upgrade request, pongs, close). */
static int drain_ws(struct stack *s)
{
    size_t n;
    const uint8_t *p = stp_ws_out(s->ws, &n);
    if (!p || !n)
        return 0;
    int rc = queue_plain(s, p, n);
    stp_ws_out_consume(s->ws, n);
    return rc;
}

static void ws_on_open(void *ud, const char *subprotocol)
{
    (void)subprotocol;
    stp_bench_conn_ready(((struct stack *)ud)->c);
}

static void ws_on_message(void *ud, const uint8_t *p, size_t n, bool binary)
{
    (void)binary;
    struct stack *s = ud;
    if (stp_bench_conn_push_input(s->c, p, n) != 0 && s->c->state < CONN_CLOSING)
        stp_bench_fail(s->c->t->run, "connection: out of memory");
}

static const struct stp_ws_ops ws_ops = {
    .on_open = ws_on_open,
    .on_message = ws_on_message,
};

/* TLS is up (or absent): start the WebSocket upgrade, or STOMP itself. */
static int start_upper(struct stack *s)
{
    struct stp_bench_conn *c = s->c;
    const struct stp_bench_url *u = c->ep->url;
    s->upper_started = true;
    if (!u->transport->websocket) {
        stp_bench_conn_ready(c);
        return 0;
    }
    char host[300];
    snprintf(host, sizeof(host), "%s:%u", u->host, u->port);
    struct stp_ws_client_config wc = {
        .host = host,
        .path = u->path,
        .max_message = c->t->run->cfg.size + 16 * 1024 * 1024,
    };
    s->ws = stp_ws_client_new(&wc, &ws_ops, s);
    if (!s->ws)
        return STP_ENOMEM;
    int rc = drain_ws(s);
    flush(s);
    return rc;
}

static int stack_start(struct stp_bench_conn *c)
{
    struct stack *s = calloc(1, sizeof(*s));
    if (!s)
        return STP_ENOMEM;
    c->transport_state = s;
    s->c = c;
    /* consumers read big batches; the others see small frames only */
    s->bufsize = c->role == ROLE_CONSUMER ? 64 * 1024 : 8 * 1024;
    s->raw = malloc(s->bufsize);
    s->plain = malloc(s->bufsize);
    if (!s->raw || !s->plain)
        return STP_ENOMEM;
    s->rnd = (uint32_t)(uv_hrtime() ^ ((uintptr_t)s >> 4)) | 1;
    if (!c->ep->url->transport->tls)
        return start_upper(s);
    int rc = stp_tls_new(&s->tls, c->ep->tls_config, c->t->tls_rng);
    rc = rc ? rc : stp_tls_handshake(s->tls);
    flush(s);
    return rc;
}

static void stack_alloc(struct stp_bench_conn *c, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct stack *s = stack_of(c);
    buf->base = s->raw;
    buf->len = s->bufsize;
}

/* Plaintext from the socket (after TLS): WebSocket frames or STOMP bytes. */
static int deliver(struct stack *s, const char *p, size_t n)
{
    if (!s->ws)
        return stp_bench_conn_push_input(s->c, p, n);
    int rc = stp_ws_feed(s->ws, (const uint8_t *)p, n);
    int rc2 = drain_ws(s);
    if (rc == STP_EWS)
        return STP_EWS; /* the upgrade was refused */
    return rc ? rc : rc2;
}

static int read_tls(struct stack *s, size_t nread)
{
    int rc = stp_tls_feed(s->tls, s->raw, nread);
    if (rc == 0 && !s->upper_started && stp_tls_state(s->tls) == STP_TLS_OPEN)
        rc = start_upper(s);
    while (rc == 0 && s->c->state < CONN_CLOSING) {
        ssize_t n = stp_tls_read(s->tls, s->plain, s->bufsize);
        if (n <= 0) {
            rc = (int)n;
            break;
        }
        rc = deliver(s, s->plain, (size_t)n);
    }
    if (rc) {
        char why[200];
        if (rc == STP_ETLS)
            stp_bench_fail(s->c->t->run, "TLS: %s", stp_tls_errtext(s->tls, why, sizeof(why)));
    }
    return rc;
}

static int stack_read(struct stp_bench_conn *c, const uv_buf_t *buf, size_t nread)
{
    (void)buf;
    struct stack *s = stack_of(c);
    int rc = s->tls ? read_tls(s, nread) : deliver(s, s->raw, nread);
    flush(s);
    return rc;
}

/* One STOMP batch: a masked text message (ws) and/or TLS records. The batch
 * is masked in place: the connection does not reuse it after the write. */
static int stack_write(struct stp_bench_conn *c, uv_write_t *req, const uv_buf_t *bufs, unsigned n,
                       uv_write_cb cb)
{
    struct stack *s = stack_of(c);
    assert(!s->user_cb);
    int rc = 0;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        if (s->ws) {
            uint8_t hdr[14], mask[4];
            uint32_t m = next_rand(s);
            memcpy(mask, &m, 4);
            size_t hl = stp_ws_client_frame_header(hdr, STP_WS_OP_TEXT, true, bufs[i].len, mask);
            stp_ws_mask((uint8_t *)bufs[i].base, bufs[i].len, mask, 0);
            rc = queue_plain(s, hdr, hl);
        }
        rc = rc ? rc : queue_plain(s, bufs[i].base, bufs[i].len);
    }
    if (rc)
        return rc;
    s->user_req = req;
    s->user_cb = cb;
    flush(s);
    return 0;
}

static void stack_release(struct stp_bench_conn *c)
{
    struct stack *s = stack_of(c);
    if (!s)
        return;
    if (s->ws)
        stp_ws_free(&s->ws);
    if (s->tls)
        stp_tls_free(&s->tls);
    stp_buf_free(&s->q[0]);
    stp_buf_free(&s->q[1]);
    free(s->raw);
    free(s->plain);
    free(s);
    c->transport_state = NULL;
}

const struct stp_bench_transport_ops stp_bench_stack_ops = {
    .start = stack_start,
    .alloc = stack_alloc,
    .read = stack_read,
    .write = stack_write,
    .release = stack_release,
};
