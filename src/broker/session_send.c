/*
 * session_send.c - SEND (building the shared message once), transactions,
 * and receipts as barriers.
 *
 * Runs on the connection's worker. A SEND builds one immutable message whose
 * tail every MESSAGE frame shares, and posts it to the destination's owner.
 * A receipt is a fence: posted to every owner this connection has sent work
 * to since the last fence; the RECEIPT is written when all answered, in the
 * order the receipts were asked for.
 */
#include "broker/broker.h"
#include "broker/dedup.h"
#include "broker/dest.h"
#include "broker/session_int.h"
#include "broker/worker.h"
#include "stampede/array.h"
#include "stampede/clock.h"
#include "stampede/error.h"
#include "stampede/msg.h"
#include "stampede/search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail_fence(struct stp_conn *c, struct stp_fence_wait *f, int err);

/* --- posting and fences --- */

void stp_session_touch(struct stp_conn *c, unsigned owner)
{
    /* With a journal, this worker's own queues may hold records a receipt
     * must wait for; with --cluster, its own topics may hold a receipt
     * until NATS has their new interest (cluster.c): then it is fenced
     * like any other owner (a post to itself is a direct call). */
    struct stp_worker *w = stp_worker_of(c);
    if (owner != w->id || stp_durable_on(&w->dur) || w->broker->cluster) {
        stp_sess(c)->touched[owner / 64] |= 1ULL << (owner % 64);
        stp_sess(c)->touched_any = true;
    }
}

void stp_session_post(struct stp_conn *c, unsigned owner, struct stp_post *cmd)
{
    struct stp_worker *w = stp_worker_of(c);
    stp_session_touch(c, owner);
    stp_post_to_conn(cmd, (uint16_t)w->id, c->slot, c->gen);
    bool publish = cmd->type == STP_WCMD_ROUTE;
    stp_worker_post(w, owner, cmd);
    /* Back-pressure is for publishers: a consumer's ACKs are what frees
     * the queues (and are bounded by its unacked deliveries), so pausing
     * it while the mailboxes are backed up would only slow the drain. */
    if (publish && stp_worker_backlogged(w))
        stp_conn_pause(c);
}

static void write_receipt(struct stp_conn *c, const char *receipt)
{
    struct stp_buf b = STP_BUF_INIT;
    stp_write_command(&b, STP_CMD_RECEIPT);
    stp_write_header_str(&b, "receipt-id", receipt, stp_sess(c)->version);
    stp_write_body(&b, (struct stp_slice){"", 0});
    stp_session_write_frame(c, STP_CMD_RECEIPT, b.data, b.len);
    stp_buf_free(&b);
}

/* Write every receipt at the head whose fence completed. */
static void release_fences(struct stp_conn *c)
{
    struct stp_session *s = stp_sess(c);
    /* After an ERROR (which closes the connection) nothing else is sent. */
    while (s->fences.count > 0 && c->closing == STP_OPEN) {
        if (stp_fence_deque_at(&s->fences, 0)->remaining > 0)
            return;
        struct stp_fence_wait f = stp_fence_deque_pop_front(&s->fences);
        if (f.error.len) {
            /* An ERROR queued behind earlier receipts: the last answer. */
            stp_session_write_frame(c, STP_CMD_ERROR, f.error.data, f.error.len);
            stp_buf_free(&f.error);
            stp_conn_close(c, STP_CLOSE_AFTER_FLUSH);
            return;
        }
        if (f.receipt)
            write_receipt(c, f.receipt);
        free(f.receipt);
        if (f.release_sub)
            stp_session_release_held(c, f.release_sub);
        if (f.disconnect) {
            stp_conn_close(c, STP_CLOSE_AFTER_FLUSH);
            return;
        }
    }
}

static int push_fence(struct stp_session *s, struct stp_fence_wait fw)
{
    return stp_fence_deque_push_back(&s->fences, fw);
}

static int fence(struct stp_conn *c, const struct stp_slice *receipt, bool disconnect,
                 uint64_t release_sub)
{
    struct stp_session *s = stp_sess(c);
    if (!receipt && !disconnect)
        return 0;
    struct stp_fence_wait fw = {
        .id = ++s->next_fence_id, .disconnect = disconnect, .release_sub = release_sub};
    if (receipt && !(fw.receipt = stp_session_strdup(*receipt)))
        return STP_ENOMEM;
    unsigned n = stp_worker_of(c)->broker_workers;
    for (unsigned o = 0; s->touched_any && o < n; o++) {
        if (!(s->touched[o / 64] & (1ULL << (o % 64))))
            continue;
        fw.remaining++;
    }
    if (push_fence(s, fw) < 0) {
        free(fw.receipt);
        return STP_ENOMEM;
    }
    if (s->lost_from && fw.id >= s->lost_from) {
        /* It covers a message refused while this frame was handled. */
        s->lost_from = 0;
        fail_fence(c, stp_fence_deque_at(&s->fences, s->fences.count - 1), s->lost_err);
        return 0;
    }
    for (unsigned o = 0; s->touched_any && o < n; o++) {
        if (!(s->touched[o / 64] & (1ULL << (o % 64))))
            continue;
        struct stp_post cmd = stp_post_fence(fw.id);
        stp_post_to_conn(&cmd, (uint16_t)stp_worker_of(c)->id, c->slot, c->gen);
        stp_worker_post(stp_worker_of(c), o, &cmd);
        s->touched[o / 64] &= ~(1ULL << (o % 64));
    }
    s->touched_any = false;
    release_fences(c);
    return 0;
}

void stp_session_queue_error(struct stp_conn *c, struct stp_buf *frame)
{
    struct stp_session *s = stp_sess(c);
    struct stp_fence_wait fw = {.id = ++s->next_fence_id, .error = *frame};
    *frame = (struct stp_buf)STP_BUF_INIT;
    if (push_fence(s, fw) < 0) {
        /* No room to wait: the ERROR goes out now. */
        stp_session_write_frame(c, STP_CMD_ERROR, fw.error.data, fw.error.len);
        stp_buf_free(&fw.error);
        stp_conn_close(c, STP_CLOSE_AFTER_FLUSH);
        return;
    }
    release_fences(c);
}

int stp_session_receipt_fence(struct stp_conn *c, const struct stp_slice *receipt, bool disconnect)
{
    return fence(c, receipt, disconnect, 0);
}

int stp_session_receipt_fence_sub(struct stp_conn *c, const struct stp_slice *receipt,
                                  uint64_t sub_key)
{
    return fence(c, receipt, false, sub_key);
}

static uint64_t fence_id_at(const void *fences, size_t i)
{
    return stp_fence_deque_at(fences, i)->id;
}

void stp_session_fence_ok(struct stp_conn *c, uint64_t fence_id)
{
    struct stp_session *s = stp_sess(c);
    /* Pending fences are in id order: a binary search, so a client that
     * pipelines thousands of receipts costs O(log n) per answer. */
    size_t lo = stp_lower_bound(s->fences.count, fence_id, fence_id_at, &s->fences);
    struct stp_fence_wait *f = lo < s->fences.count ? stp_fence_deque_at(&s->fences, lo) : NULL;
    if (f && f->id == fence_id && f->remaining > 0)
        f->remaining--;
    release_fences(c);
}

/* The body of ERROR "message not stored". */
static void not_stored_detail(char *out, size_t size, int err)
{
    switch (err) {
    case STP_ESTORE_AWAY:
        snprintf(out, size,
                 "The cluster's message store (NATS JetStream) is not reachable: the queue "
                 "message was not stored. Send it again later.");
        break;
    case STP_ESTORE_REFUSED:
        snprintf(out, size,
                 "The cluster's message store (NATS JetStream) refused the queue message (most "
                 "often: the queue is full; or the queue's name is too long for a NATS "
                 "subject); it was not stored.");
        break;
    case STP_ESTORE_TOO_BIG:
        snprintf(out, size,
                 "The queue message is larger than the cluster's NATS server takes (its "
                 "max_payload); it was not stored.");
        break;
    default:
        snprintf(out, size,
                 "The broker could not write a persistent message to its journal (%s); it was "
                 "not stored. Send it again later.",
                 stp_strerror(err));
    }
}

/* Turn fence f into the ERROR for a message the journal lost: the receipts
 * before it go out, then the ERROR (with f's receipt-id), then the
 * connection closes (no later receipt lies). Once per session. */
static void fail_fence(struct stp_conn *c, struct stp_fence_wait *f, int err)
{
    struct stp_session *s = stp_sess(c);
    f->remaining = 0;
    if (s->state != STP_SESS_CLOSING && !f->error.len) {
        char detail[256];
        not_stored_detail(detail, sizeof(detail), err);
        struct stp_slice rs = {f->receipt, f->receipt ? strlen(f->receipt) : 0};
        stp_session_build_error(c, &f->error, "message not stored", detail, f->receipt ? &rs : NULL,
                                NULL, NULL);
        s->state = STP_SESS_CLOSING;
    }
    free(f->receipt);
    f->receipt = NULL;
    f->disconnect = false;
    release_fences(c);
}

void stp_session_fence_fail(struct stp_conn *c, uint64_t fence_id, int err)
{
    struct stp_session *s = stp_sess(c);
    size_t lo = stp_lower_bound(s->fences.count, fence_id, fence_id_at, &s->fences);
    struct stp_fence_wait *f = lo < s->fences.count ? stp_fence_deque_at(&s->fences, lo) : NULL;
    if (f && f->id == fence_id)
        fail_fence(c, f, err);
}

void stp_session_not_stored(struct stp_conn *c, int err, uint64_t fence)
{
    struct stp_session *s = stp_sess(c);
    /* The first pending fence issued after the SEND covers it: it must not
     * become a RECEIPT, also when the session is already closing (e.g. a
     * bad frame right behind the SEND: its ERROR waits for the receipts
     * before it, and this one is not one of them). */
    size_t lo = stp_lower_bound(s->fences.count, fence, fence_id_at, &s->fences);
    if (lo < s->fences.count) {
        fail_fence(c, stp_fence_deque_at(&s->fences, lo), err);
        return;
    }
    if (s->state == STP_SESS_CLOSING)
        return; /* already answered (a fence over the message failed) */
    if (s->in_frame) {
        /* Refused on the spot, while its frame is handled: the frame's
         * receipt fence (if it asks for one) is yet to come. */
        s->lost_from = fence;
        s->lost_err = err;
        return;
    }
    char detail[256];
    not_stored_detail(detail, sizeof(detail), err);
    stp_session_error_x(c, "message not stored", detail, NULL, NULL, NULL, true);
}

void stp_session_frame_done(struct stp_conn *c)
{
    struct stp_session *s = stp_sess(c);
    if (!s->lost_from)
        return;
    s->lost_from = 0;
    stp_session_not_stored(c, s->lost_err, UINT64_MAX);
}

/* --- building a message --- */

/* The headers of a SEND the broker reads, found in one pass over the frame
 * (the first of each name wins). */
struct send_headers {
    const struct stp_slice *dest, *content_type, *receipt, *transaction;
    const struct stp_slice *reply_to; /* a user header (forwarded), checked by the ACL */
    /* User headers (forwarded) the broker also reads: persistent:true
     * (journaled on a queue with --data-dir), RabbitMQ's expiration (ms from
     * now) and ActiveMQ's expires (epoch ms). */
    const struct stp_slice *persistent, *expiration, *expires;
    /* reply-to:/temp-queue/NAME is forwarded as the private /reply-queue/
     * name behind it (session_temp.c); len 0: forwarded as sent. */
    struct stp_slice reply_to_real;
    /* dedup-id (forwarded too): with --dedup-window, a SEND whose id its
     * destination saw within the window is dropped at the owner. */
    const struct stp_slice *dedup_id;
};

enum hdr_kind { HDR_USER, HDR_DEST, HDR_CTYPE, HDR_RECEIPT, HDR_TXN, HDR_CONTROL };

#define NAME_IS(n, lit) ((n).len == sizeof(lit) - 1 && memcmp((n).p, lit, sizeof(lit) - 1) == 0)

/* Headers a client sets that belong to the SEND frame, not to the message,
 * sorted by length so most user headers are rejected by one compare. */
static enum hdr_kind classify(struct stp_slice n)
{
    switch (n.len) {
    case 3:
        return NAME_IS(n, "ack") ? HDR_CONTROL : HDR_USER;
    case 7:
        return NAME_IS(n, "receipt") ? HDR_RECEIPT : HDR_USER;
    case 10:
        return NAME_IS(n, "message-id") ? HDR_CONTROL : HDR_USER;
    case 11:
        if (NAME_IS(n, "destination"))
            return HDR_DEST;
        if (NAME_IS(n, "transaction"))
            return HDR_TXN;
        return NAME_IS(n, "redelivered") ? HDR_CONTROL : HDR_USER;
    case 12:
        if (NAME_IS(n, "content-type"))
            return HDR_CTYPE;
        return NAME_IS(n, "subscription") ? HDR_CONTROL : HDR_USER;
    case 14:
        return NAME_IS(n, "content-length") ? HDR_CONTROL : HDR_USER;
    default:
        return HDR_USER;
    }
}

/* The first of each user header the broker reads. */
static void find_user_header(struct send_headers *h, struct stp_slice n, const struct stp_slice *v)
{
    const struct stp_slice **slot = NULL;
    if (n.len == 7 && NAME_IS(n, "expires"))
        slot = &h->expires;
    else if (n.len == 8 && NAME_IS(n, "reply-to"))
        slot = &h->reply_to;
    else if (n.len == 8 && NAME_IS(n, "dedup-id"))
        slot = &h->dedup_id;
    else if (n.len == 10 && NAME_IS(n, "persistent"))
        slot = &h->persistent;
    else if (n.len == 10 && NAME_IS(n, "expiration"))
        slot = &h->expiration;
    if (slot && !*slot)
        *slot = v;
}

static void find_send_headers(const struct stp_frame *f, struct send_headers *h)
{
    *h = (struct send_headers){0};
    for (size_t i = 0; i < f->nheaders; i++) {
        const struct stp_slice *v = &f->headers[i].value;
        switch (classify(f->headers[i].name)) {
        case HDR_DEST:
            h->dest = h->dest ? h->dest : v;
            break;
        case HDR_CTYPE:
            h->content_type = h->content_type ? h->content_type : v;
            break;
        case HDR_RECEIPT:
            h->receipt = h->receipt ? h->receipt : v;
            break;
        case HDR_TXN:
            h->transaction = h->transaction ? h->transaction : v;
            break;
        case HDR_USER:
            find_user_header(h, f->headers[i].name, v);
            break;
        default:
            break;
        }
    }
}

/* Append s escaped the 1.2 way; *changed is set when escaping changed it
 * (then 1.0/1.1 subscribers need the header re-rendered). */
static int escape_track(struct stp_buf *b, struct stp_slice s, bool *changed)
{
    size_t before = b->len;
    int rc = stp_escape_append(b, s, STP_V12);
    if (b->len - before != s.len)
        *changed = true;
    return rc;
}

static int header_line(struct stp_buf *b, struct stp_slice name, struct stp_slice value,
                       bool *changed)
{
    int rc = escape_track(b, name, changed);
    rc |= stp_buf_append(b, ":", 1);
    rc |= escape_track(b, value, changed);
    rc |= stp_buf_append(b, "\n", 1);
    return rc;
}

#define LIT(s) ((struct stp_slice){s, sizeof(s) - 1})

/* Where the dedup-id's value landed in the tail (escaped), when it is kept. */
struct dedup_span {
    size_t off, len;
};

/* Serialize the shared tail's headers (everything before the blank line);
 * *dd gets where sh->dedup_id's value went (len 0: not kept). */
static int build_tail_headers(struct stp_buf *b, const struct stp_frame *f,
                              const struct send_headers *sh, bool *needs_escape,
                              struct dedup_span *dd)
{
    *needs_escape = false;
    *dd = (struct dedup_span){0};
    int rc = header_line(b, LIT("destination"), *sh->dest, needs_escape);
    if (sh->content_type)
        rc |= header_line(b, LIT("content-type"), *sh->content_type, needs_escape);
    rc |= stp_write_header_u64(b, "content-length", f->body.len);
    for (size_t i = 0; i < f->nheaders; i++) {
        const struct stp_header *h = &f->headers[i];
        /* A repeated header is forwarded in order, as the sender wrote it
         * (readers take the first): no per-header search, so no quadratic
         * cost however many headers a frame has. */
        if (classify(h->name) != HDR_USER)
            continue;
        if (&h->value == sh->dedup_id) {
            size_t at = b->len + h->name.len + 1; /* "dedup-id:" never escapes */
            rc |= header_line(b, h->name, h->value, needs_escape);
            *dd = (struct dedup_span){at, b->len - 1 - at};
            continue;
        }
        bool rewrite = &h->value == sh->reply_to && sh->reply_to_real.len;
        rc |= header_line(b, h->name, rewrite ? sh->reply_to_real : h->value, needs_escape);
    }
    return rc ? STP_ENOMEM : 0;
}

static struct stp_msg *build_into(struct stp_buf *hdrs, const struct stp_frame *f,
                                  const struct send_headers *sh, unsigned id_src)
{
    struct stp_slice dest = *sh->dest;
    bool needs_escape;
    struct dedup_span dd;
    stp_buf_reset(hdrs);
    if (build_tail_headers(hdrs, f, sh, &needs_escape, &dd) < 0)
        return NULL;
    size_t tail_len = hdrs->len + 1 + f->body.len + 1;
    struct stp_msg *m = stp_msg_alloc(dest.p, dest.len, tail_len);
    if (!m)
        return NULL;
    char *t = (char *)m->tail;
    memcpy(t, hdrs->data, hdrs->len);
    t[hdrs->len] = '\n';
    memcpy(t + hdrs->len + 1, f->body.p, f->body.len);
    t[tail_len - 1] = '\0';
    m->tail_len = tail_len;
    m->body_len = f->body.len;
    m->needs_escape = needs_escape;
    m->dedup_off = (uint32_t)dd.off;
    m->dedup_len = (uint16_t)dd.len;
    stp_msg_set_id(m, stp_msg_next_id(id_src));
    return m;
}

static struct stp_msg *build_message(struct stp_conn *c, const struct stp_frame *f,
                                     const struct send_headers *sh)
{
    return build_into(&stp_worker_of(c)->scratch, f, sh, stp_worker_of(c)->id);
}

struct stp_msg *stp_msg_from_send(struct stp_buf *scratch, const struct stp_frame *f,
                                  unsigned id_src)
{
    struct send_headers sh;
    find_send_headers(f, &sh);
    if (!sh.dest)
        return NULL;
    struct stp_msg *m = build_into(scratch, f, &sh, id_src);
    if (m && sh.persistent && stp_slice_eq(*sh.persistent, "true"))
        m->persistent = true;
    return m;
}

static void route(struct stp_conn *c, struct stp_msg *m)
{
    m->pub_fence = stp_sess(c)->next_fence_id + 1;
    unsigned owner = stp_owner_of(stp_worker_of(c), m->dest, m->dest_len);
    struct stp_post cmd = stp_post_route(m);
    STP_STAT_INC(stp_worker_of(c)->stats.msgs_published);
    stp_session_post(c, owner, &cmd);
    stp_worker_check_budget(stp_worker_of(c), c);
}

/* --- transactions --- */

enum txn_op { TXN_SEND, TXN_SETTLE };

struct txn_action {
    enum txn_op op;
    enum stp_verdict verdict; /* TXN_SETTLE */
    struct stp_msg *msg;      /* TXN_SEND */
    char *ack_id;             /* TXN_SETTLE: the id as sent (short: checked) */
    uint32_t ack_sub;         /* 1.1: the named subscription's number, or 0 */
    struct stp_ack_ref ref;   /* resolved at COMMIT */
    char *receipt;            /* the frame's receipt: sent at COMMIT (or ABORT), or NULL */
};

struct stp_txn {
    char *name;
    size_t name_len;
    struct txn_action *acts;
    size_t n, cap;
    size_t bytes; /* message bytes held (bounded by --max-transaction-bytes) */
};

static void txn_free(struct stp_txn *t)
{
    for (size_t i = 0; i < t->n; i++) {
        stp_msg_unref(&t->acts[i].msg);
        free(t->acts[i].ack_id);
        free(t->acts[i].receipt);
    }
    free(t->acts);
    free(t->name);
    free(t);
}

static struct stp_txn *txn_find(struct stp_conn *c, const struct stp_slice *name)
{
    return stp_map_get(&stp_sess(c)->txns, name->p, name->len);
}

/* RabbitMQ's ERROR for a frame naming a transaction that is not open. */
static int bad_txn(struct stp_conn *c, const struct stp_frame *f, const struct stp_slice *name)
{
    return stp_session_badf(c, f, "Bad transaction",
                            "Invalid transaction identifier: '%.*s' (%s names a transaction that "
                            "was not begun).",
                            stp_quote_len(name->len), name->p, stp_cmd_name(f->cmd));
}

/* Room for one more frame of `bytes` message bytes in t? 0, or -1 after an
 * ERROR: a transaction is bounded when it grows, not only at COMMIT. */
static int txn_room(struct stp_conn *c, const struct stp_frame *f, const struct stp_txn *t,
                    size_t bytes)
{
    const struct stp_config *cfg = stp_worker_of(c)->cfg;
    if (t->n >= cfg->max_transaction_frames)
        return stp_session_bad(c, f, "transaction too large",
                               "The transaction holds --max-transaction-frames frames already.");
    if (bytes > cfg->max_transaction_bytes - t->bytes)
        return stp_session_bad(c, f, "transaction too large",
                               "The transaction would hold more than --max-transaction-bytes.");
    return 0;
}

static int txn_push(struct stp_txn *t, struct txn_action a)
{
    if (STP_ARRAY_RESERVE(t->acts, t->cap, t->n + 1) < 0)
        return STP_ENOMEM;
    t->acts[t->n++] = a;
    return 0;
}

int stp_session_txn_ack(struct stp_conn *c, const struct stp_frame *f, enum stp_verdict v,
                        const struct stp_slice *txname, const struct stp_slice *id,
                        struct stp_sub *sub)
{
    struct stp_txn *t = txn_find(c, txname);
    if (!t)
        return bad_txn(c, f, txname);
    const struct stp_slice *receipt = stp_session_receipt(f);
    if (txn_room(c, f, t, id->len + (receipt ? receipt->len : 0)) < 0)
        return -1;
    struct txn_action a = {.op = TXN_SETTLE,
                           .verdict = v,
                           .ack_id = stp_session_strdup(*id),
                           .ack_sub = sub ? sub->num : 0,
                           .receipt = receipt ? stp_session_strdup(*receipt) : NULL};
    if (!a.ack_id || (receipt && !a.receipt) || txn_push(t, a) < 0) {
        free(a.ack_id);
        free(a.receipt);
        return STP_ENOMEM;
    }
    t->bytes += id->len + (receipt ? receipt->len : 0);
    return 0; /* its receipt waits for COMMIT */
}

/* The receipts of the transaction's frames, in their order: once COMMIT
 * has applied them (or ABORT dropped them), each frame is done. */
static int txn_receipts(struct stp_conn *c, struct stp_txn *t)
{
    for (size_t i = 0; i < t->n; i++) {
        char *r = t->acts[i].receipt;
        if (!r)
            continue;
        int rc = stp_session_receipt_fence(c, &(struct stp_slice){r, strlen(r)}, false);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* A SEND inside transaction t holds m (taken over) until COMMIT; its
 * receipt is sent then. 0, or -1 after an ERROR. */
static int txn_send(struct stp_conn *c, const struct stp_frame *f, struct stp_txn *t,
                    struct stp_msg *m, const struct stp_slice *receipt)
{
    size_t bytes = m->tail_len + (receipt ? receipt->len : 0);
    if (txn_room(c, f, t, bytes) < 0) {
        stp_msg_unref(&m);
        return -1;
    }
    struct txn_action a = {
        .op = TXN_SEND, .msg = m, .receipt = receipt ? stp_session_strdup(*receipt) : NULL};
    if ((receipt && !a.receipt) || txn_push(t, a) < 0) {
        stp_msg_unref(&m);
        free(a.receipt);
        return STP_ENOMEM;
    }
    t->bytes += bytes;
    /* Held messages are in the memory budget: over it, stop reading. */
    stp_worker_check_budget(stp_worker_of(c), c);
    return 0;
}

/* All or nothing: every ACK and NACK is resolved first (the delivery each
 * names must still await acknowledgement), and only when all are valid is
 * anything applied, in the frames' order. A COMMIT with one stale ACK gets
 * the ERROR and takes no effect at all. */
static int commit(struct stp_conn *c, const struct stp_frame *f, struct stp_txn *t)
{
    for (size_t i = 0; i < t->n; i++) {
        struct txn_action *a = &t->acts[i];
        if (a->op == TXN_SEND)
            continue;
        struct stp_sub *sub = a->ack_sub ? stp_session_sub_by_num(c, a->ack_sub) : NULL;
        if (stp_session_resolve_ack(c, a->ack_id, strlen(a->ack_id), a->ack_sub != 0, sub,
                                    &a->ref) < 0)
            return stp_session_bad(c, f, "unknown message",
                                   "The transaction acknowledges a message that awaits no "
                                   "acknowledgement here; nothing of it was applied.");
    }
    for (size_t i = 0; i < t->n; i++) {
        struct txn_action *a = &t->acts[i];
        if (a->op == TXN_SEND) {
            route(c, a->msg);
            a->msg = NULL;
        } else {
            stp_session_settle_ref(c, &a->ref, a->verdict);
        }
    }
    return 0;
}

int stp_session_on_txn(struct stp_conn *c, const struct stp_frame *f)
{
    const struct stp_slice *name = stp_frame_header(f, "transaction");
    if (!name)
        return stp_session_badf(c, f, "Missing transaction",
                                "%s must include a 'transaction' header.", stp_cmd_name(f->cmd));
    struct stp_txn *t = txn_find(c, name);
    if (f->cmd == STP_CMD_BEGIN) {
        if (t)
            return stp_session_bad(c, f, "transaction already exists",
                                   "BEGIN names a transaction that is already open.");
        if (stp_sess(c)->txns.count >= stp_worker_of(c)->cfg->max_transactions)
            return stp_session_bad(c, f, "too many transactions",
                                   "This connection has --max-transactions transactions open.");
        t = calloc(1, sizeof(*t));
        if (!t || !(t->name = stp_session_strdup(*name))) {
            free(t);
            return STP_ENOMEM;
        }
        t->name_len = name->len;
        if (stp_map_put(&stp_sess(c)->txns, t->name, t->name_len, t) < 0) {
            txn_free(t);
            return STP_ENOMEM;
        }
        return stp_session_receipt_fence(c, stp_session_receipt(f), false);
    }
    if (!t)
        return bad_txn(c, f, name);
    stp_map_del(&stp_sess(c)->txns, t->name, t->name_len);
    int rc = f->cmd == STP_CMD_COMMIT ? commit(c, f, t) : 0;
    if (rc == 0)
        rc = txn_receipts(c, t);
    txn_free(t);
    if (rc < 0)
        return rc;
    return stp_session_receipt_fence(c, stp_session_receipt(f), false);
}

void stp_session_free_txns(struct stp_conn *c)
{
    struct stp_map *m = &stp_sess(c)->txns;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].hash)
            txn_free(m->slots[i].value);
    }
    stp_map_free(m);
}

/* --- expiry --- */

/* A decimal count of milliseconds up to 2^53 (about 285,000 years): 0, or
 * -1 when v is empty, has other characters or is larger. */
static int parse_ms(const struct stp_slice *v, uint64_t *out)
{
    uint64_t n = 0;
    if (v->len == 0 || v->len > 16)
        return -1;
    for (size_t i = 0; i < v->len; i++) {
        if (v->p[i] < '0' || v->p[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(v->p[i] - '0');
    }
    if (n > (1ULL << 53))
        return -1;
    *out = n;
    return 0;
}

/* The message's expiry (epoch ms, 0: never) from expiration and expires;
 * the earlier wins when both are set. 0, or -1 after an ERROR. */
static int send_expiry(struct stp_conn *c, const struct stp_frame *f, const struct send_headers *sh,
                       uint64_t *expires_ms)
{
    uint64_t ttl = 0, at = 0;
    *expires_ms = 0;
    if (sh->expiration && parse_ms(sh->expiration, &ttl) < 0)
        return stp_session_bad(c, f, "invalid expiration",
                               "expiration is a whole number of milliseconds from now.");
    if (sh->expires && parse_ms(sh->expires, &at) < 0)
        return stp_session_bad(c, f, "invalid expires",
                               "expires is a time in milliseconds since 1970 (0: never).");
    if (sh->expiration)
        *expires_ms = stp_epoch_ms() + ttl;
    if (at && (*expires_ms == 0 || at < *expires_ms))
        *expires_ms = at;
    if (sh->expiration && *expires_ms == 0)
        *expires_ms = 1; /* expiration:0 and a clock at the epoch: expired */
    return 0;
}

/* --- de-duplication --- */

/* With --dedup-window, a dedup-id must be 1..STP_DEDUP_ID_MAX bytes; off,
 * it is an ordinary header (forwarded, never read). 0, or -1 after an
 * ERROR. sh->dedup_id is cleared when it is not to be used. */
static int check_dedup_id(struct stp_conn *c, const struct stp_frame *f, struct send_headers *sh)
{
    if (!sh->dedup_id)
        return 0;
    if (!stp_worker_of(c)->cfg->dedup_window_ms) {
        sh->dedup_id = NULL;
        return 0;
    }
    if (sh->dedup_id->len == 0)
        return stp_session_bad(c, f, "invalid dedup-id", "dedup-id must not be empty.");
    if (sh->dedup_id->len > STP_DEDUP_ID_MAX)
        return stp_session_bad(c, f, "dedup-id too long",
                               "dedup-id is at most 256 bytes; the message was not sent.");
    return 0;
}

/* --- SEND --- */

/* May this connection send to dest? Its own temp queues and reply queues
 * (whose unguessable name is the capability, as a reply-to hands it out)
 * are outside the ACL. */
static int send_perm(struct stp_conn *c, const struct stp_frame *f, const struct stp_slice *dest,
                     enum stp_dest_kind k)
{
    if (k == STP_DEST_TEMP || k == STP_DEST_REPLY)
        return 0;
    return stp_session_check_perm(c, f, dest, STP_ACL_WRITE);
}

int stp_session_on_send(struct stp_conn *c, const struct stp_frame *f)
{
    struct send_headers sh;
    find_send_headers(f, &sh);
    if (!sh.dest)
        return stp_session_bad(c, f, "Missing destination",
                               "SEND must include a 'destination' header.");
    int kind = stp_session_check_dest(c, f, sh.dest);
    if (kind < 0 || send_perm(c, f, sh.dest, (enum stp_dest_kind)kind) < 0 ||
        stp_session_check_reply_to(c, f, sh.reply_to) < 0)
        return -1;
    struct stp_slice temp_dest;
    if (kind == STP_DEST_TEMP) {
        int rc = stp_session_temp_resolve(c, f, *sh.dest, &temp_dest);
        if (rc < 0)
            return rc;
        sh.dest = &temp_dest;
    }
    if (sh.reply_to && stp_dest_kind(sh.reply_to->p, sh.reply_to->len) == STP_DEST_TEMP) {
        int rc = stp_session_temp_reply_to(c, f, *sh.reply_to, &sh.reply_to_real);
        if (rc < 0)
            return rc;
    }
    struct stp_txn *t = NULL;
    if (sh.transaction && !(t = txn_find(c, sh.transaction)))
        return bad_txn(c, f, sh.transaction);
    uint64_t expires_ms;
    if (send_expiry(c, f, &sh, &expires_ms) < 0 || check_dedup_id(c, f, &sh) < 0)
        return -1;
    struct stp_msg *m = build_message(c, f, &sh);
    if (!m)
        return stp_session_bad(c, f, "out of memory", "The broker could not store the message.");
    m->expires_ms = expires_ms;
    m->persistent =
        sh.persistent && sh.persistent->len == 4 && memcmp(sh.persistent->p, "true", 4) == 0;
    if (t)
        return txn_send(c, f, t, m, sh.receipt);
    route(c, m);
    return stp_session_receipt_fence(c, sh.receipt, false);
}
