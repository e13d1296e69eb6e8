/* Unit tests of durable queues (issue 12) through the broker harness: the
 * real workers, their real journals in a temporary data dir, recovery by a
 * second broker on the same dir. Also expiry and dead letters, which work
 * with and without a data dir. */
#include "broker_harness.h"
#include "broker/metrics.h"
#include "broker/recover.h"
#include "stampede/msg.h"
#include "store/journal.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static bool running;

static void init(void)
{
    snprintf(dir, sizeof(dir), "/tmp/stp-durable-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void fini(void)
{
    if (running)
        th_teardown();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    (void)system(cmd);
}

TestSuite(durable, .init = init, .fini = fini);

/* A broker of n workers on the test's data dir, with extra flags. */
static void start(unsigned n, const char *extra1, const char *extra2)
{
    static char arg[128];
    snprintf(arg, sizeof(arg), "--data-dir=%s", dir);
    const char *flags[] = {arg, extra1, extra2, NULL};
    th_setup(n, flags);
    running = true;
}

static void stop(void)
{
    th_teardown();
    running = false;
}

static void send_p(struct th_conn *t, const char *dest, const char *body, const char *receipt)
{
    char hdr[256];
    if (receipt)
        snprintf(hdr, sizeof(hdr), "SEND\ndestination:%s\npersistent:true\nreceipt:%s\n\n", dest,
                 receipt);
    else
        snprintf(hdr, sizeof(hdr), "SEND\ndestination:%s\npersistent:true\n\n", dest);
    th_send_body(t, hdr, body, strlen(body));
}

static void expect_receipt(struct th_conn *t, const char *id)
{
    cr_assert(th_await(t, 5000), "no RECEIPT %s within 5 s", id);
    struct stp_frame f = th_expect(t, STP_CMD_RECEIPT);
    cr_assert_str_eq(th_header(&f, "receipt-id"), id);
}

/* Count the journal's records of each type in every worker's journal. */
struct census {
    unsigned msg, settle, deliver;
};

static int count_rec(void *ctx, const struct stp_jrec *r)
{
    struct census *c = ctx;
    if (r->type == STP_JREC_MSG)
        c->msg++;
    else if (r->type == STP_JREC_SETTLE)
        c->settle++;
    else if (r->type == STP_JREC_DELIVER)
        c->deliver++;
    return 0;
}

static struct census census(unsigned workers)
{
    struct census c = {0};
    for (unsigned w = 0; w < workers; w++) {
        const char *jd = th_broker()->recovery.dirs[w];
        struct stp_journal_replay_stats st;
        cr_assert_eq(stp_journal_replay(jd, count_rec, &c, &st), 0);
    }
    return c;
}

Test(durable, receipt_comes_after_the_record_is_on_disk)
{
    start(1, NULL, NULL);
    struct th_conn *pub = th_connect(0);
    send_p(pub, "/queue/a", "hello", "r1");
    expect_receipt(pub, "r1");
    /* By the time the RECEIPT is out, a replay of the files finds it. */
    struct census c = census(1);
    cr_assert_eq(c.msg, 1, "MSG records on disk: %u", c.msg);
}

Test(durable, persistent_messages_survive_a_restart_in_order)
{
    start(1, NULL, NULL);
    struct th_conn *pub = th_connect(0);
    for (int i = 0; i < 20; i++) {
        char body[16], r[16];
        snprintf(body, sizeof(body), "m%d", i);
        snprintf(r, sizeof(r), "r%d", i);
        send_p(pub, "/queue/a", body, i == 19 ? r : NULL);
    }
    /* Not persistent: memory only. */
    th_send(pub, "SEND\ndestination:/queue/a\n\nvolatile");
    th_send(pub, "SEND\ndestination:/queue/a\nreceipt:last\n\nvolatile");
    expect_receipt(pub, "r19");
    expect_receipt(pub, "last");
    stop();

    start(1, NULL, NULL);
    struct th_conn *sub = th_connect(0);
    th_send(sub, "SUBSCRIBE\nid:s\ndestination:/queue/a\n\n");
    for (int i = 0; i < 20; i++) {
        cr_assert(th_await(sub, 5000));
        struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
        char body[16];
        snprintf(body, sizeof(body), "m%d", i);
        cr_assert_str_eq(th_body(&f), body);
        cr_assert_str_eq(th_header(&f, "persistent"), "true");
        cr_assert_str_eq(th_header(&f, "redelivered"), "false", "never delivered: not redelivered");
    }
    th_pump();
    th_expect_none(sub);
}

Test(durable, acked_messages_stay_gone_and_unacked_come_back_redelivered)
{
    start(1, NULL, NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    for (int i = 0; i < 4; i++) {
        char body[16];
        snprintf(body, sizeof(body), "m%d", i);
        send_p(pub, "/queue/a", body, i == 3 ? "r" : NULL);
    }
    expect_receipt(pub, "r");
    th_send(sub, "SUBSCRIBE\nid:s\ndestination:/queue/a\nack:client-individual\n\n");
    char ack[4][64];
    for (int i = 0; i < 4; i++) {
        cr_assert(th_await(sub, 5000));
        struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
        snprintf(ack[i], sizeof(ack[i]), "%s", th_header(&f, "ack"));
    }
    /* m0 and m2 acked (with a receipt: on disk), m1 and m3 not. */
    th_sendf(sub, "ACK\nid:%s\n\n", ack[0]);
    th_sendf(sub, "ACK\nid:%s\nreceipt:a\n\n", ack[2]);
    expect_receipt(sub, "a");
    stop();

    start(1, NULL, NULL);
    sub = th_connect(0);
    th_send(sub, "SUBSCRIBE\nid:s\ndestination:/queue/a\n\n");
    const char *want[] = {"m1", "m3"};
    for (int i = 0; i < 2; i++) {
        cr_assert(th_await(sub, 5000));
        struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
        cr_assert_str_eq(th_body(&f), want[i]);
        cr_assert_str_eq(th_header(&f, "redelivered"), "true");
    }
    th_pump();
    th_expect_none(sub);
}

Test(durable, queues_rehome_when_the_worker_count_changes)
{
    start(1, NULL, NULL);
    struct th_conn *pub = th_connect(0);
    for (int q = 0; q < 8; q++)
        for (int i = 0; i < 5; i++) {
            char dest[32], body[32];
            snprintf(dest, sizeof(dest), "/queue/q%d", q);
            snprintf(body, sizeof(body), "q%d-m%d", q, i);
            send_p(pub, dest, body, q == 7 && i == 4 ? "r" : NULL);
        }
    expect_receipt(pub, "r");
    stop();

    for (unsigned workers = 3; workers >= 2; workers--) {
        start(workers, NULL, NULL);
        cr_assert_eq(th_broker()->recovery.messages, 40, "after -> %u workers", workers);
        stop();
    }
    start(2, NULL, NULL);
    for (int q = 0; q < 8; q++) {
        char dest[32];
        snprintf(dest, sizeof(dest), "/queue/q%d", q);
        struct th_conn *sub = th_connect((unsigned)q % 2);
        th_sendf(sub, "SUBSCRIBE\nid:s\ndestination:%s\n\n", dest);
        for (int i = 0; i < 5; i++) {
            cr_assert(th_await(sub, 5000), "queue %d message %d", q, i);
            struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
            char body[32];
            snprintf(body, sizeof(body), "q%d-m%d", q, i);
            cr_assert_str_eq(th_body(&f), body);
        }
    }
}

Test(durable, a_second_broker_cannot_open_the_same_data_dir)
{
    start(1, NULL, NULL);
    struct stp_config cfg;
    char arg[128];
    snprintf(arg, sizeof(arg), "--data-dir=%s", dir);
    char *argv[] = {"stampede", arg, NULL};
    char *envp[] = {NULL};
    cr_assert_eq(stp_config_parse(&cfg, 2, argv, envp), STP_CONFIG_RUN);
    struct stp_broker b;
    cr_assert_lt(stp_broker_prepare(&b, &cfg), 0, "the data dir is locked");
    stp_config_free(&cfg);
}

/* --- expiry and dead letters (no data dir needed) --- */

static void setup_mem(const char *f1, const char *f2)
{
    const char *flags[] = {f1, f2, NULL};
    th_setup(1, flags);
    running = true;
}

Test(durable, expired_messages_are_never_delivered)
{
    setup_mem(NULL, NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    th_send(pub, "SEND\ndestination:/queue/e\nexpires:1\n\nold");
    th_send(pub, "SEND\ndestination:/queue/e\nexpiration:0\n\nzero");
    th_send(pub, "SEND\ndestination:/queue/e\nexpiration:600000\n\nfresh");
    th_send(pub, "SEND\ndestination:/queue/e\nexpires:0\n\nnever");
    th_pump();
    th_send(sub, "SUBSCRIBE\nid:s\ndestination:/queue/e\n\n");
    th_pump();
    struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), "fresh");
    f = th_expect(sub, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), "never");
    th_expect_none(sub);
    cr_assert_eq(STP_STAT_GET(th_worker(0)->stats.msgs_expired), 2);
}

Test(durable, a_bad_expiration_is_an_error)
{
    setup_mem(NULL, NULL);
    struct th_conn *pub = th_connect(0);
    th_send(pub, "SEND\ndestination:/queue/e\nexpiration:-5\nreceipt:x\n\nbad");
    th_pump();
    struct stp_frame f = th_expect(pub, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&f, "message"), "invalid expiration");
    cr_assert_str_eq(th_header(&f, "receipt-id"), "x");
}

static struct stp_frame subscribe_one(struct th_conn *t, const char *dest, const char *ack)
{
    th_sendf(t, "SUBSCRIBE\nid:%s\ndestination:%s\nack:%s\n\n", dest, dest, ack);
    th_pump();
    return th_expect(t, STP_CMD_MESSAGE);
}

Test(durable, nack_requeue_false_dead_letters)
{
    setup_mem("--dead-letter=yes", NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    th_send(pub, "SEND\ndestination:/queue/work\nx-app:1\n\njob");
    th_pump();
    struct stp_frame f = subscribe_one(sub, "/queue/work", "client-individual");
    th_sendf(sub, "NACK\nid:%s\nrequeue:false\n\n", th_header(&f, "ack"));
    th_pump();
    th_expect_none(sub); /* not put back */
    struct th_conn *dlq = th_connect(0);
    f = subscribe_one(dlq, "/queue/DLQ.work", "auto");
    cr_assert_str_eq(th_body(&f), "job");
    cr_assert_str_eq(th_header(&f, "x-death-reason"), "rejected");
    cr_assert_str_eq(th_header(&f, "x-original-destination"), "/queue/work");
    cr_assert_str_eq(th_header(&f, "destination"), "/queue/DLQ.work");
    cr_assert_str_eq(th_header(&f, "x-app"), "1");
    cr_assert_eq(STP_STAT_GET(th_worker(0)->stats.msgs_dead_lettered), 1);
}

Test(durable, without_dead_letter_a_rejected_message_is_dropped)
{
    setup_mem("--dead-letter=no", NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    th_send(pub, "SEND\ndestination:/queue/work\n\njob");
    th_pump();
    struct stp_frame f = subscribe_one(sub, "/queue/work", "client-individual");
    th_sendf(sub, "NACK\nid:%s\nrequeue:false\n\n", th_header(&f, "ack"));
    th_pump();
    th_expect_none(sub);
    struct th_conn *dlq = th_connect(0);
    th_send(dlq, "SUBSCRIBE\nid:d\ndestination:/queue/DLQ.work\n\n");
    th_pump();
    th_expect_none(dlq);
    cr_assert_eq(STP_STAT_GET(th_worker(0)->stats.msgs_rejected), 1);
}

Test(durable, max_redeliveries_moves_the_message_after_n_returns)
{
    setup_mem("--dead-letter=yes", "--max-redeliveries=2");
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    th_send(pub, "SEND\ndestination:/queue/w\n\npoison");
    th_pump();
    th_send(sub, "SUBSCRIBE\nid:s\ndestination:/queue/w\nack:client-individual\n\n");
    for (int i = 0; i < 3; i++) {
        th_pump();
        struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
        cr_assert_str_eq(th_body(&f), "poison");
        th_sendf(sub, "NACK\nid:%s\n\n", th_header(&f, "ack"));
    }
    th_pump();
    th_expect_none(sub); /* delivered 3 times, returned 3 times > 2 */
    struct th_conn *dlq = th_connect(0);
    struct stp_frame f = subscribe_one(dlq, "/queue/DLQ.w", "auto");
    cr_assert_str_eq(th_body(&f), "poison");
    cr_assert_str_eq(th_header(&f, "x-death-reason"), "rejected");
}

Test(durable, expired_messages_dead_letter_with_their_reason)
{
    setup_mem("--dead-letter=yes", NULL);
    struct th_conn *pub = th_connect(0);
    th_send(pub, "SEND\ndestination:/queue/e\nexpires:1\n\nold");
    th_pump();
    struct th_conn *sub = th_connect(0);
    th_send(sub, "SUBSCRIBE\nid:s\ndestination:/queue/e\n\n");
    th_pump();
    th_expect_none(sub);
    struct th_conn *dlq = th_connect(0);
    struct stp_frame f = subscribe_one(dlq, "/queue/DLQ.e", "auto");
    cr_assert_str_eq(th_body(&f), "old");
    cr_assert_str_eq(th_header(&f, "x-death-reason"), "expired");
    /* A dead letter never expires again (its expires header is kept for
     * the reader, but the broker does not act on it). */
}

Test(durable, a_dead_letter_of_a_persistent_message_survives_a_restart)
{
    start(2, "--dead-letter=yes", NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    send_p(pub, "/queue/job", "p1", "r");
    expect_receipt(pub, "r");
    th_send(sub, "SUBSCRIBE\nid:s\ndestination:/queue/job\nack:client-individual\n\n");
    cr_assert(th_await(sub, 5000));
    struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
    th_sendf(sub, "NACK\nid:%s\nrequeue:false\nreceipt:n\n\n", th_header(&f, "ack"));
    expect_receipt(sub, "n");
    /* Let the DLQ owner's sync answer reach the queue's owner. */
    for (int i = 0; i < 50; i++) {
        th_pump();
        usleep(2000);
    }
    stop();

    start(2, "--dead-letter=yes", NULL);
    cr_assert_eq(th_broker()->recovery.messages, 1, "only the dead letter is left");
    struct th_conn *dlq = th_connect(0);
    th_send(dlq, "SUBSCRIBE\nid:d\ndestination:/queue/DLQ.job\n\n");
    cr_assert(th_await(dlq, 5000));
    f = th_expect(dlq, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), "p1");
    cr_assert_str_eq(th_header(&f, "x-death-reason"), "rejected");
}

/* The value of a metric line "NAME VALUE" in text, or -1. */
static long long metric(const char *text, const char *name)
{
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(text, key);
    return p ? atoll(p + strlen(key)) : -1;
}

Test(durable, metrics_show_the_journal)
{
    start(1, NULL, NULL);
    struct th_conn *pub = th_connect(0);
    send_p(pub, "/queue/m", "x", "r");
    expect_receipt(pub, "r");
    struct stp_buf b = STP_BUF_INIT;
    cr_assert_eq(stp_metrics_text(th_broker(), &b), 0);
    cr_assert_eq(stp_buf_append(&b, "", 1), 0);
    cr_assert_geq(metric(b.data, "stampede_journal_records_total"), 1, "%s", b.data);
    cr_assert_geq(metric(b.data, "stampede_journal_syncs_total"), 1);
    cr_assert_geq(metric(b.data, "stampede_journal_segments"), 1);
    cr_assert_eq(metric(b.data, "stampede_journal_failing"), 0);
    stp_buf_free(&b);
    b = (struct stp_buf)STP_BUF_INIT;
    cr_assert_eq(stp_metrics_healthz(th_broker(), &b), 0);
    cr_assert_not_null(memmem(b.data, b.len, "\"status\":\"ok\"", 13));
    stp_buf_free(&b);
}

Test(durable, no_journal_metrics_without_a_data_dir)
{
    setup_mem(NULL, NULL);
    struct stp_buf b = STP_BUF_INIT;
    cr_assert_eq(stp_metrics_text(th_broker(), &b), 0);
    cr_assert_eq(stp_buf_append(&b, "", 1), 0);
    cr_assert_null(strstr(b.data, "stampede_journal_"));
    stp_buf_free(&b);
}

/* ack:client: a NACK requeue:false covers every earlier unacked message. */
Test(durable, cumulative_nack_requeue_false_rejects_all_before)
{
    setup_mem("--dead-letter=yes", NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    for (int i = 0; i < 3; i++)
        th_sendf(pub, "SEND\ndestination:/queue/c\n\nm%d", i);
    th_pump();
    th_send(sub, "SUBSCRIBE\nid:s\ndestination:/queue/c\nack:client\n\n");
    th_pump();
    struct stp_frame f;
    char last[64] = "";
    for (int i = 0; i < 3; i++) {
        f = th_expect(sub, STP_CMD_MESSAGE);
        snprintf(last, sizeof(last), "%s", th_header(&f, "ack"));
    }
    th_sendf(sub, "NACK\nid:%s\nrequeue:false\n\n", last);
    th_pump();
    th_expect_none(sub);
    struct th_conn *dlq = th_connect(0);
    th_send(dlq, "SUBSCRIBE\nid:d\ndestination:/queue/DLQ.c\n\n");
    th_pump();
    for (int i = 0; i < 3; i++) {
        f = th_expect(dlq, STP_CMD_MESSAGE);
        char body[8];
        snprintf(body, sizeof(body), "m%d", i);
        cr_assert_str_eq(th_body(&f), body);
    }
    cr_assert_eq(STP_STAT_GET(th_worker(0)->stats.msgs_rejected), 3);
}

/* The one segment file of worker 0's journal (after a stop). */
static void segment_path(char *out, size_t n)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "ls %s/g*/w0/*.seg | head -1", dir);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    cr_assert_not_null(fgets(out, (int)n, p));
    pclose(p);
    out[strcspn(out, "\n")] = '\0';
}

static void five_then_stop(void)
{
    start(1, NULL, NULL);
    struct th_conn *pub = th_connect(0);
    for (int i = 0; i < 5; i++) {
        char body[16];
        snprintf(body, sizeof(body), "m%d", i);
        send_p(pub, "/queue/d", body, i == 4 ? "r" : NULL);
    }
    expect_receipt(pub, "r");
    stop();
}

static void expect_bodies(const char *const *want, size_t n)
{
    struct th_conn *sub = th_connect(0);
    th_send(sub, "SUBSCRIBE\nid:s\ndestination:/queue/d\n\n");
    for (size_t i = 0; i < n; i++) {
        cr_assert(th_await(sub, 5000));
        struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
        cr_assert_str_eq(th_body(&f), want[i]);
    }
    th_pump();
    th_expect_none(sub);
}

/* A damaged record in the middle is skipped with a log line, counted in
 * /metrics; the records around it come back. */
Test(durable, a_damaged_record_is_skipped_and_counted)
{
    five_then_stop();
    char seg[512];
    segment_path(seg, sizeof(seg));
    FILE *f = fopen(seg, "r+b");
    cr_assert_not_null(f);
    /* The third record's body: find "m2" and flip it. */
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf), f);
    char *hit = memmem(buf, n, "m2", 2);
    cr_assert_not_null(hit);
    fseek(f, hit - buf, SEEK_SET);
    fputc('X', f);
    fclose(f);
    start(1, NULL, NULL);
    cr_assert_eq(th_broker()->recovery.messages, 4);
    cr_assert_geq(th_broker()->recovery.damaged_records, 1);
    struct stp_buf b = STP_BUF_INIT;
    cr_assert_eq(stp_metrics_text(th_broker(), &b), 0);
    cr_assert_eq(stp_buf_append(&b, "", 1), 0);
    cr_assert_geq(metric(b.data, "stampede_journal_damaged_records_total"), 1);
    stp_buf_free(&b);
    const char *want[] = {"m0", "m1", "m3", "m4"};
    expect_bodies(want, 4);
}

/* A torn tail (a crash in the middle of a write) is cut off at start, with
 * a log line; never a refusal to start. */
Test(durable, a_torn_tail_is_cut_off)
{
    five_then_stop();
    char seg[512];
    segment_path(seg, sizeof(seg));
    struct stat st;
    cr_assert_eq(stat(seg, &st), 0);
    /* Cut inside the last record (m4's MSG: the segment ends with it). */
    cr_assert_eq(truncate(seg, st.st_size - 3), 0);
    start(1, NULL, NULL);
    cr_assert_eq(th_broker()->recovery.messages, 4);
    cr_assert_gt(th_broker()->recovery.truncated_bytes, 0);
    const char *want[] = {"m0", "m1", "m2", "m3"};
    expect_bodies(want, 4);
}

/* A journal whose lsns jump (a crafted file: records check, but the second
 * one claims lsn 2^40) is recovered without allocating for the gap. */
Test(durable, an_lsn_jump_does_not_blow_up_recovery)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/g1", dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/g1/w0", dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/CURRENT", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("stampede-journal 1\ngeneration 1\nworkers 1\n", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/g1/w0/%016llx.seg", dir, 1ULL);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    const char *tail[] = {"destination:/queue/j\n\nfirst", "destination:/queue/j\n\nfar"};
    uint64_t lsns[] = {1, 1ULL << 40};
    for (int i = 0; i < 2; i++) {
        size_t len = strlen(tail[i]) + 1; /* with the frame's NUL */
        struct stp_jrec r = {.type = STP_JREC_MSG,
                             .lsn = lsns[i],
                             .key = lsns[i],
                             .body_len = (uint32_t)(i ? 3 : 5),
                             .queue = "/queue/j",
                             .queue_len = 8,
                             .tail = tail[i],
                             .tail_len = (uint32_t)len};
        uint8_t buf[256];
        size_t n = stp_jrec_size(&r);
        cr_assert(n > 0 && n <= sizeof(buf));
        stp_jrec_encode(&r, buf);
        cr_assert_eq(fwrite(buf, 1, n, f), n);
    }
    fclose(f);
    start(1, NULL, NULL);
    cr_assert_eq(th_broker()->recovery.messages, 2);
    const char *want[] = {"first", "far"};
    struct th_conn *sub = th_connect(0);
    th_send(sub, "SUBSCRIBE\nid:s\ndestination:/queue/j\n\n");
    for (int i = 0; i < 2; i++) {
        cr_assert(th_await(sub, 5000));
        struct stp_frame m = th_expect(sub, STP_CMD_MESSAGE);
        cr_assert_str_eq(th_body(&m), want[i]);
    }
}
