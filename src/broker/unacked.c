/*
 * unacked.c - deliveries awaiting acknowledgement (contract in unacked.h).
 */
#include "broker/unacked.h"

#include "stampede/error.h"
#include "stampede/msg.h"
#include "stampede/search.h"

#include <stdint.h>

static struct stp_unacked *at(const struct stp_unacked_list *l, size_t i)
{
    return stp_unacked_deque_at(&l->q, i);
}

static bool is_live(const struct stp_unacked *u)
{
    return !u->settled;
}

int stp_unacked_push(struct stp_unacked_list *l, uint64_t tag, struct stp_msg *m)
{
    /* Full of tombstones: compact in place rather than grow. */
    if (l->q.count == l->q.cap && l->live * 2 < l->q.cap &&
        stp_unacked_deque_filter(&l->q, is_live) < 0)
        return STP_ENOMEM;
    struct stp_unacked u = {.tag = tag};
    if (l->track_ids) {
        u.msg = stp_msg_ref(m);
        if (stp_map_put(&l->by_id, &u.msg->id, sizeof(u.msg->id), (void *)(uintptr_t)tag) < 0) {
            stp_msg_unref(&u.msg);
            return STP_ENOMEM;
        }
    }
    if (stp_unacked_deque_push_back(&l->q, u) < 0) {
        if (u.msg)
            stp_map_del(&l->by_id, &u.msg->id, sizeof(u.msg->id));
        stp_msg_unref(&u.msg);
        return STP_ENOMEM;
    }
    l->live++;
    return 0;
}

static uint64_t tag_at(const void *l, size_t i)
{
    return at(l, i)->tag;
}

ssize_t stp_unacked_find_tag(const struct stp_unacked_list *l, uint64_t tag)
{
    size_t lo = stp_lower_bound(l->q.count, tag, tag_at, l);
    if (lo == l->q.count || at(l, lo)->tag != tag || at(l, lo)->settled)
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
    while (l->q.count > 0 && at(l, 0)->settled)
        stp_unacked_deque_pop_front(&l->q);
}

void stp_unacked_settle_one(struct stp_unacked_list *l, size_t idx)
{
    settle(l, at(l, idx));
    drop_settled_head(l);
    /* Tombstones past half the entries: compact (amortized O(1) each). */
    if (l->q.count > 32 && l->q.count - l->live > l->live)
        (void)stp_unacked_deque_filter(&l->q, is_live); /* ENOMEM: they stay */
}

void stp_unacked_settle_upto(struct stp_unacked_list *l, size_t idx)
{
    for (size_t i = 0; i <= idx; i++)
        settle(l, at(l, i));
    drop_settled_head(l);
}

void stp_unacked_free(struct stp_unacked_list *l)
{
    for (size_t i = 0; i < l->q.count; i++)
        settle(l, at(l, i));
    stp_unacked_deque_free(&l->q);
    stp_map_free(&l->by_id);
    *l = (struct stp_unacked_list){0};
}
