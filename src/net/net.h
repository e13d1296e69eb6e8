/*
 * net.h - the network layer's per-thread context and the table through which
 * it calls the layer above.
 *
 * One struct stp_net per event loop thread (the broker embeds one in each
 * worker). It owns what carries bytes: the listening sockets, the table of
 * connections (by slot and generation), the lists the loop walks (output to
 * flush, closes to finish, paused readers, deferred input), the shared read
 * and TLS plaintext buffers, each listener's TLS config and WebSocket
 * settings, and the net counters. Everything in it is touched only on its
 * loop's thread, except: tls_reload (handed over by the main thread,
 * stp_net_reload_tls), stats (single-writer counters any thread may read,
 * stampede/counter.h) and *admit (atomics shared by every thread's net).
 *
 * The net layer knows nothing of STOMP sessions: it calls up through
 * struct stp_conn_ops, which the broker fills in (the session ops). Every
 * call is made on the loop's thread, never re-entered for the same
 * connection from inside another call for it except where noted.
 */
#ifndef STP_NET_NET_H
#define STP_NET_NET_H

#include "admit.h"
#include "stampede/config.h"
#include "stampede/counter.h"
#include "stampede/ws.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct stp_buf;
struct stp_conn;
struct stp_tls_config;
struct stp_tls_rng;

#define STP_TLS_PLAIN_SCRATCH (16 * 1024)
#define STP_READ_SHARED (64 * 1024)

enum stp_transport_kind { STP_TK_TCP, STP_TK_TLS, STP_TK_WS, STP_TK_WSS, STP_TK__COUNT };

enum stp_conn_closing { STP_OPEN = 0, STP_CLOSE_AFTER_FLUSH, STP_CLOSE_NOW };

struct stp_net_slot {
    struct stp_conn *conn; /* NULL while free */
    uint32_t gen;
};

struct stp_net_stats {
    stp_counter conns_accepted;
    stp_counter conns_refused[2]; /* by --max-connections, by --max-connections-per-ip */
    stp_counter conns_open[STP_TK__COUNT];
    stp_counter bytes_in;
    stp_counter bytes_out;
    stp_counter slow_consumers;
};

/* A plain HTTP request for one of the WebSocket listener's endpoints. */
struct stp_http_request {
    enum stp_ws_endpoint which;
    const char *authorization; /* the Authorization header, or NULL */
    size_t authorization_len;
};

/* The answer to one: status, Content-Type, extra header lines ("Name:
 * value\r\n" each, or NULL) and the body (the net frees it). */
struct stp_http_answer {
    int status;
    const char *type;
    const char *extra_headers;
    struct stp_buf *body;
};

/* What the layer above does with a connection. */
struct stp_conn_ops {
    /* Bytes of per-connection state the layer above keeps right after the
     * connection (stp_conn_up), zeroed at accept and freed with it. */
    size_t up_size;
    /* The connection was accepted and its layers are set up. 0, or a
     * negative code: the connection is closed (teardown still follows). */
    int (*open)(struct stp_conn *c);
    /* Application bytes (STOMP) arrived: consume what is complete, set
     * *consumed (the rest is handed again with more bytes after it).
     * Returns 0, or a negative code after closing the connection. Not called
     * while the connection is paused or closing. */
    int (*input)(struct stp_conn *c, char *data, size_t len, size_t *consumed);
    /* The peer half-closed (EOF) while the connection was open. The layer
     * above closes it (stp_conn_close) when it has answered. */
    void (*eof)(struct stp_conn *c);
    /* The output queued so far is being handed to a write (NULL: nothing to
     * note). */
    void (*writing)(struct stp_conn *c);
    /* The write started after the last `writing` completed (ok) or failed
     * (!ok: the connection is being closed). NULL: nothing to do. */
    void (*written)(struct stp_conn *c, bool ok);
    /* The net layer ends the connection for a reason the peer should hear
     * (a slow consumer): send it in the protocol's words, then close. */
    void (*error)(struct stp_conn *c, const char *message, const char *detail);
    /* The connection is going away (once, at the loop's next flush point
     * after stp_conn_close): let go of everything held for it. Output
     * queued here may still be written when it closes after flush. */
    void (*teardown)(struct stp_conn *c);
    /* A plain HTTP request for one of the WebSocket listener's endpoints:
     * fill *ans (its body buffer is the net's) and return 0 to answer now,
     * or return 1 and answer later with stp_conn_http_reply (e.g. after a
     * password check); -1: answered 500. */
    int (*http)(struct stp_conn *c, const struct stp_http_request *req,
                struct stp_http_answer *ans);
};

struct stp_net {
    uv_loop_t *loop;
    const struct stp_config *cfg;
    const struct stp_conn_ops *ops;
    struct stp_admit *admit;            /* shared connection limits; NULL: none */
    const struct stp_ws_config *ws_cfg; /* per listener, owned by the caller */
    bool stopping;                      /* shutting down: WebSocket says 1001 */

    uv_tcp_t listeners[STP_MAX_LISTENERS];
    unsigned nlisteners;

    /* Connections by slot; a slot's generation changes when it is freed, so
     * a (slot, gen) reference held elsewhere never finds a newer connection. */
    struct stp_net_slot *slots;
    size_t nslots;
    uint32_t *free_slots; /* capacity nslots */
    size_t nfree;
    uint32_t nconns;
    struct stp_conn *dirty;     /* with output to flush (intrusive list) */
    struct stp_conn *reap;      /* closes to finish */
    struct stp_conn *all;       /* every connection until its memory is freed */
    struct stp_conn *paused;    /* not read because of back-pressure */
    struct stp_conn *input_due; /* resumed with bytes to parse */

    /* TLS: each listener's config (replaced on SIGHUP through reload_async),
     * this thread's random generator. */
    struct stp_tls_config *tls_cfg[STP_MAX_LISTENERS];
    _Atomic(struct stp_tls_config *) tls_reload[STP_MAX_LISTENERS];
    uv_async_t reload_async;
    struct stp_tls_rng *tls_rng;
    /* Scratch buffers: a read or a decryption is consumed before the loop
     * reads another connection, so one of each serves every connection. */
    char tls_plain[STP_TLS_PLAIN_SCRATCH];
    char read_shared[STP_READ_SHARED];

    struct stp_net_stats stats;
};

/* On the loop's thread, before it runs. n is zeroed by the caller except
 * for tls_cfg[] (references the net takes over), ws_cfg and admit. */
int stp_net_init(struct stp_net *n, uv_loop_t *loop, const struct stp_config *cfg,
                 const struct stp_conn_ops *ops);
/* Accept connections on listener l from the bound socket fd. */
int stp_net_listen(struct stp_net *n, unsigned l, int fd);
/* Stop accepting (closes the listeners). */
void stp_net_stop_listening(struct stp_net *n);
/* Close the net's own handles (the loop can then end). */
void stp_net_close_handles(struct stp_net *n);
/* After the loop ended: free what is left. */
void stp_net_free(struct stp_net *n);

/* From another thread (SIGHUP): hand a new TLS config for listener l (the
 * net takes over the reference cfg holds). New handshakes use it. */
void stp_net_reload_tls(struct stp_net *n, unsigned l, struct stp_tls_config *cfg);

/* The loop's flush point (uv_check and uv_prepare): parse what resumed
 * connections had buffered, finish closes, write every dirty connection. */
void stp_net_flush(struct stp_net *n);

/* The connection behind a (slot, gen) reference, or NULL when it is gone. */
struct stp_conn *stp_net_conn(struct stp_net *n, uint32_t slot, uint32_t gen);
/* Close every open connection: after its output is written, or now. */
void stp_net_close_all(struct stp_net *n, enum stp_conn_closing how);
/* True when no connection is left (none open, none waiting to be reaped). */
bool stp_net_idle(const struct stp_net *n);

/* Resume the connections paused for back-pressure (those whose `throttled`
 * count is 0). */
void stp_net_resume_paused(struct stp_net *n);

#endif
