/* Unit tests of publish de-duplication (issue 13) through the broker
 * harness: real workers, SENDs with dedup-id to queues and topics, the
 * window's expiry and bounds, transactions, receipts for dropped
 * duplicates, hostile ids, and the window's journal records across a
 * restart on a data dir. */
#include "broker_harness.h"
#include "broker/dedup.h"
#include "broker/metrics.h"
#include "stampede/clock.h"
#include "store/journal.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static bool running;

static void init(void)
{
    snprintf(dir, sizeof(dir), "/tmp/stp-dedup-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void fini(void)
{
    if (running)
        th_teardown();
    running = false;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    (void)system(cmd);
}

TestSuite(dedup, .init = init, .fini = fini);

/* n workers with up to three extra flags (NULL ends them). */
static void start(unsigned n, const char *f1, const char *f2, const char *f3)
{
    const char *flags[] = {f1, f2, f3, NULL};
    th_setup(n, flags);
    running = true;
}

/* The same with --data-dir on the test's dir. */
static void start_durable(unsigned n, const char *f1, const char *f2)
{
    static char arg[128];
    snprintf(arg, sizeof(arg), "--data-dir=%s", dir);
    start(n, arg, f1, f2);
}

static void stop(void)
{
    th_teardown();
    running = false;
}

/* SEND body to dest with dedup-id id (NULL: none), persistent or not, and a
 * receipt (NULL: none). */
static void send_id(struct th_conn *t, const char *dest, const char *id, const char *body,
                    const char *receipt, bool persistent)
{
    char hdr[1024];
    int n = snprintf(hdr, sizeof(hdr), "SEND\ndestination:%s\n%s", dest,
                     persistent ? "persistent:true\n" : "");
    if (id)
        n += snprintf(hdr + n, sizeof(hdr) - (size_t)n, "dedup-id:%s\n", id);
    if (receipt)
        n += snprintf(hdr + n, sizeof(hdr) - (size_t)n, "receipt:%s\n", receipt);
    snprintf(hdr + n, sizeof(hdr) - (size_t)n, "\n");
    th_send_body(t, hdr, body, strlen(body));
}

static void expect_receipt(struct th_conn *t, const char *id)
{
    cr_assert(th_await(t, 5000), "no RECEIPT %s within 5 s", id);
    struct stp_frame f = th_expect(t, STP_CMD_RECEIPT);
    cr_assert_str_eq(th_header(&f, "receipt-id"), id);
}

static void subscribe(struct th_conn *t, const char *id, const char *dest)
{
    th_sendf(t, "SUBSCRIBE\nid:%s\ndestination:%s\nreceipt:sub-%s\n\n", id, dest, id);
    char r[64];
    snprintf(r, sizeof(r), "sub-%s", id);
    expect_receipt(t, r);
}

/* The bodies of every MESSAGE waiting for t, joined by ','. */
static const char *bodies(struct th_conn *t)
{
    static char out[4096];
    size_t n = 0;
    struct stp_frame f;
    th_pump();
    out[0] = '\0';
    while (th_frame(t, &f)) {
        cr_assert_eq(f.cmd, STP_CMD_MESSAGE);
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s", n ? "," : "", th_body(&f));
    }
    return out;
}

static long long metric(const char *name)
{
    struct stp_buf b = STP_BUF_INIT;
    cr_assert_eq(stp_metrics_text(th_broker(), &b), 0);
    cr_assert_eq(stp_buf_append(&b, "", 1), 0);
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(b.data, key);
    long long v = p ? atoll(p + strlen(key)) : -1;
    stp_buf_free(&b);
    return v;
}

/* Pump the workers for ms milliseconds of real time. */
static void pump_for(unsigned ms)
{
    uint64_t end = stp_epoch_ms() + ms;
    while (stp_epoch_ms() < end) {
        th_pump();
        usleep(5000);
    }
}

static size_t ids_remembered(unsigned workers)
{
    size_t n = 0;
    for (unsigned i = 0; i < workers; i++)
        n += stp_dedup_count(th_worker(i));
    return n;
}

/* --- the window --- */

Test(dedup, a_queue_drops_a_repeated_id_and_still_sends_its_receipt)
{
    start(2, NULL, NULL, NULL);
    const char *q = th_owned_by(1, "/queue/d", 0);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    subscribe(sub, "s", q);
    send_id(pub, q, "id-1", "first", "r1", false);
    send_id(pub, q, "id-1", "again", "r2", false);
    send_id(pub, q, "id-2", "second", "r3", false);
    expect_receipt(pub, "r1");
    expect_receipt(pub, "r2"); /* the duplicate's receipt comes all the same */
    expect_receipt(pub, "r3");
    th_pump();
    struct stp_frame f;
    cr_assert(th_frame(sub, &f));
    cr_assert_str_eq(th_body(&f), "first");
    cr_assert_str_eq(th_header(&f, "dedup-id"), "id-1", "the header passes through");
    cr_assert_str_eq(bodies(sub), "second");
    cr_assert_eq(metric("stampede_messages_deduplicated_total"), 1);
    cr_assert_eq(metric("stampede_dedup_ids_evicted_total"), 0);
    cr_assert_gt(metric("stampede_dedup_bytes"), 0);
}

Test(dedup, a_topic_drops_a_repeated_id_for_subscribers_on_every_worker)
{
    start(3, NULL, NULL, NULL);
    const char *t = th_owned_by(2, "/topic/d", 0);
    struct th_conn *a = th_connect(0), *b = th_connect(1), *pub = th_connect(1);
    subscribe(a, "a", t);
    subscribe(b, "b", t);
    send_id(pub, t, "x", "one", NULL, false);
    send_id(pub, t, "x", "dup", NULL, false);
    send_id(pub, t, "y", "two", "r", false);
    expect_receipt(pub, "r");
    cr_assert_str_eq(bodies(a), "one,two");
    cr_assert_str_eq(bodies(b), "one,two");
    cr_assert_eq(metric("stampede_messages_deduplicated_total"), 1);
}

Test(dedup, sends_without_an_id_are_never_dropped)
{
    start(1, NULL, NULL, NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    subscribe(sub, "s", "/queue/n");
    for (int i = 0; i < 3; i++)
        send_id(pub, "/queue/n", NULL, "same", i == 2 ? "r" : NULL, false);
    expect_receipt(pub, "r");
    cr_assert_str_eq(bodies(sub), "same,same,same");
    cr_assert_eq(ids_remembered(1), 0);
}

Test(dedup, an_id_is_delivered_again_once_the_window_has_passed)
{
    start(2, "--dedup-window=200ms", NULL, NULL);
    const char *q = th_owned_by(1, "/queue/w", 0);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    subscribe(sub, "s", q);
    send_id(pub, q, "k", "m1", NULL, false);
    send_id(pub, q, "k", "dup", "r1", false);
    expect_receipt(pub, "r1");
    cr_assert_str_eq(bodies(sub), "m1");
    pump_for(350);
    send_id(pub, q, "k", "m2", "r2", false);
    expect_receipt(pub, "r2");
    cr_assert_str_eq(bodies(sub), "m2", "past the window the id is new again");
    /* The once-a-second sweep frees windows whose ids all expired. */
    pump_for(1300);
    cr_assert_eq(ids_remembered(2), 0);
    cr_assert_eq(metric("stampede_dedup_bytes"), 0, "an emptied window is freed");
}

Test(dedup, windows_are_per_destination)
{
    start(2, NULL, NULL, NULL);
    const char *qa = th_owned_by(0, "/queue/a", 0), *qb = th_owned_by(1, "/queue/b", 1);
    struct th_conn *pub = th_connect(0), *sa = th_connect(0), *sb = th_connect(1);
    subscribe(sa, "a", qa);
    subscribe(sb, "b", qb);
    send_id(pub, qa, "same", "to-a", NULL, false);
    send_id(pub, qb, "same", "to-b", NULL, false);
    send_id(pub, "/topic/c", "same", "to-c", "r", false);
    expect_receipt(pub, "r");
    cr_assert_str_eq(bodies(sa), "to-a");
    cr_assert_str_eq(bodies(sb), "to-b");
    cr_assert_eq(metric("stampede_messages_deduplicated_total"), 0);
}

Test(dedup, a_forgotten_queue_keeps_its_window)
{
    start(1, NULL, NULL, NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    subscribe(sub, "s", "/queue/idle");
    send_id(pub, "/queue/idle", "once", "m", "r1", false);
    expect_receipt(pub, "r1");
    cr_assert_str_eq(bodies(sub), "m");
    /* No consumer and no message: the queue itself is forgotten. */
    th_send(sub, "UNSUBSCRIBE\nid:s\nreceipt:u\n\n");
    expect_receipt(sub, "u");
    cr_assert_null(stp_map_get(&th_worker(0)->queues, "/queue/idle", 11));
    send_id(pub, "/queue/idle", "once", "dup", "r2", false);
    expect_receipt(pub, "r2");
    subscribe(sub, "s2", "/queue/idle");
    cr_assert_str_eq(bodies(sub), "", "the id was still remembered");
    cr_assert_eq(metric("stampede_messages_deduplicated_total"), 1);
}

Test(dedup, a_topic_without_subscribers_remembers_ids_too)
{
    start(1, NULL, NULL, NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    send_id(pub, "/topic/t", "early", "nobody", "r1", false);
    expect_receipt(pub, "r1");
    subscribe(sub, "s", "/topic/t");
    send_id(pub, "/topic/t", "early", "dup", NULL, false);
    send_id(pub, "/topic/t", "late", "seen", "r2", false);
    expect_receipt(pub, "r2");
    cr_assert_str_eq(bodies(sub), "seen");
}

/* --- bounds --- */

Test(dedup, the_oldest_id_is_forgotten_early_at_the_count_bound)
{
    start(1, "--dedup-max-ids=3", NULL, NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    subscribe(sub, "s", "/queue/c");
    const char *ids[] = {"a", "b", "c", "d", "a", "d", "c"};
    for (int i = 0; i < 7; i++)
        send_id(pub, "/queue/c", ids[i], ids[i], i == 6 ? "r" : NULL, false);
    expect_receipt(pub, "r");
    /* d pushes a out, so a is new again (and pushes b out); d and c are
     * still remembered. */
    cr_assert_str_eq(bodies(sub), "a,b,c,d,a");
    cr_assert_eq(metric("stampede_dedup_ids_evicted_total"), 2);
    cr_assert_eq(metric("stampede_messages_deduplicated_total"), 2);
    cr_assert_eq(ids_remembered(1), 3);
}

Test(dedup, every_window_together_stays_within_the_memory_bound)
{
    start(2, "--dedup-max-memory=8KiB", NULL, NULL);
    struct th_conn *pub = th_connect(0);
    for (int i = 0; i < 400; i++) {
        char dest[32], id[32];
        snprintf(dest, sizeof(dest), "/queue/m%d", i % 40);
        snprintf(id, sizeof(id), "id-%d", i);
        send_id(pub, dest, id, "x", i == 399 ? "r" : NULL, false);
        if (i % 50 == 49)
            th_pump();
    }
    expect_receipt(pub, "r");
    long long bytes = metric("stampede_dedup_bytes");
    cr_assert_leq(bytes, 8192 + 2 * 512, "%lld bytes of windows", bytes);
    cr_assert_gt(metric("stampede_dedup_ids_evicted_total"), 0);
    cr_assert_lt(ids_remembered(2), 400);
}

/* --- transactions --- */

Test(dedup, a_transaction_is_checked_when_commit_applies_it)
{
    start(2, NULL, NULL, NULL);
    const char *q = th_owned_by(1, "/queue/t", 0);
    struct th_conn *pub = th_connect(0), *sub = th_connect(1);
    subscribe(sub, "s", q);
    th_send(pub, "BEGIN\ntransaction:tx\n\n");
    th_sendf(pub, "SEND\ndestination:%s\ntransaction:tx\ndedup-id:t1\nreceipt:in1\n\nA", q);
    th_sendf(pub, "SEND\ndestination:%s\ntransaction:tx\ndedup-id:t1\nreceipt:in2\n\nB", q);
    th_pump();
    cr_assert_str_eq(bodies(sub), "", "nothing before COMMIT");
    th_send(pub, "COMMIT\ntransaction:tx\nreceipt:c\n\n");
    expect_receipt(pub, "in1");
    expect_receipt(pub, "in2");
    expect_receipt(pub, "c");
    cr_assert_str_eq(bodies(sub), "A");
    /* An aborted SEND was never routed: its id is not remembered. */
    th_send(pub, "BEGIN\ntransaction:ab\n\n");
    th_sendf(pub, "SEND\ndestination:%s\ntransaction:ab\ndedup-id:t2\n\nlost", q);
    th_send(pub, "ABORT\ntransaction:ab\n\n");
    send_id(pub, q, "t2", "kept", "r", false);
    send_id(pub, q, "t1", "dup", "r2", false);
    expect_receipt(pub, "r");
    expect_receipt(pub, "r2");
    cr_assert_str_eq(bodies(sub), "kept");
}

/* --- hostile input --- */

Test(dedup, an_id_over_256_bytes_is_an_error)
{
    start(1, NULL, NULL, NULL);
    char id[300];
    memset(id, 'z', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    struct th_conn *ok = th_connect(0), *bad = th_connect(0), *sub = th_connect(0);
    subscribe(sub, "s", "/queue/h");
    id[256] = '\0';
    send_id(ok, "/queue/h", id, "fits", "r", false);
    expect_receipt(ok, "r");
    id[256] = 'z';
    send_id(bad, "/queue/h", id, "too long", "r", false);
    th_pump();
    struct stp_frame e = th_expect(bad, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&e, "message"), "dedup-id too long");
    cr_assert(bad->torn_down);
    cr_assert_str_eq(bodies(sub), "fits");
}

Test(dedup, an_empty_id_is_an_error)
{
    start(1, NULL, NULL, NULL);
    struct th_conn *bad = th_connect(0);
    th_send(bad, "SEND\ndestination:/queue/h\ndedup-id:\n\nx");
    th_pump();
    struct stp_frame e = th_expect(bad, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&e, "message"), "invalid dedup-id");
    cr_assert(bad->torn_down);
}

Test(dedup, escaped_ids_and_repeated_headers)
{
    start(1, NULL, NULL, NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    subscribe(sub, "s", "/queue/e");
    /* A 1.2 escape: the id is "a:b\nc" either way it is written. */
    th_send(pub, "SEND\ndestination:/queue/e\ndedup-id:a\\cb\\nc\n\nm1");
    th_send(pub, "SEND\ndestination:/queue/e\ndedup-id:a\\cb\\nc\n\ndup");
    /* The first dedup-id header counts, as for every header. */
    th_send(pub, "SEND\ndestination:/queue/e\ndedup-id:f\ndedup-id:a\\cb\\nc\n\nm2");
    th_send(pub, "SEND\ndestination:/queue/e\ndedup-id:f\ndedup-id:zz\nreceipt:r\n\ndup2");
    expect_receipt(pub, "r");
    cr_assert_str_eq(bodies(sub), "m1,m2");
}

Test(dedup, off_with_a_zero_window)
{
    start(1, "--dedup-window=0", NULL, NULL);
    char id[400];
    memset(id, 'q', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    subscribe(sub, "s", "/queue/o");
    send_id(pub, "/queue/o", "x", "1", NULL, false);
    send_id(pub, "/queue/o", "x", "2", NULL, false);
    send_id(pub, "/queue/o", id, "3", "r", false); /* an ordinary header then */
    expect_receipt(pub, "r");
    cr_assert_str_eq(bodies(sub), "1,2,3");
    cr_assert_eq(ids_remembered(1), 0);
}

/* --- durable --- */

struct census {
    unsigned dedup;
};

static int count_dedup(void *ctx, const struct stp_jrec *r)
{
    struct census *c = ctx;
    c->dedup += r->type == STP_JREC_DEDUP;
    return 0;
}

static unsigned dedup_records(unsigned workers)
{
    struct census c = {0};
    for (unsigned w = 0; w < workers; w++) {
        struct stp_journal_replay_stats st;
        cr_assert_eq(stp_journal_replay(th_broker()->recovery.dirs[w], count_dedup, &c, &st), 0);
    }
    return c.dedup;
}

Test(dedup, a_persistent_id_survives_a_restart_within_the_window)
{
    start_durable(2, NULL, NULL);
    const char *q = th_owned_by(1, "/queue/p", 0);
    char qname[64];
    snprintf(qname, sizeof(qname), "%s", q);
    struct th_conn *pub = th_connect(0), *sub = th_connect(1);
    subscribe(sub, "s", qname);
    send_id(pub, qname, "p1", "first", "r1", true);
    send_id(pub, qname, "v1", "volatile", "r2", false); /* not persistent: memory only */
    expect_receipt(pub, "r1");
    expect_receipt(pub, "r2");
    cr_assert_str_eq(bodies(sub), "first,volatile");
    cr_assert_eq(dedup_records(2), 1);
    stop();

    start_durable(2, NULL, NULL);
    pub = th_connect(0);
    sub = th_connect(1);
    subscribe(sub, "s", qname);
    send_id(pub, qname, "p1", "again", "r3", true);
    send_id(pub, qname, "v1", "volatile again", "r4", false);
    expect_receipt(pub, "r3");
    expect_receipt(pub, "r4");
    cr_assert_str_eq(bodies(sub), "volatile again", "p1 was remembered across the restart");
    cr_assert_eq(metric("stampede_messages_deduplicated_total"), 1);
}

Test(dedup, ids_follow_their_queue_when_the_worker_count_changes)
{
    start_durable(1, NULL, NULL);
    struct th_conn *pub = th_connect(0);
    for (int q = 0; q < 6; q++) {
        char dest[32];
        snprintf(dest, sizeof(dest), "/queue/r%d", q);
        send_id(pub, dest, "same", "m", q == 5 ? "r" : NULL, true);
    }
    expect_receipt(pub, "r");
    stop();

    start_durable(3, NULL, NULL);
    cr_assert_eq(ids_remembered(3), 6);
    pub = th_connect(0);
    for (int q = 0; q < 6; q++) {
        char dest[32];
        snprintf(dest, sizeof(dest), "/queue/r%d", q);
        send_id(pub, dest, "same", "dup", q == 5 ? "r" : NULL, true);
    }
    expect_receipt(pub, "r");
    cr_assert_eq(metric("stampede_messages_deduplicated_total"), 6);
    cr_assert_eq(dedup_records(3), 6, "rewritten into the new generation, once each");
}

Test(dedup, ids_past_the_window_are_not_restored)
{
    start_durable(1, "--dedup-window=200ms", NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    subscribe(sub, "s", "/queue/x");
    send_id(pub, "/queue/x", "e1", "m1", "r", true);
    expect_receipt(pub, "r");
    cr_assert_str_eq(bodies(sub), "m1");
    stop();
    usleep(300 * 1000);

    start_durable(1, "--dedup-window=200ms", NULL);
    cr_assert_eq(ids_remembered(1), 0);
    pub = th_connect(0);
    sub = th_connect(0);
    subscribe(sub, "s", "/queue/x");
    send_id(pub, "/queue/x", "e1", "m2", "r", true);
    expect_receipt(pub, "r");
    cr_assert_str_eq(bodies(sub), "m2");
}

/* A DEDUP record keeps its segment (here: the first run's, whose message
 * was consumed) only while its id is within the window; once the id
 * expires the record is released and the segment deleted. */
Test(dedup, a_record_pins_its_segment_only_until_the_id_expires)
{
    start_durable(1, "--dedup-window=2s", NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    subscribe(sub, "s", "/queue/g");
    send_id(pub, "/queue/g", "g1", "m1", "r", true);
    expect_receipt(pub, "r");
    cr_assert_str_eq(bodies(sub), "m1"); /* auto ack: settled */
    stop();

    start_durable(1, "--dedup-window=2s", NULL);
    cr_assert_eq(ids_remembered(1), 1);
    pub = th_connect(0);
    send_id(pub, "/queue/other", NULL, "x", "r", true); /* a flush, a sync */
    expect_receipt(pub, "r");
    th_pump();
    cr_assert_eq(metric("stampede_journal_segments"), 2, "the old segment is pinned");
    pump_for(2600); /* the id expires; the sweep releases its record */
    send_id(pub, "/queue/other", NULL, "y", "r2", true);
    expect_receipt(pub, "r2");
    th_pump();
    cr_assert_eq(ids_remembered(1), 0);
    cr_assert_eq(metric("stampede_journal_segments"), 1, "the old segment went");
}
