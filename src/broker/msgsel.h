/*
 * msgsel.h - does a message pass a selector? The one way the broker matches
 * a compiled selector (src/select) against a message's headers: topic
 * subscriptions (session_sub.c), queue selector groups (qselect.c) and
 * durable subscriptions' bindings (topic.c). Any thread that holds a
 * reference to the message; the selector is only read.
 */
#ifndef STP_BROKER_MSGSEL_H
#define STP_BROKER_MSGSEL_H

#include "select/select.h"
#include "stampede/msg.h"

#include <stdbool.h>

static inline bool stp_msg_selected(const struct stp_selector *sel, const struct stp_msg *m)
{
    /* Fields set one by one: an initializer would zero the 1 KiB scratch
     * on every match. The headers are the shared tail's, up to the blank
     * line before the body. */
    struct stp_selector_headers h;
    h.block = m->tail;
    h.len = m->tail_len - m->body_len - 1;
    return stp_selector_match(sel, stp_selector_header_lookup, &h);
}

#endif
