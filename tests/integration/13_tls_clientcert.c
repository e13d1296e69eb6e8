/*
 * 13_tls_clientcert.c - client certificates: --tls-verify-client required with
 * --tls-ca refuses a client without a certificate and one whose certificate
 * comes from another CA, accepts one signed by the CA (the project's engine as
 * client and `openssl s_client`); optional accepts clients with and without
 * one; none does not ask.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

TestSuite(tls_clientcert, .init = h_init, .fini = h_fini, .timeout = 40);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static struct h_broker *start(const char *mode)
{
    return h_tls_broker("stomp+ssl://127.0.0.1:0", "srv_ec", 1,
                        ARGS("--tls-ca", h_tls_path("ca1.crt"), "--tls-verify-client", mode));
}

static struct h_tls_opts client(const char *name)
{
    struct h_tls_opts o = {0};
    if (name) {
        o.cert = h_tls_path(h_fmt("%s.crt", name));
        o.key = h_tls_path(h_fmt("%s.key", name));
    }
    return o;
}

/* The handshake completes and a CONNECT/CONNECTED round trip works. */
static void accepted(int port, const char *name)
{
    struct h_tls_opts o = client(name);
    struct h_tls_result res;
    struct h_conn *c = h_tls_dial(port, &o, &res);
    cr_assert(c != NULL, "client '%s' was refused: %s", name ? name : "(no certificate)", res.err);
    struct h_frame *f = h_stomp_connect(c, "1.2", NULL, NULL, NULL, false);
    cr_assert(f != NULL && strcmp(f->cmd, "CONNECTED") == 0,
              "client '%s': CONNECT after the handshake got %s", name ? name : "(none)", h_show(f));
    h_disconnect(c);
}

/* The handshake fails (the broker closes or alerts) and the broker logs it. */
static void refused(struct h_broker *b, int port, const char *name)
{
    struct h_tls_opts o = client(name);
    struct h_tls_result res;
    struct h_conn *c = h_tls_dial(port, &o, &res);
    cr_assert(c == NULL, "client '%s' was accepted (suite %s)", name ? name : "(no certificate)",
              res.suite);
    uint64_t deadline = h_now_ms() + 2000;
    while (strstr(h_broker_log(b), "TLS handshake failed") == NULL && h_now_ms() < deadline)
        h_sleep_ms(20);
    cr_assert(strstr(h_broker_log(b), "TLS handshake failed") != NULL,
              "broker did not log the refused client '%s':\n%s", name ? name : "(none)",
              h_broker_log(b));
}

Test(tls_clientcert, required_refuses_a_client_without_certificate)
{
    struct h_broker *b = start("required");
    refused(b, h_broker_port_of(b, "stomp+ssl://"), NULL);
    h_broker_stop_ok(b);
}

Test(tls_clientcert, required_accepts_a_certificate_from_the_ca)
{
    struct h_broker *b = start("required");
    accepted(h_broker_port_of(b, "stomp+ssl://"), "good");
    h_broker_stop_ok(b);
}

Test(tls_clientcert, required_refuses_a_certificate_from_another_ca)
{
    struct h_broker *b = start("required");
    int port = h_broker_port_of(b, "stomp+ssl://");
    refused(b, port, "other");
    /* The broker is still fine for a good client afterwards. */
    accepted(port, "good");
    h_broker_stop_ok(b);
}

Test(tls_clientcert, optional_accepts_with_and_without)
{
    struct h_broker *b = start("optional");
    int port = h_broker_port_of(b, "stomp+ssl://");
    accepted(port, NULL);
    accepted(port, "good");
    h_broker_stop_ok(b);
}

/* s_client: the same three cases with OpenSSL as the client. */
Test(tls_clientcert, required_with_s_client)
{
    struct h_broker *b = start("required");
    int port = h_broker_port_of(b, "stomp+ssl://");
    const char *conn = h_tls_path(h_fmt("connect-%d", (int)getpid()));
    FILE *f = fopen(conn, "wb");
    cr_assert(f != NULL);
    static const char frame[] = "CONNECT\naccept-version:1.2\nhost:/\n\n";
    fwrite(frame, 1, sizeof frame, f);
    fclose(f);
    const char *who[] = {"good", "other", NULL};
    for (int i = 0; i < 3; i++) {
        const char *certs = who[i] ? h_fmt("-cert %s -key %s", h_tls_path(h_fmt("%s.crt", who[i])),
                                           h_tls_path(h_fmt("%s.key", who[i])))
                                   : "";
        char *out = NULL;
        int rc = h_sh(h_fmt("(cat '%s'; sleep 0.8) | timeout 8 openssl s_client -connect "
                            "127.0.0.1:%d -brief -no_ign_eof %s",
                            conn, port, certs),
                      10000, &out);
        bool got = strstr(out, "CONNECTED\n") != NULL;
        if (i == 0)
            cr_assert(rc == 0 && got, "s_client with a good certificate: rc %d\n%s", rc, out);
        else
            cr_assert(!got, "s_client with %s got CONNECTED:\n%s",
                      who[i] ? "a certificate from another CA" : "no certificate", out);
    }
    remove(conn);
    h_broker_stop_ok(b);
}
