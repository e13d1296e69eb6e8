/*
 * session_temp.c - temporary queues for request/reply (RabbitMQ's
 * /temp-queue/ destinations).
 *
 * Runs on the connection's worker. A connection names its temp queues
 * /temp-queue/NAME; behind each is a private queue with an unguessable name,
 * /reply-queue/stp.gen-<22 characters of 128 random bits>, chosen so that
 * this very worker owns it: the subscription that makes the queue is a
 * direct call, so the queue exists before any request naming it as
 * reply-to leaves the connection, and a reply can never arrive first.
 *
 * - SEND with reply-to:/temp-queue/NAME: the header is rewritten to the
 *   /reply-queue/ name and, unless the connection already consumes that
 *   queue, it is subscribed to it (id "/temp-queue/NAME", ack auto), as
 *   RabbitMQ does.
 * - SUBSCRIBE and SEND to /temp-queue/NAME use the same queue.
 * - Anyone may SEND to the /reply-queue/ name (knowing it is the
 *   capability); nobody may SUBSCRIBE to it (session_sub.c). A reply to a
 *   queue that is gone is dropped (queue.c).
 * - The queue goes with its last consumer: the connection closing or
 *   unsubscribing (queue.c, forget_if_idle). Its messages are never
 *   journaled.
 *
 * The table of names lives in the session (temps) and is freed with it; it
 * holds at most --max-subscriptions names.
 */
#include "broker/dest.h"
#include "broker/session_int.h"
#include "broker/worker.h"
#include "stampede/error.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define REPLY_PREFIX "/reply-queue/stp.gen-"
#define TOKEN_BYTES 16
#define TOKEN_CHARS 22 /* base64url of 16 bytes, unpadded */
#define REAL_LEN (sizeof(REPLY_PREFIX) - 1 + TOKEN_CHARS)
/* Draws before giving up on a name this worker owns: each draw lands here
 * with probability 1/workers, so 64 * workers draws fail with odds under
 * e^-64. */
#define DRAWS_PER_WORKER 64

struct temp_entry {
    char real[REAL_LEN + 1];
    size_t name_len;
    char name[]; /* "/temp-queue/NAME": the map's key */
};

static void base64url(const unsigned char *in, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t bits = 0, acc = 0, o = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = abc[(acc >> bits) & 63];
        }
    }
    if (bits)
        out[o++] = abc[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

/* A fresh /reply-queue/ name this worker owns, into real. 0 or STP_EIO. */
static int draw_name(struct stp_worker *w, char *real)
{
    memcpy(real, REPLY_PREFIX, sizeof(REPLY_PREFIX) - 1);
    for (unsigned i = 0; i < DRAWS_PER_WORKER * w->broker_workers; i++) {
        unsigned char r[TOKEN_BYTES];
        if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
            return STP_EIO;
        base64url(r, sizeof(r), real + sizeof(REPLY_PREFIX) - 1);
        if (stp_owner_of(w, real, REAL_LEN) == w->id)
            return 0;
    }
    return STP_EIO;
}

int stp_session_temp_resolve(struct stp_conn *c, const struct stp_frame *f, struct stp_slice temp,
                             struct stp_slice *real)
{
    struct stp_session *s = stp_sess(c);
    struct temp_entry *e = stp_map_get(&s->temps, temp.p, temp.len);
    if (!e) {
        struct stp_worker *w = stp_worker_of(c);
        if (s->temps.count >= w->cfg->max_subscriptions)
            return stp_session_bad(c, f, "too many temp queues",
                                   "This connection uses --max-subscriptions temp queues already.");
        e = malloc(sizeof(*e) + temp.len);
        if (!e)
            return STP_ENOMEM;
        if (draw_name(w, e->real) < 0) {
            free(e);
            return stp_session_bad(c, f, "temp queue not made",
                                   "The broker could not draw a random name (getrandom failed).");
        }
        e->name_len = temp.len;
        memcpy(e->name, temp.p, temp.len);
        if (stp_map_put(&s->temps, e->name, e->name_len, e) < 0) {
            free(e);
            return STP_ENOMEM;
        }
    }
    *real = (struct stp_slice){e->real, REAL_LEN};
    return 0;
}

/* Does a subscription of this connection consume the queue named real? */
static bool consumes(struct stp_conn *c, struct stp_slice real)
{
    for (struct stp_sub *sub = stp_sess(c)->subs; sub; sub = sub->next)
        if (sub->dest_len == real.len && memcmp(sub->dest, real.p, real.len) == 0)
            return true;
    return false;
}

int stp_session_temp_reply_to(struct stp_conn *c, const struct stp_frame *f, struct stp_slice temp,
                              struct stp_slice *real)
{
    int rc = stp_session_temp_resolve(c, f, temp, real);
    if (rc < 0 || consumes(c, *real))
        return rc;
    if (stp_session_has_sub_id(c, temp))
        return stp_session_bad(c, f, "Duplicated subscription identifier",
                               "reply-to names a temp queue whose automatic subscription id is "
                               "already used by another subscription of this connection.");
    if (stp_sess(c)->nsubs >= stp_worker_of(c)->cfg->max_subscriptions)
        return stp_session_bad(c, f, "too many subscriptions",
                               "This connection holds --max-subscriptions subscriptions already.");
    struct stp_sub *sub = stp_session_sub_make(c, temp, *real, STP_ACK_AUTO, 0, NULL);
    if (!sub || stp_session_sub_start(c, sub) < 0)
        return STP_ENOMEM;
    return 0;
}

void stp_session_temps_free(struct stp_conn *c)
{
    struct stp_map *m = &stp_sess(c)->temps;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].hash)
            free(m->slots[i].value);
    stp_map_free(m);
}
