/* login_cache.c - recently verified passcodes; see login_cache.h. */
#include "broker/login_cache.h"

#include "stampede/error.h"
#include "stampede/map.h"

#include <mbedtls/md.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <uv.h>

#define DIGEST 32

struct entry {
    uint8_t digest[DIGEST];
    uint64_t at_ms;
    size_t len;
    char login[]; /* the map's key */
};

struct stp_login_cache {
    uv_mutex_t lock;
    uint8_t key[32];
    struct stp_map by_login; /* login -> struct entry */
};

int stp_login_cache_new(struct stp_login_cache **out)
{
    struct stp_login_cache *lc = calloc(1, sizeof(*lc));
    if (!lc)
        return STP_ENOMEM;
    if (getrandom(lc->key, sizeof(lc->key), 0) != (ssize_t)sizeof(lc->key) ||
        uv_mutex_init(&lc->lock) != 0) {
        free(lc);
        return STP_EIO;
    }
    *out = lc;
    return 0;
}

void stp_login_cache_free(struct stp_login_cache **lc)
{
    if (!*lc)
        return;
    struct stp_map *m = &(*lc)->by_login;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].hash) {
            struct entry *e = m->slots[i].value;
            explicit_bzero(e->digest, sizeof(e->digest));
            free(e);
        }
    }
    stp_map_free(m);
    uv_mutex_destroy(&(*lc)->lock);
    explicit_bzero((*lc)->key, sizeof((*lc)->key));
    free(*lc);
    *lc = NULL;
}

static bool digest_of(const struct stp_login_cache *lc, const char *pass, size_t plen,
                      uint8_t out[DIGEST])
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    return md && mbedtls_md_hmac(md, lc->key, sizeof(lc->key), (const unsigned char *)pass, plen,
                                 out) == 0;
}

bool stp_login_cache_hit(struct stp_login_cache *lc, const char *login, size_t llen,
                         const char *pass, size_t plen, uint64_t now_ms)
{
    uint8_t d[DIGEST];
    if (!lc || !digest_of(lc, pass, plen, d))
        return false;
    bool hit = false;
    uv_mutex_lock(&lc->lock);
    struct entry *e = stp_map_get(&lc->by_login, login, llen);
    if (e && now_ms - e->at_ms < STP_LOGIN_CACHE_TTL_MS) {
        unsigned char diff = 0; /* no early exit */
        for (size_t i = 0; i < DIGEST; i++)
            diff |= (unsigned char)(e->digest[i] ^ d[i]);
        hit = diff == 0;
    }
    uv_mutex_unlock(&lc->lock);
    explicit_bzero(d, sizeof(d));
    return hit;
}

void stp_login_cache_put(struct stp_login_cache *lc, const char *login, size_t llen,
                         const char *pass, size_t plen, uint64_t now_ms)
{
    uint8_t d[DIGEST];
    if (!lc || !digest_of(lc, pass, plen, d))
        return;
    uv_mutex_lock(&lc->lock);
    struct entry *e = stp_map_get(&lc->by_login, login, llen);
    if (!e && (e = calloc(1, sizeof(*e) + llen))) {
        memcpy(e->login, login, llen);
        e->len = llen;
        if (stp_map_put(&lc->by_login, e->login, llen, e) < 0) {
            free(e);
            e = NULL;
        }
    }
    if (e) {
        memcpy(e->digest, d, DIGEST);
        e->at_ms = now_ms;
    }
    uv_mutex_unlock(&lc->lock);
    explicit_bzero(d, sizeof(d));
}
