/*
 * 05_heartbeats.c - heart-beat negotiation and enforcement against a real
 * broker: the CONNECTED heart-beat answer (client's cy -> server's cx, client's
 * cx -> server's cy, clamped to [--heartbeat-min, --heartbeat-max], 0 stays 0),
 * EOLs sent on the negotiated interval, and a silent peer closed after about
 * twice the interval it promised.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

TestSuite(heartbeats, .init = h_init, .fini = h_fini, .timeout = 25);

static const char *negotiate(struct h_broker *b, const char *version, const char *hb)
{
    struct h_conn *c = h_dial(b);
    struct h_frame *f = h_stomp_connect(c, version, NULL, NULL, hb, false);
    cr_assert(f != NULL && strcmp(f->cmd, "CONNECTED") == 0, "heart-beat:%s got %s", hb, h_show(f));
    const char *got = h_hdr(f, "heart-beat");
    cr_assert(got != NULL, "CONNECTED without heart-beat: %s", h_show(f));
    h_close(c);
    return got;
}

Test(heartbeats, negotiation_table)
{
    struct h_broker *b = H_START("--heartbeat-min", "200ms", "--heartbeat-max", "5s");
    struct {
        const char *client, *want;
    } rows[] = {
        {"0,500", "500,0"},         {"500,0", "0,500"},      {"0,0", "0,0"},
        {"1000,2000", "2000,1000"}, {"50,50", "200,200"},    {"10,0", "0,200"},
        {"0,60000", "5000,0"},      {"99999,1", "200,5000"}, {"300,4000", "4000,300"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *got = negotiate(b, "1.2", rows[i].client);
        cr_assert_str_eq(got, rows[i].want,
                         "client heart-beat:%s: CONNECTED heart-beat:%s, want %s", rows[i].client,
                         got, rows[i].want);
    }
    /* 1.1 negotiates the same way; no heart-beat header means 0,0. */
    cr_assert_str_eq(negotiate(b, "1.1", "0,500"), "500,0");
    cr_assert_str_eq(negotiate(b, "1.2", NULL), "0,0");
    h_broker_stop_ok(b);
}

Test(heartbeats, default_clamps)
{
    /* Defaults: --heartbeat-min 100 ms, --heartbeat-max 60 s. */
    struct h_broker *b = H_START0();
    cr_assert_str_eq(negotiate(b, "1.2", "0,10"), "100,0");
    cr_assert_str_eq(negotiate(b, "1.2", "120000,0"), "0,60000");
    cr_assert_str_eq(negotiate(b, "1.2", "0,250"), "250,0");
    h_broker_stop_ok(b);
}

Test(heartbeats, server_sends_eols_on_interval)
{
    struct h_broker *b = H_START0();
    struct h_conn *c = h_dial(b);
    struct h_frame *f = h_stomp_connect(c, "1.2", NULL, NULL, "0,300", false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "got %s", h_show(f));
    cr_assert_str_eq(h_hdr(f, "heart-beat"), "300,0");
    uint64_t t0 = h_now_ms(), start_eols = c->eols;
    /* Nothing but EOLs for 1.65 s (h_read returns NULL at the deadline). */
    struct h_frame *g = h_read(c, 1650);
    cr_assert(g == NULL && c->closed == 0, "expected only heart-beats, got %s",
              g ? h_show(g) : "close");
    uint64_t n = c->eols - start_eols;
    cr_assert(n >= 4 && n <= 8, "%llu EOLs in %llu ms at a 300 ms interval, want ~5",
              (unsigned long long)n, (unsigned long long)(h_now_ms() - t0));
    /* Gaps between the EOLs stay near the interval. */
    for (uint64_t i = c->eols - n + 1; i < c->eols; i++) {
        uint64_t gap = c->eol_times[i % 64] - c->eol_times[(i - 1) % 64];
        cr_assert(gap <= 600, "gap of %llu ms between heart-beats at a 300 ms interval",
                  (unsigned long long)gap);
    }
    h_broker_stop_ok(b);
}

Test(heartbeats, no_eols_when_not_asked)
{
    struct h_broker *b = H_START0();
    struct h_conn *c = h_dial(b);
    struct h_frame *f = h_stomp_connect(c, "1.2", NULL, NULL, "0,0", false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "got %s", h_show(f));
    uint64_t e0 = c->eols;
    h_expect_silence(c, 700);
    cr_assert_eq(c->eols, e0, "server sent %llu heart-beats nobody asked for",
                 (unsigned long long)(c->eols - e0));
    h_broker_stop_ok(b);
}

Test(heartbeats, silent_client_closed_after_twice_interval)
{
    struct h_broker *b = H_START0();
    struct h_conn *c = h_dial(b);
    struct h_frame *f = h_stomp_connect(c, "1.2", NULL, NULL, "300,0", false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "got %s", h_show(f));
    cr_assert_str_eq(h_hdr(f, "heart-beat"), "0,300");
    uint64_t t0 = h_now_ms();
    struct h_frame *got = NULL;
    bool closed = h_wait_closed(c, 3000, &got);
    if (!closed && got != NULL) { /* an ERROR before the close is fine */
        cr_assert_str_eq(got->cmd, "ERROR", "silent client got %s", h_show(got));
        closed = h_wait_closed(c, 2000, &got);
    }
    uint64_t dt = h_now_ms() - t0;
    cr_assert(closed, "silent client still open after 3 s (promised a 300 ms heart-beat)");
    cr_assert(dt >= 450 && dt <= 1500, "silent client closed after %llu ms, want ~600",
              (unsigned long long)dt);
    h_broker_stop_ok(b);
}

Test(heartbeats, beating_client_stays)
{
    struct h_broker *b = H_START0();
    struct h_conn *c = h_dial(b);
    struct h_frame *f = h_stomp_connect(c, "1.2", NULL, NULL, "200,0", false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "got %s", h_show(f));
    for (int i = 0; i < 8; i++) { /* 1.2 s, one EOL each 150 ms */
        h_sleep_ms(150);
        h_send(c, i % 2 ? "\n" : "\r\n", i % 2 ? 1 : 2);
    }
    cr_assert(h_read(c, 0) == NULL && c->closed == 0, "beating client was closed");
    /* Frames count as traffic too. */
    const char *q = h_dest("queue", "hb");
    for (int i = 0; i < 4; i++) {
        h_sleep_ms(150);
        h_publish(c, q, "x", true);
    }
    h_subscribe(c, q, "s", NULL, NULL);
    for (int i = 0; i < 4; i++)
        h_expect_msg(c, "x");
    h_broker_stop_ok(b);
}

Test(heartbeats, both_directions)
{
    struct h_broker *b = H_START0();
    struct h_conn *c = h_dial(b);
    struct h_frame *f = h_stomp_connect(c, "1.1", NULL, NULL, "250,250", false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "got %s", h_show(f));
    cr_assert_str_eq(h_hdr(f, "heart-beat"), "250,250");
    uint64_t e0 = c->eols;
    for (int i = 0; i < 8; i++) { /* we beat every 150 ms for 1.2 s */
        struct h_frame *g = h_read(c, 150);
        cr_assert(g == NULL && c->closed == 0, "got %s", g ? h_show(g) : "close");
        h_send(c, "\n", 1);
    }
    cr_assert(c->eols - e0 >= 3, "only %llu server heart-beats in 1.2 s at 250 ms",
              (unsigned long long)(c->eols - e0));
    /* Then we stop: closed after about 500 ms. */
    uint64_t t0 = h_now_ms();
    struct h_frame *got = NULL;
    bool closed = h_wait_closed(c, 3000, &got);
    if (!closed && got != NULL) {
        cr_assert_str_eq(got->cmd, "ERROR", "got %s", h_show(got));
        closed = h_wait_closed(c, 2000, &got);
    }
    cr_assert(closed, "silent client still open after 3 s");
    uint64_t dt = h_now_ms() - t0;
    cr_assert(dt >= 300 && dt <= 1400, "closed after %llu ms, want ~500", (unsigned long long)dt);
    h_broker_stop_ok(b);
}
