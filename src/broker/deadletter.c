/*
 * deadletter.c - the copy of a queue message that moves to its dead-letter
 * queue (issue 12): /queue/DLQ.<name>, with headers saying why.
 *
 * The copy is a new message: its destination line is the DLQ's, and
 * x-death-reason and x-original-destination come right after it (before
 * the original's headers, so a reader that takes the first of a name sees
 * the broker's, not a client's forgery). Any thread; the original is only
 * read.
 */
#include "broker/deadletter.h"

#include "stampede/buf.h"
#include "stampede/msg.h"
#include "stampede/stomp.h"

#include <string.h>

#define QUEUE_PREFIX "/queue/"
#define DLQ_PREFIX "/queue/DLQ."

bool stp_dead_letter_is_dlq(const char *name, size_t len)
{
    return len >= sizeof(DLQ_PREFIX) - 1 && memcmp(name, DLQ_PREFIX, sizeof(DLQ_PREFIX) - 1) == 0;
}

/* Append "name:value\n" with value escaped the 1.2 way; *changed when the
 * escaping changed it. */
static int header(struct stp_buf *b, const char *name, struct stp_slice value, bool *changed)
{
    size_t before;
    int rc = stp_buf_append(b, name, strlen(name));
    rc |= stp_buf_append(b, ":", 1);
    before = b->len;
    rc |= stp_escape_append(b, value, STP_V12);
    if (b->len - before != value.len)
        *changed = true;
    rc |= stp_buf_append(b, "\n", 1);
    return rc;
}

struct stp_msg *stp_dead_letter_build(const struct stp_msg *m, const char *why, size_t max_dest_len)
{
    size_t qlen = sizeof(QUEUE_PREFIX) - 1;
    if (m->dest_len <= qlen || m->dest_len - qlen + sizeof(DLQ_PREFIX) - 1 > max_dest_len)
        return NULL;
    const char *nl = memchr(m->tail, '\n', m->tail_len);
    if (!nl)
        return NULL;
    size_t rest = m->tail_len - (size_t)(nl + 1 - m->tail);
    struct stp_buf name = STP_BUF_INIT, h = STP_BUF_INIT;
    int rc = stp_buf_append(&name, DLQ_PREFIX, sizeof(DLQ_PREFIX) - 1);
    rc |= stp_buf_append(&name, m->dest + qlen, m->dest_len - qlen);
    const char *dlq = name.data;
    size_t dlen = name.len;
    bool changed = m->needs_escape;
    rc |= header(&h, "destination", (struct stp_slice){dlq, dlen}, &changed);
    rc |= header(&h, "x-death-reason", (struct stp_slice){why, strlen(why)}, &changed);
    rc |= header(&h, "x-original-destination", (struct stp_slice){m->dest, m->dest_len}, &changed);
    struct stp_msg *d = rc == 0 ? stp_msg_alloc(dlq, dlen, h.len + rest) : NULL;
    if (d) {
        memcpy((char *)d->tail, h.data, h.len);
        memcpy((char *)d->tail + h.len, nl + 1, rest);
        d->tail_len = h.len + rest;
        d->body_len = m->body_len;
        d->needs_escape = changed;
        d->persistent = m->persistent;
        stp_msg_set_id(d, m->id);
    }
    stp_buf_free(&h);
    stp_buf_free(&name);
    return d;
}
