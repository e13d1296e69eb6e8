/*
 * nats_api.h - the boundary between the broker and its NATS module.
 *
 * Everything that touches libnats lives in the shared module
 * stampede-nats.so (src/cluster/nats_module.c), which the broker loads with
 * dlopen only when --cluster is given: a single node neither starts nor
 * links anything of NATS. The module exports one symbol,
 * STP_NATS_API_SYMBOL, a table of the functions below; the broker checks
 * its version before it uses anything else.
 *
 * Threads (libnats runs its own: a reader and flusher per connection, a
 * timer thread, and one message-delivery thread for every subscription,
 * so messages reach on_msg in the order the server sent them):
 *   - open, publish, js_setup, subscribe, unsubscribe, flush,
 *     close: the broker's cluster thread only (one caller at a time; libnats locks internally
 * anyway);
 *   - counts: any thread;
 *   - hooks->on_msg: the delivery thread, one message at a time; the
 *     message is valid only during the call;
 *   - hooks->on_state: libnats's callback thread (or open's caller, for a
 *     connection made at once); url has no credentials.
 * Nothing here ever blocks for a server that is away: open connects in the
 * background and reconnects forever; publish buffers up to the
 * reconnect buffer while disconnected and then fails (the caller counts
 * the drop); a publish while connected may wait for the socket when the
 * connection's buffer is full (back-pressure on the cluster thread only).
 */
#ifndef STP_CLUSTER_NATS_API_H
#define STP_CLUSTER_NATS_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STP_NATS_API_VERSION 4
#define STP_NATS_API_SYMBOL "stp_nats_api_v4"
#define STP_NATS_MODULE "stampede-nats.so"

struct stp_nats; /* one NATS connection, opaque */

enum stp_nats_state {
    STP_NATS_CONNECTED = 1,    /* first connection made */
    STP_NATS_DISCONNECTED = 2, /* lost; reconnecting in the background */
    STP_NATS_RECONNECTED = 3,  /* back; subscriptions were re-sent */
    STP_NATS_CLOSED = 4,       /* gone for good (only after close) */
};

/* One message from NATS, valid only during on_msg. status: a NATS status
 * message's code (e.g. 408 when a JetStream pull request expired, 503 no
 * responders), 0 for a plain message; pending: its Nats-Pending-Messages
 * header (messages a pull request will no longer bring), -1 when absent. */
struct stp_nats_msg {
    const char *subject;
    const char *reply; /* NULL: none */
    const void *data;
    size_t len;
    int status;
    long pending;
};

/* A JetStream stream and one durable pull consumer of it (js_setup). */
struct stp_nats_js {
    const char *stream;      /* e.g. "STP_QUEUES" */
    const char *subjects;    /* the stream's one subject filter, e.g. "stp.q.>" */
    int64_t max_per_subject; /* messages per subject; -1: no bound */
    int32_t max_msg_size;    /* bytes; -1: the server's */
    int64_t dup_window_ms;   /* Nats-Msg-Id de-duplication window; 0: the server's */
    const char *consumer;    /* durable name */
    const char *filter;      /* its subject */
    int64_t ack_wait_ms;
};

struct stp_nats_hooks {
    void *ctx;
    void (*on_msg)(void *ctx, const struct stp_nats_msg *m);
    /* max_payload: the connected server's largest message payload (0: not
     * connected). */
    void (*on_state)(void *ctx, enum stp_nats_state state, const char *url, int64_t max_payload);
    /* libnats reported an asynchronous error (a slow consumer: the server
     * or the library dropped messages for us). */
    void (*on_error)(void *ctx, const char *text);
};

struct stp_nats_counts {
    uint64_t in_msgs, in_bytes, out_msgs, out_bytes, reconnects;
};

struct stp_nats_api {
    int version; /* STP_NATS_API_VERSION */
    /* Start connecting to urls[0..n) (NATS URLs, credentials inside them
     * allowed) as client `name`; tls_ca: PEM CAs for tls:// servers (NULL:
     * the system's), and with one URL its host must match the server's
     * certificate. 0, or -1 with a one-line reason in err. */
    int (*open)(struct stp_nats **out, const char *const *urls, size_t n, const char *name,
                const char *tls_ca, const struct stp_nats_hooks *hooks, char *err, size_t errlen);
    /* Publish data[0, len) on subject with a reply subject (NULL: none)
     * and, when msg_id is not NULL, the header Nats-Msg-Id: msg_id
     * (JetStream drops a second message with the same id). 0, or -1 (not
     * buffered: dropped). */
    int (*publish)(struct stp_nats *n, const char *subject, const char *reply, const char *msg_id,
                   const void *data, size_t len);
    /* Make (or update to this configuration) the stream and the durable
     * consumer of js (no consumer when js->consumer is NULL). Waits for JetStream's answers, at
     * most timeout_ms each: the cluster thread only, and only while connected. 0, or -1 with a
     * one-line reason in err. */
    int (*js_setup)(struct stp_nats *n, const struct stp_nats_js *js, int timeout_ms, char *err,
                    size_t errlen);
    /* Subscribe to subject (NATS wildcards allowed); *sub is the handle for
     * unsubscribe. 0 or -1. */
    int (*subscribe)(struct stp_nats *n, const char *subject, void **sub);
    void (*unsubscribe)(struct stp_nats *n, void *sub);
    /* A round trip to the server (PING/PONG): everything sent before,
     * subscriptions included, has been processed by it. Waits at most
     * timeout_ms; returns at once with -1 while disconnected. 0 or -1. */
    int (*flush)(struct stp_nats *n, int timeout_ms);
    void (*counts)(struct stp_nats *n, struct stp_nats_counts *out);
    /* The largest message payload the connected server takes (its
     * max_payload), 0 while not connected. Any thread. */
    int64_t (*max_payload)(struct stp_nats *n);
    /* Close the connection and wait (bounded) until no libnats thread will
     * call a hook again; frees n. */
    void (*close)(struct stp_nats *n);
};

#endif
