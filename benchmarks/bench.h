/*
 * bench.h - the running generator: one run (shared), its worker threads and
 * their connections.
 *
 * Thread contract:
 *   - The main thread builds everything before starting the workers and frees
 *     it after joining them. While they run it only reads the atomic counters
 *     and writes the phase fields (release/acquire, see struct stp_bench_run).
 *   - A worker thread owns its uv loop and its connections: every non-atomic
 *     field of a connection is touched only by that thread.
 *   - Counters the main thread shows while the run goes are _Atomic with one
 *     writer (the owning worker); relaxed loads and stores are enough because
 *     they are only displayed or compared once the writers stopped (COUNT_ADD).
 */
#ifndef STAMPEDE_BENCH_BENCH_H
#define STAMPEDE_BENCH_BENCH_H

#include "lathist.h"
#include "options.h"
#include "pacer.h"
#include "seqtrack.h"
#include "transport.h"

#include "stampede/buf.h"
#include "stampede/stomp.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Single-writer counter bump: relaxed is enough, see the top of this file. */
#define COUNT_ADD(c, n)                                                                            \
    atomic_store_explicit(&(c), atomic_load_explicit(&(c), memory_order_relaxed) + (n),            \
                          memory_order_relaxed)
#define COUNT_GET(c) atomic_load_explicit(&(c), memory_order_relaxed)

/* Header that carries "run:producer:seq:intended" in fixed-width hex. */
#define STP_BENCH_HDR "stampede-bench"
#define STP_BENCH_HDR_VALUE_LEN (8 + 1 + 8 + 1 + 16 + 1 + 16)

/* ROLE_PATTERNS: holds up to STP_BENCH_PATTERNS_PER_CONN of --idle-patterns
 * (index i: patterns i * that .. on); never gets a message. */
enum stp_bench_role { ROLE_PRODUCER, ROLE_CONSUMER, ROLE_IDLE, ROLE_PATTERNS };
#define STP_BENCH_PATTERNS_PER_CONN 1000 /* Stampede's default --max-subscriptions */

enum stp_bench_state {
    CONN_CONNECTING,   /* TCP connect in progress */
    CONN_HANDSHAKE,    /* transport handshake */
    CONN_CONNECT_SENT, /* waiting for CONNECTED */
    CONN_SUBSCRIBING,  /* waiting for the SUBSCRIBE receipt */
    CONN_READY,
    CONN_CLOSING,
    CONN_CLOSED,
};

struct stp_bench_thread;
struct stp_tls_config;
struct stp_tls_rng;

/* stp_buf_reserve(b, n), except that the buffer's first allocation holds at
 * least `first` bytes. `first` is a power of two >= 256, so the sizes are the
 * ones doubling from `first` gives (stp_buf doubles from 256). The check is
 * inline: it runs for every frame. 0 or STP_ENOMEM. */
static inline int stp_bench_buf_reserve(struct stp_buf *b, size_t n, size_t first)
{
    if (b->cap - b->len >= n)
        return 0;
    return stp_buf_reserve(b, b->cap || n > first ? n : first);
}

struct stp_bench_producer {
    unsigned id, dest;
    struct stp_pacer pacer;
    uint64_t seq;
    /* frame templates: [0] plain, [1] with a receipt header */
    char *tmpl[2];
    size_t tmpl_len[2];
    size_t hdr_off[2];   /* offset of the stampede-bench value */
    size_t receipt_off;  /* offset of the receipt value in tmpl[1] */
    size_t dedup_off[2]; /* --dedup-id: offset of the id's 16 hex digits (0: none) */
    size_t part_off[2];  /* --selector-split: offset of the part value (0: none) */
    unsigned parts;      /* --selector-split: consumers of the destination */
    uint64_t *rcpt_ring; /* intended times of outstanding receipts, in order */
    uint64_t rcpt_head, rcpt_tail;
    uint64_t receipted;              /* SENDs up to this seq (excluded) are covered by a RECEIPT */
    bool rcpt_kick;                  /* a RECEIPT arrived in this read: use the window it opened */
    _Atomic uint64_t sent;           /* SENDs generated (seq of the next one) */
    _Atomic uint64_t written;        /* SENDs whose bytes reached the socket */
    uint64_t fill_msgs, flight_msgs; /* SENDs in the buffer being filled / written */
    _Atomic uint64_t sent_measured;  /* SENDs whose intended time is in the window */
    _Atomic uint64_t receipts;       /* RECEIPTs received */
    _Atomic uint64_t receipts_asked; /* SENDs generated with a receipt header */
    _Atomic int done;                /* stopped and everything written */
};

struct stp_bench_consumer {
    unsigned id, dest;
    struct stp_seqtrack *track; /* own (topic) or the destination's (queue) */
    struct stp_seqtrack own;
    struct stp_seqorder order;
    struct stp_seqstats st;
    _Atomic uint64_t received;           /* mirrors st.received for the main thread */
    _Atomic uint64_t unique;             /* mirrors st.unique */
    _Atomic uint64_t delivered_measured; /* arrivals inside the window */
    uint64_t foreign;                    /* messages of another run (left in a queue) */
    char ack_id[256];                    /* client mode: last ack id of this read */
    size_t ack_id_len;
};

/* Where connections dial: --url, or --sub-url for subscribers (see
 * stp_bench_endpoint_of). Filled by the main thread before the workers start,
 * read-only while they run. */
struct stp_bench_endpoint {
    const struct stp_bench_url *url;   /* into the run's cfg */
    struct sockaddr_storage addr;      /* resolved once */
    struct stp_tls_config *tls_config; /* TLS transports: the client profile (owned) */
};

struct stp_bench_conn {
    struct stp_bench_thread *t;
    const struct stp_bench_endpoint *ep; /* the run's: what this connection dials */
    enum stp_bench_role role;
    enum stp_bench_state state;
    unsigned index; /* within its role */
    uv_tcp_t tcp;
    bool tcp_inited;
    uv_connect_t creq;
    void *transport_state;
    enum stp_version version;
    struct stp_parser parser;
    bool parser_ok;
    struct stp_buf in;     /* unparsed input; reads land at in.data + in.len */
    struct stp_buf out[2]; /* out[fill] collects frames; the other is in flight */
    int fill;
    bool writing;
    uv_write_t wreq;
    uint64_t hb_send_ns, hb_last_sent; /* idle: our heart-beat period and last beat */
    uint64_t heartbeats_in;
    bool ready_counted;
    union {
        struct stp_bench_producer p;
        struct stp_bench_consumer c;
    } u;
};

struct stp_bench_dest {
    char name[96];
    unsigned nproducers; /* producers p with p % destinations == this index */
    unsigned nconsumers;
    struct stp_seqtrack shared; /* queues: every consumer of the destination */
    /* the destination's connections, for the unpaced producers' window */
    struct stp_bench_conn **pconns, **cconns;
    unsigned npconns, ncconns;
};

struct stp_bench_run;

struct stp_bench_thread {
    struct stp_bench_run *run;
    unsigned index;
    uv_thread_t tid;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t house; /* 10 ms: phases, deadlines, heart-beats */
    uv_poll_t pace_poll;
    int pace_fd; /* timerfd for paced producers, -1 when none */
    uint64_t pace_period_ns;
    bool started, stopping;
    struct stp_bench_conn **conns;
    unsigned nconns;
    struct stp_lathist lat;      /* delivery latency, window only */
    struct stp_lathist rcpt_lat; /* SEND -> RECEIPT latency */
    _Atomic uint64_t bytes_out, bytes_in;
    struct stp_tls_rng *tls_rng; /* TLS transports: this thread's random generator */
};

struct stp_bench_run {
    struct stp_bench_config cfg;
    uint32_t run_id;
    /* ep[0]: --url (producers, idle connections); ep[1]: --sub-url
     * (consumers, pattern holders) when given, else unused (nep == 1) */
    struct stp_bench_endpoint ep[2];
    unsigned nep;
    bool any_tls; /* some endpoint is TLS: the threads need a random generator */
    unsigned nthreads;
    struct stp_bench_thread *threads;
    struct stp_bench_dest *dests;
    struct stp_bench_conn **producers, **consumers, **idles;
    unsigned total_conns;
    _Atomic unsigned ready;       /* connections through CONNECTED (and SUBSCRIBE receipt) */
    _Atomic unsigned closed_idle; /* idle connections the broker closed */
    /* Phase: the main thread stores the times, then started=1 with release;
     * workers load started with acquire before reading the times. */
    uint64_t t_start, t_warm_end, t_measure_end;
    _Atomic int started;
    _Atomic int stop; /* set by main: close everything and leave the loop */
    _Atomic int failed;
    char fail_msg[512]; /* written once by whoever set failed 0 -> 1 */
};

/* --- conn.c --- */
int stp_bench_conn_start(struct stp_bench_conn *c);
/* Transport is up: send CONNECT. */
void stp_bench_conn_ready(struct stp_bench_conn *c);
/* Plaintext bytes are at c->in.data + c->in.len (nread of them): parse them. */
int stp_bench_conn_input(struct stp_bench_conn *c, size_t nread);
/* Copy plaintext from a transport's buffer into the input and parse it. */
int stp_bench_conn_push_input(struct stp_bench_conn *c, const void *p, size_t n);
/* Room for n more bytes in the fill buffer; NULL on allocation failure. */
char *stp_bench_conn_out_reserve(struct stp_bench_conn *c, size_t n);
int stp_bench_conn_append(struct stp_bench_conn *c, const void *p, size_t n);
/* Start a write of the fill buffer when none is in flight. */
void stp_bench_conn_flush(struct stp_bench_conn *c);
size_t stp_bench_conn_pending(const struct stp_bench_conn *c);
void stp_bench_conn_close(struct stp_bench_conn *c);
void stp_bench_conn_free(struct stp_bench_conn *c);
void stp_bench_fail(struct stp_bench_run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* --- producer.c --- */
int stp_bench_producer_init(struct stp_bench_conn *c, struct stp_bench_run *r);
void stp_bench_producer_free(struct stp_bench_conn *c);
/* Generate what is due (and fits), then flush. */
void stp_bench_producer_pump(struct stp_bench_conn *c, uint64_t now);
void stp_bench_producer_on_receipt(struct stp_bench_conn *c, const struct stp_frame *f,
                                   uint64_t now);
/* How many more SENDs an unpaced producer that asks for receipts may generate:
 * cfg->window (at least cfg->receipts) minus those of its first `seq` not yet
 * covered by a RECEIPT (`receipted` is one past the last covered seq).
 * UINT64_MAX when paced, with no window or without receipts. */
uint64_t stp_bench_receipt_room(const struct stp_bench_config *cfg, uint64_t seq,
                                uint64_t receipted);

/* --- consumer.c --- */
int stp_bench_consumer_init(struct stp_bench_conn *c, struct stp_bench_run *r);
void stp_bench_consumer_free(struct stp_bench_conn *c);
int stp_bench_consumer_subscribe(struct stp_bench_conn *c);
void stp_bench_consumer_on_message(struct stp_bench_conn *c, const struct stp_frame *f,
                                   uint64_t now);
/* End of a read: cumulative ACK in client mode. */
void stp_bench_consumer_read_done(struct stp_bench_conn *c);

/* --- worker.c --- */
int stp_bench_thread_init(struct stp_bench_thread *t);
int stp_bench_thread_spawn(struct stp_bench_thread *t);
void stp_bench_thread_wake(struct stp_bench_thread *t);
/* Deliveries arrived: let this thread's unpaced producers use their window. */
void stp_bench_thread_kick(struct stp_bench_thread *t);
/* Begin the measured part once the main thread published the start. */
void stp_bench_thread_check_start(struct stp_bench_thread *t);
void stp_bench_thread_fini(struct stp_bench_thread *t);

/* --- hex.c helpers shared by producer and consumer --- */
void stp_bench_hex(char *dst, uint64_t v, unsigned digits);
int stp_bench_unhex(const char *p, unsigned digits, uint64_t *out);

#endif
