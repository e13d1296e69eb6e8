/*
 * 13_tls_handshake.c - stomp+ssl:// listeners: handshakes with RSA, ECDSA and
 * passphrase-protected keys, STOMP through TLS (the project's engine as client
 * and `openssl s_client`), what the broker refuses (TLS 1.0/1.1, non-AEAD
 * suites, suites outside --tls-ciphers), and a TLS listener without a usable
 * certificate and key failing at start with exit 2.
 *
 * Refusals are asserted on the server's side: openssl must report an alert it
 * received from the broker (and the broker must log the failed handshake), so
 * a client that refuses to offer an old protocol by itself cannot pass.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void fini(void)
{
    h_fini();
}

TestSuite(tls_handshake, .init = h_init, .fini = fini, .timeout = 40);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The CONNECT frame in a file, to pipe into s_client. */
static const char *connect_file(void)
{
    /* In the certificate directory: removed with it when the run ends. */
    const char *path = h_tls_path(h_fmt("connect-%d", (int)getpid()));
    FILE *f = fopen(path, "wb");
    cr_assert(f != NULL);
    static const char frame[] = "CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\n"
                                "passcode:guest\n\n";
    fwrite(frame, 1, sizeof frame, f); /* with the NUL */
    fclose(f);
    return path;
}

/* `openssl s_client` with `opts` against port, sending `input_file` (or
 * nothing); output (stdout+stderr) in *out, exit code returned. */
static int s_client(int port, const char *opts, const char *input_file, char **out)
{
    const char *cmd;
    if (input_file)
        cmd = h_fmt("(cat '%s'; sleep 0.8) | timeout 8 openssl s_client -connect 127.0.0.1:%d "
                    "-brief -no_ign_eof %s",
                    input_file, port, opts);
    else
        cmd = h_fmt("timeout 8 openssl s_client -connect 127.0.0.1:%d -brief %s </dev/null", port,
                    opts);
    int rc = h_sh(cmd, 10000, out);
    cr_assert(rc != -2 && rc != 124, "s_client %s timed out:\n%s", opts, *out);
    return rc;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* A topic round trip: sub subscribes, pub publishes, sub gets it. */
static void roundtrip(struct h_conn *sub, struct h_conn *pub, const char *tag)
{
    const char *dest = h_dest("topic", tag);
    h_subscribe(sub, dest, "s1", NULL, "");
    const char *body = h_fmt("hello over %s", tag);
    h_publish(pub, dest, body, true);
    h_expect_msg(sub, body);
    h_unsubscribe(sub, "s1");
}

Test(tls_handshake, ecdsa_verified_chain_and_pubsub)
{
    struct h_broker *b = h_tls_broker("stomp+ssl://127.0.0.1:0", "srv_ec", 2, NULL);
    int tport = h_broker_port_of(b, "stomp+ssl://");
    cr_assert_neq(tport, b->port, "TLS and plain listeners share a port");
    struct h_tls_opts o = {.ca = h_tls_path("ca1.crt"), .server_name = "localhost"};
    struct h_tls_result res;
    struct h_conn *t = h_tls_dial(tport, &o, &res);
    cr_assert(t != NULL, "handshake verifying CA 1 and 'localhost' failed: %s", res.err);
    cr_assert_str_eq(res.subject, "CN=stampede-ec");
    cr_assert(strstr(res.suite, "ECDHE-ECDSA") != NULL &&
                  (strstr(res.suite, "GCM") != NULL || strstr(res.suite, "CHACHA20") != NULL),
              "suite %s is not ECDHE-ECDSA with an AEAD", res.suite);
    struct h_frame *f = h_stomp_connect(t, "1.2", "guest", "guest", NULL, false);
    cr_assert(f != NULL && strcmp(f->cmd, "CONNECTED") == 0, "CONNECT got %s", h_show(f));
    t->version = 12;
    struct h_conn *p = h_client(b, "1.2");
    roundtrip(t, p, "tls-sub");  /* plain -> TLS */
    roundtrip(p, t, "tls-pub");  /* TLS -> plain */
    roundtrip(t, t, "tls-self"); /* TLS -> TLS */
    h_disconnect(t);
    h_broker_stop_ok(b);
}

Test(tls_handshake, rsa_certificate)
{
    struct h_broker *b = h_tls_broker("stomp+ssl://127.0.0.1:0", "srv_rsa", 1, NULL);
    int tport = h_broker_port_of(b, "stomp+ssl://");
    struct h_tls_opts o = {.ca = h_tls_path("ca1.crt"), .server_name = "localhost"};
    struct h_tls_result res;
    struct h_conn *t = h_tls_dial(tport, &o, &res);
    cr_assert(t != NULL, "handshake failed: %s", res.err);
    cr_assert_str_eq(res.subject, "CN=stampede-rsa");
    cr_assert(strstr(res.suite, "ECDHE-RSA") != NULL, "suite %s", res.suite);
    struct h_frame *f = h_stomp_connect(t, "1.2", NULL, NULL, NULL, false);
    cr_assert(f != NULL && strcmp(f->cmd, "CONNECTED") == 0, "CONNECT got %s", h_show(f));
    h_broker_stop_ok(b);
}

Test(tls_handshake, encrypted_key_with_password_file)
{
    struct h_broker *b = H_START_W(
        1, "--listen", "stomp+ssl://127.0.0.1:0", "--tls-cert", h_tls_path("srv_ec.crt"),
        "--tls-key", h_tls_path("srv_ec_enc.key"), "--tls-key-password-file", h_tls_path("pw.txt"));
    struct h_tls_result res;
    struct h_conn *t = h_tls_dial(h_broker_port_of(b, "stomp+ssl://"), NULL, &res);
    cr_assert(t != NULL, "handshake failed: %s", res.err);
    cr_assert_str_eq(res.subject, "CN=stampede-ec");
    h_broker_stop_ok(b);
}

Test(tls_handshake, s_client_tls12_stomp_roundtrip)
{
    struct h_broker *b = h_tls_broker("stomp+ssl://127.0.0.1:0", "srv_rsa", 1, NULL);
    int tport = h_broker_port_of(b, "stomp+ssl://");
    char *out = NULL;
    int rc = s_client(tport, "-tls1_2", connect_file(), &out);
    cr_assert_eq(rc, 0, "s_client -tls1_2 exited %d:\n%s", rc, out);
    cr_assert(strstr(out, "Protocol version: TLSv1.2") != NULL, "not TLS 1.2:\n%s", out);
    cr_assert(strstr(out, "Ciphersuite: ECDHE-RSA-") != NULL &&
                  (strstr(out, "GCM") != NULL || strstr(out, "CHACHA20") != NULL),
              "not an ECDHE AEAD suite:\n%s", out);
    cr_assert(strstr(out, "CONNECTED\n") != NULL && strstr(out, "version:1.2") != NULL,
              "no CONNECTED frame came back through s_client:\n%s", out);
    /* Without -tls1_2 OpenSSL 3 offers 1.3 first and must fall back to 1.2. */
    rc = s_client(tport, "", connect_file(), &out);
    cr_assert_eq(rc, 0, "s_client (default versions) exited %d:\n%s", rc, out);
    cr_assert(strstr(out, "Protocol version: TLSv1.2") != NULL, "not TLS 1.2:\n%s", out);
    cr_assert(strstr(out, "CONNECTED\n") != NULL, "no CONNECTED:\n%s", out);
    h_broker_stop_ok(b);
}

/* s_client with `opts` fails because the broker sent `alert` (text OpenSSL
 * prints for a received alert) and the broker logged a failed handshake. */
static void refused(struct h_broker *b, int tport, const char *opts, const char *alert)
{
    size_t before = count(h_broker_log(b), "TLS handshake failed");
    char *out = NULL;
    int rc = s_client(tport, opts, NULL, &out);
    cr_assert_neq(rc, 0, "s_client %s was not refused:\n%s", opts, out);
    cr_assert(strstr(out, alert) != NULL, "s_client %s: no '%s' alert from the broker:\n%s", opts,
              alert, out);
    cr_assert(strstr(out, "Cipher is (NONE)") != NULL || strstr(out, "Ciphersuite") == NULL,
              "s_client %s negotiated something:\n%s", opts, out);
    uint64_t deadline = h_now_ms() + 2000;
    while (count(h_broker_log(b), "TLS handshake failed") == before && h_now_ms() < deadline)
        h_sleep_ms(20);
    cr_assert_gt(count(h_broker_log(b), "TLS handshake failed"), before,
                 "broker did not log the refused handshake (%s):\n%s", opts, h_broker_log(b));
}

Test(tls_handshake, s_client_old_protocols_refused)
{
    struct h_broker *b = h_tls_broker("stomp+ssl://127.0.0.1:0", "srv_rsa", 1, NULL);
    int tport = h_broker_port_of(b, "stomp+ssl://");
    /* @SECLEVEL=0 lets OpenSSL 3 offer 1.0/1.1 at all: the refusal must be
     * the broker's protocol_version alert. */
    refused(b, tport, "-tls1 -cipher DEFAULT@SECLEVEL=0", "alert protocol version");
    refused(b, tport, "-tls1_1 -cipher DEFAULT@SECLEVEL=0", "alert protocol version");
    /* ... and TLS 1.2 on the same listener still works. */
    struct h_conn *t = h_tls_client(tport, "1.2");
    roundtrip(t, t, "after-refusals");
}

Test(tls_handshake, s_client_non_aead_suites_refused)
{
    struct h_broker *b = h_tls_broker("stomp+ssl://127.0.0.1:0", "srv_rsa", 1, NULL);
    int tport = h_broker_port_of(b, "stomp+ssl://");
    refused(b, tport, "-tls1_2 -cipher ECDHE-RSA-AES128-SHA256@SECLEVEL=0",
            "alert handshake failure");
    refused(b, tport, "-tls1_2 -cipher ECDHE-RSA-AES128-SHA@SECLEVEL=0", "alert handshake failure");
    refused(b, tport, "-tls1_2 -cipher AES128-GCM-SHA256@SECLEVEL=0", "alert handshake failure");
    /* The same client with an ECDHE AEAD suite is accepted. */
    char *out = NULL;
    int rc = s_client(tport, "-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256", connect_file(), &out);
    cr_assert_eq(rc, 0, "ECDHE-RSA-AES128-GCM-SHA256 exited %d:\n%s", rc, out);
    cr_assert(strstr(out, "Ciphersuite: ECDHE-RSA-AES128-GCM-SHA256") != NULL, "%s", out);
    cr_assert(strstr(out, "CONNECTED\n") != NULL, "no CONNECTED:\n%s", out);
}

Test(tls_handshake, tls_ciphers_narrows_the_suites)
{
    struct h_broker *b = h_tls_broker("stomp+ssl://127.0.0.1:0", "srv_ec", 1,
                                      ARGS("--tls-ciphers", "ECDHE-ECDSA-CHACHA20-POLY1305"));
    int tport = h_broker_port_of(b, "stomp+ssl://");
    struct h_tls_result res;
    struct h_conn *t = h_tls_dial(tport, NULL, &res);
    cr_assert(t != NULL, "handshake failed: %s", res.err);
    cr_assert(strstr(res.suite, "CHACHA20") != NULL, "negotiated %s, want ChaCha20", res.suite);
    refused(b, tport, "-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256", "alert handshake failure");
}

/* --- start-up failures --- */

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(tls_handshake, listener_without_cert_is_one_line_exit_2)
{
    const char *const *cases[] = {
        ARGS("--listen", "stomp+ssl://127.0.0.1:0"),
        ARGS("--listen", "stomp+ssl://127.0.0.1:0", "--tls-key", h_tls_path("srv_ec.key")),
        ARGS("--listen", "wss://127.0.0.1:0/stomp", "--tls-cert", h_tls_path("srv_ec.crt")),
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL, *err = NULL;
        int rc = h_run(cases[i], NULL, 5000, &out, &err);
        cr_assert_eq(rc, 2, "case %zu: exit %d, want 2; stderr:\n%s", i, rc, err);
        cr_assert(count_lines(err) == 1, "case %zu: want one line on stderr, got:\n%s", i, err);
        cr_assert(strstr(err, "--tls-cert") != NULL && strstr(err, "--tls-key") != NULL,
                  "case %zu: the line does not name --tls-cert/--tls-key: %s", i, err);
        cr_assert(strstr(err, "listening on") == NULL, "case %zu: it listened:\n%s", i, err);
    }
}

/* Exit 2 within 5 s with a stderr line containing `what`, never listening. */
static void start_fails(const char *const *args, const char *what)
{
    char *out = NULL, *err = NULL;
    int rc = h_run(args, NULL, 5000, &out, &err);
    cr_assert_eq(rc, 2, "exit %d, want 2; stderr:\n%s", rc, err);
    cr_assert(strstr(err, what) != NULL, "stderr does not say '%s':\n%s", what, err);
    cr_assert(strstr(err, "listening on") == NULL, "it listened:\n%s", err);
}

Test(tls_handshake, unusable_key_is_exit_2)
{
    /* A key that is not the certificate's. */
    start_fails(ARGS("--listen", "stomp+ssl://127.0.0.1:0", "--tls-cert", h_tls_path("srv_ec.crt"),
                     "--tls-key", h_tls_path("srv_b.key")),
                "does not match");
    /* An encrypted key without its passphrase. */
    start_fails(ARGS("--listen", "stomp+ssl://127.0.0.1:0", "--tls-cert", h_tls_path("srv_ec.crt"),
                     "--tls-key", h_tls_path("srv_ec_enc.key")),
                "srv_ec_enc.key");
    /* A missing key file. */
    start_fails(ARGS("--listen", "stomp+ssl://127.0.0.1:0", "--tls-cert", h_tls_path("srv_ec.crt"),
                     "--tls-key", h_tls_path("no-such.key")),
                "no-such.key");
    /* Client verification without a CA. */
    start_fails(ARGS("--listen", "stomp+ssl://127.0.0.1:0", "--tls-cert", h_tls_path("srv_ec.crt"),
                     "--tls-key", h_tls_path("srv_ec.key"), "--tls-verify-client", "required"),
                "--tls-ca");
}

/* SNI is accepted and a session ticket resumes the session (on either worker). */
Test(tls_handshake, s_client_sni_and_session_ticket_resumption)
{
    struct h_broker *b = h_tls_broker("stomp+ssl://127.0.0.1:0", "srv_ec", 2, NULL);
    int tport = h_broker_port_of(b, "stomp+ssl://");
    const char *sess = h_tls_path(h_fmt("sess-%d", (int)getpid()));
    char *out = NULL;
    int rc = h_sh(h_fmt("timeout 8 openssl s_client -connect 127.0.0.1:%d -servername "
                        "broker.example -sess_out '%s' </dev/null",
                        tport, sess),
                  10000, &out);
    cr_assert(rc == 0 && strstr(out, "New, TLSv1.2") != NULL, "first handshake: rc %d\n%s", rc,
              out);
    cr_assert(strstr(out, "TLS session ticket:") != NULL, "no session ticket issued:\n%s", out);
    for (int i = 0; i < 4; i++) {
        rc = h_sh(h_fmt("timeout 8 openssl s_client -connect 127.0.0.1:%d -servername "
                        "broker.example -sess_in '%s' </dev/null",
                        tport, sess),
                  10000, &out);
        cr_assert(rc == 0 && strstr(out, "Reused, TLSv1.2") != NULL,
                  "resumption %d: rc %d, not reused:\n%s", i, rc, out);
    }
    h_broker_stop_ok(b);
}
