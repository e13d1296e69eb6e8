/*
 * The TLS engine against what can arrive on the wire: the handshake split at
 * every byte, plaintext and garbage on a TLS port, damaged and truncated
 * flights, and raw mbedTLS clients our configs never build (TLS 1.1, non-AEAD
 * suites, renegotiation, session resumption).
 */
#include "test_tls_util.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <stdint.h>

TestSuite(tls_wire, .init = setup, .fini = teardown, .timeout = 240);

/* Deliver everything pending from -> to, one byte per feed. */
static void pump_bytewise(struct stp_tls *from, struct stp_tls *to, size_t *moved)
{
    struct stp_buf b = STP_BUF_INIT;
    drain_out(from, &b);
    for (size_t i = 0; i < b.len; i++)
        cr_assert_eq(stp_tls_feed(to, b.data + i, 1), 0, "byte %zu of %zu", i, b.len);
    *moved = b.len;
    stp_buf_free(&b);
}

Test(tls_wire, one_byte_at_a_time)
{
    struct pair p;
    pair_open(&p, server_cfg("srv_rsa.crt", "srv_rsa.key", NULL, STP_TLS_VERIFY_NONE, NULL),
              client_cfg("ca1.crt", "localhost", NULL, NULL));
    cr_assert_eq(stp_tls_handshake(p.c), 0);
    for (int i = 0; i < 10 && (in_handshake(p.c) || in_handshake(p.s)); i++) {
        size_t a, b;
        pump_bytewise(p.c, p.s, &a);
        pump_bytewise(p.s, p.c, &b);
    }
    assert_open(&p);
    /* Application data byte by byte too, reading after every byte. */
    const char *msg = "MESSAGE\ndestination:/topic/x\n\nbody";
    write_str(p.s, msg);
    struct stp_buf wire = STP_BUF_INIT, got = STP_BUF_INIT;
    drain_out(p.s, &wire);
    for (size_t i = 0; i < wire.len; i++) {
        cr_assert_eq(stp_tls_feed(p.c, wire.data + i, 1), 0);
        cr_assert_eq(read_all(p.c, &got), 0);
        if (i + 1 < wire.len)
            cr_assert_eq(got.len, 0, "no plaintext before the record is complete");
    }
    cr_assert_eq(got.len, strlen(msg));
    cr_assert_eq(memcmp(got.data, msg, got.len), 0);
    stp_buf_free(&wire);
    stp_buf_free(&got);
    pair_close(&p);
}

/*
 * Run a handshake in which flight number `split` (0: ClientHello, 1: server's
 * first flight, 2: client's Finished flight, 3: server's Finished flight) is
 * delivered in two feeds cut at k. Returns that flight's length.
 */
static size_t split_handshake(struct pair *p, int split, size_t k)
{
    size_t flight_len = 0;
    struct stp_tls *from = p->c, *to = p->s;
    cr_assert_eq(stp_tls_handshake(p->c), 0);
    for (int f = 0; f < 4; f++) {
        struct stp_buf b = STP_BUF_INIT;
        drain_out(from, &b);
        cr_assert_gt(b.len, 0, "flight %d is empty", f);
        size_t cut = f == split && k < b.len ? k : b.len;
        if (f == split)
            flight_len = b.len;
        cr_assert_eq(stp_tls_feed(to, b.data, cut), 0, "flight %d cut at %zu", f, cut);
        if (cut < b.len) {
            cr_assert_eq(stp_tls_out_pending(to), 0, "no answer to a partial flight");
            cr_assert_eq(stp_tls_feed(to, b.data + cut, b.len - cut), 0);
        }
        stp_buf_free(&b);
        struct stp_tls *tmp = from;
        from = to;
        to = tmp;
    }
    return flight_len;
}

/*
 * Every cut of one flight. Its length varies by a byte or two between
 * handshakes (DER-encoded ECDSA signatures), so cuts run up to the longest
 * length seen, and every position below the shortest is a real split.
 */
static void every_split(int flight)
{
    struct stp_tls_config *scfg =
        server_cfg("srv_ec.crt", "srv_ec.key", NULL, STP_TLS_VERIFY_NONE, NULL);
    /* No CA: the certificate is still parsed, one signature check less per handshake. */
    struct stp_tls_config *ccfg = client_cfg(NULL, "localhost", NULL, NULL);
    size_t maxlen = 2, minlen = SIZE_MAX, cuts = 0;
    for (size_t k = 1; k < maxlen; k++) {
        struct pair p;
        pair_open(&p, stp_tls_config_ref(scfg), stp_tls_config_ref(ccfg));
        size_t len = split_handshake(&p, flight, k);
        assert_open(&p);
        expect_transfer(p.c, p.s, "after split");
        pair_close(&p);
        maxlen = len > maxlen ? len : maxlen;
        minlen = len < minlen ? len : minlen;
        cuts += k < len;
    }
    cr_assert_geq(cuts, minlen - 1, "every cut of the %zu..%zu-byte flight", minlen, maxlen);
    cr_log_info("flight %d: %zu..%zu bytes, %zu cuts", flight, minlen, maxlen, cuts);
    stp_tls_config_unref(&scfg);
    stp_tls_config_unref(&ccfg);
}

Test(tls_wire, every_split_of_client_hello)
{
    every_split(0);
}

Test(tls_wire, every_split_of_server_first_flight)
{
    every_split(1);
}

Test(tls_wire, every_split_of_client_finished_flight)
{
    every_split(2);
}

Test(tls_wire, every_split_of_server_finished_flight)
{
    every_split(3);
}

/*
 * A raw mbedTLS client, for clients our own config refuses to build (old
 * versions, non-AEAD suites) and for session resumption.
 */
struct raw {
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    struct stp_buf out;
    const unsigned char *src;
    size_t src_len;
    int suites[2];
};

static int raw_send(void *ctx, const unsigned char *p, size_t n)
{
    struct raw *r = ctx;
    stp_buf_append(&r->out, p, n);
    return (int)n;
}

static int raw_recv(void *ctx, unsigned char *p, size_t n)
{
    struct raw *r = ctx;
    if (r->src_len == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    n = n < r->src_len ? n : r->src_len;
    memcpy(p, r->src, n);
    r->src += n;
    r->src_len -= n;
    return (int)n;
}

static void raw_init(struct raw *r, int min_minor, int max_minor, int suite)
{
    memset(r, 0, sizeof(*r));
    mbedtls_entropy_init(&r->ent);
    mbedtls_ctr_drbg_init(&r->drbg);
    mbedtls_ssl_config_init(&r->conf);
    mbedtls_ssl_init(&r->ssl);
    cr_assert_eq(mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->ent, NULL, 0), 0);
    cr_assert_eq(mbedtls_ssl_config_defaults(&r->conf, MBEDTLS_SSL_IS_CLIENT,
                                             MBEDTLS_SSL_TRANSPORT_STREAM,
                                             MBEDTLS_SSL_PRESET_DEFAULT),
                 0);
    mbedtls_ssl_conf_rng(&r->conf, mbedtls_ctr_drbg_random, &r->drbg);
    mbedtls_ssl_conf_authmode(&r->conf, MBEDTLS_SSL_VERIFY_NONE);
    mbedtls_ssl_conf_min_version(&r->conf, 3, min_minor);
    mbedtls_ssl_conf_max_version(&r->conf, 3, max_minor);
    if (suite) {
        r->suites[0] = suite;
        mbedtls_ssl_conf_ciphersuites(&r->conf, r->suites);
    }
    cr_assert_eq(mbedtls_ssl_setup(&r->ssl, &r->conf), 0);
    mbedtls_ssl_set_bio(&r->ssl, r, raw_send, raw_recv, NULL);
}

static void raw_free(struct raw *r)
{
    mbedtls_ssl_free(&r->ssl);
    mbedtls_ssl_config_free(&r->conf);
    mbedtls_ctr_drbg_free(&r->drbg);
    mbedtls_entropy_free(&r->ent);
    stp_buf_free(&r->out);
}

/* Handshake a raw client with a server engine. Returns the server's first error. */
static int raw_handshake(struct raw *r, struct stp_tls *s, int *client_rc)
{
    int rc = 0, crc = 0;
    struct stp_buf back = STP_BUF_INIT;
    for (int i = 0; i < 10; i++) {
        r->src = (const unsigned char *)back.data;
        r->src_len = back.len;
        crc = mbedtls_ssl_handshake(&r->ssl);
        stp_buf_reset(&back);
        if (r->out.len)
            rc = stp_tls_feed(s, r->out.data, r->out.len);
        stp_buf_reset(&r->out);
        drain_out(s, &back);
        if (rc || (crc != MBEDTLS_ERR_SSL_WANT_READ && crc != 0) || (crc == 0 && !back.len))
            break;
    }
    if (rc && back.len) { /* let the client see the alert */
        r->src = (const unsigned char *)back.data;
        r->src_len = back.len;
        crc = mbedtls_ssl_handshake(&r->ssl);
    }
    stp_buf_free(&back);
    *client_rc = crc;
    return rc;
}

Test(tls_wire, tls11_client_refused)
{
    struct stp_tls_config *scfg =
        server_cfg("srv_rsa.crt", "srv_rsa.key", NULL, STP_TLS_VERIFY_NONE, NULL);
    struct stp_tls *s = engine(scfg, rng);
    struct raw r;
    raw_init(&r, MBEDTLS_SSL_MINOR_VERSION_2, MBEDTLS_SSL_MINOR_VERSION_2, 0);
    int crc;
    cr_assert_eq(raw_handshake(&r, s, &crc), STP_ETLS);
    cr_assert_eq(stp_tls_state(s), STP_TLS_FAILED);
    cr_assert_neq(crc, 0, "the TLS 1.1 client did not complete");
    char e[256];
    cr_log_info("TLS 1.1: %s", stp_tls_errtext(s, e, sizeof(e)));
    raw_free(&r);
    stp_tls_free(&s);
    stp_tls_config_unref(&scfg);
}

Test(tls_wire, tls12_raw_client_accepted)
{
    /* The control for the refusals below: the same raw client, TLS 1.2, default suites. */
    struct stp_tls_config *scfg =
        server_cfg("srv_rsa.crt", "srv_rsa.key", NULL, STP_TLS_VERIFY_NONE, NULL);
    struct stp_tls *s = engine(scfg, rng);
    struct raw r;
    raw_init(&r, MBEDTLS_SSL_MINOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3, 0);
    int crc;
    cr_assert_eq(raw_handshake(&r, s, &crc), 0);
    cr_assert_eq(crc, 0);
    cr_assert_eq(stp_tls_state(s), STP_TLS_OPEN);
    raw_free(&r);
    stp_tls_free(&s);
    stp_tls_config_unref(&scfg);
}

static void non_aead_refused(int suite)
{
    struct stp_tls_config *scfg =
        server_cfg("srv_rsa.crt", "srv_rsa.key", NULL, STP_TLS_VERIFY_NONE, NULL);
    struct stp_tls *s = engine(scfg, rng);
    struct raw r;
    raw_init(&r, MBEDTLS_SSL_MINOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3, suite);
    int crc;
    cr_assert_eq(raw_handshake(&r, s, &crc), STP_ETLS);
    cr_assert_eq(stp_tls_state(s), STP_TLS_FAILED);
    cr_assert_neq(crc, 0);
    raw_free(&r);
    stp_tls_free(&s);
    stp_tls_config_unref(&scfg);
}

Test(tls_wire, non_aead_suites_refused)
{
    non_aead_refused(MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256);
    non_aead_refused(MBEDTLS_TLS_RSA_WITH_AES_128_GCM_SHA256); /* AEAD but no ECDHE */
    non_aead_refused(MBEDTLS_TLS_DHE_RSA_WITH_AES_128_GCM_SHA256);
}

Test(tls_wire, session_ticket_resumption)
{
    struct stp_tls_config *scfg =
        server_cfg("srv_ec.crt", "srv_ec.key", NULL, STP_TLS_VERIFY_NONE, NULL);
    struct stp_tls *s1 = engine(scfg, rng), *s2 = engine(scfg, rng);
    struct raw r1, r2;
    int crc;
    raw_init(&r1, 3, 3, 0);
    cr_assert_eq(raw_handshake(&r1, s1, &crc), 0);
    cr_assert_eq(crc, 0);
    cr_assert_not(stp_tls_resumed(s1));
    mbedtls_ssl_session sess;
    mbedtls_ssl_session_init(&sess);
    cr_assert_eq(mbedtls_ssl_get_session(&r1.ssl, &sess), 0);
    cr_assert_gt(sess.ticket_len, 0, "the server issued a ticket");
    raw_init(&r2, 3, 3, 0);
    cr_assert_eq(mbedtls_ssl_set_session(&r2.ssl, &sess), 0);
    cr_assert_eq(raw_handshake(&r2, s2, &crc), 0);
    cr_assert_eq(crc, 0);
    cr_assert_eq(stp_tls_state(s2), STP_TLS_OPEN);
    cr_assert(stp_tls_resumed(s2), "second handshake resumed from the ticket");
    mbedtls_ssl_session_free(&sess);
    raw_free(&r1);
    raw_free(&r2);
    stp_tls_free(&s1);
    stp_tls_free(&s2);
    stp_tls_config_unref(&scfg);
}

static struct stp_tls *fresh_server(struct stp_tls_config **cfg)
{
    if (!*cfg)
        *cfg = server_cfg("srv_ec.crt", "srv_ec.key", NULL, STP_TLS_VERIFY_NONE, NULL);
    return engine(*cfg, rng);
}

Test(tls_wire, plaintext_on_tls_port_is_a_clean_error)
{
    struct stp_tls_config *cfg = NULL;
    const char *inputs[] = {"CONNECT\naccept-version:1.2\nhost:x\n\n", "GET / HTTP/1.1\r\n",
                            "\x16\x04", "\x16\x03\x05", "\x80\x2e\x01\x03\x01"};
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        struct stp_tls *s = fresh_server(&cfg);
        cr_assert_eq(stp_tls_feed(s, inputs[i], strlen(inputs[i])), STP_EPROTO, "input %zu", i);
        cr_assert_eq(stp_tls_state(s), STP_TLS_FAILED);
        cr_assert_eq(stp_tls_out_pending(s), 0, "no alert to a plaintext client");
        char e[128];
        cr_assert(strstr(stp_tls_errtext(s, e, sizeof(e)), "plaintext") != NULL);
        cr_assert_eq(stp_tls_feed(s, "x", 1), STP_EPROTO, "stays failed");
        stp_tls_free(&s);
    }
    /* Byte by byte: the second byte already tells. */
    struct stp_tls *s = fresh_server(&cfg);
    cr_assert_eq(stp_tls_feed(s, "\x16", 1), 0);
    cr_assert_eq(stp_tls_feed(s, "S", 1), STP_EPROTO);
    stp_tls_free(&s);
    stp_tls_config_unref(&cfg);
}

Test(tls_wire, garbage_after_a_record_header_fails_cleanly)
{
    struct stp_tls_config *cfg = NULL;
    srand(5);
    for (int i = 0; i < 2000; i++) {
        struct stp_tls *s = fresh_server(&cfg);
        unsigned char buf[600];
        size_t len = 5 + (size_t)rand() % (sizeof(buf) - 5);
        for (size_t j = 0; j < len; j++)
            buf[j] = (unsigned char)rand();
        buf[0] = 0x16;
        buf[1] = 0x03;
        buf[2] = (unsigned char)(rand() % 5);
        if (i % 2) { /* a plausible length, so the record completes */
            buf[3] = (unsigned char)((len - 5) >> 8);
            buf[4] = (unsigned char)(len - 5);
            buf[5] = (unsigned char)(i % 4 ? 1 : rand());
        }
        int rc = 0;
        for (size_t off = 0; off < len && !rc;) {
            size_t n = 1 + (size_t)rand() % 200;
            n = n < len - off ? n : len - off;
            rc = stp_tls_feed(s, buf + off, n);
            off += n;
        }
        cr_assert(rc == 0 || rc == STP_ETLS, "rc %d", rc);
        cr_assert_eq(stp_tls_state(s), rc ? STP_TLS_FAILED : STP_TLS_HANDSHAKE);
        if (i % 2)
            cr_assert_eq(rc, STP_ETLS, "a complete garbage record is refused (%d)", i);
        const char *p;
        size_t n;
        cr_assert_eq(stp_tls_out_take(s, &p, &n), 0);
        stp_tls_free(&s);
    }
    stp_tls_config_unref(&cfg);
}

/* The ClientHello of a fresh client engine. */
static void client_hello(struct stp_buf *hello)
{
    struct stp_tls_config *ccfg = client_cfg(NULL, "localhost", NULL, NULL);
    struct stp_tls *c = engine(ccfg, rng);
    cr_assert_eq(stp_tls_handshake(c), 0);
    drain_out(c, hello);
    cr_assert_gt(hello->len, 50);
    stp_tls_free(&c);
    stp_tls_config_unref(&ccfg);
}

Test(tls_wire, truncated_client_hello_waits_for_more)
{
    struct stp_buf hello = STP_BUF_INIT;
    client_hello(&hello);
    struct stp_tls_config *cfg = NULL;
    struct stp_tls *s = fresh_server(&cfg);
    cr_assert_eq(stp_tls_feed(s, hello.data, hello.len - 1), 0);
    cr_assert_eq(stp_tls_state(s), STP_TLS_HANDSHAKE);
    cr_assert_eq(stp_tls_out_pending(s), 0);
    char buf[16];
    cr_assert_eq(stp_tls_read(s, buf, sizeof(buf)), 0);
    cr_assert_eq(stp_tls_feed(s, hello.data + hello.len - 1, 1), 0);
    cr_assert_gt(stp_tls_out_pending(s), 0, "the last byte completes it: ServerHello");
    stp_tls_free(&s);
    stp_tls_config_unref(&cfg);
    stp_buf_free(&hello);
}

Test(tls_wire, sniff_client_hello_on_plain_port)
{
    struct stp_buf hello = STP_BUF_INIT;
    client_hello(&hello);
    for (size_t n = 1; n <= hello.len; n++)
        cr_assert_eq(stp_tls_looks_like_client_hello(hello.data, n), 1, "prefix %zu", n);
    cr_assert_eq(stp_tls_looks_like_client_hello("", 0), 0);
    cr_assert_eq(stp_tls_looks_like_client_hello("CONNECT\n", 8), 0);
    cr_assert_eq(stp_tls_looks_like_client_hello("STOMP\n", 6), 0);
    cr_assert_eq(stp_tls_looks_like_client_hello("\n", 1), 0);
    cr_assert_eq(stp_tls_looks_like_client_hello("GET / HTTP/1.1\r\n", 16), 0);
    cr_assert_eq(stp_tls_looks_like_client_hello("\x16\x05", 2), 0);
    cr_assert_eq(stp_tls_looks_like_client_hello("\x16\x03\x01\x00\x00\x01", 6), 0);
    cr_assert_eq(stp_tls_looks_like_client_hello("\x16\x03\x01\x00\x40\x02", 6), 0);
    stp_buf_free(&hello);
}

Test(tls_wire, client_renegotiation_is_refused_without_harm)
{
    struct stp_tls_config *scfg =
        server_cfg("srv_ec.crt", "srv_ec.key", NULL, STP_TLS_VERIFY_NONE, NULL);
    struct stp_tls *s = engine(scfg, rng);
    struct raw r;
    raw_init(&r, 3, 3, 0);
    mbedtls_ssl_conf_renegotiation(&r.conf, MBEDTLS_SSL_RENEGOTIATION_ENABLED);
    int crc;
    cr_assert_eq(raw_handshake(&r, s, &crc), 0);
    cr_assert_eq(crc, 0);
    r.src_len = 0;
    cr_assert_eq(mbedtls_ssl_renegotiate(&r.ssl), MBEDTLS_ERR_SSL_WANT_READ);
    cr_assert_gt(r.out.len, 0, "an encrypted ClientHello");
    cr_assert_eq(stp_tls_feed(s, r.out.data, r.out.len), 0);
    stp_buf_reset(&r.out);
    char buf[64];
    ssize_t got = stp_tls_read(s, buf, sizeof(buf));
    cr_log_info("server read after a renegotiation request: %zd", got);
    cr_assert_eq(got, 0, "refused, not an error and no data");
    cr_assert_eq(stp_tls_state(s), STP_TLS_OPEN);
    struct stp_buf back = STP_BUF_INIT;
    drain_out(s, &back);
    cr_assert_gt(back.len, 0, "the no_renegotiation alert");
    cr_assert_eq(((unsigned char *)back.data)[0], 21, "an alert record");
    stp_buf_free(&back);
    raw_free(&r);
    stp_tls_free(&s);
    stp_tls_config_unref(&scfg);
}

/* Feed a mutated copy of `msg` to a fresh engine; the result must be clean. */
static void feed_mutated(struct stp_tls_config *cfg, const struct stp_buf *msg, bool client,
                         unsigned seed)
{
    unsigned char buf[4096];
    cr_assert_leq(msg->len, sizeof(buf));
    memcpy(buf, msg->data, msg->len);
    size_t len = msg->len;
    int flips = 1 + (int)(seed % 4);
    for (int i = 0; i < flips; i++)
        buf[3 + (size_t)rand() % (len - 3)] ^= (unsigned char)(1 + rand() % 255);
    if (seed % 5 == 0)
        len = 3 + (size_t)rand() % (len - 3); /* and sometimes cut short */
    struct stp_tls *t = engine(cfg, rng);
    if (client)
        cr_assert_eq(stp_tls_handshake(t), 0);
    int rc = stp_tls_feed(t, buf, len);
    cr_assert(rc == 0 || rc == STP_ETLS, "seed %u: rc %d", seed, rc);
    cr_assert_eq(stp_tls_state(t), rc ? STP_TLS_FAILED : STP_TLS_HANDSHAKE);
    char out[64];
    cr_assert_leq(stp_tls_read(t, out, sizeof(out)), 0);
    stp_tls_free(&t);
}

Test(tls_wire, mutated_client_hello)
{
    struct stp_buf hello = STP_BUF_INIT;
    client_hello(&hello);
    struct stp_tls_config *cfg =
        server_cfg("srv_ec.crt", "srv_ec.key", NULL, STP_TLS_VERIFY_NONE, NULL);
    srand(11);
    for (unsigned i = 0; i < 600; i++)
        feed_mutated(cfg, &hello, false, i);
    stp_tls_config_unref(&cfg);
    stp_buf_free(&hello);
}

Test(tls_wire, mutated_server_flight)
{
    /* A genuine first server flight, replayed with damage to fresh clients. */
    struct stp_tls_config *scfg =
        server_cfg("srv_ec.crt", "srv_ec.key", NULL, STP_TLS_VERIFY_NONE, NULL);
    struct stp_tls_config *ccfg = client_cfg("ca1.crt", "localhost", NULL, NULL);
    struct stp_tls *s = engine(scfg, rng), *c = engine(ccfg, rng);
    struct stp_buf flight = STP_BUF_INIT;
    cr_assert_eq(stp_tls_handshake(c), 0);
    cr_assert_eq(pump(c, s, NULL), 0);
    drain_out(s, &flight);
    srand(12);
    for (unsigned i = 0; i < 300; i++)
        feed_mutated(ccfg, &flight, true, i);
    stp_buf_free(&flight);
    stp_tls_free(&s);
    stp_tls_free(&c);
    stp_tls_config_unref(&scfg);
    stp_tls_config_unref(&ccfg);
}
