/*
 * Unit tests of TLS configs: loading errors and their messages, encrypted
 * keys, cipher lists, and reload (SIGHUP) keeping the old pair when the new
 * one is unusable.
 */
#include "test_tls_util.h"

#include "tls/tls_internal.h"

#include <mbedtls/aesni.h>

TestSuite(tls_config, .init = setup, .fini = teardown, .timeout = 60);

struct result {
    int rc;
    char err[512];
    struct stp_tls_config *cfg;
};

static struct result try_server(struct stp_tls_server_opts o)
{
    struct result r = {0};
    r.rc = stp_tls_server_config_new(&r.cfg, &o, r.err, sizeof(r.err));
    if (r.rc)
        cr_assert_null(r.cfg, "no config on failure");
    return r;
}

static struct stp_tls_server_opts opts(const char *cert, const char *key)
{
    return (struct stp_tls_server_opts){.cert_path = cpath(cert), .key_path = cpath(key)};
}

static void expect_error(struct result r, int rc, const char *needle)
{
    cr_assert_eq(r.rc, rc, "rc %d (%s), want %s: %s", r.rc, stp_strerror(r.rc), stp_strerror(rc),
                 r.err);
    cr_assert(strstr(r.err, needle) != NULL, "'%s' not in: %s", needle, r.err);
}

/* Handshake a client (no verification) with a server config; 0 if it worked. */
static int try_handshake(struct stp_tls_config *scfg, const char *ciphers, char *suite, size_t n)
{
    struct stp_tls_client_opts co = {.ciphers = ciphers};
    struct stp_tls_config *ccfg = NULL;
    char err[256];
    cr_assert_eq(stp_tls_client_config_new(&ccfg, &co, err, sizeof(err)), 0, "%s", err);
    struct stp_tls *s = engine(scfg, rng), *c = engine(ccfg, rng);
    int rc = handshake(c, s);
    if (!rc) {
        cr_assert_eq(stp_tls_state(s), STP_TLS_OPEN);
        expect_transfer(c, s, "x");
    }
    if (suite)
        snprintf(suite, n, "%s", stp_tls_ciphersuite(s));
    stp_tls_free(&s);
    stp_tls_free(&c);
    stp_tls_config_unref(&ccfg);
    return rc;
}

Test(tls_config, server_configs_load)
{
    struct result r = try_server(opts("srv_rsa.crt", "srv_rsa.key"));
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(stp_tls_config_is_server(r.cfg));
    cr_assert_eq(try_handshake(r.cfg, NULL, NULL, 0), 0);
    stp_tls_config_unref(&r.cfg);
    r = try_server(opts("srv_ec.crt", "srv_ec.key"));
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_eq(try_handshake(r.cfg, NULL, NULL, 0), 0);
    stp_tls_config_unref(&r.cfg);
}

Test(tls_config, missing_files)
{
    expect_error(try_server(opts("nope.crt", "srv_ec.key")), STP_ENOT_FOUND, "nope.crt");
    expect_error(try_server(opts("srv_ec.crt", "nope.key")), STP_ENOT_FOUND,
                 "No such file or directory");
    struct stp_tls_server_opts o = opts("srv_ec.crt", "srv_ec.key");
    o.ca_path = cpath("nope-ca.crt");
    o.verify = STP_TLS_VERIFY_REQUIRED;
    expect_error(try_server(o), STP_ENOT_FOUND, "nope-ca.crt");
    o = opts("srv_ec_enc.key", "srv_ec_enc.key");
    o.cert_path = cpath("srv_ec.crt");
    o.key_password_path = cpath("nope-pw.txt");
    expect_error(try_server(o), STP_ENOT_FOUND, "nope-pw.txt");
    struct stp_tls_server_opts none = {0};
    expect_error(try_server(none), STP_EINVAL, "certificate and a key");
}

Test(tls_config, unusable_material)
{
    expect_error(try_server(opts("junk.pem", "srv_ec.key")), STP_ETLS, "junk.pem");
    expect_error(try_server(opts("srv_ec.crt", "junk.pem")), STP_ETLS, "junk.pem");
    expect_error(try_server(opts("srv_ec.crt", "srv_ec.crt")), STP_ETLS, "srv_ec.crt");
    expect_error(try_server(opts("srv_rsa.crt", "srv_ec.key")), STP_ETLS, "does not match");
    expect_error(try_server(opts("srv_ec.crt", "srv2.key")), STP_ETLS, "does not match");
}

Test(tls_config, error_buffer_is_optional_and_bounded)
{
    struct stp_tls_server_opts o = opts("nope.crt", "srv_ec.key");
    struct stp_tls_config *c = NULL;
    cr_assert_eq(stp_tls_server_config_new(&c, &o, NULL, 0), STP_ENOT_FOUND);
    char tiny[8];
    memset(tiny, 'z', sizeof(tiny));
    cr_assert_eq(stp_tls_server_config_new(&c, &o, tiny, sizeof(tiny)), STP_ENOT_FOUND);
    cr_assert_eq(strlen(tiny), sizeof(tiny) - 1, "truncated and terminated");
}

static struct result encrypted(const char *key, const char *crt, const char *pw)
{
    struct stp_tls_server_opts o = opts(crt, key);
    o.key_password_path = pw ? cpath(pw) : NULL;
    return try_server(o);
}

Test(tls_config, encrypted_keys)
{
    /* Traditional PEM encryption (AES-256-CBC for EC, 3DES for RSA): right password. */
    struct result r = encrypted("srv_ec_enc.key", "srv_ec.crt", "pw.txt");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_eq(try_handshake(r.cfg, NULL, NULL, 0), 0);
    stp_tls_config_unref(&r.cfg);
    r = encrypted("srv_rsa_enc.key", "srv_rsa.crt", "pw.txt");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    stp_tls_config_unref(&r.cfg);
    /* Wrong password, no password. */
    expect_error(encrypted("srv_ec_enc.key", "srv_ec.crt", "badpw.txt"), STP_ETLS,
                 "wrong password");
    expect_error(encrypted("srv_rsa_enc.key", "srv_rsa.crt", "badpw.txt"), STP_ETLS,
                 "srv_rsa_enc.key");
    expect_error(encrypted("srv_ec_enc.key", "srv_ec.crt", NULL), STP_ETLS, "password file");
    /* A password file with an unencrypted key is harmless. */
    r = encrypted("srv_ec.key", "srv_ec.crt", "pw.txt");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    stp_tls_config_unref(&r.cfg);
}

Test(tls_config, pkcs8_encrypted_key_gets_a_clear_answer)
{
    /* openssl's default PKCS#8 + AES: either it loads, or the message names the key. */
    struct result r = encrypted("srv_ec_p8.key", "srv_ec.crt", "pw.txt");
    if (r.rc == 0) {
        cr_assert_eq(try_handshake(r.cfg, NULL, NULL, 0), 0);
        stp_tls_config_unref(&r.cfg);
    } else {
        cr_log_info("PKCS#8/AES key: %s", r.err);
        expect_error(r, STP_ETLS, "srv_ec_p8.key");
        cr_assert(strstr(r.err, "openssl pkey -traditional") != NULL, "a hint: %s", r.err);
    }
}

Test(tls_config, verify_needs_a_ca)
{
    struct stp_tls_server_opts o = opts("srv_ec.crt", "srv_ec.key");
    o.verify = STP_TLS_VERIFY_OPTIONAL;
    expect_error(try_server(o), STP_EINVAL, "CA");
    o.ca_path = cpath("junk.pem");
    expect_error(try_server(o), STP_ETLS, "junk.pem");
}

Test(tls_config, cipher_lists)
{
    char suite[96];
    struct stp_tls_server_opts o = opts("srv_rsa.crt", "srv_rsa.key");
    const char *bad[] = {"AES128-SHA", "ECDHE-RSA-AES128-SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256",
                         "ECDHE-RSA-AES128-GCM-SHA256:DES-CBC3-SHA", "RC4"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o.ciphers = bad[i];
        expect_error(try_server(o), STP_EINVAL, "not allowed");
    }
    o.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256";
    expect_error(try_server(o), STP_EINVAL, "RSA key");
    o.ciphers = ":,";
    expect_error(try_server(o), STP_EINVAL, "no cipher suite");
    /* The server's order wins; all three spellings are understood. */
    const char *good[][2] = {
        {"ECDHE-RSA-AES256-GCM-SHA384", "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384"},
        {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, ECDHE-RSA-AES128-GCM-SHA256",
         "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256"},
        {"ECDHE-ECDSA-AES128-GCM-SHA256:TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256",
         "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256"},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        o.ciphers = good[i][0];
        struct result r = try_server(o);
        cr_assert_eq(r.rc, 0, "%s: %s", good[i][0], r.err);
        cr_assert_eq(try_handshake(r.cfg, NULL, suite, sizeof(suite)), 0);
        cr_assert_str_eq(suite, good[i][1]);
        stp_tls_config_unref(&r.cfg);
    }
}

Test(tls_config, default_order_follows_aesni)
{
    char suite[96];
    struct result r = try_server(opts("srv_ec.crt", "srv_ec.key"));
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_eq(try_handshake(r.cfg, NULL, suite, sizeof(suite)), 0);
    bool aesni = mbedtls_aesni_has_support(MBEDTLS_AESNI_AES) != 0;
    cr_assert_str_eq(suite, aesni ? "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"
                                  : "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256");
    /* A client that only speaks ChaCha20 still gets in. */
    cr_assert_eq(try_handshake(r.cfg, "ECDHE-ECDSA-CHACHA20-POLY1305", suite, sizeof(suite)), 0);
    cr_assert_str_eq(suite, "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256");
    /* No suite in common: refused. */
    cr_assert_eq(try_handshake(r.cfg, "ECDHE-RSA-AES128-GCM-SHA256", NULL, 0), STP_ETLS);
    stp_tls_config_unref(&r.cfg);
}

Test(tls_config, client_config_checks)
{
    struct stp_tls_client_opts o = {.cert_path = cpath("alice.crt")};
    struct stp_tls_config *c = NULL;
    char err[256];
    cr_assert_eq(stp_tls_client_config_new(&c, &o, err, sizeof(err)), STP_EINVAL);
    cr_assert(strstr(err, "both") != NULL, "%s", err);
    o.key_path = cpath("mallory.key");
    cr_assert_eq(stp_tls_client_config_new(&c, &o, err, sizeof(err)), STP_ETLS);
    cr_assert(strstr(err, "does not match") != NULL, "%s", err);
    o = (struct stp_tls_client_opts){.ca_path = cpath("nope.crt")};
    cr_assert_eq(stp_tls_client_config_new(&c, &o, err, sizeof(err)), STP_ENOT_FOUND);
    o = (struct stp_tls_client_opts){.ciphers = "AES256-SHA"};
    cr_assert_eq(stp_tls_client_config_new(&c, &o, err, sizeof(err)), STP_EINVAL);
    o = (struct stp_tls_client_opts){.ca_path = cpath("ca1.crt"), .server_name = "localhost"};
    cr_assert_eq(stp_tls_client_config_new(&c, &o, err, sizeof(err)), 0, "%s", err);
    cr_assert_not(stp_tls_config_is_server(c));
    stp_tls_config_unref(&c);
}

/* Copy a generated file to a path of the test's own. */
static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(cpath(from), "rb"), *out = fopen(to, "wb");
    cr_assert(in && out);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        cr_assert_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    cr_assert_eq(fclose(out), 0);
}

/* The subject of the certificate a fresh client sees from this config. */
static void served_subject(struct stp_tls_config *scfg, char *subj, size_t n)
{
    struct stp_tls_config *ccfg = client_cfg("ca1.crt", NULL, NULL, NULL);
    struct stp_tls *s = engine(scfg, rng), *c = engine(ccfg, rng);
    cr_assert_eq(handshake(c, s), 0);
    cr_assert_eq(stp_tls_peer_subject(c, subj, n), 0);
    stp_tls_free(&s);
    stp_tls_free(&c);
    stp_tls_config_unref(&ccfg);
}

Test(tls_config, reload_swaps_only_a_good_pair)
{
    char crt[300], key[300], subj[128], err[256];
    snprintf(crt, sizeof(crt), "%s", cpath("reload.crt"));
    snprintf(key, sizeof(key), "%s", cpath("reload.key"));
    copy_file("srv_ec.crt", crt);
    copy_file("srv_ec.key", key);
    struct stp_tls_server_opts o = {.cert_path = crt, .key_path = key};
    struct stp_tls_config *slot = NULL;
    cr_assert_eq(stp_tls_server_config_new(&slot, &o, err, sizeof(err)), 0, "%s", err);
    /* An open connection on the first config. */
    struct stp_tls_config *ccfg = client_cfg(NULL, NULL, NULL, NULL);
    struct stp_tls *s = engine(slot, rng), *c = engine(ccfg, rng);
    cr_assert_eq(handshake(c, s), 0);

    /* Half-updated files (new certificate, old key): refused, the old config stays. */
    copy_file("srv2.crt", crt);
    struct stp_tls_config *before = slot;
    cr_assert_eq(stp_tls_config_reload(&slot, err, sizeof(err)), STP_ETLS);
    cr_assert(strstr(err, "does not match") != NULL, "%s", err);
    cr_assert_eq(slot, before, "slot unchanged");
    served_subject(slot, subj, sizeof(subj));
    cr_assert_str_eq(subj, "CN=localhost");
    /* A missing key: refused too. */
    remove(key);
    cr_assert_eq(stp_tls_config_reload(&slot, err, sizeof(err)), STP_ENOT_FOUND);
    cr_assert_eq(slot, before);

    /* The complete new pair: swapped; new handshakes see it. */
    copy_file("srv2.key", key);
    cr_assert_eq(stp_tls_config_reload(&slot, err, sizeof(err)), 0, "%s", err);
    cr_assert_neq(slot, before);
    served_subject(slot, subj, sizeof(subj));
    cr_assert_str_eq(subj, "CN=localhost2");
    /* The connection opened before the reload keeps working on the old config. */
    expect_transfer(c, s, "still here");
    expect_transfer(s, c, "and back");
    stp_tls_free(&s);
    stp_tls_free(&c);
    stp_tls_config_unref(&ccfg);
    stp_tls_config_unref(&slot);
}

Test(tls_config, rebuild_and_set)
{
    char err[256];
    struct stp_tls_config *a = server_cfg("srv_ec.crt", "srv_ec.key", "ca1.crt",
                                          STP_TLS_VERIFY_REQUIRED, "ECDHE-ECDSA-AES256-GCM-SHA384");
    struct stp_tls_config *b = NULL;
    cr_assert_eq(stp_tls_config_rebuild(a, &b, err, sizeof(err)), 0, "%s", err);
    cr_assert_neq(a, b);
    /* The rebuilt one keeps every option: client certs required, the one suite. */
    struct stp_tls_config *ccfg = client_cfg(NULL, NULL, "alice.crt", "alice.key");
    struct stp_tls *s = engine(b, rng), *c = engine(ccfg, rng);
    cr_assert_eq(handshake(c, s), 0);
    cr_assert(stp_tls_peer_verified(s));
    cr_assert_str_eq(stp_tls_ciphersuite(s), "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384");
    stp_tls_free(&s);
    stp_tls_free(&c);
    stp_tls_config_unref(&ccfg);
    /* A worker's slot takes the new reference and drops the old one. */
    struct stp_tls_config *slot = stp_tls_config_ref(a);
    stp_tls_config_set(&slot, stp_tls_config_ref(b));
    cr_assert_eq(slot, b);
    stp_tls_config_unref(&slot);
    stp_tls_config_unref(&a);
    stp_tls_config_unref(&b);
    cr_assert_null(a);
}

/*
 * mbedTLS fills an EC group's generator table on first use; for the shared
 * groups of a config that must happen at load time, not racily on two workers.
 */
Test(tls_config, shared_ec_groups_are_precomputed_at_load)
{
    struct stp_tls_config *c =
        server_cfg("srv_ec.crt", "srv_ec.key", "ca1.crt", STP_TLS_VERIFY_REQUIRED, NULL);
    cr_assert_not_null(mbedtls_pk_ec(c->key)->grp.T, "own key");
    cr_assert_not_null(mbedtls_pk_ec(c->ca.pk)->grp.T, "CA key");
    stp_tls_config_unref(&c);
    c = client_cfg("ca1.crt", NULL, "alice.crt", "alice.key");
    cr_assert_not_null(mbedtls_pk_ec(c->key)->grp.T, "client key");
    cr_assert_not_null(mbedtls_pk_ec(c->ca.pk)->grp.T, "CA key");
    stp_tls_config_unref(&c);
}

Test(tls_config, describe_for_the_log)
{
    char line[256];
    struct stp_tls_config *c =
        server_cfg("srv_rsa.crt", "srv_rsa.key", NULL, STP_TLS_VERIFY_NONE, NULL);
    cr_assert_eq(stp_tls_config_describe(c, line, sizeof(line)), 0);
    cr_assert(strstr(line, "RSA key, certificate CN=localhost, valid until 20") == line, "%s",
              line);
    cr_assert_null(strstr(line, "EXPIRED"), "%s", line);
    stp_tls_config_unref(&c);
    c = server_cfg("srv2.crt", "srv2.key", NULL, STP_TLS_VERIFY_NONE, NULL);
    cr_assert_eq(stp_tls_config_describe(c, line, sizeof(line)), 0);
    cr_assert(strstr(line, "EC key, certificate CN=localhost2") == line, "%s", line);
    stp_tls_config_unref(&c);
    c = client_cfg(NULL, NULL, NULL, NULL);
    cr_assert_eq(stp_tls_config_describe(c, line, sizeof(line)), 0);
    cr_assert_str_eq(line, "no certificate");
    cr_assert_eq(stp_tls_config_describe(c, line, 0), STP_EINVAL);
    stp_tls_config_unref(&c);
}

Test(tls_config, odd_inputs)
{
    /* A directory where a file should be. */
    struct stp_tls_server_opts o = opts("srv_ec.crt", "srv_ec.key");
    o.cert_path = getenv(CERT_ENV);
    expect_error(try_server(o), STP_EIO, "cannot read");
    /* A cipher name longer than any suite's, and a duplicate. */
    o = opts("srv_ec.crt", "srv_ec.key");
    char longname[200];
    memset(longname, 'A', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    o.ciphers = longname;
    expect_error(try_server(o), STP_EINVAL, "too long");
    o.ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384:ecdhe-ecdsa-aes256-gcm-sha384";
    struct result r = try_server(o);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_eq(r.cfg->suites[1], 0, "one suite, listed once");
    stp_tls_config_unref(&r.cfg);
}
