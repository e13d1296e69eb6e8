/* Unit tests of issue 13's durable topic subscriptions and temp queues
 * through the broker harness: real workers (two, so owners differ), no
 * sockets. */
#include "broker_harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool running;

static void start(unsigned n)
{
    const char *flags[] = {NULL};
    th_setup(n, flags);
    running = true;
}

static void fini(void)
{
    if (running)
        th_teardown();
    running = false;
}

TestSuite(temp, .fini = fini);

static void subscribe(struct th_conn *t, const char *dest, const char *id)
{
    th_sendf(t, "SUBSCRIBE\ndestination:%s\nid:%s\nreceipt:s-%s\n\n", dest, id, id);
    th_pump();
    struct stp_frame f = th_expect(t, STP_CMD_RECEIPT);
    (void)f;
}

/* A request/reply round trip: the requester's reply-to is rewritten to a
 * /reply-queue/ name, the responder's reply reaches the requester on the
 * automatic subscription "/temp-queue/NAME". */
static void round_trip(unsigned req_worker, unsigned resp_worker, char *reply_to, size_t size)
{
    struct th_conn *server = th_connect(resp_worker);
    struct th_conn *client = th_connect(req_worker);
    char q[32];
    snprintf(q, sizeof(q), "/queue/rpc%u", resp_worker);
    subscribe(server, q, "srv");
    th_sendf(client,
             "SEND\ndestination:%s\nreply-to:/temp-queue/answers\nreceipt:r1\n\n"
             "question",
             q);
    th_pump();
    th_expect(client, STP_CMD_RECEIPT);
    struct stp_frame f = th_expect(server, STP_CMD_MESSAGE);
    const char *rt = th_header(&f, "reply-to");
    cr_assert_not_null(rt);
    cr_assert(strncmp(rt, "/reply-queue/stp.gen-", 21) == 0, "reply-to rewritten: %s", rt);
    cr_assert_eq(strlen(rt), 21 + 22);
    snprintf(reply_to, size, "%s", rt);
    th_sendf(server, "SEND\ndestination:%s\ncorrelation-id:1\n\nanswer", reply_to);
    th_pump();
    f = th_expect(client, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_header(&f, "subscription"), "/temp-queue/answers");
    cr_assert_str_eq(th_header(&f, "destination"), reply_to);
    cr_assert_str_eq(th_header(&f, "correlation-id"), "1");
    cr_assert_str_eq(th_body(&f), "answer");
}

Test(temp, reply_to_is_rewritten_and_the_reply_comes_back)
{
    start(2);
    char rt[128];
    round_trip(0, 1, rt, sizeof(rt));
    char rt2[128];
    round_trip(1, 0, rt2, sizeof(rt2));
    cr_assert_str_neq(rt, rt2, "each connection gets its own queue");
}

Test(temp, the_same_name_reuses_one_queue_and_subscription)
{
    start(2);
    struct th_conn *server = th_connect(1);
    struct th_conn *client = th_connect(0);
    subscribe(server, "/queue/rpc", "srv");
    char first[128] = "";
    for (int i = 0; i < 3; i++) {
        th_sendf(client, "SEND\ndestination:/queue/rpc\nreply-to:/temp-queue/a\n\nq%d", i);
        th_pump();
        struct stp_frame f = th_expect(server, STP_CMD_MESSAGE);
        if (i == 0)
            snprintf(first, sizeof(first), "%s", th_header(&f, "reply-to"));
        else
            cr_assert_str_eq(th_header(&f, "reply-to"), first);
        th_sendf(server, "SEND\ndestination:%s\n\nr%d", first, i);
    }
    th_pump();
    for (int i = 0; i < 3; i++) {
        struct stp_frame f = th_expect(client, STP_CMD_MESSAGE);
        char want[8];
        snprintf(want, sizeof(want), "r%d", i);
        cr_assert_str_eq(th_body(&f), want);
    }
    th_expect_none(client);
}

Test(temp, an_explicit_subscription_and_a_send_to_the_temp_name)
{
    start(2);
    struct th_conn *t = th_connect(1);
    subscribe(t, "/temp-queue/mine", "my-sub");
    th_send(t, "SEND\ndestination:/temp-queue/mine\n\nto myself");
    th_pump();
    struct stp_frame f = th_expect(t, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_header(&f, "subscription"), "my-sub");
    cr_assert_str_eq(th_body(&f), "to myself");
    /* A reply-to naming it adds no second subscription. */
    struct th_conn *server = th_connect(0);
    subscribe(server, "/queue/rpc", "srv");
    th_send(t, "SEND\ndestination:/queue/rpc\nreply-to:/temp-queue/mine\n\nq");
    th_pump();
    f = th_expect(server, STP_CMD_MESSAGE);
    char rt[128];
    snprintf(rt, sizeof(rt), "%s", th_header(&f, "reply-to"));
    th_sendf(server, "SEND\ndestination:%s\n\nr", rt);
    th_pump();
    f = th_expect(t, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_header(&f, "subscription"), "my-sub");
    th_expect_none(t);
}

Test(temp, nobody_else_may_subscribe_to_a_reply_queue)
{
    start(2);
    struct th_conn *server = th_connect(1);
    struct th_conn *client = th_connect(0);
    subscribe(server, "/queue/rpc", "srv");
    th_send(client, "SEND\ndestination:/queue/rpc\nreply-to:/temp-queue/x\n\nq");
    th_pump();
    struct stp_frame f = th_expect(server, STP_CMD_MESSAGE);
    char rt[128];
    snprintf(rt, sizeof(rt), "%s", th_header(&f, "reply-to"));
    struct th_conn *thief = th_connect(1);
    th_sendf(thief, "SUBSCRIBE\ndestination:%s\nid:steal\n\n", rt);
    th_pump();
    f = th_expect(thief, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&f, "message"), "Invalid destination");
    /* The requester still gets its reply. */
    th_sendf(server, "SEND\ndestination:%s\n\nr", rt);
    th_pump();
    f = th_expect(client, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), "r");
}

Test(temp, the_queue_goes_with_its_connection)
{
    start(2);
    struct th_conn *server = th_connect(1);
    struct th_conn *client = th_connect(0);
    subscribe(server, "/queue/rpc", "srv");
    th_send(client, "SEND\ndestination:/queue/rpc\nreply-to:/temp-queue/x\n\nq");
    th_pump();
    struct stp_frame f = th_expect(server, STP_CMD_MESSAGE);
    char rt[128];
    snprintf(rt, sizeof(rt), "%s", th_header(&f, "reply-to"));
    size_t queues_before = th_worker(0)->queues.count;
    cr_assert_geq(queues_before, 1);
    th_send(client, "DISCONNECT\nreceipt:bye\n\n");
    th_pump();
    th_expect(client, STP_CMD_RECEIPT);
    th_pump();
    cr_assert_eq(th_worker(0)->queues.count, queues_before - 1, "the reply queue is gone");
    /* A late reply is dropped: it makes no queue. */
    th_sendf(server, "SEND\ndestination:%s\nreceipt:late\n\nr", rt);
    th_pump();
    th_expect(server, STP_CMD_RECEIPT);
    cr_assert_eq(th_worker(0)->queues.count, queues_before - 1);
}

Test(temp, a_reply_queue_that_never_existed_makes_nothing)
{
    start(2);
    struct th_conn *t = th_connect(0);
    size_t q0 = th_worker(0)->queues.count, q1 = th_worker(1)->queues.count;
    th_send(t, "SEND\ndestination:/reply-queue/stp.gen-guessedguessedguessed\nreceipt:r\n\nx");
    th_pump();
    th_expect(t, STP_CMD_RECEIPT);
    cr_assert_eq(th_worker(0)->queues.count, q0);
    cr_assert_eq(th_worker(1)->queues.count, q1);
}

Test(temp, temp_names_are_bounded_by_max_subscriptions)
{
    const char *flags[] = {"--max-subscriptions=3", NULL};
    th_setup(1, flags);
    running = true;
    struct th_conn *t = th_connect(0);
    for (int i = 0; i < 3; i++)
        th_sendf(t, "SEND\ndestination:/queue/q\nreply-to:/temp-queue/t%d\n\nx", i);
    th_pump();
    th_expect_none(t);
    th_send(t, "SEND\ndestination:/queue/q\nreply-to:/temp-queue/t3\n\nx");
    th_pump();
    struct stp_frame f = th_expect(t, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&f, "message"), "too many temp queues");
}

/* --- durable topic subscriptions --- */

static char dir[64];

static void dsub_init(void)
{
    snprintf(dir, sizeof(dir), "/tmp/stp-dsub-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void dsub_fini(void)
{
    fini();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    (void)system(cmd);
}

TestSuite(dsub, .init = dsub_init, .fini = dsub_fini);

static void start_with(unsigned n, const char *f1, const char *f2)
{
    const char *flags[] = {f1, f2, NULL};
    th_setup(n, flags);
    running = true;
}

static void start_dir(unsigned n)
{
    static char arg[128];
    snprintf(arg, sizeof(arg), "--data-dir=%s", dir);
    start_with(n, arg, NULL);
}

static void stop(void)
{
    th_teardown();
    running = false;
}

/* A 1.2 connection on worker w with login (NULL: none) and client-id. */
static struct th_conn *connect_as(unsigned w, const char *login, const char *client_id)
{
    struct th_conn *t = th_open(w);
    char frame[256] = "CONNECT\naccept-version:1.2\nhost:x\n";
    if (login)
        snprintf(frame + strlen(frame), sizeof(frame) - strlen(frame), "login:%s\npasscode:p\n",
                 login);
    if (client_id)
        snprintf(frame + strlen(frame), sizeof(frame) - strlen(frame), "client-id:%s\n", client_id);
    strcat(frame, "\n");
    th_send(t, frame);
    cr_assert(th_await(t, 5000));
    th_expect(t, STP_CMD_CONNECTED);
    return t;
}

static void rabbit_sub(struct th_conn *t, const char *topic, const char *id, const char *extra)
{
    th_sendf(t,
             "SUBSCRIBE\ndestination:%s\nid:%s\ndurable:true\nauto-delete:false\n%sreceipt:s\n\n",
             topic, id, extra ? extra : "");
    cr_assert(th_await(t, 5000));
    th_expect(t, STP_CMD_RECEIPT);
}

static void publish(struct th_conn *pub, const char *topic, int from, int to, bool persistent)
{
    for (int i = from; i < to; i++)
        th_sendf(pub, "SEND\ndestination:%s\n%s\nm%d", topic, persistent ? "persistent:true\n" : "",
                 i);
    th_sendf(pub, "SEND\ndestination:/queue/none\nreceipt:p%d\n\n", to);
    cr_assert(th_await(pub, 5000));
    th_expect(pub, STP_CMD_RECEIPT);
}

/* The next n MESSAGEs of t are m<from>..m<from+n-1>, with subscription id. */
static void expect_msgs(struct th_conn *t, const char *id, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        cr_assert(th_await(t, 5000), "message m%d did not come", i);
        struct stp_frame f = th_expect(t, STP_CMD_MESSAGE);
        char want[16];
        snprintf(want, sizeof(want), "m%d", i);
        cr_assert_str_eq(th_body(&f), want);
        cr_assert_str_eq(th_header(&f, "subscription"), id);
    }
}

/* How many durable subscription queues worker w holds. */
static size_t dsub_queues(unsigned w)
{
    struct stp_map *m = &th_worker(w)->queues;
    size_t n = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].hash && strncmp(m->slots[i].key, "/dsub/", 6) == 0)
            n++;
    return n;
}

static void disconnect(struct th_conn *t)
{
    th_send(t, "DISCONNECT\nreceipt:bye\n\n");
    cr_assert(th_await(t, 5000));
    th_expect(t, STP_CMD_RECEIPT);
    th_pump();
}

Test(dsub, rabbitmq_dialect_keeps_messages_while_the_subscriber_is_away)
{
    start_with(2, NULL, NULL);
    const char *topic = th_owned_by(1, "/topic/news.", 0);
    struct th_conn *pub = th_connect(0);
    struct th_conn *sub = th_connect(0);
    rabbit_sub(sub, topic, "d1", NULL);
    publish(pub, topic, 0, 3, false);
    expect_msgs(sub, "d1", 0, 3);
    disconnect(sub);
    publish(pub, topic, 3, 8, false);
    /* Back on another worker: the five sent meanwhile, in order, then live. */
    sub = th_connect(1);
    rabbit_sub(sub, topic, "d1", NULL);
    expect_msgs(sub, "d1", 3, 5);
    publish(pub, topic, 8, 9, false);
    expect_msgs(sub, "d1", 8, 1);
    th_expect_none(sub);
}

Test(dsub, a_plain_subscriber_and_a_durable_one_each_get_every_message)
{
    start_with(2, NULL, NULL);
    const char *topic = th_owned_by(0, "/topic/t.", 0);
    struct th_conn *pub = th_connect(1);
    struct th_conn *plain = th_connect(1);
    struct th_conn *dur = th_connect(0);
    th_sendf(plain, "SUBSCRIBE\ndestination:%s\nid:p\nreceipt:s\n\n", topic);
    th_pump();
    th_expect(plain, STP_CMD_RECEIPT);
    rabbit_sub(dur, topic, "d", NULL);
    publish(pub, topic, 0, 4, false);
    expect_msgs(plain, "p", 0, 4);
    expect_msgs(dur, "d", 0, 4);
}

Test(dsub, unsubscribe_durable_removes_it_and_plain_unsubscribe_keeps_it)
{
    start_with(2, NULL, NULL);
    const char *topic = th_owned_by(1, "/topic/u.", 0);
    struct th_conn *pub = th_connect(0);
    struct th_conn *sub = th_connect(0);
    rabbit_sub(sub, topic, "d", NULL);
    cr_assert_eq(dsub_queues(1), 1);
    th_send(sub, "UNSUBSCRIBE\nid:d\nreceipt:u1\n\n");
    th_pump();
    th_expect(sub, STP_CMD_RECEIPT);
    publish(pub, topic, 0, 2, false);
    rabbit_sub(sub, topic, "d", NULL);
    expect_msgs(sub, "d", 0, 2); /* kept: a plain UNSUBSCRIBE only detaches */
    th_send(sub, "UNSUBSCRIBE\nid:d\ndurable:true\nreceipt:u2\n\n");
    th_pump();
    th_expect(sub, STP_CMD_RECEIPT);
    publish(pub, topic, 2, 4, false);
    cr_assert_eq(dsub_queues(1), 0, "nothing kept for a removed subscription");
    rabbit_sub(sub, topic, "d", NULL);
    publish(pub, topic, 4, 5, false);
    expect_msgs(sub, "d", 4, 1); /* a new subscription: only what came after it */
    th_expect_none(sub);
}

Test(dsub, removed_while_away_by_naming_its_destination)
{
    start_with(2, NULL, NULL);
    const char *topic = th_owned_by(0, "/topic/away.", 0);
    struct th_conn *pub = th_connect(1);
    struct th_conn *sub = th_connect(1);
    rabbit_sub(sub, topic, "d", NULL);
    disconnect(sub);
    publish(pub, topic, 0, 3, false);
    struct th_conn *admin = th_connect(1);
    th_sendf(admin, "UNSUBSCRIBE\nid:d\ndestination:%s\ndurable:true\nreceipt:u\n\n", topic);
    th_pump();
    th_expect(admin, STP_CMD_RECEIPT);
    rabbit_sub(admin, topic, "d", NULL);
    th_pump();
    th_expect_none(admin);
    th_send(admin, "UNSUBSCRIBE\nid:nope\ndurable:true\n\n");
    th_pump();
    struct stp_frame f = th_expect(admin, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&f, "message"), "No subscription found");
}

Test(dsub, activemq_dialect_needs_a_client_id)
{
    start_with(2, NULL, NULL);
    const char *topic = th_owned_by(1, "/topic/amq.", 0);
    struct th_conn *pub = th_connect(0);
    struct th_conn *sub = connect_as(0, NULL, "app-1");
    th_sendf(sub,
             "SUBSCRIBE\ndestination:%s\nid:x\nactivemq.subscriptionName:orders\nreceipt:s\n\n",
             topic);
    th_pump();
    th_expect(sub, STP_CMD_RECEIPT);
    disconnect(sub);
    publish(pub, topic, 0, 2, false);
    /* Another subscription id, the same client-id and name: the same one. */
    sub = connect_as(1, NULL, "app-1");
    th_sendf(sub,
             "SUBSCRIBE\ndestination:%s\nid:y\nactivemq.subscriptionName:orders\nreceipt:s\n\n",
             topic);
    th_pump();
    th_expect(sub, STP_CMD_RECEIPT);
    expect_msgs(sub, "y", 0, 2);
    /* Another client-id: another subscription, which starts empty. */
    struct th_conn *other = connect_as(1, NULL, "app-2");
    th_sendf(other,
             "SUBSCRIBE\ndestination:%s\nid:y\nactivemq.subscriptionName:orders\nreceipt:s\n\n",
             topic);
    th_pump();
    th_expect(other, STP_CMD_RECEIPT);
    th_expect_none(other);
    struct th_conn *anon = th_connect(0);
    th_sendf(anon, "SUBSCRIBE\ndestination:%s\nid:z\nactivemq.subscriptionName:orders\n\n", topic);
    th_pump();
    struct stp_frame f = th_expect(anon, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&f, "message"), "durable subscription needs a client-id");
}

Test(dsub, two_connections_cannot_hold_one_at_once)
{
    start_with(2, NULL, NULL);
    const char *topic = th_owned_by(1, "/topic/x.", 0);
    struct th_conn *a = th_connect(0);
    struct th_conn *b = th_connect(1);
    rabbit_sub(a, topic, "d", NULL);
    th_sendf(b, "SUBSCRIBE\ndestination:%s\nid:d\ndurable:true\nreceipt:s\n\n", topic);
    th_pump();
    struct stp_frame f = th_expect(b, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&f, "message"), "durable subscription in use");
    /* The holder is not disturbed. */
    struct th_conn *pub = th_connect(0);
    publish(pub, topic, 0, 1, false);
    expect_msgs(a, "d", 0, 1);
}

Test(dsub, one_login_cannot_reach_another_logins_subscription)
{
    start_with(2, NULL, NULL);
    const char *topic = th_owned_by(0, "/topic/priv.", 0);
    struct th_conn *alice = connect_as(1, "alice", NULL);
    rabbit_sub(alice, topic, "d", NULL);
    disconnect(alice);
    struct th_conn *pub = th_connect(1);
    publish(pub, topic, 0, 2, false);
    struct th_conn *mallory = connect_as(1, "mallory", NULL);
    rabbit_sub(mallory, topic, "d", NULL);
    th_pump();
    th_expect_none(mallory);
    alice = connect_as(0, "alice", NULL);
    rabbit_sub(alice, topic, "d", NULL);
    expect_msgs(alice, "d", 0, 2);
}

Test(dsub, client_acks_and_redelivery_work_as_on_a_queue)
{
    start_with(2, NULL, NULL);
    const char *topic = th_owned_by(1, "/topic/ack.", 0);
    struct th_conn *pub = th_connect(0);
    struct th_conn *sub = th_connect(0);
    rabbit_sub(sub, topic, "d", "ack:client-individual\n");
    publish(pub, topic, 0, 2, false);
    expect_msgs(sub, "d", 0, 2);
    disconnect(sub); /* nothing acked: both come back */
    sub = th_connect(1);
    rabbit_sub(sub, topic, "d", "ack:client-individual\n");
    for (int i = 0; i < 2; i++) {
        cr_assert(th_await(sub, 5000));
        struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
        cr_assert_str_eq(th_header(&f, "redelivered"), "true");
        cr_assert_str_eq(th_header(&f, "destination"), topic);
        th_sendf(sub, "ACK\nid:%s\n\n", th_header(&f, "ack"));
    }
    disconnect(sub);
    sub = th_connect(1);
    rabbit_sub(sub, topic, "d", NULL);
    th_pump();
    th_expect_none(sub);
}

Test(dsub, bounded_by_the_queue_limit_without_pausing_the_publisher)
{
    start_with(2, "--queue-max-messages=3", NULL);
    const char *topic = th_owned_by(1, "/topic/full.", 0);
    struct th_conn *pub = th_connect(0);
    struct th_conn *sub = th_connect(0);
    rabbit_sub(sub, topic, "d", NULL);
    disconnect(sub);
    publish(pub, topic, 0, 10, false); /* the receipt comes: not paused */
    sub = th_connect(0);
    rabbit_sub(sub, topic, "d", NULL);
    expect_msgs(sub, "d", 0, 3);
    th_expect_none(sub);
}

Test(dsub, wildcards_are_refused_and_client_ids_are_checked)
{
    start_with(1, NULL, NULL);
    struct th_conn *t = th_connect(0);
    th_send(t, "SUBSCRIBE\ndestination:/topic/a.*\nid:d\ndurable:true\n\n");
    th_pump();
    struct stp_frame f = th_expect(t, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&f, "message"), "durable wildcard subscriptions are not supported");
    t = th_open(0);
    th_send(t, "CONNECT\naccept-version:1.2\nhost:x\nclient-id:\n\n");
    th_pump();
    f = th_expect(t, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&f, "message"), "invalid client-id");
}

/* A durable subscription with a selector keeps only what matches while
 * its subscriber is away (ActiveMQ filters at the subscription, not at the
 * consumer); another selector is another subscription. */
static void publish_kinds(struct th_conn *pub, const char *topic, int from, int to)
{
    for (int i = from; i < to; i++)
        th_sendf(pub, "SEND\ndestination:%s\npersistent:true\nkind:%s\n\nm%d", topic,
                 i % 2 ? "odd" : "even", i);
    th_sendf(pub, "SEND\ndestination:/queue/none\nreceipt:k%d\n\n", to);
    cr_assert(th_await(pub, 5000));
    th_expect(pub, STP_CMD_RECEIPT);
}

static void expect_bodies(struct th_conn *t, const char *const *bodies, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cr_assert(th_await(t, 5000), "no %s", bodies[i]);
        struct stp_frame f = th_expect(t, STP_CMD_MESSAGE);
        cr_assert_str_eq(th_body(&f), bodies[i]);
    }
    th_pump();
    th_expect_none(t);
}

Test(dsub, a_selector_filters_what_is_kept)
{
    start_dir(2);
    const char *topic = th_owned_by(1, "/topic/sel.", 0);
    const char *even = "selector:kind = 'even'\n";
    struct th_conn *sub = th_connect(0);
    rabbit_sub(sub, topic, "d", even);
    disconnect(sub);
    struct th_conn *pub = th_connect(0);
    publish_kinds(pub, topic, 0, 6);
    sub = th_connect(1);
    rabbit_sub(sub, topic, "d", even);
    expect_bodies(sub, (const char *const[]){"m0", "m2", "m4"}, 3);
    disconnect(sub);
    publish_kinds(pub, topic, 6, 8);
    /* The same selector after a restart: still filtered, m6 kept. */
    stop();
    start_dir(2);
    pub = th_connect(0);
    publish_kinds(pub, topic, 8, 10);
    sub = th_connect(0);
    rabbit_sub(sub, topic, "d", even);
    expect_bodies(sub, (const char *const[]){"m6", "m8"}, 2);
    disconnect(sub);
    publish_kinds(pub, topic, 10, 12);
    /* Another selector: a new subscription; m10 (kept for the old one) goes. */
    sub = th_connect(0);
    rabbit_sub(sub, topic, "d", "selector:kind = 'odd'\n");
    th_pump();
    th_expect_none(sub);
    publish_kinds(pub, topic, 12, 14);
    expect_bodies(sub, (const char *const[]){"m13"}, 1);
}

Test(dsub, survives_a_restart_with_a_data_dir_even_when_empty)
{
    start_dir(2);
    const char *topic = th_owned_by(1, "/topic/disk.", 0);
    struct th_conn *sub = th_connect(0);
    rabbit_sub(sub, topic, "d", "ack:client\n");
    stop();
    /* Restarted: the subscription exists with nothing in it yet. */
    start_dir(2);
    struct th_conn *pub = th_connect(0);
    publish(pub, topic, 0, 3, true);
    stop();
    /* Restarted with another worker count: re-homed, still in order. */
    start_dir(3);
    sub = th_connect(2);
    rabbit_sub(sub, topic, "d", "ack:client\n");
    expect_msgs(sub, "d", 0, 3);
    th_send(sub, "DISCONNECT\nreceipt:bye\n\n");
    th_pump();
    stop();
    start_dir(1);
    sub = th_connect(0);
    rabbit_sub(sub, topic, "d", NULL);
    cr_assert(th_await(sub, 5000));
    struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_header(&f, "redelivered"), "true"); /* delivered before, never acked */
    cr_assert_str_eq(th_body(&f), "m0");
    expect_msgs(sub, "d", 1, 2);
    /* Removed: after a restart it is gone. */
    th_send(sub, "UNSUBSCRIBE\nid:d\ndurable:true\nreceipt:u\n\n");
    cr_assert(th_await(sub, 5000));
    th_expect(sub, STP_CMD_RECEIPT);
    stop();
    start_dir(1);
    pub = th_connect(0);
    publish(pub, topic, 10, 11, true);
    cr_assert_eq(dsub_queues(0), 0, "no durable subscription left");
}

Test(dsub, clients_cannot_name_a_durable_subscriptions_queue)
{
    start_with(2, NULL, NULL);
    const char *topic = th_owned_by(1, "/topic/hid.", 0);
    struct th_conn *sub = th_connect(0);
    rabbit_sub(sub, topic, "d", NULL);
    const char *qname = NULL;
    struct stp_map *m = &th_worker(1)->queues;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].hash && strncmp(m->slots[i].key, "/dsub/", 6) == 0)
            qname = m->slots[i].key;
    cr_assert_not_null(qname);
    struct th_conn *t = th_connect(0);
    th_sendf(t, "SEND\ndestination:%s\n\nforged", qname);
    th_pump();
    struct stp_frame f = th_expect(t, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&f, "message"), "Unknown destination");
    t = th_connect(1);
    th_sendf(t, "SUBSCRIBE\ndestination:%s\nid:x\n\n", qname);
    th_pump();
    f = th_expect(t, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&f, "message"), "Unknown destination");
    th_expect_none(sub);
}

Test(dsub, a_pattern_subscriber_and_a_durable_one_both_get_the_message)
{
    start_with(2, NULL, NULL);
    const char *topic = th_owned_by(1, "/topic/mix.", 0);
    struct th_conn *pat = th_connect(0);
    th_send(pat, "SUBSCRIBE\ndestination:/topic/mix.#\nid:p\nreceipt:s\n\n");
    th_pump();
    th_expect(pat, STP_CMD_RECEIPT);
    struct th_conn *dur = th_connect(0);
    rabbit_sub(dur, topic, "d", NULL);
    disconnect(dur);
    struct th_conn *pub = th_connect(1);
    publish(pub, topic, 0, 3, false);
    expect_msgs(pat, "p", 0, 3);
    dur = th_connect(1);
    rabbit_sub(dur, topic, "d", NULL);
    expect_msgs(dur, "d", 0, 3);
    th_expect_none(pat);
}
