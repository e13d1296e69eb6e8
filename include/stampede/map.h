/*
 * map.h - open-addressing hash map from byte-string keys to pointers.
 *
 * The map does not copy keys: a key's bytes must stay valid and unchanged
 * while it is in the map (store them inside the value). Not thread-safe: a
 * map belongs to one worker. Linear probing with backward-shift deletion, so
 * there are no tombstones; the table doubles at 70% load.
 */
#ifndef STAMPEDE_MAP_H
#define STAMPEDE_MAP_H

#include <stddef.h>
#include <stdint.h>

struct stp_map_slot {
    uint64_t hash; /* 0 = empty */
    const void *key;
    size_t key_len;
    void *value;
};

struct stp_map {
    struct stp_map_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t count;
};

uint64_t stp_hash(const void *key, size_t len);

void *stp_map_get(const struct stp_map *m, const void *key, size_t len);
/* Insert or replace. 0 or STP_ENOMEM. */
int stp_map_put(struct stp_map *m, const void *key, size_t len, void *value);
/* Remove; returns the value that was there or NULL. */
void *stp_map_del(struct stp_map *m, const void *key, size_t len);
void stp_map_free(struct stp_map *m);

/* Iterate: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].hash) ... */

#endif
