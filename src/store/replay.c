/*
 * replay.c - reading a journal directory back at start (recovery).
 *
 * Each segment is mapped whole and decoded in place: no syscall and no
 * allocation per record, so replay runs at the speed of the checksum. Bad
 * bytes are handled by scanning forward (memmem for the magic) to the next
 * offset where a record decodes with a higher lsn than the last one:
 *   - found: the stretch is one damaged record (log line, counted);
 *   - not found, newest segment: a torn tail, the file is cut there;
 *   - not found, older segment: damage up to the end of the file.
 * Runs on the caller's thread, before a journal is opened on the dir.
 */
#include "store_internal.h"

#include "stampede/error.h"
#include "stampede/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct replay {
    const char *dir;
    int dirfd;
    stp_journal_replay_cb cb;
    void *ctx;
    struct stp_journal_replay_stats *st;
};

/* A record starts at b[0, len) that decodes and comes after the last one. */
static bool next_ok(const struct replay *rp, const uint8_t *b, size_t len, struct stp_jrec *r,
                    size_t *used)
{
    return stp_jrec_decode(b, len, r, used) == STP_JDEC_OK && r->lsn > rp->st->last_lsn;
}

/* The first offset in [from, size) where a good record starts; size when
 * none does. */
static size_t resync(const struct replay *rp, const uint8_t *base, size_t size, size_t from)
{
    struct stp_jrec r;
    size_t used;
    while (from < size) {
        const uint8_t *m = memmem(base + from, size - from, STP_JREC_MAGIC, STP_JREC_MAGIC_LEN);
        if (!m)
            return size;
        size_t off = (size_t)(m - base);
        if (next_ok(rp, m, size - off, &r, &used))
            return off;
        from = off + 1;
    }
    return size;
}

static void damaged(const struct replay *rp, const char *name, size_t off, size_t n)
{
    rp->st->damaged_records++;
    rp->st->damaged_bytes += n;
    stp_warn("journal %s: segment %s: skipped %zu damaged bytes at offset %zu", rp->dir, name, n,
             off);
}

/* Pass the records of the segment mapped at base[0, size) to the callback.
 * *cut: where the torn tail starts (size when none; only for the newest).
 * 0 or the callback's value. */
static int scan(const struct replay *rp, uint64_t seg_lsn, const char *name, const uint8_t *base,
                size_t size, bool newest, size_t *cut)
{
    struct stp_journal_replay_stats *st = rp->st;
    size_t off = 0;
    uint64_t msgs = 0;
    *cut = size;
    while (off < size) {
        struct stp_jrec r;
        size_t used;
        if (next_ok(rp, base + off, size - off, &r, &used)) {
            st->records++;
            st->last_lsn = r.lsn;
            msgs += stp_jrec_pins(r.type);
            int rc = rp->cb ? rp->cb(rp->ctx, &r) : 0;
            if (rc != 0)
                return rc;
            off += used;
            continue;
        }
        size_t next = resync(rp, base, size, off + 1);
        if (next == size && newest) {
            *cut = off;
            break;
        }
        damaged(rp, name, off, next - off);
        off = next;
    }
    struct stp_jrec done = {.type = STP_JREC_SEGMENT_DONE, .lsn = seg_lsn, .key = msgs};
    return rp->cb ? rp->cb(rp->ctx, &done) : 0;
}

/* Cut the newest segment at cut; removed when nothing is left. */
static int cut_tail(const struct replay *rp, const char *name, size_t size, size_t cut)
{
    stp_warn("journal %s: segment %s: torn tail of %zu bytes at offset %zu cut off", rp->dir, name,
             size - cut, cut);
    int fd = openat(rp->dirfd, name, O_WRONLY | O_CLOEXEC);
    int rc = fd < 0 || ftruncate(fd, (off_t)cut) != 0 || fsync(fd) != 0 ? errno : 0;
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        return stp_err_from_errno(rc);
    rp->st->truncated_bytes += size - cut;
    if (cut == 0 && unlinkat(rp->dirfd, name, 0) != 0)
        return stp_err_from_errno(errno);
    return 0;
}

/* Map the open segment fd (size bytes), scan it, cut a torn tail. */
static int replay_mapped(const struct replay *rp, int fd, uint64_t lsn, const char *name,
                         size_t size, bool newest)
{
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED)
        return stp_err_from_errno(errno);
    madvise(m, size, MADV_SEQUENTIAL);
    size_t cut;
    int rc = scan(rp, lsn, name, m, size, newest, &cut);
    munmap(m, size);
    if (rc == 0 && cut < size)
        rc = cut_tail(rp, name, size, cut);
    return rc;
}

static int replay_segment(const struct replay *rp, uint64_t lsn, bool newest)
{
    char name[STP_SEG_NAME_SIZE];
    stp_seg_name(name, lsn);
    int fd = openat(rp->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        stp_error("journal %s: segment %s: %s", rp->dir, name, strerror(e));
        return stp_err_from_errno(e);
    }
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) != 0) {
        rc = stp_err_from_errno(errno);
    } else if (sb.st_size == 0) {
        stp_info("journal %s: removing empty segment %s", rp->dir, name);
        if (unlinkat(rp->dirfd, name, 0) != 0)
            rc = stp_err_from_errno(errno);
    } else {
        rp->st->segments++;
        rp->st->bytes += (uint64_t)sb.st_size;
        rc = replay_mapped(rp, fd, lsn, name, (size_t)sb.st_size, newest);
    }
    close(fd);
    return rc;
}

/* Index of the last non-empty segment (the newest one written to). */
static size_t newest_of(const struct stp_seg_file *v, size_t n)
{
    size_t i = n;
    while (i > 0 && v[i - 1].size == 0)
        i--;
    return i > 0 ? i - 1 : n;
}

int stp_journal_replay(const char *dir, stp_journal_replay_cb cb, void *ctx,
                       struct stp_journal_replay_stats *st)
{
    memset(st, 0, sizeof(*st));
    struct replay rp = {dir, -1, cb, ctx, st};
    rp.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rp.dirfd < 0)
        return errno == ENOENT ? 0 : stp_err_from_errno(errno);
    struct stp_seg_file *v;
    size_t n;
    int rc = stp_seg_list(rp.dirfd, &v, &n);
    size_t newest = rc == 0 ? newest_of(v, n) : 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = replay_segment(&rp, v[i].lsn, i == newest);
    if (rc == 0 && fsync(rp.dirfd) != 0) /* the unlinks of empty segments */
        rc = stp_err_from_errno(errno);
    free(v);
    close(rp.dirfd);
    return rc;
}
