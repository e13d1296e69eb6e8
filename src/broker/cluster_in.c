/*
 * cluster_in.c - what arrives from NATS, on libnats's delivery thread (one
 * thread, one message at a time, in arrival order; see cluster.h).
 *
 * A message is routed to its topic's owner only when it is a Stampede
 * message (wire.h) from another node, not a second copy of one already
 * routed (overlapping subscriptions), on a subject that names a topic, and
 * its tail parses as a SEND frame to that same topic within this broker's
 * frame limits. The message that goes on is built here from the parsed
 * frame, exactly as a local SEND's would be, so nothing a peer sends can
 * reach a subscriber unless a local client could have sent it too.
 */
#include "broker/cluster_int.h"

#include "broker/broker.h"
#include "broker/cmd.h"
#include "broker/dest.h"
#include "broker/session_int.h"
#include "broker/worker.h"
#include "cluster/subject.h"
#include "cluster/wire.h"
#include "stampede/clock.h"
#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/mailbox.h"
#include "stampede/msg.h"

#include <string.h>
#include <time.h>

/* How long the delivery thread sleeps while an owner's ring is full. */
#define RING_FULL_WAIT_NS 50000L

int stp_cluster_in_init(struct stp_cluster_in *in, const struct stp_config *cfg)
{
    /* "SEND\n" comes on top of the peer's tail: room for it. */
    struct stp_limits lim = {.max_frame = cfg->max_frame_size + 64,
                             .max_headers = cfg->max_headers + 3,
                             .max_header_len = cfg->max_header_length + 32};
    if (stp_parser_init(&in->parser, &lim) < 0)
        return STP_ENOMEM;
    in->parser.version = STP_V12; /* tails are escaped the 1.2 way */
    return 0;
}

void stp_cluster_in_free(struct stp_cluster_in *in)
{
    stp_parser_free(&in->parser);
    stp_buf_free(&in->frame);
    stp_buf_free(&in->dest);
    stp_buf_free(&in->scratch);
}

/* True when seq is new from origin (and remembers it). Per origin the
 * server sends in publish order, so a number not above the last one seen is
 * a second copy. A full table forgets its least recently seen origin. */
static bool fresh(struct stp_cluster_in *in, uint64_t origin, uint64_t seq)
{
    struct stp_cluster_origin *slot = NULL, *oldest = &in->origins[0];
    in->clock++;
    for (size_t i = 0; i < STP_CLUSTER_ORIGINS; i++) {
        struct stp_cluster_origin *o = &in->origins[i];
        if (o->used && o->origin == origin) {
            slot = o;
            break;
        }
        if (o->used < oldest->used)
            oldest = o;
    }
    if (!slot) {
        *oldest = (struct stp_cluster_origin){.origin = origin, .last_seq = 0};
        slot = oldest;
    }
    slot->used = in->clock;
    if (seq <= slot->last_seq)
        return false;
    slot->last_seq = seq;
    return true;
}

void stp_cluster_in_reject(struct stp_cluster *c, const char *subject, const char *why)
{
    /* Once per power of two: a flood of junk is a few lines. */
    uint64_t n = atomic_fetch_add_explicit(&c->rejected, 1, memory_order_relaxed) + 1;
    if ((n & (n - 1)) == 0)
        stp_warn("cluster: dropped a message on NATS subject '%.64s': %s (%llu so far)", subject,
                 why, (unsigned long long)n);
}

/* The topic (not a pattern) or temp queue's private name (a reply from
 * another node) named by subject, into in->dest (NUL-terminated), or NULL. */
const char *stp_cluster_in_dest(struct stp_cluster_in *in, const char *subject, size_t *len)
{
    stp_buf_reset(&in->dest);
    if (stp_subject_to_dest(&in->dest, STP_CLUSTER_PREFIX, subject, strlen(subject)) < 0 ||
        stp_buf_append(&in->dest, "", 1) < 0)
        return NULL;
    *len = in->dest.len - 1;
    return (const char *)in->dest.data;
}

static const char *topic_of(struct stp_cluster_in *in, const char *subject)
{
    size_t len, words;
    const char *dest = stp_cluster_in_dest(in, subject, &len);
    if (!dest)
        return NULL;
    enum stp_dest_kind kind = stp_dest_kind(dest, len);
    if (kind == STP_DEST_REPLY)
        return dest;
    if (kind != STP_DEST_TOPIC || stp_topic_is_pattern(dest, len, &words))
        return NULL;
    return dest;
}

/* The frame "SEND\n" + tail, parsed in in->frame; NULL unless it is one
 * whole SEND whose destination is dest. */
const struct stp_frame *stp_cluster_in_parse(struct stp_cluster_in *in,
                                             const struct stp_wire_msg *wm, const char *dest,
                                             struct stp_frame *f)
{
    stp_buf_reset(&in->frame);
    if (stp_buf_append(&in->frame, "SEND\n", 5) < 0 ||
        stp_buf_append(&in->frame, wm->tail, wm->tail_len) < 0)
        return NULL;
    stp_parser_reset(&in->parser);
    in->parser.version = STP_V12;
    ssize_t n = stp_parse(&in->parser, (char *)in->frame.data, in->frame.len, f);
    if (n != (ssize_t)in->frame.len || f->cmd != STP_CMD_SEND)
        return NULL;
    const struct stp_slice *d = stp_frame_header(f, "destination");
    if (!d || !stp_slice_eq(*d, dest))
        return NULL;
    return f;
}

/* Hand cmd to worker `to`, waiting while its ring is full; dropped when
 * the broker stops meanwhile. */
bool stp_cluster_in_post(struct stp_cluster *c, unsigned to, struct stp_post *cmd)
{
    struct timespec pause = {0, RING_FULL_WAIT_NS};
    while (stp_mailbox_try_post(c->b->mb, c->ingress, to, cmd) == STP_EAGAIN) {
        if (atomic_load_explicit(&c->closing, memory_order_relaxed)) {
            stp_post_release(cmd);
            return false;
        }
        nanosleep(&pause, NULL);
    }
    return true;
}

const char *stp_cluster_in_check(struct stp_cluster_in *in, const char *subject, const void *data,
                                 size_t len, struct stp_wire_msg *wm, struct stp_frame *f,
                                 const char **why)
{
    if (stp_wire_decode(data, len, wm) < 0) {
        *why = "not a Stampede cluster message";
        return NULL;
    }
    const char *dest = topic_of(in, subject);
    if (!dest) {
        *why = "the subject names no topic (or temp queue)";
        return NULL;
    }
    if (!stp_cluster_in_parse(in, wm, dest, f)) {
        *why = "not a SEND frame to that topic within this node's frame limits";
        return NULL;
    }
    return dest;
}

void stp_cluster_on_msg(void *ctx, const struct stp_nats_msg *nm)
{
    struct stp_cluster *c = ctx;
    struct stp_cluster_in *in = &c->in;
    if (atomic_load_explicit(&c->closing, memory_order_relaxed))
        return;
    if (stp_cluster_in_js(c, nm))
        return;
    struct stp_wire_msg wm;
    struct stp_frame f;
    const char *why;
    const char *dest = stp_cluster_in_check(in, nm->subject, nm->data, nm->len, &wm, &f, &why);
    if (!dest) {
        stp_cluster_in_reject(c, nm->subject, why);
        return;
    }
    if (wm.origin == c->origin)
        return; /* our own (NATS does not echo; a second node with our id would be odd) */
    if (!fresh(in, wm.origin, wm.seq)) {
        atomic_fetch_add_explicit(&c->duplicates, 1, memory_order_relaxed);
        return;
    }
    if (wm.expires_ms && wm.expires_ms <= stp_epoch_ms())
        return; /* expired on the way */
    struct stp_msg *m = stp_msg_from_send(&in->scratch, &f, c->ingress);
    if (!m) {
        stp_error("cluster: out of memory: a message for %s from another node is lost", dest);
        return;
    }
    m->expires_ms = wm.expires_ms;
    m->persistent = wm.persistent;
    unsigned owner = stp_owner_of(&c->b->workers[0], m->dest, m->dest_len);
    struct stp_post cmd = stp_post_route(m);
    cmd.worker = STP_NO_CONN;
    if (stp_cluster_in_post(c, owner, &cmd))
        atomic_fetch_add_explicit(&c->delivered_in, 1, memory_order_relaxed);
}
