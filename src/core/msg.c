/* msg.c - allocation and release of reference-counted messages (see msg.h). */
#include "stampede/msg.h"

#include <stdlib.h>
#include <string.h>

/* Relaxed: a statistic compared against a budget; no data is published
 * through it. */
static atomic_size_t bytes_in_use;
/* Per thread: each worker numbers its own messages. */
static _Thread_local uint64_t id_counter;

static size_t msg_size(size_t dest_len, size_t tail_cap)
{
    return sizeof(struct stp_msg) + dest_len + 1 + tail_cap;
}

struct stp_msg *stp_msg_alloc(const char *dest, size_t dest_len, size_t tail_cap)
{
    struct stp_msg *m = malloc(msg_size(dest_len, tail_cap));
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->dest_len = (uint32_t)dest_len;
    m->id = 0;
    m->id_line_len = 0;
    m->tail_len = 0;
    m->tail_cap = tail_cap;
    m->body_len = 0;
    m->needs_escape = false;
    m->persistent = false;
    m->dedup_len = 0;
    m->dedup_off = 0;
    m->binding = false;
    m->expires_ms = 0;
    m->deliveries = 0;
    m->jkey = m->jlsn = 0;
    m->cluster_ack = NULL;
    m->cluster_lease_ms = 0;
    m->pub_fence = 0;
    atomic_init(&m->utf8, 0);
    memcpy(m->data, dest, dest_len);
    m->data[dest_len] = '\0';
    m->dest = m->data;
    m->tail = m->data + dest_len + 1;
    atomic_fetch_add_explicit(&bytes_in_use, msg_size(dest_len, tail_cap), memory_order_relaxed);
    return m;
}

void stp_msg_free_(struct stp_msg *m)
{
    free(m->cluster_ack);
    atomic_fetch_sub_explicit(&bytes_in_use, msg_size(m->dest_len, m->tail_cap),
                              memory_order_relaxed);
    free(m);
}

void stp_msg_set_id(struct stp_msg *m, uint64_t id)
{
    char digits[20];
    int n = 0;
    m->id = id;
    do {
        digits[n++] = (char)('0' + id % 10);
        id /= 10;
    } while (id);
    memcpy(m->id_line, "message-id:", 11);
    size_t len = 11;
    while (n)
        m->id_line[len++] = digits[--n];
    m->id_line[len++] = '\n';
    m->id_line_len = (uint8_t)len;
}

size_t stp_msg_bytes_in_use(void)
{
    return atomic_load_explicit(&bytes_in_use, memory_order_relaxed);
}

uint64_t stp_msg_next_id(unsigned worker)
{
    return ((uint64_t)worker << 48) | ++id_counter;
}

struct stp_msg *stp_msg_copy(const struct stp_msg *m, const char *dest, size_t dest_len)
{
    struct stp_msg *c = stp_msg_alloc(dest, dest_len, m->tail_len);
    if (!c)
        return NULL;
    memcpy((char *)c->tail, m->tail, m->tail_len);
    c->tail_len = m->tail_len;
    c->body_len = m->body_len;
    c->needs_escape = m->needs_escape;
    c->persistent = m->persistent;
    c->expires_ms = m->expires_ms;
    c->pub_fence = m->pub_fence;
    return c;
}
