/*
 * stream_tcp.c - the plain TCP stream: socket bytes are the plaintext.
 *
 * On the connection's thread. A connection with nothing pending reads into
 * its net's shared 64 KiB buffer and is handed up from there; with raw STOMP and a
 * partial frame pending it reads straight into its own read buffer, after
 * that frame (WebSocket always goes through the shared buffer and the
 * framing). The output queue goes out as one writev. The first bytes are sniffed: a TLS ClientHello
 * on a plain port is logged and closed rather than answered with a STOMP ERROR.
 */
#include "conn.h"

#include "stampede/log.h"
#include "stampede/tls.h"

#define READ_CHUNK (64 * 1024)

static void tcp_alloc(struct stp_conn *c, uv_buf_t *buf)
{
    if (c->framing != &stp_framing_raw || c->rbuf.len == 0) {
        /* Nothing pending: read into the net's shared buffer (the bytes
         * are consumed before the loop reads another connection). */
        *buf = uv_buf_init(c->net->read_shared, STP_READ_SHARED);
        return;
    }
    struct stp_buf *b = &c->rbuf;
    if (stp_buf_reserve(b, READ_CHUNK)) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    /* Not uv_buf_init: it takes an unsigned int length. */
    *buf = (uv_buf_t){.base = b->data + b->len, .len = b->cap - b->len};
}

static bool tls_on_plain_port(struct stp_conn *c, const char *p, size_t n)
{
    if (c->first_read_done)
        return false;
    c->first_read_done = true;
    if (!stp_tls_looks_like_client_hello(p, n))
        return false;
    stp_info("%s: TLS handshake on a plain port, closing", c->peer);
    stp_conn_close(c, STP_CLOSE_NOW);
    return true;
}

static void tcp_on_read(struct stp_conn *c, size_t n)
{
    bool shared = c->framing != &stp_framing_raw || c->rbuf.len == 0;
    char *p = shared ? c->net->read_shared : c->rbuf.data + c->rbuf.len;
    if (tls_on_plain_port(c, p, n))
        return;
    if (c->framing != &stp_framing_raw) {
        c->framing->input(c, p, n);
    } else if (shared) {
        stp_conn_app_in_shared(c, p, n);
    } else {
        c->rbuf.len += n;
        stp_conn_app_in(c);
    }
}

static int tcp_flush(struct stp_conn *c)
{
    size_t n;
    int rc = stp_conn_build_iov(c, &n);
    if (rc < 0)
        return rc;
    stp_conn_writing(c);
    c->fill = !c->fill; /* new output fills the other queue while this one is written */
    return stp_conn_start_write(c, c->iov, n);
}

static void tcp_written(struct stp_conn *c)
{
    stp_outq_reset(&c->out[!c->fill]);
}

static size_t tcp_pending(const struct stp_conn *c)
{
    (void)c;
    return 0;
}

const struct stp_stream_ops stp_stream_tcp = {
    .name = "tcp",
    .alloc = tcp_alloc,
    .on_read = tcp_on_read,
    .flush = tcp_flush,
    .written = tcp_written,
    .pending = tcp_pending,
};
