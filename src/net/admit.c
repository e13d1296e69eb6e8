/*
 * admit.c - the shared connection limits (see admit.h): atomic counters for
 * all connections and per source address, and the refusal of a connection
 * over either limit.
 */
#include "admit.h"

#include "conn.h"
#include "stampede/log.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

void stp_admit_init(struct stp_admit *a, size_t max_total, size_t max_per_ip, uint64_t seed)
{
    a->max_total = max_total;
    a->max_per_ip = max_per_ip;
    if (seed == 0 && getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
        seed = uv_hrtime();
    a->seed = seed | 1;
    atomic_init(&a->total, 0);
    for (size_t i = 0; i < STP_ADMIT_STRIPES; i++)
        atomic_init(&a->stripes[i], 0);
    atomic_init(&a->log_next_ms, 0);
    atomic_init(&a->log_suppressed, 0);
}

/* splitmix64's finalizer over the seeded key. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint32_t stp_admit_stripe_of(const struct stp_admit *a, const struct sockaddr *sa)
{
    uint64_t key;
    if (sa->sa_family == AF_INET) {
        uint32_t v4;
        memcpy(&v4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        key = (uint64_t)4 << 32 | v4;
    } else if (sa->sa_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(b, v4mapped, 12) == 0) {
            uint32_t v4;
            memcpy(&v4, b + 12, 4);
            key = (uint64_t)4 << 32 | v4; /* the same stripe as the plain IPv4 address */
        } else {
            memcpy(&key, b, 8); /* the /64 prefix */
            key = mix(key);
        }
    } else {
        return 0;
    }
    return (uint32_t)(mix(key ^ a->seed) % STP_ADMIT_STRIPES);
}

enum stp_admit_verdict stp_admit_take(struct stp_admit *a, const struct sockaddr *sa,
                                      uint32_t *stripe)
{
    /* Relaxed: see admit.h (single-variable counters, nothing published). */
    size_t before = atomic_fetch_add_explicit(&a->total, 1, memory_order_relaxed);
    if (before >= a->max_total) {
        atomic_fetch_sub_explicit(&a->total, 1, memory_order_relaxed);
        return STP_ADMIT_TOTAL;
    }
    uint32_t s = stp_admit_stripe_of(a, sa);
    unsigned n = atomic_fetch_add_explicit(&a->stripes[s], 1, memory_order_relaxed);
    if (n >= a->max_per_ip) {
        atomic_fetch_sub_explicit(&a->stripes[s], 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&a->total, 1, memory_order_relaxed);
        return STP_ADMIT_PER_IP;
    }
    *stripe = s;
    return STP_ADMIT_OK;
}

void stp_admit_release(struct stp_admit *a, uint32_t stripe)
{
    atomic_fetch_sub_explicit(&a->stripes[stripe % STP_ADMIT_STRIPES], 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&a->total, 1, memory_order_relaxed);
}

size_t stp_admit_total(struct stp_admit *a)
{
    return atomic_load_explicit(&a->total, memory_order_relaxed);
}

unsigned stp_admit_stripe_count(struct stp_admit *a, uint32_t stripe)
{
    return atomic_load_explicit(&a->stripes[stripe % STP_ADMIT_STRIPES], memory_order_relaxed);
}

bool stp_admit_log_due(struct stp_admit *a, uint64_t now_ms, size_t *suppressed)
{
    /* Relaxed: the CAS alone decides which caller logs; the suppressed count
     * is a statistic (a count racing with the exchange lands in the next line). */
    uint64_t next = atomic_load_explicit(&a->log_next_ms, memory_order_relaxed);
    if (now_ms < next ||
        !atomic_compare_exchange_strong_explicit(&a->log_next_ms, &next, now_ms + 1000,
                                                 memory_order_relaxed, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&a->log_suppressed, 1, memory_order_relaxed);
        return false;
    }
    *suppressed = atomic_exchange_explicit(&a->log_suppressed, 0, memory_order_relaxed);
    return true;
}

/* --- refusing a connection --- */

static const char refusal[] = "ERROR\n"
                              "message:too many connections\n"
                              "content-type:text/plain\n"
                              "content-length:46\n"
                              "\n"
                              "The broker refuses connections over its limit.";

static void log_refusal(struct stp_conn *c, const struct sockaddr *sa, enum stp_admit_verdict v)
{
    struct stp_admit *a = c->net->admit;
    size_t suppressed;
    if (!stp_admit_log_due(a, uv_now(c->net->loop), &suppressed))
        return;
    char host[64] = "?";
    if (sa->sa_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)sa, host, sizeof(host));
    else if (sa->sa_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)sa, host, sizeof(host));
    if (v == STP_ADMIT_TOTAL)
        stp_warn("refused a connection from %s: --max-connections (%zu) reached "
                 "(%zu more refused since the last such line)",
                 host, a->max_total, suppressed);
    else
        stp_warn("refused a connection from %s: --max-connections-per-ip (%zu) reached "
                 "(%zu more refused since the last such line)",
                 host, a->max_per_ip, suppressed);
}

bool stp_admit_conn(struct stp_conn *c)
{
    struct stp_net *n = c->net;
    if (!n->admit)
        return true;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        ss.ss_family = AF_UNSPEC; /* counted in the total and in stripe 0 */
    uint32_t stripe;
    enum stp_admit_verdict v = stp_admit_take(n->admit, (struct sockaddr *)&ss, &stripe);
    if (v == STP_ADMIT_OK) {
        c->admitted = true;
        c->admit_stripe = stripe;
        return true;
    }
    STP_STAT_INC(n->stats.conns_refused[v == STP_ADMIT_TOTAL ? 0 : 1]);
    log_refusal(c, (struct sockaddr *)&ss, v);
    /* A plain STOMP client is told why (best effort, one try, sizeof - 1
     * bytes and the NUL); TLS and WebSocket clients expect a handshake and
     * just see the connection close. */
    if (n->cfg->listen[c->listener].scheme == STP_SCHEME_STOMP) {
        uv_buf_t buf = uv_buf_init((char *)refusal, sizeof(refusal));
        uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    }
    return false;
}
