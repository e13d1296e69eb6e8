/* Unit tests of src/cluster/subject.c: destination names as NATS subjects,
 * every subject valid for NATS, and back again exactly. */
#include "cluster/subject.h"
#include "stampede/error.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *subject(const char *name)
{
    static struct stp_buf b;
    stp_buf_reset(&b);
    int rc = stp_subject_of(&b, "stp", name, strlen(name));
    cr_assert_eq(rc, 0, "%s: %d", name, rc);
    cr_assert_eq(stp_buf_append(&b, "", 1), 0);
    return b.data;
}

static const char *dest(const char *s, int *rc)
{
    static struct stp_buf b;
    stp_buf_reset(&b);
    *rc = stp_subject_to_dest(&b, "stp", s, strlen(s));
    cr_assert_eq(stp_buf_append(&b, "", 1), 0);
    return b.data;
}

/* What NATS accepts as a published subject: non-empty tokens of
 * [A-Za-z0-9_~-] separated by single dots. */
static void assert_valid_subject(const char *s, size_t n)
{
    cr_assert_gt(n, 0);
    bool token_empty = true;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            cr_assert(!token_empty, "empty token in %.*s", (int)n, s);
            token_empty = true;
            continue;
        }
        cr_assert((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-' || c == '~',
                  "byte 0x%02x in %.*s", (unsigned char)c, (int)n, s);
        token_empty = false;
    }
    cr_assert(!token_empty, "empty last token in %.*s", (int)n, s);
}

Test(subject, topics_keep_their_words_as_tokens)
{
    cr_assert_str_eq(subject("/topic/a.b.c"), "stp.t.a.b.c");
    cr_assert_str_eq(subject("/topic/orders"), "stp.t.orders");
    cr_assert_str_eq(subject("/topic/a..b"), "stp.t.a.~.b");
    cr_assert_str_eq(subject("/topic/."), "stp.t.~.~");
    cr_assert_str_eq(subject("/topic/a b*>"), "stp.t.a~20b~2A~3E");
    cr_assert_str_eq(subject("/topic/x/y~z"), "stp.t.x~2Fy~7Ez");
    cr_assert_str_eq(subject("/topic/\xc3\xa9t\xc3\xa9"), "stp.t.~C3~A9t~C3~A9");
}

Test(subject, a_queue_name_is_one_token)
{
    cr_assert_str_eq(subject("/queue/orders.eu"), "stp.q.orders~2Eeu");
    cr_assert_str_eq(subject("/queue/a"), "stp.q.a");
}

Test(subject, a_reply_queue_name_is_one_token_and_comes_back)
{
    const char *name = "/reply-queue/stp.gen-Ab_9-xYz";
    cr_assert_str_eq(subject(name), "stp.r.stp~2Egen-Ab_9-xYz");
    int rc;
    cr_assert_str_eq(dest("stp.r.stp~2Egen-Ab_9-xYz", &rc), name);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(dest("stp.r.a.b", &rc), "");
    cr_assert_eq(rc, STP_EINVAL, "a reply queue's name is one token");
    cr_assert_str_eq(dest("stp.r.", &rc), "");
    cr_assert_eq(rc, STP_EINVAL);
}

Test(subject, other_names_are_refused)
{
    struct stp_buf b = STP_BUF_INIT;
    const char *bad[] = {"/topic/", "/queue/",     "/temp-queue/x", "/reply-queue/",
                         "topic/a", "/queue/a\nb", "/topic/a\x7f",  ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(stp_subject_of(&b, "stp", bad[i], strlen(bad[i])), STP_EINVAL, "%s", bad[i]);
        cr_assert_eq(b.len, 0, "nothing appended for %s", bad[i]);
    }
    stp_buf_free(&b);
}

Test(subject, subjects_not_made_here_do_not_decode)
{
    const char *bad[] = {"stp.t.",    "stp.t",     "stp.x.a",   "other.t.a", "stp.t.a..b",
                         "stp.t.a.*", "stp.t.>",   "stp.q.a.b", "stp.q.~",   "stp.t.~",
                         "stp.t.~2",  "stp.t.~2e", "stp.t.~41", "stp.t.~0A", "stp.t.a b",
                         "stp.q.",    "stpx.t.a",  "stp.t.~ZZ", "stp.t.a.",  "stp.t..a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc;
        const char *d = dest(bad[i], &rc);
        cr_assert_eq(rc, STP_EINVAL, "%s decoded to %s", bad[i], d);
        cr_assert_str_eq(d, "", "%s left %s", bad[i], d);
    }
}

Test(subject, patterns_map_to_nats_wildcards)
{
    struct stp_buf b = STP_BUF_INIT;
    struct {
        const char *pattern, *subject;
        bool exact;
    } cases[] = {
        {"/topic/a.*.c", "stp.t.a.*.c", true}, {"/topic/*", "stp.t.*", true},
        {"/topic/a.#", "stp.t.a.>", false},    {"/topic/#", "stp.t.>", false},
        {"/topic/a.#.c", "stp.t.a.>", false},  {"/topic/a.b", "stp.t.a.b", true},
        {"/topic/a.#b", "stp.t.a.~23b", true}, {"/topic/*.#", "stp.t.*.>", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool exact = !cases[i].exact;
        stp_buf_reset(&b);
        cr_assert_eq(
            stp_subject_of_pattern(&b, "stp", cases[i].pattern, strlen(cases[i].pattern), &exact),
            0);
        cr_assert_eq(b.len, strlen(cases[i].subject), "%s -> %.*s", cases[i].pattern, (int)b.len,
                     b.data);
        cr_assert(memcmp(b.data, cases[i].subject, b.len) == 0, "%s -> %.*s", cases[i].pattern,
                  (int)b.len, b.data);
        cr_assert_eq(exact, cases[i].exact, "%s", cases[i].pattern);
    }
    bool exact;
    cr_assert_eq(stp_subject_of_pattern(&b, "stp", "/queue/a.*", 10, &exact), STP_EINVAL);
    stp_buf_free(&b);
}

/* xorshift: the same sequence on every run. */
static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

Test(subject, every_name_round_trips_through_a_valid_subject)
{
    struct stp_buf name = STP_BUF_INIT, subj = STP_BUF_INIT, back = STP_BUF_INIT;
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    /* Bytes with a bias toward the ones that need care. */
    static const char tricky[] = "..~~*>#/ :%-_aZ09";
    for (int iter = 0; iter < 200000; iter++) {
        stp_buf_reset(&name);
        stp_buf_reset(&subj);
        stp_buf_reset(&back);
        bool topic = next(&seed) & 1;
        cr_assert_eq(stp_buf_append(&name, topic ? "/topic/" : "/queue/", 7), 0);
        size_t n = 1 + next(&seed) % 24;
        for (size_t i = 0; i < n; i++) {
            uint64_t r = next(&seed);
            unsigned char c = (r & 3) ? (unsigned char)tricky[(r >> 8) % (sizeof(tricky) - 1)]
                                      : (unsigned char)(0x20 + (r >> 16) % 0xe0);
            if (c == 0x7f)
                c = '~';
            cr_assert_eq(stp_buf_append(&name, (const char *)&c, 1), 0);
        }
        cr_assert_eq(stp_subject_of(&subj, "stp", name.data, name.len), 0);
        assert_valid_subject(subj.data, subj.len);
        cr_assert_eq(stp_subject_to_dest(&back, "stp", subj.data, subj.len), 0, "%.*s",
                     (int)subj.len, subj.data);
        cr_assert_eq(back.len, name.len);
        cr_assert(memcmp(back.data, name.data, name.len) == 0, "%.*s came back as %.*s",
                  (int)name.len, name.data, (int)back.len, back.data);
    }
    stp_buf_free(&name);
    stp_buf_free(&subj);
    stp_buf_free(&back);
}
