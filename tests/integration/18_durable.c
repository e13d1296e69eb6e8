/*
 * 18_durable.c - durable queues (issue 12) against the real broker with
 * --data-dir: persistent:true queue messages survive kill -9 and SIGTERM in
 * their order while other messages do not; delivered-but-unacked ones come
 * back redelivered:true and ACKs with a RECEIPT are never undone; --workers
 * changing between runs (1 -> 2 -> 3 -> 1) keeps every message and each
 * queue's order; one broker per data dir (the second exits 2); expiry
 * (RabbitMQ's expiration, ActiveMQ's expires) in memory, on disk and across a
 * restart, counted on /metrics; --dead-letter with NACK requeue:false,
 * expiry and --max-redeliveries, the dead letters surviving a restart; and a
 * full disk for real (a 2 MiB tmpfs the test mounts): ERROR "message not
 * stored" instead of a RECEIPT, bystanders unharmed, persistent SENDs work
 * again once space returns, every receipted message there after a restart.
 *
 * Each test has its own data dir under /tmp (removed at the end) and starts
 * its brokers on port 0 (a restart gets a new port: clients dial again).
 * Every wait is bounded (harness.h).
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

#define NOT_STORED "message not stored"

/* ---- data dirs and the tmpfs, removed at the end of each test ---- */

static char tmp_dirs[8][128];
static size_t ntmp_dirs;
static char mnt_dir[128];
static bool mnt_mounted;

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    remove(path);
    return 0;
}

static void durable_fini(void)
{
    /* Brokers first (they hold files in the dirs and on the tmpfs). */
    h_fini();
    if (mnt_mounted && umount2(mnt_dir, MNT_DETACH) != 0)
        fprintf(stderr, "durable: umount %s: %s\n", mnt_dir, strerror(errno));
    mnt_mounted = false;
    if (mnt_dir[0])
        rmdir(mnt_dir);
    mnt_dir[0] = '\0';
    for (size_t i = 0; i < ntmp_dirs; i++)
        nftw(tmp_dirs[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    ntmp_dirs = 0;
}

TestSuite(durable, .init = h_init, .fini = durable_fini, .timeout = 90);

/* A fresh empty data dir (removed at the end of the test). */
static const char *data_dir(void)
{
    cr_assert(ntmp_dirs < sizeof tmp_dirs / sizeof tmp_dirs[0]);
    char *d = tmp_dirs[ntmp_dirs];
    snprintf(d, sizeof tmp_dirs[0], "/tmp/stampede-itest-durable-%d-XXXXXX", (int)getpid());
    cr_assert(mkdtemp(d) != NULL, "mkdtemp: %s", strerror(errno));
    ntmp_dirs++;
    return d;
}

/* The broker with --data-dir dir and the extra arguments (may be NULL);
 * with ws, a ws:// listener too (for /metrics). */
static struct h_broker *start_dd(const char *dir, int workers, bool ws, const char *const *extra)
{
    const char *args[32];
    size_t n = 0;
    args[n++] = "--data-dir";
    args[n++] = dir;
    for (size_t i = 0; extra && extra[i] && n < 31; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    if (ws)
        return h_broker_start_ws(workers, args);
    return h_broker_start_ex(workers, true, args, NULL);
}

/* kill -9, asserts the broker died of it. */
static void kill9(struct h_broker *b)
{
    int rc = h_broker_stop_sig(b, SIGKILL, 5000);
    cr_assert(rc == -1 && WIFSIGNALED(b->status) && WTERMSIG(b->status) == SIGKILL,
              "broker did not die of SIGKILL (rc %d, status 0x%x)", rc, b->status);
}

static bool log_has(struct h_broker *b, const char *needle, int ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)ms;
    for (;;) {
        if (strstr(h_broker_log(b), needle))
            return true;
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(20);
    }
}

/* The start-up line says n messages were recovered from dir. */
static void expect_recovered(struct h_broker *b, const char *dir, long n)
{
    const char *line = h_fmt("data dir %s: recovered %ld persistent messages", dir, n);
    cr_assert(log_has(b, line, 3000), "expected '%s' in the log:\n%s", line, h_broker_log(b));
}

/* A persistent SEND to q with a receipt (extra: "" or header lines ending
 * in "\n"), waits for the RECEIPT. */
static void psend(struct h_conn *c, const char *q, const char *body, const char *extra)
{
    const char *rid = h_rid(c);
    h_sendf(c, "SEND\ndestination:%s\npersistent:true\n%sreceipt:%s\n\n%s", q, extra, rid, body);
    h_expect_receipt(c, rid);
}

static bool is_redelivered(const struct h_frame *f)
{
    const char *r = h_hdr(f, "redelivered");
    return r != NULL && strcmp(r, "true") == 0;
}

/* A MESSAGE with this body, redelivered:true or not as said. */
static struct h_frame *expect_msg_r(struct h_conn *c, const char *body, bool redelivered)
{
    struct h_frame *f = h_expect_msg(c, body);
    if (redelivered)
        cr_assert(is_redelivered(f), "expected redelivered:true on %s", h_show(f));
    else
        cr_assert(!is_redelivered(f), "first delivery marked redelivered: %s", h_show(f));
    return f;
}

static uint64_t epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* "/queue/NAME" -> "/queue/DLQ.NAME". */
static const char *dlq_of(const char *q)
{
    cr_assert(strncmp(q, "/queue/", 7) == 0);
    return h_fmt("/queue/DLQ.%s", q + 7);
}

/* Poll /metrics on the ws port until series == want (3 s); the last value. */
static double metric_until(int port, const char *series, double want)
{
    double v = -1;
    for (uint64_t deadline = h_now_ms() + 3000; h_now_ms() < deadline; h_sleep_ms(20)) {
        v = h_metric(h_http_get(port, "/metrics"), series);
        if (v == want)
            break;
    }
    return v;
}

/* ===================================================================== */
/* Restarts                                                               */
/* ===================================================================== */

Test(durable, kill9_keeps_persistent_in_order_drops_the_rest)
{
    const char *dir = data_dir();
    struct h_broker *b = start_dd(dir, 2, false, NULL);
    expect_recovered(b, dir, 0);
    const char *q1 = h_dest("queue", "keep"), *q2 = h_dest("queue", "keep2");
    struct h_conn *p = h_client(b, "1.2");
    /* q1: persistent p<i> interleaved with memory-only t<i> (no header, or
     * persistent:false); q2: persistent only. Every SEND has a receipt. */
    int npersistent = 0;
    for (int i = 0; i < 20; i++) {
        if (i % 4 == 3) {
            const char *hdr = i % 8 == 3 ? "persistent:false\n" : "";
            const char *rid = h_rid(p);
            h_sendf(p, "SEND\ndestination:%s\n%sreceipt:%s\n\nt%d", q1, hdr, rid, i);
            h_expect_receipt(p, rid);
        } else {
            psend(p, q1, h_fmt("p%d", i), h_fmt("content-type:text/plain\nx-custom:v%d\n", i));
            npersistent++;
        }
        if (i < 5) {
            psend(p, q2, h_fmt("x%d", i), "");
            npersistent++;
        }
    }
    kill9(b);

    b = start_dd(dir, 2, false, NULL);
    expect_recovered(b, dir, npersistent);
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q1, "s1", "client-individual", NULL);
    for (int i = 0; i < 20; i++) {
        if (i % 4 == 3)
            continue;
        struct h_frame *f = expect_msg_r(c, h_fmt("p%d", i), false);
        cr_assert(strcmp(h_hdr(f, "destination"), q1) == 0, "destination: %s", h_show(f));
        cr_assert(h_hdr(f, "message-id") != NULL, "no message-id: %s", h_show(f));
        const char *ph = h_hdr(f, "persistent"), *ct = h_hdr(f, "content-type"),
                   *xc = h_hdr(f, "x-custom");
        cr_assert(ph && strcmp(ph, "true") == 0, "persistent header lost: %s", h_show(f));
        cr_assert(ct && strcmp(ct, "text/plain") == 0, "content-type lost: %s", h_show(f));
        cr_assert(xc && strcmp(xc, h_fmt("v%d", i)) == 0, "x-custom lost: %s", h_show(f));
        h_ack(c, f, NULL, true);
    }
    h_expect_silence(c, 300); /* no t<i>: memory-only messages died with the broker */
    h_subscribe(c, q2, "s2", "auto", NULL);
    for (int i = 0; i < 5; i++)
        expect_msg_r(c, h_fmt("x%d", i), false);
    h_expect_silence(c, 200);
    /* New traffic on the recovered queue goes behind, as usual. */
    p = h_client(b, "1.2");
    psend(p, q1, "after", "");
    h_ack(c, expect_msg_r(c, "after", false), NULL, true);
    h_bystander_ok(b);
    h_disconnect(c);
    h_broker_stop_ok(b);

    /* Everything was acked (receipts, auto): nothing is left. */
    b = start_dd(dir, 2, false, NULL);
    expect_recovered(b, dir, 0);
    c = h_client(b, "1.2");
    h_subscribe(c, q1, "s1", NULL, NULL);
    h_subscribe(c, q2, "s2", NULL, NULL);
    h_expect_silence(c, 300);
    h_broker_stop_ok(b);
}

Test(durable, delivered_come_back_redelivered_acked_never)
{
    const char *dir = data_dir();
    struct h_broker *b = start_dd(dir, 2, false, NULL);
    const char *q = h_dest("queue", "redeliver");
    struct h_conn *p = h_client(b, "1.2");
    for (int i = 0; i < 6; i++)
        psend(p, q, h_fmt("m%d", i), "");
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "client-individual", "prefetch-count:3\n");
    struct h_frame *f[6];
    for (int i = 0; i < 3; i++)
        f[i] = expect_msg_r(c, h_fmt("m%d", i), false);
    h_ack(c, f[1], NULL, true); /* m1 acked, on disk */
    f[3] = expect_msg_r(c, "m3", false);
    /* m0, m2, m3 were handed out (seen here), m4, m5 never. */
    kill9(b);

    b = start_dd(dir, 2, false, NULL);
    expect_recovered(b, dir, 5);
    c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "client-individual", NULL);
    f[0] = expect_msg_r(c, "m0", true);
    f[2] = expect_msg_r(c, "m2", true);
    f[3] = expect_msg_r(c, "m3", true);
    f[4] = expect_msg_r(c, "m4", false);
    f[5] = expect_msg_r(c, "m5", false);
    h_expect_silence(c, 300); /* never m1 */
    h_ack(c, f[0], NULL, true);
    h_ack(c, f[2], NULL, true);
    h_ack(c, f[3], NULL, true);
    h_ack(c, f[4], NULL, true);
    /* m5 delivered (twice now), not acked. */
    kill9(b);

    b = start_dd(dir, 2, false, NULL);
    expect_recovered(b, dir, 1);
    c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "client-individual", NULL);
    f[5] = expect_msg_r(c, "m5", true);
    h_expect_silence(c, 300);
    h_ack(c, f[5], NULL, true);
    h_broker_stop_ok(b);

    b = start_dd(dir, 2, false, NULL);
    expect_recovered(b, dir, 0);
    c = h_client(b, "1.2");
    h_subscribe(c, q, "s", NULL, NULL);
    h_expect_silence(c, 300);
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

/* 1 -> 2 -> 3 -> 1 workers: the queues re-home, nothing is lost, each
 * queue keeps its order. */
Test(durable, workers_change_between_runs)
{
    enum { NQ = 5, N1 = 20, TAKE = 5, N2 = 5 };
    const char *dir = data_dir();
    const char *q[NQ];
    for (int k = 0; k < NQ; k++)
        q[k] = h_dest("queue", h_fmt("rehome%d", k));

    struct h_broker *b = start_dd(dir, 1, false, NULL);
    struct h_conn *p = h_client(b, "1.2");
    for (int i = 0; i < N1; i++)
        for (int k = 0; k < NQ; k++)
            psend(p, q[k], h_fmt("q%d-%d", k, i), "");
    kill9(b);

    /* 2 workers: every queue has all; take and ack its first TAKE, add N2. */
    b = start_dd(dir, 2, false, NULL);
    expect_recovered(b, dir, NQ * N1);
    struct h_conn *c[NQ];
    for (int k = 0; k < NQ; k++) {
        c[k] = h_client(b, "1.2");
        h_subscribe(c[k], q[k], "s", "client-individual", h_fmt("prefetch-count:%d\n", TAKE));
        for (int i = 0; i < TAKE; i++)
            h_ack(c[k], expect_msg_r(c[k], h_fmt("q%d-%d", k, i), false), NULL, true);
    }
    p = h_client(b, "1.2");
    for (int i = N1; i < N1 + N2; i++)
        for (int k = 0; k < NQ; k++)
            psend(p, q[k], h_fmt("q%d-%d", k, i), "");
    kill9(b);

    /* 3 workers: the rest, in order (some were handed out: redelivered
     * then, not checked here), then the N2 new ones. */
    b = start_dd(dir, 3, false, NULL);
    expect_recovered(b, dir, NQ * (N1 - TAKE + N2));
    for (int k = 0; k < NQ; k++) {
        c[k] = h_client(b, "1.2");
        h_subscribe(c[k], q[k], "s", "auto", NULL);
    }
    for (int k = 0; k < NQ; k++) {
        for (int i = TAKE; i < N1 + N2; i++) {
            struct h_frame *f = h_expect_msg(c[k], h_fmt("q%d-%d", k, i));
            if (i >= N1)
                cr_assert(!is_redelivered(f), "never delivered, marked redelivered: %s", h_show(f));
        }
        h_expect_silence(c[k], k == 0 ? 300 : 20);
    }
    h_broker_stop_ok(b);

    /* Back to 1 worker: everything was auto-acked. */
    b = start_dd(dir, 1, false, NULL);
    expect_recovered(b, dir, 0);
    p = h_client(b, "1.2");
    for (int k = 0; k < NQ; k++)
        h_subscribe(p, q[k], h_fmt("s%d", k), NULL, NULL);
    h_expect_silence(p, 300);
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

Test(durable, one_broker_per_data_dir)
{
    const char *dir = data_dir();
    struct h_broker *b = start_dd(dir, 2, false, NULL);
    const char *q = h_dest("queue", "lock");
    psend(h_client(b, "1.2"), q, "kept", "");

    char *out = NULL, *err = NULL;
    int rc =
        h_run(ARGS("--listen", "stomp://127.0.0.1:0", "--data-dir", dir), NULL, 10000, &out, &err);
    cr_assert(rc == 2, "second broker on %s: exit %d; stderr:\n%s", dir, rc, err);
    const char *want = h_fmt("--data-dir %s is in use by another broker", dir);
    cr_assert(strstr(err, want) != NULL, "second broker's stderr lacks '%s':\n%s", want, err);
    /* The same through STAMPEDE_DATA_DIR. */
    rc = h_run(ARGS("--listen", "stomp://127.0.0.1:0"), ARGS(h_fmt("STAMPEDE_DATA_DIR=%s", dir)),
               10000, &out, &err);
    cr_assert(rc == 2, "second broker (STAMPEDE_DATA_DIR): exit %d; stderr:\n%s", rc, err);
    cr_assert(strstr(err, "is in use by another broker") != NULL, "stderr:\n%s", err);

    /* The first one did not notice. */
    cr_assert(h_broker_alive(b), "first broker died; log:\n%s", h_broker_log(b));
    psend(h_client(b, "1.2"), q, "kept2", "");
    h_bystander_ok(b);

    /* Its lock dies with it (kill -9): the next one starts and has both. */
    kill9(b);
    b = h_broker_start_ex(2, true, NULL, ARGS(h_fmt("STAMPEDE_DATA_DIR=%s", dir)));
    expect_recovered(b, dir, 2);
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", NULL, NULL);
    expect_msg_r(c, "kept", false);
    expect_msg_r(c, "kept2", false);
    h_broker_stop_ok(b);
}

Test(durable, sigterm_restart_keeps_everything)
{
    const char *dir = data_dir();
    struct h_broker *b = start_dd(dir, 2, false, NULL);
    const char *q = h_dest("queue", "term");
    struct h_conn *p = h_client(b, "1.2");
    for (int i = 0; i < 10; i++)
        psend(p, q, h_fmt("m%d", i), "");
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "client-individual", "prefetch-count:2\n");
    struct h_frame *f0 = expect_msg_r(c, "m0", false);
    expect_msg_r(c, "m1", false);
    h_ack(c, f0, NULL, true);
    expect_msg_r(c, "m2", false);
    /* Persistent SENDs without receipts, and memory-only ones: the first
     * are kept by a clean shutdown once the broker has them. */
    for (int i = 0; i < 5; i++) {
        h_sendf(p, "SEND\ndestination:%s\npersistent:true\n\nn%d", q, i);
        h_sendf(p, "SEND\ndestination:%s\n\nt%d", q, i);
    }
    h_sleep_ms(300);
    h_broker_stop_ok(b); /* SIGTERM, exit 0 */

    b = start_dd(dir, 2, false, NULL);
    expect_recovered(b, dir, 14);
    c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "client-individual", NULL);
    expect_msg_r(c, "m1", true);
    expect_msg_r(c, "m2", true);
    for (int i = 3; i < 10; i++)
        expect_msg_r(c, h_fmt("m%d", i), false);
    for (int i = 0; i < 5; i++)
        expect_msg_r(c, h_fmt("n%d", i), false);
    h_expect_silence(c, 300);
    h_close(c); /* nothing acked: all 14 stay, m1..n4 now delivered */
    h_broker_stop_ok(b);

    b = start_dd(dir, 2, false, NULL);
    expect_recovered(b, dir, 14);
    c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "auto", NULL);
    for (int i = 1; i < 10; i++)
        expect_msg_r(c, h_fmt("m%d", i), true);
    for (int i = 0; i < 5; i++)
        expect_msg_r(c, h_fmt("n%d", i), true);
    h_expect_silence(c, 300);
    h_broker_stop_ok(b);
}

/* ===================================================================== */
/* Expiry and dead letters                                                */
/* ===================================================================== */

Test(durable, expiry_end_to_end)
{
    const char *dir = data_dir();
    struct h_broker *b = start_dd(dir, 2, true, NULL);
    int ws = h_listener_port(b, "ws");
    const char *expired = "stampede_messages_expired_total";
    cr_assert_eq(h_metric(h_http_get(ws, "/metrics"), expired), 0, "%s at start", expired);
    const char *q = h_dest("queue", "ttl");
    struct h_conn *p = h_client(b, "1.2");
    uint64_t now = epoch_ms();
    psend(p, q, "e-short", "expiration:200\n");
    psend(p, q, "e-long", "expiration:60000\n");
    h_publish(p, q, "plain", true);
    psend(p, q, "a-short", h_fmt("expires:%llu\n", (unsigned long long)(now + 200)));
    psend(p, q, "a-long", h_fmt("expires:%llu\n", (unsigned long long)(now + 60000)));
    /* Memory-only, with a TTL too. */
    const char *rid = h_rid(p);
    h_sendf(p, "SEND\ndestination:%s\nexpiration:200\nreceipt:%s\n\nm-short", q, rid);
    h_expect_receipt(p, rid);
    /* Already past. */
    psend(p, q, "a-past", h_fmt("expires:%llu\n", (unsigned long long)(now - 1000)));
    h_sleep_ms(600);

    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "auto", NULL);
    expect_msg_r(c, "e-long", false);
    expect_msg_r(c, "plain", false);
    expect_msg_r(c, "a-long", false);
    h_expect_silence(c, 300);
    cr_assert_eq(metric_until(ws, expired, 4), 4, "%s after e-short, a-short, m-short, a-past",
                 expired);
    h_unsubscribe(c, "s");

    /* Across a crash: the TTL is on disk and keeps running. */
    psend(p, q, "r-short", "expiration:2000\n");
    psend(p, q, "r-keep", "");
    uint64_t sent = h_now_ms();
    kill9(b);
    b = start_dd(dir, 2, true, NULL);
    ws = h_listener_port(b, "ws");
    uint64_t t = h_now_ms();
    if (t < sent + 2300)
        h_sleep_ms((unsigned)(sent + 2300 - t));
    c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "auto", NULL);
    expect_msg_r(c, "r-keep", false);
    h_expect_silence(c, 300);
    cr_assert_eq(metric_until(ws, expired, 1), 1, "%s after r-short expired (restarted)", expired);
    h_broker_stop_ok(b);
}

Test(durable, dead_letters_survive_restart)
{
    const char *dir = data_dir();
    struct h_broker *b = start_dd(dir, 2, false, ARGS("--dead-letter=yes"));
    const char *q = h_dest("queue", "dl"), *dlq = dlq_of(q);
    struct h_conn *p = h_client(b, "1.2");
    psend(p, q, "old", "expiration:200\n");
    h_sleep_ms(500);
    psend(p, q, "bad", "x-keep:me\n");
    psend(p, q, "good", "");
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "client-individual", NULL);
    struct h_frame *f = expect_msg_r(c, "bad", false);
    const char *rid = h_rid(c);
    h_sendf(c, "NACK\nid:%s\nrequeue:false\nreceipt:%s\n\n", h_hdr(f, "ack"), rid);
    h_expect_receipt(c, rid);
    h_ack(c, expect_msg_r(c, "good", false), NULL, true);
    h_expect_silence(c, 300); /* "bad" is not requeued, "old" never delivered */
    kill9(b);

    b = start_dd(dir, 2, false, ARGS("--dead-letter=yes"));
    expect_recovered(b, dir, 2);
    c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "client-individual", NULL);
    h_expect_silence(c, 300);
    h_subscribe(c, dlq, "d", "client-individual", NULL);
    struct h_frame *d1 = h_expect_msg(c, "old"), *d2 = h_expect_msg(c, "bad");
    struct {
        struct h_frame *f;
        const char *why;
    } want[] = {{d1, "expired"}, {d2, "rejected"}};
    for (int i = 0; i < 2; i++) {
        struct h_frame *g = want[i].f;
        const char *dest = h_hdr(g, "destination"), *why = h_hdr(g, "x-death-reason"),
                   *orig = h_hdr(g, "x-original-destination");
        cr_assert(dest && strcmp(dest, dlq) == 0, "dead letter's destination: %s", h_show(g));
        cr_assert(why && strcmp(why, want[i].why) == 0, "expected x-death-reason:%s: %s",
                  want[i].why, h_show(g));
        cr_assert(orig && strcmp(orig, q) == 0, "x-original-destination: %s", h_show(g));
    }
    cr_assert(h_hdr(d2, "x-keep") && strcmp(h_hdr(d2, "x-keep"), "me") == 0,
              "the rejected message's own header is lost: %s", h_show(d2));
    h_ack(c, d1, NULL, true);
    h_ack(c, d2, NULL, true);
    h_expect_silence(c, 200);
    kill9(b);

    b = start_dd(dir, 2, false, ARGS("--dead-letter=yes"));
    expect_recovered(b, dir, 0);
    c = h_client(b, "1.2");
    h_subscribe(c, dlq, "d", NULL, NULL);
    h_subscribe(c, q, "s", NULL, NULL);
    h_expect_silence(c, 300);
    h_broker_stop_ok(b);
}

/* --max-redeliveries 1: returned twice (a NACK, a disconnect) is rejected. */
Test(durable, max_redeliveries_dead_letters)
{
    const char *dir = data_dir();
    const char *const extra[] = {"--dead-letter=yes", "--max-redeliveries", "1", NULL};
    struct h_broker *b = start_dd(dir, 2, false, extra);
    const char *q = h_dest("queue", "maxr"), *dlq = dlq_of(q);
    struct h_conn *p = h_client(b, "1.2");
    psend(p, q, "x", "");
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "client-individual", "prefetch-count:1\n");
    h_nack(c, expect_msg_r(c, "x", false), NULL, true); /* returned once: requeued */
    h_nack(c, expect_msg_r(c, "x", true), NULL, true);  /* twice: rejected */
    h_expect_silence(c, 300);
    h_unsubscribe(c, "s");

    psend(p, q, "y", "");
    for (int i = 0; i < 2; i++) { /* returned by a disconnect, twice */
        struct h_conn *d = h_client(b, "1.2");
        h_subscribe(d, q, "s", "client-individual", NULL);
        expect_msg_r(d, "y", i > 0);
        h_close(d);
        h_sleep_ms(100);
    }
    h_subscribe(c, q, "s2", "client-individual", NULL);
    h_expect_silence(c, 300);
    kill9(b);

    b = start_dd(dir, 2, false, extra);
    expect_recovered(b, dir, 2);
    c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "auto", NULL);
    h_expect_silence(c, 200);
    h_subscribe(c, dlq, "d", "auto", NULL);
    const char *bodies[] = {"x", "y"};
    for (int i = 0; i < 2; i++) {
        struct h_frame *f = h_expect_msg(c, bodies[i]);
        const char *why = h_hdr(f, "x-death-reason"), *orig = h_hdr(f, "x-original-destination");
        cr_assert(why && strcmp(why, "rejected") == 0, "x-death-reason: %s", h_show(f));
        cr_assert(orig && strcmp(orig, q) == 0, "x-original-destination: %s", h_show(f));
    }
    h_expect_silence(c, 200);
    h_broker_stop_ok(b);
}

/* ===================================================================== */
/* A full disk                                                            */
/* ===================================================================== */

/* Mount a 2 MiB tmpfs on a fresh dir, in a mount namespace of this test
 * process when it can make one (then the mount goes when the process and
 * its brokers do, whatever happens); umounted by durable_fini anyway. */
static const char *mount_small_tmpfs(void)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to mount a tmpfs (euid %d)", (int)geteuid());
    snprintf(mnt_dir, sizeof mnt_dir, "/tmp/stampede-itest-enospc-%d-XXXXXX", (int)getpid());
    cr_assert(mkdtemp(mnt_dir) != NULL, "mkdtemp: %s", strerror(errno));
    if (unshare(CLONE_NEWNS) == 0)
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    if (mount("tmpfs", mnt_dir, "tmpfs", 0, "size=2m") != 0) {
        int e = errno;
        rmdir(mnt_dir);
        mnt_dir[0] = '\0';
        cr_skip_test("mount -t tmpfs -o size=2m: %s", strerror(e));
    }
    mnt_mounted = true;
    return mnt_dir;
}

#define BIG 8192

/* Body number i: "n=0007 " then padding to BIG bytes. */
static const char *big_body(int i)
{
    static char body[BIG + 1];
    int n = snprintf(body, sizeof body, "n=%04d ", i);
    memset(body + n, 'a' + i % 26, BIG - (size_t)n);
    body[BIG] = '\0';
    return h_fmt("%s", body);
}

static int big_number(const struct h_frame *f)
{
    cr_assert(f->body_len == BIG && strncmp(f->body, "n=", 2) == 0, "not one of ours: %s",
              h_show(f));
    return atoi(f->body + 2);
}

Test(durable, full_disk_enospc, .timeout = 120)
{
    const char *mnt = mount_small_tmpfs();
    /* A filler to free later. */
    const char *filler = h_fmt("%s/filler", mnt);
    int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0, "open %s: %s", filler, strerror(errno));
    static char chunk[64 * 1024];
    memset(chunk, 'f', sizeof chunk);
    for (int i = 0; i < 4; i++) /* 256 KiB */
        cr_assert(write(fd, chunk, sizeof chunk) == (ssize_t)sizeof chunk, "write filler: %s",
                  strerror(errno));
    close(fd);
    const char *dir = h_fmt("%s/data", mnt);
    struct h_broker *b = start_dd(dir, 2, false, NULL);
    const char *q = h_dest("queue", "full"), *topic = h_dest("topic", "full");

    /* Bystanders, connected before the disk fills. */
    struct h_conn *tsub = h_client(b, "1.2"), *tpub = h_client(b, "1.2");
    h_subscribe(tsub, topic, "t", NULL, NULL);
    const char *mq = h_dest("queue", "full-mem");
    h_subscribe(tsub, mq, "m", NULL, NULL);

    /* Fill it: one persistent SEND at a time until the ERROR. */
    enum { MAXN = 1000 };
    static bool receipted[MAXN];
    memset(receipted, 0, sizeof receipted);
    struct h_conn *p = h_client(b, "1.2");
    int nok = 0, failed_at = -1;
    for (int i = 0; i < MAXN && failed_at < 0; i++) {
        const char *rid = h_fmt("big-%d", i);
        h_sendf(p, "SEND\ndestination:%s\npersistent:true\nreceipt:%s\n\n%s", q, rid, big_body(i));
        struct h_frame *f = h_read(p, 5000);
        cr_assert(f != NULL, "SEND %d: no RECEIPT or ERROR within 5 s (%s); log:\n%s", i,
                  p->closed ? "closed" : "timeout", h_broker_log(b));
        if (strcmp(f->cmd, "RECEIPT") == 0) {
            const char *got = h_hdr(f, "receipt-id");
            cr_assert(got && strcmp(got, rid) == 0, "SEND %d: %s", i, h_show(f));
            receipted[i] = true;
            nok++;
            continue;
        }
        cr_assert(strcmp(f->cmd, "ERROR") == 0, "SEND %d: expected RECEIPT or ERROR, got %s", i,
                  h_show(f));
        const char *m = h_hdr(f, "message"), *erid = h_hdr(f, "receipt-id");
        cr_assert(m && strcmp(m, NOT_STORED) == 0, "SEND %d: ERROR is not '%s': %s", i, NOT_STORED,
                  h_show(f));
        /* Not fatal: the rest (nothing receipted is lost, recovery) still runs. */
        cr_expect(erid && strcmp(erid, rid) == 0, "SEND %d: ERROR without receipt-id:%s: %s", i,
                  rid, h_show(f));
        struct h_frame *more = NULL;
        cr_assert(h_wait_closed(p, 3000, &more), "not closed after the ERROR (%s)",
                  more ? h_show(more) : "still open");
        failed_at = i;
    }
    cr_assert(failed_at >= 0, "%d persistent 8 KiB messages fit on a 2 MiB tmpfs?", MAXN);
    cr_assert(nok >= 20, "only %d messages before the disk was full", nok);
    cr_log_info("full disk: %d receipted, ERROR at message %d", nok, failed_at);

    /* The broker lives, and other traffic flows while the disk is full. */
    cr_assert(h_broker_alive(b), "broker died on a full disk; log:\n%s", h_broker_log(b));
    h_publish(tpub, topic, "topic-while-full", true);
    h_expect_msg(tsub, "topic-while-full");
    h_publish(tpub, mq, "memory-while-full", true);
    h_expect_msg(tsub, "memory-while-full");
    h_bystander_ok(b);

    /* Take the last bytes too, let a probe run: a persistent SEND from a
     * new connection gets the ERROR as well (never a RECEIPT). */
    const char *filler2 = h_fmt("%s/filler2", mnt);
    fd = open(filler2, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0, "open %s: %s", filler2, strerror(errno));
    for (int i = 0; i < 1024 && write(fd, chunk, 4096) == 4096; i++) {
    }
    close(fd);
    h_sleep_ms(1500);
    /* From several connections: they land on different workers (the
     * queue's own and another). */
    for (int k = 0; k < 4; k++) {
        struct h_conn *pf = h_client(b, "1.2");
        const char *wrid = h_fmt("wf-%d", k);
        h_sendf(pf, "SEND\ndestination:%s\npersistent:true\nreceipt:%s\n\nwhile-full-%d", q, wrid,
                k);
        struct h_frame *ef = h_read(pf, 5000);
        cr_assert(ef != NULL, "persistent SEND %d on a full disk: no answer (%s)", k,
                  pf->closed ? "closed" : "timeout");
        if (strcmp(ef->cmd, "RECEIPT") == 0) {
            cr_expect_fail("persistent SEND %d on a full disk got %s (never a RECEIPT for a "
                           "message not stored)",
                           k, h_show(ef));
            ef = h_read(pf, 3000);
            cr_assert(ef != NULL, "after the RECEIPT: %s", pf->closed ? "closed" : "timeout");
        }
        cr_assert(strcmp(ef->cmd, "ERROR") == 0 && h_hdr(ef, "message") &&
                      strcmp(h_hdr(ef, "message"), NOT_STORED) == 0,
                  "persistent SEND %d on a full disk: expected ERROR message:%s, got %s", k,
                  NOT_STORED, h_show(ef));
        cr_expect(h_hdr(ef, "receipt-id") && strcmp(h_hdr(ef, "receipt-id"), wrid) == 0,
                  "persistent SEND %d on a full disk: ERROR without receipt-id:%s: %s", k, wrid,
                  h_show(ef));
        struct h_frame *more = NULL;
        cr_assert(h_wait_closed(pf, 3000, &more), "not closed after the ERROR (%s)",
                  more ? h_show(more) : "still open");
    }
    cr_assert(h_broker_alive(b), "broker died on a full disk; log:\n%s", h_broker_log(b));
    h_publish(tpub, topic, "topic-while-full-2", true);
    h_expect_msg(tsub, "topic-while-full-2");

    /* Space returns: the journal's probe (every second) finds it. */
    cr_assert(unlink(filler) == 0, "unlink %s: %s", filler, strerror(errno));
    cr_assert(unlink(filler2) == 0, "unlink %s: %s", filler2, strerror(errno));
    h_sleep_ms(2000);
    struct h_conn *p2 = h_client(b, "1.2");
    const char *after[3] = {"after-0", "after-1", "after-2"};
    for (int i = 0; i < 3; i++) {
        const char *rid = h_rid(p2);
        h_sendf(p2, "SEND\ndestination:%s\npersistent:true\nreceipt:%s\n\n%s", q, rid, after[i]);
        struct h_frame *f = h_read(p2, 5000);
        cr_assert(f != NULL && strcmp(f->cmd, "RECEIPT") == 0,
                  "persistent SEND 2 s after space returned: expected RECEIPT, got %s; log:\n%s",
                  f            ? h_show(f)
                  : p2->closed ? "close"
                               : "timeout",
                  h_broker_log(b));
    }
    h_publish(tpub, topic, "topic-after", true);
    h_expect_msg(tsub, "topic-after");
    kill9(b);

    /* Same dir, still on the tmpfs: every receipted message, in order. */
    b = start_dd(dir, 2, false, NULL);
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "auto", NULL);
    int next = 0, extras = 0;
    for (;;) {
        struct h_frame *f = h_expect(c, "MESSAGE", H_WAIT);
        if (strncmp(f->body, "while-full-", 11) == 0) {
            cr_log_info("%s (ERROR, refused) was stored all the same", f->body);
            continue;
        }
        if (f->body_len != BIG) {
            cr_assert(strcmp(f->body, after[0]) == 0,
                      "after the big ones expected %s, got %s (receipted up to %d, at %d)",
                      after[0], h_show(f), nok, next);
            break;
        }
        int n = big_number(f);
        cr_assert(n >= next && n <= failed_at, "message %d out of order or unknown (expected %d)",
                  n, next);
        for (; next < n; next++)
            cr_assert(!receipted[next], "receipted message %d lost on the full disk", next);
        if (!receipted[n]) {
            extras++;
            cr_log_info("message %d (no RECEIPT) was stored all the same", n);
        }
        next = n + 1;
    }
    for (; next <= failed_at; next++)
        cr_assert(!receipted[next], "receipted message %d lost on the full disk", next);
    h_expect_msg(c, after[1]);
    h_expect_msg(c, after[2]);
    h_expect_silence(c, 300);
    cr_log_info("after the restart: %d receipted messages back, %d without a receipt", nok, extras);
    h_broker_stop_ok(b);
}
