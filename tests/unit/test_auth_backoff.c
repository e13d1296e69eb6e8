/* Unit tests of the failed-login backoff (src/auth/backoff.c): free
 * failures, the growing delay and its cap, the one-minute window, stripes
 * kept apart, and concurrent counting from several threads. */
#include "auth/auth.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>

static struct stp_backoff *b;

static void setup(void)
{
    b = calloc(1, sizeof(*b));
    cr_assert_not_null(b);
}

static void fini(void)
{
    free(b);
}

TestSuite(backoff, .init = setup, .fini = fini);

Test(backoff, five_failures_are_free_then_the_delay_doubles_to_the_cap)
{
    uint64_t now = 1000000;
    for (int i = 0; i < STP_BACKOFF_FREE_FAILURES; i++) {
        cr_assert_eq(stp_backoff_delay(b, 7, now), 0, "failure %d delayed", i);
        stp_backoff_failed(b, 7, now);
    }
    uint64_t expect[] = {250, 500, 1000, 2000, 4000, 5000, 5000, 5000};
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        cr_assert_eq(stp_backoff_delay(b, 7, now + i), expect[i], "after %zu more", i);
        stp_backoff_failed(b, 7, now + i);
    }
}

Test(backoff, the_window_is_one_minute)
{
    uint64_t t0 = 5000;
    for (int i = 0; i < 6; i++)
        stp_backoff_failed(b, 1, t0);
    cr_assert_eq(stp_backoff_delay(b, 1, t0 + 59999), 500);
    cr_assert_eq(stp_backoff_delay(b, 1, t0 + 60000), 0, "an old window still counts");
    stp_backoff_failed(b, 1, t0 + 60000); /* starts a new window with one failure */
    cr_assert_eq(stp_backoff_delay(b, 1, t0 + 60001), 0);
    for (int i = 0; i < 4; i++)
        stp_backoff_failed(b, 1, t0 + 60001);
    cr_assert_eq(stp_backoff_delay(b, 1, t0 + 60002), 250);
}

Test(backoff, stripes_are_independent)
{
    for (int i = 0; i < 10; i++)
        stp_backoff_failed(b, 3, 100);
    cr_assert_gt(stp_backoff_delay(b, 3, 100), 0);
    cr_assert_eq(stp_backoff_delay(b, 4, 100), 0);
    cr_assert_eq(stp_backoff_delay(b, 3 + STP_BACKOFF_STRIPES, 100), 5000, "stripes wrap");
}

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000; i++)
        stp_backoff_failed(b, 9, 42);
    return NULL;
}

Test(backoff, concurrent_failures_in_one_window_are_all_counted)
{
    stp_backoff_failed(b, 9, 42); /* the window exists before the threads start */
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, hammer, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(atomic_load(&b->stripes[9].failures), 40001);
}
