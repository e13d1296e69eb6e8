/* Unit tests of reference-counted messages (src/core/msg.c). */
#include "stampede/msg.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

static struct stp_msg *make(const char *dest, const char *tail)
{
    struct stp_msg *m = stp_msg_alloc(dest, strlen(dest), strlen(tail));
    cr_assert_not_null(m);
    memcpy((char *)m->tail, tail, strlen(tail));
    m->tail_len = strlen(tail);
    return m;
}

Test(core_msg, alloc_copies_destination_and_counts_bytes)
{
    size_t before = stp_msg_bytes_in_use();
    struct stp_msg *m = make("/topic/a", "destination:/topic/a\n\nhi");
    cr_assert_str_eq(m->dest, "/topic/a");
    cr_assert_eq(m->dest_len, 8);
    cr_assert_eq(memcmp(m->tail, "destination:/topic/a\n\nhi", m->tail_len), 0);
    cr_assert_gt(stp_msg_bytes_in_use(), before);
    stp_msg_unref(&m);
    cr_assert_null(m, "unref clears the caller's pointer");
    cr_assert_eq(stp_msg_bytes_in_use(), before, "the last unref gives the bytes back");
}

Test(core_msg, last_reference_frees)
{
    size_t before = stp_msg_bytes_in_use();
    struct stp_msg *m = make("/queue/q", "x");
    struct stp_msg *a = stp_msg_ref(m), *b = stp_msg_ref(m);
    cr_assert_eq(a, m);
    cr_assert_eq(atomic_load(&m->refs), 3);
    stp_msg_unref(&a);
    stp_msg_unref(&b);
    cr_assert_eq(atomic_load(&m->refs), 1);
    cr_assert_gt(stp_msg_bytes_in_use(), before, "still held by one reference");
    stp_msg_unref(&m);
    cr_assert_eq(stp_msg_bytes_in_use(), before);
    struct stp_msg *none = NULL;
    stp_msg_unref(&none); /* releasing nothing is a no-op */
}

Test(core_msg, id_line_is_formatted_once)
{
    struct stp_msg *m = make("/topic/a", "t");
    stp_msg_set_id(m, 0);
    cr_assert_eq(m->id_line_len, strlen("message-id:0\n"));
    cr_assert_eq(memcmp(m->id_line, "message-id:0\n", m->id_line_len), 0);
    stp_msg_set_id(m, 18446744073709551615ULL);
    cr_assert_eq(m->id, 18446744073709551615ULL);
    cr_assert_eq(memcmp(m->id_line, "message-id:18446744073709551615\n", m->id_line_len), 0);
    cr_assert_eq(m->id_line_len, strlen("message-id:18446744073709551615\n"));
    stp_msg_unref(&m);
}

Test(core_msg, ids_are_unique_per_worker)
{
    uint64_t a = stp_msg_next_id(3), b = stp_msg_next_id(3), c = stp_msg_next_id(4);
    cr_assert_neq(a, b);
    cr_assert_eq(a >> 48, 3);
    cr_assert_eq(c >> 48, 4);
    cr_assert_neq(b, c);
}

/* Many threads take and drop references to one message at once; the count
 * must end exactly where it began and the message must survive until the
 * last release. */
#define THREADS 4
#define ROUNDS 200000

static void *churn(void *arg)
{
    struct stp_msg *m = arg;
    for (int i = 0; i < ROUNDS; i++) {
        struct stp_msg *r = stp_msg_ref(m);
        stp_msg_unref(&r);
    }
    return NULL;
}

Test(core_msg, references_from_many_threads)
{
    size_t before = stp_msg_bytes_in_use();
    struct stp_msg *m = make("/topic/shared", "tail");
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, churn, m), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&m->refs), 1);
    cr_assert_eq(memcmp(m->tail, "tail", 4), 0);
    stp_msg_unref(&m);
    cr_assert_eq(stp_msg_bytes_in_use(), before);
}
