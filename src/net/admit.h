/*
 * admit.h - the connection limits every worker shares: --max-connections
 * (all clients) and --max-connections-per-ip (one source address).
 *
 * Each worker accepts on its own SO_REUSEPORT socket, so the counts cannot
 * live in a worker. They are atomics in the broker: one counter for the total
 * and a fixed table of STP_ADMIT_STRIPES counters, one per hash of the source
 * address (IPv4, IPv4-mapped IPv6 as IPv4, other IPv6 by its /64 prefix,
 * which is what one host is usually given). No lock; they are touched when a
 * connection is accepted and when its memory is freed, never on the message
 * path.
 *
 * Collisions: addresses whose hashes share a stripe share its counter, so
 * together they may be refused before each one reaches the limit (a refusal
 * too early, never an admission too many: every connection of an address is
 * counted in that address's stripe). The hash is seeded at start, so which
 * addresses share a stripe cannot be chosen from outside. With 4096 stripes
 * and the default per-address limit far above what one honest host opens,
 * the early refusal needs thousands of connections from addresses sharing a
 * stripe.
 *
 * Ordering: every counter is changed only by atomic read-modify-writes, so no
 * increment or decrement is lost, and nothing else is published through them:
 * relaxed ordering is enough. A take adds first and checks the value it
 * replaced, then backs out: two workers racing for the last place may both
 * be refused (early), never both admitted.
 */
#ifndef STP_NET_ADMIT_H
#define STP_NET_ADMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;
struct stp_conn;

#define STP_ADMIT_STRIPES 4096

enum stp_admit_verdict {
    STP_ADMIT_OK = 0,
    STP_ADMIT_TOTAL,  /* --max-connections reached */
    STP_ADMIT_PER_IP, /* --max-connections-per-ip reached */
};

struct stp_admit {
    size_t max_total, max_per_ip;
    uint64_t seed;
    atomic_size_t total;
    atomic_uint stripes[STP_ADMIT_STRIPES];
    /* The refusal log line: at most one a second for the whole broker. */
    _Atomic uint64_t log_next_ms;
    atomic_size_t log_suppressed;
};

/* Before any worker starts (main thread). seed 0: a random one. */
void stp_admit_init(struct stp_admit *a, size_t max_total, size_t max_per_ip, uint64_t seed);

/* Any thread. The stripe of a source address (AF_INET or AF_INET6; other
 * families share stripe 0). */
uint32_t stp_admit_stripe_of(const struct stp_admit *a, const struct sockaddr *sa);
/* Take a place for a connection from sa: STP_ADMIT_OK and *stripe (give it
 * back with stp_admit_release exactly once), or which limit refused it
 * (nothing to give back). */
enum stp_admit_verdict stp_admit_take(struct stp_admit *a, const struct sockaddr *sa,
                                      uint32_t *stripe);
void stp_admit_release(struct stp_admit *a, uint32_t stripe);
/* Connections currently admitted (all, and those counted in a stripe). */
size_t stp_admit_total(struct stp_admit *a);
unsigned stp_admit_stripe_count(struct stp_admit *a, uint32_t stripe);
/* True at most once per second (now_ms); *suppressed says how many calls
 * since the last true were told false. */
bool stp_admit_log_due(struct stp_admit *a, uint64_t now_ms, size_t *suppressed);

/* On the connection's worker, right after uv_accept: take c's place, or
 * refuse it (counted in /metrics, a rate-limited log line naming the address,
 * a short STOMP ERROR on a stomp:// listener; the caller closes at once).
 * True when admitted (c->admitted, c->admit_stripe set). */
bool stp_admit_conn(struct stp_conn *c);

#endif
