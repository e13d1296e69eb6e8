/*
 * cmd.h - the small commands workers post to each other through mailboxes.
 *
 * A command is copied into and out of a ring. It may own one message
 * reference (`msg`) and, for a few types, a heap string (`str`); the handler
 * that receives it takes over both. A connection on another worker is named
 * by (worker, slot, gen): the slot's generation changes when the connection
 * is gone, so a late command finds nobody and is dropped.
 */
#ifndef STP_BROKER_CMD_H
#define STP_BROKER_CMD_H

#include <stdint.h>

struct stp_msg;

enum stp_cmd_type {
    CMD_ROUTE = 1,     /* -> owner: msg published to msg->dest by conn */
    CMD_TOPIC_DELIVER, /* owner -> worker: give msg to local subscribers */
    CMD_INTEREST,      /* worker -> owner: str topic, a = +1/-1 local subscribers */
    CMD_CONSUMER_ADD,  /* worker -> owner: str queue, a = sub key, b = prefetch (0: none),
                          flags CMDF_CLIENT_ACK */
    CMD_CONSUMER_DEL,  /* worker -> owner: a = sub key, b = auto-ack deliveries up to this
                          tag are queued for writing: settled, not requeued (0: none) */
    CMD_QDELIVER,      /* owner -> worker: msg for sub key a, tag b, flags */
    CMD_QWRITTEN,      /* worker -> owner: sub key a, deliveries up to tag b written out */
    CMD_QACK,          /* worker -> owner: sub key a, tag b, flags CMDF_UPTO (else just
                          that one), CMDF_NACK */
    CMD_FENCE,         /* worker -> owner: conn, a = fence id */
    CMD_FENCE_OK,      /* owner -> worker: conn, a = fence id */
    CMD_THROTTLE,      /* owner -> worker: conn, a = 1 pause reading, 0 resume */
    CMD_REFUSED,       /* owner -> worker: --max-destinations reached; str topic (its
                          local subscribers are refused) or NULL (conn is refused) */
};

enum {
    CMDF_REDELIVERED = 1,
    CMDF_UPTO = 2, /* cumulative ack/nack */
    CMDF_NACK = 4,
    CMDF_CLIENT_ACK = 8, /* consumer acknowledges explicitly */
};

struct stp_post {
    uint8_t type;
    uint8_t flags;
    uint16_t worker; /* the connection's worker */
    uint32_t slot;
    uint32_t gen;
    struct stp_msg *msg;
    char *str;
    uint64_t a;
    uint64_t b;
};

#endif
