/*
 * 07_errors.c - the "Bad input" list against a real broker: each bad
 * frame gets an ERROR (with a message header, and the receipt-id when the frame
 * had a receipt the broker could read) and then a close; and none of it harms
 * other connections or messages already accepted. Also clients that vanish
 * mid-frame or reset the connection.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(errors, .init = h_init, .fini = h_fini, .timeout = 25);

struct bad_case {
    const char *name;
    const char *frame; /* sent with its trailing NUL unless raw_len is set */
    size_t raw_len;
    const char *receipt_id; /* expected receipt-id, or NULL */
};

/* State that must survive every bad case: queued messages and a live subscriber. */
struct bystanders {
    struct h_conn *sub, *pub;
    const char *topic, *queue;
};

static struct bystanders bystanders_start(struct h_broker *b)
{
    struct bystanders s = {.topic = h_dest("topic", "by"), .queue = h_dest("queue", "by")};
    s.sub = h_client(b, "1.2");
    s.pub = h_client(b, "1.1");
    h_subscribe(s.sub, s.topic, "t", NULL, NULL);
    for (int i = 0; i < 5; i++)
        h_publish(s.pub, s.queue, h_fmt("kept-%d", i), i == 4);
    return s;
}

static void bystanders_check(struct h_broker *b, struct bystanders *s)
{
    cr_assert(h_broker_alive(b), "broker died; log:\n%s", h_broker_log(b));
    h_publish(s->pub, s->topic, "still-alive", true);
    h_expect_msg(s->sub, "still-alive");
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, s->queue, "q", NULL, NULL);
    for (int i = 0; i < 5; i++)
        h_expect_msg(c, h_fmt("kept-%d", i));
}

static void run_case(struct h_broker *b, const char *version, const struct bad_case *bc)
{
    struct h_conn *c = version ? h_client(b, version) : h_dial(b);
    size_t len = bc->raw_len ? bc->raw_len : strlen(bc->frame) + 1;
    /* The broker may close while we are still writing: that is fine. */
    (void)h_send_raw(c, bc->frame, len);
    struct h_frame *f = h_read(c, H_WAIT);
    cr_assert(f != NULL, "%s (%s): expected ERROR, got %s", bc->name,
              version ? version : "before CONNECT",
              c->closed ? "a close without ERROR" : "nothing (timeout)");
    cr_assert(strcmp(f->cmd, "ERROR") == 0, "%s: expected ERROR, got %s", bc->name, h_show(f));
    cr_assert(h_hdr(f, "message") != NULL, "%s: ERROR without message: %s", bc->name, h_show(f));
    cr_assert(f->body_len > 0, "%s: ERROR without a body explaining: %s", bc->name, h_show(f));
    if (bc->receipt_id) {
        const char *rid = h_hdr(f, "receipt-id");
        cr_assert(rid != NULL && strcmp(rid, bc->receipt_id) == 0,
                  "%s: expected ERROR receipt-id:%s, got %s", bc->name, bc->receipt_id, h_show(f));
    }
    struct h_frame *more = NULL;
    cr_assert(h_wait_closed(c, 3000, &more), "%s: not closed after ERROR (%s)", bc->name,
              more ? h_show(more) : "still open");
}

static void run_cases(const char *version, const struct bad_case *cases, size_t n)
{
    struct h_broker *b = H_START("--max-frame-size", "65536");
    struct bystanders s = bystanders_start(b);
    for (size_t i = 0; i < n; i++)
        run_case(b, version, &cases[i]);
    bystanders_check(b, &s);
    h_broker_stop_ok(b);
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

Test(errors, bad_escapes)
{
    static const struct bad_case c12[] = {
        {"\\t escape", "SEND\ndestination:/queue/e\nfoo:a\\tb\n\nx", 0, NULL},
        {"trailing backslash", "SEND\ndestination:/queue/e\nfoo:ab\\\n\nx", 0, NULL},
        {"\\x in name", "SEND\ndestination:/queue/e\nf\\xo:1\n\nx", 0, NULL},
        {"escape in destination", "SEND\ndestination:/queue/\\q\n\nx", 0, NULL},
    };
    run_cases("1.2", c12, N_OF(c12));
    static const struct bad_case c11[] = {
        {"\\r in 1.1", "SEND\ndestination:/queue/e\nfoo:a\\rb\n\nx", 0, NULL},
        {"\\t in 1.1", "SUBSCRIBE\ndestination:/queue/e\nid:a\\t\n\n", 0, NULL},
    };
    run_cases("1.1", c11, N_OF(c11));
}

Test(errors, bad_content_length)
{
    static const char past[] = "SEND\ndestination:/queue/e\ncontent-length:100\n\nhello\0"
                               "SEND\ndestination:/queue/e\n\n"
                               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    static const struct bad_case cases[] = {
        {"negative", "SEND\ndestination:/queue/e\ncontent-length:-1\n\nx", 0, NULL},
        {"not a number", "SEND\ndestination:/queue/e\ncontent-length:abc\n\nx", 0, NULL},
        {"trailing junk", "SEND\ndestination:/queue/e\ncontent-length:1x\n\nx", 0, NULL},
        {"empty", "SEND\ndestination:/queue/e\ncontent-length:\n\nx", 0, NULL},
        {"overflow", "SEND\ndestination:/queue/e\ncontent-length:99999999999999999999999\n\nx", 0,
         NULL},
        {"body longer than length (no NUL after it)",
         "SEND\ndestination:/queue/e\ncontent-length:3\n\nabcdef", 0, NULL},
        {"length runs past the frame's NUL into the next frame", past, sizeof past, NULL},
    };
    run_cases("1.2", cases, N_OF(cases));
}

Test(errors, unknown_commands)
{
    static const struct bad_case cases[] = {
        {"FOO", "FOO\n\n", 0, NULL},
        {"lower-case send", "send\ndestination:/queue/e\n\nx", 0, NULL},
        {"MESSAGE from a client", "MESSAGE\ndestination:/queue/e\nmessage-id:1\n\nx", 0, NULL},
        {"CONNECTED from a client", "CONNECTED\nversion:1.2\n\n", 0, NULL},
        {"RECEIPT from a client", "RECEIPT\nreceipt-id:1\n\n", 0, NULL},
        {"ERROR from a client", "ERROR\nmessage:x\n\n", 0, NULL},
        {"SENDX", "SENDX\ndestination:/queue/e\n\nx", 0, NULL},
        {"leading space", " SEND\ndestination:/queue/e\n\nx", 0, NULL},
    };
    run_cases("1.2", cases, N_OF(cases));
    static const struct bad_case v10[] = {
        {"FOO in 1.0", "FOO\n\n", 0, NULL},
    };
    run_cases("1.0", v10, N_OF(v10));
}

Test(errors, missing_required_headers)
{
    static const struct bad_case c12[] = {
        {"SEND without destination", "SEND\nreceipt:m1\n\nx", 0, "m1"},
        {"SUBSCRIBE without destination", "SUBSCRIBE\nid:1\nreceipt:m2\n\n", 0, "m2"},
        {"SUBSCRIBE without id", "SUBSCRIBE\ndestination:/queue/e\nreceipt:m3\n\n", 0, "m3"},
        {"UNSUBSCRIBE without id", "UNSUBSCRIBE\nreceipt:m4\n\n", 0, "m4"},
        {"ACK without id", "ACK\nreceipt:m5\n\n", 0, "m5"},
        {"NACK without id", "NACK\nreceipt:m6\n\n", 0, "m6"},
        {"BEGIN without transaction", "BEGIN\nreceipt:m7\n\n", 0, "m7"},
        {"COMMIT without transaction", "COMMIT\nreceipt:m8\n\n", 0, "m8"},
        {"ABORT without transaction", "ABORT\nreceipt:m9\n\n", 0, "m9"},
    };
    run_cases("1.2", c12, N_OF(c12));
    static const struct bad_case c11[] = {
        {"1.1 SUBSCRIBE without id", "SUBSCRIBE\ndestination:/queue/e\nreceipt:n1\n\n", 0, "n1"},
        {"1.1 ACK without message-id", "ACK\nsubscription:1\nreceipt:n2\n\n", 0, "n2"},
        {"1.1 ACK without subscription", "ACK\nmessage-id:1\nreceipt:n3\n\n", 0, "n3"},
        {"1.1 SEND without destination", "SEND\nreceipt:n4\n\nx", 0, "n4"},
    };
    run_cases("1.1", c11, N_OF(c11));
    static const struct bad_case c10[] = {
        {"1.0 SEND without destination", "SEND\nreceipt:o1\n\nx", 0, "o1"},
        {"1.0 ACK without message-id", "ACK\nreceipt:o2\n\n", 0, "o2"},
    };
    run_cases("1.0", c10, N_OF(c10));
}

Test(errors, unknown_destination_prefix)
{
    static const struct bad_case cases[] = {
        {"SEND /exchange", "SEND\ndestination:/exchange/x\nreceipt:d1\n\nx", 0, "d1"},
        {"SEND no slash", "SEND\ndestination:queue/x\nreceipt:d2\n\nx", 0, "d2"},
        /* /temp-queue/ is a destination since issue 13; a blank one is not. */
        {"SEND /temp-queue/", "SEND\ndestination:/temp-queue/\nreceipt:d3\n\nx", 0, "d3"},
        {"SEND empty", "SEND\ndestination:\nreceipt:d4\n\nx", 0, "d4"},
        {"SUBSCRIBE /foo", "SUBSCRIBE\ndestination:/foo/bar\nid:1\nreceipt:d5\n\n", 0, "d5"},
        {"SUBSCRIBE /amq/queue", "SUBSCRIBE\ndestination:/amq/queue/x\nid:1\nreceipt:d6\n\n", 0,
         "d6"},
        {"SEND /TOPIC upper-case", "SEND\ndestination:/TOPIC/x\nreceipt:d7\n\nx", 0, "d7"},
    };
    run_cases("1.2", cases, N_OF(cases));
}

Test(errors, frames_before_connect_and_second_connect)
{
    static const struct bad_case pre[] = {
        {"SEND before CONNECT", "SEND\ndestination:/queue/e\n\nx", 0, NULL},
        {"ACK before CONNECT", "ACK\nid:1\n\n", 0, NULL},
        {"UNSUBSCRIBE before CONNECT", "UNSUBSCRIBE\nid:1\n\n", 0, NULL},
    };
    run_cases(NULL, pre, N_OF(pre));
    static const struct bad_case second[] = {
        {"second CONNECT", "CONNECT\naccept-version:1.2\nhost:/\n\n", 0, NULL},
        {"STOMP after CONNECT", "STOMP\naccept-version:1.2\nhost:/\n\n", 0, NULL},
    };
    run_cases("1.2", second, N_OF(second));
}

Test(errors, malformed_header_lines)
{
    static const struct bad_case cases[] = {
        {"header without colon", "SEND\ndestination:/queue/e\nnocolon\n\nx", 0, NULL},
    };
    run_cases("1.2", cases, N_OF(cases));
}

static size_t make_junk(unsigned char *buf, size_t n, unsigned seed)
{
    unsigned x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
    /* Not a heart-beat or a command: start with bytes no command has, and make
     * sure lines and NULs occur early. */
    buf[0] = 0xff;
    buf[1] = 0xfe;
    buf[40] = '\n';
    buf[90] = '\n';
    buf[91] = '\n';
    buf[200] = 0;
    return n;
}

Test(errors, garbage_and_binary_junk)
{
    static unsigned char junk[3][1024];
    struct bad_case cases[5] = {
        {"HTTP request", "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n",
         sizeof "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n" - 1, NULL},
        {"text garbage", "hello there\nthis is not stomp\n\n", 0, NULL},
    };
    for (int i = 0; i < 3; i++) {
        cases[2 + i].name = h_fmt("binary junk %d", i);
        cases[2 + i].raw_len = make_junk(junk[i], sizeof junk[i], 7u + (unsigned)i);
        cases[2 + i].frame = (const char *)junk[i];
    }
    run_cases(NULL, cases, 5);
    run_cases("1.2", cases + 1, 4);
}

/* Partial frames then a close or a reset, many times, on various workers. */
Test(errors, vanishing_and_resetting_clients_do_no_harm)
{
    struct h_broker *b = h_broker_start_ex(3, true, NULL, NULL);
    struct bystanders s = bystanders_start(b);
    static const char *partial[] = {
        "CONN", "CONNECT\naccept-version:1.2\nhost:/\n",
        "CONNECT\naccept-version:1.2\nhost:/\n\n", /* no NUL */
    };
    static const char *partial_after[] = {
        "SEND\ndestination:/queue/half\ncontent-length:1000\n\nonly a little",
        "SUBSCRIBE\ndestination:/queue/half\n",
        "SEND\ndestination:/queue/half\n\nno nul",
        "SE",
    };
    for (int i = 0; i < 24; i++) {
        struct h_conn *c;
        const char *bytes;
        if (i % 2) {
            c = h_client(b, "1.2");
            bytes = partial_after[(i / 2) % 4];
        } else {
            c = h_dial(b);
            bytes = partial[(i / 2) % 3];
        }
        h_send(c, bytes, strlen(bytes));
        if (i % 3 == 0)
            h_reset(c);
        else
            h_close(c);
    }
    /* Consumers that vanish while holding unacked messages give them back. */
    const char *q = h_dest("queue", "vanish");
    for (int i = 0; i < 3; i++)
        h_publish(s.pub, q, h_fmt("v%d", i), i == 2);
    struct h_conn *holder = h_client(b, "1.2");
    h_subscribe(holder, q, "s", "client-individual", NULL);
    for (int i = 0; i < 3; i++)
        h_expect_msg(holder, h_fmt("v%d", i));
    h_send(holder, "SEND\ndestination:/queue/x\n", 26);
    h_reset(holder);
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", NULL, NULL);
    for (int i = 0; i < 3; i++)
        h_expect_msg(c, h_fmt("v%d", i));
    /* The half SEND to /queue/half never became a message. */
    struct h_conn *hc = h_client(b, "1.2");
    h_subscribe(hc, "/queue/half", "h", NULL, NULL);
    h_publish(s.pub, "/queue/half", "marker", true);
    h_expect_msg(hc, "marker");
    bystanders_check(b, &s);
    h_broker_stop_ok(b);
}

/* Frames over the configured limits, with bystanders watching (08_limits checks
 * each limit's flag and its boundary). */
Test(errors, over_limits_do_no_harm)
{
    static char many[16384], longh[80000], oversize[80000];
    size_t n = (size_t)snprintf(many, sizeof many, "SEND\ndestination:/queue/e\n");
    for (int i = 0; i < 1100; i++) /* default --max-headers is 1000 */
        n += (size_t)snprintf(many + n, sizeof many - n, "h%d:v\n", i);
    snprintf(many + n, sizeof many - n, "\nx");
    n = (size_t)snprintf(longh, sizeof longh, "SEND\ndestination:/queue/e\nlong:");
    memset(longh + n, 'L', 70000); /* default --max-header-length is 64 KiB */
    snprintf(longh + n + 70000, sizeof longh - n - 70000, "\n\nx");
    n = (size_t)snprintf(oversize, sizeof oversize, "SEND\ndestination:/queue/e\n\n");
    memset(oversize + n, 'O', 70000); /* run_cases sets --max-frame-size 65536 */
    oversize[n + 70000] = '\0';
    const struct bad_case cases[] = {
        {"1100 headers", many, 0, NULL},
        {"70 KB header line", longh, 0, NULL},
        {"70 KB body over a 64 KiB frame limit", oversize, 0, NULL},
    };
    run_cases("1.2", cases, N_OF(cases));
}

Test(errors, error_closes_in_every_version)
{
    struct h_broker *b = H_START0();
    const char *vers[] = {"1.0", "1.1", "1.2"};
    for (int v = 0; v < 3; v++) {
        struct h_conn *c = h_client(b, vers[v]);
        h_sendz(c, "SEND\ndestination:/nowhere/x\nreceipt:v\n\nx");
        h_expect_error(c, "v");
    }
    h_broker_stop_ok(b);
}

Test(errors, invalid_ack_mode)
{
    struct h_broker *b = H_START0();
    struct h_conn *c = h_client(b, "1.2");
    h_sendz(c, "SUBSCRIBE\ndestination:/queue/am\nid:1\nack:sometimes\nreceipt:am\n\n");
    h_expect_error(c, "am");
    h_broker_stop_ok(b);
}

/* Subscribers come and go abruptly while a publisher keeps a topic busy: late
 * deliveries to connections that are gone must find nobody (no crash, no
 * leak under ASan), and a steady subscriber sees every message in order. */
Test(errors, topic_subscriber_churn_under_load)
{
    struct h_broker *b = h_broker_start_ex(3, true, NULL, NULL);
    const char *t = h_dest("topic", "churn");
    struct h_conn *steady = h_client(b, "1.2"), *pub = h_client(b, "1.2");
    h_subscribe(steady, t, "s", NULL, NULL);
    int sent = 0;
    for (int round = 0; round < 40; round++) {
        struct h_conn *tmp[3];
        for (int k = 0; k < 3; k++) {
            tmp[k] = h_client(b, k == 1 ? "1.1" : "1.2");
            h_sendf(tmp[k], "SUBSCRIBE\ndestination:%s\nid:c\n\n", t);
        }
        for (int i = 0; i < 25; i++, sent++)
            h_sendf(pub, "SEND\ndestination:%s\n\nm%d", t, sent);
        for (int k = 0; k < 3; k++) {
            if (k == 0)
                h_reset(tmp[k]);
            else if (k == 1)
                h_close(tmp[k]);
            else
                h_sendz(tmp[k], "DISCONNECT\n\n");
        }
        for (int i = sent - 25; i < sent; i++)
            h_expect_msg(steady, h_fmt("m%d", i));
    }
    cr_assert(h_broker_alive(b), "broker died; log:\n%s", h_broker_log(b));
    h_broker_stop_ok(b);
}
