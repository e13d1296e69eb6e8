/* Unit tests of src/store (issue 12): replay of real segment files (torn
 * tails cut at every byte, damage skipped, lsn order), and the journal at
 * run time on a real uv loop driven in the test's thread: group commit,
 * segment rolls and reclamation, compaction, reopening, and a real
 * ENOSPC on a 256 KiB tmpfs. Every wait is bounded. */
#include "store/store_internal.h"

#include "stampede/error.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- files --- */

static char *tmpdir(void)
{
    char t[] = "/tmp/stp-store-XXXXXX";
    cr_assert_not_null(mkdtemp(t));
    char *s = strdup(t);
    cr_assert_not_null(s);
    return s;
}

static char *path_of(const char *dir, const char *name)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", dir, name), 0);
    return p;
}

static char *seg_path(const char *dir, uint64_t lsn)
{
    char name[STP_SEG_NAME_SIZE];
    stp_seg_name(name, lsn);
    return path_of(dir, name);
}

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *p = path_of(dir, e->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

static void write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(write(fd, p, n), (ssize_t)n);
    close(fd);
}

/* Size of path; -1 when missing. */
static long long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* The segment files of dir, sorted (up to max). */
static size_t list_segs(const char *dir, uint64_t *lsns, size_t max)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(fd, 0);
    struct stp_seg_file *v;
    size_t n;
    cr_assert_eq(stp_seg_list(fd, &v, &n), 0);
    close(fd);
    for (size_t i = 0; i < n && i < max; i++)
        lsns[i] = v[i].lsn;
    free(v);
    return n;
}

static size_t count_segs(const char *dir)
{
    return list_segs(dir, NULL, 0);
}

/* --- records --- */

struct rec_buf {
    uint8_t *p;
    size_t len;
    size_t ends[64]; /* end offset of each record */
    size_t n;
};

static void add_rec(struct rec_buf *b, const struct stp_jrec *r)
{
    size_t size = stp_jrec_size(r);
    cr_assert_gt(size, 0);
    b->p = realloc(b->p, b->len + size);
    cr_assert_not_null(b->p);
    stp_jrec_encode(r, b->p + b->len);
    b->len += size;
    b->ends[b->n++] = b->len;
}

static struct stp_jrec msg(uint64_t lsn, const char *queue, const char *tail)
{
    return (struct stp_jrec){
        .type = STP_JREC_MSG,
        .lsn = lsn,
        .key = lsn,
        .queue = queue,
        .queue_len = (uint32_t)strlen(queue),
        .tail = tail,
        .tail_len = (uint32_t)strlen(tail),
        .body_len = (uint32_t)strlen(tail),
    };
}

/* Records seen by a replay. */
struct seen {
    size_t n;
    uint64_t lsn[20000];
    uint64_t key[20000];
    uint8_t type[20000];
    char tail[20000][24];
    int stop_at;       /* return 7 at this record (1-based); 0: never */
    size_t segs_done;  /* STP_JREC_SEGMENT_DONE calls */
    uint64_t seg_msgs; /* the MSG records they counted */
};

static int collect(void *ctx, const struct stp_jrec *r)
{
    struct seen *s = ctx;
    if (r->type == STP_JREC_SEGMENT_DONE) {
        s->segs_done++;
        s->seg_msgs += r->key;
        return 0;
    }
    cr_assert_lt(s->n, 20000);
    s->lsn[s->n] = r->lsn;
    s->key[s->n] = r->key;
    s->type[s->n] = r->type;
    size_t t = r->tail_len < 23 ? r->tail_len : 23;
    memcpy(s->tail[s->n], r->tail ? r->tail : "", t);
    s->tail[s->n][t] = '\0';
    s->n++;
    return s->stop_at && (int)s->n == s->stop_at ? 7 : 0;
}

static struct seen *replay(const char *dir, struct stp_journal_replay_stats *st)
{
    struct seen *s = calloc(1, sizeof(*s));
    cr_assert_not_null(s);
    cr_assert_eq(stp_journal_replay(dir, collect, s, st), 0);
    cr_assert_eq(st->records, s->n);
    /* One SEGMENT_DONE per segment read, counting its MSG records. */
    cr_assert_eq(s->segs_done, st->segments);
    uint64_t msgs = 0;
    for (size_t i = 0; i < s->n; i++)
        msgs += s->type[i] == STP_JREC_MSG;
    cr_assert_eq(s->seg_msgs, msgs);
    return s;
}

/* --- replay --- */

Test(replay, missing_dir_is_an_empty_journal)
{
    struct stp_journal_replay_stats st;
    memset(&st, 0xff, sizeof(st));
    cr_assert_eq(stp_journal_replay("/tmp/stp-store-does-not-exist/x", collect, NULL, &st), 0);
    cr_assert_eq(st.segments, 0);
    cr_assert_eq(st.records, 0);
    cr_assert_eq(st.last_lsn, 0);
}

Test(replay, other_files_ignored_empty_segments_removed)
{
    char *dir = tmpdir();
    struct rec_buf b = {0};
    struct stp_jrec r = msg(3, "q", "x");
    add_rec(&b, &r);
    char *seg3 = seg_path(dir, 3), *seg9 = seg_path(dir, 9);
    write_file(seg3, b.p, b.len);
    write_file(seg9, "", 0);
    const char *others[] = {"notes.txt", "00000000000000AB.seg", "0000000000000001.seg.tmp",
                            "000000000000001.seg", "0000000000000001.sega"};
    for (size_t i = 0; i < 5; i++) {
        char *p = path_of(dir, others[i]);
        write_file(p, "STPJgarbage", 11);
        free(p);
    }
    struct stp_journal_replay_stats st;
    struct seen *s = replay(dir, &st);
    cr_assert_eq(s->n, 1);
    cr_assert_eq(s->lsn[0], 3);
    cr_assert_eq(st.segments, 1);
    cr_assert_eq(st.last_lsn, 3);
    cr_assert_eq(st.damaged_records, 0);
    cr_assert_eq(file_size(seg9), -1, "the empty segment is removed");
    for (size_t i = 0; i < 5; i++) {
        char *p = path_of(dir, others[i]);
        cr_assert_eq(file_size(p), 11, "%s untouched", others[i]);
        free(p);
    }
    free(s);
    free(seg3);
    free(seg9);
    free(b.p);
    rm_rf(dir);
    free(dir);
}

static void three_records(struct rec_buf *b)
{
    struct stp_jrec a = msg(1, "/queue/a", "first message body");
    struct stp_jrec s = {.type = STP_JREC_SETTLE, .lsn = 2, .key = 1};
    struct stp_jrec c = msg(3, "/queue/bb", "the third one, a little longer than the first");
    add_rec(b, &a);
    add_rec(b, &s);
    add_rec(b, &c);
}

Test(replay, torn_tail_cut_at_every_byte_offset)
{
    struct rec_buf b = {0};
    three_records(&b);
    for (size_t k = 0; k < b.len; k++) {
        char *dir = tmpdir();
        char *seg = seg_path(dir, 1);
        write_file(seg, b.p, k);
        size_t whole = 0, end = 0;
        while (whole < b.n && b.ends[whole] <= k)
            end = b.ends[whole++];
        struct stp_journal_replay_stats st;
        struct seen *s = replay(dir, &st);
        cr_assert_eq(s->n, whole, "cut at %zu", k);
        for (size_t i = 0; i < whole; i++)
            cr_assert_eq(s->lsn[i], i + 1);
        cr_assert_eq(st.truncated_bytes, k - end, "cut at %zu", k);
        cr_assert_eq(st.damaged_records, 0, "cut at %zu", k);
        cr_assert_eq(file_size(seg), end ? (long long)end : -1, "cut at %zu", k);
        free(s);
        s = replay(dir, &st);
        cr_assert_eq(s->n, whole);
        cr_assert_eq(st.truncated_bytes, 0, "second replay after a cut at %zu", k);
        free(s);
        free(seg);
        rm_rf(dir);
        free(dir);
    }
    free(b.p);
}

/* Five MSG records in one segment, something done to record 2's bytes. */
static void damaged_second(size_t at, size_t n, uint8_t x)
{
    char *dir = tmpdir();
    struct rec_buf b = {0};
    char tail[32];
    for (int i = 1; i <= 5; i++) {
        snprintf(tail, sizeof(tail), "body of message %d", i);
        struct stp_jrec r = msg((uint64_t)i, "/queue/d", tail);
        add_rec(&b, &r);
    }
    size_t start = b.ends[0], len2 = b.ends[1] - b.ends[0];
    for (size_t i = 0; i < n; i++)
        b.p[start + at + i] ^= x;
    char *seg = seg_path(dir, 1);
    write_file(seg, b.p, b.len);
    struct stp_journal_replay_stats st;
    struct seen *s = replay(dir, &st);
    cr_assert_eq(s->n, 4, "damage at +%zu", at);
    uint64_t want[] = {1, 3, 4, 5};
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(s->lsn[i], want[i]);
    cr_assert_str_eq(s->tail[1], "body of message 3");
    cr_assert_eq(st.damaged_records, 1);
    cr_assert_eq(st.damaged_bytes, len2);
    cr_assert_eq(st.truncated_bytes, 0);
    cr_assert_eq(file_size(seg), (long long)b.len, "damage in the middle is not cut");
    free(s);
    free(seg);
    free(b.p);
    rm_rf(dir);
    free(dir);
}

Test(replay, damaged_middle_record_is_skipped)
{
    damaged_second(40, 3, 0x5a);  /* payload */
    damaged_second(0, 1, 0x01);   /* magic */
    damaged_second(8, 1, 0x10);   /* length: grows */
    damaged_second(60, 20, 0xff); /* queue and tail */
}

Test(replay, damage_at_the_end_of_an_older_segment_is_not_cut)
{
    char *dir = tmpdir();
    struct rec_buf a = {0}, b = {0};
    struct stp_jrec r1 = msg(1, "q", "one"), r2 = msg(2, "q", "two"), r3 = msg(3, "q", "three");
    add_rec(&a, &r1);
    add_rec(&a, &r2);
    add_rec(&b, &r3);
    char *s1 = seg_path(dir, 1), *s3 = seg_path(dir, 3);
    write_file(s1, a.p, a.len - 5); /* record 2 torn, but not in the newest segment */
    write_file(s3, b.p, b.len);
    struct stp_journal_replay_stats st;
    struct seen *s = replay(dir, &st);
    cr_assert_eq(s->n, 2);
    cr_assert_eq(s->lsn[0], 1);
    cr_assert_eq(s->lsn[1], 3);
    cr_assert_eq(st.segments, 2);
    cr_assert_eq(st.damaged_records, 1);
    cr_assert_eq(st.damaged_bytes, a.ends[1] - a.ends[0] - 5);
    cr_assert_eq(st.truncated_bytes, 0);
    cr_assert_eq(file_size(s1), (long long)(a.len - 5));
    free(s);
    free(s1);
    free(s3);
    free(a.p);
    free(b.p);
    rm_rf(dir);
    free(dir);
}

Test(replay, lsn_must_increase)
{
    char *dir = tmpdir();
    struct rec_buf a = {0}, b = {0};
    uint64_t in_a[] = {1, 2, 2, 3, 10}, in_b[] = {4, 11, 12};
    for (size_t i = 0; i < 5; i++) {
        struct stp_jrec r = msg(in_a[i], "q", "a");
        add_rec(&a, &r);
    }
    for (size_t i = 0; i < 3; i++) {
        struct stp_jrec r = msg(in_b[i], "q", "b");
        add_rec(&b, &r);
    }
    char *s1 = seg_path(dir, 1), *s4 = seg_path(dir, 4);
    write_file(s1, a.p, a.len);
    write_file(s4, b.p, b.len);
    struct stp_journal_replay_stats st;
    struct seen *s = replay(dir, &st);
    uint64_t want[] = {1, 2, 3, 10, 11, 12};
    cr_assert_eq(s->n, 6);
    for (size_t i = 0; i < 6; i++)
        cr_assert_eq(s->lsn[i], want[i]);
    cr_assert_eq(st.damaged_records, 2, "the repeated 2 and the 4 after 10");
    cr_assert_eq(st.last_lsn, 12);
    free(s);
    free(s1);
    free(s4);
    free(a.p);
    free(b.p);
    rm_rf(dir);
    free(dir);
}

Test(replay, callback_value_stops_the_replay)
{
    char *dir = tmpdir();
    struct rec_buf b = {0};
    three_records(&b);
    char *seg = seg_path(dir, 1);
    write_file(seg, b.p, b.len);
    struct seen *s = calloc(1, sizeof(*s));
    s->stop_at = 2;
    struct stp_journal_replay_stats st;
    cr_assert_eq(stp_journal_replay(dir, collect, s, &st), 7);
    cr_assert_eq(s->n, 2);
    free(s);
    free(seg);
    free(b.p);
    rm_rf(dir);
    free(dir);
}

/* --- the journal at run time --- */

struct events {
    uint64_t synced;
    unsigned nsynced;
    unsigned nfailed;
    uint64_t fail_first[8], fail_last[8];
    int fail_err[8];
    unsigned nrecovered;
};

static void on_synced(void *ctx, uint64_t synced)
{
    struct events *ev = ctx;
    cr_assert_gt(synced, ev->synced, "synced goes forward");
    ev->synced = synced;
    ev->nsynced++;
}

static void on_failed(void *ctx, uint64_t first, uint64_t last, int err)
{
    struct events *ev = ctx;
    cr_assert_lt(ev->nfailed, 8);
    ev->fail_first[ev->nfailed] = first;
    ev->fail_last[ev->nfailed] = last;
    ev->fail_err[ev->nfailed] = err;
    ev->nfailed++;
}

static void on_recovered(void *ctx)
{
    struct events *ev = ctx;
    ev->nrecovered++;
}

static struct stp_journal *open_j(uv_loop_t *loop, const char *dir, size_t seg, uint64_t next,
                                  struct events *ev)
{
    struct stp_journal_opts o = {
        .dir = dir,
        .loop = loop,
        .segment_bytes = seg,
        .next_lsn = next,
        .retry_ms = 50,
        .ctx = ev,
        .on_synced = on_synced,
        .on_failed = on_failed,
        .on_recovered = on_recovered,
    };
    struct stp_journal *j = NULL;
    int rc = stp_journal_open(&j, &o);
    cr_assert_eq(rc, 0, "open %s: %s", dir, stp_strerror(rc));
    return j;
}

static void close_j(uv_loop_t *loop, struct stp_journal *j)
{
    stp_journal_stop(j);
    cr_assert_eq(uv_run(loop, UV_RUN_DEFAULT), 0);
    stp_journal_free(j);
}

static uint64_t stat_of(const atomic_uint_least64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Run the loop (flushing once per turn, as the broker does) until cond
 * holds; fails the test after a few seconds. */
#define RUN_UNTIL(loop, j, cond)                                                                   \
    do {                                                                                           \
        uint64_t deadline_ = uv_hrtime() + 5000000000ull;                                          \
        while (!(cond)) {                                                                          \
            cr_assert_lt(uv_hrtime(), deadline_, "timed out waiting for %s", #cond);               \
            stp_journal_flush(j);                                                                  \
            if (uv_run(loop, UV_RUN_ONCE) == 0)                                                    \
                usleep(1000);                                                                      \
        }                                                                                          \
    } while (0)

static uint64_t append_msg(struct stp_journal *j, unsigned i, size_t tail_len)
{
    char tail[2048];
    cr_assert_lt(tail_len, sizeof(tail));
    int n = snprintf(tail, sizeof(tail), "message %u", i);
    memset(tail + n, '.', tail_len > (size_t)n ? tail_len - (size_t)n : 0);
    struct stp_jrec r = {
        .type = STP_JREC_MSG,
        .queue = "/queue/journal",
        .queue_len = 14,
        .tail = tail,
        .tail_len = (uint32_t)(tail_len > (size_t)n ? tail_len : (size_t)n),
    };
    uint64_t lsn = stp_journal_append(j, &r);
    if (lsn)
        cr_assert_eq(r.key, lsn, "a new message's key is its lsn");
    return lsn;
}

Test(journal, appended_records_are_synced_and_replayed)
{
    char *dir = tmpdir();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct events ev = {0};
    struct stp_journal *j = open_j(&loop, dir, 0, 1, &ev);
    size_t bytes = 0;
    for (unsigned i = 0; i < 100; i++) {
        char tail[32];
        snprintf(tail, sizeof(tail), "body %u", i);
        struct stp_jrec r = msg(0, "/queue/x", tail);
        r.key = 0;
        if (i % 3 == 1)
            r = (struct stp_jrec){.type = STP_JREC_DELIVER, .key = i};
        else if (i % 3 == 2)
            r = (struct stp_jrec){.type = STP_JREC_SETTLE, .key = i - 1};
        bytes += stp_jrec_size(&r);
        cr_assert_eq(stp_journal_append(j, &r), i + 1);
        cr_assert_eq(r.lsn, i + 1);
    }
    cr_assert_eq(stp_journal_appended(j), 100);
    cr_assert_eq(stp_journal_synced(j), 0);
    RUN_UNTIL(&loop, j, ev.synced == 100);
    cr_assert_eq(stp_journal_synced(j), 100);
    const struct stp_journal_stats *st = stp_journal_stats(j);
    cr_assert_eq(stat_of(&st->records), 100);
    cr_assert_eq(stat_of(&st->bytes_written), bytes);
    cr_assert_eq(stat_of(&st->disk_bytes), bytes);
    cr_assert_geq(stat_of(&st->syncs), 1);
    cr_assert_eq(stat_of(&st->segments), 1);
    cr_assert_eq(stat_of(&st->failures), 0);
    close_j(&loop, j);
    uv_loop_close(&loop);

    struct stp_journal_replay_stats rs;
    struct seen *s = replay(dir, &rs);
    cr_assert_eq(s->n, 100);
    for (unsigned i = 0; i < 100; i++) {
        cr_assert_eq(s->lsn[i], i + 1);
        if (i % 3 == 0) {
            char tail[32];
            snprintf(tail, sizeof(tail), "body %u", i);
            cr_assert_eq(s->type[i], STP_JREC_MSG);
            cr_assert_eq(s->key[i], i + 1);
            cr_assert_str_eq(s->tail[i], tail);
        } else {
            cr_assert_eq(s->type[i], i % 3 == 1 ? STP_JREC_DELIVER : STP_JREC_SETTLE);
        }
    }
    cr_assert_eq(rs.last_lsn, 100);
    cr_assert_eq(rs.damaged_records + rs.truncated_bytes, 0);
    free(s);
    rm_rf(dir);
    free(dir);
}

Test(journal, group_commit_one_batch_per_turn)
{
    char *dir = tmpdir();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct events ev = {0};
    struct stp_journal *j = open_j(&loop, dir, 0, 1, &ev);
    for (unsigned i = 0; i < 10000; i++)
        cr_assert_eq(append_msg(j, i, 60), i + 1);
    RUN_UNTIL(&loop, j, ev.synced == 10000);
    const struct stp_journal_stats *st = stp_journal_stats(j);
    cr_assert_eq(stat_of(&st->batches), 1);
    cr_assert_eq(ev.nsynced, 1);
    cr_assert_eq(stat_of(&st->syncs), 1);

    /* Appends made while a batch is in flight form the next one. */
    cr_assert_eq(append_msg(j, 0, 60), 10001);
    stp_journal_flush(j);
    for (unsigned i = 0; i < 1000; i++)
        append_msg(j, i, 60);
    stp_journal_flush(j); /* the writer is (most likely) busy: nothing moves */
    RUN_UNTIL(&loop, j, ev.synced == 11001);
    cr_assert_leq(stat_of(&st->batches), 3);
    close_j(&loop, j);
    uv_loop_close(&loop);
    struct stp_journal_replay_stats rs;
    struct seen *s = replay(dir, &rs);
    cr_assert_eq(s->n, 11001);
    cr_assert_str_eq(s->tail[9999], "message 9999...........");
    free(s);
    rm_rf(dir);
    free(dir);
}

Test(journal, stop_writes_what_is_appended)
{
    char *dir = tmpdir();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct events ev = {0};
    struct stp_journal *j = open_j(&loop, dir, 0, 41, &ev);
    for (unsigned i = 0; i < 10; i++)
        cr_assert_eq(append_msg(j, i, 10), 41 + i);
    stp_journal_flush(j);
    for (unsigned i = 0; i < 10; i++)
        append_msg(j, i, 10);
    close_j(&loop, j); /* no loop turn: stop waits for both batches */
    cr_assert_eq(ev.synced, 60);
    uv_loop_close(&loop);
    struct stp_journal_replay_stats rs;
    struct seen *s = replay(dir, &rs);
    cr_assert_eq(s->n, 20);
    cr_assert_eq(s->lsn[0], 41);
    cr_assert_eq(rs.last_lsn, 60);
    uint64_t l;
    cr_assert_eq(list_segs(dir, &l, 1), 1);
    cr_assert_eq(l, 41, "the segment is named by its first lsn");
    free(s);
    rm_rf(dir);
    free(dir);
}

Test(journal, bad_lengths_are_refused)
{
    char *dir = tmpdir();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct events ev = {0};
    struct stp_journal *j = open_j(&loop, dir, 0, 1, &ev);
    struct stp_jrec r = {.type = STP_JREC_MSG, .queue = "q", .queue_len = 0};
    cr_assert_eq(stp_journal_append(j, &r), 0);
    r.queue_len = 70000;
    cr_assert_eq(stp_journal_append(j, &r), 0);
    r = (struct stp_jrec){.type = 0};
    cr_assert_eq(stp_journal_append(j, &r), 0);
    cr_assert_eq(stp_journal_appended(j), 0);
    cr_assert_eq(append_msg(j, 1, 1), 1);
    close_j(&loop, j);
    uv_loop_close(&loop);
    rm_rf(dir);
    free(dir);
}

/* Each segment file starts with the record its name says, and only the
 * last one is under segment_bytes. */
static void check_segment_files(const char *dir, size_t seg_bytes)
{
    uint64_t lsns[256];
    size_t n = list_segs(dir, lsns, 256);
    cr_assert_leq(n, 256);
    for (size_t i = 0; i < n; i++) {
        char *p = seg_path(dir, lsns[i]);
        long long size = file_size(p);
        uint8_t head[STP_JREC_HEADER];
        int fd = open(p, O_RDONLY);
        cr_assert_eq(read(fd, head, sizeof(head)), (ssize_t)sizeof(head));
        close(fd);
        cr_assert_eq(stp_rd64(head + STP_JOFF_LSN), lsns[i], "%s", p);
        if (i + 1 < n)
            cr_assert_geq(size, (long long)seg_bytes, "%s rolled early", p);
        free(p);
    }
}

Test(journal, segments_roll_and_dead_ones_are_deleted)
{
    char *dir = tmpdir();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct events ev = {0};
    struct stp_journal *j = open_j(&loop, dir, 4096, 1, &ev);
    const struct stp_journal_stats *st = stp_journal_stats(j);
    uint64_t lsns[400];
    for (unsigned i = 0; i < 400; i++) {
        lsns[i] = append_msg(j, i, 40);
        if (i % 50 == 49) /* several batches, some spanning a roll */
            RUN_UNTIL(&loop, j, ev.synced == lsns[i]);
    }
    RUN_UNTIL(&loop, j, ev.synced == 400);
    size_t nseg = count_segs(dir);
    cr_assert_gt(nseg, 8);
    cr_assert_eq(stat_of(&st->segments), nseg);
    check_segment_files(dir, 4096);
    for (unsigned i = 0; i < 400; i++)
        stp_journal_release(j, lsns[i]);
    RUN_UNTIL(&loop, j, stat_of(&st->segments_deleted) == nseg - 1 && stat_of(&st->segments) == 1);
    cr_assert_eq(count_segs(dir), 1, "only the current segment stays");
    cr_assert_lt(stat_of(&st->disk_bytes), 4096 + 200);
    cr_assert_eq(stp_journal_compact_below(j), 0);
    /* The journal goes on in the current segment. */
    uint64_t l = append_msg(j, 1, 40);
    RUN_UNTIL(&loop, j, ev.synced == l);
    close_j(&loop, j);
    uv_loop_close(&loop);
    rm_rf(dir);
    free(dir);
}

Test(journal, one_old_message_pins_newer_segments_until_copied_forward)
{
    char *dir = tmpdir();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct events ev = {0};
    struct stp_journal *j = open_j(&loop, dir, 4096, 1, &ev);
    const struct stp_journal_stats *st = stp_journal_stats(j);
    uint64_t old = append_msg(j, 0, 40);
    for (unsigned i = 1; i < 300; i++)
        append_msg(j, i, 40);
    RUN_UNTIL(&loop, j, ev.synced == 300);
    for (uint64_t l = 2; l <= 300; l++)
        stp_journal_release(j, l);
    size_t nseg = count_segs(dir);
    cr_assert_gt(nseg, 4);
    /* SETTLEs for them, then a few turns: nothing may go. */
    struct stp_jrec s = {.type = STP_JREC_SETTLE, .key = 2};
    uint64_t ls = stp_journal_append(j, &s);
    RUN_UNTIL(&loop, j, ev.synced == ls);
    for (int i = 0; i < 5; i++) {
        stp_journal_flush(j);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    cr_assert_eq(count_segs(dir), nseg);
    cr_assert_eq(stat_of(&st->segments_deleted), 0);

    uint64_t bound = stp_journal_compact_below(j);
    uint64_t lsns[8];
    cr_assert_geq(list_segs(dir, lsns, 8), 2);
    cr_assert_eq(bound, lsns[1], "the bound is the second segment's first lsn");
    cr_assert_lt(old, bound);

    /* Copy forward: same key, new lsn; then the old one is released. */
    struct stp_jrec c = msg(0, "/queue/journal", "message 0 (copy)");
    c.key = old;
    uint64_t copy = stp_journal_append(j, &c);
    cr_assert_gt(copy, ls);
    cr_assert_eq(c.key, old, "a copy keeps its key");
    stp_journal_release(j, old);
    RUN_UNTIL(&loop, j, stat_of(&st->segments) == 1 && ev.synced == copy);
    cr_assert_eq(count_segs(dir), 1);
    cr_assert_eq(stp_journal_compact_below(j), 0);
    close_j(&loop, j);
    uv_loop_close(&loop);

    struct stp_journal_replay_stats rs;
    struct seen *seen = replay(dir, &rs);
    cr_assert_geq(seen->n, 1);
    bool found = false;
    for (size_t i = 0; i < seen->n; i++)
        found |= seen->lsn[i] == copy && seen->key[i] == old;
    cr_assert(found, "the copy is on disk with the original key");
    free(seen);
    rm_rf(dir);
    free(dir);
}

/* What a broker's recovery keeps: MSG records not settled. */
struct live {
    size_t n;
    uint64_t lsn[1000];
    uint64_t key[1000];
};

static int collect_live(void *ctx, const struct stp_jrec *r)
{
    struct live *lv = ctx;
    if (r->type == STP_JREC_SEGMENT_DONE)
        return 0;
    if (r->type == STP_JREC_MSG) {
        lv->lsn[lv->n] = r->lsn;
        lv->key[lv->n++] = r->key;
    } else if (r->type == STP_JREC_SETTLE) {
        for (size_t i = 0; i < lv->n; i++) {
            if (lv->key[i] == r->key) {
                lv->lsn[i] = lv->lsn[lv->n - 1];
                lv->key[i] = lv->key[--lv->n];
                break;
            }
        }
    }
    return 0;
}

Test(journal, reopened_journal_goes_on_and_deletes_dead_segments)
{
    char *dir = tmpdir();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct events ev = {0};
    struct stp_journal *j = open_j(&loop, dir, 4096, 1, &ev);
    for (unsigned i = 0; i < 200; i++)
        append_msg(j, i, 40);
    RUN_UNTIL(&loop, j, ev.synced == 200);
    /* Settled, but the journal is stopped before it hears of it (as if the
     * broker went down): no release. */
    for (uint64_t k = 1; k <= 150; k++) {
        struct stp_jrec s = {.type = STP_JREC_SETTLE, .key = k};
        stp_journal_append(j, &s);
    }
    close_j(&loop, j);
    size_t before = count_segs(dir);
    cr_assert_gt(before, 3);

    struct live *lv = calloc(1, sizeof(*lv));
    struct stp_journal_replay_stats rs;
    cr_assert_eq(stp_journal_replay(dir, collect_live, lv, &rs), 0);
    cr_assert_eq(rs.last_lsn, 350);
    cr_assert_eq(lv->n, 50);

    ev = (struct events){0};
    j = open_j(&loop, dir, 4096, rs.last_lsn + 1, &ev);
    const struct stp_journal_stats *st = stp_journal_stats(j);
    cr_assert_eq(stat_of(&st->segments), before + 1);
    char *fresh = seg_path(dir, 351);
    cr_assert_eq(file_size(fresh), 0, "a new segment, named by the next lsn");
    for (size_t i = 0; i < lv->n; i++)
        stp_journal_adopt(j, lv->lsn[i]);
    /* The segments holding only messages 1..150 go; the ones holding any
     * of 151..200 stay, and so does every segment after them. */
    uint64_t first_live = 151;
    uint64_t lsns[64];
    size_t n = list_segs(dir, lsns, 64);
    size_t keep = 0;
    for (size_t i = 0; i < n; i++)
        keep += i + 1 == n || lsns[i + 1] > first_live;
    RUN_UNTIL(&loop, j,
              stat_of(&st->segments_deleted) == n - keep && stat_of(&st->segments) == keep);
    cr_assert_eq(count_segs(dir), keep);

    uint64_t l = append_msg(j, 7, 40);
    cr_assert_eq(l, 351);
    RUN_UNTIL(&loop, j, ev.synced == 351);
    for (size_t i = 0; i < lv->n; i++)
        stp_journal_release(j, lv->lsn[i]);
    RUN_UNTIL(&loop, j, stat_of(&st->segments) == 1);
    cr_assert_eq(file_size(fresh), (long long)stat_of(&st->disk_bytes));
    close_j(&loop, j);
    uv_loop_close(&loop);
    free(fresh);
    free(lv);
    rm_rf(dir);
    free(dir);
}

Test(journal, open_refuses_a_segment_at_or_after_next_lsn)
{
    char *dir = tmpdir();
    struct rec_buf b = {0};
    struct stp_jrec r = msg(10, "q", "x");
    add_rec(&b, &r);
    char *s10 = seg_path(dir, 10), *s20 = seg_path(dir, 20);
    write_file(s10, b.p, b.len);
    write_file(s20, "", 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct stp_journal_opts o = {.dir = dir, .loop = &loop, .next_lsn = 10};
    struct stp_journal *j = (struct stp_journal *)1;
    cr_assert_eq(stp_journal_open(&j, &o), STP_EEXISTS);
    cr_assert_null(j);
    o.next_lsn = 11;
    cr_assert_eq(stp_journal_open(&j, &o), 0);
    cr_assert_eq(file_size(s20), -1, "an empty segment after next_lsn is removed");
    o.next_lsn = 0;
    struct stp_journal *j2;
    cr_assert_eq(stp_journal_open(&j2, &o), STP_EINVAL);
    stp_journal_stop(j);
    uv_run(&loop, UV_RUN_DEFAULT);
    stp_journal_free(j);
    uv_loop_close(&loop);
    free(s10);
    free(s20);
    free(b.p);
    rm_rf(dir);
    free(dir);
}

Test(journal, open_makes_missing_directories)
{
    char *top = tmpdir();
    char *dir = path_of(top, "a/b/journal");
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct events ev = {0};
    struct stp_journal *j = open_j(&loop, dir, 0, 1, &ev);
    struct stat sb;
    cr_assert_eq(stat(dir, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0700);
    close_j(&loop, j);
    uv_loop_close(&loop);
    rm_rf(dir);
    char *b = path_of(top, "a/b"), *a = path_of(top, "a");
    rmdir(b);
    rmdir(a);
    rmdir(top);
    free(a);
    free(b);
    free(dir);
    free(top);
}

/* --- a real ENOSPC --- */

static char *mnt; /* the tmpfs, unmounted by the fini even when a check fails */

static void unmount_tmpfs(void)
{
    if (!mnt)
        return;
    umount2(mnt, MNT_DETACH);
    rmdir(mnt);
    free(mnt);
    mnt = NULL;
}

static void fill(const char *path, size_t n)
{
    char *z = calloc(1, n);
    write_file(path, z, n);
    free(z);
}

/* Write to path until the file system is full. */
static void fill_up(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    char page[4096] = {0};
    while (write(fd, page, sizeof(page)) > 0)
        ;
    cr_assert_eq(errno, ENOSPC);
    close(fd);
}

/* Fill a 256 KiB tmpfs (half of it taken by a filler file) with batches of
 * 20 records of 1 KiB until one fails, then free the filler. */
static void enospc_case(size_t seg_bytes)
{
    mnt = tmpdir();
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=256k") != 0) {
        int e = errno;
        rmdir(mnt);
        cr_skip("cannot mount a tmpfs (%s): the test needs root", strerror(e));
    }
    char *filler = path_of(mnt, "filler"), *dir = path_of(mnt, "journal");
    fill(filler, 128 * 1024);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct events ev = {0};
    struct stp_journal *j = open_j(&loop, dir, seg_bytes, 1, &ev);
    const struct stp_journal_stats *st = stp_journal_stats(j);

    uint64_t first = 0, last = 0;
    for (unsigned turn = 0; ev.nfailed == 0; turn++) {
        cr_assert_lt(turn, 100, "the tmpfs never filled up");
        first = 0;
        for (unsigned i = 0; i < 20; i++) {
            last = append_msg(j, turn * 20 + i, 1000);
            cr_assert_neq(last, 0);
            first = first ? first : last;
        }
        RUN_UNTIL(&loop, j, ev.synced == last || ev.nfailed > 0);
    }
    cr_assert_eq(ev.nfailed, 1);
    cr_assert_eq(ev.fail_first[0], first);
    cr_assert_eq(ev.fail_last[0], last);
    cr_assert_eq(ev.fail_err[0], STP_ENOSPC, "%s", stp_strerror(ev.fail_err[0]));
    cr_assert(stp_journal_failed(j));
    cr_assert_eq(stat_of(&st->failures), 1);
    cr_assert_eq(append_msg(j, 0, 10), 0, "a failed journal refuses appends");
    uint64_t synced_before = ev.synced;
    cr_assert_eq(synced_before, first - 1);

    /* Undoing the batch may have freed some room: take it all (the probe
     * cannot run meanwhile: it starts from the loop). Probes fail and the
     * journal stays failed. */
    char *rest = path_of(mnt, "rest");
    fill_up(rest);
    for (int i = 0; i < 3; i++) {
        stp_journal_flush(j);
        uv_run(&loop, UV_RUN_ONCE);
    }
    cr_assert(stp_journal_failed(j));
    cr_assert_eq(ev.nrecovered, 0);

    unlink(rest);
    unlink(filler);
    uint64_t freed = uv_hrtime();
    RUN_UNTIL(&loop, j, ev.nrecovered == 1);
    cr_assert_lt(uv_hrtime() - freed, 500000000ull, "recovered within a few 50 ms periods");
    cr_assert_not(stp_journal_failed(j));
    uint64_t again = 0;
    for (unsigned i = 0; i < 20; i++)
        again = append_msg(j, 1000 + i, 1000);
    cr_assert_gt(again, last);
    RUN_UNTIL(&loop, j, ev.synced == again);
    cr_assert_eq(ev.nfailed, 1);
    close_j(&loop, j);
    uv_loop_close(&loop);

    struct stp_journal_replay_stats rs;
    struct seen *s = replay(dir, &rs);
    size_t i = 0;
    for (uint64_t l = 1; l <= synced_before; l++, i++)
        cr_assert_eq(s->lsn[i], l, "synced record %llu is on disk", (unsigned long long)l);
    cr_assert_eq(s->type[i], STP_JREC_NOOP, "the probe");
    for (; i < s->n; i++)
        cr_assert_gt(s->lsn[i], last, "the lost batch was cut off again");
    cr_assert_eq(s->lsn[s->n - 1], again);
    cr_assert_eq(s->n, synced_before + 1 + 20);
    cr_assert_eq(rs.damaged_records + rs.truncated_bytes, 0);
    free(s);
    free(rest);
    free(filler);
    free(dir);
}

Test(journal, enospc_fails_the_batch_then_recovers, .fini = unmount_tmpfs)
{
    enospc_case(0);
}

Test(journal, enospc_with_batches_spanning_segments, .fini = unmount_tmpfs)
{
    enospc_case(8192); /* a batch of 20 KiB rolls twice or three times */
}
