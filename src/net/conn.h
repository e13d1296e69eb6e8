/*
 * conn.h - a client connection: socket, read buffer, output queue.
 *
 * A connection belongs to the worker that accepted it; nothing here is
 * touched from another thread. Output is queued as segments (bytes in the
 * queue's own buffer, or a reference to a shared message tail) and flushed
 * once per loop iteration with one writev (uv_write) per connection. While a
 * write is in flight, new output fills the other of two queues.
 *
 * Lifetime: stp_conn_close() starts closing; the memory is freed in the last
 * handle's close callback, never inside a callback of the connection itself.
 */
#ifndef STP_NET_CONN_H
#define STP_NET_CONN_H

#include "broker/session.h"
#include "stampede/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct stp_worker;
struct stp_msg;
struct stp_conn;

/* Tails up to this size are copied into the output buffer: a memcpy of a few
 * hundred bytes is cheaper than an atomic reference count shared by every
 * worker plus one more iovec. Larger tails are referenced, not copied. */
#define STP_COPY_TAIL_MAX 1024

struct stp_out_seg {
    uint32_t off, len;   /* bytes in the queue's buffer, when msg is NULL */
    struct stp_msg *msg; /* a reference to a shared tail */
};

struct stp_outq {
    struct stp_buf bytes;
    struct stp_out_seg *segs;
    size_t nsegs, cap;
    size_t total; /* bytes queued */
};

/* Written-out marks: reported to queue owners when a write completes. */
struct stp_wmark {
    uint64_t key;
    uint64_t tag;
    unsigned owner;
};

/* The transport under the session (plain TCP now; TLS and WebSocket later). */
struct stp_transport_ops {
    const char *name;
    /* Bytes read from the socket. */
    int (*on_read)(struct stp_conn *c, char *data, size_t len);
    /* Turn the filled output queue into socket writes. */
    int (*flush)(struct stp_conn *c);
};

enum stp_conn_closing { STP_OPEN = 0, STP_CLOSE_AFTER_FLUSH, STP_CLOSE_NOW };

struct stp_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* login timeout, heart-beats, lingering close */
    uv_write_t wreq;
    uv_shutdown_t sreq;
    struct stp_worker *w;
    const struct stp_transport_ops *ops;
    uint32_t slot, gen;
    unsigned listener;
    struct stp_buf rbuf;
    struct stp_outq out[2];
    int fill; /* index of the queue being filled */
    bool writing;
    uv_buf_t *iov;
    size_t iov_cap;
    struct stp_wmark *wmarks; /* for the write in flight */
    size_t nwmarks, wmarks_cap;
    struct stp_conn *dirty_next;
    bool dirty;
    struct stp_conn *paused_next;
    bool paused; /* reading stopped for back-pressure */
    unsigned throttled; /* queues over their bound that paused this publisher */
    bool read_eof;
    enum stp_conn_closing closing;
    bool shut;
    bool torn_down;
    struct stp_conn *reap_next;
    struct stp_conn *all_next, *all_prev; /* the worker's list of connections */
    int handles; /* open uv handles; freed at 0 */
    char peer[64];
    struct stp_session s;
};

/* Accept a new connection on listener `lidx` of worker w. */
void stp_conn_accept(struct stp_worker *w, uv_stream_t *server, unsigned lidx);

/* Output (on the connection's worker). */
int stp_conn_write(struct stp_conn *c, const void *p, size_t n);
char *stp_conn_reserve(struct stp_conn *c, size_t n); /* then stp_conn_commit */
void stp_conn_commit(struct stp_conn *c, size_t n);
int stp_conn_write_tail(struct stp_conn *c, struct stp_msg *m);
size_t stp_conn_pending(const struct stp_conn *c);
void stp_conn_mark_dirty(struct stp_conn *c);
/* Flush every dirty connection of w: once per loop iteration. */
void stp_conn_flush_dirty(struct stp_worker *w);

/* Stop or resume reading for back-pressure. */
void stp_conn_pause(struct stp_conn *c);
void stp_conn_resume_paused(struct stp_worker *w);

/* Close: after the queued output is written (an ERROR, a RECEIPT) or now. */
void stp_conn_close(struct stp_conn *c, enum stp_conn_closing how);

/* Shutting down: close every connection of w at once. */
void stp_conn_close_all_now(struct stp_worker *w);
/* Finish the closes requested since the last call: once per loop iteration. */
void stp_conn_reap(struct stp_worker *w);

uint64_t stp_now_ms(const struct stp_conn *c);

#endif
