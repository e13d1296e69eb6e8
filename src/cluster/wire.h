/*
 * wire.h - what a node puts in a NATS message for a topic message.
 *
 *   "STP1"            4 bytes, the format (anything else is refused)
 *   origin            8 bytes LE: the publishing node's random id (drawn at
 *                     start, so a restarted node is a new origin)
 *   seq               8 bytes LE: 1, 2, 3... per origin, in publish order
 *   expires_ms        8 bytes LE: epoch ms from which it is never delivered
 *                     (0: never)
 *   flags             1 byte: bit 0 persistent:true; others must be 0
 *   tail              the rest: the message's shared tail (header lines,
 *                     a blank line, the body, a NUL; see stampede/msg.h)
 *
 * The receiver never trusts the tail: it parses it as a SEND frame with the
 * broker's limits and builds its own message from that (cluster_in.c), so
 * a peer (or anyone who may publish on the NATS server) cannot inject bytes
 * into a subscriber's stream that a local SEND could not.
 *
 * (origin, seq) also lets a receiver drop the second copy NATS delivers when
 * two of its subscriptions match one subject (a topic and a pattern).
 */
#ifndef STP_CLUSTER_WIRE_H
#define STP_CLUSTER_WIRE_H

#include "stampede/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STP_WIRE_HEADER 29

struct stp_wire_msg {
    uint64_t origin, seq, expires_ms;
    bool persistent;
    const char *tail; /* inside the decoded bytes */
    size_t tail_len;
};

/* Append the encoding of w (w->tail[0, tail_len)) to out. 0 or STP_ENOMEM. */
int stp_wire_encode(struct stp_buf *out, const struct stp_wire_msg *w);
/* Decode data[0, len) into *w (tail points into data). 0, or STP_EINVAL: not
 * this format, unknown flags, or a tail that is empty or not NUL-terminated. */
int stp_wire_decode(const void *data, size_t len, struct stp_wire_msg *w);

#endif
