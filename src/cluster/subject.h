/*
 * subject.h - Stampede destination names as NATS subjects, reversibly
 * (issue 14: clustering on NATS). No sockets, no loop: bytes in, bytes out.
 *
 * NATS subjects are tokens separated by '.'; a token may not be empty and
 * may not contain whitespace; '*' and '>' as whole tokens are wildcards;
 * printable ASCII is what every client and server accept. Stampede names
 * are any bytes but control bytes (the session refuses those), so each
 * name is mapped token by token:
 *
 *   /topic/a.b.c     -> PREFIX.t.a.b.c    (a topic's dot-separated words
 *                                          stay tokens: a pattern maps to
 *                                          NATS's own wildcards below)
 *   /queue/orders.eu -> PREFIX.q.orders~2Eeu  (a queue's name is one token)
 *   /reply-queue/x.y -> PREFIX.r.x~2Ey    (a temp queue's private name too)
 *
 * Inside a token every byte outside [A-Za-z0-9_-] is written "~XX" (two
 * uppercase hex digits), '~' included, and an empty word is the token "~"
 * alone, so decoding is exact and no token is empty, a wildcard or
 * contains whitespace. A topic pattern's `*` word maps to NATS's `*`, and
 * a trailing `#` to `>` (NATS has no zero-or-more wildcard inside a
 * subject: a pattern with `#` elsewhere, or a trailing `#` that must also
 * match zero words, asks NATS for a wider subject and filters locally;
 * stp_subject_of_pattern says which).
 *
 * PREFIX is the caller's (e.g. "stp"), a valid subject itself.
 */
#ifndef STP_CLUSTER_SUBJECT_H
#define STP_CLUSTER_SUBJECT_H

#include "stampede/buf.h"

#include <stdbool.h>
#include <stddef.h>

/* The subject of destination name[0, len) ("/topic/...", "/queue/..." or
 * "/reply-queue/...")
 * appended to out. 0, STP_EINVAL (another kind of name, an empty name, a
 * control byte) or STP_ENOMEM. */
int stp_subject_of(struct stp_buf *out, const char *prefix, const char *name, size_t len);

/* The destination name of subject s[0, len) appended to out: the inverse
 * of stp_subject_of. 0, STP_EINVAL (not a subject stp_subject_of makes
 * with this prefix) or STP_ENOMEM. */
int stp_subject_to_dest(struct stp_buf *out, const char *prefix, const char *s, size_t len);

/* The NATS subscription subject for topic pattern name[0, len)
 * ("/topic/a.*.#"): `*` words become `*`, a final `#` becomes `>`. Sets
 * *exact when every message NATS delivers for it matches the pattern
 * (false: the caller filters with the pattern itself, e.g. for `a.#`,
 * which NATS's `a.>` does not match on `a` alone). 0, STP_EINVAL or
 * STP_ENOMEM. */
int stp_subject_of_pattern(struct stp_buf *out, const char *prefix, const char *name, size_t len,
                           bool *exact);

#endif
