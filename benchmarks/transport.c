/*
 * transport.c - the transports stampede-bench knows (see transport.h) and the
 * plain TCP one. The TCP transport reads straight into the connection's STOMP
 * input buffer and writes the caller's buffers with one uv_write (writev).
 * Called only on the connection's thread.
 */
#include "transport.h"

#include "bench.h"

#include "stampede/error.h"

#include <string.h>

static int tcp_start(struct stp_bench_conn *c)
{
    stp_bench_conn_ready(c);
    return 0;
}

static void tcp_alloc(struct stp_bench_conn *c, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    buf->base = c->in.data + c->in.len;
    buf->len = c->in.cap - c->in.len;
}

static int tcp_read(struct stp_bench_conn *c, const uv_buf_t *buf, size_t nread)
{
    (void)buf;
    return stp_bench_conn_input(c, nread);
}

static int tcp_write(struct stp_bench_conn *c, uv_write_t *req, const uv_buf_t *bufs, unsigned n,
                     uv_write_cb cb)
{
    int rc = uv_write(req, (uv_stream_t *)&c->tcp, bufs, n, cb);
    return rc ? stp_err_from_uv(rc) : 0;
}

static void tcp_release(struct stp_bench_conn *c)
{
    (void)c;
}

static const struct stp_bench_transport_ops tcp_ops = {
    .start = tcp_start,
    .alloc = tcp_alloc,
    .read = tcp_read,
    .write = tcp_write,
    .release = tcp_release,
};

/* TLS and WebSocket run over the project's engines (transport_stack.c). */
static const struct stp_bench_transport transports[] = {
    {.scheme = "stomp", .default_port = 61613, .ops = &tcp_ops},
    {.scheme = "tcp", .default_port = 61613, .ops = &tcp_ops},
    {.scheme = "stomp+ssl", .default_port = 61614, .tls = true, .ops = &stp_bench_stack_ops},
    {.scheme = "ws", .default_port = 15674, .websocket = true, .ops = &stp_bench_stack_ops},
    {.scheme = "wss",
     .default_port = 15673,
     .tls = true,
     .websocket = true,
     .ops = &stp_bench_stack_ops},
};

const struct stp_bench_transport *stp_bench_transport_find(const char *scheme, size_t len)
{
    for (size_t i = 0; i < sizeof(transports) / sizeof(transports[0]); i++)
        if (strlen(transports[i].scheme) == len && memcmp(transports[i].scheme, scheme, len) == 0)
            return &transports[i];
    return NULL;
}
