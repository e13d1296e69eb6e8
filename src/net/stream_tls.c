/*
 * stream_tls.c - TLS under the framing, with the TLS engine (src/tls) over
 * memory buffers.
 *
 * On the connection's thread. Socket bytes (read into the net's shared
 * buffer) go to the engine; decrypted bytes come out into the net's
 * plaintext scratch buffer and go to the framing, which hands them up from
 * there and keeps only a trailing partial frame in the connection's read
 * buffer.
 * A flush hands the whole output queue to the engine, which seals it into
 * records of up to 16 KiB, and writes the ciphertext in one write. Nothing
 * blocks: the engine answers WANT_READ/WANT_WRITE inside.
 */
#include "conn.h"

#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/tls.h"

#include <sys/uio.h>

#define IOV_BATCH ((size_t)1 << 20)

int stp_stream_tls_init(struct stp_conn *c)
{
    struct stp_net *n = c->net;
    return stp_tls_new(&c->tls, n->tls_cfg[c->listener], n->tls_rng);
}

/* Ciphertext lands in the net's shared read buffer: the engine takes all
 * of it in stp_tls_feed, before the loop reads another connection. */
static void tls_alloc(struct stp_conn *c, uv_buf_t *buf)
{
    *buf = uv_buf_init(c->net->read_shared, STP_READ_SHARED);
}

static void log_failure(struct stp_conn *c, const char *what)
{
    char text[256];
    stp_info("%s: TLS %s: %s", c->peer, what, stp_tls_errtext(c->tls, text, sizeof(text)));
}

/* Decrypt what the engine has and pass it up. false when the connection ends. */
static bool pump_plaintext(struct stp_conn *c)
{
    char *tmp = c->net->tls_plain;
    for (;;) {
        ssize_t r = stp_tls_read(c->tls, tmp, STP_TLS_PLAIN_SCRATCH);
        if (r > 0) {
            c->framing->input(c, tmp, (size_t)r);
            continue;
        }
        if (r == 0)
            return true;
        if (r == STP_ECLOSED) {
            stp_conn_close(c, STP_CLOSE_AFTER_FLUSH);
            return false;
        }
        log_failure(c, "read failed");
        stp_conn_close(c, STP_CLOSE_AFTER_FLUSH);
        return false;
    }
}

static void tls_on_read(struct stp_conn *c, size_t n)
{
    int rc = stp_tls_feed(c->tls, c->net->read_shared, n);
    if (stp_tls_out_pending(c->tls) > 0)
        stp_conn_mark_dirty(c); /* handshake flights, alerts */
    if (rc == STP_EPROTO) {
        stp_info("%s: not a TLS handshake on a TLS port, closing", c->peer);
        stp_conn_close(c, STP_CLOSE_NOW);
        return;
    }
    if (rc < 0) {
        log_failure(c, "handshake failed");
        stp_conn_close(c, STP_CLOSE_AFTER_FLUSH);
        return;
    }
    /* Alerts (e.g. refusing a renegotiation) count toward the bound too; the
     * handshake's own flights are bounded by the engine and do not. */
    if (pump_plaintext(c) && stp_tls_state(c->tls) == STP_TLS_OPEN)
        stp_conn_check_output(c);
}

/* Hand the filled output queue to the engine (it copies into records). */
static int seal_output(struct stp_conn *c)
{
    struct stp_outq *q = stp_conn_fillq(c);
    if (q->total == 0)
        return 0;
    size_t n;
    int rc = stp_conn_build_iov(c, &n);
    if (rc < 0)
        return rc;
    /* uv_buf_t is laid out as struct iovec on Unix (libuv documents it).
     * The engine counts iovecs in an int: hand them over in batches. */
    for (size_t i = 0; i < n; i += IOV_BATCH) {
        size_t k = n - i < IOV_BATCH ? n - i : IOV_BATCH;
        rc = stp_tls_write(c->tls, (const struct iovec *)c->iov + i, (int)k);
        if (rc < 0 && rc != STP_ECLOSED)
            return rc;
    }
    stp_conn_writing(c);
    /* Queue deliveries are now records: still exempt from the bound. */
    c->stream_exempt += q->exempt;
    stp_outq_reset(q);
    return 0;
}

static int tls_flush(struct stp_conn *c)
{
    int rc = seal_output(c);
    if (rc < 0)
        return rc;
    const char *p;
    size_t len;
    rc = stp_tls_out_take(c->tls, &p, &len);
    if (rc < 0)
        return rc;
    if (len == 0)
        return 0;
    uv_buf_t buf = {.base = (char *)p, .len = len}; /* not uv_buf_init: unsigned int */
    return stp_conn_start_write(c, &buf, 1);
}

static void tls_written(struct stp_conn *c)
{
    stp_tls_out_release(c->tls);
    if (stp_tls_out_pending(c->tls) == 0)
        c->stream_exempt = 0;
}

static size_t tls_pending(const struct stp_conn *c)
{
    return stp_tls_out_pending(c->tls) + stp_tls_plain_pending(c->tls);
}

static void tls_closing(struct stp_conn *c)
{
    if (stp_tls_state(c->tls) == STP_TLS_OPEN || stp_tls_state(c->tls) == STP_TLS_PEER_CLOSED) {
        /* What the session wrote last (an ERROR, a RECEIPT) goes before the
         * close_notify. */
        seal_output(c);
        stp_tls_close(c->tls);
        stp_conn_mark_dirty(c);
    }
}

static bool tls_ready(const struct stp_conn *c)
{
    return stp_tls_state(c->tls) == STP_TLS_OPEN;
}

static void tls_free(struct stp_conn *c)
{
    stp_tls_free(&c->tls);
}

const struct stp_stream_ops stp_stream_tls = {
    .name = "tls",
    .alloc = tls_alloc,
    .on_read = tls_on_read,
    .flush = tls_flush,
    .written = tls_written,
    .pending = tls_pending,
    .closing = tls_closing,
    .free = tls_free,
    .ready = tls_ready,
};
