/* map.c - open-addressing hash map (see map.h). */
#include "stampede/map.h"

#include "stampede/error.h"

#include <stdlib.h>
#include <string.h>

uint64_t stp_hash(const void *key, size_t len)
{
    /* FNV-1a, then a final avalanche (splitmix64's) so low bits are usable. */
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h ? h : 1;
}

static size_t find_slot(const struct stp_map *m, uint64_t h, const void *key, size_t len)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const struct stp_map_slot *s = &m->slots[i];
        if (s->hash == 0)
            return i;
        if (s->hash == h && s->key_len == len && memcmp(s->key, key, len) == 0)
            return i;
    }
}

void *stp_map_get(const struct stp_map *m, const void *key, size_t len)
{
    if (m->count == 0)
        return NULL;
    size_t i = find_slot(m, stp_hash(key, len), key, len);
    return m->slots[i].hash ? m->slots[i].value : NULL;
}

static int grow(struct stp_map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    struct stp_map_slot *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return STP_ENOMEM;
    struct stp_map old = *m;
    m->slots = ns;
    m->cap = ncap;
    for (size_t i = 0; i < old.cap; i++) {
        if (old.slots[i].hash)
            m->slots[find_slot(m, old.slots[i].hash, old.slots[i].key, old.slots[i].key_len)] =
                old.slots[i];
    }
    free(old.slots);
    return 0;
}

int stp_map_put(struct stp_map *m, const void *key, size_t len, void *value)
{
    if ((m->count + 1) * 10 > m->cap * 7) {
        int rc = grow(m);
        if (rc)
            return rc;
    }
    uint64_t h = stp_hash(key, len);
    size_t i = find_slot(m, h, key, len);
    struct stp_map_slot *s = &m->slots[i];
    if (!s->hash)
        m->count++;
    s->hash = h;
    s->key = key;
    s->key_len = len;
    s->value = value;
    return 0;
}

void *stp_map_del(struct stp_map *m, const void *key, size_t len)
{
    if (m->count == 0)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = find_slot(m, stp_hash(key, len), key, len);
    if (!m->slots[i].hash)
        return NULL;
    void *value = m->slots[i].value;
    /* Backward-shift: pull later members of the probe run into the hole. */
    for (size_t j = (i + 1) & mask; m->slots[j].hash; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        /* Move j into i when its home is not in the cyclic range (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].hash = 0;
    m->count--;
    return value;
}

void stp_map_free(struct stp_map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}
