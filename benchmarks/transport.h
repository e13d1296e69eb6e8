/*
 * transport.h - the seam between a generator connection and the bytes on the
 * wire. A transport is a static const ops table chosen by the URL scheme.
 * stomp:// is plain TCP (bytes are read straight into the STOMP input buffer,
 * no copy). ws://, stomp+ssl:// and wss:// are listed so URLs parse and the
 * error says what is missing; their ops arrive with the project's WebSocket
 * and TLS engines (src/ws, src/tls): such an engine reads into its own
 * buffer, decodes, and hands plaintext to stp_bench_conn_input().
 *
 * Called only on the thread that owns the connection.
 */
#ifndef STAMPEDE_BENCH_TRANSPORT_H
#define STAMPEDE_BENCH_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct stp_bench_conn;

struct stp_bench_transport_ops {
    /* The TCP connection is up: start any handshake, then call
     * stp_bench_conn_ready(c). 0 or STP_E*. */
    int (*start)(struct stp_bench_conn *c);
    /* libuv alloc_cb for the socket. */
    void (*alloc)(struct stp_bench_conn *c, size_t suggested, uv_buf_t *buf);
    /* nread > 0 bytes arrived in the buffer given by alloc: decode and hand
     * plaintext to stp_bench_conn_input(). 0 or STP_E*. */
    int (*read)(struct stp_bench_conn *c, const uv_buf_t *buf, size_t nread);
    /* Send plaintext bytes; cb runs when they are written (status < 0 on
     * error). The bytes must stay untouched until then. */
    int (*write)(struct stp_bench_conn *c, uv_write_t *req, const uv_buf_t *bufs, unsigned n,
                 uv_write_cb cb);
    /* Release transport state (before the socket is closed). */
    void (*release)(struct stp_bench_conn *c);
};

struct stp_bench_transport {
    const char *scheme;
    uint16_t default_port;
    bool tls, websocket;
    const struct stp_bench_transport_ops *ops; /* NULL: not built yet */
};

/* TLS and/or WebSocket over TCP (transport_stack.c). */
extern const struct stp_bench_transport_ops stp_bench_stack_ops;

/* Transport of a URL scheme ("stomp", "ws", "stomp+ssl", "wss"), or NULL. */
const struct stp_bench_transport *stp_bench_transport_find(const char *scheme, size_t len);

#endif
