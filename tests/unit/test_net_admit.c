/* Unit tests of the shared connection limits (src/net/admit.c): totals and
 * per-address counts, IPv6 /64 and IPv4-mapped keys, collisions that may
 * only refuse early, and four threads racing for the last places. */
#include "net/admit.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct stp_admit A;

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(1234)};
    cr_assert_eq(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
    return sa;
}

static struct sockaddr_in6 v6(const char *ip)
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(1234)};
    cr_assert_eq(inet_pton(AF_INET6, ip, &sa.sin6_addr), 1);
    return sa;
}

#define SA(x) ((const struct sockaddr *)&(x))

Test(admit, total_limit_and_release)
{
    stp_admit_init(&A, 3, 100, 42);
    uint32_t s[4];
    char ip[32];
    for (int i = 0; i < 3; i++) {
        snprintf(ip, sizeof(ip), "10.0.0.%d", i + 1);
        struct sockaddr_in a = v4(ip);
        cr_assert_eq(stp_admit_take(&A, SA(a), &s[i]), STP_ADMIT_OK);
    }
    struct sockaddr_in d = v4("10.0.0.9");
    cr_assert_eq(stp_admit_take(&A, SA(d), &s[3]), STP_ADMIT_TOTAL);
    cr_assert_eq(stp_admit_total(&A), 3);
    stp_admit_release(&A, s[1]);
    cr_assert_eq(stp_admit_take(&A, SA(d), &s[3]), STP_ADMIT_OK);
    for (int i = 0; i < 4; i++)
        if (i != 1)
            stp_admit_release(&A, s[i]);
    cr_assert_eq(stp_admit_total(&A), 0);
    for (uint32_t k = 0; k < STP_ADMIT_STRIPES; k++)
        cr_assert_eq(stp_admit_stripe_count(&A, k), 0, "stripe %u leaked", k);
}

Test(admit, per_address_limit)
{
    stp_admit_init(&A, 1000, 2, 7);
    struct sockaddr_in a = v4("192.0.2.1"), b = v4("192.0.2.2");
    a.sin_port = htons(1); /* the port does not matter */
    uint32_t s1, s2, s3;
    cr_assert_eq(stp_admit_take(&A, SA(a), &s1), STP_ADMIT_OK);
    a.sin_port = htons(2);
    cr_assert_eq(stp_admit_take(&A, SA(a), &s2), STP_ADMIT_OK);
    cr_assert_eq(s1, s2);
    cr_assert_eq(stp_admit_take(&A, SA(a), &s3), STP_ADMIT_PER_IP);
    cr_assert_eq(stp_admit_total(&A), 2, "a refusal gives its place back");
    if (stp_admit_stripe_of(&A, SA(b)) != s1)
        cr_assert_eq(stp_admit_take(&A, SA(b), &s3), STP_ADMIT_OK, "another address is free");
    else
        cr_assert_eq(stp_admit_take(&A, SA(b), &s3), STP_ADMIT_PER_IP, "sharing a stripe");
}

Test(admit, ipv6_by_64_prefix_and_mapped_ipv4)
{
    stp_admit_init(&A, 1000, 10, 99);
    struct sockaddr_in6 x = v6("2001:db8:1:2::1"), y = v6("2001:db8:1:2:ffff::9");
    cr_assert_eq(stp_admit_stripe_of(&A, SA(x)), stp_admit_stripe_of(&A, SA(y)));
    struct sockaddr_in p = v4("198.51.100.7");
    struct sockaddr_in6 m = v6("::ffff:198.51.100.7");
    cr_assert_eq(stp_admit_stripe_of(&A, SA(p)), stp_admit_stripe_of(&A, SA(m)));
    /* Different /64s spread over the stripes (seeded, so not all in one). */
    uint32_t first = 0;
    bool spread = false;
    for (int i = 0; i < 64 && !spread; i++) {
        char ip[64];
        snprintf(ip, sizeof(ip), "2001:db8:%x::1", i);
        struct sockaddr_in6 z = v6(ip);
        uint32_t s = stp_admit_stripe_of(&A, SA(z));
        if (i == 0)
            first = s;
        spread = s != first;
    }
    cr_assert(spread);
}

/* Addresses that share a stripe share its count: refused early, never too many. */
Test(admit, collisions_only_refuse_early)
{
    stp_admit_init(&A, 100000, 3, 1234);
    struct sockaddr_in a = v4("203.0.113.1"), b;
    uint32_t sa = stp_admit_stripe_of(&A, SA(a)), s;
    bool found = false;
    char ip[32];
    for (int i = 0; i < 1 << 16 && !found; i++) {
        snprintf(ip, sizeof(ip), "10.%d.%d.1", i >> 8, i & 255);
        b = v4(ip);
        found = stp_admit_stripe_of(&A, SA(b)) == sa;
    }
    cr_assert(found, "no colliding address in 65536");
    cr_assert_eq(stp_admit_take(&A, SA(a), &s), STP_ADMIT_OK);
    cr_assert_eq(stp_admit_take(&A, SA(a), &s), STP_ADMIT_OK);
    cr_assert_eq(stp_admit_take(&A, SA(b), &s), STP_ADMIT_OK);
    cr_assert_eq(stp_admit_take(&A, SA(b), &s), STP_ADMIT_PER_IP, "early, as documented");
    cr_assert_eq(stp_admit_take(&A, SA(a), &s), STP_ADMIT_PER_IP);
}

Test(admit, log_at_most_once_a_second)
{
    stp_admit_init(&A, 1, 1, 5);
    size_t sup = 99;
    cr_assert(stp_admit_log_due(&A, 10000, &sup));
    cr_assert_eq(sup, 0);
    cr_assert_not(stp_admit_log_due(&A, 10001, &sup));
    cr_assert_not(stp_admit_log_due(&A, 10999, &sup));
    cr_assert(stp_admit_log_due(&A, 11000, &sup));
    cr_assert_eq(sup, 2);
}

#define THREADS 4
#define ROUNDS 20000

/* Places the threads hold (counted after a take succeeds, before a release). */
static atomic_int held_now;

static void *hammer(void *arg)
{
    struct sockaddr_in a = v4("127.0.0.1");
    int *seen_max = arg;
    uint32_t held[8];
    int n = 0;
    for (int r = 0; r < ROUNDS; r++) {
        uint32_t s;
        if (n < 8 && stp_admit_take(&A, SA(a), &s) == STP_ADMIT_OK) {
            held[n++] = s;
            int now = atomic_fetch_add(&held_now, 1) + 1;
            if (now > *seen_max)
                *seen_max = now;
        }
        if (n && (r & 1)) {
            atomic_fetch_sub(&held_now, 1);
            stp_admit_release(&A, held[--n]);
        }
    }
    while (n) {
        atomic_fetch_sub(&held_now, 1);
        stp_admit_release(&A, held[--n]);
    }
    return NULL;
}

/* Four threads take and give back places of one address: never more than
 * the limit held at once, and every count back at zero. */
Test(admit, racing_threads_never_pass_the_limit)
{
    stp_admit_init(&A, 1000, 5, 77);
    pthread_t t[THREADS];
    int maxes[THREADS] = {0};
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, hammer, &maxes[i]);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++)
        cr_assert_leq(maxes[i], 5, "thread %d saw %d places held", i, maxes[i]);
    cr_assert_eq(stp_admit_total(&A), 0);
    struct sockaddr_in a = v4("127.0.0.1");
    cr_assert_eq(stp_admit_stripe_count(&A, stp_admit_stripe_of(&A, SA(a))), 0);
}
