/*
 * session.h - the STOMP session of one connection.
 *
 * The session lives in the connection's memory (stp_conn_up: the net layer
 * allocates and frees it with the connection) and is driven by the net layer
 * through stp_session_ops (net/net.h). Owned by the connection's worker;
 * every function here runs on that thread. The session does not know its
 * transport: it reads frames from bytes handed to stp_session_feed and
 * writes frames through the connection's output queue (net/conn.h).
 */
#ifndef STP_BROKER_SESSION_H
#define STP_BROKER_SESSION_H

#include "broker/unacked.h"
#include "net/conn.h"
#include "stampede/buf.h"
#include "stampede/deque.h"
#include "stampede/map.h"
#include "stampede/stomp.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct stp_msg;

enum stp_ack_mode { STP_ACK_AUTO, STP_ACK_CLIENT, STP_ACK_CLIENT_INDIVIDUAL };

/* A delivery held back: until its subscription's RECEIPT is written, or
 * (topic, client acks) until the prefetch has room. */
struct stp_held {
    struct stp_msg *msg;
    uint64_t tag;
    bool redelivered;
    uint16_t nacks; /* topic, client acks: times NACKed on this subscription */
};

STP_DEQUE_DEFINE(stp_backlog, struct stp_held)

/* A subscription's local record, on the connection's worker. */
struct stp_sub {
    struct stp_conn *conn;
    uint64_t key; /* unique in the broker: names the consumer at the owner */
    uint32_t num; /* connection-local number, first part of 1.2 ack ids */
    char *id;     /* the SUBSCRIBE frame's id */
    size_t id_len;
    char *dest;
    size_t dest_len;
    bool is_queue;
    bool is_pattern; /* a topic pattern (a word is `*` or `#`): owner is its home worker */
    enum stp_ack_mode ack_mode;
    uint32_t prefetch;
    unsigned owner;
    struct stp_sub *next; /* in the session's list */
    /* topic: in the worker's local list of subscribers of dest */
    struct stp_ltopic *lt;
    struct stp_sub *tnext, *tprev;
    /* queue, client acks: deliveries not acked yet, oldest first */
    struct stp_unacked_list ua;
    uint64_t tag_queued;   /* highest tag put in the output queue */
    uint64_t tag_reported; /* highest tag reported written to the owner */
    uint64_t topic_tag;    /* topic: numbers client-ack deliveries */
    /* topic, client acks: deliveries waiting for room under the prefetch
     * (ua.live < prefetch), oldest first, a NACKed one back at the head;
     * they hold message references, and backlog_bytes of them count toward
     * --max-pending-output (conn->held_above): a subscriber that never acks
     * is cut as a slow consumer. */
    struct stp_backlog backlog;
    size_t backlog_bytes;
    /* SUBSCRIBE had a receipt: deliveries wait until the RECEIPT is written,
     * so a client sees RECEIPT before the subscription's first MESSAGE. */
    bool holding;
    struct stp_held *held;
    size_t nheld, cap_held;
    /* "MESSAGE\nsubscription:<id>\n" prebuilt for the hot path */
    char *hdr;
    size_t hdr_len;
    /* SUBSCRIBE's selector, compiled (topics; NULL: every message). */
    struct stp_selector *sel;
    /* dest is a durable topic subscription's queue (durable_sub.c). */
    bool durable;
};

/* The worker's local subscribers of one topic or one pattern. */
struct stp_ltopic {
    char *name;
    size_t name_len;
    struct stp_sub *head;
    size_t count;
};

struct stp_fence_wait {
    uint64_t id;
    unsigned remaining;
    char *receipt;        /* receipt-id to send, NULL for none */
    struct stp_buf error; /* an ERROR frame to send instead, then close */
    bool disconnect;
    uint64_t release_sub; /* key of a subscription held until this RECEIPT */
};

STP_DEQUE_DEFINE(stp_fence_deque, struct stp_fence_wait)

/* AUTH: CONNECT arrived, its answer waits for a password check or the
 * failed-login backoff (session_connect.c); input is held meanwhile. */
enum stp_session_state { STP_SESS_AWAIT_CONNECT, STP_SESS_AUTH, STP_SESS_OPEN, STP_SESS_CLOSING };

/* A CONNECT being answered (session_connect.c). */
struct stp_pending_connect {
    enum stp_version version;
    uint64_t cx, cy; /* the client's heart-beat header */
    char *receipt;   /* its receipt header, for the ERROR's receipt-id */
    size_t receipt_len;
    char *login; /* who it claims (or is, once decided) to be */
    size_t login_len;
    char *sent_login; /* the login header as sent (at most 256 bytes), or NULL */
    size_t sent_login_len;
    const char *why;        /* for the log line of a refusal (static text) */
    struct stp_verify *job; /* a password check in flight (it owns itself) */
    uint64_t answer_at_ms;  /* not before: the failed-login backoff */
    bool decided, ok;
};

/* Written-out marks: the queue tags a write carries, reported to the queues'
 * owners when it completes (their consumers' credit). */
struct stp_wmark {
    uint64_t key;
    uint64_t tag;
    unsigned owner;
};

struct stp_session {
    enum stp_session_state state;
    enum stp_version version;
    struct stp_parser parser;
    struct stp_sub *subs;
    size_t nsubs;               /* bounded by --max-subscriptions */
    struct stp_map subs_by_id;  /* SUBSCRIBE id -> struct stp_sub */
    struct stp_map subs_by_num; /* connection-local number (ack ids) -> struct stp_sub */
    uint32_t next_sub_num;
    struct stp_map txns; /* transaction name -> struct stp_txn */
    uint64_t *touched;   /* bitmap of owners sent to since the last fence */
    bool touched_any;
    struct stp_fence_deque fences; /* in id order, oldest first */
    uint64_t next_fence_id;
    /* A persistent SEND of the frame being handled was refused on the spot
     * (its queue is on this worker): the fence from lost_from on, issued
     * for this frame, becomes the ERROR; with none, the ERROR follows the
     * frame (session_send.c). */
    uint64_t lost_from;
    int lost_err;
    bool in_frame;
    uint64_t hb_send_ms, hb_recv_ms;
    struct stp_wmark *wmarks; /* for the write in flight */
    size_t nwmarks, wmarks_cap;
    struct stp_pending_connect pending;
    char *login; /* who the client is once CONNECTED (NULL: no login given, no users) */
    size_t login_len;
    /* ACL decisions by destination (session_acl.c): key bytes are in the
     * value (struct stp_perm_entry), bounded in count. */
    struct stp_map perms;
    struct perm_entry *perm_last; /* the entry last used (in perms) */
    /* Temp queues: "/temp-queue/NAME" -> its private /reply-queue/ name
     * (session_temp.c), at most --max-subscriptions of them. */
    struct stp_map temps;
    /* CONNECT's client-id (ActiveMQ's durable subscriptions), or NULL. */
    char *client_id;
};

/* What the net layer calls (net/net.h): open, input, eof, writing, written,
 * error, teardown, http. */
extern const struct stp_conn_ops stp_session_ops;

static inline struct stp_session *stp_sess(struct stp_conn *c)
{
    return (struct stp_session *)stp_conn_up(c);
}

/* Start a session on a new connection (the login timeout runs). */
int stp_session_init(struct stp_conn *c);
/* Bytes from the transport (STOMP stream). Consumes what it can; returns 0,
 * or a negative code when the connection must close (the ERROR is queued). */
int stp_session_feed(struct stp_conn *c, char *data, size_t len, size_t *consumed);
/* The connection is going away: drop subscriptions, abort transactions. */
void stp_session_teardown(struct stp_conn *c);
/* The client half-closed (EOF): answer what it asked for - RECEIPTs still
 * waiting for their fences, output already queued - then close. */
void stp_session_on_eof(struct stp_conn *c);
/* A fence this session posted was answered. */
void stp_session_fence_ok(struct stp_conn *c, uint64_t fence_id);
/* A fence could not be kept (the journal lost records it covers, err):
 * ERROR with its receipt-id after the receipts before it, then close. */
void stp_session_fence_fail(struct stp_conn *c, uint64_t fence_id, int err);
/* A persistent SEND of this connection was not stored (err); fence: the
 * first fence that covers it. That fence (when it is pending) becomes the
 * ERROR, or else the ERROR follows the pending ones; then close. */
void stp_session_not_stored(struct stp_conn *c, int err, uint64_t fence);
/* Queue an ERROR frame (message + body + receipt-id) and close after it. */
void stp_session_error(struct stp_conn *c, const char *message, const char *detail,
                       const struct stp_slice *receipt);
/* Timer tick for heart-beats and the login timeout. */
void stp_session_tick(struct stp_conn *c, uint64_t now_ms);

/* Output goes to a write: note the queue tags it carries (stp_wmark). */
void stp_session_writing(struct stp_conn *c);
/* That write completed (ok) or failed: report the tags to their owners. */
void stp_session_written(struct stp_conn *c, bool ok);

/* Write the deliveries held for the subscription with this key. */
void stp_session_release_held(struct stp_conn *c, uint64_t sub_key);

/* Deliveries, on the subscriber's worker. */
void stp_session_deliver_topic(struct stp_sub *sub, struct stp_msg *m);
void stp_session_deliver_queue(struct stp_sub *sub, struct stp_msg *m, uint64_t tag,
                               bool redelivered);

#endif
