/*
 * framing_raw.c - STOMP frames straight on the stream (stomp://,
 * stomp+ssl://). Plaintext is STOMP; frames need no header of their own.
 */
#include "conn.h"

static void raw_input(struct stp_conn *c, const char *p, size_t n)
{
    if (c->rbuf.len == 0) {
        /* p is a scratch buffer of the net's: hand up in place, keep the rest. */
        stp_conn_app_in_shared(c, (char *)p, n);
        return;
    }
    if (stp_buf_append(&c->rbuf, p, n) < 0) {
        stp_conn_close(c, STP_CLOSE_NOW);
        return;
    }
    stp_conn_app_in(c);
}

const struct stp_framing_ops stp_framing_raw = {
    .name = "stomp",
    .input = raw_input,
};
