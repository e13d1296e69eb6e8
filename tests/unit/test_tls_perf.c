/*
 * Measurements of the TLS engine: heap held by an idle engine after its
 * handshake (bounded: the two 16 KiB record buffers and little else), and bulk
 * stp_tls_write + decrypt through an in-memory pair, checked byte for byte.
 * The throughput is printed for the README, never asserted: speed belongs to
 * benchmarks, not to pass/fail on a shared machine.
 */
#include "test_tls_util.h"

#include <malloc.h>
#include <mbedtls/ssl_internal.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

TestSuite(tls_perf, .init = setup, .fini = teardown, .timeout = 120);

static size_t heap_used(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

#define NPAIRS 100

static void idle_memory(const char *crt, const char *key, const char *label)
{
#ifdef UNDER_ASAN
    /* mallinfo2 reports glibc's heap; AddressSanitizer has its own allocator. */
    cr_skip_test("heap accounting needs glibc's allocator (not AddressSanitizer's)");
#endif
    struct stp_tls_config *scfg = server_cfg(crt, key, NULL, STP_TLS_VERIFY_NONE, NULL);
    struct stp_tls_config *ccfg = client_cfg(NULL, NULL, NULL, NULL);
    struct stp_tls *s[NPAIRS], *c[NPAIRS];
    /* One pair first, so one-time allocations (criterion's, libc's) are not counted. */
    s[0] = engine(scfg, rng);
    c[0] = engine(ccfg, rng);
    cr_assert_eq(handshake(c[0], s[0]), 0);
    expect_transfer(c[0], s[0], "warm-up");
    stp_tls_free(&s[0]);
    stp_tls_free(&c[0]);
    size_t m0 = heap_used();
    for (int i = 0; i < NPAIRS; i++) {
        s[i] = engine(scfg, rng);
        c[i] = engine(ccfg, rng);
        cr_assert_eq(handshake(c[i], s[i]), 0);
        expect_transfer(c[i], s[i], "CONNECT\n\n");
        expect_transfer(s[i], c[i], "CONNECTED\n\n");
    }
    size_t m1 = heap_used();
    for (int i = 0; i < NPAIRS; i++)
        stp_tls_free(&c[i]);
    size_t m2 = heap_used();
    for (int i = 0; i < NPAIRS; i++)
        stp_tls_free(&s[i]);
    size_t m3 = heap_used();
    size_t server = (m2 - m0) / NPAIRS, client = (m1 - m2) / NPAIRS;
    cr_log_info("idle %s server engine after handshake: %zu bytes (client: %zu); "
                "of which mbedTLS record buffers: 2 x %d",
                label, server, client, MBEDTLS_SSL_IN_BUFFER_LEN);
    fprintf(stderr, "MEASURE tls idle_engine_bytes %s server=%zu client=%zu\n", label, server,
            client);
    cr_assert_gt(server, 2 * 16384, "the two 16 KiB record buffers are in there");
    cr_assert_lt(server, 40 * 1024, "an idle engine stays under 40 KiB");
    /* Not exact: glibc counts chunks parked in its per-thread cache as in use. */
    cr_assert_lt(m3 > m0 ? m3 - m0 : m0 - m3, 64 * 1024,
                 "freeing the engines returns the memory (%zu -> %zu)", m0, m3);
    stp_tls_config_unref(&scfg);
    stp_tls_config_unref(&ccfg);
}

Test(tls_perf, idle_engine_memory_ecdsa)
{
    idle_memory("srv_ec.crt", "srv_ec.key", "ECDSA");
}

Test(tls_perf, idle_engine_memory_rsa)
{
    idle_memory("srv_rsa.crt", "srv_rsa.key", "RSA");
}

static double seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Push frames of 4 KiB, 16 per write call (a flush), through client -> server
 * for at most ~1 s of CPU or 256 MiB, checking every byte that comes out.
 */
static void bulk(const char *ciphers)
{
    struct stp_tls_config *scfg =
        server_cfg("srv_ec.crt", "srv_ec.key", NULL, STP_TLS_VERIFY_NONE, NULL);
    struct stp_tls_client_opts co = {.ciphers = ciphers};
    struct stp_tls_config *ccfg = NULL;
    cr_assert_eq(stp_tls_client_config_new(&ccfg, &co, NULL, 0), 0);
    struct stp_tls *s = engine(scfg, rng), *c = engine(ccfg, rng);
    cr_assert_eq(handshake(c, s), 0);
    enum { FRAME = 4096, PER_CALL = 16 };
    static char frame[FRAME], buf[16384];
    for (int i = 0; i < FRAME; i++)
        frame[i] = (char)(i % 253);
    struct iovec iov[PER_CALL];
    for (int i = 0; i < PER_CALL; i++)
        iov[i] = (struct iovec){.iov_base = frame, .iov_len = FRAME};
    size_t sent = 0, got = 0;
    double w0 = seconds(CLOCK_MONOTONIC), c0 = seconds(CLOCK_PROCESS_CPUTIME_ID), cpu = 0;
    while (cpu < 1.0 && sent < (256u << 20)) {
        cr_assert_eq(stp_tls_write(c, iov, PER_CALL), 0);
        sent += FRAME * PER_CALL;
        const char *p;
        size_t len;
        cr_assert_eq(stp_tls_out_take(c, &p, &len), 0);
        cr_assert_eq(stp_tls_feed(s, p, len), 0);
        stp_tls_out_release(c);
        ssize_t r;
        while ((r = stp_tls_read(s, buf, sizeof(buf))) > 0) {
            cr_assert_eq(buf[r - 1], frame[(got + (size_t)r - 1) % FRAME]);
            got += (size_t)r;
        }
        cr_assert_eq(r, 0);
        cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
    }
    double wall = seconds(CLOCK_MONOTONIC) - w0;
    cr_assert_eq(got, sent);
    double mbs = (double)sent / 1e6 / cpu;
    cr_log_info("%s: %.0f MB/s of plaintext encrypted+decrypted per CPU second (%zu MiB, "
                "%.2f s CPU, %.2f s wall)",
                stp_tls_ciphersuite(s), mbs, sent >> 20, cpu, wall);
    fprintf(stderr, "MEASURE tls bulk %s MB/s=%.0f\n", stp_tls_ciphersuite(s), mbs);
    stp_tls_free(&s);
    stp_tls_free(&c);
    stp_tls_config_unref(&scfg);
    stp_tls_config_unref(&ccfg);
}

Test(tls_perf, bulk_throughput_aes_gcm)
{
    bulk("ECDHE-ECDSA-AES128-GCM-SHA256");
}

Test(tls_perf, bulk_throughput_chacha20)
{
    bulk("ECDHE-ECDSA-CHACHA20-POLY1305");
}

/* CPU the server engine spends per full handshake (its feeds only). */
static void handshake_cost(const char *crt, const char *key, const char *label)
{
    struct stp_tls_config *scfg = server_cfg(crt, key, NULL, STP_TLS_VERIFY_NONE, NULL);
    struct stp_tls_config *ccfg = client_cfg(NULL, NULL, NULL, NULL);
    enum { N = 30 };
    double server_cpu = 0;
    for (int i = 0; i < N; i++) {
        struct stp_tls *s = engine(scfg, rng), *c = engine(ccfg, rng);
        cr_assert_eq(stp_tls_handshake(c), 0);
        for (int k = 0; k < 10 && (in_handshake(c) || in_handshake(s)); k++) {
            struct stp_buf b = STP_BUF_INIT;
            drain_out(c, &b);
            double t0 = seconds(CLOCK_THREAD_CPUTIME_ID);
            int rc = b.len ? stp_tls_feed(s, b.data, b.len) : 0;
            server_cpu += seconds(CLOCK_THREAD_CPUTIME_ID) - t0;
            cr_assert_eq(rc, 0);
            stp_buf_free(&b);
            cr_assert_eq(pump(s, c, NULL), 0);
        }
        cr_assert_eq(stp_tls_state(s), STP_TLS_OPEN);
        stp_tls_free(&s);
        stp_tls_free(&c);
    }
    double per = server_cpu / N;
    cr_log_info("%s server handshake: %.2f ms CPU, %.0f handshakes/s per core", label, per * 1e3,
                1 / per);
    fprintf(stderr, "MEASURE tls handshake %s server_ms=%.2f per_core_per_s=%.0f\n", label,
            per * 1e3, 1 / per);
    cr_assert_lt(per, 0.2, "a server handshake under 200 ms of CPU");
    stp_tls_config_unref(&scfg);
    stp_tls_config_unref(&ccfg);
}

Test(tls_perf, handshake_cpu_ecdsa)
{
    handshake_cost("srv_ec.crt", "srv_ec.key", "ECDSA P-256");
}

Test(tls_perf, handshake_cpu_rsa)
{
    handshake_cost("srv_rsa.crt", "srv_rsa.key", "RSA 2048");
}
