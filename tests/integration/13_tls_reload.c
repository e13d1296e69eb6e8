/*
 * 13_tls_reload.c - SIGHUP reloads the TLS certificate and key: after the
 * files are replaced and the broker gets SIGHUP, new handshakes see the new
 * certificate (its subject through the project's engine, its SHA-256
 * fingerprint through `openssl s_client`) while a connection opened before
 * keeps working; a broken pair is refused with a log line and the previous
 * certificate stays in use.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(tls_reload, .init = h_init, .fini = h_fini, .timeout = 40);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Copy src over dst through a rename, so the broker never reads half a file. */
static void replace(const char *src, const char *dst)
{
    char *out = NULL;
    int rc = h_sh(h_fmt("cp '%s' '%s.tmp' && mv '%s.tmp' '%s'", src, dst, dst, dst), 5000, &out);
    cr_assert_eq(rc, 0, "replacing %s: %s", dst, out);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* SIGHUP, then wait for the n-th log line containing `needle`. */
static void sighup_and_wait(struct h_broker *b, const char *needle)
{
    int before = count(h_broker_log(b), needle);
    cr_assert_eq(kill(b->pid, SIGHUP), 0);
    uint64_t deadline = h_now_ms() + 3000;
    while (count(h_broker_log(b), needle) == before && h_now_ms() < deadline)
        h_sleep_ms(20);
    cr_assert_gt(count(h_broker_log(b), needle), before, "no '%s' line after SIGHUP:\n%s", needle,
                 h_broker_log(b));
    cr_assert(h_broker_alive(b), "broker died on SIGHUP:\n%s", h_broker_log(b));
}

/* Subject of the certificate a fresh handshake sees. */
static const char *subject_now(int port)
{
    struct h_tls_result res;
    struct h_conn *c = h_tls_dial(port, NULL, &res);
    cr_assert(c != NULL, "handshake failed: %s", res.err);
    h_close(c);
    return h_fmt("%s", res.subject);
}

/* SHA-256 fingerprint line of a certificate, from a file or from s_client. */
static const char *fingerprint_file(const char *crt)
{
    char *out = NULL;
    int rc = h_sh(h_fmt("openssl x509 -in '%s' -noout -fingerprint -sha256", crt), 5000, &out);
    cr_assert(rc == 0 && strstr(out, "Fingerprint=") != NULL, "x509: %s", out);
    return out;
}

static const char *fingerprint_served(int port)
{
    char *out = NULL;
    int rc = h_sh(h_fmt("timeout 8 openssl s_client -connect 127.0.0.1:%d </dev/null 2>/dev/null"
                        " | openssl x509 -noout -fingerprint -sha256",
                        port),
                  10000, &out);
    cr_assert(rc == 0 && strstr(out, "Fingerprint=") != NULL, "s_client | x509: %s", out);
    return out;
}

/* A round trip on an open connection: it subscribes, publishes to itself. */
static void self_roundtrip(struct h_conn *c, const char *tag)
{
    const char *dest = h_dest("topic", tag);
    h_subscribe(c, dest, tag, NULL, "");
    h_publish(c, dest, tag, true);
    h_expect_msg(c, tag);
    h_unsubscribe(c, tag);
}

Test(tls_reload, sighup_new_pair_then_broken_pair)
{
    const char *crt = h_fmt("%s.live-%d.crt", h_tls_path("srv"), (int)getpid());
    const char *key = h_fmt("%s.live-%d.key", h_tls_path("srv"), (int)getpid());
    replace(h_tls_path("srv_ec.crt"), crt);
    replace(h_tls_path("srv_ec.key"), key);
    struct h_broker *b =
        H_START_W(2, "--listen", "stomp+ssl://127.0.0.1:0", "--tls-cert", crt, "--tls-key", key);
    int port = h_broker_port_of(b, "stomp+ssl://");
    cr_assert_str_eq(subject_now(port), "CN=stampede-ec");

    /* Connections opened with certificate A: TLS and plain. */
    struct h_conn *old = h_tls_client(port, "1.2");
    struct h_conn *plain = h_client(b, "1.2");
    self_roundtrip(old, "before-reload");

    replace(h_tls_path("srv_b.crt"), crt);
    replace(h_tls_path("srv_b.key"), key);
    sighup_and_wait(b, "SIGHUP: reloaded");
    /* Both workers' listeners: several handshakes, all see B. */
    for (int i = 0; i < 4; i++)
        cr_assert_str_eq(subject_now(port), "CN=stampede-b", "handshake %d after reload", i);
    cr_assert_str_eq(fingerprint_served(port), fingerprint_file(h_tls_path("srv_b.crt")));
    /* The connection from before the reload still works, both ways. */
    self_roundtrip(old, "after-reload");
    const char *dest = h_dest("topic", "old-to-plain");
    h_subscribe(plain, dest, "p", NULL, "");
    h_publish(old, dest, "from the old TLS connection", true);
    h_expect_msg(plain, "from the old TLS connection");

    /* A broken pair: certificate A with key B. */
    replace(h_tls_path("srv_ec.crt"), crt);
    sighup_and_wait(b, "SIGHUP: keeping the old certificate");
    for (int i = 0; i < 4; i++)
        cr_assert_str_eq(subject_now(port), "CN=stampede-b", "handshake %d after a broken pair", i);
    /* A file that is not PEM at all. */
    h_sh(h_fmt("echo garbage > '%s'", crt), 5000, NULL);
    sighup_and_wait(b, "SIGHUP: keeping the old certificate");
    cr_assert_eq(count(h_broker_log(b), "SIGHUP: keeping the old certificate"), 2);
    cr_assert_str_eq(subject_now(port), "CN=stampede-b");
    cr_assert_str_eq(fingerprint_served(port), fingerprint_file(h_tls_path("srv_b.crt")));
    self_roundtrip(old, "after-broken");

    /* And a good pair again is taken. */
    replace(h_tls_path("srv_ec.crt"), crt);
    replace(h_tls_path("srv_ec.key"), key);
    sighup_and_wait(b, "SIGHUP: reloaded");
    cr_assert_str_eq(subject_now(port), "CN=stampede-ec");
    self_roundtrip(old, "after-second-reload");
    h_disconnect(old);
    h_broker_stop_ok(b);
    remove(crt);
    remove(key);
}

/* A reload brings fresh session-ticket keys: a ticket from before is not
 * resumed, one issued after is. */
Test(tls_reload, sighup_retires_session_tickets)
{
    struct h_broker *b = h_tls_broker("stomp+ssl://127.0.0.1:0", "srv_ec", 1, NULL);
    int port = h_broker_port_of(b, "stomp+ssl://");
    const char *sess = h_tls_path(h_fmt("sess-reload-%d", (int)getpid()));
    const char *get = h_fmt("timeout 8 openssl s_client -connect 127.0.0.1:%d -sess_out '%s' "
                            "</dev/null",
                            port, sess);
    const char *use = h_fmt("timeout 8 openssl s_client -connect 127.0.0.1:%d -sess_in '%s' "
                            "</dev/null",
                            port, sess);
    char *out = NULL;
    cr_assert_eq(h_sh(get, 10000, &out), 0, "%s", out);
    cr_assert_eq(h_sh(use, 10000, &out), 0, "%s", out);
    cr_assert(strstr(out, "Reused, TLSv1.2") != NULL, "not resumed before the reload:\n%s", out);
    sighup_and_wait(b, "SIGHUP: reloaded");
    cr_assert_eq(h_sh(use, 10000, &out), 0, "%s", out);
    cr_assert(strstr(out, "New, TLSv1.2") != NULL, "old ticket resumed after the reload:\n%s", out);
    cr_assert_eq(h_sh(get, 10000, &out), 0, "%s", out);
    cr_assert_eq(h_sh(use, 10000, &out), 0, "%s", out);
    cr_assert(strstr(out, "Reused, TLSv1.2") != NULL, "new ticket not resumed:\n%s", out);
    h_broker_stop_ok(b);
}

/* SIGHUP with no TLS listener is harmless. */
Test(tls_reload, sighup_without_tls_listener)
{
    struct h_broker *b = H_START0();
    struct h_conn *c = h_client(b, "1.2");
    cr_assert_eq(kill(b->pid, SIGHUP), 0);
    h_sleep_ms(200);
    cr_assert(h_broker_alive(b), "broker died on SIGHUP:\n%s", h_broker_log(b));
    self_roundtrip(c, "plain-after-sighup");
    h_broker_stop_ok(b);
}
