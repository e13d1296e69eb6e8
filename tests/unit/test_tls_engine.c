/*
 * Unit tests of the TLS engine: a server engine and a client engine (or a
 * raw mbedTLS client where the test needs a client our config never builds)
 * talk entirely in memory. Certificates are generated at test time.
 */
#include "test_tls_util.h"

#include <mbedtls/aesni.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <pthread.h>
#include <stdint.h>

static struct stp_tls_rng *rng;

static void setup(void)
{
    cr_assert_eq(stp_tls_rng_new(&rng), 0);
}

static void teardown(void)
{
    stp_tls_rng_free(&rng);
}

TestSuite(tls_engine, .init = setup, .fini = teardown, .timeout = 240);

/* A connected pair over the given server config (the client verifies CA 1). */
struct pair {
    struct stp_tls_config *scfg, *ccfg;
    struct stp_tls *s, *c;
};

static void pair_open(struct pair *p, struct stp_tls_config *scfg, struct stp_tls_config *ccfg)
{
    p->scfg = scfg;
    p->ccfg = ccfg;
    p->s = engine(scfg, rng);
    p->c = engine(ccfg, rng);
}

static void pair_close(struct pair *p)
{
    stp_tls_free(&p->s);
    stp_tls_free(&p->c);
    stp_tls_config_unref(&p->scfg);
    stp_tls_config_unref(&p->ccfg);
}

static void assert_open(struct pair *p)
{
    char e1[256], e2[256];
    cr_assert_eq(stp_tls_state(p->s), STP_TLS_OPEN, "server: %s",
                 stp_tls_errtext(p->s, e1, sizeof(e1)));
    cr_assert_eq(stp_tls_state(p->c), STP_TLS_OPEN, "client: %s",
                 stp_tls_errtext(p->c, e2, sizeof(e2)));
}

Test(tls_engine, rsa_handshake_and_data_both_ways)
{
    struct pair p;
    pair_open(&p, server_cfg("srv_rsa.crt", "srv_rsa.key", NULL, STP_TLS_VERIFY_NONE, NULL),
              client_cfg("ca1.crt", "localhost", NULL, NULL));
    cr_assert_eq(stp_tls_ciphersuite(p.s)[0], '\0');
    cr_assert_eq(handshake(p.c, p.s), 0);
    assert_open(&p);
    const char *want = mbedtls_aesni_has_support(MBEDTLS_AESNI_AES)
                           ? "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256"
                           : "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256";
    cr_assert_str_eq(stp_tls_ciphersuite(p.s), want);
    cr_assert_str_eq(stp_tls_ciphersuite(p.c), want);
    cr_assert_not_null(stp_tls_sni(p.s));
    cr_assert_str_eq(stp_tls_sni(p.s), "localhost");
    cr_assert(stp_tls_peer_verified(p.c), "client verified the server against CA 1");
    cr_assert_not(stp_tls_peer_verified(p.s), "no client certificate was asked for");
    char subj[128];
    cr_assert_eq(stp_tls_peer_subject(p.c, subj, sizeof(subj)), 0);
    cr_assert_str_eq(subj, "CN=localhost");
    cr_assert_eq(stp_tls_peer_subject(p.s, subj, sizeof(subj)), STP_ENOT_FOUND);
    expect_transfer(p.c, p.s, "CONNECT\naccept-version:1.2\n\n");
    expect_transfer(p.s, p.c, "CONNECTED\nversion:1.2\n\n");
    expect_transfer(p.c, p.s, "SEND\ndestination:/queue/a\n\nhello");
    pair_close(&p);
}

Test(tls_engine, ecdsa_handshake)
{
    struct pair p;
    pair_open(&p, server_cfg("srv_ec.crt", "srv_ec.key", NULL, STP_TLS_VERIFY_NONE, NULL),
              client_cfg(NULL, NULL, NULL, NULL));
    cr_assert_eq(handshake(p.c, p.s), 0);
    assert_open(&p);
    cr_assert(strstr(stp_tls_ciphersuite(p.s), "ECDHE-ECDSA") != NULL);
    cr_assert_null(stp_tls_sni(p.s), "the client sent no SNI");
    cr_assert_not(stp_tls_peer_verified(p.c), "no CA: not verified");
    expect_transfer(p.c, p.s, "ping");
    expect_transfer(p.s, p.c, "pong");
    pair_close(&p);
}

Test(tls_engine, wrong_server_name_fails_verification)
{
    struct pair p;
    pair_open(&p, server_cfg("srv_ec.crt", "srv_ec.key", NULL, STP_TLS_VERIFY_NONE, NULL),
              client_cfg("ca1.crt", "wrong.example", NULL, NULL));
    cr_assert_eq(handshake(p.c, p.s), STP_ETLS);
    cr_assert_eq(stp_tls_state(p.c), STP_TLS_FAILED);
    char e[512];
    stp_tls_errtext(p.c, e, sizeof(e));
    cr_assert(strstr(e, "certificate:") != NULL, "verification details in: %s", e);
    cr_assert_eq(stp_tls_state(p.s), STP_TLS_FAILED, "the server got the alert");
    pair_close(&p);
}

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

Test(tls_engine, one_byte_at_a_time)
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

Test(tls_engine, every_split_of_client_hello)
{
    every_split(0);
}

Test(tls_engine, every_split_of_server_first_flight)
{
    every_split(1);
}

Test(tls_engine, every_split_of_client_finished_flight)
{
    every_split(2);
}

Test(tls_engine, every_split_of_server_finished_flight)
{
    every_split(3);
}

/* Walk TLS records in a ciphertext stream: count application records. */
static size_t count_app_records(const struct stp_buf *wire, size_t max_len)
{
    size_t n = 0, off = 0;
    const unsigned char *u = (const unsigned char *)wire->data;
    while (off < wire->len) {
        cr_assert_leq(off + 5, wire->len, "truncated record header");
        size_t len = (size_t)u[off + 3] << 8 | u[off + 4];
        cr_assert_eq(u[off], 23, "application data record");
        cr_assert_leq(len, max_len, "record of %zu bytes", len);
        off += 5 + len;
        n++;
    }
    cr_assert_eq(off, wire->len);
    return n;
}

/* 1 MiB of patterned bytes as many small write calls, then checked on the far side. */
Test(tls_engine, small_writes_coalesce_into_full_records)
{
    struct pair p;
    pair_open(&p, server_cfg("srv_ec.crt", "srv_ec.key", NULL, STP_TLS_VERIFY_NONE, NULL),
              client_cfg(NULL, NULL, NULL, NULL));
    cr_assert_eq(handshake(p.c, p.s), 0);
    const size_t total = 1 << 20;
    unsigned char *data = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (unsigned char)(i * 7 + (i >> 11));
    size_t off = 0, calls = 0;
    while (off < total) {
        /* Frames of 1..1499 bytes, two or three per call as a flush would pass them. */
        struct iovec iov[3];
        int n = 0;
        for (; n < 3 && off < total; n++) {
            size_t len = 1 + (off * 31 + calls) % 1499;
            len = len < total - off ? len : total - off;
            iov[n] = (struct iovec){.iov_base = data + off, .iov_len = len};
            off += len;
        }
        cr_assert_eq(stp_tls_write(p.c, iov, n), 0);
        calls++;
    }
    struct stp_buf wire = STP_BUF_INIT, got = STP_BUF_INIT;
    drain_out(p.c, &wire);
    size_t records = count_app_records(&wire, 16384 + 8 + 16);
    cr_log_info("%zu write calls -> %zu records, %zu wire bytes", calls, records, wire.len);
    cr_assert_gt(calls, 400);
    cr_assert_eq(records, (total + 16383) / 16384, "full 16 KiB records, not one per call");
    cr_assert_eq(stp_tls_feed(p.s, wire.data, wire.len), 0);
    cr_assert_eq(read_all(p.s, &got), 0);
    cr_assert_eq(got.len, total);
    cr_assert_eq(memcmp(got.data, data, total), 0);
    stp_buf_free(&wire);
    stp_buf_free(&got);
    free(data);
    pair_close(&p);
}

Test(tls_engine, one_large_write_and_a_tail)
{
    struct pair p;
    pair_open(&p, server_cfg("srv_rsa.crt", "srv_rsa.key", NULL, STP_TLS_VERIFY_NONE, NULL),
              client_cfg(NULL, NULL, NULL, NULL));
    cr_assert_eq(handshake(p.c, p.s), 0);
    const size_t total = (1 << 20) + 100;
    char *data = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (char)(i % 251);
    struct iovec iov[2] = {{.iov_base = data, .iov_len = 10},
                           {.iov_base = data + 10, .iov_len = total - 10}};
    cr_assert_eq(stp_tls_write(p.s, iov, 2), 0);
    cr_assert_eq(stp_tls_plain_pending(p.s), total % 16384, "only the tail waits");
    struct stp_buf wire = STP_BUF_INIT, got = STP_BUF_INIT;
    drain_out(p.s, &wire);
    cr_assert_eq(stp_tls_plain_pending(p.s), 0);
    cr_assert_eq(count_app_records(&wire, 16384 + 8 + 16), (total + 16383) / 16384);
    /* Feed in uneven chunks, reading with a small buffer. */
    for (size_t o = 0; o < wire.len;) {
        size_t n = wire.len - o < 9000 ? wire.len - o : 9000;
        cr_assert_eq(stp_tls_feed(p.c, wire.data + o, n), 0);
        o += n;
        char tmp[1000];
        ssize_t r;
        while ((r = stp_tls_read(p.c, tmp, sizeof(tmp))) > 0)
            stp_buf_append(&got, tmp, (size_t)r);
        cr_assert_eq(r, 0);
    }
    cr_assert_eq(got.len, total);
    cr_assert_eq(memcmp(got.data, data, total), 0);
    stp_buf_free(&wire);
    stp_buf_free(&got);
    free(data);
    pair_close(&p);
}

Test(tls_engine, taken_region_stays_put_while_more_is_written)
{
    struct pair p;
    pair_open(&p, server_cfg("srv_ec.crt", "srv_ec.key", NULL, STP_TLS_VERIFY_NONE, NULL),
              client_cfg(NULL, NULL, NULL, NULL));
    cr_assert_eq(handshake(p.c, p.s), 0);
    write_str(p.c, "first");
    const char *p1, *p2;
    size_t l1, l2;
    cr_assert_eq(stp_tls_out_take(p.c, &p1, &l1), 0);
    cr_assert_gt(l1, 0);
    char copy[256];
    cr_assert_lt(l1, sizeof(copy));
    memcpy(copy, p1, l1);
    write_str(p.c, "second, written while the first is on the wire");
    cr_assert_eq(stp_tls_out_take(p.c, &p2, &l2), 0);
    cr_assert_eq(l2, 0, "one region out at a time");
    cr_assert_eq(memcmp(copy, p1, l1), 0, "taken bytes unchanged");
    cr_assert_gt(stp_tls_out_pending(p.c), l1);
    cr_assert_eq(stp_tls_feed(p.s, p1, l1), 0);
    stp_tls_out_release(p.c);
    cr_assert_eq(stp_tls_out_take(p.c, &p2, &l2), 0);
    cr_assert_gt(l2, 0);
    cr_assert_eq(stp_tls_feed(p.s, p2, l2), 0);
    stp_tls_out_release(p.c);
    struct stp_buf got = STP_BUF_INIT;
    cr_assert_eq(read_all(p.s, &got), 0);
    const char *want = "firstsecond, written while the first is on the wire";
    cr_assert_eq(got.len, strlen(want));
    cr_assert_eq(memcmp(got.data, want, got.len), 0);
    stp_buf_free(&got);
    pair_close(&p);
}

Test(tls_engine, write_before_handshake_is_sent_after_it)
{
    struct pair p;
    pair_open(&p, server_cfg("srv_ec.crt", "srv_ec.key", NULL, STP_TLS_VERIFY_NONE, NULL),
              client_cfg(NULL, NULL, NULL, NULL));
    cr_assert_eq(stp_tls_out_pending(p.c), 0);
    write_str(p.c, "CONNECT\n\n");
    cr_assert_eq(stp_tls_plain_pending(p.c), 9);
    cr_assert_gt(stp_tls_out_pending(p.c), 0, "the first write sent the ClientHello");
    cr_assert_eq(stp_tls_plain_pending(p.s), 0);
    /* Run the handshake by hand to see the frame leave with the last client feed. */
    for (int i = 0; i < 10 && in_handshake(p.c); i++) {
        cr_assert_eq(pump(p.c, p.s, NULL), 0);
        cr_assert_eq(pump(p.s, p.c, NULL), 0);
    }
    assert_open(&p);
    cr_assert_eq(stp_tls_plain_pending(p.c), 0, "sealed when the handshake completed");
    cr_assert_gt(stp_tls_out_pending(p.c), 9, "and waiting in the output");
    struct stp_buf got = STP_BUF_INIT;
    cr_assert_eq(pump(p.c, p.s, NULL), 0);
    cr_assert_eq(read_all(p.s, &got), 0);
    cr_assert_eq(got.len, 9);
    cr_assert_eq(memcmp(got.data, "CONNECT\n\n", 9), 0);
    stp_buf_free(&got);
    pair_close(&p);
}

Test(tls_engine, close_notify_both_ways)
{
    struct pair p;
    pair_open(&p, server_cfg("srv_ec.crt", "srv_ec.key", NULL, STP_TLS_VERIFY_NONE, NULL),
              client_cfg(NULL, NULL, NULL, NULL));
    cr_assert_eq(handshake(p.c, p.s), 0);
    write_str(p.c, "DISCONNECT\n\n");
    cr_assert_eq(stp_tls_close(p.c), 0);
    cr_assert_eq(stp_tls_state(p.c), STP_TLS_CLOSED);
    struct iovec iov = {.iov_base = "late", .iov_len = 4};
    cr_assert_eq(stp_tls_write(p.c, &iov, 1), STP_ECLOSED);
    cr_assert_eq(pump(p.c, p.s, NULL), 0);
    struct stp_buf got = STP_BUF_INIT;
    cr_assert_eq(read_all(p.s, &got), STP_ECLOSED, "data first, then close_notify");
    cr_assert_eq(got.len, 12);
    cr_assert_eq(stp_tls_state(p.s), STP_TLS_PEER_CLOSED);
    cr_assert_eq(stp_tls_read(p.s, got.data, 1), STP_ECLOSED, "stays closed");
    /* The half-closed server still answers, then closes too. */
    write_str(p.s, "RECEIPT\n\n");
    cr_assert_eq(stp_tls_close(p.s), 0);
    cr_assert_eq(pump(p.s, p.c, NULL), 0);
    stp_buf_reset(&got);
    cr_assert_eq(read_all(p.c, &got), STP_ECLOSED);
    cr_assert_eq(got.len, 9);
    stp_buf_free(&got);
    pair_close(&p);
}

static int client_cert_handshake(enum stp_tls_verify verify, const char *cert, const char *key,
                                 struct pair *p)
{
    pair_open(p, server_cfg("srv_ec.crt", "srv_ec.key", "ca1.crt", verify, NULL),
              client_cfg("ca1.crt", "localhost", cert, key));
    return handshake(p->c, p->s);
}

Test(tls_engine, client_cert_required)
{
    struct pair p;
    char subj[128], e[512];
    /* None: refused. */
    cr_assert_eq(client_cert_handshake(STP_TLS_VERIFY_REQUIRED, NULL, NULL, &p), STP_ETLS);
    cr_assert_eq(stp_tls_state(p.s), STP_TLS_FAILED);
    cr_log_info("no cert: %s", stp_tls_errtext(p.s, e, sizeof(e)));
    pair_close(&p);
    /* Signed by the CA: accepted, and the subject is visible. */
    cr_assert_eq(client_cert_handshake(STP_TLS_VERIFY_REQUIRED, "alice.crt", "alice.key", &p), 0);
    assert_open(&p);
    cr_assert(stp_tls_peer_verified(p.s));
    cr_assert_eq(stp_tls_peer_subject(p.s, subj, sizeof(subj)), 0);
    cr_assert_str_eq(subj, "CN=alice");
    expect_transfer(p.c, p.s, "hi");
    pair_close(&p);
    /* From another CA: refused, with the reason. */
    cr_assert_eq(client_cert_handshake(STP_TLS_VERIFY_REQUIRED, "mallory.crt", "mallory.key", &p),
                 STP_ETLS);
    cr_assert_eq(stp_tls_state(p.s), STP_TLS_FAILED);
    stp_tls_errtext(p.s, e, sizeof(e));
    cr_assert(strstr(e, "certificate:") != NULL, "%s", e);
    cr_assert_neq(stp_tls_state(p.c), STP_TLS_OPEN, "client told by an alert");
    pair_close(&p);
}

Test(tls_engine, client_cert_optional)
{
    struct pair p;
    cr_assert_eq(client_cert_handshake(STP_TLS_VERIFY_OPTIONAL, NULL, NULL, &p), 0);
    assert_open(&p);
    cr_assert_not(stp_tls_peer_verified(p.s));
    pair_close(&p);
    cr_assert_eq(client_cert_handshake(STP_TLS_VERIFY_OPTIONAL, "mallory.crt", "mallory.key", &p),
                 0);
    assert_open(&p);
    cr_assert_not(stp_tls_peer_verified(p.s), "present but not from our CA");
    pair_close(&p);
    cr_assert_eq(client_cert_handshake(STP_TLS_VERIFY_OPTIONAL, "alice.crt", "alice.key", &p), 0);
    cr_assert(stp_tls_peer_verified(p.s));
    pair_close(&p);
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

Test(tls_engine, tls11_client_refused)
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

Test(tls_engine, tls12_raw_client_accepted)
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

Test(tls_engine, non_aead_suites_refused)
{
    non_aead_refused(MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256);
    non_aead_refused(MBEDTLS_TLS_RSA_WITH_AES_128_GCM_SHA256); /* AEAD but no ECDHE */
    non_aead_refused(MBEDTLS_TLS_DHE_RSA_WITH_AES_128_GCM_SHA256);
}

Test(tls_engine, session_ticket_resumption)
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

Test(tls_engine, plaintext_on_tls_port_is_a_clean_error)
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

Test(tls_engine, garbage_after_a_record_header_fails_cleanly)
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

Test(tls_engine, truncated_client_hello_waits_for_more)
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

Test(tls_engine, sniff_client_hello_on_plain_port)
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

Test(tls_engine, engine_outlives_its_creator_reference)
{
    struct stp_tls_config *scfg =
        server_cfg("srv_ec.crt", "srv_ec.key", NULL, STP_TLS_VERIFY_NONE, NULL);
    struct stp_tls_config *ccfg = client_cfg(NULL, NULL, NULL, NULL);
    struct stp_tls *s = engine(scfg, rng), *c = engine(ccfg, rng);
    stp_tls_config_unref(&scfg);
    stp_tls_config_unref(&ccfg);
    cr_assert_null(scfg);
    cr_assert_eq(handshake(c, s), 0);
    expect_transfer(c, s, "still works");
    stp_tls_free(&s);
    stp_tls_free(&c);
    cr_assert_null(s);
}

/* Two workers share the configs; each has its own generator and engines. */
struct worker_arg {
    struct stp_tls_config *scfg, *ccfg;
    int ok;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;
    struct stp_tls_rng *wrng = NULL;
    if (stp_tls_rng_new(&wrng))
        return NULL;
    for (int i = 0; i < 15; i++) {
        struct stp_tls *s = NULL, *c = NULL;
        if (stp_tls_new(&s, a->scfg, wrng) || stp_tls_new(&c, a->ccfg, wrng))
            break;
        /* No criterion asserts off the main thread: count successes instead. */
        int rc = stp_tls_handshake(c);
        for (int k = 0; !rc && k < 10 && (in_handshake(c) || in_handshake(s)); k++) {
            const char *q;
            size_t n;
            if (!(rc = stp_tls_out_take(c, &q, &n)) && n) {
                rc = stp_tls_feed(s, q, n);
                stp_tls_out_release(c);
            }
            if (!rc && !(rc = stp_tls_out_take(s, &q, &n)) && n) {
                rc = stp_tls_feed(c, q, n);
                stp_tls_out_release(s);
            }
        }
        if (!rc && stp_tls_state(s) == STP_TLS_OPEN && stp_tls_peer_verified(s) &&
            stp_tls_peer_verified(c))
            a->ok++;
        stp_tls_free(&s);
        stp_tls_free(&c);
    }
    stp_tls_rng_free(&wrng);
    return NULL;
}

Test(tls_engine, workers_share_a_config)
{
    struct worker_arg a[2];
    pthread_t th[2];
    struct stp_tls_config *scfg =
        server_cfg("srv_ec.crt", "srv_ec.key", "ca1.crt", STP_TLS_VERIFY_REQUIRED, NULL);
    struct stp_tls_config *ccfg = client_cfg("ca1.crt", "localhost", "alice.crt", "alice.key");
    for (int i = 0; i < 2; i++) {
        a[i] = (struct worker_arg){.scfg = scfg, .ccfg = ccfg};
        cr_assert_eq(pthread_create(&th[i], NULL, worker, &a[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(a[i].ok, 15, "worker %d: %d of 15 handshakes verified both ways", i, a[i].ok);
    }
    stp_tls_config_unref(&scfg);
    stp_tls_config_unref(&ccfg);
}

Test(tls_engine, client_renegotiation_is_refused_without_harm)
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

Test(tls_engine, any_sni_name_is_accepted)
{
    struct pair p;
    pair_open(&p, server_cfg("srv_rsa.crt", "srv_rsa.key", NULL, STP_TLS_VERIFY_NONE, NULL),
              client_cfg(NULL, "broker-7.internal.example", NULL, NULL));
    cr_assert_eq(handshake(p.c, p.s), 0);
    assert_open(&p);
    cr_assert_str_eq(stp_tls_sni(p.s), "broker-7.internal.example");
    cr_assert_null(stp_tls_sni(p.c), "only a server records SNI");
    pair_close(&p);
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

Test(tls_engine, mutated_client_hello)
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

Test(tls_engine, mutated_server_flight)
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

/* The named group of the ServerKeyExchange in a server's first flight, or -1. */
static int ske_group(const struct stp_buf *flight)
{
    const unsigned char *u = (const unsigned char *)flight->data;
    for (size_t off = 0; off + 5 <= flight->len;) {
        size_t rlen = (size_t)u[off + 3] << 8 | u[off + 4];
        const unsigned char *m = u + off + 5, *end = m + rlen;
        cr_assert_leq(off + 5 + rlen, flight->len);
        while (u[off] == 22 && m + 4 <= end) {
            size_t mlen = (size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3];
            if (m[0] == 12 && mlen >= 3 && m[4] == 3) /* server_key_exchange, named_curve */
                return m[5] << 8 | m[6];
            m += 4 + mlen;
        }
        off += 5 + rlen;
    }
    return -1;
}

Test(tls_engine, ecdhe_uses_x25519_between_our_engines)
{
    struct pair p;
    pair_open(&p, server_cfg("srv_rsa.crt", "srv_rsa.key", NULL, STP_TLS_VERIFY_NONE, NULL),
              client_cfg(NULL, NULL, NULL, NULL));
    struct stp_buf flight = STP_BUF_INIT;
    cr_assert_eq(stp_tls_handshake(p.c), 0);
    cr_assert_eq(pump(p.c, p.s, NULL), 0);
    drain_out(p.s, &flight);
    cr_assert_eq(ske_group(&flight), 0x001d, "x25519, not mbedTLS's default secp521r1");
    cr_assert_eq(stp_tls_feed(p.c, flight.data, flight.len), 0);
    cr_assert_eq(handshake(p.c, p.s), 0);
    assert_open(&p);
    stp_buf_free(&flight);
    pair_close(&p);
}

Test(tls_engine, tampered_record_fails_with_an_alert)
{
    struct pair p;
    pair_open(&p, server_cfg("srv_ec.crt", "srv_ec.key", NULL, STP_TLS_VERIFY_NONE, NULL),
              client_cfg(NULL, NULL, NULL, NULL));
    cr_assert_eq(handshake(p.c, p.s), 0);
    char e[256];
    cr_assert_str_eq(stp_tls_errtext(p.s, e, sizeof(e)), "no error");
    write_str(p.c, "SEND\ndestination:/queue/a\n\nsecret");
    struct stp_buf wire = STP_BUF_INIT;
    drain_out(p.c, &wire);
    wire.data[wire.len - 20] ^= 0x01; /* inside the ciphertext or its tag */
    cr_assert_eq(stp_tls_feed(p.s, wire.data, wire.len), 0, "records are checked when read");
    char buf[256];
    cr_assert_eq(stp_tls_read(p.s, buf, sizeof(buf)), STP_ETLS);
    cr_assert_eq(stp_tls_state(p.s), STP_TLS_FAILED);
    cr_log_info("tampered record: %s", stp_tls_errtext(p.s, e, sizeof(e)));
    cr_assert_gt(stp_tls_out_pending(p.s), 0, "a bad_record_mac alert for the peer");
    /* Everything after a failure keeps failing the same way, without crashing. */
    struct iovec iov = {.iov_base = "x", .iov_len = 1};
    cr_assert_eq(stp_tls_write(p.s, &iov, 1), STP_ETLS);
    cr_assert_eq(stp_tls_feed(p.s, "x", 1), STP_ETLS);
    cr_assert_eq(stp_tls_read(p.s, buf, sizeof(buf)), STP_ETLS);
    cr_assert_eq(stp_tls_handshake(p.s), STP_ETLS);
    cr_assert_eq(stp_tls_close(p.s), STP_ETLS);
    cr_assert_eq(stp_tls_flush(p.s), 0);
    cr_assert_neq(stp_tls_state(p.c), STP_TLS_FAILED);
    cr_assert_eq(pump(p.s, p.c, NULL), 0);
    cr_assert_eq(stp_tls_read(p.c, buf, sizeof(buf)), STP_ETLS, "the client got the alert");
    stp_buf_free(&wire);
    pair_close(&p);
}

Test(tls_engine, feed_while_plaintext_is_still_buffered)
{
    struct pair p;
    pair_open(&p, server_cfg("srv_ec.crt", "srv_ec.key", NULL, STP_TLS_VERIFY_NONE, NULL),
              client_cfg(NULL, NULL, NULL, NULL));
    cr_assert_eq(handshake(p.c, p.s), 0);
    cr_assert_eq(stp_tls_handshake(p.c), 0, "no-op once open");
    cr_assert_eq(stp_tls_feed(p.s, "", 0), 0);
    /* Three records; read a little of the first, feed the third, then read everything. */
    struct stp_buf w1 = STP_BUF_INIT, w2 = STP_BUF_INIT, got = STP_BUF_INIT;
    write_str(p.c, "one:aaaaaaaaaaaaaaaaaaaa|");
    cr_assert_eq(stp_tls_flush(p.c), 0);
    write_str(p.c, "two:bbbbbbbbbbbbbbbbbbbb|");
    drain_out(p.c, &w1);
    write_str(p.c, "three:cccccccccccccccccc|");
    drain_out(p.c, &w2);
    cr_assert_eq(stp_tls_feed(p.s, w1.data, w1.len), 0);
    char small[5];
    cr_assert_eq(stp_tls_read(p.s, small, sizeof(small)), 5);
    stp_buf_append(&got, small, 5);
    cr_assert_eq(stp_tls_feed(p.s, w2.data, w2.len), 0);
    cr_assert_eq(read_all(p.s, &got), 0);
    const char *want =
        "one:aaaaaaaaaaaaaaaaaaaa|two:bbbbbbbbbbbbbbbbbbbb|three:cccccccccccccccccc|";
    cr_assert_eq(got.len, strlen(want));
    cr_assert_eq(memcmp(got.data, want, got.len), 0);
    /* Closing twice is fine; the second queues nothing more. */
    cr_assert_eq(stp_tls_close(p.s), 0);
    size_t pending = stp_tls_out_pending(p.s);
    cr_assert_eq(stp_tls_close(p.s), 0);
    cr_assert_eq(stp_tls_out_pending(p.s), pending);
    stp_buf_free(&w1);
    stp_buf_free(&w2);
    stp_buf_free(&got);
    pair_close(&p);
}
