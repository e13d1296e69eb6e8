/*
 * test_tls_util.h - shared by the tests/unit/test_tls_*.c files (header-only).
 *
 * Certificates are generated once per test executable with the openssl
 * command line into a fresh temporary directory (no private key is
 * committed): CA 1 and CA 2 (ECDSA), server pairs signed by CA 1 (RSA 2048,
 * ECDSA P-256, a second ECDSA "srv2" for reload tests), a client "alice" from
 * CA 1 and "mallory" from CA 2, and an encrypted copy of the ECDSA server key
 * with its password file. The directory is passed to the forked tests through
 * the environment and removed when the run ends.
 *
 * The helpers move ciphertext between two engines entirely in memory.
 */
#ifndef STAMPEDE_TEST_TLS_UTIL_H
#define STAMPEDE_TEST_TLS_UTIL_H

#include "stampede/buf.h"
#include "stampede/error.h"
#include "stampede/tls.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CERT_ENV "STP_TLS_TEST_CERTS"

static const char gen_script[] =
    "set -e; cd \"$1\"; exec 2>gen.log\n"
    "ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1; }\n"
    "ca() { ec $1.key; openssl req -x509 -new -key $1.key -out $1.crt -days 2 -subj \"/CN=$2\"; }\n"
    "leaf() { openssl req -new -key $1.key -out $1.csr -subj \"/CN=$2\";\n"
    "  printf 'basicConstraints=CA:FALSE\\nsubjectAltName=DNS:%s\\n' $2 > $1.ext;\n"
    "  openssl x509 -req -in $1.csr -CA $3.crt -CAkey $3.key -CAcreateserial -days 2 \\\n"
    "    -extfile $1.ext -out $1.crt; }\n"
    "ca ca1 'Stampede Test CA 1'; ca ca2 'Stampede Test CA 2'\n"
    "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out srv_rsa.key\n"
    "leaf srv_rsa localhost ca1\n"
    "ec srv_ec.key; leaf srv_ec localhost ca1\n"
    "ec srv2.key; leaf srv2 localhost2 ca1\n"
    "ec alice.key; leaf alice alice ca1\n"
    "ec mallory.key; leaf mallory mallory ca2\n"
    "printf 'correct horse\\n' > pw.txt; printf 'wrong horse\\n' > badpw.txt\n"
    "openssl ec -in srv_ec.key -aes256 -passout file:pw.txt -out srv_ec_enc.key\n"
    "openssl rsa -in srv_rsa.key -traditional -des3 -passout file:pw.txt -out srv_rsa_enc.key\n"
    "openssl pkey -in srv_ec.key -aes256 -passout file:pw.txt -out srv_ec_p8.key\n"
    "printf 'not a certificate\\n' > junk.pem\n";

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    static char dir[] = "/tmp/stp-tls-test-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    char cmd[600];
    /* Run the script from a file: simpler than quoting it for sh -c. */
    char script[256];
    snprintf(script, sizeof(script), "%s/gen.sh", dir);
    FILE *f = fopen(script, "w");
    if (!f || fputs(gen_script, f) < 0 || fclose(f) != 0) {
        perror("gen.sh");
        exit(1);
    }
    snprintf(cmd, sizeof(cmd), "sh %s %s", script, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "certificate generation failed, see %s/gen.log\n", dir);
        exit(1);
    }
    setenv(CERT_ENV, dir, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    const char *dir = getenv(CERT_ENV);
    if (dir && strncmp(dir, "/tmp/stp-tls-test-", 18) == 0) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
}

/* One test at a time: the machine is shared, and handshakes are CPU work. */
int main(int argc, char *argv[])
{
    struct criterion_test_set *tests = criterion_initialize();
    criterion_options.jobs = 1;
    int result = 0;
    if (criterion_handle_args(argc, argv, true))
        result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return result;
}

/* Path of a generated file; eight rotating buffers. */
static inline const char *cpath(const char *name)
{
    static char bufs[8][256];
    static int next;
    const char *dir = getenv(CERT_ENV);
    cr_assert_not_null(dir, "certificates were not generated");
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
    return b;
}

static inline struct stp_tls_config *server_cfg(const char *cert, const char *key, const char *ca,
                                                enum stp_tls_verify verify, const char *ciphers)
{
    struct stp_tls_server_opts o = {
        .cert_path = cpath(cert),
        .key_path = cpath(key),
        .ca_path = ca ? cpath(ca) : NULL,
        .verify = verify,
        .ciphers = ciphers,
    };
    struct stp_tls_config *c = NULL;
    char err[256] = "";
    int rc = stp_tls_server_config_new(&c, &o, err, sizeof(err));
    cr_assert_eq(rc, 0, "server config: %s (%s)", err, stp_strerror(rc));
    return c;
}

/* Client config; cert/key optional (NULL), ca NULL means no verification. */
static inline struct stp_tls_config *client_cfg(const char *ca, const char *name, const char *cert,
                                                const char *key)
{
    struct stp_tls_client_opts o = {
        .ca_path = ca ? cpath(ca) : NULL,
        .server_name = name,
        .cert_path = cert ? cpath(cert) : NULL,
        .key_path = key ? cpath(key) : NULL,
    };
    struct stp_tls_config *c = NULL;
    char err[256] = "";
    int rc = stp_tls_client_config_new(&c, &o, err, sizeof(err));
    cr_assert_eq(rc, 0, "client config: %s (%s)", err, stp_strerror(rc));
    return c;
}

static inline struct stp_tls *engine(struct stp_tls_config *cfg, struct stp_tls_rng *rng)
{
    struct stp_tls *t = NULL;
    cr_assert_eq(stp_tls_new(&t, cfg, rng), 0);
    return t;
}

/* Take all pending ciphertext of `from` and append it to `dst`. */
static inline void drain_out(struct stp_tls *from, struct stp_buf *dst)
{
    const char *p;
    size_t len;
    for (;;) {
        cr_assert_geq(stp_tls_out_take(from, &p, &len), 0);
        if (len == 0)
            break;
        cr_assert_eq(stp_buf_append(dst, p, len), 0);
        stp_tls_out_release(from);
    }
}

/* Move ciphertext from -> to in one feed. Returns the feed's result. */
static inline int pump(struct stp_tls *from, struct stp_tls *to, size_t *moved)
{
    struct stp_buf b = STP_BUF_INIT;
    drain_out(from, &b);
    int rc = b.len ? stp_tls_feed(to, b.data, b.len) : 0;
    if (moved)
        *moved = b.len;
    stp_buf_free(&b);
    return rc;
}

static inline bool in_handshake(struct stp_tls *t)
{
    return stp_tls_state(t) == STP_TLS_HANDSHAKE;
}

/*
 * Run the handshake until both sides are done or nothing moves. Returns the
 * first feed error (0 if none); failed sides are left in STP_TLS_FAILED.
 */
static inline int handshake(struct stp_tls *c, struct stp_tls *s)
{
    int rc = stp_tls_handshake(c);
    for (int i = 0; !rc && i < 20; i++) {
        size_t a = 0, b = 0;
        rc = pump(c, s, &a);
        if (!rc)
            rc = pump(s, c, &b);
        if (a == 0 && b == 0 && (!in_handshake(c) || !in_handshake(s)))
            break;
    }
    if (rc) {
        /* Deliver the alert of the failing side, like a connection would. */
        pump(s, c, NULL);
        pump(c, s, NULL);
    }
    return rc;
}

static inline void write_str(struct stp_tls *t, const char *s)
{
    struct iovec iov = {.iov_base = (void *)s, .iov_len = strlen(s)};
    cr_assert_eq(stp_tls_write(t, &iov, 1), 0);
}

/* Read all plaintext available in t into dst; returns the last read result. */
static inline ssize_t read_all(struct stp_tls *t, struct stp_buf *dst)
{
    char tmp[4096];
    ssize_t r;
    while ((r = stp_tls_read(t, tmp, sizeof(tmp))) > 0)
        cr_assert_eq(stp_buf_append(dst, tmp, (size_t)r), 0);
    return r;
}

/* Send s from `from` to `to` and check it arrives intact. */
static inline void expect_transfer(struct stp_tls *from, struct stp_tls *to, const char *s)
{
    struct stp_buf got = STP_BUF_INIT;
    write_str(from, s);
    cr_assert_eq(pump(from, to, NULL), 0);
    cr_assert_eq(read_all(to, &got), 0);
    cr_assert_eq(got.len, strlen(s));
    cr_assert_eq(memcmp(got.data, s, got.len), 0);
    stp_buf_free(&got);
}

/* One generator per test process (each test runs in its own process). */
static struct stp_tls_rng *rng;

static inline void setup(void)
{
    cr_assert_eq(stp_tls_rng_new(&rng), 0);
}

static inline void teardown(void)
{
    stp_tls_rng_free(&rng);
}

/* A server engine and a client engine, each with its config reference. */
struct pair {
    struct stp_tls_config *scfg, *ccfg;
    struct stp_tls *s, *c;
};

/* Takes the callers' references on both configs. */
static inline void pair_open(struct pair *p, struct stp_tls_config *scfg,
                             struct stp_tls_config *ccfg)
{
    p->scfg = scfg;
    p->ccfg = ccfg;
    p->s = engine(scfg, rng);
    p->c = engine(ccfg, rng);
}

static inline void pair_close(struct pair *p)
{
    stp_tls_free(&p->s);
    stp_tls_free(&p->c);
    stp_tls_config_unref(&p->scfg);
    stp_tls_config_unref(&p->ccfg);
}

static inline void assert_open(struct pair *p)
{
    char e1[256], e2[256];
    cr_assert_eq(stp_tls_state(p->s), STP_TLS_OPEN, "server: %s",
                 stp_tls_errtext(p->s, e1, sizeof(e1)));
    cr_assert_eq(stp_tls_state(p->c), STP_TLS_OPEN, "client: %s",
                 stp_tls_errtext(p->c, e2, sizeof(e2)));
}

#endif
