/*
 * durable_sub.c - durable topic subscriptions, the session's side.
 *
 * A durable subscription is a queue the broker keeps for a subscriber
 * while it is away. Two dialects name one:
 *
 *   RabbitMQ: SUBSCRIBE with durable:true (or persistent:true), not
 *             auto-delete:true, and an id; UNSUBSCRIBE with durable:true
 *             (or persistent:true) removes it.
 *   ActiveMQ: CONNECT with client-id, SUBSCRIBE with
 *             activemq.subscriptionName; UNSUBSCRIBE naming it removes it.
 *
 * Its identity is (dialect, login, client-id, name): a SHA-256 over them,
 * so one login can never reach another's subscription, and any name length
 * gives a short queue name:
 *
 *   /dsub/<32 hex digits: 128 bits of the hash>/topic/NAME
 *
 * stp_owner_of hashes only the /topic/NAME part, so the queue lives on its
 * topic's owner: the topic hands each message to it by a direct call, in
 * the topic's order, and a publisher's receipt fences the worker that
 * stores it. The owner's side (binding record, one subscriber at a time,
 * copies per subscription) is in queue.c and topic.c. Runs on the
 * connection's worker.
 */
#include "broker/broker.h"
#include "broker/dest.h"
#include "broker/session_int.h"
#include "broker/worker.h"
#include "stampede/error.h"

#include <mbedtls/md.h>
#include <stdlib.h>
#include <string.h>

#define HASH_HEX 32

static bool is_true(const struct stp_slice *v)
{
    return v && v->len == 4 && memcmp(v->p, "true", 4) == 0;
}

/* Does the frame ask for a durable subscription, and under which name? */
enum dialect { DIALECT_NONE = 0, DIALECT_RABBITMQ = 'r', DIALECT_ACTIVEMQ = 'a' };

static enum dialect dialect_of(const struct stp_frame *f, struct stp_slice *name)
{
    const struct stp_slice *amq = stp_frame_header(f, "activemq.subscriptionName");
    if (amq && amq->len) {
        *name = *amq;
        return DIALECT_ACTIVEMQ;
    }
    const struct stp_slice *id = stp_frame_header(f, "id");
    bool durable =
        is_true(stp_frame_header(f, "durable")) || is_true(stp_frame_header(f, "persistent"));
    if (durable && !is_true(stp_frame_header(f, "auto-delete"))) {
        *name = id ? *id : (struct stp_slice){NULL, 0};
        return DIALECT_RABBITMQ;
    }
    return DIALECT_NONE;
}

static int hash_part(mbedtls_md_context_t *ctx, const char *p, size_t len)
{
    unsigned char n[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                          (unsigned char)(len >> 8), (unsigned char)len};
    return mbedtls_md_update(ctx, n, 4) | mbedtls_md_update(ctx, (const unsigned char *)p, len);
}

/* "/dsub/<hex>" + topic into out (size >= 6 + HASH_HEX + topic.len + 1). */
static int make_name(struct stp_conn *c, enum dialect d, struct stp_slice name,
                     struct stp_slice topic, char *out)
{
    struct stp_session *s = stp_sess(c);
    unsigned char sum[32];
    char tag = (char)d;
    mbedtls_md_context_t ctx;
    mbedtls_md_init(&ctx);
    int rc = mbedtls_md_setup(&ctx, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 0);
    rc |= mbedtls_md_starts(&ctx);
    rc |= hash_part(&ctx, &tag, 1);
    rc |= hash_part(&ctx, s->login ? s->login : "", s->login ? s->login_len : 0);
    rc |=
        hash_part(&ctx, s->client_id ? s->client_id : "", s->client_id ? strlen(s->client_id) : 0);
    rc |= hash_part(&ctx, name.p, name.len);
    rc |= mbedtls_md_finish(&ctx, sum);
    mbedtls_md_free(&ctx);
    if (rc)
        return STP_ENOMEM;
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    memcpy(o, STP_DSUB_PREFIX, sizeof(STP_DSUB_PREFIX) - 1);
    o += sizeof(STP_DSUB_PREFIX) - 1;
    for (size_t i = 0; i < HASH_HEX / 2; i++) {
        *o++ = hex[sum[i] >> 4];
        *o++ = hex[sum[i] & 15];
    }
    memcpy(o, topic.p, topic.len);
    o[topic.len] = '\0';
    return 0;
}

int stp_session_dsub_target(struct stp_conn *c, const struct stp_frame *f, struct stp_slice topic,
                            char **qname)
{
    struct stp_slice name;
    *qname = NULL;
    enum dialect d = dialect_of(f, &name);
    if (d == DIALECT_NONE || stp_dest_kind(topic.p, topic.len) != STP_DEST_TOPIC)
        return 0;
    if (d == DIALECT_ACTIVEMQ && !stp_sess(c)->client_id)
        return stp_session_bad(c, f, "durable subscription needs a client-id",
                               "activemq.subscriptionName names a durable subscription of the "
                               "client-id given on CONNECT; this connection gave none.");
    if (d == DIALECT_RABBITMQ && !name.p)
        return stp_session_bad(c, f, "durable subscription needs an id",
                               "A durable subscription (durable:true) is named by its id header.");
    if (stp_topic_is_pattern(topic.p, topic.len, NULL))
        return stp_session_bad(c, f, "durable wildcard subscriptions are not supported",
                               "A durable subscription names one topic, without * or # words.");
    *qname = malloc(sizeof(STP_DSUB_PREFIX) - 1 + HASH_HEX + topic.len + 1);
    if (!*qname || make_name(c, d, name, topic, *qname) < 0) {
        free(*qname);
        *qname = NULL;
        return STP_ENOMEM;
    }
    return 1;
}

uint16_t stp_session_login_stripe(struct stp_conn *c)
{
    const struct stp_session *s = stp_sess(c);
    uint64_t h = stp_hash(s->login ? s->login : "", s->login ? s->login_len : 0);
    return (uint16_t)(h % STP_DSUB_STRIPES);
}

bool stp_session_dsub_unsub_asked(const struct stp_frame *f)
{
    struct stp_slice name;
    return dialect_of(f, &name) != DIALECT_NONE;
}

int stp_session_dsub_remove(struct stp_conn *c, const struct stp_frame *f, const char *qname)
{
    char *owned = NULL;
    if (!qname) {
        /* Not subscribed now: the frame names the topic. */
        const struct stp_slice *dest = stp_frame_header(f, "destination");
        if (!dest)
            return stp_session_bad(c, f, "No subscription found",
                                   "To remove a durable subscription this connection does not "
                                   "hold, UNSUBSCRIBE also names its destination.");
        if (stp_session_check_dest(c, f, dest) < 0)
            return -1;
        int rc = stp_session_dsub_target(c, f, *dest, &owned);
        if (rc <= 0)
            return rc < 0 ? rc
                          : stp_session_bad(c, f, "No subscription found",
                                            "That names no durable topic subscription.");
        qname = owned;
    }
    struct stp_post cmd = stp_post_dsub_del(owned ? owned : strdup(qname));
    if (!cmd.u.dsub_del.queue)
        return STP_ENOMEM;
    unsigned owner = stp_owner_of(stp_worker_of(c), qname, strlen(qname));
    stp_session_post(c, owner, &cmd);
    return 0;
}
