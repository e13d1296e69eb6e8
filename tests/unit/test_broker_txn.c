/* Unit tests of receipts as fences and of transactions
 * (src/broker/session_send.c) through the net's ops table, without sockets
 * (broker_harness.h). */
#include "broker_harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static void fini(void)
{
    th_teardown();
}

TestSuite(txn, .fini = fini);

Test(txn, nothing_is_delivered_before_commit)
{
    th_setup(1, NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    th_send(sub, "SUBSCRIBE\nid:s\ndestination:/queue/q\n\n");
    th_pump();
    th_send(pub, "BEGIN\ntransaction:t1\n\n");
    th_send(pub, "SEND\ndestination:/queue/q\ntransaction:t1\n\none");
    th_send(pub, "SEND\ndestination:/queue/q\ntransaction:t1\n\ntwo");
    th_pump();
    th_expect_none(sub);
    th_send(pub, "COMMIT\ntransaction:t1\nreceipt:c\n\n");
    th_pump();
    struct stp_frame m = th_expect(sub, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&m), "one");
    m = th_expect(sub, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&m), "two");
    struct stp_frame r = th_expect(pub, STP_CMD_RECEIPT);
    cr_assert_str_eq(th_header(&r, "receipt-id"), "c");
}
