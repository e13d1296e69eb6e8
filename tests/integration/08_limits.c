/*
 * 08_limits.c - the configurable limits against a real broker: --max-frame-size,
 * --max-headers, --max-header-length, the 64 KiB limit before CONNECTED, the
 * per-connection pending-output bound (a slow topic subscriber gets an ERROR and
 * is disconnected while the others keep receiving) and bounded queues (the
 * publisher is paused, nothing is dropped).
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(limits, .init = h_init, .fini = h_fini, .timeout = 30);

static char *body_of(size_t n, char fill)
{
    char *s = malloc(n + 1);
    cr_assert(s != NULL);
    memset(s, fill, n);
    s[n] = '\0';
    return s;
}

/* SEND with a content-length body of n bytes; returns 0 or -errno from the write. */
static int send_sized(struct h_conn *c, const char *dest, size_t n, const char *receipt)
{
    char head[256];
    int hl = snprintf(head, sizeof head, "SEND\ndestination:%s\ncontent-length:%zu\n%s%s%s\n", dest,
                      n, receipt ? "receipt:" : "", receipt ? receipt : "", receipt ? "\n" : "");
    char *body = body_of(n, 'b');
    int r = h_send_raw(c, head, (size_t)hl);
    if (r == 0)
        r = h_send_raw(c, body, n + 1); /* body_of's NUL ends the frame */
    free(body);
    return r;
}

static void expect_error_close(struct h_conn *c, const char *what)
{
    struct h_frame *f = h_read(c, H_WAIT);
    cr_assert(f != NULL, "%s: expected ERROR, got %s", what,
              c->closed ? "a close without ERROR" : "nothing (timeout)");
    cr_assert_str_eq(f->cmd, "ERROR", "%s: expected ERROR, got %s", what, h_show(f));
    cr_assert(h_hdr(f, "message") != NULL, "%s: ERROR without message", what);
    cr_assert(f->body_len > 0, "%s: ERROR without a body explaining", what);
    struct h_frame *more = NULL;
    cr_assert(h_wait_closed(c, 3000, &more), "%s: not closed after ERROR (%s)", what,
              more ? h_show(more) : "still open");
}

Test(limits, max_frame_size)
{
    struct h_broker *b = H_START("--max-frame-size", "4096");
    const char *q = h_dest("queue", "mfs");
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", NULL, NULL);
    cr_assert_eq(send_sized(c, q, 3000, "ok"), 0);
    h_expect_receipt(c, "ok");
    struct h_frame *f = h_expect(c, "MESSAGE", H_WAIT);
    cr_assert_eq(f->body_len, 3000);
    /* Over the limit with a content-length, and without one. */
    struct h_conn *d = h_client(b, "1.2");
    (void)send_sized(d, q, 5000, NULL);
    expect_error_close(d, "5000-byte body, limit 4096");
    struct h_conn *e = h_client(b, "1.2");
    char *big = body_of(6000, 'x');
    (void)h_send_raw(e, "SEND\ndestination:/queue/x\n\n", 28);
    (void)h_send_raw(e, big, 6001);
    free(big);
    expect_error_close(e, "6000-byte body without content-length, limit 4096");
    /* Headers count towards the frame too. */
    struct h_conn *g = h_client(b, "1.2");
    char frame[8192];
    int n = snprintf(frame, sizeof frame, "SEND\ndestination:/queue/x\n");
    for (int i = 0; i < 60; i++)
        n += snprintf(frame + n, sizeof frame - (size_t)n, "h%02d:%0100d\n", i, i);
    snprintf(frame + n, sizeof frame - (size_t)n, "\nx");
    (void)h_send_raw(g, frame, strlen(frame) + 1);
    expect_error_close(g, "6 KiB of headers, limit 4096");
    /* The first connection is unharmed. */
    h_publish(c, q, "after", true);
    h_expect_msg(c, "after");
    h_broker_stop_ok(b);
}

Test(limits, default_max_frame_size_is_4_mib)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "big");
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", NULL, NULL);
    cr_assert_eq(send_sized(c, q, 3u << 20, "big"), 0);
    h_expect_receipt(c, "big");
    struct h_frame *f = h_expect(c, "MESSAGE", 5000);
    cr_assert_eq(f->body_len, 3u << 20);
    struct h_conn *d = h_client(b, "1.2");
    (void)send_sized(d, q, 5u << 20, NULL);
    expect_error_close(d, "5 MiB body, default limit 4 MiB");
    h_broker_stop_ok(b);
}

static const char *frame_with_headers(const char *dest, int nheaders, size_t value_len)
{
    size_t cap = 64 + (size_t)nheaders * (value_len + 16);
    char *s = malloc(cap);
    cr_assert(s != NULL);
    size_t n = (size_t)snprintf(s, cap, "SEND\ndestination:%s\nreceipt:hdr\n", dest);
    for (int i = 0; i < nheaders; i++) {
        n += (size_t)snprintf(s + n, cap - n, "x%d:", i);
        memset(s + n, 'v', value_len);
        n += value_len;
        s[n++] = '\n';
    }
    snprintf(s + n, cap - n, "\nbody");
    const char *out = h_fmt("%s", s);
    free(s);
    return out;
}

Test(limits, max_headers)
{
    struct h_broker *b = H_START("--max-headers", "10");
    const char *q = h_dest("queue", "mh");
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", NULL, NULL);
    h_sendz(c, frame_with_headers(q, 6, 3)); /* 8 headers in all */
    h_expect_receipt(c, "hdr");
    struct h_frame *f = h_expect_msg(c, "body");
    cr_assert_str_eq(h_hdr(f, "x5"), "vvv");
    struct h_conn *d = h_client(b, "1.2");
    (void)h_send_raw(d, frame_with_headers(q, 30, 3), strlen(frame_with_headers(q, 30, 3)) + 1);
    expect_error_close(d, "32 headers, limit 10");
    h_publish(c, q, "after", true);
    h_expect_msg(c, "after");
    h_broker_stop_ok(b);
}

Test(limits, max_header_length)
{
    struct h_broker *b = H_START("--max-header-length", "200");
    const char *q = h_dest("queue", "mhl");
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", NULL, NULL);
    h_sendz(c, frame_with_headers(q, 2, 100));
    h_expect_receipt(c, "hdr");
    h_expect_msg(c, "body");
    struct h_conn *d = h_client(b, "1.2");
    const char *fr = frame_with_headers(q, 1, 400);
    (void)h_send_raw(d, fr, strlen(fr) + 1);
    expect_error_close(d, "400-byte header value, limit 200");
    /* A long name counts too. */
    struct h_conn *e = h_client(b, "1.2");
    char name[401];
    memset(name, 'n', 400);
    name[400] = '\0';
    fr = h_fmt("SEND\ndestination:%s\n%s:v\n\nx", q, name);
    (void)h_send_raw(e, fr, strlen(fr) + 1);
    expect_error_close(e, "400-byte header name, limit 200");
    h_publish(c, q, "after", true);
    h_expect_msg(c, "after");
    h_broker_stop_ok(b);
}

static const char *big_connect(int nheaders)
{
    size_t cap = 128 + (size_t)nheaders * 1024;
    char *s = malloc(cap);
    cr_assert(s != NULL);
    size_t n = (size_t)snprintf(s, cap, "CONNECT\naccept-version:1.2\nhost:/\n");
    for (int i = 0; i < nheaders; i++) {
        n += (size_t)snprintf(s + n, cap - n, "pad%04d:", i);
        memset(s + n, 'p', 1000);
        n += 1000;
        s[n++] = '\n';
    }
    snprintf(s + n, cap - n, "\n");
    const char *out = h_fmt("%s", s);
    free(s);
    return out;
}

Test(limits, pre_connect_64_kib)
{
    /* The frame limit is raised; the limit before CONNECTED stays 64 KiB. */
    struct h_broker *b = H_START("--max-frame-size", "1048576");
    struct h_conn *ok = h_dial(b);
    h_sendz(ok, big_connect(40)); /* ~40 KB */
    struct h_frame *f = h_expect(ok, "CONNECTED", H_WAIT);
    cr_assert_str_eq(h_hdr(f, "version"), "1.2");
    ok->version = 12;
    struct h_conn *bad = h_dial(b);
    const char *fr = big_connect(80); /* ~80 KB */
    (void)h_send_raw(bad, fr, strlen(fr) + 1);
    expect_error_close(bad, "80 KB CONNECT");
    /* Endless bytes without a frame end are cut off at 64 KiB, not at the login timeout. */
    struct h_conn *flood = h_dial(b);
    char *junk = body_of(100000, 'A');
    uint64_t t0 = h_now_ms();
    (void)h_send_raw(flood, junk, 100000);
    free(junk);
    expect_error_close(flood, "100 KB without a newline before CONNECT");
    cr_assert(h_now_ms() - t0 < 3000, "flood was not cut off promptly");
    /* After CONNECTED the 1 MiB limit applies. */
    const char *q = h_dest("queue", "pc");
    h_subscribe(ok, q, "s", NULL, NULL);
    cr_assert_eq(send_sized(ok, q, 200000, "r"), 0);
    h_expect_receipt(ok, "r");
    f = h_expect(ok, "MESSAGE", H_WAIT);
    cr_assert_eq(f->body_len, 200000);
    h_broker_stop_ok(b);
}

/* Read up to `want` MESSAGEs (bodies "m<seq>") from c, checking sequence. */
static void read_seq(struct h_conn *c, int from, int want)
{
    for (int i = from; i < from + want; i++) {
        struct h_frame *f = h_expect(c, "MESSAGE", 5000);
        int seq = -1;
        sscanf(h_hdr(f, "seq") ? h_hdr(f, "seq") : "", "%d", &seq);
        cr_assert_eq(seq, i, "fast subscriber: got seq %d, want %d", seq, i);
    }
}

Test(limits, slow_topic_consumer_is_disconnected)
{
    struct h_broker *b = H_START("--max-pending-output", "262144");
    const char *t = h_dest("topic", "slow");
    struct h_conn *slow = h_dial_port(b->port, 4096);
    struct h_frame *cf = h_stomp_connect(slow, "1.2", NULL, NULL, NULL, false);
    cr_assert(cf && strcmp(cf->cmd, "CONNECTED") == 0, "got %s", h_show(cf));
    h_subscribe(slow, t, "slow", NULL, NULL);
    struct h_conn *fast = h_client(b, "1.2"), *fast2 = h_client(b, "1.1");
    h_subscribe(fast, t, "fast", NULL, NULL);
    h_subscribe(fast2, t, "fast2", NULL, NULL);
    struct h_conn *p = h_client(b, "1.2");
    enum { BODY = 16384, BATCH = 10, BATCHES = 70 }; /* 11 MiB in all */
    char *body = body_of(BODY, 's');
    int seq = 0;
    for (int r = 0; r < BATCHES; r++) {
        for (int i = 0; i < BATCH; i++, seq++) {
            char head[128];
            int hl = snprintf(head, sizeof head,
                              "SEND\ndestination:%s\nseq:%d\ncontent-length:%d\n\n", t, seq, BODY);
            h_send(p, head, (size_t)hl);
            h_send(p, body, BODY + 1);
        }
        read_seq(fast, seq - BATCH, BATCH);
        read_seq(fast2, seq - BATCH, BATCH);
    }
    /* Keep the pressure on for a while: "stays over the bound" may take a moment. */
    for (int r = 0; r < 10; r++, seq++) {
        h_sleep_ms(100);
        char head[128];
        int hl = snprintf(head, sizeof head, "SEND\ndestination:%s\nseq:%d\ncontent-length:%d\n\n",
                          t, seq, BODY);
        h_send(p, head, (size_t)hl);
        h_send(p, body, BODY + 1);
        read_seq(fast, seq, 1);
        read_seq(fast2, seq, 1);
    }
    free(body);
    /* The publisher was not harmed. */
    h_publish(p, t, "end", true);
    struct h_frame *f = h_expect(fast, "MESSAGE", H_WAIT);
    cr_assert_str_eq(f->body, "end");
    /* The slow one: a gap-free prefix of the messages, then an ERROR, then the close. */
    int got = 0;
    bool error = false;
    for (int guard = 0; guard < 2000; guard++) {
        struct h_frame *g = h_read(slow, 5000);
        if (g == NULL)
            break;
        if (strcmp(g->cmd, "ERROR") == 0) {
            error = true;
            cr_assert(h_hdr(g, "message") != NULL, "ERROR without message");
            break;
        }
        cr_assert_str_eq(g->cmd, "MESSAGE", "slow consumer got %s", h_show(g));
        const char *s = h_hdr(g, "seq");
        cr_assert(s != NULL && atoi(s) == got, "slow consumer: seq %s after %d messages (a gap)",
                  s ? s : "(none)", got);
        got++;
    }
    cr_assert(error, "slow consumer got %d of %d messages and %s, want an ERROR", got, seq,
              slow->closed ? "a close without ERROR" : "no ERROR");
    cr_assert(got < seq, "slow consumer got everything (%d); the bound did not bite", got);
    struct h_frame *more = NULL;
    cr_assert(h_wait_closed(slow, 3000, &more), "slow consumer not closed after ERROR (%s)",
              more ? h_show(more) : "still open");
    h_broker_stop_ok(b);
}

Test(limits, bounded_queue_pauses_publisher)
{
    struct h_broker *b = H_START("--queue-max-messages", "5");
    const char *q = h_dest("queue", "bounded"), *other = h_dest("queue", "other");
    struct h_conn *p = h_client(b, "1.2");
    /* One SEND at a time, each waiting for its receipt. */
    int accepted = 0;
    const char *pending = NULL;
    for (int i = 0; i < 10; i++) {
        const char *rid = h_rid(p);
        h_sendf(p, "SEND\ndestination:%s\nreceipt:%s\n\nb%d", q, rid, i);
        struct h_frame *f = h_read(p, 700);
        if (f == NULL) {
            cr_assert(p->closed == 0, "publisher was disconnected at the queue bound");
            pending = rid;
            break;
        }
        cr_assert(strcmp(f->cmd, "RECEIPT") == 0 && strcmp(h_hdr(f, "receipt-id"), rid) == 0,
                  "SEND %d: got %s", i, h_show(f));
        accepted++;
    }
    /* A frame already read may be accepted once over the bound; no more. */
    cr_assert(accepted >= 5 && accepted <= 6,
              "queue bounded at 5 messages accepted %d before any consumer", accepted);
    cr_assert(pending != NULL);
    /* Other publishers and queues are unaffected. */
    struct h_conn *o = h_client(b, "1.2");
    h_publish(o, other, "unrelated", true);
    /* A consumer drains the queue; the paused SEND completes; nothing was lost. */
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", NULL, NULL);
    h_expect_receipt(p, pending);
    for (int i = accepted + 1; i < 10; i++)
        h_publish(p, q, h_fmt("b%d", i), true);
    for (int i = 0; i < 10; i++)
        h_expect_msg(c, h_fmt("b%d", i));
    h_broker_stop_ok(b);
}

Test(limits, bounded_queue_bytes)
{
    struct h_broker *b = H_START("--queue-max-bytes", "8192");
    const char *q = h_dest("queue", "bbytes");
    struct h_conn *p = h_client(b, "1.2");
    int accepted = 0;
    const char *pending = NULL;
    for (int i = 0; i < 30; i++) {
        const char *rid = h_rid(p);
        cr_assert_eq(send_sized(p, q, 1000, rid), 0);
        struct h_frame *f = h_read(p, 700);
        if (f == NULL) {
            cr_assert(p->closed == 0, "publisher was disconnected at the queue bound");
            pending = rid;
            break;
        }
        cr_assert_str_eq(f->cmd, "RECEIPT", "got %s", h_show(f));
        accepted++;
    }
    cr_assert(pending != NULL, "30 KB accepted by a queue bounded at 8 KiB with no consumer");
    cr_assert(accepted >= 4 && accepted <= 9, "accepted %d 1000-byte messages under 8 KiB",
              accepted);
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", NULL, NULL);
    h_expect_receipt(p, pending);
    for (int i = 0; i <= accepted; i++) {
        struct h_frame *f = h_expect(c, "MESSAGE", H_WAIT);
        cr_assert_eq(f->body_len, 1000);
    }
    h_broker_stop_ok(b);
}
