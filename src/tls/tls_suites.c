/*
 * tls_suites.c - the cipher suites Stampede allows and the --tls-ciphers parser.
 *
 * Only TLS 1.2 ECDHE suites with an AEAD cipher (AES-GCM, ChaCha20-Poly1305)
 * are known here, so nothing else can ever be configured. Pure functions over
 * a constant table: safe on any thread.
 */
#include "tls_internal.h"

#include "stampede/error.h"

#include <assert.h>
#include <mbedtls/aesni.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct suite {
    int id;
    bool ecdsa; /* certificate kind: ECDSA, else RSA */
    bool gcm;   /* AES-GCM, else ChaCha20-Poly1305 */
    const char *openssl, *iana, *mbed;
};

static const struct suite suites[] = {
    {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, true, true, "ECDHE-ECDSA-AES128-GCM-SHA256",
     "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"},
    {MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, false, true, "ECDHE-RSA-AES128-GCM-SHA256",
     "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256"},
    {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, true, true, "ECDHE-ECDSA-AES256-GCM-SHA384",
     "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384"},
    {MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, false, true, "ECDHE-RSA-AES256-GCM-SHA384",
     "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384"},
    {MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, true, false,
     "ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
     "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256"},
    {MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, false, false,
     "ECDHE-RSA-CHACHA20-POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
     "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256"},
};
#define NSUITES (sizeof(suites) / sizeof(suites[0]))
_Static_assert(NSUITES < STP_TLS_MAX_SUITES, "room for the terminating 0");

static const struct suite *find_suite(const char *name)
{
    for (size_t i = 0; i < NSUITES; i++) {
        const struct suite *s = &suites[i];
        if (!strcasecmp(name, s->openssl) || !strcasecmp(name, s->iana) ||
            !strcasecmp(name, s->mbed))
            return s;
    }
    return NULL;
}

/* Whether a suite can be used with a key of this type (NONE: any, a client). */
static bool fits(const struct suite *s, mbedtls_pk_type_t key_type)
{
    if (key_type == MBEDTLS_PK_NONE)
        return true;
    if (key_type == MBEDTLS_PK_RSA)
        return !s->ecdsa;
    return s->ecdsa;
}

static int add(int *out, size_t *n, int id)
{
    for (size_t i = 0; i < *n; i++)
        if (out[i] == id)
            return 0;
    assert(*n + 1 < STP_TLS_MAX_SUITES);
    out[(*n)++] = id;
    out[*n] = 0;
    return 0;
}

static void default_order(int *out, size_t *n, mbedtls_pk_type_t key_type)
{
    bool gcm_first = mbedtls_aesni_has_support(MBEDTLS_AESNI_AES) != 0;
    for (int pass = 0; pass < 2; pass++) {
        bool want_gcm = (pass == 0) == gcm_first;
        for (size_t i = 0; i < NSUITES; i++)
            if (suites[i].gcm == want_gcm && fits(&suites[i], key_type))
                add(out, n, suites[i].id);
    }
}

/* Parse one name of the list (len bytes at p) and append it if it fits. */
static int add_named(int *out, size_t *n, const char *p, size_t len, mbedtls_pk_type_t key_type,
                     char *err, size_t errlen)
{
    char name[64];
    if (len >= sizeof(name)) {
        snprintf(err, errlen, "cipher suite name too long: %.40s...", p);
        return STP_EINVAL;
    }
    memcpy(name, p, len);
    name[len] = '\0';
    const struct suite *s = find_suite(name);
    if (!s) {
        snprintf(err, errlen,
                 "cipher suite '%s' is not allowed (TLS 1.2 ECDHE with AES-GCM or "
                 "ChaCha20-Poly1305 only)",
                 name);
        return STP_EINVAL;
    }
    if (fits(s, key_type))
        add(out, n, s->id);
    return 0;
}

int stp_tls__suites(int *out, const char *spec, mbedtls_pk_type_t key_type, char *err,
                    size_t errlen)
{
    size_t n = 0;
    out[0] = 0;
    if (!spec || !*spec) {
        default_order(out, &n, key_type);
        return 0;
    }
    for (const char *p = spec; *p;) {
        size_t len = strcspn(p, ":, ");
        if (len > 0) {
            int rc = add_named(out, &n, p, len, key_type, err, errlen);
            if (rc)
                return rc;
        }
        p += len;
        p += strspn(p, ":, ");
    }
    if (n == 0) {
        snprintf(err, errlen, "no cipher suite in '%s' fits the %s key", spec,
                 key_type == MBEDTLS_PK_RSA ? "RSA" : "ECDSA");
        return STP_EINVAL;
    }
    return 0;
}
