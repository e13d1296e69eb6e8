/*
 * 24_dedup.c - publish de-duplication (issue 13) against the real broker: a
 * SEND whose dedup-id its destination saw within --dedup-window gets its
 * RECEIPT but is not delivered again (queues and topics, publishers on
 * several connections), counted on /metrics; STAMPEDE_DEDUP_WINDOW=0 turns
 * it off; a too-long id is an ERROR and the broker serves others; with
 * --data-dir a persistent SEND's id survives kill -9 (also with another
 * worker count) within the window and is forgotten after it.
 *
 * Each test has its own data dir under /tmp (removed at the end). Every
 * wait is bounded (harness.h).
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

static char tmp_dirs[4][128];
static size_t ntmp_dirs;

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    remove(path);
    return 0;
}

static void dedup_fini(void)
{
    h_fini();
    for (size_t i = 0; i < ntmp_dirs; i++)
        nftw(tmp_dirs[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    ntmp_dirs = 0;
}

TestSuite(dedup, .init = h_init, .fini = dedup_fini, .timeout = 90);

static const char *data_dir(void)
{
    cr_assert(ntmp_dirs < sizeof tmp_dirs / sizeof tmp_dirs[0]);
    char *d = tmp_dirs[ntmp_dirs];
    snprintf(d, sizeof tmp_dirs[0], "/tmp/stampede-itest-dedup-%d-XXXXXX", (int)getpid());
    cr_assert(mkdtemp(d) != NULL, "mkdtemp: %s", strerror(errno));
    ntmp_dirs++;
    return d;
}

/* A SEND with dedup-id id and a receipt (extra: "" or header lines ending
 * in "\n"); waits for the RECEIPT, which comes for a duplicate too. */
static void dsend(struct h_conn *c, const char *dest, const char *id, const char *body,
                  const char *extra)
{
    const char *rid = h_rid(c);
    h_sendf(c, "SEND\ndestination:%s\ndedup-id:%s\n%sreceipt:%s\n\n%s", dest, id, extra, rid, body);
    h_expect_receipt(c, rid);
}

static void kill9(struct h_broker *b)
{
    int rc = h_broker_stop_sig(b, SIGKILL, 5000);
    cr_assert(rc == -1 && WIFSIGNALED(b->status) && WTERMSIG(b->status) == SIGKILL,
              "broker did not die of SIGKILL (rc %d, status 0x%x)", rc, b->status);
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

Test(dedup, duplicates_are_receipted_not_delivered_and_counted)
{
    struct h_broker *b = h_broker_start_ws(2, NULL);
    int ws = h_listener_port(b, "ws");
    const char *q = h_dest("queue", "dq"), *t = h_dest("topic", "dt");
    struct h_conn *p1 = h_client(b, "1.2"), *p2 = h_client(b, "1.1"), *p3 = h_client(b, "1.0");
    struct h_conn *sq = h_client(b, "1.2"), *st = h_client(b, "1.2");
    h_subscribe(sq, q, "q", NULL, NULL);
    h_subscribe(st, t, "t", NULL, NULL);
    /* Three connections (three STOMP versions) publish the same ids. */
    struct h_conn *pubs[] = {p1, p2, p3};
    for (int i = 0; i < 3; i++) {
        dsend(pubs[i], q, "order-1", h_fmt("q-from-%d", i), "");
        dsend(pubs[i], t, "order-1", h_fmt("t-from-%d", i), "");
    }
    dsend(p1, q, "order-2", "q-second", "");
    struct h_frame *f = h_expect_msg(sq, "q-from-0");
    cr_assert_str_eq(h_hdr(f, "dedup-id"), "order-1", "%s", h_show(f));
    h_expect_msg(sq, "q-second");
    h_expect_msg(st, "t-from-0");
    h_expect_silence(sq, 200);
    h_expect_silence(st, 100);
    cr_assert_eq(metric_until(ws, "stampede_messages_deduplicated_total", 4), 4);
    cr_assert_eq(h_metric(h_http_get(ws, "/metrics"), "stampede_dedup_ids_evicted_total"), 0);
}

Test(dedup, a_zero_window_from_the_environment_turns_it_off)
{
    struct h_broker *b = h_broker_start_ex(1, true, NULL, ARGS("STAMPEDE_DEDUP_WINDOW=0"));
    const char *q = h_dest("queue", "off");
    struct h_conn *p = h_client(b, "1.2"), *s = h_client(b, "1.2");
    h_subscribe(s, q, "s", NULL, NULL);
    dsend(p, q, "x", "one", "");
    dsend(p, q, "x", "two", "");
    h_expect_msg(s, "one");
    h_expect_msg(s, "two");
}

Test(dedup, a_long_id_is_an_error_and_others_are_served)
{
    struct h_broker *b = H_START0();
    char id[258];
    memset(id, 'k', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    struct h_conn *bad = h_client(b, "1.2");
    h_sendf(bad, "SEND\ndestination:/queue/long\ndedup-id:%s\nreceipt:r\n\nx", id);
    h_expect_error_msg(bad, "r", "dedup-id too long");
    struct h_conn *empty = h_client(b, "1.2");
    h_sendz(empty, "SEND\ndestination:/queue/long\ndedup-id:\n\nx");
    h_expect_error_msg(empty, NULL, "invalid dedup-id");
    h_bystander_ok(b);
}

Test(dedup, a_persistent_id_survives_kill9_within_the_window)
{
    const char *dir = data_dir();
    struct h_broker *b = h_broker_start_ex(2, true, ARGS("--data-dir", dir), NULL);
    const char *q = h_dest("queue", "kq");
    struct h_conn *p = h_client(b, "1.2");
    dsend(p, q, "kept", "p1", "persistent:true\n");
    dsend(p, q, "mem", "m1", ""); /* memory only: its id too */
    struct h_conn *s = h_client(b, "1.2");
    h_subscribe(s, q, "s", "client-individual", NULL);
    h_ack(s, h_expect_msg(s, "p1"), NULL, true);
    h_ack(s, h_expect_msg(s, "m1"), NULL, true);
    kill9(b);

    /* Another worker count: the queue's ids move to its new owner. */
    b = h_broker_start_ex(3, true, ARGS("--data-dir", dir), NULL);
    p = h_client(b, "1.2");
    s = h_client(b, "1.2");
    h_subscribe(s, q, "s", NULL, NULL);
    dsend(p, q, "kept", "p1-again", "persistent:true\n");
    dsend(p, q, "mem", "m1-again", "persistent:true\n");
    h_expect_msg(s, "m1-again");
    h_expect_silence(s, 300);
    h_broker_stop_ok(b);
}

Test(dedup, an_id_is_forgotten_after_the_window_even_across_a_restart)
{
    const char *dir = data_dir();
    const char *const *args = ARGS("--data-dir", dir, "--dedup-window", "1s");
    struct h_broker *b = h_broker_start_ex(1, true, args, NULL);
    const char *q = h_dest("queue", "wq");
    struct h_conn *p = h_client(b, "1.2");
    dsend(p, q, "w", "first", "persistent:true\n");
    dsend(p, q, "w", "dup", "persistent:true\n");
    kill9(b);
    h_sleep_ms(1300);

    b = h_broker_start_ex(1, true, args, NULL);
    p = h_client(b, "1.2");
    dsend(p, q, "w", "after", "persistent:true\n");
    struct h_conn *s = h_client(b, "1.2");
    h_subscribe(s, q, "s", NULL, NULL);
    h_expect_msg(s, "first");
    h_expect_msg(s, "after");
    h_expect_silence(s, 200);
}
