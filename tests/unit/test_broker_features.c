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
    cr_assert_str_eq(th_header(&f, "message"), "invalid destination");
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
