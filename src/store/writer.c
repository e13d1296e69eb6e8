/*
 * writer.c - the journal's writer thread: the only code that writes,
 * syncs, creates or unlinks segment files while the journal runs.
 *
 * A batch is written in pieces split at its rolls: the records before a
 * roll go to the current segment, which is fdatasync'ed and closed before
 * the next one is created (O_EXCL) and the directory synced. After the
 * last piece one fdatasync covers the batch; then the segments it made
 * dead are unlinked. When anything fails the batch is undone as far as
 * possible (segments it created unlinked, the one it started in cut back
 * to its length before the batch) and the current segment is closed: the
 * next batch can only be a probe, which starts a new segment.
 */
#include "journal_int.h"

#include "stampede/error.h"
#include "stampede/log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Log what failed on which segment (quietly for a probe: a journal out of
 * space would log every retry period); the code for errno e. */
static int fail(const struct stp_journal *j, const char *what, uint64_t lsn, int e)
{
    char name[STP_SEG_NAME_SIZE];
    stp_seg_name(name, lsn);
    stp_log(j->probing ? STP_LOG_DEBUG : STP_LOG_ERROR, "journal %s: segment %s: %s: %s", j->dir,
            name, what, strerror(e));
    return stp_err_from_errno(e);
}

int stp_journal_create_segment(struct stp_journal *j, uint64_t lsn)
{
    char name[STP_SEG_NAME_SIZE];
    stp_seg_name(name, lsn);
    int fd = openat(j->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return fail(j, "create", lsn, errno);
    if (fsync(j->dirfd) != 0) {
        int rc = fail(j, "sync directory after create", lsn, errno);
        close(fd);
        unlinkat(j->dirfd, name, 0);
        return rc;
    }
    stp_jstat_add(&j->stats.segments, 1);
    return fd;
}

static int write_all(struct stp_journal *j, const char *p, size_t n)
{
    if (j->cur_fd < 0)
        return STP_EIO; /* only a probe may follow a failure: it rolls first */
    while (n > 0) {
        ssize_t w = write(j->cur_fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return fail(j, "write", j->cur_lsn, w < 0 ? errno : EIO);
        p += w;
        n -= (size_t)w;
        j->cur_size += (uint64_t)w;
        j->cur_dirty = true;
        stp_jstat_add(&j->stats.bytes_written, (uint64_t)w);
        stp_jstat_add(&j->stats.disk_bytes, (uint64_t)w);
    }
    return 0;
}

static int sync_current(struct stp_journal *j)
{
    if (!j->cur_dirty)
        return 0;
    if (fdatasync(j->cur_fd) != 0)
        return fail(j, "fdatasync", j->cur_lsn, errno);
    j->cur_dirty = false;
    stp_jstat_add(&j->stats.syncs, 1);
    return 0;
}

/* Sync and close the current segment, create segment lsn. */
static int roll(struct stp_journal *j, uint64_t lsn)
{
    int rc = sync_current(j);
    if (rc != 0)
        return rc;
    int fd = stp_journal_create_segment(j, lsn);
    if (fd < 0)
        return fd;
    if (j->cur_fd >= 0)
        close(j->cur_fd);
    j->cur_fd = fd;
    j->cur_lsn = lsn;
    j->cur_size = 0;
    return 0;
}

/* Unlink segment lsn (a missing one is fine); counted as deleted when
 * counted. */
static void unlink_segment(struct stp_journal *j, uint64_t lsn, bool counted)
{
    char name[STP_SEG_NAME_SIZE];
    stp_seg_name(name, lsn);
    struct stat sb;
    if (fstatat(j->dirfd, name, &sb, 0) != 0) {
        if (errno != ENOENT)
            (void)fail(j, "stat", lsn, errno);
        return;
    }
    if (unlinkat(j->dirfd, name, 0) != 0) {
        if (errno != ENOENT)
            (void)fail(j, "unlink", lsn, errno);
        return;
    }
    stp_jstat_sub(&j->stats.segments, 1);
    stp_jstat_sub(&j->stats.disk_bytes, (uint64_t)sb.st_size);
    if (counted)
        stp_jstat_add(&j->stats.segments_deleted, 1);
    stp_debug("journal %s: segment %s deleted", j->dir, name);
}

/* Cut segment lsn back to size bytes and sync it (best effort). */
static void cut_back(struct stp_journal *j, uint64_t lsn, uint64_t size)
{
    char name[STP_SEG_NAME_SIZE];
    stp_seg_name(name, lsn);
    int fd = openat(j->dirfd, name, O_WRONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || ftruncate(fd, (off_t)size) != 0 || fsync(fd) != 0)
        (void)fail(j, "cut back after a failed batch", lsn, errno);
    else if ((uint64_t)sb.st_size > size)
        stp_jstat_sub(&j->stats.disk_bytes, (uint64_t)sb.st_size - size);
    if (fd >= 0)
        close(fd);
}

/* Where the batch started: segment lsn of size bytes (had: an open one). */
struct start {
    bool had;
    uint64_t lsn, size;
};

/* Undo a failed batch b after its first `rolled` rolls succeeded. */
static void undo(struct stp_journal *j, const struct jbatch *b, const struct start *s,
                 size_t rolled)
{
    if (j->cur_fd >= 0)
        close(j->cur_fd);
    j->cur_fd = -1;
    j->cur_dirty = false;
    for (size_t i = 0; i < rolled; i++)
        unlink_segment(j, b->rolls[i].lsn, false);
    if (s->had)
        cut_back(j, s->lsn, s->size);
}

static int write_batch(struct stp_journal *j, const struct jbatch *b)
{
    struct start s = {j->cur_fd >= 0, j->cur_lsn, j->cur_size};
    size_t off = 0, rolled = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i <= b->nrolls; i++) {
        size_t end = i < b->nrolls ? b->rolls[i].off : b->buf.len;
        if (end > off)
            rc = write_all(j, b->buf.data + off, end - off);
        off = end;
        if (rc == 0 && i < b->nrolls && (rc = roll(j, b->rolls[i].lsn)) == 0)
            rolled++;
    }
    if (rc == 0)
        rc = sync_current(j);
    if (rc != 0) {
        undo(j, b, &s, rolled);
        return rc;
    }
    for (size_t i = 0; i < b->nunlinks; i++)
        unlink_segment(j, b->unlinks[i], true);
    return 0;
}

void stp_journal_writer_main(void *arg)
{
    struct stp_journal *j = arg;
    uv_mutex_lock(&j->mu);
    for (;;) {
        while (!j->job && !j->quit)
            uv_cond_wait(&j->cond_job, &j->mu);
        struct jbatch *b = j->job;
        if (!b)
            break;
        uv_mutex_unlock(&j->mu);
        j->probing = b->probe;
        b->err = write_batch(j, b);
        uv_mutex_lock(&j->mu);
        j->job = NULL;
        j->done = true;
        uv_cond_signal(&j->cond_done);
        uv_async_send(&j->async);
    }
    uv_mutex_unlock(&j->mu);
}
