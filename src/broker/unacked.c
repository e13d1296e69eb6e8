/*
 * unacked.c - deliveries awaiting acknowledgement (contract in unacked.h).
 */
#include "broker/unacked.h"

#include "stampede/error.h"
#include "stampede/msg.h"
#include "stampede/search.h"

#include <stdlib.h>

static struct stp_unacked *at(const struct stp_unacked_list *l, size_t i)
{
    return &l->e[(l->head + i) % l->cap];
}

/* Copy the live entries to a new array of ncap (>= live) entries. */
static int rebuild(struct stp_unacked_list *l, size_t ncap)
{
    struct stp_unacked *ne = malloc(ncap * sizeof(*ne));
    if (!ne)
        return STP_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < l->count; i++) {
        if (!at(l, i)->settled)
            ne[n++] = *at(l, i);
    }
    free(l->e);
    l->e = ne;
    l->head = 0;
    l->count = n;
    l->cap = ncap;
    return 0;
}

int stp_unacked_push(struct stp_unacked_list *l, uint64_t tag, struct stp_msg *m)
{
    if (l->count == l->cap) {
        /* Full: compact in place when tombstones make room, else double. */
        size_t ncap = l->live * 2 < l->cap ? l->cap : (l->cap ? l->cap * 2 : 16);
        if (rebuild(l, ncap) < 0)
            return STP_ENOMEM;
    }
    struct stp_unacked u = {.tag = tag};
    if (l->track_ids) {
        u.msg = stp_msg_ref(m);
        if (stp_map_put(&l->by_id, &u.msg->id, sizeof(u.msg->id), (void *)(uintptr_t)tag) < 0) {
            stp_msg_unref(&u.msg);
            return STP_ENOMEM;
        }
    }
    l->e[(l->head + l->count) % l->cap] = u;
    l->count++;
    l->live++;
    return 0;
}

static uint64_t tag_at(const void *l, size_t i)
{
    return at(l, i)->tag;
}

ssize_t stp_unacked_find_tag(const struct stp_unacked_list *l, uint64_t tag)
{
    size_t lo = stp_lower_bound(l->count, tag, tag_at, l);
    if (lo == l->count || at(l, lo)->tag != tag || at(l, lo)->settled)
        return -1;
    return (ssize_t)lo;
}

ssize_t stp_unacked_find_id(const struct stp_unacked_list *l, uint64_t msg_id)
{
    if (!l->track_ids)
        return -1;
    void *v = stp_map_get(&l->by_id, &msg_id, sizeof(msg_id));
    return v ? stp_unacked_find_tag(l, (uint64_t)(uintptr_t)v) : -1;
}

uint64_t stp_unacked_tag_at(const struct stp_unacked_list *l, size_t idx)
{
    return at(l, idx)->tag;
}

static void settle(struct stp_unacked_list *l, struct stp_unacked *u)
{
    if (u->settled)
        return;
    if (u->msg) {
        stp_map_del(&l->by_id, &u->msg->id, sizeof(u->msg->id));
        stp_msg_unref(&u->msg);
    }
    u->settled = true;
    l->live--;
}

static void drop_settled_head(struct stp_unacked_list *l)
{
    while (l->count > 0 && at(l, 0)->settled) {
        l->head = (l->head + 1) % l->cap;
        l->count--;
    }
}

void stp_unacked_settle_one(struct stp_unacked_list *l, size_t idx)
{
    settle(l, at(l, idx));
    drop_settled_head(l);
    /* Tombstones past half the entries: compact (amortized O(1) each). */
    if (l->count > 32 && l->count - l->live > l->live)
        (void)rebuild(l, l->cap); /* on ENOMEM the tombstones simply stay */
}

void stp_unacked_settle_upto(struct stp_unacked_list *l, size_t idx)
{
    for (size_t i = 0; i <= idx; i++)
        settle(l, at(l, i));
    drop_settled_head(l);
}

void stp_unacked_free(struct stp_unacked_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        settle(l, at(l, i));
    free(l->e);
    stp_map_free(&l->by_id);
    *l = (struct stp_unacked_list){0};
}
