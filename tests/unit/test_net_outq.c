/* Unit tests of the pending-output bound (src/net/outq.c): what counts
 * toward --max-pending-output (both output queues, the stream's pending
 * bytes) and what does not (queue deliveries, written between
 * stp_conn_exempt_begin/end, also after the stream took them over), the one
 * enforcement (the layer above is told "slow consumer" through ops->error,
 * the connection closes, the counter counts), and segment offsets past
 * 4 GiB. A connection on a zeroed net with a fake stream and a recording ops
 * table; no loop. */
#include "net/conn.h"
#include "stampede/config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t fake_pending;

static size_t pending(const struct stp_conn *c)
{
    (void)c;
    return fake_pending;
}

static const struct stp_stream_ops fake_stream = {.name = "fake", .pending = pending};

/* The layer above, as the net sees it: errors are recorded, and answered
 * with output the way a session answers (an ERROR frame is output too). */
static unsigned errors;
static char last_error[64];

static void on_error(struct stp_conn *conn, const char *message, const char *detail)
{
    (void)detail;
    errors++;
    snprintf(last_error, sizeof(last_error), "%s", message);
    stp_conn_write(conn, "ERROR\n\n", 8);
}

static const struct stp_conn_ops ops = {.error = on_error};

static struct stp_config cfg = {.max_pending_output = 1000};
static struct stp_net *w;
static struct stp_conn *c;

static void setup(void)
{
    fake_pending = 0;
    errors = 0;
    last_error[0] = '\0';
    w = calloc(1, sizeof(*w));
    c = calloc(1, sizeof(*c));
    cr_assert(w && c);
    w->cfg = &cfg;
    w->ops = &ops;
    c->net = w;
    c->stream = &fake_stream;
    c->framing = &stp_framing_raw;
    strcpy(c->peer, "test:1");
}

static void teardown(void)
{
    stp_outq_free(&c->out[0]);
    stp_outq_free(&c->out[1]);
    free(c);
    free(w);
}

TestSuite(outq, .init = setup, .fini = teardown);

static void fill(size_t n)
{
    char buf[4096];
    memset(buf, 'x', sizeof(buf));
    while (n > 0) {
        size_t k = n < sizeof(buf) ? n : sizeof(buf);
        cr_assert_eq(stp_conn_write(c, buf, k), 0);
        n -= k;
    }
}

static void fill_exempt(size_t n)
{
    size_t mark = stp_conn_exempt_begin(c);
    fill(n);
    stp_conn_exempt_end(c, mark);
}

Test(outq, everything_but_queue_deliveries_counts)
{
    fill(900);
    cr_assert_not(stp_conn_output_over_limit(c));
    fill_exempt(50000);
    cr_assert_not(stp_conn_output_over_limit(c), "queue deliveries counted");
    cr_assert_eq(stp_conn_pending(c), 50900);
    fill(100);
    cr_assert_not(stp_conn_output_over_limit(c), "exactly the limit is fine");
    fill(1);
    cr_assert(stp_conn_output_over_limit(c));
}

Test(outq, both_queues_count)
{
    fill(600);
    c->fill = 1; /* a write of queue 0 in flight: new output fills queue 1 */
    fill_exempt(3000);
    fill(300);
    cr_assert_not(stp_conn_output_over_limit(c));
    fill(101);
    cr_assert(stp_conn_output_over_limit(c));
    stp_outq_reset(&c->out[0]); /* the write completed */
    cr_assert_eq(c->out[0].exempt, 0);
    cr_assert_not(stp_conn_output_over_limit(c));
}

Test(outq, stream_bytes_count_minus_what_was_exempt)
{
    fill(400);
    fake_pending = 500; /* e.g. TLS records of a topic MESSAGE */
    cr_assert_not(stp_conn_output_over_limit(c));
    fake_pending = 601;
    cr_assert(stp_conn_output_over_limit(c));
    c->stream_exempt = 10000; /* the stream sealed queue deliveries too */
    fake_pending = 10600;
    cr_assert_not(stp_conn_output_over_limit(c));
    fake_pending = 10601;
    cr_assert(stp_conn_output_over_limit(c));
    fake_pending = 50; /* fewer pending than were exempt: none counts */
    cr_assert_not(stp_conn_output_over_limit(c));
}

Test(outq, the_enforcement_sends_error_and_closes)
{
    fill(900);
    cr_assert(stp_conn_check_output(c));
    cr_assert_eq(c->closing, STP_OPEN);
    fill(200);
    cr_assert_not(stp_conn_check_output(c));
    cr_assert_eq(c->closing, STP_CLOSE_AFTER_FLUSH);
    cr_assert_eq(STP_STAT_GET(w->stats.slow_consumers), 1);
    cr_assert_eq(w->reap, c, "queued for the reaper");
    cr_assert_eq(errors, 1);
    cr_assert_str_eq(last_error, "slow consumer");
    struct stp_outq *q = &c->out[c->fill];
    /* Once closing, nothing more is judged (and no second error). */
    size_t len = q->bytes.len;
    fill(5000);
    cr_assert_not(stp_conn_check_output(c));
    cr_assert_eq(STP_STAT_GET(w->stats.slow_consumers), 1);
    cr_assert_eq(errors, 1);
    cr_assert_eq(q->bytes.len, len + 5000);
}

Test(outq, offsets_and_lengths_past_4_gib)
{
    struct stp_outq q = {0};
    size_t off = (size_t)5 << 32, len = ((size_t)1 << 32) + 7;
    cr_assert_eq(stp_outq_add_fixed(&q, off, len), 0);
    cr_assert_eq(q.segs[0].off, off);
    cr_assert_eq(q.segs[0].len, len);
    cr_assert_eq(q.total, len);
    free(q.segs);
}

/* --slow-consumer-grace: over the limit for a moment is not slow; staying
 * over for the grace is, and so is 4x the limit at once. */
Test(outq, the_grace_forgives_a_burst_but_not_a_stall)
{
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    w->loop = &loop;
    cfg.slow_consumer_grace_ms = 50;
    fill(1500); /* over 1000, under 4000 */
    cr_assert(stp_conn_check_output(c), "a burst is forgiven");
    cr_assert_neq(c->over_since_ms, 0);
    stp_outq_reset(&c->out[c->fill]); /* the client read it */
    stp_conn_output_drained(c);
    cr_assert_eq(c->over_since_ms, 0, "back under the limit: the grace starts over");
    fill(1500);
    cr_assert(stp_conn_check_output(c));
    uv_sleep(60);
    uv_update_time(&loop);
    fill(1);
    cr_assert_not(stp_conn_check_output(c), "over the limit for longer than the grace");
    cr_assert_str_eq(last_error, "slow consumer");
    cfg.slow_consumer_grace_ms = 0;
    uv_loop_close(&loop);
}

Test(outq, four_times_the_limit_is_slow_at_once)
{
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    w->loop = &loop;
    cfg.slow_consumer_grace_ms = 60000;
    fill(4001);
    cr_assert_not(stp_conn_check_output(c));
    cr_assert_eq(errors, 1);
    cfg.slow_consumer_grace_ms = 0;
    uv_loop_close(&loop);
}
