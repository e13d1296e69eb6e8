/*
 * Unit tests of the TLS engine between two of our own engines, entirely in
 * memory: handshakes, data both ways, record coalescing, the output regions,
 * close_notify, client certificates, shared configs across threads.
 * (test_tls_wire.c covers split, damaged and foreign traffic.)
 */
#include "test_tls_util.h"

#include <mbedtls/aesni.h>
#include <pthread.h>

TestSuite(tls_engine, .init = setup, .fini = teardown, .timeout = 120);

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
