/*
 * 23_features.c - issue 13's durable topic subscriptions and temp queues
 * against the real broker: request/reply through /temp-queue/ across
 * connections (the reply-to rewritten to an unguessable /reply-queue/ name
 * no other connection may consume, gone with its connection), and durable
 * subscriptions in both dialects keeping messages while the subscriber is
 * away, across kill -9 with --data-dir. Brokers on port 0, every wait
 * bounded (harness.h).
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static char data[128];

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    remove(path);
    return 0;
}

static void fini(void)
{
    h_fini();
    if (data[0])
        nftw(data, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    data[0] = '\0';
}

TestSuite(features, .init = h_init, .fini = fini, .timeout = 90);

/* --- temp queues --- */

Test(features, request_reply_through_a_temp_queue)
{
    struct h_broker *b = H_START0();
    const char *rpc = h_dest("queue", "rpc");
    struct h_conn *server = h_client(b, "1.2");
    h_subscribe(server, rpc, "srv", NULL, "");
    struct h_conn *client = h_client(b, "1.2");
    for (int i = 0; i < 3; i++) {
        h_sendf(client, "SEND\ndestination:%s\nreply-to:/temp-queue/replies\n\nq%d", rpc, i);
        struct h_frame *req = h_expect(server, "MESSAGE", 3000);
        const char *rt = h_hdr(req, "reply-to");
        cr_assert(rt && strncmp(rt, "/reply-queue/", 13) == 0, "reply-to %s", rt ? rt : "-");
        h_sendf(server, "SEND\ndestination:%s\ncorrelation-id:%d\n\nr%d", rt, i, i);
        struct h_frame *rep = h_expect_msg(client, h_fmt("r%d", i));
        cr_assert_str_eq(h_hdr(rep, "subscription"), "/temp-queue/replies");
        cr_assert_str_eq(h_hdr(rep, "correlation-id"), h_fmt("%d", i));
    }
    h_broker_stop_ok(b);
}

Test(features, a_reply_queue_is_private_and_goes_with_its_connection)
{
    struct h_broker *b = H_START0();
    const char *rpc = h_dest("queue", "rpc");
    struct h_conn *server = h_client(b, "1.2");
    h_subscribe(server, rpc, "srv", NULL, "");
    struct h_conn *client = h_client(b, "1.2");
    h_sendf(client, "SEND\ndestination:%s\nreply-to:/temp-queue/a\n\nq", rpc);
    struct h_frame *req = h_expect(server, "MESSAGE", 3000);
    char rt[128];
    snprintf(rt, sizeof(rt), "%s", h_hdr(req, "reply-to"));
    /* Another connection may send there but not consume it. */
    struct h_conn *thief = h_client(b, "1.2");
    h_sendf(thief, "SUBSCRIBE\ndestination:%s\nid:x\nreceipt:s\n\n", rt);
    h_expect_error_msg(thief, "s", "Invalid destination");
    /* Two requesters get different names. */
    struct h_conn *other = h_client(b, "1.2");
    h_sendf(other, "SEND\ndestination:%s\nreply-to:/temp-queue/a\n\nq", rpc);
    req = h_expect(server, "MESSAGE", 3000);
    cr_assert_str_neq(h_hdr(req, "reply-to"), rt);
    /* Once the requester is gone, a reply to its queue is dropped and
     * makes nothing a later subscriber could read. */
    h_disconnect(client);
    h_sendf(server, "SEND\ndestination:%s\nreceipt:late\n\nlate", rt);
    h_expect_receipt(server, "late");
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

/* --- durable subscriptions --- */

static struct h_conn *client_id(struct h_broker *b, const char *cid)
{
    struct h_conn *c = h_dial(b);
    h_sendf(c, "CONNECT\naccept-version:1.2\nhost:/\nclient-id:%s\n\n", cid);
    struct h_frame *f = h_expect(c, "CONNECTED", 3000);
    (void)f;
    c->version = 12;
    return c;
}

static void publish_n(struct h_conn *pub, const char *topic, int from, int to, bool persistent)
{
    for (int i = from; i < to; i++)
        h_sendf(pub, "SEND\ndestination:%s\n%s%s\nm%d", topic,
                persistent ? "persistent:true\n" : "", i == to - 1 ? "receipt:last\n" : "", i);
    h_expect_receipt(pub, "last");
}

static void expect_n(struct h_conn *c, int from, int to)
{
    for (int i = from; i < to; i++)
        h_expect_msg(c, h_fmt("m%d", i));
}

Test(features, rabbitmq_durable_subscription_keeps_messages_while_away)
{
    struct h_broker *b = H_START0();
    const char *topic = h_dest("topic", "dsub");
    const char *hdrs = "durable:true\nauto-delete:false\n";
    struct h_conn *sub = h_client(b, "1.2");
    h_subscribe(sub, topic, "d1", NULL, hdrs);
    struct h_conn *pub = h_client(b, "1.2");
    publish_n(pub, topic, 0, 2, false);
    expect_n(sub, 0, 2);
    h_disconnect(sub);
    publish_n(pub, topic, 2, 50, false);
    sub = h_client(b, "1.1");
    h_subscribe(sub, topic, "d1", NULL, hdrs);
    expect_n(sub, 2, 50);
    /* Held: a second holder is refused. */
    struct h_conn *second = h_client(b, "1.2");
    h_sendf(second, "SUBSCRIBE\ndestination:%s\nid:d1\n%sreceipt:s\n\n", topic, hdrs);
    h_expect_error_msg(second, NULL, "durable subscription in use");
    h_sendf(sub, "UNSUBSCRIBE\nid:d1\ndurable:true\nreceipt:u\n\n");
    h_expect_receipt(sub, "u");
    publish_n(pub, topic, 50, 52, false);
    h_subscribe(sub, topic, "d1", NULL, hdrs);
    h_expect_silence(sub, 200);
    h_broker_stop_ok(b);
}

Test(features, activemq_durable_subscription_survives_kill9)
{
    snprintf(data, sizeof(data), "/tmp/stampede-itest-features-%d-XXXXXX", (int)getpid());
    cr_assert(mkdtemp(data) != NULL, "mkdtemp: %s", strerror(errno));
    const char *dd = h_fmt("--data-dir=%s", data);
    struct h_broker *b = H_START_W(2, dd);
    const char *topic = h_dest("topic", "amq");
    const char *name = "activemq.subscriptionName:audit\n";
    struct h_conn *sub = client_id(b, "auditor");
    h_subscribe(sub, topic, "s", "client-individual", name);
    h_disconnect(sub);
    /* The subscription alone (no message yet) survives the crash. */
    int rc = h_broker_stop_sig(b, SIGKILL, 5000);
    cr_assert_eq(rc, -1);
    b = H_START_W(2, dd);
    struct h_conn *pub = h_client(b, "1.2");
    publish_n(pub, topic, 0, 20, true);
    rc = h_broker_stop_sig(b, SIGKILL, 5000);
    cr_assert_eq(rc, -1);
    b = H_START_W(3, dd);
    sub = client_id(b, "auditor");
    h_subscribe(sub, topic, "s2", "client-individual", name);
    for (int i = 0; i < 20; i++) {
        struct h_frame *f = h_expect_msg(sub, h_fmt("m%d", i));
        cr_assert_str_eq(h_hdr(f, "destination"), topic);
        cr_assert_str_eq(h_hdr(f, "subscription"), "s2");
        if (i < 10)
            h_ack(sub, f, NULL, i == 9);
    }
    rc = h_broker_stop_sig(b, SIGKILL, 5000);
    cr_assert_eq(rc, -1);
    /* The ten acked with a receipt are gone; the rest come back marked. */
    b = H_START_W(1, dd);
    sub = client_id(b, "auditor");
    h_subscribe(sub, topic, "s3", "auto", name);
    for (int i = 10; i < 20; i++) {
        struct h_frame *f = h_expect_msg(sub, h_fmt("m%d", i));
        cr_assert_str_eq(h_hdr(f, "redelivered"), "true");
    }
    h_expect_silence(sub, 200);
    h_broker_stop_ok(b);
}

/* --max-durable-subscriptions-per-login: one login cannot pile up durable
 * subscriptions (each keeps messages while away): past the bound SUBSCRIBE
 * gets an ERROR; another login is not affected; coming back to one it holds
 * is not a new one; removing one frees its place. */
Test(features, durable_subscriptions_per_login_are_bounded)
{
    struct h_broker *b = H_START("--user", "alice:pw", "--user", "bob:pw",
                                 "--max-durable-subscriptions-per-login", "2");
    const char *hdrs = "durable:true\nauto-delete:false\n";
    const char *t1 = h_dest("topic", "q1"), *t2 = h_dest("topic", "q2");
    const char *t3 = h_dest("topic", "q3");
    struct h_conn *a = h_client_login(b, "1.2", "alice", "pw");
    h_subscribe(a, t1, "d1", NULL, hdrs);
    h_subscribe(a, t2, "d2", NULL, hdrs);
    h_disconnect(a);
    /* Back to the two it holds: not new ones. */
    a = h_client_login(b, "1.2", "alice", "pw");
    h_subscribe(a, t1, "d1", NULL, hdrs);
    h_subscribe(a, t2, "d2", NULL, hdrs);
    /* A third is refused, with an ERROR that says why. */
    struct h_conn *a2 = h_client_login(b, "1.2", "alice", "pw");
    h_sendf(a2, "SUBSCRIBE\ndestination:%s\nid:d3\n%sreceipt:s3\n\n", t3, hdrs);
    h_expect_error_msg(a2, NULL, "too many durable subscriptions");
    /* Bob has his own count. */
    struct h_conn *bob = h_client_login(b, "1.2", "bob", "pw");
    h_subscribe(bob, t3, "d3", NULL, hdrs);
    /* Alice removes one; then the third fits. */
    h_sendf(a, "UNSUBSCRIBE\nid:d1\ndurable:true\nreceipt:u1\n\n");
    h_expect_receipt(a, "u1");
    struct h_conn *a3 = h_client_login(b, "1.2", "alice", "pw");
    h_subscribe(a3, t3, "d3", NULL, hdrs);
    struct h_conn *pub = h_client_login(b, "1.2", "bob", "pw");
    h_publish(pub, t3, "to-both", true);
    cr_assert_str_eq(h_expect(a3, "MESSAGE", H_WAIT)->body, "to-both");
    cr_assert_str_eq(h_expect(bob, "MESSAGE", H_WAIT)->body, "to-both");
    h_broker_stop_ok(b);
}
