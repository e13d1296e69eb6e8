/*
 * 02_send_subscribe.c - SEND/SUBSCRIBE/UNSUBSCRIBE/MESSAGE against a real broker:
 * topic fan-out across workers, dropping with no subscribers, forwarded and
 * stripped headers, content-type/content-length, NUL bytes in bodies, unique
 * message-ids, the subscription header, header escaping, CRLF frames, repeated
 * headers.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(send_subscribe, .init = h_init, .fini = h_fini, .timeout = 20);

Test(send_subscribe, topic_fanout_across_workers)
{
    struct h_broker *b = h_broker_start_ex(3, true, NULL, NULL);
    const char *t = h_dest("topic", "fan");
    struct h_conn *subs[6];
    const char *vers[] = {"1.0", "1.1", "1.2"};
    for (int i = 0; i < 6; i++) {
        subs[i] = h_client(b, vers[i % 3]);
        h_subscribe(subs[i], t, h_fmt("sub-%d", i), NULL, NULL);
    }
    struct h_conn *pubs[3];
    for (int p = 0; p < 3; p++)
        pubs[p] = h_client(b, "1.2");
    /* One publisher at a time, each with a receipt on its last SEND (a barrier), so the
     * total order is known. */
    for (int p = 0; p < 3; p++)
        for (int m = 0; m < 4; m++)
            h_publish(pubs[p], t, h_fmt("p%d-m%d", p, m), m == 3);
    for (int i = 0; i < 6; i++) {
        for (int p = 0; p < 3; p++)
            for (int m = 0; m < 4; m++) {
                struct h_frame *f = h_expect_msg(subs[i], h_fmt("p%d-m%d", p, m));
                cr_assert_str_eq(h_hdr(f, "destination"), t);
                cr_assert_str_eq(h_hdr(f, "subscription"), h_fmt("sub-%d", i));
                cr_assert(h_hdr(f, "message-id") != NULL, "no message-id: %s", h_show(f));
            }
    }
    h_broker_stop_ok(b);
}

Test(send_subscribe, topic_without_subscribers_drops)
{
    struct h_broker *b = H_START0();
    const char *t = h_dest("topic", "drop");
    struct h_conn *p = h_client(b, "1.2"), *s = h_client(b, "1.2");
    h_publish(p, t, "lost-1", true);
    h_publish(p, t, "lost-2", true);
    h_subscribe(s, t, "s1", NULL, NULL);
    h_publish(p, t, "kept", true);
    h_expect_msg(s, "kept");
    /* A late subscriber only sees what is sent after it subscribed. */
    struct h_conn *late = h_client(b, "1.2");
    h_subscribe(late, t, "s2", NULL, NULL);
    h_publish(p, t, "after", true);
    h_expect_msg(late, "after");
    h_expect_msg(s, "after");
    h_broker_stop_ok(b);
}

Test(send_subscribe, user_headers_forwarded_control_headers_not)
{
    struct h_broker *b = H_START0();
    const char *kinds[] = {"topic", "queue"};
    for (int k = 0; k < 2; k++) {
        const char *d = h_dest(kinds[k], "hdrs");
        struct h_conn *s = h_client(b, "1.2"), *p = h_client(b, "1.2");
        h_subscribe(s, d, "sub-x", NULL, NULL);
        h_sendf(p, "BEGIN\ntransaction:tx1\n\n");
        h_sendf(p,
                "SEND\ndestination:%s\nfoo:bar\nx-number:42\nreceipt:rr-1\ntransaction:tx1\n"
                "priority:4\ncorrelation-id:abc\n\nhello",
                d);
        h_sendf(p, "COMMIT\ntransaction:tx1\nreceipt:rr-2\n\n");
        h_expect_receipt(p, "rr-1"); /* a transactional frame's receipt: at COMMIT */
        h_expect_receipt(p, "rr-2");
        struct h_frame *f = h_expect_msg(s, "hello");
        cr_assert_str_eq(h_hdr(f, "foo"), "bar", "%s", h_show(f));
        cr_assert_str_eq(h_hdr(f, "x-number"), "42", "%s", h_show(f));
        cr_assert_str_eq(h_hdr(f, "priority"), "4", "%s", h_show(f));
        cr_assert_str_eq(h_hdr(f, "correlation-id"), "abc", "%s", h_show(f));
        cr_assert_str_eq(h_hdr(f, "destination"), d, "%s", h_show(f));
        cr_assert_str_eq(h_hdr(f, "subscription"), "sub-x", "%s", h_show(f));
        cr_assert(h_hdr(f, "message-id") != NULL, "%s", h_show(f));
        cr_assert(h_hdr(f, "receipt") == NULL, "MESSAGE carries receipt: %s", h_show(f));
        cr_assert(h_hdr(f, "transaction") == NULL, "MESSAGE carries transaction: %s", h_show(f));
        cr_assert(h_hdr(f, "receipt-id") == NULL, "MESSAGE carries receipt-id: %s", h_show(f));
        cr_assert_eq(h_hdr_count(f, "destination"), 1, "%s", h_show(f));
        cr_assert_eq(h_hdr_count(f, "message-id"), 1, "%s", h_show(f));
        cr_assert_eq(h_hdr_count(f, "subscription"), 1, "%s", h_show(f));
    }
    h_broker_stop_ok(b);
}

Test(send_subscribe, content_type_and_length)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "ct");
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", NULL, NULL);
    h_sendf(c,
            "SEND\ndestination:%s\ncontent-type:application/json;charset=utf-8\n"
            "content-length:13\n\n{\"a\":[1,2,3]}",
            q);
    struct h_frame *f = h_expect_msg(c, "{\"a\":[1,2,3]}");
    cr_assert_str_eq(h_hdr(f, "content-type"), "application/json;charset=utf-8", "%s", h_show(f));
    cr_assert_str_eq(h_hdr(f, "content-length"), "13", "%s", h_show(f));
    /* Without content-length on SEND the MESSAGE still says how long the body is. */
    h_sendf(c, "SEND\ndestination:%s\n\nno length given", q);
    f = h_expect_msg(c, "no length given");
    cr_assert_str_eq(h_hdr(f, "content-length"), "15", "%s", h_show(f));
    cr_assert(h_hdr(f, "content-type") == NULL, "invented a content-type: %s", h_show(f));
    /* Empty body. */
    h_sendf(c, "SEND\ndestination:%s\ncontent-length:0\n\n", q);
    f = h_expect_msg(c, "");
    cr_assert_str_eq(h_hdr(f, "content-length"), "0", "%s", h_show(f));
    h_broker_stop_ok(b);
}

Test(send_subscribe, nul_bytes_in_body)
{
    struct h_broker *b = H_START0();
    const char *t = h_dest("topic", "nul");
    struct h_conn *s10 = h_client(b, "1.0"), *s12 = h_client(b, "1.2"), *p = h_client(b, "1.1");
    h_subscribe(s10, t, "a", NULL, NULL);
    h_subscribe(s12, t, "b", NULL, NULL);
    unsigned char body[300];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (unsigned char)(i * 7 % 256);
    body[0] = 0;
    body[sizeof body - 1] = 0;
    char head[256];
    int n = snprintf(head, sizeof head, "SEND\ndestination:%s\ncontent-length:%zu\nreceipt:z\n\n",
                     t, sizeof body);
    h_send(p, head, (size_t)n);
    h_send(p, body, sizeof body);
    h_send(p, "", 1);
    h_expect_receipt(p, "z");
    struct h_conn *ss[2] = {s10, s12};
    for (int i = 0; i < 2; i++) {
        struct h_frame *f = h_expect(ss[i], "MESSAGE", H_WAIT);
        cr_assert_eq(f->body_len, sizeof body, "body length %zu, want %zu", f->body_len,
                     sizeof body);
        cr_assert(memcmp(f->body, body, sizeof body) == 0, "body bytes differ");
        cr_assert_str_eq(h_hdr(f, "content-length"), h_fmt("%zu", sizeof body));
    }
    h_broker_stop_ok(b);
}

Test(send_subscribe, message_ids_unique)
{
    struct h_broker *b = H_START0();
    const char *t = h_dest("topic", "ids"), *q = h_dest("queue", "ids");
    struct h_conn *s1 = h_client(b, "1.2"), *s2 = h_client(b, "1.1");
    struct h_conn *p1 = h_client(b, "1.2"), *p2 = h_client(b, "1.2");
    h_subscribe(s1, t, "t1", NULL, NULL);
    h_subscribe(s2, t, "t2", NULL, NULL);
    h_subscribe(s1, q, "q1", NULL, NULL);
    enum { N = 40 };
    for (int i = 0; i < N; i++) {
        h_publish(i % 2 ? p1 : p2, t, h_fmt("t%d", i), true);
        h_publish(i % 2 ? p2 : p1, q, h_fmt("q%d", i), true);
    }
    /* s1 gets 2N messages (topic + queue), s2 gets N. */
    const char *ids[3 * N], *bodies[3 * N];
    int n = 0;
    for (int i = 0; i < 2 * N; i++) {
        struct h_frame *f = h_expect(s1, "MESSAGE", H_WAIT);
        ids[n] = h_hdr(f, "message-id");
        bodies[n++] = f->body;
    }
    int first_s2 = n;
    for (int i = 0; i < N; i++) {
        struct h_frame *f = h_expect(s2, "MESSAGE", H_WAIT);
        ids[n] = h_hdr(f, "message-id");
        bodies[n++] = f->body;
    }
    for (int i = 0; i < n; i++) {
        cr_assert(ids[i] != NULL && ids[i][0] != '\0', "MESSAGE without message-id");
        for (int j = i + 1; j < n; j++) {
            bool same_stream = (i < first_s2) == (j < first_s2);
            if (strcmp(ids[i], ids[j]) != 0)
                continue;
            cr_assert(!same_stream, "message-id %s given twice to one subscriber ('%s', '%s')",
                      ids[i], bodies[i], bodies[j]);
            cr_assert_str_eq(bodies[i], bodies[j], "message-id %s names two messages", ids[i]);
        }
    }
    h_broker_stop_ok(b);
}

Test(send_subscribe, subscription_header_names_the_subscription)
{
    struct h_broker *b = H_START0();
    const char *t1 = h_dest("topic", "sa"), *t2 = h_dest("topic", "sb");
    struct h_conn *s = h_client(b, "1.2"), *p = h_client(b, "1.2");
    h_subscribe(s, t1, "first", NULL, NULL);
    /* An id with an escaped ':' (1.2): the MESSAGE gives it back escaped. */
    h_subscribe(s, t2, "sec\\cond", NULL, NULL);
    h_publish(p, t1, "to-first", true);
    struct h_frame *f = h_expect_msg(s, "to-first");
    cr_assert_str_eq(h_hdr(f, "subscription"), "first");
    h_publish(p, t2, "to-second", true);
    f = h_expect_msg(s, "to-second");
    cr_assert_str_eq(h_hdr(f, "subscription"), "sec:ond");
    h_broker_stop_ok(b);
}

Test(send_subscribe, unsubscribe_stops_delivery)
{
    struct h_broker *b = H_START0();
    const char *t = h_dest("topic", "unsub"), *q = h_dest("queue", "unsub");
    struct h_conn *s = h_client(b, "1.2"), *p = h_client(b, "1.2");
    /* Two subscriptions to the same topic on one connection: after UNSUBSCRIBE of
     * one, every message arrives once, through the other. */
    h_subscribe(s, t, "a", NULL, NULL);
    h_subscribe(s, t, "b", NULL, NULL);
    h_publish(p, t, "both", true);
    struct h_frame *f1 = h_expect_msg(s, "both"), *f2 = h_expect_msg(s, "both");
    cr_assert(strcmp(h_hdr(f1, "subscription"), h_hdr(f2, "subscription")) != 0,
              "one subscription got the message twice");
    h_unsubscribe(s, "a");
    h_publish(p, t, "only-b-1", true);
    h_publish(p, t, "only-b-2", true);
    f1 = h_expect_msg(s, "only-b-1");
    cr_assert_str_eq(h_hdr(f1, "subscription"), "b");
    f2 = h_expect_msg(s, "only-b-2");
    cr_assert_str_eq(h_hdr(f2, "subscription"), "b");
    /* A queue consumer that unsubscribes gets nothing more; the queue keeps it. */
    h_subscribe(s, q, "qa", NULL, NULL);
    h_unsubscribe(s, "qa");
    h_publish(p, q, "kept-for-next", true);
    h_unsubscribe(s, "b");
    h_expect_silence(s, 300);
    struct h_conn *s2 = h_client(b, "1.2");
    h_subscribe(s2, q, "qb", NULL, NULL);
    h_expect_msg(s2, "kept-for-next");
    h_broker_stop_ok(b);
}

Test(send_subscribe, header_escaping_round_trip)
{
    struct h_broker *b = H_START0();
    const char *t = h_dest("topic", "esc");
    struct h_conn *s11 = h_client(b, "1.1"), *s12 = h_client(b, "1.2");
    struct h_conn *p11 = h_client(b, "1.1"), *p12 = h_client(b, "1.2");
    h_subscribe(s11, t, "a", NULL, NULL);
    h_subscribe(s12, t, "b", NULL, NULL);
    /* value  a:b<LF>c\d   name  we:ird */
    h_sendf(p12, "SEND\ndestination:%s\nnote:a\\cb\\nc\\\\d\nwe\\cird:x\nreceipt:e1\n\nfrom12", t);
    h_expect_receipt(p12, "e1");
    h_sendf(p11, "SEND\ndestination:%s\nnote:a\\cb\\nc\\\\d\nwe\\cird:x\nreceipt:e2\n\nfrom11", t);
    h_expect_receipt(p11, "e2");
    struct h_conn *ss[2] = {s11, s12};
    for (int i = 0; i < 2; i++) {
        for (int m = 0; m < 2; m++) {
            struct h_frame *f = h_expect_msg(ss[i], m == 0 ? "from12" : "from11");
            const char *note = h_hdr(f, "note");
            cr_assert(note != NULL && strcmp(note, "a:b\nc\\d") == 0,
                      "v1.%d subscriber: note decoded to '%s', want 'a:b<LF>c\\d' (%s)", i ? 2 : 1,
                      note ? note : "(none)", h_show(f));
            cr_assert_str_eq(h_hdr(f, "we:ird"), "x", "%s", h_show(f));
        }
    }
    /* 1.2 has \r too. */
    h_sendf(p12, "SEND\ndestination:%s\ncr:x\\ry\nreceipt:e3\n\ncr", t);
    h_expect_receipt(p12, "e3");
    struct h_frame *f = h_expect_msg(s12, "cr");
    cr_assert_str_eq(h_hdr(f, "cr"), "x\ry");
    h_broker_stop_ok(b);
}

Test(send_subscribe, crlf_frames_in_1_2)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "crlf");
    struct h_conn *c = h_dial(b);
    h_sendz(c, "CONNECT\r\naccept-version:1.2\r\nhost:/\r\n\r\n");
    struct h_frame *f = h_expect(c, "CONNECTED", H_WAIT);
    cr_assert_str_eq(h_hdr(f, "version"), "1.2");
    c->version = 12;
    h_sendf(c, "SUBSCRIBE\r\ndestination:%s\r\nid:s1\r\nreceipt:c1\r\n\r\n", q);
    h_expect_receipt(c, "c1");
    h_sendf(c,
            "SEND\r\ndestination:%s\r\nk:v\r\ncontent-type:text/plain\r\nreceipt:c2\r\n\r\n"
            "line1\r\nline2",
            q);
    h_expect_receipt(c, "c2");
    f = h_expect_msg(c, "line1\r\nline2");
    cr_assert_str_eq(h_hdr(f, "k"), "v", "CR kept in a value: %s", h_show(f));
    cr_assert_str_eq(h_hdr(f, "destination"), q);
    cr_assert_str_eq(h_hdr(f, "content-type"), "text/plain");
    cr_assert_str_eq(h_hdr(f, "subscription"), "s1");
    /* Heart-beat CRLFs between frames are fine too. */
    h_send(c, "\r\n\r\n", 4);
    h_sendf(c, "DISCONNECT\r\nreceipt:c3\r\n\r\n");
    h_expect_receipt(c, "c3");
    h_broker_stop_ok(b);
}

Test(send_subscribe, repeated_headers_forwarded_in_order)
{
    struct h_broker *b = H_START0();
    const char *qa = h_dest("queue", "rep-a"), *qb = h_dest("queue", "rep-b");
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, qa, "a", NULL, NULL);
    h_sendf(c, "SEND\ndestination:%s\ndestination:%s\nfoo:1\nfoo:2\nreceipt:x\n\nrep", qa, qb);
    h_expect_receipt(c, "x");
    struct h_frame *f = h_expect_msg(c, "rep");
    cr_assert_str_eq(h_hdr(f, "destination"), qa);
    cr_assert_str_eq(h_hdr(f, "foo"), "1", "%s", h_show(f));
    cr_assert_str_eq(h_hdr(f, "subscription"), "a");
    /* Repeated user headers are forwarded, in order (ActiveMQ does the same);
     * the broker's own destination header is not repeated. */
    cr_assert_eq(h_hdr_count(f, "foo"), 2, "%s", h_show(f));
    cr_assert_eq(h_hdr_count(f, "destination"), 1, "%s", h_show(f));
    const char *seen[2];
    size_t k = 0;
    for (size_t i = 0; i < f->nheaders; i++)
        if (strcmp(f->names[i], "foo") == 0 && k < 2)
            seen[k++] = f->values[i];
    cr_assert(k == 2 && strcmp(seen[0], "1") == 0 && strcmp(seen[1], "2") == 0, "%s", h_show(f));
    /* Nothing went to the second destination. */
    struct h_conn *d = h_client(b, "1.2");
    h_subscribe(d, qb, "b", NULL, NULL);
    h_publish(c, qb, "marker", true);
    h_expect_msg(d, "marker");
    h_broker_stop_ok(b);
}

Test(send_subscribe, versions_interoperate)
{
    struct h_broker *b = H_START0();
    const char *t = h_dest("topic", "vers");
    const char *vers[] = {"1.0", "1.1", "1.2"};
    struct h_conn *s[3], *p[3];
    for (int i = 0; i < 3; i++) {
        s[i] = h_client(b, vers[i]);
        p[i] = h_client(b, vers[i]);
        h_subscribe(s[i], t, h_fmt("v%d", i), NULL, NULL);
    }
    for (int i = 0; i < 3; i++)
        h_publish(p[i], t, h_fmt("from-%s", vers[i]), true);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            h_expect_msg(s[i], h_fmt("from-%s", vers[j]));
    h_broker_stop_ok(b);
}

/* Every frame written one byte at a time: the broker must reassemble them. */
Test(send_subscribe, frames_split_into_single_bytes)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "split");
    struct h_conn *c = h_dial(b);
    char send[256];
    int sl = snprintf(send, sizeof send,
                      "SEND\ndestination:%s\ncontent-length:5\nk:a\\cb\nreceipt:r2\n\n", q);
    memcpy(send + sl, "a\0b\0c\0", 6); /* body with NULs, then the frame's NUL */
    const char *frames[] = {
        "CONNECT\naccept-version:1.2\nhost:/\n\n",
        "\n\r\n", /* heart-beats between frames */
        h_fmt("SUBSCRIBE\r\ndestination:%s\r\nid:s\r\nreceipt:r1\r\n\r\n", q),
        send,
    };
    size_t lens[] = {strlen(frames[0]) + 1, 3, strlen(frames[2]) + 1, (size_t)sl + 6};
    for (size_t i = 0; i < 4; i++)
        for (size_t k = 0; k < lens[i]; k++)
            h_send(c, frames[i] + k, 1);
    c->version = 12;
    h_expect(c, "CONNECTED", H_WAIT);
    h_expect_receipt(c, "r1");
    h_expect_receipt(c, "r2");
    struct h_frame *f = h_expect(c, "MESSAGE", H_WAIT);
    cr_assert(f->body_len == 5 && memcmp(f->body, "a\0b\0c", 5) == 0, "body %s", h_show(f));
    cr_assert_str_eq(h_hdr(f, "k"), "a:b");
    h_broker_stop_ok(b);
}

/* Many frames in one write, with heart-beat EOLs between them, in 1.0 and 1.1. */
Test(send_subscribe, pipelined_frames_and_eols)
{
    struct h_broker *b = H_START0();
    const char *vers[] = {"1.0", "1.1"};
    for (int v = 0; v < 2; v++) {
        const char *q = h_dest("queue", "pipe");
        struct h_conn *c = h_client(b, vers[v]);
        char *buf = malloc(64 * 1024);
        cr_assert(buf != NULL);
        size_t n = (size_t)snprintf(buf, 1024, "SUBSCRIBE\ndestination:%s\nid:s\n\n", q);
        buf[n++] = '\0';
        for (int i = 0; i < 100; i++) {
            n += (size_t)snprintf(buf + n, 1024, "%sSEND\ndestination:%s\n%s\np%d",
                                  i % 3 ? "" : "\n\n", q, i == 99 ? "receipt:end\n" : "", i);
            buf[n++] = '\0';
        }
        h_send(c, buf, n);
        free(buf);
        h_expect_receipt(c, "end");
        for (int i = 0; i < 100; i++)
            h_expect_msg(c, h_fmt("p%d", i));
    }
    h_broker_stop_ok(b);
}

/* Destination names are opaque after the prefix; 1.0 carries values raw. */
Test(send_subscribe, unusual_destination_names)
{
    struct h_broker *b = H_START0();
    const char *names[] = {"/queue/a.b.c", "/queue/with space", "/queue/ümlaut-✓", "/topic/x/y/z",
                           "/queue/a:b"};
    struct h_conn *c12 = h_client(b, "1.2");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        bool topic = strncmp(names[i], "/topic/", 7) == 0;
        bool colon = strchr(names[i], ':') != NULL;
        /* 1.2 escapes ':' as \c on the wire. */
        const char *wire = colon ? "/queue/a\\cb" : names[i];
        h_sendf(c12, "SUBSCRIBE\ndestination:%s\nid:n%zu\nreceipt:s%zu\n\n", wire, i, i);
        h_expect_receipt(c12, h_fmt("s%zu", i));
        h_sendf(c12, "SEND\ndestination:%s\nreceipt:p%zu\n\nbody-%zu", wire, i, i);
        h_expect_receipt(c12, h_fmt("p%zu", i));
        struct h_frame *f = h_expect_msg(c12, h_fmt("body-%zu", i));
        cr_assert_str_eq(h_hdr(f, "destination"), names[i], "%s", h_show(f));
        (void)topic;
    }
    /* A 1.0 subscriber sees the header value with a raw ':' (1.0 has no escapes). */
    struct h_conn *c10 = h_client(b, "1.0");
    h_subscribe(c10, "/topic/raw", "r", NULL, NULL);
    h_sendz(c12, "SEND\ndestination:/topic/raw\nnote:x\\cy\nreceipt:raw\n\nraw");
    h_expect_receipt(c12, "raw");
    struct h_frame *f = h_expect_msg(c10, "raw");
    cr_assert_str_eq(h_hdr(f, "note"), "x:y", "1.0 subscriber got %s", h_show(f));
    h_broker_stop_ok(b);
}
