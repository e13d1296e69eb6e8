/*
 * tls_internal.h - what the files of src/tls/ share and nothing else sees.
 *
 * The config is defined here so the engine can reach its mbedTLS config; the
 * per-thread "current generator" is how a shared, read-only mbedtls_ssl_config
 * ends up drawing randomness from the calling worker's own CTR-DRBG.
 */
#ifndef STAMPEDE_TLS_INTERNAL_H
#define STAMPEDE_TLS_INTERNAL_H

#include "stampede/tls.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>
#include <stdatomic.h>

/* Room for the zero-terminated list of allowed suites. */
#define STP_TLS_MAX_SUITES 8

struct stp_tls_rng {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
};

/* The options a config was built from, copied, so a reload can rebuild it. */
struct stp_tls_paths {
    char *cert, *key, *password, *ca, *ciphers, *server_name;
    enum stp_tls_verify verify;
};

struct stp_tls_config {
    /* Engines on any worker take and drop references (see stp_tls_config_unref). */
    atomic_uint refs;
    bool server;
    bool has_cert;
    bool has_ca;
    bool has_ticket;
    bool verifies; /* the peer's certificate is checked against `ca` */
    mbedtls_ssl_config conf;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_x509_crt ca;
    mbedtls_ssl_ticket_context ticket;
    int suites[STP_TLS_MAX_SUITES];
    struct stp_tls_paths paths;
};

/*
 * The generator that the random callback of every config uses on this thread.
 * Engine calls set it to their engine's generator and restore it on return.
 */
extern _Thread_local struct stp_tls_rng *stp_tls__cur_rng;
int stp_tls__rng_cb(void *unused, unsigned char *out, size_t len);
/* SNI callback installed on server configs (defined with the engine). */
int stp_tls__sni_cb(void *unused, mbedtls_ssl_context *ssl, const unsigned char *name, size_t len);

/* Ordered cipher-suite list for a config: 0 or STP_EINVAL with a reason. */
int stp_tls__suites(int *suites, const char *spec, mbedtls_pk_type_t key_type, char *err,
                    size_t errlen);

#endif
