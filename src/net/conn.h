/*
 * conn.h - a client connection: socket, transport layers, read buffer,
 * output queue.
 *
 * A connection belongs to the thread (struct stp_net, net.h) that accepted
 * it; nothing here is touched from another thread. Layers, bottom up:
 *
 *   uv_tcp_t -> stream (plain TCP or TLS) -> framing (raw STOMP or WebSocket)
 *            -> the layer above through struct stp_conn_ops (net.h): the
 *               broker's STOMP session, kept in stp_conn_up(c)
 *
 * Each layer is a static const ops table; the layer above never knows which
 * it runs on. Input: the stream says where the socket reads into (the
 * thread's shared read buffer, or for raw STOMP with a partial frame pending
 * the end of `rbuf`) and turns what arrived into plaintext for the framing,
 * which hands application bytes up (ops->input), keeping an unconsumed tail
 * in `rbuf`. Output: the layer above appends whole frames (between
 * stp_conn_frame_begin/end, so WebSocket can put a frame header in front) to
 * the filling output queue as segments: bytes in the queue's own buffer, or a
 * reference to a shared message tail. stp_net_flush writes every dirty
 * connection once per loop iteration: one writev (plain) or one TLS seal +
 * write. While a write is in flight, new output fills the other queue.
 *
 * Lifetime: stp_conn_close() only marks and queues; the next flush point
 * calls ops->teardown (stp_net_flush). The memory is freed in the last
 * handle's close callback, never inside a callback of the connection.
 */
#ifndef STP_NET_CONN_H
#define STP_NET_CONN_H

#include "net.h"
#include "stampede/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct stp_msg;
struct stp_conn;
struct stp_tls;
struct stp_ws;

/* Tails up to this size are copied into the output buffer: a memcpy of a few
 * hundred bytes is cheaper than an atomic reference count shared by every
 * worker plus one more iovec. Larger tails are referenced, not copied. */
#define STP_COPY_TAIL_MAX 1024

struct stp_out_seg {
    size_t off, len;     /* bytes in the queue's buffer, when msg is NULL */
    struct stp_msg *msg; /* a reference to a shared tail */
    bool fixed;          /* never merged with neighbours (a frame header slot) */
};

struct stp_outq {
    struct stp_buf bytes;
    struct stp_out_seg *segs;
    size_t nsegs, cap;
    size_t total;  /* bytes queued */
    size_t exempt; /* of total, queue deliveries: bounded by credit, not by
                      --max-pending-output (stp_conn_exempt_end) */
};

/* The byte stream: plain TCP or TLS. */
struct stp_stream_ops {
    const char *name;
    /* Where the next socket read goes. */
    void (*alloc)(struct stp_conn *c, uv_buf_t *buf);
    /* n bytes arrived where alloc said: produce plaintext for the framing. */
    void (*on_read)(struct stp_conn *c, size_t n);
    /* Write the filled output queue (and anything the stream itself must
     * send). 0, or a negative code to close the connection. */
    int (*flush)(struct stp_conn *c);
    /* The write started by flush completed. */
    void (*written)(struct stp_conn *c);
    /* Bytes the stream itself still has to send (TLS records, alerts). */
    size_t (*pending)(const struct stp_conn *c);
    /* A graceful close begins: queue what the protocol sends last. */
    void (*closing)(struct stp_conn *c);
    void (*free)(struct stp_conn *c);
    /* Whether application bytes can be sent yet (NULL: always). */
    bool (*ready)(const struct stp_conn *c);
};

/* How STOMP frames travel on the stream: raw, or in WebSocket messages. */
struct stp_framing_ops {
    const char *name;
    /* Plaintext from the stream. */
    void (*input)(struct stp_conn *c, const char *p, size_t n);
    void (*frame_begin)(struct stp_conn *c);
    void (*frame_end)(struct stp_conn *c);
    /* A graceful close begins (e.g. the WebSocket close frame). */
    void (*closing)(struct stp_conn *c);
    void (*free)(struct stp_conn *c);
    /* Whether STOMP frames can be sent yet (NULL: always). */
    bool (*ready)(const struct stp_conn *c);
    /* The layer above is past its login (stp_conn_connected; NULL: nothing). */
    void (*connected)(struct stp_conn *c);
};

struct stp_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* login timeout, heart-beats, lingering close */
    uv_write_t wreq;
    uv_shutdown_t sreq;
    struct stp_net *net;
    const struct stp_stream_ops *stream;
    const struct stp_framing_ops *framing;
    struct stp_tls *tls;
    struct stp_ws *ws;
    uint32_t slot, gen;
    unsigned listener;
    int kind;            /* enum stp_transport_kind, for /metrics; -1 until counted */
    struct stp_buf rbuf; /* application bytes not yet consumed by ops->input */
    struct stp_outq out[2];
    int fill; /* index of the queue being filled */
    bool writing;
    uv_buf_t *iov;
    size_t iov_cap;
    size_t frame_seg;           /* WebSocket: the header slot of the frame being written */
    size_t frame_total0;        /* queue total right after that slot */
    struct stp_msg *frame_tail; /* the message whose tail ends this frame (a hint, no reference) */
    struct stp_conn *dirty_next;
    bool dirty;
    struct stp_conn *paused_next;
    bool paused;                 /* reading stopped for back-pressure */
    struct stp_conn *input_next; /* on the net's input_due list */
    bool input_due;              /* resumed with unparsed bytes in rbuf: parse from the loop */
    unsigned throttled;          /* holds by the layer above (queues over their bound): while
                                    non-zero, stp_net_resume_paused leaves it paused */
    bool read_eof;
    size_t discarded; /* bytes read and dropped while closing (bounded) */
    bool first_read_done;
    enum stp_conn_closing closing;
    bool shut;
    bool torn_down;
    struct stp_conn *reap_next;
    struct stp_conn *all_next, *all_prev; /* the net's list of connections */
    int handles;                          /* open uv handles; freed at 0 */
    size_t stream_exempt;   /* queue-delivery bytes the stream took over (TLS records) */
    uint32_t admit_stripe;  /* the hash stripe of the peer's address (net/admit.h) */
    bool peer_loopback;     /* the peer's address is a loopback one */
    bool admitted;          /* holds a place in the connection limits (net/admit.h) */
    uint64_t last_read_ms;  /* loop time of the last read (or resume) */
    uint64_t last_write_ms; /* loop time of the last completed write */
    uint64_t over_since_ms; /* output over --max-pending-output since (0: it is not) */
    /* The WebSocket close code a closing connection ends with (0: 1000, or
     * 1001 when the broker stops); 1008 after a slow-consumer cut. */
    uint16_t ws_close_code;
    size_t held_above; /* bytes the layer above holds back for this connection that
                          count toward --max-pending-output too (topic deliveries
                          waiting for acks); it keeps the count */
    char peer[64];
    /* The layer above's state: ops->up_size bytes (stp_conn_up). */
    max_align_t up[];
};

static inline void *stp_conn_up(struct stp_conn *c)
{
    return c->up;
}

/* Accept a new connection on listener `lidx` of n. */
void stp_conn_accept(struct stp_net *n, uv_stream_t *server, unsigned lidx);
/* A connection without a socket, on listener lidx's framing, whose bytes go
 * through `stream` (which must not read or write the tcp handle; its flush
 * reports completion with stp_conn_write_done). The unit tests drive the
 * broker through this. Outside the connection limits. NULL when it could
 * not be opened. */
struct stp_conn *stp_conn_open_detached(struct stp_net *n, unsigned lidx,
                                        const struct stp_stream_ops *stream, const char *peer);
/* Answer the endpoint request that ops->http deferred (then the connection
 * closes after the answer is written). Nothing when it was answered or the
 * connection is closing. */
void stp_conn_http_reply(struct stp_conn *c, const struct stp_http_answer *ans);
/* The write the stream started completed (status < 0: failed). */
void stp_conn_write_done(struct stp_conn *c, int status);

/* Output (on the connection's thread). Every frame goes between
 * stp_conn_frame_begin and stp_conn_frame_end. */
static inline void stp_conn_frame_begin(struct stp_conn *c)
{
    if (c->framing->frame_begin)
        c->framing->frame_begin(c);
}
static inline void stp_conn_frame_end(struct stp_conn *c)
{
    if (c->framing->frame_end)
        c->framing->frame_end(c);
}
/* False while no STOMP frame can reach the peer yet (TLS or WebSocket
 * handshake unfinished). */
static inline bool stp_conn_ready(const struct stp_conn *c)
{
    return (!c->stream->ready || c->stream->ready(c)) &&
           (!c->framing->ready || c->framing->ready(c));
}
int stp_conn_write(struct stp_conn *c, const void *p, size_t n);
char *stp_conn_reserve(struct stp_conn *c, size_t n); /* then stp_conn_commit */
void stp_conn_commit(struct stp_conn *c, size_t n);
int stp_conn_write_tail(struct stp_conn *c, struct stp_msg *m);
size_t stp_conn_pending(const struct stp_conn *c);
/* --max-pending-output. Every byte queued for the connection counts (frames,
 * RECEIPTs, ERRORs, WebSocket pongs and close frames, TLS records still held)
 * except queue deliveries, which their consumer's credit bounds instead:
 * write those between stp_conn_exempt_begin and stp_conn_exempt_end. */
bool stp_conn_output_over_limit(const struct stp_conn *c);
/* The one enforcement: over the limit, the connection is a slow consumer
 * (counted, logged, ERROR "slow consumer" when a frame can still be sent,
 * then closed). Call it after output that is not a queue delivery was queued,
 * between frames. Returns false when the connection is being closed. */
bool stp_conn_check_output(struct stp_conn *c);
/* A write completed: output back under the limit ends a grace period. */
void stp_conn_output_drained(struct stp_conn *c);
size_t stp_conn_exempt_begin(const struct stp_conn *c);
void stp_conn_exempt_end(struct stp_conn *c, size_t mark);
void stp_conn_mark_dirty(struct stp_conn *c);
/* The layer above has sent its CONNECTED: full-size input from now on
 * (WebSocket lifts its pre-connect message bound). */
void stp_conn_connected(struct stp_conn *c);

/* Output queue internals shared by the stream and framing layers. */
struct stp_outq *stp_conn_fillq(struct stp_conn *c);
int stp_outq_add_fixed(struct stp_outq *q, size_t off, size_t len);
void stp_outq_reset(struct stp_outq *q);
void stp_outq_free(struct stp_outq *q);
/* Point c->iov at the filling queue's segments; returns how many. */
int stp_conn_build_iov(struct stp_conn *c, size_t *n);
/* Start one write of n buffers (the stream's flush); on_write follows. */
int stp_conn_start_write(struct stp_conn *c, const uv_buf_t *bufs, size_t n);
/* Tell the layer above the filling queue goes to a write (ops->writing). */
void stp_conn_writing(struct stp_conn *c);

/* Input: application bytes were appended to rbuf; hand up what is complete. */
void stp_conn_app_in(struct stp_conn *c);
/* Input: application bytes in the net's shared read buffer (rbuf is empty);
 * hand them up in place and keep the rest in rbuf. */
void stp_conn_app_in_shared(struct stp_conn *c, char *data, size_t len);

/* Stop reading for back-pressure (stp_net_resume_paused resumes). */
void stp_conn_pause(struct stp_conn *c);
/* Hold a connection's input while the layer above waits for something (a
 * password check): it is paused and stp_net_resume_paused leaves it so;
 * stp_conn_unhold resumes it (its buffered bytes are handed up from the next
 * flush point, never from inside the caller) when nothing else holds it. */
void stp_conn_hold(struct stp_conn *c);
void stp_conn_unhold(struct stp_conn *c);

/* Whether the peer's address is a loopback one (127.0.0.0/8, ::1, or
 * IPv4-mapped 127.x); connections without a socket count as loopback. */
static inline bool stp_conn_peer_is_loopback(const struct stp_conn *c)
{
    return c->peer_loopback;
}
/* On TLS with a verified client certificate: its subject CN into buf (0);
 * otherwise a negative code (STP_ENOT_FOUND: no TLS, no verified
 * certificate or no CN; STP_EINVAL: unusable CN, see stp_tls_peer_cn). */
int stp_conn_tls_peer_cn(const struct stp_conn *c, char *buf, size_t n);

/* Close: after the queued output is written (an ERROR, a RECEIPT) or now. */
void stp_conn_close(struct stp_conn *c, enum stp_conn_closing how);

/* net.c's side of the connection table and lists (conn.c). */
void stp_conn_input_run(struct stp_net *n);
void stp_conn_reap(struct stp_net *n);
void stp_conn_flush_dirty(struct stp_net *n);

uint64_t stp_now_ms(const struct stp_conn *c);

/* The layers (stream_tcp.c, stream_tls.c, framing_raw.c, framing_ws.c). */
extern const struct stp_stream_ops stp_stream_tcp;
extern const struct stp_stream_ops stp_stream_tls;
extern const struct stp_framing_ops stp_framing_raw;
extern const struct stp_framing_ops stp_framing_ws;
/* Set up the layer's state on a new connection (0 or a negative code). */
int stp_stream_tls_init(struct stp_conn *c);
int stp_framing_ws_init(struct stp_conn *c);

#endif
