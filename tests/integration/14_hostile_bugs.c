/*
 * 14_hostile_bugs.c - issue 9's three reproducers, each against a real broker:
 *   1. a raw NUL inside a header (a destination cut short in C strings);
 *   2. re-entrant parsing: a COMMIT whose SENDs throttle the publisher and
 *      whose ACK drains the queue again (the resume used to re-feed the same
 *      read buffer from inside the COMMIT: frames ran twice, then a freed
 *      buffer was read);
 *   3. frame injection into a STOMP 1.0 subscriber through an escaped LF in a
 *      1.2 publisher's header, and through a raw NUL.
 * Every case also checks that a second, well-behaved client keeps working.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(hostile_bugs, .init = h_init, .fini = h_fini, .timeout = 60);

Test(hostile_bugs, nul_in_subscribe_destination)
{
    struct h_broker *b = h_broker_start_ex(1, true, NULL, NULL);
    struct h_conn *c = h_client(b, "1.2");
    static const char frame[] = "SUBSCRIBE\nid:1\ndestination:/topic/a\0BBBBBBBBBBBBBBBBBBBBBBBB"
                                "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n\n";
    h_send(c, frame, sizeof frame); /* with the final NUL */
    h_expect_error_msg(c, NULL, "malformed header line");
    /* Queues too: "/queue/\0x" must not become the queue "/queue/". */
    struct h_conn *d = h_client(b, "1.2");
    static const char send[] = "SEND\ndestination:/queue/\0x\nreceipt:r\n\nbody";
    h_send(d, send, sizeof send);
    h_expect_error_msg(d, NULL, "malformed header line");
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

/* SEND of n bytes inside transaction t, receipt optional. */
static void append_txn_send(char **buf, size_t *len, const char *dest, size_t n,
                            const char *receipt)
{
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "SEND\ndestination:%s\ntransaction:t\ncontent-length:%zu\n%s%s%s\n", dest, n,
                      receipt ? "receipt:" : "", receipt ? receipt : "", receipt ? "\n" : "");
    *buf = realloc(*buf, *len + (size_t)hl + n + 1);
    cr_assert(*buf != NULL);
    memcpy(*buf + *len, head, (size_t)hl);
    memset(*buf + *len + hl, 'p', n);
    (*buf)[*len + (size_t)hl + n] = '\0';
    *len += (size_t)hl + n + 1;
}

static void append_str(char **buf, size_t *len, const char *s)
{
    size_t n = strlen(s) + 1; /* with the NUL that ends the frame */
    *buf = realloc(*buf, *len + n);
    cr_assert(*buf != NULL);
    memcpy(*buf + *len, s, n);
    *len += n;
}

Test(hostile_bugs, commit_that_throttles_and_unthrottles_runs_once)
{
    struct h_broker *b = H_START_W(1, "--queue-max-bytes", "1MiB");
    const char *q = h_dest("queue", "reentrant");
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "client", "prefetch-count:10\n");
    for (int i = 0; i < 10; i++)
        h_publish(c, q, h_fmt("m%d", i), false);
    struct h_frame *last = NULL;
    for (int i = 0; i < 10; i++)
        last = h_expect_msg(c, h_fmt("m%d", i));
    /* One write: BEGIN, six 200 KB SENDs in t (1.2 MB > the queue's 1 MiB),
     * the ACK of all ten in t, COMMIT. */
    char *buf = NULL;
    size_t len = 0;
    append_str(&buf, &len, "BEGIN\ntransaction:t\n\n");
    for (int i = 0; i < 6; i++)
        append_txn_send(&buf, &len, q, 200 * 1000, i == 5 ? "s5" : NULL);
    append_str(&buf, &len, h_fmt("ACK\nid:%s\ntransaction:t\n\n", h_hdr(last, "ack")));
    append_str(&buf, &len, "COMMIT\ntransaction:t\nreceipt:c\n\n");
    h_send(c, buf, len);
    free(buf);
    h_expect_receipt(c, "s5");
    h_expect_receipt(c, "c");
    /* The six committed messages arrive, once each, and nothing else. */
    for (int i = 0; i < 6; i++) {
        struct h_frame *f = h_expect(c, "MESSAGE", 5000);
        cr_assert_eq(f->body_len, 200 * 1000, "message %d: %zu bytes", i, f->body_len);
        h_ack(c, f, NULL, false);
    }
    h_expect_silence(c, 300);
    h_disconnect(c);
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

/* A 1.0 subscriber must never see a header line the publisher's escapes
 * would turn into raw EOLs, nor any frame the publisher did not send. */
Test(hostile_bugs, no_frame_injection_into_stomp_10)
{
    struct h_broker *b = h_broker_start_ex(1, true, NULL, NULL);
    const char *t = h_dest("topic", "inj");
    struct h_conn *sub10 = h_client(b, "1.0");
    h_sendz(sub10, h_fmt("SUBSCRIBE\ndestination:%s\nreceipt:s\n\n", t));
    h_expect_receipt(sub10, "s");
    struct h_conn *sub12 = h_client(b, "1.2");
    h_subscribe(sub12, t, "x", NULL, NULL);

    /* Escaped LFs in a value and a ':' in a name: valid 1.2. */
    struct h_conn *pub = h_client(b, "1.2");
    h_sendz(pub, h_fmt("SEND\ndestination:%s\nx:\\n\\nMESSAGE\\ndestination:/topic/forged\n"
                       "a\\cb:v\nok:1\nreceipt:p\n\nreal",
                       t));
    h_expect_receipt(pub, "p");
    struct h_frame *f = h_expect_msg(sub10, "real");
    cr_assert_null(h_hdr(f, "x"), "1.0 got the LF header: %s", h_show(f));
    cr_assert_null(h_hdr(f, "a"), "1.0 got a header split at ':': %s", h_show(f));
    cr_assert_str_eq(h_hdr(f, "ok"), "1");
    cr_assert_str_eq(h_hdr(f, "destination"), t);
    /* 1.2 gets them, escaped. */
    f = h_expect_msg(sub12, "real");
    cr_assert_str_eq(h_hdr(f, "x"), "\n\nMESSAGE\ndestination:/topic/forged");
    cr_assert_str_eq(h_hdr(f, "a:b"), "v");

    /* A raw NUL after the escapes: the publisher gets an ERROR, nobody gets
     * anything. */
    static const char head[] = "SEND\ndestination:";
    static const char rest[] = "\nx:\\n\\n\0MESSAGE\\ndestination:/topic/forged\\n\\n\\nPWNED\n\n";
    struct h_conn *evil = h_client(b, "1.2");
    h_send(evil, head, sizeof head - 1);
    h_send(evil, t, strlen(t));
    h_send(evil, rest, sizeof rest); /* with the NUL that ends the frame */
    h_expect_error_msg(evil, NULL, "malformed header line");
    h_expect_silence(sub10, 300);
    h_expect_silence(sub12, 100);
    /* Both subscribers still work. */
    h_publish(pub, t, "after", true);
    h_expect_msg(sub10, "after");
    h_expect_msg(sub12, "after");
    h_broker_stop_ok(b);
}
