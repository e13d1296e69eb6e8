/*
 * tls_config.c - server and client TLS configs: loading, reload, refcount.
 *
 * A config owns its mbedtls_ssl_config, certificate chain, key, CA chain and
 * session-ticket keys, plus copies of the paths it was built from (for a
 * reload). It is built on one thread and is read-only afterwards; the only
 * mutable state is the atomic refcount and the ticket keys, which mbedTLS
 * guards with its own mutex. Loading errors come back as STP_E* codes with a
 * one-line reason for the log.
 */
#include "tls_internal.h"

#include "stampede/error.h"

#include <assert.h>
#include <errno.h>
#include <mbedtls/error.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lifetime of a session ticket (seconds); keys rotate at that pace too. */
#define TICKET_LIFETIME 86400
/* Files we read (PEM chains, keys, passwords) are small. */
#define MAX_FILE (1024 * 1024)

static void mbed_reason(char *err, size_t errlen, const char *what, const char *path, int rc)
{
    char text[160];
    mbedtls_strerror(rc, text, sizeof(text));
    snprintf(err, errlen, "%s %s: %s (-0x%04x)", what, path, text, (unsigned)-rc);
}

/* Read a whole file, NUL-terminated (PEM parsers want the NUL counted). */
static int read_file(const char *path, const char *what, unsigned char **out, size_t *len,
                     char *err, size_t errlen)
{
    int rc = 0;
    unsigned char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc = errno == ENOENT ? STP_ENOT_FOUND : STP_EIO;
        snprintf(err, errlen, "cannot open %s %s: %s", what, path, strerror(errno));
        goto out;
    }
    buf = malloc(MAX_FILE + 1);
    if (!buf) {
        rc = STP_ENOMEM;
        goto out;
    }
    size_t n = fread(buf, 1, MAX_FILE + 1, f);
    if (ferror(f) || n > MAX_FILE) {
        rc = STP_EIO;
        snprintf(err, errlen, "cannot read %s %s: %s", what, path,
                 ferror(f) ? strerror(errno) : "file too large");
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n + 1;
    buf = NULL;
out:
    free(buf);
    if (f)
        fclose(f);
    return rc;
}

static int load_chain(mbedtls_x509_crt *crt, const char *path, const char *what, char *err,
                      size_t errlen)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = read_file(path, what, &buf, &len, err, errlen);
    if (rc)
        return rc;
    int mrc = mbedtls_x509_crt_parse(crt, buf, len);
    free(buf);
    if (mrc < 0) {
        mbed_reason(err, errlen, what, path, mrc);
        return STP_ETLS;
    }
    if (mrc > 0) {
        snprintf(err, errlen, "%s %s: %d certificate(s) could not be parsed", what, path, mrc);
        return STP_ETLS;
    }
    return 0;
}

/* The passphrase is the file's first line (trailing CR/LF removed). */
static int read_password(const char *path, char **out, char *err, size_t errlen)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = read_file(path, "key password file", &buf, &len, err, errlen);
    if (rc)
        return rc;
    buf[strcspn((char *)buf, "\r\n")] = '\0';
    *out = (char *)buf;
    return 0;
}

static int parse_key(mbedtls_pk_context *key, const unsigned char *pem, size_t len,
                     const char *path, const char *password, char *err, size_t errlen)
{
    const unsigned char *pwd = (const unsigned char *)password;
    int mrc = mbedtls_pk_parse_key(key, pem, len, pwd, password ? strlen(password) : 0);
    if (mrc == MBEDTLS_ERR_PK_PASSWORD_REQUIRED) {
        snprintf(err, errlen, "key %s is encrypted and no password file was given", path);
        return STP_ETLS;
    }
    if (mrc == MBEDTLS_ERR_PK_PASSWORD_MISMATCH) {
        snprintf(err, errlen, "wrong password for key %s", path);
        return STP_ETLS;
    }
    if (mrc == MBEDTLS_ERR_PKCS5_FEATURE_UNAVAILABLE ||
        mrc == MBEDTLS_ERR_PK_KEY_INVALID_FORMAT + MBEDTLS_ERR_PKCS5_FEATURE_UNAVAILABLE) {
        snprintf(err, errlen,
                 "key %s: mbedTLS 2.28 cannot decrypt this PKCS#8 key (AES); convert it with "
                 "'openssl pkey -traditional -aes256'",
                 path);
        return STP_ETLS;
    }
    if (mrc) {
        mbed_reason(err, errlen, "key", path, mrc);
        return STP_ETLS;
    }
    mbedtls_pk_type_t type = mbedtls_pk_get_type(key);
    if (type != MBEDTLS_PK_RSA && type != MBEDTLS_PK_ECKEY && type != MBEDTLS_PK_ECDSA) {
        snprintf(err, errlen, "key %s is neither RSA nor ECDSA", path);
        return STP_ETLS;
    }
    return 0;
}

static int load_key(mbedtls_pk_context *key, const char *path, const char *password_path, char *err,
                    size_t errlen)
{
    unsigned char *pem = NULL;
    char *password = NULL;
    size_t len = 0;
    int rc = read_file(path, "key", &pem, &len, err, errlen);
    if (!rc && password_path)
        rc = read_password(password_path, &password, err, errlen);
    if (!rc)
        rc = parse_key(key, pem, len, path, password, err, errlen);
    if (password)
        mbedtls_platform_zeroize(password, strlen(password));
    if (pem)
        mbedtls_platform_zeroize(pem, len);
    free(password);
    free(pem);
    return rc;
}

/* Certificate + key, and the proof that they belong together. */
static int load_pair(struct stp_tls_config *c, const struct stp_tls_paths *p, char *err,
                     size_t errlen)
{
    int rc = load_chain(&c->cert, p->cert, "certificate", err, errlen);
    if (!rc)
        rc = load_key(&c->key, p->key, p->password, err, errlen);
    if (rc)
        return rc;
    c->has_cert = true;
    if (mbedtls_pk_check_pair(&c->cert.pk, &c->key) != 0) {
        snprintf(err, errlen, "key %s does not match certificate %s", p->key, p->cert);
        return STP_ETLS;
    }
    return 0;
}

/* ECDHE groups, in the order a client offers them (the fast ones first). */
static const mbedtls_ecp_group_id curves[] = {
    MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_SECP521R1,  MBEDTLS_ECP_DP_NONE,
};

/* Settings common to both sides: TLS 1.2 only, our suites, our random source. */
static int base_conf(struct stp_tls_config *c, int endpoint, mbedtls_pk_type_t key_type, char *err,
                     size_t errlen)
{
    int rc = stp_tls__suites(c->suites, c->paths.ciphers, key_type, err, errlen);
    if (rc)
        return rc;
    int mrc = mbedtls_ssl_config_defaults(&c->conf, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
                                          MBEDTLS_SSL_PRESET_DEFAULT);
    if (mrc) {
        mbed_reason(err, errlen, "TLS", "defaults", mrc);
        return STP_ETLS;
    }
    mbedtls_ssl_conf_rng(&c->conf, stp_tls__rng_cb, NULL);
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(&c->conf, c->suites);
    /* mbedTLS's default offers secp521r1 first, and the client's order decides. */
    mbedtls_ssl_conf_curves(&c->conf, curves);
    mbedtls_ssl_conf_renegotiation(&c->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    return 0;
}

/* Ticket keys are generated now (with the generator config_new bound). */
static int setup_tickets(struct stp_tls_config *c, char *err, size_t errlen)
{
    int mrc = mbedtls_ssl_ticket_setup(&c->ticket, stp_tls__rng_cb, NULL,
                                       MBEDTLS_CIPHER_AES_256_GCM, TICKET_LIFETIME);
    if (mrc) {
        mbed_reason(err, errlen, "session tickets", "setup", mrc);
        return STP_ETLS;
    }
    c->has_ticket = true;
    mbedtls_ssl_conf_session_tickets_cb(&c->conf, mbedtls_ssl_ticket_write,
                                        mbedtls_ssl_ticket_parse, &c->ticket);
    return 0;
}

/*
 * mbedTLS caches a precomputed table for an EC group's generator inside the
 * group the first time it multiplies by that generator (signing with a key,
 * verifying with a CA's key). The groups of a config are shared by every
 * worker, so that first write would race: fill the caches now, while the
 * config is private to this thread. Afterwards mbedTLS only reads them.
 */
static int warm_ec(mbedtls_pk_context *pk)
{
    if (!mbedtls_pk_can_do(pk, MBEDTLS_PK_ECKEY))
        return 0;
    mbedtls_ecp_keypair *kp = mbedtls_pk_ec(*pk);
    mbedtls_ecp_point r;
    mbedtls_mpi one;
    mbedtls_ecp_point_init(&r);
    mbedtls_mpi_init(&one);
    int mrc = mbedtls_mpi_lset(&one, 1);
    if (!mrc)
        mrc = mbedtls_ecp_mul(&kp->grp, &r, &one, &kp->grp.G, stp_tls__rng_cb, NULL);
    mbedtls_mpi_free(&one);
    mbedtls_ecp_point_free(&r);
    return mrc;
}

static int warm_caches(struct stp_tls_config *c, char *err, size_t errlen)
{
    int mrc = c->has_cert ? warm_ec(&c->key) : 0;
    for (mbedtls_x509_crt *crt = &c->ca; !mrc && c->has_ca && crt; crt = crt->next)
        mrc = warm_ec(&crt->pk);
    for (mbedtls_x509_crt *crt = &c->cert; !mrc && c->has_cert && crt; crt = crt->next)
        mrc = warm_ec(&crt->pk);
    if (mrc) {
        mbed_reason(err, errlen, "EC", "precomputation", mrc);
        return STP_ETLS;
    }
    return 0;
}

static int build_server(struct stp_tls_config *c, char *err, size_t errlen)
{
    const struct stp_tls_paths *p = &c->paths;
    if (!p->cert || !p->key) {
        snprintf(err, errlen, "a TLS listener needs both a certificate and a key");
        return STP_EINVAL;
    }
    if (p->verify != STP_TLS_VERIFY_NONE && !p->ca) {
        snprintf(err, errlen, "verifying client certificates needs a CA file");
        return STP_EINVAL;
    }
    int rc = load_pair(c, p, err, errlen);
    if (!rc && p->ca && !(rc = load_chain(&c->ca, p->ca, "CA file", err, errlen)))
        c->has_ca = true;
    if (!rc)
        rc = base_conf(c, MBEDTLS_SSL_IS_SERVER, mbedtls_pk_get_type(&c->key), err, errlen);
    if (!rc)
        rc = setup_tickets(c, err, errlen);
    if (!rc)
        rc = warm_caches(c, err, errlen);
    if (rc)
        return rc;
    static const int authmode[] = {
        [STP_TLS_VERIFY_NONE] = MBEDTLS_SSL_VERIFY_NONE,
        [STP_TLS_VERIFY_OPTIONAL] = MBEDTLS_SSL_VERIFY_OPTIONAL,
        [STP_TLS_VERIFY_REQUIRED] = MBEDTLS_SSL_VERIFY_REQUIRED,
    };
    mbedtls_ssl_conf_authmode(&c->conf, authmode[p->verify]);
    c->verifies = c->has_ca && p->verify != STP_TLS_VERIFY_NONE;
    if (c->has_ca)
        mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
    mbedtls_ssl_conf_sni(&c->conf, stp_tls__sni_cb, NULL);
    if (mbedtls_ssl_conf_own_cert(&c->conf, &c->cert, &c->key) != 0) {
        snprintf(err, errlen, "out of memory");
        return STP_ENOMEM;
    }
    return 0;
}

static int build_client(struct stp_tls_config *c, char *err, size_t errlen)
{
    const struct stp_tls_paths *p = &c->paths;
    if (!p->cert != !p->key) {
        snprintf(err, errlen, "a client certificate needs both the certificate and its key");
        return STP_EINVAL;
    }
    int rc = 0;
    if (p->cert)
        rc = load_pair(c, p, err, errlen);
    if (!rc && p->ca && !(rc = load_chain(&c->ca, p->ca, "CA file", err, errlen)))
        c->has_ca = true;
    if (!rc)
        rc = base_conf(c, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_PK_NONE, err, errlen);
    if (!rc)
        rc = warm_caches(c, err, errlen);
    if (rc)
        return rc;
    mbedtls_ssl_conf_authmode(&c->conf,
                              c->has_ca ? MBEDTLS_SSL_VERIFY_REQUIRED : MBEDTLS_SSL_VERIFY_NONE);
    c->verifies = c->has_ca;
    if (c->has_ca)
        mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
    if (c->has_cert && mbedtls_ssl_conf_own_cert(&c->conf, &c->cert, &c->key) != 0) {
        snprintf(err, errlen, "out of memory");
        return STP_ENOMEM;
    }
    return 0;
}

static void free_paths(struct stp_tls_paths *p)
{
    free(p->cert);
    free(p->key);
    free(p->password);
    free(p->ca);
    free(p->ciphers);
    free(p->server_name);
    memset(p, 0, sizeof(*p));
}

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : STP_ENOMEM;
}

static int copy_paths(struct stp_tls_paths *dst, const struct stp_tls_paths *src)
{
    int rc = 0;
    rc |= dup_opt(&dst->cert, src->cert);
    rc |= dup_opt(&dst->key, src->key);
    rc |= dup_opt(&dst->password, src->password);
    rc |= dup_opt(&dst->ca, src->ca);
    rc |= dup_opt(&dst->ciphers, src->ciphers);
    rc |= dup_opt(&dst->server_name, src->server_name);
    dst->verify = src->verify;
    return rc ? STP_ENOMEM : 0;
}

static void config_free(struct stp_tls_config *c)
{
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_ssl_ticket_free(&c->ticket);
    mbedtls_x509_crt_free(&c->cert);
    mbedtls_x509_crt_free(&c->ca);
    mbedtls_pk_free(&c->key);
    free_paths(&c->paths);
    free(c);
}

/* Fill a fresh config, with a generator of its own bound for the duration. */
static int build(struct stp_tls_config *c, bool server, const struct stp_tls_paths *p, char *err,
                 size_t errlen)
{
    struct stp_tls_rng *rng = NULL;
    int rc = copy_paths(&c->paths, p);
    if (rc) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    rc = stp_tls_rng_new(&rng);
    if (rc) {
        snprintf(err, errlen, "cannot seed the random generator");
        return rc;
    }
    struct stp_tls_rng *prev = stp_tls__cur_rng;
    stp_tls__cur_rng = rng;
    rc = server ? build_server(c, err, errlen) : build_client(c, err, errlen);
    stp_tls__cur_rng = prev;
    stp_tls_rng_free(&rng);
    return rc;
}

static int config_new(struct stp_tls_config **out, bool server, const struct stp_tls_paths *p,
                      char *err, size_t errlen)
{
    char scratch[1];
    if (!err) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    struct stp_tls_config *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return STP_ENOMEM;
    }
    atomic_init(&c->refs, 1);
    c->server = server;
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_ssl_ticket_init(&c->ticket);
    mbedtls_x509_crt_init(&c->cert);
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_pk_init(&c->key);
    int rc = build(c, server, p, err, errlen);
    if (rc) {
        config_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int stp_tls_server_config_new(struct stp_tls_config **out, const struct stp_tls_server_opts *o,
                              char *err, size_t errlen)
{
    const struct stp_tls_paths p = {
        .cert = (char *)o->cert_path,
        .key = (char *)o->key_path,
        .password = (char *)o->key_password_path,
        .ca = (char *)o->ca_path,
        .ciphers = (char *)o->ciphers,
        .verify = o->verify,
    };
    assert(o->verify >= STP_TLS_VERIFY_NONE && o->verify <= STP_TLS_VERIFY_REQUIRED);
    return config_new(out, true, &p, err, errlen);
}

int stp_tls_client_config_new(struct stp_tls_config **out, const struct stp_tls_client_opts *o,
                              char *err, size_t errlen)
{
    const struct stp_tls_paths p = {
        .cert = (char *)o->cert_path,
        .key = (char *)o->key_path,
        .password = (char *)o->key_password_path,
        .ca = (char *)o->ca_path,
        .ciphers = (char *)o->ciphers,
        .server_name = (char *)o->server_name,
    };
    return config_new(out, false, &p, err, errlen);
}

int stp_tls_config_rebuild(const struct stp_tls_config *old, struct stp_tls_config **out, char *err,
                           size_t errlen)
{
    return config_new(out, old->server, &old->paths, err, errlen);
}

int stp_tls_config_reload(struct stp_tls_config **slot, char *err, size_t errlen)
{
    struct stp_tls_config *fresh = NULL;
    int rc = stp_tls_config_rebuild(*slot, &fresh, err, errlen);
    if (rc)
        return rc;
    stp_tls_config_set(slot, fresh);
    return 0;
}

void stp_tls_config_set(struct stp_tls_config **slot, struct stp_tls_config *cfg)
{
    struct stp_tls_config *old = *slot;
    *slot = cfg;
    if (old)
        stp_tls_config_unref(&old);
}

struct stp_tls_config *stp_tls_config_ref(struct stp_tls_config *c)
{
    /*
     * Relaxed: the caller already holds a reference, so the count cannot reach
     * zero meanwhile, and whoever receives the new reference is synchronized
     * with us by the channel that carries it (a mailbox, a thread start).
     */
    unsigned prev = atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    assert(prev > 0);
    (void)prev;
    return c;
}

void stp_tls_config_unref(struct stp_tls_config **c)
{
    struct stp_tls_config *cfg = *c;
    *c = NULL;
    if (!cfg)
        return;
    /*
     * Acq_rel: the release half puts this thread's reads of the config before
     * its decrement; the acquire half, in the thread that drops the last
     * reference, pairs with every other thread's release (one release
     * sequence on refs), so the free comes after all of their uses. The
     * usual shared_ptr protocol spells the acquire as a fence after a
     * release decrement; ThreadSanitizer does not model fences and reported
     * a SIGHUP reload's free as a race, and on x86 the locked RMW is a full
     * barrier either way (see stp_msg_unref).
     */
    if (atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) != 1)
        return;
    config_free(cfg);
}

int stp_tls_config_describe(const struct stp_tls_config *c, char *buf, size_t n)
{
    char subject[256];
    if (n == 0)
        return STP_EINVAL;
    if (!c->has_cert) {
        snprintf(buf, n, "no certificate");
        return 0;
    }
    const mbedtls_x509_crt *crt = &c->cert;
    if (mbedtls_x509_dn_gets(subject, sizeof(subject), &crt->subject) < 0)
        snprintf(subject, sizeof(subject), "?");
    const mbedtls_x509_time *to = &crt->valid_to;
    snprintf(buf, n, "%s key, certificate %s, valid until %04d-%02d-%02d%s",
             mbedtls_pk_get_name(&c->key), subject, to->year, to->mon, to->day,
             mbedtls_x509_time_is_past(to) ? " (EXPIRED)" : "");
    return 0;
}

bool stp_tls_config_is_server(const struct stp_tls_config *c)
{
    return c->server;
}
