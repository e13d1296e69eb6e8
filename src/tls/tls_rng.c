/*
 * tls_rng.c - one CTR-DRBG per worker, and the random callback of every config.
 *
 * A config is shared by all workers but mbedTLS keeps its random callback in
 * the config. The callback therefore ignores its context argument and draws
 * from the generator bound to the calling thread (stp_tls__cur_rng), which the
 * engine sets around each call into mbedTLS. A generator is used by one
 * thread only; mbedTLS still takes its (uncontended) mutex inside.
 */
#include "tls_internal.h"

#include "stampede/error.h"

#include <assert.h>
#include <stdlib.h>

_Thread_local struct stp_tls_rng *stp_tls__cur_rng;

int stp_tls_rng_new(struct stp_tls_rng **out)
{
    static const unsigned char pers[] = "stampede-tls";
    struct stp_tls_rng *r = malloc(sizeof(*r));
    if (!r)
        return STP_ENOMEM;
    mbedtls_entropy_init(&r->entropy);
    mbedtls_ctr_drbg_init(&r->drbg);
    int rc =
        mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy, pers, sizeof(pers) - 1);
    if (rc) {
        stp_tls_rng_free(&r);
        return STP_ETLS;
    }
    *out = r;
    return 0;
}

void stp_tls_rng_free(struct stp_tls_rng **r)
{
    if (!*r)
        return;
    assert(stp_tls__cur_rng != *r);
    mbedtls_ctr_drbg_free(&(*r)->drbg);
    mbedtls_entropy_free(&(*r)->entropy);
    free(*r);
    *r = NULL;
}

int stp_tls__rng_cb(void *unused, unsigned char *out, size_t len)
{
    struct stp_tls_rng *r = stp_tls__cur_rng;
    /* Every path into mbedTLS that may draw randomness binds a generator. */
    assert(r);
    if (!r)
        return MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
    return mbedtls_ctr_drbg_random(&r->drbg, out, len);
}
