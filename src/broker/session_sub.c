/*
 * session_sub.c - SUBSCRIBE, UNSUBSCRIBE, deliveries and ACK/NACK.
 *
 * Runs on the connection's worker. A subscription's local record is created
 * here and the owner is told (topic interest, or a queue consumer). Removal
 * is local first, so a late delivery finds nobody and is dropped (a queue's
 * owner puts back what it had in flight when it hears the consumer left).
 *
 * Ack ids: MESSAGE frames for client-ack subscriptions carry
 * `ack:<sub number>-<tag>`; 1.0/1.1 clients ack by message-id instead.
 */
#include "broker/dest.h"
#include "broker/msgsel.h"
#include "broker/pattern.h"
#include "broker/session_int.h"
#include "broker/worker.h"
#include "select/select.h"
#include "stampede/array.h"
#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/msg.h"

#include <stdlib.h>
#include <string.h>

static struct stp_sub *find_sub_by_id(struct stp_conn *c, const char *id, size_t len)
{
    return stp_map_get(&stp_sess(c)->subs_by_id, id, len);
}

static struct stp_sub *find_sub_by_num(struct stp_conn *c, uint32_t num)
{
    return stp_map_get(&stp_sess(c)->subs_by_num, &num, sizeof(num));
}

static void sub_free(struct stp_sub *sub)
{
    for (size_t i = 0; i < sub->nheld; i++)
        stp_msg_unref(&sub->held[i].msg);
    free(sub->held);
    while (sub->backlog.count) {
        struct stp_held h = stp_backlog_pop_front(&sub->backlog);
        stp_msg_unref(&h.msg);
    }
    stp_backlog_free(&sub->backlog);
    sub->conn->held_above -= sub->backlog_bytes;
    stp_unacked_free(&sub->ua);
    free(sub->id);
    free(sub->dest);
    free(sub->hdr);
    stp_selector_free(sub->sel);
    free(sub);
}

static int build_sub_header(struct stp_sub *sub, enum stp_version v)
{
    struct stp_buf b = STP_BUF_INIT;
    int rc = stp_write_command(&b, STP_CMD_MESSAGE);
    rc |= stp_write_header(&b, "subscription", (struct stp_slice){sub->id, sub->id_len}, v);
    if (rc) {
        stp_buf_free(&b);
        return STP_ENOMEM;
    }
    sub->hdr = b.data;
    sub->hdr_len = b.len;
    return 0;
}

static int parse_ack_mode(const struct stp_slice *ack, enum stp_ack_mode *mode)
{
    if (!ack || stp_slice_eq(*ack, "auto"))
        *mode = STP_ACK_AUTO;
    else if (stp_slice_eq(*ack, "client"))
        *mode = STP_ACK_CLIENT;
    else if (stp_slice_eq(*ack, "client-individual"))
        *mode = STP_ACK_CLIENT_INDIVIDUAL;
    else
        return STP_EINVAL;
    return 0;
}

/* A pattern's interest goes to every worker (each owns topics it may
 * match); a receipt then fences them all. 0 or STP_ENOMEM. */
static int post_pattern_interest(struct stp_conn *c, const struct stp_sub *sub, int delta)
{
    struct stp_worker *w = stp_worker_of(c);
    for (unsigned i = 0; i < w->broker_workers; i++) {
        struct stp_post cmd = stp_post_pattern_interest(strdup(sub->dest), delta);
        if (!cmd.u.interest.topic)
            return STP_ENOMEM;
        stp_session_post(c, i, &cmd);
    }
    return 0;
}

static void touch_all(struct stp_conn *c)
{
    for (unsigned i = 0; i < stp_worker_of(c)->broker_workers; i++)
        stp_session_touch(c, i);
}

/* Tell the owner about a new subscription. A queue's selector text
 * (sel_text, NUL-terminated heap string or NULL) is taken over: the queue's
 * owner matches it, not this worker. */
static int register_sub(struct stp_conn *c, struct stp_sub *sub, char *sel_text)
{
    struct stp_worker *w = stp_worker_of(c);
    sub->owner = stp_owner_of(w, sub->dest, sub->dest_len);
    if (!sub->is_queue) {
        bool first = false;
        if (stp_ltopic_add(w, sub, &first) < 0)
            return STP_ENOMEM;
        if (!first) {
            /* This worker's interest was posted before: FIFO rings put it
             * ahead of any later fence, so marking the owner is enough. */
            if (sub->is_pattern)
                touch_all(c);
            else
                stp_session_touch(c, sub->owner);
            return 0;
        }
        if (sub->is_pattern)
            return post_pattern_interest(c, sub, 1);
        struct stp_post cmd = stp_post_interest(strdup(sub->dest), 1);
        if (!cmd.u.interest.topic)
            return STP_ENOMEM;
        stp_session_post(c, sub->owner, &cmd);
        return 0;
    }
    struct stp_post cmd = stp_post_consumer_add(strdup(sub->dest), sel_text, sub->key,
                                                sub->prefetch, sub->ack_mode != STP_ACK_AUTO);
    cmd.u.consumer_add.durable = sub->durable;
    if (sub->durable)
        cmd.u.consumer_add.login_stripe = stp_session_login_stripe(c);
    if (!cmd.u.consumer_add.queue) {
        free(sel_text);
        return STP_ENOMEM;
    }
    stp_session_post(c, sub->owner, &cmd);
    return 0;
}

static int validate_subscribe(struct stp_conn *c, const struct stp_frame *f,
                              const struct stp_slice **dest, struct stp_slice *id,
                              enum stp_ack_mode *mode, uint64_t *prefetch)
{
    *dest = stp_frame_header(f, "destination");
    if (!*dest)
        return stp_session_bad(c, f, "Missing destination",
                               "SUBSCRIBE must include a 'destination' header.");
    const struct stp_slice *idh = stp_frame_header(f, "id");
    if (!idh && stp_sess(c)->version >= STP_V11)
        return stp_session_bad(c, f, "missing id header", "SUBSCRIBE needs an id header.");
    *id = idh ? *idh : **dest; /* 1.0: the destination names the subscription */
    if (stp_session_check_dest(c, f, *dest) < 0)
        return -1;
    enum stp_dest_kind kind = stp_dest_kind((*dest)->p, (*dest)->len);
    if (kind == STP_DEST_REPLY)
        return stp_session_bad(c, f, "Invalid destination",
                               "A /reply-queue/ is consumed only by the connection that made it, "
                               "through its /temp-queue/ name.");
    /* A temp queue is the connection's own: no ACL applies. */
    if (kind != STP_DEST_TEMP && stp_session_check_perm(c, f, *dest, STP_ACL_READ) < 0)
        return -1;
    size_t words = 0;
    if (stp_topic_is_pattern((*dest)->p, (*dest)->len, &words) && words > STP_PATTERN_MAX_WORDS)
        return stp_session_bad(c, f, "pattern too long",
                               "A topic pattern has at most 128 dot-separated words.");
    if (find_sub_by_id(c, id->p, id->len))
        return stp_session_badf(c, f, "Duplicated subscription identifier",
                                "A subscription identified by '%.*s' already exists.",
                                stp_quote_len(id->len), id->p);
    if (stp_sess(c)->nsubs >= stp_worker_of(c)->cfg->max_subscriptions)
        return stp_session_bad(c, f, "too many subscriptions",
                               "This connection holds --max-subscriptions subscriptions already.");
    if (parse_ack_mode(stp_frame_header(f, "ack"), mode) < 0)
        return stp_session_bad(c, f, "invalid ack mode",
                               "ack must be auto, client or client-individual.");
    const struct stp_slice *pf = stp_frame_header(f, "prefetch-count");
    *prefetch = 0;
    if (pf && (stp_parse_u64(*pf, prefetch) < 0 || *prefetch > UINT32_MAX))
        return stp_session_bad(c, f, "invalid prefetch-count",
                               "prefetch-count must be a non-negative integer.");
    /* Unacked deliveries are held here and at the owner: a client-ack
     * subscription gets at most --max-unacked of them, asked for or not. */
    size_t max = stp_worker_of(c)->cfg->max_unacked;
    if (*mode != STP_ACK_AUTO && (*prefetch == 0 || *prefetch > max))
        *prefetch = max;
    return 0;
}

/* ActiveMQ's selector header: 0 and *sel (NULL when there is none or it is
 * blank), or -1 after an ERROR naming what and where. A topic's selector is
 * matched here; a queue's is matched by the queue's owner, which gets the
 * text (*text, heap, when is_queue) and compiles it again: compiling here
 * still gives the ERROR with the position. */
static int compile_selector(struct stp_conn *c, const struct stp_frame *f, bool is_queue,
                            struct stp_selector **sel, char **text)
{
    const struct stp_slice *h = stp_frame_header(f, "selector");
    *sel = NULL;
    *text = NULL;
    size_t blank = 0;
    while (h && blank < h->len && (h->p[blank] == ' ' || h->p[blank] == '\t'))
        blank++;
    if (!h || blank == h->len)
        return 0;
    char err[160];
    int rc = stp_selector_compile(sel, h->p, h->len, err, sizeof(err));
    if (rc == STP_ENOMEM)
        return STP_ENOMEM;
    if (rc < 0)
        return stp_session_bad(c, f, "invalid selector", err);
    if (!is_queue)
        return 0;
    stp_selector_free(*sel);
    *sel = NULL;
    *text = stp_session_strdup(*h);
    return *text ? 0 : STP_ENOMEM;
}

struct stp_sub *stp_session_sub_make(struct stp_conn *c, struct stp_slice id, struct stp_slice dest,
                                     enum stp_ack_mode mode, uint32_t prefetch,
                                     struct stp_selector *sel)
{
    struct stp_worker *w = stp_worker_of(c);
    struct stp_sub *sub = calloc(1, sizeof(*sub));
    if (!sub) {
        stp_selector_free(sel);
        return NULL;
    }
    sub->sel = sel;
    sub->conn = c;
    sub->key = ((uint64_t)w->id << 48) | ++w->sub_counter;
    sub->num = ++stp_sess(c)->next_sub_num;
    sub->id = stp_session_strdup(id);
    sub->id_len = id.len;
    sub->dest = stp_session_strdup(dest);
    sub->dest_len = dest.len;
    sub->is_queue = stp_dest_is_queue(dest.p, dest.len);
    sub->is_pattern = !sub->is_queue && stp_topic_is_pattern(dest.p, dest.len, NULL);
    sub->ack_mode = mode;
    sub->prefetch = prefetch;
    /* 1.0/1.1 ack by message-id; a topic subscription also keeps its
     * unacked messages to give a NACKed one back (the reference). */
    sub->ua.track_ids = mode != STP_ACK_AUTO && (stp_sess(c)->version < STP_V12 || !sub->is_queue);
    if (!sub->id || !sub->dest || build_sub_header(sub, stp_sess(c)->version) < 0 ||
        stp_map_put(&w->subs_by_key, &sub->key, sizeof(sub->key), sub) < 0) {
        sub_free(sub);
        return NULL;
    }
    if (stp_map_put(&stp_sess(c)->subs_by_id, sub->id, sub->id_len, sub) < 0 ||
        stp_map_put(&stp_sess(c)->subs_by_num, &sub->num, sizeof(sub->num), sub) < 0) {
        stp_map_del(&stp_sess(c)->subs_by_id, sub->id, sub->id_len);
        stp_map_del(&w->subs_by_key, &sub->key, sizeof(sub->key));
        sub_free(sub);
        return NULL;
    }
    sub->next = stp_sess(c)->subs;
    stp_sess(c)->subs = sub;
    stp_sess(c)->nsubs++;
    return sub;
}

int stp_session_sub_start(struct stp_conn *c, struct stp_sub *sub)
{
    return register_sub(c, sub, NULL);
}

bool stp_session_has_sub_id(struct stp_conn *c, struct stp_slice id)
{
    return find_sub_by_id(c, id.p, id.len) != NULL;
}

int stp_session_on_subscribe(struct stp_conn *c, const struct stp_frame *f)
{
    const struct stp_slice *dest;
    struct stp_slice id;
    enum stp_ack_mode mode = STP_ACK_AUTO;
    uint64_t prefetch = 0;
    if (validate_subscribe(c, f, &dest, &id, &mode, &prefetch) < 0)
        return -1;
    /* A temp queue: the subscription consumes the connection's private
     * reply queue behind the name. */
    struct stp_slice target = *dest;
    if (stp_dest_kind(dest->p, dest->len) == STP_DEST_TEMP) {
        int rc = stp_session_temp_resolve(c, f, *dest, &target);
        if (rc < 0)
            return rc;
    }
    /* A durable topic subscription consumes its own queue. */
    char *dsub;
    int rc = stp_session_dsub_target(c, f, *dest, &dsub);
    if (rc < 0)
        return rc;
    bool durable = dsub != NULL;
    if (durable)
        target = (struct stp_slice){dsub, strlen(dsub)};
    struct stp_selector *sel = NULL;
    char *sel_text = NULL;
    rc = compile_selector(c, f, stp_dest_is_queue(target.p, target.len), &sel, &sel_text);
    struct stp_sub *sub =
        rc < 0 ? NULL : stp_session_sub_make(c, id, target, mode, (uint32_t)prefetch, sel);
    free(dsub);
    if (rc < 0 || !sub) {
        free(sel_text);
        return rc < 0 ? rc : STP_ENOMEM;
    }
    sub->durable = durable;
    const struct stp_slice *receipt = stp_session_receipt(f);
    sub->holding = receipt != NULL;
    if (register_sub(c, sub, sel_text) < 0)
        return STP_ENOMEM;
    return stp_session_receipt_fence_sub(c, receipt, sub->key);
}

/* Drop the local record and tell the owner; the record is freed here. */
static void sub_remove(struct stp_conn *c, struct stp_sub *sub)
{
    struct stp_worker *w = stp_worker_of(c);
    for (struct stp_sub **pp = &stp_sess(c)->subs; *pp; pp = &(*pp)->next) {
        if (*pp == sub) {
            *pp = sub->next;
            break;
        }
    }
    stp_map_del(&w->subs_by_key, &sub->key, sizeof(sub->key));
    stp_map_del(&stp_sess(c)->subs_by_id, sub->id, sub->id_len);
    stp_map_del(&stp_sess(c)->subs_by_num, &sub->num, sizeof(sub->num));
    stp_sess(c)->nsubs--;
    if (sub->is_queue) {
        /* Auto-ack deliveries already in the output queue will be written
         * (unless the connection is dropped at once): the owner must not
         * give them to another consumer too. */
        bool written = sub->ack_mode == STP_ACK_AUTO && c->closing != STP_CLOSE_NOW;
        struct stp_post cmd = stp_post_consumer_del(sub->key, written ? sub->tag_queued : 0);
        stp_session_post(c, sub->owner, &cmd);
    } else if (stp_ltopic_remove(w, sub)) {
        /* The last local subscriber: the owner (every worker, for a
         * pattern) forgets this worker's interest. */
        if (sub->is_pattern) {
            post_pattern_interest(c, sub, -1);
        } else {
            struct stp_post cmd = stp_post_interest(strdup(sub->dest), -1);
            if (cmd.u.interest.topic)
                stp_session_post(c, sub->owner, &cmd);
        }
    }
    sub_free(sub);
}

int stp_session_on_unsubscribe(struct stp_conn *c, const struct stp_frame *f)
{
    const struct stp_slice *id = stp_frame_header(f, "id");
    if (!id && stp_sess(c)->version == STP_V10)
        id = stp_frame_header(f, "destination");
    if (!id)
        return stp_session_bad(c, f, "Missing destination or id",
                               "UNSUBSCRIBE must include an 'id' header (1.0: or 'destination').");
    struct stp_sub *sub = find_sub_by_id(c, id->p, id->len);
    bool drop = stp_session_dsub_unsub_asked(f);
    if (!sub && !drop)
        return stp_session_badf(c, f, "No subscription found",
                                "UNSUBSCRIBE must refer to an existing subscription.\n"
                                "Subscription to '%.*s' not found.",
                                stp_quote_len(id->len), id->p);
    char *dsub = NULL;
    if (sub && drop && sub->durable && !(dsub = strdup(sub->dest)))
        return STP_ENOMEM;
    if (sub)
        sub_remove(c, sub);
    /* Removing the durable subscription follows its consumer's removal
     * through the same ring: the owner sees it gone first. */
    int rc = drop && (!sub || dsub) ? stp_session_dsub_remove(c, f, dsub) : 0;
    free(dsub);
    if (rc < 0)
        return rc;
    return stp_session_receipt_fence(c, stp_session_receipt(f), false);
}

void stp_session_free_subs(struct stp_conn *c)
{
    while (stp_sess(c)->subs)
        sub_remove(c, stp_sess(c)->subs);
    stp_map_free(&stp_sess(c)->subs_by_id);
    stp_map_free(&stp_sess(c)->subs_by_num);
}

/* --- deliveries --- */

static char *put_u64(char *p, uint64_t v)
{
    return p + stp_fmt_u64(p, v);
}

static char *put_str(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* Whether a header cannot be written for version v as it is. 1.0 has no
 * escapes: an EOL byte anywhere, or a ':' in the name, would split the line
 * into other headers or end the header block and start a forged frame. 1.1
 * escapes LF and ':' but not CR, and a CR before the line's LF is read as
 * part of the EOL: the value would arrive changed. */
static bool unsafe_for(enum stp_version v, struct stp_slice name, struct stp_slice value)
{
    if (memchr(name.p, '\r', name.len) || memchr(value.p, '\r', value.len))
        return true;
    return v == STP_V10 && (memchr(name.p, ':', name.len) || memchr(name.p, '\n', name.len) ||
                            memchr(value.p, '\n', value.len));
}

/* Unescape one 1.2-escaped tail slice [a, b) into buf; the slice or .p NULL. */
static struct stp_slice unescape_part(struct stp_buf *buf, const char *a, const char *b)
{
    stp_buf_reset(buf);
    if (stp_buf_append(buf, a, (size_t)(b - a)) < 0)
        return (struct stp_slice){NULL, 0};
    ssize_t n = stp_unescape_inplace(buf->data, buf->len, STP_V12);
    if (n < 0)
        return (struct stp_slice){NULL, 0};
    return (struct stp_slice){buf->data ? buf->data : "", (size_t)n};
}

/* The shared tail is escaped the 1.2 way. For a 1.0 or 1.1 subscriber of a
 * message whose headers hold a byte the versions escape differently, render
 * the header lines again for that version (rare: a per-delivery copy). A
 * header that version cannot carry unchanged is left out of its frame. */
static void write_tail_reescaped(struct stp_conn *c, struct stp_msg *m, enum stp_version v)
{
    struct stp_buf out = STP_BUF_INIT, nbuf = STP_BUF_INIT, vbuf = STP_BUF_INIT;
    const char *p = m->tail, *end = m->tail + m->tail_len;
    int rc = 0;
    while (rc == 0 && p < end && *p != '\n') {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *colon = memchr(p, ':', (size_t)(nl - p));
        struct stp_slice name = unescape_part(&nbuf, p, colon);
        struct stp_slice value = unescape_part(&vbuf, colon + 1, nl);
        p = nl + 1;
        if (!name.p || !value.p) {
            rc = -1;
            break;
        }
        if (unsafe_for(v, name, value))
            continue;
        rc |= stp_escape_append(&out, name, v);
        rc |= stp_buf_append(&out, ":", 1);
        rc |= stp_escape_append(&out, value, v);
        rc |= stp_buf_append(&out, "\n", 1);
    }
    rc |= stp_buf_append(&out, p, (size_t)(end - p));
    if (rc == 0)
        stp_conn_write(c, out.data, out.len);
    else
        stp_conn_close(c, STP_CLOSE_NOW);
    stp_buf_free(&out);
    stp_buf_free(&nbuf);
    stp_buf_free(&vbuf);
}

/* The per-delivery header block: MESSAGE, subscription, message-id, ack,
 * redelivered (true or false); then the shared tail. A small tail is copied in the same
 * reservation, so a delivery costs one reserve, a few memcpys and one commit. */
static void write_delivery(struct stp_sub *sub, struct stp_msg *m, uint64_t tag, bool redelivered)
{
    struct stp_conn *c = sub->conn;
    bool reescape = m->needs_escape && stp_sess(c)->version < STP_V12;
    bool copy_tail = !reescape && m->tail_len <= STP_COPY_TAIL_MAX;
    stp_conn_frame_begin(c);
    char *p0 = stp_conn_reserve(c, sub->hdr_len + 96 + (copy_tail ? m->tail_len : 0));
    if (!p0) {
        stp_conn_close(c, STP_CLOSE_NOW);
        return;
    }
    char *p = put_str(p0, sub->hdr, sub->hdr_len);
    p = put_str(p, m->id_line, m->id_line_len);
    if (sub->ack_mode != STP_ACK_AUTO && stp_sess(c)->version >= STP_V12) {
        p = put_str(p, "ack:", 4);
        p = put_u64(p, sub->num);
        *p++ = '-';
        p = put_u64(p, tag);
        *p++ = '\n';
    }
    /* Always, true or false, as RabbitMQ does: clients read it blindly. */
    p = redelivered ? put_str(p, "redelivered:true\n", 17) : put_str(p, "redelivered:false\n", 18);
    if (copy_tail)
        p = put_str(p, m->tail, m->tail_len);
    stp_conn_commit(c, (size_t)(p - p0));
    if (reescape)
        write_tail_reescaped(c, m, stp_sess(c)->version);
    else if (!copy_tail)
        stp_conn_write_tail(c, m);
    c->frame_tail = reescape ? NULL : m; /* lets WebSocket check the tail once per message */
    stp_conn_frame_end(c);
    c->frame_tail = NULL;
    STP_STAT_INC(stp_worker_of(c)->stats.msgs_delivered);
    STP_STAT_INC(stp_worker_of(c)->stats.frames_out[STP_CMD_MESSAGE]);
}

static void hold(struct stp_sub *sub, struct stp_msg *m, uint64_t tag, bool redelivered)
{
    if (STP_ARRAY_RESERVE(sub->held, sub->cap_held, sub->nheld + 1) < 0) {
        stp_conn_close(sub->conn, STP_CLOSE_NOW);
        return;
    }
    sub->held[sub->nheld++] = (struct stp_held){stp_msg_ref(m), tag, redelivered, 0};
}

void stp_session_writing(struct stp_conn *c)
{
    struct stp_session *ss = stp_sess(c);
    for (struct stp_sub *s = ss->subs; s; s = s->next) {
        if (!s->is_queue || s->tag_queued == s->tag_reported)
            continue;
        if (STP_ARRAY_RESERVE(ss->wmarks, ss->wmarks_cap, ss->nwmarks + 1) < 0)
            return; /* reported with a later write */
        ss->wmarks[ss->nwmarks++] = (struct stp_wmark){s->key, s->tag_queued, s->owner};
        s->tag_reported = s->tag_queued;
    }
}

void stp_session_written(struct stp_conn *c, bool ok)
{
    struct stp_session *ss = stp_sess(c);
    for (size_t i = 0; ok && i < ss->nwmarks; i++) {
        struct stp_post cmd = stp_post_qwritten(ss->wmarks[i].key, ss->wmarks[i].tag);
        stp_worker_post(stp_worker_of(c), ss->wmarks[i].owner, &cmd);
    }
    ss->nwmarks = 0;
}

void stp_session_release_held(struct stp_conn *c, uint64_t sub_key)
{
    struct stp_sub *sub = stp_map_get(&stp_worker_of(c)->subs_by_key, &sub_key, sizeof(sub_key));
    if (!sub || sub->conn != c || !sub->holding)
        return;
    sub->holding = false;
    for (size_t i = 0; i < sub->nheld; i++) {
        struct stp_held *h = &sub->held[i];
        if (sub->is_queue)
            stp_session_deliver_queue(sub, h->msg, h->tag, h->redelivered);
        else
            stp_session_deliver_topic(sub, h->msg);
        stp_msg_unref(&h->msg);
    }
    sub->nheld = 0;
}

/* Does m pass sub's selector? Its headers are the shared tail's, up to the
 * blank line (escaped the 1.2 way, which the lookup decodes). */
static bool selected(const struct stp_sub *sub, const struct stp_msg *m)
{
    return stp_msg_selected(sub->sel, m);
}

/* --- topic subscriptions with client acks ---
 *
 * Like RabbitMQ's private queue behind each topic subscription: at most
 * `prefetch` deliveries await acknowledgement (sub->ua, numbered by
 * topic_tag); the rest wait in sub->backlog, in order. An ACK frees room
 * (cumulative in `client` mode); a NACK also puts the message(s) back at the
 * backlog's head, redelivered:true (NACK requeue:false drops them). */

/* What a waiting delivery counts toward --max-pending-output: its frame,
 * about. */
static size_t backlog_cost(const struct stp_sub *sub, const struct stp_msg *m)
{
    return sub->hdr_len + 64 + m->tail_len;
}

static void backlog_add(struct stp_sub *sub, struct stp_msg *m, uint16_t nacks, bool front)
{
    struct stp_conn *c = sub->conn;
    struct stp_held h = {stp_msg_ref(m), 0, nacks > 0, nacks};
    int rc =
        front ? stp_backlog_push_front(&sub->backlog, h) : stp_backlog_push_back(&sub->backlog, h);
    if (rc < 0) {
        stp_msg_unref(&h.msg);
        stp_conn_close(c, STP_CLOSE_NOW);
        return;
    }
    size_t n = backlog_cost(sub, m);
    sub->backlog_bytes += n;
    c->held_above += n;
}

static void send_topic_acked(struct stp_sub *sub, struct stp_msg *m, uint16_t nacks)
{
    uint64_t tag = ++sub->topic_tag;
    if (stp_unacked_push(&sub->ua, tag, m) < 0) {
        stp_conn_close(sub->conn, STP_CLOSE_NOW);
        return;
    }
    stp_unacked_deque_at(&sub->ua.q, sub->ua.q.count - 1)->nacks = nacks;
    write_delivery(sub, m, tag, nacks > 0);
}

/* Deliver from the backlog while the prefetch has room. */
static void backlog_pump(struct stp_sub *sub)
{
    struct stp_conn *c = sub->conn;
    bool sent = false;
    while (sub->backlog.count > 0 && sub->ua.live < sub->prefetch && c->closing == STP_OPEN) {
        struct stp_held h = stp_backlog_pop_front(&sub->backlog);
        size_t n = backlog_cost(sub, h.msg);
        sub->backlog_bytes -= n;
        c->held_above -= n;
        send_topic_acked(sub, h.msg, h.nacks);
        stp_msg_unref(&h.msg);
        sent = true;
    }
    if (sent)
        stp_conn_check_output(c);
}

/* Settle the topic delivery at idx (and, `client` mode, every one before
 * it) locally: there is no owner to tell. */
static void settle_topic(struct stp_sub *sub, size_t idx, enum stp_verdict v)
{
    bool upto = sub->ack_mode == STP_ACK_CLIENT;
    if (v == STP_VERDICT_NACK) {
        /* Back at the head in their order: the last first. Past
         * --max-redeliveries a message is dropped instead (a topic has no
         * dead-letter queue), so a client that NACKs forever cannot keep
         * the broker redelivering forever. */
        size_t max = stp_worker_of(sub->conn)->cfg->max_redeliveries;
        for (size_t i = idx + 1; i-- > (upto ? 0 : idx);) {
            struct stp_unacked *u = stp_unacked_deque_at(&sub->ua.q, i);
            if (u->settled || !u->msg)
                continue;
            if (max && (size_t)u->nacks + 1 > max) {
                STP_STAT_INC(stp_worker_of(sub->conn)->stats.msgs_rejected);
                continue;
            }
            backlog_add(sub, u->msg, u->nacks < UINT16_MAX ? u->nacks + 1 : UINT16_MAX, true);
        }
    }
    if (upto)
        stp_unacked_settle_upto(&sub->ua, idx);
    else
        stp_unacked_settle_one(&sub->ua, idx);
    backlog_pump(sub);
}

/* Kept out of line: the auto-ack fan-out path stays as short as before. */
static __attribute__((noinline)) void deliver_topic_acked(struct stp_sub *sub, struct stp_msg *m)
{
    if (sub->backlog.count > 0 || sub->ua.live >= sub->prefetch)
        backlog_add(sub, m, 0, false);
    else
        send_topic_acked(sub, m, 0);
    stp_conn_check_output(sub->conn); /* the backlog counts too */
}

void stp_session_deliver_topic(struct stp_sub *sub, struct stp_msg *m)
{
    struct stp_conn *c = sub->conn;
    if (c->closing != STP_OPEN)
        return;
    if (sub->sel && !selected(sub, m))
        return;
    if (sub->holding) {
        hold(sub, m, 0, false);
        return;
    }
    if (sub->ack_mode != STP_ACK_AUTO) {
        deliver_topic_acked(sub, m);
        return;
    }
    write_delivery(sub, m, 0, false); /* no tag: auto acks carry no ack id */
    stp_conn_check_output(c);         /* over --max-pending-output: a slow consumer */
}

void stp_session_deliver_queue(struct stp_sub *sub, struct stp_msg *m, uint64_t tag,
                               bool redelivered)
{
    struct stp_conn *c = sub->conn;
    if (sub->holding) {
        hold(sub, m, tag, redelivered);
        return;
    }
    if (sub->ack_mode != STP_ACK_AUTO && stp_unacked_push(&sub->ua, tag, m) < 0) {
        stp_conn_close(c, STP_CLOSE_NOW);
        return;
    }
    /* Bounded by the consumer's credit, not by --max-pending-output. */
    size_t mark = stp_conn_exempt_begin(c);
    write_delivery(sub, m, tag, redelivered);
    stp_conn_exempt_end(c, mark);
    sub->tag_queued = tag;
}

/* --- ACK / NACK --- */

static int settle(struct stp_conn *c, struct stp_sub *sub, size_t idx, enum stp_verdict v)
{
    if (!sub->is_queue) {
        settle_topic(sub, idx, v);
        return 0;
    }
    bool upto = sub->ack_mode == STP_ACK_CLIENT;
    struct stp_post cmd = stp_post_qack(sub->key, stp_unacked_tag_at(&sub->ua, idx), upto,
                                        v != STP_VERDICT_ACK, v == STP_VERDICT_REJECT);
    if (upto)
        stp_unacked_settle_upto(&sub->ua, idx);
    else
        stp_unacked_settle_one(&sub->ua, idx);
    stp_session_post(c, sub->owner, &cmd);
    return 0;
}

/* "<num>-<tag>" */
static bool parse_ack_id(const char *id, size_t len, uint32_t *num, uint64_t *tag)
{
    const char *dash = memchr(id, '-', len);
    uint64_t n;
    if (!dash || stp_parse_u64((struct stp_slice){id, (size_t)(dash - id)}, &n) < 0 ||
        n > UINT32_MAX)
        return false;
    *num = (uint32_t)n;
    return stp_parse_u64((struct stp_slice){dash + 1, len - (size_t)(dash - id) - 1}, tag) == 0;
}

#define ACK_ID_MAX 64

static int unknown_ack(struct stp_conn *c, const struct stp_frame *f)
{
    return stp_session_bad(c, f, "unknown message",
                           "ACK/NACK names no message awaiting acknowledgement here.");
}

struct stp_sub *stp_session_sub_by_num(struct stp_conn *c, uint32_t num)
{
    return find_sub_by_num(c, num);
}

/* Is the delivery with this message-id awaiting acknowledgement on sub? */
static bool find_by_msg_id(struct stp_sub *sub, uint64_t msg_id, struct stp_ack_ref *ref)
{
    ssize_t i = stp_unacked_find_id(&sub->ua, msg_id);
    if (i < 0)
        return false;
    *ref = (struct stp_ack_ref){sub, stp_unacked_tag_at(&sub->ua, (size_t)i)};
    return true;
}

int stp_session_resolve_ack(struct stp_conn *c, const char *id, size_t id_len, bool named,
                            struct stp_sub *sub, struct stp_ack_ref *ref)
{
    *ref = (struct stp_ack_ref){0};
    if (stp_sess(c)->version >= STP_V12) {
        uint32_t num;
        uint64_t tag;
        /* The ack id names its subscription; a subscription header is not
         * needed in 1.2. */
        if (!parse_ack_id(id, id_len, &num, &tag) || !(sub = find_sub_by_num(c, num)))
            return -1;
        if (stp_unacked_find_tag(&sub->ua, tag) < 0)
            return -1;
        *ref = (struct stp_ack_ref){sub, tag};
        return 0;
    }
    uint64_t msg_id;
    if (stp_parse_u64((struct stp_slice){id, id_len}, &msg_id) < 0)
        return -1;
    /* 1.1 names the subscription, asked first; 1.0 does not, and a 1.1
     * frame may name the wrong one: then each of the connection's (at most
     * --max-subscriptions) subscriptions is asked. */
    if (named && sub && find_by_msg_id(sub, msg_id, ref))
        return 0;
    for (sub = stp_sess(c)->subs; sub; sub = sub->next)
        if (find_by_msg_id(sub, msg_id, ref))
            return 0;
    return -1;
}

void stp_session_settle_ref(struct stp_conn *c, const struct stp_ack_ref *ref, enum stp_verdict v)
{
    if (!ref->sub)
        return;
    /* Gone since it was resolved: an earlier cumulative ACK of the same
     * COMMIT settled it already. */
    ssize_t i = stp_unacked_find_tag(&ref->sub->ua, ref->tag);
    if (i >= 0)
        settle(c, ref->sub, (size_t)i, v);
}

int stp_session_apply_ack(struct stp_conn *c, const struct stp_frame *f, enum stp_verdict v,
                          const char *id, size_t id_len, bool named, struct stp_sub *sub)
{
    struct stp_ack_ref ref;
    if (stp_session_resolve_ack(c, id, id_len, named, sub, &ref) < 0)
        return unknown_ack(c, f);
    stp_session_settle_ref(c, &ref, v);
    return 0;
}

int stp_session_on_ack(struct stp_conn *c, const struct stp_frame *f, bool nack)
{
    const char *idname = stp_sess(c)->version >= STP_V12 ? "id" : "message-id";
    const struct stp_slice *id = stp_frame_header(f, idname);
    if (!id)
        return stp_session_badf(c, f, "Missing header", "%s must include the '%s' header.",
                                nack ? "NACK" : "ACK", idname);
    /* 1.1 asks for a subscription header, but as RabbitMQ does, a missing
     * one or one that names no subscription of this connection does not
     * matter: message-ids are unique in the broker, so the id alone finds
     * the delivery among the connection's subscriptions (as in 1.0). */
    const struct stp_slice *subh = stp_frame_header(f, "subscription");
    /* Every id this broker hands out is short (a message-id, or
     * "<sub>-<tag>"): a longer one names nothing, and is not kept. */
    if (id->len > ACK_ID_MAX)
        return unknown_ack(c, f);
    struct stp_sub *sub = subh ? find_sub_by_id(c, subh->p, subh->len) : NULL;
    if (!sub)
        subh = NULL;
    /* RabbitMQ's NACK requeue:false: the message is not put back. */
    const struct stp_slice *rq = nack ? stp_frame_header(f, "requeue") : NULL;
    enum stp_verdict v = !nack                                                  ? STP_VERDICT_ACK
                         : rq && rq->len == 5 && memcmp(rq->p, "false", 5) == 0 ? STP_VERDICT_REJECT
                                                                                : STP_VERDICT_NACK;
    const struct stp_slice *tx = stp_frame_header(f, "transaction");
    if (tx)
        return stp_session_txn_ack(c, f, v, tx, id, sub);
    int rc = stp_session_apply_ack(c, f, v, id->p, id->len, subh != NULL, sub);
    if (rc < 0)
        return rc;
    return stp_session_receipt_fence(c, stp_session_receipt(f), false);
}
