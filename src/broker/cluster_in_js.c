/*
 * cluster_in_js.c - JetStream's side of what arrives from NATS, on
 * libnats's delivery thread (see cluster_queue.h):
 *
 *   - a leased queue message: subject stp.q.<token>, reply $JS.ACK...; it
 *     passes the same checks as a topic message from another node (a Stampede
 *     message whose tail is one SEND to that very queue within this node's
 *     limits), is rebuilt like a local SEND and goes to the queue's owner
 *     with its ack subject; one that fails them is terminated in JetStream
 *     (+TERM: it could never be delivered);
 *   - answers on this node's inbox "_STP.<id>.": "a.<owner>.<publish id>"
 *     is JetStream's ack of a publish, "f.<owner>.stp.q.<token>" a pull
 *     request's end (a status message: 408 expired, 409, 503 no consumer).
 */
#include "broker/cluster_int.h"

#include "broker/broker.h"
#include "broker/cluster_queue.h"
#include "broker/dest.h"
#include "broker/session_int.h"
#include "broker/worker.h"
#include "cluster/subject.h"
#include "cluster/wire.h"
#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ACK_PREFIX "$JS.ACK."
#define QUEUE_PREFIX STP_CLUSTER_PREFIX ".q."

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* An unsigned decimal at *p up to the next '.' or the end; advances *p
 * past the '.'. false when there is none or it overflows. */
static bool number(const char **p, uint64_t *out)
{
    char *end;
    if (**p < '0' || **p > '9')
        return false;
    errno = 0;
    unsigned long long v = strtoull(*p, &end, 10);
    if (errno || (*end != '.' && *end != '\0'))
        return false;
    *out = v;
    *p = *end ? end + 1 : end;
    return true;
}

/* How many times JetStream has delivered the message, from its ack subject:
 * $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>, or
 * with a domain and account hash before the stream (11+ tokens). 0:
 * unknown. */
static uint64_t delivered_of(const char *reply)
{
    const char *tok[16];
    size_t n = 0;
    for (const char *p = reply + strlen(ACK_PREFIX); n < 16;) {
        tok[n++] = p;
        const char *dot = strchr(p, '.');
        if (!dot)
            break;
        p = dot + 1;
    }
    const char *d = n == 7 ? tok[2] : n >= 9 ? tok[4] : NULL;
    uint64_t v = 0;
    return d && number(&d, &v) ? v : 0;
}

/* The queue named by a subject made by stp_subject_of into in->dest
 * (NUL-terminated), or NULL. */
static const char *queue_of(struct stp_cluster_in *in, const char *subject)
{
    size_t len;
    const char *dest = stp_cluster_in_dest(in, subject, &len);
    return dest && stp_dest_kind(dest, len) == STP_DEST_QUEUE ? dest : NULL;
}

static void terminate(struct stp_cluster *c, const char *reply)
{
    char *subject = strdup(reply);
    if (!subject)
        return; /* delivered again after the ack wait, and checked again */
    struct stp_post cmd = {.type = STP_WCMD_CQ_SETTLE,
                           .worker = STP_NO_CONN,
                           .u.cq_settle = {NULL, subject, STP_CQ_TERM}};
    (void)stp_cluster_in_post(c, c->self, &cmd);
}

const char *stp_cluster_in_check_leased(struct stp_cluster_in *in, const char *subject,
                                        const void *data, size_t len, struct stp_wire_msg *wm,
                                        struct stp_frame *f, const char **why)
{
    const char *dest = NULL;
    *why = NULL;
    if (stp_wire_decode(data, len, wm) < 0)
        *why = "not a Stampede cluster message";
    else if (!(dest = queue_of(in, subject)))
        *why = "the subject names no queue";
    else if (!stp_cluster_in_parse(in, wm, dest, f))
        *why = "not a SEND frame to that queue within this node's frame limits";
    return *why ? NULL : dest;
}

static void leased(struct stp_cluster *c, const struct stp_nats_msg *nm)
{
    struct stp_cluster_in *in = &c->in;
    struct stp_wire_msg wm;
    struct stp_frame f;
    const char *why;
    const char *dest =
        stp_cluster_in_check_leased(in, nm->subject, nm->data, nm->len, &wm, &f, &why);
    if (!dest) {
        stp_cluster_in_reject(c, nm->subject, why);
        terminate(c, nm->reply);
        return;
    }
    struct stp_msg *m = stp_msg_from_send(&in->scratch, &f, c->ingress);
    char *ack = m ? strdup(nm->reply) : NULL;
    if (!ack) {
        stp_error("cluster: out of memory: a message of %s comes back after the ack wait", dest);
        stp_msg_unref(&m);
        return;
    }
    uint64_t delivered = delivered_of(nm->reply);
    m->expires_ms = wm.expires_ms;
    m->persistent = wm.persistent;
    m->cluster_ack = ack;
    m->deliveries = delivered > 1 && delivered < UINT32_MAX ? (uint32_t)delivered - 1 : 0;
    unsigned owner = stp_owner_of(&c->b->workers[0], m->dest, m->dest_len);
    struct stp_post cmd = {
        .type = STP_WCMD_CQ_ARRIVE, .worker = STP_NO_CONN, .u.cq_msg = {m, 0, delivered > 1}};
    (void)stp_cluster_in_post(c, owner, &cmd);
}

/* JetStream's answer to a publish: {"stream":..,"seq":N} when stored (also
 * with "duplicate":true), {"error":{...}} when refused (a full queue), or a
 * status (503: no JetStream answered). */
static int puback_err(const struct stp_nats_msg *nm)
{
    if (nm->status)
        return STP_ESTORE_AWAY;
    const char *p = nm->data;
    bool error = memmem(p, nm->len, "\"error\"", 7) != NULL;
    bool seq = memmem(p, nm->len, "\"seq\"", 5) != NULL;
    return !error && seq ? 0 : STP_ESTORE_REFUSED;
}

/* The end of a pull request: how many messages it will no longer bring
 * (n >= 0), -1 unknown, or STP_CQ_PULL_NO_CONSUMER. */
static int64_t pull_left(const struct stp_nats_msg *nm)
{
    if (nm->status == 503 || nm->status == 404)
        return nm->status == 503 ? STP_CQ_PULL_NO_CONSUMER : nm->pending;
    return nm->pending;
}

static void inbox(struct stp_cluster *c, const struct stp_nats_msg *nm)
{
    const char *p = nm->subject + c->inbox_len + 1;
    char kind = p[0];
    uint64_t owner;
    if ((kind != 'a' && kind != 'f') || p[1] != '.')
        return;
    p += 2;
    if (!number(&p, &owner) || owner >= c->b->nworkers)
        return;
    if (kind == 'a') {
        uint64_t id;
        if (!number(&p, &id))
            return;
        if (nm->status == 503)
            atomic_store_explicit(&c->stream_ok, false, memory_order_relaxed);
        struct stp_post cmd = {
            .type = STP_WCMD_CQ_PUBACK, .worker = STP_NO_CONN, .u.cq_puback = {id, puback_err(nm)}};
        (void)stp_cluster_in_post(c, (unsigned)owner, &cmd);
        return;
    }
    if (!nm->status || !starts(p, QUEUE_PREFIX))
        return; /* a pull's messages come with their own subject */
    const char *queue = queue_of(&c->in, p);
    char *name = queue ? strdup(queue) : NULL;
    if (!name)
        return; /* the owner forgets the pull after a while */
    struct stp_post cmd = {
        .type = STP_WCMD_CQ_PULLED, .worker = STP_NO_CONN, .u.cq = {name, pull_left(nm)}};
    (void)stp_cluster_in_post(c, (unsigned)owner, &cmd);
}

bool stp_cluster_in_js(struct stp_cluster *c, const struct stp_nats_msg *nm)
{
    if (strncmp(nm->subject, c->inbox, c->inbox_len) == 0 && nm->subject[c->inbox_len] == '.') {
        inbox(c, nm);
        return true;
    }
    if (nm->reply && starts(nm->reply, ACK_PREFIX)) {
        if (starts(nm->subject, QUEUE_PREFIX))
            leased(c, nm);
        else
            stp_cluster_in_reject(c, nm->subject, "a JetStream message not of a queue");
        return true;
    }
    return false;
}
