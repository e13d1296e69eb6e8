/*
 * 13_tls_robust.c - bad input on TLS and plain ports: garbage, a truncated
 * ClientHello and a stalled handshake on a stomp+ssl:// port do not disturb the
 * other TLS and plain connections (round trips on them meanwhile); a stalled
 * handshake, and a completed one that never sends CONNECT, are closed at the
 * --login-timeout; plaintext STOMP on a TLS port and a ClientHello on a plain
 * port are closed without an answer and logged.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(tls_robust, .init = h_init, .fini = h_fini, .timeout = 40);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

struct env {
    struct h_broker *b;
    int tport;
    struct h_conn *tls, *plain; /* CONNECTED bystanders */
};

static struct env start(const char *const *extra)
{
    struct env e;
    e.b = h_tls_broker("stomp+ssl://127.0.0.1:0", "srv_ec", 2, extra);
    e.tport = h_broker_port_of(e.b, "stomp+ssl://");
    e.tls = h_tls_client(e.tport, "1.2");
    e.plain = h_client(e.b, "1.2");
    return e;
}

/* Messages cross between the bystanders both ways, and a new TLS client and a
 * new plain client can connect. */
static void bystanders_fine(struct env *e, const char *tag)
{
    const char *d1 = h_dest("topic", tag), *d2 = h_dest("topic", tag);
    h_subscribe(e->tls, d1, h_fmt("%s-t", tag), NULL, "");
    h_subscribe(e->plain, d2, h_fmt("%s-p", tag), NULL, "");
    h_publish(e->plain, d1, "plain to tls", true);
    h_publish(e->tls, d2, "tls to plain", true);
    h_expect_msg(e->tls, "plain to tls");
    h_expect_msg(e->plain, "tls to plain");
    h_unsubscribe(e->tls, h_fmt("%s-t", tag));
    h_unsubscribe(e->plain, h_fmt("%s-p", tag));
    h_disconnect(h_tls_client(e->tport, "1.2"));
    h_disconnect(h_client(e->b, "1.2"));
}

/* The broker logs `needle` within 2 s. */
static void expect_log(struct h_broker *b, const char *needle)
{
    uint64_t deadline = h_now_ms() + 2000;
    while (strstr(h_broker_log(b), needle) == NULL && h_now_ms() < deadline)
        h_sleep_ms(20);
    cr_assert(strstr(h_broker_log(b), needle) != NULL, "broker log lacks '%s':\n%s", needle,
              h_broker_log(b));
}

/* The broker closes c within ms without sending it a single byte. */
static void closed_silently(struct h_conn *c, int ms, const char *what)
{
    uint64_t deadline = h_now_ms() + (uint64_t)ms;
    char buf[4096];
    size_t got = 0;
    for (;;) {
        uint64_t now = h_now_ms();
        cr_assert(now < deadline, "%s: not closed within %d ms", what, ms);
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(c->fd, &rd);
        struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
        if (select(c->fd + 1, &rd, NULL, NULL, &tv) <= 0)
            continue;
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        break; /* EOF or reset */
    }
    cr_assert_eq(got, 0, "%s: the broker sent %zu bytes before closing", what, got);
}

Test(tls_robust, garbage_on_tls_port)
{
    struct env e = start(NULL);
    /* Not a TLS record at all. */
    struct h_conn *g = h_dial_port(e.tport, 0);
    char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(0xff - (i * 7 % 251));
    h_send_raw(g, junk, sizeof junk);
    closed_silently(g, 3000, "garbage");
    expect_log(e.b, "not a TLS handshake");
    /* A handshake record header followed by garbage. */
    struct h_conn *g2 = h_dial_port(e.tport, 0);
    char rec[5 + 300] = {0x16, 0x03, 0x03, 0x01, 0x2c};
    for (size_t i = 5; i < sizeof rec; i++)
        rec[i] = (char)(i * 13);
    h_send_raw(g2, rec, sizeof rec);
    cr_assert(h_wait_closed(g2, 3000, NULL), "handshake record with garbage: not closed");
    expect_log(e.b, "TLS handshake failed");
    bystanders_fine(&e, "after-garbage");
    h_broker_stop_ok(e.b);
}

Test(tls_robust, truncated_client_hello_then_close)
{
    struct env e = start(NULL);
    char hello[4096];
    size_t n = h_tls_client_hello(hello, sizeof hello);
    cr_assert_gt(n, 40);
    for (int i = 0; i < 3; i++) {
        struct h_conn *t = h_dial_port(e.tport, 0);
        h_send(t, hello, i == 0 ? 3 : i == 1 ? n / 2 : n - 1);
        h_sleep_ms(50);
        if (i == 2)
            h_reset(t);
        else
            h_close(t);
    }
    h_sleep_ms(100);
    cr_assert(h_broker_alive(e.b), "broker died:\n%s", h_broker_log(e.b));
    bystanders_fine(&e, "after-truncated");
    h_broker_stop_ok(e.b);
}

Test(tls_robust, stalled_handshake_does_not_block_and_times_out)
{
    struct env e = start(ARGS("--login-timeout", "500"));
    char hello[4096];
    size_t n = h_tls_client_hello(hello, sizeof hello);
    struct h_conn *stalled[4];
    uint64_t t0 = h_now_ms();
    for (int i = 0; i < 4; i++) {
        stalled[i] = h_dial_port(e.tport, 0);
        h_send(stalled[i], hello, n / 2);
    }
    /* While they stall, round trips work (the bystanders are CONNECTED, so the
     * login timeout does not apply to them). */
    bystanders_fine(&e, "during-stall");
    /* The login timeout (500 ms) closes an unfinished handshake without
     * trying to send a STOMP ERROR through it; 1.5 s leaves room for a
     * loaded machine. */
    for (int i = 0; i < 4; i++) {
        uint64_t left = t0 + 1500 > h_now_ms() ? t0 + 1500 - h_now_ms() : 1;
        cr_assert(h_wait_closed(stalled[i], (int)left, NULL),
                  "stalled handshake %d not closed within 1.5 s (login timeout 500 ms)", i);
    }
    uint64_t took = h_now_ms() - t0;
    cr_assert_geq(took, 400, "stalled handshakes closed after %llu ms, before the 500 ms timeout",
                  (unsigned long long)took);
    /* A completed handshake without CONNECT gets the login-timeout ERROR (it
     * can carry one now) and is closed. */
    struct h_conn *idle = h_tls_dial(e.tport, NULL, NULL);
    cr_assert_not_null(idle);
    uint64_t t1 = h_now_ms();
    h_expect_error(idle, NULL);
    cr_assert_geq(h_now_ms() - t1, 300, "closed after %llu ms, before the login timeout",
                  (unsigned long long)(h_now_ms() - t1));
    bystanders_fine(&e, "after-stall");
    h_broker_stop_ok(e.b);
}

Test(tls_robust, plaintext_stomp_on_tls_port)
{
    struct env e = start(NULL);
    struct h_conn *c = h_dial_port(e.tport, 0);
    h_sendz(c, "CONNECT\naccept-version:1.2\nhost:/\n\n");
    closed_silently(c, 3000, "plaintext CONNECT on the TLS port");
    expect_log(e.b, "not a TLS handshake on a TLS port");
    bystanders_fine(&e, "after-plaintext");
    h_broker_stop_ok(e.b);
}

Test(tls_robust, client_hello_on_plain_port)
{
    struct env e = start(NULL);
    char hello[4096];
    size_t n = h_tls_client_hello(hello, sizeof hello);
    struct h_conn *c = h_dial(e.b);
    h_send(c, hello, n);
    closed_silently(c, 3000, "ClientHello on the plain port");
    expect_log(e.b, "TLS handshake on a plain port");
    /* Just the first bytes of one (a client that writes in pieces). */
    struct h_conn *c2 = h_dial(e.b);
    h_send(c2, hello, 6);
    closed_silently(c2, 3000, "6 bytes of a ClientHello on the plain port");
    /* s_client on the plain port fails instead of hanging. */
    char *out = NULL;
    int rc =
        h_sh(h_fmt("timeout 8 openssl s_client -connect 127.0.0.1:%d -brief </dev/null", e.b->port),
             10000, &out);
    cr_assert(rc != 0 && rc != 124 && rc != -2, "s_client on the plain port: rc %d\n%s", rc, out);
    bystanders_fine(&e, "after-hello-on-plain");
    h_broker_stop_ok(e.b);
}
